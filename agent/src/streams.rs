//! Per-subject entropy keys for the filter: the epochs' master secrets live here, not in Envoy.
//! The filter asks for one subject's key `K` in one epoch (`POST /v1/streams`) and keeps the
//! stream it builds from it for at most `ttl_secs`; a leaked `K` exposes that subject's entropy
//! in that epoch only (docs/PROTOCOL.md).

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use autoid_protocol::agent_api::StreamReply;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::header::SessionId;
use autoid_protocol::intervals::Intervals;
use autoid_protocol::ticket::Ticket;
use autoid_protocol::{Reject, Request, valid_subject};

use crate::config::EpochFileConfig;
use crate::error::Error;

/// Why no key was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No epoch with this id here (or it retired).
    UnknownEpoch,
    /// The subject is not canonical.
    BadSubject,
}

/// One epoch and when it retires.
#[derive(Debug)]
struct Served {
    epoch: Epoch,
    not_after: Option<u64>,
}

/// The epochs whose subjects' keys this agent hands out. The set is replaced as a whole on
/// reload (SIGHUP): a request sees either the old set or the new one.
#[derive(Debug)]
pub struct Streams {
    epochs: RwLock<Arc<Vec<Served>>>,
    ttl_secs: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every epoch file, read and checked (field path `epoch_files[i]` and the file in errors, never
/// the secret).
fn load_all(files: &[EpochFileConfig]) -> Result<Vec<Served>, Error> {
    let mut epochs: Vec<Served> = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let at = format!("epoch_files[{i}]");
        let file = &f.file;
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::config(&at, file.display(), format!("cannot read: {e}")))?;
        let epoch = Epoch::from_json(&text)
            .map_err(|e| Error::config(&at, file.display(), e.to_string()))?;
        if epochs.iter().any(|have| have.epoch.id() == epoch.id()) {
            return Err(Error::config(
                &at,
                file.display(),
                format!("duplicate epoch id {:?}", epoch.id()),
            ));
        }
        epochs.push(Served {
            epoch,
            not_after: f.not_after,
        });
    }
    Ok(epochs)
}

impl Streams {
    /// Epochs from their files (as `autoid epoch new` writes them).
    pub fn load(files: &[EpochFileConfig], ttl_secs: u64) -> Result<Streams, Error> {
        Ok(Streams {
            epochs: RwLock::new(Arc::new(load_all(files)?)),
            ttl_secs,
        })
    }

    /// Replaces the epoch set with `files`, all loaded first: on any error the old set stays.
    pub fn reload(&self, files: &[EpochFileConfig]) -> Result<(), Error> {
        self.swap(Prepared(load_all(files)?));
        Ok(())
    }

    /// Loads `files` without serving them yet: [`Streams::swap`] them in once everything else
    /// that reloads with them has loaded too.
    pub fn prepare(files: &[EpochFileConfig]) -> Result<Prepared, Error> {
        load_all(files).map(Prepared)
    }

    /// Serves a prepared set from now on.
    pub fn swap(&self, prepared: Prepared) {
        let loaded = Arc::new(prepared.0);
        match self.epochs.write() {
            Ok(mut set) => *set = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
    }

    fn current(&self) -> Arc<Vec<Served>> {
        match self.epochs.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The epoch ids served now, with their retirement times.
    pub fn ids(&self) -> Vec<(String, Option<u64>)> {
        self.current()
            .iter()
            .map(|s| (s.epoch.id().to_owned(), s.not_after))
            .collect()
    }

    /// The subject's key in the epoch, with the epoch's public parameters, the TTL and the
    /// epoch's retirement time. A retired epoch (past its `not_after`) is unknown.
    pub fn key(&self, epoch: &str, subject: &str) -> Result<StreamReply, Refusal> {
        self.key_at(epoch, subject, now_secs())
    }

    /// Checks a v3 possession ticket for a session about to be unwrapped (docs/PROTOCOL.md
    /// §12): the subject's intervals for `request`, their digest, and the tag over `session_id`.
    /// Microseconds (HKDF, an AES key schedule, a few SHA-256), so it runs before the RSA.
    /// The ticket's time window is the filter's (it knows the configured skew and checked it).
    pub fn check_ticket(
        &self,
        ticket: &Ticket,
        request: Request<'_>,
        session_id: &SessionId,
    ) -> Result<(), Reject> {
        let now = now_secs();
        let set = self.current();
        let served = set
            .iter()
            .find(|s| s.epoch.id() == ticket.epoch && s.not_after.is_none_or(|t| now < t))
            .ok_or(Reject::UnknownEpoch)?;
        let epoch = &served.epoch;
        let intervals = Intervals::derive(
            &ticket.bindings(request),
            epoch.file_size(),
            epoch.interval_count(),
        );
        let bytes = epoch
            .stream(&ticket.subject)
            .intervals_at(intervals.offsets());
        ticket.check_tag(&intervals.digest(&bytes), session_id)
    }

    fn key_at(&self, epoch: &str, subject: &str, now: u64) -> Result<StreamReply, Refusal> {
        if !valid_subject(subject) {
            return Err(Refusal::BadSubject);
        }
        let set = self.current();
        let served = set
            .iter()
            .find(|s| s.epoch.id() == epoch && s.not_after.is_none_or(|t| now < t))
            .ok_or(Refusal::UnknownEpoch)?;
        let epoch = &served.epoch;
        Ok(StreamReply {
            key: epoch.subject_key(subject).to_base64(),
            file_size: epoch.file_size(),
            interval_count: epoch.interval_count(),
            ttl_secs: self.ttl_secs,
            expires_at: served.not_after,
        })
    }
}

/// An epoch set loaded by [`Streams::prepare`], not served yet.
#[derive(Debug)]
pub struct Prepared(Vec<Served>);

#[cfg(test)]
mod tests {
    use super::*;
    use autoid_protocol::entropy::SubjectKey;

    fn write(dir: &std::path::Path, name: &str, epoch: &Epoch) -> EpochFileConfig {
        let file = dir.join(name);
        std::fs::write(&file, epoch.to_json()).unwrap();
        EpochFileConfig {
            file,
            not_after: None,
        }
    }

    #[test]
    fn a_possession_ticket_is_checked_against_the_subjects_stream() {
        use autoid_protocol::client::{Form, Session};
        use autoid_protocol::header::{Proof, Version};
        use autoid_protocol::keys::GatewayKey;
        let dir = tempfile::tempdir().unwrap();
        let e1 = Epoch::new("e1", [3u8; 32], 8192, 64).unwrap();
        let s = Streams::load(&[write(dir.path(), "a.json", &e1)], 120).unwrap();
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let key = GatewayKey::generate("gw-1", 2048, &mut rng).unwrap();
        let session = Session::open(&key.public(), 1_800_000_000, &mut rng).unwrap();
        let request = Request {
            method: "GET",
            authority: "api.example",
            path: "/p",
        };
        let zeros = autoid_protocol::entropy::EntropyFile::new("e1", "alice", 64, vec![0; 8192]);
        for (file, expected) in [
            (e1.issue("alice").unwrap(), Ok(())),
            (zeros, Err(Reject::Entropy)),
        ] {
            let header = session
                .prove_in(
                    Version::V3,
                    Form::Full,
                    &file,
                    &request,
                    1_800_000_000,
                    None,
                    &mut rng,
                )
                .unwrap();
            let proof = Proof::parse(&header).unwrap();
            let ticket = proof.ticket().unwrap();
            assert_eq!(
                s.check_ticket(ticket, request, &proof.session_id().unwrap()),
                expected
            );
            // The same ticket for another request, or another session: refused.
            let other = Request {
                path: "/q",
                ..request
            };
            assert_eq!(
                s.check_ticket(ticket, other, &proof.session_id().unwrap()),
                Err(Reject::Entropy)
            );
            assert_eq!(
                s.check_ticket(ticket, request, &[7u8; 32]),
                Err(Reject::Entropy)
            );
        }
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
        assert_eq!(s.ids(), [("e1".to_owned(), None), ("e2".to_owned(), None)]);
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
        let missing = EpochFileConfig {
            file: dir.path().join("missing.json"),
            not_after: None,
        };
        let e = Streams::load(&[a, missing], 60).unwrap_err().to_string();
        assert!(e.starts_with("epoch_files[1]: cannot read"), "{e}");
        let bad = dir.path().join("bad.json");
        let text = e1.to_json().replace("8192", "100");
        std::fs::write(&bad, &text).unwrap();
        let bad = EpochFileConfig {
            file: bad,
            not_after: None,
        };
        let e = Streams::load(&[bad], 60).unwrap_err().to_string();
        assert!(e.starts_with("epoch_files[0]: "), "{e}");
        let secret: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(!e.contains(secret["secret"].as_str().unwrap()), "{e}");
    }

    #[test]
    fn a_retired_epoch_is_unknown_and_a_retiring_one_says_when() {
        let dir = tempfile::tempdir().unwrap();
        let e1 = Epoch::new("e1", [3u8; 32], 8192, 64).unwrap();
        let e2 = Epoch::new("e2", [4u8; 32], 8192, 64).unwrap();
        let mut old = write(dir.path(), "a.json", &e1);
        old.not_after = Some(1_000);
        let s = Streams::load(&[old.clone()], 60).unwrap();
        assert_eq!(
            s.key_at("e1", "alice", 999).unwrap().expires_at,
            Some(1_000)
        );
        assert_eq!(s.key_at("e1", "alice", 1_000), Err(Refusal::UnknownEpoch));
        assert_eq!(s.key_at("e2", "alice", 0), Err(Refusal::UnknownEpoch));

        // A reload serves the new set at once; a failed one keeps the running set.
        let new = write(dir.path(), "b.json", &e2);
        s.reload(&[old.clone(), new.clone()]).unwrap();
        assert_eq!(s.key_at("e2", "alice", 2_000).unwrap().expires_at, None);
        let missing = EpochFileConfig {
            file: dir.path().join("missing.json"),
            not_after: None,
        };
        assert!(s.reload(&[missing]).is_err());
        assert_eq!(
            s.ids(),
            [("e1".to_owned(), Some(1_000)), ("e2".to_owned(), None)]
        );
    }
}
