//! Shared data: compare-and-swap semantics, and one store seen by every worker.

mod common;

use std::sync::Arc;

use autoid_host_tests::{SharedData, Status};

#[test]
fn cas_semantics() {
    let data = SharedData::new();
    assert_eq!(data.get("k"), None);
    // A missing key is created whatever the CAS says.
    let first = data.set("k", b"1", 0).unwrap();
    assert_ne!(first, 0);
    assert_eq!(data.get("k"), Some((b"1".to_vec(), first)));
    // The right CAS wins and moves the token.
    let second = data.set("k", b"2", first).unwrap();
    assert_ne!(second, first);
    // A stale CAS loses and changes nothing.
    assert_eq!(data.set("k", b"3", first), Err(Status::CasMismatch));
    assert_eq!(data.get("k"), Some((b"2".to_vec(), second)));
    // CAS 0 is unconditional.
    let third = data.set("k", b"4", 0).unwrap();
    assert!(third != second && third != 0);
    assert_eq!(data.get("k").unwrap().0, b"4");
    // Tokens never repeat across keys.
    let other = data.set("other", b"x", 12345).unwrap();
    assert!(![first, second, third].contains(&other));
    assert_eq!(data.len(), 2);
}

#[test]
fn concurrent_cas_increments_do_not_lose_updates() {
    let data = SharedData::new();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let data = data.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    loop {
                        let (value, cas) = data.get("n").unwrap_or((b"0".to_vec(), 0));
                        let n: u32 = String::from_utf8(value).unwrap().parse().unwrap();
                        if data.set("n", (n + 1).to_string().as_bytes(), cas).is_ok() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(data.get("n").unwrap().0, b"1000");
}

#[test]
fn workers_share_one_store() {
    let gw = Arc::new(common::probe().gateway().workers(2).build().unwrap());
    for i in 1..=6 {
        let out = gw
            .request("GET", "a", "/")
            .header("x-probe", "shared")
            .worker(i % 2)
            .send();
        assert_eq!(
            out.header("x-counter"),
            Some(i.to_string().as_str()),
            "{out:?}"
        );
    }
    assert_eq!(gw.shared_data().get("counter").unwrap().0, b"6");
    // The test can seed the store the guest reads.
    gw.shared_data().set("counter", b"41", 0).unwrap();
    let out = gw
        .request("GET", "a", "/")
        .header("x-probe", "shared")
        .send();
    assert_eq!(out.header("x-counter"), Some("42"));
}

#[test]
fn workers_on_threads_share_one_store() {
    let gw = Arc::new(common::probe().gateway().workers(2).build().unwrap());
    let threads: Vec<_> = (0..2)
        .map(|worker| {
            let gw = Arc::clone(&gw);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let out = gw
                        .request("GET", "a", "/")
                        .header("x-probe", "shared")
                        .worker(worker)
                        .send();
                    assert!(out.is_upstream(), "{out:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(gw.shared_data().get("counter").unwrap().0, b"100");
}
