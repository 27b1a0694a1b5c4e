//! The short fuzz run of CI: every target on its seeds and on mutations of
//! them (flips, inserts, deletions, truncations, splices), from a fixed RNG
//! seed so a failure reproduces. Not coverage-guided: the long runs are
//! `cargo fuzz run` (docs/security.md). `HYPHA_FUZZ_ITERS` sets the
//! mutations per target (default 100,000).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] = [0, 1, 0x7f, 0x80, 0xfe, 0xff][rng.random_range(0..6)];
            }
            2 => {
                let i = rng.random_range(0..=len);
                input.insert(i, rng.random());
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(16));
                input.drain(i..i + n);
            }
            4 if len > 0 => input.truncate(rng.random_range(0..len)),
            5 if !seeds.is_empty() => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..=other.len());
                let at = rng.random_range(0..=len);
                input.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                // A large length or count where one is read.
                let i = rng.random_range(0..=len);
                input.splice(i..i, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
            }
        }
    }
}

/// Abort on any panic, as libFuzzer does: a panic that a dependency
/// catches still means a decoder reached a bug on this input.
fn abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{info}");
        std::process::abort();
    }));
}

/// Every input a long run found to break a target.
#[test]
fn regressions_stay_fixed() {
    abort_on_panic();
    for (name, input) in hypha_fuzz::REGRESSIONS {
        let (_, target) = hypha_fuzz::TARGETS.iter().find(|(n, _)| n == name).unwrap();
        target(input);
    }
}

#[test]
fn every_target_survives_its_mutated_seeds() {
    abort_on_panic();
    let iters: usize = std::env::var("HYPHA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for (name, target) in hypha_fuzz::TARGETS {
        let seeds = hypha_fuzz::seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        let mut rng = StdRng::seed_from_u64(0x0068_7970_6861);
        for seed in &seeds {
            target(seed);
        }
        for i in 0..iters {
            let mut input = if i % 10 == 9 {
                (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
            } else {
                seeds[i % seeds.len()].clone()
            };
            mutate(&mut rng, &mut input, &seeds);
            target(&input);
        }
        println!(
            "{name}: {} seeds, {iters} mutations, no failure",
            seeds.len()
        );
    }
}

/// The seeds are real: each decodes (a seed that no longer decodes would
/// leave the target fuzzing only its error path).
#[test]
fn seeds_decode() {
    use hypha_dht::wire as dht;
    use hypha_work::{log, wire as work};
    for s in hypha_fuzz::seeds("dht_request") {
        dht::decode_request(&s).unwrap();
    }
    for s in hypha_fuzz::seeds("dht_response") {
        dht::decode_response(&s).unwrap();
    }
    for s in hypha_fuzz::seeds("work_request") {
        work::decode_request(&s).unwrap();
    }
    for s in hypha_fuzz::seeds("job_record") {
        log::decode_record(&s).unwrap();
    }
    for s in hypha_fuzz::seeds("manifest") {
        hypha_dht::manifest::Manifest::from_stored(&s).unwrap();
    }
}
