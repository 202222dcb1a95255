//! `autoid request`: real HTTP(S) requests (ureq over rustls), each with a fresh proof, all in
//! one session.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use autoid_protocol::client::Form;
use autoid_protocol::header::DEFAULT_HEADER;
use clap::Args;
use ureq::http::{HeaderName, HeaderValue};
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::binding::Target;
use crate::files;
use crate::prove::{ClientArgs, Prover, read_body};
use crate::{Outcome, usage};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid request --public-key gw-1.pub.pem --entropy alice.entropy --subject alice \\\n    \
    https://api.example/v1/payments\n  \
    autoid request --public-key gw-1.pub.pem --entropy alice.entropy --subject alice \\\n    \
    --cacert dev-ca.pem -X POST -H 'content-type: application/json' -d '{\"amount\":5}' \\\n    \
    --bind-body --repeat 3 https://localhost:8443/v1/payments\n\n\
    For each request prints `HTTP <status>` and then the response body on stdout. Exits 0 if \
    every response was 2xx, 1 if any was not, 3 on a network or TLS error. Redirects are not \
    followed (a proof is bound to one URL). The Host header is always the URL's authority, \
    the one the proof binds.")]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The method [default: GET, or POST with -d]
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// An extra request header, 'Name: value' (repeatable); not Host nor the proof header
    #[arg(short = 'H', long = "header", value_name = "K: V")]
    headers: Vec<String>,
    /// The request body; @FILE reads a file, @- reads stdin
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    data: Option<String>,
    /// Send the request N times, each with a fresh proof, all in one session
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Trust only the CA certificates in this PEM file (like curl --cacert), e.g. a dev
    /// gateway's CA; by default the Mozilla roots (webpki-roots) are trusted
    #[arg(long, value_name = "PEM")]
    cacert: Option<PathBuf>,
    /// The name of the proof header the gateway reads
    #[arg(long, value_name = "NAME", default_value = DEFAULT_HEADER)]
    header_name: String,
    /// Bind the SHA-256 of the body in each proof (the gateway can then reject a changed body)
    #[arg(long)]
    bind_body: bool,
    /// Give up on a request after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
    /// The URL (http or https)
    #[arg(value_name = "URL")]
    url: String,
}

pub(crate) fn run(args: &RequestArgs) -> Result<Outcome> {
    let method = match (&args.method, &args.data) {
        (Some(m), _) => m.clone(),
        (None, Some(_)) => "POST".to_owned(),
        (None, None) => "GET".to_owned(),
    };
    let target = Target::new(&method, &args.url)?;
    let proof_header = match HeaderName::from_bytes(args.header_name.as_bytes()) {
        Ok(name) => name,
        Err(_) => usage!("--header-name {:?}: not a header name", args.header_name),
    };
    let headers = parse_headers(&args.headers, &proof_header)?;
    let host = match HeaderValue::from_str(&target.authority) {
        Ok(v) => v,
        Err(_) => usage!(
            "URL {}: the authority is not a valid Host header",
            target.url
        ),
    };
    let body = match args.data.as_deref() {
        None => None,
        Some(data) => match data.strip_prefix('@') {
            Some(path) => Some(read_body(std::path::Path::new(path))?),
            None => Some(data.as_bytes().to_vec()),
        },
    };
    if args.bind_body && body.is_none() {
        usage!("--bind-body needs a body (-d)");
    }
    let agent = http_agent(args.cacert.as_deref(), args.timeout)?;
    let mut prover = Prover::new(&args.client)?;

    let mut stdout = std::io::stdout().lock();
    let mut all_ok = true;
    let bound = if args.bind_body {
        body.as_deref()
    } else {
        None
    };
    let send = |proof: &str| -> Result<(u16, bool, Vec<u8>)> {
        let proof =
            HeaderValue::from_str(proof).context("the proof is not a valid header value")?;
        let mut builder = ureq::http::Request::builder()
            .method(target.method.as_str())
            .uri(target.url.as_str())
            .header(ureq::http::header::HOST, host.clone());
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        builder = builder.header(&proof_header, proof);
        let sent = match &body {
            Some(body) => agent.run(
                builder
                    .body(body.as_slice())
                    .context("building the request")?,
            ),
            None => agent.run(builder.body(()).context("building the request")?),
        };
        let mut response = sent.map_err(|e| anyhow!("{} {}: {e}", target.method, target.url))?;
        let status = response.status().as_u16();
        let unknown_session = status == 401
            && response
                .headers()
                .get_all(ureq::http::header::WWW_AUTHENTICATE)
                .iter()
                .any(|v| v.to_str().is_ok_and(names_unknown_session));
        let bytes = response.body_mut().read_to_vec().map_err(|e| {
            anyhow!(
                "{} {}: reading the response: {e}",
                target.method,
                target.url
            )
        })?;
        Ok((status, unknown_session, bytes))
    };
    for _ in 0..args.repeat {
        let form = prover.next_form();
        let (mut status, unknown_session, mut bytes) = send(&prover.prove(form, &target, bound)?)?;
        if form == Form::Compact && unknown_session {
            // The gateway does not hold the session (docs/PROTOCOL.md §11): one new proof in
            // the full form.
            (status, _, bytes) = send(&prover.prove(Form::Full, &target, bound)?)?;
            prover.sent_full();
        } else if form == Form::Full {
            prover.sent_full();
        }
        all_ok &= (200..300).contains(&status);
        writeln!(stdout, "HTTP {status}")
            .and_then(|()| stdout.write_all(&bytes))
            .and_then(|()| match bytes.last() {
                Some(b'\n') | None => Ok(()),
                Some(_) => writeln!(stdout),
            })
            .and_then(|()| stdout.flush())
            .context("writing to stdout")?;
    }
    Ok(if all_ok {
        Outcome::Success
    } else {
        Outcome::Rejected
    })
}

/// Whether a `WWW-Authenticate` field value holds an `AutoID` challenge whose `error` parameter
/// is `unknown_session` (docs/PROTOCOL.md §11: scheme and parameter names in any case, the value a
/// token or a quoted string, other challenges on the same line allowed).
fn names_unknown_session(value: &str) -> bool {
    let mut in_autoid = false;
    for item in value.split(',') {
        let item = item.trim();
        // A challenge starts with its scheme: `Scheme` or `Scheme param=value`.
        let param = match item.split_once(char::is_whitespace) {
            Some((first, rest)) if !first.contains('=') => {
                in_autoid = first.eq_ignore_ascii_case("AutoID");
                rest.trim()
            }
            None if !item.contains('=') => {
                in_autoid = item.eq_ignore_ascii_case("AutoID");
                continue;
            }
            _ => item,
        };
        if let Some((name, v)) = param.split_once('=')
            && in_autoid
            && name.trim().eq_ignore_ascii_case("error")
        {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v == "unknown_session" {
                return true;
            }
        }
    }
    false
}

/// Parses `-H 'Name: value'`; Host and the proof header are the tool's to set.
fn parse_headers(
    raw: &[String],
    proof_header: &HeaderName,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::with_capacity(raw.len());
    for h in raw {
        let Some((name, value)) = h.split_once(':') else {
            usage!("-H {h:?}: expected 'Name: value'");
        };
        let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
            usage!("-H {h:?}: not a header name");
        };
        let Ok(value) = HeaderValue::from_str(value.trim()) else {
            usage!("-H {h:?}: not a header value");
        };
        if name == ureq::http::header::HOST {
            usage!("-H {h:?}: Host comes from the URL (the proof binds it)");
        }
        if name == *proof_header {
            usage!("-H {h:?}: the proof header is set by autoid");
        }
        out.push((name, value));
    }
    Ok(out)
}

/// An agent that returns non-2xx responses instead of errors, follows no redirects, gives up
/// after `timeout` seconds, and trusts only `cacert`'s certificates when given.
pub(crate) fn http_agent(cacert: Option<&std::path::Path>, timeout: u64) -> Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .allow_non_standard_methods(true)
        .timeout_global(Some(Duration::from_secs(timeout)));
    if let Some(path) = cacert {
        let pem = files::read_bytes(path, "the CA certificates")?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => anyhow::bail!("{}: not a PEM certificate file: {e}", path.display()),
            }
        }
        if certs.is_empty() {
            anyhow::bail!("{}: no certificate in this PEM file", path.display());
        }
        config = config.tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().new_agent())
}

#[cfg(test)]
mod tests {
    use super::names_unknown_session;

    #[test]
    fn the_unknown_session_hint_is_read_from_an_autoid_challenge_only() {
        for yes in [
            r#"AutoID realm="autoid", header="x-autoid-proof", error="unknown_session""#,
            r#"autoid error=unknown_session"#,
            r#"Basic realm="legacy", charset="UTF-8", AutoID realm="autoid", ERROR="unknown_session""#,
            r#"AutoID realm="autoid", error="unknown_session", Basic realm="x""#,
        ] {
            assert!(names_unknown_session(yes), "{yes}");
        }
        for no in [
            r#"AutoID realm="autoid", header="x-autoid-proof""#,
            r#"Basic realm="x", error="unknown_session""#,
            r#"AutoID realm="autoid", error="invalid_token""#,
            r#"AutoID realm="autoid", Basic error="unknown_session""#,
            "",
        ] {
            assert!(!names_unknown_session(no), "{no}");
        }
    }
}
