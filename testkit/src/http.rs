//! One HTTP/1.1 request on a fresh connection (`connection: close`), over TCP or a unix socket:
//! enough to ask a server whether it is ready and to read an admin page. Tests that exercise HTTP
//! itself use a real client (hyper) instead.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result};

/// How long a connect may take, and a read.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// An HTTP/1.1 response, its body de-chunked.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not (tests).
    #[allow(clippy::panic, reason = "a test's assertion on the body")]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request to `addr`. The `host` header is the address as written in a URL (a proof binds it).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let what = format!("{method} http://{addr}{path}");
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(Error::io(what.as_str()))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(Error::io(what.as_str()))?;
    exchange(
        stream,
        &what,
        &addr.to_string(),
        method,
        path,
        &bytes(headers),
    )
}

/// As [`request`], with header names and values as any bytes (invalid UTF-8, obs-text, NUL,
/// CR): written to the socket as they are, as an attacker's client would.
pub fn request_raw(
    addr: SocketAddr,
    method: &str,
    path: &[u8],
    headers: &[(&[u8], &[u8])],
) -> Result<Response> {
    let what = format!("{method} http://{addr}{} (raw bytes)", path.escape_ascii());
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(Error::io(what.as_str()))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(Error::io(what.as_str()))?;
    let host = addr.to_string();
    let mut all: Vec<(&[u8], &[u8])> = vec![(b"host", host.as_bytes())];
    all.extend_from_slice(headers);
    exchange_bytes(stream, &what, method, path, &all)
}

fn bytes<'a>(headers: &'a [(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
    headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect()
}

/// As [`request`], with `host` as the `host` header (a request meant for another address, as
/// behind a load balancer).
pub fn request_as(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let what = format!("{method} http://{addr}{path} (host {host})");
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(Error::io(what.as_str()))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(Error::io(what.as_str()))?;
    exchange(stream, &what, host, method, path, &bytes(headers))
}

/// One request over a unix socket (Envoy's admin, the agent's socket), `host: localhost`.
pub fn unix_request(socket: &Path, method: &str, path: &str) -> Result<Response> {
    let what = format!("{method} {path} on {}", socket.display());
    let stream =
        std::os::unix::net::UnixStream::connect(socket).map_err(Error::io(what.as_str()))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(Error::io(what.as_str()))?;
    exchange(stream, &what, "localhost", method, path, &[])
}

fn exchange(
    stream: impl Read + Write,
    what: &str,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&[u8], &[u8])],
) -> Result<Response> {
    let mut all: Vec<(&[u8], &[u8])> = vec![(b"host", host.as_bytes())];
    all.extend_from_slice(headers);
    exchange_bytes(stream, what, method, path.as_bytes(), &all)
}

/// Writes `method path HTTP/1.1`, `headers` and `connection: close` byte for byte; reads the
/// response to the end.
fn exchange_bytes(
    mut stream: impl Read + Write,
    what: &str,
    method: &str,
    path: &[u8],
    headers: &[(&[u8], &[u8])],
) -> Result<Response> {
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in headers {
        req.extend_from_slice(k);
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"connection: close\r\n\r\n");
    stream.write_all(&req).map_err(Error::io(what))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(Error::io(what))?;
    let unexpected = |detail: &str| Error::Unexpected {
        what: what.to_owned(),
        detail: format!("{detail}: {:?}", String::from_utf8_lossy(&raw)),
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| unexpected("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| unexpected("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        let start = eol + 2;
        if size == 0 || data.len() < start + size {
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = data.get(start + size + 2..).unwrap_or_default();
    }
    out
}
