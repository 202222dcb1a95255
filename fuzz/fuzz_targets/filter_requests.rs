//! The whole filter — the built `autoid_plugin.wasm` — in the wasmtime harness that models Envoy,
//! on arbitrary requests: header names and values of any bytes (invalid UTF-8, NUL, obs-text),
//! pseudo-headers, a body in chunks, trailers, properties, and the directory agent's replies
//! (status, headers and body of any bytes). Some requests carry a valid proof, so the steps after
//! verification (the directory callout, the body check, injection) run too.
//!
//! The property: no VM ever traps (a trap kills a worker's VM in Envoy), and every local reply
//! is one of the filter's uniform statuses. The module comes from the repository's
//! `target/wasm32-wasip1/wasm/` (`make wasm` builds it).

#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The host tests' fixtures: the filter configuration around the test key and epoch, and
/// clients that make real proofs at the gateway's virtual now.
#[path = "../../host-tests/tests/common/mod.rs"]
#[allow(dead_code, unused_imports)]
mod common;

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use autoid_host_tests::{CalloutReply, Cluster, Gateway, Outcome};
use common::autoid::{AUTHORITY, Client, Fixture, PROOF, directory_reply, now};
use libfuzzer_sys::fuzz_target;

/// The uniform statuses of the filter's local replies.
const UNIFORM: [u32; 6] = [400, 401, 403, 413, 429, 503];

#[derive(Arbitrary, Debug)]
enum Proof {
    None,
    /// A valid proof for the request as built before the pseudo-header overrides.
    Valid,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Route {
    Payments,
    Reports,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Pseudo {
    Method,
    Authority,
    Path,
    Scheme,
}

#[derive(Arbitrary, Debug)]
enum Property {
    Source,
    Tls,
}

/// The directory agent's answer to a callout this request makes.
#[derive(Arbitrary, Debug, Clone)]
struct Reply {
    /// A well-formed answer (alice in `payments`) under the hostile headers, or the raw parts.
    valid: bool,
    status: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Request {
    worker: bool,
    /// Milliseconds the virtual clock moves first (ticks run; caches expire).
    advance_ms: u16,
    post: bool,
    route: Route,
    proof: Proof,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    pseudo: Vec<(Pseudo, Vec<u8>)>,
    properties: Vec<(Property, Vec<u8>)>,
    /// The body in chunks (none: no body); a valid proof binds it when `bind_body`.
    body: Option<Vec<Vec<u8>>>,
    bind_body: bool,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
    reply: Reply,
}

struct Harness {
    gw: Gateway,
    alice: Client,
    /// When alice's session was opened (virtual seconds): renewed before it expires.
    opened: u64,
    reply: Arc<Mutex<Option<Reply>>>,
}

fn harness() -> Harness {
    let reply: Arc<Mutex<Option<Reply>>> = Arc::default();
    let answer = Arc::clone(&reply);
    let agent = Cluster::Scripted(Arc::new(move |_| {
        let Some(r) = answer.lock().unwrap().clone() else {
            return CalloutReply::new(503);
        };
        let base = if r.valid {
            directory_reply("alice", Some(&["payments", "readers"]))
        } else {
            CalloutReply::new(r.status).body(r.body.clone())
        };
        r.headers
            .iter()
            .fold(base, |b, (k, v)| b.header_bytes(k, v))
    }));
    let gw = Fixture::directory(agent).build();
    let alice = Client::open(&gw, "alice");
    let opened = now(&gw);
    Harness {
        gw,
        alice,
        opened,
        reply,
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

fn run(h: &mut Harness, requests: Vec<Request>) {
    let gw = &h.gw;
    for req in requests {
        gw.clock()
            .advance(Duration::from_millis(u64::from(req.advance_ms)));
        if now(gw) > h.opened + 600 {
            h.alice = h.alice.reopen(gw);
            h.opened = now(gw);
        }
        *h.reply.lock().unwrap() = Some(req.reply.clone());
        let method = if req.post { "POST" } else { "GET" };
        let path = "/v1/payments";
        let body: Vec<u8> = req.body.iter().flatten().flatten().copied().collect();
        let mut b = gw.request(method, AUTHORITY, path).worker(usize::from(req.worker));
        b = match &req.route {
            Route::Payments => b.route("payments"),
            Route::Reports => b.route("reports"),
            Route::Raw(name) => b.property(&["xds", "route_name"], name.clone()),
        };
        b = match &req.proof {
            Proof::None => b,
            Proof::Valid => {
                let bound = (req.bind_body && req.body.is_some()).then_some(body.as_slice());
                let proof = h.alice.proof_for(method, AUTHORITY, path, now(gw), bound);
                b.header(PROOF, &proof)
            }
            Proof::Raw(bytes) => b.header_raw(PROOF.as_bytes(), bytes),
        };
        for (name, value) in &req.headers {
            b = b.header_raw(name, value);
        }
        for (which, value) in &req.pseudo {
            let name = match which {
                Pseudo::Method => ":method",
                Pseudo::Authority => ":authority",
                Pseudo::Path => ":path",
                Pseudo::Scheme => ":scheme",
            };
            b = b.pseudo_raw(name, value);
        }
        for (which, value) in &req.properties {
            let path: &[&str] = match which {
                Property::Source => &["source", "address"],
                Property::Tls => &["connection", "tls_version"],
            };
            b = b.property(path, value.clone());
        }
        if let Some(chunks) = &req.body {
            b = b.body_chunks(chunks.clone());
        }
        for (name, value) in &req.trailers {
            b = b.trailer_raw(name, value);
        }
        let out = b.send();
        for worker in 0..gw.workers() {
            if let Some(fault) = gw.worker_fault(worker) {
                panic!("worker {worker}'s VM died: {fault}\nrequest: {req:?}");
            }
        }
        if let Outcome::LocalReply { status, .. } = &out {
            assert!(UNIFORM.contains(status), "local reply {status}: {out:?}\n{req:?}");
        }
        gw.clear_logs();
    }
}

fuzz_target!(|requests: Vec<Request>| {
    HARNESS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let h = cell.get_or_insert_with(harness);
        run(h, requests);
    });
});
