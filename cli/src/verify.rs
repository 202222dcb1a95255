//! `autoid verify`: the gateway's verification, offline, for operators and tests.

use std::path::PathBuf;

use anyhow::Result;
use autoid_protocol::Reject;
use autoid_protocol::header::Proof;
use autoid_protocol::verify::{Keyring, Limits, NoCache, check_body, verify};
use clap::Args;

use crate::Outcome;
use crate::binding::Target;
use crate::epoch::load_epoch;
use crate::keys::load_private;
use crate::prove::read_body;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid verify --private-key keys/gw-1.key.pem --epoch ep-1.epoch.json \\\n    \
    --header \"$PROOF\" --method GET --url https://api.example/v1/payments\n  \
    autoid verify --private-key keys/gw-1.key.pem --epoch ep-1.epoch.json \\\n    \
    --header \"$PROOF\" --method GET --url https://api.example/v1/payments --now 1767225600\n\n\
    Runs the gateway's checks in the gateway's order, except the replay cache and rate limits \
    (one offline proof has nothing to replay against). On success prints \
    `ok subject=<s> epoch=<e> kid=<k>` and exits 0; on failure prints `rejected: <code>` on \
    stdout, a one-line explanation on stderr, and exits 1. Codes: malformed, oversized, \
    unsupported_version, unknown_key, unwrap, session_expired, open (wrong key, tampered, or \
    another method/authority/path), payload, stale, future, unknown_epoch, subject, entropy \
    (the entropy is not the subject's), body.")]
pub(crate) struct VerifyArgs {
    /// The gateway's private key, <kid>.key.pem (PKCS#8 PEM)
    #[arg(long, value_name = "PEM")]
    private_key: PathBuf,
    /// The gateway's key id [default: the private key's file name without .key.pem]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// An epoch file the gateway accepts (repeat for overlapping epochs)
    #[arg(long, value_name = "FILE", required = true)]
    epoch: Vec<PathBuf>,
    /// The proof header's value (v1.<kid>.<wrapped>.<sealed>)
    #[arg(long, value_name = "VALUE")]
    header: String,
    /// The method of the request the proof came with
    #[arg(long, short = 'X', value_name = "M")]
    method: String,
    /// The URL of the request the proof came with (its host[:port] and path?query are checked)
    #[arg(long, value_name = "URL")]
    url: String,
    /// Check as of this time (Unix seconds) instead of now
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// If the proof binds a body digest, check it against this file (`-` reads stdin)
    #[arg(long, value_name = "F")]
    body_file: Option<PathBuf>,
    /// Also print the session id, nonce, timestamp and body binding (hex)
    #[arg(long, short = 'v')]
    verbose: bool,
}

pub(crate) fn run(args: &VerifyArgs) -> Result<Outcome> {
    let target = Target::new(&args.method, &args.url)?;
    let key = load_private(&args.private_key, args.kid.as_deref())?;
    let epochs = args
        .epoch
        .iter()
        .map(|p| load_epoch(p))
        .collect::<Result<Vec<_>>>()?;
    let body = args.body_file.as_deref().map(read_body).transpose()?;
    let now = match args.now {
        Some(now) => now,
        None => crate::now_unix()?,
    };
    let keyring = Keyring::new(vec![key], epochs);
    let limits = Limits::default();
    let header = args.header.trim();

    let verified = match verify(
        &keyring,
        &limits,
        header,
        &target.request(),
        now,
        &mut NoCache,
    ) {
        Ok(v) => v,
        Err(reject) => return Ok(rejected(reject, &limits)),
    };
    let body_state = match (&verified.body_digest, &body) {
        (None, None) => "none",
        (None, Some(_)) => {
            eprintln!("autoid: note: the proof binds no body; --body-file was not checked");
            "none"
        }
        (Some(expected), Some(body)) => match check_body(expected, body) {
            Ok(()) => "checked",
            Err(reject) => return Ok(rejected(reject, &limits)),
        },
        (Some(_), None) => {
            eprintln!("autoid: note: the proof binds a body digest; pass --body-file to check it");
            "unchecked"
        }
    };
    println!(
        "ok subject={} epoch={} kid={}",
        verified.subject, verified.epoch, verified.kid
    );
    if args.verbose {
        // The proof verified, so it parses.
        let session = Proof::parse(header)
            .map(|p| p.session_ref())
            .unwrap_or_default();
        println!("session={}", hex(&session));
        println!("nonce={}", hex(&verified.nonce));
        println!("timestamp={}", verified.timestamp);
        println!("body={body_state}");
    }
    Ok(Outcome::Success)
}

fn rejected(reject: Reject, limits: &Limits) -> Outcome {
    println!("rejected: {}", reject.code());
    eprintln!("autoid: {}", explain(reject, limits));
    Outcome::Rejected
}

/// One line per reason, for humans; the code on stdout is what scripts match.
fn explain(reject: Reject, limits: &Limits) -> String {
    let skew = limits.max_skew_secs;
    let lifetime = limits.session_lifetime_secs;
    match reject {
        Reject::Missing => "no proof header".to_owned(),
        Reject::Duplicate => "more than one proof header".to_owned(),
        Reject::Oversized => "the header is longer than the protocol allows".to_owned(),
        Reject::Malformed => {
            "the header is not v1.<kid>.<wrapped>.<sealed> or v2.<kid>.<wrapped or session ref>.<sealed> in base64url".to_owned()
        }
        Reject::UnsupportedVersion => "the proof uses a protocol version other than v1 and v2".to_owned(),
        Reject::UnknownKey => "the proof names a key id this private key does not have".to_owned(),
        Reject::Unwrap => {
            "the session key does not decrypt with this private key (another key with the same id?)"
                .to_owned()
        }
        Reject::RateLimited => "too many new sessions right now".to_owned(),
        Reject::UnknownSession => {
            "a compact proof names its session by reference only: verify a full-form proof of the session first"
                .to_owned()
        }
        Reject::SessionExpired => {
            format!("the session is older than {lifetime} s or from the future: open a new session")
        }
        Reject::Open => {
            "the proof does not open: tampered, or made for another method, authority or path"
                .to_owned()
        }
        Reject::Payload => "the sealed payload is malformed".to_owned(),
        Reject::Stale => format!("the proof is more than {skew} s old (check the clocks)"),
        Reject::Future => {
            format!("the proof is more than {skew} s in the future (check the clocks)")
        }
        Reject::UnknownEpoch => "the proof names an epoch not among the --epoch files".to_owned(),
        Reject::Subject => "the proof's subject is not a valid subject".to_owned(),
        Reject::Entropy => {
            "the proof was not made with this subject's entropy for this epoch".to_owned()
        }
        Reject::Body => "the body does not match the digest the proof binds".to_owned(),
        Reject::Replay => "the proof's nonce was seen before".to_owned(),
        // A reason added to the protocol later still gets its code on stdout.
        #[allow(unreachable_patterns)]
        _ => format!("rejected ({})", reject.code()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_an_explanation() {
        for r in Reject::ALL {
            assert!(!explain(r, &Limits::default()).is_empty());
        }
    }
}
