//! `autoid rotate key`: a new gateway key at the agent, the old ones retired after an overlap,
//! and the agent told to reload — no Envoy restart (docs/OPERATIONS.md, "Rotating a gateway key").

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use autoid_protocol::policy::DEFAULT_RSA_BITS;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::Outcome;
use crate::files::{self, SECRET_MODE};
use crate::keys::{default_kid, generate_files, parse_bits};

#[derive(Debug, Subcommand)]
pub(crate) enum RotateCommand {
    /// Add a new gateway key to the agent and retire the current ones after an overlap
    Key(RotateKeyArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    autoid rotate key --agent-config run/agent.json --keys-dir run/keys --kid gw-2 \\\n    \
    --overlap-secs 3600 --pid-file run/agent.pid\n\n\
    Writes DIR/<kid>.key.pem (mode 0600) and DIR/<kid>.pub.pem, adds the key to the agent \
    configuration's session_keys, sets not_after = now + overlap on every key that has none yet, \
    rewrites the file atomically and sends the agent SIGHUP. The agent unwraps sessions for the \
    new key at once (filters with agent.any_key need no change) and refuses the old keys from \
    not_after on; the filter drops their cached sessions at the same time. Give the new \
    <kid>.pub.pem to clients within the overlap.")]
pub(crate) struct RotateKeyArgs {
    /// The agent's configuration file (JSON), rewritten in place
    #[arg(long, value_name = "FILE")]
    agent_config: PathBuf,
    /// Where the key files go
    #[arg(long, value_name = "DIR")]
    keys_dir: PathBuf,
    /// The new key id [default: gw-YYYYMMDD, today UTC]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// RSA modulus size: 2048, 3072 or 4096
    #[arg(long, default_value_t = DEFAULT_RSA_BITS, value_parser = parse_bits)]
    bits: usize,
    /// Seconds the current keys keep working after now (clients move to the new key meanwhile)
    #[arg(long, default_value_t = 3600)]
    overlap_secs: u64,
    /// Signal this agent process (SIGHUP) once the file is written
    #[arg(long, value_name = "PID", conflicts_with = "pid_file")]
    pid: Option<u32>,
    /// Read the agent's process id from this file and signal it
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

pub(crate) fn run(cmd: &RotateCommand) -> Result<Outcome> {
    match cmd {
        RotateCommand::Key(args) => rotate_key(args),
    }
}

fn rotate_key(args: &RotateKeyArgs) -> Result<Outcome> {
    let text = files::read_text(&args.agent_config, "the agent configuration")?;
    let mut config: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON", args.agent_config.display()))?;
    let kid = match &args.kid {
        Some(kid) => kid.clone(),
        None => default_kid()?,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let retire_at = now.saturating_add(args.overlap_secs);
    let retired = add_key(&mut config, &kid, &args.keys_dir, retire_at)
        .with_context(|| format!("{}", args.agent_config.display()))?;
    let (private_path, public_path) = generate_files(&args.keys_dir, &kid, args.bits, false)?;
    let mut out = serde_json::to_string_pretty(&config)?;
    out.push('\n');
    files::write_file(&args.agent_config, out.as_bytes(), SECRET_MODE, true)?;
    println!("new key {kid}: {}", private_path.display());
    println!("give clients: {}", public_path.display());
    for old in &retired {
        println!("retiring {old} at {retire_at} (in {} s)", args.overlap_secs);
    }
    if let Some(pid) = signal_target(args)? {
        hangup(pid)?;
        println!("sent SIGHUP to the agent (pid {pid})");
    } else {
        println!(
            "now send the agent SIGHUP (kill -HUP <pid>) so it loads {}",
            args.agent_config.display()
        );
    }
    Ok(Outcome::Success)
}

/// Adds `kid` to `session_keys` and sets `not_after` on the keys that have none; returns their
/// ids. Refuses a key id the file already has.
fn add_key(config: &mut Value, kid: &str, dir: &Path, retire_at: u64) -> Result<Vec<String>> {
    let Some(object) = config.as_object_mut() else {
        bail!("not a JSON object");
    };
    let keys = object
        .entry("session_keys")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(keys) = keys.as_array_mut() else {
        bail!("session_keys: not an array");
    };
    let mut retired = Vec::new();
    for (i, key) in keys.iter_mut().enumerate() {
        let Some(entry) = key.as_object_mut() else {
            bail!("session_keys[{i}]: not an object");
        };
        let this = entry.get("kid").and_then(Value::as_str).unwrap_or_default();
        if this == kid {
            bail!("session_keys[{i}].kid: the agent already has a key {kid:?}; pick another --kid");
        }
        if entry.get("not_after").is_none_or(Value::is_null) {
            retired.push(this.to_owned());
            entry.insert("not_after".into(), json!(retire_at));
        }
    }
    let file = dir.join(format!("{kid}.key.pem"));
    keys.push(json!({ "kid": kid, "private_key_file": file }));
    Ok(retired)
}

fn signal_target(args: &RotateKeyArgs) -> Result<Option<u32>> {
    if let Some(pid) = args.pid {
        return Ok(Some(pid));
    }
    let Some(file) = &args.pid_file else {
        return Ok(None);
    };
    let text = files::read_text(file, "the agent's pid file")?;
    let pid = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a process id: {:?}", file.display(), text.trim()))?;
    Ok(Some(pid))
}

/// SIGHUP through kill(1): the workspace forbids `unsafe`, and one signal needs no crate.
fn hangup(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .context("cannot run kill(1)")?;
    if !status.success() {
        bail!("kill -HUP {pid} failed ({status}): is the agent running?");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_key_and_retires_only_the_keys_without_a_date() {
        let mut c = json!({
            "ldap": {},
            "session_keys": [
                { "kid": "gw-0", "private_key_file": "k/gw-0.key.pem", "not_after": 5 },
                { "kid": "gw-1", "private_key_file": "k/gw-1.key.pem" }
            ]
        });
        let retired = add_key(&mut c, "gw-2", Path::new("k"), 1000).unwrap();
        assert_eq!(retired, ["gw-1"]);
        assert_eq!(c["session_keys"][0]["not_after"], 5);
        assert_eq!(c["session_keys"][1]["not_after"], 1000);
        assert_eq!(c["session_keys"][2]["kid"], "gw-2");
        assert_eq!(c["session_keys"][2]["private_key_file"], "k/gw-2.key.pem");
        assert!(c["session_keys"][2].get("not_after").is_none());
        assert_eq!(c["ldap"], json!({}));
    }

    #[test]
    fn refuses_a_key_id_the_agent_has() {
        let mut c = json!({ "session_keys": [ { "kid": "gw-1", "private_key_file": "x" } ] });
        let e = add_key(&mut c, "gw-1", Path::new("k"), 1).unwrap_err();
        assert!(e.to_string().contains("session_keys[0].kid"), "{e}");
    }
}
