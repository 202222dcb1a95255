//! Short-lived AWS credentials for a proven subject (`aws_roles` in the credentials file):
//! `GET /v1/aws/credentials/{api}` arrives from the gateway after the filter verified the
//! caller's proof and groups, carrying the subject and groups the filter set; the agent calls
//! STS `AssumeRole` for the API's role with `RoleSessionName` = the subject and one session tag
//! per group, and answers in the JSON shape the AWS `credential_process` setting reads. The
//! request is signed with the official `aws-sigv4` crate and sent with ureq (as Secrets Manager
//! is: no SDK), with the agent's own AWS identity from the environment. Nothing here is
//! cached or logged: each call mints new credentials, and only errors' codes are logged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RawAws;
use super::aws::{AwsSettings, STS};
use crate::error::Error;

/// Longest STS reply read.
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// STS's own bounds on `DurationSeconds` (a role's maximum may be lower; STS then refuses).
const MIN_DURATION_SECS: u32 = 900;
const MAX_DURATION_SECS: u32 = 3600;
/// STS allows 50 session tags: the subject's, and one per group up to this many.
const MAX_GROUP_TAGS: usize = 49;

/// `aws_roles.<api>` in the credentials file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub role_arn: String,
    #[serde(default)]
    pub duration_secs: Option<u32>,
}

/// One API's role.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    arn: String,
    duration_secs: u32,
}

/// Why no credentials were minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRefusal {
    /// No role for this API.
    UnknownApi,
    /// The request lacks a valid subject (the gateway did not set it).
    NoSubject,
    /// STS failed or refused (its error code, for the log).
    Sts(String),
}

/// What the AWS `credential_process` setting reads (`Version` 1).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessCredentials {
    pub version: u32,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: String,
}

impl std::fmt::Debug for ProcessCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Every API's role, and STS.
#[derive(Debug)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
    sts: Arc<Sts>,
}

/// How to reach STS, signing as the agent's own identity (from the environment).
#[derive(Debug)]
pub struct Sts {
    aws: AwsSettings,
}

impl Roles {
    /// Checks the roles (`at`: `credentials.aws_roles`).
    pub fn from_raw(raw: BTreeMap<String, RawRole>, sts: Arc<Sts>) -> Result<Roles, Error> {
        let mut roles = BTreeMap::new();
        for (api, r) in raw {
            let role = Role::check("credentials.aws_roles", &api, r.role_arn, r.duration_secs)?;
            roles.insert(api, role);
        }
        Ok(Roles { roles, sts })
    }

    /// Whether any API has a role.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// Mints credentials for `subject` (with `groups` as session tags) under `api`'s role.
    /// Blocking: run it on the blocking pool.
    pub fn assume(
        &self,
        api: &str,
        subject: &str,
        groups: &[String],
    ) -> Result<ProcessCredentials, RoleRefusal> {
        let role = self.roles.get(api).ok_or(RoleRefusal::UnknownApi)?;
        if !autoid_protocol::valid_subject(subject) {
            return Err(RoleRefusal::NoSubject);
        }
        let session = if subject.len() < 2 {
            format!("autoid-{subject}")
        } else {
            subject.to_owned()
        };
        self.sts
            .assume(role, &session, &subject_tags(subject, groups))
    }
}

impl Role {
    /// Checks one API's role (`section`: the field path of the API map).
    pub(crate) fn check(
        section: &str,
        api: &str,
        arn: String,
        duration_secs: Option<u32>,
    ) -> Result<Role, Error> {
        let at = format!("{section}.{api}");
        if !autoid_protocol::valid_id(api) {
            return Err(Error::config(
                section,
                format!("{api:?}"),
                "not an API id (1 to 32 of A-Z a-z 0-9 _ -)",
            ));
        }
        if !arn.starts_with("arn:") || arn.len() > 2048 || !arn.contains(":role/") {
            return Err(Error::config(
                format!("{at}.role_arn"),
                format!("{arn:?}"),
                "not a role ARN (arn:aws:iam::<account>:role/<name>)",
            ));
        }
        let duration_secs = duration_secs.unwrap_or(MIN_DURATION_SECS);
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration_secs) {
            return Err(Error::config(
                format!("{at}.duration_secs"),
                duration_secs.to_string(),
                format!(
                    "{MIN_DURATION_SECS} to {MAX_DURATION_SECS} (STS's bounds; at most an hour)"
                ),
            ));
        }
        Ok(Role { arn, duration_secs })
    }

    /// How long credentials of this role live.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.duration_secs))
    }
}

impl Sts {
    /// The region and STS endpoint from `aws` or the environment (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`).
    pub fn from_raw(
        aws: &RawAws,
        env: &dyn Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Sts, Error> {
        Ok(Sts {
            aws: AwsSettings::for_service(&STS, aws.sts_endpoint_url.as_ref(), aws, env, timeout)?,
        })
    }

    /// STS `AssumeRole` for `role` as `session` with session `tags`. Blocking: run it on the
    /// blocking pool.
    pub(crate) fn assume(
        &self,
        role: &Role,
        session: &str,
        tags: &[(String, String)],
    ) -> Result<ProcessCredentials, RoleRefusal> {
        let body = assume_role_form(role, session, tags);
        let fixed = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let (status, text) = self
            .aws
            .post(&fixed, body, MAX_REPLY_BYTES)
            .map_err(RoleRefusal::Sts)?;
        if status != 200 {
            let code = quick_xml::de::from_str::<ErrorResponse>(&text)
                .map(|e| e.error.code)
                .unwrap_or_else(|_| "unknown error".into());
            return Err(RoleRefusal::Sts(format!(
                "AssumeRole: HTTP {status} {code}"
            )));
        }
        let reply: AssumeRoleResponse = quick_xml::de::from_str(&text).map_err(|_| {
            RoleRefusal::Sts("AssumeRole: the reply is not the expected XML".into())
        })?;
        let c = reply.result.credentials;
        Ok(ProcessCredentials {
            version: 1,
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
            expiration: c.expiration,
        })
    }
}

/// The session tags of a subject's credentials: `autoid-subject`, and `autoid-group:<group>` =
/// `true` for each group whose name STS accepts in a tag key (IAM policies can test
/// `aws:PrincipalTag/autoid-group:payments`).
fn subject_tags(subject: &str, groups: &[String]) -> Vec<(String, String)> {
    let tag_char = |c: char| c.is_ascii_alphanumeric() || "_.:/=+-@ ".contains(c);
    let mut tags = vec![("autoid-subject".to_owned(), subject.to_owned())];
    tags.extend(
        groups
            .iter()
            .filter(|g| g.len() <= 114 && g.chars().all(tag_char))
            .take(MAX_GROUP_TAGS)
            .map(|g| (format!("autoid-group:{g}"), "true".to_owned())),
    );
    tags
}

/// The `AssumeRole` form: the role, the session name (STS wants 2 to 64 characters), the
/// duration and the session tags.
fn assume_role_form(role: &Role, session: &str, tags: &[(String, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &role.arn)
        .append_pair("RoleSessionName", session)
        .append_pair("DurationSeconds", &role.duration_secs.to_string());
    for (i, (k, v)) in tags.iter().enumerate() {
        form.append_pair(&format!("Tags.member.{}.Key", i + 1), k)
            .append_pair(&format!("Tags.member.{}.Value", i + 1), v);
    }
    form.finish()
}

#[derive(Deserialize)]
struct AssumeRoleResponse {
    #[serde(rename = "AssumeRoleResult")]
    result: AssumeRoleResult,
}

#[derive(Deserialize)]
struct AssumeRoleResult {
    #[serde(rename = "Credentials")]
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(rename = "Error")]
    error: StsError,
}

#[derive(Deserialize)]
struct StsError {
    #[serde(rename = "Code")]
    code: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_the_subject_and_tags_each_group() {
        let role = Role {
            arn: "arn:aws:iam::123456789012:role/demo".into(),
            duration_secs: 900,
        };
        let groups = vec![
            "payments".to_owned(),
            "bad,name".to_owned(),
            "reports".to_owned(),
        ];
        let form = assume_role_form(&role, "alice", &subject_tags("alice", &groups));
        let pairs: BTreeMap<String, String> = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs["Action"], "AssumeRole");
        assert_eq!(pairs["RoleSessionName"], "alice");
        assert_eq!(pairs["DurationSeconds"], "900");
        assert_eq!(pairs["Tags.member.1.Value"], "alice");
        assert_eq!(pairs["Tags.member.2.Key"], "autoid-group:payments");
        assert_eq!(pairs["Tags.member.3.Key"], "autoid-group:reports");
        assert!(
            !form.contains("bad"),
            "a name STS refuses in a tag key is left out"
        );
        assert!(!assume_role_form(&role, "autoid-gateway", &[]).contains("Tags"));
    }

    #[test]
    fn sts_replies_parse_and_debug_hides_the_secret() {
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/alice</Arn><AssumedRoleId>AROA:alice</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>secret-example</SecretAccessKey>
      <SessionToken>token-example</SessionToken>
      <Expiration>2026-11-30T03:15:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;
        let r: AssumeRoleResponse = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(r.result.credentials.access_key_id, "ASIAEXAMPLE");
        let p = ProcessCredentials {
            version: 1,
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret-example".into(),
            session_token: "token-example".into(),
            expiration: "2026-11-30T03:15:00Z".into(),
        };
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("secret-example") && !dbg.contains("token-example"));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["Version"], 1);
        assert_eq!(json["SessionToken"], "token-example");
        let err = r#"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>"#;
        assert_eq!(
            quick_xml::de::from_str::<ErrorResponse>(err)
                .unwrap()
                .error
                .code,
            "AccessDenied"
        );
    }
}
