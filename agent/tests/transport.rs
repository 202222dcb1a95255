//! The agent's transports (`autoid_agent::transport`): the unix socket (its mode, a stale socket
//! replaced, a live one refused, removed on shutdown, the token optional), TCP refused without
//! TLS, and TCP with TLS and the token through a real TLS client.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Served, TOKEN, config, dev_tls, shared, unix_request};
use serde_json::{Value, json};

fn unix_config(socket: &Path) -> Value {
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("insecure_plain_tcp");
    o.insert("listen".into(), json!(format!("unix:{}", socket.display())));
    c
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_socket_is_created_0600_serves_without_a_token_and_is_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let served = Served::start(unix_config(&socket), None).unwrap();
    assert_eq!(served.address, format!("unix:{}", socket.display()));
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode(&socket), 0o600);
    // Nothing left behind from the private staging directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["agent.sock"]);

    // No token configured: the socket's permissions are the authentication.
    let (status, body) = unix_request(&socket, "GET", "/v1/groups?subject=alice", None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"], json!(["payments", "reports"]));
    assert_eq!(unix_request(&socket, "GET", "/readyz", None, None).0, 200);

    served.stop();
    assert!(!socket.exists(), "the socket outlived a clean shutdown");
}

#[test]
fn a_configured_token_is_still_checked_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let _served = Served::start(unix_config(&socket), Some(TOKEN)).unwrap();
    let path = "/v1/groups?subject=alice";
    let (status, body) = unix_request(&socket, "GET", path, None, None);
    assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
    let wrong = unix_request(
        &socket,
        "GET",
        path,
        Some("Bearer not-the-token-0123456"),
        None,
    );
    assert_eq!(wrong.0, 401);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        unix_request(&socket, "GET", path, Some(&bearer), None).0,
        200
    );
    // Readiness needs no token on any transport.
    assert_eq!(unix_request(&socket, "GET", "/readyz", None, None).0, 200);
}

#[test]
fn socket_mode_0660_for_a_shared_group() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let mut c = unix_config(&socket);
    c["socket_mode"] = json!("0660");
    let _served = Served::start(c, None).unwrap();
    assert_eq!(mode(&socket), 0o660);
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    // A dead agent's socket: bound, then its listener dropped (the file stays, nobody accepts).
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let first = Served::start(unix_config(&socket), None).unwrap();
    assert_eq!(mode(&socket), 0o600, "the stale socket's mode survived");
    assert_eq!(unix_request(&socket, "GET", "/healthz", None, None).0, 200);

    // A second agent on the live socket is refused and leaves the first one serving.
    let e = Served::start(unix_config(&socket), None).err().unwrap();
    assert!(
        e.contains(&socket.display().to_string()) && e.contains("another process is listening"),
        "{e}"
    );
    assert_eq!(unix_request(&socket, "GET", "/healthz", None, None).0, 200);
    first.stop();
    assert!(!socket.exists());
}

#[test]
fn a_file_in_the_way_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    std::fs::write(&socket, "not a socket").unwrap();
    let e = Served::start(unix_config(&socket), None).err().unwrap();
    assert!(e.contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}

#[test]
fn tcp_without_tls_is_refused() {
    let mut c = config(shared());
    c.as_object_mut().unwrap().remove("insecure_plain_tcp");
    let e = Served::start(c, Some(TOKEN)).err().unwrap();
    assert!(e.starts_with("tls: "), "{e}");
    assert!(e.contains("insecure_plain_tcp"), "{e}");
}

fn tls_agent(ca: &Path) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let pem = std::fs::read(ca).unwrap();
    let ca = Certificate::from_pem(&pem).unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
                .build(),
        )
        .build()
        .into()
}

#[test]
fn tcp_with_tls_and_the_token_works_through_a_tls_client() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_tls(dir.path()).unwrap();
    let (ca, cert, key) = (tls.ca, tls.cert, tls.key);
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("insecure_plain_tcp");
    o.insert("tls".into(), json!({"cert_file": cert, "key_file": key}));
    let served = Served::start(c, Some(TOKEN)).unwrap();
    let base = served.address.clone();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    let agent = tls_agent(&ca);
    let get = |path: &str, auth: Option<&str>| {
        let mut req = agent.get(&format!("{base}{path}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        (status, body)
    };
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = get("/v1/groups?subject=alice", Some(&bearer));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"], json!(["payments", "reports"]));
    assert_eq!(get("/v1/groups?subject=alice", None).0, 401);
    assert_eq!(get("/readyz", None), (200, json!({"status": "ready"})));

    // Plain HTTP to the TLS port gets no answer; a client that does not trust the CA fails.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let http = base.replacen("https://", "http://", 1);
    assert!(plain.get(&format!("{http}/healthz")).call().is_err());
    assert!(plain.get(&format!("{base}/healthz")).call().is_err());
    served.stop();
}
