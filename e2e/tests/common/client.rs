//! A real HTTP client for the e2e tests (hyper): HTTP/1.1 with `Content-Length` or chunked, and
//! HTTP/2 (prior knowledge), a body sent in the chunks given, request trailers.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::Response;

/// The protocol and framing of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// HTTP/1.1 with `Content-Length`.
    Http1Length,
    /// HTTP/1.1 with `Transfer-Encoding: chunked`, one chunk per body chunk.
    Http1Chunked,
    /// HTTP/2 over cleartext (prior knowledge), one DATA frame per body chunk.
    Http2,
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Send<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(String, String)>,
    /// Headers whose values are any bytes hyper sends (obs-text, invalid UTF-8; not NUL or CR).
    pub raw: Vec<(String, Vec<u8>)>,
    /// The body in the chunks it is sent in (none: no body at all).
    pub chunks: Vec<Vec<u8>>,
    /// Request trailers (HTTP/2, or HTTP/1.1 chunked).
    pub trailers: Vec<(String, String)>,
}

impl<'a> Send<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Send {
            method,
            path,
            headers: Vec::new(),
            raw: Vec::new(),
            chunks: Vec::new(),
            trailers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A header whose value is bytes, not text.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.raw.push((name.to_owned(), value.to_vec()));
        self
    }

    /// The body, split into chunks of `chunk` bytes (an empty body is one empty chunk).
    pub fn body(mut self, body: &[u8], chunk: usize) -> Self {
        self.chunks = if body.is_empty() {
            vec![Vec::new()]
        } else {
            body.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect()
        };
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The frames of a request body, handed to hyper one by one.
struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    exact: Option<u64>,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

/// Sends `req` to `addr` on a fresh connection. `Err` carries how the exchange failed (a reset
/// stream, a closed connection, no answer within 15 s).
pub fn send(addr: SocketAddr, wire: Wire, req: &Send<'_>) -> Result<Response, String> {
    send_from(None, addr, wire, req)
}

/// [`send`] from the local address `from` (e.g. 127.0.0.2: another source on loopback).
pub fn send_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    wire: Wire,
    req: &Send<'_>,
) -> Result<Response, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(15), exchange(from, addr, wire, req))
            .await
            .map_err(|_| "no answer within 15 s".to_owned())?
    })
}

async fn exchange(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    wire: Wire,
    req: &Send<'_>,
) -> Result<Response, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let tcp = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let io = TokioIo::new(tcp);
    let request = build(addr, wire, req)?;
    let response = match wire {
        Wire::Http2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(request).await
        }
        _ => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(request).await
        }
    }
    .map_err(|e| format!("exchange: {e}"))?;
    Response::read(response)
        .await
        .map_err(|e| format!("body: {e}"))
}

/// The hyper request for `req` on `wire` to `addr`.
fn build(addr: SocketAddr, wire: Wire, req: &Send<'_>) -> Result<Request<Frames>, String> {
    let total: usize = req.chunks.iter().map(Vec::len).sum();
    let mut frames: VecDeque<Frame<Bytes>> = req
        .chunks
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| Frame::data(Bytes::from(c.clone())))
        .collect();
    if !req.trailers.is_empty() {
        frames.push_back(Frame::trailers(header_map(&req.trailers)));
    }
    let body = Frames {
        frames,
        exact: (wire == Wire::Http1Length || req.chunks.is_empty()).then_some(total as u64),
    };
    let uri = match wire {
        Wire::Http2 => format!("http://{addr}{}", req.path),
        _ => req.path.to_owned(),
    };
    let mut builder = Request::builder().method(req.method).uri(uri);
    if wire != Wire::Http2 {
        builder = builder.header("host", addr.to_string());
    }
    if wire == Wire::Http1Chunked && !req.trailers.is_empty() {
        let names: Vec<&str> = req.trailers.iter().map(|(k, _)| k.as_str()).collect();
        builder = builder.header("trailer", names.join(", "));
    }
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    for (k, v) in &req.raw {
        let value = HeaderValue::from_bytes(v).map_err(|e| format!("header {k}: {e}"))?;
        builder = builder.header(k, value);
    }
    builder.body(body).map_err(|e| format!("request: {e}"))
}

/// One sender of requests on an open connection.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Frames>),
    H2(hyper::client::conn::http2::SendRequest<Frames>),
}

/// A connection kept open across requests, as a long-lived client keeps it: HTTP/1.1 keep-alive
/// (opened again when the server closes it), or one HTTP/2 connection with a stream per request.
pub struct Conn {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    wire: Wire,
    sender: Option<Sender>,
    /// Connections opened so far.
    pub opened: usize,
}

impl Conn {
    pub fn new(addr: SocketAddr, wire: Wire) -> Conn {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Conn {
            rt,
            addr,
            wire,
            sender: None,
            opened: 0,
        }
    }

    /// Sends `req` on the open connection (opening one when there is none or the server closed
    /// it); `Err` as [`send`]'s.
    pub fn send(&mut self, req: &Send<'_>) -> Result<Response, String> {
        let request = build(self.addr, self.wire, req)?;
        let (addr, wire) = (self.addr, self.wire);
        let mut sender = self.sender.take();
        let rt = &self.rt;
        let (result, sender, opened) = rt.block_on(async move {
            let exchange = async {
                let usable = match &mut sender {
                    Some(Sender::H1(s)) => s.ready().await.is_ok(),
                    Some(Sender::H2(s)) => s.ready().await.is_ok(),
                    None => false,
                };
                let mut opened = 0;
                if !usable {
                    let tcp = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let io = TokioIo::new(tcp);
                    opened = 1;
                    sender = Some(if wire == Wire::Http2 {
                        let (s, conn) =
                            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                                .await
                                .map_err(|e| format!("h2 handshake: {e}"))?;
                        tokio::spawn(conn);
                        Sender::H2(s)
                    } else {
                        let (s, conn) = hyper::client::conn::http1::handshake(io)
                            .await
                            .map_err(|e| format!("h1 handshake: {e}"))?;
                        tokio::spawn(conn);
                        Sender::H1(s)
                    });
                }
                let response = match sender.as_mut() {
                    Some(Sender::H1(s)) => s.send_request(request).await,
                    Some(Sender::H2(s)) => s.send_request(request).await,
                    None => unreachable!("a sender was just opened"),
                }
                .map_err(|e| format!("exchange: {e}"))?;
                let response = Response::read(response)
                    .await
                    .map_err(|e| format!("body: {e}"))?;
                Ok::<_, String>((response, opened))
            };
            match tokio::time::timeout(Duration::from_secs(15), exchange).await {
                Ok(Ok((response, opened))) => (Ok(response), sender, opened),
                Ok(Err(e)) => (Err(e), None, 0),
                Err(_) => (Err("no answer within 15 s".to_owned()), None, 0),
            }
        });
        self.sender = sender;
        self.opened += opened;
        result
    }
}
