//! Short-lived AWS credentials through the gateway, for the real `aws` CLI (PyPI `awscli`, in
//! .venv: `make deps-aws`): a profile whose `credential_process` runs `autoid aws
//! credential-process`, which proves alice's entropy to the `aws` API through real Envoy; the
//! filter checks the proof and the payments group, the agent assumes the role in moto (IAM
//! authentication on: a wrong key or signature is 403) with the subject as the session name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Options, Stack, bin, repo};
use serde_json::Value;

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        Stack::start(&Options {
            aws_role: true,
            ..Options::default()
        })
    })
}

/// The aws CLI: $AUTOID_AWS_VENV/bin/aws, else .venv/bin/aws (`make deps-aws`).
fn aws_cli() -> PathBuf {
    let venv = std::env::var_os("AUTOID_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let aws = venv.join("bin/aws");
    assert!(
        aws.is_file(),
        "{} is missing: make deps-aws (or: .venv/bin/pip install awscli)",
        aws.display()
    );
    aws
}

/// `autoid aws credential-process …` for `subject` as a command line.
fn credential_process(s: &Stack, subject: &str) -> Vec<String> {
    vec![
        bin("autoid").unwrap().display().to_string(),
        "aws".into(),
        "credential-process".into(),
        "--public-key".into(),
        s.path("keys/gw-1.pub.pem").display().to_string(),
        "--entropy".into(),
        s.path(&format!("{subject}.entropy")).display().to_string(),
        "--subject".into(),
        subject.into(),
        format!("http://127.0.0.1:{}/aws/", s.http.port()),
    ]
}

/// Runs the aws CLI with a config file whose profile `autoid` gets its credentials from
/// `autoid aws credential-process` for `subject`, and no other credentials in sight.
fn aws_as(s: &Stack, subject: &str, args: &[&str]) -> Output {
    let config = s.path(&format!("aws-config-{subject}"));
    std::fs::write(
        &config,
        format!(
            "[profile autoid]\nregion = us-east-1\ncredential_process = {}\n",
            credential_process(s, subject).join(" ")
        ),
    )
    .unwrap();
    let moto = &s.moto.as_ref().unwrap().endpoint;
    Command::new(aws_cli())
        .args(["--profile", "autoid", "--endpoint-url", moto])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", s.path("no-such-credentials"))
        .output()
        .expect("the aws CLI")
}

#[test]
fn the_aws_cli_gets_the_role_for_the_proven_subject_through_credential_process() {
    let s = stack();
    let out = aws_as(s, "alice", &["sts", "get-caller-identity"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        identity["Arn"], "arn:aws:sts::123456789012:assumed-role/autoid-demo/alice",
        "{identity}"
    );
}

/// `python -m autoid_client aws-credential-process` with [`credential_process`]'s flags.
fn python_credential_process(s: &Stack, python: &std::path::Path, subject: &str) -> Output {
    let args = credential_process(s, subject);
    Command::new(python)
        .args(["-m", "autoid_client", "aws-credential-process"])
        .args(&args[3..])
        .output()
        .unwrap()
}

#[test]
fn the_python_client_serves_credential_process_the_same_way() {
    let s = stack();
    let python = repo().join(".venv-python/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: make deps-python",
        python.display()
    );
    let out = python_credential_process(s, &python, "alice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["Version"], 1);
    assert!(doc["SessionToken"].as_str().is_some_and(|t| !t.is_empty()));
    // dave: exit 1, the refusal on stderr, nothing on stdout.
    let out = python_credential_process(s, &python, "dave");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 403 forbidden"));
}

#[test]
fn the_credentials_are_short_lived_uncached_and_never_logged() {
    let s = stack();
    let args = credential_process(s, "alice");
    let out = Command::new(&args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["Version"], 1);
    let secret = doc["SecretAccessKey"].as_str().unwrap();
    assert!(
        doc["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
        "{doc}"
    );
    assert!(doc["Expiration"].as_str().is_some_and(|e| e.ends_with('Z')));
    // The same request by hand: no-store, and the proof never reached the agent.
    let url = format!("http://127.0.0.1:{}/aws/", s.http.port());
    let r = common::request(
        s.http,
        "GET",
        "/aws/",
        &[(common::PROOF_HEADER, &s.prove("alice", "GET", &url))],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Neither Envoy's log nor the agent's holds a secret it handed out.
    let agent_log = std::fs::read_to_string(s.path("agent.log")).unwrap();
    let envoy_log = s.envoy_log();
    let second = r.json()["SecretAccessKey"].as_str().unwrap().to_owned();
    for (name, log) in [("agent", &agent_log), ("envoy", &envoy_log)] {
        assert!(
            !log.contains(secret) && !log.contains(&second),
            "a secret in the {name} log"
        );
    }
    assert!(
        agent_log.contains("aws_credentials"),
        "the agent logs the outcome"
    );
}

#[test]
fn a_subject_outside_the_group_gets_nothing_and_the_cli_reports_a_credential_error() {
    let s = stack();
    let args = credential_process(s, "dave");
    let out = Command::new(&args[0]).args(&args[1..]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for the CLI to read"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 403 forbidden"), "{stderr}");

    let out = aws_as(s, "dave", &["sts", "get-caller-identity"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("credential") || stderr.contains("Credential"),
        "{stderr}"
    );
}

#[test]
fn without_the_gateway_there_is_no_way_in() {
    let s = stack();
    // No proof: 401 from the filter; the agent never assumes the role.
    let r = common::request(s.http, "GET", "/aws/", &[]).unwrap();
    assert_eq!(r.status, 401);
    // moto's IAM refuses a key it never issued, as AWS would.
    let moto = &s.moto.as_ref().unwrap().endpoint;
    let out = Command::new(aws_cli())
        .args(["--endpoint-url", moto, "sts", "get-caller-identity"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE12")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-key")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", s.path("no-such-config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidClientTokenId"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Secrets Manager `GetSecretValue` through the gateway's `secrets` API, with a proof for
/// `subject` and these extra client headers.
fn get_secret_through_gateway(
    s: &Stack,
    subject: &str,
    extra: &[(&str, &str)],
) -> common::Response {
    use common::client::{Send, Wire, send};
    let url = format!("http://127.0.0.1:{}/secrets/", s.http.port());
    let proof = s.prove(subject, "POST", &url);
    let body = format!(
        r#"{{"SecretId":"{}"}}"#,
        autoid_testkit::moto::IAM_SECRET_ID
    );
    let mut req = Send::new("POST", "/secrets/")
        .header(common::PROOF_HEADER, &proof)
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.as_bytes(), body.len());
    for (k, v) in extra {
        req = req.header(k, v);
    }
    send(s.http, Wire::Http1Length, &req).unwrap()
}

#[test]
fn the_gateway_signs_calls_to_an_aws_service_with_the_roles_short_lived_credentials() {
    let s = stack();
    let r = get_secret_through_gateway(s, "alice", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["SecretString"],
        autoid_testkit::moto::IAM_SECRET_VALUE
    );
    // A client's own signature and token are replaced by the gateway's, never passed on.
    let forged = get_secret_through_gateway(
        s,
        "alice",
        &[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAFORGED/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00",
            ),
            ("x-amz-security-token", "forged"),
            ("x-amz-date", "20200101T000000Z"),
        ],
    );
    assert_eq!(forged.status, 200, "{}", forged.text());
    // No proof: the filter's 401, nothing signed.
    let none = common::request(s.http, "POST", "/secrets/", &[]).unwrap();
    assert_eq!(none.status, 401);
    // dave is not in payments: 403.
    assert_eq!(get_secret_through_gateway(s, "dave", &[]).status, 403);
    // Envoy's configuration holds no AWS key: the bootstrap names the credentials file only.
    let bootstrap = std::fs::read_to_string(s.path("envoy.json")).unwrap();
    let file = std::fs::read_to_string(s.path("aws-signing/secrets/credentials")).unwrap();
    let key_id = file
        .lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .unwrap();
    assert!(
        key_id.starts_with("ASIA"),
        "short-lived STS credentials: {key_id}"
    );
    let secret = file
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .unwrap();
    assert!(bootstrap.contains("aws-signing/secrets/credentials"));
    // Nor does the running Envoy's config_dump, which its admin interface serves.
    let dump = common::unix_request(&s.admin, "GET", "/config_dump?include_eds").unwrap();
    assert_eq!(dump.status, 200);
    let dump = String::from_utf8_lossy(&dump.body).into_owned();
    assert!(
        dump.contains("aws_request_signing"),
        "the dump has the signer"
    );
    let agent_secret = &s.iam.as_ref().unwrap().secret_access_key;
    for value in [key_id, secret, agent_secret.as_str()] {
        assert!(!bootstrap.contains(value), "a key in the bootstrap");
        assert!(!dump.contains(value), "a key in config_dump");
    }
}

#[test]
fn moto_refuses_the_same_call_without_the_gateways_signature() {
    let s = stack();
    let moto = &s.moto.as_ref().unwrap().endpoint;
    let body = format!(
        r#"{{"SecretId":"{}"}}"#,
        autoid_testkit::moto::IAM_SECRET_ID
    );
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", moto])
        .args(["-H", "x-amz-target: secretsmanager.GetSecretValue"])
        .args(["-H", "content-type: application/x-amz-json-1.1"])
        .args(["-H", "authorization: AWS4-HMAC-SHA256 Credential=AKIAFORGED/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00"])
        .args(["-d", &body])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status, "403", "moto accepted a forged signature");
}

#[test]
fn an_sdk_refreshes_expiring_credentials_through_the_process_each_time_with_a_fresh_proof() {
    // botocore (boto3, the Python SDK, from moto's venv) refreshes process credentials that have
    // less than 15 minutes left: with the role's 900 s, every use runs the process again, and each
    // run must get new credentials (a fresh proof: no replay).
    let s = stack();
    let counter = s.path("process-runs");
    let _ = std::fs::remove_file(&counter);
    let command = format!(
        "sh -c 'echo run >> {}; exec \"$0\" \"$@\"' {}",
        counter.display(),
        credential_process(s, "alice").join(" ")
    );
    let config = s.path("aws-config-sdk");
    std::fs::write(
        &config,
        format!("[profile autoid]\nregion = us-east-1\ncredential_process = {command}\n"),
    )
    .unwrap();
    let script = r#"
import sys, boto3
sts = boto3.Session(profile_name="autoid").client("sts", endpoint_url=sys.argv[1])
arns = [sts.get_caller_identity()["Arn"] for _ in range(3)]
print("\n".join(arns))
"#;
    let moto = &s.moto.as_ref().unwrap().endpoint;
    let python = autoid_testkit::moto::venv_bin().unwrap().join("python");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(moto)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", s.path("no-such-credentials"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arns: Vec<&str> = stdout.lines().collect();
    assert_eq!(arns.len(), 3);
    assert!(
        arns.iter()
            .all(|a| *a == "arn:aws:sts::123456789012:assumed-role/autoid-demo/alice")
    );
    let runs = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert!(
        runs >= 3,
        "the SDK refreshed through the process: {runs} runs for 3 calls"
    );
}
