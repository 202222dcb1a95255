//! Bounds under a flood, through the built filter: the replay, session and decision tables keep
//! to their configured caps in shared data (keys and bytes under `autoid.replay.`,
//! `autoid.session.` and `autoid.dir.`) whatever the number of unique nonces, sessions or
//! subjects; and a flood of junk wrapped keys is held to the cold-path token bucket while an
//! established session keeps passing on the same worker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use autoid_host_tests::{Cluster, Gateway, Outcome};
use autoid_protocol::Request;
use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::header::{Proof, Version};
use common::autoid::*;
use rsa::rand_core::TryRng;
use serde_json::{Value, json};

/// Bytes of one replay entry (a nonce's 8-byte fingerprint), and of a replay key's header (its
/// generation, `u64be`).
const REPLAY_ENTRY: usize = 8;
const REPLAY_HEADER: usize = 8;
/// Generations in the replay table's ring (filter/src/replay.rs).
const REPLAY_GENERATIONS: usize = 16;
/// Bytes of one session slot (`session_id[32] || key[32] || u64be(issued_at) || u64be(expires)
/// || lp8(kid)`), for this fixture's key id.
const SESSION_VALUE: usize = 80 + 1 + common::autoid::KID.len();
/// Bytes of a decision slot before its groups (`hash[32] || u64be || u8 || u16be count`).
const DECISION_HEAD: usize = 43;
/// The one group the agent gives every subject.
const GROUP: &str = "payments";

/// An agent that knows every subject, in [`GROUP`].
fn agent() -> Cluster {
    Cluster::Scripted(Arc::new(|req| {
        directory_reply(&callout_subject(req), Some(&[GROUP]))
    }))
}

/// The directory fixture with the given table sizes, and a cold path that never gets in the way.
fn fixture(buckets: u32, slots: u32, sessions: u32, local: u32, decisions: u32) -> Fixture {
    Fixture::directory(agent())
        .with(
            "/replay",
            json!({ "buckets": buckets, "slots_per_bucket": slots }),
        )
        .with(
            "/session_cache",
            json!({ "max_entries": sessions, "local_max_entries": local }),
        )
        .with("/directory/max_entries", json!(decisions))
        // The agent's sessions are kept for their lifetime, not re-asked within the flood.
        .with("/agent/session_ttl_secs", json!(86_400))
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 100_000, "burst": 100_000 }),
        )
}

fn cap(config: &Value, path: &str) -> usize {
    config.pointer(path).unwrap().as_u64().unwrap() as usize
}

/// Keys, and bytes (key plus value), stored under `prefix`.
fn usage(gw: &Gateway, prefix: &str) -> (usize, usize) {
    let data = gw.shared_data();
    data.keys()
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .fold((0, 0), |(keys, bytes), k| {
            let (value, _) = data.get(&k).unwrap();
            (keys + 1, bytes + k.len() + value.len())
        })
}

/// Every table within the caps `config` gives it; `groups_bytes` is the largest group list a
/// decision may hold. Also checks that no key outside the three tables, the salt and the restart
/// fence appeared.
fn assert_bounded(gw: &Gateway, config: &Value, groups_bytes: usize) {
    let key_len = |prefix: &str, n: usize| prefix.len() + (n.max(1) - 1).to_string().len();

    let buckets = cap(config, "/replay/buckets");
    let slots = cap(config, "/replay/slots_per_bucket");
    let (keys, bytes) = usage(gw, "autoid.replay.");
    let ring = REPLAY_GENERATIONS * buckets;
    assert!(keys <= ring, "replay keys {keys} > {ring}");
    let limit =
        ring * (key_len("autoid.replay.15.", buckets) + REPLAY_HEADER + slots * REPLAY_ENTRY);
    assert!(bytes <= limit, "replay bytes {bytes} > {limit}");

    let sessions = cap(config, "/session_cache/max_entries");
    let (keys, bytes) = usage(gw, "autoid.session.");
    assert!(keys <= sessions, "session keys {keys} > {sessions}");
    let limit = sessions * (key_len("autoid.session.", sessions) + SESSION_VALUE);
    assert!(bytes <= limit, "session bytes {bytes} > {limit}");

    let decisions = cap(config, "/directory/max_entries");
    let (keys, bytes) = usage(gw, "autoid.dir.");
    assert!(keys <= decisions, "decision keys {keys} > {decisions}");
    let limit = decisions * (key_len("autoid.dir.", decisions) + DECISION_HEAD + groups_bytes);
    assert!(bytes <= limit, "decision bytes {bytes} > {limit}");

    let strays: Vec<String> = gw
        .shared_data()
        .keys()
        .into_iter()
        .filter(|k| {
            !["autoid.replay.", "autoid.session.", "autoid.dir."]
                .iter()
                .any(|p| k.starts_with(p))
                && k != "autoid.replay-salt"
                && k != "autoid.replay-fence"
        })
        .collect();
    assert!(strays.is_empty(), "keys outside the tables: {strays:?}");
}

/// One session, proving for any subject's file (the fixtures' `Client` ties a file to a session).
struct Caller {
    session: Session,
    rng: TestRng,
}

impl Caller {
    fn open(gw: &Gateway) -> Caller {
        let mut rng = TestRng::unique("bounds");
        let session = Session::open(&gateway_key().public(), now(gw), &mut rng).unwrap();
        Caller { session, rng }
    }

    fn send(&mut self, gw: &Gateway, file: &EntropyFile, worker: usize) -> Outcome {
        let path = "/v1/payments";
        let request = Request {
            method: "GET",
            authority: AUTHORITY,
            path,
        };
        // v3: the agent unwraps these sessions in its main lane (a flood of v1/v2 sessions
        // would meet its small lane's rate, as it should).
        let proof = self
            .session
            .prove_in(
                Version::V3,
                Form::Full,
                file,
                &request,
                now(gw),
                None,
                &mut self.rng,
            )
            .unwrap();
        gw.request("GET", AUTHORITY, path)
            .route("payments")
            .header(PROOF, &proof)
            .worker(worker)
            .send()
    }
}

#[test]
fn a_flood_of_unique_nonces_keeps_the_replay_table_to_its_cap() {
    let fx = fixture(16, 4, 8, 4, 8);
    let gw = fx.build();
    let alice = epoch().issue("alice").unwrap();
    let mut caller = Caller::open(&gw);
    let (mut allowed, mut full) = (0, 0);
    for i in 0..3000 {
        // 3000 proofs over about 300 virtual seconds: about 110 in each 11 s generation of the
        // table, far beyond its 64 slots (16 buckets × 4), then room again in the next one.
        if i % 100 == 99 {
            gw.clock().advance(Duration::from_secs(10));
        }
        match caller.send(&gw, &alice, i % 2) {
            out if out.is_upstream() => allowed += 1,
            out if out.local_status() == Some(503) => full += 1,
            other => {
                panic!("request {i}: expected upstream or 503 (replay table full), got {other:?}")
            }
        }
        if i % 250 == 0 {
            assert_bounded(&gw, &fx.config, GROUP.len() + 2);
        }
    }
    assert_bounded(&gw, &fx.config, GROUP.len() + 2);
    // About 110 nonces a generation over 16 buckets: nearly every bucket of every ring position
    // was written (a bucket a generation misses has odds of (15/16)^110, under 0.1 %).
    let keys = usage(&gw, "autoid.replay.").0;
    assert!(
        keys > REPLAY_GENERATIONS * 16 * 3 / 4,
        "the flood went round the ring: {keys} keys"
    );
    // The proofs' expiries span about 300 s: at most 29 generations of 64 slots each, and each
    // generation is offered far more nonces than it holds.
    assert!(
        allowed >= 64 * 15,
        "room comes back as generations turn: {allowed}"
    );
    assert!(
        allowed <= 64 * 29,
        "no generation holds more than its slots: {allowed}"
    );
    assert_eq!(allowed + full, 3000);
    assert_eq!(metric(&gw, "autoid_requests_allowed"), allowed);
    assert_eq!(
        metric(&gw, "autoid_rsa_unwraps"),
        1,
        "one session, one unwrap"
    );
}

#[test]
fn a_flood_of_unique_sessions_keeps_the_session_table_to_its_cap() {
    // Every new session costs an RSA unwrap in the VM (milliseconds): a few hundred suffice to
    // overflow 8 shared slots and 4 local entries many times over.
    const SESSIONS: i64 = 300;
    let fx = fixture(1024, 32, 8, 4, 8);
    let gw = fx.build();
    let alice = epoch().issue("alice").unwrap();
    let mut first = Caller::open(&gw);
    assert!(first.send(&gw, &alice, 0).is_upstream());
    for i in 1..SESSIONS {
        let out = Caller::open(&gw).send(&gw, &alice, (i % 2) as usize);
        assert!(out.is_upstream(), "session {i}: {out:?}");
        if i % 50 == 0 {
            assert_bounded(&gw, &fx.config, GROUP.len() + 2);
        }
    }
    assert_bounded(&gw, &fx.config, GROUP.len() + 2);
    let (keys, bytes) = usage(&gw, "autoid.session.");
    assert!(keys >= 4, "the flood spread over the slots: {keys}");
    assert_eq!(bytes, keys * ("autoid.session.0".len() + SESSION_VALUE));
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), SESSIONS);
    // The first session was evicted long ago: it still works, at the price of one more unwrap.
    assert!(first.send(&gw, &alice, 0).is_upstream());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), SESSIONS + 1);
    assert_bounded(&gw, &fx.config, GROUP.len() + 2);
}

#[test]
fn a_flood_of_unique_subjects_keeps_the_decision_table_to_its_cap() {
    const SUBJECTS: usize = 2000;
    let fx = fixture(1024, 32, 8, 4, 8);
    let gw = fx.build();
    let epoch = epoch();
    let mut caller = Caller::open(&gw);
    for i in 0..SUBJECTS {
        let file = epoch.issue(&format!("workload-{i:05}")).unwrap();
        let out = caller.send(&gw, &file, i % 2);
        assert!(out.is_upstream(), "subject {i}: {out:?}");
        if i % 250 == 0 {
            assert_bounded(&gw, &fx.config, GROUP.len() + 2);
        }
    }
    assert_bounded(&gw, &fx.config, GROUP.len() + 2);
    assert_eq!(usage(&gw, "autoid.dir.").0, 8, "every slot in use");
    assert_eq!(
        metric(&gw, "autoid_directory_callouts"),
        SUBJECTS as i64,
        "every new subject asks the agent once"
    );
}

/// A header with valid grammar for the gateway's key id: a random RSA-2048-sized wrapped key
/// (below any 2048-bit modulus) and a random sealed part of a valid length.
fn junk_proof(rng: &mut TestRng) -> String {
    let mut wrapped = [0u8; 256];
    rng.try_fill_bytes(&mut wrapped).unwrap();
    wrapped[0] = 0;
    let mut sealed = [0u8; 12 + 70 + 16];
    rng.try_fill_bytes(&mut sealed).unwrap();
    Proof::encode(KID, &wrapped, &sealed)
}

#[test]
fn junk_wrapped_keys_are_held_to_the_cold_path_budget_and_never_starve_a_session() {
    const RATE: i64 = 2;
    const BURST: i64 = 5;
    const JUNK: usize = 2000;
    const STEP_MS: u64 = 50;
    let fx = fixture(1024, 32, 8, 4, 8).with(
        "/cold_path",
        json!({ "unwraps_per_second": RATE, "burst": BURST }),
    );
    let gw = fx.build();
    let alice = epoch().issue("alice").unwrap();
    let mut valid = Caller::open(&gw);
    assert!(
        valid.send(&gw, &alice, 0).is_upstream(),
        "the session is established"
    );
    let mut rng = TestRng::unique("junk");
    let mut valid_sent = 1;
    for i in 0..JUNK {
        gw.clock().advance(Duration::from_millis(STEP_MS));
        let out = gw
            .request("GET", AUTHORITY, "/v1/payments")
            .route("payments")
            .header(PROOF, &junk_proof(&mut rng))
            .worker(0)
            .send();
        assert_eq!(out.local_status(), Some(401), "junk {i}: {out:?}");
        if i % 10 == 0 {
            let out = valid.send(&gw, &alice, 0);
            assert!(
                out.is_upstream(),
                "the established session failed after junk {i}: {out:?}"
            );
            valid_sent += 1;
        }
    }
    let elapsed_secs = (JUNK as u64 * STEP_MS).div_ceil(1000) as i64;
    let unwraps = metric(&gw, "autoid_rsa_unwraps");
    // One for the valid session, then at most the bucket's burst plus its rate over the flood.
    assert!(
        unwraps <= 1 + BURST + RATE * elapsed_secs,
        "{unwraps} unwraps in {elapsed_secs} s at {RATE}/s, burst {BURST}"
    );
    let (unwrap, limited) = (
        metric(&gw, "autoid_denied_unwrap"),
        metric(&gw, "autoid_denied_rate_limited"),
    );
    assert_eq!(
        unwrap + limited,
        JUNK as i64,
        "every junk proof denied, as unwrap or rate_limited"
    );
    assert_eq!(
        unwrap,
        unwraps - 1,
        "every unwrap the bucket allowed ran and failed"
    );
    assert!(limited >= JUNK as i64 - 1 - BURST - RATE * elapsed_secs);
    assert_eq!(metric(&gw, "autoid_requests_allowed"), valid_sent);
    assert_bounded(&gw, &fx.config, GROUP.len() + 2);
}

#[test]
fn a_subject_without_rights_cannot_fill_the_replay_table() {
    // 16 buckets of 8 slots. dave proves who he is but is in no group: his valid proofs are
    // refused before their nonces are claimed, so his 400 (25 a bucket: claimed, they would fill
    // every bucket) leave room for alice's 8, which no bucket can overflow.
    let gw = Fixture::static_groups()
        .with("/replay", json!({ "buckets": 16, "slots_per_bucket": 8 }))
        .build();
    let dave = epoch().issue("dave").unwrap();
    let mut caller = Caller::open(&gw);
    for i in 0..400 {
        let out = caller.send(&gw, &dave, i % 2);
        assert_eq!(out.local_status(), Some(403), "dave's request {i}: {out:?}");
    }
    assert_eq!(
        usage(&gw, "autoid.replay.").0,
        0,
        "no nonce of dave's claimed"
    );
    let alice = epoch().issue("alice").unwrap();
    for i in 0..8 {
        let out = caller.send(&gw, &alice, i % 2);
        assert!(out.is_upstream(), "alice's request {i}: {out:?}");
    }
}
