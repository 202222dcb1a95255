//! Replay protection across gateway replicas and restarts, through real Envoy (two replicas, each
//! with its own agent), Debian's redis-server and slapd: a proof is accepted once by the fleet,
//! in either order and when sent to both at once; a restarted Envoy still refuses a proof it
//! accepted (fleet: Redis remembers; alone: the restart fence); Redis down is 503 within the
//! timeout and recovers without a restart; the keys Redis holds expire with their proofs. Claims
//! are batched per worker: many concurrent proofs all pass with one key each, a proof sent many
//! times at once passes once, and a client that leaves while its claim waits disturbs no other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
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

/// How many nonce keys Redis holds.
fn redis_keys(redis: &Redis) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("autoid:n:*")
        .query(&mut conn)
        .unwrap();
    keys.len()
}

/// Sends every proof to `to` at once (one thread each, released together): the statuses.
fn send_all_at_once(to: &[SocketAddr], authority: SocketAddr, proofs: &[String]) -> Vec<u16> {
    let barrier = std::sync::Barrier::new(proofs.len());
    std::thread::scope(|s| {
        let sends: Vec<_> = proofs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (barrier, to) = (&barrier, to[i % to.len()]);
                s.spawn(move || {
                    barrier.wait();
                    send(to, authority, p).status
                })
            })
            .collect();
        sends.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn many_concurrent_proofs_to_one_gateway_all_pass_and_redis_holds_one_key_each() {
    let f = fleet();
    let front = f.one.http;
    const N: usize = 64;
    // One session: the cold path's per-source budget would refuse 64 new sessions at once.
    let proofs = f.one.prove_many("alice", "GET", PATH, N);
    let statuses = send_all_at_once(&[f.one.http], front, &proofs);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}",
        f.one.envoy_log()
    );
    assert_eq!(redis_keys(&f.redis), N, "one key per accepted proof");
    let (claims, batches) = (
        f.one.counter("autoid_replay_fleet_claims"),
        f.one.counter("autoid_replay_fleet_batches"),
    );
    assert_eq!(claims, N as u64);
    assert!((1..=claims).contains(&batches), "{batches} batches");
    eprintln!("{claims} claims in {batches} batches");
    // Every proof again, at once: all refused.
    let statuses = send_all_at_once(&[f.one.http, f.two.http], front, &proofs);
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(redis_keys(&f.redis), N);
}

#[test]
fn one_proof_sent_many_times_at_once_to_both_replicas_passes_exactly_once() {
    let f = fleet();
    let front = f.one.http;
    for round in 0..3 {
        let p = proof(&f.one, front);
        let proofs = vec![p; 16];
        let mut statuses = send_all_at_once(&[f.one.http, f.two.http], front, &proofs);
        statuses.sort_unstable();
        assert_eq!(statuses[0], 200, "round {round}: {statuses:?}");
        assert!(
            statuses[1..].iter().all(|s| *s == 401),
            "round {round}: {statuses:?}"
        );
    }
    assert_eq!(redis_keys(&f.redis), 3);
}

#[test]
fn a_client_that_leaves_while_its_claim_waits_disturbs_no_other_request() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&dir.path().join("redis.log")).unwrap();
    // Timeouts far longer than the test needs: Redis is held, not failing.
    let one = Stack::start(&Options {
        fleet_redis: Some(redis.url()),
        fleet_timeouts_ms: (8_000, 10_000),
        ..Options::default()
    });
    let front = one.http;
    assert_eq!(send(one.http, front, &proof(&one, front)).status, 200);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let claims = one.counter("autoid_replay_fleet_claims");
    let claimed = |n: u64| {
        eventually(
            &format!("{n} fleet claims"),
            Duration::from_secs(10),
            || (one.counter("autoid_replay_fleet_claims") >= claims + n).then_some(()),
        );
    };
    let left = "http.autoid_http.downstream_cx_destroy_remote_active_rq";
    let left_before = one.stat(left);
    let (pa, pb, pc, pd) = (
        proof(&one, front),
        proof(&one, front),
        proof(&one, front),
        proof(&one, front),
    );
    // Redis holds every write until told: claims wait, in flight or queued behind one.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(9_000)
        .arg("WRITE")
        .query(&mut conn)
        .unwrap();
    let statuses = std::thread::scope(|s| {
        let a = s.spawn(|| send(one.http, front, &pa));
        claimed(1);
        // B sends its request and leaves once its claim waits.
        let mut b = TcpStream::connect(one.http).unwrap();
        write!(
            b,
            "GET {PATH} HTTP/1.1\r\nhost: {front}\r\n{PROOF_HEADER}: {pb}\r\n\r\n"
        )
        .unwrap();
        claimed(2);
        drop(b);
        eventually("Envoy saw B leave", Duration::from_secs(10), || {
            (one.stat(left) > left_before).then_some(())
        });
        let c = s.spawn(|| send(one.http, front, &pc));
        let d = s.spawn(|| send(one.http, front, &pd));
        claimed(4);
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query(&mut conn)
            .unwrap();
        [a, c, d].map(|h| h.join().unwrap())
    });
    for r in &statuses {
        assert_eq!(r.status, 200, "{}\n{}", r.text(), one.envoy_log());
    }
    // A, C, D and the first request; B's too if its batch left before B did.
    let keys = redis_keys(&redis);
    assert!((4..=5).contains(&keys), "{keys} keys");
    // The workers still serve.
    assert_eq!(send(one.http, front, &proof(&one, front)).status, 200);
    assert_eq!(one.counter("autoid_replay_fleet_failures"), 0);
    assert!(!one.envoy_log().contains("panicked"), "{}", one.envoy_log());
}
