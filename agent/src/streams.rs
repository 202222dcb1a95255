//! Per-subject entropy keys for the filter: the epochs' master secrets live here, not in Envoy.
//! The filter asks for one subject's key `K` in one epoch (`POST /v1/streams`) and keeps the
//! stream it builds from it for at most `ttl_secs`; a leaked `K` exposes that subject's entropy
//! in that epoch only (docs/PROTOCOL.md).

use std::path::PathBuf;

use autoid_protocol::directory::StreamReply;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::valid_subject;

use crate::error::Error;

/// Why no key was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No epoch with this id here.
    UnknownEpoch,
    /// The subject is not canonical.
    BadSubject,
}

/// The epochs whose subjects' keys this agent hands out.
#[derive(Debug)]
pub struct Streams {
    epochs: Vec<Epoch>,
    ttl_secs: u64,
}

impl Streams {
    /// Epochs from their files (as `autoid epoch new` writes them); errors name the field path
    /// `epoch_files[i]` and the file, never the secret.
    pub fn load(files: &[PathBuf], ttl_secs: u64) -> Result<Streams, Error> {
        let mut epochs: Vec<Epoch> = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let at = format!("epoch_files[{i}]");
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::config(&at, file.display(), format!("cannot read: {e}")))?;
            let epoch = Epoch::from_json(&text)
                .map_err(|e| Error::config(&at, file.display(), e.to_string()))?;
            if epochs.iter().any(|have| have.id() == epoch.id()) {
                return Err(Error::config(
                    &at,
                    file.display(),
                    format!("duplicate epoch id {:?}", epoch.id()),
                ));
            }
            epochs.push(epoch);
        }
        Ok(Streams { epochs, ttl_secs })
    }

    /// The epoch ids served.
    pub fn ids(&self) -> Vec<&str> {
        self.epochs.iter().map(Epoch::id).collect()
    }

    /// The subject's key in the epoch, with the epoch's public parameters and the TTL.
    pub fn key(&self, epoch: &str, subject: &str) -> Result<StreamReply, Refusal> {
        if !valid_subject(subject) {
            return Err(Refusal::BadSubject);
        }
        let epoch = self
            .epochs
            .iter()
            .find(|e| e.id() == epoch)
            .ok_or(Refusal::UnknownEpoch)?;
        Ok(StreamReply {
            key: epoch.subject_key(subject).to_base64(),
            file_size: epoch.file_size(),
            interval_count: epoch.interval_count(),
            ttl_secs: self.ttl_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoid_protocol::entropy::SubjectKey;

    fn write(dir: &std::path::Path, name: &str, epoch: &Epoch) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, epoch.to_json()).unwrap();
        path
    }

    #[test]
    fn keys_make_the_epochs_streams() {
        let dir = tempfile::tempdir().unwrap();
        let e1 = Epoch::new("e1", [3u8; 32], 8192, 64).unwrap();
        let e2 = Epoch::new("e2", [4u8; 32], 4096, 32).unwrap();
        let s = Streams::load(
            &[
                write(dir.path(), "a.json", &e1),
                write(dir.path(), "b.json", &e2),
            ],
            120,
        )
        .unwrap();
        assert_eq!(s.ids(), ["e1", "e2"]);
        let r = s.key("e2", "alice").unwrap();
        assert_eq!((r.file_size, r.interval_count, r.ttl_secs), (4096, 32, 120));
        let k = SubjectKey::from_base64(&r.key).unwrap();
        let mut data = vec![0u8; 4096];
        k.stream().fill(0, &mut data);
        assert_eq!(data, e2.issue("alice").unwrap().data());
        assert_eq!(s.key("e3", "alice"), Err(Refusal::UnknownEpoch));
        assert_eq!(s.key("e1", "Alice"), Err(Refusal::BadSubject));
        assert_eq!(s.key("e1", ""), Err(Refusal::BadSubject));
    }

    #[test]
    fn load_errors_name_the_field_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let e1 = Epoch::new("e1", [3u8; 32], 8192, 64).unwrap();
        let a = write(dir.path(), "a.json", &e1);
        let b = write(dir.path(), "b.json", &e1);
        let e = Streams::load(&[a.clone(), b], 60).unwrap_err().to_string();
        assert!(
            e.starts_with("epoch_files[1]: duplicate epoch id \"e1\""),
            "{e}"
        );
        let missing = dir.path().join("missing.json");
        let e = Streams::load(&[a, missing], 60).unwrap_err().to_string();
        assert!(e.starts_with("epoch_files[1]: cannot read"), "{e}");
        let bad = dir.path().join("bad.json");
        let text = e1.to_json().replace("8192", "100");
        std::fs::write(&bad, &text).unwrap();
        let e = Streams::load(&[bad], 60).unwrap_err().to_string();
        assert!(e.starts_with("epoch_files[0]: "), "{e}");
        let secret: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(!e.contains(secret["secret"].as_str().unwrap()), "{e}");
    }
}
