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
//!
//! Streams of epochs the agent holds come from the agent's per-subject key (`POST /v1/streams`)
//! and expire (`ttl_secs` of the answer, bounded by `agent.max_stream_ttl_secs`), their files
//! with them; a miss for such an epoch is `None`, and the filter asks the agent.

use std::collections::HashMap;

use autoid_protocol::config::EntropyCacheConfig;
use autoid_protocol::entropy::{EpochParams, SubjectStream};
use autoid_protocol::intervals::{Interval, read_file};
use autoid_protocol::verify::KnownEpoch;

struct Entry {
    stream: SubjectStream,
    file_size: u64,
    /// The epoch's interval count (with `file_size`, its public parameters: for an epoch the
    /// filter does not list, the only place they are known).
    interval_count: u32,
    /// When a stream the agent handed over stops being used (Unix seconds); `None` for streams
    /// derived from a local epoch.
    expires: Option<u64>,
    /// Verified proofs in the current tick window.
    proofs: u32,
    /// The cache's use count at the subject's last verified proof (0: never verified). When the
    /// cache is full, the entry verified longest ago goes first, so subjects named by proofs
    /// that never verify (anyone can open a session and name subjects) only displace each other.
    last_verified: u64,
    /// The cache's insert count when the entry came in: among entries verified equally long ago
    /// (never, typically), the oldest goes first.
    inserted: u64,
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
    /// Verified proofs so far: the clock of `Entry::last_verified`.
    uses: u64,
    /// Entries inserted so far: the clock of `Entry::inserted`.
    inserts: u64,
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
    /// At most `config.max_streams` subjects' streams (the one verified longest ago makes room) and
    /// `config.files` files.
    pub fn new(config: EntropyCacheConfig) -> Self {
        EntropyCache {
            epochs: Vec::new(),
            streams: 0,
            max_streams: config.max_streams as usize,
            uses: 0,
            inserts: 0,
            config,
        }
    }

    /// Streams kept.
    pub fn streams(&self) -> usize {
        self.streams
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
    /// (a local epoch's derived and remembered on first use). `None` when the epoch is the
    /// agent's and the subject's stream is not kept (or expired at `now`): ask the agent.
    pub fn intervals(
        &mut self,
        epoch: KnownEpoch<'_>,
        subject: &str,
        offsets: &[u64],
        now: u64,
    ) -> Option<Vec<Interval>> {
        let params = epoch.params();
        let subjects = self.subjects(params.id());
        match subjects.get(subject) {
            Some(entry) if entry.expires.is_none_or(|at| now < at) => {
                return Some(entry.read(offsets));
            }
            Some(_) => {
                subjects.remove(subject);
                self.streams = self.streams.saturating_sub(1);
            }
            None => {}
        }
        let stream = epoch.local_stream(subject)?;
        let read = stream.intervals_at(offsets);
        self.insert(params, subject, stream, None);
        Some(read)
    }

    /// The public parameters of `epoch` as the agent sent them with the subject's stream, if
    /// that stream is kept and not expired at `now` (an epoch the filter does not list). Never
    /// adds an epoch to the cache.
    pub fn agent_params(&self, epoch: &str, subject: &str, now: u64) -> Option<EpochParams> {
        let (_, subjects) = self.epochs.iter().find(|(id, _)| id == epoch)?;
        let entry = subjects.get(subject)?;
        if entry.expires.is_none_or(|at| now < at) {
            EpochParams::new(epoch, entry.file_size, entry.interval_count).ok()
        } else {
            None
        }
    }

    /// Keeps a subject's stream: one the agent handed over (`expires` at that Unix second), or
    /// a local epoch's (`None`). Past `max_streams`, the entry verified longest ago (never
    /// verified first) makes room.
    pub fn insert(
        &mut self,
        params: &EpochParams,
        subject: &str,
        stream: SubjectStream,
        expires: Option<u64>,
    ) {
        let present = self
            .epochs
            .iter()
            .any(|(id, subjects)| id == params.id() && subjects.contains_key(subject));
        if !present && self.streams >= self.max_streams {
            self.evict_one();
        }
        let entry = Entry {
            stream,
            file_size: params.file_size(),
            interval_count: params.interval_count(),
            expires,
            proofs: 0,
            last_verified: 0,
            inserted: self.inserts,
            file: None,
        };
        self.inserts += 1;
        if self
            .subjects(params.id())
            .insert(subject.to_owned(), entry)
            .is_none()
        {
            self.streams += 1;
        }
    }

    /// Counts a verified proof of the subject (only verified proofs make a subject hot).
    pub fn verified(&mut self, epoch: &str, subject: &str) {
        self.uses += 1;
        let now = self.uses;
        if let Some(entry) = self.subjects(epoch).get_mut(subject) {
            entry.proofs = entry.proofs.saturating_add(1);
            entry.last_verified = now;
        }
    }

    /// Drops the entry verified longest ago (one never verified first; the oldest among equals),
    /// and its file.
    fn evict_one(&mut self) {
        let oldest = self
            .epochs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, subjects))| {
                subjects
                    .iter()
                    .map(move |(subject, e)| ((e.last_verified, e.inserted), i, subject))
            })
            .min_by_key(|(age, _, _)| *age)
            .map(|(_, i, subject)| (i, subject.clone()));
        if let Some((i, subject)) = oldest {
            self.epochs[i].1.remove(&subject);
            self.streams = self.streams.saturating_sub(1);
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

    /// Once per tick window: drops the streams (and files) that expired at `now`, materializes
    /// the busiest subject at or over the threshold whose file is not kept (evicting the least
    /// busy kept file when full, if it was less busy), then starts a new window.
    pub fn tick(&mut self, now: u64) -> Option<Materialized> {
        let mut dropped = 0;
        for (_, subjects) in &mut self.epochs {
            let before = subjects.len();
            subjects.retain(|_, e| e.expires.is_none_or(|at| now < at));
            dropped += before - subjects.len();
        }
        self.streams = self.streams.saturating_sub(dropped);
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
    use autoid_protocol::entropy::Epoch;

    const NOW: u64 = 1_800_000_000;

    fn epoch() -> Epoch {
        Epoch::new("e1", [9u8; 32], 8192, 64).unwrap()
    }

    fn cache(files: u32) -> EntropyCache {
        EntropyCache::new(EntropyCacheConfig {
            files,
            min_proofs_per_second: 3,
            max_streams: 4,
        })
    }

    /// The cache's intervals for a local epoch (always at hand).
    fn local(c: &mut EntropyCache, e: &Epoch, subject: &str, offsets: &[u64]) -> Vec<Interval> {
        c.intervals(KnownEpoch::Local(e), subject, offsets, NOW)
            .unwrap()
    }

    fn offsets() -> Vec<u64> {
        vec![0, 8, 16, 4096, 8184]
    }

    fn hot(c: &mut EntropyCache, e: &Epoch, subject: &str, proofs: u32) {
        for _ in 0..proofs {
            local(c, e, subject, &offsets());
            c.verified(e.id(), subject);
        }
    }

    #[test]
    fn a_materialized_file_reads_what_the_stream_derives() {
        let e = epoch();
        let mut c = cache(2);
        let from_stream = local(&mut c, &e, "alice", &offsets());
        assert_eq!(from_stream, e.stream("alice").intervals_at(&offsets()));
        assert_eq!(c.tick(NOW), None, "not hot yet");
        hot(&mut c, &e, "alice", 3);
        let done = c.tick(NOW).unwrap();
        assert_eq!((done.subject.as_str(), done.bytes), ("alice", 8192));
        assert_eq!(c.files(), 1);
        assert_eq!(local(&mut c, &e, "alice", &offsets()), from_stream);
        let file = e.issue("alice").unwrap();
        assert_eq!(
            local(&mut c, &e, "alice", &[8184])[0],
            file.data()[8184..8192],
            "the last interval"
        );
    }

    #[test]
    fn unverified_use_never_materializes_and_one_file_per_tick() {
        let e = epoch();
        let mut c = cache(4);
        for _ in 0..50 {
            local(&mut c, &e, "mallory", &offsets());
        }
        assert_eq!(c.tick(NOW), None, "proofs that did not verify do not count");
        hot(&mut c, &e, "alice", 5);
        hot(&mut c, &e, "bob", 9);
        assert_eq!(c.tick(NOW).unwrap().subject, "bob", "the busiest first");
        assert_eq!(c.files(), 1, "one per tick");
        assert_eq!(
            c.tick(NOW),
            None,
            "the window restarted: alice's count is gone"
        );
    }

    #[test]
    fn files_stay_bounded_and_the_least_busy_is_evicted() {
        let e = epoch();
        let mut c = cache(1);
        hot(&mut c, &e, "alice", 4);
        c.tick(NOW).unwrap();
        hot(&mut c, &e, "alice", 4);
        hot(&mut c, &e, "bob", 3);
        assert_eq!(c.tick(NOW), None, "bob is less busy than the kept alice");
        hot(&mut c, &e, "alice", 1);
        hot(&mut c, &e, "bob", 6);
        let done = c.tick(NOW).unwrap();
        assert_eq!(done.subject, "bob");
        assert_eq!(done.evicted.as_deref(), Some("alice"));
        assert_eq!(c.files(), 1);
        let mut off = cache(0);
        hot(&mut off, &e, "alice", 10);
        assert_eq!(off.tick(NOW), None, "files = 0 disables materializing");
    }

    #[test]
    fn streams_stay_bounded() {
        let e = epoch();
        let mut c = cache(1);
        for i in 0..20 {
            let subject = format!("s{i}");
            assert_eq!(
                local(&mut c, &e, &subject, &offsets()),
                e.stream(&subject).intervals_at(&offsets())
            );
            assert!(c.streams <= 4);
        }
    }

    #[test]
    fn agent_streams_are_asked_for_kept_until_they_expire_and_bounded() {
        let e = epoch();
        let agent = KnownEpoch::Agent(e.params());
        let mut c = cache(1);
        assert_eq!(
            c.intervals(agent, "alice", &offsets(), NOW),
            None,
            "ask the agent"
        );
        assert_eq!(c.streams(), 0);
        c.insert(
            e.params(),
            "alice",
            e.subject_key("alice").stream(),
            Some(NOW + 60),
        );
        assert_eq!(
            c.intervals(agent, "alice", &offsets(), NOW + 59),
            Some(e.stream("alice").intervals_at(&offsets()))
        );
        // A hot subject's file goes with its stream.
        for _ in 0..3 {
            c.intervals(agent, "alice", &offsets(), NOW);
            c.verified("e1", "alice");
        }
        assert_eq!(c.tick(NOW).unwrap().subject, "alice");
        assert_eq!(c.files(), 1);
        assert_eq!(
            c.intervals(agent, "alice", &offsets(), NOW + 60),
            None,
            "expired"
        );
        assert_eq!((c.streams(), c.files()), (0, 0));
        c.insert(
            e.params(),
            "bob",
            e.subject_key("bob").stream(),
            Some(NOW + 10),
        );
        c.insert(
            e.params(),
            "carol",
            e.subject_key("carol").stream(),
            Some(NOW + 20),
        );
        assert_eq!(c.streams(), 2);
        c.tick(NOW + 10);
        assert_eq!(c.streams(), 1, "the tick drops what expired");
        assert_eq!(c.intervals(agent, "bob", &offsets(), NOW), None);
        assert!(c.intervals(agent, "carol", &offsets(), NOW).is_some());
        for i in 0..20 {
            let s = format!("s{i}");
            c.insert(e.params(), &s, e.subject_key(&s).stream(), Some(NOW + 60));
            assert!(c.streams() <= 4);
        }
    }

    #[test]
    fn a_flood_of_subjects_that_never_verify_does_not_push_out_a_verified_one() {
        let e = epoch();
        let agent = KnownEpoch::Agent(e.params());
        let mut c = cache(1);
        c.insert(
            e.params(),
            "alice",
            e.subject_key("alice").stream(),
            Some(NOW + 60),
        );
        c.verified("e1", "alice");
        // Subjects named by proofs whose digest never checks out (no `verified`).
        for i in 0..100 {
            let s = format!("junk{i}");
            c.insert(e.params(), &s, e.subject_key(&s).stream(), Some(NOW + 60));
            assert_eq!(c.streams(), 4.min(i + 2));
        }
        assert!(
            c.intervals(agent, "alice", &offsets(), NOW).is_some(),
            "alice's stream is still kept"
        );
        assert!(c.intervals(agent, "junk99", &offsets(), NOW).is_some());
        assert_eq!(c.intervals(agent, "junk0", &offsets(), NOW), None);
        // Among verified subjects, the one verified longest ago goes first.
        let mut c = cache(1);
        for s in ["a", "b", "c", "d"] {
            c.insert(e.params(), s, e.subject_key(s).stream(), Some(NOW + 60));
        }
        for s in ["b", "a", "c", "d"] {
            c.verified("e1", s);
        }
        c.insert(e.params(), "e", e.subject_key("e").stream(), Some(NOW + 60));
        assert_eq!(
            c.intervals(agent, "b", &offsets(), NOW),
            None,
            "verified longest ago"
        );
        for s in ["a", "c", "d", "e"] {
            assert!(c.intervals(agent, s, &offsets(), NOW).is_some(), "{s}");
        }
    }

    #[test]
    fn an_unlisted_epochs_parameters_come_with_its_stream_and_go_with_it() {
        let e = Epoch::new("e9", [7u8; 32], 4096, 32).unwrap();
        let mut c = cache(1);
        assert_eq!(c.agent_params("e9", "alice", NOW), None);
        assert!(c.epochs.is_empty(), "a lookup adds no epoch");
        c.insert(
            e.params(),
            "alice",
            e.subject_key("alice").stream(),
            Some(NOW + 30),
        );
        let p = c.agent_params("e9", "alice", NOW + 29).unwrap();
        assert_eq!(
            (p.id(), p.file_size(), p.interval_count()),
            ("e9", 4096, 32)
        );
        assert_eq!(c.agent_params("e9", "bob", NOW), None);
        assert_eq!(c.agent_params("e9", "alice", NOW + 30), None, "expired");
    }
}
