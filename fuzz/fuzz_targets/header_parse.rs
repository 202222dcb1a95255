//! The header grammar and the sealed payload layout on arbitrary input: no panic, and whatever
//! parses re-encodes to exactly the input (one encoding per proof, one per payload).

#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use autoid_protocol::header::{Payload, Proof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(proof) = Proof::parse(text)
    {
        assert_eq!(proof.to_header(), text, "a parsed header re-encodes to itself");
        let _ = (proof.session_id(), proof.session_ref());
    }
    if let Ok(payload) = Payload::from_bytes(data) {
        assert_eq!(
            payload.to_bytes(),
            data,
            "a parsed payload re-encodes to itself"
        );
    }
});
