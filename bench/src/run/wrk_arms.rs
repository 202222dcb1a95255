//! Arms (b) and (c) under Debian's wrk, the second load generator, after each repetition's
//! in-house runs.

use super::*;

/// wrk's version when the cross-check runs (arms (b) or (c), no --no-wrk); an error naming the
/// install command when wrk is missing.
pub(super) fn wrk_version(o: &Options, arms: &[Arm]) -> Result<Option<String>> {
    if o.no_wrk || !arms.iter().any(|a| matches!(a, Arm::Jwt | Arm::Warm)) {
        return Ok(None);
    }
    wrk::version(&o.wrk).map(Some)
}

/// Seconds of a measured wrk run.
pub(super) fn wrk_duration(o: &Options, s: &Settings) -> f64 {
    o.wrk_duration.unwrap_or(if s.cold_proofs_cap < 10_000 {
        2.0
    } else {
        s.duration
    })
}

/// Envoy's counters once they account for the requests in flight when wrk stopped: the arm's own
/// allowed count (the autoid filter hands its counters to Envoy on its one-second tick) caught up
/// with Envoy's 2xx and with what wrk saw answered, or after 3 s.
pub(super) fn wrk_counters(
    proxy: &Envoy,
    arm: Arm,
    allowed: &str,
    wrk_ok: u64,
) -> Result<Vec<(String, u64)>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::sleep(Duration::from_millis(100));
    loop {
        // The filter's own counters only (Envoy's listener and HTTP stats are named for the
        // rendered listener, `autoid_http`, and would match "autoid" too).
        let mut counters = proxy.stats(if arm.is_autoid() {
            "^wasmcustom.autoid_"
        } else {
            "jwt_authn"
        })?;
        counters.extend(proxy.stats(&format!("^http.{}.downstream_rq_", gateway::STAT_PREFIX))?);
        let sum = |suffix: &str| counter_sum(&counters, suffix);
        let n = sum(allowed);
        if (n >= sum(".downstream_rq_2xx") && n >= wrk_ok) || Instant::now() >= deadline {
            return Ok(counters);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The summary with its `wrk` object.
pub(super) fn with_wrk(
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
    pub(super) fn wrk_rep(
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
    pub(super) fn run_wrk(&self, arm: Arm, rep: usize, rate: f64) -> Result<wrk::Record> {
        let listen = free_port()?;
        let name = format!("{}-{rep}-wrk", arm.letter());
        let Proxy::Envoy(proxy) = self
            .gateway(arm, &name, listen)?
            .start(self, &name, listen)?
        else {
            bail!("the wrk cross-check runs Envoy arms only");
        };
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
