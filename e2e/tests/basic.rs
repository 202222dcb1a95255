//! HTTP Basic against the real directory through real Envoy: the filter asks the agent, which
//! binds to slapd as the user. `legacy` takes Basic over TLS only (binds remembered 2 s);
//! `local` takes a proof or Basic, Basic without TLS from loopback peers, and binds every time.
//! One stack for the file: each test uses its own users, and its own loopback source address
//! where failed passwords count against a source (the agent throttles per source).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::client::{Send, Wire, send_from};
use common::{Options, Response, Stack, eventually};

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start(&Options::default()))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// `GET path` on the plain-HTTP listener from loopback address `from`, over `wire`.
fn plain(from: &str, wire: Wire, path: &str, authorization: Option<&str>) -> Response {
    let s = stack();
    let mut req = Send::new("GET", path);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    send_from(Some(from.parse::<IpAddr>().unwrap()), s.http, wire, &req).unwrap()
}

/// `curl` over TLS with `-u user:password`: the HTTP version, the status and the body.
fn tls(http: &str, path: &str, user: &str, password: &str) -> (String, u16, String) {
    let s = stack();
    let out = Command::new("curl")
        .args(["-sS", http, "-u", &format!("{user}:{password}")])
        .arg("--cacert")
        .arg(s.path("tls/ca.pem"))
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://127.0.0.1:{}{path}", s.https.port()))
        .output()
        .expect("curl (apt-get install -y curl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, last) = stdout.rsplit_once('\n').unwrap();
    let (version, status) = last.split_once(' ').unwrap();
    (version.to_owned(), status.parse().unwrap(), body.to_owned())
}

fn challenges(r: &Response) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn the_right_password_reaches_the_upstream_over_tls_on_http1_and_http2() {
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (v, status, body) = tls(flag, "/legacy/report", "test", "test123");
        assert_eq!((v.as_str(), status), (version, 200), "{body}");
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            echo["headers"]["x-autoid-subject"],
            serde_json::json!(["test"])
        );
        assert_eq!(
            echo["headers"]["x-legacy-key"],
            serde_json::json!(["legacy-upstream-key"])
        );
        assert!(
            echo["headers"].get("authorization").is_none(),
            "the client's password reached the upstream: {echo}"
        );
    }
}

#[test]
fn without_tls_a_password_is_refused_unless_the_api_allows_loopback_peers() {
    // `legacy` requires TLS: 403, and no Basic challenge to lure a client into sending one.
    let r = plain(
        "127.0.0.1",
        Wire::Http1Length,
        "/legacy/x",
        Some(&basic("test", "test123")),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "forbidden");
    assert!(stack().counter("autoid_denied_basic_over_plain_http") >= 1);
    // `local` takes Basic from a loopback peer, over HTTP/1.1 and HTTP/2.
    for wire in [Wire::Http1Length, Wire::Http2] {
        let r = plain(
            "127.0.0.1",
            wire,
            "/local/x",
            Some(&basic("test", "test123")),
        );
        assert_eq!(r.status, 200, "{wire:?}: {}", r.text());
        assert_eq!(r.echoed("x-autoid-subject"), ["test"]);
        assert!(r.echoed("authorization").is_empty());
    }
    // No credentials on `local`: 401 naming both ways in.
    let r = plain("127.0.0.1", Wire::Http1Length, "/local/x", None);
    assert_eq!(r.status, 401);
    let c = challenges(&r);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(
        c[0].starts_with("AutoID ") && c[1] == "Basic realm=\"autoid\", charset=\"UTF-8\"",
        "{c:?}"
    );
}

#[test]
fn wrong_empty_unknown_and_metacharacter_credentials_are_401() {
    let from = "127.0.0.3";
    for (user, password) in [
        ("test", "wrong"),
        ("test", ""),
        ("nobody", "x"),
        ("*", "x"),
        ("evil*)(uid=*))(|(uid=*", "evil-pass"),
        ("test)(uid=*", "test123"),
        ("Test", "test123"),
        ("dup", "dup-pass"),
    ] {
        for wire in [Wire::Http1Length, Wire::Http2] {
            let r = plain(from, wire, "/local/x", Some(&basic(user, password)));
            assert_eq!(
                r.status,
                401,
                "{user:?}/{password:?} {wire:?}: {}",
                r.text()
            );
            assert_eq!(r.json()["error"], "unauthorized");
            assert!(challenges(&r).iter().any(|c| c.starts_with("Basic ")));
        }
    }
    // Nothing of the password reached Envoy's log.
    let log = stack().envoy_log();
    assert!(
        !log.contains("evil-pass") && !log.contains("test123"),
        "a password in Envoy's log"
    );
}

#[test]
fn a_user_outside_the_groups_is_403() {
    let r = plain(
        "127.0.0.4",
        Wire::Http1Length,
        "/local/x",
        Some(&basic("dave", "dave-pass")),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "forbidden");
    assert!(stack().counter("autoid_denied_not_in_groups") >= 1);
}

#[test]
fn a_burst_of_wrong_passwords_is_throttled_while_the_owner_and_others_still_log_in() {
    // alice logs in from her usual place first: that pair is known to the agent.
    let home = "127.0.0.1";
    let r = plain(
        home,
        Wire::Http1Length,
        "/local/x",
        Some(&basic("alice", "alice-pass")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // An attacker elsewhere guesses her password.
    let attacker = "127.0.0.9";
    let mut statuses = Vec::new();
    let held = eventually("the guesses throttled", Duration::from_secs(30), || {
        let r = plain(
            attacker,
            Wire::Http1Length,
            "/local/x",
            Some(&basic("alice", "guess")),
        );
        statuses.push(r.status);
        assert!(matches!(r.status, 401 | 429), "status {}", r.status);
        (r.status == 429).then_some(r)
    });
    assert!(
        statuses.len() > 1,
        "the first guesses are checked: {statuses:?}"
    );
    assert_eq!(held.json()["error"], "too_many_requests");
    let retry: u64 = held.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "retry-after {retry}");
    // The right password from the attacker's place is held too (no bind, no oracle).
    let r = plain(
        attacker,
        Wire::Http1Length,
        "/local/x",
        Some(&basic("alice", "alice-pass")),
    );
    assert_eq!(r.status, 429);
    // alice herself, from her known place, and another user are not locked out.
    let r = plain(
        home,
        Wire::Http1Length,
        "/local/x",
        Some(&basic("alice", "alice-pass")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = plain(
        "127.0.0.10",
        Wire::Http2,
        "/local/x",
        Some(&basic("test", "test123")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_remembered_bind_is_no_oracle_for_a_guesser_the_agent_holds_back() {
    // carol logs in from her usual place, on fresh connections (so on every Envoy worker): the
    // filter remembers her bind for 5 minutes.
    let home = "127.0.0.21";
    let carol = basic("carol", "carol-pass");
    let login = |from: &str, authorization: &str| {
        plain(
            from,
            Wire::Http1Length,
            "/remembered/x",
            Some(authorization),
        )
    };
    for _ in 0..8 {
        let r = login(home, &carol);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.echoed("x-autoid-subject"), ["carol"]);
    }
    // A guesser elsewhere fails until the agent holds carol's username back for 8 s or more
    // (each failure after the free ones doubles the hold; a held guess is not a failure).
    let attacker = "127.0.0.22";
    eventually("a hold of 8 s or more", Duration::from_secs(60), || {
        let r = login(attacker, &basic("carol", "guess"));
        assert!(matches!(r.status, 401 | 429), "{} {}", r.status, r.text());
        let retry: u64 = r.header("retry-after").map_or(0, |v| v.parse().unwrap());
        (r.status == 429 && retry >= 8).then_some(())
    });
    // The right password from the guesser's place is 429 too, on every worker: the answer does
    // not depend on the password while the hold lasts.
    for _ in 0..8 {
        let r = login(attacker, &carol);
        assert_eq!(r.status, 429, "an oracle: {}", r.text());
        assert_eq!(r.json()["error"], "too_many_requests");
        assert!(r.header("retry-after").is_some());
    }
    // carol, from her known place, is not locked out.
    let r = login(home, &carol);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_password_changed_with_ldappasswd_takes_effect_within_the_cache_ttl() {
    let s = stack();
    assert_eq!(tls("--http1.1", "/legacy/before", "bob", "bob-pass").1, 200);
    s.slapd
        .set_password("uid=bob,ou=people,dc=example,dc=org", "bob-new-pass")
        .unwrap();
    let changed = Instant::now();
    // The new password binds at once (nothing remembered for it).
    assert_eq!(tls("--http2", "/legacy/new", "bob", "bob-new-pass").1, 200);
    // The old one works at most until its remembered bind is 2 s old.
    eventually("the old password refused", Duration::from_secs(20), || {
        let (_, status, body) = tls("--http1.1", "/legacy/old", "bob", "bob-pass");
        assert!(matches!(status, 200 | 401), "status {status}: {body}");
        (status == 401).then_some(())
    });
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
}
