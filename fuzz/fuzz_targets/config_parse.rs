//! The filter configuration on arbitrary bytes: no panic, and every error names a field path
//! and says what is wrong (the filter logs it whole, `autoid config validate` prints it).

#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use autoid_protocol::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Config::from_json(data) {
        Ok(config) => {
            // Whatever validates is usable: every API is reachable and the managed headers are
            // valid names.
            assert!(!config.apis.is_empty());
            for name in config.all_managed_headers() {
                assert!(!name.is_empty() && name == name.to_ascii_lowercase());
            }
        }
        Err(e) => {
            assert!(!e.path.is_empty(), "an error without a path: {e:?}");
            assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&e.path) && shown.len() > e.path.len() + 2,
                "the rendered error names the path, then the problem: {shown:?}"
            );
        }
    }
});
