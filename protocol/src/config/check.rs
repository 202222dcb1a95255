//! Checks shared by the sections: header names, group lists, bounded counts.

use super::error::{ConfigError, err};
use crate::{GROUP_NAME_RULE, valid_group_name};

/// A header name: lowercase RFC 9110 token characters, not a pseudo-header.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// Headers the filter must never be told to set: hop-by-hop, routing and framing.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// Checks a header name the filter is told to set or read.
pub(super) fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    if !valid_header_name(name) {
        return Err(err(
            path,
            format!("invalid header name {name:?} (lowercase token expected)"),
        ));
    }
    if RESERVED_HEADERS.contains(&name) {
        return Err(err(path, format!("header {name:?} is reserved")));
    }
    Ok(name.to_owned())
}

/// Checks a list of group names.
pub(super) fn group_list(path: &str, groups: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, g) in groups.iter().enumerate() {
        if g.trim().is_empty() {
            return Err(err(format!("{path}[{i}]"), "empty group name"));
        }
        if !valid_group_name(g) {
            return Err(err(
                format!("{path}[{i}]"),
                format!("invalid group name {g:?} ({GROUP_NAME_RULE})"),
            ));
        }
    }
    Ok(groups)
}

/// A count in `1..=max`, `default` when unset.
pub(super) fn positive(
    path: &str,
    value: Option<u32>,
    default: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        return Err(err(path, format!("{v} is out of range (1 to {max})")));
    }
    Ok(v)
}
