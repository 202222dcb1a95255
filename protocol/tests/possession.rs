//! What a new session costs the gateway before its proof verifies (docs/PROTOCOL.md §4, §12): a
//! session just unwrapped is judged as a cached one and cached only once a proof under it
//! verified; a v3 proof's possession ticket is checked before any RSA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::header::{Proof, Version};
use autoid_protocol::verify::{Keyring, Limits, SessionCache, SessionKey, Stop, verify_or_ask};
use autoid_protocol::{Reject, Request};
use common::*;

const NOW: u64 = 1_800_000_000;
const REQ: Request<'static> = Request {
    method: "GET",
    authority: "api.example.com",
    path: "/v1/payments?limit=10",
};

/// A cache that counts what verification asked of it, with a session held for the request.
#[derive(Default)]
struct Counting {
    cached: Option<SessionKey>,
    held: Option<SessionKey>,
    puts: usize,
    unwraps: usize,
    checked_unwraps: usize,
}

impl SessionCache for Counting {
    fn get(&mut self, _: &Proof) -> Option<SessionKey> {
        self.cached.clone()
    }
    fn put(&mut self, _: &Proof, s: &SessionKey) {
        self.puts += 1;
        self.cached = Some(s.clone());
    }
    fn held(&mut self, _: &Proof) -> Option<SessionKey> {
        self.held.clone()
    }
    fn hold(&mut self, _: &Proof, s: &SessionKey) {
        self.held = Some(s.clone());
    }
    fn allow_unwrap(&mut self) -> bool {
        self.unwraps += 1;
        true
    }
    fn allow_checked_unwrap(&mut self) -> bool {
        self.checked_unwraps += 1;
        true
    }
}

fn ring() -> Keyring {
    Keyring::new(vec![gateway_key()], vec![epoch()])
}

/// Someone with the public key and a file of zeros.
fn junk(version: Version, seed: &[u8]) -> String {
    let mut rng = TestRng::new(seed);
    let zeros = EntropyFile::new("e-test", "mallory", 64, vec![0u8; 65536]);
    Session::open(&gateway_key().public(), NOW, &mut rng)
        .unwrap()
        .prove_in(version, Form::Full, &zeros, &REQ, NOW, None, &mut rng)
        .unwrap()
}

fn run(header: &str, cache: &mut Counting) -> Result<String, Stop> {
    verify_or_ask(&ring(), &Limits::default(), header, &REQ, NOW, cache).map(|v| v.subject)
}

#[test]
fn a_session_is_cached_only_once_a_proof_under_it_verified() {
    // Junk: unwrapped (v2 has no ticket), refused at the digest, never cached.
    let mut cache = Counting::default();
    assert_eq!(
        run(&junk(Version::V2, b"junk v2"), &mut cache),
        Err(Stop::Rejected(Reject::Entropy))
    );
    assert_eq!((cache.unwraps, cache.puts), (1, 0));
    assert!(cache.cached.is_none());
    // A good proof: cached after it verified.
    let mut rng = TestRng::new(b"good");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let good = session
        .prove_in(
            Version::V2,
            Form::Full,
            &file("alice"),
            &REQ,
            NOW,
            None,
            &mut rng,
        )
        .unwrap();
    let mut cache = Counting::default();
    assert_eq!(run(&good, &mut cache), Ok("alice".to_owned()));
    assert_eq!((cache.unwraps, cache.puts), (1, 1));
}

#[test]
fn a_held_session_is_judged_as_a_cached_one() {
    // The agent unwrapped a session past its lifetime (or from the future): session_expired,
    // not another unwrap, and nothing cached.
    for issued_at in [NOW - 3601, NOW + 61] {
        let mut rng = TestRng::new(b"held");
        let session = Session::open(&gateway_key().public(), issued_at, &mut rng).unwrap();
        let header = session
            .prove_in(
                Version::V2,
                Form::Full,
                &file("alice"),
                &REQ,
                NOW,
                None,
                &mut rng,
            )
            .unwrap();
        let proof = Proof::parse(&header).unwrap();
        let mut cache = Counting {
            held: Some(ring().unwrap_session(&proof).unwrap()),
            ..Counting::default()
        };
        assert_eq!(
            run(&header, &mut cache),
            Err(Stop::Rejected(Reject::SessionExpired))
        );
        assert_eq!(
            (cache.unwraps, cache.checked_unwraps, cache.puts),
            (0, 0, 0)
        );
    }
}

#[test]
fn a_junk_ticket_is_refused_before_any_unwrap_or_budget() {
    let mut cache = Counting::default();
    assert_eq!(
        run(&junk(Version::V3, b"junk v3"), &mut cache),
        Err(Stop::Rejected(Reject::Entropy))
    );
    assert_eq!(
        (cache.unwraps, cache.checked_unwraps, cache.puts),
        (0, 0, 0)
    );
    assert!(cache.held.is_none(), "nothing unwrapped");
}

#[test]
fn a_good_ticket_spends_the_checked_budget_and_the_payload_must_match_it() {
    let mut rng = TestRng::new(b"v3 good");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let alice = file("alice");
    let make = |rng: &mut TestRng| {
        session
            .prove_in(Version::V3, Form::Full, &alice, &REQ, NOW, None, rng)
            .unwrap()
    };
    let (first, second) = (make(&mut rng), make(&mut rng));
    let mut cache = Counting::default();
    assert_eq!(run(&first, &mut cache), Ok("alice".to_owned()));
    assert_eq!(
        (cache.unwraps, cache.checked_unwraps, cache.puts),
        (0, 1, 1)
    );
    // The second proof's ticket on the first proof's seal: the ticket is right for its own
    // nonce, so it passes before the unwrap, but the sealed payload says another nonce.
    let mut parts: Vec<&str> = first.split('.').collect();
    let other: Vec<&str> = second.split('.').collect();
    parts[4] = other[4];
    let mut cache = Counting::default();
    assert_eq!(
        run(&parts.join("."), &mut cache),
        Err(Stop::Rejected(Reject::Payload))
    );
    assert_eq!(cache.puts, 0);
    // Old and new versions side by side: v1 and v2 spend the unchecked budget.
    let v2 = session
        .prove_in(Version::V2, Form::Full, &alice, &REQ, NOW, None, &mut rng)
        .unwrap();
    let mut cache = Counting::default();
    assert_eq!(run(&v2, &mut cache), Ok("alice".to_owned()));
    assert_eq!((cache.unwraps, cache.checked_unwraps), (1, 0));
}

#[test]
fn a_stale_ticket_is_stale_before_any_unwrap() {
    let mut rng = TestRng::new(b"v3 stale");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let header = session
        .prove_in(
            Version::V3,
            Form::Full,
            &file("alice"),
            &REQ,
            NOW - 61,
            None,
            &mut rng,
        )
        .unwrap();
    let mut cache = Counting::default();
    assert_eq!(run(&header, &mut cache), Err(Stop::Rejected(Reject::Stale)));
    assert_eq!((cache.unwraps, cache.checked_unwraps), (0, 0));
}
