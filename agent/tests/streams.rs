//! `POST /v1/streams`: the agent hands the filter one subject's key in one epoch, never the
//! epoch's secret; unknown epochs, bad subjects, tokens and config errors.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_agent::Config;
use autoid_protocol::entropy::{Epoch, SubjectKey};
use common::{TOKEN, TestAgent, config, shared};
use serde_json::{Value, json};

fn epoch_file(dir: &std::path::Path, epoch: &Epoch) -> std::path::PathBuf {
    let path = dir.join(format!("{}.epoch.json", epoch.id()));
    std::fs::write(&path, epoch.to_json()).unwrap();
    path
}

fn post(b: &TestAgent, body: Value) -> (u16, Value) {
    b.post_with(
        "/v1/streams",
        Some(&format!("Bearer {TOKEN}")),
        &body.to_string(),
    )
}

#[test]
fn a_subject_key_proves_the_issued_file_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let e1 = Epoch::new("e1", [21u8; 32], 65536, 64).unwrap();
    let e2 = Epoch::new("e2", [22u8; 32], 8192, 32).unwrap();
    let mut c = config(shared());
    c["epoch_files"] = json!([epoch_file(dir.path(), &e1), epoch_file(dir.path(), &e2)]);
    c["stream_ttl_secs"] = json!(90);
    let b = TestAgent::start(c);

    let (status, body) = post(&b, json!({"epoch": "e2", "subject": "alice"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["file_size"], 8192);
    assert_eq!(body["interval_count"], 32);
    assert_eq!(body["ttl_secs"], 90);
    let k = SubjectKey::from_base64(body["key"].as_str().unwrap()).unwrap();
    let mut data = vec![0u8; 8192];
    k.stream().fill(0, &mut data);
    assert_eq!(data, e2.issue("alice").unwrap().data());
    // The reply holds the key and the public parameters, never the epoch's secret.
    let text = body.to_string();
    let secret: Value = serde_json::from_str(&e2.to_json()).unwrap();
    assert!(!text.contains(secret["secret"].as_str().unwrap()));
    assert_eq!(body.as_object().unwrap().len(), 4, "{body}");

    let (_, bob) = post(&b, json!({"epoch": "e2", "subject": "bob"}));
    assert_ne!(bob["key"], body["key"], "one key per subject");
    let (_, other) = post(&b, json!({"epoch": "e1", "subject": "alice"}));
    assert_ne!(other["key"], body["key"], "one key per epoch");

    assert_eq!(
        post(&b, json!({"epoch": "e3", "subject": "alice"})),
        (404, json!({"error": "unknown_epoch"}))
    );
    for subject in ["Alice", "", " alice", "a*", &"a".repeat(65)] {
        let (status, body) = post(&b, json!({"epoch": "e1", "subject": subject}));
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("bad_request")),
            "{subject:?}"
        );
    }
    let (status, _) = post(&b, json!({"epoch": "e1"}));
    assert_eq!(status, 400, "a missing subject");
    let (status, _) = post(&b, json!({"epoch": "e1", "subject": "alice", "extra": 1}));
    assert_eq!(status, 400, "unknown fields");
    for auth in [None, Some("Bearer wrong-token-wrong-token".to_owned())] {
        let (status, body) = b.post_with(
            "/v1/streams",
            auth.as_deref(),
            &json!({"epoch": "e1", "subject": "alice"}).to_string(),
        );
        assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
    }
}

#[test]
fn without_epoch_files_every_epoch_is_unknown() {
    let b = TestAgent::start(config(shared()));
    assert_eq!(
        post(&b, json!({"epoch": "e1", "subject": "alice"})),
        (404, json!({"error": "unknown_epoch"}))
    );
}

#[test]
fn config_errors_name_the_field() {
    let mut c = config(shared());
    c["stream_ttl_secs"] = json!(0);
    let e = Config::from_json(&c.to_string()).unwrap_err().to_string();
    assert_eq!(e, "stream_ttl_secs: must be between 1 and 86400 (value: 0)");
    let mut c = config(shared());
    c["epoch_files"] = json!(["a.json", ""]);
    let e = Config::from_json(&c.to_string()).unwrap_err().to_string();
    assert!(e.starts_with("epoch_files[1]: empty file name"), "{e}");
    // A retiring epoch: {file, not_after}; errors name the entry and the bad field.
    let mut c = config(shared());
    c["epoch_files"] = json!(["a.json", {"file": "b.json", "not_after": 1_800_000_000u64}]);
    let ok = Config::from_json(&c.to_string()).unwrap();
    assert_eq!(ok.epoch_files[0].not_after, None);
    assert_eq!(ok.epoch_files[1].file, std::path::Path::new("b.json"));
    assert_eq!(ok.epoch_files[1].not_after, Some(1_800_000_000));
    c["epoch_files"] = json!(["a.json", {"file": "b.json", "not_afer": 1}]);
    let e = Config::from_json(&c.to_string()).unwrap_err().to_string();
    assert!(
        e.starts_with("epoch_files[1]: unknown field `not_afer`"),
        "{e}"
    );
    c["epoch_files"] = json!([{"file": "", "not_after": 1}]);
    let e = Config::from_json(&c.to_string()).unwrap_err().to_string();
    assert!(e.starts_with("epoch_files[0].file: empty file name"), "{e}");
    c["epoch_files"] = json!([{"file": "b.json", "not_after": "soon"}]);
    let e = Config::from_json(&c.to_string()).unwrap_err().to_string();
    assert!(e.starts_with("epoch_files[0]: invalid type"), "{e}");
    c["epoch_files"] = json!([7]);
    let e = Config::from_json(&c.to_string()).unwrap_err().to_string();
    assert!(e.starts_with("epoch_files[0]: expected a file name"), "{e}");
    let mut c = config(shared());
    c["epoch_files"] = json!("a.json");
    assert!(
        Config::from_json(&c.to_string()).is_err(),
        "a list is required"
    );
}
