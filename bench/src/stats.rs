//! Spreads (median, min, max) and counter sums, as `summary.json` writes them.

use serde::Serialize;

/// Median, min and max.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) n: usize,
}

/// The sum of the counters whose names end with `suffix` (one per worker or listener).
pub(crate) fn counter_sum<'a>(
    counters: impl IntoIterator<Item = &'a (String, u64)>,
    suffix: &str,
) -> u64 {
    counters
        .into_iter()
        .filter(|(k, _)| k.ends_with(suffix))
        .map(|(_, v)| *v)
        .sum()
}

/// Median, min and max of `values` (finite ones), as `summary.json` writes spreads; `None` when
/// there is none.
pub(crate) fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}
