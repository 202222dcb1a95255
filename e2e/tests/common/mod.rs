//! The stack under test: slapd, the agent, the echo upstream and Envoy with the autoid filter,
//! each a real process on 127.0.0.1 started by the test kit (autoid-testkit) and stopped when the
//! stack drops, or by the kit's watchers when this test process exits without dropping it (a
//! stack shared in a static, an abort).
// Each test binary uses a part of this module and of the kit's items it re-exports.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod client;
pub mod front;
pub mod hostile;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use autoid_testkit::envoy::{self, Admin, Envoy};
pub use autoid_testkit::eventually;
pub use autoid_testkit::http::{Response, request, unix_request};
use autoid_testkit::moto::{self, Moto};
pub use autoid_testkit::paths::{release_bin as bin, repo};
pub use autoid_testkit::process::Proc;
use autoid_testkit::process::run;
pub use autoid_testkit::slapd::Slapd;
use autoid_testkit::upstream::Upstream;
use autoid_testkit::{agent, free_port};
use serde_json::{Value, json};

pub const TOKEN: &str = "e2e-agent-token-0123456789abcdef";
pub const PAYMENTS_CREDENTIAL: &str = "Bearer upstream-secret-for-payments";
pub const PROOF_HEADER: &str = "x-autoid-proof";

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
    /// How long the filter keeps a session the agent unwrapped (default: the filter's). The
    /// gateway key and the epoch stay with the agent (its `session_keys`, `epoch_files`), as
    /// `make run` deploys: Envoy's configuration has their ids and public parameters only.
    pub agent_session_ttl_secs: Option<u64>,
    /// The longest the filter keeps a subject's stream the agent handed over (default: the
    /// filter's).
    pub agent_max_stream_ttl_secs: Option<u64>,
    /// Payments' `authorization` (and `x-payments-key`, a JSON key of a second secret) come from
    /// AWS Secrets Manager served by moto, resolved by the agent.
    pub credentials: Option<Credentials>,
    pub agent_transport: AgentTransport,
    /// Fleet replay: the agent claims nonces in this Redis (`replay.redis_url`) and the filter
    /// runs with `replay.scope: "fleet"`.
    pub fleet_redis: Option<String>,
    /// moto with IAM authentication on and the API `aws` (`/aws/`, payments' members) vending
    /// the role `autoid-demo` through the agent's STS calls.
    pub aws_role: bool,
    /// The agent's Redis timeout and the filter's `fleet_timeout_ms` (default 200 and 500).
    pub fleet_timeouts_ms: (u64, u64),
    /// Envoy with ext_authz to the agent's `/v1/check` instead of the wasm filter
    /// (`autoid gateway render --target envoy-ext-authz`); the agent decides with the filter
    /// configuration render writes (`check.filter_config`).
    pub ext_authz: bool,
    /// Another proxy-wasm module in the wasm filter's place, in the configuration render writes
    /// (the built module of this name: `autoid_probe_filter` crashes on demand).
    pub wasm_module: Option<&'static str>,
    /// Routes, the filter's configuration and the upstreams in files Envoy watches
    /// (`autoid gateway render --xds-dir <dir>/xds`): definitions change live.
    pub xds: bool,
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
            agent_session_ttl_secs: None,
            agent_max_stream_ttl_secs: None,
            credentials: None,
            agent_transport: AgentTransport::Socket,
            fleet_redis: None,
            aws_role: false,
            fleet_timeouts_ms: (200, 500),
            ext_authz: false,
            wasm_module: None,
            xds: false,
        }
    }
}

/// See [`Stack::prover`].
pub struct Prover {
    session: autoid_protocol::client::Session,
    file: autoid_protocol::entropy::EntropyFile,
    method: String,
    authority: String,
    path: String,
}

impl Prover {
    /// The next proof (protocol v1: the session in every proof), made now.
    pub fn next(&self) -> String {
        let request = autoid_protocol::Request {
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
        };
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        self.session
            .prove_as(
                autoid_protocol::client::Form::V1,
                &self.file,
                &request,
                unix_now(),
                None,
                &mut rng,
            )
            .unwrap()
    }
}

/// Now, in Unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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
    pub envoy: Envoy,
    pub upstream: Upstream,
    pub agent_proc: Option<Proc>,
    pub moto: Option<Moto>,
    /// The agent's key and the role, with `aws_role`.
    pub iam: Option<moto::Iam>,
    /// The agent's environment (AWS keys and endpoint).
    pub agent_env: Vec<(String, String)>,
    pub slapd: Slapd,
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// Envoy's admin interface: the unix socket the default render puts beside the bootstrap.
    pub admin: PathBuf,
    /// Where the agent listens (the same place across restarts).
    pub agent: AgentAt,
}

impl Stack {
    pub fn start(options: &Options) -> Stack {
        let wasm =
            autoid_testkit::paths::wasm(options.wasm_module.unwrap_or("autoid_plugin")).unwrap();
        let autoid = bin("autoid").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("autoid-e2e-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // A shared stack lives in a static and is never dropped: remove its files after we exit.
        autoid_testkit::process::remove_after_exit(d);
        let slapd = Slapd::start(&d.join("ldap")).unwrap();

        // Keys, epoch, entropy, TLS: all with the real tools.
        key_and_epoch(&autoid, d);
        for who in ["alice", "bob", "dave", "erin"] {
            run(Command::new(&autoid)
                .args(["entropy", "issue", "--subject", who, "--epoch"])
                .arg(d.join("ep-1.epoch.json"))
                .arg("--out")
                .arg(d.join(format!("{who}.entropy"))))
            .unwrap();
        }
        autoid_testkit::paths::dev_tls(&d.join("tls")).unwrap();
        // Secrets Manager (moto), with the secrets created through its API.
        let mut moto = options.credentials.as_ref().map(|c| {
            let moto = Moto::start(&d.join("moto.log")).unwrap();
            moto.create_secret(&c.secret_id, &c.value).unwrap();
            moto.create_secret(&c.json_secret_id, &c.json_value)
                .unwrap();
            moto
        });
        let mut agent_env: Vec<(String, String)> = moto::AWS_ENV
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut iam = None;
        if options.aws_role {
            assert!(
                moto.is_none(),
                "aws_role and credentials: one moto each, not both"
            );
            let (m, seeded) = Moto::start_iam(&d.join("moto.log")).unwrap();
            agent_env = vec![
                ("AWS_ACCESS_KEY_ID".into(), seeded.access_key_id.clone()),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    seeded.secret_access_key.clone(),
                ),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ENDPOINT_URL_STS".into(), m.endpoint.clone()),
            ];
            moto = Some(m);
            iam = Some(seeded);
        }

        // The agent: on a unix socket (no token), or on TCP with TLS and the token; the same
        // place across restarts.
        let agent = match options.agent_transport {
            AgentTransport::Socket => AgentAt::Socket(d.join("agent.sock")),
            AgentTransport::Tls => AgentAt::Tls {
                port: free_port().unwrap(),
                ca: d.join("tls/ca.pem"),
            },
        };
        let mut agent_config = json!({
            "request_timeout_ms": 3000,
            "ldap": {
                "url": slapd.ldap_url,
                "bind_dn": "uid=autoid-agent,ou=services,dc=example,dc=org",
                "bind_password_file": slapd.agent_password_file(),
                "pool_size": 2,
                "connect_timeout_ms": 1000,
                "operation_timeout_ms": 2000
            },
            "users": {"base": "dc=example,dc=org"},
            "groups": {"base": "ou=groups,dc=example,dc=org"},
            "session_keys": [{"kid": "gw-1", "private_key_file": d.join("keys/gw-1.key.pem")}]
        });
        agent_config["epoch_files"] = json!([d.join("ep-1.epoch.json")]);
        if options.credentials.is_some() || options.aws_role {
            agent_config["credentials_file"] = json!(d.join("agent-credentials.json"));
        }
        if let Some(url) = &options.fleet_redis {
            agent_config["replay"] =
                json!({"redis_url": url, "timeout_ms": options.fleet_timeouts_ms.0});
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
                agent_config["listen"] = json!(format!("unix:{}", path.display()));
                directory["address"] = json!(format!("unix:{}", path.display()));
            }
            AgentAt::Tls { port, ca } => {
                std::fs::write(d.join("agent.token"), TOKEN).unwrap();
                agent_config["listen"] = json!(format!("127.0.0.1:{port}"));
                agent_config["tls"] = json!({"cert_file": d.join("tls/server.pem"), "key_file": d.join("tls/server.key")});
                agent_config["token_file"] = json!(d.join("agent.token"));
                directory["address"] = json!(format!("127.0.0.1:{port}"));
                directory["token"] = json!({"file": d.join("agent.token")});
                directory["ca_file"] = json!(ca);
            }
        }
        if options.ext_authz {
            agent_config["check"] = json!({"filter_config": d.join("filter.json"), "workers": 2});
        }
        std::fs::write(d.join("agent.json"), agent_config.to_string()).unwrap();

        // The echo upstream on a free port it reports.
        let upstream = Upstream::start(
            &bin("autoid-demo-upstream").unwrap(),
            &d.join("upstream.log"),
        )
        .unwrap();
        let upstream_addr = upstream.addr;

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
                "epoch_files": [d.join("ep-1.epoch.json")]
            },
            "directory": directory
        });
        let mut gateway = gateway;
        if options.fleet_redis.is_some() {
            gateway["plugin"]["replay"] =
                json!({"scope": "fleet", "fleet_timeout_ms": options.fleet_timeouts_ms.1});
        }
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
        if options.aws_role {
            gateway["credentials"]["aws_signing_dir"] = json!(d.join("aws-signing"));
        }
        std::fs::write(config.join("gateway.json"), gateway.to_string()).unwrap();
        let mut apis = vec![
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
            // HTTP Basic checked by the agent's bind: TLS only, binds remembered 2 s.
            json!({
                "id": "legacy", "name": "Legacy", "listen_path": "/legacy/",
                "upstream": format!("http://{upstream_addr}"),
                "auth": {
                    "methods": ["ldap_basic"],
                    "basic": {"realm": "e2e legacy", "cache_ttl_secs": 2},
                    "require": {"any_of": ["testgroup", "payments"]},
                    "inject": {"x-legacy-key": {"value": "legacy-upstream-key"}},
                    "identity": {"subject_header": "x-autoid-subject"}
                }
            }),
            // A proof or HTTP Basic; Basic without TLS from loopback peers; every request binds.
            json!({
                "id": "local", "name": "Local", "listen_path": "/local/",
                "upstream": format!("http://{upstream_addr}"),
                "auth": {
                    "methods": ["proof", "ldap_basic"],
                    "basic": {"plain_http": "loopback", "cache_ttl_secs": 0},
                    "require": {"any_of": ["testgroup", "payments"]},
                    "identity": {"subject_header": "x-autoid-subject"}
                }
            }),
            // HTTP Basic from loopback peers, binds remembered 5 minutes: the throttle's holds
            // must not be answered from a remembered bind.
            json!({
                "id": "remembered", "name": "Remembered", "listen_path": "/remembered/",
                "upstream": format!("http://{upstream_addr}"),
                "auth": {
                    "methods": ["ldap_basic"],
                    "basic": {"plain_http": "loopback", "cache_ttl_secs": 300},
                    "require": {"any_of": ["reports"]},
                    "identity": {"subject_header": "x-autoid-subject"}
                }
            }),
            json!({
                "id": "off", "name": "Disabled", "enabled": false, "listen_path": "/off/",
                "upstream": format!("http://{upstream_addr}"),
                "auth": {"require": {"any_of": ["payments"]}}
            }),
        ];
        if let (Some(iam), Some(m)) = (&iam, &moto) {
            // Secrets Manager through the gateway, each request signed by Envoy with the role.
            apis.push(json!({
                "id": "secrets", "name": "Secrets Manager", "listen_path": "/secrets/",
                "strip_listen_path": true, "upstream": m.endpoint,
                "aws_service": {"service": "secretsmanager", "region": "us-east-1",
                                "role_arn": iam.role_arn},
                "auth": {"require": {"any_of": ["payments"]}}
            }));
            apis.push(json!({
                "id": "aws", "name": "AWS credentials", "listen_path": "/aws/",
                "aws_role": {"role_arn": iam.role_arn, "duration_secs": 900},
                "auth": {
                    "require": {"any_of": ["payments"]},
                    "identity": {"subject_header": "x-autoid-subject", "groups_header": "x-autoid-groups"}
                }
            }));
        }
        for api in apis {
            std::fs::write(
                config.join(format!("apis/{}.json", api["id"].as_str().unwrap())),
                api.to_string(),
            )
            .unwrap();
        }
        let rendered = d.join("envoy.json");
        let mut render = Command::new(&autoid);
        render
            .args(["gateway", "render", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&rendered)
            .arg("--agent-credentials")
            .arg(d.join("agent-credentials.json"));
        if options.ext_authz {
            render
                .args(["--target", "envoy-ext-authz", "--filter-config"])
                .arg(d.join("filter.json"));
        }
        if options.xds {
            render.arg("--xds-dir").arg(d.join("xds"));
        }
        run(&mut render).unwrap();

        let agent_proc = Self::start_agent(d, &agent, &agent_env);

        let admin = d.join("envoy-admin.sock");
        let envoy = start_envoy(d, &rendered, &admin);
        Stack {
            http: envoy.listener("autoid_http").unwrap(),
            https: envoy.listener("autoid_https").unwrap(),
            admin,
            envoy,
            upstream,
            agent_proc: Some(agent_proc),
            moto,
            iam,
            agent_env,
            slapd,
            dir,
            agent,
        }
    }

    /// Runs `autoid gateway render --xds-dir` again on the definitions as they are now (a stack
    /// started with `xds`): what it prints and whether it succeeded.
    pub fn render_xds(&self) -> std::process::Output {
        let d = self.dir.path();
        self.gateway_xds(
            "render",
            &[
                "--out".as_ref(),
                d.join("envoy.json").as_os_str(),
                "--agent-credentials".as_ref(),
                d.join("agent-credentials.json").as_os_str(),
            ],
        )
    }

    /// `autoid gateway apply --xds-dir --admin` on the definitions as they are now (a stack
    /// started with `xds`): what it prints and whether it succeeded.
    pub fn apply_xds(&self) -> std::process::Output {
        let envoy = envoy::binary().unwrap();
        self.gateway_xds(
            "apply",
            &[
                "--admin".as_ref(),
                self.admin.as_os_str(),
                "--envoy".as_ref(),
                envoy.as_os_str(),
            ],
        )
    }

    /// `autoid gateway VERB --config <stack>/gateway --xds-dir <stack>/xds ARGS`.
    fn gateway_xds(&self, verb: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
        let d = self.dir.path();
        Command::new(bin("autoid").unwrap())
            .args(["gateway", verb, "--config"])
            .arg(d.join("gateway"))
            .arg("--xds-dir")
            .arg(d.join("xds"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Stops Envoy and starts a new Envoy process on the same bootstrap (new shared data: a new
    /// replay table); its listeners get new ports.
    pub fn restart_envoy(&mut self) {
        self.envoy.proc.stop();
        let d = self.dir.path().to_owned();
        self.envoy = start_envoy(&d, &d.join("envoy.json"), &self.admin);
        self.http = self.envoy.listener("autoid_http").unwrap();
        self.https = self.envoy.listener("autoid_https").unwrap();
    }

    /// Another gateway replica beside this one (`replica-<n>/`): the same keys, epoch and API
    /// definitions, its own agent (the same configuration on its own socket: in fleet mode, the
    /// same Redis) and its own Envoy.
    pub fn add_replica(&self, n: usize) -> Replica {
        let d = self.dir.path();
        let r = d.join(format!("replica-{n}"));
        std::fs::create_dir_all(r.join("gateway/apis")).unwrap();
        let socket = r.join("agent.sock");
        let mut agent: Value =
            serde_json::from_slice(&std::fs::read(d.join("agent.json")).unwrap()).unwrap();
        agent["listen"] = json!(format!("unix:{}", socket.display()));
        std::fs::write(r.join("agent.json"), agent.to_string()).unwrap();
        let mut gateway: Value =
            serde_json::from_slice(&std::fs::read(d.join("gateway/gateway.json")).unwrap())
                .unwrap();
        gateway["directory"]["address"] = json!(format!("unix:{}", socket.display()));
        std::fs::write(r.join("gateway/gateway.json"), gateway.to_string()).unwrap();
        for api in std::fs::read_dir(d.join("gateway/apis")).unwrap() {
            let api = api.unwrap().path();
            std::fs::copy(&api, r.join("gateway/apis").join(api.file_name().unwrap())).unwrap();
        }
        let rendered = r.join("envoy.json");
        run(Command::new(bin("autoid").unwrap())
            .args(["gateway", "render", "--config"])
            .arg(r.join("gateway"))
            .arg("--out")
            .arg(&rendered)
            .arg("--agent-credentials")
            .arg(r.join("agent-credentials.json")))
        .unwrap();
        let agent_proc = Self::start_agent(&r, &AgentAt::Socket(socket), &self.agent_env);
        let admin = r.join("envoy-admin.sock");
        let envoy = start_envoy(&r, &rendered, &admin);
        Replica {
            http: envoy.listener("autoid_http").unwrap(),
            envoy,
            _agent: agent_proc,
            dir: r,
        }
    }

    /// The agent on `d/agent.json`, answering where it listens.
    fn start_agent(d: &Path, at: &AgentAt, agent_env: &[(String, String)]) -> Proc {
        let mut env = vec![("AUTOID_AGENT_LOG", "info")];
        env.extend(agent_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        agent::start(
            &bin("autoid-agent").unwrap(),
            &d.join("agent.json"),
            &env,
            &d.join("agent.log"),
            at.ready(),
        )
        .unwrap()
    }

    pub fn kill_agent(&mut self) {
        if let Some(mut b) = self.agent_proc.take() {
            b.stop();
        }
    }

    pub fn restart_agent(&mut self) {
        self.kill_agent();
        self.agent_proc = Some(Self::start_agent(
            self.dir.path(),
            &self.agent,
            &self.agent_env,
        ));
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
        self.prove_many(subject, method, path, 1).remove(0)
    }

    /// `n` proofs for `subject` and `method <http listener> path`, all of one session (warm:
    /// one RSA unwrap at the gateway, however many proofs), each with its own nonce.
    pub fn prove_many(&self, subject: &str, method: &str, path: &str, n: usize) -> Vec<String> {
        let forms = vec![autoid_protocol::client::Form::V1; n];
        self.prove_forms(subject, method, path, &forms)
    }

    /// One proof per entry of `forms` for `subject` and `method <http listener> path`, all of one
    /// session, each with its own nonce.
    pub fn prove_forms(
        &self,
        subject: &str,
        method: &str,
        path: &str,
        forms: &[autoid_protocol::client::Form],
    ) -> Vec<String> {
        self.prove_forms_at(&self.http.to_string(), subject, method, path, forms)
    }

    /// A proof for `subject` and `method <at> path` exactly as given (another gateway's listener).
    pub fn prove_raw_at(&self, at: SocketAddr, subject: &str, method: &str, path: &str) -> String {
        let forms = [autoid_protocol::client::Form::V1];
        self.prove_forms_at(&at.to_string(), subject, method, path, &forms)
            .remove(0)
    }

    /// [`Stack::prove_forms`] for the gateway at `authority` (nginx in front of this stack).
    pub fn prove_forms_at(
        &self,
        authority: &str,
        subject: &str,
        method: &str,
        path: &str,
        forms: &[autoid_protocol::client::Form],
    ) -> Vec<String> {
        let (session, file) = self.session_for(subject);
        let now = unix_now();
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let request = autoid_protocol::Request {
            method,
            authority,
            path,
        };
        forms
            .iter()
            .map(|form| {
                session
                    .prove_as(*form, &file, &request, now, None, &mut rng)
                    .unwrap()
            })
            .collect()
    }

    /// A new session for `subject` (wrapped for the stack's public key), with the subject's
    /// entropy file.
    fn session_for(
        &self,
        subject: &str,
    ) -> (
        autoid_protocol::client::Session,
        autoid_protocol::entropy::EntropyFile,
    ) {
        use autoid_protocol::keys::PublicKey;
        let pem = std::fs::read_to_string(self.path("keys/gw-1.pub.pem")).unwrap();
        let public = PublicKey::from_pem("gw-1", &pem).unwrap();
        let file = autoid_protocol::entropy::EntropyFile::from_bytes(
            &std::fs::read(self.path(&format!("{subject}.entropy"))).unwrap(),
        )
        .unwrap();
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let session =
            autoid_protocol::client::Session::open(&public, unix_now(), &mut rng).unwrap();
        (session, file)
    }

    /// Proofs for `subject` and `method <http listener> path` in one session, each made when it
    /// is asked for ([`Prover::next`]): for a load that outlasts the skew window.
    pub fn prover(&self, subject: &str, method: &str, path: &str) -> Prover {
        let (session, file) = self.session_for(subject);
        Prover {
            session,
            file,
            method: method.to_owned(),
            authority: self.http.to_string(),
            path: path.to_owned(),
        }
    }

    /// A proof for `subject` and this exact request, binding `body` when given.
    pub fn prove_body(
        &self,
        subject: &str,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> String {
        let mut cmd = Command::new(bin("autoid").unwrap());
        cmd.arg("prove");
        if let Some(body) = body {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = self.path(&format!("body-{}-{n}", std::process::id()));
            std::fs::write(&file, body).unwrap();
            cmd.arg("--body-file").arg(file);
        }
        let out = run(cmd
            .args([
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
            .arg(self.path(&format!("{subject}.entropy"))))
        .unwrap();
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

    /// A counter of the agent's `/metrics` (0 when absent), over its unix socket.
    pub fn agent_counter(&self, name: &str) -> u64 {
        let AgentAt::Socket(socket) = &self.agent else {
            panic!("agent_counter reads the agent's unix socket");
        };
        let r = unix_request(socket, "GET", "/metrics").unwrap();
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The counter `name` summed over workers (Envoy's admin /stats).
    pub fn counter(&self, name: &str) -> u64 {
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// An Envoy stat by its full name (0 when absent). The filter is a regex: dots escaped.
    pub fn stat(&self, name: &str) -> u64 {
        self.envoy.stat(name).unwrap()
    }

    /// Envoy's log, for failure messages.
    pub fn envoy_log(&self) -> String {
        self.envoy.log_text()
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

/// Envoy on `rendered` with two workers, its logs in `d`, its admin on `admin`.
fn start_envoy(d: &Path, rendered: &Path, admin: &Path) -> Envoy {
    // No hot restart (so no shared memory and no base id to collide).
    Envoy::start(
        &envoy::binary().unwrap(),
        rendered,
        Admin::Unix(admin.to_owned()),
        &d.join("envoy.log"),
        &d.join("access.log"),
        &[
            "--concurrency",
            "2",
            "--log-level",
            "info",
            "--component-log-level",
            "wasm:debug",
            // Envoy flushes its log file every 10 s by default; tests read it.
            "--file-flush-interval-msec",
            "100",
        ],
    )
    .unwrap()
}

/// A second gateway replica of a [`Stack`] (fields drop in order: Envoy, then its agent).
pub struct Replica {
    pub envoy: Envoy,
    _agent: Proc,
    pub http: SocketAddr,
    pub dir: PathBuf,
}

impl Replica {
    /// The counter `name` summed over workers.
    pub fn counter(&self, name: &str) -> u64 {
        self.envoy.stat(&format!("wasmcustom.{name}")).unwrap()
    }
}

impl AgentAt {
    /// Whether the agent answers `/readyz` with 200 where it listens: over its unix socket, or
    /// over TLS verified against the dev CA (ureq, rustls).
    pub fn ready(&self) -> impl FnMut() -> bool + '_ {
        let tls = match self {
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
        move || match (self, &tls) {
            (AgentAt::Socket(path), _) => agent::ready_on_socket(path),
            (AgentAt::Tls { port, .. }, Some(tls)) => tls
                .get(&format!("https://127.0.0.1:{port}/readyz"))
                .call()
                .is_ok_and(|r| r.status() == 200),
            (AgentAt::Tls { .. }, None) => false,
        }
    }
}

/// The uniform denial every deployment answers (the filter's reply, whoever runs the filter):
/// `status`, a JSON body of exactly `error` and `request_id`, `cache-control: no-store`, the proof
/// challenge on 401, and nothing from the upstream.
pub fn assert_uniform_denial(r: &Response, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert!(body.get("upstream").is_none(), "the upstream answered");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    if status == 401 {
        assert_eq!(
            r.header("www-authenticate"),
            Some("AutoID realm=\"autoid\", header=\"x-autoid-proof\"")
        );
    }
}

/// The proof denials every deployment gives at `http`: no proof, junk, a proof moved to another
/// path or to another method (whatever method the client claims in the check contract's
/// header), and a replay — each the uniform 401. `prove(method, path)` makes a fresh proof for
/// this gateway's authority.
pub fn assert_proof_denials(http: SocketAddr, prove: impl Fn(&str, &str) -> String) {
    let missing = request(http, "GET", "/payments/x", &[]).unwrap();
    assert_uniform_denial(&missing, 401, "unauthorized");
    let junk = [(PROOF_HEADER, "v1.gw-1.AAAA.BBBB")];
    let invalid = request(http, "GET", "/payments/x", &junk).unwrap();
    assert_uniform_denial(&invalid, 401, "unauthorized");

    let proof = prove("GET", "/payments/other");
    let moved = request(http, "GET", "/payments/x", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_uniform_denial(&moved, 401, "unauthorized");
    let proof = prove("GET", "/payments/x");
    let posted = request(
        http,
        "POST",
        "/payments/x",
        &[
            (PROOF_HEADER, &proof),
            ("x-autoid-method", "GET"),
            ("content-length", "0"),
        ],
    )
    .unwrap();
    assert_uniform_denial(&posted, 401, "unauthorized");

    // The same proof twice: the second is a replay.
    let proof = prove("GET", "/payments/once");
    let first = request(http, "GET", "/payments/once", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let again = request(http, "GET", "/payments/once", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_uniform_denial(&again, 401, "unauthorized");
}

/// alice's `GET /payments/charges?limit=2`, allowed, as the payments upstream receives it behind
/// any deployment: rewritten to `/v1/charges`, the gateway's credential, tenant and identity in
/// place of whatever copies the client sent, and no proof header in any spelling. Returns the
/// upstream's echo for the deployment's own checks.
pub fn assert_upstream_as_alice(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = r.json();
    assert_eq!(echo["path"], "/v1/charges?limit=2");
    assert_eq!(r.echoed("authorization"), [PAYMENTS_CREDENTIAL]);
    assert_eq!(r.echoed("x-tenant"), ["acme"]);
    assert_eq!(r.echoed("x-autoid-subject"), ["alice"]);
    assert_eq!(r.echoed("x-autoid-groups"), ["payments,reports"]);
    let headers = echo["headers"].as_object().unwrap();
    assert!(
        headers.keys().all(|k| !k.contains("autoid-proof")),
        "the proof reached the upstream: {echo}"
    );
    echo
}

/// The gateway key `gw-1` (RSA-2048, in `d/keys/`) and the epoch `ep-1` (`d/ep-1.epoch.json`),
/// made with the real `autoid` at `autoid`.
pub fn key_and_epoch(autoid: &Path, d: &Path) {
    run(Command::new(autoid)
        .args(["keygen", "--kid", "gw-1", "--bits", "2048", "--out"])
        .arg(d.join("keys")))
    .unwrap();
    run(Command::new(autoid)
        .args(["epoch", "new", "--id", "ep-1", "--out"])
        .arg(d.join("ep-1.epoch.json")))
    .unwrap();
}

/// The hostile paths every gateway is tested with (protocol/tests/vectors/hostile-paths.txt, the
/// table the filter's own tests use), each under `base` (a listen path ending with `/`).
pub fn hostile_paths(base: &str) -> Vec<String> {
    include_str!("../../../protocol/tests/vectors/hostile-paths.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# "))
        .map(|l| format!("{base}{l}"))
        .collect()
}

/// Sends every hostile path under `/payments/` to the gateway at `http`, each with a valid proof
/// for the path exactly as sent (`prove(path)`: `autoid prove` refuses these paths, an attacker's
/// client would not), and asserts that none reaches an upstream and every answer is the uniform
/// 400 — except where `moved_first(path)`: the gateway's own normalization (Envoy's
/// `normalize_path`, nginx's location match) moved the request off the API before any check,
/// and the answer is then that place's uniform denial.
pub fn assert_hostile_paths_refused(
    http: SocketAddr,
    prove: impl Fn(&str) -> String,
    moved_first: impl Fn(&str) -> bool,
) {
    for path in hostile_paths("/payments/") {
        let proof = prove(&path);
        let r = request(http, "GET", &path, &[(PROOF_HEADER, &proof)]).unwrap();
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("\"upstream\""),
            "{path} reached an upstream: {} {body}",
            r.status
        );
        if moved_first(&path) {
            assert!(
                [400, 401, 403, 404].contains(&r.status),
                "{path}: {} {body}",
                r.status
            );
        } else {
            assert_eq!(r.status, 400, "{path}: {body}");
            assert_uniform_denial(&r, 400, "bad_request");
        }
    }
}

/// Whether a gateway's own path normalization, before any check, resolves or refuses `path`: a
/// dot segment (`.`, `..`, `%2e` either case, no `;` parameter), an escaped `/` or `\`, a
/// backslash or `//`. Such a path leaves the API before the filter or the agent sees it.
pub fn normalized_before_the_check(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f")
        || lower.contains("%5c")
        || path.contains('\\')
        || path.contains("//")
        || lower.split('/').any(|segment| {
            let name = segment.replace("%2e", ".");
            name == "." || name == ".."
        })
}
