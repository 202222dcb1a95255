//! Body-bound proofs through real Envoy: HTTP/1.1 with Content-Length and chunked, HTTP/2 with
//! and without request trailers; the empty body, one at the buffer limit and one over it;
//! matching and swapped bodies; the directory decision cached and not. The twins of
//! host-tests/tests/plugin_body.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use common::client::{Send, Wire, send};
use common::{Options, PROOF_HEADER, Response, Stack};

const BODY: &[u8] = br#"{"amount":100,"to":"acct-1"}"#;
const SWAPPED: &[u8] = br#"{"amount":999,"to":"acct-6"}"#;
/// autoid_protocol::policy::MAX_BODY_BYTES.
const MAX_BODY: usize = 1 << 20;
const WIRES: [Wire; 3] = [Wire::Http1Length, Wire::Http1Chunked, Wire::Http2];

/// Directory decisions cached for a minute.
fn cached() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start(&Options::default()))
}

/// Every request asks the directory (positive TTL 0): the body check and the callout both pause.
fn uncached() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        Stack::start(&Options {
            positive_ttl_secs: 0,
            negative_ttl_secs: 0,
            ..Options::default()
        })
    })
}

fn sha256_hex(data: &[u8]) -> String {
    // The echo reports the SHA-256 of what it received; compute ours with the same tool.
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// POST `sent` to /payments/charges over `wire` with a proof binding `bound`.
fn post(
    s: &Stack,
    wire: Wire,
    bound: &[u8],
    sent: &[u8],
    chunk: usize,
    trailers: bool,
) -> Response {
    let path = "/payments/charges";
    let url = format!("http://{}{path}", s.http);
    let proof = s.prove_body("alice", "POST", &url, Some(bound));
    let mut req = Send::new("POST", path)
        .header(PROOF_HEADER, &proof)
        .header("content-type", "application/json")
        .body(sent, chunk);
    if trailers {
        req = req.trailer("x-checksum", "sha256");
    }
    send(s.http, wire, &req).unwrap_or_else(|e| {
        panic!(
            "{wire:?} trailers={trailers}: {e}\n{}",
            tail(&s.envoy_log())
        )
    })
}

fn tail(log: &str) -> &str {
    &log[log.len().saturating_sub(4000)..]
}

fn assert_allowed(r: &Response, body: &[u8], what: &str) {
    assert_eq!(
        r.status,
        200,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let echo = r.json();
    assert_eq!(echo["body_bytes"], body.len(), "{what}");
    assert_eq!(echo["body_sha256"], sha256_hex(body), "{what}");
    assert!(r.echoed(PROOF_HEADER).is_empty(), "{what}");
}

fn assert_denied(r: &Response, status: u16, error: &str, what: &str) {
    assert_eq!(
        r.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["error"], error, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
}

#[test]
fn matching_bodies_pass_and_swapped_ones_are_401_on_every_wire() {
    for s in [cached(), uncached()] {
        for wire in WIRES {
            for trailers in [false, true] {
                if trailers && wire == Wire::Http1Length {
                    continue; // trailers need chunked framing or HTTP/2
                }
                let what = format!("{wire:?} trailers={trailers}");
                assert_allowed(&post(s, wire, BODY, BODY, 7, trailers), BODY, &what);
                let r = post(s, wire, BODY, SWAPPED, 7, trailers);
                assert_denied(&r, 401, "unauthorized", &what);
                assert!(r.header("www-authenticate").is_some(), "{what}");
            }
        }
    }
}

#[test]
fn the_empty_body() {
    let s = cached();
    for wire in WIRES {
        assert_allowed(
            &post(s, wire, b"", b"", 1, false),
            b"",
            &format!("{wire:?}"),
        );
    }
    // HTTP/2: headers, then trailers, no DATA frame at all.
    let path = "/payments/charges";
    let url = format!("http://{}{path}", s.http);
    let proof = s.prove_body("alice", "POST", &url, Some(b""));
    let req = Send::new("POST", path)
        .header(PROOF_HEADER, &proof)
        .trailer("x-checksum", "none");
    assert_allowed(
        &send(s.http, Wire::Http2, &req).unwrap(),
        b"",
        "h2 headers+trailers",
    );
    // A proof bound to a body, sent without one.
    let r = post(s, Wire::Http2, BODY, b"", 1, true);
    assert_denied(&r, 401, "unauthorized", "bound body missing");
}

#[test]
fn a_body_at_the_limit_passes_and_one_byte_over_is_413() {
    let s = cached();
    let at = vec![b'a'; MAX_BODY];
    let over = vec![b'a'; MAX_BODY + 1];
    for wire in [Wire::Http1Length, Wire::Http2] {
        let what = format!("{wire:?}");
        assert_allowed(&post(s, wire, &at, &at, 16 * 1024, false), &at, &what);
        let r = post(s, wire, &over, &over, 16 * 1024, false);
        assert_denied(&r, 413, "payload_too_large", &what);
    }
    s.envoy_log_line(&["status=413", "reason=body_too_large"]);
}
