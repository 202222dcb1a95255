//! `autoid-demo-upstream`: the API behind the gateway in `make run`, `make demo` and the e2e
//! tests. It answers every request with what it received, as JSON:
//!
//! ```json
//! {"upstream":"autoid-demo-upstream","method":"GET","path":"/v1/x?y=1",
//!  "headers":{"authorization":["Bearer …"],"x-autoid-subject":["alice"]},"body_bytes":0,
//!  "body_sha256":"e3b0c442…"}
//! ```
//!
//! Header names are lowercase; each maps to every value received, in order (so a duplicated
//! header is visible). `--listen ADDR` (default `127.0.0.1:9000`; port 0 picks a free one); the
//! bound address is printed on stdout as `listening on ADDR`. SIGTERM or Ctrl-C stop it.
//! This is a demo: it echoes credentials back to the caller on purpose, to show what the gateway
//! injected. Never put it behind a real gateway.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Json;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        map.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    Json(json!({
        "upstream": "autoid-demo-upstream",
        "method": method.as_str(),
        "path": path,
        "headers": map,
        "body_bytes": body.len(),
        "body_sha256": hex(&Sha256::digest(&body)),
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn listen_address() -> Result<String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9000".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().context("--listen needs an address")?,
            "-h" | "--help" => {
                println!(
                    "usage: autoid-demo-upstream [--listen ADDR]   (default 127.0.0.1:9000)\n\
                     Answers every request with its method, path and headers as JSON."
                );
                std::process::exit(0);
            }
            other => {
                bail!("unknown argument {other:?} (usage: autoid-demo-upstream [--listen ADDR])")
            }
        }
    }
    Ok(listen)
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let listen = listen_address()?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    let app = axum::Router::new().fallback(echo);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("server error")?;
    Ok(())
}
