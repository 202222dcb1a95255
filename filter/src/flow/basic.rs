//! HTTP Basic checked by a directory bind (`auth.methods: ["ldap_basic"]`): the credentials are
//! parsed here; a source the agent's throttle holds (`crate::holds`) is answered 429 whatever the
//! password; a bind this worker remembers for the same username, source and password
//! (`crate::binds`) decides at once; anything else asks the agent (`POST /v1/authenticate`, which
//! binds as the user and throttles failures), and the groups it answers with decide as a proof's
//! would.

use std::net::{IpAddr, SocketAddr};

use autoid_protocol::agent_api::{AUTHENTICATE_PATH, AuthenticateReply};
use autoid_protocol::config::{Api, Basic, PlainHttp};
use autoid_protocol::{valid_group_name, valid_subject};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::{Caller, Flow, Pending};
use crate::holds;
use crate::host::{HttpHost, Level, Verdict};
use crate::metrics::Counter;
use crate::reply::{Denial, Forbid, Password, Unavailable};
use crate::state::State;

/// The longest password passed to the agent (the agent's own limit).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Standard base64, padded or not (RFC 7617 says padded; some clients drop it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether an `Authorization` value uses the Basic scheme (case-insensitive, RFC 9110).
pub(super) fn is_basic(value: &str) -> bool {
    value
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// The username and password of a Basic `Authorization` value, if well formed: base64 of
/// `user:password` in UTF-8, the user a canonical subject (no LDAP filter metacharacters, no
/// case variants), the password at most [`MAX_PASSWORD_LEN`] bytes (it may be empty here; the
/// caller refuses that).
pub(super) fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(rest.trim_matches(' ')).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    if !valid_subject(user) || password.len() > MAX_PASSWORD_LEN {
        return None;
    }
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `address` (`ip:port`, or a bare IP) is a loopback peer, IPv4-mapped IPv6 included.
pub(super) fn is_loopback(address: &str) -> bool {
    let ip = address
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| address.parse::<IpAddr>());
    match ip {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// The peer's IP without its port, as the agent's per-source throttle keys it.
fn source_ip(address: &str) -> Option<String> {
    address
        .parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .or_else(|_| address.parse::<IpAddr>().map(|ip| ip.to_string()))
        .ok()
}

/// The agent's 429 body.
#[derive(Deserialize)]
struct Throttled {
    retry_after_secs: u32,
    /// What the agent holds back: `source` (every username from the client's address) or
    /// `username` (this username from an address not known for it). Missing: treated as
    /// `source` (fail closed).
    #[serde(default)]
    held: Option<String>,
}

/// The longest `Retry-After` passed on (the agent's longest hold is 300 s).
const MAX_RETRY_AFTER_SECS: u32 = 3600;

impl Flow {
    /// Whether this connection may carry a password to `basic`'s API: TLS always; without TLS
    /// as `plain_http` says.
    pub(super) fn transport_allows<H: HttpHost>(&self, host: &H, basic: &Basic) -> bool {
        match basic.plain_http {
            PlainHttp::Allow => true,
            _ if host.downstream_tls() => true,
            PlainHttp::Loopback => host.source_address().is_some_and(|a| is_loopback(&a)),
            PlainHttp::Refuse => false,
        }
    }

    /// Checks a Basic `Authorization` value: a remembered bind decides at once; otherwise the
    /// agent binds (`Pause` until it answers).
    pub(super) fn basic<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api: &Api,
        basic: &Basic,
        value: &str,
    ) -> Verdict {
        let Some((username, password)) = parse_basic(value) else {
            self.deny(host, Denial::Password(Password::Malformed), None);
            return Verdict::Pause;
        };
        if password.is_empty() {
            self.deny(host, Denial::Password(Password::Empty), Some(&username));
            return Verdict::Pause;
        }
        let source = host.source_address().as_deref().and_then(source_ip);
        if let Some(source) = &source {
            // During a hold the answer must not depend on the password: no remembered bind.
            // Shared data failing leaves the decision to the agent (it holds the source too).
            if let Ok(Some(left_ms)) = holds::held(host.store(), source, host.now_ms()) {
                let retry = u32::try_from(left_ms.div_ceil(1000))
                    .unwrap_or(MAX_RETRY_AFTER_SECS)
                    .clamp(1, MAX_RETRY_AFTER_SECS);
                self.deny(host, Denial::Throttled(retry), Some(&username));
                return Verdict::Pause;
            }
        }
        let key = state
            .binds
            .borrow()
            .key_of(&username, source.as_deref(), password.as_bytes());
        let remembered = state
            .binds
            .borrow()
            .get(&key, host.now_ms(), basic.cache_ttl_secs)
            .map(|b| (b.subject.clone(), b.groups.clone()));
        if let Some((subject, groups)) = remembered {
            state.count(host, Counter::BasicCacheHits);
            return self.decide(host, state, api, Caller::Password(&subject), Some(&groups));
        }
        let Some(agent) = &state.config.agent else {
            // Configuration guarantees an agent for `ldap_basic`; fail closed all the same.
            self.deny(
                host,
                Denial::Unavailable(Unavailable::Agent),
                Some(&username),
            );
            return Verdict::Pause;
        };
        let body = serde_json::json!({
            "username": username,
            "password": password,
            "source": source,
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        if !self.post_to_agent(host, agent, AUTHENTICATE_PATH, &body) {
            state.count(host, Counter::BasicFailures);
            self.deny(
                host,
                Denial::Unavailable(Unavailable::Dispatch),
                Some(&username),
            );
            return Verdict::Pause;
        }
        state.count(host, Counter::BasicBinds);
        self.pending = Pending::Password { username, key };
        Verdict::Pause
    }

    /// The agent answered a password check: remembers a bind and decides with its groups, or
    /// denies (401 refused, 429 throttled, 403 another spelling of the user, 503 no answer).
    pub(super) fn password_answer<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        (username, key): (&str, [u8; 32]),
        status: Option<u32>,
        body: &[u8],
    ) -> Verdict {
        let Some(api) = self.route_api(host, state, &self.route, username) else {
            return Verdict::Pause;
        };
        let denial = match status {
            Some(200) => match serde_json::from_slice::<AuthenticateReply>(body) {
                Ok(reply) if reply.subject != username => None,
                Ok(reply) if !reply.authenticated => Some(Denial::Password(Password::Rejected)),
                Ok(reply) => {
                    if reply
                        .entry_subject
                        .as_deref()
                        .is_some_and(|entry| entry != username)
                    {
                        host.log(Level::Info, &format!(
                            "autoid: the directory entry for user {username:?} is another spelling: not the same subject request_id={}",
                            self.request_id
                        ));
                        Some(Denial::Forbidden(Forbid::SubjectMismatch))
                    } else {
                        let groups: Vec<String> = reply
                            .groups
                            .into_iter()
                            .filter(|g| valid_group_name(g))
                            .collect();
                        state
                            .binds
                            .borrow_mut()
                            .put(key, username, &groups, host.now_ms());
                        return self.decide(
                            host,
                            state,
                            api,
                            Caller::Password(username),
                            Some(&groups),
                        );
                    }
                }
                Err(_) => None,
            },
            Some(429) => {
                let throttled = serde_json::from_slice::<Throttled>(body).ok();
                let retry = throttled
                    .as_ref()
                    .map_or(1, |t| t.retry_after_secs.clamp(1, MAX_RETRY_AFTER_SECS));
                let source_held = throttled
                    .as_ref()
                    .is_none_or(|t| t.held.as_deref() != Some("username"));
                let source = host.source_address().as_deref().and_then(source_ip);
                if let (true, Some(source)) = (source_held, source) {
                    // Every worker answers this source 429 until the agent's hold ends.
                    let now = host.now_ms();
                    let until = now.saturating_add(u64::from(retry) * 1000);
                    if !holds::hold(host.store(), &source, until, now) {
                        host.log(Level::Warn, &format!(
                            "autoid: could not share a password throttle hold (shared data) request_id={}",
                            self.request_id
                        ));
                    }
                }
                Some(Denial::Throttled(retry))
            }
            // The agent refused the request's shape (the username): the credentials are bad.
            Some(400) => Some(Denial::Password(Password::Malformed)),
            _ => None,
        };
        let denial = denial.unwrap_or_else(|| {
            state.count(host, Counter::BasicFailures);
            host.log(
                Level::Warn,
                &format!(
                    "autoid: the agent did not check a password (status {}) request_id={}",
                    status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                    self.request_id
                ),
            );
            Denial::Unavailable(Unavailable::Agent)
        });
        self.deny(host, denial, Some(username));
        Verdict::Pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;

    fn basic(pair: &str) -> String {
        format!("Basic {}", general_purpose::STANDARD.encode(pair))
    }

    #[test]
    fn well_formed_credentials_parse() {
        assert_eq!(
            parse_basic(&basic("test:test123")),
            Some(("test".into(), "test123".into()))
        );
        assert_eq!(
            parse_basic(&basic("test:pa:ss")),
            Some(("test".into(), "pa:ss".into())),
            "a password may hold colons"
        );
        assert_eq!(
            parse_basic(&basic("test:")),
            Some(("test".into(), String::new()))
        );
        let unpadded = format!("bAsIc {}", general_purpose::STANDARD_NO_PAD.encode("ab:c"));
        assert_eq!(parse_basic(&unpadded), Some(("ab".into(), "c".into())));
    }

    #[test]
    fn anything_else_is_malformed() {
        for bad in [
            basic("*:x"),
            basic("te*st:x"),
            basic("test)(uid=*:x"),
            basic("Test:x"),
            basic(":x"),
            basic("nocolon"),
            format!(
                "Basic {}",
                general_purpose::STANDARD.encode([b'a', b':', 0xff])
            ),
            basic(&format!("test:{}", "x".repeat(MAX_PASSWORD_LEN + 1))),
            "Basic !!!".to_owned(),
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
        ] {
            assert_eq!(parse_basic(&bad), None, "{bad:?}");
        }
        assert!(is_basic("basic abc") && !is_basic("Bearer abc") && !is_basic("Basic"));
    }

    #[test]
    fn loopback_peers_are_recognized() {
        for a in [
            "127.0.0.1:5000",
            "127.8.0.1:1",
            "[::1]:80",
            "[::ffff:127.0.0.1]:9",
            "::1",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in ["10.0.0.1:5000", "[2001:db8::1]:80", "localhost:80", ""] {
            assert!(!is_loopback(a), "{a}");
        }
        assert_eq!(source_ip("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(source_ip("10.1.2.3:4").as_deref(), Some("10.1.2.3"));
    }
}
