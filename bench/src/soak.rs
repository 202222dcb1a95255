//! `autoid-bench soak` (`make soak`): the replay table under sustained saturation.
//!
//! One Envoy (`--concurrency` workers, default: every core) runs the autoid filter as `make run`
//! deploys it (rendered by `autoid gateway render`; the key and epoch at the agent) with the
//! replay table and skew at their defaults. The load generator keeps it saturated with unique,
//! valid proofs for at least `--secs` seconds and at least `--min-proofs` proofs: the proofs are
//! made in segments of `--segment-secs` (each segment's made while the previous one is sent, so
//! every proof is fresh), round-robin over a few sessions opened once. Envoy's resident memory
//! is sampled every second and every non-200 counted, with Envoy's own counters
//! (`autoid_denied_replay_cache`, `autoid_replay_near_full`) read at the end. Writes
//! `soak.json` (the series and totals) and `soak.svg` (memory and throughput over time) to `--out`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autoid_cli::Target;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::keys::GatewayKey;
use autoid_testkit::envoy::Admin;
use autoid_testkit::free_port;
use serde_json::json;

use crate::directory::Directory;
use crate::envoy::{self, Envoy, ROUTE_NAME};
use crate::loadgen::{self, Mode, Plan, Requests};
use crate::{chart, gateway, proofs, steps};

const PROOF_HEADER: &str = "x-autoid-proof";
const SUBJECT: &str = "alice";
/// The replay ring's span at the default skew: 16 generations of 11 s (docs/CONFIG.md).
const RING_SECS: f64 = 16.0 * 11.0;

/// `autoid-bench soak` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Seconds of saturation at least (three skew windows of the default ±60 s: 180).
    #[arg(long, default_value_t = 200.0)]
    pub secs: f64,
    /// Unique proofs to send at least (the run goes on past `--secs` until then).
    #[arg(long, default_value_t = 1_000_000)]
    pub min_proofs: u64,
    /// Envoy worker threads (default: the machine's cores).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Sessions the proofs share.
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// Seconds per segment of proofs.
    #[arg(long, default_value_t = 5.0)]
    pub segment_secs: f64,
    /// Output directory.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Envoy binary.
    #[arg(long, env = "ENVOY", default_value = ".venv/bin/envoy")]
    pub envoy: PathBuf,
    /// The autoid filter.
    #[arg(long, default_value = "target/wasm32-wasip1/wasm/autoid_plugin.wasm")]
    pub plugin: PathBuf,
    /// The autoid agent (it holds the key and the epoch, as `make run` deploys them).
    #[arg(long, default_value = "target/release/autoid-agent")]
    pub bridge: PathBuf,
}

/// Envoy's resident memory sampled every second on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32, t0: Instant) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kb) = envoy::rss_kb_of(pid)
                    && let Ok(mut v) = out.lock()
                {
                    v.push((t0.elapsed().as_secs_f64(), kb));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        RssSampler {
            stop,
            samples,
            thread,
        }
    }

    fn stop(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// One segment's figures.
#[derive(Debug, serde::Serialize)]
struct Segment {
    /// Seconds since the soak started, at the segment's end.
    t: f64,
    sent: u64,
    completed: u64,
    non_200: u64,
    rps: f64,
}

pub fn main(o: &Options) -> Result<()> {
    for (what, path, how) in [
        ("Envoy", &o.envoy, "make deps-envoy"),
        ("the autoid filter", &o.plugin, "make wasm"),
        ("the autoid agent", &o.bridge, "make bins"),
    ] {
        if !path.exists() {
            bail!("{what} is missing at {}: run `{how}`", path.display());
        }
    }
    std::fs::create_dir_all(&o.out)?;
    let out = o.out.canonicalize()?;
    let plugin = out.join("soak.autoid_plugin.wasm");
    std::fs::copy(&o.plugin, &plugin).with_context(|| format!("copy {}", o.plugin.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency = o.concurrency.unwrap_or(cores).max(1);

    let mut rng = proofs::rng();
    let gateway = GatewayKey::from_pem("bench-3072", steps::KEY_3072_PEM)?;
    let epoch = Epoch::generate("bench-ep", &mut rng)?;
    let file = Arc::new(epoch.issue(SUBJECT)?);
    // The gateway as `make run` deploys it (the key and epoch at the agent, the groups from the
    // directory), rendered by `autoid gateway render`; the defaults for everything the soak is
    // about: no `replay`, no `limits`.
    let (keys_dir, epoch_file) = gateway::write_secrets(&out, &gateway, &epoch)?;
    let pem = gateway.to_pem()?;
    let directory = Directory::start(
        &o.bridge,
        &out,
        Some((gateway.kid(), pem.as_str())),
        Some((epoch.id(), epoch.to_json().as_str())),
        false,
    )?;
    let listen = free_port()?;
    let definition = gateway::gateway_definition(&gateway::Deployment {
        listen,
        wasm: &plugin,
        proof_header: PROOF_HEADER,
        keys_dir: &keys_dir,
        epoch_file: &epoch_file,
        agent: &directory.socket,
        groups_ttl_secs: 300,
    });
    let api = gateway::api(
        ROUTE_NAME,
        json!({
            "require": { "any_of": ["payments"] },
            "inject": { "authorization": { "value": "Bearer upstream-credential-for-the-soak" } }
        }),
    );
    let rendered = gateway::render(&out, "soak", &definition, &api, Target::EnvoyWasm)?;
    let proxy = Envoy::start_with(
        &o.envoy,
        &out,
        "soak",
        &gateway::envoy(&rendered.gateway)?,
        listen,
        Admin::Unix(rendered.admin_socket),
        concurrency,
    )?;
    let sessions = Arc::new(proofs::open_sessions(
        &gateway.public(),
        o.sessions,
        unix_now(),
    )?);

    // Segments are made on a thread of their own, one ahead of the one being sent.
    let (want_tx, want_rx) = mpsc::channel::<usize>();
    let (made_tx, made_rx) = mpsc::sync_channel::<Result<Vec<Vec<u8>>>>(1);
    let maker = {
        let (file, sessions) = (file.clone(), sessions.clone());
        std::thread::spawn(move || {
            for count in want_rx {
                let made = proofs::session_requests(&file, PROOF_HEADER, &sessions, count, 1);
                if made_tx.send(made).is_err() {
                    return;
                }
            }
        })
    };
    let mut estimate = 40_000.0 * o.segment_secs;
    want_tx.send(estimate as usize)?;
    eprintln!(
        "autoid-bench soak: Envoy --concurrency {concurrency}, at least {} s and {} proofs, {} connections",
        o.secs, o.min_proofs, o.connections
    );
    let t0 = Instant::now();
    let rss = RssSampler::start(proxy.pid(), t0);
    let mut segments = Vec::new();
    let mut total_sent = 0u64;
    let mut first = true;
    while t0.elapsed().as_secs_f64() < o.secs || total_sent < o.min_proofs {
        let requests = made_rx.recv().context("the proof maker stopped")??;
        // The next segment, sized from what Envoy just served (with room to spare).
        want_tx.send(estimate as usize)?;
        let plan = Plan {
            addr: proxy.addr,
            connections: o.connections,
            mode: Mode::Saturate,
            warmup: Duration::ZERO,
            duration: Duration::from_secs_f64(o.segment_secs),
            watch: vec![],
            prime: if first { sessions.len() } else { 0 },
        };
        first = false;
        let outcome = loadgen::run(
            &plan,
            Requests {
                bytes: requests,
                unique: true,
            },
        )?;
        total_sent += outcome.sent;
        estimate = (outcome.rps * o.segment_secs * 1.3).max(1000.0);
        let seg = Segment {
            t: t0.elapsed().as_secs_f64(),
            sent: outcome.sent,
            completed: outcome.completed,
            non_200: outcome.non_200,
            rps: outcome.rps,
        };
        eprintln!(
            "  t {:>6.1} s  {:>8.0} req/s  sent {:>9}  non-200 {:>6}{}",
            seg.t,
            seg.rps,
            total_sent,
            seg.non_200,
            if outcome.exhausted {
                "  (segment's proofs ran out)"
            } else {
                ""
            }
        );
        segments.push(seg);
    }
    drop(want_tx);
    drop(made_rx);
    let _ = maker.join();
    let rss = rss.stop();
    let stats: std::collections::BTreeMap<String, u64> =
        proxy.stats("autoid")?.into_iter().collect();
    let stat = |suffix: &str| {
        stats
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    drop(proxy);
    drop(directory);

    let elapsed = t0.elapsed().as_secs_f64();
    let non_200: u64 = segments.iter().map(|s| s.non_200).sum();
    let completed: u64 = segments.iter().map(|s| s.completed).sum();
    // Memory once warm: after the replay ring has turned over once.
    let warm_after = RING_SECS + 10.0;
    let warm: Vec<u64> = rss
        .iter()
        .filter(|(t, _)| *t >= warm_after)
        .map(|(_, kb)| *kb)
        .collect();
    let summary = json!({
        "envoy_concurrency": concurrency,
        "connections": o.connections,
        "seconds": elapsed,
        "proofs_sent": total_sent,
        "completed": completed,
        "non_200": non_200,
        "rps_mean": completed as f64 / elapsed,
        "envoy_counters": {
            "autoid_requests_allowed": stat("autoid_requests_allowed"),
            "autoid_denied_replay_cache": stat("autoid_denied_replay_cache"),
            "autoid_replay_near_full": stat("autoid_replay_near_full"),
            "autoid_replays_rejected": stat("autoid_replays_rejected"),
            "autoid_requests_denied": stat("autoid_requests_denied"),
        },
        "rss_kb": {
            "first": rss.first().map(|s| s.1),
            "max": rss.iter().map(|s| s.1).max(),
            "warm_from_secs": warm_after,
            "warm_min": warm.iter().min(),
            "warm_max": warm.iter().max(),
        },
        "segments": segments,
        "rss_series": rss,
    });
    std::fs::write(
        out.join("soak.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    let svg = chart::two_series(
        "autoid soak: Envoy RSS and throughput (unique valid proofs, default replay table)",
        ("seconds", ""),
        (
            "RSS (MB)",
            &rss.iter()
                .map(|(t, kb)| (*t, *kb as f64 / 1024.0))
                .collect::<Vec<_>>(),
        ),
        (
            "req/s",
            &segments.iter().map(|s| (s.t, s.rps)).collect::<Vec<_>>(),
        ),
    )?;
    std::fs::write(out.join("soak.svg"), svg)?;
    eprintln!(
        "autoid-bench soak: {total_sent} proofs in {elapsed:.0} s, non-200 {non_200}, denied replay_cache {}, near-full {}, RSS {} → {} kB (warm {}–{} kB); {}",
        stat("autoid_denied_replay_cache"),
        stat("autoid_replay_near_full"),
        rss.first().map_or(0, |s| s.1),
        rss.last().map_or(0, |s| s.1),
        warm.iter().min().copied().unwrap_or(0),
        warm.iter().max().copied().unwrap_or(0),
        out.join("soak.json").display()
    );
    if non_200 > 0 || stat("autoid_denied_replay_cache") > 0 {
        bail!("{non_200} requests were not answered 200");
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
