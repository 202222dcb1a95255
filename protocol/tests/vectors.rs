//! The test vectors of docs/PROTOCOL.md, checked byte for byte.
//!
//! `vectors/v1.json` holds the expected values. To regenerate it after a deliberate protocol
//! change (which needs a new version), run with `AUTOID_WRITE_VECTORS=1` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_protocol::Request;
use autoid_protocol::client::{Form, Session};
use autoid_protocol::header::{Proof, SessionPart, Version};
use autoid_protocol::intervals::{Bindings, Intervals};
use autoid_protocol::verify::{Keyring, Limits, NoCache, verify};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Computes every documented value of one vector.
fn vector(seed: &str, subject: &str, req: Request<'_>, body: Option<&[u8]>) -> Value {
    let mut rng = TestRng::new(seed.as_bytes());
    let public = gateway_key().public();
    let session = Session::open(&public, NOW, &mut rng).unwrap();
    let file = file(subject);
    let header = session.prove(&file, &req, NOW, body, &mut rng).unwrap();

    // Re-derive the intermediate values from the header, as an implementer would check them.
    let proof = Proof::parse(&header).unwrap();
    let ring = Keyring::new(vec![gateway_key()], vec![epoch()]);
    let key = ring.unwrap_session(&proof).unwrap();
    let payload = key.open(&proof, &req).unwrap();
    let b = Bindings {
        subject,
        epoch: "e-test",
        nonce: &payload.nonce,
        timestamp: NOW,
        request: req,
    };
    let intervals = Intervals::derive(&b, 65536, 64);
    let offs = intervals.offsets().to_vec();
    let d = intervals.digest_file(file.data());
    assert_eq!(d, payload.digest);
    let verified = verify(&ring, &Limits::default(), &header, &req, NOW, &mut NoCache).unwrap();
    assert_eq!(verified.subject, subject);

    json!({
        "rng_seed": seed,
        "now": NOW,
        "subject": subject,
        "request": { "method": req.method, "authority": req.authority, "path": req.path },
        "body": body.map(|b| String::from_utf8_lossy(b).into_owned()),
        "entropy_first_32_bytes_hex": hex(&file.data()[..32]),
        "session_key_and_issued_at_hex": hex(&key.to_bytes()),
        "session_id_hex": hex(&proof.session_id().unwrap()),
        "nonce_hex": hex(&payload.nonce),
        "iv_hex": hex(&proof.sealed()[..12]),
        "interval_seed_hex": hex(intervals.seed()),
        "first_8_offsets": offs[..8].to_vec(),
        "digest_hex": hex(&payload.digest),
        "payload_hex": hex(&payload.to_bytes()),
        "header": header,
    })
}

fn all_vectors() -> Value {
    json!({
        "key_id": KID,
        "private_key_pem": "protocol/tests/vectors/gateway-2048.pem",
        "epoch": { "id": "e-test", "secret_hex": hex(&(0u8..32).collect::<Vec<_>>()), "file_size": 65536, "interval_count": 64 },
        "vectors": [
            vector("vector-1", "alice", Request { method: "GET", authority: "api.example.com", path: "/v1/payments?limit=10" }, None),
            vector("vector-2", "bob", Request { method: "POST", authority: "api.example.com:8443", path: "/v1/transfers" }, Some(b"{\"amount\":5}")),
        ],
    })
}

/// One v2 vector: a session opened, its first request in the full form, its second in the
/// compact form, with every value an implementer checks.
fn vector_v2(seed: &str, subject: &str, req: Request<'_>, body: Option<&[u8]>) -> Value {
    let mut rng = TestRng::new(seed.as_bytes());
    let public = gateway_key().public();
    let session = Session::open(&public, NOW, &mut rng).unwrap();
    let file = file(subject);
    let ring = Keyring::new(vec![gateway_key()], vec![epoch()]);
    let mut cache = RefCache::default();
    let mut forms = Vec::new();
    let mut plaintext = None;
    for form in [Form::Full, Form::Compact] {
        let header = session
            .prove_as(form, &file, &req, NOW, body, &mut rng)
            .unwrap();
        let proof = Proof::parse(&header).unwrap();
        assert_eq!(proof.version(), Version::V2);
        let key = match proof.session() {
            SessionPart::Wrapped(_) => ring.unwrap_session(&proof).unwrap(),
            SessionPart::Reference(r) => {
                assert_eq!(*r, session.reference());
                cache.0.clone().unwrap().1
            }
        };
        plaintext.get_or_insert(key.to_bytes());
        let payload = key.open(&proof, &req).unwrap();
        let verified = verify(&ring, &Limits::default(), &header, &req, NOW, &mut cache).unwrap();
        assert_eq!(verified.subject, subject);
        forms.push(json!({
            "form": if form == Form::Full { "full" } else { "compact" },
            "nonce_hex": hex(&payload.nonce),
            "iv_hex": hex(&proof.sealed()[..12]),
            "aad_hex": hex(&proof.associated_data(&req).unwrap()),
            "payload_hex": hex(&payload.to_bytes()),
            "header": header,
            "header_len": header.len(),
        }));
    }
    json!({
        "rng_seed": seed,
        "now": NOW,
        "subject": subject,
        "request": { "method": req.method, "authority": req.authority, "path": req.path },
        "body": body.map(|b| String::from_utf8_lossy(b).into_owned()),
        "session_key_and_issued_at_hex": hex(&plaintext.unwrap()),
        "session_id_hex": hex(&session.id()),
        "session_ref_hex": hex(&session.reference()),
        "proofs": forms,
    })
}

/// A session cache of one session, keyed by its reference, as a gateway keeps it.
#[derive(Default)]
struct RefCache(Option<([u8; 16], autoid_protocol::verify::SessionKey)>);

impl autoid_protocol::verify::SessionCache for RefCache {
    fn get(&mut self, proof: &Proof) -> Option<autoid_protocol::verify::SessionKey> {
        let (r, key) = self.0.as_ref()?;
        (*r == proof.session_ref()).then(|| key.clone())
    }
    fn put(&mut self, proof: &Proof, session: &autoid_protocol::verify::SessionKey) {
        self.0 = Some((proof.session_ref(), session.clone()));
    }
}

fn v2_vectors() -> Value {
    json!({
        "key_id": KID,
        "private_key_pem": "protocol/tests/vectors/gateway-2048.pem",
        "epoch": { "id": "e-test", "secret_hex": hex(&(0u8..32).collect::<Vec<_>>()), "file_size": 65536, "interval_count": 64 },
        "vectors": [
            vector_v2("v2-vector-1", "alice", Request { method: "GET", authority: "api.example.com", path: "/v1/payments?limit=10" }, None),
            vector_v2("v2-vector-2", "bob", Request { method: "POST", authority: "api.example.com:8443", path: "/v1/transfers" }, Some(b"{\"amount\":5}")),
        ],
    })
}

/// One v3 vector: a session opened, its first request in the full form (with the possession
/// ticket), its second in the compact form, with every value an implementer checks.
fn vector_v3(seed: &str, subject: &str, req: Request<'_>, body: Option<&[u8]>) -> Value {
    let mut rng = TestRng::new(seed.as_bytes());
    let public = gateway_key().public();
    let session = Session::open(&public, NOW, &mut rng).unwrap();
    let file = file(subject);
    let ring = Keyring::new(vec![gateway_key()], vec![epoch()]);
    let mut cache = RefCache::default();
    let mut forms = Vec::new();
    let mut plaintext = None;
    for form in [Form::Full, Form::Compact] {
        let header = session
            .prove_in(Version::V3, form, &file, &req, NOW, body, &mut rng)
            .unwrap();
        let proof = Proof::parse(&header).unwrap();
        assert_eq!(proof.version(), Version::V3);
        let key = match proof.session() {
            SessionPart::Wrapped(_) => ring.unwrap_session(&proof).unwrap(),
            SessionPart::Reference(r) => {
                assert_eq!(*r, session.reference());
                cache.0.clone().unwrap().1
            }
        };
        plaintext.get_or_insert(key.to_bytes());
        let payload = key.open(&proof, &req).unwrap();
        let verified = verify(&ring, &Limits::default(), &header, &req, NOW, &mut cache).unwrap();
        assert_eq!(verified.subject, subject);
        let mut entry = json!({
            "form": if form == Form::Full { "full" } else { "compact" },
            "nonce_hex": hex(&payload.nonce),
            "iv_hex": hex(&proof.sealed()[..12]),
            "aad_hex": hex(&proof.associated_data(&req).unwrap()),
            "payload_hex": hex(&payload.to_bytes()),
            "digest_hex": hex(&payload.digest),
        });
        if let Some(ticket) = proof.ticket() {
            assert_eq!(form, Form::Full);
            entry["ticket_hex"] = json!(hex(&ticket.to_bytes()));
            entry["ticket_tag_hex"] = json!(hex(&ticket.tag));
        } else {
            assert_eq!(form, Form::Compact);
        }
        entry["header"] = json!(header);
        entry["header_len"] = json!(header.len());
        forms.push(entry);
    }
    json!({
        "rng_seed": seed,
        "now": NOW,
        "subject": subject,
        "request": { "method": req.method, "authority": req.authority, "path": req.path },
        "body": body.map(|b| String::from_utf8_lossy(b).into_owned()),
        "session_key_and_issued_at_hex": hex(&plaintext.unwrap()),
        "session_id_hex": hex(&session.id()),
        "session_ref_hex": hex(&session.reference()),
        "proofs": forms,
    })
}

fn v3_vectors() -> Value {
    json!({
        "key_id": KID,
        "private_key_pem": "protocol/tests/vectors/gateway-2048.pem",
        "epoch": { "id": "e-test", "secret_hex": hex(&(0u8..32).collect::<Vec<_>>()), "file_size": 65536, "interval_count": 64 },
        "vectors": [
            vector_v3("v3-vector-1", "alice", Request { method: "GET", authority: "api.example.com", path: "/v1/payments?limit=10" }, None),
            vector_v3("v3-vector-2", "bob", Request { method: "POST", authority: "api.example.com:8443", path: "/v1/transfers" }, Some(b"{\"amount\":5}")),
        ],
    })
}

#[test]
fn the_v3_vectors_hold_byte_for_byte() {
    holds_byte_for_byte("v3.json", v3_vectors());
}

/// Compares `actual` with `vectors/<file>` (rewrites the file first with `AUTOID_WRITE_VECTORS`).
fn holds_byte_for_byte(file: &str, actual: Value) {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("AUTOID_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn the_v2_vectors_hold_byte_for_byte() {
    holds_byte_for_byte("v2.json", v2_vectors());
}

#[test]
fn a_compact_proof_of_an_unknown_session_is_unknown_session_and_costs_no_unwrap() {
    let mut rng = TestRng::new(b"unknown-session");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let req = Request {
        method: "GET",
        authority: "api.example.com",
        path: "/p",
    };
    let header = session
        .prove_as(Form::Compact, &file("alice"), &req, NOW, None, &mut rng)
        .unwrap();
    let ring = Keyring::new(vec![gateway_key()], vec![epoch()]);
    struct NoUnwrap;
    impl autoid_protocol::verify::SessionCache for NoUnwrap {
        fn get(&mut self, _: &Proof) -> Option<autoid_protocol::verify::SessionKey> {
            None
        }
        fn put(&mut self, _: &Proof, _: &autoid_protocol::verify::SessionKey) {
            panic!("nothing to put");
        }
        fn allow_unwrap(&mut self) -> bool {
            panic!("a compact proof must not spend the cold-path budget");
        }
    }
    let got = verify(&ring, &Limits::default(), &header, &req, NOW, &mut NoUnwrap);
    assert_eq!(got, Err(autoid_protocol::Reject::UnknownSession));
    // The compact header is short: a reference of 22 characters instead of the wrapped key.
    assert!(header.len() <= 256, "{} bytes", header.len());
    assert_eq!(header.split('.').nth(2).unwrap().len(), 22);
}

/// The edge cases a third implementation gets wrong first (docs/PROTOCOL.md §9): each binding is
/// the value *as sent* (the gateway binds what it receives), so these differ from vector 1.
fn edge_vectors() -> Value {
    let get = |authority, path| Request {
        method: "GET",
        authority,
        path,
    };
    json!({
        "key_id": KID,
        "private_key_pem": "protocol/tests/vectors/gateway-2048.pem",
        "epoch": { "id": "e-test", "secret_hex": hex(&(0u8..32).collect::<Vec<_>>()), "file_size": 65536, "interval_count": 64 },
        "vectors": [
            // An explicit default port, as urllib sends it: bound as sent, not stripped.
            vector("edge-default-port", "alice", get("api.example.com:443", "/v1/payments"), None),
            // The authority is lowercased (ASCII) before it is bound: the same bytes as lowercase.
            vector("edge-authority-case", "alice", get("API.Example.COM", "/v1/payments"), None),
            // The method is bound as sent, case and all: `get` is not `GET`.
            vector("edge-method-case", "alice", Request { method: "get", authority: "api.example.com", path: "/v1/payments" }, None),
            // An empty query keeps its `?`.
            vector("edge-empty-query", "alice", get("api.example.com", "/v1/payments?"), None),
            // Percent-encoding is bound as sent, never decoded or re-encoded.
            vector("edge-percent", "alice", get("api.example.com", "/v1/caf%C3%A9/a%20b?q=%E2%9C%93&r=a+b"), None),
            // IPv6 in brackets with a port.
            vector("edge-ipv6", "alice", get("[::1]:8443", "/"), None),
            // A bound empty body is SHA-256(""), flags = 1.
            vector("edge-empty-body", "bob", Request { method: "POST", authority: "api.example.com", path: "/v1/transfers" }, Some(b"")),
        ],
    })
}

#[test]
fn the_edge_vectors_hold_byte_for_byte() {
    holds_byte_for_byte("v1-edges.json", edge_vectors());
}

#[test]
fn the_documented_vectors_hold_byte_for_byte() {
    holds_byte_for_byte("v1.json", all_vectors());
}

#[test]
fn the_vector_header_decodes_to_its_documented_parts() {
    let expected: Value = serde_json::from_str(include_str!("vectors/v1.json")).unwrap();
    let v = &expected["vectors"][0];
    let header = v["header"].as_str().unwrap();
    let parts: Vec<&str> = header.split('.').collect();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], "v1");
    assert_eq!(parts[1], KID);
    assert_eq!(B64.decode(parts[2]).unwrap().len(), 256);
    let sealed = B64.decode(parts[3]).unwrap();
    assert_eq!(hex(&sealed[..12]), v["iv_hex"].as_str().unwrap());
    // iv || ciphertext (same length as the payload) || 16-byte tag.
    assert_eq!(
        sealed.len(),
        12 + v["payload_hex"].as_str().unwrap().len() / 2 + 16
    );
}

#[test]
fn the_vectors_entropy_follows_from_the_subject_key() {
    // The agent hands the filter K, never the epoch: K's stream must be the documented entropy.
    use autoid_protocol::entropy::SubjectKey;
    for file in ["vectors/v1.json", "vectors/v1-edges.json"] {
        let path = format!("{}/tests/{file}", env!("CARGO_MANIFEST_DIR"));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for v in expected["vectors"].as_array().unwrap() {
            let subject = v["subject"].as_str().unwrap();
            let k = SubjectKey::from_base64(&epoch().subject_key(subject).to_base64()).unwrap();
            let mut first = [0u8; 32];
            k.stream().fill(0, &mut first);
            assert_eq!(
                hex(&first),
                v["entropy_first_32_bytes_hex"].as_str().unwrap()
            );
        }
    }
}
