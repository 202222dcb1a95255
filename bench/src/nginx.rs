//! Arm (n): Debian's nginx (one worker, as Envoy runs one) with `auth_request` to a checking
//! agent's `/v1/check`, as `autoid gateway render --target nginx` renders one API's location:
//! the contract's headers set by nginx, no body to the agent; allowed requests are answered by a
//! static file (the other arms' `direct_response`), so the upstream is never the bottleneck.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use autoid_testkit::nginx::{self as testkit, Nginx};

use crate::envoy::{PATH, ROUTE_NAME, rss_kb_of, write_private};

/// nginx for one run.
#[derive(Debug)]
pub struct Front {
    nginx: Nginx,
    pub addr: SocketAddr,
    /// The worker's pid (the master only waits).
    worker: u32,
}

impl Front {
    /// Starts nginx on `listen`, checking every request with the agent on `socket`; its files in
    /// `dir/<name>.nginx/`.
    pub fn start(dir: &Path, name: &str, listen: u16, socket: &Path) -> Result<Front> {
        let prefix = dir.join(format!("{name}.nginx"));
        let root = prefix.join("static");
        let file = root.join(PATH.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().context("the bench path has a parent")?)?;
        std::fs::write(&file, "ok\n")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], listen));
        let config = format!(
            "worker_processes 1;\n\
             pid nginx.pid;\n\
             error_log error.log warn;\n\
             events {{\n    worker_connections 4096;\n}}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path client_body_temp;\n\
             \x20   proxy_temp_path proxy_temp;\n\
             \x20   fastcgi_temp_path fastcgi_temp;\n\
             \x20   uwsgi_temp_path uwsgi_temp;\n\
             \x20   scgi_temp_path scgi_temp;\n\
             \x20   keepalive_requests 100000000;\n\
             \x20   upstream autoid_agent {{\n\
             \x20       server unix:{socket};\n\
             \x20       keepalive 64;\n\
             \x20       keepalive_requests 100000000;\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen {addr};\n\
             \x20       location = {PATH} {{\n\
             \x20           auth_request /_autoid/check/{ROUTE_NAME};\n\
             \x20           default_type text/plain;\n\
             \x20           root {root};\n\
             \x20       }}\n\
             \x20       location = /_autoid/check/{ROUTE_NAME} {{\n\
             \x20           internal;\n\
             \x20           proxy_pass http://autoid_agent/v1/check;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_pass_request_body off;\n\
             \x20           proxy_set_header Content-Length \"\";\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20           proxy_set_header Host autoid-agent;\n\
             \x20           proxy_set_header x-autoid-api {ROUTE_NAME};\n\
             \x20           proxy_set_header x-autoid-method $request_method;\n\
             \x20           proxy_set_header x-autoid-uri $request_uri;\n\
             \x20           proxy_set_header x-autoid-authority $http_host;\n\
             \x20           proxy_set_header x-autoid-peer $remote_addr;\n\
             \x20           proxy_set_header x-autoid-tls 0;\n\
             \x20           proxy_read_timeout 6s;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n",
            socket = socket.display(),
            root = root.display(),
        );
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
