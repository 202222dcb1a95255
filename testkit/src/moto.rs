//! moto's server mode (PyPI `moto[server]`, installed by `make deps-moto` into .venv-moto) as a
//! stand-in for AWS Secrets Manager: started on a free 127.0.0.1 port, secrets created and
//! rotated through the real API (boto3, which comes with moto), stopped when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::request;
use crate::paths::repo;
use crate::process::{Proc, command, free_port, run};
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

/// What [`Moto::start_iam`] created: the agent's access key and the role it may assume.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Iam {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub role_arn: String,
}

/// The secret [`Moto::start_iam`] creates, which the role `autoid-demo` may read.
pub const IAM_SECRET_ID: &str = "autoid/e2e/greeting";
pub const IAM_SECRET_VALUE: &str = "hello from secrets manager";

/// The IAM requests the seed makes before authentication starts.
const IAM_SEED_ACTIONS: u32 = 6;

/// Creates the agent's user and key (allowed `sts:AssumeRole` and `sts:TagSession`), the role
/// `autoid-demo`, which trusts that user and may read secrets, and the secret [`IAM_SECRET_ID`]
/// ([`IAM_SECRET_VALUE`]); prints the key and the role's ARN as JSON.
const IAM_SEED: &str = r#"
import json, sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="seed", aws_secret_access_key="seed")
iam.create_user(UserName="autoid-agent")
key = iam.create_access_key(UserName="autoid-agent")["AccessKey"]
iam.put_user_policy(UserName="autoid-agent", PolicyName="assume-autoid-roles", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}]}))
role = iam.create_role(RoleName="autoid-demo", AssumeRolePolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                   "Principal": {"AWS": "arn:aws:iam::123456789012:user/autoid-agent"}}]}))["Role"]
iam.put_role_policy(RoleName="autoid-demo", PolicyName="read-secrets", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}]}))
boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name="us-east-1",
             aws_access_key_id="seed", aws_secret_access_key="seed").create_secret(
    Name="autoid/e2e/greeting", SecretString="hello from secrets manager")
print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
                  "role_arn": role["Arn"]}))
"#;

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
        Self::start_with(log, None)
    }

    /// Starts moto with its IAM authentication on (every request signed by a key moto's IAM
    /// knows, with the permissions its policies give), seeded with a user for the agent allowed
    /// to assume one role: a wrong key or signature is refused (403) as AWS would.
    pub fn start_iam(log: &Path) -> Result<(Moto, Iam)> {
        let moto = Self::start_with(log, Some(IAM_SEED_ACTIONS))?;
        let out = run(command(venv_bin()?.join("python"))
            .arg("-c")
            .arg(IAM_SEED)
            .arg(&moto.endpoint))?;
        let iam: Iam = serde_json::from_str(out.trim()).map_err(|e| Error::Failed {
            what: "seeding moto's IAM".into(),
            status: std::process::ExitStatus::default(),
            output: format!("{e}: {out}"),
        })?;
        Ok((moto, iam))
    }

    /// Starts moto with its IAM authentication on after the first `unauthenticated` requests
    /// (a seed's, such as `scripts/moto-seed.py`'s), nothing seeded.
    pub fn start_authenticating_after(log: &Path, unauthenticated: u32) -> Result<Moto> {
        Self::start_with(log, Some(unauthenticated))
    }

    fn start_with(log: &Path, unauthenticated_actions: Option<u32>) -> Result<Moto> {
        let bin = venv_bin()?;
        let port = free_port()?;
        let mut cmd = command(bin.join("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(n) = unauthenticated_actions {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let mut proc = Proc::spawn("moto", &mut cmd, log)?;
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
        run(command(venv_bin()?.join("python"))
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
