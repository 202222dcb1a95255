//! moto's server mode (PyPI `moto[server]`, installed by `make deps-moto` into .venv-moto) as a
//! stand-in for AWS Secrets Manager: started on a free 127.0.0.1 port, secrets created and
//! rotated through the real API (boto3, which comes with moto), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http::request;
use crate::paths::repo;
use crate::process::{Proc, free_port, run};
use crate::{Error, Result};

pub const MOTO_INSTALL: &str = "make deps-moto   (or: python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]')";
/// The fake keys moto accepts (it does not check signatures) and the region.
pub const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing-e2e"),
    ("AWS_SECRET_ACCESS_KEY", "testing-e2e-secret"),
    ("AWS_REGION", "us-east-1"),
];
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The venv's bin directory: $AUTOID_MOTO_VENV/bin, else .venv-moto/bin.
pub fn venv_bin() -> Result<PathBuf> {
    let venv = std::env::var_os("AUTOID_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-moto"));
    let bin = venv.join("bin");
    if !bin.join("moto_server").is_file() || !bin.join("python").exists() {
        return Err(Error::Missing {
            what: "moto".into(),
            path: venv,
            hint: MOTO_INSTALL.into(),
        });
    }
    Ok(bin)
}

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    pub proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a free port, its output in `log`, and waits until it answers.
    pub fn start(log: &Path) -> Result<Moto> {
        let bin = venv_bin()?;
        let port = free_port()?;
        let mut proc = Proc::spawn(
            "moto",
            Command::new(bin.join("moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            log,
        )?;
        let addr = ([127, 0, 0, 1], port).into();
        proc.wait_ready(READY_TIMEOUT, || {
            request(addr, "GET", "/moto-api/", &[]).ok()
        })?;
        Ok(Moto {
            proc,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Runs boto3 against this server: `op` is "create" or "put", then the secret id and value.
    fn boto(&self, op: &str, secret_id: &str, value: &str) -> Result<()> {
        let script = r#"
import sys, boto3
op, endpoint, secret_id, value = sys.argv[1:5]
c = boto3.client("secretsmanager", endpoint_url=endpoint)
if op == "create":
    c.create_secret(Name=secret_id, SecretString=value)
else:
    c.put_secret_value(SecretId=secret_id, SecretString=value)
"#;
        run(Command::new(venv_bin()?.join("python"))
            .arg("-c")
            .arg(script)
            .args([op, &self.endpoint, secret_id, value])
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .envs(AWS_ENV))
        .map(drop)
    }

    /// Creates a secret (its first version is AWSCURRENT).
    pub fn create_secret(&self, secret_id: &str, value: &str) -> Result<()> {
        self.boto("create", secret_id, value)
    }

    /// Puts a new version, which becomes AWSCURRENT.
    pub fn put_secret_value(&self, secret_id: &str, value: &str) -> Result<()> {
        self.boto("put", secret_id, value)
    }

    pub fn stop(&mut self) {
        self.proc.stop();
    }
}
