//! What sealing costs, against a bare AES-256-GCM encrypt in the same run.
//!
//! ```text
//! cargo bench --bench sealed
//! ```
//!
//! A 1 KiB value. The baseline is AES-256-GCM encrypting the same bytes
//! under one fixed key whose cipher (key schedule) is built once, with a
//! counter nonce — the least any encryption of the value costs. Sealing
//! adds: a random data key and two random nonces from the OS, a key schedule
//! for the data key, wrapping the data key (a second, 32-byte AES-GCM), and
//! the associated data. Opening adds unwrapping and the data key's schedule;
//! `rotate_kek` unwraps and re-wraps and never touches the payload, so it
//! costs the same for any size.
//!
//! Each measurement and the baseline alternate in rounds of a fixed number
//! of calls (timed per round, not per call). The ratio is the median over
//! rounds of each round's time against the baseline's in the same round, so
//! the noise of a shared machine hits both sides; the rates are the median
//! round's. Two reference lines say where sealing's extra time goes: the
//! bare encrypt with a fresh cipher per call (what a per-value data key
//! cannot avoid) and one draw of 56 random bytes from the OS.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use insightpulse::sealed::{self, SealContext, TestKeyRing};
use insightpulse::TenantId;
use rand::RngCore;
use std::hint::black_box;
use std::time::Instant;
use uuid::Uuid;

const VALUE_LEN: usize = 1024;
const ROUNDS: usize = 400;
const PER_ROUND: usize = 500;

/// Calls per second of each round of `f`.
fn rates(rounds: &mut [Vec<f64>], i: usize, mut f: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..PER_ROUND {
        f();
    }
    rounds[i].push(PER_ROUND as f64 / start.elapsed().as_secs_f64());
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let value = vec![0x5au8; VALUE_LEN];
    let ctx = SealContext::new(TenantId::new(), "integrations", Uuid::new_v4(), 1);
    let ring = TestKeyRing::random(&["k1"]);
    let sealed_value = sealed::seal(&ring, &ctx, &value).expect("seal");
    let rotating = TestKeyRing::deterministic(&["k2", "k1"]);
    let old = sealed::seal(&TestKeyRing::deterministic(&["k1"]), &ctx, &value).expect("seal");

    let fixed_key = [7u8; 32];
    let fixed = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&fixed_key));
    let mut counter: u64 = 0;
    let mut nonce = move || {
        counter += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_be_bytes());
        n
    };

    let names = [
        "baseline: bare AES-256-GCM encrypt",
        "seal",
        "open",
        "rotate_kek",
        "reference: bare encrypt, fresh cipher",
        "reference: 56 random bytes from the OS",
    ];
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..=ROUNDS {
        let mut r: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        rates(&mut r, 0, || {
            let n = nonce();
            let payload = Payload {
                msg: &value,
                aad: &[],
            };
            black_box(
                fixed
                    .encrypt(Nonce::from_slice(&n), payload)
                    .expect("encrypt"),
            );
        });
        rates(&mut r, 1, || {
            black_box(sealed::seal(&ring, &ctx, black_box(&value)).expect("seal"));
        });
        rates(&mut r, 2, || {
            black_box(sealed::open(&ring, &ctx, black_box(&sealed_value)).expect("open"));
        });
        rates(&mut r, 3, || {
            black_box(sealed::rotate_kek(&rotating, &ctx, black_box(&old)).expect("rotate"));
        });
        rates(&mut r, 4, || {
            let n = nonce();
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(black_box(&fixed_key)));
            let payload = Payload {
                msg: &value,
                aad: &[],
            };
            black_box(
                cipher
                    .encrypt(Nonce::from_slice(&n), payload)
                    .expect("encrypt"),
            );
        });
        rates(&mut r, 5, || {
            let mut random = [0u8; 56];
            rand::rngs::OsRng.fill_bytes(&mut random);
            black_box(random);
        });
        // Round 0 warms up.
        if round > 0 {
            for (all, one) in rounds.iter_mut().zip(r) {
                all.extend(one);
            }
        }
    }

    println!(
        "sealed values, {VALUE_LEN}-byte value, {ROUNDS} rounds × {PER_ROUND} calls; rates: median round; ratio: median of per-round time / baseline time"
    );
    for (name, r) in names.iter().zip(&rounds) {
        let ops = median(r);
        let ratios: Vec<f64> = rounds[0].iter().zip(r).map(|(b, x)| b / x).collect();
        let (lo, hi) = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "{name:<40} {ops:>9.0} ops/s ({:>5.2} µs/op) | {:.2}× the baseline's time (rounds {lo:.2}–{hi:.2})",
            1e6 / ops,
            median(&ratios),
        );
    }
}
