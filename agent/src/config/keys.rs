//! `session_keys` and `epoch_files`: the gateway keys the agent unwraps sessions for and the
//! epochs it hands out subjects' keys of, each with its retirement time.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Error;

/// One gateway private key (PKCS#8 PEM file) and its key id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionKey {
    pub kid: String,
    pub private_key_file: PathBuf,
    /// When the key retires (Unix seconds): from then on it unwraps nothing, and the sessions it
    /// opened end in the filter too. Set by `autoid rotate key`.
    #[serde(default)]
    pub not_after: Option<u64>,
}

/// An epoch file with its retirement time (Unix seconds): from then on the agent hands out no
/// key of it, and the filter keeps no stream of it. Set by `autoid rotate epoch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetiringEpoch {
    pub file: PathBuf,
    #[serde(default)]
    pub not_after: Option<u64>,
}

/// An epoch file the agent hands out subjects' keys of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochFileConfig {
    pub file: PathBuf,
    pub not_after: Option<u64>,
}

/// A gateway key the agent unwraps sessions for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeyConfig {
    pub kid: String,
    pub private_key_file: PathBuf,
    pub not_after: Option<u64>,
}

/// `session_keys`: each key id valid and listed once.
pub(super) fn session_keys(raw: Vec<RawSessionKey>) -> Result<Vec<SessionKeyConfig>, Error> {
    let mut session_keys: Vec<SessionKeyConfig> = Vec::new();
    for (i, k) in raw.into_iter().enumerate() {
        if !autoid_protocol::valid_id(&k.kid) {
            return Err(Error::config(
                format!("session_keys[{i}].kid"),
                format!("{:?}", k.kid),
                "not a key id (1 to 64 of A-Z a-z 0-9 . _ -)",
            ));
        }
        if session_keys.iter().any(|have| have.kid == k.kid) {
            return Err(Error::config(
                format!("session_keys[{i}].kid"),
                format!("{:?}", k.kid),
                "duplicate key id",
            ));
        }
        session_keys.push(SessionKeyConfig {
            kid: k.kid,
            private_key_file: k.private_key_file,
            not_after: k.not_after,
        });
    }
    Ok(session_keys)
}

/// `epoch_files`: a file name, or `{"file", "not_after"}`.
pub(super) fn epoch_files(raw: Vec<serde_json::Value>) -> Result<Vec<EpochFileConfig>, Error> {
    let mut epoch_files = Vec::with_capacity(raw.len());
    for (i, f) in raw.into_iter().enumerate() {
        let (at, entry) = match f {
            serde_json::Value::String(file) => (
                format!("epoch_files[{i}]"),
                EpochFileConfig {
                    file: PathBuf::from(file),
                    not_after: None,
                },
            ),
            serde_json::Value::Object(_) => {
                let r: RawRetiringEpoch = serde_json::from_value(f.clone())
                    .map_err(|e| Error::config(format!("epoch_files[{i}]"), &f, e.to_string()))?;
                (
                    format!("epoch_files[{i}].file"),
                    EpochFileConfig {
                        file: r.file,
                        not_after: r.not_after,
                    },
                )
            }
            other => {
                return Err(Error::config(
                    format!("epoch_files[{i}]"),
                    other,
                    "expected a file name or {\"file\": ..., \"not_after\": unix_secs}",
                ));
            }
        };
        if entry.file.as_os_str().is_empty() {
            return Err(Error::config(at, "\"\"", "empty file name"));
        }
        epoch_files.push(entry);
    }
    Ok(epoch_files)
}
