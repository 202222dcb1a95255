//! `{"aws_secretsmanager": {"secret_id", "json_key"?, "version_stage"?}}`: `GetSecretValue` on
//! AWS Secrets Manager's JSON API, signed with the official `aws-sigv4` crate and sent with ureq
//! (no SDK: a fraction of the compile time). Region, endpoint and keys come from the credentials
//! file's `aws` section or the standard environment variables (`AWS_REGION`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), so a local moto server stands in for AWS.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsKeys;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;
use serde_json::json;

use super::{RawAws, RawSecret, Source, SourceError};
use crate::error::Error;

/// Longest reply read from Secrets Manager (a secret is at most 64 KiB).
const MAX_REPLY_BYTES: u64 = 256 * 1024;

/// An AWS service the agent calls, and how its endpoint is configured.
pub(super) struct Service {
    /// Its SigV4 name, and the first label of its regional endpoint.
    name: &'static str,
    /// The credentials file's field for its endpoint.
    field: &'static str,
    /// The environment variable for its endpoint (before `AWS_ENDPOINT_URL`).
    env: &'static str,
    /// The region when none is configured (`None`: one is required).
    default_region: Option<&'static str>,
}

/// Secrets Manager: a region is required.
pub(super) const SECRETS_MANAGER: Service = Service {
    name: "secretsmanager",
    field: "credentials.aws.endpoint_url",
    env: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    default_region: None,
};

/// STS: the global service, `us-east-1` unless configured.
pub(super) const STS: Service = Service {
    name: "sts",
    field: "credentials.aws.sts_endpoint_url",
    env: "AWS_ENDPOINT_URL_STS",
    default_region: Some("us-east-1"),
};

/// Where and how to reach one AWS service: shared by every call to it.
pub struct AwsSettings {
    service: &'static str,
    region: String,
    endpoint: String,
    http: ureq::Agent,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("service", &self.service)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsSettings {
    /// Secrets Manager's region and endpoint: the file's, else the environment's.
    pub fn resolve(
        raw: &RawAws,
        env: &dyn Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<AwsSettings, Error> {
        Self::for_service(
            &SECRETS_MANAGER,
            raw.endpoint_url.as_ref(),
            raw,
            env,
            timeout,
        )
    }

    /// `service`'s region and endpoint: `configured` (the file's endpoint field) or the
    /// file's region, else the environment's (`AWS_REGION`, `AWS_DEFAULT_REGION`, the service's
    /// endpoint variable, `AWS_ENDPOINT_URL`), else the regional endpoint.
    pub(super) fn for_service(
        service: &Service,
        configured: Option<&String>,
        raw: &RawAws,
        env: &dyn Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<AwsSettings, Error> {
        let region = raw
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .filter(|r| !r.is_empty())
            .or_else(|| service.default_region.map(str::to_owned))
            .ok_or_else(|| {
                Error::config(
                    "credentials.aws.region",
                    "none",
                    format!(
                        "calls to {} need a region (here, AWS_REGION or AWS_DEFAULT_REGION)",
                        service.name
                    ),
                )
            })?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::config(
                "credentials.aws.region",
                format!("{region:?}"),
                "not a region name",
            ));
        }
        let endpoint = configured
            .cloned()
            .or_else(|| env(service.env))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://{}.{region}.amazonaws.com", service.name));
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&endpoint)
            .map_err(|e| Error::config(service.field, format!("{endpoint:?}"), e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.path() != "/" {
            return Err(Error::config(
                service.field,
                format!("{endpoint:?}"),
                "expected http(s)://host[:port] with no path",
            ));
        }
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(AwsSettings {
            service: service.name,
            region,
            endpoint,
            http,
        })
    }

    /// POSTs `body` to the service, signed with SigV4 as the agent's own identity (the
    /// environment's keys), with the `fixed` headers: the status and the reply, read up to
    /// `limit` bytes. Errors name the step, never a key.
    pub(super) fn post(
        &self,
        fixed: &[(&str, &str)],
        body: String,
        limit: u64,
    ) -> Result<(u16, String), String> {
        signed_post(
            &self.http,
            (&self.endpoint, &self.region, self.service),
            fixed,
            body,
            limit,
        )
    }
}

/// One secret (and optionally one key of its JSON value).
#[derive(Debug)]
pub struct SecretsManager {
    secret: RawSecret,
    settings: Arc<AwsSettings>,
}

impl SecretsManager {
    /// Checks the secret's fields (`at` is the field path, for errors).
    pub fn new(
        at: &str,
        secret: RawSecret,
        settings: Arc<AwsSettings>,
    ) -> Result<SecretsManager, Error> {
        if secret.secret_id.is_empty() || secret.secret_id.len() > 2048 {
            return Err(Error::config(
                format!("{at}.aws_secretsmanager.secret_id"),
                format!("{:?}", secret.secret_id),
                "1 to 2048 characters",
            ));
        }
        if secret.json_key.as_deref() == Some("") {
            return Err(Error::config(
                format!("{at}.aws_secretsmanager.json_key"),
                "\"\"",
                "empty key",
            ));
        }
        if secret.version_stage.as_deref() == Some("") {
            return Err(Error::config(
                format!("{at}.aws_secretsmanager.version_stage"),
                "\"\"",
                "empty stage",
            ));
        }
        Ok(SecretsManager { secret, settings })
    }
}

/// The fields of a `GetSecretValue` reply this needs.
#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// An error reply's type (`ResourceNotFoundException`); its message is not read.
#[derive(Deserialize)]
struct ErrorReply {
    #[serde(rename = "__type")]
    kind: Option<String>,
}

/// [`AwsSettings::post`]: `endpoint` is `http(s)://host[:port]` (path `/`), signed for `service`
/// in `region`.
fn signed_post(
    http: &ureq::Agent,
    (endpoint, region, service): (&str, &str, &str),
    fixed: &[(&str, &str)],
    body: String,
    limit: u64,
) -> Result<(u16, String), String> {
    let url = format!("{endpoint}/");
    let identity = env_keys().map_err(|e| e.0)?.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        fixed.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    let mut request = ureq::http::Request::post(&url);
    for (k, v) in fixed {
        request = request.header(*k, *v);
    }
    for (k, v) in instructions.headers() {
        request = request.header(k, v);
    }
    let request = request
        .body(body)
        .map_err(|e| format!("building the request: {e}"))?;
    let mut response = http.run(request).map_err(|e| format!("{endpoint}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| format!("{endpoint}: reading the reply: {e}"))?;
    Ok((status, text))
}

fn env_keys() -> Result<AwsKeys, SourceError> {
    let id = std::env::var("AWS_ACCESS_KEY_ID")
        .map_err(|_| SourceError("AWS_ACCESS_KEY_ID is not set".into()))?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
        .map_err(|_| SourceError("AWS_SECRET_ACCESS_KEY is not set".into()))?;
    let token = std::env::var("AWS_SESSION_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    Ok(AwsKeys::new(id, secret, token, None, "environment"))
}

impl Source for SecretsManager {
    fn describe(&self) -> String {
        let mut d = format!("aws_secretsmanager:{}", self.secret.secret_id);
        if let Some(k) = &self.secret.json_key {
            d.push_str(&format!("#{k}"));
        }
        if let Some(s) = &self.secret.version_stage {
            d.push_str(&format!("@{s}"));
        }
        d
    }

    fn fetch(&self) -> Result<String, SourceError> {
        let s = &self.settings;
        let mut body = json!({ "SecretId": self.secret.secret_id });
        if let Some(stage) = &self.secret.version_stage {
            body["VersionStage"] = json!(stage);
        }
        let fixed = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ];
        let (status, text) = s
            .post(&fixed, body.to_string(), MAX_REPLY_BYTES)
            .map_err(SourceError)?;
        if status != 200 {
            let kind = serde_json::from_str::<ErrorReply>(&text)
                .ok()
                .and_then(|e| e.kind)
                .unwrap_or_else(|| "unknown error".into());
            return Err(SourceError(format!(
                "GetSecretValue {}: HTTP {status} {kind}",
                self.secret.secret_id
            )));
        }
        let reply: Reply = serde_json::from_str(&text).map_err(|_| {
            SourceError("GetSecretValue: the reply is not the expected JSON".into())
        })?;
        let value = reply.secret_string.ok_or_else(|| {
            SourceError(format!(
                "{}: no SecretString (binary secrets are not supported)",
                self.secret.secret_id
            ))
        })?;
        match &self.secret.json_key {
            None => Ok(value),
            Some(key) => {
                let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&value)
                    .map_err(|_| {
                        SourceError(format!(
                            "{}: json_key {key:?} given but the secret is not a JSON object",
                            self.secret.secret_id
                        ))
                    })?;
                match map.get(key) {
                    Some(serde_json::Value::String(v)) => Ok(v.clone()),
                    Some(_) => Err(SourceError(format!(
                        "{}: key {key:?} is not a string",
                        self.secret.secret_id
                    ))),
                    None => Err(SourceError(format!(
                        "{}: no key {key:?} in the secret",
                        self.secret.secret_id
                    ))),
                }
            }
        }
    }
}
