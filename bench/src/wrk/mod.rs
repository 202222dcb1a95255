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

use crate::loadgen::{self, Requests};
use crate::procstat;

mod record;

pub use record::{Check, Record, markdown, summarize};

/// The Lua script wrk runs (written next to the pools).
pub const SCRIPT: &str = include_str!("../../wrk/pool.lua");

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
