//! `listen`, `socket_mode`, `tls` and `insecure_plain_tcp`: where the agent listens, and how.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Error;

/// Default listen address: a unix socket in the current directory (mode 0600).
pub const DEFAULT_LISTEN: &str = "unix:autoid-agent.sock";
/// The prefix of a unix-socket listen address.
pub const UNIX_PREFIX: &str = "unix:";

/// The agent's own certificate and key for a TCP listen address (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where the agent listens, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket at this path (relative: to the current directory), created with `mode`.
    /// The file's permissions authenticate the caller; a configured token is still checked.
    Unix { path: PathBuf, mode: u32 },
    /// TCP with TLS (rustls); the bearer token is required.
    Tls {
        addr: SocketAddr,
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// TCP without TLS: `insecure_plain_tcp`, development only; the bearer token is required.
    PlainTcp(SocketAddr),
}

impl Listen {
    /// True when the transport needs the bearer token (TCP).
    pub fn needs_token(&self) -> bool {
        !matches!(self, Listen::Unix { .. })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix { path, .. } => write!(f, "{UNIX_PREFIX}{}", path.display()),
            Listen::Tls { addr, .. } => write!(f, "https://{addr}"),
            Listen::PlainTcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

/// `listen`, `socket_mode`, `tls` and `insecure_plain_tcp`, checked together: a unix socket
/// (the default), TCP with TLS, or plain TCP only when explicitly asked for.
pub(super) fn listen(
    text: Option<String>,
    socket_mode: Option<String>,
    tls: Option<RawServerTls>,
    insecure_plain_tcp: bool,
) -> Result<Listen, Error> {
    let text = text.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    if let Some(path) = text.strip_prefix(UNIX_PREFIX) {
        if path.is_empty() || path.ends_with('/') {
            return Err(Error::config(
                "listen",
                format!("{text:?}"),
                "expected unix:<path of the socket file>",
            ));
        }
        if tls.is_some() {
            return Err(Error::config(
                "tls",
                format!("{text:?}"),
                "TLS is for a TCP listen address; a unix socket is authenticated by its file permissions",
            ));
        }
        if insecure_plain_tcp {
            return Err(Error::config(
                "insecure_plain_tcp",
                true,
                "only for a TCP listen address (listen is a unix socket)",
            ));
        }
        let mode = match socket_mode.as_deref() {
            None | Some("0600") => 0o600,
            Some("0660") => 0o660,
            Some(other) => {
                return Err(Error::config(
                    "socket_mode",
                    format!("{other:?}"),
                    "expected \"0600\" (same user) or \"0660\" (a shared group)",
                ));
            }
        };
        return Ok(Listen::Unix {
            path: PathBuf::from(path),
            mode,
        });
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        Error::config(
            "listen",
            format!("{text:?}"),
            "expected unix:<path> or ip:port",
        )
    })?;
    if let Some(m) = socket_mode {
        return Err(Error::config(
            "socket_mode",
            format!("{m:?}"),
            "only for a unix socket listen address",
        ));
    }
    match (tls, insecure_plain_tcp) {
        (Some(t), false) => Ok(Listen::Tls {
            addr,
            cert_file: t.cert_file,
            key_file: t.key_file,
        }),
        (None, true) => Ok(Listen::PlainTcp(addr)),
        (Some(_), true) => Err(Error::config(
            "insecure_plain_tcp",
            true,
            "cannot be combined with tls: give tls, or (for development) insecure_plain_tcp",
        )),
        (None, false) => Err(Error::config(
            "tls",
            "absent",
            format!(
                "listen {text:?} is TCP, which needs tls {{cert_file, key_file}} and a bearer \
                 token (use a unix socket, unix:<path>, the default; plain TCP only with \
                 insecure_plain_tcp: true, for development)"
            ),
        )),
    }
}
