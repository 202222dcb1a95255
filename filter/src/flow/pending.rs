//! Where a paused request stands, and who it authenticated as: what a [`super::Flow`] keeps
//! between the callbacks of one request.

use autoid_protocol::Request;
use autoid_protocol::verify::Verified;

use crate::decisions::Decision;

/// Where a paused request stands. A verified proof travels with it: its nonce is claimed only
/// when the request is allowed.
#[derive(Default)]
pub(super) enum Pending {
    #[default]
    Nothing,
    /// Waiting for the whole body (its last data, or the trailers) to check a body-bound proof.
    Body { api: String, verified: Verified },
    /// Waiting for the agent.
    Directory {
        api: String,
        verified: Verified,
        stale: Option<Decision>,
    },
    /// Waiting for the agent to unwrap the proof's session: the proof and the request it binds,
    /// verified again once the session is cached.
    Session { asked: Asked },
    /// Waiting for the agent to hand over the subject's key in an epoch it holds: verified again
    /// once the stream is cached.
    Stream {
        asked: Asked,
        epoch: String,
        subject: String,
    },
    /// Waiting for the agent to check an HTTP Basic password (a directory bind): the
    /// username, and the key of (username, source, password) in the worker's remembered binds.
    Password { username: String, key: [u8; 32] },
    /// Allowed, waiting for the agent's upstream credentials (none cached).
    Credentials {
        caller: Authenticated,
        groups: Vec<String>,
    },
    /// Allowed and claimed locally, waiting for the fleet's claim (`replay.scope: "fleet"`):
    /// what the request goes upstream with once the fleet says the nonce is new.
    Fleet {
        verified: Verified,
        groups: Vec<String>,
        values: Vec<(String, String)>,
    },
}

/// Who a request authenticated as, and how.
#[derive(Debug, Clone, Copy)]
pub(super) enum Caller<'a> {
    /// An entropy proof: its nonce is claimed when the request is allowed.
    Proof(&'a Verified),
    /// A directory password (`ldap_basic`): the subject the agent bound. Nothing to claim: a
    /// password is meant to be sent again.
    Password(&'a str),
}

impl<'a> Caller<'a> {
    pub(super) fn subject(self) -> &'a str {
        match self {
            Caller::Proof(v) => &v.subject,
            Caller::Password(s) => s,
        }
    }

    pub(super) fn owned(self) -> Authenticated {
        match self {
            Caller::Proof(v) => Authenticated::Proof(v.clone()),
            Caller::Password(s) => Authenticated::Password(s.to_owned()),
        }
    }
}

/// A [`Caller`] kept while its request waits.
pub(super) enum Authenticated {
    Proof(Verified),
    Password(String),
}

impl Authenticated {
    pub(super) fn caller(&self) -> Caller<'_> {
        match self {
            Authenticated::Proof(v) => Caller::Proof(v),
            Authenticated::Password(s) => Caller::Password(s),
        }
    }
}

/// What a request asked the agent about, kept to verify the proof again on the answer.
pub(super) struct Asked {
    pub(super) proof: String,
    method: String,
    authority: String,
    path: String,
}

impl Asked {
    pub(super) fn new(proof: &str, request: &Request<'_>) -> Self {
        Asked {
            proof: proof.to_owned(),
            method: request.method.to_owned(),
            authority: request.authority.to_owned(),
            path: request.path.to_owned(),
        }
    }

    pub(super) fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
        }
    }
}
