//! The built `autoid-agent` binary as a child process, waited on until it answers, or until it
//! logs that it listens.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

use crate::http::unix_request;
use crate::process::{Proc, command, wait_for};
use crate::{Error, Result};

/// The longest an agent may take to answer `/readyz` (it connects to the directory first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `bin --config <config>` with `env` (and nothing else of this process's environment but
/// [`crate::process::INHERITED_ENV`]), its output in `log`, and waits until `ready` says it
/// answers; fails with its log if it exits first.
pub fn start(
    bin: &Path,
    config: &Path,
    env: &[(&str, &str)],
    log: &Path,
    ready: impl FnMut() -> bool,
) -> Result<Proc> {
    let mut agent = Proc::spawn(
        "the agent",
        command(bin)
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied()),
        log,
    )?;
    let mut ready = ready;
    agent.wait_ready(READY_TIMEOUT, || ready().then_some(()))?;
    Ok(agent)
}

/// Whether the agent on unix socket `socket` answers `/readyz` with 200.
pub fn ready_on_socket(socket: &Path) -> bool {
    unix_request(socket, "GET", "/readyz").is_ok_and(|r| r.status == 200)
}

/// An agent whose JSON log (`--log-format json`, on stderr) the caller reads line by line.
#[derive(Debug)]
pub struct Logged {
    pub proc: Proc,
    /// Its log lines after the listening line, as they come.
    pub lines: Receiver<String>,
    /// Its log lines up to and with the listening line.
    pub seen: Vec<String>,
    /// Where it listens, from that line: `unix:<path>`, `https://ip:port` or `http://ip:port`.
    pub addr: String,
}

/// Starts `cmd` (the agent with `--log-format json`) with its stderr read here: each line is sent
/// on [`Logged::lines`] and appended to `log`. Waits for its "autoid-agent listening" line; fails
/// with the lines so far if the agent exits or says nothing of the kind within
/// [`READY_TIMEOUT`].
pub fn start_logged(cmd: &mut Command, log: &Path) -> Result<Logged> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io(format!("open {}", log.display())))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io(format!("start {:?}", cmd.get_program())))?;
    let stderr = child.stderr.take();
    let proc = Proc::watched("the agent", child, log);
    let (tx, lines) = mpsc::channel::<String>();
    if let Some(stderr) = stderr {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    let addr = wait_for("the agent's listening line", READY_TIMEOUT, || {
        let line = match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Unexpected {
                    what: "the agent".into(),
                    detail: format!("its log ended before it listened:\n{}", seen.join("\n")),
                });
            }
        };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        seen.push(line);
        Ok((v["message"] == "autoid-agent listening")
            .then(|| v["addr"].as_str().map(str::to_owned))
            .flatten())
    })?;
    Ok(Logged {
        proc,
        lines,
        seen,
        addr,
    })
}
