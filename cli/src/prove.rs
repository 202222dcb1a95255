//! `autoid prove`, and the client side shared with `autoid request`: load the gateway's public
//! key and the entropy file, open or reuse a session, make one proof per request.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::header::Version;
use autoid_protocol::keys::PublicKey;
use autoid_protocol::policy::DEFAULT_SESSION_LIFETIME_SECS;
use clap::Args;
use rsa::rand_core::UnwrapErr;

use crate::binding::Target;
use crate::epoch::{check_subject, load_entropy};
use crate::files::{self, SECRET_MODE};
use crate::keys::load_public;
use crate::{Outcome, usage};

/// A stored session is replaced this long before the gateway would call it expired, so clock
/// skew (60 s by default) and slow requests never push a proof past the session's lifetime.
pub(crate) const SESSION_RENEW_MARGIN_SECS: u64 = 300;

/// What every client command needs: who proves, with which file, to which gateway key.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The gateway's public key, <kid>.pub.pem (SPKI PEM)
    #[arg(long, value_name = "PEM")]
    public_key: PathBuf,
    /// The gateway's key id [default: the public key's file name without .pub.pem]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// Your entropy file (from `autoid entropy issue`)
    #[arg(long, value_name = "FILE")]
    entropy: PathBuf,
    /// Your subject: must be the subject the entropy file was issued to
    #[arg(long, value_name = "SUB")]
    subject: String,
    /// Keep the session in FILE (mode 0600) and reuse it across invocations while it is younger
    /// than --session-lifetime minus 5 minutes, so the gateway pays one RSA unwrap per session
    /// instead of one per call
    #[arg(long, value_name = "FILE")]
    session: Option<PathBuf>,
    /// The gateway's session lifetime in seconds (when a stored session is replaced)
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SESSION_LIFETIME_SECS)]
    session_lifetime: u64,
    /// The protocol version: 3 sends the wrapped session key once, with a possession ticket the
    /// gateway checks before its RSA (docs/PROTOCOL.md §12), then a 16-byte session reference; 2
    /// the same without the ticket (§11), 1 the wrapped key every time, for older gateways
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(1..=3))]
    proof_version: u8,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid prove --public-key gw-1.pub.pem --entropy alice.entropy --subject alice \\\n    \
    --url https://api.example/v1/payments\n  \
    curl -H \"x-autoid-proof: $(autoid prove --public-key gw-1.pub.pem --entropy alice.entropy \\\n    \
    --subject alice --session ~/.autoid-session --url https://api.example/v1/payments)\" \\\n    \
    https://api.example/v1/payments\n\n\
    Prints exactly one line: the header value. A proof is good for one request (the gateway \
    rejects replays), for the method and URL given (method, host[:port] and path?query are \
    bound), and for about a minute (the gateway's clock-skew window). Without --session every \
    call opens a new session, which costs the gateway an RSA decryption; with --session the \
    session is reused. For many requests, `autoid request --repeat` is simpler.")]
pub(crate) struct ProveArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The request's method (uppercased)
    #[arg(long, short = 'X', value_name = "M", default_value = "GET")]
    method: String,
    /// The request's URL: the proof binds its host[:port] and path?query
    #[arg(long, value_name = "URL")]
    url: String,
    /// Also bind the SHA-256 of this request body (`-` reads stdin); send exactly these bytes
    #[arg(long, value_name = "F")]
    body_file: Option<PathBuf>,
    /// Version 2's form: `full` carries the wrapped session key (any gateway), `compact` only the
    /// session's reference (a gateway that already holds the session, else 401 with
    /// error="unknown_session")
    #[arg(long, value_name = "FORM", default_value = "full")]
    form: FormArg,
}

/// `--form`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum FormArg {
    Full,
    Compact,
}

/// A client ready to prove: the key, the file, one session and the OS CSPRNG.
pub(crate) struct Prover {
    file: EntropyFile,
    session: Session,
    rng: UnwrapErr<getrandom::SysRng>,
    version: u8,
    /// Whether the gateway may hold the session: a session reused from a session file may
    /// start compact; a new one goes in the full form first.
    held: bool,
}

impl std::fmt::Debug for Prover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prover")
            .field("file", &self.file)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Prover {
    /// Loads the key and the entropy file, checks the subject, and opens or reuses the session.
    pub(crate) fn new(args: &ClientArgs) -> Result<Prover> {
        check_subject(&args.subject)?;
        let key = load_public(&args.public_key, args.kid.as_deref())?;
        let file = load_entropy(&args.entropy, &args.subject)?;
        let mut rng = crate::os_rng()?;
        let now = crate::now_unix()?;
        let (session, held) = match &args.session {
            Some(path) => stored_session(path, &key, now, args.session_lifetime, &mut rng)?,
            None => (
                Session::open(&key, now, &mut rng).context("opening a session")?,
                false,
            ),
        };
        Ok(Prover {
            file,
            session,
            rng,
            version: args.proof_version,
            held,
        })
    }

    /// The form of the next proof: v1, or v2 compact once the gateway may hold the session.
    pub(crate) fn next_form(&self) -> Form {
        if self.held && self.version != 1 {
            Form::Compact
        } else {
            self.full_form()
        }
    }

    /// The form that any gateway accepts: v1, or v2's full form.
    pub(crate) fn full_form(&self) -> Form {
        if self.version == 1 {
            Form::V1
        } else {
            Form::Full
        }
    }

    /// After an answer to a full-form proof: the gateway holds the session now (or never will,
    /// and a compact proof then gets the hint and goes full again).
    pub(crate) fn sent_full(&mut self) {
        self.held = true;
    }

    /// A fresh proof (new nonce, current time) for one request, in `form`.
    pub(crate) fn prove(
        &mut self,
        form: Form,
        target: &Target,
        body: Option<&[u8]>,
    ) -> Result<String> {
        let now = crate::now_unix()?;
        let version = match self.version {
            1 => Version::V1,
            2 => Version::V2,
            _ => Version::V3,
        };
        self.session
            .prove_in(
                version,
                form,
                &self.file,
                &target.request(),
                now,
                body,
                &mut self.rng,
            )
            .context("making the proof")
    }
}

/// Reuses the session stored at `path` if it is for this key id and young enough (`true`: the
/// gateway may hold it), else opens a new one and stores it (atomically, mode 0600).
fn stored_session(
    path: &Path,
    key: &PublicKey,
    now: u64,
    lifetime: u64,
    rng: &mut UnwrapErr<getrandom::SysRng>,
) -> Result<(Session, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => match Session::from_json(&text) {
            Ok(session) if reusable(&session, key.kid(), now, lifetime) => {
                return Ok((session, true));
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "autoid: warning: {}: not a session file ({e}); replacing it",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("{}: cannot read the session file", path.display()));
        }
    }
    let session = Session::open(key, now, rng).context("opening a session")?;
    files::write_file(path, session.to_json().as_bytes(), SECRET_MODE, true)?;
    Ok((session, false))
}

/// A session is reused for the same key id, while `now` is within
/// `[issued_at, issued_at + lifetime - margin)`.
fn reusable(session: &Session, kid: &str, now: u64, lifetime: u64) -> bool {
    let max_age = lifetime.saturating_sub(SESSION_RENEW_MARGIN_SECS);
    session.kid() == kid && session.issued_at() <= now && now - session.issued_at() < max_age
}

/// Reads a body file, `-` meaning stdin.
pub(crate) fn read_body(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body).context("reading stdin")?;
        Ok(body)
    } else {
        files::read_bytes(path, "the body")
    }
}

pub(crate) fn run(args: &ProveArgs) -> Result<Outcome> {
    let target = Target::new(&args.method, &args.url)?;
    let body = args.body_file.as_deref().map(read_body).transpose()?;
    let mut prover = Prover::new(&args.client)?;
    let form = match (args.client.proof_version, args.form) {
        (1, FormArg::Compact) => usage!("--form compact needs --proof-version 2 or 3"),
        (1, FormArg::Full) => Form::V1,
        (_, FormArg::Full) => Form::Full,
        (_, FormArg::Compact) => Form::Compact,
    };
    println!("{}", prover.prove(form, &target, body.as_deref())?);
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_reuse_window() {
        let mut rng = crate::os_rng().unwrap();
        let pem = include_str!("../../protocol/tests/vectors/gateway-2048.pem");
        let key = autoid_protocol::keys::GatewayKey::from_pem("gw-1", pem)
            .unwrap()
            .public();
        let s = Session::open(&key, 1_000_000, &mut rng).unwrap();
        assert!(reusable(&s, "gw-1", 1_000_000, 3600));
        assert!(reusable(&s, "gw-1", 1_000_000 + 3299, 3600));
        assert!(!reusable(&s, "gw-1", 1_000_000 + 3300, 3600));
        assert!(!reusable(&s, "gw-1", 999_999, 3600));
        assert!(!reusable(&s, "gw-2", 1_000_000, 3600));
    }
}
