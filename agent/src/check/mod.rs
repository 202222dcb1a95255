//! `/v1/check`: the agent answers, for a request a gateway describes (the contract in
//! docs/GATEWAYS.md), what the wasm filter would decide for it with the same filter
//! configuration — by running the filter's own logic (`autoid-filter`'s `Worker` and `Flow`)
//! over a native host, never a second implementation of it.
//!
//! N check workers (threads, each a current-thread runtime and a `LocalSet`) each own one filter
//! worker; checks go to them round-robin. They share one store with Envoy's shared-data
//! semantics (replay claims are atomic across them) and the filter's counters. The filter's
//! callouts to its agent cluster are served in-process by the agent's own router.

mod host;
mod request;
mod store;
mod worker;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::sync::{mpsc, oneshot};

pub use host::{Described, Outcome};
pub use request::{Malformed, describe};
pub use store::{Counters, SharedStore};

use crate::config::CheckConfig;
use crate::error::Error;
use worker::Job;

/// The check workers.
#[derive(Debug)]
pub struct Checker {
    workers: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
    timeout: Duration,
    counters: Arc<Counters>,
}

/// Reads a filter configuration and checks it with the filter's own parser: its bytes and the
/// clusters its callouts go to (`agent.cluster`, `directory.cluster`: the agent's, served
/// in-process). Errors name `check.filter_config` and the file.
pub fn load_filter_config(file: &Path) -> Result<(Vec<u8>, Vec<String>), Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::ReadFile {
        what: "check.filter_config",
        file: file.to_owned(),
        source,
    })?;
    let config = autoid_protocol::config::Config::from_json(&bytes).map_err(|e| {
        Error::config(
            "check.filter_config",
            file.display(),
            format!("not a valid filter configuration: {e}"),
        )
    })?;
    let mut clusters: Vec<String> = config
        .agent
        .map(|a| a.callout.cluster)
        .into_iter()
        .collect();
    if let autoid_protocol::config::Groups::Directory(d) = &config.groups
        && !clusters.contains(&d.callout.cluster)
    {
        clusters.push(d.callout.cluster.clone());
    }
    Ok((bytes, clusters))
}

impl Checker {
    /// Starts `config.workers` workers over `router` (the agent's routes the filter calls) and
    /// configures them with the filter configuration file.
    pub async fn start(config: &CheckConfig, router: Router) -> Result<Checker, Error> {
        let store = Arc::new(SharedStore::default());
        let counters = Arc::new(Counters::default());
        let mut workers = Vec::with_capacity(config.workers);
        for i in 0..config.workers {
            let tx = worker::spawn(
                format!("autoid-check-{i}"),
                store.clone(),
                counters.clone(),
                router.clone(),
            )
            .map_err(|e| Error::config("check.workers", config.workers, e.to_string()))?;
            workers.push(tx);
        }
        let checker = Checker {
            workers,
            next: AtomicUsize::new(0),
            timeout: config.timeout,
            counters,
        };
        checker.reload(&config.filter_config).await?;
        Ok(checker)
    }

    /// Reads the filter configuration file again and applies it to every worker; on an error
    /// the workers keep the configuration they had.
    pub async fn reload(&self, file: &Path) -> Result<(), Error> {
        let (bytes, clusters) = load_filter_config(file)?;
        let bytes = Arc::new(bytes);
        for w in &self.workers {
            let (applied, answer) = oneshot::channel();
            let job = Job::Configure {
                bytes: bytes.clone(),
                clusters: clusters.clone(),
                applied,
            };
            let ok = w.send(job).is_ok() && answer.await.unwrap_or(false);
            if !ok {
                return Err(Error::config(
                    "check.filter_config",
                    file.display(),
                    "a check worker refused it (see the log)",
                ));
            }
        }
        Ok(())
    }

    /// Decides `request`: `None` when no worker answered in time (the caller fails closed).
    pub async fn check(&self, request: Described) -> Option<Outcome> {
        let n = self.workers.len();
        if n == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (done, answer) = oneshot::channel();
        self.workers[i].send(Job::Check(request, done)).ok()?;
        tokio::time::timeout(self.timeout, answer).await.ok()?.ok()
    }

    /// The filter's counters, summed over the workers.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
