//! Pieces of nginx text: absolute paths, times, header names and variables, the uniform
//! bodies and their headers, field errors.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use crate::gateway::defs::ApiDef;

/// A field error: `file: path: message`.
pub(super) fn field(file: &Path, path: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: {path}: {message}", file.display())
}

/// A path as nginx opens it: absolute.
pub(super) fn absolute(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))?;
    let s = abs
        .to_str()
        .with_context(|| format!("{}: not UTF-8", abs.display()))?;
    if s.contains(['"', '\'', '\\', '$', ';', '{', '}']) || s.chars().any(char::is_whitespace) {
        bail!(
            "{}: nginx would misread this path (quote, backslash, $, ;, braces or white space)",
            abs.display()
        );
    }
    Ok(s.to_owned())
}

/// nginx time: `1500ms`, `2s`.
pub(super) fn ms(v: u64) -> String {
    if v.is_multiple_of(1000) {
        format!("{}s", v / 1000)
    } else {
        format!("{v}ms")
    }
}

/// A header name nginx can name in `$upstream_http_…` and in a variable: lowercase letters,
/// digits and `-` (nginx drops client headers with `_`).
pub(super) fn nginx_header(file: &Path, at: &str, name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(field(
            file,
            at,
            format!(
                "nginx can copy only header names of a-z 0-9 and - from the agent's answer \
                 (value: {name:?})"
            ),
        ));
    }
    Ok(name.replace('-', "_"))
}

/// The variable an injected header's value is kept in between the check and the proxying.
pub(super) fn var(name: &str) -> String {
    format!("$autoid_h_{}", name.replace('-', "_"))
}

/// Where the definition of managed header `name` of `api` sits, for errors.
pub(super) fn header_field(def: &ApiDef, name: &str) -> String {
    if def.auth.identity.subject_header.as_deref() == Some(name) {
        "auth.identity.subject_header".to_owned()
    } else if def.auth.identity.groups_header.as_deref() == Some(name) {
        "auth.identity.groups_header".to_owned()
    } else {
        format!("auth.inject.{name}")
    }
}

/// The uniform JSON body of a denial (filter/src/reply.rs: `error`, then `request_id`).
pub(super) fn body(error: &str) -> String {
    format!("'{{\"error\":\"{error}\",\"request_id\":\"$autoid_request_id\"}}'")
}

/// The headers of every uniform reply: HSTS on TLS, `cache-control: no-store`.
pub(super) fn reply_headers(out: &mut String, indent: &str, hsts: Option<u64>) {
    if let Some(age) = hsts {
        let _ = writeln!(
            out,
            "{indent}add_header Strict-Transport-Security \"max-age={age}\" always;"
        );
    }
    let _ = writeln!(out, "{indent}add_header Cache-Control \"no-store\" always;");
}
