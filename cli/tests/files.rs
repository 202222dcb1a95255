//! Key, epoch and entropy files: names, modes, refusal to overwrite, usage and input errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn keygen_writes_both_files_private_key_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let printed = ok(&[
        "keygen",
        "--out",
        &s(&out),
        "--kid",
        "gw-t",
        "--bits",
        "2048",
    ]);
    let private = out.join("gw-t.key.pem");
    let public = out.join("gw-t.pub.pem");
    assert_eq!(printed, format!("{}\n{}\n", s(&private), s(&public)));
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    #[cfg(unix)]
    assert_eq!(mode(&private), 0o600);

    let again = autoid(&[
        "keygen",
        "--out",
        &s(&out),
        "--kid",
        "gw-t",
        "--bits",
        "2048",
    ]);
    assert_code(&again, 3);
    assert!(
        stderr(&again).contains("gw-t.key.pem: already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&private).unwrap(), pem, "untouched");

    ok(&[
        "keygen",
        "--out",
        &s(&out),
        "--kid",
        "gw-t",
        "--bits",
        "2048",
        "--force",
    ]);
    assert_ne!(
        std::fs::read_to_string(&private).unwrap(),
        pem,
        "replaced with --force"
    );
    #[cfg(unix)]
    assert_eq!(mode(&private), 0o600);
    // Only the two key files: no temporary files left behind.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}

#[test]
fn keygen_default_kid_is_dated() {
    let dir = tempfile::tempdir().unwrap();
    let printed = ok(&["keygen", "--out", &s(dir.path()), "--bits", "2048"]);
    let first = printed.lines().next().unwrap();
    let name = std::path::Path::new(first)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        name.starts_with("gw-20") && name.ends_with(".key.pem"),
        "{name}"
    );
    assert_eq!(name.len(), "gw-YYYYMMDD.key.pem".len());
}

#[test]
fn keygen_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bits = autoid(&["keygen", "--out", &s(dir.path()), "--bits", "1024"]);
    assert_code(&bits, 2);
    let kid = autoid(&["keygen", "--out", &s(dir.path()), "--kid", "bad kid!"]);
    assert_code(&kid, 2);
    assert!(stderr(&kid).contains("--kid"), "{}", stderr(&kid));
    assert_code(&autoid(&["keygen"]), 2);
    assert_code(&autoid(&["frobnicate"]), 2);
}

#[test]
fn epoch_and_entropy_files_are_0600_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = dir.path().join("e.json");
    let printed = ok(&[
        "epoch",
        "new",
        "--out",
        &s(&epoch),
        "--id",
        "ep-x",
        "--file-size",
        "8192",
        "--intervals",
        "40",
    ]);
    assert_eq!(printed.trim_end(), s(&epoch));
    let json = std::fs::read_to_string(&epoch).unwrap();
    assert!(
        json.contains("\"id\": \"ep-x\"") && json.contains("\"file_size\": 8192"),
        "{json}"
    );
    assert!(json.contains("\"interval_count\": 40"), "{json}");
    #[cfg(unix)]
    assert_eq!(mode(&epoch), 0o600);
    // An epoch is never overwritten by accident.
    let again = autoid(&["epoch", "new", "--out", &s(&epoch), "--id", "ep-x"]);
    assert_code(&again, 3);
    assert_eq!(std::fs::read_to_string(&epoch).unwrap(), json);

    let a1 = dir.path().join("a1");
    let a2 = dir.path().join("a2");
    for out in [&a1, &a2] {
        ok(&[
            "entropy",
            "issue",
            "--epoch",
            &s(&epoch),
            "--subject",
            "alice",
            "--out",
            &s(out),
        ]);
        #[cfg(unix)]
        assert_eq!(mode(out), 0o600);
    }
    let bytes = std::fs::read(&a1).unwrap();
    assert!(bytes.starts_with(b"AUTOIDE1"));
    assert!(bytes.len() > 8192 && bytes.len() < 8192 + 64);
    assert_eq!(
        bytes,
        std::fs::read(&a2).unwrap(),
        "same subject and epoch, same file"
    );
}

#[test]
fn epoch_parameters_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = dir.path().join("e.json");
    for bad in [
        ["--file-size", "100"],
        ["--file-size", "4097"],
        ["--intervals", "8"],
        ["--intervals", "999"],
    ] {
        let o = autoid(&["epoch", "new", "--out", &s(&epoch), bad[0], bad[1]]);
        assert_code(&o, 2);
    }
    assert!(!epoch.exists());
}

#[test]
fn bad_input_files_exit_3_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": \"an epoch\"}").unwrap();
    let o = autoid(&[
        "entropy",
        "issue",
        "--epoch",
        &s(&junk),
        "--subject",
        "a",
        "--out",
        &s(&dir.path().join("o")),
    ]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("junk.json"), "{}", stderr(&o));

    let missing = dir.path().join("missing.epoch.json");
    let o = autoid(&[
        "entropy",
        "issue",
        "--epoch",
        &s(&missing),
        "--subject",
        "a",
        "--out",
        &s(&dir.path().join("o")),
    ]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("missing.epoch.json"), "{}", stderr(&o));

    let key = dir.path().join("gw-9.key.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let o = autoid(&[
        "verify",
        "--private-key",
        &s(&key),
        "--epoch",
        &s(&junk),
        "--header",
        "v1.x.y.z",
        "--method",
        "GET",
        "--url",
        "https://a.example/",
    ]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("gw-9.key.pem"), "{}", stderr(&o));
}

#[test]
fn help_teaches_with_examples() {
    let top = ok(&["--help"]);
    assert!(
        top.contains("Exit codes") && top.contains("keygen"),
        "{top}"
    );
    let issue = ok(&["entropy", "issue", "--help"]);
    assert!(issue.contains("no --size"), "{issue}");
    for cmd in [
        &["keygen", "--help"][..],
        &["prove", "--help"],
        &["verify", "--help"],
        &["request", "--help"],
        &["epoch", "new", "--help"],
    ] {
        assert!(ok(cmd).contains("Examples:"), "{cmd:?}");
    }
}
