//! Groups from the agent: the shared decision cache, the callout, its answer, and
//! the stale decision served when the agent fails.

use std::time::Duration;

use autoid_protocol::config::{Api, Directory};
use autoid_protocol::verify::Verified;

use super::{Caller, Flow, Pending};
use crate::decisions::{Decision, Freshness, groups_path, parse_reply};
use crate::host::{HttpHost, Level, Verdict};
use crate::metrics::Counter;
use crate::reply::{Denial, Forbid, Unavailable};
use crate::state::State;

impl Flow {
    /// Groups from the directory: a fresh cached decision decides at once; otherwise the agent
    /// is asked (`Pause` until it answers), a stale decision kept for the fallback.
    pub(super) fn ask_directory<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api_name: &str,
        api: &Api,
        directory: &Directory,
        verified: Verified,
    ) -> Verdict {
        let subject = verified.subject.as_str();
        let now = host.now_ms() / 1000;
        let cached = state
            .decisions
            .as_ref()
            .and_then(|t| t.get(host.store(), subject));
        let mut stale = None;
        if let Some(decision) = cached {
            match decision.freshness(now, directory) {
                Freshness::Fresh => {
                    state.count(host, Counter::DirectoryCacheHits);
                    return self.decide_directory(host, state, api, &verified, &decision);
                }
                Freshness::Stale => stale = Some(decision),
                Freshness::Expired => {}
            }
        }
        let path = groups_path(subject);
        let auth = directory
            .callout
            .token
            .as_ref()
            .map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", directory.callout.authority.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let timeout = Duration::from_millis(directory.callout.timeout_ms);
        match host.dispatch(&directory.callout.cluster, headers, None, timeout) {
            Ok(_) => {
                state.count(host, Counter::DirectoryCallouts);
                self.pending = Pending::Directory {
                    api: api_name.to_owned(),
                    verified,
                    stale,
                };
                Verdict::Pause
            }
            Err(_) => {
                host.log(Level::Warn, &format!(
                    "autoid: directory callout could not be dispatched to cluster {:?} request_id={}",
                    directory.callout.cluster, self.request_id
                ));
                self.fallback(host, state, api, &verified, stale, Unavailable::Dispatch)
            }
        }
    }

    /// The agent answered: caches the decision and decides with it, or falls back (a stale
    /// decision within its window, else 503).
    pub(super) fn directory_answer<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        (api, verified, stale): (&str, &Verified, Option<Decision>),
        (status, body): (Option<u32>, Option<&[u8]>),
    ) -> Verdict {
        let subject = verified.subject.as_str();
        let Some(api_def) = self.route_api(host, state, api, subject) else {
            return Verdict::Pause;
        };
        let now = host.now_ms() / 1000;
        match parse_reply(status, body, subject, now) {
            Ok(decision) => {
                if let Some(table) = &state.decisions {
                    table.put(host.store(), subject, &decision);
                }
                if decision.dropped_groups > 0 {
                    host.log(
                        Level::Warn,
                        &format!(
                            "autoid: the directory gave {} invalid group name(s) for subject {subject:?}: dropped request_id={}",
                            decision.dropped_groups, self.request_id
                        ),
                    );
                }
                self.decide_directory(host, state, api_def, verified, &decision)
            }
            Err(e) => {
                host.log(
                    Level::Warn,
                    &format!(
                        "autoid: directory bridge failed: {} subject={subject:?} request_id={}",
                        e.code(),
                        self.request_id
                    ),
                );
                self.fallback(
                    host,
                    state,
                    api_def,
                    verified,
                    stale,
                    Unavailable::Directory,
                )
            }
        }
    }

    /// Decides with the directory's answer: an entry found under another spelling of the
    /// subject is refused (subjects are compared byte for byte), else as [`Flow::decide`].
    fn decide_directory<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api: &Api,
        verified: &Verified,
        decision: &Decision,
    ) -> Verdict {
        if let Some(entry) = decision.mismatch() {
            host.log(Level::Info, &format!(
                "autoid: the directory entry for subject {:?} is {entry:?}: not the same subject request_id={}",
                verified.subject, self.request_id
            ));
            self.deny(
                host,
                Denial::Forbidden(Forbid::SubjectMismatch),
                Some(&verified.subject),
            );
            return Verdict::Pause;
        }
        self.decide(host, state, api, Caller::Proof(verified), decision.groups())
    }

    /// The agent failed: a stale decision within its window answers, else 503.
    fn fallback<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api: &Api,
        verified: &Verified,
        stale: Option<Decision>,
        why: Unavailable,
    ) -> Verdict {
        state.count(host, Counter::DirectoryFailures);
        match stale {
            Some(decision) => {
                state.count(host, Counter::DirectoryStaleServed);
                self.decide_directory(host, state, api, verified, &decision)
            }
            None => {
                self.deny(host, Denial::Unavailable(why), Some(&verified.subject));
                Verdict::Pause
            }
        }
    }
}
