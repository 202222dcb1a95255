//! The demo upstream (`autoid-demo-upstream`): echoes each request (method, path, headers) as
//! JSON, on a free port it reports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use crate::http::Response;
use crate::process::{Proc, command};
use crate::{Error, Result};

/// A running demo upstream.
#[derive(Debug)]
pub struct Upstream {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Upstream {
    /// Starts `bin` on 127.0.0.1:0 and reads the address from its first line.
    pub fn start(bin: &Path, log: &Path) -> Result<Upstream> {
        let what = "autoid-demo-upstream";
        let mut child = command(bin)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(Error::io(format!("start {}", bin.display())))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(Error::io(what))?;
        }
        let proc = Proc::watched("the upstream", child, log);
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| Error::Unexpected {
                what: what.into(),
                detail: format!("its first line is {line:?}, not `listening on <address>`"),
            })?;
        Ok(Upstream { proc, addr })
    }
}

impl Response {
    /// The upstream echo's values for a header (empty when the upstream did not get it); panics
    /// when the response is not the echo's (tests).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        let doc = self.json();
        assert_eq!(
            doc["upstream"], "autoid-demo-upstream",
            "not the echo: {doc}"
        );
        doc["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}
