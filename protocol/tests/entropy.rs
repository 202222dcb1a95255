//! Entropy epochs, streams and files; the interval law a thief faces (DESIGN.md rule 1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_protocol::Request;
use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::intervals::{Bindings, offsets};
use common::*;

#[test]
fn the_stream_is_seekable_and_matches_the_issued_file() {
    let e = epoch();
    let f = e.issue("alice").unwrap();
    let stream = e.stream("alice");
    for offset in [0u64, 1, 15, 16, 17, 4095, 65536 - 40] {
        let mut buf = [0u8; 40];
        let n = buf.len().min(65536 - offset as usize);
        stream.fill(offset, &mut buf[..n]);
        assert_eq!(
            &buf[..n],
            &f.data()[offset as usize..offset as usize + n],
            "offset {offset}"
        );
    }
    assert_eq!(stream.block(3), f.data()[48..64]);
    // Intervals (8 bytes: either half of a block) and a fill across several AES batches agree
    // with the file, and with single blocks computed one by one.
    let offsets = [0u64, 8, 16, 24, 4096, 65536 - 8];
    for (o, interval) in offsets.iter().zip(stream.intervals_at(&offsets)) {
        assert_eq!(
            interval,
            f.data()[*o as usize..*o as usize + 8],
            "offset {o}"
        );
    }
    let mut long = vec![0u8; 10_000];
    stream.fill(5, &mut long);
    for (i, byte) in long.iter().enumerate() {
        let pos = 5 + i as u64;
        assert_eq!(
            *byte,
            stream.block(pos / 16)[(pos % 16) as usize],
            "byte {pos}"
        );
    }
}

#[test]
fn subjects_and_epochs_get_unrelated_files() {
    let e = epoch();
    let alice = e.issue("alice").unwrap();
    let bob = e.issue("bob").unwrap();
    let same_blocks = alice
        .data()
        .chunks(16)
        .zip(bob.data().chunks(16))
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(same_blocks, 0);
    let other = Epoch::new("e-test", [1; 32], 65536, 64).unwrap();
    assert_ne!(other.issue("alice").unwrap().data(), alice.data());
    // Length prefixes keep ("ab","c") and ("a","bc") apart.
    let e2 = Epoch::new("ab", [0; 32], 4096, 64).unwrap();
    let e3 = Epoch::new("a", [0; 32], 4096, 64).unwrap();
    assert_ne!(
        e2.issue("c").unwrap().data(),
        e3.issue("bc").unwrap().data()
    );
}

#[test]
fn entropy_files_round_trip_and_reject_corruption() {
    let f = file("alice");
    let bytes = f.to_bytes();
    assert_eq!(EntropyFile::from_bytes(&bytes).unwrap(), f);
    assert!(
        EntropyFile::from_bytes(&bytes[..bytes.len() - 1]).is_err(),
        "truncated"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(EntropyFile::from_bytes(&longer).is_err(), "trailing bytes");
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(EntropyFile::from_bytes(&magic).is_err(), "magic");
    assert!(EntropyFile::from_bytes(b"").is_err());
}

#[test]
fn only_canonical_subjects_get_entropy() {
    let e = epoch();
    for bad in ["Alice", " alice", "alice ", "al\u{130}ce", "a,b", ""] {
        assert!(e.issue(bad).is_err(), "{bad:?}");
    }
    // A file whose header names a non-canonical subject does not load.
    let alice = e.issue("alice").unwrap();
    let upper = EntropyFile::new("e-test", "ALICE", 64, alice.data().to_vec());
    assert!(EntropyFile::from_bytes(&upper.to_bytes()).is_err());
    assert!(EntropyFile::from_bytes(&alice.to_bytes()).is_ok());
}

#[test]
fn epoch_files_round_trip_and_parameters_are_bounded() {
    let e = epoch();
    assert_eq!(Epoch::from_json(&e.to_json()).unwrap(), e);
    assert!(
        !format!("{e:?}").contains("0001020304"),
        "Debug must not print the secret"
    );
    assert!(Epoch::new("bad id", [0; 32], 65536, 64).is_err());
    assert!(
        Epoch::new("e", [0; 32], 4095, 64).is_err(),
        "below the minimum size"
    );
    assert!(
        Epoch::new("e", [0; 32], 4100, 64).is_err(),
        "not a multiple of 16"
    );
    assert!(
        Epoch::new("e", [0; 32], 65536, 31).is_err(),
        "too few intervals"
    );
    assert!(
        Epoch::new("e", [0; 32], 65536, 257).is_err(),
        "too many intervals"
    );
    assert!(Epoch::from_json("{\"autoid_epoch\":2,\"id\":\"e\",\"secret\":\"\",\"file_size\":4096,\"interval_count\":64}").is_err());
    assert!(
        Epoch::from_json(&e.to_json().replace("\"id\"", "\"extra\":1,\"id\"")).is_err(),
        "unknown field"
    );
}

fn bindings<'a>(nonce: &'a [u8; 16]) -> Bindings<'a> {
    Bindings {
        subject: "alice",
        epoch: "e-test",
        nonce,
        timestamp: 1_800_000_000,
        request: Request {
            method: "GET",
            authority: "api.example.com",
            path: "/x",
        },
    }
}

#[test]
fn intervals_follow_the_nonce_and_every_binding() {
    let n1 = [1u8; 16];
    let n2 = [2u8; 16];
    let base = offsets(&bindings(&n1), 65536, 64);
    assert_eq!(base, offsets(&bindings(&n1), 65536, 64), "deterministic");
    assert_ne!(base, offsets(&bindings(&n2), 65536, 64), "nonce");
    let mut b = bindings(&n1);
    b.request.path = "/y";
    assert_ne!(base, offsets(&b, 65536, 64), "path");
    let mut b = bindings(&n1);
    b.timestamp += 1;
    assert_ne!(base, offsets(&b, 65536, 64), "timestamp");
    let mut b = bindings(&n1);
    b.subject = "bob";
    assert_ne!(base, offsets(&b, 65536, 64), "subject");
    assert!(base.iter().all(|o| o % 8 == 0 && *o < 65536));
}

#[test]
fn offsets_cover_the_whole_file_evenly_for_both_word_widths() {
    // 1 MiB: 2^17 slots, 24-bit words (exact); 2 MiB + 16: 262 146 slots, 32-bit words.
    for size in [1u64 << 20, (2 << 20) + 16] {
        let mut quarters = [0u32; 4];
        let mut last_slot = false;
        for i in 0u32..2000 {
            let mut nonce = [0u8; 16];
            nonce[..4].copy_from_slice(&i.to_be_bytes());
            let offs = offsets(&bindings(&nonce), size, 64);
            assert_eq!(offs.len(), 64);
            for o in offs {
                assert!(
                    o % 8 == 0 && o + 8 <= size,
                    "offset {o} in a {size}-byte file"
                );
                quarters[(o * 4 / size) as usize] += 1;
                last_slot |= o >= size - 8 * 64;
            }
        }
        // 32 000 offsets per quarter expected; 5 standard deviations is about ±800.
        for q in quarters {
            assert!((31_000..=33_000).contains(&q), "{size}: {quarters:?}");
        }
        assert!(last_slot, "{size}: the end of the file is reachable");
    }
}

/// How often a thief holding the first half of the file finds a nonce whose intervals all land
/// in its half: the law is f^k. Small k makes the rate observable; k = 64 makes it 2^-64.
fn thief_success_rate(count: u32, trials: u32) -> f64 {
    let half = 65536u64 / 2;
    let mut wins = 0u32;
    for i in 0..trials {
        let mut nonce = [0u8; 16];
        nonce[..4].copy_from_slice(&i.to_be_bytes());
        if offsets(&bindings(&nonce), 65536, count)
            .iter()
            .all(|&o| o < half)
        {
            wins += 1;
        }
    }
    f64::from(wins) / f64::from(trials)
}

#[test]
fn a_holder_of_half_a_file_succeeds_at_the_rate_f_to_the_k() {
    // k = 6: expected 1/64. 40 000 trials: mean 625, sd ~ 24.8; allow 5 sd.
    let trials = 40_000;
    let rate = thief_success_rate(6, trials);
    let expected = 0.5f64.powi(6);
    let sd = (expected * (1.0 - expected) / f64::from(trials)).sqrt();
    assert!(
        (rate - expected).abs() < 5.0 * sd,
        "rate {rate} vs {expected}"
    );
    // k = 10: expected 1/1024.
    let rate = thief_success_rate(10, trials);
    let expected = 0.5f64.powi(10);
    let sd = (expected * (1.0 - expected) / f64::from(trials)).sqrt();
    assert!(
        (rate - expected).abs() < 5.0 * sd,
        "rate {rate} vs {expected}"
    );
    // The default k = 64: not one success (expected 2^-64 per attempt).
    assert_eq!(thief_success_rate(64, trials), 0.0);
}

#[test]
fn a_subject_key_gives_the_epochs_stream_and_nothing_else() {
    use autoid_protocol::entropy::SubjectKey;
    let e = epoch();
    for subject in ["alice", "bob", "ci-runner"] {
        let k = e.subject_key(subject);
        // Through the wire form, as the agent hands it to the filter.
        let wire = k.to_base64();
        assert_eq!(wire.len(), 22, "16 bytes, base64url without padding");
        let received = SubjectKey::from_base64(&wire).unwrap();
        assert_eq!(received, k);
        let file = e.issue(subject).unwrap();
        let mut data = vec![0u8; file.data().len()];
        received.stream().fill(0, &mut data);
        assert_eq!(data, file.data(), "{subject}: K's stream is the file");
        let offsets = [0u64, 8, 4096, 65536 - 8];
        assert_eq!(
            received.stream().intervals_at(&offsets),
            e.stream(subject).intervals_at(&offsets)
        );
    }
    assert_ne!(e.subject_key("alice"), e.subject_key("bob"));
    let other = Epoch::new("e-other", [0u8; 32], 65536, 64).unwrap();
    assert_ne!(e.subject_key("alice"), other.subject_key("alice"));
    let k = e.subject_key("alice");
    assert_eq!(format!("{k:?}"), "SubjectKey(<redacted>)");
    assert!(!format!("{k:?}").contains(&k.to_base64()));
    for bad in [
        "",
        "AAAA",
        &"A".repeat(23),
        "not base64!!!!!!!!!!!!",
        &k.to_base64()[..21],
    ] {
        assert!(SubjectKey::from_base64(bad).is_none(), "{bad:?}");
    }
}
