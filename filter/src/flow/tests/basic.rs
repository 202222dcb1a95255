//! HTTP Basic (`ldap_basic`) through the filter: the agent's bind, the worker's remembered
//! binds, the transport rule and the challenges.

use autoid_protocol::agent_api::AUTHENTICATE_PATH;
use base64::engine::general_purpose::STANDARD;

use super::*;

const LEGACY: &str = "/legacy/report";
const LEGACY_KEY: &str = "legacy-upstream-key";

/// [`static_config`] with two password APIs: `legacy` (Basic only, TLS required, `testgroup`)
/// and `both` (proof or Basic, plain HTTP from loopback, 10 s remembered binds).
fn basic_config() -> Value {
    let mut config = static_config();
    let apis = config["apis"].as_object_mut().unwrap();
    apis.insert(
        "legacy".to_owned(),
        json!({
            "require": { "any_of": ["testgroup"] },
            "inject": { "x-legacy-key": LEGACY_KEY },
            "identity": { "subject_header": "x-autoid-subject" },
            "auth": { "methods": ["ldap_basic"], "basic": { "realm": "legacy" } },
        }),
    );
    apis.insert(
        "both".to_owned(),
        json!({
            "require": { "any_of": ["payments", "testgroup"] },
            "identity": { "subject_header": "x-autoid-subject" },
            "auth": {
                "methods": ["proof", "ldap_basic"],
                "basic": { "plain_http": "loopback", "cache_ttl_secs": 10 },
            },
        }),
    );
    config
}

fn basic(pair: &str) -> String {
    format!("Basic {}", STANDARD.encode(pair))
}

fn tls_host(route: &str) -> FakeHost {
    FakeHost {
        tls: true,
        ..FakeHost::new(route)
    }
}

/// The agent's answer to a password check.
fn answer(host: &FakeHost, status: u32, body: &Value) {
    *host.answer.borrow_mut() = (Some(status), serde_json::to_vec(body).unwrap());
}

fn bound(subject: &str, groups: &[&str]) -> Value {
    json!({ "subject": subject, "authenticated": true, "groups": groups, "entry_subject": subject })
}

/// Sends `authorization` to `legacy`, answers the agent's bind with `status`/`body` if it was
/// asked, and returns the verdict and how many callouts were made in total.
fn login(
    host: &FakeHost,
    worker: &Worker,
    authorization: &str,
    agent: Option<(u32, Value)>,
) -> Verdict {
    host.request(LEGACY, &[("authorization", authorization)]);
    let mut flow = Flow::new(worker.state());
    let verdict = flow.on_request_headers(host, true);
    match agent {
        Some((status, body)) => {
            assert_eq!(verdict, Verdict::Pause, "waits for the agent");
            answer(host, status, &body);
            let len = host.answer.borrow().1.len();
            flow.on_callout(host, len)
        }
        None => verdict,
    }
}

#[test]
fn the_right_password_goes_upstream_as_the_user_and_the_bind_is_remembered() {
    let host = tls_host("legacy");
    let worker = worker(&host, &basic_config());
    let v = login(
        &host,
        &worker,
        &basic("test:test123"),
        Some((200, bound("test", &["testgroup"]))),
    );
    assert_eq!(v, Verdict::Continue);
    {
        let callouts = host.callouts.borrow();
        assert_eq!(callouts.len(), 1);
        assert_eq!(callouts[0].cluster, AGENT);
        assert_eq!(callouts[0].header(":path"), Some(AUTHENTICATE_PATH));
        let asked: Value = serde_json::from_slice(callouts[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(
            asked,
            json!({ "username": "test", "password": "test123", "source": "10.0.0.7" })
        );
    }
    assert!(host.replies.borrow().is_empty());
    assert!(
        host.values("authorization").is_empty(),
        "the client's password never goes upstream"
    );
    assert_eq!(host.values("x-legacy-key"), [LEGACY_KEY]);
    assert_eq!(host.values("x-autoid-subject"), ["test"]);
    assert_eq!(host.counter("autoid_basic_binds"), 1);

    // The same pair within the TTL: no bind.
    host.now_ms.set(host.now_ms.get() + 29_000);
    assert_eq!(
        login(&host, &worker, &basic("test:test123"), None),
        Verdict::Continue
    );
    assert_eq!(host.callouts.borrow().len(), 1);
    assert_eq!(host.counter("autoid_basic_cache_hits"), 1);
    assert_eq!(host.values("x-autoid-subject"), ["test"]);

    // Past it (a changed password takes effect): the agent binds again, and refuses.
    host.now_ms.set(host.now_ms.get() + 2_000);
    let refused = json!({ "subject": "test", "authenticated": false, "groups": [] });
    assert_eq!(
        login(&host, &worker, &basic("test:test123"), Some((200, refused))),
        Verdict::Pause
    );
    assert_eq!(host.reply().status, 401);
    assert_eq!(host.callouts.borrow().len(), 2);
}

#[test]
fn a_wrong_password_is_401_with_the_basic_challenge_and_is_never_remembered() {
    let host = tls_host("legacy");
    let worker = worker(&host, &basic_config());
    let refused = json!({ "subject": "test", "authenticated": false, "groups": [] });
    for _ in 0..2 {
        let v = login(
            &host,
            &worker,
            &basic("test:wrong"),
            Some((200, refused.clone())),
        );
        assert_eq!(v, Verdict::Pause);
        let reply = host.reply();
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json()["error"], "unauthorized");
        assert_eq!(
            reply.all("www-authenticate"),
            ["Basic realm=\"legacy\", charset=\"UTF-8\""]
        );
    }
    assert_eq!(
        host.callouts.borrow().len(),
        2,
        "each failure reaches the agent"
    );
    assert_eq!(host.counter("autoid_denied_basic_rejected"), 2);
    assert!(
        host.logs
            .borrow()
            .iter()
            .all(|(_, line)| !line.contains("wrong")),
        "no password in any log line"
    );
}

#[test]
fn malformed_empty_and_metacharacter_credentials_are_401_without_asking_the_agent() {
    let host = tls_host("legacy");
    let worker = worker(&host, &basic_config());
    for (value, reason) in [
        (basic("*:x"), "basic_malformed"),
        (basic("te(st:x"), "basic_malformed"),
        (basic("test)(|(uid=*:x"), "basic_malformed"),
        (basic("TEST:test123"), "basic_malformed"),
        ("Basic ***".to_owned(), "basic_malformed"),
        (basic("test:"), "basic_empty_password"),
    ] {
        assert_eq!(
            login(&host, &worker, &value, None),
            Verdict::Pause,
            "{value}"
        );
        assert_eq!(host.reply().status, 401, "{value}");
        assert!(
            host.counter(&format!("autoid_denied_{reason}")) > 0,
            "{value}"
        );
    }
    assert!(host.callouts.borrow().is_empty());

    // No credentials, or another scheme: 401 naming Basic.
    for value in ["Bearer abc", ""] {
        let extra: Vec<(&str, &str)> = if value.is_empty() {
            vec![]
        } else {
            vec![("authorization", value)]
        };
        host.request(LEGACY, &extra);
        let mut flow = Flow::new(worker.state());
        assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
        assert_eq!(host.reply().status, 401);
        assert!(
            host.reply()
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic ")
        );
    }
    // Two Basic headers: 401 without a bind.
    host.request(
        LEGACY,
        &[
            ("authorization", &basic("test:a")),
            ("authorization", &basic("test:b")),
        ],
    );
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    assert_eq!(host.reply().status, 401);
    assert!(host.callouts.borrow().is_empty());

    // An `Authorization` that is not UTF-8 (a client may send any byte): malformed, no bind.
    for value in [&b"Basic dGVzdDp0ZXN0\xe9"[..], b"\xff\xfe", b"Basic \x80"] {
        host.request(LEGACY, &[]);
        host.set_raw(b"Authorization", value);
        let mut flow = Flow::new(worker.state());
        assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
        assert_eq!(host.reply().status, 401, "{}", value.escape_ascii());
        assert!(host.counter("autoid_denied_basic_malformed") > 0);
    }
    assert!(host.callouts.borrow().is_empty());
}

#[test]
fn a_user_outside_the_group_is_403_and_a_throttled_one_429_with_retry_after() {
    let host = tls_host("legacy");
    let worker = worker(&host, &basic_config());
    let v = login(
        &host,
        &worker,
        &basic("bob:pw"),
        Some((200, bound("bob", &["readers"]))),
    );
    assert_eq!(v, Verdict::Pause);
    assert_eq!(host.reply().status, 403);
    assert!(host.values("x-legacy-key").is_empty());

    let held = json!({ "error": "throttled", "retry_after_secs": 17, "held": "username" });
    assert_eq!(
        login(&host, &worker, &basic("carol:pw"), Some((429, held))),
        Verdict::Pause
    );
    let reply = host.reply();
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("17"));
    assert_eq!(reply.json()["error"], "too_many_requests");

    // Another spelling of the user in the directory: refused as for proofs.
    let other = json!({ "subject": "dave", "authenticated": true, "groups": ["testgroup"], "entry_subject": "Dave" });
    drop(reply);
    assert_eq!(
        login(&host, &worker, &basic("dave:pw"), Some((200, other))),
        Verdict::Pause
    );
    assert_eq!(host.reply().status, 403);
    assert_eq!(host.counter("autoid_denied_subject_mismatch"), 1);
}

#[test]
fn an_agent_that_fails_is_503_and_nothing_goes_upstream() {
    let host = tls_host("legacy");
    let worker = worker(&host, &basic_config());
    for (status, body) in [
        (503, json!({ "error": "unavailable" })),
        (200, json!({ "nonsense": 1 })),
    ] {
        assert_eq!(
            login(&host, &worker, &basic("test:test123"), Some((status, body))),
            Verdict::Pause
        );
        assert_eq!(host.reply().status, 503);
        assert!(host.values("x-legacy-key").is_empty());
    }
    assert_eq!(host.counter("autoid_basic_failures"), 2);
}

#[test]
fn without_tls_a_password_is_refused_unless_the_api_allows_loopback_and_the_peer_is_local() {
    // `legacy` requires TLS: 403 before any bind, and no Basic challenge to lure a client.
    let host = FakeHost::new("legacy");
    let worker = worker(&host, &basic_config());
    assert_eq!(
        login(&host, &worker, &basic("test:test123"), None),
        Verdict::Pause
    );
    assert_eq!(host.reply().status, 403);
    assert_eq!(host.counter("autoid_denied_basic_over_plain_http"), 1);
    assert!(host.callouts.borrow().is_empty());

    // `both` from a remote peer without TLS: a password is refused; no credentials at all get
    // the proof's challenge only.
    let host = FakeHost::new("both");
    let worker = super::worker(&host, &basic_config());
    host.request("/both", &[("authorization", &basic("test:test123"))]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    assert_eq!(host.reply().status, 403);
    host.request("/both", &[]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    let challenges = host.reply().all("www-authenticate");
    assert_eq!(challenges.len(), 1);
    assert!(challenges[0].starts_with("AutoID "));

    // From loopback: both challenges, and the password is checked.
    let host = FakeHost {
        source: RefCell::new(Some("127.0.0.1:41000".to_owned())),
        ..FakeHost::new("both")
    };
    let worker = super::worker(&host, &basic_config());
    host.request("/both", &[]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    let challenges = host.reply().all("www-authenticate");
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[1].starts_with("Basic realm=\"autoid\""));
    host.request("/both", &[("authorization", &basic("test:test123"))]);
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Pause);
    answer(&host, 200, &bound("test", &["testgroup"]));
    let len = host.answer.borrow().1.len();
    assert_eq!(flow.on_callout(&host, len), Verdict::Continue);
    assert_eq!(host.values("x-autoid-subject"), ["test"]);
    let asked: Value =
        serde_json::from_slice(host.callouts.borrow()[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(asked["source"], "127.0.0.1");
}

#[test]
fn where_both_methods_are_accepted_a_proof_wins_and_its_nonce_is_claimed() {
    let host = FakeHost {
        source: RefCell::new(Some("127.0.0.1:41000".to_owned())),
        ..FakeHost::new("both")
    };
    let worker = super::worker(&host, &basic_config());
    let alice = Client::open("alice");
    let proof = alice.proof("/both", None);
    host.request(
        "/both",
        &[(PROOF, &proof), ("authorization", &basic("test:test123"))],
    );
    let mut flow = Flow::new(worker.state());
    assert_eq!(flow.on_request_headers(&host, true), Verdict::Continue);
    assert_eq!(host.values("x-autoid-subject"), ["alice"]);
    assert!(
        host.values("authorization").is_empty(),
        "stripped on an API that takes passwords"
    );
    assert!(host.callouts.borrow().is_empty(), "no bind");
    host.request("/both", &[(PROOF, &proof)]);
    let mut again = Flow::new(worker.state());
    assert_eq!(again.on_request_headers(&host, true), Verdict::Pause);
    assert_eq!(host.reply().status, 401);
}

/// The agent's 429 for a held `scope` (`username` or `source`), 5 s left.
fn throttled(scope: &str) -> Value {
    json!({ "error": "throttled", "retry_after_secs": 5, "held": scope })
}

/// Moves the fake client to `address`.
fn from(host: &FakeHost, address: &str) {
    *host.source.borrow_mut() = Some(address.to_owned());
}

#[test]
fn the_owners_remembered_bind_serves_only_the_owners_source() {
    let host = tls_host("legacy");
    let worker = worker(&host, &basic_config());
    let right = basic("test:test123");
    let ok = Some((200, bound("test", &["testgroup"])));
    assert_eq!(login(&host, &worker, &right, ok), Verdict::Continue);
    // A guesser elsewhere, while the agent holds the username back: the agent is asked (no
    // remembered bind answers for another source) and its 429 stands, right password or not.
    from(&host, "203.0.113.9:4000");
    for (pair, n) in [(basic("test:guess"), 2), (right.clone(), 3)] {
        let v = login(&host, &worker, &pair, Some((429, throttled("username"))));
        assert_eq!(v, Verdict::Pause);
        assert_eq!(host.reply().status, 429);
        assert_eq!(host.callouts.borrow().len(), n, "the agent decided");
    }
    assert_eq!(host.counter("autoid_basic_cache_hits"), 0);
    // A username hold is not a source hold: the owner's own source is still served at once.
    from(&host, "10.0.0.7:50001");
    assert_eq!(login(&host, &worker, &right, None), Verdict::Continue);
    assert_eq!(host.counter("autoid_basic_cache_hits"), 1);
}

#[test]
fn while_the_agent_holds_a_source_every_password_from_it_is_429_in_every_worker() {
    // The owner logged in from an address a guesser shares (a NAT): the agent holds the source
    // after the guesser's failures. The remembered bind must not tell the right password apart.
    let host = tls_host("legacy");
    let first = worker(&host, &basic_config());
    let second = worker(&host, &basic_config());
    let right = basic("test:test123");
    for w in [&first, &second] {
        let ok = Some((200, bound("test", &["testgroup"])));
        assert_eq!(login(&host, w, &right, ok), Verdict::Continue);
    }
    let v = login(
        &host,
        &first,
        &basic("test:guess"),
        Some((429, throttled("source"))),
    );
    assert_eq!((v, host.reply().status), (Verdict::Pause, 429));
    let asked = host.callouts.borrow().len();
    host.now_ms.set(host.now_ms.get() + 1_000);
    for w in [&first, &second] {
        for pair in [right.as_str(), &basic("test:guess"), &basic("bob:pw")] {
            assert_eq!(login(&host, w, pair, None), Verdict::Pause, "{pair}");
            let reply = host.reply();
            assert_eq!(reply.status, 429, "{pair}");
            assert_eq!(reply.header("retry-after"), Some("4"));
        }
    }
    assert_eq!(host.callouts.borrow().len(), asked, "no bind while held");
    assert_eq!(host.counter("autoid_basic_cache_hits"), 0);
    // Another source is not held.
    from(&host, "10.0.0.8:1");
    let ok = Some((200, bound("test", &["testgroup"])));
    assert_eq!(login(&host, &first, &right, ok), Verdict::Continue);
    // When the hold ends, the source's remembered bind serves again.
    from(&host, "10.0.0.7:50000");
    host.now_ms.set(host.now_ms.get() + 4_000);
    assert_eq!(login(&host, &second, &right, None), Verdict::Continue);
}
