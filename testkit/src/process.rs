//! A child process stopped when dropped, commands run to completion, free ports, waits for a
//! condition with a deadline, and commands that inherit no secret from this process.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The variables of this process's environment a server started here inherits: where programs
/// and home are, the locale and time zone. Nothing else passes (a CI job's or a developer's AWS
/// keys, tokens, the tests' own variables): each server gets its own secrets explicitly, and only
/// the agent has any.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// `Command::new(program)` with a cleared environment but for [`INHERITED_ENV`]: every server the
/// kit starts is built with it, and adds what it needs (`.env`) after.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// How often a wait looks at its condition again.
const POLL: Duration = Duration::from_millis(50);

/// A free port on 127.0.0.1 (bound, then released), for a server that must keep its port across
/// restarts or that cannot report the one it got.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind 127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("a bound port's address"))?;
    Ok(addr.port())
}

/// Polls `f` until it gives `Some`, or fails with `what` after `timeout`; an error from `f` ends
/// the wait at once (a server that exited will not become ready).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_for`] for tests: polls `f` until it gives `Some`; panics with `what` after `timeout`.
#[allow(clippy::panic, reason = "a test's wait: the panic is the test failing")]
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for(what, timeout, || Ok(f())).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` to completion: its stdout, or its output in the error when it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(Error::io(&what))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(Error::Failed {
            what,
            status: out.status,
            output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(stdout)
}

/// Removes `dir` a few seconds after this process exits (the files of a server shared in a static,
/// which is never dropped).
pub fn remove_after_exit(dir: &Path) {
    after_exit("sleep 3; rm -rf \"$2\"", dir.as_os_str());
}

/// Runs bash `script` with `$2` = `arg` in a session of its own once this process (`$1`) has
/// exited; the watcher, to stop it early.
fn after_exit(script: &str, arg: &OsStr) -> Option<Child> {
    command("setsid")
        .arg("bash")
        .arg("-c")
        .arg(format!(
            "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; {script}"
        ))
        .arg("autoid-watch")
        .arg(std::process::id().to_string())
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A child process: SIGTERM, then SIGKILL, when dropped. A watcher (`setsid bash`) also stops it
/// when this process exits without dropping it (a server shared in a static, an abort), the way
/// `run_ldap.sh` does with `LDAP_WATCH_PID`.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    pub child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    watcher: Option<Child>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to `log`; build it with
    /// [`command`], so that it inherits no secret.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Proc> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(Error::io(format!("open {}", log.display())))?;
        let copy = file
            .try_clone()
            .map_err(Error::io(format!("open {}", log.display())))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(copy)
            .stderr(file)
            .spawn()
            .map_err(Error::io(format!("start {name} ({:?})", cmd.get_program())))?;
        Ok(Proc::watched(name, child, log))
    }

    /// Takes charge of a child started elsewhere (one whose output the caller reads).
    pub fn watched(name: &str, child: Child, log: &Path) -> Proc {
        let watcher = after_exit(
            "kill -TERM \"$2\" 2>/dev/null; sleep 2; kill -KILL \"$2\" 2>/dev/null",
            child.id().to_string().as_ref(),
        );
        Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            watcher,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `probe` until it gives `Some`, for at most `timeout`; fails with this process's log
    /// as soon as it exits.
    pub fn wait_ready<T>(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let what = format!(
            "{} to be ready (its log: {})",
            self.name,
            self.log.display()
        );
        wait_for(&what, timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Exited {
                    what: self.name.clone(),
                    status,
                    log: self.log_text(),
                });
            }
            Ok(probe())
        })
    }

    /// SIGTERM, up to `grace` for it to exit, then SIGKILL; how it exited.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.is_running() {
            let _ = command("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + grace;
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            let _ = self.child.kill();
        }
        let status = self.child.wait().ok();
        if let Some(w) = &mut self.watcher {
            let _ = w.kill();
            let _ = w.wait();
        }
        status
    }

    /// SIGTERM, up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }

    /// Its output so far (empty when there is none).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
