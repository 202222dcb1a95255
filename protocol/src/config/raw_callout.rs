//! The raw JSON shape of a callout section (`agent`, `directory`): the fields every callout has,
//! then the section's own, in one object whose unknown fields are refused.
//!
//! serde's `flatten` would share the fields but turns `deny_unknown_fields` off, so the object is
//! read by hand here: an unknown, duplicate or missing field is the error serde's derive gives
//! (`unknown field `x`, expected one of ...`, at its line and column).

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// A callout section as written: where the callout goes, then the section's own fields.
#[derive(Debug)]
pub(super) struct RawCallout<S> {
    pub(super) cluster: String,
    pub(super) authority: Option<String>,
    /// Absent when the cluster reaches the agent over a unix socket (its permissions
    /// authenticate Envoy): then no `authorization` header is sent.
    pub(super) token: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    /// The section's own fields.
    pub(super) own: S,
}

/// `agent`.
pub(super) type RawAgent = RawCallout<RawAgentFields>;

/// `directory`.
pub(super) type RawDirectory = RawCallout<RawDirectoryFields>;

/// A section's own fields, read one at a time from the section's object.
pub(super) trait SectionFields: Default {
    /// What serde's derive would say the section is (`struct RawAgent`), for type errors.
    const EXPECTING: &'static str;
    /// Every field of the section: the callout's (`cluster`, `authority`, `token`,
    /// `timeout_ms`), then the section's own, in the order error messages list them.
    const FIELDS: &'static [&'static str];
    /// Reads the value of the section's own field `name` (one of [`Self::FIELDS`] past the
    /// callout fields).
    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error>;
}

/// `agent`'s own fields.
#[derive(Debug, Default)]
pub(super) struct RawAgentFields {
    pub(super) any_key: bool,
    pub(super) any_epoch: bool,
    pub(super) session_ttl_secs: Option<u64>,
    pub(super) max_stream_ttl_secs: Option<u64>,
}

impl SectionFields for RawAgentFields {
    const EXPECTING: &'static str = "struct RawAgent";
    const FIELDS: &'static [&'static str] = &[
        "cluster",
        "authority",
        "token",
        "timeout_ms",
        "any_key",
        "any_epoch",
        "session_ttl_secs",
        "max_stream_ttl_secs",
    ];

    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        match name {
            "any_key" => self.any_key = map.next_value()?,
            "any_epoch" => self.any_epoch = map.next_value()?,
            "session_ttl_secs" => self.session_ttl_secs = map.next_value()?,
            "max_stream_ttl_secs" => self.max_stream_ttl_secs = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `directory`'s own fields.
#[derive(Debug, Default)]
pub(super) struct RawDirectoryFields {
    pub(super) positive_ttl_secs: Option<u64>,
    pub(super) negative_ttl_secs: Option<u64>,
    pub(super) stale_if_error_secs: Option<u64>,
    pub(super) max_entries: Option<u32>,
}

impl SectionFields for RawDirectoryFields {
    const EXPECTING: &'static str = "struct RawDirectory";
    const FIELDS: &'static [&'static str] = &[
        "cluster",
        "authority",
        "token",
        "timeout_ms",
        "positive_ttl_secs",
        "negative_ttl_secs",
        "stale_if_error_secs",
        "max_entries",
    ];

    fn read<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        match name {
            "positive_ttl_secs" => self.positive_ttl_secs = map.next_value()?,
            "negative_ttl_secs" => self.negative_ttl_secs = map.next_value()?,
            "stale_if_error_secs" => self.stale_if_error_secs = map.next_value()?,
            "max_entries" => self.max_entries = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Reads and drops a value (never reached: the visitor only passes a section its own fields).
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<de::IgnoredAny>().map(|_| ())
}

impl<'de, S: SectionFields> Deserialize<'de> for RawCallout<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(S::EXPECTING, S::FIELDS, SectionVisitor(PhantomData))
    }
}

struct SectionVisitor<S>(PhantomData<S>);

impl<'de, S: SectionFields> Visitor<'de> for SectionVisitor<S> {
    type Value = RawCallout<S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(S::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cluster = None;
        let mut authority = None;
        let mut token = None;
        let mut timeout_ms = None;
        let mut own = S::default();
        // Bit i: S::FIELDS[i] was read.
        let mut seen = 0u64;
        while let Some(key) = map.next_key::<String>()? {
            let Some(i) = S::FIELDS.iter().position(|f| *f == key) else {
                return Err(de::Error::unknown_field(&key, S::FIELDS));
            };
            let name = S::FIELDS[i];
            if seen & (1 << i) != 0 {
                return Err(de::Error::duplicate_field(name));
            }
            seen |= 1 << i;
            match name {
                "cluster" => cluster = Some(map.next_value()?),
                "authority" => authority = map.next_value()?,
                "token" => token = map.next_value()?,
                "timeout_ms" => timeout_ms = map.next_value()?,
                _ => own.read(name, &mut map)?,
            }
        }
        Ok(RawCallout {
            cluster: cluster.ok_or_else(|| de::Error::missing_field("cluster"))?,
            authority,
            token,
            timeout_ms,
            own,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// serde's derive, for comparison: the shape `agent` had before its fields were shared.
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct RawAgent {
        cluster: String,
        #[serde(default)]
        authority: Option<String>,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default)]
        any_key: bool,
        #[serde(default)]
        any_epoch: bool,
        #[serde(default)]
        session_ttl_secs: Option<u64>,
        #[serde(default)]
        max_stream_ttl_secs: Option<u64>,
    }

    fn both(json: &str) -> (Result<super::RawAgent, String>, Result<RawAgent, String>) {
        (
            serde_json::from_str::<super::RawAgent>(json).map_err(|e| e.to_string()),
            serde_json::from_str::<RawAgent>(json).map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn every_section_lists_the_callout_fields_first() {
        const CALLOUT_FIELDS: [&str; 4] = ["cluster", "authority", "token", "timeout_ms"];
        assert_eq!(RawAgentFields::FIELDS[..4], CALLOUT_FIELDS);
        assert_eq!(RawDirectoryFields::FIELDS[..4], CALLOUT_FIELDS);
        assert!(RawAgentFields::FIELDS.len() <= 64 && RawDirectoryFields::FIELDS.len() <= 64);
    }

    #[test]
    fn errors_are_the_ones_serde_derive_gives() {
        for json in [
            r#"{"cluster": "a", "clustr": "b"}"#,
            r#"{"cluster": "a", "any_keys": true}"#,
            r#"{"authority": "a"}"#,
            r#"{"cluster": "a", "cluster": "b"}"#,
            r#"{"cluster": "a", "any_key": true, "any_key": false}"#,
            r#"{"cluster": 5}"#,
            r#"{"cluster": "a", "timeout_ms": -1}"#,
            r#"{"cluster": "a", "any_epoch": null}"#,
            r#"{"cluster": "a", "max_stream_ttl_secs": "5"}"#,
            r#""a string""#,
            r#"{"cluster": "a",}"#,
        ] {
            let (ours, derived) = both(json);
            let ours = ours.expect_err(json);
            assert_eq!(ours, derived.expect_err(json), "{json}");
        }
        assert!(
            both(r#"{"cluster": "a", "clustr": "b"}"#)
                .0
                .unwrap_err()
                .starts_with("unknown field `clustr`, expected one of `cluster`, `authority`")
        );
    }

    #[test]
    fn fields_are_read_into_their_places() {
        let raw: super::RawAgent = serde_json::from_str(
            r#"{"cluster": "c", "token": null, "timeout_ms": 7, "any_epoch": true,
                "max_stream_ttl_secs": 9}"#,
        )
        .unwrap();
        assert_eq!(raw.cluster, "c");
        assert_eq!(
            (raw.authority, raw.token, raw.timeout_ms),
            (None, None, Some(7))
        );
        assert!(raw.own.any_epoch && !raw.own.any_key);
        assert_eq!(
            (raw.own.session_ttl_secs, raw.own.max_stream_ttl_secs),
            (None, Some(9))
        );
        let raw: RawDirectory = serde_json::from_str(
            r#"{"max_entries": 3, "cluster": "d", "authority": "x", "stale_if_error_secs": 4}"#,
        )
        .unwrap();
        assert_eq!(
            (raw.cluster.as_str(), raw.authority.as_deref()),
            ("d", Some("x"))
        );
        assert_eq!(
            (
                raw.own.max_entries,
                raw.own.stale_if_error_secs,
                raw.own.positive_ttl_secs
            ),
            (Some(3), Some(4), None)
        );
    }
}
