//! The arms (their letters, names and what each needs) and the phases a run belongs to.

use serde::Serialize;

/// One arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Arm {
    /// (a) no filter.
    None,
    /// (f) the floor proxy-wasm filter.
    Floor,
    /// (b) native jwt_authn, RS256, local JWKS.
    Jwt,
    /// (c) autoid, sessions and groups warm (the keys and epochs at the agent, as `make run`
    /// deploys them: phases 3 and 4's `AgentPaced` deployment).
    Warm,
    /// (d) autoid, a new session per request. Since issue 26 the agent unwraps it (the filter
    /// holds no private key): the same deployment as (h); before, RSA in wasm.
    Cold,
    /// (e) autoid, every group decision an agent + slapd round trip.
    Directory,
    /// (h) autoid, a new session per request, unwrapped by the agent natively.
    ColdAgent,
    /// (g) autoid warm, every nonce also claimed in Redis through the agent (fleet replay).
    Fleet,
    /// (i) autoid HTTP Basic (`ldap_basic`), the bind remembered by the filter: one directory
    /// bind per worker, then the keyed-hash lookup per request.
    Basic,
    /// (x) Envoy `ext_authz` (HTTP service) to the agent's `/v1/check`, which decides with the
    /// warm arm's filter configuration (the filter's own logic, natively): the same unique-proof
    /// load as (c), with no wasm in Envoy.
    ExtAuthz,
    /// (n) nginx `auth_request` to the agent's `/v1/check`, deciding with the warm arm's filter
    /// configuration: the same unique-proof load as (c) and (x), nginx instead of Envoy.
    Nginx,
}

impl Arm {
    pub(super) fn from_letter(c: char) -> Option<Arm> {
        Some(match c {
            'a' => Arm::None,
            'f' => Arm::Floor,
            'b' => Arm::Jwt,
            'c' => Arm::Warm,
            'd' => Arm::Cold,
            'e' => Arm::Directory,
            'h' => Arm::ColdAgent,
            'g' => Arm::Fleet,
            'i' => Arm::Basic,
            'x' => Arm::ExtAuthz,
            'n' => Arm::Nginx,
            _ => return None,
        })
    }

    /// Its letter in the issue.
    pub fn letter(self) -> char {
        match self {
            Arm::None => 'a',
            Arm::Floor => 'f',
            Arm::Jwt => 'b',
            Arm::Warm => 'c',
            Arm::Cold => 'd',
            Arm::Directory => 'e',
            Arm::ColdAgent => 'h',
            Arm::Fleet => 'g',
            Arm::Basic => 'i',
            Arm::ExtAuthz => 'x',
            Arm::Nginx => 'n',
        }
    }

    /// A readable name.
    pub fn name(self) -> &'static str {
        match self {
            Arm::None => "no filter",
            Arm::Floor => "floor proxy-wasm filter",
            Arm::Jwt => "jwt_authn RS256",
            Arm::Warm => "autoid warm",
            Arm::Cold => "autoid cold (a new session per request)",
            Arm::Directory => "autoid directory miss",
            Arm::ColdAgent => "autoid cold, RSA in the agent",
            Arm::Fleet => "autoid warm, fleet replay (Redis)",
            Arm::Basic => "autoid HTTP Basic, bind remembered",
            Arm::ExtAuthz => "Envoy ext_authz -> agent, warm",
            Arm::Nginx => "nginx auth_request -> agent, warm",
        }
    }

    pub(super) fn is_autoid(self) -> bool {
        matches!(
            self,
            Arm::Warm | Arm::Cold | Arm::Directory | Arm::ColdAgent | Arm::Fleet | Arm::Basic
        )
    }

    /// A new session per request: paced at half its own saturation rate.
    pub(super) fn is_cold(self) -> bool {
        matches!(self, Arm::Cold | Arm::ColdAgent)
    }

    /// Needs slapd and the agent: every autoid arm (the keys and epochs are at the agent, as
    /// `make run` deploys them) and the arms that ask the agent's `/v1/check`.
    pub(super) fn needs_agent(self) -> bool {
        self.is_autoid() || matches!(self, Arm::ExtAuthz | Arm::Nginx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Phase {
    Saturation,
    Paced,
    /// Paced, as phase 4's `AgentPaced`, beside a junk flood from many sources and legitimate
    /// new sessions from another.
    Flood,
    /// Paced, v3 proofs, no new sessions: phase 4's baseline (since issue 26 every arm's keys
    /// are at the agent; the name stays for the summaries').
    AgentPaced,
    /// Paced, v3 proofs, beside a stream of new sessions from another source.
    AgentSessions,
}
