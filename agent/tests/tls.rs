//! StartTLS and LDAPS with certificate verification against the throwaway CA, and verification
//! failing against another CA.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestAgent, config, groups_of, shared};
use serde_json::json;

fn other_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("other-ca.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&ca)
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=some other CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca
}

fn assert_alice_ok(b: &TestAgent) {
    let (status, body) = b.groups("alice");
    assert_eq!(status, 200, "{body}");
    assert_eq!(groups_of(&body), ["payments", "reports"]);
    assert_eq!(b.get_with("/readyz", None).0, 200);
    let (_, body) = b.authenticate("alice", "alice-pass");
    assert_eq!(body["authenticated"], true, "{body}");
}

fn assert_unavailable(b: &TestAgent) {
    assert_eq!(
        b.groups("alice"),
        (503, json!({"error": "directory_unavailable"}))
    );
    assert_eq!(b.get_with("/readyz", None).0, 503);
    assert_eq!(b.authenticate("alice", "alice-pass").0, 503);
}

#[test]
fn starttls_verified_against_the_ca() {
    let slapd = shared();
    let mut c = config(slapd);
    c["ldap"]["starttls"] = json!(true);
    c["ldap"]["ca_file"] = json!(slapd.ca_file);
    assert_alice_ok(&TestAgent::start(c));
}

#[test]
fn ldaps_verified_against_the_ca() {
    let slapd = shared();
    let mut c = config(slapd);
    c["ldap"]["url"] = json!(slapd.ldaps_url);
    c["ldap"]["ca_file"] = json!(slapd.ca_file);
    assert_alice_ok(&TestAgent::start(c));
}

#[test]
fn starttls_with_the_wrong_ca_fails() {
    let slapd = shared();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(slapd);
    c["ldap"]["starttls"] = json!(true);
    c["ldap"]["ca_file"] = json!(other_ca(dir.path()));
    assert_unavailable(&TestAgent::start(c));
}

#[test]
fn ldaps_with_the_wrong_ca_fails() {
    let slapd = shared();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(slapd);
    c["ldap"]["url"] = json!(slapd.ldaps_url);
    c["ldap"]["ca_file"] = json!(other_ca(dir.path()));
    assert_unavailable(&TestAgent::start(c));
}

#[test]
fn ldaps_without_a_ca_file_uses_system_roots_and_fails() {
    // The throwaway CA is not a system root: verification stays on and fails.
    let slapd = shared();
    let mut c = config(slapd);
    c["ldap"]["url"] = json!(slapd.ldaps_url);
    assert_unavailable(&TestAgent::start(c));
}

#[test]
fn insecure_skip_verify_is_an_explicit_opt_out() {
    let slapd = shared();
    let mut c = config(slapd);
    c["ldap"]["url"] = json!(slapd.ldaps_url);
    c["ldap"]["tls_insecure_skip_verify"] = json!(true);
    assert_alice_ok(&TestAgent::start(c));
}
