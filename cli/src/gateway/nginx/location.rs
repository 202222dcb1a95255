//! One API's locations: the proxied location with its check, the check subrequest's, and the
//! locations that restore the agent's denials.

use std::fmt::Write as _;

use anyhow::Result;
use autoid_protocol::config::Config;

use super::served::Served;
use super::text::{body, header_field, ms, nginx_header, reply_headers, var};
use super::{
    AGENT_UPSTREAM, BAD_REQUEST_LOCATION, CHECK_CALLOUTS, CHECK_LOCATION, CHECK_PATH,
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_UPSTREAM_TIMEOUT_MS, RESTORED, SYSTEM_CA,
    cleared_contract_headers,
};
use crate::gateway::defs::aws_credentials_path;
use crate::gateway::filter::AGENT_SOCKET_AUTHORITY;

/// The API's location.
pub(super) fn api_location(
    out: &mut String,
    n: usize,
    s: &Served<'_>,
    managed: &[String],
    config: &Config,
) -> Result<()> {
    let i2 = "        ";
    let i3 = "            ";
    let id = &s.def.id;
    let injected: Vec<&str> = s.api.managed_headers().collect();
    let _ = writeln!(
        out,
        "\n{i2}# API {id} ({}): {}",
        s.file.display(),
        s.def.name.replace('\n', " ")
    );
    let _ = writeln!(out, "{i2}location {} {{", s.def.listen_path);
    let _ = writeln!(out, "{i3}auth_request {CHECK_LOCATION}{id};");
    let _ = writeln!(
        out,
        "{i3}auth_request_set $autoid_status $upstream_http_x_autoid_status;\n\
         {i3}auth_request_set $autoid_retry_after $upstream_http_retry_after;"
    );
    for name in &injected {
        let _ = writeln!(
            out,
            "{i3}auth_request_set {} $upstream_http_{};",
            var(name),
            nginx_header(s.file, &header_field(s.def, name), name)?
        );
    }
    let _ = writeln!(
        out,
        "{i3}error_page 401 = @autoid_401;\n\
         {i3}error_page 403 = @autoid_403;\n\
         {i3}error_page 500 = @autoid_denied;"
    );
    // The upstream request: the agent's values for this API's headers, every other managed
    // header and the proof cleared.
    let _ = writeln!(
        out,
        "{i3}proxy_set_header Connection \"\";\n\
         {i3}proxy_set_header X-Request-Id $autoid_request_id;\n\
         {i3}proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         {i3}proxy_set_header X-Forwarded-Proto $scheme;\n\
         {i3}proxy_set_header {} \"\";",
        config.proof_header
    );
    // The contract's headers are the check's; a client's copies go nowhere.
    for name in cleared_contract_headers() {
        let _ = writeln!(out, "{i3}proxy_set_header {name} \"\";");
    }
    for name in managed {
        if injected.contains(&name.as_str()) {
            let _ = writeln!(out, "{i3}proxy_set_header {name} {};", var(name));
        } else if *name != config.proof_header {
            let _ = writeln!(out, "{i3}proxy_set_header {name} \"\";");
        }
    }
    for name in &injected {
        if !managed.iter().any(|m| m == name) {
            let _ = writeln!(out, "{i3}proxy_set_header {name} {};", var(name));
        }
    }
    if s.api.basic.is_some() && !managed.iter().any(|m| m == "authorization") {
        // The password never goes upstream.
        let _ = writeln!(out, "{i3}proxy_set_header Authorization \"\";");
    }
    let upstream_ms = s
        .def
        .timeouts
        .upstream_ms
        .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS);
    if s.def.aws_role.is_some() {
        // The agent answers: every path under the API asks it for this API's credentials.
        let _ = writeln!(
            out,
            "{i3}proxy_set_header Host {AGENT_SOCKET_AUTHORITY};\n\
             {i3}rewrite ^ {} break;\n\
             {i3}proxy_read_timeout {};\n\
             {i3}proxy_pass http://{AGENT_UPSTREAM};",
            aws_credentials_path(id),
            ms(upstream_ms)
        );
    } else {
        let up = s.up;
        let host = up.authority();
        let scheme = if up.tls { "https" } else { "http" };
        let connect = s
            .def
            .timeouts
            .connect_ms
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        let _ = writeln!(
            out,
            "{i3}proxy_set_header Host \"{host}\";\n\
             {i3}proxy_connect_timeout {};\n\
             {i3}proxy_read_timeout {};\n\
             {i3}proxy_send_timeout {};",
            ms(connect),
            ms(upstream_ms),
            ms(upstream_ms)
        );
        if up.tls {
            let ca = s.ca.as_deref().unwrap_or(SYSTEM_CA);
            let _ = writeln!(
                out,
                "{i3}proxy_ssl_protocols TLSv1.2 TLSv1.3;\n\
                 {i3}proxy_ssl_verify on;\n\
                 {i3}proxy_ssl_trusted_certificate {ca};\n\
                 {i3}proxy_ssl_name {};\n\
                 {i3}proxy_ssl_server_name on;",
                up.host
            );
        }
        let target = target_var(n);
        let _ = writeln!(
            out,
            "{i3}if ({target} = \"\") {{\n\
             {i3}    set $autoid_status 400;\n\
             {i3}    return 500;\n\
             {i3}}}\n\
             {i3}proxy_pass {scheme}://autoid_api_{id}{target};"
        );
    }
    let _ = writeln!(out, "{i2}}}");

    Ok(())
}

/// The variable holding API number `n`'s upstream target (ids may hold `-`, variables not).
pub(super) fn target_var(n: usize) -> String {
    format!("$autoid_target_{n}")
}

/// What replaces the listen path on the way upstream: the same rewrite as the Envoy route
/// (`strip_listen_path`, the upstream's base path; the listen path starts and ends with `/`).
pub(super) fn upstream_prefix(s: &Served<'_>) -> String {
    let base = if s.up.path.ends_with('/') {
        s.up.path.clone()
    } else {
        format!("{}/", s.up.path)
    };
    if s.def.strip_listen_path {
        base
    } else {
        format!("{}{}", base.trim_end_matches('/'), s.def.listen_path)
    }
}

/// `text` as a PCRE literal inside an nginx double-quoted string: every byte but `A-Za-z0-9/_-`
/// as `\xHH` (nginx keeps a backslash it does not know, PCRE reads the byte).
pub(super) fn regex_literal(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/_-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// The API's check subrequest: the contract's headers, set here so no client copy reaches the
/// agent, no body.
pub(super) fn check_location(
    out: &mut String,
    s: &Served<'_>,
    tls: bool,
    timeout: u64,
    connect: u64,
) {
    let i2 = "        ";
    let i3 = "            ";
    let _ = writeln!(
        out,
        "{i2}location = {CHECK_LOCATION}{id} {{\n\
         {i3}internal;\n\
         {i3}proxy_pass http://{AGENT_UPSTREAM}{CHECK_PATH};\n\
         {i3}proxy_pass_request_body off;\n\
         {i3}proxy_set_header Content-Length \"\";\n\
         {i3}proxy_set_header Connection \"\";\n\
         {i3}proxy_set_header Host {AGENT_SOCKET_AUTHORITY};\n\
         {i3}proxy_set_header X-Request-Id $autoid_request_id;\n\
         {i3}proxy_set_header x-autoid-api {id};\n\
         {i3}proxy_set_header x-autoid-method $request_method;\n\
         {i3}proxy_set_header x-autoid-uri $request_uri;\n\
         {i3}proxy_set_header x-autoid-authority $http_host;\n\
         {i3}proxy_set_header x-autoid-peer $remote_addr;\n\
         {i3}proxy_set_header x-autoid-tls {};\n\
         {i3}proxy_connect_timeout {};\n\
         {i3}proxy_read_timeout {};\n\
         {i3}proxy_send_timeout {};\n\
         {i2}}}",
        if tls { 1 } else { 0 },
        ms(connect),
        ms(timeout * CHECK_CALLOUTS),
        ms(timeout),
        id = s.def.id,
    );
}

/// The server's 403 and the other statuses auth_request turns into 500: `x-autoid-status`
/// says which; no answer at all (the agent down) is 503.
pub(super) fn denial_locations(out: &mut String, hsts: Option<u64>) {
    let i2 = "        ";
    let i3 = "            ";
    let i4 = "                ";
    // A URI, not a named location: nginx cannot redirect a request whose line it refused to one.
    let _ = writeln!(
        out,
        "{i2}location = {BAD_REQUEST_LOCATION} {{\n{i3}internal;\n{i3}default_type application/json;"
    );
    reply_headers(out, i3, hsts);
    let _ = writeln!(out, "{i3}return 400 {};\n{i2}}}", body("bad_request"));
    // 401: auth_request has copied the agent's WWW-Authenticate (nginx 1.22: the first one).
    let _ = writeln!(
        out,
        "{i2}location @autoid_401 {{\n{i3}default_type application/json;"
    );
    reply_headers(out, i3, hsts);
    let _ = writeln!(out, "{i3}return 401 {};\n{i2}}}", body("unauthorized"));
    let _ = writeln!(
        out,
        "{i2}location @autoid_403 {{\n{i3}default_type application/json;"
    );
    reply_headers(out, i3, hsts);
    let _ = writeln!(out, "{i3}return 403 {};\n{i2}}}", body("forbidden"));
    let _ = writeln!(
        out,
        "{i2}location @autoid_denied {{\n{i3}default_type application/json;"
    );
    reply_headers(out, i3, hsts);
    let _ = writeln!(out, "{i3}add_header Retry-After 1 always;");
    for (status, error) in RESTORED {
        if status == 503 {
            continue;
        }
        let _ = writeln!(out, "{i3}if ($autoid_status = {status}) {{");
        reply_headers(out, i4, hsts);
        if status == 429 {
            let _ = writeln!(
                out,
                "{i4}add_header Retry-After $autoid_retry_after always;"
            );
        }
        let _ = writeln!(out, "{i4}return {status} {};\n{i3}}}", body(error));
    }
    let _ = writeln!(out, "{i3}return 503 {};\n{i2}}}", body("unavailable"));
}
