//! `autoid gateway render --target nginx`: the same API definitions as an nginx configuration
//! whose every API `location` asks the agent's `/v1/check` with `auth_request`
//! (docs/GATEWAYS.md: the check contract, "nginx auth_request"): TLS with Mozilla's
//! "intermediate" profile and HSTS, the agent's answer copied upstream, the client's copies of
//! managed headers and the proof cleared, and the agent's real status and uniform JSON body
//! restored on a denial (auth_request itself only passes 401 and 403).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use autoid_protocol::check::{CONTRACT_HEADERS, STATUS_HEADER};
use autoid_protocol::config::{Api, Config};

use super::defs::{AgentAddress, ApiDef, Definitions, Upstream, aws_credentials_path};
use super::envoy::{DEFAULT_HSTS_SECS, INTERMEDIATE_CIPHERS};
use super::filter::AGENT_SOCKET_AUTHORITY;

/// The agent's check endpoint (the contract's route).
const CHECK_PATH: &str = "/v1/check";
/// The internal location prefix of the per-API check subrequests.
const CHECK_LOCATION: &str = "/_autoid/check/";
/// The internal location of nginx's own 400s, with the uniform body.
const BAD_REQUEST_LOCATION: &str = "/_autoid/bad_request";
/// The headers the check subrequest carries to the agent (the contract's), and the agent's
/// status header: cleared on the upstream request.
fn cleared_contract_headers() -> impl Iterator<Item = &'static str> {
    CONTRACT_HEADERS.into_iter().chain([STATUS_HEADER])
}
/// The nginx upstream of the agent.
const AGENT_UPSTREAM: &str = "autoid_agent";
/// The longest chain of agent answers one check may wait on (session, subject key, directory,
/// credentials): nginx's read timeout on the check is this many times `directory.timeout_ms`.
const CHECK_CALLOUTS: u64 = 4;
const DEFAULT_AGENT_TIMEOUT_MS: u64 = 1_000;
const DEFAULT_AGENT_CONNECT_MS: u64 = 1_000;
const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 15_000;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Mozilla "intermediate" curves, as OpenSSL names them.
const INTERMEDIATE_CURVES: &str = "X25519:prime256v1:secp384r1";

/// The statuses the agent may deny with besides 401 and 403, as auth_request turns them into
/// 500: the uniform body's `error` for each (plugin/src/reply.rs).
const RESTORED: [(u16, &str); 4] = [
    (400, "bad_request"),
    (413, "payload_too_large"),
    (429, "too_many_requests"),
    (503, "unavailable"),
];

/// A rendered configuration and what the operator should know about it.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) text: String,
    pub(crate) warnings: Vec<String>,
}

/// A field error: `file: path: message`.
fn field(file: &Path, path: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: {path}: {message}", file.display())
}

fn absolute(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))?;
    let s = abs
        .to_str()
        .with_context(|| format!("{}: not UTF-8", abs.display()))?;
    if s.contains(['"', '\'', '\\', '$', ';', '{', '}']) || s.chars().any(char::is_whitespace) {
        bail!(
            "{}: nginx would misread this path (quote, backslash, $, ;, braces or white space)",
            abs.display()
        );
    }
    Ok(s.to_owned())
}

/// nginx time: `1500ms`, `2s`.
fn ms(v: u64) -> String {
    if v.is_multiple_of(1000) {
        format!("{}s", v / 1000)
    } else {
        format!("{v}ms")
    }
}

/// A header name nginx can name in `$upstream_http_…` and in a variable: lowercase letters,
/// digits and `-` (nginx drops client headers with `_`).
fn nginx_header(file: &Path, at: &str, name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(field(
            file,
            at,
            format!(
                "nginx can copy only header names of a-z 0-9 and - from the agent's answer \
                 (value: {name:?})"
            ),
        ));
    }
    Ok(name.replace('-', "_"))
}

/// The variable an injected header's value is kept in between the check and the proxying.
fn var(name: &str) -> String {
    format!("$autoid_h_{}", name.replace('-', "_"))
}

/// Where the definition of managed header `name` of `api` sits, for errors.
fn header_field(def: &ApiDef, name: &str) -> String {
    if def.auth.identity.subject_header.as_deref() == Some(name) {
        "auth.identity.subject_header".to_owned()
    } else if def.auth.identity.groups_header.as_deref() == Some(name) {
        "auth.identity.groups_header".to_owned()
    } else {
        format!("auth.inject.{name}")
    }
}

/// One API as nginx serves it.
struct Served<'a> {
    file: &'a Path,
    /// The CA an https upstream's certificate must chain to (absolute).
    ca: Option<String>,
    def: &'a ApiDef,
    up: &'a Upstream,
    api: &'a Api,
}

/// The uniform JSON body of a denial (plugin/src/reply.rs: `error`, then `request_id`).
fn body(error: &str) -> String {
    format!("'{{\"error\":\"{error}\",\"request_id\":\"$autoid_request_id\"}}'")
}

/// The headers of every uniform reply: HSTS on TLS, `cache-control: no-store`.
fn reply_headers(out: &mut String, indent: &str, hsts: Option<u64>) {
    if let Some(age) = hsts {
        let _ = writeln!(
            out,
            "{indent}add_header Strict-Transport-Security \"max-age={age}\" always;"
        );
    }
    let _ = writeln!(out, "{indent}add_header Cache-Control \"no-store\" always;");
}

/// The whole configuration (`nginx -p <prefix> -c <file>`: logs, pid and temporary files go
/// under the prefix).
pub(crate) fn render(defs: &Definitions, config: &Config) -> Result<Rendered> {
    let gateway_file = defs.dir.join("gateway.json");
    let g = &defs.gateway;
    let mut warnings = Vec::new();
    let Some(directory) = &g.directory else {
        return Err(field(
            &gateway_file,
            "directory",
            "required for nginx: every request is checked by the agent (`\"address\": \
             \"unix:<socket>\"`)",
        ));
    };
    let socket = match directory.agent_address() {
        Some(AgentAddress::Unix(path)) => absolute(&defs.resolve(&path))?,
        _ => {
            return Err(field(
                &gateway_file,
                "directory.address",
                format!(
                    "nginx reaches the agent's check on its unix socket only (unix:<path>) \
                     (value: {:?})",
                    directory.address
                ),
            ));
        }
    };
    nginx_header(&gateway_file, "plugin.proof_header", &config.proof_header)?;

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
    // Every header the filter sets on any API: a client's copy never goes upstream.
    let managed = config.all_managed_headers();

    let timeout = directory.timeout_ms.unwrap_or(DEFAULT_AGENT_TIMEOUT_MS);
    let connect = directory
        .connect_timeout_ms
        .unwrap_or(DEFAULT_AGENT_CONNECT_MS);
    let mut out = String::new();
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

    let listeners = [
        g.listeners.https.as_ref().map(|h| {
            (
                h.address.as_str(),
                h.port,
                Some((h, h.hsts_max_age_secs.unwrap_or(DEFAULT_HSTS_SECS))),
            )
        }),
        g.listeners
            .http
            .as_ref()
            .map(|h| (h.address.as_str(), h.port, None)),
    ];
    for (address, port, tls) in listeners.into_iter().flatten() {
        if port == 0 {
            return Err(field(
                &gateway_file,
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
            api_location(&mut out, n, s, &managed, config)?;
            check_location(&mut out, s, tls.is_some(), timeout, connect);
            // The prefix without its slash is no API's (nginx would redirect it to the API).
            let bare = s.def.listen_path.trim_end_matches('/');
            if !bare.is_empty() {
                let _ = writeln!(
                    out,
                    "{i2}location = {bare} {{\n{i2}    default_type application/json;"
                );
                reply_headers(&mut out, &format!("{i2}    "), hsts);
                let _ = writeln!(out, "{i2}    return 403 {};\n{i2}}}", body("forbidden"));
            }
        }
        // Paths no API serves: the filter's 403 for an unknown route, without asking the agent.
        let _ = writeln!(
            out,
            "{i2}location / {{\n{i2}    default_type application/json;"
        );
        reply_headers(&mut out, &format!("{i2}    "), hsts);
        let _ = writeln!(out, "{i2}    return 403 {};\n{i2}}}", body("forbidden"));
        denial_locations(&mut out, hsts);
        let _ = writeln!(out, "{i1}}}");
    }
    out.push_str("}\n");
    Ok(Rendered {
        text: out,
        warnings,
    })
}

/// The API's location.
fn api_location(
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
fn target_var(n: usize) -> String {
    format!("$autoid_target_{n}")
}

/// What replaces the listen path on the way upstream: the same rewrite as the Envoy route
/// (`strip_listen_path`, the upstream's base path; the listen path starts and ends with `/`).
fn upstream_prefix(s: &Served<'_>) -> String {
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
fn regex_literal(text: &str) -> String {
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
fn check_location(out: &mut String, s: &Served<'_>, tls: bool, timeout: u64, connect: u64) {
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
fn denial_locations(out: &mut String, hsts: Option<u64>) {
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

/// nginx: `explicit`, else Debian's `/usr/sbin/nginx`, else `nginx` on PATH.
pub(crate) fn binary(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    /// A config directory: the agent holds keys and epochs, so the key file is never read.
    fn fixture(gateway: impl FnOnce(&mut Value), apis: &[Value]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("keys")).unwrap();
        std::fs::write(d.join("keys/gw-1.key.pem"), "not read").unwrap();
        let epoch = autoid_protocol::entropy::Epoch::new(
            "ep-1",
            [7; 32],
            autoid_protocol::policy::DEFAULT_FILE_SIZE,
            autoid_protocol::policy::DEFAULT_INTERVAL_COUNT,
        )
        .unwrap();
        std::fs::write(d.join("ep-1.epoch.json"), epoch.to_json()).unwrap();
        std::fs::set_permissions(
            d.join("ep-1.epoch.json"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let mut g = json!({
            "listeners": {
                "https": {"address": "127.0.0.1", "port": 8443,
                          "cert_file": "tls/server.pem", "key_file": "tls/server.key"},
                "http": {"address": "127.0.0.1", "port": 8080}
            },
            "plugin": {"wasm_file": "x.wasm", "keys_dir": "keys", "session_keys": "agent",
                       "epochs": "agent", "epoch_files": ["ep-1.epoch.json"]},
            "directory": {"address": "unix:agent.sock", "timeout_ms": 500}
        });
        gateway(&mut g);
        std::fs::write(d.join("gateway.json"), g.to_string()).unwrap();
        std::fs::create_dir_all(d.join("apis")).unwrap();
        for api in apis {
            let id = api["id"].as_str().unwrap();
            std::fs::write(d.join(format!("apis/{id}.json")), api.to_string()).unwrap();
        }
        dir
    }

    fn demo_apis() -> Vec<Value> {
        vec![
            json!({"id": "payments", "name": "Payments", "listen_path": "/payments/",
                   "strip_listen_path": true, "upstream": "http://127.0.0.1:9000/v1/payments/",
                   "auth": {"require": {"any_of": ["payments"]},
                            "inject": {"authorization": {"env": "PAY"}, "x-tenant": {"value": "t"}},
                            "identity": {"subject_header": "x-autoid-subject",
                                         "groups_header": "x-autoid-groups"}}}),
            json!({"id": "legacy", "name": "Legacy", "listen_path": "/legacy/",
                   "upstream": "http://127.0.0.1:9000",
                   "auth": {"methods": ["ldap_basic"], "basic": {"plain_http": "loopback"},
                            "require": {"any_of": ["g"]},
                            "inject": {"x-api-key": {"env": "LEGACY"}}}}),
            json!({"id": "secrets", "name": "Signed", "listen_path": "/secrets/",
                   "upstream": "http://127.0.0.1:4566",
                   "aws_service": {"service": "secretsmanager", "region": "us-east-1",
                                   "role_arn": "arn:aws:iam::1:role/r"},
                   "auth": {"require": {"any_of": ["g"]}}}),
        ]
    }

    fn render_dir(dir: &Path) -> Result<Rendered> {
        let defs = Definitions::load(dir)?;
        let value = super::super::filter::build(&defs)?;
        let config = Config::from_json(&serde_json::to_vec(&value)?).unwrap();
        render(&defs, &config)
    }

    fn rendered() -> Rendered {
        let dir = fixture(|_| {}, &demo_apis());
        render_dir(dir.path()).unwrap()
    }

    /// The variable `proxy_pass <upstream>$var;` in `block` sends.
    fn target_of(block: &str, upstream: &str) -> String {
        let at = block
            .find(&format!("proxy_pass {upstream}$"))
            .unwrap_or_else(|| panic!("no proxy_pass {upstream}$… in\n{block}"));
        let rest = &block[at + "proxy_pass ".len() + upstream.len()..];
        rest[..rest.find(';').unwrap()].to_owned()
    }

    /// The blocks `location <name> {…}`, one per server that has it.
    fn blocks<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        let open = format!("        location {name} {{\n");
        text.match_indices(&open)
            .map(|(at, _)| {
                let rest = &text[at..];
                let end = rest.find("\n        }\n").unwrap();
                &rest[..end]
            })
            .collect()
    }

    fn error_of(dir: &Path) -> String {
        format!("{:#}", render_dir(dir).unwrap_err())
    }

    #[test]
    fn times() {
        assert_eq!(ms(1500), "1500ms");
        assert_eq!(ms(2000), "2s");
    }

    #[test]
    fn tls_is_mozilla_intermediate_with_hsts_and_http2() {
        let r = rendered();
        let https = &r.text[r.text.find("listen 127.0.0.1:8443").unwrap()..];
        let https = &https[..https.find("listen 127.0.0.1:8080").unwrap()];
        for line in [
            "listen 127.0.0.1:8443 ssl http2;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_prefer_server_ciphers off;",
            "ssl_session_tickets off;",
            "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
            "add_header Strict-Transport-Security \"max-age=63072000\" always;",
            "proxy_hide_header Strict-Transport-Security;",
        ] {
            assert!(https.contains(line), "{line} missing in\n{https}");
        }
        assert!(https.contains(&format!("ssl_ciphers {};", INTERMEDIATE_CIPHERS.join(":"))));
        assert!(!r.text.contains("TLSv1.1") && !r.text.contains("TLSv1 "));
        // The plain listener has no TLS and no HSTS.
        let plain = &r.text[r.text.find("listen 127.0.0.1:8080").unwrap()..];
        assert!(!plain.contains("Strict-Transport-Security"), "{plain}");
        assert!(plain.starts_with("listen 127.0.0.1:8080;\n"));
        // Every uniform reply on the TLS listener carries HSTS too (locations with their own
        // add_header do not inherit the server's).
        for name in ["@autoid_401", "@autoid_403", "@autoid_denied", "/"] {
            let b = blocks(https, name);
            assert_eq!(b.len(), 1, "{name}");
            assert!(b[0].contains("Strict-Transport-Security"), "{}", b[0]);
        }
    }

    #[test]
    fn the_agent_gets_the_contract_headers_from_nginx_never_from_the_client() {
        let r = rendered();
        for (id, tls) in [("payments", "1"), ("legacy", "1")] {
            let b = blocks(&r.text, &format!("= /_autoid/check/{id}"));
            assert_eq!(b.len(), 2, "one per server");
            for (i, block) in b.iter().enumerate() {
                let tls = if i == 0 { tls } else { "0" };
                for line in [
                    "internal;".to_owned(),
                    "proxy_pass http://autoid_agent/v1/check;".to_owned(),
                    "proxy_pass_request_body off;".to_owned(),
                    "proxy_set_header Content-Length \"\";".to_owned(),
                    format!("proxy_set_header x-autoid-api {id};"),
                    "proxy_set_header x-autoid-method $request_method;".to_owned(),
                    "proxy_set_header x-autoid-uri $request_uri;".to_owned(),
                    "proxy_set_header x-autoid-authority $http_host;".to_owned(),
                    "proxy_set_header x-autoid-peer $remote_addr;".to_owned(),
                    format!("proxy_set_header x-autoid-tls {tls};"),
                    "proxy_read_timeout 2s;".to_owned(),
                ] {
                    assert!(block.contains(&line), "{line} missing in\n{block}");
                }
            }
        }
        // Each of the contract's headers is set in every check location: none is left to the
        // client's copy.
        for h in ["api", "method", "uri", "authority", "peer", "tls"] {
            let set = r
                .text
                .matches(&format!("proxy_set_header x-autoid-{h} "))
                .count();
            let cleared = r
                .text
                .matches(&format!("proxy_set_header x-autoid-{h} \"\";"))
                .count();
            assert_eq!(set - cleared, 4, "x-autoid-{h}: 2 APIs × 2 servers");
            assert_eq!(cleared, 4, "x-autoid-{h}: cleared upstream");
        }
        assert!(r.text.contains("server unix:"), "{}", r.text);
        assert!(r.text.contains("/agent.sock;"));
    }

    #[test]
    fn upstream_requests_get_the_agents_values_and_lose_every_client_copy() {
        let r = rendered();
        let managed = [
            "authorization",
            "x-api-key",
            "x-autoid-groups",
            "x-autoid-subject",
            "x-tenant",
        ];
        for block in blocks(&r.text, "/payments/") {
            for (name, value) in [
                ("x-autoid-proof", "\"\""),
                ("authorization", "$autoid_h_authorization"),
                ("x-tenant", "$autoid_h_x_tenant"),
                ("x-autoid-subject", "$autoid_h_x_autoid_subject"),
                ("x-autoid-groups", "$autoid_h_x_autoid_groups"),
                ("x-api-key", "\"\""),
            ] {
                assert!(
                    block.contains(&format!("proxy_set_header {name} {value};")),
                    "{name} in\n{block}"
                );
            }
            for name in [
                "authorization",
                "x-tenant",
                "x-autoid-subject",
                "x-autoid-groups",
            ] {
                let v = name.replace('-', "_");
                assert!(block.contains(&format!(
                    "auth_request_set $autoid_h_{v} $upstream_http_{v};"
                )));
            }
            assert!(block.contains("auth_request /_autoid/check/payments;"));
            for name in cleared_contract_headers() {
                assert!(
                    block.contains(&format!("proxy_set_header {name} \"\";")),
                    "{name}"
                );
            }
            // The raw bytes after the listen path, or 400 (the map says which).
            let target = target_of(block, "http://autoid_api_payments");
            assert!(r.text.contains(&format!(
                "    map $request_uri {target} {{\n        \"~^/payments/(.*)$\" \"/v1/payments/$1\";\n        default \"\";\n    }}"
            )), "{}", r.text);
            assert!(block.contains(&format!(
                "if ({target} = \"\") {{\n                set $autoid_status 400;\n                return 500;\n            }}"
            )), "{block}");
            assert!(block.contains("proxy_set_header Host \"127.0.0.1:9000\";"));
        }
        for block in blocks(&r.text, "/legacy/") {
            // Basic: the password never goes upstream; the other API's headers are cleared.
            assert!(
                block.contains("proxy_set_header authorization \"\";"),
                "{block}"
            );
            assert!(block.contains("proxy_set_header x-api-key $autoid_h_x_api_key;"));
            assert!(block.contains("proxy_set_header x-autoid-subject \"\";"));
            // Not stripped, upstream base `/`: the listen path stays.
            let target = target_of(block, "http://autoid_api_legacy");
            assert!(r.text.contains(&format!(
                "    map $request_uri {target} {{\n        \"~^/legacy/(.*)$\" \"/legacy/$1\";"
            )));
        }
        // No API location leaves a managed header or the proof to the client.
        for api in ["/payments/", "/legacy/"] {
            for block in blocks(&r.text, api) {
                for name in managed.iter().chain(&["x-autoid-proof"]) {
                    assert_eq!(
                        block.matches(&format!("proxy_set_header {name} ")).count(),
                        1,
                        "{name} in\n{block}"
                    );
                }
            }
        }
    }

    #[test]
    fn denials_restore_the_agents_status_and_body() {
        let r = rendered();
        for block in blocks(&r.text, "@autoid_denied") {
            for (status, error) in RESTORED {
                assert!(block.contains(&format!(
                    "return {status} '{{\"error\":\"{error}\",\"request_id\":\"$autoid_request_id\"}}';"
                )));
            }
            assert!(block.contains("if ($autoid_status = 429) {"));
            assert!(block.contains("add_header Retry-After $autoid_retry_after always;"));
            // Anything else (no answer: the agent down) is the last line: 503.
            assert!(block.trim_end().ends_with(
                "return 503 '{\"error\":\"unavailable\",\"request_id\":\"$autoid_request_id\"}';"
            ));
        }
        assert_eq!(
            r.text.matches("error_page 500 = @autoid_denied;").count(),
            4
        );
        assert_eq!(r.text.matches("error_page 401 = @autoid_401;").count(), 4);
        // nginx's own 400 (a request line it refuses) answers the uniform body, in both servers.
        assert_eq!(
            r.text
                .matches("error_page 400 /_autoid/bad_request;")
                .count(),
            2
        );
        let bad = blocks(&r.text, "= /_autoid/bad_request");
        assert_eq!(bad.len(), 2);
        for block in bad {
            assert!(block.contains("internal;"), "{block}");
            assert!(block.contains(
                "return 400 '{\"error\":\"bad_request\",\"request_id\":\"$autoid_request_id\"}';"
            ));
        }
        assert_eq!(r.text.matches("error_page 403 = @autoid_403;").count(), 4);
    }

    #[test]
    fn a_listen_path_is_matched_byte_for_byte_on_the_raw_target() {
        assert_eq!(regex_literal("/payments/"), "/payments/");
        assert_eq!(regex_literal("/a.b+c/"), "/a\\x2eb\\x2bc/");
        assert_eq!(regex_literal("/\"$x/"), "/\\x22\\x24x/");
        assert_eq!(regex_literal("/é/"), "/\\xc3\\xa9/");
    }

    #[test]
    fn an_api_nginx_cannot_serve_is_left_out_with_a_warning() {
        let r = rendered();
        assert!(!r.text.contains("/secrets/"));
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].contains("apis/secrets.json: aws_service: nginx cannot sign"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn an_https_upstream_is_verified_against_its_ca_and_name() {
        let mut api = demo_apis().remove(0);
        api["upstream"] = json!("https://api.example:8443/v1/payments/");
        api["upstream_ca_file"] = json!("upstream-ca.pem");
        api["strip_listen_path"] = json!(false);
        let dir = fixture(|_| {}, &[api]);
        let r = render_dir(dir.path()).unwrap();
        let ca = std::path::absolute(dir.path().join("upstream-ca.pem")).unwrap();
        for block in blocks(&r.text, "/payments/") {
            for line in [
                "proxy_ssl_verify on;".to_owned(),
                format!("proxy_ssl_trusted_certificate {};", ca.display()),
                "proxy_ssl_name api.example;".to_owned(),
                "proxy_ssl_server_name on;".to_owned(),
                "proxy_ssl_protocols TLSv1.2 TLSv1.3;".to_owned(),
                "proxy_set_header Host \"api.example:8443\";".to_owned(),
                // Not stripped: the base path, then the listen path (the Envoy route's rewrite).
            ] {
                assert!(block.contains(&line), "{line} missing in\n{block}");
            }
            assert_eq!(
                target_of(block, "https://autoid_api_payments"),
                "$autoid_target_0"
            );
        }
        // Not stripped: the base path, then the listen path (the Envoy route's rewrite).
        assert!(
            r.text.contains(
                "    map $request_uri $autoid_target_0 {\n        \"~^/payments/(.*)$\" \"/v1/payments/payments/$1\";\n        default \"\";\n    }"
            ),
            "{}",
            r.text
        );
        assert!(r.text.contains("server api.example:8443;"));
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let tcp = fixture(
            |g| {
                g["directory"] = json!({"address": "127.0.0.1:9443", "token": {"value": "0123456789abcdef0123"},
                                        "ca_file": "ca.pem"});
            },
            &demo_apis()[..1],
        );
        let e = error_of(tcp.path());
        assert!(
            e.contains("gateway.json: directory.address: nginx reaches the agent's check on its unix socket only")
                && e.contains("\"127.0.0.1:9443\""),
            "{e}"
        );
        let port0 = fixture(
            |g| g["listeners"]["http"]["port"] = json!(0),
            &demo_apis()[..1],
        );
        let e = error_of(port0.path());
        assert!(
            e.contains("gateway.json: listeners.http.port: nginx cannot listen on port 0"),
            "{e}"
        );
        let mut api = demo_apis().remove(0);
        api["upstream"] = json!("https://10.1.2.3/v1/");
        let ip = fixture(|_| {}, &[api]);
        let e = error_of(ip.path());
        assert!(
            e.contains(
                "apis/payments.json: upstream: nginx verifies an https upstream by host name"
            ) && e.contains("\"https://10.1.2.3/v1/\""),
            "{e}"
        );
        let mut api = demo_apis().remove(0);
        api["auth"]["inject"]["x.odd"] = json!({"value": "v"});
        let odd = fixture(|_| {}, &[api]);
        let e = error_of(odd.path());
        assert!(
            e.contains("apis/payments.json: auth.inject.x.odd: nginx can copy only")
                && e.contains("\"x.odd\""),
            "{e}"
        );
    }
}
