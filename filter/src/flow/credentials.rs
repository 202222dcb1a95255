//! Upstream credentials for an allowed request: the API's inline values, or the agent's
//! (cached in shared data per API, asked of the agent on a miss).

use std::time::Duration;

use super::{Caller, Flow, Pending};
use crate::callout::{agent_headers, bearer};
use crate::credential_cache::{Lookup, parse_reply as parse_credentials};
use crate::host::{HttpHost, Level, Verdict};
use crate::metrics::Counter;
use crate::reply::{Denial, Unavailable};
use crate::state::State;
use autoid_protocol::agent_api::credentials_path;
use autoid_protocol::config::Api;

impl Flow {
    /// Lets an allowed request go upstream with the API's credentials: inline ones at once, the
    /// agent's from the shared cache (fresh, or stale within its window), else asked of the agent.
    pub(super) fn with_credentials<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api: &Api,
        caller: Caller<'_>,
        groups: &[String],
    ) -> Verdict {
        if api.agent_headers.is_empty() {
            return self.admit(host, state, api, caller, groups, &[]);
        }
        let now = host.now_ms() / 1000;
        match state.credentials.lookup(host.store(), &self.route, now) {
            Lookup::Fresh(values) => {
                state.count(host, Counter::CredentialsCacheHits);
                self.admit(host, state, api, caller, groups, &values)
            }
            Lookup::Stale(values) => {
                state.count(host, Counter::CredentialsStaleServed);
                self.admit(host, state, api, caller, groups, &values)
            }
            Lookup::Missing => self.ask_credentials(host, state, caller, groups),
        }
    }

    /// Asks the agent for the API's credentials (nothing usable is cached): `Pause` until it
    /// answers, or a 503 when the callout cannot be sent.
    pub(super) fn ask_credentials<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        caller: Caller<'_>,
        groups: &[String],
    ) -> Verdict {
        let Some(agent) = &state.config.agent else {
            self.deny(
                host,
                Denial::Unavailable(Unavailable::Credentials),
                Some(caller.subject()),
            );
            return Verdict::Pause;
        };
        let path = credentials_path(&self.route);
        let auth = bearer(agent);
        let headers = agent_headers(agent, "GET", &path, auth.as_deref());
        let timeout = Duration::from_millis(agent.callout.timeout_ms);
        match host.dispatch(&agent.callout.cluster, headers, None, timeout) {
            Ok(_) => {
                state.count(host, Counter::CredentialsCallouts);
                self.pending = Pending::Credentials {
                    caller: caller.owned(),
                    groups: groups.to_vec(),
                };
                Verdict::Pause
            }
            Err(_) => {
                state.count(host, Counter::CredentialsFailures);
                host.log(Level::Warn, &format!(
                    "autoid: credentials callout could not be dispatched to cluster {:?} request_id={}",
                    agent.callout.cluster, self.request_id
                ));
                self.deny(
                    host,
                    Denial::Unavailable(Unavailable::Credentials),
                    Some(caller.subject()),
                );
                Verdict::Pause
            }
        }
    }

    /// The agent answered a credentials callout: caches and injects, or 503 `credentials`.
    pub(super) fn credentials_answer<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        caller: Caller<'_>,
        groups: &[String],
        status: Option<u32>,
        body: &[u8],
    ) -> Verdict {
        let Some(api) = self.route_api(host, state, &self.route, caller.subject()) else {
            return Verdict::Pause;
        };
        match parse_credentials(api, status, body) {
            Ok((values, ttl)) => {
                let now = host.now_ms() / 1000;
                state
                    .credentials
                    .put(host.store(), &self.route, values.clone(), ttl, now);
                self.admit(host, state, api, caller, groups, &values)
            }
            Err(e) => {
                state.count(host, Counter::CredentialsFailures);
                host.log(Level::Warn, &format!(
                    "autoid: the agent gave no credentials for api {:?}: {} (status {}) request_id={}",
                    self.route,
                    e.code(),
                    status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                    self.request_id
                ));
                self.deny(
                    host,
                    Denial::Unavailable(Unavailable::Credentials),
                    Some(caller.subject()),
                );
                Verdict::Pause
            }
        }
    }
}
