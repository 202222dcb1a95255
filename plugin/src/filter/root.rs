//! The root context: parses the configuration, builds each worker's [`State`], ticks (counters,
//! the entropy cache, background credential refreshes).

use super::agent::{agent_headers, bearer};
use super::*;

/// The root context: parses the configuration, owns the worker's state.
#[derive(Default)]
pub struct Root {
    state: Option<Rc<State>>,
    /// Background credential refreshes in flight: callout token → API.
    refreshes: HashMap<u32, String>,
}

/// The replay salt shared by every worker: created once, whoever comes first.
fn replay_salt() -> Option<[u8; 16]> {
    let store = SharedData;
    let mut fresh = [0u8; 16];
    if !wasm_host::random(&mut fresh) {
        return None;
    }
    let _ = store.set(SALT_KEY, &fresh, Some(CREATE_ONLY_CAS));
    let (value, _) = store.get(SALT_KEY).ok()??;
    value.try_into().ok()
}

impl Root {
    /// Refreshes, in the background, every API's agent-supplied credentials that are about to
    /// expire (or expired): one worker claims each refresh in shared data and asks the agent;
    /// requests keep using the cached values meanwhile.
    fn refresh_credentials(&mut self, state: &State) {
        let Some(agent) = &state.config.agent else {
            return;
        };
        let now = wasm_host::now_ms() / 1000;
        let hold = agent.timeout_ms.div_ceil(1000) + 1;
        for (name, api) in &state.config.apis {
            if api.agent_headers.is_empty()
                || self.refreshes.values().any(|a| a == name)
                || !state
                    .credentials
                    .claim_refresh(&SharedData, name, now, hold)
            {
                continue;
            }
            let path = credentials_path(name);
            let auth = bearer(agent);
            let headers = agent_headers(agent, "GET", &path, auth.as_deref());
            let timeout = Duration::from_millis(agent.timeout_ms);
            match self.dispatch_http_call(&agent.cluster, headers, None, vec![], timeout) {
                Ok(token) => {
                    state.count(Counter::CredentialsRefreshes);
                    self.refreshes.insert(token, name.clone());
                }
                Err(_) => {
                    state.count(Counter::CredentialsFailures);
                    wasm_host::warn(&format!(
                        "autoid: credentials refresh for api {name:?} could not be dispatched to cluster {:?}",
                        agent.cluster
                    ));
                }
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(name) = self.refreshes.remove(&token) else {
            return;
        };
        let Some(state) = self.state.clone() else {
            return;
        };
        let Some(api) = state.config.apis.get(&name) else {
            return;
        };
        let (status, body) = callout_reply(self, body_size);
        match parse_credentials(api, status, &body) {
            Ok((headers, ttl)) => {
                let now = wasm_host::now_ms() / 1000;
                state.credentials.put(&SharedData, &name, headers, ttl, now);
            }
            Err(e) => {
                state.count(Counter::CredentialsFailures);
                wasm_host::warn(&format!(
                    "autoid: credentials refresh for api {name:?} failed: {} (status {}); cached values are served for their stale window",
                    e.code(),
                    status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                ));
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(e) => {
                wasm_host::error(&format!("autoid: invalid configuration: {e}"));
                return false;
            }
        };
        let Some(salt) = replay_salt() else {
            wasm_host::error("autoid: shared data or randomness unavailable at configure");
            return false;
        };
        let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_owned()).collect();
        names.extend(
            Denial::all_reasons()
                .into_iter()
                .map(|r| format!("autoid_denied_{r}")),
        );
        let metrics = Metrics::define(names.iter().map(String::as_str));
        let decisions = match &config.groups {
            Groups::Directory(d) => Some(Decisions::new(d.max_entries)),
            Groups::Static(_) => None,
        };
        let state = State {
            managed: config.all_managed_headers(),
            replay: ReplayTable::new(
                config.replay.buckets,
                config.replay.slots_per_bucket,
                config.limits.max_skew_secs,
                salt,
            ),
            sessions: RefCell::new(Sessions::new(
                config.session_cache.local_max_entries,
                config.session_cache.max_entries,
            )),
            decisions,
            cold_path: RefCell::new(TokenBucket::new(
                config.cold_path.unwraps_per_second,
                config.cold_path.burst,
                wasm_host::now_ms(),
            )),
            cold_sources: RefCell::new(SourceBudgets::new(
                config.cold_path.per_source_unwraps_per_second,
                config.cold_path.per_source_burst,
            )),
            entropy: RefCell::new(EntropyCache::new(config.entropy_cache)),
            credentials: CredentialCache::new(config.credentials),
            metrics,
            pending: Default::default(),
            config,
        };
        wasm_host::info(&format!(
            "autoid: configured {} api(s), {} managed header(s)",
            state.config.apis.len(),
            state.managed.len()
        ));
        self.state = Some(Rc::new(state));
        self.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        let Some(state) = &self.state else {
            return;
        };
        state.flush_counts();
        let state = state.clone();
        self.refresh_credentials(&state);
        let now = wasm_host::now_ms() / 1000;
        if let Some(done) = state.entropy.borrow_mut().tick(now) {
            state.count(Counter::EntropyFilesKept);
            wasm_host::info(&format!(
                "autoid: kept the entropy file of subject {:?} (epoch {}, {} bytes) in this worker's memory{}",
                done.subject,
                done.epoch,
                done.bytes,
                done.evicted
                    .map(|s| format!(", dropped {s:?}'s"))
                    .unwrap_or_default()
            ));
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            state: self.state.clone(),
            ..Http::default()
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
