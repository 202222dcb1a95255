//! Second clients beside a measured run, paced, on keep-alive connections, each bound to a source
//! address of its own (all of 127.0.0.0/8 is loopback on Linux, and Envoy sees each address as a
//! distinct peer), until stopped. Phase 3 sends a junk flood round-robin over many sources
//! (bench/src/junk.rs) and, from another source, legitimate new sessions whose latency is
//! recorded; phase 4 sends valid new sessions from one source.
//!
//! One OS thread runs a current-thread tokio runtime with a task per connection: request `k` is
//! due at `start + k / rate` on connection `k mod connections`; one taken while already overdue
//! is charged from its due time (no coordinated omission), as in the load generator.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::procstat;

/// Phase 4's source of new sessions.
pub const SESSIONS_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Phase 3's source of legitimate new sessions (the warm arm is 127.0.0.1, the junk elsewhere).
pub const LEGIT_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// Connections a flood keeps at least, so that one slow answer does not hold back its rate.
const MIN_CONNECTIONS: usize = 64;
/// How long one exchange may take before the connection is counted failed and reopened.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// `n` junk source addresses, none in 127.0.0.0/24 (the load generator's and the other
/// clients'): 127.0.1.1, …, 127.0.1.254, 127.0.2.1, … (no .0 or .255 host byte).
pub fn sources(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            let (hi, lo) = (1 + i / 254, 1 + i % 254);
            IpAddr::V4(Ipv4Addr::new(127, (hi >> 8) as u8, hi as u8, lo as u8))
        })
        .collect()
}

/// Connections for `sources` source addresses: a whole multiple of them (so that requests go
/// round-robin over the sources), at least [`MIN_CONNECTIONS`].
pub fn connections_for(sources: usize) -> usize {
    let n = sources.max(1);
    n * MIN_CONNECTIONS.div_ceil(n)
}

/// One labelled request list.
#[derive(Debug)]
pub struct Stream {
    /// Complete HTTP/1.1 requests, each with the label its answers are counted under.
    pub requests: Vec<(&'static str, Vec<u8>)>,
    /// Each request once (proofs that open sessions), or cycled (junk).
    pub unique: bool,
}

/// What a flood does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The gateway's listener.
    pub addr: SocketAddr,
    /// Requests per second.
    pub rate: f64,
    /// Source addresses, round-robin over the connections.
    pub sources: Vec<IpAddr>,
    /// Connections (at least one per source).
    pub connections: usize,
    /// Record each request's latency.
    pub latency: bool,
}

/// Latency of the requests a flood recorded, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Requests answered.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// The slowest.
    pub max_us: f64,
}

/// What a flood did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloodOutcome {
    /// The target rate.
    pub rate: f64,
    /// Source addresses.
    pub sources: usize,
    /// Connections.
    pub connections: usize,
    /// Requests sent.
    pub sent: u64,
    /// Sent per second, from the first due time to the stop.
    pub achieved_rps: f64,
    /// Answers that were 401, as junk must get.
    pub unauthorized: u64,
    /// Answers that were 2xx, as valid proofs must get.
    pub ok: u64,
    /// Any other answer, or none (a failed or timed-out exchange).
    pub other: u64,
    /// Exchanges that failed (no answer within 10 s, a closed connection).
    pub errors: u64,
    /// Answers by label, then by status ("error": no answer).
    pub by_label: BTreeMap<String, BTreeMap<String, u64>>,
    /// Latency of every answered request (when recorded).
    pub latency: Option<Latency>,
    /// A unique list ran out before the stop.
    pub exhausted: bool,
    /// CPU seconds of the flood's own thread (it runs on one: at most one core).
    pub cpu_secs: f64,
    /// Of one core, over the flood's life.
    pub cpu_util: f64,
}

#[derive(Default)]
struct Tally {
    by_label: BTreeMap<&'static str, BTreeMap<String, u64>>,
    latencies_us: Vec<u64>,
    sent: u64,
    exhausted: bool,
    cpu_secs: f64,
}

struct Shared {
    plan: Plan,
    stream: Stream,
    start: Instant,
    stop: AtomicBool,
    tally: Mutex<Tally>,
}

/// A running flood.
pub struct Flood {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flood")
            .field("rate", &self.shared.plan.rate)
            .finish()
    }
}

impl Flood {
    /// Starts sending `stream` as `plan` says, on a thread of its own.
    pub fn start(plan: Plan, stream: Stream) -> Result<Flood> {
        if stream.requests.is_empty() || plan.rate <= 0.0 || plan.sources.is_empty() {
            bail!("a flood needs requests, a positive rate and a source");
        }
        let connections = plan.connections.max(plan.sources.len());
        let plan = Plan {
            connections,
            ..plan
        };
        let shared = Arc::new(Shared {
            plan,
            stream,
            start: Instant::now() + Duration::from_millis(20),
            stop: AtomicBool::new(false),
            tally: Mutex::new(Tally::default()),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("autoid-flood".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("  flood: no tokio runtime: {e}");
                        return;
                    }
                };
                let cpu = procstat::this_thread().unwrap_or_default();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..s.plan.connections)
                        .map(|c| tokio::spawn(connection(c, s.clone())))
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                });
                let used = procstat::this_thread().unwrap_or_default().secs_since(&cpu);
                if let Ok(mut t) = s.tally.lock() {
                    t.cpu_secs = used;
                }
            })
            .context("spawn the flood's thread")?;
        Ok(Flood {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops the flood and says what it did.
    pub fn stop(mut self) -> FloodOutcome {
        self.shared.stop.store(true, Ordering::Relaxed);
        let elapsed = self.shared.start.elapsed().as_secs_f64();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let tally = match self.shared.tally.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        let sum = |f: &dyn Fn(&str) -> bool| -> u64 {
            tally
                .by_label
                .values()
                .flat_map(|m| m.iter())
                .filter(|(k, _)| f(k))
                .map(|(_, v)| *v)
                .sum()
        };
        let ok = sum(&|k| k.starts_with('2'));
        let unauthorized = sum(&|k| k == "401");
        let errors = sum(&|k| k == "error");
        let latency = self
            .shared
            .plan
            .latency
            .then(|| latency(tally.latencies_us));
        FloodOutcome {
            rate: self.shared.plan.rate,
            sources: self.shared.plan.sources.len(),
            connections: self.shared.plan.connections,
            sent: tally.sent,
            achieved_rps: if elapsed > 0.0 {
                tally.sent as f64 / elapsed
            } else {
                0.0
            },
            unauthorized,
            ok,
            other: sum(&|_| true) - ok - unauthorized,
            errors,
            by_label: tally
                .by_label
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            latency,
            exhausted: tally.exhausted,
            cpu_secs: tally.cpu_secs,
            cpu_util: if elapsed > 0.0 {
                tally.cpu_secs / elapsed
            } else {
                0.0
            },
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Percentiles of `us` (nearest rank).
pub fn latency(mut us: Vec<u64>) -> Latency {
    if us.is_empty() {
        return Latency::default();
    }
    us.sort_unstable();
    let at = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1] as f64;
    Latency {
        count: us.len() as u64,
        p50_us: at(0.50),
        p99_us: at(0.99),
        max_us: at(1.0),
    }
}

async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connection `c`: requests `c`, `c + connections`, … at their due times.
async fn connection(c: usize, shared: Arc<Shared>) {
    let Shared {
        plan,
        stream: list,
        start,
        ..
    } = &*shared;
    let source = plan.sources[c % plan.sources.len()];
    let n = list.requests.len();
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut k = c;
    loop {
        let due = *start + Duration::from_secs_f64(k as f64 / plan.rate);
        let now = Instant::now();
        let sent = if due > now {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let i = if list.unique { k } else { k % n };
        let Some((label, request)) = list.requests.get(i) else {
            if let Ok(mut t) = shared.tally.lock() {
                t.exhausted = true;
            }
            return;
        };
        if let Ok(mut t) = shared.tally.lock() {
            t.sent += 1;
        }
        let exchange = async {
            if conn.is_none() {
                conn = Some(connect_from(source, plan.addr).await?);
            }
            let s = conn.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
            s.write_all(request).await?;
            crate::loadgen::read_response(s, &mut buf).await
        };
        let status = match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(Ok((status, close))) => {
                if close {
                    conn = None;
                }
                Some(status)
            }
            _ => {
                conn = None;
                None
            }
        };
        let took = sent.elapsed().as_micros() as u64;
        if let Ok(mut t) = shared.tally.lock() {
            let key = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
            *t.by_label.entry(label).or_default().entry(key).or_default() += 1;
            if plan.latency && status.is_some() {
                t.latencies_us.push(took);
            }
        }
        k += plan.connections;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_distinct_loopback_addresses_outside_the_other_clients() {
        for n in [1, 16, 254, 255, 256, 1000] {
            let s = sources(n);
            assert_eq!(s.len(), n);
            let distinct: std::collections::BTreeSet<_> = s.iter().collect();
            assert_eq!(distinct.len(), n, "{n} sources, all distinct");
            for a in &s {
                let IpAddr::V4(v4) = a else {
                    panic!("{a}: IPv4")
                };
                let [a0, a1, a2, a3] = v4.octets();
                assert_eq!(a0, 127, "{v4}: loopback");
                assert_eq!(a1, 0, "{v4}");
                assert_ne!(
                    a2, 0,
                    "{v4}: not 127.0.0.x (the load generator, the other clients)"
                );
                assert!(a3 != 0 && a3 != 255, "{v4}: no .0 or .255 host byte");
            }
        }
        assert_eq!(
            sources(256)[..2],
            [
                "127.0.1.1".parse::<IpAddr>().unwrap(),
                "127.0.1.2".parse().unwrap()
            ]
        );
        assert_eq!(sources(256)[254], "127.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn connections_are_a_multiple_of_the_sources_and_at_least_the_minimum() {
        for n in [1, 3, 7, 64, 100, 256] {
            let c = connections_for(n);
            assert_eq!(c % n, 0, "{n}: round-robin over the sources");
            assert!(c >= MIN_CONNECTIONS && c >= n, "{n}: {c}");
            assert!(c < n + MIN_CONNECTIONS, "{n}: no more than needed: {c}");
        }
        assert_eq!(connections_for(256), 256);
        assert_eq!(connections_for(1), MIN_CONNECTIONS);
    }

    #[test]
    fn latency_takes_nearest_rank_percentiles() {
        let l = latency((1..=1000).rev().collect());
        assert_eq!(
            (l.count, l.p50_us, l.p99_us, l.max_us),
            (1000, 500.0, 990.0, 1000.0)
        );
        assert_eq!(latency(vec![]).count, 0);
        assert_eq!(latency(vec![7]).p99_us, 7.0);
    }
}
