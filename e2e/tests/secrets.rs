//! Each secret only where it is used. After an e2e stack has served requests (Envoy with the
//! wasm filter, or Envoy with ext_authz and nginx in front of the same agent), no secret the
//! stack holds — the LDAP service and admin passwords, the agent's AWS secret key, every injected
//! credential, the gateway's private key, the epoch secret — is in the environment of Envoy,
//! nginx (master and workers), the demo upstream, moto or slapd, nor in any log the stack wrote;
//! the agent alone has its own. The tests run with secrets in their own environment (a CI job's
//! or a developer's AWS keys): no server inherits them. `make run`'s launcher (scripts/launch.sh)
//! gives each process a clean environment and the agent its secrets from 0600 files; the
//! directory runner prints password files, never a password; and the demo's AWS setup
//! (scripts/moto-seed.py) lends workloads a role that cannot read what the gateway injects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use autoid_testkit::moto::{self, Moto};
use autoid_testkit::nginx::Nginx;
use autoid_testkit::process::run;
use common::front::Front;
use common::{Credentials, Options, PROOF_HEADER, Slapd, Stack, repo, request};
use serde_json::Value;

/// Secrets in the environment these tests run in, as a CI job or a developer's shell has them.
const INHERITED: [(&str, &str); 3] = [
    (
        "AWS_SECRET_ACCESS_KEY",
        "inherited-aws-secret-of-the-runner-5e1d",
    ),
    ("AUTOID_AGENT_BIND_PASSWORD", "inherited-bind-password-a07c"),
    ("GITHUB_TOKEN", "inherited-ci-token-93fb"),
];
/// Set in the copy of a test run with [`INHERITED`] in its environment.
const CHILD: &str = "AUTOID_E2E_SECRETS_INHERITED";

/// Runs test `name` again in a process of its own with [`INHERITED`] in its environment, and
/// asserts it passed; `false` when this already is that process (the caller then runs the test).
fn rerun_with_inherited_secrets(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(INHERITED)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} with secrets in its environment:\n{text}"
    );
    true
}

const SECRET: &str = "autoid/e2e/secrets-payments";
const JSON_SECRET: &str = "autoid/e2e/secrets-keys";
const VALUE: &str = "Bearer injected-from-secrets-manager-4c2e";
const JSON_VALUE: &str = "pk-injected-json-key-d81a";

fn options(ext_authz: bool) -> Options {
    Options {
        credentials: Some(Credentials {
            secret_id: SECRET.into(),
            value: VALUE.into(),
            json_secret_id: JSON_SECRET.into(),
            json_value: format!(r#"{{"api_key":"{JSON_VALUE}","other":"unused-but-secret-6b"}}"#),
            json_key: "api_key".into(),
            refresh_secs: 1,
            stale_secs: 3,
        }),
        ext_authz,
        ..Options::default()
    }
}

/// Every secret the stack holds, each with what it is (not the directory admin's demo password,
/// `admin`, a word every log has: `the_directory_runner_prints_password_files_never_a_password`
/// covers it).
fn secrets(s: &Stack) -> Vec<(String, String)> {
    let mut all = vec![
        (
            "the LDAP service account's password".to_owned(),
            s.slapd.agent_password.clone(),
        ),
        ("an injected credential".to_owned(), VALUE.to_owned()),
        ("an injected JSON key".to_owned(), JSON_VALUE.to_owned()),
        (
            "a Secrets Manager secret".to_owned(),
            "unused-but-secret-6b".to_owned(),
        ),
    ];
    for (k, v) in &s.agent_env {
        if k == "AWS_SECRET_ACCESS_KEY" {
            all.push(("the agent's AWS secret key".into(), v.clone()));
        }
    }
    let pem = std::fs::read_to_string(s.path("keys/gw-1.key.pem")).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        all.push((
            "a line of the gateway's private key".into(),
            line.to_owned(),
        ));
    }
    let epoch: Value =
        serde_json::from_slice(&std::fs::read(s.path("ep-1.epoch.json")).unwrap()).unwrap();
    all.push((
        "the epoch secret".into(),
        epoch["secret"].as_str().unwrap().to_owned(),
    ));
    for (name, value) in INHERITED {
        all.push((format!("the tests' own {name}"), value.to_owned()));
    }
    assert!(all.iter().all(|(_, v)| v.len() >= 6), "{all:?}");
    all
}

fn read_trimmed(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

/// A process's environment (`/proc/<pid>/environ`), NULs as newlines.
fn environ(pid: u32) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/environ: {e}"));
    String::from_utf8_lossy(&bytes).replace('\0', "\n")
}

/// The processes whose parent is `pid` (nginx's workers).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid …: the command may hold spaces and parentheses.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Every log file under `dir`: `*.log` and `*.out` (the servers' stdout and stderr).
fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|x| x == "log" || x == "out") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Fails naming the secret and where it was found.
#[track_caller]
fn assert_holds_none(what: &str, text: &str, secrets: &[(String, String)]) {
    for (name, value) in secrets {
        assert!(!text.contains(value.as_str()), "{what} holds {name}");
    }
}

/// The environments of `pids` (named) and every log under the stack's directory hold no secret;
/// the agent's environment holds its own AWS key and nothing inherited.
fn assert_each_secret_only_where_used(s: &Stack, pids: &[(String, u32)]) {
    let secrets = secrets(s);
    for (name, pid) in pids {
        assert_holds_none(&format!("{name}'s environment"), &environ(*pid), &secrets);
    }
    let agent = environ(s.agent_proc.as_ref().unwrap().pid());
    let (_, key) = s
        .agent_env
        .iter()
        .find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY")
        .unwrap();
    assert!(
        agent.contains(&format!("AWS_SECRET_ACCESS_KEY={key}")),
        "the agent has its own key"
    );
    let inherited: Vec<(String, String)> = INHERITED
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_holds_none("the agent's environment", &agent, &inherited);
    let logs = logs(s.dir.path());
    for must in [
        "envoy.log",
        "agent.log",
        "slapd.log",
        "run_ldap.log",
        "moto.log",
    ] {
        assert!(
            logs.iter().any(|l| l.file_name().unwrap() == must),
            "no {must} among {logs:?}"
        );
    }
    for log in &logs {
        let text = String::from_utf8_lossy(&std::fs::read(log).unwrap()).into_owned();
        assert_holds_none(&log.display().to_string(), &text, &secrets);
    }
}

/// The servers every stack runs, by name and pid (not the agent).
fn servers(s: &Stack) -> Vec<(String, u32)> {
    vec![
        ("Envoy".into(), s.envoy.pid()),
        ("the demo upstream".into(), s.upstream.proc.pid()),
        ("moto".into(), s.moto.as_ref().unwrap().proc.pid()),
        ("slapd".into(), s.slapd.pid),
    ]
}

#[test]
fn behind_the_wasm_filter_no_secret_is_in_another_process_or_any_log() {
    if rerun_with_inherited_secrets(
        "behind_the_wasm_filter_no_secret_is_in_another_process_or_any_log",
    ) {
        return;
    }
    let s = Stack::start(&options(false));
    let r = s.get_as("alice", "/payments/charges", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("authorization"), [VALUE]);
    assert_eq!(r.echoed("x-payments-key"), [JSON_VALUE]);
    let denied = s.get_as("dave", "/payments/charges", &[]);
    assert_eq!(denied.status, 403);
    let basic = request(
        s.http,
        "GET",
        "/local/x",
        &[("authorization", "Basic dGVzdDp3cm9uZw==")],
    )
    .unwrap();
    assert_eq!(basic.status, 401);
    assert_each_secret_only_where_used(&s, &servers(&s));
}

#[test]
fn behind_ext_authz_and_nginx_no_secret_is_in_another_process_or_any_log() {
    if rerun_with_inherited_secrets(
        "behind_ext_authz_and_nginx_no_secret_is_in_another_process_or_any_log",
    ) {
        return;
    }
    let s = Stack::start(&options(true));
    let (nginx, http) = start_nginx(&s);
    let r = s.get_as("alice", "/payments/charges", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("authorization"), [VALUE]);
    let url = format!("http://{http}/payments/charges");
    let proof = s.prove("alice", "GET", &url);
    let r = request(http, "GET", "/payments/charges", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("authorization"), [VALUE]);
    let mut pids = servers(&s);
    let master = nginx.proc.pid();
    let workers = children(master);
    assert!(!workers.is_empty(), "nginx has workers");
    pids.push(("nginx".into(), master));
    pids.extend(
        workers
            .into_iter()
            .map(|w| ("an nginx worker".to_owned(), w)),
    );
    assert_each_secret_only_where_used(&s, &pids);
}

/// nginx rendered from the stack's definitions on free ports, asking the stack's agent (its
/// check on: `Options::ext_authz`); its prefix (and logs) under the stack's directory.
fn start_nginx(s: &Stack) -> (Nginx, SocketAddr) {
    let front = Front::start(s);
    (front.nginx, front.http)
}

/// Runs bash `script` with `args` in the repository, with [`INHERITED`] and a demo key in its
/// environment.
fn bash(script: &str, args: &[&Path]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("test")
        .args(args)
        .current_dir(repo())
        .envs(INHERITED)
        .env("AUTOID_DEMO_REPORTS_KEY", "exported-demo-key-2f9a")
        .output()
        .unwrap()
}

#[test]
fn make_runs_launcher_gives_each_process_a_clean_environment_and_the_agent_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("agent.env"),
        "AGENT_ONLY_SECRET=from-a-0600-file-81c3\n",
    )
    .unwrap();
    let out = bash(
        r#"set -euo pipefail
        . scripts/launch.sh
        start "a server" "$1/server.out" env
        start "the agent" "$1/agent.out" --env-file "$1/agent.env" env
        for pid in "${PIDS[@]}"; do wait "$pid"; done"#,
        &[d],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = std::fs::read_to_string(d.join("server.out")).unwrap();
    let agent = std::fs::read_to_string(d.join("agent.out")).unwrap();
    assert!(server.contains("PATH="), "{server}");
    let mut inherited: Vec<(String, String)> = INHERITED
        .iter()
        .map(|(k, v)| (format!("the runner's {k}"), (*v).to_owned()))
        .collect();
    inherited.push((
        "an exported demo key".into(),
        "exported-demo-key-2f9a".into(),
    ));
    assert_holds_none("a server's environment", &server, &inherited);
    assert!(!server.contains("from-a-0600-file"), "{server}");
    assert_holds_none("the agent's environment", &agent, &inherited);
    assert!(
        agent.contains("AGENT_ONLY_SECRET=from-a-0600-file-81c3"),
        "{agent}"
    );

    // run.sh starts every server through `start`, the agent with its files, exports nothing,
    // and starts the directory with a clean environment.
    let text = std::fs::read_to_string(repo().join("scripts/run.sh")).unwrap();
    let lines: Vec<String> = text
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    for server in [
        "\"$MOTO/moto_server\" -H",
        "\"$BIN/autoid-demo-upstream\" --listen",
        "/usr/bin/redis-server --bind",
        "\"$BIN/autoid-agent\" --config",
        "\"$NGINX\" -p",
        "\"$ENVOY\" -c",
    ] {
        let starts: Vec<&String> = lines.iter().filter(|l| l.contains(server)).collect();
        assert!(!starts.is_empty(), "run.sh never starts {server}");
        for l in starts {
            assert!(
                l.starts_with("start "),
                "run.sh starts {server} without `start`: {l}"
            );
        }
    }
    let agent_line = lines
        .iter()
        .find(|l| l.contains("\"$BIN/autoid-agent\""))
        .unwrap();
    assert!(
        agent_line.contains("--env-file \"$RUN/aws/agent.env\"")
            && agent_line.contains("--env-file \"$RUN/secrets/agent.env\""),
        "{agent_line}"
    );
    for l in &lines {
        assert!(
            !l.starts_with("export ") && l != "set -a" && !l.starts_with(". \"$RUN"),
            "run.sh puts something in its own environment: {l}"
        );
    }
    let ldap = lines
        .iter()
        .find(|l| l.contains("openldap/run_ldap.sh start"))
        .unwrap();
    assert!(ldap.contains("clean_env"), "{ldap}");
}

#[test]
fn the_directory_runner_prints_password_files_never_a_password() {
    let ldap = Slapd::start_temp().unwrap();
    let out = run(Command::new(repo().join("openldap/run_ldap.sh"))
        .arg("env")
        .env("LDAP_STATE_DIR", ldap.state_dir()))
    .unwrap();
    let admin = read_trimmed(&ldap.state_dir().join("admin.password"));
    for (name, password) in [
        ("the service account's", ldap.agent_password.as_str()),
        ("the admin's", admin.as_str()),
    ] {
        assert!(
            !out.contains(&format!("={password}\n")),
            "`run_ldap.sh env` (run.sh's ldap-start.log) prints {name} password:\n{out}"
        );
    }
    assert!(out.contains("LDAP_AGENT_PASSWORD_FILE="), "{out}");
    assert!(out.contains("LDAP_ADMIN_PASSWORD_FILE="), "{out}");
}

/// The aws CLI (`make deps-aws`) with these keys and no other credentials in sight.
fn aws(endpoint: &str, keys: &[(&str, &str)], args: &[&str]) -> Output {
    let cli = std::env::var_os("AUTOID_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"))
        .join("bin/aws");
    assert!(cli.is_file(), "{} is missing: make deps-aws", cli.display());
    Command::new(cli)
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(keys.iter().copied())
        .output()
        .unwrap()
}

/// `KEY=VALUE` lines.
fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_demos_vended_role_cannot_read_what_the_gateway_injects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The demo's own definitions: the role its `aws` API vends (and its `secrets` API signs
    // with), and the secret the gateway injects for payments.
    let api = |name: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(repo().join(format!("gateway-config/apis/{name}.json"))).unwrap(),
        )
        .unwrap()
    };
    let role_arn = api("aws")["aws_role"]["role_arn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(api("secrets")["aws_service"]["role_arn"], role_arn.as_str());
    let injected =
        api("payments")["auth"]["inject"]["authorization"]["aws_secretsmanager"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
    // moto seeded by the demo's own seed, as `make run` does.
    let token = "Bearer demo-payments-token-of-this-test-0b7e";
    std::fs::write(d.join("token"), format!("{token}\n")).unwrap();
    let moto = Moto::start_authenticating_after(&d.join("moto.log"), 10).unwrap();
    run(Command::new(moto::venv_bin().unwrap().join("python"))
        .arg(repo().join("scripts/moto-seed.py"))
        .arg(&moto.endpoint)
        .arg("autoid/demo/payments-upstream")
        .arg(d.join("token"))
        .arg(d.join("aws")))
    .unwrap();
    let agent = env_file(&d.join("aws/agent.env"));
    let agent: Vec<(&str, &str)> = agent
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let get = |keys: &[(&str, &str)], id: &str| {
        aws(
            &moto.endpoint,
            keys,
            &["secretsmanager", "get-secret-value", "--secret-id", id],
        )
    };

    // The agent reads what it injects (by the id the definition gives).
    let read = get(&agent, &injected);
    assert!(
        String::from_utf8_lossy(&read.stdout).contains(token),
        "the agent cannot read {injected}: {}",
        String::from_utf8_lossy(&read.stderr)
    );

    // The role, as the agent assumes it for a workload.
    let assumed = aws(
        &moto.endpoint,
        &agent,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "alice",
        ],
    );
    assert!(
        assumed.status.success(),
        "{}",
        String::from_utf8_lossy(&assumed.stderr)
    );
    let c: Value = serde_json::from_slice(&assumed.stdout).unwrap();
    let c = &c["Credentials"];
    let role = [
        ("AWS_ACCESS_KEY_ID", c["AccessKeyId"].as_str().unwrap()),
        (
            "AWS_SECRET_ACCESS_KEY",
            c["SecretAccessKey"].as_str().unwrap(),
        ),
        ("AWS_SESSION_TOKEN", c["SessionToken"].as_str().unwrap()),
    ];
    // What the demo needs it for: the greeting its `secrets` API reads.
    let greeting = get(&role, "autoid/demo/greeting");
    assert!(
        greeting.status.success(),
        "{}",
        String::from_utf8_lossy(&greeting.stderr)
    );
    // Not what the gateway injects: by the definition's id, by name, by ARN.
    for id in [injected.as_str(), "autoid/demo/payments-upstream"] {
        let refused = get(&role, id);
        let stdout = String::from_utf8_lossy(&refused.stdout);
        assert!(
            !refused.status.success() && !stdout.contains(token),
            "the vended role reads {id}: {stdout}"
        );
    }
    let arn: Value = serde_json::from_slice(&read.stdout).unwrap();
    let refused = get(&role, arn["ARN"].as_str().unwrap());
    assert!(
        !refused.status.success(),
        "the vended role reads it by its full ARN"
    );
}
