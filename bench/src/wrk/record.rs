//! What a wrk run is checked against (Envoy's counters), its record, and the summary's `wrk` object.

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::Outcome;

/// Envoy's counters after a wrk run, and what they must agree with.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The arm's own count of allowed requests (`autoid_requests_allowed`, `jwt_authn.allowed`).
    pub allowed: u64,
    /// The arm's own count of denied requests.
    pub denied: u64,
    /// Envoy's `downstream_rq_2xx`.
    pub rq_2xx: u64,
    /// Envoy's `downstream_rq_4xx` + `downstream_rq_5xx`.
    pub rq_not_2xx: u64,
    /// What wrk (and the priming) saw answered below 400.
    pub wrk_ok: u64,
    /// `allowed − wrk_ok`: requests in flight when a wrk run stopped, which Envoy answered
    /// after wrk stopped reading (at most one per connection per wrk run).
    pub in_flight: u64,
}

/// One wrk run of one arm in one repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The arm's letter.
    pub arm: char,
    /// The repetition.
    pub rep: usize,
    /// 2xx per second in the measured run.
    pub rps: f64,
    /// Envoy CPU µs per 2xx in the measured run.
    pub envoy_cpu_us_per_req: f64,
    /// Envoy's CPU (cores) over the measured run.
    pub envoy_cpu_util: f64,
    /// wrk's CPU (cores) over the measured run.
    pub wrk_cpu_util: f64,
    /// The run.
    pub outcome: Outcome,
    /// Envoy's counters against wrk's count.
    pub check: Check,
    /// Every counter read.
    pub counters: Vec<(String, u64)>,
}

impl Record {
    /// Checks Envoy's counters (`allowed`/`denied`: the names the arm's counters end with)
    /// against wrk's count, and builds the record; an error says what disagreed.
    pub fn check(
        arm: char,
        rep: usize,
        outcome: Outcome,
        counters: Vec<(String, u64)>,
        (allowed, denied): (&str, &str),
        connections: usize,
    ) -> Result<Record> {
        let sum = |suffix: &str| crate::stats::counter_sum(&counters, suffix);
        let check = Check {
            allowed: sum(allowed),
            denied: sum(denied),
            rq_2xx: sum(".downstream_rq_2xx"),
            rq_not_2xx: sum(".downstream_rq_4xx") + sum(".downstream_rq_5xx"),
            wrk_ok: outcome.ok_total(),
            in_flight: sum(allowed).saturating_sub(outcome.ok_total()),
        };
        let mut wrong = Vec::new();
        for (what, r) in [
            ("warm-up", &outcome.warmup),
            ("measured", &outcome.measured),
        ] {
            if r.errors.status > 0 {
                wrong.push(format!("wrk's {what} run read {} non-2xx", r.errors.status));
            }
            if r.socket_errors() > 0 {
                wrong.push(format!("wrk's {what} run had socket errors {:?}", r.errors));
            }
        }
        if check.denied > 0 || check.rq_not_2xx > 0 {
            wrong.push(format!(
                "Envoy denied {} and answered {} requests 4xx/5xx",
                check.denied, check.rq_not_2xx
            ));
        }
        // Every request wrk saw allowed was allowed; Envoy may have allowed, beyond those, the
        // requests in flight when each of the two wrk runs stopped reading.
        let slack = 2 * connections as u64;
        for (what, n) in [
            ("allowed", check.allowed),
            ("downstream_rq_2xx", check.rq_2xx),
        ] {
            if n < check.wrk_ok || n > check.wrk_ok + slack {
                wrong.push(format!(
                    "Envoy's {what} {n} against wrk's {} answered (+ at most {slack} in flight)",
                    check.wrk_ok
                ));
            }
        }
        if !wrong.is_empty() {
            bail!("{}: {}", arm, wrong.join("; "));
        }
        let secs = outcome.measured.duration_us as f64 / 1e6;
        let ok = outcome.measured.ok();
        Ok(Record {
            arm,
            rep,
            rps: outcome.rps(),
            envoy_cpu_us_per_req: if ok == 0 {
                f64::NAN
            } else {
                outcome.envoy_cpu_secs * 1e6 / ok as f64
            },
            envoy_cpu_util: outcome.envoy_cpu_secs / secs,
            wrk_cpu_util: outcome.wrk_cpu_secs / secs,
            outcome,
            check,
            counters,
        })
    }
}

/// [`crate::stats::spread`] as a JSON value (`null` when there is none).
fn spread(values: &[f64]) -> Value {
    json!(crate::stats::spread(values))
}

/// The `wrk` object of `summary.json`: per arm, and warm against `jwt_authn` per repetition.
/// `in_house` is the rest of the summary (its `arms.<letter>.saturation`).
pub fn summarize(records: &[Record], in_house: &Value, settings: Value) -> Value {
    let pick = |arm: char, f: &dyn Fn(&Record) -> f64| -> Vec<f64> {
        records.iter().filter(|r| r.arm == arm).map(f).collect()
    };
    let mut arms = serde_json::Map::new();
    for arm in ['b', 'c'] {
        if !records.iter().any(|r| r.arm == arm) {
            continue;
        }
        let rps = pick(arm, &|r| r.rps);
        let own = in_house["arms"][arm.to_string()]["saturation"]["rps"]["median"].as_f64();
        let median = spread(&rps)["median"].as_f64();
        arms.insert(
            arm.to_string(),
            json!({
                "name": in_house["arms"][arm.to_string()]["name"],
                "rps": spread(&rps),
                "p50_us": spread(&pick(arm, &|r| r.outcome.measured.latency_us.p50)),
                "p99_us": spread(&pick(arm, &|r| r.outcome.measured.latency_us.p99)),
                "envoy_cpu_us_per_req": spread(&pick(arm, &|r| r.envoy_cpu_us_per_req)),
                "envoy_cpu_util": spread(&pick(arm, &|r| r.envoy_cpu_util)),
                "wrk_cpu_util": spread(&pick(arm, &|r| r.wrk_cpu_util)),
                "in_flight_at_stop": spread(&pick(arm, &|r| r.check.in_flight as f64)),
                "wrk_vs_in_house": match (median, own) {
                    (Some(m), Some(o)) if o > 0.0 => json!(m / o),
                    _ => Value::Null,
                },
            }),
        );
    }
    // Ratios per repetition, as the in-house ones.
    let ratio = |f: &dyn Fn(&Record) -> f64| -> Value {
        let per_rep: Vec<f64> = records
            .iter()
            .filter(|r| r.arm == 'c')
            .filter_map(|c| {
                records
                    .iter()
                    .find(|b| b.arm == 'b' && b.rep == c.rep)
                    .map(|b| f(c) / f(b))
            })
            .collect();
        json!({
            "median": spread(&per_rep)["median"],
            "spread": spread(&per_rep),
            "per_rep": per_rep,
        })
    };
    json!({
        "warm_vs_jwt": ratio(&|r| r.rps),
        "envoy_cpu_per_req_ratios": { "warm_vs_jwt": ratio(&|r| r.envoy_cpu_us_per_req) },
        "warm_rps": spread(&pick('c', &|r| r.rps)),
        "jwt_rps": spread(&pick('b', &|r| r.rps)),
        "arms": arms,
        "settings": settings,
        "runs": records,
    })
}

fn fmt(v: &Value, digits: usize) -> String {
    let get = |k: &str| v.get(k).and_then(Value::as_f64);
    match (get("median"), get("min"), get("max")) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})"),
        _ => "–".to_owned(),
    }
}

/// The wrk section of `summary.md`, beside the in-house figures.
pub fn markdown(summary: &Value) -> String {
    let w = &summary["wrk"];
    let Some(arms) = w["arms"].as_object() else {
        return String::new();
    };
    let mut t = format!(
        "\nCross-check with {} (Lua, pre-made requests; {} thread(s), {} connections, \
         {} s warm-up + {} s), same bootstraps, same repetitions:\n\n",
        w["settings"]["version"].as_str().unwrap_or("wrk"),
        w["settings"]["threads"],
        w["settings"]["connections"],
        w["settings"]["warmup_secs"],
        w["settings"]["duration_secs"],
    );
    t.push_str("| arm | in-house req/s | wrk req/s | wrk / in-house | Envoy CPU µs/req (wrk) | wrk CPU (cores) | wrk p50 µs | wrk p99 µs |\n");
    t.push_str("|---|---|---|---|---|---|---|---|\n");
    for (letter, a) in arms {
        t.push_str(&format!(
            "| ({letter}) {} | {} | {} | {} | {} | {} | {} | {} |\n",
            a["name"].as_str().unwrap_or("?"),
            fmt(&summary["arms"][letter]["saturation"]["rps"], 0),
            fmt(&a["rps"], 0),
            a["wrk_vs_in_house"]
                .as_f64()
                .map_or("–".to_owned(), |x| format!("{x:.3}")),
            fmt(&a["envoy_cpu_us_per_req"], 1),
            fmt(&a["wrk_cpu_util"], 2),
            fmt(&a["p50_us"], 0),
            fmt(&a["p99_us"], 0),
        ));
    }
    t.push_str(&format!(
        "\n| c/b warm vs jwt_authn (required ≥ 1.0) | saturation req/s, median (min–max) | Envoy CPU µs/req, median (min–max) |\n|---|---|---|\n\
         | in-house generator | {} | {} |\n| wrk | {} | {} |\n",
        fmt(&summary["warm_vs_jwt"]["spread"], 3),
        fmt(&summary["envoy_cpu_per_req_ratios"]["warm_vs_jwt"]["spread"], 3),
        fmt(&w["warm_vs_jwt"]["spread"], 3),
        fmt(&w["envoy_cpu_per_req_ratios"]["warm_vs_jwt"]["spread"], 3),
    ));
    t
}
