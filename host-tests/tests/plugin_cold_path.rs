//! The cold-path limit: new sessions (RSA unwraps) are rate limited per worker and per source
//! address, established sessions are not, and the buckets refill with the virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::autoid::{Client, Fixture, expect_denied, metric, upstream};
use serde_json::json;

const PATH: &str = "/v1/payments";

#[test]
fn the_third_new_session_in_a_row_is_rate_limited_but_warm_sessions_pass() {
    let gw = Fixture::static_groups()
        // One source, so its share is the whole worker budget: this tests the worker's bucket.
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 1, "burst": 2,
                    "per_source_unwraps_per_second": 1, "per_source_burst": 2 }),
        )
        .build();
    let mut first = Client::open(&gw, "alice");
    let mut second = Client::open(&gw, "carol");
    let mut third = Client::open(&gw, "alice");
    upstream(&first.get(&gw, "payments", PATH).worker(0).send());
    upstream(&second.get(&gw, "payments", PATH).worker(0).send());
    expect_denied(
        &gw,
        third.get(&gw, "payments", PATH).worker(0),
        401,
        "rate_limited",
    );
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 2);

    // An established session is not held back by the limit.
    for _ in 0..3 {
        upstream(&first.get(&gw, "payments", PATH).worker(0).send());
    }
    upstream(&second.get(&gw, "payments", PATH).worker(0).send());

    // Still empty 999 ms later; one token after a second.
    gw.clock().advance(Duration::from_millis(999));
    expect_denied(
        &gw,
        third.get(&gw, "payments", PATH).worker(0),
        401,
        "rate_limited",
    );
    gw.clock().advance(Duration::from_millis(1));
    upstream(&third.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 3);
    let mut fourth = Client::open(&gw, "alice");
    expect_denied(
        &gw,
        fourth.get(&gw, "payments", PATH).worker(0),
        401,
        "rate_limited",
    );
}

#[test]
fn junk_wrapped_keys_spend_the_bucket_not_the_warm_path() {
    let gw = Fixture::static_groups()
        // One source, so its share is the whole worker budget: this tests the worker's bucket.
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 1, "burst": 2,
                    "per_source_unwraps_per_second": 1, "per_source_burst": 2 }),
        )
        .build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    let proof = alice.proof(&gw, PATH);
    let junk = |i| common::autoid::tamper(&proof, 2, i);
    let send = |p: &str| {
        gw.request("GET", common::autoid::AUTHORITY, PATH)
            .route("payments")
            .header(common::autoid::PROOF, p)
            .worker(0)
    };
    expect_denied(&gw, send(&junk(5)), 401, "unwrap");
    expect_denied(&gw, send(&junk(6)), 401, "rate_limited");
    expect_denied(&gw, send(&junk(7)), 401, "rate_limited");
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 2);
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
}

#[test]
fn each_worker_has_its_own_bucket() {
    let gw = Fixture::static_groups()
        .with("/cold_path", json!({ "unwraps_per_second": 1, "burst": 1 }))
        .build();
    let mut a = Client::open(&gw, "alice");
    let mut b = Client::open(&gw, "alice");
    upstream(&a.get(&gw, "payments", PATH).worker(0).send());
    expect_denied(
        &gw,
        b.get(&gw, "payments", PATH).worker(0),
        401,
        "rate_limited",
    );
    upstream(&b.get(&gw, "payments", PATH).worker(1).send());
    // ... and b, unwrapped on worker 1, is now warm on worker 0 through shared data.
    upstream(&b.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_session_cache_hit_shared"), 1);
}

#[test]
fn a_junk_flood_from_one_source_leaves_other_sources_their_share() {
    // A worker budget of 10 unwraps/s (burst 20); each source may spend a quarter (3/s, burst 5).
    let gw = Fixture::static_groups()
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 10, "burst": 20 }),
        )
        .build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof(&gw, PATH);
    let from = |p: &str, source: &str| {
        gw.request("GET", common::autoid::AUTHORITY, PATH)
            .route("payments")
            .header(common::autoid::PROOF, p)
            .property(&["source", "address"], source)
            .worker(0)
    };
    // 200 junk wrapped keys from 127.0.0.1 (many ports) in one instant: 5 unwraps, then refused.
    let mut unwrapped = 0;
    for i in 0..200 {
        let out = from(
            &common::autoid::tamper(&proof, 2, 5 + i % 300),
            &format!("127.0.0.1:{}", 20000 + i),
        )
        .send();
        assert_eq!(out.local_status(), Some(401), "{out:?}");
        unwrapped = metric(&gw, "autoid_rsa_unwraps");
    }
    assert_eq!(unwrapped, 5, "the flooding source spent only its share");
    // A new session from 127.0.0.2 passes at once, on the same worker, in the same instant.
    let mut carol = Client::open(&gw, "carol");
    let fresh = carol.proof(&gw, PATH);
    upstream(&from(&fresh, "127.0.0.2:40000").send());
    // The flooding source itself waits for its own bucket to refill.
    let mut again = Client::open(&gw, "alice");
    let p = again.proof(&gw, PATH);
    expect_denied(&gw, from(&p, "127.0.0.1:50000"), 401, "rate_limited");
    gw.clock().advance(Duration::from_millis(334));
    let p = again.proof(&gw, PATH);
    upstream(&from(&p, "127.0.0.1:50001").send());
}
