//! Envoy's admin interface over its unix socket: one GET with hyper's HTTP/1.1 client.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// `GET path` on Envoy's admin socket: the body of a 200, else an error naming the status.
pub(crate) fn get(socket: &Path, path: &str, timeout: Duration) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start a runtime for the admin request")?;
    let what = format!("GET unix:{}{path}", socket.display());
    runtime.block_on(async {
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(socket).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let request = hyper::Request::get(path)
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .with_context(|| format!("{what}: no answer within {} ms", timeout.as_millis()))?
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        if !status.is_success() {
            bail!("{what}: {status}");
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    })
}

/// The statistics in Envoy's text format (`name: value`, text readouts `name: "value"`), by name.
pub(crate) fn parse_stats(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.to_owned(), value.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_text_readouts_are_read_by_name() {
        let stats = parse_stats(
            "cluster_manager.cds.update_rejected: 0\ncluster_manager.cds.version_text: \"0f1e\"\n",
        );
        assert_eq!(
            stats,
            [
                (
                    "cluster_manager.cds.update_rejected".to_owned(),
                    "0".to_owned()
                ),
                (
                    "cluster_manager.cds.version_text".to_owned(),
                    "0f1e".to_owned()
                ),
            ]
        );
    }
}
