//! The gateway's virtual time, as a test moves it: every worker's `proxy_on_tick` delivered when
//! its period elapses, in time order.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::state::Shared;
use crate::sync::lock;
use crate::worker::Worker;

/// The gateway's virtual clock, which fires ticks as it moves.
#[derive(Debug, Clone, Copy)]
pub struct Clock<'g> {
    shared: &'g Shared,
    workers: &'g [Mutex<Worker>],
}

impl<'g> Clock<'g> {
    /// The clock of the gateway whose shared state and workers these are.
    pub(crate) fn new(shared: &'g Shared, workers: &'g [Mutex<Worker>]) -> Self {
        Clock { shared, workers }
    }

    /// The virtual wall-clock time.
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    /// The virtual monotonic time.
    pub fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.shared.clock.monotonic_ns())
    }

    /// Moves time forward, delivering `proxy_on_tick` to each worker every time its tick period
    /// elapses, in time order, with the clock reading the tick's due time.
    pub fn advance(&self, by: Duration) {
        let clock = &self.shared.clock;
        let by_ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let target = clock.monotonic_ns().saturating_add(by_ns);
        loop {
            let mut due: Option<(u64, usize)> = None;
            for (index, slot) in self.workers.iter().enumerate() {
                let worker = lock(slot);
                if worker.dead.is_some() {
                    continue;
                }
                if let Some(at) = worker.store.data().next_tick_ns
                    && at <= target
                    && due.is_none_or(|(first, _)| at < first)
                {
                    due = Some((at, index));
                }
            }
            let Some((at, index)) = due else { break };
            clock.set_monotonic_ns(at);
            let Some(slot) = self.workers.get(index) else {
                break;
            };
            let mut worker = lock(slot);
            let state = worker.store.data_mut();
            let period = u64::from(state.tick_period_ms) * 1_000_000;
            state.next_tick_ns = (period > 0).then(|| at.saturating_add(period));
            worker.tick();
        }
        clock.set_monotonic_ns(target);
    }
}
