//! Signing credentials for `aws_service` APIs (`aws_signing` in the credentials file): Envoy
//! signs each allowed request to an AWS service with SigV4 (its `aws_request_signing` filter, as
//! an upstream filter of the API's cluster) using short-lived credentials of the API's role. The
//! agent assumes that role and keeps the credentials in an AWS credentials file that Envoy
//! watches (`<dir>/credentials`, replaced atomically by a rename inside `<dir>`), assuming it
//! again well before they expire. No long-term AWS key ever reaches Envoy: only these, which
//! expire within the role's duration (an hour at most).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};

use super::roles::{ProcessCredentials, Role, Sts};
use crate::error::Error;

/// After a failed `AssumeRole`, the next try.
const RETRY: Duration = Duration::from_secs(15);

/// `aws_signing.<api>` in the credentials file (written by `autoid gateway render`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    pub role_arn: String,
    pub dir: PathBuf,
    #[serde(default)]
    pub duration_secs: Option<u32>,
}

/// One API's signing role and where its credentials go.
#[derive(Debug)]
struct Signer {
    api: String,
    role: Role,
    dir: PathBuf,
}

/// Every `aws_service` API's signer.
#[derive(Debug)]
pub struct Signing {
    signers: Vec<Arc<Signer>>,
    sts: Arc<Sts>,
}

impl Signing {
    /// Checks the entries (absolute directories; the role as for `aws_roles`).
    pub fn from_raw(raw: BTreeMap<String, RawSigning>, sts: Arc<Sts>) -> Result<Signing, Error> {
        let mut signers = Vec::new();
        for (api, r) in raw {
            let role = Role::check("credentials.aws_signing", &api, r.role_arn, r.duration_secs)?;
            if !r.dir.is_absolute() {
                return Err(Error::config(
                    format!("credentials.aws_signing.{api}.dir"),
                    format!("{:?}", r.dir),
                    "not an absolute path",
                ));
            }
            signers.push(Arc::new(Signer {
                api,
                role,
                dir: r.dir,
            }));
        }
        Ok(Signing { signers, sts })
    }

    /// Assumes every role once now and writes the files (at startup, so Envoy finds them);
    /// failures are logged and retried by [`Signing::spawn_refreshers`].
    pub async fn refresh_all(&self) {
        for s in &self.signers {
            let _ = refresh(s, &self.sts).await;
        }
    }

    /// One task per API: assumes its role again when half of the credentials' life has passed
    /// (so Envoy always holds credentials with at least half their life left), or every
    /// [`RETRY`] while STS fails.
    pub fn spawn_refreshers(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        self.signers
            .iter()
            .map(|s| {
                let s = s.clone();
                let sts = self.sts.clone();
                tokio::spawn(async move {
                    loop {
                        let wait = match refresh(&s, &sts).await {
                            Ok(()) => s.role.duration() / 2,
                            Err(()) => RETRY,
                        };
                        tokio::time::sleep(wait).await;
                    }
                })
            })
            .collect()
    }
}

/// Assumes the signer's role and replaces its credentials file; logs the outcome (never a key).
async fn refresh(s: &Arc<Signer>, sts: &Arc<Sts>) -> Result<(), ()> {
    let (signer, client) = (s.clone(), sts.clone());
    let minted = tokio::task::spawn_blocking(move || {
        let session = format!("autoid-gateway-{}", signer.api);
        let creds = client
            .assume(&signer.role, &session, &[])
            .map_err(|e| format!("{e:?}"))?;
        write_credentials(&signer.dir, &creds).map_err(|e| format!("writing the file: {e}"))?;
        Ok::<String, String>(creds.expiration)
    })
    .await;
    match minted {
        Ok(Ok(expiration)) => {
            info!(api = %s.api, dir = %s.dir.display(), expiration = %expiration, "signing credentials renewed");
            Ok(())
        }
        Ok(Err(why)) => {
            warn!(api = %s.api, error = %why, "signing credentials not renewed: Envoy keeps the previous ones until they expire");
            Err(())
        }
        Err(_) => Err(()),
    }
}

/// Writes `<dir>/credentials` (profile `default`, mode 0600) through a temporary file in the
/// same directory and a rename: Envoy's watch on the directory sees one complete file.
fn write_credentials(dir: &Path, c: &ProcessCredentials) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    write!(
        tmp,
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
        c.access_key_id, c.secret_access_key, c.session_token
    )?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join("credentials"))
        .map_err(|e| e.error)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_in_the_aws_format() {
        let dir = tempfile::tempdir().unwrap();
        let c = ProcessCredentials {
            version: 1,
            access_key_id: "ASIA1".into(),
            secret_access_key: "s1".into(),
            session_token: "t1".into(),
            expiration: "2026-11-30T04:00:00Z".into(),
        };
        let at = dir.path().join("api");
        write_credentials(&at, &c).unwrap();
        let text = std::fs::read_to_string(at.join("credentials")).unwrap();
        assert_eq!(
            text,
            "[default]\naws_access_key_id = ASIA1\naws_secret_access_key = s1\naws_session_token = t1\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(at.join("credentials"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let c2 = ProcessCredentials {
            access_key_id: "ASIA2".into(),
            ..c
        };
        write_credentials(&at, &c2).unwrap();
        assert!(
            std::fs::read_to_string(at.join("credentials"))
                .unwrap()
                .contains("ASIA2")
        );
        assert_eq!(
            std::fs::read_dir(&at).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
