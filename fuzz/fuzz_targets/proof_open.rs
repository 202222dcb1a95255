//! Full gateway verification (`verify::verify`) with a fixed keyring: the protocol's RSA-2048
//! test key and a fixed epoch. Inputs are arbitrary header strings, arbitrary sealed parts behind
//! a valid session, and structured mutations of one valid proof, made once with the vectors' RNG
//! (seed `vector-1`: it is test vector 1 of docs/PROTOCOL.md).
//!
//! Mode 3 plays an insider who holds the session key but not the entropy file: it seals arbitrary
//! payload bytes under the original session key, so only the payload checks (grammar, time, epoch,
//! the entropy digest) stand between it and a verified proof.
//!
//! The property: a proof verifies if and only if it is the untouched original, checked against
//! its own request (authority in any case) within the clock skew. The session of the original is
//! cached, as on the filter's warm path; any other wrapped key pays an RSA unwrap (milliseconds),
//! so most inputs are meant to fail before it.

#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, KeyInit};
use arbitrary::{Arbitrary, Unstructured};
use autoid_protocol::Request;
use autoid_protocol::client::Session;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::header::{Proof, SessionRef, associated_data};
use autoid_protocol::keys::GatewayKey;
use autoid_protocol::verify::{Keyring, Limits, SessionCache, SessionKey, verify};
use libfuzzer_sys::fuzz_target;

const KEY_PEM: &str = include_str!("../../protocol/tests/vectors/gateway-2048.pem");
const KID: &str = "test-2048";
const NOW: u64 = 1_800_000_000;
const SKEW: i64 = 60;
const METHOD: &str = "GET";
const AUTHORITY: &str = "api.example.com";
const PATH: &str = "/v1/payments?limit=10";

/// The vectors' deterministic RNG (docs/PROTOCOL.md §9): the one copy, in the protocol's tests.
#[path = "../../protocol/tests/common/rng.rs"]
mod rng;
use rng::TestRng;

struct Fixture {
    keyring: Keyring,
    header: String,
    wrapped: Vec<u8>,
    sealed: Vec<u8>,
    session: (SessionRef, SessionKey),
    /// The original proof's payload (the sealed plaintext).
    payload: Vec<u8>,
    cipher: Aes256Gcm,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = GatewayKey::from_pem(KID, KEY_PEM).unwrap();
        let mut secret = [0u8; 32];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = i as u8;
        }
        let epoch = Epoch::new("e-test", secret, 65536, 64).unwrap();
        let file = epoch.issue("alice").unwrap();
        let mut rng = TestRng::new(b"vector-1");
        let session = Session::open(&key.public(), NOW, &mut rng).unwrap();
        let request = fixture_request();
        let header = session.prove(&file, &request, NOW, None, &mut rng).unwrap();
        let keyring = Keyring::new(vec![key], vec![epoch]);
        let proof = Proof::parse(&header).unwrap();
        let unwrapped = keyring.unwrap_session(&proof).unwrap();
        let payload = unwrapped.open(&proof, &request).unwrap().to_bytes();
        let cipher = Aes256Gcm::new_from_slice(&unwrapped.to_bytes()[..32]).unwrap();
        Fixture {
            payload,
            cipher,
            session: (proof.session_ref(), unwrapped),
            wrapped: proof.wrapped().unwrap().to_vec(),
            sealed: proof.sealed().to_vec(),
            header,
            keyring,
        }
    })
}

/// Holds the original proof's session only, as a warm worker would; never learns another.
struct Warm(&'static (SessionRef, SessionKey));

impl SessionCache for Warm {
    fn get(&mut self, proof: &Proof) -> Option<SessionKey> {
        (proof.kid() == KID && proof.session_ref() == self.0.0).then(|| self.0.1.clone())
    }
    fn put(&mut self, _: &Proof, _: &SessionKey) {}
}

#[derive(Debug, Arbitrary)]
enum Edit {
    /// Sets one byte of the header text.
    HeaderByte { at: u16, value: u8 },
    /// Flips bits of one byte of the wrapped session key (then re-encodes).
    Wrapped { at: u16, xor: u8 },
    /// Flips bits of one byte of `iv || ciphertext || tag` (then re-encodes).
    Sealed { at: u16, xor: u8 },
    /// Cuts the sealed part short.
    TruncateSealed { len: u8 },
    /// Appends bytes to the sealed part.
    ExtendSealed { bytes: Vec<u8> },
}

/// Edits of the original proof, verified against a possibly different request and time.
#[derive(Debug, Arbitrary)]
struct Mutated {
    method: u8,
    authority: u8,
    path: u8,
    now_delta: i16,
    edits: Vec<Edit>,
}

fn mutate(fx: &Fixture, edits: &[Edit]) -> Option<String> {
    let mut wrapped = fx.wrapped.clone();
    let mut sealed = fx.sealed.clone();
    let mut header_edits = Vec::new();
    for edit in edits.iter().take(4) {
        match edit {
            Edit::HeaderByte { at, value } => header_edits.push((*at, *value)),
            Edit::Wrapped { at, xor } => {
                let n = wrapped.len();
                wrapped[usize::from(*at) % n] ^= xor;
            }
            Edit::Sealed { at, xor } => {
                let n = sealed.len();
                if n > 0 {
                    sealed[usize::from(*at) % n] ^= xor;
                }
            }
            Edit::TruncateSealed { len } => sealed.truncate(usize::from(*len)),
            Edit::ExtendSealed { bytes } => sealed.extend_from_slice(bytes),
        }
    }
    let mut header = Proof::encode(KID, &wrapped, &sealed).into_bytes();
    for (at, value) in header_edits {
        let n = header.len();
        header[usize::from(at) % n] = value;
    }
    String::from_utf8(header).ok()
}

fn fixture_request() -> Request<'static> {
    Request {
        method: METHOD,
        authority: AUTHORITY,
        path: PATH,
    }
}

fn pick<'s>(choices: &[&'s str], n: u8) -> &'s str {
    choices[usize::from(n) % choices.len()]
}

// The first byte picks the mode (so the seed corpus stays readable): 0 any header text,
// 1 the original session with any sealed bytes (reaches AES-GCM on the warm path), 2 edits of the
// original proof (the rest of the input, through `arbitrary`), 3 any payload bytes sealed under
// the original session key (an insider without the entropy file).
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fx = fixture();
    let limits = Limits::default();
    let mut sealed_payload = None;
    let (header, method, authority, path, delta) = match mode % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            (text.to_owned(), METHOD, AUTHORITY, PATH, 0)
        }
        1 => (
            Proof::encode(KID, &fx.wrapped, rest),
            METHOD,
            AUTHORITY,
            PATH,
            0,
        ),
        3 => {
            let aad = associated_data(KID, &fixture_request()).unwrap();
            let iv = [7u8; 12];
            let mut sealed = iv.to_vec();
            sealed.extend(
                fx.cipher
                    .encrypt(
                        &iv.into(),
                        AeadPayload {
                            msg: rest,
                            aad: &aad,
                        },
                    )
                    .unwrap(),
            );
            sealed_payload = Some(rest);
            (
                Proof::encode(KID, &fx.wrapped, &sealed),
                METHOD,
                AUTHORITY,
                PATH,
                0,
            )
        }
        _ => {
            let Ok(Mutated {
                edits,
                method,
                authority,
                path,
                now_delta,
            }) = Mutated::arbitrary_take_rest(Unstructured::new(rest))
            else {
                return;
            };
            let Some(header) = mutate(fx, &edits) else {
                return;
            };
            (
                header,
                pick(&[METHOD, "get", "POST", "GET "], method),
                pick(
                    &[
                        AUTHORITY,
                        "API.Example.COM",
                        "api.example.com:443",
                        "api.example.org",
                        "",
                    ],
                    authority,
                ),
                pick(
                    &[
                        PATH,
                        "/v1/payments?limit=11",
                        "/v1/payments",
                        "/V1/payments?limit=10",
                    ],
                    path,
                ),
                i64::from(now_delta),
            )
        }
    };
    let request = Request {
        method,
        authority,
        path,
    };
    let now = NOW.saturating_add_signed(delta);
    let result = verify(
        &fx.keyring,
        &limits,
        &header,
        &request,
        now,
        &mut Warm(&fx.session),
    );
    let original = (header == fx.header || sealed_payload == Some(&fx.payload[..]))
        && method == METHOD
        && path == PATH
        && authority.eq_ignore_ascii_case(AUTHORITY)
        && delta.abs() <= SKEW;
    match result {
        Ok(v) => {
            assert!(
                original,
                "a modified proof verified: {header:?} {request:?} at {now}"
            );
            assert_eq!(v.subject, "alice");
            assert!(v.session_cached);
        }
        Err(reason) => assert!(!original, "the original proof failed: {reason}"),
    }
});
