//! Replay protection across gateway replicas and restarts, through real Envoy (two replicas, each
//! with its own agent), Debian's redis-server and slapd: a proof is accepted once by the fleet,
//! in either order and when sent to both at once; a restarted Envoy still refuses a proof it
//! accepted (fleet: Redis remembers; alone: the restart fence); Redis down is 503 within the
//! timeout and recovers without a restart; the keys Redis holds expire with their proofs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use autoid_testkit::http::request_as;
use autoid_testkit::redis::Redis;
use common::*;

const PATH: &str = "/payments/charges";

/// A Redis, a gateway in fleet mode on it, and its second replica.
struct Fleet {
    two: Replica,
    one: Stack,
    redis: Redis,
    dir: tempfile::TempDir,
}

fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis.log")).unwrap();
    let one = Stack::start(&Options {
        fleet_redis: Some(redis.url()),
        ..Options::default()
    });
    let two = one.add_replica(2);
    Fleet {
        two,
        one,
        redis,
        dir,
    }
}

/// A fresh proof for alice's `GET <authority>/payments/charges`.
fn proof(stack: &Stack, authority: SocketAddr) -> String {
    stack.prove("alice", "GET", &format!("http://{authority}{PATH}"))
}

/// Sends `proof` to `to`, as a request for `authority` (the address clients use: replicas sit
/// behind one name).
fn send(to: SocketAddr, authority: SocketAddr, proof: &str) -> Response {
    request_as(
        to,
        &authority.to_string(),
        "GET",
        PATH,
        &[(PROOF_HEADER, proof)],
    )
    .unwrap()
}

#[test]
fn a_proof_is_accepted_once_by_the_fleet_in_either_order_and_when_sent_to_both_at_once() {
    let f = fleet();
    let front = f.one.http;
    for (first, second) in [(f.one.http, f.two.http), (f.two.http, f.one.http)] {
        let p = proof(&f.one, front);
        let r = send(first, front, &p);
        assert_eq!(r.status, 200, "{}", r.text());
        let r = send(second, front, &p);
        assert_eq!(
            r.status,
            401,
            "the other replica refuses the replay: {}",
            r.text()
        );
        assert_eq!(r.json()["error"], "unauthorized");
    }
    for round in 0..6 {
        let p = proof(&f.one, front);
        let barrier = std::sync::Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let sends: Vec<_> = [f.one.http, f.two.http]
                .into_iter()
                .map(|to| {
                    let (p, barrier) = (&p, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        send(to, front, p).status
                    })
                })
                .collect();
            sends.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [200, 401], "round {round}: {statuses:?}");
    }
    assert!(f.one.counter("autoid_replay_fleet_claims") >= 4);
    assert!(f.two.counter("autoid_replay_fleet_claims") >= 4);
    assert!(
        f.one.counter("autoid_replays_rejected") + f.two.counter("autoid_replays_rejected") >= 8
    );
}

#[test]
fn a_restarted_replica_still_refuses_a_proof_the_fleet_accepted() {
    let mut f = fleet();
    let front = f.one.http;
    let p = proof(&f.one, front);
    assert_eq!(send(f.one.http, front, &p).status, 200);
    f.one.restart_envoy();
    // A new process: an empty local table, and no fence in fleet mode. Redis remembers.
    let r = send(f.one.http, front, &p);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(f.one.counter("autoid_replays_rejected"), 1);
    assert_eq!(f.one.counter("autoid_denied_restart_fence"), 0);
    // Fresh proofs pass at once: fleet mode needs no fence.
    let r = send(f.one.http, front, &proof(&f.one, front));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn redis_down_is_503_within_the_timeout_and_the_fleet_recovers_without_a_restart() {
    let mut f = fleet();
    let front = f.one.http;
    assert_eq!(send(f.one.http, front, &proof(&f.one, front)).status, 200);
    let port = f.redis.port;
    f.redis.proc.stop();
    let started = Instant::now();
    let r = send(f.one.http, front, &proof(&f.one, front));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "unavailable");
    // The agent's Redis timeout is 200 ms and the filter's callout 500 ms: well under 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(f.one.counter("autoid_denied_replay_fleet") >= 1);
    assert!(f.one.counter("autoid_replay_fleet_failures") >= 1);
    // Redis back on the same address: the agents reconnect by themselves.
    f.redis = Redis::start_on(port, &f.dir.path().join("redis-2.log")).unwrap();
    let status = eventually(
        "a fresh proof accepted again",
        Duration::from_secs(15),
        || {
            let s = send(f.two.http, front, &proof(&f.one, front)).status;
            (s == 200).then_some(s)
        },
    );
    assert_eq!(status, 200);
}

#[test]
fn the_keys_the_fleet_holds_expire_with_their_proofs() {
    let f = fleet();
    let front = f.one.http;
    for i in 0..20 {
        let to = if i % 2 == 0 { f.one.http } else { f.two.http };
        assert_eq!(send(to, front, &proof(&f.one, front)).status, 200);
    }
    let client = redis::Client::open(f.redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("autoid:n:*")
        .query(&mut conn)
        .unwrap();
    assert_eq!(keys.len(), 20, "one key per accepted proof");
    for key in keys {
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
        // The proof's remaining validity: at most timestamp + 60 s skew + 1 from now.
        assert!((1..=61).contains(&ttl), "{key}: TTL {ttl}");
    }
}

#[test]
fn a_single_gateway_refuses_after_a_restart_the_proofs_made_before_it() {
    let mut one = Stack::start(&Options::default());
    let front = one.http;
    let p = proof(&one, front);
    assert_eq!(send(one.http, front, &p).status, 200);
    one.restart_envoy();
    // A new process: the replay table is gone, the restart fence refuses what came before.
    let r = send(one.http, front, &p);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"], "unauthorized");
    assert_eq!(one.counter("autoid_denied_restart_fence"), 1);
    // Proofs made after the new process's first second pass.
    eventually("a fresh proof accepted", Duration::from_secs(5), || {
        (send(one.http, front, &proof(&one, front)).status == 200).then_some(())
    });
    let r = send(one.http, front, &p);
    assert_eq!(r.status, 401, "the old proof stays refused");
}
