//! moto's server mode (PyPI `moto[server]`, installed by `make deps-moto` into .venv-moto) as a
//! stand-in for AWS Secrets Manager: started on a free 127.0.0.1 port, secrets created and
//! rotated through the real API (boto3, which comes with moto), stopped by a Drop guard.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Proc, eventually, free_port, repo, request};

pub const MOTO_INSTALL: &str = "make deps-moto   (or: python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]')";
/// The fake keys moto accepts (it does not check signatures) and the region.
pub const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing-e2e"),
    ("AWS_SECRET_ACCESS_KEY", "testing-e2e-secret"),
    ("AWS_REGION", "us-east-1"),
];

/// The venv's bin directory: $AUTOID_MOTO_VENV/bin, else .venv-moto/bin. Missing is a failure.
pub fn venv_bin() -> PathBuf {
    let venv = std::env::var_os("AUTOID_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-moto"));
    let bin = venv.join("bin");
    if !bin.join("moto_server").is_file() || !bin.join("python").exists() {
        panic!(
            "moto is not installed in {}; the credential tests need it:\n    {MOTO_INSTALL}",
            venv.display()
        );
    }
    bin
}

/// A running moto server.
pub struct Moto {
    pub proc: Proc,
    pub endpoint: String,
}

impl Moto {
    pub fn start(log: &std::path::Path) -> Moto {
        let bin = venv_bin();
        let port = free_port();
        let mut proc = Proc::spawn(
            "moto",
            Command::new(bin.join("moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            log,
        );
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        eventually("moto answering", Duration::from_secs(30), || {
            if !proc.is_running() {
                panic!("moto exited:\n{}", proc.log_text());
            }
            request(addr, "GET", "/moto-api/", &[]).map(|_| ())
        });
        Moto {
            proc,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs boto3 against this server: `op` is "create" or "put", then the secret id and value.
    fn boto(&self, op: &str, secret_id: &str, value: &str) {
        let script = r#"
import sys, boto3
op, endpoint, secret_id, value = sys.argv[1:5]
c = boto3.client("secretsmanager", endpoint_url=endpoint)
if op == "create":
    c.create_secret(Name=secret_id, SecretString=value)
else:
    c.put_secret_value(SecretId=secret_id, SecretString=value)
"#;
        let mut cmd = Command::new(venv_bin().join("python"));
        cmd.arg("-c")
            .arg(script)
            .args([op, &self.endpoint, secret_id, value])
            .env("AWS_DEFAULT_REGION", "us-east-1");
        for (k, v) in AWS_ENV {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "boto3 {op} {secret_id} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a secret (its first version is AWSCURRENT).
    pub fn create_secret(&self, secret_id: &str, value: &str) {
        self.boto("create", secret_id, value);
    }

    /// Puts a new version, which becomes AWSCURRENT.
    pub fn put_secret_value(&self, secret_id: &str, value: &str) {
        self.boto("put", secret_id, value);
    }

    pub fn stop(&mut self) {
        self.proc.stop();
    }
}
