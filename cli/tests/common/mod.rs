//! Shared helpers: run the built `autoid`, a fixture with a key, an epoch and entropy files, and
//! a tiny recording HTTP server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `autoid` with `args` in `dir`.
pub fn autoid_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoid"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A copy of the example gateway configuration directory (`gateway-config/examples`), to render
/// or to break.
pub fn example_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo().join("gateway-config/examples");
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", src.display()))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    tmp
}

/// Runs `autoid` with `args` (no proxy from the environment).
pub fn autoid<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoid"))
        .args(args)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .expect("run autoid")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, printing both streams when it is wrong.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Runs `autoid` and asserts success; returns stdout.
#[track_caller]
pub fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let o = autoid(args);
    assert_code(&o, 0);
    stdout(&o)
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A gateway key `gw-1` (2048 bits), an epoch `ep-1`, and entropy files for alice and carol.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub epoch: PathBuf,
    pub alice: PathBuf,
    pub carol: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let keys = d.join("keys");
        ok(&[
            "keygen",
            "--out",
            &s(&keys),
            "--kid",
            "gw-1",
            "--bits",
            "2048",
        ]);
        let epoch = d.join("ep-1.epoch.json");
        ok(&[
            "epoch",
            "new",
            "--out",
            &s(&epoch),
            "--id",
            "ep-1",
            "--file-size",
            "64KiB",
        ]);
        let alice = d.join("alice.entropy");
        let carol = d.join("carol.entropy");
        for (sub, path) in [("alice", &alice), ("carol", &carol)] {
            ok(&[
                "entropy",
                "issue",
                "--epoch",
                &s(&epoch),
                "--subject",
                sub,
                "--out",
                &s(path),
            ]);
        }
        Fixture {
            private_key: keys.join("gw-1.key.pem"),
            public_key: keys.join("gw-1.pub.pem"),
            epoch,
            alice,
            carol,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `autoid prove` for alice; returns the header value.
    pub fn prove(&self, method: &str, url: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "prove".to_owned(),
            "--public-key".to_owned(),
            s(&self.public_key),
            "--entropy".to_owned(),
            s(&self.alice),
            "--subject".to_owned(),
            "alice".to_owned(),
            "--method".to_owned(),
            method.to_owned(),
            "--url".to_owned(),
            url.to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let out = ok(&args);
        assert_eq!(out.lines().count(), 1, "prove prints one line: {out:?}");
        out.trim_end().to_owned()
    }

    /// `autoid verify` with the fixture's key and epoch.
    pub fn verify(&self, header: &str, method: &str, url: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify".to_owned(),
            "--private-key".to_owned(),
            s(&self.private_key),
            "--header".to_owned(),
            header.to_owned(),
            "--method".to_owned(),
            method.to_owned(),
            "--url".to_owned(),
            url.to_owned(),
        ];
        if !extra.contains(&"--epoch") {
            args.push("--epoch".to_owned());
            args.push(s(&self.epoch));
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        autoid(&args)
    }

    /// Asserts that verification rejects with `code`.
    #[track_caller]
    pub fn assert_rejected(
        &self,
        header: &str,
        method: &str,
        url: &str,
        extra: &[&str],
        code: &str,
    ) {
        let o = self.verify(header, method, url, extra);
        assert_code(&o, 1);
        assert_eq!(
            stdout(&o),
            format!("rejected: {code}\n"),
            "stderr: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).is_empty(), "a human explanation on stderr");
    }
}

/// The `.`-separated parts of a header value.
pub fn parts(header: &str) -> Vec<&str> {
    header.split('.').collect()
}

/// What the test server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// All values of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1:0 that records each request before
/// answering `status`, so everything is recorded by the time the client has its response.
pub fn serve(status: u16) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or_default().to_owned();
            let target = words.next().unwrap_or_default().to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let n = {
                let mut seen = record.lock().unwrap();
                seen.push(Seen {
                    method,
                    target,
                    headers,
                    body,
                });
                seen.len()
            };
            let reply = if (200..300).contains(&status) {
                format!("hello {n}\n")
            } else {
                "denied\n".to_owned()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (addr, seen)
}
