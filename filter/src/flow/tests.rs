//! A request's way through the filter, driven natively by a recording host: real proofs made
//! with the protocol's fixed test key and a fixed epoch, the worker configured from JSON as the
//! proxy would configure it, and assertions on what the host was asked to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: failing loudly is the point

use autoid_protocol::Request;
use autoid_protocol::client::{Form, Session};
use std::cell::RefCell;
use std::rc::Rc;

use autoid_protocol::agent_api::{ReplayBatchRequest, ReplayRequest, SessionReply, SessionRequest};
use autoid_protocol::config::Config;
use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::keys::GatewayKey;
use autoid_protocol::verify::Keyring;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use serde_json::{Value, json};

mod basic;

use super::Flow;
use crate::host::fake::{AUTHORITY, FakeHost, QUEUE, ROOT, START_SECS};
use crate::host::{Level, Verdict};
use crate::worker::Worker;

/// The fixed RSA-2048 test key of the protocol's vectors (never use it for anything else).
const KEY_PEM: &str = include_str!("../../../protocol/tests/vectors/gateway-2048.pem");
const KID: &str = "gw-2048";
const PROOF: &str = "x-autoid-proof";
const PATH: &str = "/v1/payments";
const PAYMENTS_AUTH: &str = "Bearer upstream-payments-secret";
const DIRECTORY_CLUSTER: &str = "autoid_directory";
const AGENT_TOKEN: &str = "bridge-token-0123456789abcdef";
const AGENT: &str = "autoid_agent";

/// The epoch every test shares: secret 0x42.., 64 KiB files, 64 intervals.
fn epoch() -> Epoch {
    Epoch::new("e1", [0x42; 32], 65536, 64).unwrap()
}

/// Two APIs: `payments` (any of `payments`; injects `authorization`, identity in
/// `x-autoid-subject` / `x-autoid-groups`) and `reports` (any of `readers`; injects
/// `x-reports-token`, a header `payments` manages only by stripping client copies). The key id
/// and the epoch's public parameters only, the agent at [`AGENT`] holding them; static groups:
/// alice is in payments and readers, bob in readers.
fn static_config() -> Value {
    let e = epoch();
    json!({
        "keys": [{ "kid": KID }],
        "epochs": [{ "id": e.id(), "file_size": e.file_size(), "interval_count": e.interval_count() }],
        "agent": { "cluster": AGENT, "timeout_ms": 500 },
        "static_groups": { "alice": ["payments", "readers"], "bob": ["readers"] },
        "apis": {
            "payments": {
                "require": { "any_of": ["payments"] },
                "inject": { "authorization": PAYMENTS_AUTH },
                "identity": {
                    "subject_header": "x-autoid-subject",
                    "groups_header": "x-autoid-groups",
                },
            },
            "reports": {
                "require": { "any_of": ["readers"] },
                "inject": { "x-reports-token": "rt-456" },
            },
        },
    })
}

/// [`static_config`] with groups from the agent instead.
fn directory_config() -> Value {
    let mut config = static_config();
    let map = config.as_object_mut().unwrap();
    map.remove("static_groups");
    map.insert(
        "directory".to_owned(),
        json!({
            "cluster": DIRECTORY_CLUSTER,
            "authority": "autoid-directory.internal",
            "token": AGENT_TOKEN,
            "timeout_ms": 250,
        }),
    );
    config
}

/// A worker configured from `config` on `host`, verifying with the fixed key and epoch in hand
/// instead of asking the agent: these tests drive the decisions, not the key plane (host-tests
/// answer the filter's key-plane callouts with the real agent). Configured a second before the
/// clients make their proofs (at `START_SECS`): the Envoy process started before them, so its
/// restart fence lets them through.
fn worker(host: &FakeHost, config: &Value) -> Worker {
    let key = GatewayKey::from_pem(KID, KEY_PEM).unwrap();
    configured(host, config, Keyring::new(vec![key], vec![epoch()]))
}

/// [`worker`] with the key at the agent (its sessions asked for with `POST /v1/sessions`), the
/// epoch's streams still in hand.
fn agent_worker(host: &FakeHost, config: &Value) -> Worker {
    configured(
        host,
        config,
        Keyring::new(Vec::new(), vec![epoch()]).with_agent_keys(vec![KID.to_owned()]),
    )
}

fn configured(host: &FakeHost, config: &Value, keyring: Keyring) -> Worker {
    let mut parsed = Config::from_json(config.to_string().as_bytes()).unwrap();
    parsed.keyring = keyring;
    let now = host.now_ms.get();
    host.now_ms.set(now - 1000);
    let mut worker = Worker::default();
    assert!(worker.apply(host, parsed));
    host.now_ms.set(now);
    worker
}

/// A caller: `subject`'s file of the shared epoch and one session with the gateway.
struct Client {
    file: EntropyFile,
    session: Session,
}

impl Client {
    fn open(subject: &str) -> Client {
        let public = GatewayKey::from_pem(KID, KEY_PEM).unwrap().public();
        Client {
            file: epoch().issue(subject).unwrap(),
            session: Session::open(&public, START_SECS, &mut UnwrapErr(SysRng)).unwrap(),
        }
    }

    /// A proof for `GET AUTHORITY path` at the start time, optionally binding `body`.
    fn proof(&self, path: &str, body: Option<&[u8]>) -> String {
        self.proof_at(path, body, START_SECS)
    }

    /// A proof for `GET AUTHORITY path` made at `at` (Unix seconds).
    fn proof_at(&self, path: &str, body: Option<&[u8]>, at: u64) -> String {
        let request = Request {
            method: "GET",
            authority: AUTHORITY,
            path,
        };
        self.session
            .prove(&self.file, &request, at, body, &mut UnwrapErr(SysRng))
            .unwrap()
    }

    /// A v2 proof for `GET AUTHORITY path` at the start time, in `form`.
    fn proof_v2(&self, path: &str, form: Form) -> String {
        let request = Request {
            method: "GET",
            authority: AUTHORITY,
            path,
        };
        self.session
            .prove_as(
                form,
                &self.file,
                &request,
                START_SECS,
                None,
                &mut UnwrapErr(SysRng),
            )
            .unwrap()
    }

    /// The agent's answer to this session's unwrap: the plaintext, `key || u64be(issued_at)`.
    fn session_reply(&self) -> Vec<u8> {
        let session: Value = serde_json::from_str(&self.session.to_json()).unwrap();
        let mut plaintext = URL_SAFE_NO_PAD
            .decode(session["key"].as_str().unwrap())
            .unwrap();
        plaintext.extend_from_slice(&self.session.issued_at().to_be_bytes());
        serde_json::to_vec(&SessionReply {
            session: URL_SAFE_NO_PAD.encode(plaintext),
            expires_at: None,
        })
        .unwrap()
    }
}

/// Asserts the host holds alice's allowed request as it goes upstream.
fn assert_upstream_as_alice(host: &FakeHost) {
    assert!(host.replies.borrow().is_empty(), "no local reply");
    assert!(
        host.values(PROOF).is_empty(),
        "the proof never goes upstream"
    );
    assert_eq!(host.values("authorization"), [PAYMENTS_AUTH]);
    assert_eq!(host.values("x-autoid-subject"), ["alice"]);
    assert_eq!(host.values("x-autoid-groups"), ["payments,readers"]);
}

#[test]
fn a_valid_proof_with_static_groups_goes_upstream_stripped_and_injected() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &static_config());
    let alice = Client::open("alice");
    let proof = alice.proof(PATH, None);
    host.request(
        PATH,
        &[
            (PROOF, &proof),
            ("authorization", "Bearer the-client-s-own"),
            ("X-Autoid-Subject", "mallory"),
            ("x-reports-token", "forged"),
        ],
    );

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Continue);

    assert_upstream_as_alice(&host);
    assert!(
        host.values("x-reports-token").is_empty(),
        "a client copy of a header another API injects is stripped"
    );
    assert!(host.callouts.borrow().is_empty());
    // The allowed counter is summed in the worker and handed to the host on the tick.
    assert_eq!(host.counter("autoid_requests_allowed"), 0);
    let mut worker = worker;
    worker.tick(&host);
    assert_eq!(host.counter("autoid_requests_allowed"), 1);

    // The nonce is claimed: the same proof again is a replay.
    host.request(PATH, &[(PROOF, &proof)]);
    let mut again = Flow::new(worker.state());
    assert_eq!(again.on_request_headers(&host, true), Verdict::Pause);
    assert_eq!(host.reply().status, 401);
    assert_eq!(host.counter("autoid_denied_replay"), 1);
}

#[test]
fn a_subject_outside_the_required_groups_is_forbidden_and_nothing_is_injected() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &static_config());
    let bob = Client::open("bob");
    let proof = bob.proof(PATH, None);
    host.request(PATH, &[(PROOF, &proof)]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);

    assert_eq!(host.reply().status, 403);
    assert!(host.values("authorization").is_empty());
    assert_eq!(host.counter("autoid_denied_not_in_groups"), 1);
}

#[test]
fn a_missing_proof_gets_the_uniform_401() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &static_config());
    host.request(PATH, &[]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);

    let reply = host.reply();
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("AutoID realm=\"autoid\", header=\"x-autoid-proof\"")
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        json!({ "error": "unauthorized", "request_id": "req-1" })
    );
    assert_eq!(host.counter("autoid_requests_denied"), 1);
    assert_eq!(host.counter("autoid_denied_missing"), 1);
    assert!(
        host.logs
            .borrow()
            .iter()
            .any(|(level, line)| *level == Level::Info && line.contains("reason=missing"))
    );
}

#[test]
fn an_unknown_route_is_forbidden_before_the_proof_is_read() {
    let host = FakeHost::new("nowhere");
    let worker = worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);

    let reply = host.reply();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(reply.json()["error"], "forbidden");
    assert_eq!(host.counter("autoid_denied_unknown_route"), 1);
    assert_eq!(
        host.counter("autoid_session_cache_miss"),
        0,
        "no proof read"
    );
}

#[test]
fn an_unconfigured_filter_fails_closed() {
    let host = FakeHost::new("payments");
    host.request(PATH, &[]);

    let mut flow = Flow::new(None);
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);

    let reply = host.reply();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
}

#[test]
fn the_directory_is_asked_and_its_answer_allows_the_request() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &directory_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, false), Verdict::Pause);
    assert!(host.replies.borrow().is_empty());
    {
        let callouts = host.callouts.borrow();
        assert_eq!(callouts.len(), 1);
        let callout = &callouts[0];
        assert_eq!(callout.cluster, DIRECTORY_CLUSTER);
        assert_eq!(callout.header(":method"), Some("GET"));
        assert_eq!(callout.header(":path"), Some("/v1/groups?subject=alice"));
        assert_eq!(
            callout.header("authorization"),
            Some(format!("Bearer {AGENT_TOKEN}").as_str())
        );
    }
    // Nothing goes upstream before the answer: body data is held.
    *host.body.borrow_mut() = b"data".to_vec();
    assert_eq!(flow.on_request_body(&host, 4, true), Verdict::Pause);
    assert_eq!(host.values("authorization"), Vec::<String>::new());

    let answer = json!({
        "subject": "alice",
        "found": true,
        "groups": ["payments", "readers"],
        "entry_subject": "alice",
    });
    *host.answer.borrow_mut() = (Some(200), serde_json::to_vec(&answer).unwrap());
    let len = host.answer.borrow().1.len();
    assert_eq!(flow.on_callout(&host, len), Verdict::Continue);

    assert_upstream_as_alice(&host);
    assert_eq!(host.counter("autoid_directory_callouts"), 1);
}

#[test]
fn a_failed_directory_callout_without_a_cached_decision_is_503() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &directory_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    // No `:status`: the callout timed out or was reset.
    *host.answer.borrow_mut() = (None, Vec::new());
    assert_eq!(flow.on_callout(&host, 0), Verdict::Pause);

    assert_eq!(host.reply().status, 503);
    assert!(host.values("authorization").is_empty());
    assert_eq!(host.counter("autoid_denied_directory"), 1);
    assert_eq!(host.counter("autoid_directory_failures"), 1);
}

#[test]
fn the_agent_unwraps_the_session_and_the_request_goes_on() {
    let host = FakeHost::new("payments");
    let worker = agent_worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    {
        let callouts = host.callouts.borrow();
        assert_eq!(callouts.len(), 1);
        assert_eq!(callouts[0].cluster, AGENT);
        assert_eq!(callouts[0].header(":method"), Some("POST"));
        assert_eq!(callouts[0].header(":path"), Some("/v1/sessions"));
        let asked: SessionRequest =
            serde_json::from_slice(callouts[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(asked.kid, KID);
    }

    *host.answer.borrow_mut() = (Some(200), alice.session_reply());
    let len = host.answer.borrow().1.len();
    assert_eq!(flow.on_callout(&host, len), Verdict::Continue);
    assert_upstream_as_alice(&host);
}

#[test]
fn a_compact_proof_needs_a_session_the_gateway_holds_and_then_costs_no_callout() {
    let host = FakeHost::new("payments");
    let worker = agent_worker(&host, &static_config());
    let alice = Client::open("alice");

    // Not held yet: the uniform 401 with the documented hint, no callout, no cold-path budget.
    host.request(PATH, &[(PROOF, &alice.proof_v2(PATH, Form::Compact))]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    {
        let reply = host.reply();
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("AutoID realm=\"autoid\", header=\"x-autoid-proof\", error=\"unknown_session\"")
        );
        assert_eq!(
            reply.json(),
            json!({ "error": "unauthorized", "request_id": "req-1" })
        );
    }
    assert!(host.callouts.borrow().is_empty());
    assert_eq!(host.counter("autoid_denied_unknown_session"), 1);

    // The full v2 form opens it through the agent.
    host.request(PATH, &[(PROOF, &alice.proof_v2(PATH, Form::Full))]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    *host.answer.borrow_mut() = (Some(200), alice.session_reply());
    let len = host.answer.borrow().1.len();
    assert_eq!(flow.on_callout(&host, len), Verdict::Continue);
    assert_upstream_as_alice(&host);

    // Then compact proofs go straight through, and each is still single-use.
    let compact = alice.proof_v2(PATH, Form::Compact);
    assert!(compact.len() <= 256, "{} bytes", compact.len());
    host.request(PATH, &[(PROOF, &compact)]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Continue);
    assert_upstream_as_alice(&host);
    assert_eq!(
        host.callouts.borrow().len(),
        1,
        "only the full form's unwrap"
    );
    host.request(PATH, &[(PROOF, &compact)]);
    let mut again = Flow::new(worker.state());
    assert_eq!(again.on_request_headers(&host, true), Verdict::Pause);
    assert_eq!(host.reply().status, 401);
    assert_eq!(host.counter("autoid_denied_replay"), 1);
}

#[test]
fn an_agent_that_does_not_answer_is_503_and_nothing_goes_upstream() {
    let host = FakeHost::new("payments");
    let worker = agent_worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    *host.answer.borrow_mut() = (Some(503), b"overloaded".to_vec());
    assert_eq!(flow.on_callout(&host, 10), Verdict::Pause);

    let reply = host.reply();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"], "unavailable");
    assert_eq!(host.counter("autoid_denied_agent"), 1);
    assert_eq!(host.counter("autoid_agent_session_failures"), 1);
    assert!(host.values("authorization").is_empty());
    assert_eq!(host.values(PROOF).len(), 1, "the headers were never edited");
}

#[test]
fn a_callout_the_host_refuses_is_503_dispatch() {
    let host = FakeHost {
        refuse_dispatch: true,
        ..FakeHost::new("payments")
    };
    let worker = agent_worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);

    assert_eq!(host.reply().status, 503);
    assert_eq!(host.counter("autoid_denied_dispatch"), 1);
}

#[test]
fn a_body_bound_proof_waits_for_the_whole_body() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &static_config());
    let alice = Client::open("alice");
    let body = br#"{"amount":100}"#;
    host.request(PATH, &[(PROOF, &alice.proof(PATH, Some(body)))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, false), Verdict::Pause);
    assert!(host.replies.borrow().is_empty(), "not decided yet");
    assert!(host.values("authorization").is_empty());

    // The first half arrives: still waiting.
    *host.body.borrow_mut() = body[..5].to_vec();
    assert_eq!(flow.on_request_body(&host, 5, false), Verdict::Pause);
    assert!(host.values("authorization").is_empty());

    *host.body.borrow_mut() = body.to_vec();
    assert_eq!(
        flow.on_request_body(&host, body.len(), true),
        Verdict::Continue
    );
    assert_upstream_as_alice(&host);
}

#[test]
fn a_body_other_than_the_one_proved_is_401() {
    let host = FakeHost::new("payments");
    let worker = worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, Some(b"amount=100")))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, false), Verdict::Pause);
    *host.body.borrow_mut() = b"amount=999".to_vec();
    // Trailers end the request.
    assert_eq!(flow.on_request_body(&host, 10, false), Verdict::Pause);
    assert_eq!(flow.on_request_trailers(&host), Verdict::Pause);

    assert_eq!(host.reply().status, 401);
    assert_eq!(host.counter("autoid_denied_body"), 1);
    assert!(host.values("authorization").is_empty());
}

/// A proof in its last valid second whose body ends after that second: the claim raced the
/// proof's expiry and is refused (401 `stale`), never won; one whose body ends in time is
/// recorded, so its copy is a replay.
#[test]
fn a_claim_made_after_the_proof_expired_while_its_body_arrived_is_refused_stale() {
    let body = br#"{"amount":100}"#;
    for (late_ms, allowed) in [(1000, false), (999, true)] {
        let host = FakeHost::new("payments");
        // Configured well before the proof is made: the restart fence lets it through.
        host.now_ms.set((START_SECS - 100) * 1000);
        let worker = worker(&host, &static_config());
        host.now_ms.set(START_SECS * 1000);
        let alice = Client::open("alice");
        // Made 60 s (the skew) ago: valid now, stale from the next second on.
        let proof = alice.proof_at(PATH, Some(body), START_SECS - 60);
        host.request(PATH, &[(PROOF, &proof)]);
        let mut flow = Flow::new(worker.state());
        assert_eq!(flow.on_request_headers(&host, false), Verdict::Pause);
        host.now_ms.set(START_SECS * 1000 + late_ms);
        *host.body.borrow_mut() = body.to_vec();
        let verdict = flow.on_request_body(&host, body.len(), true);
        if allowed {
            assert_eq!(verdict, Verdict::Continue, "{late_ms} ms late");
            assert_upstream_as_alice(&host);
            // Recorded: the same proof again, still in its last second, is a replay.
            host.request(PATH, &[(PROOF, &proof)]);
            let mut again = Flow::new(worker.state());
            assert_eq!(again.on_request_headers(&host, false), Verdict::Pause);
            assert_eq!(
                again.on_request_body(&host, body.len(), true),
                Verdict::Pause
            );
            assert_eq!(host.reply().status, 401);
            assert_eq!(host.counter("autoid_denied_replay"), 1);
        } else {
            assert_eq!(verdict, Verdict::Pause, "{late_ms} ms late");
            assert_eq!(host.reply().status, 401);
            assert_eq!(host.counter("autoid_denied_stale"), 1);
            assert!(host.values("authorization").is_empty());
            assert_eq!(host.counter("autoid_requests_allowed"), 0);
        }
    }
}

#[test]
fn a_header_edit_the_host_refuses_is_503_not_a_half_edited_request() {
    let host = FakeHost {
        refuse_edits: true,
        ..FakeHost::new("payments")
    };
    let mut worker = worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);

    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);

    assert_eq!(host.reply().status, 503);
    assert_eq!(host.counter("autoid_denied_host"), 1);
    worker.tick(&host);
    assert_eq!(host.counter("autoid_requests_allowed"), 0);
}

/// [`static_config`] with fleet replay through the agent (the key stays in the filter).
fn fleet_config(on_failure: &str) -> Value {
    let mut config = static_config();
    let map = config.as_object_mut().unwrap();
    map.insert(
        "agent".to_owned(),
        json!({ "cluster": AGENT, "timeout_ms": 500 }),
    );
    map.insert(
        "replay".to_owned(),
        json!({ "scope": "fleet", "fleet_timeout_ms": 300, "on_fleet_failure": on_failure }),
    );
    config
}

/// A fleet-scoped worker on `host` (its root context is the fake host's [`ROOT`]).
fn fleet_worker(host: &FakeHost, on_failure: &str) -> Worker {
    worker(host, &fleet_config(on_failure))
}

/// A request of alice's with a fresh proof, as the context `context`, up to its fleet claim:
/// paused, nothing edited yet.
fn until_fleet_claim(host: &FakeHost, worker: &Worker, context: u32) -> Rc<RefCell<Flow>> {
    host.open(context);
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);
    let flow = Rc::new(RefCell::new(Flow::new(worker.state())));
    Flow::attach(&flow, context);
    assert_eq!(
        flow.borrow_mut().on_request_headers(host, true),
        Verdict::Pause
    );
    assert_eq!(
        host.values(PROOF).len(),
        1,
        "nothing edited before the fleet answers"
    );
    flow
}

/// The root context wakes up on its queue and sends what waits: the batch's claims.
fn wake_root(host: &FakeHost, worker: &mut Worker) {
    host.switch(ROOT);
    assert_eq!(host.queued.borrow().len(), 1, "one kick");
    worker.on_queue_ready(host, QUEUE);
    assert!(host.queued.borrow().is_empty(), "the kick is drained");
}

/// The claims of the last callout, which must be a batch to the agent's `/v1/replay`.
fn last_batch(host: &FakeHost) -> Vec<ReplayRequest> {
    let callouts = host.callouts.borrow();
    let last = callouts.last().expect("a batch was sent");
    assert_eq!(last.cluster, AGENT);
    assert_eq!(last.header(":method"), Some("POST"));
    assert_eq!(last.header(":path"), Some("/v1/replay"));
    let batch: ReplayBatchRequest = serde_json::from_slice(last.body.as_deref().unwrap()).unwrap();
    batch.claims
}

/// The agent answers the last batch with `status` and `body`, in the root context.
fn answer_batch(host: &FakeHost, worker: &mut Worker, status: Option<u32>, body: &[u8]) {
    host.switch(ROOT);
    let token = u32::try_from(host.callouts.borrow().len()).unwrap();
    *host.answer.borrow_mut() = (status, body.to_vec());
    worker.on_callout(host, token, body.len());
}

/// The agent's 200 answer with these verdicts.
fn verdicts(verdicts: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "verdicts": verdicts })).unwrap()
}

#[test]
fn in_fleet_scope_a_request_goes_upstream_once_the_fleet_claims_its_nonce() {
    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "deny");
    let _flow = until_fleet_claim(&host, &worker, 2);
    assert!(
        host.callouts.borrow().is_empty(),
        "the root context sends the claim, not the request"
    );
    wake_root(&host, &mut worker);
    let claims = last_batch(&host);
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].expires_at,
        START_SECS + 61,
        "the proof's timestamp + skew + 1"
    );
    assert_eq!(
        claims[0].keep_until,
        Some(START_SECS + 121),
        "kept a skew window past the expiry"
    );
    assert_eq!(host.counter("autoid_replay_fleet_claims"), 1);
    assert_eq!(host.counter("autoid_replay_fleet_batches"), 1);

    answer_batch(&host, &mut worker, Some(200), &verdicts(&["claimed"]));
    assert_eq!(*host.resumed.borrow(), [2]);
    host.switch(2);
    assert_upstream_as_alice(&host);
}

#[test]
fn claims_arriving_while_a_batch_is_in_flight_go_out_together_and_each_gets_its_own_verdict() {
    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "deny");
    let _first = until_fleet_claim(&host, &worker, 2);
    wake_root(&host, &mut worker);
    assert_eq!(last_batch(&host).len(), 1);
    // Three more while the first is in flight: no kick, no callout.
    let _waiting: Vec<_> = (3..=5)
        .map(|c| until_fleet_claim(&host, &worker, c))
        .collect();
    assert!(host.queued.borrow().is_empty(), "no kick while in flight");
    assert_eq!(host.callouts.borrow().len(), 1);

    // The first answer sends the three at once.
    answer_batch(&host, &mut worker, Some(200), &verdicts(&["claimed"]));
    assert_eq!(host.callouts.borrow().len(), 2);
    assert_eq!(last_batch(&host).len(), 3);
    assert_eq!(host.counter("autoid_replay_fleet_claims"), 4);
    assert_eq!(host.counter("autoid_replay_fleet_batches"), 2);

    // Mixed verdicts: the second of the three was claimed by another replica.
    answer_batch(
        &host,
        &mut worker,
        Some(200),
        &verdicts(&["claimed", "replay", "claimed"]),
    );
    assert_eq!(*host.resumed.borrow(), [2, 3, 5]);
    for context in [2, 3, 5] {
        host.switch(context);
        assert_upstream_as_alice(&host);
    }
    host.switch(4);
    assert_eq!(host.reply().status, 401);
    assert!(host.values("authorization").is_empty());
    assert_eq!(host.counter("autoid_denied_replay"), 1);
    assert_eq!(host.counter("autoid_replays_rejected"), 1);
    assert_eq!(host.callouts.borrow().len(), 2, "nothing left to send");
}

/// The fleet found the proof expired when its claim arrived: 401 `stale`, not forwarded (the
/// claim was refused, not won unrecorded).
#[test]
fn a_claim_the_fleet_finds_stale_is_refused_401_and_not_forwarded() {
    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "local");
    let _flow = until_fleet_claim(&host, &worker, 2);
    wake_root(&host, &mut worker);
    answer_batch(&host, &mut worker, Some(200), &verdicts(&["stale"]));
    assert!(host.resumed.borrow().is_empty());
    host.switch(2);
    assert_eq!(host.reply().status, 401);
    assert!(host.values("authorization").is_empty());
    assert_eq!(host.counter("autoid_denied_stale"), 1);
    assert_eq!(host.counter("autoid_replay_fleet_failures"), 0);
    assert_eq!(host.counter("autoid_replay_fleet_degraded"), 0);
}

#[test]
fn a_request_gone_before_its_answer_is_skipped_and_the_others_are_decided() {
    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "deny");
    let _first = until_fleet_claim(&host, &worker, 2);
    wake_root(&host, &mut worker);
    let three = until_fleet_claim(&host, &worker, 3);
    let four = until_fleet_claim(&host, &worker, 4);
    let _five = until_fleet_claim(&host, &worker, 5);
    // 3 ends while it waits in the queue: its claim is never sent.
    host.reset(3);
    drop(three);
    answer_batch(&host, &mut worker, Some(200), &verdicts(&["claimed"]));
    assert_eq!(last_batch(&host).len(), 2, "4 and 5 only");
    // 4 ends while its batch is in flight: the proxy no longer knows its context.
    host.reset(4);
    answer_batch(
        &host,
        &mut worker,
        Some(200),
        &verdicts(&["claimed", "claimed"]),
    );
    assert_eq!(*host.resumed.borrow(), [2, 5]);
    host.switch(5);
    assert_upstream_as_alice(&host);
    // Its flow deleted too (the proxy dropped the context): nothing to decide either.
    drop(four);
}

#[test]
fn a_failed_batch_fails_every_claim_in_it_503_by_default_and_local_only_when_opted_in() {
    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "deny");
    let _flows: Vec<_> = [2, 3]
        .iter()
        .map(|c| until_fleet_claim(&host, &worker, *c))
        .collect();
    wake_root(&host, &mut worker);
    assert_eq!(last_batch(&host).len(), 2, "both in one batch");
    answer_batch(
        &host,
        &mut worker,
        Some(503),
        br#"{"error":"replay_unavailable"}"#,
    );
    for context in [2, 3] {
        host.switch(context);
        assert_eq!(host.reply().status, 503);
        assert!(host.values("authorization").is_empty());
    }
    assert!(host.resumed.borrow().is_empty());
    assert_eq!(host.counter("autoid_denied_replay_fleet"), 2);
    assert_eq!(host.counter("autoid_replay_fleet_failures"), 2);

    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "local");
    let _flows: Vec<_> = [2, 3]
        .iter()
        .map(|c| until_fleet_claim(&host, &worker, *c))
        .collect();
    wake_root(&host, &mut worker);
    // No answer at all (the callout timed out): the local claim alone decides, counted and logged.
    answer_batch(&host, &mut worker, None, b"");
    assert_eq!(*host.resumed.borrow(), [2, 3]);
    for context in [2, 3] {
        host.switch(context);
        assert_upstream_as_alice(&host);
    }
    assert_eq!(host.counter("autoid_replay_fleet_degraded"), 2);
    assert!(
        host.logs
            .borrow()
            .iter()
            .any(|(level, line)| *level == Level::Warn && line.contains("local replay check alone"))
    );
}

#[test]
fn a_batch_that_cannot_be_sent_or_a_kick_the_host_refuses_fails_closed() {
    let host = FakeHost {
        refuse_dispatch: true,
        ..FakeHost::new("payments")
    };
    let mut worker = fleet_worker(&host, "deny");
    let _flow = until_fleet_claim(&host, &worker, 2);
    wake_root(&host, &mut worker);
    host.switch(2);
    assert_eq!(host.reply().status, 503);
    assert_eq!(host.counter("autoid_replay_fleet_failures"), 1);

    let host = FakeHost {
        refuse_enqueue: true,
        ..FakeHost::new("payments")
    };
    let worker = fleet_worker(&host, "deny");
    host.open(2);
    let alice = Client::open("alice");
    host.request(PATH, &[(PROOF, &alice.proof(PATH, None))]);
    let flow = Rc::new(RefCell::new(Flow::new(worker.state())));
    Flow::attach(&flow, 2);
    assert_eq!(
        flow.borrow_mut().on_request_headers(&host, true),
        Verdict::Pause
    );
    assert_eq!(host.reply().status, 503);
    assert!(host.values("authorization").is_empty());
}

#[test]
fn a_batch_whose_answer_never_comes_fails_on_the_tick_and_the_queue_moves_on() {
    let host = FakeHost::new("payments");
    let mut worker = fleet_worker(&host, "deny");
    let _first = until_fleet_claim(&host, &worker, 2);
    wake_root(&host, &mut worker);
    let _second = until_fleet_claim(&host, &worker, 3);
    host.switch(ROOT);
    worker.tick(&host);
    assert_eq!(host.callouts.borrow().len(), 1, "not overdue yet");
    // Well past the 300 ms timeout (+ 2 s of grace).
    host.now_ms.set(host.now_ms.get() + 2400);
    worker.tick(&host);
    host.switch(2);
    assert_eq!(host.reply().status, 503);
    assert_eq!(host.callouts.borrow().len(), 2, "the queued claim went out");
    assert_eq!(last_batch(&host).len(), 1);
}

#[test]
fn a_proof_made_before_this_process_started_is_refused_by_the_restart_fence() {
    // The process configured the filter in the second alice made her proof: the process before
    // it may have lived into that second and accepted the proof.
    let host = FakeHost::new("payments");
    let alice = Client::open("alice");
    let proof = alice.proof(PATH, None);
    host.now_ms.set(host.now_ms.get() + 1000);
    let fenced = worker(&host, &static_config());
    host.request(PATH, &[(PROOF, &proof)]);
    let mut flow = Flow::new(fenced.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    assert_eq!(host.reply().status, 401);
    assert_eq!(host.reply().json()["error"], "unauthorized");
    assert_eq!(host.counter("autoid_denied_restart_fence"), 1);
    // A proof made now passes.
    let host = FakeHost::new("payments");
    host.now_ms.set(host.now_ms.get() + 1000);
    let worker = worker(&host, &static_config());
    let alice = Client::open("alice");
    host.request(
        PATH,
        &[(PROOF, &alice.proof_at(PATH, None, START_SECS + 1))],
    );
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Continue);
}
