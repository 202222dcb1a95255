//! `GET /v1/groups` against the seeded directory: every group style, combined and alone, and the
//! subjects that must not match anything.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestAgent, config, groups_of, shared};
use serde_json::json;

fn agent_with_sources(sources: serde_json::Value) -> TestAgent {
    let mut c = config(shared());
    c["groups"]["sources"] = sources;
    TestAgent::start(c)
}

#[track_caller]
fn assert_groups(b: &TestAgent, subject: &str, expected: &[&str]) {
    let (status, body) = b.groups(subject);
    assert_eq!(status, 200, "{subject}: {body}");
    assert_eq!(body["subject"], subject, "{body}");
    assert_eq!(body["found"], true, "{subject}: {body}");
    assert_eq!(
        body["entry_subject"], subject,
        "the entry's own uid: {body}"
    );
    assert_eq!(groups_of(&body), expected, "{subject}: {body}");
}

/// A 400 naming the rule, and no directory work (the detail is the grammar's).
#[track_caller]
fn assert_refused(b: &TestAgent, subject: &str) {
    let (status, body) = b.groups(subject);
    assert_eq!(status, 400, "{subject:?}: {body}");
    assert_eq!(body["error"], "bad_request", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("subject "), "{subject:?}: {detail}");
    if !subject.is_empty() && subject.len() <= 64 {
        assert!(
            detail.contains("is not canonical: a subject is 1 to 64 bytes of lowercase ASCII"),
            "{subject:?}: {detail}"
        );
    }
}

#[track_caller]
fn assert_not_found(b: &TestAgent, subject: &str) {
    let (status, body) = b.groups(subject);
    assert_eq!(status, 200, "{subject}: {body}");
    assert_eq!(
        body,
        json!({"subject": subject, "found": false, "groups": []})
    );
}

#[test]
fn all_sources_combined() {
    let b = TestAgent::start(config(shared()));
    assert_groups(&b, "alice", &["payments", "reports"]); // posixGroup + groupOfNames/memberOf
    assert_groups(&b, "bob", &["payments"]);
    assert_groups(&b, "carol", &["admins", "reports"]); // groupOfUniqueNames + groupOfNames
    assert_groups(&b, "test", &["testgroup"]); // the tutorial setup
    assert_groups(&b, "ci-runner", &["deployers"]); // a service account under ou=services
    assert_groups(&b, "dave", &[]); // found, in no group
}

#[test]
fn non_canonical_subjects_are_refused_before_ldap() {
    // LDAP would answer each of these with alice's groups (uid matching ignores case and
    // surrounding spaces); the agent refuses them instead (docs/PROTOCOL.md, "Subjects").
    let b = TestAgent::start(config(shared()));
    for s in [
        "ALICE",
        "Alice",
        " alice",
        "alice ",
        "al\u{130}ce",
        "a,b",
        "",
        &"a".repeat(65),
    ] {
        assert_refused(&b, s);
    }
    let (status, body) = b.groups("alice");
    assert_eq!(
        (status, body["found"].clone()),
        (200, json!(true)),
        "{body}"
    );
}

#[test]
fn an_entry_stored_in_mixed_case_reports_its_own_uid() {
    // uid=Erin is matched by `erin` (LDAP ignores case); the reply says which entry answered, so
    // the filter can deny `erin` (docs/AGENT.md). memberUid is matched with the stored `Erin`.
    let b = TestAgent::start(config(shared()));
    let (status, body) = b.groups("erin");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"subject": "erin", "found": true, "groups": ["support"], "entry_subject": "Erin"})
    );
    assert_refused(&b, "Erin");
}

#[test]
fn invalid_group_names_are_dropped() {
    // cn=ops\,admins would read as `admins` once joined with `,` into x-autoid-groups. It is
    // dropped from every source that yields it; the rest of the answer stands.
    for sources in [
        json!([
            "posix_group",
            "group_of_names",
            "group_of_unique_names",
            "member_of"
        ]),
        json!(["group_of_names"]),
        json!(["member_of"]),
    ] {
        let b = agent_with_sources(sources.clone());
        let (status, body) = b.groups("erin");
        assert_eq!(status, 200, "{sources}: {body}");
        assert_eq!(body["found"], true, "{sources}: {body}");
        let groups = groups_of(&body);
        assert!(groups.iter().all(|g| !g.contains(',')), "{sources}: {body}");
        let expected: &[&str] = if sources.as_array().unwrap().len() == 4 {
            &["support"]
        } else {
            &[]
        };
        assert_eq!(groups, expected, "{sources}: {body}");
    }
}

#[test]
fn unknown_and_ambiguous_subjects() {
    let b = TestAgent::start(config(shared()));
    assert_not_found(&b, "nobody");
    assert_not_found(&b, "dup"); // two entries with uid=dup: refused
    assert_not_found(&b, "autoid-agent"); // not a posixAccount
}

#[test]
fn filter_metacharacters_never_reach_the_directory() {
    // No canonical subject holds a filter metacharacter, so these are refused with 400 before any
    // search (the escaping itself is unit-tested in src/groups.rs: `hostile_subject_is_escaped`).
    let b = TestAgent::start(config(shared()));
    for s in [
        "evil*)(uid=*))(|(uid=*",
        "*",
        "a*",
        "*)(uid=*",
        "alice)(uid=*",
        "alice)(|(uid=*)",
        "\\2a",
        "alice\0",
        "(uid=alice)",
    ] {
        assert_refused(&b, s);
    }
    // quarantine (whose only memberUid is the hostile value) is nobody else's group.
    assert_groups(&b, "alice", &["payments", "reports"]);
}

#[test]
fn posix_group_only() {
    let b = agent_with_sources(json!(["posix_group"]));
    assert_groups(&b, "alice", &["payments"]);
    assert_groups(&b, "test", &["testgroup"]);
    assert_groups(&b, "carol", &[]);
}

#[test]
fn group_of_names_only() {
    let b = agent_with_sources(json!(["group_of_names"]));
    assert_groups(&b, "alice", &["reports"]);
    assert_groups(&b, "carol", &["reports"]);
    assert_groups(&b, "ci-runner", &["deployers"]);
    assert_groups(&b, "bob", &[]);
}

#[test]
fn group_of_unique_names_only() {
    let b = agent_with_sources(json!(["group_of_unique_names"]));
    assert_groups(&b, "carol", &["admins"]);
    assert_groups(&b, "alice", &[]);
}

#[test]
fn member_of_only() {
    // No group search at all: names come from the memberOf values the overlay maintains.
    let b = agent_with_sources(json!(["member_of"]));
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
    let b = TestAgent::start(c);
    assert_groups(&b, "alice", &[]);
}

#[test]
fn custom_user_filter() {
    let mut c = config(shared());
    c["users"]["filter"] = json!("(&(objectClass=inetOrgPerson)(mail={subject}))");
    let b = TestAgent::start(c);
    // Found by mail; the entry's own identifier is still its `users.uid_attribute` value, so
    // the filter would deny `alice@example.org` (docs/AGENT.md: match on that attribute).
    let (status, body) = b.groups("alice@example.org");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["found"], true, "{body}");
    assert_eq!(body["entry_subject"], "alice", "{body}");
    assert_eq!(groups_of(&body), ["payments", "reports"]);
    assert_refused(&b, "*@example.org");
}
