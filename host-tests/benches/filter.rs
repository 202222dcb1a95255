//! Per-request cost of the built filters under wasmtime (criterion): the floor filter, the autoid
//! warm path (session cached, static groups), the cold path (a new session, so an RSA unwrap,
//! per request) and the warm path with a cached directory decision.
//!
//! Every autoid request needs a fresh proof (replay protection): proofs are made in criterion's
//! untimed setup (`iter_batched`), at the virtual clock's now, which never moves here.
//! Run: `make bench-host` (`cargo bench -p autoid-host-tests --bench filter`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use autoid_host_tests::{CalloutRequest, Cluster, Gateway};
use common::autoid::{AUTHORITY, Client, Fixture, PROOF, callout_subject, directory_reply};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;

const PATH: &str = "/v1/payments";

/// Room for every nonce of a run: the clock does not move, so none expires.
fn roomy(fx: Fixture) -> Fixture {
    fx.with(
        "/replay",
        json!({ "buckets": 1 << 20, "slots_per_bucket": 32 }),
    )
    .workers(1)
}

/// Sends one proven request and checks it went upstream (a denial would measure the wrong path).
fn send(gw: &Gateway, proof: &str) -> autoid_host_tests::Outcome {
    let out = gw
        .request("GET", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, proof)
        .send();
    assert!(out.is_upstream(), "{out:?}");
    out
}

fn floor(c: &mut Criterion) {
    let gw = common::floor().gateway().build().unwrap();
    c.bench_function("floor", |b| {
        b.iter(|| {
            let out = gw
                .request("GET", AUTHORITY, PATH)
                .route("payments")
                .header("x-floor-in", "a")
                .send();
            black_box(out)
        });
    });
}

fn warm(c: &mut Criterion) {
    let gw = roomy(Fixture::static_groups()).build();
    let mut alice = Client::open(&gw, "alice");
    send(&gw, &alice.proof(&gw, PATH));
    c.bench_function("autoid_warm_static", |b| {
        b.iter_batched(
            || alice.proof(&gw, PATH),
            |proof| black_box(send(&gw, &proof)),
            BatchSize::SmallInput,
        );
    });
}

fn cold(c: &mut Criterion) {
    let gw = roomy(Fixture::static_groups())
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 100_000, "burst": 100_000 }),
        )
        .build();
    let mut group = c.benchmark_group("cold");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("autoid_cold_new_session", |b| {
        b.iter_batched(
            || Client::open(&gw, "alice").proof(&gw, PATH),
            |proof| black_box(send(&gw, &proof)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn directory(c: &mut Criterion) {
    let agent = Cluster::Scripted(Arc::new(|req: &CalloutRequest| {
        directory_reply(&callout_subject(req), Some(&["payments"]))
    }));
    let gw = roomy(Fixture::directory(agent)).build();
    let mut alice = Client::open(&gw, "alice");
    send(&gw, &alice.proof(&gw, PATH));
    assert_eq!(gw.callouts().len(), 1);
    c.bench_function("autoid_warm_directory_cached", |b| {
        b.iter_batched(
            || alice.proof(&gw, PATH),
            |proof| black_box(send(&gw, &proof)),
            BatchSize::SmallInput,
        );
    });
    assert_eq!(gw.callouts().len(), 1, "every decision came from the cache");
}

criterion_group!(benches, floor, warm, cold, directory);
criterion_main!(benches);
