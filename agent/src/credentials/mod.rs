//! Upstream credentials the agent resolves for the filter (`GET /v1/credentials/{api}`): each
//! injected header has one [`Source`] (`env`, `file`, `aws_secretsmanager`; a new source is a new
//! file here), refreshed on its own task every `refresh_secs`. A source that fails keeps its last
//! good value for `stale_secs` past its refresh, then the API answers 503. Values never reach a
//! log: errors and log lines name the source, never what it returned.

mod aws;
mod env;
mod file;
mod roles;
mod signing;

pub use roles::{ProcessCredentials, RawRole, RoleRefusal, Roles, Sts};
pub use signing::{RawSigning, Signing};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use autoid_protocol::agent_api::CredentialsReply;
use serde::Deserialize;
use tracing::{info, warn};

use crate::error::Error;

pub use aws::{AwsSettings, SecretsManager};
pub use env::EnvSource;
pub use file::FileSource;

/// Why a source produced no value (never containing a value).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where one header's value comes from. `fetch` blocks (file and network I/O): the refresher
/// runs it on tokio's blocking pool.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// What this source is, for logs (`aws_secretsmanager:payments/upstream`), never a value.
    fn describe(&self) -> String;
    /// The current value.
    fn fetch(&self) -> Result<String, SourceError>;
}

/// The credentials file as written by `autoid gateway render --agent-credentials FILE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    #[serde(default)]
    pub refresh_secs: Option<u64>,
    #[serde(default)]
    pub stale_secs: Option<u64>,
    #[serde(default)]
    pub fetch_timeout_ms: Option<u64>,
    #[serde(default)]
    pub aws: Option<RawAws>,
    /// API id → header name → source.
    pub apis: BTreeMap<String, BTreeMap<String, RawSource>>,
    /// API id → the role whose short-lived credentials it vends (`GET /v1/aws/credentials/{api}`).
    #[serde(default)]
    pub aws_roles: BTreeMap<String, RawRole>,
    /// API id → the role whose credentials Envoy signs its requests with, and the directory the
    /// agent keeps them in (`aws_service` APIs).
    #[serde(default)]
    pub aws_signing: BTreeMap<String, RawSigning>,
}

/// Settings for Secrets Manager; each falls back to the standard environment variables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// STS's endpoint (else `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the region's).
    #[serde(default)]
    pub sts_endpoint_url: Option<String>,
}

/// One header's source (exactly one key).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSource {
    /// An environment variable of the agent.
    Env(String),
    /// A file the agent reads (absolute, or relative to the credentials file).
    File(PathBuf),
    /// A secret in AWS Secrets Manager.
    AwsSecretsmanager(RawSecret),
}

/// `{"secret_id": …, "json_key": …, "version_stage": …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub secret_id: String,
    #[serde(default)]
    pub json_key: Option<String>,
    #[serde(default)]
    pub version_stage: Option<String>,
}

/// One header's latest value and when it was fetched.
#[derive(Default)]
struct Slot {
    value: Option<String>,
    fetched: Option<Instant>,
}

/// One header of one API.
struct Entry {
    header: String,
    source: Arc<dyn Source>,
    slot: RwLock<Slot>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("header", &self.header)
            .field("source", &self.source.describe())
            .finish_non_exhaustive()
    }
}

/// Why an API's credentials cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such API in the credentials file.
    UnknownApi,
    /// A source has no value, or its last good value is past the stale window.
    Unavailable,
}

/// Every API's sources and their cached values.
#[derive(Debug)]
pub struct Credentials {
    refresh: Duration,
    stale: Duration,
    fetch_timeout: Duration,
    apis: BTreeMap<String, Vec<Arc<Entry>>>,
    roles: Roles,
    signing: Arc<Signing>,
}

fn secs(path: &str, v: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, Error> {
    let v = v.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(Error::config(
            path,
            v,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// A header name as the filter accepts it: lowercase token characters.
fn valid_header(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

impl Credentials {
    /// Reads and checks a credentials file (no source is fetched yet).
    pub fn from_file(path: &Path) -> Result<Credentials, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            what: "credentials file",
            file: path.to_owned(),
            source,
        })?;
        let raw: RawCredentials =
            serde_json::from_str(&text).map_err(|source| Error::ConfigParse {
                file: path.to_owned(),
                source,
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Credentials::from_raw(raw, dir, &|name| std::env::var(name).ok())
    }

    /// Checks a parsed credentials file; relative file sources are relative to `dir`, `env`
    /// gives the AWS settings' fallbacks.
    pub fn from_raw(
        raw: RawCredentials,
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credentials, Error> {
        let refresh = secs("credentials.refresh_secs", raw.refresh_secs, 60, 1, 86_400)?;
        let stale = secs("credentials.stale_secs", raw.stale_secs, 300, 0, 86_400)?;
        let fetch_timeout = secs(
            "credentials.fetch_timeout_ms",
            raw.fetch_timeout_ms,
            5_000,
            1,
            60_000,
        )?;
        let mut aws: Option<Arc<AwsSettings>> = None;
        let raw_aws = raw.aws.unwrap_or_default();
        let sts = Arc::new(Sts::from_raw(
            &raw_aws,
            env,
            Duration::from_millis(fetch_timeout),
        )?);
        let roles = Roles::from_raw(raw.aws_roles, sts.clone())?;
        let signing = Signing::from_raw(raw.aws_signing, sts)?;
        let mut apis = BTreeMap::new();
        for (api, headers) in raw.apis {
            if !autoid_protocol::valid_id(&api) {
                return Err(Error::config(
                    "credentials.apis",
                    format!("{api:?}"),
                    "not an API id (1 to 32 of A-Z a-z 0-9 _ -)",
                ));
            }
            let mut entries = Vec::new();
            for (header, source) in headers {
                let at = format!("credentials.apis.{api}.{header}");
                if !valid_header(&header) {
                    return Err(Error::config(
                        &at,
                        format!("{header:?}"),
                        "not a lowercase header name",
                    ));
                }
                let source: Arc<dyn Source> = match source {
                    RawSource::Env(name) => Arc::new(EnvSource::new(&at, name)?),
                    RawSource::File(p) => Arc::new(FileSource::new(&at, dir.join(p))?),
                    RawSource::AwsSecretsmanager(secret) => {
                        let settings = match &aws {
                            Some(s) => s.clone(),
                            None => {
                                let s = Arc::new(AwsSettings::resolve(
                                    &raw_aws,
                                    env,
                                    Duration::from_millis(fetch_timeout),
                                )?);
                                aws = Some(s.clone());
                                s
                            }
                        };
                        Arc::new(SecretsManager::new(&at, secret, settings)?)
                    }
                };
                entries.push(Arc::new(Entry {
                    header,
                    source,
                    slot: RwLock::new(Slot::default()),
                }));
            }
            apis.insert(api, entries);
        }
        Ok(Credentials {
            refresh: Duration::from_secs(refresh),
            stale: Duration::from_secs(stale),
            fetch_timeout: Duration::from_millis(fetch_timeout),
            apis,
            roles,
            signing: Arc::new(signing),
        })
    }

    /// The APIs' AWS roles (`aws_roles`).
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// The `aws_service` APIs' signing credentials, kept fresh in files for Envoy.
    pub fn signing(&self) -> &Arc<Signing> {
        &self.signing
    }

    /// The API ids served.
    pub fn apis(&self) -> impl Iterator<Item = &str> {
        self.apis.keys().map(String::as_str)
    }

    /// Fetches every source once, now (at startup, so the first request finds values).
    pub async fn refresh_all(&self) {
        for entries in self.apis.values() {
            for e in entries {
                refresh_one(e, self.fetch_timeout).await;
            }
        }
    }

    /// One task per source, each refreshing it every `refresh_secs` (after the first,
    /// [`Credentials::refresh_all`]). Dropping the handles does not stop them; they end with
    /// the runtime.
    pub fn spawn_refreshers(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for entries in self.apis.values() {
            for e in entries {
                let e = e.clone();
                let every = self.refresh;
                let timeout = self.fetch_timeout;
                tasks.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        refresh_one(&e, timeout).await;
                    }
                }));
            }
        }
        tasks
    }

    /// The API's headers and their time to live, or why not.
    pub fn get(&self, api: &str) -> Result<CredentialsReply, Refusal> {
        self.get_at(api, Instant::now())
    }

    fn get_at(&self, api: &str, now: Instant) -> Result<CredentialsReply, Refusal> {
        let entries = self.apis.get(api).ok_or(Refusal::UnknownApi)?;
        let mut headers = BTreeMap::new();
        let mut ttl = self.refresh;
        for e in entries {
            let slot = e.slot.read().map_err(|_| Refusal::Unavailable)?;
            let (Some(value), Some(fetched)) = (&slot.value, slot.fetched) else {
                return Err(Refusal::Unavailable);
            };
            let age = now.saturating_duration_since(fetched);
            if age > self.refresh + self.stale {
                return Err(Refusal::Unavailable);
            }
            ttl = ttl.min(self.refresh.saturating_sub(age));
            headers.insert(e.header.clone(), value.clone());
        }
        Ok(CredentialsReply {
            headers,
            // A stale value is served one second at a time: the filter asks again soon.
            ttl_secs: ttl.as_secs().max(1),
        })
    }
}

/// Fetches one source on the blocking pool (bounded by the timeout) and stores a good value; a
/// failure keeps the last good one and logs the source and the error, never a value.
async fn refresh_one(e: &Arc<Entry>, timeout: Duration) {
    let source = e.source.clone();
    let fetched = tokio::time::timeout(
        timeout + Duration::from_secs(1),
        tokio::task::spawn_blocking(move || source.fetch()),
    )
    .await;
    let result = match fetched {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(SourceError(format!("fetch task failed: {join}"))),
        Err(_) => Err(SourceError(format!("timed out after {timeout:?}"))),
    };
    match result {
        Ok(value)
            if value.is_empty() || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) =>
        {
            warn!(header = %e.header, source = %e.source.describe(), "credential source gave an empty value or one with CR, LF or NUL: keeping the last good value");
        }
        Ok(value) => {
            let Ok(mut slot) = e.slot.write() else {
                return;
            };
            let changed = slot.value.as_deref() != Some(value.as_str());
            let first = slot.value.is_none();
            slot.value = Some(value);
            slot.fetched = Some(Instant::now());
            if changed {
                info!(header = %e.header, source = %e.source.describe(), first, "credential value loaded");
            }
        }
        Err(err) => {
            warn!(header = %e.header, source = %e.source.describe(), error = %err, "credential source failed: keeping the last good value for its stale window");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn creds(json: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, Error> {
        Credentials::from_raw(serde_json::from_str(json).unwrap(), Path::new("/tmp"), env)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let e = creds(r#"{"refresh_secs":0,"apis":{}}"#, &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("credentials.refresh_secs") && e.contains("value: 0"),
            "{e}"
        );
        let e = creds(r#"{"apis":{"pay":{"Authorization":{"env":"X"}}}}"#, &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("credentials.apis.pay.Authorization"), "{e}");
        let e = creds(
            r#"{"apis":{"pay":{"authorization":{"aws_secretsmanager":{"secret_id":"s"}}}}}"#,
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("region"), "{e}");
        assert!(
            serde_json::from_str::<RawCredentials>(r#"{"apis":{"p":{"h":{"vault":"x"}}}}"#)
                .is_err()
        );
    }

    #[tokio::test]
    async fn stale_values_are_served_for_the_window_then_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "Bearer one\n").unwrap();
        let raw = format!(
            r#"{{"refresh_secs":10,"stale_secs":20,"apis":{{"pay":{{"authorization":{{"file":{:?}}}}}}}}}"#,
            file
        );
        let c = creds(&raw, &no_env).unwrap();
        assert_eq!(c.get("pay"), Err(Refusal::Unavailable));
        assert_eq!(c.get("nope"), Err(Refusal::UnknownApi));
        c.refresh_all().await;
        let r = c.get("pay").unwrap();
        assert_eq!(r.headers["authorization"], "Bearer one");
        assert!(r.ttl_secs <= 10 && r.ttl_secs >= 9, "{}", r.ttl_secs);
        // The file goes away: the last good value stays.
        std::fs::remove_file(&file).unwrap();
        c.refresh_all().await;
        let later = Instant::now() + Duration::from_secs(25);
        let r = c.get_at("pay", later).unwrap();
        assert_eq!(r.headers["authorization"], "Bearer one");
        assert_eq!(r.ttl_secs, 1);
        let too_late = Instant::now() + Duration::from_secs(31);
        assert_eq!(c.get_at("pay", too_late), Err(Refusal::Unavailable));
        // A new value replaces it.
        std::fs::write(&file, "Bearer two").unwrap();
        c.refresh_all().await;
        assert_eq!(c.get("pay").unwrap().headers["authorization"], "Bearer two");
    }
}
