//! Building the LDAP filters from the configured templates (every value escaped with
//! `ldap3::ldap_escape`) and turning group entries and `memberOf` values into group names.

use std::collections::BTreeSet;

use crate::config::{GroupSource, GroupsConfig, UsersConfig};
use crate::dn;
use crate::template::render;

/// The filter that finds the user entry for `subject`.
pub fn user_filter(users: &UsersConfig, subject: &str) -> String {
    render(
        &users.filter,
        &[("{subject}", &ldap3::ldap_escape(subject))],
    )
}

/// The attributes to read from the user entry.
pub fn user_attributes<'a>(users: &'a UsersConfig, groups: &'a GroupsConfig) -> Vec<&'a str> {
    let mut attrs = vec![users.uid_attribute.as_str()];
    if groups.sources.contains(&GroupSource::MemberOf) {
        attrs.push(groups.member_of_attribute.as_str());
    }
    attrs
}

/// The user as the group searches need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub dn: String,
    /// The value matched against `memberUid`.
    pub uid: String,
    pub member_of: Vec<String>,
}

/// The entry's own identifier: its uid value equal byte for byte to the subject, else one equal
/// ignoring ASCII case, else its first uid value; `None` when the entry shows no uid value. It is
/// what the reply's `entry_subject` reports and what `memberUid` is matched against.
pub fn pick_uid(uids: &[String], subject: &str) -> Option<String> {
    uids.iter()
        .find(|u| *u == subject)
        .or_else(|| uids.iter().find(|u| u.eq_ignore_ascii_case(subject)))
        .or_else(|| uids.first())
        .cloned()
}

/// One search filter for all configured search-based sources, or `None` when only `memberOf` is
/// configured.
pub fn group_filter(groups: &GroupsConfig, user: &User) -> Option<String> {
    let uid = ldap3::ldap_escape(user.uid.as_str());
    let dn = ldap3::ldap_escape(user.dn.as_str());
    let mut parts = Vec::new();
    for source in &groups.sources {
        match source {
            GroupSource::PosixGroup => {
                parts.push(render(&groups.posix_group_filter, &[("{uid}", &uid)]))
            }
            GroupSource::GroupOfNames => {
                parts.push(render(&groups.group_of_names_filter, &[("{dn}", &dn)]))
            }
            GroupSource::GroupOfUniqueNames => parts.push(render(
                &groups.group_of_unique_names_filter,
                &[("{dn}", &dn)],
            )),
            GroupSource::MemberOf => {}
        }
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(format!("(|{})", parts.concat())),
    }
}

/// The name of a group entry found by search: the value of the name attribute in its RDN when
/// the RDN uses it (`cn=payments,...`), else every value of that attribute on the entry.
pub fn names_of_entry(entry_dn: &str, name_values: &[String], name_attribute: &str) -> Vec<String> {
    if let Ok(d) = dn::parse(entry_dn)
        && let Some(v) = d.leaf_value(name_attribute)
    {
        return vec![v.to_owned()];
    }
    name_values.to_vec()
}

/// Group names from `memberOf` DNs: the name attribute's value in the DN's leaf RDN, for DNs at
/// or under `groups_base` only (a group elsewhere in the tree does not count). Returns the names
/// and the values that were skipped (unparseable, outside the base, no name in the RDN).
pub fn names_from_member_of(
    values: &[String],
    name_attribute: &str,
    groups_base: &str,
) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut skipped = Vec::new();
    let base = dn::parse(groups_base).ok();
    for v in values {
        match dn::parse(v) {
            Ok(d) if base.as_ref().is_some_and(|b| d.is_within(b)) => {
                match d.leaf_value(name_attribute) {
                    Some(n) => names.push(n.to_owned()),
                    None => skipped.push(v.clone()),
                }
            }
            _ => skipped.push(v.clone()),
        }
    }
    (names, skipped)
}

/// Sorted and deduplicated.
pub fn finish(names: impl IntoIterator<Item = String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg() -> Config {
        Config::from_json(
            r#"{"ldap":{"url":"ldap://127.0.0.1:1","bind_dn":"cn=x"},
            "users":{"base":"dc=example,dc=org"},"groups":{"base":"ou=groups,dc=example,dc=org"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn render_is_single_pass() {
        assert_eq!(
            render("(a={dn})(b={uid})", &[("{dn}", "{uid}"), ("{uid}", "u")]),
            "(a={uid})(b=u)"
        );
        assert_eq!(render("é{x}é", &[("{x}", "1")]), "é1é");
    }

    #[test]
    fn hostile_subject_is_escaped() {
        let c = cfg();
        let f = user_filter(&c.users, "evil*)(uid=*))(|(uid=*");
        assert_eq!(
            f,
            r"(&(objectClass=posixAccount)(uid=evil\2a\29\28uid=\2a\29\29\28|\28uid=\2a))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
        assert_eq!(
            user_filter(&c.users, "*"),
            r"(&(objectClass=posixAccount)(uid=\2a))"
        );
        assert_eq!(
            user_filter(&c.users, "a\\b\0"),
            r"(&(objectClass=posixAccount)(uid=a\5cb\00))"
        );
    }

    #[test]
    fn group_filter_combines_sources() {
        let c = cfg();
        let u = User {
            dn: r"uid=x\2a,ou=people,dc=example,dc=org".into(),
            uid: "x*".into(),
            member_of: vec![],
        };
        let f = group_filter(&c.groups, &u).unwrap();
        assert_eq!(
            f,
            r"(|(&(objectClass=posixGroup)(memberUid=x\2a))(&(objectClass=groupOfNames)(member=uid=x\5c2a,ou=people,dc=example,dc=org))(&(objectClass=groupOfUniqueNames)(uniqueMember=uid=x\5c2a,ou=people,dc=example,dc=org)))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
    }

    #[test]
    fn member_of_names() {
        let (names, skipped) = names_from_member_of(
            &[
                "cn=reports,ou=groups,dc=example,dc=org".into(),
                "CN=Ops\\2C EU,OU=Groups,DC=example,DC=org".into(),
                "cn=admins,ou=legacy,dc=example,dc=org".into(),
                "garbage".into(),
            ],
            "cn",
            "ou=groups,dc=example,dc=org",
        );
        assert_eq!(names, vec!["reports", "Ops, EU"]);
        assert_eq!(skipped.len(), 2);
    }

    #[test]
    fn finish_sorts_and_dedups() {
        assert_eq!(
            finish(["b".to_string(), "a".into(), "b".into()]),
            vec!["a", "b"]
        );
    }

    #[test]
    fn uid_choice() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            pick_uid(&["Alice".into(), "al".into()], "alice"),
            some("Alice")
        );
        assert_eq!(
            pick_uid(&["Alice".into(), "alice".into()], "alice"),
            some("alice"),
            "the exact value first"
        );
        assert_eq!(pick_uid(&["al".into()], "alice@x"), some("al"));
        assert_eq!(pick_uid(&[], "alice"), None);
    }
}
