//! The virtual clock: wall and monotonic time, shared by all workers, moved only by the test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sync::lock;

/// A clock that only moves when the test moves it. Cloning shares it.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    /// Wall-clock time at monotonic zero, nanoseconds since the Unix epoch.
    wall_origin_ns: u64,
    /// Monotonic time, nanoseconds.
    monotonic_ns: u64,
}

impl VirtualClock {
    /// A clock whose wall time starts at `start`.
    pub fn new(start: SystemTime) -> Self {
        let wall_origin_ns = start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                wall_origin_ns,
                // Not zero, so a guest that treats 0 as "never" still works.
                monotonic_ns: 1_000_000_000,
            })),
        }
    }

    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub fn wall_ns(&self) -> u64 {
        let state = lock(&self.inner);
        state.wall_origin_ns.saturating_add(state.monotonic_ns)
    }

    /// Wall-clock time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.wall_ns())
    }

    /// Monotonic time, nanoseconds.
    pub fn monotonic_ns(&self) -> u64 {
        lock(&self.inner).monotonic_ns
    }

    /// Moves both clocks to monotonic time `ns` (never backwards). Ticks are the gateway's job:
    /// see [`crate::Clock::advance`].
    pub(crate) fn set_monotonic_ns(&self, ns: u64) {
        let mut state = lock(&self.inner);
        state.monotonic_ns = state.monotonic_ns.max(ns);
    }
}
