//! Arm (n): Debian's nginx (one worker, as Envoy runs one) with `auth_request` to a checking
//! agent's `/v1/check`, as `autoid gateway render --target nginx` renders it
//! ([`crate::gateway`]); allowed requests are answered by a static file (the other arms'
//! `direct_response`), so the upstream is never the bottleneck.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use autoid_testkit::nginx::{self as testkit, Nginx};

use crate::envoy::{PATH, rss_kb_of, write_private};
use crate::gateway;

/// nginx for one run.
#[derive(Debug)]
pub struct Front {
    nginx: Nginx,
    pub addr: SocketAddr,
    /// The worker's pid (the master only waits).
    worker: u32,
}

impl Front {
    /// Starts nginx on `rendered` (what `autoid gateway render --target nginx` wrote, listening
    /// on `listen`), the API answered by a static file instead of the upstream; its files in
    /// `dir/<name>.nginx/`.
    pub fn start(dir: &Path, name: &str, listen: u16, rendered: &str) -> Result<Front> {
        let prefix = dir.join(format!("{name}.nginx"));
        let root = prefix.join("static");
        let file = root.join(PATH.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().context("the bench path has a parent")?)?;
        std::fs::write(&file, gateway::BODY)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], listen));
        let config = gateway::nginx(rendered, &root)?;
        let conf = dir.join(format!("{name}.nginx.conf"));
        write_private(&conf, config.as_bytes())?;
        let nginx = Nginx::start(&testkit::binary()?, &conf, &prefix, &[addr])?;
        let children = format!("/proc/{0}/task/{0}/children", nginx.proc.pid());
        let worker = std::fs::read_to_string(&children)
            .with_context(|| format!("nginx's worker ({children})"))?
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("nginx has no worker yet ({children})"))?;
        Ok(Front {
            nginx,
            addr,
            worker,
        })
    }

    /// The worker's pid: its CPU is the gateway's.
    pub fn pid(&self) -> u32 {
        self.worker
    }

    /// The worker's resident memory, kB.
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb_of(self.worker)
    }

    /// nginx's error log (empty when clean).
    pub fn error_log(&self) -> String {
        self.nginx.error_log()
    }
}
