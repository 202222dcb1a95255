//! `cold_path`: how many RSA unwraps a worker may start.

use super::check::positive;
use super::error::ConfigError;
use super::raw::RawColdPath;

/// How many cold-path RSA unwraps a worker may start: a token bucket, and a smaller one per
/// source address, so one source cannot spend the whole worker's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdPath {
    /// Tokens added per second.
    pub unwraps_per_second: u32,
    /// Bucket size.
    pub burst: u32,
    /// Tokens added per second to each source's bucket (default: a quarter of the worker's,
    /// rounded up).
    pub per_source_unwraps_per_second: u32,
    /// Each source's bucket size (default: a quarter of the worker's, rounded up).
    pub per_source_burst: u32,
    /// Tokens added per second to the bucket of v3 unwraps, whose possession ticket was checked
    /// (or is, by the agent, before its RSA): apart from the buckets above, which only v1 and v2
    /// full forms spend, so a flood of those cannot lock out v3 clients (docs/PROTOCOL.md §12).
    pub checked_unwraps_per_second: u32,
    /// That bucket's size.
    pub checked_burst: u32,
}

/// `cold_path`, per source bounded by the whole worker's budget.
pub(super) fn cold_path(raw: &RawColdPath) -> Result<ColdPath, ConfigError> {
    let unwraps_per_second = positive(
        "cold_path.unwraps_per_second",
        raw.unwraps_per_second,
        50,
        100_000,
    )?;
    let burst = positive("cold_path.burst", raw.burst, 100, 100_000)?;
    let cold_path = ColdPath {
        unwraps_per_second,
        burst,
        per_source_unwraps_per_second: positive(
            "cold_path.per_source_unwraps_per_second",
            raw.per_source_unwraps_per_second,
            unwraps_per_second.div_ceil(4),
            unwraps_per_second,
        )?,
        per_source_burst: positive(
            "cold_path.per_source_burst",
            raw.per_source_burst,
            burst.div_ceil(4),
            burst,
        )?,
        checked_unwraps_per_second: positive(
            "cold_path.checked_unwraps_per_second",
            raw.checked_unwraps_per_second,
            2000,
            1_000_000,
        )?,
        checked_burst: positive(
            "cold_path.checked_burst",
            raw.checked_burst,
            2000,
            1_000_000,
        )?,
    };
    Ok(cold_path)
}
