//! HTTP callouts: scripted, to a real local HTTP server, timing out, and to an unknown cluster.

// Test helpers outside #[test] fns: failing loudly is the point.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use autoid_host_tests::{CalloutReply, CalloutResult, Outcome};

#[test]
fn scripted_callout_resumes_the_request() {
    let gw = common::probe()
        .gateway()
        .cluster_handler("backend", |req| {
            assert_eq!(req.header(":path"), Some("/check"));
            CalloutReply::new(200)
                .header("X-Echo", req.header("x-from").unwrap_or("?"))
                .body(req.body.clone())
        })
        .build()
        .unwrap();
    let out = gw
        .request("GET", "api.local", "/x")
        .header("x-probe", "callout")
        .header("x-probe-timeout", "250")
        .send();
    assert!(out.is_upstream(), "{out:?}");
    assert_eq!(out.header("x-callout-status"), Some("200"));
    assert_eq!(out.header("x-callout-body"), Some("ping"));
    assert_eq!(out.header("x-callout-echo"), Some("probe"));

    let callouts = gw.callouts();
    assert_eq!(callouts.len(), 1);
    let record = &callouts[0];
    assert_eq!(record.cluster, "backend");
    assert_eq!(record.header(":method"), Some("POST"));
    assert_eq!(record.header(":authority"), Some("backend"));
    assert_eq!(record.body, b"ping");
    assert_eq!(record.timeout_ms, 250);
    assert_eq!(record.result, Some(CalloutResult::Replied { status: 200 }));
}

#[test]
fn timeout_is_delivered_like_envoy_without_headers_or_body() {
    let gw = common::probe()
        .gateway()
        .cluster_timeout("backend")
        .build()
        .unwrap();
    let out = gw
        .request("GET", "api.local", "/x")
        .header("x-probe", "callout")
        .send();
    assert_eq!(out.local_status(), Some(503), "{out:?}");
    assert_eq!(out.header("x-probe"), Some("callout-failed"));
    assert!(matches!(
        gw.callouts()[0].result,
        Some(CalloutResult::Failed { .. })
    ));
}

#[test]
fn unknown_cluster_is_a_bad_argument() {
    let gw = common::probe().gateway().build().unwrap();
    let out = gw
        .request("GET", "api.local", "/x")
        .header("x-probe", "callout")
        .header("x-probe-cluster", "nowhere")
        .send();
    assert_eq!(
        out.header("x-dispatch-error"),
        Some("BadArgument"),
        "{out:?}"
    );
    assert!(gw.callouts().is_empty());
}

/// Reads one HTTP/1.1 request (head and content-length body) from a connection.
fn read_request(stream: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn callout_to_a_real_http_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream);
        stream
            .write_all(b"HTTP/1.1 201 Created\r\nX-Echo: real\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong")
            .unwrap();
        seen_tx.send(request).unwrap();
    });
    let gw = common::probe()
        .gateway()
        .cluster_http("backend", address)
        .build()
        .unwrap();
    let out = gw
        .request("GET", "api.local", "/x")
        .header("x-probe", "callout")
        .send();
    assert_eq!(out.header("x-callout-status"), Some("201"), "{out:?}");
    assert_eq!(out.header("x-callout-body"), Some("pong"));
    assert_eq!(out.header("x-callout-echo"), Some("real"));
    let (head, body) = seen_rx.recv().unwrap();
    assert!(head.starts_with("POST /check HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("host: backend\r\n") && head.contains("x-from: probe\r\n"),
        "{head}"
    );
    assert_eq!(body, b"ping");
    server.join().unwrap();
}

#[test]
fn real_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _ = read_request(&mut stream);
        // Hold the connection open, silent, until the test is done.
        let _ = release_rx.recv();
    });
    let gw = common::probe()
        .gateway()
        .cluster_http("backend", address)
        .build()
        .unwrap();
    let out = gw
        .request("GET", "api.local", "/x")
        .header("x-probe", "callout")
        .header("x-probe-timeout", "100")
        .send();
    assert_eq!(out.local_status(), Some(503), "{out:?}");
    let result = gw.callouts()[0].result.clone();
    assert!(
        matches!(&result, Some(CalloutResult::Failed { reason }) if reason.contains("timed out")),
        "{result:?}"
    );
    release_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn refused_connection_fails_the_callout() {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap(); // closed at once
    let gw = common::probe()
        .gateway()
        .cluster_http("backend", address)
        .build()
        .unwrap();
    let out = gw
        .request("GET", "a", "/")
        .header("x-probe", "callout")
        .send();
    assert!(
        matches!(out, Outcome::LocalReply { status: 503, .. }),
        "{out:?}"
    );
}

#[test]
fn clusters_can_change_mid_test() {
    let gw = common::probe()
        .gateway()
        .cluster_handler("backend", |_| CalloutReply::new(200))
        .build()
        .unwrap();
    assert_eq!(
        gw.request("GET", "a", "/")
            .header("x-probe", "callout")
            .send()
            .header("x-callout-status"),
        Some("200")
    );
    gw.set_cluster("backend", autoid_host_tests::Cluster::Timeout);
    assert_eq!(
        gw.request("GET", "a", "/")
            .header("x-probe", "callout")
            .send()
            .local_status(),
        Some(503)
    );
}
