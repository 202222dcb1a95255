//! The filter's callouts as the host sees them: the agent's request headers and a reply read
//! within the size the filter parses.

use autoid_protocol::config::Agent;

use crate::decisions::MAX_REPLY_BYTES;
use crate::host::Host;

/// The callout reply being delivered: its status and body. An oversized body is never read: a
/// stand-in one byte over the limit fails to parse.
pub fn reply<H: Host + ?Sized>(host: &H, body_size: usize) -> (Option<u32>, Option<Vec<u8>>) {
    let status = host.callout_status();
    let body = if body_size > MAX_REPLY_BYTES {
        Some(vec![0u8; MAX_REPLY_BYTES + 1])
    } else {
        host.callout_body(body_size)
    };
    (status, body)
}

/// The `authorization` value for the agent's callouts: none over a unix socket, whose
/// permissions are the authentication.
pub fn bearer(agent: &Agent) -> Option<String> {
    agent.callout.token.as_ref().map(|t| format!("Bearer {t}"))
}

/// The headers of a callout to the agent (a JSON API): method, path, authority, the token if any.
pub fn agent_headers<'a>(
    agent: &'a Agent,
    method: &'a str,
    path: &'a str,
    auth: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        (":method", method),
        (":path", path),
        (":authority", agent.callout.authority.as_str()),
        ("accept", "application/json"),
    ];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    headers
}
