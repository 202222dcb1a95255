//! The route step: which API a request is for (the route's name), whether it is enabled, and
//! whether its path is one the filter can judge; the client's copies of managed headers noted
//! for stripping.

use autoid_protocol::config::Api;
use autoid_protocol::path::path_is_safe;

use super::Flow;
use crate::headers::{self, Header};
use crate::host::HttpHost;
use crate::reply::{Denial, Forbid};
use crate::state::State;

impl Flow {
    /// The route step: the API the route names, enabled, and a path the filter can judge (with
    /// the client's copies of managed headers noted for stripping); else the denial.
    pub(super) fn route<'s, 'h, H: HttpHost>(
        &mut self,
        host: &H,
        state: &'s State,
        headers: &'h [Header],
    ) -> Result<(&'s Api, &'h str), Denial> {
        // Client copies of the headers the filter sets, and the proof, never go upstream: a
        // denied request gets a local reply, an allowed one loses them in `forward`.
        self.strip = state
            .managed
            .iter()
            .filter(|name| headers::has(headers, name))
            .cloned()
            .collect();
        self.route = host.route_name().unwrap_or_default();
        let api = state
            .config
            .apis
            .get(&self.route)
            .ok_or(Denial::Forbidden(Forbid::UnknownRoute))?;
        if !api.enabled {
            return Err(Denial::Forbidden(Forbid::Disabled));
        }
        // A path that is not UTF-8 is no path the filter can judge: unsafe.
        let path = pseudo(headers, ":path")
            .map_or(Ok(""), std::str::from_utf8)
            .map_err(|_| Denial::UnsafePath)?;
        if !path_is_safe(path) {
            return Err(Denial::UnsafePath);
        }
        Ok((api, path))
    }

    /// The API `route` names, for a request past its headers (a reconfiguration may have dropped
    /// it meanwhile): `None` once denied 403 `unknown_route`.
    pub(super) fn route_api<'s, H: HttpHost>(
        &self,
        host: &H,
        state: &'s State,
        route: &str,
        subject: &str,
    ) -> Option<&'s Api> {
        let api = state.config.apis.get(route);
        if api.is_none() {
            self.deny(host, Denial::Forbidden(Forbid::UnknownRoute), Some(subject));
        }
        api
    }
}

/// The value of the pseudo-header `name` (`:path`, `:method`, `:authority`), as bytes.
pub(super) fn pseudo<'h>(headers: &'h [Header], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}
