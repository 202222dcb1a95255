//! The arms, interleaved repetitions (a f b c d e, a f b c d e, …) and the summary.
//!
//! Phase 1 measures every arm at saturation; phase 2 sends every arm the same fixed rate, half of
//! the slowest non-cold arm's median saturation rate (the cold arm: half of its own), for p50 and
//! p99 latency. Phases 3 and 4 deploy the keys and epochs at the agent, as `make run` does, and
//! speak protocol v3: phase 3 sends the warm arm the same paced rate beside a junk flood of new
//! sessions from many source addresses (`--flood-rate`, `--flood-sources`) and legitimate new
//! sessions from yet another (`--legit-sessions-rate`), whose latency it records; phase 4 runs
//! the warm arm alone (the baseline of both) and beside a stream of valid new sessions. Each run
//! gets a fresh Envoy (fresh shared data: the replay table holds only that run's nonces) and
//! freshly made proofs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::keys::{GatewayKey, PublicKey};
use autoid_testkit::free_port;
use serde::Serialize;
use serde_json::{Value, json};

use crate::directory::Directory;
use crate::envoy::{self, Envoy, HOST, PATH, ROUTE_NAME};
use crate::flood::{self, Flood, FloodOutcome, Stream};
use crate::loadgen::{self, Mode, Outcome, Plan, Requests};
use crate::proofs::{self, Forms, JwtIssuer, Sessions};
use crate::{chart, junk, nginx, steps, wrk};

/// `autoid-bench run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Short runs, one repetition, few cold proofs: every ratio in under two minutes
    /// (also with the environment variable BENCH_QUICK=1).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of the interleaved arm sequence (default 3, quick 1).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Counted seconds per run (default 10, quick 2).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds sent before counting (default 2, quick 1).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Counted seconds of the cold arm (default 8, quick 2).
    #[arg(long)]
    pub cold_duration: Option<f64>,
    /// Connections at saturation.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Connections in the paced phase.
    #[arg(long, default_value_t = 64)]
    pub paced_connections: usize,
    /// The paced phases' rate (default: half the slowest non-cold arm's saturation rate).
    #[arg(long)]
    pub paced_rate: Option<f64>,
    /// Junk new sessions per second in phase 3, round-robin over --flood-sources source
    /// addresses (0: no phase 3).
    #[arg(long, default_value_t = 1000.0)]
    pub flood_rate: f64,
    /// Source addresses of phase 3's junk flood (127.0.1.1, 127.0.1.2, …).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub flood_sources: u16,
    /// Legitimate new sessions per second (valid v3 proofs, each a new session) from 127.0.0.3
    /// beside phase 3's junk flood; their latency is recorded.
    #[arg(long, default_value_t = 20.0)]
    pub legit_sessions_rate: f64,
    /// New sessions per second (valid proofs, each with a new session unwrapped by the agent)
    /// from 127.0.0.2 beside the warm arm in phase 4 (0: no phase 4).
    #[arg(long, default_value_t = 50.0)]
    pub new_sessions_rate: f64,
    /// Arms to run, letters in order (a none, f floor, b jwt_authn, c warm, d cold, e directory,
    /// g warm with fleet replay in Redis, h cold through the agent, i HTTP Basic with the bind
    /// remembered, x Envoy ext_authz to the agent's /v1/check, warm, n nginx auth_request to the
    /// agent's /v1/check, warm).
    #[arg(long, default_value = "afbcdeghixn")]
    pub arms: String,
    /// Sessions the warm and directory arms' proofs share.
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// The protocol version of the proofs: 2 (each session's primed first proof in the full
    /// form, then compact) or 1 (the wrapped key in every proof), for A/B runs; phases 3 and 4
    /// always send v3, as `make run`'s clients do
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub proof_version: u8,
    /// Output directory (summary.json, summary.md, bootstraps, logs).
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Envoy binary.
    #[arg(long, env = "ENVOY", default_value = ".venv/bin/envoy")]
    pub envoy: PathBuf,
    /// The autoid filter.
    #[arg(long, default_value = "target/wasm32-wasip1/wasm/autoid_plugin.wasm")]
    pub plugin: PathBuf,
    /// The floor filter.
    #[arg(
        long,
        default_value = "target/wasm32-wasip1/wasm/autoid_floor_filter.wasm"
    )]
    pub floor: PathBuf,
    /// The autoid agent.
    #[arg(long, default_value = "target/release/autoid-agent")]
    pub bridge: PathBuf,
    /// Debian's wrk 4.1: arms (b) and (c) measured again with it in every repetition of phase 1
    /// (`apt-get install wrk`).
    #[arg(long, default_value = "wrk")]
    pub wrk: PathBuf,
    /// Skip the wrk cross-check.
    #[arg(long)]
    pub no_wrk: bool,
    /// wrk threads (its connections: --connections).
    #[arg(long, default_value_t = 1)]
    pub wrk_threads: usize,
    /// Seconds of each measured wrk run (default: --duration; quick 2), after a warm-up wrk run
    /// of --warmup seconds (wrk counts whole seconds).
    #[arg(long)]
    pub wrk_duration: Option<f64>,
}

/// One arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Arm {
    /// (a) no filter.
    None,
    /// (f) the floor proxy-wasm filter.
    Floor,
    /// (b) native jwt_authn, RS256, local JWKS.
    Jwt,
    /// (c) autoid, sessions and groups warm.
    Warm,
    /// (d) autoid, a new session (RSA unwrap) per request.
    Cold,
    /// (e) autoid, every group decision a bridge + slapd round trip.
    Directory,
    /// (h) autoid, a new session per request, unwrapped by the agent (the bridge) natively.
    ColdAgent,
    /// (g) autoid warm, every nonce also claimed in Redis through the agent (fleet replay).
    Fleet,
    /// (i) autoid HTTP Basic (`ldap_basic`), the bind remembered by the filter: one directory
    /// bind per worker, then the keyed-hash lookup per request.
    Basic,
    /// (x) Envoy `ext_authz` (HTTP service) to the agent's `/v1/check`, which decides with the
    /// warm arm's filter configuration (the filter's own logic, natively): the same unique-proof
    /// load as (c), with no wasm in Envoy.
    ExtAuthz,
    /// (n) nginx `auth_request` to the agent's `/v1/check`, deciding with the warm arm's filter
    /// configuration: the same unique-proof load as (c) and (x), nginx instead of Envoy.
    Nginx,
}

impl Arm {
    fn from_letter(c: char) -> Option<Arm> {
        Some(match c {
            'a' => Arm::None,
            'f' => Arm::Floor,
            'b' => Arm::Jwt,
            'c' => Arm::Warm,
            'd' => Arm::Cold,
            'e' => Arm::Directory,
            'h' => Arm::ColdAgent,
            'g' => Arm::Fleet,
            'i' => Arm::Basic,
            'x' => Arm::ExtAuthz,
            'n' => Arm::Nginx,
            _ => return None,
        })
    }

    /// Its letter in the issue.
    pub fn letter(self) -> char {
        match self {
            Arm::None => 'a',
            Arm::Floor => 'f',
            Arm::Jwt => 'b',
            Arm::Warm => 'c',
            Arm::Cold => 'd',
            Arm::Directory => 'e',
            Arm::ColdAgent => 'h',
            Arm::Fleet => 'g',
            Arm::Basic => 'i',
            Arm::ExtAuthz => 'x',
            Arm::Nginx => 'n',
        }
    }

    /// A readable name.
    pub fn name(self) -> &'static str {
        match self {
            Arm::None => "no filter",
            Arm::Floor => "floor proxy-wasm filter",
            Arm::Jwt => "jwt_authn RS256",
            Arm::Warm => "autoid warm",
            Arm::Cold => "autoid cold (RSA per request)",
            Arm::Directory => "autoid directory miss",
            Arm::ColdAgent => "autoid cold, RSA in the agent",
            Arm::Fleet => "autoid warm, fleet replay (Redis)",
            Arm::Basic => "autoid HTTP Basic, bind remembered",
            Arm::ExtAuthz => "Envoy ext_authz -> agent, warm",
            Arm::Nginx => "nginx auth_request -> agent, warm",
        }
    }

    fn is_autoid(self) -> bool {
        matches!(
            self,
            Arm::Warm | Arm::Cold | Arm::Directory | Arm::ColdAgent | Arm::Fleet | Arm::Basic
        )
    }

    /// A new session per request: paced at half its own saturation rate.
    fn is_cold(self) -> bool {
        matches!(self, Arm::Cold | Arm::ColdAgent)
    }

    /// Needs slapd and the bridge.
    fn needs_bridge(self) -> bool {
        matches!(
            self,
            Arm::Directory | Arm::ColdAgent | Arm::Fleet | Arm::Basic | Arm::ExtAuthz | Arm::Nginx
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Saturation,
    Paced,
    /// Paced, as phase 4's `AgentPaced`, beside a junk flood from many sources and legitimate
    /// new sessions from another.
    Flood,
    /// Paced, the keys at the agent, no new sessions: phase 4's baseline.
    AgentPaced,
    /// Paced, the keys at the agent, beside a stream of new sessions from another source.
    AgentSessions,
}

impl Phase {
    /// The filter holds key ids only and the agent unwraps (arm (h), phase 4).
    fn keys_at_agent(self, arm: Arm) -> bool {
        arm == Arm::ColdAgent || self.as_make_run()
    }

    /// Deployed as `make run` does (phases 3 and 4): keys and epochs at the agent, the filter's
    /// default cold-path budgets, v3 proofs (what `autoid prove` makes).
    fn as_make_run(self) -> bool {
        matches!(
            self,
            Phase::Flood | Phase::AgentPaced | Phase::AgentSessions
        )
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
struct RunRecord {
    arm: char,
    rep: usize,
    phase: Phase,
    rate_target: Option<f64>,
    outcome: Outcome,
    envoy_cpu_us_per_req: f64,
    envoy_cpu_util: f64,
    loadgen_cpu_util: f64,
    /// Bridge and slapd CPU per request (directory arm).
    directory_cpu_us_per_req: Option<f64>,
    prepared: usize,
    envoy_rss_kb: Option<u64>,
    counters: BTreeMap<String, u64>,
    /// The second client beside this run (phase 3's junk, phase 4's new sessions).
    flood: Option<FloodOutcome>,
    /// Phase 3's legitimate new sessions.
    legit: Option<FloodOutcome>,
    /// The agent's session counters over the run (phase 3), when it answered.
    agent_counters: BTreeMap<String, u64>,
}

struct Settings {
    reps: usize,
    warmup: f64,
    duration: f64,
    cold_duration: f64,
    cold_proofs_cap: usize,
}

struct Bench<'a> {
    o: &'a Options,
    s: Settings,
    out: PathBuf,
    gateway: GatewayKey,
    public: PublicKey,
    epoch: Epoch,
    file: EntropyFile,
    jwt: JwtIssuer,
    jwts: Vec<String>,
    directory: Option<Directory>,
    threads: usize,
}

const PROOF_HEADER: &str = "x-autoid-proof";
/// Arm (x)'s cluster: the checking agent's unix socket.
const CHECK_CLUSTER: &str = "autoid_check";
const SUBJECT: &str = "alice";
/// Arm (i)'s `Authorization`: `test:test123`, the directory's tutorial user (testgroup).
const BASIC_CREDENTIALS: &str = "Basic dGVzdDp0ZXN0MTIz";
const MAX_SKEW_SECS: u64 = 120;
/// Seconds of junk made for a flood at its rate (cycled: a refused proof is never cached, so a
/// repeat costs the gateway the same).
const FLOOD_SECONDS: f64 = 3.0;
/// Connections of the legitimate new sessions beside a flood.
const LEGIT_CONNECTIONS: usize = 16;

impl Bench<'_> {
    /// The filter's configuration. Phases 3 and 4 keep the default cold-path budgets (per worker
    /// and per source) and name the epoch without its secret: what `make run` deploys.
    fn autoid_config(&self, arm: Arm, phase: Phase) -> Result<String> {
        let groups = match (arm, &self.directory) {
            (Arm::Directory, Some(_)) => json!({ "directory": {
                "cluster": "autoid_agent",
                "authority": "autoid-agent",
                "timeout_ms": 2000,
                "positive_ttl_secs": 0,
                "negative_ttl_secs": 0,
                "stale_if_error_secs": 0
            }}),
            (Arm::Directory | Arm::ColdAgent | Arm::Fleet | Arm::Basic, None) => {
                bail!("arms (e), (g), (h) and (i) need the agent")
            }
            _ => json!({ "static_groups": { SUBJECT: ["payments", "reports"] } }),
        };
        let mut config = json!({
            "proof_header": PROOF_HEADER,
            "keys": [ { "kid": self.gateway.kid(), "private_key_pem": self.gateway.to_pem()? } ],
            "epochs": [ serde_json::from_str::<Value>(&self.epoch.to_json())? ],
            "limits": { "max_skew_secs": MAX_SKEW_SECS, "session_lifetime_secs": 3600 },
            "session_cache": { "max_entries": 65536, "local_max_entries": 8192 },
            "cold_path": { "unwraps_per_second": 100000, "burst": 100000 },
            "apis": { ROUTE_NAME: {
                "require": { "any_of": ["payments"] },
                "inject": { "authorization": "Bearer upstream-credential-for-the-bench" },
                "identity": { "subject_header": "x-autoid-subject" }
            } }
        });
        if let (Some(c), Some(g)) = (config.as_object_mut(), groups.as_object()) {
            for (k, v) in g {
                c.insert(k.clone(), v.clone());
            }
            if phase.as_make_run() {
                c.remove("cold_path");
                let e = self.epoch.params();
                c.insert(
                    "epochs".into(),
                    json!([{ "id": e.id(), "file_size": e.file_size(),
                             "interval_count": e.interval_count() }]),
                );
            }
            if arm == Arm::Basic {
                // The demo's `test` (testgroup) over HTTP Basic from loopback; the agent binds
                // once per worker, the filter remembers the bind for the whole run.
                c.insert(
                    "agent".into(),
                    json!({ "cluster": "autoid_agent", "authority": "autoid-agent",
                            "timeout_ms": 5000 }),
                );
                c.insert(
                    "apis".into(),
                    json!({ ROUTE_NAME: {
                        "require": { "any_of": ["testgroup"] },
                        "inject": { "authorization": "Bearer upstream-credential-for-the-bench" },
                        "identity": { "subject_header": "x-autoid-subject" },
                        "auth": { "methods": ["ldap_basic"],
                                  "basic": { "plain_http": "loopback", "cache_ttl_secs": 300 } }
                    } }),
                );
            }
            if arm == Arm::Fleet {
                // Each allowed nonce is claimed again in Redis through the agent.
                c.insert(
                    "agent".into(),
                    json!({ "cluster": "autoid_agent", "authority": "autoid-agent",
                            "timeout_ms": 5000 }),
                );
                c.insert(
                    "replay".into(),
                    json!({ "scope": "fleet", "fleet_timeout_ms": 1000 }),
                );
            }
            if let (true, Some(_)) = (phase.keys_at_agent(arm), &self.directory) {
                // The key id only: the agent holds the key and unwraps each session.
                c.insert("keys".into(), json!([{ "kid": self.gateway.kid() }]));
                c.insert(
                    "agent".into(),
                    json!({ "cluster": "autoid_agent", "authority": "autoid-agent",
                            "timeout_ms": 5000 }),
                );
            }
        }
        Ok(config.to_string())
    }

    fn filters(&self, arm: Arm, phase: Phase) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut clusters = Vec::new();
        let filters = match arm {
            Arm::None => vec![],
            Arm::Floor => vec![envoy::wasm_filter("floor", &self.o.floor, "")],
            Arm::Jwt => vec![envoy::jwt_filter(&self.jwt.issuer, &self.jwt.jwks())],
            Arm::Warm | Arm::Cold | Arm::Directory | Arm::ColdAgent | Arm::Fleet | Arm::Basic => {
                if let (true, Some(d)) = (
                    arm.needs_bridge() || phase.keys_at_agent(arm),
                    &self.directory,
                ) {
                    clusters.push(envoy::pipe_cluster("autoid_agent", &d.socket));
                }
                vec![envoy::wasm_filter(
                    "autoid",
                    &self.o.plugin,
                    &self.autoid_config(arm, phase)?,
                )]
            }
            // The checking agent's cluster is added by `run_one`, which starts that agent.
            Arm::ExtAuthz => envoy::ext_authz_filters(CHECK_CLUSTER),
            // No Envoy: nginx asks the agent itself (`run_one`).
            Arm::Nginx => Vec::new(),
        };
        Ok((filters, clusters))
    }

    /// The requests of one run: `count` unique proofs, or a small list to cycle.
    fn requests(&self, arm: Arm, count: usize) -> Result<Requests> {
        self.requests_in(arm, count, Forms::from_version(self.o.proof_version))
    }

    /// [`Bench::requests`], the proofs in `forms`.
    fn requests_in(&self, arm: Arm, count: usize, forms: Forms) -> Result<Requests> {
        let cycled = |bytes| Requests {
            bytes,
            unique: false,
        };
        Ok(match arm {
            Arm::None => cycled(vec![loadgen::request(HOST, PATH, None)]),
            Arm::Floor => cycled(vec![loadgen::request(
                HOST,
                PATH,
                Some(("x-floor-in", "bench")),
            )]),
            Arm::Jwt => cycled(
                self.jwts
                    .iter()
                    .map(|t| {
                        loadgen::request(
                            HOST,
                            PATH,
                            Some(("authorization", &format!("Bearer {t}"))),
                        )
                    })
                    .collect(),
            ),
            // One request, the same password every time: what a Basic client sends.
            Arm::Basic => cycled(vec![loadgen::request(
                HOST,
                PATH,
                Some(("authorization", BASIC_CREDENTIALS)),
            )]),
            Arm::Warm | Arm::Directory | Arm::Fleet | Arm::ExtAuthz | Arm::Nginx => Requests {
                bytes: proofs::proof_requests(
                    &self.public,
                    &self.file,
                    PROOF_HEADER,
                    Sessions::Shared(self.o.sessions),
                    forms,
                    count,
                    self.threads,
                )?,
                unique: true,
            },
            Arm::Cold | Arm::ColdAgent => Requests {
                bytes: proofs::proof_requests(
                    &self.public,
                    &self.file,
                    PROOF_HEADER,
                    Sessions::PerProof,
                    forms,
                    count,
                    self.threads,
                )?,
                unique: true,
            },
        })
    }

    fn run_one(
        &self,
        arm: Arm,
        rep: usize,
        phase: Phase,
        rate: Option<f64>,
        expected_rps: f64,
    ) -> Result<RunRecord> {
        let cold = arm.is_cold();
        let (warmup, duration) = if cold {
            (self.s.warmup.min(1.0), self.s.cold_duration)
        } else {
            (self.s.warmup, self.s.duration)
        };
        let count = match rate {
            Some(r) => (r * (warmup + duration) * 1.05) as usize + 64,
            None => (expected_rps * (warmup + duration) * 1.25) as usize + 64,
        };
        let count = match arm {
            Arm::Cold => count.min(self.s.cold_proofs_cap),
            // Natively unwrapped: an order of magnitude more sessions per second.
            Arm::ColdAgent => count.min(self.s.cold_proofs_cap * 10),
            _ => count,
        };
        let (filters, mut clusters) = self.filters(arm, phase)?;
        let listen = free_port()?;
        let admin = free_port()?;
        let name = format!("{}-{}-{:?}", arm.letter(), rep, phase).to_lowercase();
        // Arm (x): a fresh checking agent per run, as every other arm gets a fresh Envoy (fresh
        // shared data: an empty replay table), deciding with the warm arm's configuration.
        let checker = match (arm, &self.directory) {
            (Arm::ExtAuthz | Arm::Nginx, Some(d)) => {
                let config = self.autoid_config(Arm::Warm, phase)?;
                let c = d.start_checker(&self.o.bridge, &self.out, &name, &config)?;
                clusters.push(envoy::pipe_cluster(CHECK_CLUSTER, &c.socket));
                Some(c)
            }
            (Arm::ExtAuthz | Arm::Nginx, None) => bail!("arms (x) and (n) need the agent"),
            _ => None,
        };
        // Arm (n): nginx in Envoy's place, asking the same kind of checking agent.
        let proxy = match (arm, &checker) {
            (Arm::Nginx, Some(c)) => {
                Proxy::Nginx(nginx::Front::start(&self.out, &name, listen, &c.socket)?)
            }
            _ => {
                let bootstrap = envoy::bootstrap(listen, admin, filters, clusters);
                Proxy::Envoy(Envoy::start(
                    &self.o.envoy,
                    &self.out,
                    &name,
                    &bootstrap,
                    listen,
                    admin,
                )?)
            }
        };
        // Arm (h)'s new sessions go to the agent: in v1/v2 (no possession ticket) its small lane
        // for unchecked sessions (200/s) would shed them, so they speak v3, as clients do.
        let forms = if phase.as_make_run() || arm == Arm::ColdAgent {
            Forms::V3
        } else {
            Forms::from_version(self.o.proof_version)
        };
        let requests = self.requests_in(arm, count, forms)?;
        let prepared = requests.bytes.len();
        // Enough new sessions that none is sent twice (a repeat would be warm).
        let sessions = |rate: f64, source: IpAddr| -> Result<(flood::Plan, Stream)> {
            let n = (rate * (warmup + duration + 5.0) * 1.5) as usize + 16;
            let requests = self.requests_in(Arm::ColdAgent, n, Forms::V3)?.bytes;
            Ok((
                flood::Plan {
                    addr: proxy.addr(),
                    rate,
                    sources: vec![source],
                    connections: LEGIT_CONNECTIONS,
                    latency: true,
                },
                Stream {
                    requests: requests
                        .into_iter()
                        .map(|r| ("v3_new_session", r))
                        .collect(),
                    unique: true,
                },
            ))
        };
        let (beside, legit) = match phase {
            Phase::Flood => {
                let rate = self.o.flood_rate;
                let sources = flood::sources(usize::from(self.o.flood_sources));
                let count = ((rate * FLOOD_SECONDS) as usize).max(100);
                let junk = junk::proofs(
                    &self.public,
                    self.epoch.params(),
                    SUBJECT,
                    &proofs::bench_request(),
                    count,
                    self.threads,
                    proofs::unix_now()?,
                )?;
                let junk = Stream {
                    requests: junk
                        .into_iter()
                        .map(|(k, p)| {
                            (
                                k.label(),
                                loadgen::request(HOST, PATH, Some((PROOF_HEADER, &p))),
                            )
                        })
                        .collect(),
                    unique: false,
                };
                let plan = flood::Plan {
                    addr: proxy.addr(),
                    rate,
                    connections: flood::connections_for(sources.len()),
                    sources,
                    latency: false,
                };
                let legit = (self.o.legit_sessions_rate > 0.0)
                    .then(|| sessions(self.o.legit_sessions_rate, flood::LEGIT_SOURCE))
                    .transpose()?;
                (Some((plan, junk)), legit)
            }
            Phase::AgentSessions => (
                Some(sessions(self.o.new_sessions_rate, flood::SESSIONS_SOURCE)?),
                None,
            ),
            _ => (None, None),
        };
        let mut watch = vec![proxy.pid()];
        if let (Some(c), Some(d)) = (&checker, &self.directory) {
            watch.push(c.pid());
            watch.push(d.slapd_pid());
        } else if let (true, Some(d)) = (
            arm.needs_bridge() || phase.keys_at_agent(arm),
            &self.directory,
        ) {
            watch.push(d.bridge_pid());
            watch.push(d.slapd_pid());
            if let Some(pid) = d.redis_pid() {
                watch.push(pid);
            }
        }
        let plan = Plan {
            addr: proxy.addr(),
            connections: if rate.is_some() {
                self.o.paced_connections
            } else {
                self.o.connections
            },
            mode: rate.map_or(Mode::Saturate, Mode::Paced),
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            watch,
            // Sessions are unwrapped before the clock starts (the warm arms).
            prime: if matches!(
                arm,
                Arm::Warm | Arm::Directory | Arm::Fleet | Arm::ExtAuthz | Arm::Nginx
            ) {
                self.o.sessions
            } else {
                0
            },
        };
        let agent_before = match (phase, &self.directory) {
            (Phase::Flood, Some(d)) => d.counters(),
            _ => BTreeMap::new(),
        };
        let flooding = beside
            .map(|(plan, stream)| Flood::start(plan, stream))
            .transpose()?;
        let legit_sessions = legit
            .map(|(plan, stream)| Flood::start(plan, stream))
            .transpose()?;
        let outcome = loadgen::run(&plan, requests);
        let flood = flooding.map(Flood::stop);
        let legit = legit_sessions.map(Flood::stop);
        let outcome = outcome?;
        let agent_counters: BTreeMap<String, u64> = match (phase, &self.directory) {
            (Phase::Flood, Some(d)) => d
                .counters()
                .into_iter()
                .map(|(k, after)| {
                    let before = agent_before.get(&k).copied().unwrap_or(0);
                    (k, after.saturating_sub(before))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut counters = BTreeMap::new();
        match &proxy {
            Proxy::Envoy(proxy) => {
                if arm.is_autoid() {
                    counters.extend(settled_stats(proxy, outcome.sent)?);
                }
                if arm == Arm::Jwt {
                    counters.extend(proxy.stats("jwt_authn")?);
                }
                if arm == Arm::ExtAuthz {
                    counters.extend(proxy.stats("ext_authz")?);
                }
            }
            Proxy::Nginx(front) => {
                let errors = front.error_log();
                if !errors.is_empty() {
                    eprintln!("  n: nginx's error log:\n{errors}");
                }
            }
        }
        let rss = proxy.rss_kb();
        drop(proxy);
        drop(checker);
        let per_req = |secs: f64| {
            if outcome.completed == 0 {
                f64::NAN
            } else {
                secs * 1e6 / outcome.completed as f64
            }
        };
        let envoy_cpu = outcome
            .watched_cpu_secs
            .first()
            .copied()
            .unwrap_or(f64::NAN);
        let directory_cpu = (outcome.watched_cpu_secs.len() > 1)
            .then(|| per_req(outcome.watched_cpu_secs[1..].iter().sum()));
        let record = RunRecord {
            arm: arm.letter(),
            rep,
            phase,
            rate_target: rate,
            envoy_cpu_us_per_req: per_req(envoy_cpu),
            envoy_cpu_util: envoy_cpu / outcome.window_secs,
            loadgen_cpu_util: outcome.loadgen_cpu_secs / outcome.window_secs,
            directory_cpu_us_per_req: directory_cpu,
            prepared,
            envoy_rss_kb: rss,
            counters,
            outcome,
            flood,
            legit,
            agent_counters,
        };
        eprintln!(
            "  {} {:<30} rep {} {:<10} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  envoy {:>6.1} µs/req ({:.2} cpu)  loadgen {:.2} cpu{}{}",
            arm.letter(),
            arm.name(),
            rep,
            format!("{phase:?}").to_lowercase(),
            record.outcome.rps,
            record.outcome.p50_us,
            record.outcome.p99_us,
            record.envoy_cpu_us_per_req,
            record.envoy_cpu_util,
            record.loadgen_cpu_util,
            if record.outcome.non_200 > 0 {
                format!("  NON-200: {}", record.outcome.non_200)
            } else {
                String::new()
            },
            if record.outcome.exhausted {
                "  (proof list exhausted: window cut short)"
            } else {
                ""
            },
        );
        Ok(record)
    }
}

/// The gateway of one run: Envoy, or nginx for arm (n).
enum Proxy {
    Envoy(Envoy),
    Nginx(nginx::Front),
}

impl Proxy {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Proxy::Envoy(e) => e.addr,
            Proxy::Nginx(n) => n.addr,
        }
    }

    /// The process whose CPU is the gateway's (Envoy; nginx's worker).
    fn pid(&self) -> u32 {
        match self {
            Proxy::Envoy(e) => e.pid(),
            Proxy::Nginx(n) => n.pid(),
        }
    }

    fn rss_kb(&self) -> Option<u64> {
        match self {
            Proxy::Envoy(e) => e.rss_kb(),
            Proxy::Nginx(n) => n.rss_kb(),
        }
    }
}

/// Median, min and max.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

/// The sum of the counters whose names end with `suffix` (one per worker or listener).
pub(crate) fn counter_sum<'a>(
    counters: impl IntoIterator<Item = &'a (String, u64)>,
    suffix: &str,
) -> u64 {
    counters
        .into_iter()
        .filter(|(k, _)| k.ends_with(suffix))
        .map(|(_, v)| *v)
        .sum()
}

/// Median, min and max of `values` (finite ones), as `summary.json` writes spreads; `None` when
/// there is none.
pub(crate) fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine(envoy: &Path) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let envoy_version = std::process::Command::new(envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "memory": sh("free -h | awk '/^Mem:/ {print $2}'"),
        "kernel": sh("uname -srm"),
        "envoy": envoy_version,
        "git_head": sh("git rev-parse --short HEAD"),
        "uncommitted_in_plugin_or_protocol": sh("git status --short -- plugin protocol | tr '\\n' ' '"),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The bench.
pub fn main(o: &Options) -> Result<()> {
    let arms: Vec<Arm> = o
        .arms
        .chars()
        .map(|c| Arm::from_letter(c).with_context(|| format!("--arms: unknown arm {c:?}")))
        .collect::<Result<_>>()?;
    let quick = o.quick
        || std::env::var("BENCH_QUICK").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let s = if quick {
        Settings {
            reps: o.reps.unwrap_or(1),
            warmup: o.warmup.unwrap_or(1.0),
            duration: o.duration.unwrap_or(2.0),
            cold_duration: o.cold_duration.unwrap_or(2.0),
            cold_proofs_cap: 600,
        }
    } else {
        Settings {
            reps: o.reps.unwrap_or(3),
            warmup: o.warmup.unwrap_or(2.0),
            duration: o.duration.unwrap_or(10.0),
            cold_duration: o.cold_duration.unwrap_or(8.0),
            cold_proofs_cap: 4000,
        }
    };
    for (what, path, how) in [
        ("Envoy", &o.envoy, "make deps-envoy"),
        ("the autoid filter", &o.plugin, "make wasm"),
        ("the floor filter", &o.floor, "make wasm"),
    ] {
        if !path.exists() {
            bail!("{what} is missing at {}: run `{how}`", path.display());
        }
    }
    let phase3 = arms.contains(&Arm::Warm) && o.flood_rate > 0.0;
    let phase4 = arms.contains(&Arm::Warm) && o.new_sessions_rate > 0.0;
    let needs_agent = phase3 || phase4 || arms.iter().any(|a| a.needs_bridge());
    if needs_agent && !o.bridge.exists() {
        bail!(
            "the autoid agent is missing at {}: run `cargo build --release -p autoid-agent`",
            o.bridge.display()
        );
    }
    let started = Instant::now();
    let wrk_version = wrk_version(o, &arms)?;
    std::fs::create_dir_all(&o.out)?;
    let out = o.out.canonicalize()?;
    // Snapshot the modules: another build may replace them while the bench runs, and proofs made
    // by this binary must meet the filter built from the same protocol.
    let mut o = o.clone();
    for (src, name) in [
        (&mut o.plugin, "autoid_plugin.wasm"),
        (&mut o.floor, "autoid_floor_filter.wasm"),
    ] {
        let copy = out.join(name);
        std::fs::copy(&*src, &copy).with_context(|| format!("copy {}", src.display()))?;
        *src = copy;
    }
    let o = &o;
    let load_before = loadavg();
    let top_before = sh("ps aux --sort=-%cpu | head -6");
    eprintln!("autoid-bench: load average at start: {load_before}");

    let mut rng = proofs::rng();
    let gateway = GatewayKey::from_pem("bench-3072", steps::KEY_3072_PEM)?;
    let public = gateway.public();
    let epoch = Epoch::generate("bench-ep", &mut rng)?;
    let file = epoch.issue(SUBJECT)?;
    let jwt = JwtIssuer::generate()?;
    let jwts = (0..256)
        .map(|i| jwt.token(SUBJECT, i))
        .collect::<Result<Vec<_>>>()?;
    let directory = if needs_agent {
        eprintln!("autoid-bench: starting slapd and the autoid agent");
        let pem = gateway.to_pem()?;
        Some(Directory::start(
            &o.bridge,
            &out,
            Some((gateway.kid(), pem.as_str())),
            Some((epoch.id(), epoch.to_json().as_str())),
            arms.contains(&Arm::Fleet),
        )?)
    } else {
        None
    };
    let ctx = Bench {
        o,
        s,
        out: out.clone(),
        gateway,
        public,
        epoch,
        file,
        jwt,
        jwts,
        directory,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };

    let mut records: Vec<RunRecord> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut wrk_records: Vec<wrk::Record> = Vec::new();
    let best = |records: &[RunRecord], arm: Arm, default: f64| {
        records
            .iter()
            .filter(|r| r.arm == arm.letter() && r.phase == Phase::Saturation)
            .map(|r| r.outcome.rps)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            .unwrap_or(default)
    };
    eprintln!(
        "autoid-bench: phase 1, saturation ({} repetitions)",
        ctx.s.reps
    );
    for rep in 0..ctx.s.reps {
        for &arm in &arms {
            // How many unique proofs to make: above anything this arm can reach.
            let expected = match arm {
                Arm::Cold => best(&records, Arm::Cold, 400.0) * 1.5,
                Arm::ColdAgent => best(&records, Arm::ColdAgent, 1000.0) * 1.5,
                Arm::Directory => best(
                    &records,
                    Arm::Directory,
                    best(&records, Arm::Warm, best(&records, Arm::Floor, 40_000.0)),
                ),
                _ => best(&records, Arm::Floor, best(&records, Arm::None, 40_000.0)),
            };
            match ctx.run_one(arm, rep, Phase::Saturation, None, expected) {
                Ok(r) => records.push(r),
                Err(e) => {
                    eprintln!("  {} rep {rep} saturation FAILED: {e:#}", arm.letter());
                    failures.push(format!("{}/{rep}/saturation: {e:#}", arm.letter()));
                }
            }
        }
        if let Some(version) = &wrk_version {
            wrk_records.extend(ctx.wrk_rep(version, rep, &arms, &records, &mut failures));
        }
    }
    let median_rps = |arm: Arm| {
        let v: Vec<f64> = records
            .iter()
            .filter(|r| r.arm == arm.letter() && r.phase == Phase::Saturation)
            .map(|r| r.outcome.rps)
            .collect();
        spread(&v).map(|s| s.median)
    };
    let slowest = arms
        .iter()
        .filter(|a| !a.is_cold())
        .filter_map(|a| median_rps(*a))
        .fold(f64::INFINITY, f64::min);
    let paced_rate = o
        .paced_rate
        .unwrap_or_else(|| (slowest * 0.5).floor().max(1.0));
    let cold_rate = median_rps(Arm::Cold).map(|r| (r * 0.5).max(1.0));
    let cold_agent_rate = median_rps(Arm::ColdAgent).map(|r| (r * 0.5).max(1.0));
    eprintln!(
        "autoid-bench: phase 2, paced at {paced_rate:.0} req/s (cold arm: {})",
        cold_rate.map_or("-".to_owned(), |r| format!("{r:.1} req/s"))
    );
    for rep in 0..ctx.s.reps {
        for &arm in &arms {
            let rate = match arm {
                Arm::Cold => cold_rate.unwrap_or(paced_rate),
                Arm::ColdAgent => cold_agent_rate.unwrap_or(paced_rate),
                _ => paced_rate,
            };
            match ctx.run_one(arm, rep, Phase::Paced, Some(rate), rate) {
                Ok(r) => records.push(r),
                Err(e) => {
                    eprintln!("  {} rep {rep} paced FAILED: {e:#}", arm.letter());
                    failures.push(format!("{}/{rep}/paced: {e:#}", arm.letter()));
                }
            }
        }
    }
    if phase3 || phase4 {
        eprintln!(
            "autoid-bench: phases 3 and 4, the warm arm paced at {paced_rate:.0} req/s with the keys and epochs at the agent (as `make run`): alone{}{}",
            if phase3 {
                format!(
                    "; beside a junk flood of {:.0} new sessions/s from {} sources and {:.0} legitimate new sessions/s from {}",
                    o.flood_rate,
                    o.flood_sources,
                    o.legit_sessions_rate,
                    flood::LEGIT_SOURCE
                )
            } else {
                String::new()
            },
            if phase4 {
                format!(
                    "; beside {:.0} new sessions/s from {}",
                    o.new_sessions_rate,
                    flood::SESSIONS_SOURCE
                )
            } else {
                String::new()
            },
        );
        // Each repetition: the baseline, then beside the flood, then beside new sessions.
        let phases: Vec<Phase> = [
            (true, Phase::AgentPaced),
            (phase3, Phase::Flood),
            (phase4, Phase::AgentSessions),
        ]
        .into_iter()
        .filter_map(|(on, p)| on.then_some(p))
        .collect();
        for rep in 0..ctx.s.reps {
            for &phase in &phases {
                match ctx.run_one(Arm::Warm, rep, phase, Some(paced_rate), paced_rate) {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        eprintln!("  c rep {rep} {phase:?} FAILED: {e:#}");
                        failures.push(format!("c/{rep}/{phase:?}: {e:#}"));
                    }
                }
            }
        }
    }
    let load_after = loadavg();
    drop(ctx.directory);

    let summary = summarize(
        &records,
        &arms,
        o,
        &ctx.s,
        paced_rate,
        cold_rate,
        json!({
            "machine": machine(&o.envoy),
            "load_before": load_before,
            "load_after": load_after,
            "top_before": top_before,
            "plugin_wasm_sha256": sh(&format!("sha256sum {} | cut -c1-16", o.plugin.display())),
        }),
    );
    let summary = with_wrk(summary, &wrk_records, wrk_version.as_deref(), &ctx.s, o);
    let json_path = out.join("summary.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&summary)?)?;
    let mut table = markdown(&summary, &arms);
    table.push_str(&wrk::markdown(&summary));
    std::fs::write(out.join("summary.md"), &table)?;
    std::fs::write(out.join("bench.svg"), chart::bench(&summary)?)?;
    println!("{table}");
    if let Some(verdict) = junk_flood_verdict(&summary) {
        eprintln!("autoid-bench: {verdict}");
    }
    eprintln!(
        "autoid-bench: wrote {}, summary.md and bench.svg ({:.0} s)",
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "failed runs (the summary holds the others):\n{}",
            failures.join("\n")
        );
    }
    let failed: Vec<String> = records
        .iter()
        .filter(|r| r.outcome.completed == 0 || r.outcome.non_200 * 1000 > r.outcome.completed)
        .map(|r| format!("{}/{}/{:?}", r.arm, r.rep, r.phase))
        .collect();
    if !failed.is_empty() {
        bail!(
            "runs with more than 0.1% non-200 answers (see the Envoy logs in {}): {}",
            out.display(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn summarize(
    records: &[RunRecord],
    arms: &[Arm],
    o: &Options,
    s: &Settings,
    paced_rate: f64,
    cold_rate: Option<f64>,
    env: Value,
) -> Value {
    let pick = |arm: Arm, phase: Phase, f: &dyn Fn(&RunRecord) -> f64| -> Vec<f64> {
        records
            .iter()
            .filter(|r| r.arm == arm.letter() && r.phase == phase)
            .map(f)
            .collect()
    };
    let mut per_arm = serde_json::Map::new();
    for &arm in arms {
        per_arm.insert(
            arm.letter().to_string(),
            json!({
                "name": arm.name(),
                "saturation": {
                    "rps": spread(&pick(arm, Phase::Saturation, &|r| r.outcome.rps)),
                    "envoy_cpu_us_per_req": spread(&pick(arm, Phase::Saturation, &|r| r.envoy_cpu_us_per_req)),
                    "envoy_cpu_util": spread(&pick(arm, Phase::Saturation, &|r| r.envoy_cpu_util)),
                    "loadgen_cpu_util": spread(&pick(arm, Phase::Saturation, &|r| r.loadgen_cpu_util)),
                    "p50_us": spread(&pick(arm, Phase::Saturation, &|r| r.outcome.p50_us)),
                    "p99_us": spread(&pick(arm, Phase::Saturation, &|r| r.outcome.p99_us)),
                    "directory_cpu_us_per_req": spread(&pick(arm, Phase::Saturation, &|r| r.directory_cpu_us_per_req.unwrap_or(f64::NAN))),
                },
                "paced": {
                    "rate": spread(&pick(arm, Phase::Paced, &|r| r.rate_target.unwrap_or(f64::NAN))).map_or(paced_rate, |s| s.median),
                    "achieved_rps": spread(&pick(arm, Phase::Paced, &|r| r.outcome.rps)),
                    "p50_us": spread(&pick(arm, Phase::Paced, &|r| r.outcome.p50_us)),
                    "p99_us": spread(&pick(arm, Phase::Paced, &|r| r.outcome.p99_us)),
                    "p999_us": spread(&pick(arm, Phase::Paced, &|r| r.outcome.p999_us)),
                    "envoy_cpu_us_per_req": spread(&pick(arm, Phase::Paced, &|r| r.envoy_cpu_us_per_req)),
                },
            }),
        );
    }
    // Ratios per repetition (the two arms of a ratio ran minutes apart at most), then spread.
    let ratio = |num: Arm, den: Arm, f: &dyn Fn(&RunRecord) -> f64| -> Value {
        let n = pick(num, Phase::Saturation, f);
        let d = pick(den, Phase::Saturation, f);
        let per_rep: Vec<f64> = n.iter().zip(&d).map(|(n, d)| n / d).collect();
        json!({ "median": spread(&per_rep).map(|s| s.median), "spread": spread(&per_rep), "per_rep": per_rep })
    };
    let rps = |r: &RunRecord| r.outcome.rps;
    let cpu = |r: &RunRecord| r.envoy_cpu_us_per_req;
    let beside = |phase: Phase| -> Vec<&FloodOutcome> {
        records
            .iter()
            .filter(|r| r.phase == phase)
            .filter_map(|r| r.flood.as_ref())
            .collect()
    };
    let session_runs = beside(Phase::AgentSessions);
    // Phase 4: beside new sessions against alone, same bootstrap, repetition by repetition.
    let with_vs_without = |f: &dyn Fn(&RunRecord) -> f64| -> Value {
        let n = pick(Arm::Warm, Phase::AgentSessions, f);
        let d = pick(Arm::Warm, Phase::AgentPaced, f);
        let per_rep: Vec<f64> = n.iter().zip(&d).map(|(n, d)| n / d).collect();
        json!({ "median": spread(&per_rep).map(|s| s.median), "spread": spread(&per_rep), "per_rep": per_rep })
    };
    let warm_beside_new_sessions = json!({
        "new_sessions_rate": o.new_sessions_rate,
        "source": flood::SESSIONS_SOURCE.to_string(),
        "sessions_sent": session_runs.iter().map(|f| f.sent).collect::<Vec<_>>(),
        "sessions_ok": session_runs.iter().map(|f| f.ok).collect::<Vec<_>>(),
        "sessions_not_ok": session_runs.iter().map(|f| f.sent - f.ok).sum::<u64>(),
        "agent_session_callouts": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| counter(r, "autoid_agent_session_callouts"))),
        "without": {
            "achieved_rps": spread(&pick(Arm::Warm, Phase::AgentPaced, &|r| r.outcome.rps)),
            "p50_us": spread(&pick(Arm::Warm, Phase::AgentPaced, &|r| r.outcome.p50_us)),
            "p99_us": spread(&pick(Arm::Warm, Phase::AgentPaced, &|r| r.outcome.p99_us)),
        },
        "with": {
            "achieved_rps": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| r.outcome.rps)),
            "p50_us": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| r.outcome.p50_us)),
            "p99_us": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| r.outcome.p99_us)),
        },
        "p50_with_vs_without": with_vs_without(&|r| r.outcome.p50_us),
    });
    json!({
        "junk_flood": junk_flood(records, o),
        "warm_beside_new_sessions": warm_beside_new_sessions,
        "warm_p99_with_cold_vs_without": with_vs_without(&|r| r.outcome.p99_us),
        "warm_vs_floor": ratio(Arm::Warm, Arm::Floor, &rps),
        "warm_vs_jwt": ratio(Arm::Warm, Arm::Jwt, &rps),
        "warm_vs_none": ratio(Arm::Warm, Arm::None, &rps),
        "cold_vs_warm": ratio(Arm::Cold, Arm::Warm, &rps),
        "cold_agent_vs_cold_wasm": ratio(Arm::ColdAgent, Arm::Cold, &rps),
        "directory_vs_warm": ratio(Arm::Directory, Arm::Warm, &rps),
        "fleet_vs_warm": ratio(Arm::Fleet, Arm::Warm, &rps),
        "basic_vs_warm": ratio(Arm::Basic, Arm::Warm, &rps),
        "extauthz_vs_warm": ratio(Arm::ExtAuthz, Arm::Warm, &rps),
        "nginx_vs_warm": ratio(Arm::Nginx, Arm::Warm, &rps),
        "basic": {
            // Binds the agent made per request: ~0 once each worker remembers the password.
            "binds_per_request": spread(&pick(Arm::Basic, Phase::Saturation, &|r| {
                counter(r, "autoid_basic_binds") / counter(r, "autoid_requests_allowed")
            })),
            "paced_p50_us": spread(&pick(Arm::Basic, Phase::Paced, &|r| r.outcome.p50_us)),
            "paced_p99_us": spread(&pick(Arm::Basic, Phase::Paced, &|r| r.outcome.p99_us)),
        },
        "fleet_replay": {
            // One claim per allowed request reaches Redis (a SET NX through the agent).
            "redis_claims_per_request": spread(&pick(Arm::Fleet, Phase::Saturation, &|r| {
                counter(r, "autoid_replay_fleet_claims") / counter(r, "autoid_requests_allowed")
            })),
            // Claims go to the agent in batches (one callout per batch): claims per batch.
            "claims_per_batch": spread(&pick(Arm::Fleet, Phase::Saturation, &|r| {
                counter(r, "autoid_replay_fleet_claims") / counter(r, "autoid_replay_fleet_batches")
            })),
            "paced_claims_per_batch": spread(&pick(Arm::Fleet, Phase::Paced, &|r| {
                counter(r, "autoid_replay_fleet_claims") / counter(r, "autoid_replay_fleet_batches")
            })),
            "paced_p50_us": spread(&pick(Arm::Fleet, Phase::Paced, &|r| r.outcome.p50_us)),
            "paced_p99_us": spread(&pick(Arm::Fleet, Phase::Paced, &|r| r.outcome.p99_us)),
            "agent_slapd_redis_cpu_us_per_req": spread(&pick(Arm::Fleet, Phase::Saturation, &|r| {
                r.directory_cpu_us_per_req.unwrap_or(f64::NAN)
            })),
        },
        "envoy_cpu_per_req_ratios": {
            "warm_vs_floor": ratio(Arm::Warm, Arm::Floor, &cpu),
            "warm_vs_jwt": ratio(Arm::Warm, Arm::Jwt, &cpu),
            "warm_vs_none": ratio(Arm::Warm, Arm::None, &cpu),
            "cold_vs_warm": ratio(Arm::Cold, Arm::Warm, &cpu),
        },
        "targets": {
            "warm_vs_floor_goal": 0.8,
            "warm_vs_jwt_required": 1.0,
            "cold_agent_vs_cold_wasm_min": 10.0,
            "warm_p99_with_cold_vs_without_max": 1.5,
            "fleet_vs_warm_min": 0.5,
            "fleet_paced_p99_us_max": 2000,
        },
        "paced_rate_rps": paced_rate,
        "cold_paced_rate_rps": cold_rate,
        "settings": {
            "quick": s.cold_proofs_cap < 1000,
            "reps": s.reps,
            "warmup_secs": s.warmup,
            "duration_secs": s.duration,
            "cold_duration_secs": s.cold_duration,
            "connections": o.connections,
            "paced_connections": o.paced_connections,
            "sessions": o.sessions,
            "proof_version": o.proof_version,
            "envoy_concurrency": 1,
            "rsa_bits_autoid": 3072,
            "rsa_bits_jwt": 2048,
            "interval_count": 64,
            "replay": "the filter's defaults",
            "max_skew_secs": MAX_SKEW_SECS,
        },
        "environment": env,
        "arms": per_arm,
        "runs": records,
    })
}

/// Phase 3's targets (issue 25): legitimate new sessions' p99 beside the junk flood, and the warm
/// arm's p99 beside it over its p99 alone (phase 4's `AgentPaced`, same repetition).
pub const LEGIT_NEW_SESSION_P99_US_MAX: f64 = 1_000_000.0;
/// See [`LEGIT_NEW_SESSION_P99_US_MAX`].
pub const WARM_P99_RATIO_MAX: f64 = 1.5;

/// Whether a junk answer is flagged: every v3 junk proof must get 401; a v2 one gets 401, or 503
/// when the agent's small lane for unchecked sessions sheds it (counted apart).
pub fn junk_answer_flagged(label: &str, status: &str) -> bool {
    !matches!((label, status), (_, "401") | ("v2", "503"))
}

/// The verdict on phase 3's medians: (legitimate p99 met, warm ratio met); `None` where there is
/// no figure.
pub fn junk_flood_met(
    legit_p99_us: Option<f64>,
    warm_ratio: Option<f64>,
) -> (Option<bool>, Option<bool>) {
    (
        legit_p99_us.map(|p| p <= LEGIT_NEW_SESSION_P99_US_MAX),
        warm_ratio.map(|r| r <= WARM_P99_RATIO_MAX),
    )
}

/// `summary.json`'s `junk_flood`: phase 3 against phase 4's baseline, repetition by repetition.
fn junk_flood(records: &[RunRecord], o: &Options) -> Value {
    let runs: Vec<&RunRecord> = records.iter().filter(|r| r.phase == Phase::Flood).collect();
    let baseline = |rep: usize| {
        records
            .iter()
            .find(|r| r.phase == Phase::AgentPaced && r.rep == rep && r.arm == 'c')
    };
    let per = |f: &dyn Fn(&RunRecord) -> f64| -> Vec<f64> { runs.iter().map(|r| f(r)).collect() };
    let ratio = |f: &dyn Fn(&RunRecord) -> f64| -> Value {
        let per_rep: Vec<f64> = runs
            .iter()
            .filter_map(|r| baseline(r.rep).map(|b| f(r) / f(b)))
            .collect();
        json!({ "median": spread(&per_rep).map(|s| s.median), "spread": spread(&per_rep), "per_rep": per_rep })
    };
    let junk: Vec<&FloodOutcome> = runs.iter().filter_map(|r| r.flood.as_ref()).collect();
    let legit: Vec<&FloodOutcome> = runs.iter().filter_map(|r| r.legit.as_ref()).collect();
    let flagged: u64 = junk
        .iter()
        .flat_map(|f| f.by_label.iter())
        .flat_map(|(label, m)| m.iter().map(move |(status, n)| (label, status, n)))
        .filter(|(label, status, _)| junk_answer_flagged(label, status))
        .map(|(_, _, n)| n)
        .sum();
    let v2_shed: u64 = junk
        .iter()
        .filter_map(|f| f.by_label.get("v2").and_then(|m| m.get("503")))
        .sum();
    let legit_lat = |f: &dyn Fn(&flood::Latency) -> f64| -> Option<Spread> {
        spread(
            &legit
                .iter()
                .filter_map(|l| l.latency.as_ref().map(f))
                .collect::<Vec<_>>(),
        )
    };
    let legit_p99 = legit_lat(&|l| l.p99_us);
    let warm_ratio = ratio(&|r| r.outcome.p99_us);
    let (legit_met, warm_met) =
        junk_flood_met(legit_p99.map(|s| s.median), warm_ratio["median"].as_f64());
    let legit_non_2xx: u64 = legit.iter().map(|l| l.sent - l.ok).sum();
    let agent = |name: &str| -> Vec<u64> {
        runs.iter()
            .filter_map(|r| r.agent_counters.get(name).copied())
            .collect()
    };
    // The filter's counters (Envoy's stats) per run, by name.
    let envoy: serde_json::Map<String, Value> = [
        "autoid_requests_denied",
        "autoid_denied_entropy",
        "autoid_denied_rate_limited",
        "autoid_agent_session_callouts",
        "autoid_agent_session_failures",
        "autoid_agent_stream_callouts",
    ]
    .iter()
    .map(|name| {
        let v = per(&|r| counter(r, name));
        ((*name).to_owned(), json!(spread(&v)))
    })
    .collect();
    json!({
        "deployment": "keys and epochs at the agent, the filter's default cold-path budgets, protocol v3 (as `make run`)",
        "flood_rate": o.flood_rate,
        "flood_sources": o.flood_sources,
        "flood_source_first": flood::sources(1).first().map(ToString::to_string),
        "flood_connections": junk.first().map(|f| f.connections),
        "junk_mix": {
            "v3_new_subject": 0.8,
            "v3_known_subject": 0.1,
            "v2": 0.1,
        },
        "legit_sessions_rate": o.legit_sessions_rate,
        "legit_source": flood::LEGIT_SOURCE.to_string(),
        "targets": {
            "legit_new_session_p99_us_max": LEGIT_NEW_SESSION_P99_US_MAX,
            "warm_p99_ratio_max": WARM_P99_RATIO_MAX,
        },
        "legit_new_session_p99_us": legit_p99.map(|s| s.median),
        "warm_p99_ratio": warm_ratio,
        "met": {
            "legit_new_session_p99_us": legit_met,
            "warm_p99_ratio": warm_met,
            "legit_all_2xx": (!legit.is_empty()).then_some(legit_non_2xx == 0),
            "junk_all_refused": (!junk.is_empty()).then_some(flagged == 0),
        },
        "junk": {
            "achieved_rps": spread(&junk.iter().map(|f| f.achieved_rps).collect::<Vec<_>>()),
            // The flood's one thread, of one core.
            "client_cpu_util": spread(&junk.iter().map(|f| f.cpu_util).collect::<Vec<_>>()),
            "sent": junk.iter().map(|f| f.sent).collect::<Vec<_>>(),
            "answers": junk.iter().map(|f| &f.by_label).collect::<Vec<_>>(),
            "flagged": flagged,
            "v2_shed_503": v2_shed,
        },
        "legit": {
            "sent": legit.iter().map(|l| l.sent).collect::<Vec<_>>(),
            "ok": legit.iter().map(|l| l.ok).collect::<Vec<_>>(),
            "non_2xx": legit_non_2xx,
            "answers": legit.iter().map(|l| &l.by_label).collect::<Vec<_>>(),
            "achieved_rps": spread(&legit.iter().map(|l| l.achieved_rps).collect::<Vec<_>>()),
            "p50_us": legit_lat(&|l| l.p50_us),
            "p99_us": legit_p99,
            "max_us": legit_lat(&|l| l.max_us),
        },
        "agent": {
            "rsa_unwraps": agent("autoid_agent_rsa_unwraps_total"),
            "possession_refused": agent("autoid_agent_possession_refused_total"),
            "unchecked_shed": agent("autoid_agent_unchecked_shed_total"),
        },
        "envoy": envoy,
        "warm": {
            "with": {
                "achieved_rps": spread(&per(&|r| r.outcome.rps)),
                "p50_us": spread(&per(&|r| r.outcome.p50_us)),
                "p99_us": spread(&per(&|r| r.outcome.p99_us)),
                "non_200": runs.iter().map(|r| r.outcome.non_200).sum::<u64>(),
            },
            "p50_ratio": ratio(&|r| r.outcome.p50_us),
        },
    })
}

/// Phase 3's one-line verdict, or `None` when it did not run.
fn junk_flood_verdict(summary: &Value) -> Option<String> {
    let j = &summary["junk_flood"];
    let met = &j["met"];
    met["legit_new_session_p99_us"].as_bool()?;
    let word = |v: &Value| match v.as_bool() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    };
    Some(format!(
        "junk flood ({} new sessions/s from {} sources, achieved {} /s): legitimate new sessions p99 {} µs (target ≤ 1 000 000: {}; all 2xx: {}), warm p99 with/without {}× (target ≤ 1.5: {}); junk all refused: {} ({} flagged)",
        j["flood_rate"],
        j["flood_sources"],
        fmt_spread(&j["junk"]["achieved_rps"], 1.0, 0),
        fmt_spread(&j["legit"]["p99_us"], 1.0, 0),
        word(&met["legit_new_session_p99_us"]),
        word(&met["legit_all_2xx"]),
        fmt_spread(&j["warm_p99_ratio"]["spread"], 1.0, 2),
        word(&met["warm_p99_ratio"]),
        word(&met["junk_all_refused"]),
        j["junk"]["flagged"],
    ))
}

fn fmt_spread(v: &Value, scale: f64, digits: usize) -> String {
    let get = |k: &str| v.get(k).and_then(Value::as_f64);
    match (get("median"), get("min"), get("max")) {
        (Some(m), Some(lo), Some(hi)) => format!(
            "{:.d$} ({:.d$}–{:.d$})",
            m * scale,
            lo * scale,
            hi * scale,
            d = digits
        ),
        _ => "–".to_owned(),
    }
}

fn markdown(summary: &Value, arms: &[Arm]) -> String {
    let mut t = String::new();
    t.push_str("| arm | saturation req/s | Envoy CPU µs/req | Envoy CPU (cores) | load generator CPU (cores) | paced p50 µs | paced p99 µs |\n");
    t.push_str("|---|---|---|---|---|---|---|\n");
    for arm in arms {
        let a = &summary["arms"][arm.letter().to_string()];
        t.push_str(&format!(
            "| ({}) {} | {} | {} | {} | {} | {} | {} |\n",
            arm.letter(),
            arm.name(),
            fmt_spread(&a["saturation"]["rps"], 1.0, 0),
            fmt_spread(&a["saturation"]["envoy_cpu_us_per_req"], 1.0, 1),
            fmt_spread(&a["saturation"]["envoy_cpu_util"], 1.0, 2),
            fmt_spread(&a["saturation"]["loadgen_cpu_util"], 1.0, 2),
            fmt_spread(&a["paced"]["p50_us"], 1.0, 0),
            fmt_spread(&a["paced"]["p99_us"], 1.0, 0),
        ));
    }
    t.push_str("\n| ratio (saturation req/s, per repetition) | median (min–max) |\n|---|---|\n");
    for (k, label) in [
        ("warm_vs_floor", "c/f warm vs floor (goal ≥ 0.8)"),
        ("warm_vs_jwt", "c/b warm vs jwt_authn (required ≥ 1.0)"),
        ("warm_vs_none", "c/a warm vs no filter"),
        ("cold_vs_warm", "d/c cold vs warm"),
        (
            "cold_agent_vs_cold_wasm",
            "h/d cold through the agent vs cold in wasm (target ≥ 10)",
        ),
        ("directory_vs_warm", "e/c directory miss vs warm"),
        ("fleet_vs_warm", "g/c fleet replay vs warm (target ≥ 0.5)"),
        ("basic_vs_warm", "i/c HTTP Basic (bind remembered) vs warm"),
        (
            "extauthz_vs_warm",
            "x/c Envoy ext_authz to the agent vs warm wasm",
        ),
        (
            "nginx_vs_warm",
            "n/c nginx auth_request to the agent vs warm wasm",
        ),
    ] {
        t.push_str(&format!(
            "| {label} | {} |\n",
            fmt_spread(&summary[k]["spread"], 1.0, 3)
        ));
    }
    t.push_str(&format!(
        "\nPaced phase: {} req/s for every arm except cold ({}).\n",
        summary["paced_rate_rps"], summary["cold_paced_rate_rps"]
    ));
    let fleet = &summary["fleet_replay"];
    if fleet["claims_per_batch"].get("median").is_some() {
        t.push_str(&format!(
            "\nFleet replay: {} claims per batch (one agent callout each) at saturation, {} paced.\n",
            fmt_spread(&fleet["claims_per_batch"], 1.0, 1),
            fmt_spread(&fleet["paced_claims_per_batch"], 1.0, 2),
        ));
    }
    let j = &summary["junk_flood"];
    if j["warm"]["with"]["p99_us"].get("median").is_some() {
        t.push_str(&format!(
            "\nJunk flood of {} new sessions/s from {} sources ({}, client {} of a core), keys and epochs at the agent: \
             legitimate new sessions ({}/s from {}) p50 {} µs, p99 {} µs, max {} µs, non-2xx {}; \
             warm arm p50 {} µs, p99 {} µs, p99 with/without {}×; junk answers {}; agent RSA \
             unwraps {}, possession refused {}, unchecked shed {}.\n",
            j["flood_rate"],
            j["flood_sources"],
            fmt_spread(&j["junk"]["achieved_rps"], 1.0, 0) + " achieved",
            fmt_spread(&j["junk"]["client_cpu_util"], 1.0, 2),
            j["legit_sessions_rate"],
            j["legit_source"].as_str().unwrap_or("?"),
            fmt_spread(&j["legit"]["p50_us"], 1.0, 0),
            fmt_spread(&j["legit"]["p99_us"], 1.0, 0),
            fmt_spread(&j["legit"]["max_us"], 1.0, 0),
            j["legit"]["non_2xx"],
            fmt_spread(&j["warm"]["with"]["p50_us"], 1.0, 0),
            fmt_spread(&j["warm"]["with"]["p99_us"], 1.0, 0),
            fmt_spread(&j["warm_p99_ratio"]["spread"], 1.0, 2),
            j["junk"]["answers"],
            j["agent"]["rsa_unwraps"],
            j["agent"]["possession_refused"],
            j["agent"]["unchecked_shed"],
        ));
    }
    let n = &summary["warm_beside_new_sessions"];
    if n["with"]["p99_us"].get("median").is_some() {
        t.push_str(&format!(
            "\nWarm arm paced with the keys and epochs at the agent, beside {} new sessions/s from {}: \
             p50 {} µs, p99 {} µs; alone: p50 {} µs, p99 {} µs; p99 with/without {}× \
             (target ≤ 1.5); new sessions answered 2xx per run {}.\n",
            n["new_sessions_rate"],
            n["source"].as_str().unwrap_or("?"),
            fmt_spread(&n["with"]["p50_us"], 1.0, 0),
            fmt_spread(&n["with"]["p99_us"], 1.0, 0),
            fmt_spread(&n["without"]["p50_us"], 1.0, 0),
            fmt_spread(&n["without"]["p99_us"], 1.0, 0),
            fmt_spread(&summary["warm_p99_with_cold_vs_without"]["spread"], 1.0, 2),
            n["sessions_ok"],
        ));
    }
    t
}

/// The filter hands its per-request counters to Envoy on its one-second tick: read the stats once
/// they account for every request sent (allowed + denied), or after 3 s.
fn settled_stats(proxy: &Envoy, sent: u64) -> Result<Vec<(String, u64)>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stats = proxy.stats("autoid")?;
        let answered: u64 = stats
            .iter()
            .filter(|(k, _)| {
                k.ends_with("autoid_requests_allowed") || k.ends_with("autoid_requests_denied")
            })
            .map(|(_, v)| v)
            .sum();
        if answered >= sent || Instant::now() >= deadline {
            return Ok(stats);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// The wrk cross-check (bench/src/wrk.rs): arms (b) and (c) again, with Debian's wrk, at the end
// of every repetition of phase 1.

/// wrk's version when the cross-check runs (arms (b) or (c), no --no-wrk); an error naming the
/// install command when wrk is missing.
fn wrk_version(o: &Options, arms: &[Arm]) -> Result<Option<String>> {
    if o.no_wrk || !arms.iter().any(|a| matches!(a, Arm::Jwt | Arm::Warm)) {
        return Ok(None);
    }
    wrk::version(&o.wrk).map(Some)
}

/// Seconds of a measured wrk run.
fn wrk_duration(o: &Options, s: &Settings) -> f64 {
    o.wrk_duration.unwrap_or(if s.cold_proofs_cap < 1000 {
        2.0
    } else {
        s.duration
    })
}

/// Envoy's counters once they account for the requests in flight when wrk stopped: the arm's own
/// allowed count (the autoid filter hands its counters to Envoy on its one-second tick) caught up
/// with Envoy's 2xx and with what wrk saw answered, or after 3 s.
fn wrk_counters(proxy: &Envoy, arm: Arm, allowed: &str, wrk_ok: u64) -> Result<Vec<(String, u64)>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::sleep(Duration::from_millis(100));
    loop {
        let mut counters = proxy.stats(if arm.is_autoid() {
            "autoid"
        } else {
            "jwt_authn"
        })?;
        counters.extend(proxy.stats("^http.bench.downstream_rq_")?);
        let sum = |suffix: &str| counter_sum(&counters, suffix);
        let n = sum(allowed);
        if (n >= sum(".downstream_rq_2xx") && n >= wrk_ok) || Instant::now() >= deadline {
            return Ok(counters);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The summary with its `wrk` object.
fn with_wrk(
    mut summary: Value,
    records: &[wrk::Record],
    version: Option<&str>,
    s: &Settings,
    o: &Options,
) -> Value {
    let Some(version) = version else {
        return summary;
    };
    let settings = json!({
        "version": version,
        "threads": o.wrk_threads,
        "connections": o.connections,
        "warmup_secs": wrk::Plan::secs(s.warmup),
        "duration_secs": wrk::Plan::secs(wrk_duration(o, s)),
        "script": "bench/wrk/pool.lua",
    });
    let w = wrk::summarize(records, &summary, settings);
    if let Some(m) = summary.as_object_mut() {
        m.insert("wrk".into(), w);
    }
    summary
}

impl Bench<'_> {
    /// wrk on arms (b) and (c) (those of `arms`), after the in-house arms of repetition `rep`.
    fn wrk_rep(
        &self,
        version: &str,
        rep: usize,
        arms: &[Arm],
        records: &[RunRecord],
        failures: &mut Vec<String>,
    ) -> Vec<wrk::Record> {
        let mut out = Vec::new();
        for arm in [Arm::Jwt, Arm::Warm] {
            if !arms.contains(&arm) {
                continue;
            }
            // The pools' size: the best this arm reached with the in-house generator so far.
            let reached = records
                .iter()
                .filter(|r| r.arm == arm.letter() && r.phase == Phase::Saturation)
                .map(|r| r.outcome.rps)
                .fold(f64::NAN, f64::max);
            let rate = if reached.is_finite() {
                reached
            } else {
                40_000.0
            };
            let started = Instant::now();
            match self.run_wrk(arm, rep, rate) {
                Ok(r) => {
                    eprintln!(
                        "  {} {:<30} rep {} wrk        {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  envoy {:>6.1} µs/req ({:.2} cpu)  wrk {:.2} cpu  ({version}, {:.1} s)",
                        arm.letter(),
                        arm.name(),
                        rep,
                        r.rps,
                        r.outcome.measured.latency_us.p50,
                        r.outcome.measured.latency_us.p99,
                        r.envoy_cpu_us_per_req,
                        r.envoy_cpu_util,
                        r.wrk_cpu_util,
                        started.elapsed().as_secs_f64(),
                    );
                    out.push(r);
                }
                Err(e) => {
                    eprintln!("  {} rep {rep} wrk FAILED: {e:#}", arm.letter());
                    failures.push(format!("{}/{rep}/wrk: {e:#}", arm.letter()));
                }
            }
        }
        out
    }

    /// One arm under wrk: a fresh Envoy on the arm's saturation bootstrap, fresh requests.
    fn run_wrk(&self, arm: Arm, rep: usize, rate: f64) -> Result<wrk::Record> {
        let (filters, clusters) = self.filters(arm, Phase::Saturation)?;
        let listen = free_port()?;
        let admin = free_port()?;
        let name = format!("{}-{rep}-wrk", arm.letter());
        let bootstrap = envoy::bootstrap(listen, admin, filters, clusters);
        let proxy = Envoy::start(&self.o.envoy, &self.out, &name, &bootstrap, listen, admin)?;
        let plan = wrk::Plan {
            wrk: self.o.wrk.clone(),
            addr: proxy.addr,
            envoy_pid: proxy.pid(),
            threads: self.o.wrk_threads,
            connections: self.o.connections,
            warmup_secs: wrk::Plan::secs(self.s.warmup),
            duration_secs: wrk::Plan::secs(wrk_duration(self.o, &self.s)),
            prime: if arm == Arm::Warm { self.o.sessions } else { 0 },
            dir: self.out.clone(),
            name,
        };
        let requests = self.requests(arm, plan.requests_needed(rate))?;
        let outcome = wrk::run(&plan, requests)?;
        let (allowed, denied) = if arm.is_autoid() {
            ("autoid_requests_allowed", "autoid_requests_denied")
        } else {
            ("jwt_authn.allowed", "jwt_authn.denied")
        };
        let counters = wrk_counters(&proxy, arm, allowed, outcome.ok_total())?;
        drop(proxy);
        wrk::Record::check(
            arm.letter(),
            rep,
            outcome,
            counters,
            (allowed, denied),
            self.o.connections,
        )
    }
}

/// The sum of a run's counters whose names end with `name` (Envoy prefixes them per filter).
fn counter(r: &RunRecord, name: &str) -> f64 {
    r.counters
        .iter()
        .filter(|(k, _)| k.ends_with(name))
        .map(|(_, v)| *v as f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_junk_answer_but_401_is_flagged_except_a_shed_v2() {
        for label in ["v3_new_subject", "v3_known_subject", "v2"] {
            assert!(!junk_answer_flagged(label, "401"), "{label}");
            assert!(junk_answer_flagged(label, "200"), "{label}");
            assert!(junk_answer_flagged(label, "error"), "{label}");
            assert!(junk_answer_flagged(label, "429"), "{label}");
        }
        assert!(!junk_answer_flagged("v2", "503"));
        assert!(junk_answer_flagged("v3_new_subject", "503"));
        assert!(junk_answer_flagged("v3_known_subject", "503"));
    }

    #[test]
    fn the_targets_are_inclusive_and_absent_figures_have_no_verdict() {
        assert_eq!(
            junk_flood_met(Some(1_000_000.0), Some(1.5)),
            (Some(true), Some(true))
        );
        assert_eq!(
            junk_flood_met(Some(1_000_001.0), Some(1.51)),
            (Some(false), Some(false))
        );
        assert_eq!(junk_flood_met(None, None), (None, None));
    }
}
