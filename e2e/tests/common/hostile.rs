//! Requests with bytes that are not text (invalid UTF-8, obs-text, NUL, in header names and
//! values), written raw on HTTP/1.1 and through hyper on HTTP/2, and the check every deployment
//! shares: none changes any answer, then or later.

use std::net::SocketAddr;

use autoid_testkit::http::request_raw;

use super::client::{Send, Wire, send};
use super::{PROOF_HEADER, Response, request};

/// Header values every codec on the way passes (obs-text, invalid UTF-8): the gateway's
/// decisions must see them and answer as without them.
pub const VALUES: [&[u8]; 4] = [
    b"caf\xe9",
    b"\x80\x81\xfe\xff",
    b"\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80",
    b"caf\xc3\xa9",
];

/// Header lines a codec may refuse (400) or pass on: a name that is no token, a NUL, a name
/// with bytes above 0x7f.
pub const MAY_REFUSE: [(&[u8], &[u8]); 4] = [
    (b"x-caf\xe9", b"value"),
    (b"x-\xff\xfe", b"\xff"),
    (b"x-note", b"a\x00b"),
    (b"\xe9", b"v"),
];

/// How many ordinary requests follow each hostile one: more than the workers (2), each on a
/// connection of its own.
pub const ROUNDS: usize = 6;

fn status(r: Result<Response, impl std::fmt::Debug>, what: &str) -> u16 {
    match r {
        Ok(r) => r.status,
        Err(e) => panic!("{what}: no answer: {e:?}"),
    }
}

/// `rounds` ordinary requests to `path` at `http`, each on its own connection: alice's
/// (`proofs`, one each) 200, no proof 401.
pub fn assert_serving(http: SocketAddr, path: &str, proofs: &[String], after: &str) {
    for proof in proofs {
        let allowed = request(http, "GET", path, &[(PROOF_HEADER, proof)]).unwrap();
        assert_eq!(
            allowed.status,
            200,
            "alice after {after}: {}",
            allowed.text()
        );
        let denied = request(http, "GET", path, &[]).unwrap();
        assert_eq!(
            denied.status,
            401,
            "no proof after {after}: {}",
            denied.text()
        );
    }
}

/// At the gateway `http` (the e2e stack's APIs), for `GET path`: each hostile header, on an
/// unauthenticated request and on alice's (its proof from `prove`), over raw HTTP/1.1 writes
/// and, with `h2`, HTTP/2 (prior knowledge), and the same bytes in the proof header and in a
/// Basic `authorization`; after each, [`ROUNDS`] ordinary requests get their right answer. `prove(n)` makes `n` proofs for alice's `GET path` at this gateway.
pub fn assert_hostile_bytes_change_no_answer(
    http: SocketAddr,
    path: &str,
    h2: bool,
    prove: impl Fn(usize) -> Vec<String>,
) {
    for value in VALUES {
        let what = format!("x-note: {}", value.escape_ascii());
        let headers: [(&[u8], &[u8]); 1] = [(b"x-note", value)];
        let r = request_raw(http, "GET", path.as_bytes(), &headers);
        assert_eq!(status(r, &what), 401, "{what} without a proof (HTTP/1.1)");
        let proof = prove(1).remove(0);
        let headers: [(&[u8], &[u8]); 2] = [
            (b"x-note", value),
            (PROOF_HEADER.as_bytes(), proof.as_bytes()),
        ];
        let r = request_raw(http, "GET", path.as_bytes(), &headers);
        assert_eq!(
            status(r, &what),
            200,
            "{what} with alice's proof (HTTP/1.1)"
        );
        // The values the gateway reads: the proof, and a password where the API takes one
        // (`/local/`: a proof or Basic, plain HTTP from loopback). Each is the uniform 401.
        let proof = [b"v1.".as_slice(), value].concat();
        let headers: [(&[u8], &[u8]); 1] = [(PROOF_HEADER.as_bytes(), &proof)];
        let r = request_raw(http, "GET", path.as_bytes(), &headers);
        assert_eq!(status(r, &what), 401, "a proof header of {what}");
        let basic = [b"Basic ".as_slice(), value].concat();
        let headers: [(&[u8], &[u8]); 1] = [(b"authorization", &basic)];
        let r = request_raw(http, "GET", b"/local/x", &headers);
        assert_eq!(status(r, &what), 401, "an authorization of {what}");
        if h2 {
            let r = send(
                http,
                Wire::Http2,
                &Send::new("GET", path).header_bytes("x-note", value),
            );
            assert_eq!(status(r, &what), 401, "{what} without a proof (HTTP/2)");
            let proof = prove(1).remove(0);
            let req = Send::new("GET", path)
                .header(PROOF_HEADER, &proof)
                .header_bytes("x-note", value);
            let r = send(http, Wire::Http2, &req);
            assert_eq!(status(r, &what), 200, "{what} with alice's proof (HTTP/2)");
        }
        assert_serving(http, path, &prove(ROUNDS), &what);
    }
    for (name, value) in MAY_REFUSE {
        let what = format!("{}: {}", name.escape_ascii(), value.escape_ascii());
        let r = request_raw(http, "GET", path.as_bytes(), &[(name, value)]);
        let got = status(r, &what);
        assert!(
            got == 400 || got == 401,
            "{what} without a proof: {got}, not the codec's 400 or the uniform 401"
        );
        let proof = prove(1).remove(0);
        let headers = [(name, value), (PROOF_HEADER.as_bytes(), proof.as_bytes())];
        let got = status(request_raw(http, "GET", path.as_bytes(), &headers), &what);
        assert!(
            got == 400 || got == 200,
            "{what} with alice's proof: {got}, not the codec's 400 or allowed"
        );
        assert_serving(http, path, &prove(ROUNDS), &what);
    }
}

/// A request whose path is not UTF-8 (a raw 0xE9) is refused, never a 5xx, and the gateway
/// keeps serving: the wasm filter and the agent answer 400 `unsafe_path`; a codec may refuse it
/// first (400).
pub fn assert_non_utf8_path_is_refused(
    http: SocketAddr,
    path: &str,
    prove: impl Fn(usize) -> Vec<String>,
) {
    let proof = prove(1).remove(0);
    let raw = [path.as_bytes(), b"caf\xe9"].concat();
    let headers: [(&[u8], &[u8]); 1] = [(PROOF_HEADER.as_bytes(), proof.as_bytes())];
    let got = status(request_raw(http, "GET", &raw, &headers), "a non-UTF-8 path");
    assert_eq!(got, 400, "a non-UTF-8 path");
    assert_serving(http, path, &prove(ROUNDS), "a non-UTF-8 path");
}
