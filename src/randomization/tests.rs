use std::collections::BTreeMap;

use proptest::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::*;

fn units(spec: &[(&str, usize)]) -> Vec<Unit> {
    let mut out = Vec::new();
    for (stratum, n) in spec {
        for i in 0..*n {
            out.push(Unit {
                stratum: (*stratum).to_owned(),
                id: format!("{stratum}-{i:04}"),
            });
        }
    }
    out
}

fn counts(draws: &[Draw], arms: usize) -> BTreeMap<String, Vec<usize>> {
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for d in draws {
        out.entry(d.stratum.clone())
            .or_insert_with(|| vec![0; arms])[d.arm] += 1;
    }
    out
}

/// The first outputs of ChaCha20 with an all-zero key on stream 0 are the keystream of RFC 7539's
/// test vector 1 (block 0, all-zero key and nonce): bytes 76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28, read as little-endian
/// words. `next_u64` joins two words, the first as the low half.
#[test]
fn trial_rng_is_plain_chacha20() {
    let mut rng = stream([0; 32], 0);
    assert_eq!(
        rand_core::RngCore::next_u64(&mut rng),
        0x903d_f1a0_ade0_b876
    );
    assert_eq!(
        rand_core::RngCore::next_u64(&mut rng),
        0x28bd_8653_e56a_5d40
    );
}

#[test]
fn derive_key_is_pinned() {
    let key = derive_key("ab", 1, "seed");
    let mut h = Sha256::new();
    h.update(b"ia-rct/randomization/v1\0ab\x001\0seed");
    let expected: [u8; 32] = h.finalize().into();
    assert_eq!(key, expected);
}

/// Golden vector: pins the whole algorithm. `notebooks/randomization_reference.py` reproduces it.
#[test]
fn value_stability() {
    let key = derive_key(&"0".repeat(64), 1, "golden");
    let draws = assign(key, &[1, 1, 2], &units(&[("a", 5), ("b", 3), ("c", 7)])).expect("draws");
    let arms: Vec<usize> = draws.iter().map(|d| d.arm).collect();
    assert_eq!(arms, GOLDEN);
}

const GOLDEN: [usize; 15] = [2, 1, 2, 2, 0, 2, 1, 0, 2, 2, 2, 1, 2, 0, 0];

#[test]
fn below_is_uniform_and_in_range() {
    let mut rng = stream([7; 32], 3);
    let mut hist = [0u32; 7];
    for _ in 0..70_000 {
        let x = below(&mut rng, 7);
        hist[x as usize] += 1;
    }
    let chi2: f64 = hist
        .iter()
        .map(|&o| (f64::from(o) - 10_000.0).powi(2) / 10_000.0)
        .sum();
    let p = ChiSquared::new(6.0).expect("df").sf(chi2);
    assert!(p > 1e-4, "chi2 {chi2}, p {p}");
    assert_eq!(below(&mut rng, 1), 0);
}

#[test]
fn errors_are_typed() {
    let key = [1; 32];
    assert_eq!(assign(key, &[1, 1], &[]), Err(RandomizationError::NoUnits));
    assert_eq!(
        assign(key, &[1, 0], &units(&[("a", 2)])),
        Err(RandomizationError::BadRatios)
    );
    let mut dup = units(&[("a", 2)]);
    dup.push(Unit {
        stratum: "b".into(),
        id: "a-0000".into(),
    });
    assert_eq!(
        assign(key, &[1, 1], &dup),
        Err(RandomizationError::DuplicateUnit("a-0000".into()))
    );
}

#[test]
fn ratios_are_reduced() {
    assert_eq!(reduce_ratios(&[2, 2, 4]), vec![1, 1, 2]);
    assert_eq!(arm_probabilities(&[3, 3, 3, 3]), vec![0.25; 4]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Equal ratios: within every stratum and over the whole trial, arm counts differ by at most one.
    #[test]
    fn equal_ratios_balance_within_strata_and_overall(
        sizes in proptest::collection::vec(1usize..40, 1..12),
        arms in 2usize..6,
        seed in any::<u64>(),
    ) {
        let spec: Vec<(String, usize)> = sizes.iter().enumerate().map(|(i, n)| (format!("s{i:02}"), *n)).collect();
        let spec_ref: Vec<(&str, usize)> = spec.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        let key = derive_key("p", 1, &seed.to_string());
        let draws = assign(key, &vec![1; arms], &units(&spec_ref)).expect("draws");
        let mut overall = vec![0usize; arms];
        for c in counts(&draws, arms).values() {
            prop_assert!(c.iter().max().expect("arms") - c.iter().min().expect("arms") <= 1, "{c:?}");
            for (k, n) in c.iter().enumerate() { overall[k] += n; }
        }
        prop_assert!(overall.iter().max().expect("arms") - overall.iter().min().expect("arms") <= 1, "{overall:?}");
    }

    /// Unequal ratios: each arm's count in a stratum of n is within r_k of n·r_k/R.
    #[test]
    fn unequal_ratios_stay_close_to_their_share(
        sizes in proptest::collection::vec(1usize..60, 1..8),
        ratios in proptest::collection::vec(1u32..4, 2..5),
        seed in any::<u64>(),
    ) {
        let spec: Vec<(String, usize)> = sizes.iter().enumerate().map(|(i, n)| (format!("s{i}"), *n)).collect();
        let spec_ref: Vec<(&str, usize)> = spec.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        let key = derive_key("p", 1, &seed.to_string());
        let draws = assign(key, &ratios, &units(&spec_ref)).expect("draws");
        let reduced = reduce_ratios(&ratios);
        let total: u32 = reduced.iter().sum();
        for (stratum, c) in counts(&draws, ratios.len()) {
            let n: usize = c.iter().sum();
            for (k, got) in c.iter().enumerate() {
                let expected = n as f64 * f64::from(reduced[k]) / f64::from(total);
                prop_assert!((*got as f64 - expected).abs() < f64::from(reduced[k]), "{stratum}: arm {k} got {got}, expected {expected}");
            }
        }
    }

    /// The draws depend on the set of units, not on the order they are given in.
    #[test]
    fn input_order_does_not_matter(seed in any::<u64>(), rotate in 0usize..30) {
        let mut list = units(&[("x", 11), ("y", 7), ("z", 12)]);
        let key = derive_key("p", 2, &seed.to_string());
        let first = assign(key, &[1, 2], &list).expect("draws");
        list.reverse();
        list.rotate_left(rotate);
        prop_assert_eq!(first, assign(key, &[1, 2], &list).expect("draws"));
    }
}

/// Over many seeds, every unit's arm frequencies match its probabilities r_k / R (chi-square per
/// unit, 2000 seeds, a fixed set so the test is deterministic).
#[test]
fn arm_frequencies_match_probabilities_over_many_seeds() {
    let list = units(&[("a", 5), ("b", 9), ("c", 2), ("d", 13)]);
    let ratios = [1, 1, 2];
    let probs = arm_probabilities(&ratios);
    let seeds = 2000;
    let mut freq: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in 0..seeds {
        let key = derive_key("chi", 1, &format!("seed-{s}"));
        for d in assign(key, &ratios, &list).expect("draws") {
            freq.entry(d.id).or_insert_with(|| vec![0.0; 3])[d.arm] += 1.0;
        }
    }
    let chi = ChiSquared::new(2.0).expect("df");
    for (id, observed) in &freq {
        let stat: f64 = observed
            .iter()
            .zip(&probs)
            .map(|(o, p)| (o - p * f64::from(seeds)).powi(2) / (p * f64::from(seeds)))
            .sum();
        let p = chi.sf(stat);
        assert!(
            p > 1e-4 / list.len() as f64,
            "unit {id}: {observed:?}, p = {p}"
        );
    }
    assert_eq!(freq.len(), list.len(), "every unit was drawn in every run");
}
