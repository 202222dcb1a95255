//! One HTTP/1.1 request on a fresh connection, over TCP or a unix socket, with hyper's client:
//! what the tests use to ask a server whether it is ready, to read an admin page and to send a
//! request through a gateway. [`request_raw`] writes any bytes, as an attacker's client would
//! (hyper refuses to send them), and reads the answer with httparse, hyper's own parser.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Error, Result};

/// How long one exchange may take when the caller names no timeout: connect, send, read it all.
pub const TIMEOUT: Duration = Duration::from_secs(15);

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

    /// A hyper client's response, its body read to the end (any HTTP version).
    pub async fn read(response: hyper::Response<hyper::body::Incoming>) -> hyper::Result<Response> {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The body as JSON; panics with the body when it is not (tests).
    #[allow(clippy::panic, reason = "a test's assertion on the body")]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "http://{addr}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One request to `addr`. The `host` header is the address as written in a URL (a proof binds it).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    request_as(addr, &addr.to_string(), method, path, headers)
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
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    send(&Target::Tcp(addr), method, path, &all, Vec::new(), TIMEOUT)
}

/// One request over a unix socket (Envoy's admin, the agent's socket), `host: localhost`.
pub fn unix_request(socket: &Path, method: &str, path: &str) -> Result<Response> {
    send(
        &Target::Unix(socket.to_owned()),
        method,
        path,
        &[("host", "localhost")],
        Vec::new(),
        TIMEOUT,
    )
}

/// One request with hyper's HTTP/1.1 client on a connection of its own, `headers` as given (the
/// caller names `host`), `content-length` from the body; the whole exchange within `timeout`.
pub fn send<N: AsRef<[u8]>, V: AsRef<[u8]>>(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(N, V)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Response> {
    let what = format!("{method} {target}{path}");
    let unexpected = |detail: String| Error::Unexpected {
        what: what.clone(),
        detail,
    };
    let mut builder = hyper::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(name.as_ref(), value.as_ref());
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| unexpected(format!("not a request hyper can send: {e}")))?;
    runtime(&what)?.block_on(async {
        let exchange = async {
            match target {
                Target::Tcp(addr) => {
                    exchange(tokio::net::TcpStream::connect(addr).await?, request).await
                }
                Target::Unix(path) => {
                    exchange(tokio::net::UnixStream::connect(path).await?, request).await
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(|e| unexpected(e.to_string())),
            Err(_) => Err(unexpected(format!(
                "timed out: no complete answer within {} ms",
                timeout.as_millis()
            ))),
        }
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn exchange(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    request: hyper::Request<Full<Bytes>>,
) -> std::result::Result<Response, BoxError> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let response = Response::read(sender.send_request(request).await?).await?;
    connection.abort();
    Ok(response)
}

/// As [`request`], with the path and header names and values as any bytes (invalid UTF-8,
/// obs-text, NUL, CR): written to the socket as they are, then `connection: close`; the answer is
/// read to the end and parsed with httparse.
pub fn request_raw(
    addr: SocketAddr,
    method: &str,
    path: &[u8],
    headers: &[(&[u8], &[u8])],
) -> Result<Response> {
    let what = format!("{method} http://{addr}{} (raw bytes)", path.escape_ascii());
    let host = addr.to_string();
    let mut bytes = [
        method.as_bytes(),
        b" ",
        path,
        b" HTTP/1.1\r\nhost: ",
        host.as_bytes(),
        b"\r\n",
    ]
    .concat();
    for (name, value) in headers {
        bytes.extend_from_slice(&[*name, b": ", *value, b"\r\n"].concat());
    }
    bytes.extend_from_slice(b"connection: close\r\n\r\n");
    let raw = runtime(&what)?.block_on(async {
        let io = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(&bytes).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        match tokio::time::timeout(TIMEOUT, io).await {
            Ok(result) => result.map_err(Error::io(what.as_str())),
            Err(_) => Err(Error::Unexpected {
                what: what.clone(),
                detail: format!(
                    "timed out: no complete answer within {} ms",
                    TIMEOUT.as_millis()
                ),
            }),
        }
    })?;
    parse(&raw).map_err(|detail| Error::Unexpected {
        what,
        detail: format!("{detail}: {:?}", String::from_utf8_lossy(&raw)),
    })
}

/// A whole HTTP/1.1 response read to the end of the connection.
fn parse(raw: &[u8]) -> std::result::Result<Response, String> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut slots);
    let end = match head.parse(raw).map_err(|e| e.to_string())? {
        httparse::Status::Complete(end) => end,
        httparse::Status::Partial => return Err("the answer ended inside its head".into()),
    };
    let status = head.code.ok_or("no status")?;
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut rest = &raw[end..];
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let (start, size) = match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete(at)) => at,
                _ => return Err("a bad or cut chunk".into()),
            };
            let size = usize::try_from(size).map_err(|e| e.to_string())?;
            if size == 0 {
                break body;
            }
            let chunk = rest
                .get(start..start + size)
                .ok_or("the answer ended inside a chunk")?;
            body.extend_from_slice(chunk);
            rest = rest.get(start + size + 2..).unwrap_or_default();
        }
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn runtime(what: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_and_a_chunked_answer() {
        let plain =
            parse(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (401, &b"abc"[..]));
        assert_eq!(plain.header("x-a"), Some("b"));
        let chunked =
            parse(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(
            (chunked.status, chunked.body.as_slice()),
            (403, &b"abc"[..])
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Le").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").is_err());
    }
}
