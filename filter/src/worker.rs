//! One worker's filter: its [`State`] and fleet claims, built at configure; the tick (counters,
//! fleet batches, the entropy cache, background credential refreshes) and the answers to the
//! worker's own callouts. Plain Rust over a [`Host`].

use std::collections::HashMap;
use std::time::Duration;

use autoid_protocol::agent_api::credentials_path;
use autoid_protocol::config::{Config, ReplayScope};

use crate::callout::{self, agent_headers, bearer};
use crate::credential_cache::parse_reply as parse_credentials;
use crate::flow::{FleetClaims, Shared};
use crate::host::{Host, HttpHost, Level};
use crate::metrics::Counter;
use crate::state::State;

/// The worker's tick: the entropy cache's window.
pub const TICK: Duration = Duration::from_secs(1);

/// One worker: its state once configured, and its background credential refreshes.
#[derive(Debug, Default)]
pub struct Worker {
    /// The root context's id (the proxy's; 0 in native tests).
    root: u32,
    shared: Option<Shared>,
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

    /// What every request of the worker shares (`None` until configured).
    pub fn state(&self) -> Option<Shared> {
        self.shared.clone()
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
        self.apply(host, config)
    }

    /// Applies a parsed configuration: `false` when the host cannot give the worker its shared
    /// state.
    pub(crate) fn apply<H: Host>(&mut self, host: &H, config: Config) -> bool {
        let fleet_scope = config.replay.scope == ReplayScope::Fleet;
        let Some(state) = State::new(host, config) else {
            return false;
        };
        let fleet = if fleet_scope {
            let Some(fleet) = FleetClaims::new(host) else {
                return false;
            };
            Some(fleet)
        } else {
            None
        };
        host.log(
            Level::Info,
            &format!(
                "autoid: configured {} api(s), {} managed header(s)",
                state.config.apis.len(),
                state.managed.len()
            ),
        );
        self.shared = Some(Shared::new(state, fleet));
        true
    }

    /// The tick: flushes the pending counts, refreshes credentials about to expire, lets the
    /// entropy cache keep a hot subject's file.
    pub fn tick<H: HttpHost>(&mut self, host: &H) {
        let Some(Shared { state, fleet }) = self.shared.clone() else {
            return;
        };
        state.flush_counts(host);
        if let Some(fleet) = &fleet {
            fleet.tick(host, &state, self.root);
        }
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
        let hold = agent.callout.timeout_ms.div_ceil(1000) + 1;
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
            let timeout = Duration::from_millis(agent.callout.timeout_ms);
            match host.dispatch(&agent.callout.cluster, headers, None, timeout) {
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
                            agent.callout.cluster
                        ),
                    );
                }
            }
        }
    }

    /// The worker's shared queue woke the root: fleet claims wait to be sent.
    pub fn on_queue_ready<H: HttpHost>(&mut self, host: &H, queue: u32) {
        if let Some(Shared {
            state,
            fleet: Some(fleet),
        }) = &self.shared
        {
            fleet.kicked(host, state, self.root, queue);
        }
    }

    /// A callout of the worker answered: a fleet batch's requests are decided, or a background
    /// refresh's credentials cached.
    pub fn on_callout<H: HttpHost>(&mut self, host: &H, token: u32, body_size: usize) {
        let Some(Shared { state, fleet }) = self.shared.clone() else {
            return;
        };
        if let Some(fleet) = &fleet
            && fleet.answered(host, &state, self.root, token, body_size)
        {
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
    use crate::credential_cache::Lookup;
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
        let state = worker.state().unwrap().state;
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
        let state = worker.state().unwrap().state;
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
