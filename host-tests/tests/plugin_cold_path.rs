//! The cold-path limit: new sessions (RSA unwraps) are rate limited per worker, established
//! sessions are not, and the bucket refills with the virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::autoid::{Client, Fixture, expect_denied, metric, upstream};
use serde_json::json;

const PATH: &str = "/v1/payments";

#[test]
fn the_third_new_session_in_a_row_is_rate_limited_but_warm_sessions_pass() {
    let gw = Fixture::static_groups()
        .with("/cold_path", json!({ "unwraps_per_second": 1, "burst": 2 }))
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
        .with("/cold_path", json!({ "unwraps_per_second": 1, "burst": 2 }))
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
