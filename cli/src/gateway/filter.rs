//! The autoid filter's JSON configuration, built from the definitions, the key files and the
//! epoch files, and checked with `autoid_protocol::config::Config::from_json` (the filter's own
//! parser) before anything is written. Errors are mapped back to the file that caused them.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use autoid_protocol::config::{Config, ConfigError};
use serde_json::{Map, Value, json};

use super::defs::{AgentAddress, Definitions, HeldBy, Resolve, Source};
use crate::files::PRIVATE_KEY_SUFFIX;

/// The Envoy cluster of the autoid agent (the filter's `directory.cluster`).
pub(crate) const AGENT_CLUSTER: &str = "autoid_agent";
/// The callouts' `:authority` when the agent is on a unix socket (a name, not an address).
pub(crate) const AGENT_SOCKET_AUTHORITY: &str = "autoid-agent";

/// Where each part of the filter configuration came from, to map errors back.
struct Origins {
    gateway: PathBuf,
    keys: Vec<PathBuf>,
    epochs: Vec<PathBuf>,
    apis: Vec<(String, PathBuf)>,
}

/// Whether the agent resolves this injected header's source (else its value goes inline).
fn resolved_by_agent(defs: &Definitions, source: &Source) -> bool {
    match source {
        Source::Value(_) => false,
        Source::AwsSecretsmanager(_) => true,
        Source::Env(_) | Source::File(_) => defs.gateway.credentials.resolve == Resolve::Agent,
    }
}

/// The agent's credentials file (`autoid gateway render --agent-credentials FILE`): per API id,
/// header → source, with the refresh and stale settings. It names sources, never values; `None`
/// when no API has an agent-resolved header.
pub(crate) fn agent_credentials(defs: &Definitions) -> Result<Option<Value>> {
    let mut apis = Map::new();
    let mut roles = Map::new();
    let mut signing = Map::new();
    for (file, api, _) in &defs.apis {
        if let Some(role) = &api.aws_role {
            roles.insert(api.id.clone(), json!(role));
        }
        if let Some(s) = &api.aws_service {
            let dir = super::defs::aws_signing_dir(defs, &api.id)?;
            let mut entry = json!({"role_arn": s.role_arn, "dir": dir});
            if let Some(d) = s.duration_secs {
                entry["duration_secs"] = json!(d);
            }
            signing.insert(api.id.clone(), entry);
        }
        let mut headers = Map::new();
        for (header, source) in &api.auth.inject {
            if !resolved_by_agent(defs, source) {
                continue;
            }
            let at = format!("auth.inject.{header}");
            let spec = match source {
                Source::Env(name) => json!({ "env": name }),
                Source::File(p) => {
                    let full = defs.resolve(p);
                    let full = std::path::absolute(&full).unwrap_or(full);
                    json!({ "file": full })
                }
                Source::AwsSecretsmanager(secret) => {
                    if secret.secret_id.trim().is_empty() {
                        bail!(
                            "{}: {at}.aws_secretsmanager.secret_id: empty",
                            file.display()
                        );
                    }
                    json!({ "aws_secretsmanager": secret })
                }
                Source::Value(_) => continue,
            };
            headers.insert(header.to_ascii_lowercase(), spec);
        }
        if !headers.is_empty() {
            apis.insert(api.id.clone(), Value::Object(headers));
        }
    }
    if apis.is_empty() && roles.is_empty() && signing.is_empty() {
        return Ok(None);
    }
    let c = &defs.gateway.credentials;
    let mut out = Map::new();
    if let Some(v) = c.refresh_secs {
        out.insert("refresh_secs".into(), json!(v));
    }
    if let Some(v) = c.stale_secs {
        out.insert("stale_secs".into(), json!(v));
    }
    if let Some(v) = &c.aws {
        out.insert("aws".into(), v.clone());
    }
    out.insert("apis".into(), Value::Object(apis));
    if !roles.is_empty() {
        out.insert("aws_roles".into(), Value::Object(roles));
    }
    if !signing.is_empty() {
        out.insert("aws_signing".into(), Value::Object(signing));
    }
    Ok(Some(Value::Object(out)))
}

/// The filter configuration as JSON, validated.
pub(crate) fn build(defs: &Definitions) -> Result<Value> {
    let gateway_file = defs.dir.join("gateway.json");
    let g = &defs.gateway;
    let mut config = Map::new();
    if let Some(h) = &g.plugin.proof_header {
        config.insert("proof_header".into(), json!(h));
    }

    let keys_dir = defs.resolve(&g.plugin.keys_dir);
    let mut key_files: Vec<PathBuf> = std::fs::read_dir(&keys_dir)
        .map_err(|e| {
            anyhow!(
                "{}: plugin.keys_dir: cannot list {}: {e}",
                gateway_file.display(),
                keys_dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(PRIVATE_KEY_SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    key_files.sort();
    if key_files.is_empty() {
        bail!(
            "{}: plugin.keys_dir: no <kid>{PRIVATE_KEY_SUFFIX} files in {}",
            gateway_file.display(),
            keys_dir.display()
        );
    }
    // The filter holds no long-term secret: the agent does (docs/CONFIG.md).
    for (field, held) in [
        ("session_keys", g.plugin.session_keys),
        ("epochs", g.plugin.epochs),
    ] {
        if held == HeldBy::Filter {
            bail!(
                "{}: plugin.{field}: \"filter\" is no longer supported: the filter holds no \
                 long-term secret, the agent does (set \"agent\" or leave the field out)",
                gateway_file.display()
            );
        }
    }
    let mut keys = Vec::new();
    for file in &key_files {
        // The agent reads the key file itself; Envoy only learns the key id.
        let kid = crate::files::kid_for(file, None, PRIVATE_KEY_SUFFIX)?;
        keys.push(json!({"kid": kid}));
    }
    config.insert("keys".into(), Value::Array(keys));

    let mut epoch_files = Vec::new();
    let mut epochs = Vec::new();
    for (i, p) in g.plugin.epoch_files.iter().enumerate() {
        let file = defs.resolve(p);
        let text = crate::files::read_secret_text(&file, "an epoch file")
            .map_err(|e| anyhow!("{}: plugin.epoch_files[{i}]: {e:#}", gateway_file.display()))?;
        // The agent reads the epoch file itself; Envoy only learns its public parameters.
        let epoch = autoid_protocol::entropy::Epoch::from_json(&text)
            .map_err(|e| anyhow!("{}: not an epoch file: {e}", file.display()))?;
        epochs.push(json!({
            "id": epoch.id(),
            "file_size": epoch.file_size(),
            "interval_count": epoch.interval_count(),
        }));
        epoch_files.push(file);
    }
    config.insert("epochs".into(), Value::Array(epochs));

    for (name, value) in [
        ("limits", &g.plugin.limits),
        ("session_cache", &g.plugin.session_cache),
        ("cold_path", &g.plugin.cold_path),
        ("replay", &g.plugin.replay),
    ] {
        if let Some(v) = value {
            config.insert(name.into(), v.clone());
        }
    }

    // The first API file with a header the agent resolves, if any.
    let agent_api = defs
        .apis
        .iter()
        .find(|(_, api, _)| api.auth.inject.values().any(|s| resolved_by_agent(defs, s)))
        .map(|(file, _, _)| file);
    let credentials_at_agent = agent_api.is_some();
    // `plugin.replay.scope: "fleet"`: the filter claims nonces through the agent.
    let fleet_replay = g
        .plugin
        .replay
        .as_ref()
        .and_then(|r| r.get("scope"))
        .is_some_and(|s| s == "fleet");
    // `auth.methods` with `ldap_basic`: the agent checks the passwords.
    let basic_api = defs
        .apis
        .iter()
        .find(|(_, api, _)| api.auth.ldap_basic())
        .map(|(file, _, _)| file);
    if let Some(file) = basic_api
        && g.directory.is_none()
    {
        bail!(
            "{}: auth.methods: \"ldap_basic\" has the agent bind as the user, but {} has no              `directory` (the agent's address)",
            file.display(),
            gateway_file.display()
        );
    }
    // `aws_role`: the agent answers the API itself, over its unix socket (no token to send).
    if let Some((file, _, _)) = defs.apis.iter().find(|(_, api, _)| api.aws_role.is_some())
        && !matches!(
            g.directory.as_ref().and_then(|d| d.agent_address()),
            Some(AgentAddress::Unix(_))
        )
    {
        bail!(
            "{}: aws_role: the agent answers this API, but {} has no `directory` on a unix socket \
             (`\"address\": \"unix:…\"`)",
            file.display(),
            gateway_file.display()
        );
    }
    if fleet_replay && g.directory.is_none() {
        bail!(
            "{}: plugin.replay.scope: \"fleet\" claims nonces through the agent, which needs \
             `directory` (the agent's address)",
            gateway_file.display()
        );
    }
    if let Some(file) = agent_api
        && g.directory.is_none()
    {
        bail!(
            "{}: auth.inject: the agent resolves these sources, but {} has no `directory` (the \
             agent's address and token); set credentials.resolve to \"render\" to bake env and \
             file values into Envoy's configuration instead",
            file.display(),
            gateway_file.display()
        );
    }
    // Checked after the callouts above, whose errors name the definition that needs the agent.
    if g.directory.is_none() {
        bail!(
            "{}: plugin.session_keys: \"agent\" needs `directory` (the agent's address and token): \
             the agent holds the gateway's keys and epochs",
            gateway_file.display()
        );
    }
    if credentials_at_agent {
        let c = &g.credentials;
        let mut cache = Map::new();
        if let Some(v) = c.refresh_ahead_secs {
            cache.insert("refresh_ahead_secs".into(), json!(v));
        }
        if let Some(v) = c.stale_secs {
            cache.insert("stale_secs".into(), json!(v));
        }
        config.insert("credentials".into(), Value::Object(cache));
    }
    if let Some(d) = &g.directory {
        // A unix socket target has no token (check_gateway refuses one): nothing secret about
        // the agent goes into Envoy's configuration.
        let token = match &d.token {
            Some(t) => Some(defs.source(t, &gateway_file, "directory.token")?),
            None => None,
        };
        let authority = match d.agent_address() {
            Some(AgentAddress::Unix(_)) => AGENT_SOCKET_AUTHORITY.to_owned(),
            _ => d.address.clone(),
        };
        // The agent holds the keys and epochs: the filter always asks it.
        {
            let mut agent = Map::new();
            agent.insert("cluster".into(), json!(AGENT_CLUSTER));
            agent.insert("authority".into(), json!(authority));
            if let Some(t) = &token {
                agent.insert("token".into(), json!(t));
            }
            // Keys and epochs the agent adds later (`autoid rotate key`, `autoid rotate epoch`)
            // work without a new render.
            agent.insert("any_key".into(), json!(true));
            agent.insert("any_epoch".into(), json!(true));
            if let Some(t) = d.session_ttl_secs {
                agent.insert("session_ttl_secs".into(), json!(t));
            }
            if let Some(t) = d.max_stream_ttl_secs {
                agent.insert("max_stream_ttl_secs".into(), json!(t));
            }
            if let Some(t) = d.timeout_ms {
                agent.insert("timeout_ms".into(), json!(t));
            }
            config.insert("agent".into(), Value::Object(agent));
        }
        let mut dir = Map::new();
        dir.insert("cluster".into(), json!(AGENT_CLUSTER));
        dir.insert("authority".into(), json!(authority));
        if let Some(t) = &token {
            dir.insert("token".into(), json!(t));
        }
        for (k, v) in [
            ("timeout_ms", d.timeout_ms),
            ("positive_ttl_secs", d.positive_ttl_secs),
            ("negative_ttl_secs", d.negative_ttl_secs),
            ("stale_if_error_secs", d.stale_if_error_secs),
            ("max_entries", d.max_entries.map(u64::from)),
        ] {
            if let Some(v) = v {
                dir.insert(k.into(), json!(v));
            }
        }
        config.insert("directory".into(), Value::Object(dir));
    }
    if let Some(s) = &g.static_groups {
        config.insert("static_groups".into(), json!(s));
    }

    let mut apis = Map::new();
    let mut api_files = Vec::new();
    for (file, api, _) in &defs.apis {
        let mut inject = Map::new();
        let mut agent_headers = Vec::new();
        for (header, source) in &api.auth.inject {
            if resolved_by_agent(defs, source) {
                // Only the name: the agent supplies the value at run time.
                agent_headers.push(json!(header));
                continue;
            }
            let value = defs.source(source, file, &format!("auth.inject.{header}"))?;
            inject.insert(header.clone(), json!(value));
        }
        let mut entry = json!({
            "enabled": api.enabled,
            "require": api.auth.require,
            "inject": inject,
            "identity": api.auth.identity,
        });
        if api.auth.methods.is_some() || api.auth.basic.is_some() {
            let mut auth = Map::new();
            if let Some(m) = &api.auth.methods {
                auth.insert("methods".into(), json!(m));
            }
            if let Some(b) = &api.auth.basic {
                auth.insert("basic".into(), b.clone());
            }
            entry["auth"] = Value::Object(auth);
        }
        if !agent_headers.is_empty() {
            entry["agent_headers"] = Value::Array(agent_headers);
        }
        apis.insert(api.id.clone(), entry);
        api_files.push((api.id.clone(), file.clone()));
    }
    config.insert("apis".into(), Value::Object(apis));

    let config = Value::Object(config);
    let origins = Origins {
        gateway: gateway_file,
        keys: key_files,
        epochs: epoch_files,
        apis: api_files,
    };
    let bytes = serde_json::to_vec(&config)?;
    if let Err(e) = Config::from_json(&bytes) {
        return Err(anyhow!("{}", locate(&origins, &e)));
    }
    Ok(config)
}

/// `apis.payments.require.any_of[0]: …` → `apis/payments.json: auth.require.any_of[0]: …`.
fn locate(o: &Origins, e: &ConfigError) -> String {
    let path = e.path.as_str();
    let indexed = |prefix: &str, files: &[PathBuf]| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix('[')?;
        let (i, tail) = rest.split_once(']')?;
        let file = files.get(i.parse::<usize>().ok()?)?;
        Some(format!(
            "{}: {}",
            file.display(),
            if tail.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", tail.trim_start_matches('.'), e.message)
            }
        ))
    };
    if let Some(s) = indexed("keys", &o.keys).or_else(|| indexed("epochs", &o.epochs)) {
        return s;
    }
    if let Some(rest) = path.strip_prefix("apis.") {
        for (id, file) in &o.apis {
            if let Some(tail) = rest.strip_prefix(id.as_str())
                && (tail.is_empty() || tail.starts_with('.'))
            {
                let tail = tail.trim_start_matches('.');
                let field = if let Some(rest) = tail.strip_prefix("agent_headers") {
                    format!("auth.inject{rest}")
                } else if tail.starts_with("auth") {
                    tail.to_owned()
                } else if tail.starts_with("require")
                    || tail.starts_with("inject")
                    || tail.starts_with("identity")
                {
                    format!("auth.{tail}")
                } else if tail.is_empty() {
                    "auth".to_owned()
                } else {
                    tail.to_owned()
                };
                return format!("{}: {field}: {}", file.display(), e.message);
            }
        }
    }
    let field = match path.split(['.', '[']).next().unwrap_or("") {
        "proof_header" | "limits" | "session_cache" | "cold_path" | "replay" => {
            format!("plugin.{path}")
        }
        "credentials" => path.to_owned(),
        "directory" => path
            .replacen("directory.cluster", "directory.address", 1)
            .replacen("directory.authority", "directory.address", 1),
        "keys" => "plugin.keys_dir".to_owned(),
        "epochs" => "plugin.epoch_files".to_owned(),
        _ => path.to_owned(),
    };
    format!("{}: {field}: {}", o.gateway.display(), e.message)
}

/// The filter configuration as Envoy receives it: one JSON string.
pub(crate) fn to_string(config: &Value) -> Result<String> {
    Ok(serde_json::to_string(config)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn origins() -> Origins {
        Origins {
            gateway: "g/gateway.json".into(),
            keys: vec!["g/keys/gw-1.key.pem".into()],
            epochs: vec!["g/ep-1.json".into()],
            apis: vec![("pay".into(), "g/apis/pay.json".into())],
        }
    }

    fn e(path: &str) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn errors_point_at_the_file_that_caused_them() {
        let o = origins();
        assert_eq!(
            locate(&o, &e("apis.pay.require.any_of[0]")),
            "g/apis/pay.json: auth.require.any_of[0]: bad"
        );
        assert_eq!(locate(&o, &e("apis.pay")), "g/apis/pay.json: auth: bad");
        assert_eq!(locate(&o, &e("keys[0]")), "g/keys/gw-1.key.pem: bad");
        assert_eq!(
            locate(&o, &e("epochs[0].secret")),
            "g/ep-1.json: secret: bad"
        );
        assert_eq!(
            locate(&o, &e("limits.max_skew_secs")),
            "g/gateway.json: plugin.limits.max_skew_secs: bad"
        );
        assert_eq!(
            locate(&o, &e("directory.token")),
            "g/gateway.json: directory.token: bad"
        );
    }
}
