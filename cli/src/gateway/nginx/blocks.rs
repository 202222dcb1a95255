//! The configuration's blocks: the `http` block's head and one `server` per listener.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use autoid_protocol::config::Config;

use super::location::{
    api_location, check_location, denial_locations, regex_literal, target_var, upstream_prefix,
};
use super::served::Served;
use super::text::{absolute, body, field, reply_headers};
use super::{AGENT_UPSTREAM, BAD_REQUEST_LOCATION, INTERMEDIATE_CURVES};
use crate::gateway::defs::{Definitions, HttpsListener};
use crate::gateway::envoy::INTERMEDIATE_CIPHERS;

/// The `http` block's head: the shared settings, the log, the request id, the agent's upstream,
/// and per API its target map and its upstream.
pub(super) fn http_head(
    out: &mut String,
    defs: &Definitions,
    socket: &str,
    served: &[Served<'_>],
) -> Result<()> {
    let g = &defs.gateway;
    let _ = writeln!(
        out,
        "# Rendered by `autoid gateway render --target nginx` from {}: edit the definitions, not\n\
         # this file. Run: nginx -p <prefix> -c <this file> (logs, pid and temporary files go\n\
         # under the prefix). Every API location asks the autoid agent (/v1/check on its unix\n\
         # socket) with auth_request. docs/GATEWAYS.md, \"nginx auth_request\".",
        absolute(&defs.dir)?
    );
    out.push_str(
        "worker_processes auto;\n\
         pid nginx.pid;\n\
         error_log error.log warn;\n\
         events {\n    worker_connections 4096;\n}\n\
         http {\n",
    );
    let i1 = "    ";
    for line in [
        "server_tokens off;",
        "default_type application/octet-stream;",
        "client_body_temp_path client_body_temp;",
        "proxy_temp_path proxy_temp;",
        "fastcgi_temp_path fastcgi_temp;",
        "uwsgi_temp_path uwsgi_temp;",
        "scgi_temp_path scgi_temp;",
        // Headers with `_` are dropped: `x_autoid_subject` never passes for a managed header.
        "underscores_in_headers off;",
        "ignore_invalid_headers on;",
        "merge_slashes on;",
        // Bodies stream to the upstream as Envoy's do (auth_request never reads them).
        "client_max_body_size 0;",
        "proxy_request_buffering off;",
        "proxy_http_version 1.1;",
    ] {
        let _ = writeln!(out, "{i1}{line}");
    }
    if g.access_log.unwrap_or(true) {
        let _ = writeln!(
            out,
            "{i1}log_format autoid '[$time_iso8601] $remote_addr \"$request\" $status \
             upstream=$upstream_addr ${{request_time}}s request_id=$autoid_request_id';\n\
             {i1}access_log access.log autoid;"
        );
    } else {
        let _ = writeln!(out, "{i1}access_log off;");
    }
    // The request id: the client's when it is short and plain, else nginx's own. The agent logs
    // it and the uniform bodies carry it.
    let _ = writeln!(
        out,
        "{i1}map $http_x_request_id $autoid_request_id {{\n\
         {i1}    \"~^[A-Za-z0-9._-]{{1,64}}$\" $http_x_request_id;\n\
         {i1}    default $request_id;\n\
         {i1}}}"
    );
    let _ = writeln!(
        out,
        "{i1}upstream {AGENT_UPSTREAM} {{\n{i1}    server unix:{socket};\n{i1}    keepalive 16;\n{i1}}}"
    );
    for (n, s) in served.iter().enumerate() {
        if s.def.aws_role.is_some() {
            continue;
        }
        // The upstream's target is the client's bytes after the listen path, as the check judged
        // them: `proxy_pass` with a URI part would send nginx's decoded `$uri` (`..%3b` as `..;`).
        // A request whose raw target does not start with the listen path (nginx matched it after
        // decoding or merging) gets none, and the location answers 400.
        let _ = writeln!(
            out,
            "{i1}map $request_uri {} {{\n\
             {i1}    \"~^{}(.*)$\" \"{}$1\";\n\
             {i1}    default \"\";\n\
             {i1}}}",
            target_var(n),
            regex_literal(&s.def.listen_path),
            upstream_prefix(s)
        );
        let host = if s.up.host.contains(':') {
            format!("[{}]", s.up.host)
        } else {
            s.up.host.clone()
        };
        let _ = writeln!(
            out,
            "{i1}upstream autoid_api_{} {{\n{i1}    server {host}:{};\n{i1}    keepalive 16;\n{i1}}}",
            s.def.id, s.up.port
        );
    }

    Ok(())
}

/// Where one `server` listens.
pub(super) struct Listening<'a> {
    pub(super) gateway_file: &'a Path,
    pub(super) address: &'a str,
    pub(super) port: u16,
    pub(super) tls: Option<(&'a HttpsListener, u64)>,
}

/// What every `server` serves: the checked APIs and the agent's timeouts.
pub(super) struct Checked<'a> {
    pub(super) defs: &'a Definitions,
    pub(super) config: &'a Config,
    pub(super) served: &'a [Served<'a>],
    pub(super) managed: &'a [String],
    pub(super) timeout: u64,
    pub(super) connect: u64,
}

/// One `server` block: the listener, then per API its location, its check and its bare prefix,
/// the unknown paths' 403 and the denial locations.
pub(super) fn server(out: &mut String, l: &Listening<'_>, c: &Checked<'_>) -> Result<()> {
    let Listening {
        gateway_file,
        address,
        port,
        tls,
    } = *l;
    let Checked {
        defs,
        config,
        served,
        managed,
        timeout,
        connect,
    } = *c;
    let i1 = "    ";
    if port == 0 {
        return Err(field(
            gateway_file,
            if tls.is_some() {
                "listeners.https.port"
            } else {
                "listeners.http.port"
            },
            "nginx cannot listen on port 0 (a port it picks): give one",
        ));
    }
    let hsts = tls.map(|(_, age)| age);
    let address = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    };
    let _ = writeln!(out, "\n{i1}server {{");
    let i2 = "        ";
    match tls {
        Some((h, age)) => {
            let _ = writeln!(
                out,
                "{i2}listen {address}:{port} ssl http2;\n\
                     {i2}ssl_certificate {};\n\
                     {i2}ssl_certificate_key {};\n\
                     {i2}# Mozilla \"intermediate\": TLS 1.2 and 1.3, the ECDHE suites the Envoy\n\
                     {i2}# render has too (the DHE ones would need ssl_dhparam).\n\
                     {i2}ssl_protocols TLSv1.2 TLSv1.3;\n\
                     {i2}ssl_ciphers {};\n\
                     {i2}ssl_ecdh_curve {INTERMEDIATE_CURVES};\n\
                     {i2}ssl_prefer_server_ciphers off;\n\
                     {i2}ssl_session_timeout 1d;\n\
                     {i2}ssl_session_cache shared:autoid_tls:10m;\n\
                     {i2}ssl_session_tickets off;\n\
                     {i2}proxy_hide_header Strict-Transport-Security;\n\
                     {i2}add_header Strict-Transport-Security \"max-age={age}\" always;",
                absolute(&defs.resolve(&h.cert_file))?,
                absolute(&defs.resolve(&h.key_file))?,
                INTERMEDIATE_CIPHERS.join(":")
            );
        }
        None => {
            let _ = writeln!(out, "{i2}listen {address}:{port};");
        }
    }
    // nginx's own 400s (a malformed escape, `%00`, an escaped `/` above the root: refused
    // before any location) answer the uniform body too.
    let _ = writeln!(out, "{i2}error_page 400 {BAD_REQUEST_LOCATION};");
    for (n, s) in served.iter().enumerate() {
        api_location(out, n, s, managed, config)?;
        check_location(out, s, tls.is_some(), timeout, connect);
        // The prefix without its slash is no API's (nginx would redirect it to the API).
        let bare = s.def.listen_path.trim_end_matches('/');
        if !bare.is_empty() {
            let _ = writeln!(
                out,
                "{i2}location = {bare} {{\n{i2}    default_type application/json;"
            );
            reply_headers(out, &format!("{i2}    "), hsts);
            let _ = writeln!(out, "{i2}    return 403 {};\n{i2}}}", body("forbidden"));
        }
    }
    // Paths no API serves: the filter's 403 for an unknown route, without asking the agent.
    let _ = writeln!(
        out,
        "{i2}location / {{\n{i2}    default_type application/json;"
    );
    reply_headers(out, &format!("{i2}    "), hsts);
    let _ = writeln!(out, "{i2}    return 403 {};\n{i2}}}", body("forbidden"));
    denial_locations(out, hsts);
    let _ = writeln!(out, "{i1}}}");

    Ok(())
}
