//! The load generator: HTTP/1.1 keep-alive connections on one thread (a current-thread tokio
//! runtime), each request taken from a list of pre-built request bytes, never reused when the
//! list is unique (every autoid proof is single-use).
//!
//! Two modes: *saturation* (every connection sends its next request as soon as the previous
//! answer arrived) and *paced* (request k is due at `start + k / rate`; a free connection takes
//! the next due request, so a slow server is charged the time its requests waited for a
//! connection — no coordinated omission).
//!
//! Counting window: `warmup` seconds are sent but not counted, then `duration` seconds count;
//! CPU of the watched processes and of this thread is sampled at the window's two ends.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procstat::{self, CpuTicks};

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// As fast as the connections allow.
    Saturate,
    /// At a fixed rate, requests per second.
    Paced(f64),
}

/// The requests to send.
#[derive(Debug)]
pub struct Requests {
    /// Complete HTTP/1.1 requests.
    pub bytes: Vec<Vec<u8>>,
    /// Every request may be sent once only (proofs); otherwise the list is cycled.
    pub unique: bool,
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Envoy's listener.
    pub addr: SocketAddr,
    /// Concurrent connections.
    pub connections: usize,
    /// Saturation or paced.
    pub mode: Mode,
    /// Sent, not counted.
    pub warmup: Duration,
    /// Counted.
    pub duration: Duration,
    /// Processes whose CPU is sampled over the counting window (Envoy first).
    pub watch: Vec<u32>,
    /// The first `prime` requests go one by one before the clock starts (to open sessions).
    pub prime: usize,
}

/// What one load run measured (counting window only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Responses completed in the window, any status.
    pub completed: u64,
    /// Of which not 200.
    pub non_200: u64,
    /// Connection errors (reconnected).
    pub errors: u64,
    /// The window actually measured, seconds (shorter if `exhausted`).
    pub window_secs: f64,
    /// Completed per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// CPU seconds of each watched process over the window.
    pub watched_cpu_secs: Vec<f64>,
    /// CPU seconds of the load generator's thread over the window.
    pub loadgen_cpu_secs: f64,
    /// The unique request list ran out before the end: the window was cut short.
    pub exhausted: bool,
    /// Requests taken from the list (including warm-up).
    pub sent: u64,
}

struct Shared {
    requests: Requests,
    next: Cell<u64>,
    first: u64,
    start: Instant,
    window_start: Instant,
    window_end: Instant,
    mode: Mode,
    exhausted: Cell<bool>,
    last_done: Cell<Instant>,
    latencies: RefCell<Vec<u32>>,
    completed: Cell<u64>,
    non_200: Cell<u64>,
    errors: Cell<u64>,
}

impl Shared {
    /// The next request and when it is due (paced), or `None` at the end.
    fn take(&self) -> Option<(u64, Option<Instant>)> {
        let k = self.next.get();
        let due = match self.mode {
            Mode::Saturate => {
                if Instant::now() >= self.window_end {
                    return None;
                }
                None
            }
            Mode::Paced(rate) => {
                let at = self.start + Duration::from_secs_f64((k - self.first) as f64 / rate);
                if at >= self.window_end {
                    return None;
                }
                Some(at)
            }
        };
        if self.requests.unique && k >= self.requests.bytes.len() as u64 {
            self.exhausted.set(true);
            return None;
        }
        self.next.set(k + 1);
        Some((k, due))
    }

    fn request(&self, k: u64) -> &[u8] {
        let n = self.requests.bytes.len() as u64;
        let i = if self.requests.unique {
            k
        } else {
            k % n.max(1)
        };
        self.requests
            .bytes
            .get(i as usize)
            .map_or(&[][..], Vec::as_slice)
    }

    fn record(&self, sent: Instant, done: Instant, status: u16) {
        if done < self.window_start || done > self.window_end {
            return;
        }
        self.completed.set(self.completed.get() + 1);
        if status != 200 {
            self.non_200.set(self.non_200.get() + 1);
        }
        self.last_done.set(done);
        let us = done.saturating_duration_since(sent).as_micros();
        self.latencies
            .borrow_mut()
            .push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

/// Runs one load run on the calling thread.
pub fn run(plan: &Plan, requests: Requests) -> Result<Outcome> {
    if requests.bytes.is_empty() {
        bail!("no requests to send");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run_async(plan, requests))
}

async fn run_async(plan: &Plan, requests: Requests) -> Result<Outcome> {
    // Connect first, so connection setup is not part of the run.
    let mut streams = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        streams.push(connect(plan.addr).await?);
    }
    let mut first_request = 0u64;
    if let Some(stream) = streams.first_mut() {
        let n = plan.prime.min(requests.bytes.len());
        prime_on(stream, &requests.bytes[..n]).await?;
        first_request = n as u64;
    }
    let start = Instant::now();
    let window_start = start + plan.warmup;
    let window_end = window_start + plan.duration;
    let shared = Rc::new(Shared {
        requests,
        next: Cell::new(first_request),
        first: first_request,
        start,
        window_start,
        window_end,
        mode: plan.mode,
        exhausted: Cell::new(false),
        last_done: Cell::new(window_start),
        latencies: RefCell::new(Vec::new()),
        completed: Cell::new(0),
        non_200: Cell::new(0),
        errors: Cell::new(0),
    });
    let local = tokio::task::LocalSet::new();
    let watch = plan.watch.clone();
    let sampler = local.spawn_local(async move {
        tokio::time::sleep_until(window_start.into()).await;
        let before = sample(&watch);
        tokio::time::sleep_until(window_end.into()).await;
        let after = sample(&watch);
        (before, after)
    });
    let mut tasks = Vec::new();
    for stream in streams {
        let shared = shared.clone();
        let addr = plan.addr;
        tasks.push(local.spawn_local(connection(stream, addr, shared)));
    }
    let exhausted_early = shared.clone();
    let (samples, results) = local
        .run_until(async move {
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await);
            }
            // An exhausted list ends the run early: do not wait for the sampler then.
            let samples = if exhausted_early.exhausted.get() && Instant::now() < window_end {
                sampler.abort();
                None
            } else {
                sampler.await.ok()
            };
            (samples, results)
        })
        .await;
    for r in results {
        r.context("connection task")??;
    }
    let exhausted = shared.exhausted.get();
    let window_secs = if exhausted {
        shared
            .last_done
            .get()
            .saturating_duration_since(window_start)
            .as_secs_f64()
    } else {
        plan.duration.as_secs_f64()
    };
    let (watched_cpu_secs, loadgen_cpu_secs) = match samples {
        Some(((b, bs), (a, as_))) => (
            b.iter()
                .zip(&a)
                .map(|(b, a)| a.secs_since(b))
                .collect::<Vec<_>>(),
            as_.secs_since(&bs),
        ),
        None => (vec![f64::NAN; plan.watch.len()], f64::NAN),
    };
    let mut lat = shared.latencies.take();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)])
    };
    let completed = shared.completed.get();
    Ok(Outcome {
        completed,
        non_200: shared.non_200.get(),
        errors: shared.errors.get(),
        window_secs,
        rps: if window_secs > 0.0 {
            completed as f64 / window_secs
        } else {
            0.0
        },
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        watched_cpu_secs,
        loadgen_cpu_secs,
        exhausted,
        sent: shared.next.get(),
    })
}

/// Sends `requests` one by one on one connection to `addr`, each to be answered 200 (opens the
/// warm arms' sessions before another load generator starts).
pub fn prime(addr: SocketAddr, requests: &[Vec<u8>]) -> Result<()> {
    if requests.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async {
        let mut stream = connect(addr).await?;
        prime_on(&mut stream, requests).await
    })
}

async fn prime_on(stream: &mut TcpStream, requests: &[Vec<u8>]) -> Result<()> {
    let mut buf = Vec::new();
    for (k, request) in requests.iter().enumerate() {
        stream.write_all(request).await?;
        let (status, _) = read_response(stream, &mut buf).await?;
        if status != 200 {
            bail!("priming request {k} answered {status}");
        }
    }
    Ok(())
}

fn sample(pids: &[u32]) -> (Vec<CpuTicks>, CpuTicks) {
    let procs = pids
        .iter()
        .map(|p| procstat::process(*p).unwrap_or_default())
        .collect();
    (procs, procstat::this_thread().unwrap_or_default())
}

async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn connection(mut stream: TcpStream, addr: SocketAddr, shared: Rc<Shared>) -> Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    while let Some((k, due)) = shared.take() {
        let sent = match due {
            Some(at) => {
                let now = Instant::now();
                if at > now {
                    tokio::time::sleep_until(at.into()).await;
                    // Timer lateness is ours, not the server's: count from the actual send.
                    Instant::now()
                } else {
                    // Due while this connection was busy: the server's backlog, charged to it.
                    at
                }
            }
            None => Instant::now(),
        };
        let result = async {
            stream.write_all(shared.request(k)).await?;
            read_response(&mut stream, &mut buf).await
        }
        .await;
        match result {
            Ok((status, close)) => {
                shared.record(sent, Instant::now(), status);
                if close {
                    stream = connect(addr).await?;
                }
            }
            Err(_) => {
                shared.errors.set(shared.errors.get() + 1);
                stream = connect(addr).await?;
            }
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response; returns its status and whether the server will close the connection.
pub(crate) async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    use std::io::{Error, ErrorKind};
    buf.clear();
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])
                .map_err(|_| Error::new(ErrorKind::InvalidData, "non-utf8 head"))?;
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad status line"))?;
            let mut length = 0usize;
            let mut close = false;
            for line in lines {
                if let Some((name, value)) = line.split_once(':') {
                    let value = value.trim();
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.parse().unwrap_or(0);
                    } else if name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    } else if name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(Error::new(ErrorKind::InvalidData, "chunked response"));
                    }
                }
            }
            let total = end + 4 + length;
            while buf.len() < total {
                if stream.read_buf(buf).await? == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
            }
            return Ok((status, close));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Builds a GET request with one extra header (or none).
pub fn request(host: &str, path: &str, header: Option<(&str, &str)>) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: autoid-bench\r\n");
    if let Some((name, value)) = header {
        r.push_str(name);
        r.push_str(": ");
        r.push_str(value);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}
