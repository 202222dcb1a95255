//! Rotating the gateway key and an entropy epoch under load, through real Envoy and the real
//! agent: `autoid rotate key|epoch` adds a key or an epoch at the agent and gives the old one an
//! overlap, the agent reloads on SIGHUP, clients move to the new key or new entropy files — and
//! no request made with valid material fails, Envoy is never restarted, and once the overlap ends
//! the old material (new sessions and cached ones, new streams and cached ones) is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoid_protocol::client::Session;
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::keys::PublicKey;
use common::{Options, PROOF_HEADER, Stack, bin, eventually, request};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A client as a workload runs one: a session under the key it was given, a proof per request.
struct Client {
    public: PublicKey,
    file: EntropyFile,
    session: Session,
    authority: String,
}

impl Client {
    fn new(s: &Stack, kid: &str) -> Client {
        Client::with_file(s, kid, &s.path("alice.entropy"))
    }

    /// A client of key `kid` holding the entropy file at `entropy`.
    fn with_file(s: &Stack, kid: &str, entropy: &Path) -> Client {
        let pem = std::fs::read_to_string(s.path(&format!("keys/{kid}.pub.pem"))).unwrap();
        let public = PublicKey::from_pem(kid, &pem).unwrap();
        let file = EntropyFile::from_bytes(&std::fs::read(entropy).unwrap()).unwrap();
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let session = Session::open(&public, now(), &mut rng).unwrap();
        Client {
            public,
            file,
            session,
            authority: s.http.to_string(),
        }
    }

    fn renew(&mut self) {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        self.session = Session::open(&self.public, now(), &mut rng).unwrap();
    }

    fn get(&self, s: &Stack, path: &str) -> u16 {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let req = autoid_protocol::Request {
            method: "GET",
            authority: &self.authority,
            path,
        };
        let proof = self
            .session
            .prove(&self.file, &req, now(), None, &mut rng)
            .unwrap();
        request(s.http, "GET", path, &[(PROOF_HEADER, &proof)])
            .expect("the gateway answers")
            .status
    }
}

/// What a workload uses: the key id and the entropy file it was last given.
type Material = (String, PathBuf);

/// The load: two workloads sending valid requests until stopped, each renewing its session every
/// 32 requests so new sessions are unwrapped by the agent throughout — a few per second, within
/// the default cold-path budget of one source (about 13 new sessions/s per worker) — each with
/// the material it was last given.
struct Load {
    given: Arc<Mutex<Material>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(s: &Arc<Stack>, material: Material) -> Load {
        let given = Arc::new(Mutex::new(material));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let workers = (0..2)
            .map(|w| {
                let (s, given, stop, sent, failures) = (
                    s.clone(),
                    given.clone(),
                    stop.clone(),
                    sent.clone(),
                    failures.clone(),
                );
                std::thread::spawn(move || {
                    let mut using = given.lock().unwrap().clone();
                    let mut client = Client::with_file(&s, &using.0, &using.1);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let told = given.lock().unwrap().clone();
                        if told != using {
                            using = told;
                            client = Client::with_file(&s, &using.0, &using.1);
                        } else if n % 32 == 31 {
                            client.renew();
                        }
                        let status = client.get(&s, &format!("/payments/load/{w}/{n}"));
                        sent.fetch_add(1, Ordering::Relaxed);
                        if status != 200 {
                            failures.lock().unwrap().push(format!(
                                "worker {w} request {n} under {} with {}: {status}",
                                using.0,
                                using.1.display()
                            ));
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        let load = Load {
            given,
            stop,
            sent,
            failures,
            workers,
        };
        load.wait_for(20);
        load
    }

    /// Waits until `more` requests have been sent from now on.
    fn wait_for(&self, more: u64) {
        let target = self.sent.load(Ordering::Relaxed) + more;
        eventually("the load is flowing", Duration::from_secs(30), || {
            (self.sent.load(Ordering::Relaxed) >= target).then_some(())
        });
    }

    /// Moves the workloads to new material and lets them send 40 requests with it.
    fn switch(&self, material: Material) {
        *self.given.lock().unwrap() = material;
        self.wait_for(40);
    }

    /// Stops the workloads and asserts that none of their requests failed.
    fn finish(self, s: &Stack, agent_log: &Path) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        assert!(
            failures.is_empty(),
            "requests with valid material failed during the rotation ({} sent): {failures:?}\n\
             Envoy's denials: {:?}\nthe agent's log:\n{}",
            self.sent.load(Ordering::Relaxed),
            s.envoy_log()
                .lines()
                .filter(|l| l.contains("reason="))
                .collect::<Vec<_>>(),
            std::fs::read_to_string(agent_log).unwrap_or_default()
        );
    }
}

/// Runs `autoid rotate <what> <dir> --agent-config … --overlap-secs … --pid <agent>` (`what`
/// ends with the flag that takes `dir`): its stdout, and when the old material retires.
fn rotate(s: &Stack, what: &[&str], dir: &Path, overlap: u64, agent_pid: u32) -> (String, u64) {
    let out = std::process::Command::new(bin("autoid").unwrap())
        .arg("rotate")
        .args(what)
        .arg(dir)
        .arg("--agent-config")
        .arg(s.path("agent.json"))
        .args(["--overlap-secs", &overlap.to_string()])
        .args(["--pid", &agent_pid.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retire_at = now() + overlap;
    (String::from_utf8_lossy(&out.stdout).into_owned(), retire_at)
}

/// Waits for the agent's log line saying it reloaded and now serves `id`.
fn wait_for_reload(agent_log: &Path, id: &str) {
    eventually(
        &format!("the agent reloaded {id}"),
        Duration::from_secs(10),
        || {
            let log = std::fs::read_to_string(agent_log).unwrap_or_default();
            log.lines()
                .any(|l| l.contains("reloaded the gateway keys") && l.contains(id))
                .then_some(())
        },
    );
}

#[test]
fn the_gateway_key_rotates_under_load_without_a_failed_request_or_an_envoy_restart() {
    // The filter asks the agent again about a cached session after 2 s (default 300 s), so a
    // retirement reaches sessions cached before the rotation; the overlap is longer than that.
    let s = Stack::start(&Options {
        agent_session_ttl_secs: Some(2),
        ..Options::default()
    });
    let envoy_pid = s.envoy.pid();
    let agent_pid = s.agent_proc.as_ref().unwrap().child.id();
    let s = Arc::new(s);

    let load = Load::start(&s, ("gw-1".to_owned(), s.path("alice.entropy")));

    // An old client whose gw-1 session is cached in Envoy, kept for after the overlap.
    let old = Client::new(&s, "gw-1");
    assert_eq!(old.get(&s, "/payments/old"), 200);

    // Rotate: gw-2 at the agent at once, gw-1 until now + overlap.
    let overlap = 6;
    let (stdout, retire_at) = rotate(
        &s,
        &["key", "--kid", "gw-2", "--bits", "2048", "--keys-dir"],
        &s.path("keys"),
        overlap,
        agent_pid,
    );
    assert!(stdout.contains("retiring gw-1"), "{stdout}");
    // The operator hands out the new public key once the agent serves it (its log says so).
    let agent_log = s.agent_proc.as_ref().unwrap().log.clone();
    wait_for_reload(&agent_log, "gw-2");
    load.switch(("gw-2".to_owned(), s.path("alice.entropy")));
    load.finish(&s, &agent_log);
    assert!(
        now() < retire_at,
        "the load outlasted the overlap; the test proves nothing"
    );
    // Within the overlap the old key still works, cached or new.
    assert_eq!(old.get(&s, "/payments/old"), 200);
    assert_eq!(Client::new(&s, "gw-1").get(&s, "/payments/old-new"), 200);

    // After the overlap: gw-1 is refused, both a new session and the one Envoy had cached.
    eventually("gw-1 retired", Duration::from_secs(overlap + 10), || {
        (now() > retire_at).then_some(())
    });
    assert_eq!(
        old.get(&s, "/payments/old"),
        401,
        "a cached session of a retired key"
    );
    assert_eq!(Client::new(&s, "gw-1").get(&s, "/payments/old-new"), 401);
    assert_eq!(Client::new(&s, "gw-2").get(&s, "/payments/new"), 200);
    assert_eq!(s.envoy.pid(), envoy_pid, "Envoy was never restarted");
    let dump = common::unix_request(&s.admin, "GET", "/server_info").unwrap();
    assert_eq!(dump.status, 200, "the same Envoy still answers");
}

#[test]
fn an_epoch_rotates_under_load_without_a_failed_request_or_an_envoy_restart() {
    // Keys and epochs at the agent. The filter keeps a subject's stream at most 2 s (default
    // 300 s), so the retirement reaches streams cached before the rotation; the overlap is
    // longer than that.
    let s = Stack::start(&Options {
        agent_max_stream_ttl_secs: Some(2),
        ..Options::default()
    });
    let envoy_pid = s.envoy.pid();
    let agent_pid = s.agent_proc.as_ref().unwrap().child.id();
    let s = Arc::new(s);

    let load = Load::start(&s, ("gw-1".to_owned(), s.path("alice.entropy")));

    // An old client (epoch ep-1) whose session and stream are cached in Envoy, kept for after
    // the overlap.
    let old = Client::new(&s, "gw-1");
    assert_eq!(old.get(&s, "/payments/old"), 200);

    // Rotate: ep-2 at the agent at once, ep-1 until now + overlap.
    let overlap = 10;
    let (stdout, retire_at) = rotate(
        &s,
        &["epoch", "--id", "ep-2", "--epochs-dir"],
        &s.path("."),
        overlap,
        agent_pid,
    );
    assert!(stdout.contains("retiring ep-1"), "{stdout}");
    assert!(stdout.contains("autoid entropy issue --epoch"), "{stdout}");
    // The operator issues entropy files of the new epoch once the agent serves it (its log says
    // so), as the command's output tells them.
    let agent_log = s.agent_proc.as_ref().unwrap().log.clone();
    wait_for_reload(&agent_log, "ep-2");
    let new_file = s.path("alice-ep-2.entropy");
    let issued = std::process::Command::new(bin("autoid").unwrap())
        .args(["entropy", "issue", "--subject", "alice", "--epoch"])
        .arg(s.path("ep-2.epoch.json"))
        .arg("--out")
        .arg(&new_file)
        .output()
        .unwrap();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    load.switch(("gw-1".to_owned(), new_file.clone()));
    load.finish(&s, &agent_log);
    assert!(
        now() < retire_at,
        "the load outlasted the overlap; the test proves nothing"
    );
    // Within the overlap the old epoch still works, cached or new.
    assert_eq!(old.get(&s, "/payments/old"), 200);
    assert_eq!(Client::new(&s, "gw-1").get(&s, "/payments/old-new"), 200);

    // After the overlap: ep-1 is refused, both for the client whose stream Envoy had cached and
    // for a new session; ep-2 works.
    eventually("ep-1 retired", Duration::from_secs(overlap + 10), || {
        (now() > retire_at).then_some(())
    });
    assert_eq!(
        old.get(&s, "/payments/old"),
        401,
        "a cached stream of a retired epoch"
    );
    assert_eq!(Client::new(&s, "gw-1").get(&s, "/payments/old-new"), 401);
    assert_eq!(
        Client::with_file(&s, "gw-1", &new_file).get(&s, "/payments/new"),
        200
    );
    assert_eq!(s.envoy.pid(), envoy_pid, "Envoy was never restarted");
    let info = common::unix_request(&s.admin, "GET", "/server_info").unwrap();
    assert_eq!(info.status, 200, "the same Envoy still answers");
}
