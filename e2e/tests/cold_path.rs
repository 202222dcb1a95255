//! The cold path under a flood, through real Envoy. Sessions without a possession ticket (v1, v2):
//! while one source floods the gateway with junk wrapped keys (each a failed RSA unwrap), a new
//! session from another source address still opens (the twin of
//! host-tests/tests/plugin_cold_path.rs
//! `a_junk_flood_from_one_source_leaves_other_sources_their_share`). Sessions with one (v3,
//! docs/PROTOCOL.md §12), keys and epochs at the agent: a flood of junk sessions from 256 source
//! addresses costs the agent no RSA, and every new legitimate session opens meanwhile (the twin of
//! host-tests/tests/plugin_possession.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::header::Version;
use autoid_protocol::keys::PublicKey;
use common::client::{Send, Wire, send_from};
use common::{Options, PROOF_HEADER, Stack};

/// How many times the legitimate client may try (docs/SECURITY.md): it should need one.
const TRIES: usize = 3;

#[test]
fn a_junk_flood_from_one_source_does_not_lock_out_another() {
    let s = Stack::start(&Options::default());
    let path = "/payments/cold";
    let url = format!("http://{}{path}", s.http);
    // Junk: a real v2 proof with its wrapped session key altered (RSA-OAEP fails after the
    // unwrap; v2 has no possession ticket to refuse it first).
    let proof = s.prove_forms("alice", "GET", path, &[Form::Full]).remove(0);
    let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..6)
        .map(|t| {
            let mut junk_parts = parts.clone();
            let (stop, sent, addr) = (stop.clone(), sent.clone(), s.http);
            std::thread::spawn(move || {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // A different byte each time, so no junk key is ever cached as anything.
                    let w = &mut junk_parts[2];
                    let at = 10 + (i * 7 + t) % (w.len() - 20);
                    let c = if w.as_bytes()[at] == b'A' { "B" } else { "A" };
                    w.replace_range(at..at + 1, c);
                    let junk = junk_parts.join(".");
                    let req = Send::new("GET", path).header(PROOF_HEADER, &junk);
                    let from = Some("127.0.0.1".parse().unwrap());
                    if let Ok(r) = send_from(from, addr, Wire::Http1Length, &req) {
                        assert_eq!(r.status, 401, "junk must never pass");
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    // Let the flood drain every bucket it can reach.
    common::eventually(
        "the flood to be rate limited",
        std::time::Duration::from_secs(30),
        || (s.counter("autoid_denied_rate_limited") >= 50).then_some(()),
    );
    // A new session from 127.0.0.2 while the flood goes on.
    let mut statuses = Vec::new();
    for _ in 0..TRIES {
        let fresh = s.prove("alice", "GET", &url);
        let req = Send::new("GET", path).header(PROOF_HEADER, &fresh);
        let r = send_from(
            Some("127.0.0.2".parse().unwrap()),
            s.http,
            Wire::Http1Length,
            &req,
        )
        .unwrap();
        statuses.push(r.status);
        if r.status == 200 {
            break;
        }
    }
    let limited = s.counter("autoid_denied_rate_limited");
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    assert_eq!(
        statuses.last(),
        Some(&200),
        "127.0.0.2 locked out during the flood ({} junk sent, {limited} rate limited): {statuses:?}",
        sent.load(Ordering::Relaxed)
    );
    parts.clear();
}

/// Junk v3 proofs for `GET <http listener> path`: each a new session wrapped with the gateway's
/// public key (anyone can), its ticket and payload made from a file of zeros.
fn junk_v3(s: &Stack, path: &str, n: usize) -> Vec<String> {
    let pem = std::fs::read_to_string(s.path("keys/gw-1.pub.pem")).unwrap();
    let public = PublicKey::from_pem("gw-1", &pem).unwrap();
    let real = EntropyFile::from_bytes(&std::fs::read(s.path("alice.entropy")).unwrap()).unwrap();
    let zeros = EntropyFile::new(
        real.epoch(),
        "mallory",
        real.interval_count(),
        vec![0u8; real.data().len()],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    let authority = s.http.to_string();
    let request = autoid_protocol::Request {
        method: "GET",
        authority: &authority,
        path,
    };
    (0..n)
        .map(|_| {
            Session::open(&public, now, &mut rng)
                .unwrap()
                .prove_in(
                    Version::V3,
                    Form::Full,
                    &zeros,
                    &request,
                    now,
                    None,
                    &mut rng,
                )
                .unwrap()
        })
        .collect()
}

#[test]
fn a_junk_flood_of_v3_sessions_from_256_sources_spends_no_rsa_and_new_sessions_open() {
    let s = Stack::start(&Options::default());
    let path = "/payments/cold";
    let url = format!("http://{}{path}", s.http);
    const JUNK: usize = 1024;
    const LEGIT: usize = 8;
    let junk = junk_v3(&s, path, JUNK);
    let unwraps_before = s.agent_counter("autoid_agent_rsa_unwraps_total");
    let refused_before = s.agent_counter("autoid_agent_possession_refused_total");
    // Four flooders, from 127.0.x.y: 256 source addresses.
    let junk = Arc::new(junk);
    let flooders: Vec<_> = (0..4)
        .map(|t| {
            let (junk, addr) = (junk.clone(), s.http);
            std::thread::spawn(move || {
                for i in (t..JUNK).step_by(4) {
                    let from = format!("127.0.{}.{}", i % 256 / 16, 1 + i % 16);
                    let req = Send::new("GET", path).header(PROOF_HEADER, &junk[i]);
                    let r = send_from(Some(from.parse().unwrap()), addr, Wire::Http1Length, &req)
                        .unwrap();
                    assert_eq!(r.status, 401, "junk must never pass");
                }
            })
        })
        .collect();
    // New legitimate sessions (v3, `autoid prove`) while the flood goes on: every one opens.
    for n in 0..LEGIT {
        let fresh = s.prove("alice", "GET", &url);
        assert!(fresh.starts_with("v3."), "{fresh}");
        let req = Send::new("GET", path).header(PROOF_HEADER, &fresh);
        let from = format!("127.1.0.{}", n + 1);
        let r = send_from(Some(from.parse().unwrap()), s.http, Wire::Http1Length, &req).unwrap();
        assert_eq!(r.status, 200, "new session {n} during the flood");
    }
    for f in flooders {
        f.join().unwrap();
    }
    // The agent checked every junk ticket and refused it before any RSA: its unwraps are the
    // legitimate sessions' only.
    assert_eq!(
        s.agent_counter("autoid_agent_possession_refused_total") - refused_before,
        JUNK as u64
    );
    assert_eq!(
        s.agent_counter("autoid_agent_rsa_unwraps_total") - unwraps_before,
        LEGIT as u64
    );
    assert_eq!(s.counter("autoid_denied_rate_limited"), 0);
}
