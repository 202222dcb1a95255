//! `autoid rotate key|epoch`: a new gateway key or entropy epoch at the agent, the old ones
//! retired after an overlap, and the agent told to reload — no Envoy restart (docs/OPERATIONS.md,
//! "Rotating a gateway key", "Rotating an epoch").

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use autoid_protocol::policy::{
    DEFAULT_FILE_SIZE, DEFAULT_INTERVAL_COUNT, DEFAULT_RSA_BITS, MAX_INTERVAL_COUNT,
    MIN_INTERVAL_COUNT,
};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::Outcome;
use crate::epoch::{load_epoch, parse_size, write_new_epoch};
use crate::files::{self, SECRET_MODE};
use crate::keys::{default_kid, generate_files, parse_bits};

#[derive(Debug, Subcommand)]
pub(crate) enum RotateCommand {
    /// Add a new gateway key to the agent and retire the current ones after an overlap
    Key(RotateKeyArgs),
    /// Add a new entropy epoch to the agent and retire the current ones after an overlap
    Epoch(RotateEpochArgs),
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

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    autoid rotate epoch --agent-config run/agent.json --epochs-dir run/epochs --id ep-2 \\\n    \
    --overlap-secs 86400 --pid-file run/agent.pid\n\n\
    Writes DIR/<id>.epoch.json (mode 0600, as autoid epoch new does), adds it to the agent \
    configuration's epoch_files, sets not_after = now + overlap on every epoch that has none yet, \
    rewrites the file atomically and sends the agent SIGHUP. The agent hands out subjects' keys \
    of the new epoch at once (filters with agent.any_epoch need no change) and refuses the old \
    epochs from not_after on; the filter drops their cached streams at the same time. Within \
    the overlap, issue every client a new entropy file from the new epoch \
    (autoid entropy issue --epoch DIR/<id>.epoch.json --subject S --out F).")]
pub(crate) struct RotateEpochArgs {
    /// The agent's configuration file (JSON), rewritten in place
    #[arg(long, value_name = "FILE")]
    agent_config: PathBuf,
    /// Where the epoch file goes
    #[arg(long, value_name = "DIR")]
    epochs_dir: PathBuf,
    /// The new epoch id [default: ep-YYYYMMDD, today UTC]
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Size of every entropy file of the new epoch (as `autoid epoch new --file-size`)
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_FILE_SIZE, value_parser = parse_size)]
    file_size: u64,
    /// Intervals each proof covers in the new epoch (32 to 256)
    #[arg(long, value_name = "K", default_value_t = DEFAULT_INTERVAL_COUNT,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_INTERVAL_COUNT)..=i64::from(MAX_INTERVAL_COUNT)))]
    intervals: u32,
    /// Seconds the current epochs keep working after now (clients get new entropy files
    /// meanwhile)
    #[arg(long, default_value_t = 86_400)]
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
        RotateCommand::Epoch(args) => rotate_epoch(args),
    }
}

fn now_secs() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs())
}

/// The agent's configuration as JSON, to edit.
fn read_config(path: &Path) -> Result<Value> {
    let text = files::read_text(path, "the agent configuration")?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// `config[field]`, an array (created empty when absent).
fn list<'a>(config: &'a mut Value, field: &str) -> Result<&'a mut Vec<Value>> {
    let Some(object) = config.as_object_mut() else {
        bail!("not a JSON object");
    };
    let list = object
        .entry(field)
        .or_insert_with(|| Value::Array(Vec::new()));
    list.as_array_mut()
        .with_context(|| format!("{field}: not an array"))
}

/// What every rotation does once the new material is written: the edited configuration replaces
/// the old one atomically (mode 0600), the retirements are printed, and the agent is signalled.
struct Commit<'a> {
    agent_config: &'a Path,
    overlap_secs: u64,
    pid: Option<u32>,
    pid_file: Option<&'a Path>,
}

impl Commit<'_> {
    fn apply(&self, config: &Value, retired: &[String], retire_at: u64) -> Result<()> {
        let mut out = serde_json::to_string_pretty(config)?;
        out.push('\n');
        files::write_file(self.agent_config, out.as_bytes(), SECRET_MODE, true)?;
        for old in retired {
            println!("retiring {old} at {retire_at} (in {} s)", self.overlap_secs);
        }
        signal_or_say(self.pid, self.pid_file, self.agent_config)
    }
}

fn rotate_epoch(args: &RotateEpochArgs) -> Result<Outcome> {
    let mut config = read_config(&args.agent_config)?;
    let id = match &args.id {
        Some(id) => id.clone(),
        None => format!("ep-{}", crate::today_yyyymmdd()?),
    };
    let retire_at = now_secs()?.saturating_add(args.overlap_secs);
    let file = args.epochs_dir.join(format!("{id}.epoch.json"));
    let retired = add_epoch(&mut config, &id, &file, retire_at)
        .with_context(|| format!("{}", args.agent_config.display()))?;
    write_new_epoch(&file, &id, args.file_size, args.intervals, false)?;
    println!("new epoch {id}: {}", file.display());
    Commit {
        agent_config: &args.agent_config,
        overlap_secs: args.overlap_secs,
        pid: args.pid,
        pid_file: args.pid_file.as_deref(),
    }
    .apply(&config, &retired, retire_at)?;
    println!(
        "next: within {} s, issue every client a new entropy file from the new epoch:\n  \
         autoid entropy issue --epoch {} --subject <subject> --out <subject>.entropy",
        args.overlap_secs,
        file.display()
    );
    println!("proofs from the old epochs' files are refused from {retire_at} on");
    Ok(Outcome::Success)
}

/// Adds `file` (epoch `id`) to `epoch_files` and sets `not_after` on the epochs that have none
/// (a plain path becomes `{"file": path, "not_after": retire_at}`); returns what it retired (the
/// epoch ids it could read, else the file names). Refuses a file already listed, and an epoch id
/// a listed file already has.
fn add_epoch(config: &mut Value, id: &str, file: &Path, retire_at: u64) -> Result<Vec<String>> {
    let epochs = list(config, "epoch_files")?;
    let mut retired = Vec::new();
    for (i, entry) in epochs.iter_mut().enumerate() {
        let (path, not_after) = match entry {
            Value::String(path) => (PathBuf::from(&*path), None),
            Value::Object(o) => {
                let Some(path) = o.get("file").and_then(Value::as_str) else {
                    bail!("epoch_files[{i}].file: missing or not a string");
                };
                (
                    PathBuf::from(path),
                    o.get("not_after").filter(|v| !v.is_null()).cloned(),
                )
            }
            _ => bail!("epoch_files[{i}]: not a file name or an object"),
        };
        if path == file {
            bail!(
                "epoch_files[{i}]: already lists {}; pick another --id",
                file.display()
            );
        }
        let existing = load_epoch(&path).ok();
        if let Some(e) = &existing
            && e.id() == id
        {
            bail!(
                "epoch_files[{i}]: {} is already epoch {id:?}; pick another --id",
                path.display()
            );
        }
        if not_after.is_none() {
            retired
                .push(existing.map_or_else(|| path.display().to_string(), |e| e.id().to_owned()));
            *entry = json!({ "file": path, "not_after": retire_at });
        }
    }
    epochs.push(json!(file));
    Ok(retired)
}

/// SIGHUPs the agent named by `--pid`/`--pid-file`, or says to.
fn signal_or_say(pid: Option<u32>, pid_file: Option<&Path>, config: &Path) -> Result<()> {
    if let Some(pid) = signal_target(pid, pid_file)? {
        hangup(pid)?;
        println!("sent SIGHUP to the agent (pid {pid})");
    } else {
        println!(
            "now send the agent SIGHUP (kill -HUP <pid>) so it loads {}",
            config.display()
        );
    }
    Ok(())
}

fn rotate_key(args: &RotateKeyArgs) -> Result<Outcome> {
    let mut config = read_config(&args.agent_config)?;
    let kid = match &args.kid {
        Some(kid) => kid.clone(),
        None => default_kid()?,
    };
    let retire_at = now_secs()?.saturating_add(args.overlap_secs);
    let retired = add_key(&mut config, &kid, &args.keys_dir, retire_at)
        .with_context(|| format!("{}", args.agent_config.display()))?;
    let (private_path, public_path) = generate_files(&args.keys_dir, &kid, args.bits, false)?;
    println!("new key {kid}: {}", private_path.display());
    println!("give clients: {}", public_path.display());
    Commit {
        agent_config: &args.agent_config,
        overlap_secs: args.overlap_secs,
        pid: args.pid,
        pid_file: args.pid_file.as_deref(),
    }
    .apply(&config, &retired, retire_at)?;
    Ok(Outcome::Success)
}

/// Adds `kid` to `session_keys` and sets `not_after` on the keys that have none; returns their
/// ids. Refuses a key id the file already has.
fn add_key(config: &mut Value, kid: &str, dir: &Path, retire_at: u64) -> Result<Vec<String>> {
    let keys = list(config, "session_keys")?;
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

fn signal_target(pid: Option<u32>, pid_file: Option<&Path>) -> Result<Option<u32>> {
    if let Some(pid) = pid {
        return Ok(Some(pid));
    }
    let Some(file) = pid_file else {
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

    #[test]
    fn adds_the_epoch_and_retires_only_the_epochs_without_a_date() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("ep-1.epoch.json");
        std::fs::write(
            &old,
            autoid_protocol::entropy::Epoch::new("ep-1", [1; 32], 8192, 64)
                .unwrap()
                .to_json(),
        )
        .unwrap();
        let mut c = json!({
            "ldap": {},
            "epoch_files": [
                { "file": "e/ep-0.epoch.json", "not_after": 5 },
                old,
                { "file": "e/unreadable.epoch.json" }
            ]
        });
        let new = Path::new("e/ep-2.epoch.json");
        let retired = add_epoch(&mut c, "ep-2", new, 1000).unwrap();
        assert_eq!(retired, ["ep-1", "e/unreadable.epoch.json"]);
        let files = &c["epoch_files"];
        assert_eq!(
            files[0],
            json!({ "file": "e/ep-0.epoch.json", "not_after": 5 })
        );
        assert_eq!(files[1], json!({ "file": old, "not_after": 1000 }));
        assert_eq!(
            files[2],
            json!({ "file": "e/unreadable.epoch.json", "not_after": 1000 })
        );
        assert_eq!(files[3], "e/ep-2.epoch.json");
        assert_eq!(c["ldap"], json!({}));

        // Without epoch_files, the list is created.
        let mut c = json!({ "ldap": {} });
        assert!(add_epoch(&mut c, "ep-2", new, 1).unwrap().is_empty());
        assert_eq!(c["epoch_files"], json!(["e/ep-2.epoch.json"]));
    }

    #[test]
    fn refuses_an_epoch_id_or_file_the_agent_has() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("first.json");
        std::fs::write(
            &old,
            autoid_protocol::entropy::Epoch::new("ep-1", [1; 32], 8192, 64)
                .unwrap()
                .to_json(),
        )
        .unwrap();
        let mut c = json!({ "epoch_files": [ old ] });
        let e = add_epoch(&mut c, "ep-1", Path::new("e/ep-1.epoch.json"), 1).unwrap_err();
        assert!(
            e.to_string().contains("epoch_files[0]") && e.to_string().contains("ep-1"),
            "{e}"
        );
        let mut c = json!({ "epoch_files": [ "e/ep-2.epoch.json" ] });
        let e = add_epoch(&mut c, "ep-2", Path::new("e/ep-2.epoch.json"), 1).unwrap_err();
        assert!(e.to_string().contains("already lists"), "{e}");
        let mut c = json!({ "epoch_files": [ 7 ] });
        assert!(add_epoch(&mut c, "ep-2", Path::new("x"), 1).is_err());
    }

    #[test]
    fn rotate_epoch_writes_the_epoch_and_the_config_without_signalling() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.json");
        std::fs::write(&config, r#"{"ldap": {}, "epoch_files": ["old.json"]}"#).unwrap();
        let args = RotateEpochArgs {
            agent_config: config.clone(),
            epochs_dir: dir.path().to_owned(),
            id: Some("ep-9".into()),
            file_size: 8192,
            intervals: 32,
            overlap_secs: 60,
            pid: None,
            pid_file: None,
        };
        rotate_epoch(&args).unwrap();
        let file = dir.path().join("ep-9.epoch.json");
        let e = load_epoch(&file).unwrap();
        assert_eq!(
            (e.id(), e.file_size(), e.interval_count()),
            ("ep-9", 8192, 32)
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let c: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        assert_eq!(c["epoch_files"][0]["file"], "old.json");
        assert!(c["epoch_files"][0]["not_after"].as_u64().unwrap() >= now_secs().unwrap());
        assert_eq!(c["epoch_files"][1], json!(file));
        // A second run with the same id finds the file listed: nothing is overwritten.
        assert!(rotate_epoch(&args).is_err());
        assert_eq!(load_epoch(&file).unwrap().to_json(), e.to_json());
    }
}
