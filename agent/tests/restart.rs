//! The directory restarts under the agent: requests during the outage get 503 quickly, and the
//! agent reconnects by itself once the directory is back.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Slapd, TestAgent, config, eventually, groups_of};
use serde_json::json;

fn restart_case(tls: bool) {
    // Its own slapd: stopping the shared one would break the other tests.
    let slapd = Slapd::start_temp().unwrap();
    let mut c = config(&slapd);
    if tls {
        c["ldap"]["starttls"] = json!(true);
        c["ldap"]["ca_file"] = json!(slapd.ca_file);
    }
    let b = TestAgent::start(c);
    let (status, body) = b.groups("alice");
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.authenticate("bob", "bob-pass").1["authenticated"], true);

    slapd.stop().unwrap();
    assert!(!slapd.is_running());
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            b.groups("alice"),
            (503, json!({"error": "directory_unavailable"}))
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "503 took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(b.authenticate("bob", "bob-pass").0, 503);
    assert_eq!(b.get_with("/readyz", None).0, 503);
    assert_eq!(b.get_with("/healthz", None).0, 200);

    slapd.restart().unwrap();
    eventually(
        "the bridge to recover after the directory came back",
        Duration::from_secs(15),
        || (b.groups("alice").0 == 200).then_some(()),
    );
    let (_, body) = b.groups("alice");
    assert_eq!(groups_of(&body), ["payments", "reports"]);
    assert_eq!(b.authenticate("bob", "bob-pass").1["authenticated"], true);
    assert_eq!(b.get_with("/readyz", None).0, 200);
}

#[test]
fn directory_restart_plain() {
    restart_case(false);
}

#[test]
fn directory_restart_starttls() {
    restart_case(true);
}

#[test]
fn restart_without_outage_requests_recovers_on_first_try() {
    // Connections that died while nobody was asking are replaced transparently: the first request
    // after the restart succeeds (a reused dead handle is retried once on a fresh one).
    let slapd = Slapd::start_temp().unwrap();
    let b = TestAgent::start(config(&slapd));
    assert_eq!(b.groups("alice").0, 200);
    assert_eq!(b.authenticate("bob", "bob-pass").1["authenticated"], true);
    slapd.stop().unwrap();
    slapd.restart().unwrap();
    assert_eq!(b.groups("alice").0, 200);
    assert_eq!(b.authenticate("bob", "bob-pass").1["authenticated"], true);
}
