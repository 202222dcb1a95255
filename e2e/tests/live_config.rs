//! API definitions change live: `autoid gateway render --xds-dir` puts the routes, the filter's
//! configuration and the upstream clusters in files real Envoy watches (its filesystem xDS), and
//! rendering again (or `autoid gateway apply`, which has Envoy validate the result first and
//! confirms through its admin that Envoy took each file) changes them in the running Envoy — no
//! restart, the same process, the other APIs untouched. A definition that does not render
//! changes nothing.
// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::client::{Conn, Send, Wire, send};
use common::{
    Options, PAYMENTS_CREDENTIAL, PROOF_HEADER, Prover, Stack, assert_upstream_as_alice, eventually,
};
use serde_json::{Value, json};

/// The ledger API: payments' upstream under another path, for `group`.
fn ledger(stack: &Stack, group: &str, credential: &str) -> Value {
    json!({
        "id": "ledger", "name": "Ledger", "listen_path": "/ledger/",
        "strip_listen_path": true, "upstream": format!("http://{}/v1/", stack.upstream.addr),
        "auth": {
            "require": {"any_of": [group]},
            "inject": {"authorization": {"value": credential}},
            "identity": {"subject_header": "x-autoid-subject"}
        }
    })
}

fn write_api(stack: &Stack, api: &Value) {
    let file = stack.path(&format!(
        "gateway/apis/{}.json",
        api["id"].as_str().unwrap()
    ));
    std::fs::write(file, api.to_string()).unwrap();
}

/// `autoid gateway apply`: validated by Envoy, written, and confirmed by Envoy's admin.
fn apply(stack: &Stack) {
    let out = stack.apply_xds();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "apply: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("envoy --mode validate"), "{stdout}");
    assert!(stdout.contains("Envoy took every file"), "{stdout}");
}

fn render(stack: &Stack) {
    let out = stack.render_xds();
    assert!(
        out.status.success(),
        "render --xds-dir: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until a fresh request as alice to `path` gets `status`; how long it took.
fn until_status(stack: &Stack, path: &str, status: u16) -> Duration {
    let start = Instant::now();
    eventually(
        &format!("{path} answers {status}"),
        Duration::from_secs(15),
        || (stack.get_as("alice", path, &[]).status == status).then_some(()),
    );
    start.elapsed()
}

/// Every file in the xds directory, by name, with its bytes.
fn xds_files(stack: &Stack) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(stack.path("xds"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_api_added_changed_and_removed_takes_effect_in_the_running_envoy_and_a_bad_one_changes_nothing()
 {
    let stack = Stack::start(&Options {
        xds: true,
        ..Options::default()
    });
    let envoy_pid = stack.envoy.proc.pid();
    let payments = "/payments/charges?limit=2";
    assert_upstream_as_alice(&stack.get_as("alice", payments, &[]));
    let before = stack.get_as("alice", "/ledger/entries", &[]).status;
    assert_ne!(before, 200, "no API serves /ledger/ yet");

    // Added: its route, its cluster and the filter's configuration of it arrive together.
    write_api(&stack, &ledger(&stack, "payments", "Bearer ledger-1"));
    render(&stack);
    let added = until_status(&stack, "/ledger/entries", 200);
    let r = stack.get_as("alice", "/ledger/entries", &[]);
    assert_eq!(r.echoed("authorization"), ["Bearer ledger-1"]);
    assert_eq!(r.json()["path"], "/v1/entries");

    // Changed (through apply: Envoy validates first and confirms): another injected credential,
    // then a group alice is not in.
    write_api(&stack, &ledger(&stack, "payments", "Bearer ledger-2"));
    apply(&stack);
    let start = Instant::now();
    eventually("the new credential", Duration::from_secs(15), || {
        let r = stack.get_as("alice", "/ledger/entries", &[]);
        (r.status == 200 && r.echoed("authorization") == ["Bearer ledger-2"]).then_some(())
    });
    let credential_changed = start.elapsed();
    write_api(&stack, &ledger(&stack, "admins", "Bearer ledger-2"));
    apply(&stack);
    let group_changed = until_status(&stack, "/ledger/entries", 403);

    // A definition that does not render: refused with its field, nothing written, nothing
    // changes in Envoy.
    let files = xds_files(&stack);
    let mut broken = ledger(&stack, "payments", "Bearer ledger-3");
    broken["listen_path"] = json!("no-slash");
    write_api(&stack, &broken);
    for out in [stack.render_xds(), stack.apply_xds()] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("listen_path"), "names the field: {err}");
        assert_eq!(
            xds_files(&stack),
            files,
            "a refused definition writes nothing"
        );
    }
    assert_eq!(stack.get_as("alice", "/ledger/entries", &[]).status, 403);
    assert_upstream_as_alice(&stack.get_as("alice", payments, &[]));

    // Removed.
    std::fs::remove_file(stack.path("gateway/apis/ledger.json")).unwrap();
    render(&stack);
    let removed = until_status(&stack, "/ledger/entries", before);

    // Payments served throughout, by the same Envoy process.
    assert_upstream_as_alice(&stack.get_as("alice", payments, &[]));
    assert_eq!(stack.envoy.proc.pid(), envoy_pid, "no restart");
    assert!(stack.stat("extension_config_discovery.http_filter.autoid.update_rejected") == 0);
    eprintln!(
        "time to effect: added {added:?}, credential {credential_changed:?}, group {group_changed:?}, removed {removed:?}"
    );
}

/// What one load client saw.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    /// Anything but a 200 from payments with its credential and a tenant it had.
    unexpected: Vec<String>,
    /// The proofs sent (to replay afterwards).
    used: Vec<String>,
    /// Each response's `x-tenant`, in order.
    tenants: Vec<String>,
    connections: usize,
}

/// Sends payments requests, each with a new proof of `prover`'s session, until `done`, paced at
/// about 100 a second: on one keep-alive HTTP/1.1 connection, one HTTP/2 connection, or a
/// connection per request.
fn load(
    stack_http: std::net::SocketAddr,
    wire: Wire,
    keep: bool,
    prover: Prover,
    done: &AtomicBool,
) -> Seen {
    let mut seen = Seen::default();
    let mut conn = Conn::new(stack_http, wire);
    while !done.load(Ordering::Acquire) {
        let started = Instant::now();
        let proof = prover.next();
        let req = Send::new("GET", PAYMENTS).header(PROOF_HEADER, &proof);
        let answer = if keep {
            conn.send(&req)
        } else {
            send(stack_http, wire, &req)
        };
        seen.used.push(proof);
        match answer {
            Ok(r) if r.status == 200 && r.echoed("authorization") == [PAYMENTS_CREDENTIAL] => {
                seen.ok += 1;
                seen.tenants.push(r.echoed("x-tenant").join(","));
            }
            Ok(r) => {
                seen.unexpected
                    .push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
            }
            Err(e) => seen.unexpected.push(e),
        }
        // The load's shape (a steady stream), not a wait for anything.
        std::thread::sleep(Duration::from_millis(10).saturating_sub(started.elapsed()));
    }
    seen.connections = if keep { conn.opened } else { seen.used.len() };
    seen
}

/// Applies the definitions as they are now; how long until `effect` holds (a fresh request
/// each time), or the refusal's message.
fn change(stack: &Stack, effect: impl Fn(&Stack) -> bool) -> Duration {
    let start = Instant::now();
    apply(stack);
    eventually("the change's effect", Duration::from_secs(15), || {
        effect(stack).then_some(())
    });
    start.elapsed()
}

const PAYMENTS: &str = "/payments/charges?limit=2";

#[test]
fn ten_definition_changes_under_load_over_http1_and_http2_lose_nothing() {
    let stack = Stack::start(&Options {
        xds: true,
        ..Options::default()
    });
    let envoy_pid = stack.envoy.proc.pid();
    let clients = [
        (Wire::Http1Length, true),
        (Wire::Http2, true),
        (Wire::Http1Length, false),
    ];
    // Each client's proofs: one session, a unique nonce each (every one must be accepted once),
    // each made when it is sent.
    let provers: Vec<Prover> = clients
        .iter()
        .map(|_| stack.prover("alice", "GET", PAYMENTS))
        .collect();
    let payments_file = stack.path("gateway/apis/payments.json");
    let payments: Value = serde_json::from_slice(&std::fs::read(&payments_file).unwrap()).unwrap();
    let done = AtomicBool::new(false);
    let http = stack.http;
    let ledger_status = |s: &Stack| s.get_as("alice", "/ledger/entries", &[]);
    let (seen, times) = std::thread::scope(|scope| {
        let running: Vec<_> = clients
            .iter()
            .zip(provers)
            .map(|(&(wire, keep), prover)| {
                let done = &done;
                scope.spawn(move || load(http, wire, keep, prover, done))
            })
            .collect();
        let mut times = Vec::new();
        // 1. Add ledger.
        write_api(&stack, &ledger(&stack, "payments", "Bearer ledger-1"));
        times.push(("add", change(&stack, |s| ledger_status(s).status == 200)));
        // 2. Its credential.
        write_api(&stack, &ledger(&stack, "payments", "Bearer ledger-2"));
        times.push((
            "credential",
            change(&stack, |s| {
                ledger_status(s).echoed("authorization") == ["Bearer ledger-2"]
            }),
        ));
        // 3. Its group: alice is not in it.
        write_api(&stack, &ledger(&stack, "admins", "Bearer ledger-2"));
        times.push(("group", change(&stack, |s| ledger_status(s).status == 403)));
        // 4. Back.
        write_api(&stack, &ledger(&stack, "payments", "Bearer ledger-2"));
        times.push((
            "group back",
            change(&stack, |s| ledger_status(s).status == 200),
        ));
        // 5. Its upstream: another base path.
        let mut moved = ledger(&stack, "payments", "Bearer ledger-2");
        moved["upstream"] = json!(format!("http://{}/v2/", stack.upstream.addr));
        write_api(&stack, &moved);
        times.push((
            "upstream",
            change(&stack, |s| ledger_status(s).json()["path"] == "/v2/entries"),
        ));
        // 6. A broken definition: refused, nothing changes.
        let mut broken = moved.clone();
        broken["listen_path"] = json!("no-slash");
        write_api(&stack, &broken);
        let out = stack.apply_xds();
        assert!(!out.status.success(), "a broken definition is refused");
        write_api(&stack, &moved);
        assert_eq!(ledger_status(&stack).json()["path"], "/v2/entries");
        // 7. Another API beside it.
        let mut audit = ledger(&stack, "payments", "Bearer audit");
        audit["id"] = json!("audit");
        audit["listen_path"] = json!("/audit/");
        write_api(&stack, &audit);
        times.push((
            "add another",
            change(&stack, |s| s.get_as("alice", "/audit/x", &[]).status == 200),
        ));
        // 8. Payments itself, under load: another tenant header.
        let mut tenant = payments.clone();
        tenant["auth"]["inject"]["x-tenant"] = json!({"value": "acme-2"});
        std::fs::write(&payments_file, tenant.to_string()).unwrap();
        times.push((
            "payments' header",
            change(&stack, |s| {
                s.get_as("alice", PAYMENTS, &[]).echoed("x-tenant") == ["acme-2"]
            }),
        ));
        // 9. Remove the other API.
        std::fs::remove_file(stack.path("gateway/apis/audit.json")).unwrap();
        times.push((
            "remove another",
            change(&stack, |s| s.get_as("alice", "/audit/x", &[]).status != 200),
        ));
        // 10. Remove ledger.
        std::fs::remove_file(stack.path("gateway/apis/ledger.json")).unwrap();
        times.push(("remove", change(&stack, |s| ledger_status(s).status != 200)));
        done.store(true, Ordering::Release);
        let seen: Vec<Seen> = running.into_iter().map(|h| h.join().unwrap()).collect();
        (seen, times)
    });

    for (s, (wire, keep)) in seen.iter().zip(clients) {
        assert!(
            s.unexpected.is_empty(),
            "{wire:?} keep-alive {keep}: {} unexpected of {}: {:?}",
            s.unexpected.len(),
            s.used.len(),
            &s.unexpected[..s.unexpected.len().min(5)]
        );
        assert!(
            s.ok > 100,
            "{wire:?}: a steady stream ran through the changes ({})",
            s.ok
        );
        // Each request saw the tenant of one configuration: the old until the change, then the
        // new, never the old again.
        let first_new = s.tenants.iter().position(|t| t == "acme-2");
        let first_new = first_new.unwrap_or(s.tenants.len());
        assert!(s.tenants[..first_new].iter().all(|t| t == "acme"));
        assert!(
            s.tenants[first_new..].iter().all(|t| t == "acme-2"),
            "{wire:?}: the old configuration after the new one"
        );
        // The replay table outlived every change: the last proofs used (well inside the skew
        // window, so nothing but the replay table can refuse them) are refused.
        for proof in s.used.iter().rev().take(10) {
            let r = send(
                stack.http,
                Wire::Http1Length,
                &Send::new("GET", PAYMENTS).header(PROOF_HEADER, proof),
            )
            .unwrap();
            assert_eq!(r.status, 401, "a replayed proof");
        }
    }
    assert_eq!(stack.envoy.proc.pid(), envoy_pid, "no restart");
    let conns: Vec<usize> = seen.iter().map(|s| s.connections).collect();
    let sent: Vec<usize> = seen.iter().map(|s| s.used.len()).collect();
    eprintln!("requests per client {sent:?} (all answered as expected), connections {conns:?}");
    let mut ms: Vec<u128> = times.iter().map(|(_, t)| t.as_millis()).collect();
    ms.sort_unstable();
    eprintln!(
        "time to effect (apply, Envoy's validation included), ms: {times:?}; min {} median {} max {}",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}
