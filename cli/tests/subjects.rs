//! `autoid entropy issue` (and `prove`) accept only canonical subjects (docs/PROTOCOL.md,
//! "Subjects"): a spelling the directory would match ignoring case or spaces is a usage error that
//! names the subject and the rule, and writes no file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn epoch(dir: &std::path::Path) -> std::path::PathBuf {
    let epoch = dir.join("e.json");
    ok(&[
        "epoch",
        "new",
        "--out",
        &s(&epoch),
        "--id",
        "ep-x",
        "--file-size",
        "8192",
    ]);
    epoch
}

fn issue(epoch: &std::path::Path, subject: &str, out: &std::path::Path) -> std::process::Output {
    autoid(&[
        "entropy",
        "issue",
        "--epoch",
        &s(epoch),
        "--subject",
        subject,
        "--out",
        &s(out),
    ])
}

#[test]
fn entropy_issue_refuses_a_non_canonical_subject() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = epoch(dir.path());
    let out = dir.path().join("x.entropy");

    let o = issue(&epoch, "Alice", &out);
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("--subject \"Alice\" is not canonical"),
        "names the subject: {err}"
    );
    assert!(
        err.contains("lowercase ASCII letters") && err.contains("1 to 64 bytes"),
        "states the rule: {err}"
    );
    assert!(err.contains("did you mean \"alice\"?"), "{err}");
    assert!(!out.exists(), "no file for a refused subject");

    let long = "a".repeat(65);
    for bad in [
        "ALICE",
        " alice",
        "alice ",
        "al\u{130}ce",
        "a,b",
        "ci/deploy-bot",
        long.as_str(),
    ] {
        let o = issue(&epoch, bad, &out);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains(&format!("--subject {bad:?} is not canonical")),
            "{bad:?}: {}",
            stderr(&o)
        );
        assert!(!out.exists(), "{bad:?}");
    }

    for good in ["alice", "deploy-bot@ci", "svc.payments_2"] {
        let out = dir.path().join(format!("{good}.entropy"));
        assert_code(&issue(&epoch, good, &out), 0);
        assert!(out.exists(), "{good}");
    }
}
