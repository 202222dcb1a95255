//! AWS roles the gateway lends to workloads that could read a Secrets Manager credential it
//! injects: a workload holding such a role would see the credential the gateway keeps from it.
//!
//! Offline, the roles' policies are unknown: what the definitions tell is each role's account
//! (its ARN) and each secret's account and region (when `secret_id` is an ARN; a name is in the
//! agent's own account, unknown here). A role and a secret overlap unless their accounts are
//! both known and differ, or the role only signs calls to another region or another service.

use std::path::Path;

use super::defs::{ApiDef, Definitions, Source};

/// `arn:<partition>:<service>:<region>:<account>:<resource>`: the region and account, when
/// given (IAM ARNs have no region).
fn arn_parts(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let (_partition, _service) = (parts.next()?, parts.next()?);
    let region = parts.next()?;
    let account = parts.next()?;
    parts.next()?;
    Some((region, account)).filter(|(_, account)| !account.is_empty())
}

/// A role lent to workloads.
struct Lent<'a> {
    file: &'a Path,
    /// `aws_role.role_arn` (vended to the workload) or `aws_service.role_arn` (the gateway signs
    /// the workload's Secrets Manager calls with it).
    path: &'static str,
    arn: &'a str,
    /// The only region its calls reach (`aws_service`), or any (`aws_role`).
    region: Option<&'a str>,
}

/// A Secrets Manager credential the gateway injects.
struct Injected<'a> {
    file: &'a Path,
    path: String,
    secret_id: &'a str,
}

fn lent<'a>(file: &'a Path, api: &'a ApiDef) -> Option<Lent<'a>> {
    if let Some(role) = &api.aws_role {
        return Some(Lent {
            file,
            path: "aws_role.role_arn",
            arn: &role.role_arn,
            region: None,
        });
    }
    let service = api.aws_service.as_ref()?;
    (service.service == "secretsmanager").then_some(Lent {
        file,
        path: "aws_service.role_arn",
        arn: &service.role_arn,
        region: Some(&service.region),
    })
}

fn injected<'a>(file: &'a Path, api: &'a ApiDef) -> Vec<Injected<'a>> {
    api.auth
        .inject
        .iter()
        .filter_map(|(header, source)| match source {
            Source::AwsSecretsmanager(s) => Some(Injected {
                file,
                path: format!("auth.inject.{header}.aws_secretsmanager.secret_id"),
                secret_id: &s.secret_id,
            }),
            _ => None,
        })
        .collect()
}

/// The Secrets Manager region the agent uses (`credentials.aws.region`), when given.
fn agent_region(defs: &Definitions) -> Option<&str> {
    defs.gateway
        .credentials
        .aws
        .as_ref()?
        .get("region")?
        .as_str()
}

/// Why `role` could read `secret`, or `None` when the definitions show it cannot.
fn overlap(role: &Lent, secret: &Injected, agent_region: Option<&str>) -> Option<String> {
    let role_account = arn_parts(role.arn).map(|(_, account)| account);
    let (secret_region, secret_account) = match arn_parts(secret.secret_id) {
        Some((region, account)) => (Some(region), Some(account)),
        None => (agent_region, None),
    };
    if let (Some(only), Some(region)) = (role.region, secret_region)
        && only != region
    {
        return None;
    }
    match (role_account, secret_account) {
        (Some(a), Some(b)) if a != b => None,
        (Some(a), Some(_)) => Some(format!("both in account {a}")),
        _ => Some(
            "the secret's account is not known offline (secret_id is a name: the agent's own \
             account)"
                .to_owned(),
        ),
    }
}

/// One warning per (lent role, injected secret) pair that could overlap.
pub(crate) fn warnings(defs: &Definitions) -> Vec<String> {
    let roles: Vec<Lent> = defs
        .apis
        .iter()
        .filter(|(_, api, _)| api.enabled)
        .filter_map(|(file, api, _)| lent(file, api))
        .collect();
    let secrets: Vec<Injected> = defs
        .apis
        .iter()
        .filter(|(_, api, _)| api.enabled)
        .flat_map(|(file, api, _)| injected(file, api))
        .collect();
    let region = agent_region(defs);
    let mut out = Vec::new();
    for role in &roles {
        for secret in &secrets {
            if let Some(why) = overlap(role, secret, region) {
                out.push(format!(
                    "{}: {} {:?} is lent to workloads and may read the credential the gateway \
                     injects from {}: {} {:?} ({why}): a workload holding the role could read \
                     it and call the upstream without the gateway. Scope the role's policy to \
                     the secrets it needs (secretsmanager:GetSecretValue on their ARNs, never \
                     \"*\" or a wildcard covering this one), or keep the gateway's secrets in an \
                     account the role cannot read and give secret_id as its ARN (docs/AWS.md)",
                    role.file.display(),
                    role.path,
                    role.arn,
                    secret.file.display(),
                    secret.path,
                    secret.secret_id,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role<'a>(arn: &'a str, region: Option<&'a str>) -> Lent<'a> {
        Lent {
            file: Path::new("apis/aws.json"),
            path: "aws_role.role_arn",
            arn,
            region,
        }
    }

    fn secret(secret_id: &str) -> Injected<'_> {
        Injected {
            file: Path::new("apis/payments.json"),
            path: "auth.inject.authorization.aws_secretsmanager.secret_id".into(),
            secret_id,
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/autoid-demo";

    #[test]
    fn a_named_secret_or_one_in_the_roles_account_overlaps() {
        assert!(overlap(&role(ROLE, None), &secret("payments/token"), None).is_some());
        let same = "arn:aws:secretsmanager:us-east-1:123456789012:secret:payments/token";
        let why = overlap(&role(ROLE, None), &secret(same), None).unwrap();
        assert!(why.contains("123456789012"), "{why}");
    }

    #[test]
    fn another_account_or_a_signing_role_in_another_region_does_not() {
        let other = "arn:aws:secretsmanager:us-east-1:111122223333:secret:payments/token";
        assert!(overlap(&role(ROLE, None), &secret(other), None).is_none());
        let signing = role(ROLE, Some("eu-west-1"));
        assert!(overlap(&signing, &secret("payments/token"), Some("us-east-1")).is_none());
        // A vended role reaches every region.
        assert!(
            overlap(
                &role(ROLE, None),
                &secret("payments/token"),
                Some("us-east-1")
            )
            .is_some()
        );
    }
}
