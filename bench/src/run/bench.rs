//! One run: a fresh gateway for an arm and a phase, the load, the second client beside it, and
//! what it measured.

use super::*;

impl Bench<'_> {
    /// The filter's configuration. Phases 3 and 4 keep the default cold-path budgets (per worker
    /// and per source) and name the epoch without its secret: what `make run` deploys.
    pub(super) fn autoid_config(&self, arm: Arm, phase: Phase) -> Result<String> {
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

    pub(super) fn filters(&self, arm: Arm, phase: Phase) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut clusters = Vec::new();
        let filters = match arm {
            Arm::None => vec![],
            Arm::Floor => vec![envoy::wasm_filter("floor", &self.o.floor, "")],
            Arm::Jwt => vec![envoy::jwt_filter(&self.jwt.issuer, &self.jwt.jwks())],
            Arm::Warm | Arm::Cold | Arm::Directory | Arm::ColdAgent | Arm::Fleet | Arm::Basic => {
                if let (true, Some(d)) = (
                    arm.uses_agent() || phase.keys_at_agent(arm),
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
    pub(super) fn requests(&self, arm: Arm, count: usize) -> Result<Requests> {
        self.requests_in(arm, count, Forms::from_version(self.o.proof_version))
    }

    /// [`Bench::requests`], the proofs in `forms`.
    pub(super) fn requests_in(&self, arm: Arm, count: usize, forms: Forms) -> Result<Requests> {
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

    pub(super) fn run_one(
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
            arm.uses_agent() || phase.keys_at_agent(arm),
            &self.directory,
        ) {
            watch.push(d.agent_pid());
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
pub(super) enum Proxy {
    Envoy(Envoy),
    Nginx(nginx::Front),
}

impl Proxy {
    pub(super) fn addr(&self) -> std::net::SocketAddr {
        match self {
            Proxy::Envoy(e) => e.addr,
            Proxy::Nginx(n) => n.addr,
        }
    }

    /// The process whose CPU is the gateway's (Envoy; nginx's worker).
    pub(super) fn pid(&self) -> u32 {
        match self {
            Proxy::Envoy(e) => e.pid(),
            Proxy::Nginx(n) => n.pid(),
        }
    }

    pub(super) fn rss_kb(&self) -> Option<u64> {
        match self {
            Proxy::Envoy(e) => e.rss_kb(),
            Proxy::Nginx(n) => n.rss_kb(),
        }
    }
}

/// The filter hands its per-request counters to Envoy on its one-second tick: read the stats once
/// they account for every request sent (allowed + denied), or after 3 s.
pub(super) fn settled_stats(proxy: &Envoy, sent: u64) -> Result<Vec<(String, u64)>> {
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
