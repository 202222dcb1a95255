//! Fleet replay claims against a real Redis (Debian's `redis-server`, started here on a free
//! port): one claim per nonce across agents, keys kept a skew window past the proof's expiry to
//! the millisecond, claims at the window's edge won by exactly one agent or refused stale (never
//! won unrecorded), agents whose clocks disagree (modelled with explicit `now` values: Redis's
//! clock is real), a Redis that dies answered `Unavailable` within the timeout, and recovery
//! without restarting the agent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoid_agent::FleetReplay;
use autoid_agent::config::{RawReplay, ReplayConfig};
use autoid_agent::replay::{Claim, Lifetime};
use autoid_testkit::clock::{now_ms, wait_until};
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

/// The time to live Redis has for `key`, in milliseconds (-2: no such key).
fn pttl(redis: &Redis, key: &str) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("PTTL").arg(key).query(&mut conn).unwrap()
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

/// A proof made at `t` with a 60 s skew, as the filter claims it: stale from `t + 61`, kept
/// until `t + 121`.
fn life(t: u64) -> Lifetime {
    Lifetime::new(t + 61, Some(t + 121))
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
        let ms = now_ms();
        let t = ms / 1000;
        assert_eq!(one.claim(&[1; 16], life(t), ms).await, Claim::Fresh);
        assert_eq!(
            two.claim(&[1; 16], life(t), ms).await,
            Claim::Replay,
            "another agent"
        );
        assert_eq!(
            one.claim(&[1; 16], life(t), ms).await,
            Claim::Replay,
            "the same agent"
        );
        assert_eq!(two.claim(&[2; 16], life(t), ms).await, Claim::Fresh);
        // Redis keeps the key until keep_until to the millisecond: a skew window past the
        // proof's expiry, no longer.
        let left = pttl(&redis, &one.key(&[1; 16]));
        let want = i64::try_from((t + 121) * 1000 - ms).unwrap();
        assert!(
            (want - 2_000..=want).contains(&left),
            "PTTL {left}, want {want}"
        );
        // Concurrent claims of one nonce from two agents: exactly one wins.
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let s = if i % 2 == 0 { one.clone() } else { two.clone() };
                tokio::spawn(async move { s.claim(&[3; 16], life(t), ms).await })
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
    let t = now_ms() / 1000;
    assert_eq!(
        rt.block_on(store.claim(&[9; 16], life(t), now_ms())),
        Claim::Fresh
    );
    drop(redis);
    let started = Instant::now();
    assert_eq!(
        rt.block_on(store.claim(&[10; 16], life(t), now_ms())),
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
        match rt.block_on(store.claim(&[11; 16], life(t), now_ms())) {
            Claim::Fresh => break,
            Claim::Unavailable if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("after Redis came back: {other:?}"),
        }
    }
    assert_eq!(
        rt.block_on(store.claim(&[11; 16], life(t), now_ms())),
        Claim::Replay
    );
}

#[test]
fn a_stale_proof_is_refused_without_a_round_trip_and_bad_settings_name_their_field() {
    // A proof already past its expiry is refused, not won: no Redis round trip at all (none
    // listens on port 1, which would answer Unavailable).
    let claims = rt().block_on(async {
        let s = store("redis://127.0.0.1:1", 50);
        let life = Lifetime::new(100, Some(160));
        (
            s.claim(&[1; 16], life, 100_000).await,
            s.claim(&[1; 16], life, 100_001).await,
            s.claim_batch(&[([1; 16], life), ([2; 16], life)], 100_000)
                .await,
        )
    });
    assert_eq!(
        claims,
        (
            Claim::Stale,
            Claim::Stale,
            Some(vec![Claim::Stale, Claim::Stale])
        )
    );
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
    let ms = now_ms();
    let t = ms / 1000;
    let (x, y, z, w) = ([0x11; 16], [0x22; 16], [0x33; 16], [0x55; 16]);
    assert_eq!(
        rt.block_on(a.claim(&y, life(t), ms)),
        Claim::Fresh,
        "y is claimed before the batch"
    );
    // x twice in one batch: the first wins. A stale claim sends nothing and is refused; w,
    // from a filter without keep_until, is kept until its expiry.
    let short = Lifetime::new(t + 30, None);
    let batch = [
        (x, life(t)),
        (y, life(t)),
        (x, life(t)),
        (z, Lifetime::new(t, Some(t + 60))),
        (w, short),
    ];
    let verdicts = rt.block_on(a.claim_batch(&batch, ms)).unwrap();
    assert_eq!(
        verdicts,
        [
            Claim::Fresh,
            Claim::Replay,
            Claim::Replay,
            Claim::Stale,
            Claim::Fresh
        ]
    );
    assert_eq!(pttl(&redis, &a.key(&z)), -2, "nothing recorded for z");
    let w_left = pttl(&redis, &a.key(&w));
    let w_want = i64::try_from((t + 30) * 1000 - ms).unwrap();
    assert!(
        (w_want - 2_000..=w_want).contains(&w_left),
        "w's TTL is its own: {w_left}, want {w_want}"
    );
    // Redis gone: the whole batch is unknown, within the timeout.
    drop(redis);
    assert_eq!(
        rt.block_on(a.claim_batch(&[([0x44; 16], life(t))], now_ms())),
        None
    );
}

/// Two agents claim each of many nonces at once at the proof's edge: in its last millisecond
/// exactly one wins, and that one recorded it; from its expiry on both are refused stale and
/// nothing is recorded (the old rule reported both as won, with nothing recorded).
#[test]
fn at_the_window_edge_one_agent_wins_each_nonce_or_both_are_refused_stale() {
    let (redis, _dir) = start_redis(None);
    let rt = rt();
    let (one, two) = rt.block_on(async {
        (
            Arc::new(store(&redis.url(), 1_000)),
            Arc::new(store(&redis.url(), 1_000)),
        )
    });
    let t = now_ms() / 1000;
    let life = life(t);
    let edge = life.expires_at * 1000;
    let cases = [(edge - 1, 1), (edge, 0), (edge + 1, 0), (edge + 999, 0)];
    for (case, (at, winners)) in (0u8..).zip(cases) {
        let nonce_of = |n: u8| {
            let mut nonce = [0xed; 16];
            nonce[..2].copy_from_slice(&[case, n]);
            nonce
        };
        let outcomes: Vec<(u8, Claim, Claim)> = rt.block_on(async {
            let mut tasks = Vec::new();
            for n in 0..64u8 {
                let nonce = nonce_of(n);
                let (a, b) = (one.clone(), two.clone());
                let first = tokio::spawn(async move { a.claim(&nonce, life, at).await });
                let second = tokio::spawn(async move { b.claim(&nonce, life, at).await });
                tasks.push((n, first, second));
            }
            let mut outcomes = Vec::new();
            for (n, first, second) in tasks {
                outcomes.push((n, first.await.unwrap(), second.await.unwrap()));
            }
            outcomes
        });
        for (n, first, second) in outcomes {
            let won = [first, second]
                .iter()
                .filter(|c| **c == Claim::Fresh)
                .count();
            assert_eq!(won, winners, "nonce {n} at {at}: {first:?} {second:?}");
            let left = pttl(&redis, &one.key(&nonce_of(n)));
            if winners == 1 {
                assert!(
                    [first, second].contains(&Claim::Replay),
                    "nonce {n}: {first:?} {second:?}"
                );
                assert!(left > 0, "the winner recorded nonce {n}: PTTL {left}");
            } else {
                assert_eq!((first, second), (Claim::Stale, Claim::Stale), "nonce {n}");
                assert_eq!(left, -2, "nothing recorded for nonce {n}");
            }
        }
    }
}

/// Less than a second of life left: the key is kept to `keep_until` at millisecond precision,
/// neither dropped at once (whole seconds rounded down to 0) nor cut to a whole second counted
/// from the claim.
#[test]
fn less_than_a_second_left_is_kept_to_the_millisecond() {
    let (redis, _dir) = start_redis(None);
    let rt = rt();
    let a = rt.block_on(async { store(&redis.url(), 1_000) });
    // Claimed 600, 900 and 999 ms before the end, on a clock of the test's choosing.
    for (i, before) in [600u64, 900, 999].into_iter().enumerate() {
        let nonce = [0x70 + u8::try_from(i).unwrap(); 16];
        // A lifetime that ends 3 s from the real now, whole seconds as on the wire.
        let end = now_ms() / 1000 + 3;
        let life = Lifetime::new(end, Some(end));
        assert_eq!(
            rt.block_on(a.claim(&nonce, life, end * 1000 - before)),
            Claim::Fresh
        );
        let left = pttl(&redis, &a.key(&nonce));
        let want = i64::try_from(before).unwrap();
        assert!(
            (1..=want).contains(&left) && left >= want - 500,
            "{before} ms before the end: PTTL {left}"
        );
    }
}

/// Clock skew between replicas, modelled with explicit `now` values (Redis's clock is real):
/// agent A's clock runs 300 ms ahead of real time, B's 300 ms behind. A claims a proof (skew
/// ±1 s) early in A's second; B, which accepts the proof until 600 ms of real time after A
/// stops, claims it in B's last accepting moment: a replay, because A kept the nonce a skew
/// window past the expiry on A's clock. Kept only until the expiry on A's clock, Redis would
/// have forgotten it by then and B would have won it too.
#[test]
fn a_replica_whose_clock_lags_the_claimers_still_finds_the_claim() {
    const AHEAD: u64 = 300;
    const BEHIND: u64 = 300;
    const SKEW: u64 = 1;
    let (redis, _dir) = start_redis(None);
    let rt = rt();
    let (a, b) = rt.block_on(async { (store(&redis.url(), 1_000), store(&redis.url(), 1_000)) });
    // Start early in a second of A's clock.
    let start = (now_ms() + AHEAD) / 1000 * 1000 + 1000 - AHEAD;
    wait_until(start);
    let a_now = now_ms() + AHEAD;
    // The proof's last second on A's clock is the one A is in: made SKEW + 1 s before its end.
    let expires_at = a_now / 1000 + 1;
    let timestamp = expires_at - SKEW - 1;
    let life = Lifetime::new(expires_at, Some(timestamp + 2 * SKEW + 1));
    assert_eq!(rt.block_on(a.claim(&[0x5a; 16], life, a_now)), Claim::Fresh);
    // B's clock reads 10 ms before the expiry: B still accepts the proof.
    let b_last = expires_at * 1000 - 10;
    wait_until(b_last + BEHIND);
    assert_eq!(
        rt.block_on(b.claim(&[0x5a; 16], life, b_last)),
        Claim::Replay,
        "B, {} ms after A's claim",
        b_last + BEHIND - (a_now - AHEAD)
    );
    assert!(pttl(&redis, &a.key(&[0x5a; 16])) > 0);
}
