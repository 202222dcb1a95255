//! Phase 3's junk: new sessions from a client without any subject's entropy file. Each is a
//! well-formed full-form proof with a fresh session wrapped for the gateway's public key (anyone
//! can make one), its payload and possession ticket made from a file of zeros of the epoch's size.
//!
//! The mix (by index, [`kind`]), the attacker's choices against a gateway that checks v3 tickets:
//! - 8 in 10 [`JunkKind::V3Stranger`]: v3, naming a new subject every time, so the filter never
//!   holds its stream and the agent must check the ticket (derive the subject's stream, 64
//!   interval hashes) before it would spend RSA: the most work a v3 junk proof can ask for.
//! - 1 in 10 [`JunkKind::V3Forged`]: v3, naming the real subject, whose stream the filter holds
//!   once the warm arm runs: refused in the filter itself, no callout.
//! - 1 in 10 [`JunkKind::V2`]: v2 (no ticket), naming the real subject: the filter's v1/v2
//!   cold-path budgets, then the agent's small unchecked lane, which spends one RSA unwrap on each
//!   it admits (the unwrap succeeds, the public key being public; the digest then fails).

use anyhow::Result;
use autoid_protocol::Request;
use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::{EntropyFile, EpochParams};
use autoid_protocol::header::Version;
use autoid_protocol::keys::PublicKey;
use rsa::rand_core::Rng as _;
use serde::Serialize;

use crate::proofs::rng;

/// What a junk proof is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum JunkKind {
    /// v3, a new subject: the agent checks the ticket.
    V3Stranger,
    /// v3, the real subject's name: the filter checks the ticket.
    V3Forged,
    /// v2 (no ticket): the small unchecked lane.
    V2,
}

impl JunkKind {
    /// Its name in `summary.json`.
    pub fn label(self) -> &'static str {
        match self {
            JunkKind::V3Stranger => "v3_new_subject",
            JunkKind::V3Forged => "v3_known_subject",
            JunkKind::V2 => "v2",
        }
    }
}

/// The kind of junk proof `i` (the mix above, in tenths).
pub fn kind(i: usize) -> JunkKind {
    match i % 10 {
        0 => JunkKind::V2,
        1 => JunkKind::V3Forged,
        _ => JunkKind::V3Stranger,
    }
}

/// `count` junk proofs for `request` under `epoch`, in the mix of [`kind`], naming `subject`
/// where a kind names the real one, made at `now` on `threads` threads.
pub fn proofs(
    public: &PublicKey,
    epoch: &EpochParams,
    subject: &str,
    request: &Request<'_>,
    count: usize,
    threads: usize,
    now: u64,
) -> Result<Vec<(JunkKind, String)>> {
    let threads = threads.max(1);
    let chunk = count.div_ceil(threads).max(1);
    // The attacker's "entropy": zeros, the epoch's size (calloc'd: untouched pages cost nothing).
    let zeros = |name: &str| {
        EntropyFile::new(
            epoch.id(),
            name,
            epoch.interval_count(),
            vec![0u8; epoch.file_size() as usize],
        )
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<Vec<(JunkKind, String)>> {
                    let mut rng = rng();
                    let forged = zeros(subject);
                    let mut out = Vec::new();
                    for i in (t * chunk)..((t + 1) * chunk).min(count) {
                        let k = kind(i);
                        let session = Session::open(public, now, &mut rng)?;
                        let proof = match k {
                            JunkKind::V3Stranger => {
                                let name = format!("flood-{:016x}", rng.next_u64());
                                session.prove_in(
                                    Version::V3,
                                    Form::Full,
                                    &zeros(&name),
                                    request,
                                    now,
                                    None,
                                    &mut rng,
                                )?
                            }
                            JunkKind::V3Forged => session.prove_in(
                                Version::V3,
                                Form::Full,
                                &forged,
                                request,
                                now,
                                None,
                                &mut rng,
                            )?,
                            JunkKind::V2 => session.prove_in(
                                Version::V2,
                                Form::Full,
                                &forged,
                                request,
                                now,
                                None,
                                &mut rng,
                            )?,
                        };
                        out.push((k, proof));
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for h in handles {
            all.extend(
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("junk thread panicked")))?,
            );
        }
        Ok(all)
    })
}

#[cfg(test)]
mod tests {
    use autoid_protocol::entropy::Epoch;
    use autoid_protocol::header::Proof;
    use autoid_protocol::intervals::Intervals;
    use autoid_protocol::keys::GatewayKey;

    use super::*;
    use crate::proofs::bench_request;

    /// The digest the gateway recomputes for `proof` from the real entropy of the subject its
    /// ticket names, and whether the ticket's tag matches it.
    fn possession(epoch: &Epoch, proof: &Proof) -> Result<(), autoid_protocol::Reject> {
        let ticket = proof.ticket().expect("a v3 full form has a ticket");
        let file = epoch.issue(&ticket.subject).unwrap();
        let intervals = Intervals::derive(
            &ticket.bindings(bench_request()),
            file.data().len() as u64,
            file.interval_count(),
        );
        let digest = intervals.digest_file(file.data());
        ticket.check_tag(&digest, &proof.session_id().unwrap())
    }

    #[test]
    fn the_mix_is_eight_strangers_one_forged_one_v2_in_ten() {
        let kinds: Vec<JunkKind> = (0..1000).map(kind).collect();
        let n = |k| kinds.iter().filter(|&&x| x == k).count();
        assert_eq!(n(JunkKind::V3Stranger), 800);
        assert_eq!(n(JunkKind::V3Forged), 100);
        assert_eq!(n(JunkKind::V2), 100);
    }

    #[test]
    fn junk_parses_as_full_forms_and_fails_possession_where_a_real_proof_passes() {
        let mut rng = rng();
        let key = GatewayKey::from_pem("bench-3072", crate::steps::KEY_3072_PEM).unwrap();
        let epoch = Epoch::new("ep-t", [7u8; 32], 64 * 1024, 64).unwrap();
        let req = bench_request();
        let junk = proofs(&key.public(), epoch.params(), "alice", &req, 20, 2, 1_000).unwrap();
        assert_eq!(junk.len(), 20);
        let mut subjects = std::collections::BTreeSet::new();
        for (i, (k, text)) in junk.iter().enumerate() {
            assert_eq!(*k, kind(i));
            let proof = Proof::parse(text).unwrap();
            assert!(proof.wrapped().is_some(), "{i}: a full form");
            match k {
                JunkKind::V2 => {
                    assert_eq!(proof.version(), Version::V2);
                    assert!(proof.ticket().is_none());
                }
                JunkKind::V3Forged | JunkKind::V3Stranger => {
                    assert_eq!(proof.version(), Version::V3);
                    let ticket = proof.ticket().unwrap();
                    assert_eq!(ticket.epoch, "ep-t");
                    assert_eq!(*k == JunkKind::V3Forged, ticket.subject == "alice");
                    assert!(subjects.insert(ticket.subject.clone()) || ticket.subject == "alice");
                    assert_eq!(
                        possession(&epoch, &proof),
                        Err(autoid_protocol::Reject::Entropy),
                        "{i}: junk must fail possession"
                    );
                }
            }
        }
        // The control: the real file's proof passes the same check.
        let real = Session::open(&key.public(), 1_000, &mut rng)
            .unwrap()
            .prove_in(
                Version::V3,
                Form::Full,
                &epoch.issue("alice").unwrap(),
                &req,
                1_000,
                None,
                &mut rng,
            )
            .unwrap();
        assert_eq!(possession(&epoch, &Proof::parse(&real).unwrap()), Ok(()));
    }
}
