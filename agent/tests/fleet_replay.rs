//! Fleet replay claims against a real Redis (Debian's `redis-server`, started here on a free
//! port): one claim per nonce across agents, keys that expire with the proof, a Redis that dies
//! answered `Unavailable` within the timeout, and recovery without restarting the agent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoid_agent::FleetReplay;
use autoid_agent::config::{RawReplay, ReplayConfig};
use autoid_agent::replay::Claim;
use autoid_testkit::redis::Redis;

/// A redis-server for this test, its log in a temporary directory.
fn start_redis(port: Option<u16>) -> (Redis, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("redis.log");
    let redis = match port {
        Some(port) => Redis::start_on(port, &log),
        None => Redis::start(&log),
    };
    (redis.unwrap(), dir)
}

/// The TTL Redis has for `key`.
fn ttl(redis: &Redis, key: &str) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("TTL").arg(key).query(&mut conn).unwrap()
}

fn store(url: &str, timeout_ms: u64) -> FleetReplay {
    let config = ReplayConfig::try_from(RawReplay {
        redis_url: url.to_owned(),
        password_file: None,
        key_prefix: Some("test".into()),
        timeout_ms: Some(timeout_ms),
    })
    .unwrap();
    FleetReplay::new(&config).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_nonce_is_claimed_once_across_agents_and_expires_with_its_proof() {
    let (redis, _dir) = start_redis(None);
    rt().block_on(async {
        let (one, two) = (
            Arc::new(store(&redis.url(), 500)),
            Arc::new(store(&redis.url(), 500)),
        );
        let t = now();
        assert_eq!(one.claim(&[1; 16], t + 61, t).await, Claim::Fresh);
        assert_eq!(
            two.claim(&[1; 16], t + 61, t).await,
            Claim::Replay,
            "another agent"
        );
        assert_eq!(
            one.claim(&[1; 16], t + 61, t).await,
            Claim::Replay,
            "the same agent"
        );
        assert_eq!(two.claim(&[2; 16], t + 61, t).await, Claim::Fresh);
        // Redis keeps the key for the proof's remaining validity, no longer.
        let ttl = ttl(&redis, &one.key(&[1; 16]));
        assert!((59..=61).contains(&ttl), "TTL {ttl}");
        // Concurrent claims of one nonce from two agents: exactly one wins.
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let s = if i % 2 == 0 { one.clone() } else { two.clone() };
                tokio::spawn(async move { s.claim(&[3; 16], t + 61, t).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        assert_eq!(
            outcomes.iter().filter(|c| **c == Claim::Fresh).count(),
            1,
            "{outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|c| matches!(c, Claim::Fresh | Claim::Replay))
        );
    });
}

#[test]
fn redis_down_is_unavailable_within_the_timeout_and_recovery_needs_no_restart() {
    let (redis, _dir) = start_redis(None);
    let port = redis.port;
    let rt = rt();
    let store = rt.block_on(async { store(&redis.url(), 200) });
    let t = now();
    assert_eq!(rt.block_on(store.claim(&[9; 16], t + 61, t)), Claim::Fresh);
    drop(redis);
    let started = Instant::now();
    assert_eq!(
        rt.block_on(store.claim(&[10; 16], t + 61, t)),
        Claim::Unavailable
    );
    // The claim is bounded by the timeout (200 ms), with room for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Redis back on the same address (empty: this test runs it without persistence): the same
    // store claims again without being rebuilt.
    let _back = start_redis(Some(port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rt.block_on(store.claim(&[11; 16], t + 61, now())) {
            Claim::Fresh => break,
            Claim::Unavailable if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("after Redis came back: {other:?}"),
        }
    }
    assert_eq!(
        rt.block_on(store.claim(&[11; 16], t + 61, now())),
        Claim::Replay
    );
}

#[test]
fn a_stale_proof_needs_no_claim_and_bad_settings_name_their_field() {
    // Nothing to record for a proof already past its expiry: no Redis round trip at all (none
    // listens on port 1).
    let claim = rt().block_on(async {
        let s = store("redis://127.0.0.1:1", 50);
        s.claim(&[1; 16], 100, 100).await
    });
    assert_eq!(claim, Claim::Fresh);
    for (url, field) in [
        ("rediss://127.0.0.1:6379", "replay.redis_url"),
        ("redis://:secret@127.0.0.1:6379", "replay.redis_url"),
        ("http://127.0.0.1:6379", "replay.redis_url"),
    ] {
        let e = ReplayConfig::try_from(RawReplay {
            redis_url: url.into(),
            password_file: None,
            key_prefix: None,
            timeout_ms: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(field), "{url}: {e}");
        assert!(!e.contains("secret"), "the password leaked: {e}");
    }
}

#[test]
fn a_batch_is_claimed_in_one_pipeline_with_a_verdict_per_claim_in_order() {
    let (redis, _dir) = start_redis(None);
    let rt = rt();
    let a = rt.block_on(async { store(&redis.url(), 500) });
    let now = now();
    let (x, y, z) = ([0x11; 16], [0x22; 16], [0x33; 16]);
    assert_eq!(
        rt.block_on(a.claim(&y, now + 61, now)),
        Claim::Fresh,
        "y is claimed before the batch"
    );
    // x twice in one batch: the first wins. A stale claim sends nothing and passes.
    let batch = [
        (x, now + 61),
        (y, now + 61),
        (x, now + 61),
        (z, now),
        (z, now + 30),
    ];
    let verdicts = rt.block_on(a.claim_batch(&batch, now)).unwrap();
    assert_eq!(
        verdicts,
        [
            Claim::Fresh,
            Claim::Replay,
            Claim::Replay,
            Claim::Fresh,
            Claim::Fresh
        ]
    );
    let z_ttl = ttl(&redis, &a.key(&z));
    assert!(
        (1..=30).contains(&z_ttl),
        "z's TTL is its own expiry: {z_ttl}"
    );
    // Redis gone: the whole batch is unknown, within the timeout.
    drop(redis);
    assert_eq!(
        rt.block_on(a.claim_batch(&[([0x44; 16], now + 61)], now)),
        None
    );
}
