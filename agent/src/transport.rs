//! Where the agent listens: a unix socket (the default; created with its final mode, a stale
//! socket replaced, a live one refused, removed on clean shutdown), TCP with TLS (tokio-rustls,
//! connections served by hyper), or plain TCP for development. See docs/AGENT.md, "Transports".

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::config::Listen;
use crate::error::Error;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket file this process created; removed on drop if it is still the same file.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Another agent may have replaced it (after deciding ours was stale): leave theirs.
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && m.dev() == self.dev
            && m.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn listen_error(listen: &Path, reason: impl Into<String>) -> Error {
    Error::Listen {
        listen: format!("unix:{}", listen.display()),
        reason: reason.into(),
    }
}

/// Binds a unix socket at `path` with permissions `mode`, never wider at any moment: it is bound
/// inside a fresh private directory (0700) beside `path`, given `mode`, then renamed into place.
/// A socket file at `path` that nobody accepts on (a dead agent's) is replaced; a live one, or a
/// file that is not a socket, is an error.
pub fn bind_unix(
    path: &Path,
    mode: u32,
) -> Result<(std::os::unix::net::UnixListener, SocketFile), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(listen_error(
                path,
                "a file that is not a socket is in the way (not touching it)",
            ));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(listen_error(
                    path,
                    "another process is listening on this socket (is an agent already running?)",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                warn!(socket = %path.display(), "replacing a stale socket (nothing listens on it)");
            }
            Err(e) => {
                return Err(listen_error(
                    path,
                    format!("cannot tell whether the existing socket is in use: {e}"),
                ));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_error(path, e.to_string())),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates the directory with mode 0700: nobody else can reach the socket in it.
    let private = tempfile::Builder::new()
        .prefix(".autoid-agent-")
        .tempdir_in(parent)
        .map_err(|e| {
            listen_error(
                path,
                format!(
                    "cannot create a private directory in {}: {e}",
                    parent.display()
                ),
            )
        })?;
    let staged = private.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(|e| listen_error(path, format!("cannot bind: {e}")))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
        .map_err(|e| listen_error(path, format!("cannot set mode {mode:o}: {e}")))?;
    std::fs::rename(&staged, path)
        .map_err(|e| listen_error(path, format!("cannot move the socket into place: {e}")))?;
    let m = std::fs::symlink_metadata(path).map_err(|e| listen_error(path, e.to_string()))?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

/// A rustls server configuration from PEM files (the workspace's ring provider, TLS 1.2+,
/// HTTP/1.1 by ALPN).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, Error> {
    let read = |what: &'static str, file: &Path| {
        std::fs::read(file).map_err(|source| Error::ReadFile {
            what,
            file: file.to_owned(),
            source,
        })
    };
    let pem = read("TLS certificate", cert_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("tls.cert_file {}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "tls.cert_file {}: no PEM certificates found",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("TLS private key", key_file)?)
        .map_err(|e| Error::Tls(format!("tls.key_file {}: {e}", key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("tls.cert_file/tls.key_file: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A bound listener, ready to serve.
pub enum Bound {
    Unix(UnixListener, SocketFile),
    Tls(TcpListener, TlsAcceptor),
    PlainTcp(TcpListener),
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bound({})", self.address())
    }
}

/// Binds `listen` (needs a tokio runtime).
pub async fn bind(listen: &Listen) -> Result<Bound, Error> {
    match listen {
        Listen::Unix { path, mode } => {
            let (std_listener, file) = bind_unix(path, *mode)?;
            std_listener
                .set_nonblocking(true)
                .map_err(|e| listen_error(path, e.to_string()))?;
            let listener = UnixListener::from_std(std_listener)
                .map_err(|e| listen_error(path, e.to_string()))?;
            Ok(Bound::Unix(listener, file))
        }
        Listen::Tls {
            addr,
            cert_file,
            key_file,
        } => {
            let acceptor = TlsAcceptor::from(server_config(cert_file, key_file)?);
            let listener = tcp(*addr).await?;
            Ok(Bound::Tls(listener, acceptor))
        }
        Listen::PlainTcp(addr) => Ok(Bound::PlainTcp(tcp(*addr).await?)),
    }
}

async fn tcp(addr: std::net::SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|e| Error::Listen {
        listen: addr.to_string(),
        reason: e.to_string(),
    })
}

impl Bound {
    /// Where it listens: `unix:<path>`, `https://ip:port` or `http://ip:port` (the real port
    /// when the configured one was 0).
    pub fn address(&self) -> String {
        let local = |l: &TcpListener| {
            l.local_addr()
                .map_or_else(|e| format!("<{e}>"), |a| a.to_string())
        };
        match self {
            Bound::Unix(_, f) => format!("unix:{}", f.path().display()),
            Bound::Tls(l, _) => format!("https://{}", local(l)),
            Bound::PlainTcp(l) => format!("http://{}", local(l)),
        }
    }

    /// The transport's name for logs: `unix`, `tls` or `plain_tcp`.
    pub fn transport(&self) -> &'static str {
        match self {
            Bound::Unix(..) => "unix",
            Bound::Tls(..) => "tls",
            Bound::PlainTcp(_) => "plain_tcp",
        }
    }

    /// Serves `app` until `shutdown` completes, then lets in-flight requests finish. The unix
    /// socket file is removed when this returns.
    pub async fn serve(
        self,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self {
            Bound::Unix(listener, file) => {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await;
                drop(file);
                served
            }
            Bound::PlainTcp(listener) => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Bound::Tls(listener, acceptor) => {
                serve_tls(listener, acceptor, app, shutdown).await;
                Ok(())
            }
        }
    }
}

/// Accepts TCP connections, runs each TLS handshake and HTTP/1.1 connection in its own task
/// (a slow handshake never blocks the accept loop), and on shutdown stops accepting and waits
/// for the open connections to finish their requests.
async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off a little instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
