//! One run: a fresh gateway for an arm and a phase, the load, the second client beside it, and
//! what it measured.

use super::*;

impl Bench<'_> {
    /// The definitions of `arm`'s gateway, as an operator writes them for `autoid gateway
    /// render`: the keys and epochs at the agent (as `make run` deploys), the groups from the
    /// directory, one API on the bench's route. The agent is `agent` (the checking agent's socket
    /// for arms (x) and (n)); the listener `listen`; Envoy's admin a socket beside the definitions.
    pub(super) fn definitions(
        &self,
        arm: Arm,
        listen: u16,
        agent: &Path,
    ) -> (Value, Value, Target) {
        let mut def = gateway::gateway_definition(&gateway::Deployment {
            listen,
            wasm: &self.o.plugin,
            proof_header: PROOF_HEADER,
            keys_dir: &self.secrets.keys_dir,
            epoch_file: &self.secrets.epoch_file,
            agent,
            groups_ttl_secs: GROUPS_TTL_SECS,
        });
        def["plugin"]["limits"] =
            json!({ "max_skew_secs": MAX_SKEW_SECS, "session_lifetime_secs": 3600 });
        let mut auth = json!({
            "require": { "any_of": ["payments"] },
            "inject": { "authorization": { "value": "Bearer upstream-credential-for-the-bench" } },
            "identity": { "subject_header": "x-autoid-subject" }
        });
        match arm {
            // A new session per request, all from one source: the cold path's budgets raised
            // above what the arm reaches (the default per-source budget would shed it).
            Arm::Cold | Arm::ColdAgent => {
                def["plugin"]["cold_path"] =
                    json!({ "unwraps_per_second": 100000, "burst": 100000 });
                def["plugin"]["session_cache"] =
                    json!({ "max_entries": 65536, "local_max_entries": 8192 });
            }
            // Every group decision a directory round trip.
            Arm::Directory => {
                def["directory"] = json!({
                    "address": format!("unix:{}", agent.display()),
                    "timeout_ms": 2000,
                    "positive_ttl_secs": 0,
                    "negative_ttl_secs": 0,
                    "stale_if_error_secs": 0
                });
            }
            // Each allowed nonce is claimed again in Redis through the agent.
            Arm::Fleet => {
                def["plugin"]["replay"] = json!({ "scope": "fleet", "fleet_timeout_ms": 1000 });
            }
            // The demo's `test` (testgroup) over HTTP Basic from loopback; the agent binds once
            // per worker, the filter remembers the bind for the whole run.
            Arm::Basic => {
                auth = json!({
                    "methods": ["ldap_basic"],
                    "basic": { "plain_http": "loopback", "cache_ttl_secs": 300 },
                    "require": { "any_of": ["testgroup"] },
                    "inject": { "authorization": { "value": "Bearer upstream-credential-for-the-bench" } },
                    "identity": { "subject_header": "x-autoid-subject" }
                });
            }
            _ => {}
        }
        let target = match arm {
            Arm::ExtAuthz => Target::EnvoyExtAuthz,
            Arm::Nginx => Target::Nginx,
            _ => Target::EnvoyWasm,
        };
        (def, gateway::api(ROUTE_NAME, auth), target)
    }

    /// `arm`'s gateway for run `name`, rendered by `autoid gateway render` from
    /// [`Bench::definitions`], the upstream substituted; the non-autoid arms take the warm arm's
    /// bootstrap with autoid's filter replaced by theirs.
    pub(super) fn gateway(&self, arm: Arm, name: &str, listen: u16) -> Result<Config> {
        let agent = match arm {
            Arm::ExtAuthz | Arm::Nginx => self.out.join(format!("{name}.check.sock")),
            _ => self.out.join("agent.sock"),
        };
        let rendered_as = match arm {
            Arm::None | Arm::Floor | Arm::Jwt => Arm::Warm,
            other => other,
        };
        let (def, api, target) = self.definitions(rendered_as, listen, &agent);
        let r = gateway::render(&self.out, name, &def, &api, target)?;
        if target == Target::Nginx {
            return Ok(Config::Nginx {
                text: r.gateway,
                filter_config: r.filter_config,
            });
        }
        let bootstrap = gateway::envoy(&r.gateway)?;
        let filters = match arm {
            Arm::None => Some(vec![]),
            Arm::Floor => Some(vec![envoy::wasm_filter("floor", &self.o.floor, "")]),
            Arm::Jwt => Some(vec![envoy::jwt_filter(&self.jwt.issuer, &self.jwt.jwks())]),
            _ => None,
        };
        let bootstrap = match filters {
            Some(f) => gateway::with_filters(bootstrap, &f)?,
            None => bootstrap,
        };
        Ok(Config::Envoy {
            bootstrap,
            admin: r.admin_socket,
            filter_config: r.filter_config,
        })
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
            Arm::Cold | Arm::ColdAgent => count.min(self.s.cold_proofs_cap),
            _ => count,
        };
        let listen = free_port()?;
        let name = format!("{}-{}-{:?}", arm.letter(), rep, phase).to_lowercase();
        let config = self.gateway(arm, &name, listen)?;
        // Arms (x) and (n): a fresh checking agent per run, as every other arm gets a fresh
        // Envoy (fresh shared data: an empty replay table), deciding with the rendered filter
        // configuration.
        let checker = match (config.filter_config(), &self.directory) {
            (Some(fc), Some(d)) => Some(d.start_checker(&self.o.bridge, &self.out, &name, fc)?),
            (Some(_), None) => bail!("arms (x) and (n) need the agent"),
            (None, _) => None,
        };
        let proxy = config.start(self, &name, listen)?;
        // New sessions go to the agent: in v1/v2 (no possession ticket) its small lane for
        // unchecked sessions (200/s) would shed the cold arms' and phases 3 and 4's, so they speak
        // v3, as clients do.
        let forms = if phase != Phase::Saturation && phase != Phase::Paced || arm.is_cold() {
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
        } else if let (true, Some(d)) = (arm.needs_agent(), &self.directory) {
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

/// The rendered gateway of one run, ready to start.
pub(super) enum Config {
    /// An Envoy bootstrap, its admin socket, and for arm (x) the checking agent's filter
    /// configuration.
    Envoy {
        bootstrap: Value,
        admin: PathBuf,
        filter_config: Option<String>,
    },
    /// Arm (n): an nginx configuration and the checking agent's filter configuration.
    Nginx {
        text: String,
        filter_config: Option<String>,
    },
}

impl Config {
    /// The filter configuration a checking agent decides with (arms (x) and (n)).
    pub(super) fn filter_config(&self) -> Option<&str> {
        match self {
            Config::Envoy { filter_config, .. } | Config::Nginx { filter_config, .. } => {
                filter_config.as_deref()
            }
        }
    }

    /// Starts the gateway on `listen` (its files in the bench's output, named for the run).
    pub(super) fn start(self, b: &Bench<'_>, name: &str, listen: u16) -> Result<Proxy> {
        Ok(match self {
            Config::Nginx { text, .. } => {
                Proxy::Nginx(nginx::Front::start(&b.out, name, listen, &text)?)
            }
            Config::Envoy {
                bootstrap, admin, ..
            } => Proxy::Envoy(Envoy::start(
                &b.o.envoy,
                &b.out,
                name,
                &bootstrap,
                listen,
                Admin::Unix(admin),
            )?),
        })
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
