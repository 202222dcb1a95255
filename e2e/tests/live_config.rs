//! API definitions change live: `autoid gateway render --xds-dir` puts the routes, the filter's
//! configuration and the upstream clusters in files real Envoy watches (its filesystem xDS), and
//! rendering again (or `autoid gateway apply`, which has Envoy validate the result first and
//! confirms through its admin that Envoy took each file) changes them in the running Envoy — no
//! restart, the same process, the other APIs untouched. A definition that does not render
//! changes nothing.
// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Options, Stack, assert_upstream_as_alice, eventually};
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
