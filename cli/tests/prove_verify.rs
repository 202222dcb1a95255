//! `prove` then `verify`: success, each rejection reason, subject checks, session reuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const URL: &str = "https://api.example:8443/v1/payments?limit=10";

#[test]
fn prove_then_verify_succeeds_and_prints_the_subject() {
    let f = Fixture::new();
    let h = f.prove("get", URL, &[]);
    assert!(h.starts_with("v3.gw-1."), "{h}");
    assert_eq!(
        parts(&h).len(),
        5,
        "v3's full form: its possession ticket last"
    );
    let v2 = f.prove("get", URL, &["--proof-version", "2"]);
    assert!(v2.starts_with("v2.gw-1."), "{v2}");
    assert_eq!(parts(&v2).len(), 4);
    assert_code(&f.verify(&v2, "GET", URL, &[]), 0);
    let v1 = f.prove("get", URL, &["--proof-version", "1"]);
    assert!(v1.starts_with("v1.gw-1."), "{v1}");
    assert_code(&f.verify(&v1, "GET", URL, &[]), 0);
    let o = f.verify(&h, "GET", URL, &[]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "ok subject=alice epoch=ep-1 kid=gw-1\n");
    // The authority is compared case-insensitively; an explicit default port is no port.
    assert_code(
        &f.verify(
            &h,
            "GET",
            "https://API.example:8443/v1/payments?limit=10",
            &[],
        ),
        0,
    );
    let h = f.prove("GET", "https://api.example:443/x", &[]);
    assert_code(&f.verify(&h, "GET", "https://api.example/x", &[]), 0);
}

#[test]
fn verify_rejects_other_bindings_with_open() {
    let f = Fixture::new();
    // v3's full form is refused earlier, at its possession ticket (docs/PROTOCOL.md §12).
    let v3 = f.prove("GET", URL, &[]);
    f.assert_rejected(&v3, "POST", URL, &[], "entropy");
    let h = f.prove("GET", URL, &["--proof-version", "2"]);
    f.assert_rejected(&h, "POST", URL, &[], "open");
    f.assert_rejected(
        &h,
        "GET",
        "https://api.example:8443/v1/refunds?limit=10",
        &[],
        "open",
    );
    f.assert_rejected(
        &h,
        "GET",
        "https://api.example:8443/v1/payments?limit=11",
        &[],
        "open",
    );
    f.assert_rejected(
        &h,
        "GET",
        "https://other.example:8443/v1/payments?limit=10",
        &[],
        "open",
    );
    f.assert_rejected(
        &h,
        "GET",
        "https://api.example/v1/payments?limit=10",
        &[],
        "open",
    );
}

#[test]
fn verify_rejects_a_changed_header_byte() {
    let f = Fixture::new();
    // v2: the sealed part is the last; v3's possession ticket has its own test below.
    let h = f.prove("GET", URL, &["--proof-version", "2"]);
    // Change one character in the middle of the sealed part (still valid base64url).
    let sealed_start = h.rfind('.').unwrap() + 1;
    let i = sealed_start + (h.len() - sealed_start) / 2;
    let mut bytes = h.clone().into_bytes();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    f.assert_rejected(&tampered, "GET", URL, &[], "open");
    // In the wrapped session key: the RSA unwrap fails.
    let wrapped_start = h.find(".gw-1.").unwrap() + 6;
    let mut bytes = h.clone().into_bytes();
    bytes[wrapped_start + 10] = if bytes[wrapped_start + 10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    f.assert_rejected(
        &String::from_utf8(bytes).unwrap(),
        "GET",
        URL,
        &[],
        "unwrap",
    );
    // Not a header at all.
    f.assert_rejected("v1.gw-1.nope", "GET", URL, &[], "malformed");
}

#[test]
fn a_v3_proof_by_default_whose_wrapped_key_changed_fails_its_possession_ticket_before_rsa() {
    let f = Fixture::new();
    let h = f.prove("GET", URL, &[]);
    assert_code(&f.verify(&h, "GET", URL, &[]), 0);
    // Another wrapped key under the same ticket: the ticket's tag covers the session id.
    let wrapped_start = h.find(".gw-1.").unwrap() + 6;
    let mut bytes = h.clone().into_bytes();
    bytes[wrapped_start + 10] = if bytes[wrapped_start + 10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    f.assert_rejected(
        &String::from_utf8(bytes).unwrap(),
        "GET",
        URL,
        &[],
        "entropy",
    );
}

#[test]
fn verify_rejects_a_proof_past_the_skew_window_as_stale() {
    let f = Fixture::new();
    // v2: the session's age is judged before the proof's time. (v3's full form checks its
    // ticket's time first, before any RSA: `stale` then, docs/PROTOCOL.md §12.)
    let h = f.prove("GET", URL, &["--proof-version", "2"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let later = (now + 61 + 60).to_string();
    f.assert_rejected(&h, "GET", URL, &["--now", &later], "stale");
    let much_later = (now + 2 * 3600).to_string();
    f.assert_rejected(&h, "GET", URL, &["--now", &much_later], "session_expired");
    assert_code(
        &f.verify(&h, "GET", URL, &["--now", &(now + 30).to_string()]),
        0,
    );
}

#[test]
fn verify_rejects_the_wrong_epoch_file() {
    let f = Fixture::new();
    let h = f.prove("GET", URL, &[]);
    // Same id, another secret: the digest does not match.
    let same_id = f.path("ep-1-other.json");
    ok(&[
        "epoch",
        "new",
        "--out",
        &s(&same_id),
        "--id",
        "ep-1",
        "--file-size",
        "64KiB",
    ]);
    f.assert_rejected(&h, "GET", URL, &["--epoch", &s(&same_id)], "entropy");
    // Another id: the gateway does not know the proof's epoch.
    let other = f.path("ep-2.json");
    ok(&["epoch", "new", "--out", &s(&other), "--id", "ep-2"]);
    f.assert_rejected(&h, "GET", URL, &["--epoch", &s(&other)], "unknown_epoch");
    // Both epochs configured (rotation overlap): the right one is found.
    let o = f.verify(
        &h,
        "GET",
        URL,
        &["--epoch", &s(&other), "--epoch", &s(&f.epoch)],
    );
    assert_code(&o, 0);
}

#[test]
fn another_subjects_entropy_cannot_prove_alice() {
    let f = Fixture::new();
    // carol's file proves carol, never alice.
    let args = [
        "prove",
        "--public-key",
        &s(&f.public_key),
        "--entropy",
        &s(&f.carol),
        "--subject",
        "carol",
        "--url",
        URL,
    ];
    let h = ok(&args).trim_end().to_owned();
    assert_eq!(
        stdout(&f.verify(&h, "GET", URL, &[])),
        "ok subject=carol epoch=ep-1 kid=gw-1\n"
    );
    // carol's bytes relabelled as alice's file: the gateway derives alice's entropy and rejects.
    let mut bytes = std::fs::read(&f.carol).unwrap();
    let at = bytes.windows(5).position(|w| w == b"carol").unwrap();
    bytes[at..at + 5].copy_from_slice(b"alice");
    let forged = f.path("forged.entropy");
    std::fs::write(&forged, &bytes).unwrap();
    let args = [
        "prove",
        "--public-key",
        &s(&f.public_key),
        "--entropy",
        &s(&forged),
        "--subject",
        "alice",
        "--url",
        URL,
    ];
    let h = ok(&args).trim_end().to_owned();
    f.assert_rejected(&h, "GET", URL, &[], "entropy");
}

#[test]
fn subject_not_matching_the_entropy_file_exits_3_with_a_clear_message() {
    let f = Fixture::new();
    let o = autoid(&[
        "prove",
        "--public-key",
        &s(&f.public_key),
        "--entropy",
        &s(&f.alice),
        "--subject",
        "carol",
        "--url",
        URL,
    ]);
    assert_code(&o, 3);
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("alice.entropy")
            && err.contains("belongs to subject \"alice\"")
            && err.contains("\"carol\""),
        "{err}"
    );
}

#[test]
fn kid_is_inferred_from_the_file_name_or_given() {
    let f = Fixture::new();
    let renamed = f.path("gateway.pem");
    std::fs::copy(&f.public_key, &renamed).unwrap();
    let args = [
        "prove",
        "--public-key",
        &s(&renamed),
        "--entropy",
        &s(&f.alice),
        "--subject",
        "alice",
        "--url",
        URL,
    ];
    let o = autoid(&args);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--kid"), "{}", stderr(&o));
    let mut with_kid = args.to_vec();
    with_kid.extend(["--kid", "gw-1"]);
    let h = ok(&with_kid).trim_end().to_owned();
    assert_code(&f.verify(&h, "GET", URL, &[]), 0);
    // A proof for another key id is unknown to this private key.
    let mut other_kid = args.to_vec();
    other_kid.extend(["--kid", "gw-2"]);
    let h = ok(&other_kid).trim_end().to_owned();
    f.assert_rejected(&h, "GET", URL, &[], "unknown_key");
}

#[test]
fn prove_with_session_reuses_the_wrapped_key() {
    let f = Fixture::new();
    let session = f.path("session.json");
    let a = f.prove("GET", URL, &["--session", &s(&session)]);
    #[cfg(unix)]
    assert_eq!(mode(&session), 0o600);
    let stored = std::fs::read_to_string(&session).unwrap();
    let b = f.prove("GET", URL, &["--session", &s(&session)]);
    assert_eq!(parts(&a)[2], parts(&b)[2], "same wrapped session key");
    assert_ne!(a, b, "a fresh proof each time");
    assert_eq!(
        std::fs::read_to_string(&session).unwrap(),
        stored,
        "session file untouched"
    );
    let va = f.verify(&a, "GET", URL, &["-v"]);
    let vb = f.verify(&b, "GET", URL, &["-v"]);
    assert_code(&va, 0);
    assert_code(&vb, 0);
    let line = |o: &std::process::Output, key: &str| {
        stdout(o)
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_owned()
    };
    assert_eq!(line(&va, "session="), line(&vb, "session="));
    assert_ne!(line(&va, "nonce="), line(&vb, "nonce="));
    // Without --session each call opens a new session.
    let c = f.prove("GET", URL, &[]);
    assert_ne!(parts(&a)[2], parts(&c)[2]);
    // A session file that is not one is replaced, with a warning.
    std::fs::write(&session, "garbage").unwrap();
    let d = f.prove("GET", URL, &["--session", &s(&session)]);
    assert_ne!(parts(&a)[2], parts(&d)[2]);
    assert!(
        std::fs::read_to_string(&session)
            .unwrap()
            .contains("autoid_session")
    );
}

#[test]
fn an_expired_stored_session_is_replaced() {
    let f = Fixture::new();
    let session = f.path("session.json");
    let a = f.prove("GET", URL, &["--session", &s(&session)]);
    // A gateway lifetime shorter than the renewal margin: the stored session is never reused.
    let b = f.prove(
        "GET",
        URL,
        &["--session", &s(&session), "--session-lifetime", "60"],
    );
    assert_ne!(parts(&a)[2], parts(&b)[2]);
    let c = f.prove("GET", URL, &["--session", &s(&session)]);
    assert_eq!(parts(&b)[2], parts(&c)[2]);
}

#[test]
fn a_bound_body_is_checked() {
    let f = Fixture::new();
    let body = f.path("body.json");
    std::fs::write(&body, b"{\"amount\":5}").unwrap();
    let h = f.prove("POST", URL, &["--body-file", &s(&body)]);
    let o = f.verify(&h, "POST", URL, &["--body-file", &s(&body), "-v"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("body=checked"), "{}", stdout(&o));
    let other = f.path("other.json");
    std::fs::write(&other, b"{\"amount\":500}").unwrap();
    f.assert_rejected(&h, "POST", URL, &["--body-file", &s(&other)], "body");
}
