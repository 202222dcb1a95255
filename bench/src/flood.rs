//! A second client beside a measured run, sent from 127.0.0.2 (another source than the load
//! generator's 127.0.0.1), paced, on keep-alive connections, until stopped. Phase 3 sends a junk
//! flood: proofs whose RSA-wrapped session keys are corrupted, so every one the cold-path budget
//! lets through costs a failed RSA unwrap. Phase 4 sends valid proofs, each with a new session:
//! the steady trickle of new clients a gateway meets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The flood's source address.
pub const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// What the flood did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FloodOutcome {
    /// The target rate.
    pub rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Answers that were 401, as junk must get.
    pub unauthorized: u64,
    /// Answers that were 2xx, as valid proofs must get.
    pub ok: u64,
    /// Any other answer (must stay 0).
    pub other: u64,
}

/// A running flood.
#[derive(Debug)]
pub struct Flood {
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 4]>,
    threads: Vec<JoinHandle<()>>,
    rate: f64,
}

/// `request` (an HTTP/1.1 request with a `v1.` or `v2.<kid>.<wrapped>.<sealed>` proof header,
/// the full form) with one base64url character of the wrapped key changed: the unwrap fails.
pub fn junk(request: &[u8], header: &str) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(request)?;
    let start = ["v1.", "v2."]
        .iter()
        .find_map(|v| text.find(&format!("{header}: {v}")))
        .context("no proof header")?
        + header.len()
        + 5;
    let kid_end = start + text[start..].find('.').context("no kid")?;
    let at = kid_end + 1 + 40;
    let mut out = request.to_vec();
    out[at] = if out[at] == b'A' { b'B' } else { b'A' };
    Ok(out)
}

impl Flood {
    /// Starts sending `requests` (cycled) to `addr` at `rate` per second over `connections`.
    pub fn start(
        addr: SocketAddr,
        requests: Vec<Vec<u8>>,
        rate: f64,
        connections: usize,
    ) -> Result<Flood> {
        if requests.is_empty() || rate <= 0.0 {
            bail!("a flood needs requests and a positive rate");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new([(); 4].map(|()| AtomicU64::new(0)));
        let requests = Arc::new(requests);
        let connections = connections.max(1);
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let threads = (0..connections)
            .map(|c| {
                let (stop, counts, requests) = (stop.clone(), counts.clone(), requests.clone());
                std::thread::spawn(move || {
                    let mut next = Instant::now() + interval.mul_f64(c as f64 / connections as f64);
                    let mut i = c;
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if now < next {
                            std::thread::sleep(next - now);
                        }
                        next += interval;
                        let request = &requests[i % requests.len()];
                        i += connections;
                        counts[0].fetch_add(1, Ordering::Relaxed);
                        match exchange(&mut conn, addr, request) {
                            Some(401) => counts[1].fetch_add(1, Ordering::Relaxed),
                            Some(200..=299) => counts[3].fetch_add(1, Ordering::Relaxed),
                            _ => {
                                conn = None;
                                counts[2].fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Ok(Flood {
            stop,
            counts,
            threads,
            rate,
        })
    }

    /// Stops the flood and says what it did.
    pub fn stop(self) -> FloodOutcome {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        FloodOutcome {
            rate: self.rate,
            sent: self.counts[0].load(Ordering::Relaxed),
            unauthorized: self.counts[1].load(Ordering::Relaxed),
            ok: self.counts[3].load(Ordering::Relaxed),
            other: self.counts[2].load(Ordering::Relaxed),
        }
    }
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::new(SOURCE, 0).into()).ok()?;
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(2))
        .ok()?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// One request on the kept connection (opened when missing): the response status.
fn exchange(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    request: &[u8],
) -> Option<u16> {
    if conn.is_none() {
        *conn = Some(BufReader::new(connect(addr)?));
    }
    let reader = conn.as_mut()?;
    reader.get_mut().write_all(request).ok()?;
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}
