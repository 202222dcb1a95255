//! `check`: the filter configuration the agent answers `/v1/check` with.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ms;
use crate::error::Error;

/// `check`: the agent answers `/v1/check` as the wasm filter would with this configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// The filter configuration JSON (`autoid gateway render --target envoy-ext-authz` writes
    /// it); relative: to this config file.
    pub filter_config: PathBuf,
    /// Check worker threads (default: the available parallelism).
    #[serde(default)]
    pub workers: Option<usize>,
    /// How long a check may take before it is answered 503 (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The validated `check`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub filter_config: PathBuf,
    pub workers: usize,
    pub timeout: Duration,
}

impl TryFrom<RawCheck> for CheckConfig {
    type Error = Error;

    fn try_from(raw: RawCheck) -> Result<CheckConfig, Error> {
        if raw.filter_config.as_os_str().is_empty() {
            return Err(Error::config(
                "check.filter_config",
                "\"\"",
                "name the filter configuration file",
            ));
        }
        let workers = raw.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if !(1..=256).contains(&workers) {
            return Err(Error::config(
                "check.workers",
                workers,
                "must be between 1 and 256",
            ));
        }
        Ok(CheckConfig {
            filter_config: raw.filter_config,
            workers,
            timeout: ms("check.timeout_ms", raw.timeout_ms, 5_000)?,
        })
    }
}
