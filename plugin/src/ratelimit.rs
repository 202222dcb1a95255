//! A token bucket for cold-path RSA unwraps, so a flood of junk wrapped keys cannot starve a
//! worker: valid sessions already cached never touch it.

/// Tokens refill at `rate` per second up to `burst`; time is passed in (milliseconds).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: u64,
    burst: u64,
    tokens_milli: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now_ms: u64) -> Self {
        TokenBucket {
            rate_per_sec: u64::from(rate_per_sec),
            burst: u64::from(burst),
            tokens_milli: u64::from(burst) * 1000,
            last_ms: now_ms,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens_milli =
            (self.tokens_milli + elapsed.saturating_mul(self.rate_per_sec)).min(self.burst * 1000);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::new(10, 3, 0);
        assert_eq!((0..5).filter(|_| b.try_take(0)).count(), 3);
        assert!(!b.try_take(50), "half a token");
        assert!(b.try_take(100), "one token after 100 ms at 10/s");
        assert!(!b.try_take(100));
        assert_eq!(
            (0..100).filter(|_| b.try_take(10_000)).count(),
            3,
            "never above burst"
        );
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(10, 1, 1000);
        assert!(b.try_take(1000));
        assert!(!b.try_take(500));
        assert!(!b.try_take(1000));
    }
}
