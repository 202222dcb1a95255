//! The gateway's own files: `gateway.json` (listeners, TLS, plugin keys and epochs, directory)
//! and one API definition per file under `apis/`. Parsed with `deny_unknown_fields`; every error
//! names the file, the field path and the value.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

mod api;
mod gateway;
mod read;

use api::check_api;
pub(crate) use api::{ApiDef, Upstream, aws_credentials_path};
use gateway::check_gateway;
pub(crate) use gateway::{
    Admin, AgentAddress, DirectoryDef, Gateway, HeldBy, HttpsListener, Resolve, Source,
};
use read::{field, parse, read};

/// Everything in a config directory, checked.
#[derive(Debug)]
pub(crate) struct Definitions {
    /// The config directory: relative paths in the files are relative to it.
    pub(crate) dir: PathBuf,
    pub(crate) gateway: Gateway,
    /// `(file, definition, parsed upstream)`, sorted by id.
    pub(crate) apis: Vec<(PathBuf, ApiDef, Upstream)>,
}

impl Definitions {
    /// Reads `dir/gateway.json` and every `dir/apis/*.json`.
    pub(crate) fn load(dir: &Path) -> Result<Definitions> {
        if !dir.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        let gateway_file = dir.join("gateway.json");
        let gateway: Gateway = parse(&gateway_file, &read(&gateway_file)?)?;
        check_gateway(&gateway_file, &gateway)?;

        let apis_dir = dir.join("apis");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&apis_dir)
            .map_err(|e| anyhow!("{}: cannot list API definitions: {e}", apis_dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{}: no API definitions (*.json)", apis_dir.display());
        }
        let mut apis: Vec<(PathBuf, ApiDef, Upstream)> = Vec::new();
        for file in files {
            let api: ApiDef = parse(&file, &read(&file)?)?;
            let upstream = check_api(&file, &api)?;
            if let Some((other, _, _)) = apis.iter().find(|(_, a, _)| a.id == api.id) {
                return Err(field(
                    &file,
                    "id",
                    format!(
                        "duplicate API id {:?} (also in {})",
                        api.id,
                        other.display()
                    ),
                ));
            }
            if let Some((other, a, _)) = apis
                .iter()
                .find(|(_, a, _)| a.listen_path == api.listen_path)
            {
                return Err(field(
                    &file,
                    "listen_path",
                    format!(
                        "{:?} is also the listen_path of {:?} ({})",
                        api.listen_path,
                        a.id,
                        other.display()
                    ),
                ));
            }
            apis.push((file, api, upstream));
        }
        apis.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        Ok(Definitions {
            dir: dir.to_owned(),
            gateway,
            apis,
        })
    }

    /// `path` relative to the config directory (absolute paths stay).
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path)
        }
    }

    /// Reads a [`Source`]; `file` and `path` name where it was referenced, for errors.
    pub(crate) fn source(&self, source: &Source, file: &Path, path: &str) -> Result<String> {
        let value = match source {
            Source::AwsSecretsmanager(_) => {
                return Err(field(
                    file,
                    path,
                    "an aws_secretsmanager source is resolved by the agent only",
                ));
            }
            Source::Value(v) => v.clone(),
            Source::Env(name) => std::env::var(name).map_err(|_| {
                field(
                    file,
                    path,
                    format!("environment variable {name:?} is not set (or not UTF-8)"),
                )
            })?,
            Source::File(p) => {
                let full = self.resolve(p);
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    field(file, path, format!("cannot read {}: {e}", full.display()))
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.strip_suffix('\r').unwrap_or(text).to_owned()
            }
        };
        if value.is_empty() {
            return Err(field(file, path, "the value is empty"));
        }
        Ok(value)
    }
}

/// The directory the agent keeps an `aws_service` API's signing credentials in
/// (`credentials.aws_signing_dir/<api>`).
pub(crate) fn aws_signing_dir(defs: &Definitions, api: &str) -> Result<PathBuf> {
    let Some(dir) = &defs.gateway.credentials.aws_signing_dir else {
        anyhow::bail!(
            "{}: credentials.aws_signing_dir: required when an API has aws_service (the agent \
             writes the signing credentials there, Envoy reads them)",
            defs.dir.join("gateway.json").display()
        );
    };
    let dir = defs.resolve(dir).join(api);
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::gateway::host_port;
    use super::*;

    fn api_err(json: &str) -> String {
        let file = Path::new("apis/pay.json");
        match parse::<ApiDef>(file, json.as_bytes()) {
            Err(e) => format!("{e:#}"),
            Ok(api) => format!("{:#}", check_api(file, &api).unwrap_err()),
        }
    }

    #[test]
    fn errors_name_the_file_the_field_and_the_value() {
        let base = r#""id":"pay","name":"P","listen_path":"/p/","upstream":"http://u:1""#;
        assert_eq!(
            api_err(&format!(
                r#"{{{base},"auth":{{"require":{{"any_of":[1]}}}}}}"#
            )),
            "apis/pay.json: auth.require.any_of[0]: invalid type: integer `1`, expected a string at line 1 column 97"
        );
        let e = api_err(&format!(
            r#"{{{base},"auth":{{"inject":{{"x":{{"env":"A","file":"b"}}}}}}}}"#
        ));
        assert!(e.starts_with("apis/pay.json: auth.inject.x"), "{e}");
        let e = api_err(&format!(r#"{{{base},"timeout":{{}}}}"#));
        assert!(e.contains("unknown field `timeout`"), "{e}");
        let e = api_err(r#"{"id":"pay","name":"P","listen_path":"p/","upstream":"http://u:1"}"#);
        assert_eq!(
            e,
            "apis/pay.json: listen_path: expected a path prefix that starts and ends with / (value: \"p/\")"
        );
        let e = api_err(r#"{"id":"pay","name":"P","listen_path":"/p/","upstream":"ftp://u"}"#);
        assert!(
            e.starts_with("apis/pay.json: upstream: scheme \"ftp\""),
            "{e}"
        );
        let e = api_err(r#"{"id":"other","name":"P","listen_path":"/p/","upstream":"http://u"}"#);
        assert!(e.contains("must be named other.json"), "{e}");
    }

    #[test]
    fn upstreams_split() {
        let file = Path::new("apis/pay.json");
        let api: ApiDef = parse(
            file,
            br#"{"id":"pay","name":"P","listen_path":"/p/","upstream":"https://api.example/v1/"}"#,
        )
        .unwrap();
        assert_eq!(
            check_api(file, &api).unwrap(),
            Upstream {
                tls: true,
                host: "api.example".into(),
                port: 443,
                path: "/v1/".into()
            }
        );
        assert!(api.enabled);
    }

    #[test]
    fn host_port_parses() {
        assert_eq!(
            host_port("127.0.0.1:8389"),
            Some(("127.0.0.1".into(), 8389))
        );
        assert_eq!(host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(host_port("nope"), None);
        assert_eq!(host_port("h:0"), None);
    }
}
