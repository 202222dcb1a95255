//! One worker's filter: its configuration and what every request of the worker shares
//! ([`State`]), built at configure; the tick (counters, the entropy cache, background credential
//! refreshes) and the refreshes' answers. Plain Rust over a [`Host`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use autoid_protocol::config::{Config, Groups, ReplayScope};
use autoid_protocol::directory::credentials_path;

use crate::binds::Binds;
use crate::callout::{self, agent_headers, bearer};
use crate::credentials::{CredentialCache, parse_reply as parse_credentials};
use crate::decisions::Decisions;
use crate::entropy_cache::EntropyCache;
use crate::fleet::Batcher;
use crate::flow::Waiter;
use crate::host::{Host, HttpHost, Level};
use crate::metrics::{Counter, Metrics};
use crate::ratelimit::{SourceBudgets, TokenBucket};
use crate::replay::{ReplayTable, restart_fence};
use crate::reply::Denial;
use crate::sessions::Sessions;
use crate::store::CREATE_ONLY_CAS;

const SALT_KEY: &str = "autoid.replay-salt";
/// How many HTTP Basic binds a worker remembers.
const MAX_BINDS: usize = 4096;
/// The worker's tick: the entropy cache's window.
pub const TICK: Duration = Duration::from_secs(1);

/// What every request of a worker shares.
#[derive(Debug)]
pub struct State {
    pub config: Config,
    pub managed: Vec<String>,
    pub replay: ReplayTable,
    pub sessions: RefCell<Sessions>,
    pub decisions: Option<Decisions>,
    pub cold_path: RefCell<TokenBucket>,
    pub cold_sources: RefCell<SourceBudgets>,
    /// v3 unwraps, whose possession ticket was checked (by the filter or, before its RSA, by the
    /// agent): a budget that v1/v2 full forms never spend.
    pub checked_path: RefCell<TokenBucket>,
    pub entropy: RefCell<EntropyCache>,
    pub credentials: CredentialCache,
    /// HTTP Basic binds remembered under a keyed hash (`ldap_basic` APIs).
    pub binds: RefCell<Binds>,
    /// The restart fence (local replay scope with `restart_fence`): proofs made before it are
    /// refused. `None`: no fence.
    pub fence: Option<u64>,
    /// The fleet claims of this worker's requests, queued and in flight (fleet scope).
    pub fleet: RefCell<Batcher<Waiter>>,
    /// The shared queue whose `on_queue_ready` wakes the root to send fleet claims (fleet scope).
    pub fleet_queue: Option<u32>,
    /// When the degraded fleet replay was last logged (Unix seconds): at most once a second.
    degraded_logged_at: Cell<u64>,
    metrics: Metrics,
    /// Counts of the per-request counters not yet added to the host's (see [`State::count`]).
    pending: [Cell<u64>; Counter::ALL.len()],
}

impl State {
    /// The state for a valid configuration: `None`, logged, when shared data or randomness fails.
    fn new<H: Host>(host: &H, config: Config) -> Option<State> {
        let Some(salt) = replay_salt(host) else {
            host.log(
                Level::Error,
                "autoid: shared data or randomness unavailable at configure",
            );
            return None;
        };
        let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_owned()).collect();
        names.extend(
            Denial::all_reasons()
                .into_iter()
                .map(|r| format!("autoid_denied_{r}")),
        );
        let metrics = Metrics::define(host, names.iter().map(String::as_str));
        let fence = if config.replay.scope == ReplayScope::Local && config.replay.restart_fence {
            let Some(fence) = restart_fence(host.store(), host.now_ms() / 1000) else {
                host.log(Level::Error, "autoid: shared data unavailable at configure");
                return None;
            };
            Some(fence)
        } else {
            None
        };
        let mut bind_key = [0u8; 32];
        if !host.random(&mut bind_key) {
            host.log(Level::Error, "autoid: randomness unavailable at configure");
            return None;
        }
        let bind_ttl = config
            .apis
            .values()
            .filter_map(|a| a.basic.as_ref().map(|b| b.cache_ttl_secs))
            .max()
            .unwrap_or(0);
        // The queue's name is this worker's alone: Envoy keys queues by VM id and name across
        // every worker, and the last to register a name gets its wake-ups.
        let fleet_queue = if config.replay.scope == ReplayScope::Fleet {
            let mut id = [0u8; 8];
            let name = host.random(&mut id).then(|| {
                format!(
                    "autoid.fleet.{}",
                    id.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            });
            let Some(queue) = name.and_then(|n| host.register_queue(&n)) else {
                host.log(
                    Level::Error,
                    "autoid: no shared queue for the fleet replay claims at configure",
                );
                return None;
            };
            Some(queue)
        } else {
            None
        };
        let decisions = match &config.groups {
            Groups::Directory(d) => Some(Decisions::new(d.max_entries)),
            Groups::Static(_) => None,
        };
        Some(State {
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
                host.now_ms(),
            )),
            cold_sources: RefCell::new(SourceBudgets::new(
                config.cold_path.per_source_unwraps_per_second,
                config.cold_path.per_source_burst,
            )),
            checked_path: RefCell::new(TokenBucket::new(
                config.cold_path.checked_unwraps_per_second,
                config.cold_path.checked_burst,
                host.now_ms(),
            )),
            entropy: RefCell::new(EntropyCache::new(config.entropy_cache)),
            credentials: CredentialCache::new(config.credentials),
            binds: RefCell::new(Binds::new(bind_key, MAX_BINDS, bind_ttl)),
            fence,
            fleet: RefCell::new(Batcher::default()),
            fleet_queue,
            degraded_logged_at: Cell::new(0),
            metrics,
            pending: Default::default(),
            config,
        })
    }

    /// Counts one event. The two counters every allowed request touches are added up in the
    /// worker and handed to the host on the tick (each counter update is a hostcall, about a
    /// microsecond in Envoy); the rest go to the host at once.
    pub fn count<H: Host + ?Sized>(&self, host: &H, counter: Counter) {
        match counter {
            Counter::Allowed | Counter::SessionHitLocal => {
                let cell = &self.pending[counter as usize];
                cell.set(cell.get() + 1);
            }
            _ => self.metrics.add(host, counter.name(), 1),
        }
    }

    /// Whether the degraded fleet replay should be logged now (once a second at most), and
    /// notes that it was.
    pub fn degraded_log_due(&self, now: u64) -> bool {
        let due = self.degraded_logged_at.get() != now;
        self.degraded_logged_at.set(now);
        due
    }

    /// Adds one to the counter named `name` at once.
    pub fn count_name<H: Host + ?Sized>(&self, host: &H, name: &str) {
        self.metrics.add(host, name, 1);
    }

    /// Hands the pending counts to the host.
    fn flush_counts<H: Host>(&self, host: &H) {
        for counter in Counter::ALL {
            let n = self.pending[counter as usize].take();
            if n > 0 {
                self.metrics.add(host, counter.name(), n);
            }
        }
    }
}

/// The replay salt shared by every worker: created once, whoever comes first.
fn replay_salt<H: Host>(host: &H) -> Option<[u8; 16]> {
    let store = host.store();
    let mut fresh = [0u8; 16];
    if !host.random(&mut fresh) {
        return None;
    }
    let _ = store.set(SALT_KEY, &fresh, Some(CREATE_ONLY_CAS));
    let (value, _) = store.get(SALT_KEY).ok()??;
    value.try_into().ok()
}

/// One worker: its state once configured, and its background credential refreshes.
#[derive(Debug, Default)]
pub struct Worker {
    /// The root context's id (the proxy's; 0 in native tests).
    root: u32,
    state: Option<Rc<State>>,
    /// Background credential refreshes in flight: callout token → API.
    refreshes: HashMap<u32, String>,
}

impl Worker {
    /// The worker of the root context `root`.
    pub fn new(root: u32) -> Self {
        Worker {
            root,
            ..Worker::default()
        }
    }

    /// The state every request of the worker shares (`None` until configured).
    pub fn state(&self) -> Option<Rc<State>> {
        self.state.clone()
    }

    /// Parses and applies the plugin configuration: `false`, logged, when it is invalid or the
    /// host cannot give the worker its shared state.
    pub fn configure<H: Host>(&mut self, host: &H, bytes: &[u8]) -> bool {
        let config = match Config::from_json(bytes) {
            Ok(config) => config,
            Err(e) => {
                host.log(Level::Error, &format!("autoid: invalid configuration: {e}"));
                return false;
            }
        };
        let Some(state) = State::new(host, config) else {
            return false;
        };
        host.log(
            Level::Info,
            &format!(
                "autoid: configured {} api(s), {} managed header(s)",
                state.config.apis.len(),
                state.managed.len()
            ),
        );
        self.state = Some(Rc::new(state));
        true
    }

    /// The tick: flushes the pending counts, refreshes credentials about to expire, lets the
    /// entropy cache keep a hot subject's file.
    pub fn tick<H: HttpHost>(&mut self, host: &H) {
        let Some(state) = self.state.clone() else {
            return;
        };
        state.flush_counts(host);
        state.fleet_tick(host, self.root);
        self.refresh_credentials(host, &state);
        let now = host.now_ms() / 1000;
        if let Some(done) = state.entropy.borrow_mut().tick(now) {
            state.count(host, Counter::EntropyFilesKept);
            host.log(
                Level::Info,
                &format!(
                    "autoid: kept the entropy file of subject {:?} (epoch {}, {} bytes) in this worker's memory{}",
                    done.subject,
                    done.epoch,
                    done.bytes,
                    done.evicted
                        .map(|s| format!(", dropped {s:?}'s"))
                        .unwrap_or_default()
                ),
            );
        }
    }

    /// Refreshes, in the background, every API's agent-supplied credentials that are about to
    /// expire (or expired): one worker claims each refresh in shared data and asks the agent;
    /// requests keep using the cached values meanwhile.
    fn refresh_credentials<H: Host>(&mut self, host: &H, state: &State) {
        let Some(agent) = &state.config.agent else {
            return;
        };
        let now = host.now_ms() / 1000;
        let hold = agent.timeout_ms.div_ceil(1000) + 1;
        for (name, api) in &state.config.apis {
            if api.agent_headers.is_empty()
                || self.refreshes.values().any(|a| a == name)
                || !state
                    .credentials
                    .claim_refresh(host.store(), name, now, hold)
            {
                continue;
            }
            let path = credentials_path(name);
            let auth = bearer(agent);
            let headers = agent_headers(agent, "GET", &path, auth.as_deref());
            let timeout = Duration::from_millis(agent.timeout_ms);
            match host.dispatch(&agent.cluster, headers, None, timeout) {
                Ok(token) => {
                    state.count(host, Counter::CredentialsRefreshes);
                    self.refreshes.insert(token, name.clone());
                }
                Err(_) => {
                    state.count(host, Counter::CredentialsFailures);
                    host.log(
                        Level::Warn,
                        &format!(
                            "autoid: credentials refresh for api {name:?} could not be dispatched to cluster {:?}",
                            agent.cluster
                        ),
                    );
                }
            }
        }
    }

    /// The worker's shared queue woke the root: fleet claims wait to be sent.
    pub fn on_queue_ready<H: HttpHost>(&mut self, host: &H, queue: u32) {
        if let Some(state) = self.state.clone() {
            state.fleet_kicked(host, self.root, queue);
        }
    }

    /// A callout of the worker answered: a fleet batch's requests are decided, or a background
    /// refresh's credentials cached.
    pub fn on_callout<H: HttpHost>(&mut self, host: &H, token: u32, body_size: usize) {
        let Some(state) = self.state.clone() else {
            return;
        };
        if state.fleet_batch_answered(host, self.root, token, body_size) {
            return;
        }
        let Some(name) = self.refreshes.remove(&token) else {
            return;
        };
        let Some(api) = state.config.apis.get(&name) else {
            return;
        };
        let (status, body) = callout::reply(host, body_size);
        match parse_credentials(api, status, &body.unwrap_or_default()) {
            Ok((headers, ttl)) => {
                let now = host.now_ms() / 1000;
                state
                    .credentials
                    .put(host.store(), &name, headers, ttl, now);
            }
            Err(e) => {
                state.count(host, Counter::CredentialsFailures);
                host.log(
                    Level::Warn,
                    &format!(
                        "autoid: credentials refresh for api {name:?} failed: {} (status {}); cached values are served for their stale window",
                        e.code(),
                        status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::{Value, json};

    use super::Worker;
    use crate::credentials::Lookup;
    use crate::host::Level;
    use crate::host::fake::{FakeHost, START_SECS};

    /// One API whose `authorization` the agent supplies, refreshed 10 s ahead of expiry.
    fn config() -> Value {
        json!({
            "keys": [{ "kid": "gw-2048" }],
            "epochs": [{ "autoid_epoch": 1, "id": "e1", "file_size": 65536, "interval_count": 64 }],
            "agent": { "cluster": "autoid_agent", "timeout_ms": 500 },
            "static_groups": { "alice": ["payments"] },
            "credentials": { "refresh_ahead_secs": 10, "stale_secs": 20 },
            "apis": {
                "payments": {
                    "require": { "any_of": ["payments"] },
                    "agent_headers": ["authorization"],
                },
            },
        })
    }

    #[test]
    fn an_invalid_configuration_is_refused_and_logged() {
        let host = FakeHost::new("payments");
        let mut worker = Worker::default();
        assert!(!worker.configure(&host, br#"{"apis": 5}"#));
        assert!(worker.state().is_none());
        assert!(
            host.logs
                .borrow()
                .iter()
                .any(|(level, line)| *level == Level::Error
                    && line.starts_with("autoid: invalid configuration"))
        );
    }

    #[test]
    fn credentials_about_to_expire_are_refreshed_on_the_tick_and_the_answer_cached() {
        let host = FakeHost::new("payments");
        let mut worker = Worker::default();
        assert!(
            worker.configure(&host, config().to_string().as_bytes()),
            "{:?}",
            host.logs.borrow()
        );
        let state = worker.state().unwrap();
        let now = START_SECS;
        let old = vec![("authorization".to_owned(), "Bearer old".to_owned())];
        // Fetched a minute ago for 65 s: 5 s left, inside the 10 s refresh window.
        state
            .credentials
            .put(&host.store, "payments", old, 65, now - 60);

        worker.tick(&host);
        {
            let callouts = host.callouts.borrow();
            assert_eq!(callouts.len(), 1);
            assert_eq!(callouts[0].cluster, "autoid_agent");
            assert_eq!(callouts[0].header(":method"), Some("GET"));
            assert_eq!(
                callouts[0].header(":path"),
                Some("/v1/credentials/payments")
            );
        }
        // One refresh in flight: the next tick does not ask again.
        worker.tick(&host);
        assert_eq!(host.callouts.borrow().len(), 1);
        assert_eq!(host.counter("autoid_credentials_refreshes"), 1);

        let answer = json!({ "headers": { "authorization": "Bearer new" }, "ttl_secs": 60 });
        *host.answer.borrow_mut() = (Some(200), serde_json::to_vec(&answer).unwrap());
        let len = host.answer.borrow().1.len();
        worker.on_callout(&host, 1, len);
        match state.credentials.lookup(&host.store, "payments", now) {
            Lookup::Fresh(values) => assert_eq!(
                values,
                [("authorization".to_owned(), "Bearer new".to_owned())]
            ),
            other => panic!("fresh credentials expected, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_refresh_keeps_the_cached_value_and_counts_the_failure() {
        let host = FakeHost::new("payments");
        let mut worker = Worker::default();
        assert!(worker.configure(&host, config().to_string().as_bytes()));
        let state = worker.state().unwrap();
        let old = vec![("authorization".to_owned(), "Bearer old".to_owned())];
        state
            .credentials
            .put(&host.store, "payments", old.clone(), 65, START_SECS - 60);

        worker.tick(&host);
        *host.answer.borrow_mut() = (Some(500), b"{}".to_vec());
        worker.on_callout(&host, 1, 2);

        assert_eq!(host.counter("autoid_credentials_failures"), 1);
        match state
            .credentials
            .lookup(&host.store, "payments", START_SECS)
        {
            Lookup::Fresh(values) => assert_eq!(values, old),
            other => panic!("the cached value stays, got {other:?}"),
        }
        // An answer to a callout the worker did not make changes nothing.
        worker.on_callout(&host, 7, 2);
        assert_eq!(host.counter("autoid_credentials_failures"), 1);
    }
}
