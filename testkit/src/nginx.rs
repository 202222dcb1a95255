//! Debian's nginx on a configuration `autoid gateway render --target nginx` wrote: in the
//! foreground (`-g 'daemon off;'`) with a prefix directory of its own (its error log, access log,
//! pid and temporary files go there), waited on until every listener accepts connections,
//! stopped when dropped.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{Proc, command};
use crate::{Error, Result};

pub const NGINX_INSTALL: &str = "make deps-nginx   (or: sudo apt-get install -y nginx)";
/// The longest nginx may take to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// nginx: $AUTOID_NGINX, else Debian's /usr/sbin/nginx, else `nginx` on PATH.
pub fn binary() -> Result<PathBuf> {
    let missing = |path: PathBuf| Error::Missing {
        what: "nginx".into(),
        path,
        hint: NGINX_INSTALL.into(),
    };
    if let Some(p) = std::env::var_os("AUTOID_NGINX") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(missing(p)) };
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return Ok(debian);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nginx"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| missing(debian))
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    pub proc: Proc,
    /// Its prefix: `error.log`, `access.log`, `nginx.pid` (the rendered configuration's paths).
    pub prefix: PathBuf,
}

impl Nginx {
    /// Starts `bin -p <prefix>/ -c <config> -g 'daemon off;'` (its output in `prefix/nginx.out`)
    /// and waits until every address in `listen` accepts a connection. Run as root, nginx's
    /// workers would be `nobody`, who cannot reach the agent's socket (mode 0600, owned by the
    /// tests' user): the workers then run as the master's user, as they do when not root.
    pub fn start(bin: &Path, config: &Path, prefix: &Path, listen: &[SocketAddr]) -> Result<Nginx> {
        std::fs::create_dir_all(prefix)
            .map_err(Error::io(format!("create {}", prefix.display())))?;
        let root = std::fs::metadata(prefix)
            .map_err(Error::io(format!("stat {}", prefix.display())))?
            .uid()
            == 0;
        let globals = if root {
            "daemon off; user root root;"
        } else {
            "daemon off;"
        };
        let mut dir = prefix.as_os_str().to_owned();
        dir.push("/");
        let mut proc = Proc::spawn(
            "nginx",
            command(bin)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(config)
                .arg("-g")
                .arg(globals),
            &prefix.join("nginx.out"),
        )?;
        let ready = proc.wait_ready(READY_TIMEOUT, || {
            listen
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok())
                .then_some(())
        });
        if let Err(e) = ready {
            let error_log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            return Err(match e {
                Error::Exited { what, status, log } => Error::Exited {
                    what,
                    status,
                    log: format!("{error_log}\n{log}"),
                },
                e => e,
            });
        }
        Ok(Nginx {
            proc,
            prefix: prefix.to_owned(),
        })
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }
}
