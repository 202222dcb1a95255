//! Denials and the uniform responses they become: 400, 401, 403, 413, 429 or 503, a small JSON
//! body with an error code and the request id, `WWW-Authenticate` on 401 (one challenge per
//! method the API accepts). The precise reason goes to the log and metrics only.

use autoid_protocol::Reject;

/// Why a request may not pass, when it is not a proof failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbid {
    /// The route has no API definition (or no route name at all).
    UnknownRoute,
    /// The API is disabled.
    Disabled,
    /// The directory does not know the subject.
    UnknownSubject,
    /// The subject lacks the groups the API requires.
    NotInGroups,
    /// The directory's entry is another spelling of the subject (`Alice` for `alice`).
    SubjectMismatch,
    /// HTTP Basic on a connection without TLS, which the API does not accept
    /// (`auth.basic.plain_http`).
    PlainHttp,
}

/// Why an HTTP Basic password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Password {
    /// Not `Basic base64(user:password)` with a canonical username, or sent twice.
    Malformed,
    /// An empty password: to LDAP an unauthenticated bind, never tried.
    Empty,
    /// The directory did not bind (wrong password, unknown or ambiguous user).
    Rejected,
}

/// Why a dependency could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The filter has no valid configuration.
    NotConfigured,
    /// Shared data failed, or its replay bucket is full of live nonces.
    ReplayCache,
    /// The agent failed and no usable cached decision exists.
    Directory,
    /// The callout could not even be dispatched.
    Dispatch,
    /// The agent did not unwrap a session or hand over a subject key (no answer, overloaded, an
    /// error status, a malformed reply).
    Agent,
    /// The agent supplied no usable upstream credentials, and none cached within the stale window.
    Credentials,
    /// The host refused to edit the request's headers (strip or inject).
    Host,
    /// The fleet replay claim failed (`replay.scope: "fleet"`, `on_fleet_failure: "deny"`).
    ReplayFleet,
}

/// A denial: what the client sees is the status and coarse code; the reason is for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// 401: no valid proof.
    Unauthorized(Reject),
    /// 401: a proof made before this Envoy process started (the restart fence: the process
    /// before may have accepted it).
    Fenced,
    /// 403: a valid proof, but not allowed here.
    Forbidden(Forbid),
    /// 503: fail closed.
    Unavailable(Unavailable),
    /// 413: the body a proof binds is larger than the filter buffers to check it.
    BodyTooLarge,
    /// 400: a path upstreams could read as another (`..;`, `//`, `%2F`: protocol::path).
    UnsafePath,
    /// 401: an HTTP Basic password refused.
    Password(Password),
    /// 429: the agent throttles this username or source after failed passwords; retry after
    /// this many seconds.
    Throttled(u32),
}

impl Denial {
    /// The HTTP status.
    pub fn status(self) -> u32 {
        match self {
            Denial::Unauthorized(_) | Denial::Fenced | Denial::Password(_) => 401,
            Denial::Forbidden(_) => 403,
            Denial::Throttled(_) => 429,
            Denial::Unavailable(_) => 503,
            Denial::BodyTooLarge => 413,
            Denial::UnsafePath => 400,
        }
    }

    /// The code in the response body: one per status, so bodies do not leak the reason.
    pub fn error(self) -> &'static str {
        match self {
            Denial::Unauthorized(_) | Denial::Fenced | Denial::Password(_) => "unauthorized",
            Denial::Forbidden(_) => "forbidden",
            Denial::Throttled(_) => "too_many_requests",
            Denial::Unavailable(_) => "unavailable",
            Denial::BodyTooLarge => "payload_too_large",
            Denial::UnsafePath => "bad_request",
        }
    }

    /// The precise reason, for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Unauthorized(r) => r.code(),
            Denial::Fenced => "restart_fence",
            Denial::Forbidden(Forbid::UnknownRoute) => "unknown_route",
            Denial::Forbidden(Forbid::Disabled) => "api_disabled",
            Denial::Forbidden(Forbid::UnknownSubject) => "unknown_subject",
            Denial::Forbidden(Forbid::NotInGroups) => "not_in_groups",
            Denial::Forbidden(Forbid::SubjectMismatch) => "subject_mismatch",
            Denial::Forbidden(Forbid::PlainHttp) => "basic_over_plain_http",
            Denial::Password(Password::Malformed) => "basic_malformed",
            Denial::Password(Password::Empty) => "basic_empty_password",
            Denial::Password(Password::Rejected) => "basic_rejected",
            Denial::Throttled(_) => "basic_throttled",
            Denial::Unavailable(Unavailable::NotConfigured) => "not_configured",
            Denial::Unavailable(Unavailable::ReplayCache) => "replay_cache",
            Denial::Unavailable(Unavailable::Directory) => "directory",
            Denial::Unavailable(Unavailable::Dispatch) => "dispatch",
            Denial::Unavailable(Unavailable::Agent) => "agent",
            Denial::Unavailable(Unavailable::Credentials) => "credentials",
            Denial::Unavailable(Unavailable::Host) => "host",
            Denial::Unavailable(Unavailable::ReplayFleet) => "replay_fleet",
            Denial::BodyTooLarge => "body_too_large",
            Denial::UnsafePath => "unsafe_path",
        }
    }

    /// Every reason code, so metrics can be defined up front.
    pub fn all_reasons() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Reject::ALL
            .iter()
            .map(|r| Denial::Unauthorized(*r).reason())
            .collect();
        for f in [
            Forbid::UnknownRoute,
            Forbid::Disabled,
            Forbid::UnknownSubject,
            Forbid::NotInGroups,
            Forbid::SubjectMismatch,
            Forbid::PlainHttp,
        ] {
            out.push(Denial::Forbidden(f).reason());
        }
        for p in [Password::Malformed, Password::Empty, Password::Rejected] {
            out.push(Denial::Password(p).reason());
        }
        out.push(Denial::Throttled(0).reason());
        for u in [
            Unavailable::NotConfigured,
            Unavailable::ReplayCache,
            Unavailable::Directory,
            Unavailable::Dispatch,
            Unavailable::Agent,
            Unavailable::Credentials,
            Unavailable::Host,
            Unavailable::ReplayFleet,
        ] {
            out.push(Denial::Unavailable(u).reason());
        }
        out.push(Denial::Fenced.reason());
        out.push(Denial::BodyTooLarge.reason());
        out.push(Denial::UnsafePath.reason());
        out
    }
}

/// A response ready for `send_http_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u32,
    /// Headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Vec<u8>,
}

/// Keeps a client-supplied request id printable and short: its bytes in `[A-Za-z0-9._-]`, the
/// first 64 of them (any other byte, text or not, is dropped).
pub fn sanitize_request_id(id: &[u8]) -> String {
    id.iter()
        .filter(|c| c.is_ascii_alphanumeric() || **c == b'-' || **c == b'_' || **c == b'.')
        .take(64)
        .map(|&c| char::from(c))
        .collect()
}

/// The challenges a 401 carries: one per method the API accepts here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenges<'a> {
    /// The proof header's name, when the API accepts proofs.
    pub proof_header: Option<&'a str>,
    /// The Basic realm, when the API accepts HTTP Basic on this connection.
    pub basic_realm: Option<&'a str>,
}

/// The uniform response for a denial, challenging for a proof on 401.
pub fn response(denial: Denial, request_id: &str, proof_header: &str) -> Response {
    challenged(
        denial,
        request_id,
        Challenges {
            proof_header: Some(proof_header),
            basic_realm: None,
        },
    )
}

/// The uniform response for a denial, with `challenges` on 401 (the proof's when none is
/// given: a 401 always names a way in).
pub fn challenged(denial: Denial, request_id: &str, challenges: Challenges<'_>) -> Response {
    let body = serde_json::json!({ "error": denial.error(), "request_id": request_id });
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("cache-control", "no-store".to_owned()),
    ];
    if denial.status() == 401 {
        let proof = match challenges {
            Challenges {
                proof_header: None,
                basic_realm: None,
            } => Some(autoid_protocol::header::DEFAULT_HEADER),
            c => c.proof_header,
        };
        if let Some(proof_header) = proof {
            // The one reason a client is told: a compact proof named a session this gateway
            // does not hold, so the client resends the full form (docs/PROTOCOL.md §11).
            let hint = match denial {
                Denial::Unauthorized(Reject::UnknownSession) => ", error=\"unknown_session\"",
                _ => "",
            };
            headers.push((
                "www-authenticate",
                format!("AutoID realm=\"autoid\", header=\"{proof_header}\"{hint}"),
            ));
        }
        if let Some(realm) = challenges.basic_realm {
            headers.push((
                "www-authenticate",
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            ));
        }
    }
    if let Denial::Unavailable(_) = denial {
        headers.push(("retry-after", "1".to_owned()));
    }
    if let Denial::Throttled(secs) = denial {
        headers.push(("retry-after", secs.max(1).to_string()));
    }
    Response {
        status: denial.status(),
        headers,
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proof_failure_gets_the_same_401() {
        let bodies: Vec<Response> = Reject::ALL
            .iter()
            .filter(|r| **r != Reject::UnknownSession)
            .map(|r| response(Denial::Unauthorized(*r), "rid", "x-autoid-proof"))
            .collect();
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            response(Denial::Fenced, "rid", "x-autoid-proof"),
            bodies[0],
            "a fenced proof gets the same 401"
        );
        assert_eq!(bodies[0].status, 401);
        assert_eq!(
            bodies[0].body,
            br#"{"error":"unauthorized","request_id":"rid"}"#
        );
        assert!(
            bodies[0]
                .headers
                .iter()
                .any(|(k, v)| *k == "www-authenticate" && v.contains("x-autoid-proof"))
        );
    }

    #[test]
    fn an_unknown_session_differs_only_by_its_documented_hint() {
        let hinted = response(
            Denial::Unauthorized(Reject::UnknownSession),
            "rid",
            "x-autoid-proof",
        );
        let plain = response(Denial::Unauthorized(Reject::Open), "rid", "x-autoid-proof");
        assert_eq!((hinted.status, &hinted.body), (plain.status, &plain.body));
        let challenge = |r: &Response| {
            r.headers
                .iter()
                .find(|(k, _)| *k == "www-authenticate")
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(
            challenge(&hinted),
            format!("{}, error=\"unknown_session\"", challenge(&plain))
        );
    }

    #[test]
    fn reasons_are_unique_and_bodies_do_not_carry_them() {
        let mut all = Denial::all_reasons();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        let r = response(Denial::Forbidden(Forbid::NotInGroups), "x", "h");
        assert_eq!(r.status, 403);
        assert!(!String::from_utf8(r.body).unwrap().contains("groups"));
        assert!(!r.headers.iter().any(|(k, _)| *k == "www-authenticate"));
    }

    #[test]
    fn request_ids_are_sanitized() {
        assert_eq!(sanitize_request_id(b"abc-123"), "abc-123");
        assert_eq!(sanitize_request_id(b"a\"b\r\n<c>"), "abc");
        assert_eq!(sanitize_request_id(b"caf\xe9\x00-\xc3\xa9x"), "caf-x");
        assert_eq!(sanitize_request_id("x".repeat(100).as_bytes()).len(), 64);
    }
}
