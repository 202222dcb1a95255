//! Debian's `redis-server` (the fleet's replay claims): started on a free 127.0.0.1 port without
//! persistence, stopped when dropped. [`Redis::start_on`] starts one on a given port, to bring a
//! killed Redis back where its clients expect it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{Proc, command, free_port};
use crate::{Error, Result};

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
pub const REDIS_INSTALL: &str = "apt-get install -y redis-server   (as root; or `make deps-redis`)";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server.
#[derive(Debug)]
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
}

impl Redis {
    /// Starts redis-server on a free port, its output in `log`, and waits until it listens.
    pub fn start(log: &Path) -> Result<Redis> {
        Redis::start_on(free_port()?, log)
    }

    /// Starts redis-server on `port` (empty: nothing persisted), and waits until it listens.
    pub fn start_on(port: u16, log: &Path) -> Result<Redis> {
        if !Path::new(REDIS_SERVER).exists() {
            return Err(Error::Missing {
                what: "redis-server".into(),
                path: PathBuf::from(REDIS_SERVER),
                hint: REDIS_INSTALL.into(),
            });
        }
        let mut proc = Proc::spawn(
            "redis-server",
            command(REDIS_SERVER)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ]),
            log,
        )?;
        proc.wait_ready(READY_TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        })?;
        Ok(Redis { proc, port })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
