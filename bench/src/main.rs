//! `autoid-bench`: the `make bench` driver. See the crate docs and docs/PERFORMANCE.md.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "autoid-bench",
    about = "autoid against Envoy baselines, measured side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every arm against Envoy, interleaved repetitions; writes summary.json and summary.md.
    Run(Box<autoid_bench::run::Options>),
    /// Saturation with unique valid proofs for minutes: Envoy's memory and every non-200
    /// (the replay table at its defaults); writes soak.json and soak.svg.
    Soak(Box<autoid_bench::soak::Options>),
    /// Draws `make bench`'s chart (throughput and latency per arm, both load generators) from a
    /// summary.json; `run` draws it too, as bench.svg beside its summary.
    Chart {
        /// The summary written by `run`.
        #[arg(long, default_value = "target/bench/summary.json")]
        summary: PathBuf,
        /// The SVG to write.
        #[arg(long, default_value = "target/bench/bench.svg")]
        out: PathBuf,
    },
    /// The crypto steps inside wasm (wasmtime): prints µs per call as JSON.
    MicroWasm {
        /// The module built from bench/crypto-wasm.
        #[arg(
            long,
            default_value = "target/wasm32-wasip1/wasm/autoid_bench_crypto.wasm"
        )]
        wasm: PathBuf,
        /// Seconds per step (at least 3 calls each).
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(options) => autoid_bench::run::main(&options),
        Command::Soak(options) => autoid_bench::soak::main(&options),
        Command::Chart { summary, out } => {
            let text = std::fs::read_to_string(&summary)
                .with_context(|| format!("read {}", summary.display()))?;
            let summary: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parse {}", summary.display()))?;
            std::fs::write(&out, autoid_bench::chart::bench(&summary)?)
                .with_context(|| format!("write {}", out.display()))?;
            eprintln!("autoid-bench: wrote {}", out.display());
            Ok(())
        }
        Command::MicroWasm { wasm, seconds, out } => {
            let results = autoid_bench::wasm_micro::run(&wasm, seconds)?;
            let text = serde_json::to_string_pretty(&results)?;
            println!("{text}");
            if let Some(out) = out {
                std::fs::write(&out, text)?;
            }
            Ok(())
        }
    }
}
