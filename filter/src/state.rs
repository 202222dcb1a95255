//! What every request of a worker shares ([`State`]): the configuration, the caches, the
//! cold-path budgets, the replay table and the counters, built at configure. Plain Rust over a
//! [`Host`].

use std::cell::{Cell, RefCell};

use autoid_protocol::config::{Config, Groups, ReplayScope};

use crate::binds::Binds;
use crate::credential_cache::CredentialCache;
use crate::decisions::Decisions;
use crate::entropy_cache::EntropyCache;
use crate::host::{Host, Level};
use crate::metrics::{Counter, Metrics};
use crate::ratelimit::{SourceBudgets, TokenBucket};
use crate::replay::{ReplayTable, restart_fence};
use crate::reply::Denial;
use crate::session_cache::Sessions;
use crate::store::CREATE_ONLY_CAS;

const SALT_KEY: &str = "autoid.replay-salt";
/// How many HTTP Basic binds a worker remembers.
const MAX_BINDS: usize = 4096;

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
    metrics: Metrics,
    /// Counts of the per-request counters not yet added to the host's (see [`State::count`]).
    pending: [Cell<u64>; Counter::ALL.len()],
}

impl State {
    /// The state for a valid configuration: `None`, logged, when shared data or randomness fails.
    pub(crate) fn new<H: Host>(host: &H, config: Config) -> Option<State> {
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

    /// Adds one to the counter named `name` at once.
    pub fn count_name<H: Host + ?Sized>(&self, host: &H, name: &str) {
        self.metrics.add(host, name, 1);
    }

    /// Hands the pending counts to the host.
    pub(crate) fn flush_counts<H: Host>(&self, host: &H) {
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
