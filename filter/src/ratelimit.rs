//! Token buckets for cold-path RSA unwraps, so a flood of junk wrapped keys cannot starve a
//! worker: valid sessions already cached never touch them. Each source address also has a
//! smaller bucket of its own ([`SourceBudgets`]): one source spends at most its share of the
//! worker's budget, and the rest stays for everyone else's new sessions.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

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

/// Sources a worker tracks at once; past this the least recently seen is forgotten (a source
/// forgotten comes back with a full bucket: the worker's bucket still bounds the total).
pub const MAX_SOURCES: usize = 1024;

/// Who a cold-path request counts against: its IPv4 address, its IPv6 /64, or `None` when the
/// host gave no parsable `source.address` (all such requests share one bucket).
pub fn source_key(address: Option<&str>) -> Option<IpAddr> {
    let address = address?;
    let ip = address
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| address.parse::<IpAddr>())
        .ok()?;
    Some(match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    })
}

/// One token bucket per source, bounded to [`MAX_SOURCES`].
#[derive(Debug, Clone)]
pub struct SourceBudgets {
    rate_per_sec: u32,
    burst: u32,
    buckets: HashMap<Option<IpAddr>, TokenBucket>,
}

impl SourceBudgets {
    /// Budgets of `rate_per_sec` and `burst` for every source.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        SourceBudgets {
            rate_per_sec,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token from `source`'s bucket if it has one.
    pub fn try_take(&mut self, source: Option<IpAddr>, now_ms: u64) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= MAX_SOURCES {
            let stalest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last_ms)
                .map(|(k, _)| *k);
            if let Some(k) = stalest {
                self.buckets.remove(&k);
            }
        }
        self.buckets
            .entry(source)
            .or_insert_with(|| TokenBucket::new(self.rate_per_sec, self.burst, now_ms))
            .try_take(now_ms)
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
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

    #[test]
    fn sources_are_addresses_without_ports_and_ipv6_slash_64() {
        let v4 = source_key(Some("127.0.0.2:5555"));
        assert_eq!(v4, "127.0.0.2".parse().ok());
        assert_eq!(
            source_key(Some("127.0.0.2:6666")),
            v4,
            "the port does not count"
        );
        assert_eq!(
            source_key(Some("[2001:db8:1:2:aaaa::1]:443")),
            source_key(Some("[2001:db8:1:2:bbbb::9]:80")),
            "one /64"
        );
        assert_ne!(
            source_key(Some("[2001:db8:1:2::1]:443")),
            source_key(Some("[2001:db8:1:3::1]:443"))
        );
        assert_eq!(
            source_key(Some("[::ffff:10.0.0.1]:1")),
            "10.0.0.1".parse().ok()
        );
        assert_eq!(source_key(Some("/run/envoy.sock")), None);
        assert_eq!(source_key(None), None);
    }

    #[test]
    fn one_source_spends_only_its_own_bucket() {
        let mut b = SourceBudgets::new(1, 2);
        let (one, two) = (
            source_key(Some("10.0.0.1:1")),
            source_key(Some("10.0.0.2:1")),
        );
        assert_eq!((0..10).filter(|_| b.try_take(one, 0)).count(), 2);
        assert!(b.try_take(two, 0), "another source has its own");
        assert!(b.try_take(one, 1000), "refills at its rate");
    }

    #[test]
    fn sources_are_bounded_and_the_stalest_is_forgotten() {
        let mut b = SourceBudgets::new(1, 1);
        for i in 0..MAX_SOURCES as u32 + 10 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            assert!(b.try_take(Some(IpAddr::V4(ip)), u64::from(i)));
        }
        assert_eq!(b.len(), MAX_SOURCES);
    }
}
