//! Hot subjects' entropy files kept in a worker's memory (`entropy_cache`): only subjects whose
//! proofs verified are materialized, on the tick, per worker and bounded; proofs keep verifying
//! (and failing) exactly as they did from the stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_host_tests::Gateway;
use autoid_protocol::entropy::EntropyFile;
use common::autoid::{Client, EPOCH, Fixture, epoch, expect_denied, metric, now, upstream};
use serde_json::json;

const PATH: &str = "/v1/payments";

fn fixture(files: u32) -> Fixture {
    Fixture::static_groups()
        .with(
            "/entropy_cache",
            json!({ "files": files, "min_proofs_per_second": 3 }),
        )
        .workers(2)
}

fn kept_lines(gw: &Gateway) -> Vec<String> {
    gw.logs()
        .into_iter()
        .filter(|l| l.message.starts_with("autoid: kept the entropy file"))
        .map(|l| format!("worker {}: {}", l.worker, l.message))
        .collect()
}

/// A client of `subject` holding another subject's bytes: its digests never match.
fn thief(gw: &Gateway, subject: &str, bytes_of: &str) -> Client {
    let data = epoch().issue(bytes_of).unwrap().data().to_vec();
    Client::with_file(EntropyFile::new(EPOCH, subject, 64, data), now(gw))
}

#[test]
fn a_busy_subject_is_materialized_on_the_tick_and_keeps_verifying() {
    let gw = fixture(2).build();
    let mut alice = Client::open(&gw, "alice");
    for _ in 0..3 {
        upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    }
    assert_eq!(
        gw.metric("autoid_entropy_files_kept"),
        Some(0),
        "not before a tick"
    );
    // The tick: worker 0 keeps alice's file, worker 1 (no proofs) nothing.
    gw.tick();
    assert_eq!(metric(&gw, "autoid_entropy_files_kept"), 1);
    let lines = kept_lines(&gw);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("worker 0: ")
            && lines[0].contains("subject \"alice\"")
            && lines[0].contains("65536 bytes"),
        "{lines:?}"
    );
    // From the file: alice's proofs still verify, a proof over the wrong bytes still fails.
    for _ in 0..5 {
        upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    }
    let mut mallory = thief(&gw, "alice", "bob");
    let request = mallory.get(&gw, "payments", PATH).worker(0);
    expect_denied(&gw, request, 401, "entropy");
    assert_eq!(metric(&gw, "autoid_requests_allowed"), 8);
}

#[test]
fn proofs_that_fail_never_make_a_subject_hot() {
    let gw = fixture(2).build();
    let mut mallory = thief(&gw, "carol", "alice");
    for _ in 0..10 {
        let request = mallory.get(&gw, "payments", PATH).worker(0);
        expect_denied(&gw, request, 401, "entropy");
    }
    gw.tick();
    assert_eq!(metric(&gw, "autoid_entropy_files_kept"), 0);
    assert!(kept_lines(&gw).is_empty());
}

#[test]
fn files_are_bounded_per_worker_and_zero_turns_them_off() {
    let gw = fixture(1).build();
    let mut alice = Client::open(&gw, "alice");
    let mut carol = Client::open(&gw, "carol");
    for _ in 0..3 {
        upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    }
    gw.tick();
    // carol is busier than alice in the next window: she takes the one place.
    for _ in 0..4 {
        upstream(&carol.get(&gw, "payments", PATH).worker(0).send());
    }
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    gw.tick();
    assert_eq!(metric(&gw, "autoid_entropy_files_kept"), 2);
    let lines = kept_lines(&gw);
    assert!(
        lines[1].contains("subject \"carol\"") && lines[1].contains("dropped \"alice\"'s"),
        "{lines:?}"
    );
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    upstream(&carol.get(&gw, "payments", PATH).worker(0).send());

    let off = fixture(0).build();
    let mut alice = Client::open(&off, "alice");
    for _ in 0..10 {
        upstream(&alice.get(&off, "payments", PATH).worker(0).send());
    }
    off.tick();
    assert_eq!(metric(&off, "autoid_entropy_files_kept"), 0);
}

#[test]
fn a_cache_larger_than_the_per_worker_cap_is_a_config_error() {
    let Err(err) = Fixture::static_groups()
        .with("/entropy_cache/files", json!(5000))
        .try_build()
    else {
        panic!("5000 files of 64 KiB must be rejected");
    };
    let text = format!("{err}: {err:?}");
    assert!(text.contains("entropy_cache.files"), "{text}");
}
