//! Denials and the uniform responses they become: 400, 401, 403, 413 or 503, a small JSON body with an
//! error code and the request id, `WWW-Authenticate` on 401. The precise reason goes to the log
//! and metrics only.

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
}

/// Why a dependency could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The filter has no valid configuration.
    NotConfigured,
    /// Shared data failed, or its replay bucket is full of live nonces.
    ReplayCache,
    /// The directory bridge failed and no usable cached decision exists.
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
}

impl Denial {
    /// The HTTP status.
    pub fn status(self) -> u32 {
        match self {
            Denial::Unauthorized(_) | Denial::Fenced => 401,
            Denial::Forbidden(_) => 403,
            Denial::Unavailable(_) => 503,
            Denial::BodyTooLarge => 413,
            Denial::UnsafePath => 400,
        }
    }

    /// The code in the response body: one per status, so bodies do not leak the reason.
    pub fn error(self) -> &'static str {
        match self {
            Denial::Unauthorized(_) | Denial::Fenced => "unauthorized",
            Denial::Forbidden(_) => "forbidden",
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
        ] {
            out.push(Denial::Forbidden(f).reason());
        }
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

/// Keeps a client-supplied request id printable and short.
pub fn sanitize_request_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .take(64)
        .collect()
}

/// The uniform response for a denial.
pub fn response(denial: Denial, request_id: &str, proof_header: &str) -> Response {
    let body = serde_json::json!({ "error": denial.error(), "request_id": request_id });
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("cache-control", "no-store".to_owned()),
    ];
    if let Denial::Unauthorized(_) | Denial::Fenced = denial {
        headers.push((
            "www-authenticate",
            format!("AutoID realm=\"autoid\", header=\"{proof_header}\""),
        ));
    }
    if let Denial::Unavailable(_) = denial {
        headers.push(("retry-after", "1".to_owned()));
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
        assert_eq!(sanitize_request_id("abc-123"), "abc-123");
        assert_eq!(sanitize_request_id("a\"b\r\n<c>"), "abc");
        assert_eq!(sanitize_request_id(&"x".repeat(100)).len(), 64);
    }
}
