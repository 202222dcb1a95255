//! The filter hosted by our wasmtime harness (host-tests), calling the REAL agent over HTTP on
//! its unix socket (as Envoy's `pipe` cluster does, no token), which unwraps the session, hands
//! over the subject's stream and asks the REAL slapd: the key plane and the directory path end
//! to end without Envoy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use autoid_host_tests::{FilterModule, Gateway, Outcome};
use autoid_protocol::Request;
use autoid_protocol::client::Session;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::keys::GatewayKey;
use autoid_testkit::agent;
use autoid_testkit::paths::wasm;
use common::{Proc, Slapd, bin};
use rsa::rand_core::UnwrapErr;
use serde_json::json;

const KEY_PEM: &str = include_str!("../../protocol/tests/vectors/gateway-2048.pem");
const KID: &str = "test-2048";
const AUTHORITY: &str = "api.local";
const PATH: &str = "/v1/payments";

struct Directory {
    _slapd: Slapd,
    _agent: Proc,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// The agent, holding the gateway key and `epoch` (as `make run` deploys it), on its socket.
fn directory(epoch: &Epoch) -> Directory {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gw.key.pem"), KEY_PEM).unwrap();
    std::fs::write(d.join("ep.epoch.json"), epoch.to_json()).unwrap();
    let slapd = Slapd::start(&d.join("ldap")).unwrap();
    let socket = d.join("agent.sock");
    let config = json!({
        "listen": format!("unix:{}", socket.display()),
        "ldap": {
            "url": slapd.ldap_url,
            "bind_dn": "uid=autoid-agent,ou=services,dc=example,dc=org",
            "bind_password_file": slapd.agent_password_file(),
            "pool_size": 2
        },
        "users": {"base": "dc=example,dc=org"},
        "groups": {"base": "ou=groups,dc=example,dc=org"},
        "session_keys": [{"kid": KID, "private_key_file": d.join("gw.key.pem")}],
        "epoch_files": [d.join("ep.epoch.json")]
    });
    std::fs::write(d.join("agent.json"), config.to_string()).unwrap();
    let agent_proc = agent::start(
        &bin("autoid-agent").unwrap(),
        &d.join("agent.json"),
        &[],
        &d.join("agent.log"),
        || agent::ready_on_socket(&socket),
    )
    .unwrap();
    Directory {
        _slapd: slapd,
        _agent: agent_proc,
        socket,
        _dir: dir,
    }
}

fn gateway(agent_socket: &Path, epoch: &Epoch) -> Gateway {
    let config = json!({
        "keys": [{"kid": KID}],
        "epochs": [{"id": epoch.id(), "file_size": epoch.file_size(),
                    "interval_count": epoch.interval_count()}],
        "agent": {"cluster": "autoid_agent", "authority": "autoid-agent", "timeout_ms": 5000},
        "directory": {"cluster": "autoid_agent", "authority": "autoid-agent",
                      "timeout_ms": 5000, "positive_ttl_secs": 60, "negative_ttl_secs": 10},
        "apis": {"payments": {
            "require": {"any_of": ["payments"]},
            "inject": {"authorization": "Bearer upstream-secret"},
            "identity": {"subject_header": "x-autoid-subject", "groups_header": "x-autoid-groups"}
        }}
    });
    let gw = FilterModule::load(wasm("autoid_plugin").unwrap())
        .unwrap()
        .gateway()
        .plugin_config(config.to_string())
        .workers(2)
        .cluster_unix("autoid_agent", agent_socket)
        .build()
        .unwrap();
    // Traffic comes after the start: proofs made in the second the filter was configured meet
    // its restart fence (docs/CONFIG.md, `replay.restart_fence`).
    gw.clock().advance(std::time::Duration::from_secs(1));
    gw
}

fn send_as(gw: &Gateway, epoch: &Epoch, subject: &str, worker: usize) -> Outcome {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let now = gw
        .clock()
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = GatewayKey::from_pem(KID, KEY_PEM).unwrap();
    let session = Session::open(&key.public(), now, &mut rng).unwrap();
    let request = Request {
        method: "GET",
        authority: AUTHORITY,
        path: PATH,
    };
    let file = epoch.issue(subject).unwrap();
    let proof = session.prove(&file, &request, now, None, &mut rng).unwrap();
    gw.request("GET", AUTHORITY, PATH)
        .route("payments")
        .header("x-autoid-proof", &proof)
        .worker(worker)
        .send()
}

#[test]
fn the_harness_hosted_filter_authorizes_through_the_real_bridge_and_slapd() {
    let epoch = Epoch::new("ep-1", [7; 32], 65536, 64).unwrap();
    let dir = directory(&epoch);
    let gw = gateway(&dir.socket, &epoch);

    // alice is in `payments` (posixGroup) in the seeded directory.
    match send_as(&gw, &epoch, "alice", 0) {
        Outcome::Upstream { headers, .. } => {
            let get = |k: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("authorization"), Some("Bearer upstream-secret"));
            assert_eq!(get("x-autoid-subject"), Some("alice"));
            let groups = get("x-autoid-groups").unwrap();
            assert!(groups.split(',').any(|g| g == "payments"), "{groups}");
            assert_eq!(get("x-autoid-proof"), None);
        }
        other => panic!("alice should pass: {other:?}\n{:#?}", gw.logs()),
    }
    // dave is in no group; `nobody` is not in the directory; the directory stores erin as
    // `uid=Erin`, which LDAP matches case-insensitively: not the same subject byte for byte.
    for (subject, reason) in [
        ("dave", "not_in_groups"),
        ("nobody", "unknown_subject"),
        ("erin", "subject_mismatch"),
    ] {
        let out = send_as(&gw, &epoch, subject, 1);
        assert_eq!(out.local_status(), Some(403), "{subject}: {out:?}");
        assert!(
            gw.logs()
                .iter()
                .any(|l| l.message.contains(&format!("reason={reason} "))
                    && l.message.contains(&format!("subject={subject:?}"))),
            "{subject}: {:#?}",
            gw.logs()
        );
    }
    // Three distinct group questions plus alice's went to the real agent; a second alice request
    // on the other worker is answered from the shared decision cache (its new session and her
    // stream on that worker are asked of the agent, not her groups).
    let groups = |gw: &Gateway| {
        gw.callouts()
            .iter()
            .filter(|c| {
                c.header(":path")
                    .is_some_and(|p| p.starts_with("/v1/groups"))
            })
            .count()
    };
    let before = groups(&gw);
    assert_eq!(before, 4);
    assert!(send_as(&gw, &epoch, "alice", 1).is_upstream());
    assert_eq!(groups(&gw), before, "the decision was cached");
    assert_eq!(gw.metric("autoid_directory_cache_hits"), Some(1));
}
