//! The filter↔bridge contract (docs/BRIDGE.md): the JSON replies of `GET /v1/groups` and
//! `POST /v1/authenticate`, one type each, serialized by the bridge and parsed by the filter.

use serde::{Deserialize, Serialize};

/// The reply to `GET /v1/groups?subject=<subject>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsReply {
    /// The subject asked about, echoed byte for byte.
    pub subject: String,
    /// Whether exactly one directory entry matched.
    pub found: bool,
    /// The entry's group names, each obeying [`valid_group_name`](crate::valid_group_name)
    /// (empty when not found).
    pub groups: Vec<String>,
    /// The matched entry's own identifier (the value of the bridge's `users.uid_attribute`, as
    /// stored). LDAP matches ignoring case, so it may differ from `subject`; the filter then
    /// denies. Absent when not found (and from bridges older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_subject: Option<String>,
}

/// The reply to `POST /v1/authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateReply {
    /// The username asked about, echoed byte for byte.
    pub subject: String,
    /// Whether the password bound as that user.
    pub authenticated: bool,
    /// The user's group names, each obeying [`valid_group_name`](crate::valid_group_name)
    /// (empty when not authenticated).
    pub groups: Vec<String>,
    /// The matched entry's own identifier, as in [`GroupsReply::entry_subject`]. Absent when not
    /// authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_subject: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape() {
        let r = GroupsReply {
            subject: "carol".into(),
            found: true,
            groups: vec!["reports".into()],
            entry_subject: Some("Carol".into()),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"subject":"carol","found":true,"groups":["reports"],"entry_subject":"Carol"}"#
        );
        assert_eq!(serde_json::from_str::<GroupsReply>(&json).unwrap(), r);
        let not_found: GroupsReply =
            serde_json::from_str(r#"{"subject":"x","found":false,"groups":[]}"#).unwrap();
        assert_eq!(not_found.entry_subject, None);
        assert_eq!(
            serde_json::to_string(&not_found).unwrap(),
            r#"{"subject":"x","found":false,"groups":[]}"#
        );
        let auth = AuthenticateReply {
            subject: "alice".into(),
            authenticated: true,
            groups: vec![],
            entry_subject: Some("alice".into()),
        };
        assert_eq!(
            serde_json::to_string(&auth).unwrap(),
            r#"{"subject":"alice","authenticated":true,"groups":[],"entry_subject":"alice"}"#
        );
    }
}
