//! `summary.json` and `summary.md` from the runs' records: spreads, ratios per repetition, the
//! junk flood's targets and verdict.

use super::*;

pub(super) fn summarize(
    records: &[RunRecord],
    arms: &[Arm],
    o: &Options,
    s: &Settings,
    paced_rate: f64,
    cold_rate: Option<f64>,
    env: Value,
) -> Value {
    let pick = |arm: Arm, phase: Phase, f: &dyn Fn(&RunRecord) -> f64| -> Vec<f64> {
        records
            .iter()
            .filter(|r| r.arm == arm.letter() && r.phase == phase)
            .map(f)
            .collect()
    };
    let mut per_arm = serde_json::Map::new();
    for &arm in arms {
        per_arm.insert(
            arm.letter().to_string(),
            json!({
                "name": arm.name(),
                "saturation": {
                    "rps": spread(&pick(arm, Phase::Saturation, &|r| r.outcome.rps)),
                    "envoy_cpu_us_per_req": spread(&pick(arm, Phase::Saturation, &|r| r.envoy_cpu_us_per_req)),
                    "envoy_cpu_util": spread(&pick(arm, Phase::Saturation, &|r| r.envoy_cpu_util)),
                    "loadgen_cpu_util": spread(&pick(arm, Phase::Saturation, &|r| r.loadgen_cpu_util)),
                    "p50_us": spread(&pick(arm, Phase::Saturation, &|r| r.outcome.p50_us)),
                    "p99_us": spread(&pick(arm, Phase::Saturation, &|r| r.outcome.p99_us)),
                    "directory_cpu_us_per_req": spread(&pick(arm, Phase::Saturation, &|r| r.directory_cpu_us_per_req.unwrap_or(f64::NAN))),
                },
                "paced": {
                    "rate": spread(&pick(arm, Phase::Paced, &|r| r.rate_target.unwrap_or(f64::NAN))).map_or(paced_rate, |s| s.median),
                    "achieved_rps": spread(&pick(arm, Phase::Paced, &|r| r.outcome.rps)),
                    "p50_us": spread(&pick(arm, Phase::Paced, &|r| r.outcome.p50_us)),
                    "p99_us": spread(&pick(arm, Phase::Paced, &|r| r.outcome.p99_us)),
                    "p999_us": spread(&pick(arm, Phase::Paced, &|r| r.outcome.p999_us)),
                    "envoy_cpu_us_per_req": spread(&pick(arm, Phase::Paced, &|r| r.envoy_cpu_us_per_req)),
                },
            }),
        );
    }
    // Ratios per repetition (the two arms of a ratio ran minutes apart at most), then spread.
    let ratio = |num: Arm, den: Arm, f: &dyn Fn(&RunRecord) -> f64| -> Value {
        let n = pick(num, Phase::Saturation, f);
        let d = pick(den, Phase::Saturation, f);
        let per_rep: Vec<f64> = n.iter().zip(&d).map(|(n, d)| n / d).collect();
        json!({ "median": spread(&per_rep).map(|s| s.median), "spread": spread(&per_rep), "per_rep": per_rep })
    };
    let rps = |r: &RunRecord| r.outcome.rps;
    let cpu = |r: &RunRecord| r.envoy_cpu_us_per_req;
    let beside = |phase: Phase| -> Vec<&FloodOutcome> {
        records
            .iter()
            .filter(|r| r.phase == phase)
            .filter_map(|r| r.flood.as_ref())
            .collect()
    };
    let session_runs = beside(Phase::AgentSessions);
    // Phase 4: beside new sessions against alone, same bootstrap, repetition by repetition.
    let with_vs_without = |f: &dyn Fn(&RunRecord) -> f64| -> Value {
        let n = pick(Arm::Warm, Phase::AgentSessions, f);
        let d = pick(Arm::Warm, Phase::AgentPaced, f);
        let per_rep: Vec<f64> = n.iter().zip(&d).map(|(n, d)| n / d).collect();
        json!({ "median": spread(&per_rep).map(|s| s.median), "spread": spread(&per_rep), "per_rep": per_rep })
    };
    let warm_beside_new_sessions = json!({
        "new_sessions_rate": o.new_sessions_rate,
        "source": flood::SESSIONS_SOURCE.to_string(),
        "sessions_sent": session_runs.iter().map(|f| f.sent).collect::<Vec<_>>(),
        "sessions_ok": session_runs.iter().map(|f| f.ok).collect::<Vec<_>>(),
        "sessions_not_ok": session_runs.iter().map(|f| f.sent - f.ok).sum::<u64>(),
        "agent_session_callouts": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| counter(r, "autoid_agent_session_callouts"))),
        "without": {
            "achieved_rps": spread(&pick(Arm::Warm, Phase::AgentPaced, &|r| r.outcome.rps)),
            "p50_us": spread(&pick(Arm::Warm, Phase::AgentPaced, &|r| r.outcome.p50_us)),
            "p99_us": spread(&pick(Arm::Warm, Phase::AgentPaced, &|r| r.outcome.p99_us)),
        },
        "with": {
            "achieved_rps": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| r.outcome.rps)),
            "p50_us": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| r.outcome.p50_us)),
            "p99_us": spread(&pick(Arm::Warm, Phase::AgentSessions, &|r| r.outcome.p99_us)),
        },
        "p50_with_vs_without": with_vs_without(&|r| r.outcome.p50_us),
    });
    json!({
        "junk_flood": junk_flood(records, o),
        "warm_beside_new_sessions": warm_beside_new_sessions,
        "warm_p99_with_cold_vs_without": with_vs_without(&|r| r.outcome.p99_us),
        "warm_vs_floor": ratio(Arm::Warm, Arm::Floor, &rps),
        "warm_vs_jwt": ratio(Arm::Warm, Arm::Jwt, &rps),
        "warm_vs_none": ratio(Arm::Warm, Arm::None, &rps),
        "cold_vs_warm": ratio(Arm::Cold, Arm::Warm, &rps),
        // The name stays for older summaries; since issue 26 (d) is unwrapped by the agent too.
        "cold_agent_vs_cold_wasm": ratio(Arm::ColdAgent, Arm::Cold, &rps),
        "directory_vs_warm": ratio(Arm::Directory, Arm::Warm, &rps),
        "fleet_vs_warm": ratio(Arm::Fleet, Arm::Warm, &rps),
        "basic_vs_warm": ratio(Arm::Basic, Arm::Warm, &rps),
        "extauthz_vs_warm": ratio(Arm::ExtAuthz, Arm::Warm, &rps),
        "nginx_vs_warm": ratio(Arm::Nginx, Arm::Warm, &rps),
        "basic": {
            // Binds the agent made per request: ~0 once each worker remembers the password.
            "binds_per_request": spread(&pick(Arm::Basic, Phase::Saturation, &|r| {
                counter(r, "autoid_basic_binds") / counter(r, "autoid_requests_allowed")
            })),
            "paced_p50_us": spread(&pick(Arm::Basic, Phase::Paced, &|r| r.outcome.p50_us)),
            "paced_p99_us": spread(&pick(Arm::Basic, Phase::Paced, &|r| r.outcome.p99_us)),
        },
        "fleet_replay": {
            // One claim per allowed request reaches Redis (a SET NX through the agent).
            "redis_claims_per_request": spread(&pick(Arm::Fleet, Phase::Saturation, &|r| {
                counter(r, "autoid_replay_fleet_claims") / counter(r, "autoid_requests_allowed")
            })),
            // Claims go to the agent in batches (one callout per batch): claims per batch.
            "claims_per_batch": spread(&pick(Arm::Fleet, Phase::Saturation, &|r| {
                counter(r, "autoid_replay_fleet_claims") / counter(r, "autoid_replay_fleet_batches")
            })),
            "paced_claims_per_batch": spread(&pick(Arm::Fleet, Phase::Paced, &|r| {
                counter(r, "autoid_replay_fleet_claims") / counter(r, "autoid_replay_fleet_batches")
            })),
            "paced_p50_us": spread(&pick(Arm::Fleet, Phase::Paced, &|r| r.outcome.p50_us)),
            "paced_p99_us": spread(&pick(Arm::Fleet, Phase::Paced, &|r| r.outcome.p99_us)),
            "agent_slapd_redis_cpu_us_per_req": spread(&pick(Arm::Fleet, Phase::Saturation, &|r| {
                r.directory_cpu_us_per_req.unwrap_or(f64::NAN)
            })),
        },
        "envoy_cpu_per_req_ratios": {
            "warm_vs_floor": ratio(Arm::Warm, Arm::Floor, &cpu),
            "warm_vs_jwt": ratio(Arm::Warm, Arm::Jwt, &cpu),
            "warm_vs_none": ratio(Arm::Warm, Arm::None, &cpu),
            "cold_vs_warm": ratio(Arm::Cold, Arm::Warm, &cpu),
        },
        "targets": {
            "warm_vs_floor_goal": 0.8,
            "warm_vs_jwt_required": 1.0,
            "cold_agent_vs_cold_wasm_min": 10.0,
            "warm_p99_with_cold_vs_without_max": 1.5,
            "fleet_vs_warm_min": 0.5,
            "fleet_paced_p99_us_max": 2000,
        },
        "paced_rate_rps": paced_rate,
        "cold_paced_rate_rps": cold_rate,
        "settings": {
            "quick": s.cold_proofs_cap < 10_000,
            "reps": s.reps,
            "warmup_secs": s.warmup,
            "duration_secs": s.duration,
            "cold_duration_secs": s.cold_duration,
            "connections": o.connections,
            "paced_connections": o.paced_connections,
            "sessions": o.sessions,
            "proof_version": o.proof_version,
            "envoy_concurrency": 1,
            "rsa_bits_autoid": 3072,
            "rsa_bits_jwt": 2048,
            "interval_count": 64,
            "replay": "the filter's defaults",
            "max_skew_secs": MAX_SKEW_SECS,
        },
        "environment": env,
        "arms": per_arm,
        "runs": records,
    })
}

/// Phase 3's targets (issue 25): legitimate new sessions' p99 beside the junk flood, and the warm
/// arm's p99 beside it over its p99 alone (phase 4's `AgentPaced`, same repetition).
pub const LEGIT_NEW_SESSION_P99_US_MAX: f64 = 1_000_000.0;
/// See [`LEGIT_NEW_SESSION_P99_US_MAX`].
pub const WARM_P99_RATIO_MAX: f64 = 1.5;

/// Whether a junk answer is flagged: every v3 junk proof must get 401; a v2 one gets 401, or 503
/// when the agent's small lane for unchecked sessions sheds it (counted apart).
pub fn junk_answer_flagged(label: &str, status: &str) -> bool {
    !matches!((label, status), (_, "401") | ("v2", "503"))
}

/// The verdict on phase 3's medians: (legitimate p99 met, warm ratio met); `None` where there is
/// no figure.
pub fn junk_flood_met(
    legit_p99_us: Option<f64>,
    warm_ratio: Option<f64>,
) -> (Option<bool>, Option<bool>) {
    (
        legit_p99_us.map(|p| p <= LEGIT_NEW_SESSION_P99_US_MAX),
        warm_ratio.map(|r| r <= WARM_P99_RATIO_MAX),
    )
}

/// `summary.json`'s `junk_flood`: phase 3 against phase 4's baseline, repetition by repetition.
pub(super) fn junk_flood(records: &[RunRecord], o: &Options) -> Value {
    let runs: Vec<&RunRecord> = records.iter().filter(|r| r.phase == Phase::Flood).collect();
    let baseline = |rep: usize| {
        records
            .iter()
            .find(|r| r.phase == Phase::AgentPaced && r.rep == rep && r.arm == 'c')
    };
    let per = |f: &dyn Fn(&RunRecord) -> f64| -> Vec<f64> { runs.iter().map(|r| f(r)).collect() };
    let ratio = |f: &dyn Fn(&RunRecord) -> f64| -> Value {
        let per_rep: Vec<f64> = runs
            .iter()
            .filter_map(|r| baseline(r.rep).map(|b| f(r) / f(b)))
            .collect();
        json!({ "median": spread(&per_rep).map(|s| s.median), "spread": spread(&per_rep), "per_rep": per_rep })
    };
    let junk: Vec<&FloodOutcome> = runs.iter().filter_map(|r| r.flood.as_ref()).collect();
    let legit: Vec<&FloodOutcome> = runs.iter().filter_map(|r| r.legit.as_ref()).collect();
    let flagged: u64 = junk
        .iter()
        .flat_map(|f| f.by_label.iter())
        .flat_map(|(label, m)| m.iter().map(move |(status, n)| (label, status, n)))
        .filter(|(label, status, _)| junk_answer_flagged(label, status))
        .map(|(_, _, n)| n)
        .sum();
    let v2_shed: u64 = junk
        .iter()
        .filter_map(|f| f.by_label.get("v2").and_then(|m| m.get("503")))
        .sum();
    let legit_lat = |f: &dyn Fn(&flood::Latency) -> f64| -> Option<Spread> {
        spread(
            &legit
                .iter()
                .filter_map(|l| l.latency.as_ref().map(f))
                .collect::<Vec<_>>(),
        )
    };
    let legit_p99 = legit_lat(&|l| l.p99_us);
    let warm_ratio = ratio(&|r| r.outcome.p99_us);
    let (legit_met, warm_met) =
        junk_flood_met(legit_p99.map(|s| s.median), warm_ratio["median"].as_f64());
    let legit_non_2xx: u64 = legit.iter().map(|l| l.sent - l.ok).sum();
    let agent = |name: &str| -> Vec<u64> {
        runs.iter()
            .filter_map(|r| r.agent_counters.get(name).copied())
            .collect()
    };
    // The filter's counters (Envoy's stats) per run, by name.
    let envoy: serde_json::Map<String, Value> = [
        "autoid_requests_denied",
        "autoid_denied_entropy",
        "autoid_denied_rate_limited",
        "autoid_agent_session_callouts",
        "autoid_agent_session_failures",
        "autoid_agent_stream_callouts",
    ]
    .iter()
    .map(|name| {
        let v = per(&|r| counter(r, name));
        ((*name).to_owned(), json!(spread(&v)))
    })
    .collect();
    json!({
        "deployment": "keys and epochs at the agent, the filter's default cold-path budgets, protocol v3 (as `make run`)",
        "flood_rate": o.flood_rate,
        "flood_sources": o.flood_sources,
        "flood_source_first": flood::sources(1).first().map(ToString::to_string),
        "flood_connections": junk.first().map(|f| f.connections),
        "junk_mix": {
            "v3_new_subject": 0.8,
            "v3_known_subject": 0.1,
            "v2": 0.1,
        },
        "legit_sessions_rate": o.legit_sessions_rate,
        "legit_source": flood::LEGIT_SOURCE.to_string(),
        "targets": {
            "legit_new_session_p99_us_max": LEGIT_NEW_SESSION_P99_US_MAX,
            "warm_p99_ratio_max": WARM_P99_RATIO_MAX,
        },
        "legit_new_session_p99_us": legit_p99.map(|s| s.median),
        "warm_p99_ratio": warm_ratio,
        "met": {
            "legit_new_session_p99_us": legit_met,
            "warm_p99_ratio": warm_met,
            "legit_all_2xx": (!legit.is_empty()).then_some(legit_non_2xx == 0),
            "junk_all_refused": (!junk.is_empty()).then_some(flagged == 0),
        },
        "junk": {
            "achieved_rps": spread(&junk.iter().map(|f| f.achieved_rps).collect::<Vec<_>>()),
            // The flood's one thread, of one core.
            "client_cpu_util": spread(&junk.iter().map(|f| f.cpu_util).collect::<Vec<_>>()),
            "sent": junk.iter().map(|f| f.sent).collect::<Vec<_>>(),
            "answers": junk.iter().map(|f| &f.by_label).collect::<Vec<_>>(),
            "flagged": flagged,
            "v2_shed_503": v2_shed,
        },
        "legit": {
            "sent": legit.iter().map(|l| l.sent).collect::<Vec<_>>(),
            "ok": legit.iter().map(|l| l.ok).collect::<Vec<_>>(),
            "non_2xx": legit_non_2xx,
            "answers": legit.iter().map(|l| &l.by_label).collect::<Vec<_>>(),
            "achieved_rps": spread(&legit.iter().map(|l| l.achieved_rps).collect::<Vec<_>>()),
            "p50_us": legit_lat(&|l| l.p50_us),
            "p99_us": legit_p99,
            "max_us": legit_lat(&|l| l.max_us),
        },
        "agent": {
            "rsa_unwraps": agent("autoid_agent_rsa_unwraps_total"),
            "possession_refused": agent("autoid_agent_possession_refused_total"),
            "unchecked_shed": agent("autoid_agent_unchecked_shed_total"),
        },
        "envoy": envoy,
        "warm": {
            "with": {
                "achieved_rps": spread(&per(&|r| r.outcome.rps)),
                "p50_us": spread(&per(&|r| r.outcome.p50_us)),
                "p99_us": spread(&per(&|r| r.outcome.p99_us)),
                "non_200": runs.iter().map(|r| r.outcome.non_200).sum::<u64>(),
            },
            "p50_ratio": ratio(&|r| r.outcome.p50_us),
        },
    })
}

/// Phase 3's one-line verdict, or `None` when it did not run.
pub(super) fn junk_flood_verdict(summary: &Value) -> Option<String> {
    let j = &summary["junk_flood"];
    let met = &j["met"];
    met["legit_new_session_p99_us"].as_bool()?;
    let word = |v: &Value| match v.as_bool() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    };
    Some(format!(
        "junk flood ({} new sessions/s from {} sources, achieved {} /s): legitimate new sessions p99 {} µs (target ≤ 1 000 000: {}; all 2xx: {}), warm p99 with/without {}× (target ≤ 1.5: {}); junk all refused: {} ({} flagged)",
        j["flood_rate"],
        j["flood_sources"],
        fmt_spread(&j["junk"]["achieved_rps"], 1.0, 0),
        fmt_spread(&j["legit"]["p99_us"], 1.0, 0),
        word(&met["legit_new_session_p99_us"]),
        word(&met["legit_all_2xx"]),
        fmt_spread(&j["warm_p99_ratio"]["spread"], 1.0, 2),
        word(&met["warm_p99_ratio"]),
        word(&met["junk_all_refused"]),
        j["junk"]["flagged"],
    ))
}

pub(super) fn fmt_spread(v: &Value, scale: f64, digits: usize) -> String {
    let get = |k: &str| v.get(k).and_then(Value::as_f64);
    match (get("median"), get("min"), get("max")) {
        (Some(m), Some(lo), Some(hi)) => format!(
            "{:.d$} ({:.d$}–{:.d$})",
            m * scale,
            lo * scale,
            hi * scale,
            d = digits
        ),
        _ => "–".to_owned(),
    }
}

pub(super) fn markdown(summary: &Value, arms: &[Arm]) -> String {
    let mut t = String::new();
    t.push_str("| arm | saturation req/s | Envoy CPU µs/req | Envoy CPU (cores) | load generator CPU (cores) | paced p50 µs | paced p99 µs |\n");
    t.push_str("|---|---|---|---|---|---|---|\n");
    for arm in arms {
        let a = &summary["arms"][arm.letter().to_string()];
        t.push_str(&format!(
            "| ({}) {} | {} | {} | {} | {} | {} | {} |\n",
            arm.letter(),
            arm.name(),
            fmt_spread(&a["saturation"]["rps"], 1.0, 0),
            fmt_spread(&a["saturation"]["envoy_cpu_us_per_req"], 1.0, 1),
            fmt_spread(&a["saturation"]["envoy_cpu_util"], 1.0, 2),
            fmt_spread(&a["saturation"]["loadgen_cpu_util"], 1.0, 2),
            fmt_spread(&a["paced"]["p50_us"], 1.0, 0),
            fmt_spread(&a["paced"]["p99_us"], 1.0, 0),
        ));
    }
    t.push_str("\n| ratio (saturation req/s, per repetition) | median (min–max) |\n|---|---|\n");
    for (k, label) in [
        ("warm_vs_floor", "c/f warm vs floor (goal ≥ 0.8)"),
        ("warm_vs_jwt", "c/b warm vs jwt_authn (required ≥ 1.0)"),
        ("warm_vs_none", "c/a warm vs no filter"),
        ("cold_vs_warm", "d/c cold vs warm"),
        (
            "cold_agent_vs_cold_wasm",
            "h/d cold arms (both unwrapped by the agent since issue 26; was ≥ 10 against RSA in wasm)",
        ),
        ("directory_vs_warm", "e/c directory miss vs warm"),
        ("fleet_vs_warm", "g/c fleet replay vs warm (target ≥ 0.5)"),
        ("basic_vs_warm", "i/c HTTP Basic (bind remembered) vs warm"),
        (
            "extauthz_vs_warm",
            "x/c Envoy ext_authz to the agent vs warm wasm",
        ),
        (
            "nginx_vs_warm",
            "n/c nginx auth_request to the agent vs warm wasm",
        ),
    ] {
        t.push_str(&format!(
            "| {label} | {} |\n",
            fmt_spread(&summary[k]["spread"], 1.0, 3)
        ));
    }
    t.push_str(&format!(
        "\nPaced phase: {} req/s for every arm except cold ({}).\n",
        summary["paced_rate_rps"], summary["cold_paced_rate_rps"]
    ));
    let fleet = &summary["fleet_replay"];
    if fleet["claims_per_batch"].get("median").is_some() {
        t.push_str(&format!(
            "\nFleet replay: {} claims per batch (one agent callout each) at saturation, {} paced.\n",
            fmt_spread(&fleet["claims_per_batch"], 1.0, 1),
            fmt_spread(&fleet["paced_claims_per_batch"], 1.0, 2),
        ));
    }
    let j = &summary["junk_flood"];
    if j["warm"]["with"]["p99_us"].get("median").is_some() {
        t.push_str(&format!(
            "\nJunk flood of {} new sessions/s from {} sources ({}, client {} of a core), keys and epochs at the agent: \
             legitimate new sessions ({}/s from {}) p50 {} µs, p99 {} µs, max {} µs, non-2xx {}; \
             warm arm p50 {} µs, p99 {} µs, p99 with/without {}×; junk answers {}; agent RSA \
             unwraps {}, possession refused {}, unchecked shed {}.\n",
            j["flood_rate"],
            j["flood_sources"],
            fmt_spread(&j["junk"]["achieved_rps"], 1.0, 0) + " achieved",
            fmt_spread(&j["junk"]["client_cpu_util"], 1.0, 2),
            j["legit_sessions_rate"],
            j["legit_source"].as_str().unwrap_or("?"),
            fmt_spread(&j["legit"]["p50_us"], 1.0, 0),
            fmt_spread(&j["legit"]["p99_us"], 1.0, 0),
            fmt_spread(&j["legit"]["max_us"], 1.0, 0),
            j["legit"]["non_2xx"],
            fmt_spread(&j["warm"]["with"]["p50_us"], 1.0, 0),
            fmt_spread(&j["warm"]["with"]["p99_us"], 1.0, 0),
            fmt_spread(&j["warm_p99_ratio"]["spread"], 1.0, 2),
            j["junk"]["answers"],
            j["agent"]["rsa_unwraps"],
            j["agent"]["possession_refused"],
            j["agent"]["unchecked_shed"],
        ));
    }
    let n = &summary["warm_beside_new_sessions"];
    if n["with"]["p99_us"].get("median").is_some() {
        t.push_str(&format!(
            "\nWarm arm paced with the keys and epochs at the agent, beside {} new sessions/s from {}: \
             p50 {} µs, p99 {} µs; alone: p50 {} µs, p99 {} µs; p99 with/without {}× \
             (target ≤ 1.5); new sessions answered 2xx per run {}.\n",
            n["new_sessions_rate"],
            n["source"].as_str().unwrap_or("?"),
            fmt_spread(&n["with"]["p50_us"], 1.0, 0),
            fmt_spread(&n["with"]["p99_us"], 1.0, 0),
            fmt_spread(&n["without"]["p50_us"], 1.0, 0),
            fmt_spread(&n["without"]["p99_us"], 1.0, 0),
            fmt_spread(&summary["warm_p99_with_cold_vs_without"]["spread"], 1.0, 2),
            n["sessions_ok"],
        ));
    }
    t
}

/// The sum of a run's counters whose names end with `name` (Envoy prefixes them per filter).
pub(super) fn counter(r: &RunRecord, name: &str) -> f64 {
    r.counters
        .iter()
        .filter(|(k, _)| k.ends_with(name))
        .map(|(_, v)| *v as f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_junk_answer_but_401_is_flagged_except_a_shed_v2() {
        for label in ["v3_new_subject", "v3_known_subject", "v2"] {
            assert!(!junk_answer_flagged(label, "401"), "{label}");
            assert!(junk_answer_flagged(label, "200"), "{label}");
            assert!(junk_answer_flagged(label, "error"), "{label}");
            assert!(junk_answer_flagged(label, "429"), "{label}");
        }
        assert!(!junk_answer_flagged("v2", "503"));
        assert!(junk_answer_flagged("v3_new_subject", "503"));
        assert!(junk_answer_flagged("v3_known_subject", "503"));
    }

    #[test]
    fn the_targets_are_inclusive_and_absent_figures_have_no_verdict() {
        assert_eq!(
            junk_flood_met(Some(1_000_000.0), Some(1.5)),
            (Some(true), Some(true))
        );
        assert_eq!(
            junk_flood_met(Some(1_000_001.0), Some(1.51)),
            (Some(false), Some(false))
        );
        assert_eq!(junk_flood_met(None, None), (None, None));
    }
}
