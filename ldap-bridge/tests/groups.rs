//! `GET /v1/groups` against the seeded directory: every group style, combined and alone, and the
//! subjects that must not match anything.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Bridge, config, groups_of, shared};
use serde_json::json;

fn bridge_with_sources(sources: serde_json::Value) -> Bridge {
    let mut c = config(shared());
    c["groups"]["sources"] = sources;
    Bridge::start(c)
}

#[track_caller]
fn assert_groups(b: &Bridge, subject: &str, expected: &[&str]) {
    let (status, body) = b.groups(subject);
    assert_eq!(status, 200, "{subject}: {body}");
    assert_eq!(body["subject"], subject, "{body}");
    assert_eq!(body["found"], true, "{subject}: {body}");
    assert_eq!(groups_of(&body), expected, "{subject}: {body}");
}

#[track_caller]
fn assert_not_found(b: &Bridge, subject: &str) {
    let (status, body) = b.groups(subject);
    assert_eq!(status, 200, "{subject}: {body}");
    assert_eq!(
        body,
        json!({"subject": subject, "found": false, "groups": []})
    );
}

#[test]
fn all_sources_combined() {
    let b = Bridge::start(config(shared()));
    assert_groups(&b, "alice", &["payments", "reports"]); // posixGroup + groupOfNames/memberOf
    assert_groups(&b, "bob", &["payments"]);
    assert_groups(&b, "carol", &["admins", "reports"]); // groupOfUniqueNames + groupOfNames
    assert_groups(&b, "test", &["testgroup"]); // the tutorial setup
    assert_groups(&b, "ci-runner", &["deployers"]); // a service account under ou=services
    assert_groups(&b, "dave", &[]); // found, in no group
    // uid matching is case-insensitive; memberUid is matched with the entry's own uid value.
    assert_groups(&b, "ALICE", &["payments", "reports"]);
}

#[test]
fn unknown_and_ambiguous_subjects() {
    let b = Bridge::start(config(shared()));
    assert_not_found(&b, "nobody");
    assert_not_found(&b, "dup"); // two entries with uid=dup: refused
    assert_not_found(&b, "ldap-bridge"); // not a posixAccount
}

#[test]
fn filter_metacharacters_are_escaped() {
    let b = Bridge::start(config(shared()));
    // The hostile uid resolves to exactly that user, and its group is exactly the one that lists
    // the raw value as memberUid.
    assert_groups(&b, "evil*)(uid=*))(|(uid=*", &["quarantine"]);
    // A wildcard or an injection attempt matches nobody.
    for s in [
        "*",
        "a*",
        "*)(uid=*",
        "alice)(uid=*",
        "alice)(|(uid=*)",
        "\\2a",
        "alice\0",
        "(uid=alice)",
    ] {
        assert_not_found(&b, s);
    }
    // quarantine is nobody else's group.
    assert_groups(&b, "alice", &["payments", "reports"]);
}

#[test]
fn posix_group_only() {
    let b = bridge_with_sources(json!(["posix_group"]));
    assert_groups(&b, "alice", &["payments"]);
    assert_groups(&b, "test", &["testgroup"]);
    assert_groups(&b, "carol", &[]);
}

#[test]
fn group_of_names_only() {
    let b = bridge_with_sources(json!(["group_of_names"]));
    assert_groups(&b, "alice", &["reports"]);
    assert_groups(&b, "carol", &["reports"]);
    assert_groups(&b, "ci-runner", &["deployers"]);
    assert_groups(&b, "bob", &[]);
}

#[test]
fn group_of_unique_names_only() {
    let b = bridge_with_sources(json!(["group_of_unique_names"]));
    assert_groups(&b, "carol", &["admins"]);
    assert_groups(&b, "alice", &[]);
}

#[test]
fn member_of_only() {
    // No group search at all: names come from the memberOf values the overlay maintains.
    let b = bridge_with_sources(json!(["member_of"]));
    assert_groups(&b, "alice", &["reports"]);
    assert_groups(&b, "carol", &["reports"]);
    assert_groups(&b, "ci-runner", &["deployers"]);
    assert_groups(&b, "dave", &[]);
}

#[test]
fn member_of_outside_groups_base_is_ignored() {
    let mut c = config(shared());
    c["groups"]["sources"] = json!(["member_of"]);
    c["groups"]["base"] = json!("ou=elsewhere,dc=example,dc=org");
    let b = Bridge::start(c);
    assert_groups(&b, "alice", &[]);
}

#[test]
fn custom_user_filter() {
    let mut c = config(shared());
    c["users"]["filter"] = json!("(&(objectClass=inetOrgPerson)(mail={subject}))");
    let b = Bridge::start(c);
    assert_groups(&b, "alice@example.org", &["payments", "reports"]);
    assert_not_found(&b, "*@example.org");
}
