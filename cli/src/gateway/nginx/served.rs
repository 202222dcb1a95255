//! The APIs nginx serves: each definition checked against what nginx can do.

use std::path::Path;

use anyhow::{Context, Result};
use autoid_protocol::config::{Api, Config};

use super::text::{absolute, field, header_field, nginx_header};
use crate::gateway::defs::{ApiDef, Definitions, Upstream};

/// One API as nginx serves it.
pub(super) struct Served<'a> {
    pub(super) file: &'a Path,
    /// The CA an https upstream's certificate must chain to (absolute).
    pub(super) ca: Option<String>,
    pub(super) def: &'a ApiDef,
    pub(super) up: &'a Upstream,
    pub(super) api: &'a Api,
}

/// The APIs nginx serves, each checked (an `aws_service` API is left out, with a warning).
pub(super) fn served<'a>(
    defs: &'a Definitions,
    config: &'a Config,
    warnings: &mut Vec<String>,
) -> Result<Vec<Served<'a>>> {
    let mut served = Vec::new();
    for (file, def, up) in &defs.apis {
        if def.listen_path.starts_with("/_autoid/") {
            return Err(field(
                file,
                "listen_path",
                format!(
                    "/_autoid/ is the nginx render's own (value: {:?})",
                    def.listen_path
                ),
            ));
        }
        if def.aws_service.is_some() {
            warnings.push(format!(
                "{}: aws_service: nginx cannot sign requests with SigV4 as Envoy does: API {:?} \
                 is left out of the nginx configuration ({} is denied 403 like an unknown path)",
                file.display(),
                def.id,
                def.listen_path
            ));
            continue;
        }
        let api = config
            .apis
            .get(&def.id)
            .with_context(|| format!("{}: id: not in the filter configuration", file.display()))?;
        for name in api.managed_headers() {
            nginx_header(file, &header_field(def, name), name)?;
        }
        if up.tls && up.host.parse::<std::net::IpAddr>().is_ok() {
            // nginx 1.22 checks the upstream's certificate with X509_check_host: an IP address
            // SAN never matches, and every request would be 502.
            return Err(field(
                file,
                "upstream",
                format!(
                    "nginx verifies an https upstream by host name only (an IP address SAN \
                     never matches): name the upstream by a host name its certificate carries \
                     (value: {:?})",
                    def.upstream
                ),
            ));
        }
        let ca = match &def.upstream_ca_file {
            Some(p) => Some(absolute(&defs.resolve(p))?),
            None => None,
        };
        served.push(Served {
            file,
            ca,
            def,
            up,
            api,
        });
    }
    Ok(served)
}
