//! The cold-path budget per source, through real Envoy: while one source floods the gateway with
//! junk wrapped keys (each a failed RSA unwrap), a new session from another source address
//! still opens. The twin of host-tests/tests/plugin_cold_path.rs
//! `a_junk_flood_from_one_source_leaves_other_sources_their_share`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::client::{Send, Wire, send_from};
use common::{Options, PROOF_HEADER, Stack};

/// How many times the legitimate client may try (docs/SECURITY.md): it should need one.
const TRIES: usize = 3;

#[test]
fn a_junk_flood_from_one_source_does_not_lock_out_another() {
    let s = Stack::start(&Options::default());
    let path = "/payments/cold";
    let url = format!("http://{}{path}", s.http);
    // Junk: a real proof with its wrapped session key altered (RSA-OAEP fails after the unwrap).
    let proof = s.prove("alice", "GET", &url);
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
