//! The arms, interleaved repetitions (a f b c d e, a f b c d e, …) and the summary.
//!
//! Phase 1 measures every arm at saturation; phase 2 sends every arm the same fixed rate, half of
//! the slowest non-cold arm's median saturation rate (the cold arm: half of its own), for p50 and
//! p99 latency. Phases 3 and 4 deploy the keys and epochs at the agent, as `make run` does, and
//! speak protocol v3: phase 3 sends the warm arm the same paced rate beside a junk flood of new
//! sessions from many source addresses (`--flood-rate`, `--flood-sources`) and legitimate new
//! sessions from yet another (`--legit-sessions-rate`), whose latency it records; phase 4 runs
//! the warm arm alone (the baseline of both) and beside a stream of valid new sessions. Each run
//! gets a fresh Envoy (fresh shared data: the replay table holds only that run's nonces) and
//! freshly made proofs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autoid_cli::Target;
use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::keys::{GatewayKey, PublicKey};
use autoid_testkit::envoy::Admin;
use autoid_testkit::free_port;
use serde::Serialize;
use serde_json::{Value, json};

use crate::directory::Directory;
use crate::envoy::{self, Envoy, HOST, PATH, ROUTE_NAME};
use crate::flood::{self, Flood, FloodOutcome, Stream};
use crate::loadgen::{self, Mode, Outcome, Plan, Requests};
use crate::proofs::{self, Forms, JwtIssuer, Sessions};
use crate::stats::{Spread, counter_sum, spread};
use crate::{chart, gateway, junk, nginx, steps, wrk};

/// `autoid-bench run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Short runs, one repetition, few cold proofs: every ratio in under two minutes
    /// (also with the environment variable BENCH_QUICK=1).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of the interleaved arm sequence (default 3, quick 1).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Counted seconds per run (default 10, quick 2).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds sent before counting (default 2, quick 1).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Counted seconds of the cold arm (default 8, quick 2).
    #[arg(long)]
    pub cold_duration: Option<f64>,
    /// Connections at saturation.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Connections in the paced phase.
    #[arg(long, default_value_t = 64)]
    pub paced_connections: usize,
    /// The paced phases' rate (default: half the slowest non-cold arm's saturation rate).
    #[arg(long)]
    pub paced_rate: Option<f64>,
    /// Junk new sessions per second in phase 3, round-robin over --flood-sources source
    /// addresses (0: no phase 3).
    #[arg(long, default_value_t = 1000.0)]
    pub flood_rate: f64,
    /// Source addresses of phase 3's junk flood (127.0.1.1, 127.0.1.2, …).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub flood_sources: u16,
    /// Legitimate new sessions per second (valid v3 proofs, each a new session) from 127.0.0.3
    /// beside phase 3's junk flood; their latency is recorded.
    #[arg(long, default_value_t = 20.0)]
    pub legit_sessions_rate: f64,
    /// New sessions per second (valid proofs, each with a new session unwrapped by the agent)
    /// from 127.0.0.2 beside the warm arm in phase 4 (0: no phase 4).
    #[arg(long, default_value_t = 50.0)]
    pub new_sessions_rate: f64,
    /// Arms to run, letters in order (a none, f floor, b jwt_authn, c warm, d cold, e directory,
    /// g warm with fleet replay in Redis, i HTTP Basic with the bind remembered, x Envoy ext_authz
    /// to the agent's /v1/check, warm, n nginx auth_request to the agent's /v1/check, warm; h, cold
    /// through the agent, is since issue 26 the same deployment as d and not run by default).
    #[arg(long, default_value = "afbcdegixn")]
    pub arms: String,
    /// Sessions the warm and directory arms' proofs share.
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// The protocol version of the warm arms' proofs in phases 1 and 2: 3 (as `make run`'s
    /// clients: each session's primed first proof in the full form with its possession ticket,
    /// then compact), 2 (no ticket) or 1 (the wrapped key in every proof), for A/B runs; the cold
    /// arms and phases 3 and 4 always send v3
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub proof_version: u8,
    /// Output directory (summary.json, summary.md, bootstraps, logs).
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Envoy binary.
    #[arg(long, env = "ENVOY", default_value = ".venv/bin/envoy")]
    pub envoy: PathBuf,
    /// The autoid filter.
    #[arg(long, default_value = "target/wasm32-wasip1/wasm/autoid_plugin.wasm")]
    pub plugin: PathBuf,
    /// The floor filter.
    #[arg(
        long,
        default_value = "target/wasm32-wasip1/wasm/autoid_floor_filter.wasm"
    )]
    pub floor: PathBuf,
    /// The autoid agent.
    #[arg(long, default_value = "target/release/autoid-agent")]
    pub bridge: PathBuf,
    /// Debian's wrk 4.1: arms (b) and (c) measured again with it in every repetition of phase 1
    /// (`apt-get install wrk`).
    #[arg(long, default_value = "wrk")]
    pub wrk: PathBuf,
    /// Skip the wrk cross-check.
    #[arg(long)]
    pub no_wrk: bool,
    /// wrk threads (its connections: --connections).
    #[arg(long, default_value_t = 1)]
    pub wrk_threads: usize,
    /// Seconds of each measured wrk run (default: --duration; quick 2), after a warm-up wrk run
    /// of --warmup seconds (wrk counts whole seconds).
    #[arg(long)]
    pub wrk_duration: Option<f64>,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
struct RunRecord {
    arm: char,
    rep: usize,
    phase: Phase,
    rate_target: Option<f64>,
    outcome: Outcome,
    envoy_cpu_us_per_req: f64,
    envoy_cpu_util: f64,
    loadgen_cpu_util: f64,
    /// Agent and slapd CPU per request (directory arm).
    directory_cpu_us_per_req: Option<f64>,
    prepared: usize,
    envoy_rss_kb: Option<u64>,
    counters: BTreeMap<String, u64>,
    /// The second client beside this run (phase 3's junk, phase 4's new sessions).
    flood: Option<FloodOutcome>,
    /// Phase 3's legitimate new sessions.
    legit: Option<FloodOutcome>,
    /// The agent's session counters over the run (phase 3), when it answered.
    agent_counters: BTreeMap<String, u64>,
}

struct Settings {
    reps: usize,
    warmup: f64,
    duration: f64,
    cold_duration: f64,
    cold_proofs_cap: usize,
}

struct Bench<'a> {
    o: &'a Options,
    s: Settings,
    out: PathBuf,
    public: PublicKey,
    epoch: Epoch,
    file: EntropyFile,
    jwt: JwtIssuer,
    jwts: Vec<String>,
    /// The key and epoch files the definitions name (read by the agent).
    secrets: Secrets,
    directory: Option<Directory>,
    threads: usize,
}

/// Where the definitions' `plugin.keys_dir` and `plugin.epoch_files` point.
struct Secrets {
    keys_dir: PathBuf,
    epoch_file: PathBuf,
}

const PROOF_HEADER: &str = "x-autoid-proof";
/// How long the filter keeps a subject's groups (`directory.positive_ttl_secs`): the warm arms'
/// groups are looked up once per run.
const GROUPS_TTL_SECS: u64 = 300;
const SUBJECT: &str = "alice";
/// Arm (i)'s `Authorization`: `test:test123`, the directory's tutorial user (testgroup).
const BASIC_CREDENTIALS: &str = "Basic dGVzdDp0ZXN0MTIz";
const MAX_SKEW_SECS: u64 = 120;
/// Seconds of junk made for a flood at its rate (cycled: a refused proof is never cached, so a
/// repeat costs the gateway the same).
const FLOOD_SECONDS: f64 = 3.0;
/// Connections of the legitimate new sessions beside a flood.
const LEGIT_CONNECTIONS: usize = 16;

mod arms;
mod bench;
mod machine;
mod summary;
mod wrk_arms;

pub use arms::Arm;
use arms::Phase;
use bench::Proxy;
use machine::{loadavg, machine, sh};
pub use summary::{
    LEGIT_NEW_SESSION_P99_US_MAX, WARM_P99_RATIO_MAX, junk_answer_flagged, junk_flood_met,
};
use summary::{junk_flood_verdict, markdown, summarize};
use wrk_arms::{with_wrk, wrk_version};

/// The bench.
pub fn main(o: &Options) -> Result<()> {
    let arms: Vec<Arm> = o
        .arms
        .chars()
        .map(|c| Arm::from_letter(c).with_context(|| format!("--arms: unknown arm {c:?}")))
        .collect::<Result<_>>()?;
    let quick = o.quick
        || std::env::var("BENCH_QUICK").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let s = if quick {
        Settings {
            reps: o.reps.unwrap_or(1),
            warmup: o.warmup.unwrap_or(1.0),
            duration: o.duration.unwrap_or(2.0),
            cold_duration: o.cold_duration.unwrap_or(2.0),
            cold_proofs_cap: 6000,
        }
    } else {
        Settings {
            reps: o.reps.unwrap_or(3),
            warmup: o.warmup.unwrap_or(2.0),
            duration: o.duration.unwrap_or(10.0),
            cold_duration: o.cold_duration.unwrap_or(8.0),
            cold_proofs_cap: 40000,
        }
    };
    for (what, path, how) in [
        ("Envoy", &o.envoy, "make deps-envoy"),
        ("the autoid filter", &o.plugin, "make wasm"),
        ("the floor filter", &o.floor, "make wasm"),
    ] {
        if !path.exists() {
            bail!("{what} is missing at {}: run `{how}`", path.display());
        }
    }
    let phase3 = arms.contains(&Arm::Warm) && o.flood_rate > 0.0;
    let phase4 = arms.contains(&Arm::Warm) && o.new_sessions_rate > 0.0;
    let needs_agent = phase3 || phase4 || arms.iter().any(|a| a.needs_agent());
    if needs_agent && !o.bridge.exists() {
        bail!(
            "the autoid agent is missing at {}: run `cargo build --release -p autoid-agent`",
            o.bridge.display()
        );
    }
    let started = Instant::now();
    let wrk_version = wrk_version(o, &arms)?;
    std::fs::create_dir_all(&o.out)?;
    let out = o.out.canonicalize()?;
    // Snapshot the modules: another build may replace them while the bench runs, and proofs made
    // by this binary must meet the filter built from the same protocol.
    let mut o = o.clone();
    for (src, name) in [
        (&mut o.plugin, "autoid_plugin.wasm"),
        (&mut o.floor, "autoid_floor_filter.wasm"),
    ] {
        let copy = out.join(name);
        std::fs::copy(&*src, &copy).with_context(|| format!("copy {}", src.display()))?;
        *src = copy;
    }
    let o = &o;
    let load_before = loadavg();
    let top_before = sh("ps aux --sort=-%cpu | head -6");
    eprintln!("autoid-bench: load average at start: {load_before}");

    let mut rng = proofs::rng();
    let gateway = GatewayKey::from_pem("bench-3072", steps::KEY_3072_PEM)?;
    let public = gateway.public();
    let epoch = Epoch::generate("bench-ep", &mut rng)?;
    let file = epoch.issue(SUBJECT)?;
    let jwt = JwtIssuer::generate()?;
    let jwts = (0..256)
        .map(|i| jwt.token(SUBJECT, i))
        .collect::<Result<Vec<_>>>()?;
    // The definitions name these files; only the agent reads their secrets.
    let (keys_dir, epoch_file) = gateway::write_secrets(&out, &gateway, &epoch)?;
    let secrets = Secrets {
        keys_dir,
        epoch_file,
    };
    let directory = if needs_agent {
        eprintln!("autoid-bench: starting slapd and the autoid agent");
        let pem = gateway.to_pem()?;
        Some(Directory::start(
            &o.bridge,
            &out,
            Some((gateway.kid(), pem.as_str())),
            Some((epoch.id(), epoch.to_json().as_str())),
            arms.contains(&Arm::Fleet),
        )?)
    } else {
        None
    };
    let ctx = Bench {
        o,
        s,
        out: out.clone(),
        public,
        epoch,
        file,
        jwt,
        jwts,
        secrets,
        directory,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };

    let mut records: Vec<RunRecord> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut wrk_records: Vec<wrk::Record> = Vec::new();
    let best = |records: &[RunRecord], arm: Arm, default: f64| {
        records
            .iter()
            .filter(|r| r.arm == arm.letter() && r.phase == Phase::Saturation)
            .map(|r| r.outcome.rps)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            .unwrap_or(default)
    };
    eprintln!(
        "autoid-bench: phase 1, saturation ({} repetitions)",
        ctx.s.reps
    );
    for rep in 0..ctx.s.reps {
        for &arm in &arms {
            // How many unique proofs to make: above anything this arm can reach.
            let expected = match arm {
                // The agent unwraps (since issue 26 in both cold arms).
                Arm::Cold | Arm::ColdAgent => best(&records, arm, 1000.0) * 1.5,
                Arm::Directory => best(
                    &records,
                    Arm::Directory,
                    best(&records, Arm::Warm, best(&records, Arm::Floor, 40_000.0)),
                ),
                _ => best(&records, Arm::Floor, best(&records, Arm::None, 40_000.0)),
            };
            match ctx.run_one(arm, rep, Phase::Saturation, None, expected) {
                Ok(r) => records.push(r),
                Err(e) => {
                    eprintln!("  {} rep {rep} saturation FAILED: {e:#}", arm.letter());
                    failures.push(format!("{}/{rep}/saturation: {e:#}", arm.letter()));
                }
            }
        }
        if let Some(version) = &wrk_version {
            wrk_records.extend(ctx.wrk_rep(version, rep, &arms, &records, &mut failures));
        }
    }
    let median_rps = |arm: Arm| {
        let v: Vec<f64> = records
            .iter()
            .filter(|r| r.arm == arm.letter() && r.phase == Phase::Saturation)
            .map(|r| r.outcome.rps)
            .collect();
        spread(&v).map(|s| s.median)
    };
    let slowest = arms
        .iter()
        .filter(|a| !a.is_cold())
        .filter_map(|a| median_rps(*a))
        .fold(f64::INFINITY, f64::min);
    let paced_rate = o
        .paced_rate
        .unwrap_or_else(|| (slowest * 0.5).floor().max(1.0));
    let cold_rate = median_rps(Arm::Cold).map(|r| (r * 0.5).max(1.0));
    let cold_agent_rate = median_rps(Arm::ColdAgent).map(|r| (r * 0.5).max(1.0));
    eprintln!(
        "autoid-bench: phase 2, paced at {paced_rate:.0} req/s (cold arm: {})",
        cold_rate.map_or("-".to_owned(), |r| format!("{r:.1} req/s"))
    );
    for rep in 0..ctx.s.reps {
        for &arm in &arms {
            let rate = match arm {
                Arm::Cold => cold_rate.unwrap_or(paced_rate),
                Arm::ColdAgent => cold_agent_rate.unwrap_or(paced_rate),
                _ => paced_rate,
            };
            match ctx.run_one(arm, rep, Phase::Paced, Some(rate), rate) {
                Ok(r) => records.push(r),
                Err(e) => {
                    eprintln!("  {} rep {rep} paced FAILED: {e:#}", arm.letter());
                    failures.push(format!("{}/{rep}/paced: {e:#}", arm.letter()));
                }
            }
        }
    }
    if phase3 || phase4 {
        eprintln!(
            "autoid-bench: phases 3 and 4, the warm arm paced at {paced_rate:.0} req/s with the keys and epochs at the agent (as `make run`): alone{}{}",
            if phase3 {
                format!(
                    "; beside a junk flood of {:.0} new sessions/s from {} sources and {:.0} legitimate new sessions/s from {}",
                    o.flood_rate,
                    o.flood_sources,
                    o.legit_sessions_rate,
                    flood::LEGIT_SOURCE
                )
            } else {
                String::new()
            },
            if phase4 {
                format!(
                    "; beside {:.0} new sessions/s from {}",
                    o.new_sessions_rate,
                    flood::SESSIONS_SOURCE
                )
            } else {
                String::new()
            },
        );
        // Each repetition: the baseline, then beside the flood, then beside new sessions.
        let phases: Vec<Phase> = [
            (true, Phase::AgentPaced),
            (phase3, Phase::Flood),
            (phase4, Phase::AgentSessions),
        ]
        .into_iter()
        .filter_map(|(on, p)| on.then_some(p))
        .collect();
        for rep in 0..ctx.s.reps {
            for &phase in &phases {
                match ctx.run_one(Arm::Warm, rep, phase, Some(paced_rate), paced_rate) {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        eprintln!("  c rep {rep} {phase:?} FAILED: {e:#}");
                        failures.push(format!("c/{rep}/{phase:?}: {e:#}"));
                    }
                }
            }
        }
    }
    let load_after = loadavg();
    drop(ctx.directory);

    let summary = summarize(
        &records,
        &arms,
        o,
        &ctx.s,
        paced_rate,
        cold_rate,
        json!({
            "machine": machine(&o.envoy),
            "load_before": load_before,
            "load_after": load_after,
            "top_before": top_before,
            "plugin_wasm_sha256": sh(&format!("sha256sum {} | cut -c1-16", o.plugin.display())),
        }),
    );
    let summary = with_wrk(summary, &wrk_records, wrk_version.as_deref(), &ctx.s, o);
    let json_path = out.join("summary.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&summary)?)?;
    let mut table = markdown(&summary, &arms);
    table.push_str(&wrk::markdown(&summary));
    std::fs::write(out.join("summary.md"), &table)?;
    std::fs::write(out.join("bench.svg"), chart::bench(&summary)?)?;
    println!("{table}");
    if let Some(verdict) = junk_flood_verdict(&summary) {
        eprintln!("autoid-bench: {verdict}");
    }
    eprintln!(
        "autoid-bench: wrote {}, summary.md and bench.svg ({:.0} s)",
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "failed runs (the summary holds the others):\n{}",
            failures.join("\n")
        );
    }
    let failed: Vec<String> = records
        .iter()
        .filter(|r| r.outcome.completed == 0 || r.outcome.non_200 * 1000 > r.outcome.completed)
        .map(|r| format!("{}/{}/{:?}", r.arm, r.rep, r.phase))
        .collect();
    if !failed.is_empty() {
        bail!(
            "runs with more than 0.1% non-200 answers (see the Envoy logs in {}): {}",
            out.display(),
            failed.join(", ")
        );
    }
    Ok(())
}
