//! The filter's crypto steps, one function each, shared by the native criterion bench
//! (`benches/crypto.rs`) and the wasm module (`crypto-wasm/`), so both time the very same code.
//!
//! Everything is built once by [`Fixture::new`] from the bench keys in `fixtures/`; each step
//! then repeats one piece of the gateway's verification on fixed inputs.

use autoid_protocol::client::Session;
use autoid_protocol::entropy::{EntropyFile, Epoch, SubjectStream};
use autoid_protocol::header::{Payload, Proof};
use autoid_protocol::intervals::{Bindings, Interval, Intervals, offsets, read_file};
use autoid_protocol::keys::GatewayKey;
use autoid_protocol::verify::{
    Keyring, KnownEpoch, Limits, SessionCache, SessionKey, Verified, verify,
};
use autoid_protocol::{Error, Reject, Request};

/// The bench-only gateway keys (PKCS#8 PEM), embedded so the wasm module needs no files.
pub const KEY_2048_PEM: &str = include_str!("../fixtures/bench-2048.key.pem");
/// See [`KEY_2048_PEM`].
pub const KEY_3072_PEM: &str = include_str!("../fixtures/bench-3072.key.pem");

/// The fixed time every proof of the fixture is made and checked at.
pub const NOW: u64 = 1_800_000_000;
const SUBJECT: &str = "alice";
const REQUEST: Request<'static> = Request {
    method: "GET",
    authority: "api.example.com",
    path: "/v1/payments?limit=10",
};

/// One step of the gateway's verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// RSA-OAEP-SHA256 unwrap of a 2048-bit wrapped session key (the cold path).
    RsaUnwrap2048,
    /// The same with a 3072-bit key (the default).
    RsaUnwrap3072,
    /// AES-256-GCM open of a proof (associated data, decrypt, payload grammar).
    AesGcmOpen,
    /// SHA-256 over the intervals: the seed and the 64 offsets, then the digest over 64 × 8
    /// bytes (the interval bytes read from the file, as the client does).
    Sha256Intervals,
    /// Entropy derivation of 64 intervals: HKDF for the subject and the AES-128 key schedule,
    /// then the 64 blocks of its stream (one batch).
    Entropy64,
    /// Split of [`Step::Sha256Intervals`]: the seed and the 64 offsets only.
    Offsets64,
    /// Split of [`Step::Sha256Intervals`]: the digest only, over precomputed interval bytes.
    Digest64,
    /// Split of [`Step::Entropy64`]: HKDF-SHA256 and the AES-128 key schedule for the subject
    /// (what a per-worker stream cache saves on the warm path).
    StreamSetup,
    /// Split of [`Step::Entropy64`]: the 64 blocks in one batch, key schedule done.
    AesBlocks64,
    /// The 64 blocks one `encrypt_block` at a time (what batching saves).
    AesBlocks64Single,
    /// The whole warm verification (`verify` with the session cached): parse, open, time,
    /// intervals, entropy, digest.
    WarmVerify,
    /// The session's cache key: SHA-256 over the wrapped key (what matching the wrapped bytes
    /// in a worker's own map saves on a local hit).
    SessionId,
    /// The 64 intervals read from the subject's materialized file (what the filter does for a
    /// hot subject instead of [`Step::AesBlocks64`]).
    FileReads64,
    /// [`Step::WarmVerify`] with the subject's file materialized: the filter's warm path for a
    /// hot subject.
    WarmVerifyFile,
}

impl Step {
    /// Every step, in report order.
    pub const ALL: [Step; 14] = [
        Step::RsaUnwrap2048,
        Step::RsaUnwrap3072,
        Step::AesGcmOpen,
        Step::Sha256Intervals,
        Step::Entropy64,
        Step::Offsets64,
        Step::Digest64,
        Step::StreamSetup,
        Step::AesBlocks64,
        Step::AesBlocks64Single,
        Step::WarmVerify,
        Step::SessionId,
        Step::FileReads64,
        Step::WarmVerifyFile,
    ];

    /// A stable name (bench ids, JSON keys).
    pub fn name(self) -> &'static str {
        match self {
            Step::RsaUnwrap2048 => "rsa_oaep_unwrap_2048",
            Step::RsaUnwrap3072 => "rsa_oaep_unwrap_3072",
            Step::AesGcmOpen => "aes_256_gcm_open",
            Step::Sha256Intervals => "sha256_intervals_64",
            Step::Entropy64 => "entropy_derive_64",
            Step::Offsets64 => "split_offsets_64",
            Step::Digest64 => "split_digest_64",
            Step::StreamSetup => "split_hkdf_aes_key_schedule",
            Step::AesBlocks64 => "split_aes_blocks_64_batched",
            Step::AesBlocks64Single => "split_aes_blocks_64_one_by_one",
            Step::WarmVerify => "warm_verify",
            Step::SessionId => "split_session_id",
            Step::FileReads64 => "split_file_reads_64",
            Step::WarmVerifyFile => "warm_verify_file_cached",
        }
    }

    /// The number the wasm module's `bench_run` takes.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The step with that number.
    pub fn from_id(id: u32) -> Option<Step> {
        Step::ALL.get(id as usize).copied()
    }
}

/// The inputs of every step, built once.
#[derive(Debug)]
pub struct Fixture {
    keyring: Keyring,
    proof_2048: Proof,
    proof_3072: Proof,
    header_3072: String,
    session: SessionKey,
    payload: Payload,
    epoch: Epoch,
    file: EntropyFile,
    intervals: Intervals,
    blocks: Vec<Interval>,
    stream: SubjectStream,
}

/// Where the warm cache reads intervals from.
enum Source<'a> {
    /// The subject's stream, kept (HKDF and key schedule done).
    Stream(&'a SubjectStream),
    /// The subject's whole file, materialized.
    File(&'a [u8]),
}

/// A session cache that always hits, with the subject's stream or file kept: the filter's warm
/// path.
struct Warm<'a>(&'a SessionKey, Source<'a>);

impl SessionCache for Warm<'_> {
    fn get(&mut self, _: &Proof) -> Option<SessionKey> {
        Some(self.0.clone())
    }
    fn put(&mut self, _: &Proof, _: &SessionKey) {}
    fn intervals(&mut self, _: KnownEpoch<'_>, _: &str, offsets: &[u64]) -> Option<Vec<Interval>> {
        Some(match self.1 {
            Source::Stream(stream) => stream.intervals_at(offsets),
            Source::File(data) => offsets.iter().map(|&o| read_file(data, o)).collect(),
        })
    }
}

impl Fixture {
    /// Builds keys, an epoch, alice's entropy file, one session per key size and one proof each.
    /// `rng` is a CSPRNG (the OS one natively, WASI `random_get` in wasm).
    pub fn new<R: rsa::rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Result<Fixture, Error> {
        let key_2048 = GatewayKey::from_pem("bench-2048", KEY_2048_PEM)?;
        let key_3072 = GatewayKey::from_pem("bench-3072", KEY_3072_PEM)?;
        let epoch = Epoch::new("bench-ep", [7u8; 32], 1 << 20, 64)?;
        let file = epoch.issue(SUBJECT)?;
        let s2048 = Session::open(&key_2048.public(), NOW, rng)?;
        let s3072 = Session::open(&key_3072.public(), NOW, rng)?;
        let header_2048 = s2048.prove(&file, &REQUEST, NOW, None, rng)?;
        let header_3072 = s3072.prove(&file, &REQUEST, NOW, None, rng)?;
        let keyring = Keyring::new(vec![key_2048, key_3072], vec![epoch.clone()]);
        let bad = |_: Reject| Error::Invalid {
            what: "bench fixture",
            value: "proof".to_owned(),
        };
        let proof_2048 = Proof::parse(&header_2048).map_err(bad)?;
        let proof_3072 = Proof::parse(&header_3072).map_err(bad)?;
        let session = keyring.unwrap_session(&proof_3072).map_err(bad)?;
        let payload = session.open(&proof_3072, &REQUEST).map_err(bad)?;
        let stream = epoch.stream(&payload.subject);
        let intervals = Intervals::derive(
            &Bindings {
                subject: &payload.subject,
                epoch: &payload.epoch,
                nonce: &payload.nonce,
                timestamp: payload.timestamp,
                request: REQUEST,
            },
            epoch.file_size(),
            epoch.interval_count(),
        );
        let blocks = stream.intervals_at(intervals.offsets());
        Ok(Fixture {
            keyring,
            proof_2048,
            proof_3072,
            header_3072,
            session,
            payload,
            epoch,
            file,
            intervals,
            blocks,
            stream,
        })
    }

    fn bindings(&self) -> Bindings<'_> {
        Bindings {
            subject: &self.payload.subject,
            epoch: &self.payload.epoch,
            nonce: &self.payload.nonce,
            timestamp: self.payload.timestamp,
            request: REQUEST,
        }
    }

    /// Runs `step` once; returns a byte of its result so the work cannot be optimised away
    /// (and `None` if a step that must succeed failed: a broken fixture).
    pub fn run(&self, step: Step) -> Option<u8> {
        match step {
            Step::RsaUnwrap2048 => self
                .keyring
                .unwrap_session(&self.proof_2048)
                .ok()
                .map(|s| s.to_bytes()[0]),
            Step::RsaUnwrap3072 => self
                .keyring
                .unwrap_session(&self.proof_3072)
                .ok()
                .map(|s| s.to_bytes()[0]),
            Step::AesGcmOpen => self
                .session
                .open(&self.proof_3072, &REQUEST)
                .ok()
                .map(|p| p.digest[0]),
            Step::Sha256Intervals => {
                let b = self.bindings();
                let intervals =
                    Intervals::derive(&b, self.epoch.file_size(), self.epoch.interval_count());
                Some(intervals.digest_file(self.file.data())[0])
            }
            Step::Entropy64 => {
                let stream = self.epoch.stream(&self.payload.subject);
                let blocks = stream.intervals_at(self.intervals.offsets());
                blocks.first().map(|b| b[0])
            }
            Step::Offsets64 => {
                let b = self.bindings();
                let offs = offsets(&b, self.epoch.file_size(), self.epoch.interval_count());
                offs.first().map(|o| *o as u8)
            }
            Step::Digest64 => Some(self.intervals.digest(&self.blocks)[0]),
            Step::StreamSetup => Some(self.epoch.stream(&self.payload.subject).block(0)[0]),
            Step::AesBlocks64 => self
                .stream
                .intervals_at(self.intervals.offsets())
                .first()
                .map(|b| b[0]),
            Step::AesBlocks64Single => {
                let mut acc = 0u8;
                for o in self.intervals.offsets() {
                    acc ^= self.stream.block(o / 16)[0];
                }
                Some(acc)
            }
            Step::SessionId => Some(self.proof_3072.session_id().map_or(0, |id| id[0])),
            Step::FileReads64 => Some(
                self.intervals
                    .offsets()
                    .iter()
                    .map(|&o| read_file(self.file.data(), o))
                    .fold(0u8, |acc, b| acc ^ b[0]),
            ),
            Step::WarmVerify | Step::WarmVerifyFile => {
                let limits = Limits::default();
                let source = if step == Step::WarmVerify {
                    Source::Stream(&self.stream)
                } else {
                    Source::File(self.file.data())
                };
                let mut cache = Warm(&self.session, source);
                verify(
                    &self.keyring,
                    &limits,
                    &self.header_3072,
                    &REQUEST,
                    NOW,
                    &mut cache,
                )
                .ok()
                .map(|v: Verified| v.nonce[0])
            }
        }
    }
}
