//! `autoid`: the command-line tool of the autoid authentication plugin (the `autoid` binary is
//! [`main`]; [`render_definitions`] is `autoid gateway render` for programs that run what users deploy).
//!
//! It makes gateway keys and entropy epochs (operator side), issues entropy files, makes proof
//! headers and sends authenticated requests (client side), and verifies a proof offline. Every
//! command lives in its own module; this file parses the command line, dispatches, and turns the
//! outcome into an exit code a script can rely on (see [`Outcome`] and [`UsageError`]).
//!
//! Exit codes: 0 success, 1 a proof was rejected or a request got a non-2xx status, 2 usage
//! error, 3 input, I/O or network error. The full reference is `docs/CLI.md`.

#![forbid(unsafe_code)]

mod aws;
mod binding;
mod epoch;
mod files;
mod gateway;
mod keys;
mod prove;
mod request;
mod rotate;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use gateway::{Rendered, Target, render_definitions};

/// What a command achieved when it ran to the end without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything succeeded: exit 0.
    Success,
    /// The command worked but the answer is "no" (proof rejected, non-2xx status): exit 1.
    Rejected,
}

/// An error in how the command was invoked that clap cannot see (a key id that cannot be
/// inferred, a URL that is not http(s)): exit 2, like clap's own usage errors.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a [`UsageError`] from the enclosing function.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

#[derive(Debug, Parser)]
#[command(
    name = "autoid",
    version,
    about = "Keys, entropy, proofs and authenticated requests for the autoid gateway plugin",
    long_about = "Keys, entropy, proofs and authenticated requests for the autoid gateway plugin.\n\n\
        Operators create a gateway key pair (keygen) and an entropy epoch (epoch new), and issue \
        each client its entropy file (entropy issue). Clients prove possession of their file per \
        request (prove, request). Operators can check a proof offline (verify).",
    after_help = "Exit codes: 0 success, 1 proof rejected or non-2xx response, 2 usage error, \
        3 input/I/O/network error.\n\n\
        Quick start:\n  \
        autoid keygen --out keys --kid gw-1\n  \
        autoid epoch new --out ep-1.epoch.json --id ep-1\n  \
        autoid entropy issue --epoch ep-1.epoch.json --subject alice --out alice.entropy\n  \
        autoid request --public-key keys/gw-1.pub.pem --entropy alice.entropy --subject alice \\\n    \
        https://gateway.example/v1/payments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a gateway RSA key pair (<kid>.key.pem, mode 0600, and <kid>.pub.pem)
    Keygen(keys::KeygenArgs),
    /// Manage entropy epochs (the gateway's master secret and file parameters)
    #[command(subcommand)]
    Epoch(epoch::EpochCommand),
    /// Issue entropy files to clients
    #[command(subcommand)]
    Entropy(epoch::EntropyCommand),
    /// Print one proof header value for one request
    Prove(prove::ProveArgs),
    /// Verify a proof header offline with the gateway's private key and epoch
    Verify(verify::VerifyArgs),
    /// Send HTTP(S) requests, each with a fresh proof, all in one session
    Request(request::RequestArgs),
    /// Validate the filter's configuration offline
    #[command(subcommand)]
    Config(gateway::ConfigCommand),
    /// Render and validate the Envoy gateway configuration from per-API definitions
    #[command(subcommand)]
    Gateway(gateway::GatewayCommand),
    /// Rotate the agent's long-term material without restarting Envoy
    #[command(subcommand)]
    Rotate(rotate::RotateCommand),
    /// AWS: short-lived credentials from the gateway for the aws CLI and SDKs
    #[command(subcommand)]
    Aws(aws::AwsCommand),
}

fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Keygen(args) => keys::keygen(&args),
        Command::Epoch(cmd) => epoch::run_epoch(&cmd),
        Command::Entropy(cmd) => epoch::run_entropy(&cmd),
        Command::Prove(args) => prove::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Request(args) => request::run(&args),
        Command::Config(cmd) => gateway::run_config(&cmd),
        Command::Gateway(cmd) => gateway::run_gateway(&cmd),
        Command::Rotate(cmd) => rotate::run(&cmd),
        Command::Aws(cmd) => aws::run(&cmd),
    }
}

/// The `autoid` command: parses the command line, runs it, and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Err(err) => {
            // `{:#}` prints the context chain on one line: "reading keys/gw-1.key.pem: …".
            eprintln!("autoid: error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(3)
            }
        }
    }
}

/// The operating system's CSPRNG, as the protocol wants it. Checked once here so a broken RNG
/// is an error (exit 3) rather than a panic inside the protocol.
pub(crate) fn os_rng() -> anyhow::Result<rsa::rand_core::UnwrapErr<getrandom::SysRng>> {
    use rsa::rand_core::TryRng;
    let mut probe = [0u8; 16];
    getrandom::SysRng
        .try_fill_bytes(&mut probe)
        .map_err(|e| anyhow::anyhow!("the operating system's random number generator: {e}"))?;
    Ok(rsa::rand_core::UnwrapErr(getrandom::SysRng))
}

/// The current time in Unix seconds.
pub(crate) fn now_unix() -> anyhow::Result<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| anyhow::anyhow!("the system clock is before 1970"))
}

/// Today's UTC date as `YYYYMMDD`, for default key and epoch ids.
pub(crate) fn today_yyyymmdd() -> anyhow::Result<String> {
    let days = i64::try_from(now_unix()? / 86_400)?;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Ok(format!("{year:04}{month:02}{day:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn today_looks_like_a_date() {
        let d = today_yyyymmdd().unwrap();
        assert_eq!(d.len(), 8);
        assert!(d.starts_with("20"));
    }
}
