//! Every proof rejection the filter can reach, one test each: status 401, the uniform body,
//! `www-authenticate`, the reason in the deny log line and its `autoid_denied_<reason>` counter
//! (all checked by `expect_denied`). Nothing denied goes upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_host_tests::Gateway;
use autoid_protocol::entropy::EntropyFile;
use common::autoid::{
    AUTHORITY, Client, EPOCH, Fixture, PROOF, epoch, expect_denied, hostile_paths, metric, now,
    other_epoch, parts, tamper, upstream,
};
use serde_json::json;

const PATH: &str = "/v1/payments";

fn setup() -> (Gateway, Client) {
    let gw = Fixture::static_groups().build();
    let alice = Client::open(&gw, "alice");
    (gw, alice)
}

/// Sends `proof` for `GET AUTHORITY PATH` on the payments route and expects a 401 `reason`.
fn rejected(gw: &Gateway, proof: &str, reason: &str) {
    expect_denied(
        gw,
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, proof)
            .worker(0),
        401,
        reason,
    );
}

#[test]
fn missing_proof() {
    let (gw, _) = setup();
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, PATH).route("payments"),
        401,
        "missing",
    );
}

#[test]
fn duplicate_proof_headers() {
    let (gw, mut alice) = setup();
    let a = alice.proof(&gw, PATH);
    let b = alice.proof(&gw, PATH);
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &a)
            .header("X-Autoid-Proof", &b),
        401,
        "duplicate",
    );
    // The same valid proof twice is a duplicate too, not an accepted request.
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &a)
            .header(PROOF, &a),
        401,
        "duplicate",
    );
    assert_eq!(
        metric(&gw, "autoid_rsa_unwraps"),
        0,
        "no work on duplicates"
    );
}

#[test]
fn oversized_proof() {
    let (gw, mut alice) = setup();
    let proof = alice.proof(&gw, PATH);
    let padded = format!("{proof}{}", "A".repeat(2049 - proof.len()));
    rejected(&gw, &padded, "oversized");
    rejected(&gw, &"x".repeat(100_000), "oversized");
}

#[test]
fn malformed_proofs() {
    let (gw, mut alice) = setup();
    let proof = alice.proof(&gw, PATH);
    let p = parts(&proof);
    for bad in [
        String::new(),
        "garbage".to_owned(),
        format!("{}.{}.{}", p[0], p[1], p[2]),
        format!("{proof}.extra"),
        format!("{}.{}.{}!.{}", p[0], p[1], p[2], p[3]),
        format!("{}.bad kid.{}.{}", p[0], p[2], p[3]),
        format!("{}.{}.{}.{}", p[0], p[1], &p[2][..100], p[3]),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], &p[3][..10]),
        format!("V1.{}.{}.{}", p[1], p[2], p[3]),
    ] {
        rejected(&gw, &bad, "malformed");
    }
    assert_eq!(metric(&gw, "autoid_denied_malformed"), 9);
}

#[test]
fn unsupported_version() {
    let (gw, mut alice) = setup();
    let p = parts(&alice.proof(&gw, PATH));
    rejected(
        &gw,
        &format!("v4.{}.{}.{}", p[1], p[2], p[3]),
        "unsupported_version",
    );
    rejected(
        &gw,
        &format!("v10.{}.{}.{}", p[1], p[2], p[3]),
        "unsupported_version",
    );
}

#[test]
fn unknown_key_id() {
    let (gw, mut alice) = setup();
    let p = parts(&alice.proof(&gw, PATH));
    rejected(
        &gw,
        &format!("v1.retired-key.{}.{}", p[2], p[3]),
        "unknown_key",
    );
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 0);
}

#[test]
fn tampered_wrapped_key_fails_to_unwrap() {
    let (gw, mut alice) = setup();
    let proof = alice.proof(&gw, PATH);
    rejected(&gw, &tamper(&proof, 2, 10), "unwrap");
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1, "the unwrap ran");
    // A failed unwrap is not cached: the genuine session still works.
    let out = alice.get(&gw, "payments", PATH).worker(0).send();
    upstream(&out);
}

#[test]
fn tampered_sealed_part_fails_to_open() {
    let (gw, mut alice) = setup();
    let proof = alice.proof(&gw, PATH);
    rejected(&gw, &tamper(&proof, 3, 20), "open");
    rejected(&gw, &tamper(&proof, 3, 2), "open"); // the IV
    rejected(&gw, &tamper(&proof, 3, usize::MAX), "open"); // the tag
}

#[test]
fn a_proof_for_another_request_fails_to_open() {
    let (gw, mut alice) = setup();
    let t = now(&gw);
    for (method, authority, path) in [
        ("GET", AUTHORITY, "/v1/payments/other"),
        ("GET", AUTHORITY, "/v1/payments?limit=1"),
        ("POST", AUTHORITY, PATH),
        ("GET", "evil.example.com", PATH),
    ] {
        let proof = alice.proof_for(method, authority, path, t, None);
        rejected(&gw, &proof, "open");
    }
}

#[test]
fn stale_proof() {
    let (gw, mut alice) = setup();
    let t = now(&gw);
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t - 61, None);
    rejected(&gw, &proof, "stale");
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t - 100_000, None);
    rejected(&gw, &proof, "stale");
}

#[test]
fn proof_from_the_future() {
    let (gw, mut alice) = setup();
    let t = now(&gw);
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t + 61, None);
    rejected(&gw, &proof, "future");
}

#[test]
fn expired_session() {
    let gw = Fixture::static_groups().build();
    let t = now(&gw);
    let mut old = Client::with_file(epoch().issue("alice").unwrap(), t - 3601);
    let proof = old.proof(&gw, PATH);
    rejected(&gw, &proof, "session_expired");
    // A session issued further ahead than the skew is refused the same way.
    let mut ahead = Client::with_file(epoch().issue("alice").unwrap(), t + 61);
    let proof = ahead.proof(&gw, PATH);
    rejected(&gw, &proof, "session_expired");
}

#[test]
fn a_cached_session_expires_too() {
    let gw = Fixture::static_groups()
        .with("/limits/session_lifetime_secs", json!(120))
        .build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    gw.clock().advance(std::time::Duration::from_secs(121));
    let proof = alice.proof(&gw, PATH);
    rejected(&gw, &proof, "session_expired");
}

#[test]
fn unknown_epoch() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::with_file(other_epoch().issue("alice").unwrap(), now(&gw));
    let proof = alice.proof(&gw, PATH);
    rejected(&gw, &proof, "unknown_epoch");
}

#[test]
fn another_subjects_entropy_cannot_claim_a_subject() {
    let gw = Fixture::static_groups().build();
    let bobs = epoch().issue("bob").unwrap();
    let forged = EntropyFile::new(EPOCH, "alice", 64, bobs.data().to_vec());
    let mut mallory = Client::with_file(forged, now(&gw));
    let proof = mallory.proof(&gw, PATH);
    rejected(&gw, &proof, "entropy");
    // And a file of zeros is no better.
    let zeros = EntropyFile::new(EPOCH, "alice", 64, vec![0; 65536]);
    let mut mallory = Client::with_file(zeros, now(&gw));
    let proof = mallory.proof(&gw, PATH);
    rejected(&gw, &proof, "entropy");
}

#[test]
fn malformed_sealed_payload() {
    let (gw, mut alice) = setup();
    let mut bytes = alice.payload(now(&gw), "alice").to_bytes();
    bytes.push(0);
    let proof = alice.seal_raw(PATH, &bytes);
    rejected(&gw, &proof, "payload");
    let mut bytes = alice.payload(now(&gw), "alice").to_bytes();
    bytes[24] = 7; // the flags byte
    let proof = alice.seal_raw(PATH, &bytes);
    rejected(&gw, &proof, "payload");
}

#[test]
fn invalid_subject_in_the_payload() {
    let (gw, mut alice) = setup();
    let bytes = alice.payload(now(&gw), "ali\u{7}ce").to_bytes();
    let proof = alice.seal_raw(PATH, &bytes);
    rejected(&gw, &proof, "subject");
}

#[test]
fn replay_on_the_same_worker() {
    let (gw, mut alice) = setup();
    let proof = alice.proof(&gw, PATH);
    upstream(
        &gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .worker(0)
            .send(),
    );
    rejected(&gw, &proof, "replay");
    assert_eq!(metric(&gw, "autoid_replays_rejected"), 1);
}

#[test]
fn replay_on_the_other_worker() {
    let (gw, mut alice) = setup();
    let proof = alice.proof(&gw, PATH);
    upstream(
        &gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .worker(1)
            .send(),
    );
    rejected(&gw, &proof, "replay");
    assert_eq!(metric(&gw, "autoid_replays_rejected"), 1);
}

#[test]
fn a_denied_request_claims_no_nonce() {
    // bob's proof is valid but bob may not use payments: only a request that will be allowed
    // claims its nonce, so a subject without rights cannot fill the replay table. Sent again,
    // the same proof is refused for the same reason, and no replay slot holds it.
    let gw = Fixture::static_groups().build();
    let mut bob = Client::open(&gw, "bob");
    let proof = bob.proof(&gw, PATH);
    let send = || {
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
    };
    expect_denied(&gw, send(), 403, "not_in_groups");
    expect_denied(&gw, send(), 403, "not_in_groups");
    assert_eq!(metric(&gw, "autoid_replays_rejected"), 0);
    assert!(
        gw.shared_data()
            .keys()
            .iter()
            .all(|k| !k.starts_with("autoid.replay.")),
        "a replay slot was written"
    );
}

#[test]
fn invalid_subject_grammar_in_the_payload() {
    // Subjects outside the canonical grammar never reach the directory or a header: LDAP
    // metacharacters, another case, spaces, non-ASCII.
    let (gw, mut alice) = setup();
    for subject in [
        "*)(uid=*))(|(uid=*",
        "ALICE",
        "Alice",
        " alice",
        "alice ",
        "al\u{130}ce",
    ] {
        let bytes = alice.payload(now(&gw), subject).to_bytes();
        let proof = alice.seal_raw(PATH, &bytes);
        rejected(&gw, &proof, "subject");
    }
}

#[test]
fn cold_path_rate_limited() {
    let gw = Fixture::static_groups()
        .with("/cold_path", json!({ "unwraps_per_second": 1, "burst": 1 }))
        .build();
    let mut first = Client::open(&gw, "alice");
    upstream(&first.get(&gw, "payments", PATH).worker(0).send());
    let mut second = Client::open(&gw, "alice");
    let proof = second.proof(&gw, PATH);
    rejected(&gw, &proof, "rate_limited");
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
}

#[test]
fn body_bound_proof_without_the_body() {
    let (gw, mut alice) = setup();
    let proof = alice.proof_for("GET", AUTHORITY, PATH, now(&gw), Some(b"{\"amount\":1}"));
    rejected(&gw, &proof, "body");
}

#[test]
fn a_full_replay_bucket_fails_closed() {
    let gw = Fixture::static_groups()
        .with("/replay", json!({ "buckets": 1, "slots_per_bucket": 4 }))
        .build();
    let mut alice = Client::open(&gw, "alice");
    for i in 0..4 {
        upstream(&alice.get(&gw, "payments", PATH).send());
        // The third and fourth nonces land in a bucket three quarters full or more.
        assert_eq!(
            metric(&gw, "autoid_replay_near_full"),
            (i as i64 - 1).max(0),
            "after {} claims",
            i + 1
        );
    }
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "replay_cache");
    // Once the first nonce's window has passed, there is room again.
    gw.clock().advance(std::time::Duration::from_secs(62));
    upstream(&alice.get(&gw, "payments", PATH).send());
}

#[test]
fn paths_upstreams_could_read_as_another_are_400_even_with_a_valid_proof() {
    // Envoy normalizes or refuses some of these before the filter (e2e/tests/gateway.rs); the
    // filter refuses every one, for any gateway and any rendering: the table all gateways share.
    let (gw, mut alice) = setup();
    let table = hostile_paths("/v1/payments/");
    assert!(table.iter().any(|p| p.ends_with("..%3b/admin")));
    for path in table {
        let proof = alice.proof(&gw, &path);
        expect_denied(
            &gw,
            gw.request("GET", AUTHORITY, &path)
                .route("payments")
                .header(PROOF, &proof),
            400,
            "unsafe_path",
        );
    }
    // Path parameters and escapes that leave every segment's name alone pass.
    for path in [
        "/v1/payments/x;v=..",
        "/v1/payments/a%3bb/caf%C3%A9",
        "/v1/payments/50%25",
    ] {
        let proof = alice.proof(&gw, path);
        upstream(
            &gw.request("GET", AUTHORITY, path)
                .route("payments")
                .header(PROOF, &proof)
                .send(),
        );
    }
}
