//! Each worker's view of the subjects' entropy (DESIGN.md rule 3: memory bounded, whatever the
//! number of clients).
//!
//! Two levels. Every recent subject keeps its *stream* (HKDF and the AES key schedule done), so a
//! proof costs one AES block per interval. A few *hot* subjects — at least
//! `min_proofs_per_second` verified proofs in the last tick window — also get their whole file
//! materialized, so their intervals are memory reads: software AES is the largest per-request
//! cost in wasm. Only proofs that verified count, so a client without the file cannot make the
//! gateway materialize anything; at most one file is materialized per tick (one second), and at
//! most `files` are kept, the least busy evicted first.

use std::collections::HashMap;

use autoid_protocol::config::EntropyCacheConfig;
use autoid_protocol::entropy::{Epoch, SubjectStream};
use autoid_protocol::intervals::{Interval, read_file};

struct Entry {
    stream: SubjectStream,
    file_size: u64,
    /// Verified proofs in the current tick window.
    proofs: u32,
    file: Option<Box<[u8]>>,
}

impl Entry {
    fn read(&self, offsets: &[u64]) -> Vec<Interval> {
        match &self.file {
            Some(data) => offsets.iter().map(|&o| read_file(data, o)).collect(),
            None => self.stream.intervals_at(offsets),
        }
    }
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// The epoch id.
    pub epoch: String,
    /// The subject whose file is now kept.
    pub subject: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The subject whose file was dropped to make room, if any.
    pub evicted: Option<String>,
}

/// Streams of recent subjects and files of hot ones, by epoch id then subject.
pub struct EntropyCache {
    epochs: Vec<(String, HashMap<String, Entry>)>,
    streams: usize,
    max_streams: usize,
    config: EntropyCacheConfig,
}

impl core::fmt::Debug for EntropyCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EntropyCache")
            .field("streams", &self.streams)
            .field("files", &self.files())
            .finish_non_exhaustive()
    }
}

impl EntropyCache {
    /// At most `max_streams` subjects' streams (all dropped when full) and `config.files` files.
    pub fn new(config: EntropyCacheConfig, max_streams: usize) -> Self {
        EntropyCache {
            epochs: Vec::new(),
            streams: 0,
            max_streams,
            config,
        }
    }

    fn subjects(&mut self, epoch: &str) -> &mut HashMap<String, Entry> {
        let at = match self.epochs.iter().position(|(id, _)| id == epoch) {
            Some(at) => at,
            None => {
                self.epochs.push((epoch.to_owned(), HashMap::new()));
                self.epochs.len() - 1
            }
        };
        &mut self.epochs[at].1
    }

    /// The subject's intervals at `offsets`: from its file when kept, else from its stream
    /// (derived and remembered on first use).
    pub fn intervals(&mut self, epoch: &Epoch, subject: &str, offsets: &[u64]) -> Vec<Interval> {
        if let Some(entry) = self.subjects(epoch.id()).get(subject) {
            return entry.read(offsets);
        }
        if self.streams >= self.max_streams {
            self.epochs.clear();
            self.streams = 0;
        }
        let entry = Entry {
            stream: epoch.stream(subject),
            file_size: epoch.file_size(),
            proofs: 0,
            file: None,
        };
        let read = entry.read(offsets);
        self.subjects(epoch.id()).insert(subject.to_owned(), entry);
        self.streams += 1;
        read
    }

    /// Counts a verified proof of the subject (only verified proofs make a subject hot).
    pub fn verified(&mut self, epoch: &str, subject: &str) {
        if let Some(entry) = self.subjects(epoch).get_mut(subject) {
            entry.proofs = entry.proofs.saturating_add(1);
        }
    }

    /// Files kept.
    pub fn files(&self) -> usize {
        self.entries().filter(|(_, _, e)| e.file.is_some()).count()
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &str, &Entry)> {
        self.epochs.iter().flat_map(|(epoch, subjects)| {
            subjects
                .iter()
                .map(move |(subject, e)| (epoch.as_str(), subject.as_str(), e))
        })
    }

    /// Once per tick window: materializes the busiest subject at or over the threshold whose
    /// file is not kept (evicting the least busy kept file when full, if it was less busy),
    /// then starts a new window.
    pub fn tick(&mut self) -> Option<Materialized> {
        let done = self.materialize_busiest();
        for (_, subjects) in &mut self.epochs {
            for entry in subjects.values_mut() {
                entry.proofs = 0;
            }
        }
        done
    }

    fn materialize_busiest(&mut self) -> Option<Materialized> {
        if self.config.files == 0 {
            return None;
        }
        let (epoch, subject, proofs) = self
            .entries()
            .filter(|(_, _, e)| e.file.is_none() && e.proofs >= self.config.min_proofs_per_second)
            .max_by_key(|(_, _, e)| e.proofs)
            .map(|(epoch, subject, e)| (epoch.to_owned(), subject.to_owned(), e.proofs))?;
        let mut evicted = None;
        if self.files() >= self.config.files as usize {
            let (victim_epoch, victim, victim_proofs) = self
                .entries()
                .filter(|(_, _, e)| e.file.is_some())
                .min_by_key(|(_, _, e)| e.proofs)
                .map(|(epoch, subject, e)| (epoch.to_owned(), subject.to_owned(), e.proofs))?;
            if victim_proofs >= proofs {
                return None;
            }
            if let Some(entry) = self.subjects(&victim_epoch).get_mut(&victim) {
                entry.file = None;
            }
            evicted = Some(victim);
        }
        let entry = self.subjects(&epoch).get_mut(&subject)?;
        // A failed allocation skips this file (streams still serve) instead of aborting the VM.
        let len = usize::try_from(entry.file_size).ok()?;
        let mut data = Vec::new();
        data.try_reserve_exact(len).ok()?;
        data.resize(len, 0);
        entry.stream.fill(0, &mut data);
        entry.file = Some(data.into_boxed_slice());
        Some(Materialized {
            epoch,
            subject,
            bytes: entry.file_size,
            evicted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch() -> Epoch {
        Epoch::new("e1", [9u8; 32], 8192, 64).unwrap()
    }

    fn cache(files: u32) -> EntropyCache {
        EntropyCache::new(
            EntropyCacheConfig {
                files,
                min_proofs_per_second: 3,
            },
            4,
        )
    }

    fn offsets() -> Vec<u64> {
        vec![0, 8, 16, 4096, 8184]
    }

    fn hot(c: &mut EntropyCache, e: &Epoch, subject: &str, proofs: u32) {
        for _ in 0..proofs {
            c.intervals(e, subject, &offsets());
            c.verified(e.id(), subject);
        }
    }

    #[test]
    fn a_materialized_file_reads_what_the_stream_derives() {
        let e = epoch();
        let mut c = cache(2);
        let from_stream = c.intervals(&e, "alice", &offsets());
        assert_eq!(from_stream, e.stream("alice").intervals_at(&offsets()));
        assert_eq!(c.tick(), None, "not hot yet");
        hot(&mut c, &e, "alice", 3);
        let done = c.tick().unwrap();
        assert_eq!((done.subject.as_str(), done.bytes), ("alice", 8192));
        assert_eq!(c.files(), 1);
        assert_eq!(c.intervals(&e, "alice", &offsets()), from_stream);
        let file = e.issue("alice").unwrap();
        assert_eq!(
            c.intervals(&e, "alice", &[8184])[0],
            file.data()[8184..8192],
            "the last interval"
        );
    }

    #[test]
    fn unverified_use_never_materializes_and_one_file_per_tick() {
        let e = epoch();
        let mut c = cache(4);
        for _ in 0..50 {
            c.intervals(&e, "mallory", &offsets());
        }
        assert_eq!(c.tick(), None, "proofs that did not verify do not count");
        hot(&mut c, &e, "alice", 5);
        hot(&mut c, &e, "bob", 9);
        assert_eq!(c.tick().unwrap().subject, "bob", "the busiest first");
        assert_eq!(c.files(), 1, "one per tick");
        assert_eq!(
            c.tick(),
            None,
            "the window restarted: alice's count is gone"
        );
    }

    #[test]
    fn files_stay_bounded_and_the_least_busy_is_evicted() {
        let e = epoch();
        let mut c = cache(1);
        hot(&mut c, &e, "alice", 4);
        c.tick().unwrap();
        hot(&mut c, &e, "alice", 4);
        hot(&mut c, &e, "bob", 3);
        assert_eq!(c.tick(), None, "bob is less busy than the kept alice");
        hot(&mut c, &e, "alice", 1);
        hot(&mut c, &e, "bob", 6);
        let done = c.tick().unwrap();
        assert_eq!(done.subject, "bob");
        assert_eq!(done.evicted.as_deref(), Some("alice"));
        assert_eq!(c.files(), 1);
        let mut off = cache(0);
        hot(&mut off, &e, "alice", 10);
        assert_eq!(off.tick(), None, "files = 0 disables materializing");
    }

    #[test]
    fn streams_stay_bounded() {
        let e = epoch();
        let mut c = cache(1);
        for i in 0..20 {
            let subject = format!("s{i}");
            assert_eq!(
                c.intervals(&e, &subject, &offsets()),
                e.stream(&subject).intervals_at(&offsets())
            );
            assert!(c.streams <= 4);
        }
    }
}
