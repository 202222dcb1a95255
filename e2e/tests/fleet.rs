//! Replay protection across gateway replicas and restarts, through real Envoy (two replicas, each
//! with its own agent), Debian's redis-server and slapd: a proof is accepted once by the fleet,
//! in either order and when sent to both at once; a restarted Envoy still refuses a proof it
//! accepted (fleet: Redis remembers; alone: the restart fence); Redis down is 503 within the
//! timeout and recovers without a restart; the keys Redis holds are kept a skew window past their
//! proofs' expiry; proofs sent to both replicas in the last milliseconds of their validity pass at
//! most once. Claims
//! are batched per worker: many concurrent proofs all pass with one key each, a proof sent many
//! times at once passes once, and a client that leaves while its claim waits disturbs no other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use autoid_testkit::clock::{now_ms, wait_until};
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
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
        // Kept until timestamp + 2 × 60 s skew + 1: a skew window past the proof's expiry (so a
        // replica whose clock lags by up to the skew cannot accept it again), no longer. The
        // proofs were made moments ago: well past skew + 1 s left.
        assert!((90_000..=121_000).contains(&ttl), "{key}: PTTL {ttl} ms");
    }
}

/// A client of alice's with one session (warm at every replica once used), which makes proofs
/// for `GET <authority>/payments/charges` with the timestamp it is given.
struct EdgeClient {
    session: autoid_protocol::client::Session,
    file: autoid_protocol::entropy::EntropyFile,
    authority: String,
}

impl EdgeClient {
    fn new(stack: &Stack) -> EdgeClient {
        let pem = std::fs::read_to_string(stack.path("keys/gw-1.pub.pem")).unwrap();
        let public = autoid_protocol::keys::PublicKey::from_pem("gw-1", &pem).unwrap();
        let file = autoid_protocol::entropy::EntropyFile::from_bytes(
            &std::fs::read(stack.path("alice.entropy")).unwrap(),
        )
        .unwrap();
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        EdgeClient {
            session: autoid_protocol::client::Session::open(&public, now_ms() / 1000, &mut rng)
                .unwrap(),
            file,
            authority: stack.http.to_string(),
        }
    }

    /// A proof made at `timestamp` (Unix seconds).
    fn prove_at(&self, timestamp: u64) -> String {
        let request = autoid_protocol::Request {
            method: "GET",
            authority: &self.authority,
            path: PATH,
        };
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        self.session
            .prove(&self.file, &request, timestamp, None, &mut rng)
            .unwrap()
    }
}

/// The filter's default skew window (the stack's gateway sets none).
const SKEW_SECS: u64 = 60;

/// Proofs made to expire at a known instant `E` (timestamp `E − skew − 1`: the filter accepts
/// them while its clock reads before `E`), each sent to both replicas at once in the last
/// milliseconds of its life — and a few just after — so that copies verified before `E` have
/// their claims reach the agents around `E`. Every round: at most one 200 per proof, the others
/// 401. (The old claim, "already stale, nothing to record", let both replicas accept.)
#[test]
fn proofs_sent_to_both_replicas_at_the_end_of_their_window_pass_at_most_once() {
    let f = fleet();
    let front = f.one.http;
    let client = EdgeClient::new(&f.one);
    // The session warm at both replicas: what times the requests is then the warm path and the
    // claim, not an RSA unwrap.
    for to in [f.one.http, f.two.http] {
        let r = send(to, front, &client.prove_at(now_ms() / 1000));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // When each proof's copies go out, in ms relative to E: dense around the edge.
    let mut offsets: Vec<i64> = vec![-120, -60, -30];
    offsets.extend(-20..=6);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..6 {
        let edge_ms = (now_ms() / 1000 + 2) * 1000;
        let timestamp = edge_ms / 1000 - SKEW_SECS - 1;
        let proofs: Vec<String> = offsets.iter().map(|_| client.prove_at(timestamp)).collect();
        let statuses: Vec<[u16; 2]> = std::thread::scope(|s| {
            let sends: Vec<_> = proofs
                .iter()
                .zip(&offsets)
                .map(|(p, offset)| {
                    let at = edge_ms.checked_add_signed(*offset).unwrap();
                    [f.one.http, f.two.http].map(|to| {
                        s.spawn(move || {
                            wait_until(at);
                            send(to, front, p).status
                        })
                    })
                })
                .collect();
            sends
                .into_iter()
                .map(|pair| pair.map(|h| h.join().unwrap()))
                .collect()
        });
        for (offset, pair) in offsets.iter().zip(&statuses) {
            let passed = pair.iter().filter(|s| **s == 200).count();
            assert!(
                passed <= 1,
                "round {round}: a proof sent {offset} ms from its expiry passed at both replicas: {statuses:?}"
            );
            assert!(
                pair.iter().all(|s| matches!(s, 200 | 401)),
                "round {round}, {offset} ms: {pair:?}"
            );
            if passed == 1 {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    // The rounds straddled the edge: some proofs passed (once), some were too late.
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
    eprintln!(
        "{accepted} accepted once, {refused} refused; stale refusals: {} + {}",
        f.one.counter("autoid_denied_stale"),
        f.two.counter("autoid_denied_stale")
    );
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
    const WARM: usize = 16;
    // One session: the cold path's per-source budget would refuse 64 new sessions at once.
    let mut proofs = f.one.prove_many("alice", "GET", PATH, N + 2 * WARM);
    // The session and alice's stream come from the agent: warm them on every worker of both
    // replicas first, one request at a time (a worker all 16 miss: odds 2^-15), so that the
    // proofs sent at once meet the fleet claim only.
    for (i, p) in proofs.drain(..2 * WARM).enumerate() {
        let to = if i < WARM { f.one.http } else { f.two.http };
        assert_eq!(send(to, front, &p).status, 200);
    }
    let claims_before = f.one.counter("autoid_replay_fleet_claims");
    let batches_before = f.one.counter("autoid_replay_fleet_batches");
    let statuses = send_all_at_once(&[f.one.http], front, &proofs);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}",
        f.one.envoy_log()
    );
    assert_eq!(
        redis_keys(&f.redis),
        N + 2 * WARM,
        "one key per accepted proof"
    );
    let (claims, batches) = (
        f.one.counter("autoid_replay_fleet_claims") - claims_before,
        f.one.counter("autoid_replay_fleet_batches") - batches_before,
    );
    assert_eq!(claims, N as u64);
    assert!((1..=claims).contains(&batches), "{batches} batches");
    eprintln!("{claims} claims in {batches} batches");
    // Every proof again, at once: all refused.
    let statuses = send_all_at_once(&[f.one.http, f.two.http], front, &proofs);
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(redis_keys(&f.redis), N + 2 * WARM);
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
