//! Request material made before each run: autoid proofs (every one single-use, each a fresh
//! nonce; warm proofs share a few sessions, cold ones each have their own wrapped key) and RS256
//! JWTs for `jwt_authn`.

use anyhow::{Context, Result};
use autoid_protocol::Request;
use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::header::Version;
use autoid_protocol::keys::PublicKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use rsa::rand_core::UnwrapErr;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use crate::envoy::{HOST, PATH};
use crate::loadgen::request;

/// The OS CSPRNG as the protocol crate takes it.
pub type Rng = UnwrapErr<getrandom::SysRng>;

/// The OS CSPRNG.
pub fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

/// The request every proof binds.
pub const fn bench_request() -> Request<'static> {
    Request {
        method: "GET",
        authority: HOST,
        path: PATH,
    }
}

/// How proofs relate to sessions.
#[derive(Debug, Clone, Copy)]
pub enum Sessions {
    /// `n` sessions, proofs round-robin over them (the warm path once each is unwrapped).
    Shared(usize),
    /// A new session (a new RSA-wrapped key) for every proof: the cold path.
    PerProof,
}

/// Which protocol version the proofs speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forms {
    /// v1: every proof carries the wrapped session key.
    V1,
    /// v2: each shared session's first proof (the primed one) in the full form, every later one
    /// compact (docs/PROTOCOL.md §11); a proof with its own session in the full form.
    V2,
    /// v3: as v2, each full form with its possession ticket (docs/PROTOCOL.md §12), as
    /// `autoid prove` and the Python client make them.
    V3,
}

impl Forms {
    /// From `--proof-version`.
    pub fn from_version(version: u8) -> Forms {
        match version {
            1 => Forms::V1,
            2 => Forms::V2,
            _ => Forms::V3,
        }
    }

    /// The form of proof `i` over `sessions` shared sessions (0: a session per proof).
    fn form(self, i: usize, sessions: usize) -> Form {
        match self {
            Forms::V1 => Form::V1,
            Forms::V2 | Forms::V3 if i < sessions || sessions == 0 => Form::Full,
            Forms::V2 | Forms::V3 => Form::Compact,
        }
    }

    /// The protocol version its proofs carry.
    fn version(self) -> Version {
        match self {
            Forms::V1 => Version::V1,
            Forms::V2 => Version::V2,
            Forms::V3 => Version::V3,
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs())
}

/// `count` complete requests, each with its own proof header, made now, on `threads` threads.
pub fn proof_requests(
    public: &PublicKey,
    file: &EntropyFile,
    header: &str,
    sessions: Sessions,
    forms: Forms,
    count: usize,
    threads: usize,
) -> Result<Vec<Vec<u8>>> {
    let now = unix_now()?;
    let shared: Vec<Session> = match sessions {
        Sessions::Shared(n) => open_sessions(public, n, now)?,
        Sessions::PerProof => Vec::new(),
    };
    let sessions = ProofSessions {
        public: Some(public),
        shared: &shared,
        forms,
    };
    make(&sessions, file, header, count, threads, now)
}

/// `n` (at least one) sessions opened at `now`.
pub fn open_sessions(public: &PublicKey, n: usize, now: u64) -> Result<Vec<Session>> {
    let mut rng = rng();
    Ok((0..n.max(1))
        .map(|_| Session::open(public, now, &mut rng))
        .collect::<Result<_, _>>()?)
}

/// `count` v1 requests whose proofs, made now, go round-robin over `sessions` (already open).
pub fn session_requests(
    file: &EntropyFile,
    header: &str,
    sessions: &[Session],
    count: usize,
    threads: usize,
) -> Result<Vec<Vec<u8>>> {
    if sessions.is_empty() {
        anyhow::bail!("no sessions to prove with");
    }
    let sessions = ProofSessions {
        public: None,
        shared: sessions,
        forms: Forms::V1,
    };
    make(&sessions, file, header, count, threads, unix_now()?)
}

/// What the proofs are made in: round-robin over `shared` sessions, or, when there are none,
/// each in a new session for `public`; in `forms`.
struct ProofSessions<'a> {
    public: Option<&'a PublicKey>,
    shared: &'a [Session],
    forms: Forms,
}

/// `count` requests, made on `threads` threads.
fn make(
    sessions: &ProofSessions<'_>,
    file: &EntropyFile,
    header: &str,
    count: usize,
    threads: usize,
    now: u64,
) -> Result<Vec<Vec<u8>>> {
    let ProofSessions {
        public,
        shared,
        forms,
    } = *sessions;
    let threads = threads.max(1);
    let chunk = count.div_ceil(threads).max(1);
    let req = bench_request();
    let parts: Vec<Result<Vec<Vec<u8>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<Vec<Vec<u8>>> {
                    let mut rng = self::rng();
                    let start = t * chunk;
                    let end = ((t + 1) * chunk).min(count);
                    let mut out = Vec::with_capacity(end.saturating_sub(start));
                    for i in start..end {
                        let form = forms.form(i, shared.len());
                        let proof = match (shared.is_empty(), public) {
                            (false, _) => shared[i % shared.len()].prove_in(
                                forms.version(),
                                form,
                                file,
                                &req,
                                now,
                                None,
                                &mut rng,
                            )?,
                            (true, Some(public)) => Session::open(public, now, &mut rng)?
                                .prove_in(forms.version(), form, file, &req, now, None, &mut rng)?,
                            (true, None) => anyhow::bail!("no session and no key"),
                        };
                        out.push(request(HOST, PATH, Some((header, &proof))));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("proof thread panicked")))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(count);
    for p in parts {
        all.extend(p?);
    }
    Ok(all)
}

/// An RS256 signer for `jwt_authn`, with its JWKS.
#[derive(Debug)]
pub struct JwtIssuer {
    signing: SigningKey<Sha256>,
    public: RsaPublicKey,
    /// The `iss` claim and the provider's issuer.
    pub issuer: String,
}

const JWT_KID: &str = "bench-rs256";

impl JwtIssuer {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<JwtIssuer> {
        let key = RsaPrivateKey::new(&mut rng(), 2048).context("rsa keygen")?;
        let public = key.to_public_key();
        Ok(JwtIssuer {
            signing: SigningKey::<Sha256>::new(key),
            public,
            issuer: "https://autoid-bench.local".to_owned(),
        })
    }

    /// The JWKS holding the public key.
    pub fn jwks(&self) -> String {
        serde_json::json!({ "keys": [ {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": JWT_KID,
            "n": URL_SAFE_NO_PAD.encode(self.public.n_bytes()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e_bytes()),
        } ] })
        .to_string()
    }

    /// A signed token for `subject`, valid for a day, with a unique `jti`.
    pub fn token(&self, subject: &str, jti: u64) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": JWT_KID });
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": subject, "aud": "bench",
            "iat": now, "exp": now + 86_400, "jti": format!("bench-{jti}"),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .signing
            .try_sign(signing_input.as_bytes())
            .context("rs256 sign")?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        ))
    }
}
