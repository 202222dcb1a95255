//! The agent's counters, served as Prometheus text at `GET /metrics`: every answer counted by
//! route (the template, so an API id or a username never becomes a label) and outcome (the
//! same word the request log writes: `authenticated`, `not_authenticated`, `throttled`, …).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Answers counted since the agent started.
#[derive(Debug, Default)]
pub struct Metrics {
    answers: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    /// Counts one answer of `route` (a route template, or `other`) with `outcome`.
    pub fn answered(&self, route: &str, outcome: &'static str) {
        if let Ok(mut answers) = self.answers.lock() {
            *answers.entry((route.to_owned(), outcome)).or_default() += 1;
        }
    }

    /// The counters in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP autoid_agent_answers_total Answers of the agent, by route template and outcome.\n\
             # TYPE autoid_agent_answers_total counter\n",
        );
        if let Ok(answers) = self.answers.lock() {
            for ((route, outcome), n) in answers.iter() {
                let _ = writeln!(
                    out,
                    "autoid_agent_answers_total{{route=\"{route}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_route_and_outcome() {
        let m = Metrics::default();
        m.answered("/v1/authenticate", "throttled");
        m.answered("/v1/authenticate", "throttled");
        m.answered("/v1/authenticate", "authenticated");
        let text = m.render();
        assert!(text.contains(
            "autoid_agent_answers_total{route=\"/v1/authenticate\",outcome=\"throttled\"} 2\n"
        ));
        assert!(text.contains("outcome=\"authenticated\"} 1\n"));
        assert!(text.starts_with("# HELP autoid_agent_answers_total"));
    }
}
