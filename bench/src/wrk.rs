//! The cross-check with an independent load generator: Debian's `wrk` 4.1 runs arms (b) and (c)
//! again, on the same bootstraps, in every repetition of phase 1.
//!
//! wrk sends, as they are, requests the bench made before the run (`bench/wrk/pool.lua` reads
//! them from files): autoid proofs, each sent at most once (a replayed proof is a 401), or the
//! `jwt_authn` arm's JWTs, cycled as the in-house generator cycles them. wrk has no warm-up, so a
//! run is: the warm arm's sessions opened one by one (as the in-house generator primes them),
//! a warm-up wrk run, then the measured wrk run, each from its own pool. Envoy's counters are
//! then checked against wrk's count ([`Record::check`]): every request wrk saw answered was
//! allowed, nothing was denied, nothing answered 4xx or 5xx.
//!
//! A pool that runs out stops its wrk thread and fails the run (its figure would be wrong):
//! pools hold 1.5× what the in-house generator reached on the same arm in the same repetition.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::loadgen::{self, Requests};
use crate::procstat;

/// The Lua script wrk runs (written next to the pools).
pub const SCRIPT: &str = include_str!("../wrk/pool.lua");

/// How much larger than the expected number of requests a pool of unique requests is made.
const HEADROOM: f64 = 1.5;

/// The command that installs wrk (Debian).
pub const INSTALL: &str = "sudo apt-get install -y wrk";

/// wrk's version line (`wrk -v`), or an error that says how to install it.
pub fn version(wrk: &Path) -> Result<String> {
    let out = Command::new(wrk).arg("-v").output().with_context(|| {
        format!(
            "wrk not found at {}: install it (`{INSTALL}`), or pass --no-wrk",
            wrk.display()
        )
    })?;
    // `wrk -v` prints its version and usage, and exits 1.
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    let line = line
        .split(" Copyright")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if !line.starts_with("wrk ") {
        bail!("{} -v printed {line:?}, not wrk's version", wrk.display());
    }
    Ok(line)
}

/// One wrk run against a running Envoy.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The wrk binary.
    pub wrk: PathBuf,
    /// Envoy's listener.
    pub addr: SocketAddr,
    /// Envoy's pid (its CPU is sampled over the measured run).
    pub envoy_pid: u32,
    /// wrk threads (`-t`).
    pub threads: usize,
    /// Connections (`-c`), over all threads.
    pub connections: usize,
    /// Whole seconds of the warm-up wrk run (wrk takes whole seconds).
    pub warmup_secs: u64,
    /// Whole seconds of the measured wrk run.
    pub duration_secs: u64,
    /// The first `prime` requests go one by one before wrk starts (to open sessions).
    pub prime: usize,
    /// Where the script and the pools are written (the pools are removed after the run).
    pub dir: PathBuf,
    /// A name for the run's files.
    pub name: String,
}

impl Plan {
    /// Whole seconds for wrk from the bench's seconds (at least one).
    pub fn secs(s: f64) -> u64 {
        (s.ceil() as u64).max(1)
    }

    /// How many requests to make for a run whose arm reaches about `rps`: the primes, then
    /// pools for the warm-up and the measured runs with [`HEADROOM`] (per thread, plus a
    /// request per connection in flight).
    pub fn requests_needed(&self, rps: f64) -> usize {
        self.prime + self.pool_len(rps, self.warmup_secs) + self.pool_len(rps, self.duration_secs)
    }

    fn pool_len(&self, rps: f64, secs: u64) -> usize {
        (rps.max(1.0) * secs as f64 * HEADROOM) as usize + self.spare()
    }

    fn spare(&self) -> usize {
        self.connections + 2 * self.threads
    }

    /// Of `n` requests made by [`Plan::requests_needed`] (less the primes), how many go to the
    /// warm-up pool: the same split, whatever the rate was.
    fn warmup_share(&self, n: usize) -> usize {
        let per_sec = n.saturating_sub(2 * self.spare()) as f64
            / (self.warmup_secs + self.duration_secs).max(1) as f64;
        ((per_sec * self.warmup_secs as f64) as usize + self.spare()).min(n)
    }
}

/// What wrk's `done()` reports for one wrk run (`bench/wrk/pool.lua`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The run's length, µs (from the start to every thread joined).
    pub duration_us: u64,
    /// Responses read, any status.
    pub requests: u64,
    /// Bytes read.
    pub bytes: u64,
    /// wrk's error counts (`status`: responses with a status above 399).
    pub errors: Errors,
    /// Latency, µs, as wrk records it (with its own coordinated-omission correction).
    pub latency_us: Latency,
    /// Requests taken from the pools (the first thread's first one is only parsed by wrk).
    pub taken: u64,
    /// Threads whose pool ran out.
    pub exhausted_threads: u64,
}

/// wrk's error counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Errors {
    /// Connections that failed.
    pub connect: u64,
    /// Read errors.
    pub read: u64,
    /// Write errors.
    pub write: u64,
    /// Responses with a status above 399.
    pub status: u64,
    /// Requests that timed out.
    pub timeout: u64,
}

/// wrk's latency figures, µs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Mean.
    pub mean: f64,
    /// Maximum.
    pub max: f64,
}

impl Report {
    /// Responses with a status below 400 (Envoy answers 200 or a 4xx/5xx here).
    pub fn ok(&self) -> u64 {
        self.requests.saturating_sub(self.errors.status)
    }

    /// 2xx per second.
    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.ok() as f64 * 1e6 / self.duration_us as f64
    }

    fn socket_errors(&self) -> u64 {
        self.errors.connect + self.errors.read + self.errors.write + self.errors.timeout
    }
}

/// A wrk run: its warm-up, its measured run and the CPU around the measured one.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The warm-up wrk run.
    pub warmup: Report,
    /// The measured wrk run.
    pub measured: Report,
    /// Requests sent one by one before wrk (the warm arm's sessions), all answered 200.
    pub primed: u64,
    /// Requests made for the run (primes and both pools).
    pub prepared: usize,
    /// Envoy's CPU seconds over the measured run (from wrk's start to its exit).
    pub envoy_cpu_secs: f64,
    /// wrk's CPU seconds over the measured run (its pool loading excluded).
    pub wrk_cpu_secs: f64,
}

impl Outcome {
    /// 2xx per second in the measured run.
    pub fn rps(&self) -> f64 {
        self.measured.rps()
    }

    /// Every response below 400 wrk read, primes included.
    pub fn ok_total(&self) -> u64 {
        self.primed + self.warmup.ok() + self.measured.ok()
    }
}

/// Removes the run's pool files when dropped, pass or fail (they are large).
struct Pools(Vec<PathBuf>);

impl Drop for Pools {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `requests` as `threads` files `<prefix>.<i>.http`, contiguous slices.
fn write_pool(
    prefix: &Path,
    requests: &[Vec<u8>],
    threads: usize,
    pools: &mut Pools,
) -> Result<()> {
    let chunk = requests.len().div_ceil(threads).max(1);
    for t in 0..threads {
        let path = PathBuf::from(format!("{}.{t}.http", prefix.display()));
        pools.0.push(path.clone());
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("write {}", path.display()))?,
        );
        for r in requests.iter().skip(t * chunk).take(chunk) {
            f.write_all(r)?;
        }
        f.flush()?;
    }
    Ok(())
}

/// Runs the primes, the warm-up and the measured wrk run.
pub fn run(plan: &Plan, requests: Requests) -> Result<Outcome> {
    let threads = plan.threads.max(1);
    if plan.connections < threads {
        bail!("wrk needs at least one connection per thread");
    }
    let script = plan.dir.join("wrk-pool.lua");
    std::fs::write(&script, SCRIPT).with_context(|| format!("write {}", script.display()))?;
    let prepared = requests.bytes.len();
    let prime = plan.prime.min(prepared);
    let mut pools = Pools(Vec::new());
    let (warm_prefix, run_prefix, mode) = if requests.unique {
        let rest = &requests.bytes[prime..];
        let split = plan.warmup_share(rest.len());
        let warm = plan.dir.join(format!("{}.warmup", plan.name));
        let run = plan.dir.join(format!("{}.run", plan.name));
        write_pool(&warm, &rest[..split], threads, &mut pools)?;
        write_pool(&run, &rest[split..], threads, &mut pools)?;
        (warm, run, "once")
    } else {
        let both = plan.dir.join(format!("{}.cycle", plan.name));
        write_pool(&both, &requests.bytes[prime..], threads, &mut pools)?;
        (both.clone(), both, "cycle")
    };
    loadgen::prime(plan.addr, &requests.bytes[..prime])?;
    let warmup = spawn(plan, &script, &warm_prefix, mode, plan.warmup_secs)?.finish()?;
    let measured = spawn(plan, &script, &run_prefix, mode, plan.duration_secs)?.finish()?;
    drop(pools);
    for (what, r) in [("warm-up", &warmup.report), ("measured", &measured.report)] {
        if r.exhausted_threads > 0 {
            bail!(
                "wrk {what} run: the pool of unique requests ran out in {} thread(s) after {} \
                 requests: its figure would be wrong (pools are {HEADROOM}× the in-house rate)",
                r.exhausted_threads,
                r.taken
            );
        }
    }
    Ok(Outcome {
        warmup: warmup.report,
        primed: prime as u64,
        prepared,
        envoy_cpu_secs: measured.envoy_cpu_secs,
        wrk_cpu_secs: measured.wrk_cpu_secs,
        measured: measured.report,
    })
}

/// A wrk process, killed if dropped before it finished.
struct Running {
    child: Option<Child>,
    stderr: String,
    stdout: Option<std::thread::JoinHandle<String>>,
    rest_of_stderr: Option<std::thread::JoinHandle<String>>,
    envoy_pid: u32,
    envoy_at_start: procstat::CpuTicks,
    wrk_at_start: procstat::CpuTicks,
    children_before: procstat::CpuTicks,
}

struct Finished {
    report: Report,
    envoy_cpu_secs: f64,
    wrk_cpu_secs: f64,
}

fn spawn(plan: &Plan, script: &Path, prefix: &Path, mode: &str, secs: u64) -> Result<Running> {
    let children_before = procstat::children()?;
    let url = format!("http://{}/", plan.addr);
    let mut child = Command::new(&plan.wrk)
        .arg("-t")
        .arg(plan.threads.max(1).to_string())
        .arg("-c")
        .arg(plan.connections.to_string())
        .arg("-d")
        .arg(format!("{secs}s"))
        .arg("-s")
        .arg(script)
        .arg(&url)
        .arg("--")
        .arg(prefix)
        .arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {} (`{INSTALL}`)", plan.wrk.display()))?;
    let mut stdout = child.stdout.take().context("wrk stdout")?;
    let stderr = child.stderr.take().context("wrk stderr")?;
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    // Each thread prints one line once its pool is loaded; wrk starts its clock right after the
    // last one (its threads are created, then it prints, then it starts timing).
    let mut lines = BufReader::new(stderr);
    let mut text = String::new();
    let mut ready = 0;
    while ready < plan.threads.max(1) {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.starts_with("autoid-wrk: thread ") {
            ready += 1;
        }
        text.push_str(&line);
    }
    let envoy_at_start = procstat::process(plan.envoy_pid).unwrap_or_default();
    let wrk_at_start = procstat::process(child.id()).unwrap_or_default();
    let rest_of_stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = lines.read_to_string(&mut s);
        s
    });
    Ok(Running {
        child: Some(child),
        stderr: text,
        stdout: Some(stdout),
        rest_of_stderr: Some(rest_of_stderr),
        envoy_pid: plan.envoy_pid,
        envoy_at_start,
        wrk_at_start,
        children_before,
    })
}

impl Running {
    fn finish(mut self) -> Result<Finished> {
        let status = match self.child.as_mut() {
            Some(c) => c.wait().context("wait for wrk")?,
            None => bail!("wrk already reaped"),
        };
        self.child = None;
        let envoy_after = procstat::process(self.envoy_pid).unwrap_or_default();
        let children_after = procstat::children()?;
        let joined = |h: Option<std::thread::JoinHandle<String>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        let stdout = joined(self.stdout.take());
        let rest = joined(self.rest_of_stderr.take());
        let stderr = format!("{}{rest}", self.stderr);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("autoid-wrk: result "))
            .with_context(|| {
                format!("wrk ({status}) printed no result\nstdout:\n{stdout}\nstderr:\n{stderr}")
            })?;
        let report: Report =
            serde_json::from_str(line).with_context(|| format!("wrk's result line {line:?}"))?;
        if !status.success() {
            bail!("wrk exited with {status}\nstderr:\n{stderr}");
        }
        // wrk's whole CPU (a reaped child's) less what it had spent loading its pools.
        let wrk_total = children_after.secs_since(&self.children_before);
        let wrk_loading = self.wrk_at_start.secs_since(&procstat::CpuTicks(0));
        Ok(Finished {
            report,
            envoy_cpu_secs: envoy_after.secs_since(&self.envoy_at_start),
            wrk_cpu_secs: (wrk_total - wrk_loading).max(0.0),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_parses() {
        let line = r#"{"duration_us":3001234,"requests":54000,"bytes":100,"errors":{"connect":0,"read":0,"write":0,"status":12,"timeout":0},"latency_us":{"p50":1700.0,"p99":4000.5,"p999":9000.0,"mean":1750.2,"max":12000.0},"taken":54032,"exhausted_threads":0}"#;
        let r: Report = serde_json::from_str(line).unwrap();
        assert_eq!(r.ok(), 53988);
        assert!((r.rps() - 53988.0 / 3.001234).abs() < 1e-6);
    }

    #[test]
    fn pools_cover_the_expected_rate_with_headroom() {
        let plan = Plan {
            wrk: "wrk".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            envoy_pid: 0,
            threads: 1,
            connections: 32,
            warmup_secs: 1,
            duration_secs: 3,
            prime: 16,
            dir: ".".into(),
            name: "t".into(),
        };
        assert_eq!(plan.requests_needed(1000.0), 16 + (1500 + 34) + (4500 + 34));
        let n = plan.requests_needed(1000.0) - plan.prime;
        assert!((plan.warmup_share(n) as i64 - (1500 + 34)).abs() <= 1);
        assert_eq!(Plan::secs(0.2), 1);
        assert_eq!(Plan::secs(3.0), 3);
        assert_eq!(Plan::secs(2.5), 3);
    }
}
