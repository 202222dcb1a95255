//! `autoid epoch new` and `autoid entropy issue`: the epoch file (the gateway's master secret and
//! file parameters) and the per-subject entropy files derived from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::policy::{
    DEFAULT_FILE_SIZE, DEFAULT_INTERVAL_COUNT, MAX_FILE_SIZE, MAX_INTERVAL_COUNT, MIN_FILE_SIZE,
    MIN_INTERVAL_COUNT,
};
use clap::{Args, Subcommand};
use rsa::rand_core::Rng;

use crate::files::{self, SECRET_MODE};
use crate::keys::check_id;
use crate::{Outcome, usage};

#[derive(Debug, Subcommand)]
pub(crate) enum EpochCommand {
    /// Create an epoch file: a fresh 32-byte master secret, its id and the file parameters
    New(EpochNewArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum EntropyCommand {
    /// Write one subject's entropy file, derived from the epoch
    Issue(EntropyIssueArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid epoch new --out ep-1.epoch.json --id ep-1\n  \
    autoid epoch new --out ep-2.epoch.json --id ep-2 --file-size 4MiB --intervals 96\n\n\
    The epoch file is JSON holding the master secret (mode 0600: keep it on the gateway and \
    wherever entropy files are issued). Every entropy file of the epoch has the same size and \
    every proof covers the same number of intervals: both are fixed here, because the gateway \
    must know them (a size chosen by the client would let a thief pick a tiny file). With a \
    fraction f of a file, one guess succeeds with probability f^intervals: 64 intervals put \
    half a file at 2^-64. Existing files are never replaced without --force.")]
pub(crate) struct EpochNewArgs {
    /// Where to write the epoch file (JSON, mode 0600)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Epoch id (1-32 of A-Z a-z 0-9 _ -), carried in every proof [default: ep-YYYYMMDD, today UTC]
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Size of every entropy file: bytes, or with a suffix K/KiB, M/MiB, G/GiB (powers of 1024);
    /// a multiple of 16 from 4096 to 256MiB
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_FILE_SIZE, value_parser = parse_size)]
    file_size: u64,
    /// Intervals each proof covers (32 to 256): more is safer against partial theft, costs more
    /// hashing per request
    #[arg(long, value_name = "K", default_value_t = DEFAULT_INTERVAL_COUNT,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_INTERVAL_COUNT)..=i64::from(MAX_INTERVAL_COUNT)))]
    intervals: u32,
    /// Replace an existing file
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid entropy issue --epoch ep-1.epoch.json --subject alice --out alice.entropy\n  \
    autoid entropy issue --epoch ep-1.epoch.json --subject deploy-bot@ci --out bot.entropy\n\n\
    There is no --size here on purpose: the file size is a parameter of the epoch \
    (autoid epoch new --file-size), because the gateway derives and checks the same intervals \
    and must not let a client choose a small file. The file is deterministic: issuing again for \
    the same subject and epoch gives the same bytes. It is the client's secret (mode 0600); \
    format: \"AUTOIDE1\", epoch id, subject, interval count, size, data (docs/CLI.md).")]
pub(crate) struct EntropyIssueArgs {
    /// The epoch file (from `autoid epoch new`)
    #[arg(long, value_name = "FILE")]
    epoch: PathBuf,
    /// The subject the file proves: canonical, 1-64 bytes of [a-z0-9._@-], a letter or digit at
    /// both ends (docs/PROTOCOL.md, "Subjects")
    #[arg(long, value_name = "SUB")]
    subject: String,
    /// Where to write the entropy file (mode 0600)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing file
    #[arg(long)]
    force: bool,
}

/// Parses `1048576`, `1MiB`, `1M`, `64KiB`, `64k`, `1G`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {s:?} (try 1048576 or 1MiB)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (use K, M, G or KiB, MiB, GiB)"
            ));
        }
    };
    let size = n.checked_mul(mult).ok_or_else(|| "too large".to_owned())?;
    if !(MIN_FILE_SIZE..=MAX_FILE_SIZE).contains(&size) || size % 16 != 0 {
        return Err(format!(
            "{size} bytes: must be a multiple of 16 from {MIN_FILE_SIZE} to {MAX_FILE_SIZE}"
        ));
    }
    Ok(size)
}

pub(crate) fn run_epoch(cmd: &EpochCommand) -> Result<Outcome> {
    match cmd {
        EpochCommand::New(args) => epoch_new(args),
    }
}

pub(crate) fn run_entropy(cmd: &EntropyCommand) -> Result<Outcome> {
    match cmd {
        EntropyCommand::Issue(args) => entropy_issue(args),
    }
}

fn epoch_new(args: &EpochNewArgs) -> Result<Outcome> {
    let id = match &args.id {
        Some(id) => id.clone(),
        None => format!("ep-{}", crate::today_yyyymmdd()?),
    };
    write_new_epoch(&args.out, &id, args.file_size, args.intervals, args.force)?;
    println!("{}", args.out.display());
    Ok(Outcome::Success)
}

/// Writes a new epoch file at `out` (mode 0600): a fresh 32-byte master secret from the OS's
/// CSPRNG, its id and the file parameters. `autoid epoch new` and `autoid rotate epoch`.
pub(crate) fn write_new_epoch(
    out: &Path,
    id: &str,
    file_size: u64,
    intervals: u32,
    force: bool,
) -> Result<Epoch> {
    check_id("--id", id)?;
    files::check_absent(out, force)?;
    let mut rng = crate::os_rng()?;
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let epoch = Epoch::new(id, secret, file_size, intervals).context("epoch parameters")?;
    files::write_file(out, epoch.to_json().as_bytes(), SECRET_MODE, force)?;
    Ok(epoch)
}

fn entropy_issue(args: &EntropyIssueArgs) -> Result<Outcome> {
    check_subject(&args.subject)?;
    let epoch = load_epoch(&args.epoch)?;
    files::check_absent(&args.out, args.force)?;
    let file = epoch
        .issue(&args.subject)
        .context("issuing the entropy file")?;
    files::write_file(&args.out, &file.to_bytes(), SECRET_MODE, args.force)?;
    println!("{}", args.out.display());
    Ok(Outcome::Success)
}

/// Rejects a subject the protocol would refuse, as a usage error.
pub(crate) fn check_subject(subject: &str) -> Result<()> {
    if !autoid_protocol::valid_subject(subject) {
        let canonical = subject.trim().to_ascii_lowercase();
        if canonical != subject && autoid_protocol::valid_subject(&canonical) {
            usage!(
                "--subject {subject:?} is not canonical: {} (did you mean {canonical:?}?)",
                autoid_protocol::SUBJECT_RULE
            );
        }
        usage!(
            "--subject {subject:?} is not canonical: {}",
            autoid_protocol::SUBJECT_RULE
        );
    }
    Ok(())
}

/// Loads an epoch file; errors name the file (and never print the secret).
pub(crate) fn load_epoch(path: &Path) -> Result<Epoch> {
    let text = files::read_secret_text(path, "the epoch file")?;
    Epoch::from_json(&text).with_context(|| format!("{}: not a valid epoch file", path.display()))
}

/// Loads an entropy file and checks it belongs to `subject`.
pub(crate) fn load_entropy(path: &Path, subject: &str) -> Result<EntropyFile> {
    let bytes = files::read_secret(path, "the entropy file")?;
    let file = EntropyFile::from_bytes(&bytes)
        .with_context(|| format!("{}: not a valid entropy file", path.display()))?;
    if file.subject() != subject {
        anyhow::bail!(
            "{}: this entropy file belongs to subject {:?}, not --subject {:?}",
            path.display(),
            file.subject(),
            subject
        );
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert!(parse_size("2G").is_err(), "over the 256 MiB cap");
        assert!(parse_size("100").is_err());
        assert!(parse_size("4097").is_err());
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("257MiB").is_err());
    }
}
