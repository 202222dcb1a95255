//! The autoid agent's reply (`decisions::parse_reply`) on arbitrary status, body and subject: no
//! panic, only well-formed decisions come out (valid group names only; a mismatch never carries
//! groups), and every accepted decision survives the shared-data decision cache unchanged.

#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::HashMap;

use autoid_filter::decisions::{Decision, Decisions, MAX_GROUPS, parse_reply};
use autoid_filter::store::{SetError, Store, StoreError};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

/// Shared data as Envoy keeps it, without CAS (the decision cache never uses it).
#[derive(Default)]
struct Map(RefCell<HashMap<String, Vec<u8>>>);

impl Store for Map {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Ok(self.0.borrow().get(key).map(|v| (v.clone(), 1)))
    }
    fn set(&self, key: &str, value: &[u8], _cas: Option<u32>) -> Result<(), SetError> {
        self.0.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}

// Layout (so seeds stay readable): `flags status[4] subject_len subject body…`; flags bit 0:
// no response, bit 1: no body, bit 2: status 200 whatever the 4 bytes say; the high nibble
// sizes the decision table.
fuzz_target!(|data: &[u8]| {
    let [flags, s0, s1, s2, s3, subject_len, rest @ ..] = data else {
        return;
    };
    let Some((subject, body)) = rest.split_at_checked(usize::from(*subject_len)) else {
        return;
    };
    let Ok(subject) = std::str::from_utf8(subject) else {
        return;
    };
    let status = match flags & 0b101 {
        0 => Some(u32::from_le_bytes([*s0, *s1, *s2, *s3])),
        0b100 => Some(200),
        _ => None,
    };
    let body = (flags & 0b10 == 0).then_some(body);
    let Ok(decision) = parse_reply(status, body, subject, NOW) else {
        return;
    };
    assert_eq!(status, Some(200));
    assert_eq!(decision.fetched_at, NOW);
    assert!(decision.groups.len() <= MAX_GROUPS);
    assert!(decision.found || decision.groups.is_empty());
    assert!(
        decision
            .groups
            .iter()
            .all(|g| autoid_protocol::valid_group_name(g))
    );
    if decision.mismatch.is_some() {
        assert!(decision.found && decision.groups.is_empty() && decision.groups().is_none());
    }

    let store = Map::default();
    let table = Decisions::new(u32::from(flags >> 4).max(1));
    table.put(&store, subject, &decision);
    assert_eq!(
        table.get(&store, subject),
        Some(Decision {
            dropped_groups: 0,
            ..decision
        }),
        "a decision comes back from the cache as it went in (the dropped count is not cached)"
    );
    assert_eq!(store.0.borrow().len(), 1);
});
