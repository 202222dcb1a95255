//! Proofs made by the client verify at the gateway; every tampering is rejected with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_protocol::Reject;
use autoid_protocol::Request;
use autoid_protocol::client::Session;
use autoid_protocol::header::{Payload, Proof};
use autoid_protocol::verify::{
    Keyring, KnownEpoch, Limits, NoCache, SessionCache, SessionKey, Stop, verify, verify_or_ask,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use std::collections::HashMap;

const NOW: u64 = 1_800_000_000;
const REQ: Request<'static> = Request {
    method: "GET",
    authority: "api.example.com",
    path: "/v1/payments?limit=10",
};

fn keyring() -> Keyring {
    Keyring::new(vec![gateway_key()], vec![epoch()])
}

fn proof_for(subject: &str, req: &Request<'_>, at: u64) -> String {
    let mut rng = TestRng::new(b"roundtrip");
    let session = Session::open(&gateway_key().public(), at, &mut rng).unwrap();
    session
        .prove(&file(subject), req, at, None, &mut rng)
        .unwrap()
}

fn check(header: &str, req: &Request<'_>, now: u64) -> Result<String, Reject> {
    verify(
        &keyring(),
        &Limits::default(),
        header,
        req,
        now,
        &mut NoCache,
    )
    .map(|v| v.subject)
}

#[test]
fn a_fresh_proof_verifies() {
    let header = proof_for("alice", &REQ, NOW);
    assert_eq!(check(&header, &REQ, NOW), Ok("alice".to_owned()));
    assert!(header.starts_with("v1.test-2048."));
}

#[test]
fn authority_is_case_insensitive_but_method_and_path_are_not() {
    let header = proof_for("alice", &REQ, NOW);
    let upper = Request {
        authority: "API.Example.COM",
        ..REQ
    };
    assert_eq!(check(&header, &upper, NOW), Ok("alice".to_owned()));
    assert_eq!(
        check(
            &header,
            &Request {
                method: "get",
                ..REQ
            },
            NOW
        ),
        Err(Reject::Open)
    );
    assert_eq!(
        check(
            &header,
            &Request {
                path: "/V1/payments?limit=10",
                ..REQ
            },
            NOW
        ),
        Err(Reject::Open)
    );
}

#[test]
fn another_method_authority_or_path_is_rejected() {
    let header = proof_for("alice", &REQ, NOW);
    for other in [
        Request {
            method: "POST",
            ..REQ
        },
        Request {
            authority: "evil.example.com",
            ..REQ
        },
        Request {
            path: "/v1/payments?limit=11",
            ..REQ
        },
        Request {
            path: "/v1/payments",
            ..REQ
        },
    ] {
        assert_eq!(check(&header, &other, NOW), Err(Reject::Open), "{other:?}");
    }
}

#[test]
fn timestamps_outside_the_window_are_rejected() {
    let limits = Limits::default();
    let header = proof_for("alice", &REQ, NOW);
    assert!(check(&header, &REQ, NOW + limits.max_skew_secs).is_ok());
    assert!(check(&header, &REQ, NOW - limits.max_skew_secs).is_ok());
    // The session itself is issued at NOW, so a gateway clock far behind sees it as future too.
    assert_eq!(
        check(&header, &REQ, NOW + limits.max_skew_secs + 1),
        Err(Reject::Stale)
    );
    assert_eq!(
        check(&header, &REQ, NOW - limits.max_skew_secs - 1),
        Err(Reject::SessionExpired)
    );
}

#[test]
fn a_future_proof_in_a_valid_session_is_rejected_as_future() {
    let mut rng = TestRng::new(b"future");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let header = session
        .prove(&file("alice"), &REQ, NOW + 61, None, &mut rng)
        .unwrap();
    assert_eq!(check(&header, &REQ, NOW), Err(Reject::Future));
    let header = session
        .prove(&file("alice"), &REQ, NOW - 61, None, &mut rng)
        .unwrap();
    assert_eq!(check(&header, &REQ, NOW), Err(Reject::Stale));
}

#[test]
fn an_expired_session_is_rejected() {
    let limits = Limits::default();
    let mut rng = TestRng::new(b"old");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let later = NOW + limits.session_lifetime_secs + 1;
    let header = session
        .prove(&file("alice"), &REQ, later, None, &mut rng)
        .unwrap();
    assert_eq!(check(&header, &REQ, later), Err(Reject::SessionExpired));
}

#[test]
fn every_single_byte_change_of_the_header_is_rejected() {
    let header = proof_for("alice", &REQ, NOW);
    let bytes = header.as_bytes();
    // Every position, one substitution each: a character of the same alphabet where possible.
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] = match bytes[i] {
            b'A' => b'B',
            b'.' => b'_',
            _ => b'A',
        };
        let changed = String::from_utf8(changed).unwrap();
        let result = check(&changed, &REQ, NOW);
        assert!(result.is_err(), "byte {i} changed and still verified");
    }
}

#[test]
fn tampering_gives_the_precise_reason() {
    let header = proof_for("alice", &REQ, NOW);
    let parts: Vec<&str> = header.split('.').collect();
    let join = |p: &[&str]| p.join(".");
    // Version.
    assert_eq!(
        check(&join(&["v4", parts[1], parts[2], parts[3]]), &REQ, NOW),
        Err(Reject::UnsupportedVersion)
    );
    // v3's full form without its possession ticket, and a ticket on v1.
    assert_eq!(
        check(&join(&["v3", parts[1], parts[2], parts[3]]), &REQ, NOW),
        Err(Reject::Malformed)
    );
    assert_eq!(
        check(
            &join(&[parts[0], parts[1], parts[2], parts[3], "AAAA"]),
            &REQ,
            NOW
        ),
        Err(Reject::Malformed)
    );
    assert_eq!(
        check(&join(&["x1", parts[1], parts[2], parts[3]]), &REQ, NOW),
        Err(Reject::Malformed)
    );
    // Key id.
    assert_eq!(
        check(&join(&[parts[0], "other", parts[2], parts[3]]), &REQ, NOW),
        Err(Reject::UnknownKey)
    );
    // Wrapped key: flip one bit of the ciphertext.
    let mut wrapped = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    wrapped[100] ^= 1;
    let wrapped = URL_SAFE_NO_PAD.encode(wrapped);
    assert_eq!(
        check(&join(&[parts[0], parts[1], &wrapped, parts[3]]), &REQ, NOW),
        Err(Reject::Unwrap)
    );
    // Sealed payload: IV, ciphertext and tag.
    let sealed = URL_SAFE_NO_PAD.decode(parts[3]).unwrap();
    for i in [0, 11, 12, 40, sealed.len() - 1] {
        let mut s = sealed.clone();
        s[i] ^= 0x80;
        let s = URL_SAFE_NO_PAD.encode(s);
        assert_eq!(
            check(&join(&[parts[0], parts[1], parts[2], &s]), &REQ, NOW),
            Err(Reject::Open),
            "sealed byte {i}"
        );
    }
    // Grammar.
    assert_eq!(check("", &REQ, NOW), Err(Reject::Malformed));
    assert_eq!(check(&join(&parts[..3]), &REQ, NOW), Err(Reject::Malformed));
    assert_eq!(
        check(&format!("{header}.x"), &REQ, NOW),
        Err(Reject::Malformed)
    );
    assert_eq!(
        check(&format!("{header}="), &REQ, NOW),
        Err(Reject::Malformed)
    );
    assert_eq!(check(&"A".repeat(3000), &REQ, NOW), Err(Reject::Oversized));
    assert_eq!(
        check(&header.replace('v', "\u{e9}"), &REQ, NOW),
        Err(Reject::Malformed)
    );
}

/// Seals a payload of our choosing under a session we hold, to reach the checks behind the AEAD.
fn forge(payload: &Payload, rng_seed: &[u8]) -> String {
    use aes_gcm::aead::{Aead, Payload as P};
    use aes_gcm::{Aes256Gcm, KeyInit};
    let mut rng = TestRng::new(rng_seed);
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let real = session
        .prove(&file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    let proof = Proof::parse(&real).unwrap();
    let key = keyring().unwrap_session(&proof).unwrap().to_bytes();
    let cipher = Aes256Gcm::new_from_slice(&key[..32]).unwrap();
    let aad = autoid_protocol::header::associated_data(KID, &REQ).unwrap();
    let iv = [7u8; 12];
    let mut sealed = iv.to_vec();
    sealed.extend(
        cipher
            .encrypt(
                &iv.into(),
                P {
                    msg: &payload.to_bytes(),
                    aad: &aad,
                },
            )
            .unwrap(),
    );
    Proof::encode(KID, proof.wrapped().unwrap(), &sealed)
}

fn honest_payload() -> Payload {
    let header = proof_for("alice", &REQ, NOW);
    let proof = Proof::parse(&header).unwrap();
    let session = keyring().unwrap_session(&proof).unwrap();
    session.open(&proof, &REQ).unwrap()
}

#[test]
fn the_old_empty_interval_forgery_is_rejected() {
    use sha2::{Digest, Sha256};
    let mut payload = honest_payload();
    // The old server accepted the hash of the empty string: intervals covering no bytes.
    payload.digest = Sha256::digest(b"").into();
    assert_eq!(
        check(&forge(&payload, b"f1"), &REQ, NOW),
        Err(Reject::Entropy)
    );
    payload.digest = [0; 32];
    assert_eq!(
        check(&forge(&payload, b"f2"), &REQ, NOW),
        Err(Reject::Entropy)
    );
}

#[test]
fn a_digest_over_the_wrong_bytes_is_rejected() {
    use autoid_protocol::intervals::{Bindings, Interval, Intervals, read_file};
    let mut payload = honest_payload();
    let b = Bindings {
        subject: "alice",
        epoch: "e-test",
        nonce: &payload.nonce,
        timestamp: payload.timestamp,
        request: REQ,
    };
    let data = file("alice").data().to_vec();
    let intervals = Intervals::derive(&b, data.len() as u64, 64);
    let offs = intervals.offsets().to_vec();
    let read = |offsets: &[u64]| -> Vec<Interval> {
        offsets.iter().map(|&o| read_file(&data, o)).collect()
    };
    // The right offsets over zeros; then the right bytes at shifted offsets; then intervals the
    // client would like (the start of the file): all rejected.
    payload.digest = intervals.digest(&[Interval::default(); 64]);
    assert_eq!(
        check(&forge(&payload, b"w1"), &REQ, NOW),
        Err(Reject::Entropy)
    );
    let len = data.len() as u64;
    let shifted: Vec<u64> = offs.iter().map(|o| (o + 8) % len).collect();
    payload.digest = intervals.digest(&read(&shifted));
    assert_eq!(
        check(&forge(&payload, b"w2"), &REQ, NOW),
        Err(Reject::Entropy)
    );
    let chosen: Vec<u64> = (0..64).map(|i| i * 8).collect();
    payload.digest = intervals.digest(&read(&chosen));
    assert_eq!(
        check(&forge(&payload, b"w3"), &REQ, NOW),
        Err(Reject::Entropy)
    );
    // And the honest digest under the same forging path verifies, so the path itself is sound.
    payload.digest = intervals.digest(&read(&offs));
    assert_eq!(
        check(&forge(&payload, b"w4"), &REQ, NOW),
        Ok("alice".to_owned())
    );
}

#[test]
fn one_subjects_file_cannot_prove_another_subject() {
    let mut rng = TestRng::new(b"swap");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let bob = file("bob");
    // Bob's bytes, claiming alice.
    let as_alice =
        autoid_protocol::entropy::EntropyFile::new("e-test", "alice", 64, bob.data().to_vec());
    let header = session.prove(&as_alice, &REQ, NOW, None, &mut rng).unwrap();
    assert_eq!(check(&header, &REQ, NOW), Err(Reject::Entropy));
    // Bob's own proof still works.
    let header = session.prove(&bob, &REQ, NOW, None, &mut rng).unwrap();
    assert_eq!(check(&header, &REQ, NOW), Ok("bob".to_owned()));
}

#[test]
fn the_wrong_epoch_is_rejected() {
    let mut rng = TestRng::new(b"epoch");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let alice = file("alice");
    let unknown =
        autoid_protocol::entropy::EntropyFile::new("e-other", "alice", 64, alice.data().to_vec());
    let header = session.prove(&unknown, &REQ, NOW, None, &mut rng).unwrap();
    assert_eq!(check(&header, &REQ, NOW), Err(Reject::UnknownEpoch));
    // A second epoch in the keyring: alice's e-test bytes claimed under it fail.
    let other = autoid_protocol::entropy::Epoch::new("e-other", [9; 32], 65536, 64).unwrap();
    let ring = Keyring::new(vec![gateway_key()], vec![epoch(), other]);
    let r = verify(&ring, &Limits::default(), &header, &REQ, NOW, &mut NoCache);
    assert_eq!(r.map(|v| v.subject), Err(Reject::Entropy));
}

#[test]
fn a_non_canonical_subject_is_rejected_before_any_entropy_work() {
    // Spellings LDAP would match to alice's entry: each is refused as `subject` (docs/PROTOCOL.md,
    // "Subjects"), never verified as another subject.
    let long = "a".repeat(65);
    for (i, subject) in [
        "ALICE",
        "Alice",
        " alice",
        "alice ",
        "al\u{130}ce",
        "a,b",
        long.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let mut payload = honest_payload();
        payload.subject = subject.to_owned();
        let header = forge(&payload, format!("s{i}").as_bytes());
        assert_eq!(
            check(&header, &REQ, NOW),
            Err(Reject::Subject),
            "{subject:?}"
        );
    }
    // The client side refuses to make such a proof at all.
    let mut rng = TestRng::new(b"subject");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let f = autoid_protocol::entropy::EntropyFile::new(
        "e-test",
        "Alice",
        64,
        file("alice").data().to_vec(),
    );
    assert!(session.prove(&f, &REQ, NOW, None, &mut rng).is_err());
}

#[test]
fn a_changed_subject_in_the_file_header_is_rejected() {
    // The file says "alicf" but holds alice's bytes.
    let mut rng = TestRng::new(b"subj");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let f = autoid_protocol::entropy::EntropyFile::new(
        "e-test",
        "alicf",
        64,
        file("alice").data().to_vec(),
    );
    let header = session.prove(&f, &REQ, NOW, None, &mut rng).unwrap();
    assert_eq!(check(&header, &REQ, NOW), Err(Reject::Entropy));
}

#[test]
fn a_body_bound_proof_checks_the_body() {
    use autoid_protocol::verify::check_body;
    let mut rng = TestRng::new(b"body");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let header = session
        .prove(&file("alice"), &REQ, NOW, Some(b"{\"amount\":5}"), &mut rng)
        .unwrap();
    let v = verify(
        &keyring(),
        &Limits::default(),
        &header,
        &REQ,
        NOW,
        &mut NoCache,
    )
    .unwrap();
    let expected = v.body_digest.unwrap();
    assert_eq!(check_body(&expected, b"{\"amount\":5}"), Ok(()));
    assert_eq!(
        check_body(&expected, b"{\"amount\":500}"),
        Err(Reject::Body)
    );
}

#[derive(Default)]
struct MapCache(HashMap<[u8; 16], SessionKey>, usize);

impl SessionCache for MapCache {
    fn get(&mut self, proof: &Proof) -> Option<SessionKey> {
        self.0.get(&proof.session_ref()).cloned()
    }
    fn put(&mut self, proof: &Proof, s: &SessionKey) {
        self.1 += 1;
        self.0.insert(proof.session_ref(), s.clone());
    }
}

#[test]
fn a_v2_session_opens_once_in_the_full_form_then_goes_compact() {
    use autoid_protocol::client::Form;
    let mut rng = TestRng::new(b"v2 forms");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let mut cache = MapCache::default();
    let (ring, limits) = (keyring(), Limits::default());
    let prove = |form, rng: &mut TestRng| {
        session
            .prove_as(form, &file("alice"), &REQ, NOW, None, rng)
            .unwrap()
    };
    let compact = prove(Form::Compact, &mut rng);
    assert_eq!(
        verify(&ring, &limits, &compact, &REQ, NOW, &mut cache),
        Err(Reject::UnknownSession),
        "not held yet"
    );
    let full = prove(Form::Full, &mut rng);
    let v = verify(&ring, &limits, &full, &REQ, NOW, &mut cache).unwrap();
    assert!(!v.session_cached);
    let v = verify(&ring, &limits, &compact, &REQ, NOW, &mut cache).unwrap();
    assert!(v.session_cached);
    assert_eq!(v.subject, "alice");
    assert_eq!(cache.1, 1, "one unwrap for the whole session");
    // Another request, another path: the compact form binds the request like the full one.
    let other = Request {
        path: "/v1/other",
        ..REQ
    };
    assert_eq!(
        verify(&ring, &limits, &compact, &other, NOW, &mut cache),
        Err(Reject::Open)
    );
    // A v1 session proof and a v2 one share the session (its id does not depend on the version).
    let old = session
        .prove(&file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    assert!(
        verify(&ring, &limits, &old, &REQ, NOW, &mut cache)
            .unwrap()
            .session_cached
    );
}

#[test]
fn a_version_tag_swapped_does_not_open_and_a_reference_is_not_v1() {
    use autoid_protocol::client::Form;
    let mut rng = TestRng::new(b"v2 swap");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let (ring, limits) = (keyring(), Limits::default());
    let mut cache = MapCache::default();
    let full = session
        .prove_as(Form::Full, &file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    let as_v1 = full.replacen("v2.", "v1.", 1);
    assert_eq!(
        verify(&ring, &limits, &as_v1, &REQ, NOW, &mut cache),
        Err(Reject::Open),
        "the version is in the associated data"
    );
    let v1 = session
        .prove(&file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    assert_eq!(
        verify(
            &ring,
            &limits,
            &v1.replacen("v1.", "v2.", 1),
            &REQ,
            NOW,
            &mut cache
        ),
        Err(Reject::Open)
    );
    let compact = session
        .prove_as(Form::Compact, &file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    assert_eq!(
        Proof::parse(&compact.replacen("v2.", "v1.", 1)),
        Err(Reject::Malformed),
        "v1 has no compact form"
    );
    // Any other session-part length is malformed in v2 as well.
    let parts: Vec<&str> = compact.split('.').collect();
    for bad in ["AAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA"] {
        let h = format!("v2.{}.{bad}.{}", parts[1], parts[3]);
        assert_eq!(Proof::parse(&h), Err(Reject::Malformed), "{bad}");
    }
}

#[test]
fn the_session_cache_skips_rsa_for_the_second_proof() {
    let mut rng = TestRng::new(b"cache");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let mut cache = MapCache::default();
    let ring = keyring();
    let limits = Limits::default();
    let first = session
        .prove(&file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    let second = session
        .prove(&file("alice"), &REQ, NOW, None, &mut rng)
        .unwrap();
    assert_ne!(first, second, "every proof has a fresh nonce and IV");
    let v1 = verify(&ring, &limits, &first, &REQ, NOW, &mut cache).unwrap();
    let v2 = verify(&ring, &limits, &second, &REQ, NOW, &mut cache).unwrap();
    assert!(!v1.session_cached);
    assert!(v2.session_cached);
    assert_eq!(cache.1, 1, "one unwrap, one put");
    assert_eq!(
        Proof::parse(&first).unwrap().session_id(),
        Proof::parse(&second).unwrap().session_id(),
        "one session, one cache key"
    );
    assert_ne!(v1.nonce, v2.nonce);
}

/// A cache that holds one subject's stream handed over by the agent (by key), and counts budget.
struct AgentStreams {
    streams: HashMap<(String, String), autoid_protocol::entropy::SubjectStream>,
    budget: u32,
}

impl SessionCache for AgentStreams {
    fn get(&mut self, _: &Proof) -> Option<SessionKey> {
        None
    }
    fn put(&mut self, _: &Proof, _: &SessionKey) {}
    fn allow_unwrap(&mut self) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        true
    }
    fn intervals(
        &mut self,
        epoch: KnownEpoch<'_>,
        subject: &str,
        offsets: &[u64],
    ) -> Option<Vec<autoid_protocol::intervals::Interval>> {
        if let Some(s) = epoch.local_stream(subject) {
            return Some(s.intervals_at(offsets));
        }
        let key = (epoch.params().id().to_owned(), subject.to_owned());
        self.streams.get(&key).map(|s| s.intervals_at(offsets))
    }
}

#[test]
fn an_agent_held_epoch_asks_for_the_subject_key_within_the_budget() {
    let e = epoch();
    let ring =
        Keyring::new(vec![gateway_key()], vec![]).with_agent_epochs(vec![e.params().clone()]);
    let header = proof_for("alice", &REQ, NOW);
    let limits = Limits::default();
    // One token: the RSA unwrap (local key) spends it, so the stream callout is refused.
    let mut cache = AgentStreams {
        streams: HashMap::new(),
        budget: 1,
    };
    assert_eq!(
        verify_or_ask(&ring, &limits, &header, &REQ, NOW, &mut cache).unwrap_err(),
        Stop::Rejected(Reject::RateLimited)
    );
    let mut cache = AgentStreams {
        streams: HashMap::new(),
        budget: 2,
    };
    assert_eq!(
        verify_or_ask(&ring, &limits, &header, &REQ, NOW, &mut cache).unwrap_err(),
        Stop::AskStream {
            epoch: "e-test".into(),
            subject: "alice".into()
        }
    );
    assert_eq!(cache.budget, 0, "the callout spent a cold-path token");
    // The agent's answer: K for (e-test, alice), as the filter caches it.
    let k = e.subject_key("alice");
    cache
        .streams
        .insert(("e-test".into(), "alice".into()), k.stream());
    let v = verify_or_ask(&ring, &limits, &header, &REQ, NOW, &mut cache).unwrap_err();
    assert_eq!(
        v,
        Stop::Rejected(Reject::RateLimited),
        "the session still needs its unwrap"
    );
    cache.budget = 1;
    let v = verify_or_ask(&ring, &limits, &header, &REQ, NOW, &mut cache).unwrap();
    assert_eq!(v.subject, "alice");
    // Another subject's key does not prove alice.
    cache.streams.insert(
        ("e-test".into(), "alice".into()),
        e.subject_key("bob").stream(),
    );
    cache.budget = 1;
    assert_eq!(
        verify_or_ask(&ring, &limits, &header, &REQ, NOW, &mut cache).unwrap_err(),
        Stop::Rejected(Reject::Entropy)
    );
    // Without the agent (plain verify) the epoch is unknown.
    assert_eq!(
        verify(&ring, &limits, &header, &REQ, NOW, &mut NoCache),
        Err(Reject::UnknownEpoch)
    );
}
