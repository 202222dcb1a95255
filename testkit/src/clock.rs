//! The wall clock in milliseconds, and waiting for an instant on it (tests that aim at a proof's
//! validity edge).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds (0 before 1970, saturated past u64).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Waits until the clock reads `at_ms` (Unix milliseconds), in steps of at most 5 ms.
pub fn wait_until(at_ms: u64) {
    loop {
        let now = now_ms();
        if now >= at_ms {
            return;
        }
        std::thread::sleep(Duration::from_millis((at_ms - now).min(5)));
    }
}
