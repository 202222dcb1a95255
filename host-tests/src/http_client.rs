//! A small blocking HTTP/1.1 client for callouts to real servers, honouring the callout timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::callout::{CalloutReply, CalloutRequest};

/// The timeout used when the filter asks for none (0 ms).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected stream whose read and write timeouts can be set.
trait Stream: Read + Write {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()>;
}

/// Both socket kinds have the same inherent timeout setters.
macro_rules! stream_with_timeouts {
    ($($t:ty),*) => {$(
        impl Stream for $t {
            fn set_timeouts(
                &self,
                read: Option<Duration>,
                write: Option<Duration>,
            ) -> std::io::Result<()> {
                if write.is_some() {
                    self.set_write_timeout(write)?;
                }
                if read.is_some() {
                    self.set_read_timeout(read)?;
                }
                Ok(())
            }
        }
    )*};
}

stream_with_timeouts!(TcpStream, UnixStream);

fn timeout_of(request: &CalloutRequest) -> Duration {
    if request.timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        request.timeout
    }
}

/// Sends the callout to `address` and reads the whole response, or says why not.
pub(crate) fn send(address: SocketAddr, request: &CalloutRequest) -> Result<CalloutReply, String> {
    let timeout = timeout_of(request);
    let deadline = Instant::now() + timeout;
    let remaining = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("timed out after {} ms", timeout.as_millis()))?;
    let stream = TcpStream::connect_timeout(&address, remaining)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    exchange(stream, &address.to_string(), request, timeout, deadline)
}

/// Sends the callout over the unix socket at `path` (a local connect does not block).
pub(crate) fn send_unix(path: &Path, request: &CalloutRequest) -> Result<CalloutReply, String> {
    let timeout = timeout_of(request);
    let deadline = Instant::now() + timeout;
    let stream =
        UnixStream::connect(path).map_err(|e| format!("connect to {}: {e}", path.display()))?;
    exchange(
        stream,
        &path.display().to_string(),
        request,
        timeout,
        deadline,
    )
}

fn exchange(
    mut stream: impl Stream,
    address: &str,
    request: &CalloutRequest,
    timeout: Duration,
    deadline: Instant,
) -> Result<CalloutReply, String> {
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("timed out after {} ms", timeout.as_millis()))
    };
    stream
        .set_timeouts(None, Some(remaining()?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&serialize(request))
        .map_err(|e| format!("write to {address}: {e}"))?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(reply) = parse(&buffer, false)? {
            return Ok(reply);
        }
        stream
            .set_timeouts(Some(remaining()?), None)
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return parse(&buffer, true)?
                    .ok_or_else(|| format!("{address} closed the connection mid-response"));
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("timed out after {} ms", timeout.as_millis()));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read from {address}: {e}")),
        }
    }
}

fn serialize(request: &CalloutRequest) -> Vec<u8> {
    let pseudo = |name: &str| request.header(name).unwrap_or_default();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        pseudo(":method"),
        pseudo(":path"),
        pseudo(":authority")
    );
    for (name, value) in &request.headers {
        if !name.starts_with(':')
            && name != "host"
            && name != "content-length"
            && name != "connection"
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        request.body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    bytes
}

/// Parses a complete response from `buffer`; `Ok(None)` when more bytes are needed.
fn parse(buffer: &[u8], at_eof: bool) -> Result<Option<CalloutReply>, String> {
    let Some(head_end) = find(buffer, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &buffer[head_end + 4..];
    let body = if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        match dechunk(rest)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(length) = value("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad content-length {length:?}"))?;
        match rest.get(..length) {
            Some(body) => body.to_vec(),
            None => return Ok(None),
        }
    } else if at_eof || status == 204 || status == 304 {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    headers.retain(|(k, _)| k != "transfer-encoding" && k != "connection");
    Ok(Some(CalloutReply {
        status,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
            .collect(),
        body,
    }))
}

/// Decodes a chunked body; `Ok(None)` until the last chunk arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc";
        let reply = parse(plain, false).unwrap().unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"abc"[..]));
        assert!(reply.headers.contains(&("x-a".into(), "b".into())));
        assert_eq!(parse(&plain[..plain.len() - 1], false).unwrap(), None);

        let chunked = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n";
        let reply = parse(chunked, false).unwrap().unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (403, &b"abc"[..]));
    }
}
