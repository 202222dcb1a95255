//! Uniform rejection, measured: how long `verify::verify` takes for each rejection reason, and
//! whether the time distributions of two reasons can be told apart (docs/TIMING.md).
//!
//! `cargo bench --release -p autoid-protocol --bench reject_timing`
//!
//! First our own sampler: every reason is timed once per round, in a shuffled order, for
//! `REJECT_TIMING_SAMPLES` rounds (default 20 000) after a warm-up, so drift and other load on
//! the machine fall on every reason alike. It prints median, p10 and p90 per reason and the
//! two-sample Kolmogorov–Smirnov D (with its asymptotic p-value) and Welch's t against the
//! `entropy` reason, as a Markdown table. Then criterion (short settings) for the warm medians.
//! Warm path: the session is already cached, so RSA is out of the picture. Cold path: no cache,
//! every proof pays the RSA-OAEP unwrap (fewer samples: milliseconds each).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, KeyInit};
use autoid_protocol::client::Session;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::header::{Payload, Proof, SessionRef, associated_data};
use autoid_protocol::verify::{Keyring, Limits, NoCache, SessionCache, SessionKey, verify};
use autoid_protocol::{Reject, Request};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{KID, TestRng, epoch, file, gateway_key};
use criterion::Criterion;

const NOW: u64 = 1_800_000_000;
const REQ: Request<'static> = Request {
    method: "GET",
    authority: "api.example.com",
    path: "/v1/payments?limit=10",
};
const OTHER_PATH: Request<'static> = Request {
    path: "/v1/payments?limit=11",
    ..REQ
};

/// The session cache of a warm worker: holds the sessions it was given.
#[derive(Default)]
struct Warm(HashMap<SessionRef, SessionKey>);

impl SessionCache for Warm {
    fn get(&mut self, proof: &Proof) -> Option<SessionKey> {
        self.0.get(&proof.session_ref()).cloned()
    }
    fn put(&mut self, proof: &Proof, session: &SessionKey) {
        self.0.insert(proof.session_ref(), session.clone());
    }
}

/// One measured case: a header, the request it is checked against, the expected outcome.
struct Case {
    name: &'static str,
    header: String,
    request: Request<'static>,
    expect: Result<(), Reject>,
}

/// Seals `payload` under the session key by hand, as `tests/roundtrip.rs` `forge()` does.
fn forge(keyring: &Keyring, valid: &str, payload: &Payload) -> String {
    let proof = Proof::parse(valid).unwrap();
    let key = keyring.unwrap_session(&proof).unwrap().to_bytes();
    let cipher = Aes256Gcm::new_from_slice(&key[..32]).unwrap();
    let aad = associated_data(KID, &REQ).unwrap();
    let iv = [7u8; 12];
    let mut sealed = iv.to_vec();
    sealed.extend(
        cipher
            .encrypt(
                &iv.into(),
                AeadPayload {
                    msg: &payload.to_bytes(),
                    aad: &aad,
                },
            )
            .unwrap(),
    );
    Proof::encode(KID, proof.wrapped().unwrap_or_default(), &sealed)
}

/// Replaces part `index` of a header (2: wrapped, 3: sealed) after editing its bytes.
fn edit_part(header: &str, index: usize, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut parts: Vec<String> = header.split('.').map(str::to_owned).collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[index]).unwrap();
    f(&mut bytes);
    parts[index] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

fn cases(keyring: &Keyring) -> (Vec<Case>, Vec<Case>, Warm) {
    let mut rng = TestRng::new(b"reject-timing");
    let session = Session::open(&gateway_key().public(), NOW, &mut rng).unwrap();
    let alice = file("alice");
    let valid = session.prove(&alice, &REQ, NOW, None, &mut rng).unwrap();
    let stale = session
        .prove(&alice, &REQ, NOW - 120, None, &mut rng)
        .unwrap();
    let future = session
        .prove(&alice, &REQ, NOW + 120, None, &mut rng)
        .unwrap();
    let other_epoch = Epoch::new("e-other", [0x17; 32], 65536, 64)
        .unwrap()
        .issue("alice")
        .unwrap();
    let unknown_epoch = session
        .prove(&other_epoch, &REQ, NOW, None, &mut rng)
        .unwrap();

    let proof = Proof::parse(&valid).unwrap();
    let session_key = keyring.unwrap_session(&proof).unwrap();
    let honest = session_key.open(&proof, &REQ).unwrap();
    let wrong_digest = |at: usize| {
        let mut p = honest.clone();
        p.digest[at] ^= 0x01;
        forge(keyring, &valid, &p)
    };

    // Same length as the valid header, an invalid base64url character at its very end: the
    // latest point a malformed header can fail (both parts are decoded first).
    let mut malformed = valid.clone();
    malformed.pop();
    malformed.push('!');
    let unknown_key = valid.replacen(KID, "other-key", 1);
    let tampered_tag = edit_part(&valid, 3, |b| {
        let last = b.len() - 1;
        b[last] ^= 0x01;
    });

    let case = |name, header: &str, request, expect| Case {
        name,
        header: header.to_owned(),
        request,
        expect,
    };
    let warm = vec![
        case("valid", &valid, REQ, Ok(())),
        case("malformed", &malformed, REQ, Err(Reject::Malformed)),
        case("unknown_key", &unknown_key, REQ, Err(Reject::UnknownKey)),
        case("open (tampered tag)", &tampered_tag, REQ, Err(Reject::Open)),
        case("open (other path)", &valid, OTHER_PATH, Err(Reject::Open)),
        case("stale", &stale, REQ, Err(Reject::Stale)),
        case("future", &future, REQ, Err(Reject::Future)),
        case(
            "unknown_epoch",
            &unknown_epoch,
            REQ,
            Err(Reject::UnknownEpoch),
        ),
        case("entropy", &wrong_digest(0), REQ, Err(Reject::Entropy)),
        case(
            "entropy (last byte)",
            &wrong_digest(31),
            REQ,
            Err(Reject::Entropy),
        ),
    ];

    // Cold path: no cache. A junk wrapped key of the right size fails the OAEP check after the
    // private-key operation; a tampered tag behind a good wrapped key fails after it, at AES-GCM.
    let junk_wrapped = edit_part(&valid, 2, |b| {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31).wrapping_add(7);
        }
        b[0] = 0x00;
    });
    let cold = vec![
        case("valid (cold)", &valid, REQ, Ok(())),
        case(
            "unwrap (cold, junk wrapped key)",
            &junk_wrapped,
            REQ,
            Err(Reject::Unwrap),
        ),
        case(
            "open (cold, tampered tag)",
            &tampered_tag,
            REQ,
            Err(Reject::Open),
        ),
    ];

    let mut cache = Warm::default();
    cache.put(&proof, &session_key);
    (warm, cold, cache)
}

fn run(keyring: &Keyring, case: &Case, cache: &mut dyn SessionCache) -> Result<(), Reject> {
    verify(
        keyring,
        &Limits::default(),
        black_box(&case.header),
        &case.request,
        NOW,
        cache,
    )
    .map(|_| ())
}

/// A small xorshift for the per-round order (no need for a CSPRNG here).
struct Shuffle(u64);

impl Shuffle {
    fn order(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            order.swap(i, (self.0 % (i as u64 + 1)) as usize);
        }
        order
    }
}

/// Times every case once per round, in a shuffled order; returns nanoseconds per case.
fn sample(
    keyring: &Keyring,
    cases: &[Case],
    cache: &mut dyn SessionCache,
    warmup: usize,
    rounds: usize,
) -> Vec<Vec<f64>> {
    let mut shuffle = Shuffle(0x9e37_79b9_7f4a_7c15);
    let mut out = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..warmup + rounds {
        for i in shuffle.order(cases.len()) {
            let start = Instant::now();
            let got = run(keyring, &cases[i], cache);
            let elapsed = start.elapsed();
            assert_eq!(got, cases[i].expect, "{}", cases[i].name);
            if round >= warmup {
                out[i].push(elapsed.as_nanos() as f64);
            }
        }
    }
    for s in &mut out {
        s.sort_by(f64::total_cmp);
    }
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Two-sample Kolmogorov–Smirnov statistic D of two sorted samples and its asymptotic p-value.
fn ks(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    let ne = (n * m) as f64 / (n + m) as f64;
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    if lambda < 0.3 {
        // Q_KS(0.3) > 0.9999; the series below does not converge near zero.
        return (d, 1.0);
    }
    let mut p = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        p += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    (d, p.clamp(0.0, 1.0))
}

/// Welch's t of two samples.
fn welch(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    (ma - mb) / (va / a.len() as f64 + vb / b.len() as f64).sqrt()
}

fn fmt_us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        "< 1e-4".to_owned()
    } else {
        format!("{p:.3}")
    }
}

fn table(title: &str, cases: &[Case], samples: &[Vec<f64>], reference: usize) {
    let refs = &samples[reference];
    println!("\n### {title} ({} samples per reason)\n", samples[0].len());
    println!(
        "| reason | median µs | p10 µs | p90 µs | vs `{}`: KS D | KS p | Welch t |",
        cases[reference].name
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, (case, s)) in cases.iter().zip(samples).enumerate() {
        if i == reference {
            println!(
                "| **{}** | {} | {} | {} | — | — | — |",
                case.name,
                fmt_us(quantile(s, 0.5)),
                fmt_us(quantile(s, 0.1)),
                fmt_us(quantile(s, 0.9)),
            );
            continue;
        }
        let (d, p) = ks(s, refs);
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {:.1} |",
            case.name,
            fmt_us(quantile(s, 0.5)),
            fmt_us(quantile(s, 0.1)),
            fmt_us(quantile(s, 0.9)),
            d,
            fmt_p(p),
            welch(s, refs)
        );
    }
}

fn main() {
    let keyring = Keyring::new(vec![gateway_key()], vec![epoch()]);
    let (warm, cold, mut cache) = cases(&keyring);
    let rounds: usize = std::env::var("REJECT_TIMING_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let cold_rounds = (rounds / 10).max(100);

    let warm_samples = sample(&keyring, &warm, &mut cache, 1000, rounds);
    let entropy = warm.iter().position(|c| c.name == "entropy").unwrap();
    table("Warm path: session cached", &warm, &warm_samples, entropy);
    let cold_samples = sample(&keyring, &cold, &mut NoCache, 20, cold_rounds);
    // The Marvin-style question: does a wrapped key that fails OAEP take a different time from
    // one that unwraps (the proof then failing at AES-GCM, microseconds later)?
    let tampered = cold
        .iter()
        .position(|c| c.name.starts_with("open"))
        .unwrap();
    table(
        "Cold path: RSA-OAEP unwrap on every proof",
        &cold,
        &cold_samples,
        tampered,
    );
    println!();

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let mut group = c.benchmark_group("verify_warm");
    for case in &warm {
        group.bench_function(case.name, |b| {
            b.iter(|| run(&keyring, case, &mut cache));
        });
    }
    group.finish();
    c.final_summary();
}
