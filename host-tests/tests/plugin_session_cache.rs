//! RSA once per session: the second request of a session is a local cache hit, and a session
//! first used on one worker is a shared-data hit on another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::autoid::{Client, Fixture, metric, upstream};

const PATH: &str = "/v1/payments";

#[test]
fn the_second_request_of_a_session_skips_rsa() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
    assert_eq!(metric(&gw, "autoid_session_cache_miss"), 1);
    assert_eq!(metric(&gw, "autoid_session_cache_hit_local"), 0);
    for n in 1..=5 {
        upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
        assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
        assert_eq!(metric(&gw, "autoid_session_cache_hit_local"), n);
    }
    assert_eq!(metric(&gw, "autoid_session_cache_miss"), 1);
    assert_eq!(metric(&gw, "autoid_session_cache_hit_shared"), 0);
    assert_eq!(metric(&gw, "autoid_requests_allowed"), 6);
}

#[test]
fn a_session_first_used_on_worker_0_is_a_shared_hit_on_worker_1() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    upstream(&alice.get(&gw, "payments", PATH).worker(1).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
    assert_eq!(metric(&gw, "autoid_session_cache_hit_shared"), 1);
    // Now worker 1 has it locally as well.
    upstream(&alice.get(&gw, "payments", PATH).worker(1).send());
    assert_eq!(metric(&gw, "autoid_session_cache_hit_local"), 1);
    assert_eq!(metric(&gw, "autoid_session_cache_hit_shared"), 1);
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
}

#[test]
fn a_session_is_tied_to_its_wrapped_key_not_its_subject() {
    // Two sessions of one subject are two unwraps; each is then cached on its own.
    let gw = Fixture::static_groups().build();
    let mut a = Client::open(&gw, "alice");
    let mut b = a.reopen(&gw);
    upstream(&a.get(&gw, "payments", PATH).worker(0).send());
    upstream(&b.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 2);
    upstream(&a.get(&gw, "payments", PATH).worker(0).send());
    upstream(&b.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 2);
    assert_eq!(metric(&gw, "autoid_session_cache_hit_local"), 2);
}

#[test]
fn a_cached_session_still_checks_every_proof() {
    // The cache holds the key, not a verdict: a bad proof on a warm session is still refused.
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    let proof = alice.proof(&gw, PATH);
    common::autoid::expect_denied(
        &gw,
        gw.request("GET", common::autoid::AUTHORITY, PATH)
            .route("payments")
            .header(
                common::autoid::PROOF,
                &common::autoid::tamper(&proof, 3, 30),
            )
            .worker(0),
        401,
        "open",
    );
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
}

#[test]
fn a_tiny_local_cache_falls_back_to_shared_data() {
    let gw = Fixture::static_groups()
        .with("/session_cache/local_max_entries", serde_json::json!(1))
        .build();
    let mut a = Client::open(&gw, "alice");
    let mut b = Client::open(&gw, "carol");
    upstream(&a.get(&gw, "payments", PATH).worker(0).send());
    upstream(&b.get(&gw, "payments", PATH).worker(0).send()); // evicts a locally
    upstream(&a.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 2);
    assert_eq!(metric(&gw, "autoid_session_cache_hit_shared"), 1);
}

#[test]
fn a_session_is_cached_only_once_a_proof_under_it_verified() {
    use autoid_protocol::entropy::EntropyFile;
    use common::autoid::{AUTHORITY, EPOCH, expect_denied, now};
    use serde_json::json;
    // A small cache, so that cached junk would evict: 4 shared slots, 2 per worker.
    let gw = Fixture::static_groups()
        .with(
            "/session_cache",
            json!({ "max_entries": 4, "local_max_entries": 2 }),
        )
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 1000, "burst": 1000,
                    "per_source_unwraps_per_second": 1000, "per_source_burst": 1000 }),
        )
        .build();
    let mut alice = Client::open(&gw, "alice");
    for worker in [0, 1] {
        upstream(&alice.get(&gw, "payments", PATH).worker(worker).send());
    }
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
    // Sessions wrapped with the public key, proofs with a file of zeros: unwrapped, refused,
    // never cached.
    let junk: i64 = 32;
    for n in 0..junk {
        let zeros = EntropyFile::new(EPOCH, "mallory", 64, vec![0u8; 64 << 10]);
        let mut mallory = Client::with_file(zeros, now(&gw));
        let proof = mallory.proof(&gw, PATH);
        expect_denied(
            &gw,
            gw.request("GET", AUTHORITY, PATH)
                .route("payments")
                .header(common::autoid::PROOF, &proof)
                .worker(usize::from(n % 2 == 1)),
            401,
            "entropy",
        );
    }
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1 + junk);
    for worker in [0, 1, 0, 1] {
        upstream(&alice.get(&gw, "payments", PATH).worker(worker).send());
    }
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1 + junk);
}
