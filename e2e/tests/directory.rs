//! The directory behind the gateway changes: a group membership removed in LDAP, the agent
//! killed and restarted. Each test has its own stack (it changes it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Options, PROOF_HEADER, Stack, eventually, request};

#[test]
fn a_group_removed_in_ldap_takes_effect_after_the_ttl() {
    let s = Stack::start(&Options {
        positive_ttl_secs: 2,
        negative_ttl_secs: 2,
        ..Options::default()
    });
    assert_eq!(s.get_as("alice", "/payments/before", &[]).status, 200);
    s.slapd.modify(
        "dn: cn=payments,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: memberUid\nmemberUid: alice\n",
    )
    .unwrap();
    let changed = Instant::now();
    eventually("alice to lose payments", Duration::from_secs(20), || {
        let r = s.get_as("alice", "/payments/after", &[]);
        assert!(matches!(r.status, 200 | 403), "status {}", r.status);
        (r.status == 403).then_some(())
    });
    // Within the TTL plus polling and callout time, not at once and not much later.
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // bob, still in payments, is unaffected.
    assert_eq!(s.get_as("bob", "/payments/still", &[]).status, 200);
}

#[test]
fn the_bridge_down_is_503_and_recovers_when_it_returns() {
    let mut s = Stack::start(&Options::default());
    // alice keeps one session: the agent also holds the keys and epochs, so a new session (or her
    // stream on a worker that has not kept it) needs it too. Warm both workers (a worker all 16
    // requests miss: odds 2^-15).
    let mut alice = s.prove_many("alice", "GET", "/payments/up", 17);
    let last = alice.pop().unwrap();
    for proof in &alice {
        let r = request(s.http, "GET", "/payments/up", &[(PROOF_HEADER, proof)]).unwrap();
        assert_eq!(r.status, 200);
    }
    s.kill_agent();
    // bob's new session and groups are not cached: the agent is down, and that is 503.
    let down = s.get_as("bob", "/payments/down", &[]);
    assert_eq!(down.status, 503, "{}", String::from_utf8_lossy(&down.body));
    assert_eq!(down.json()["error"], "unavailable");
    // alice's cached session, stream and decision still answer within their TTLs.
    let r = request(s.http, "GET", "/payments/up", &[(PROOF_HEADER, &last)]).unwrap();
    assert_eq!(r.status, 200);
    // bob's new session needed the agent first (it holds the key): that callout failed.
    assert!(s.counter("autoid_agent_session_failures") >= 1);

    s.restart_agent();
    eventually("bob allowed again", Duration::from_secs(20), || {
        (s.get_as("bob", "/payments/back", &[]).status == 200).then_some(())
    });
}
