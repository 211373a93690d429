//! Stratified (and clustered) complete randomization: a pure function of the protocol hash, the
//! canonical unit list and the seed. `protocols/RANDOMIZATION.md` specifies it step by step, and
//! `notebooks/randomization_reference.py` recomputes it independently.
//!
//! In short, for ratios reduced to integers `r_k` with `R = Σ r_k`:
//! 1. the key is `SHA-256("ia-rct/randomization/v1" 0 protocol_hash 0 wave 0 seed)`;
//! 2. a deck of `R` arm labels (`r_k` of arm `k`) is shuffled with ChaCha20 stream 0;
//! 3. strata are taken in sorted key order; a stratum of `n` units gets `⌊n/R⌋·r_k` labels of each
//!    arm plus the next `n mod R` cards of the deck, dealt cyclically across strata (randtreat's
//!    "global" handling of misfits: remainders are balanced over the whole trial);
//! 4. the stratum's labels are shuffled with ChaCha20 stream `i + 1` (stratum `i`, 0-based) and
//!    given to its units in sorted id order.
//!
//! Every unit's probability of arm `k` is exactly `r_k / R`. With equal ratios, arm counts differ
//! by at most one within every stratum and over the whole trial.

pub mod files;
pub mod plan;
pub mod strata;

use std::collections::BTreeMap;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The generator every draw uses: ChaCha20 (20 rounds), as implemented by `rand_chacha` 0.9, whose
/// output stream is value-stable across versions. One alias so the choice lives in one line.
pub type TrialRng = ChaCha20Rng;

/// The algorithm's name and version, recorded with every assignment.
pub const ALGORITHM_ID: &str = "ia-rct/randomization/v1";

/// One unit to randomize: a firm (its orgnr) or a cluster (its overordnet enhet's orgnr).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unit {
    /// The stratum key.
    pub stratum: String,
    /// The unit's id, unique in the list.
    pub id: String,
}

/// One unit's draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    /// The unit's id.
    pub id: String,
    /// Its stratum.
    pub stratum: String,
    /// The index of its arm in the protocol's arm list.
    pub arm: usize,
}

/// Why units could not be randomized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RandomizationError {
    /// No arms, or an arm with ratio 0.
    #[error("every arm needs a ratio of at least 1")]
    BadRatios,
    /// No units.
    #[error("there are no units to randomize")]
    NoUnits,
    /// A unit id appears twice.
    #[error("unit `{0}` appears twice")]
    DuplicateUnit(String),
}

/// The 32-byte ChaCha20 key for one wave:
/// `SHA-256("ia-rct/randomization/v1" ‖ 0x00 ‖ protocol_hash ‖ 0x00 ‖ wave ‖ 0x00 ‖ seed)`, with the
/// protocol hash as lowercase hex and the wave in decimal. The committed value is `SHA-256(seed)`
/// alone, so publishing the commitment does not reveal the key.
pub fn derive_key(protocol_hash: &str, wave: u32, seed: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"ia-rct/randomization/v1");
    hasher.update([0]);
    hasher.update(protocol_hash.as_bytes());
    hasher.update([0]);
    hasher.update(wave.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(seed.as_bytes());
    hasher.finalize().into()
}

/// A generator on `stream` of the key.
pub fn stream(key: [u8; 32], stream: u64) -> TrialRng {
    let mut rng = TrialRng::from_seed(key);
    rng.set_stream(stream);
    rng
}

/// Checks that a seed can be written into the assignment file's header: 1-256 characters, none of
/// them control characters (a newline would break the header).
///
/// # Errors
/// What is wrong with the seed.
pub fn check_seed(seed: &str) -> Result<(), String> {
    if seed.is_empty() || seed.chars().count() > 256 {
        return Err("the seed must be 1-256 characters".to_owned());
    }
    if seed.chars().any(char::is_control) {
        return Err("the seed must not contain control characters such as newlines".to_owned());
    }
    Ok(())
}

/// A uniform integer in `0..n` (`n >= 1`) by rejection: draw a `u64` `x`, reject it while
/// `x >= ⌊2^64 / n⌋ · n`, and return `x mod n`.
pub fn below(rng: &mut TrialRng, n: u64) -> u64 {
    let n = n.max(1);
    let limit = (1u128 << 64) / u128::from(n) * u128::from(n);
    loop {
        let x = rng.next_u64();
        if u128::from(x) < limit {
            return x % n;
        }
    }
}

/// Fisher-Yates: for `i` from `len - 1` down to 1, swap item `i` with item `below(i + 1)`.
pub fn shuffle<T>(rng: &mut TrialRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        // `i + 1` fits in u64 and the result is at most `i`, so both conversions are exact.
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The ratios divided by their greatest common divisor.
pub fn reduce_ratios(ratios: &[u32]) -> Vec<u32> {
    let g = ratios.iter().copied().fold(0, gcd).max(1);
    ratios.iter().map(|r| r / g).collect()
}

/// Each unit's probability of each arm: `r_k / R` for every unit.
pub fn arm_probabilities(ratios: &[u32]) -> Vec<f64> {
    let reduced = reduce_ratios(ratios);
    let total: u32 = reduced.iter().sum();
    reduced
        .iter()
        .map(|r| f64::from(*r) / f64::from(total.max(1)))
        .collect()
}

/// Randomizes `units` to arms with the given allocation `ratios` (one per arm, in protocol order).
///
/// Deterministic: the same key, ratios and units (in any order) give the same draws, returned
/// sorted by stratum, then id.
///
/// # Errors
/// [`RandomizationError`] for no units, a zero ratio, or a duplicate unit id.
pub fn assign(
    key: [u8; 32],
    ratios: &[u32],
    units: &[Unit],
) -> Result<Vec<Draw>, RandomizationError> {
    if ratios.is_empty() || ratios.contains(&0) {
        return Err(RandomizationError::BadRatios);
    }
    if units.is_empty() {
        return Err(RandomizationError::NoUnits);
    }
    let reduced = reduce_ratios(ratios);
    let total = reduced.iter().map(|r| *r as usize).sum::<usize>();

    let mut strata: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for unit in units {
        strata
            .entry(unit.stratum.as_str())
            .or_default()
            .push(unit.id.as_str());
    }
    let mut seen = std::collections::BTreeSet::new();
    for unit in units {
        if !seen.insert(unit.id.as_str()) {
            return Err(RandomizationError::DuplicateUnit(unit.id.clone()));
        }
    }

    // The deck: r_k labels of arm k, in arm order, shuffled with stream 0.
    let mut deck: Vec<usize> = reduced
        .iter()
        .enumerate()
        .flat_map(|(k, r)| std::iter::repeat_n(k, *r as usize))
        .collect();
    shuffle(&mut stream(key, 0), &mut deck);

    let mut cursor = 0usize;
    let mut draws = Vec::with_capacity(units.len());
    for (i, (stratum, ids)) in strata.iter_mut().enumerate() {
        ids.sort_unstable();
        let n = ids.len();
        let full = n / total;
        let misfits = n % total;
        let mut labels: Vec<usize> = Vec::with_capacity(n);
        for (k, r) in reduced.iter().enumerate() {
            labels.extend(std::iter::repeat_n(k, full * *r as usize));
        }
        for j in 0..misfits {
            labels.push(deck[(cursor + j) % total]);
        }
        cursor = (cursor + misfits) % total;
        shuffle(&mut stream(key, i as u64 + 1), &mut labels);
        draws.extend(ids.iter().zip(labels).map(|(id, arm)| Draw {
            id: (*id).to_owned(),
            stratum: (*stratum).to_owned(),
            arm,
        }));
    }
    Ok(draws)
}

#[cfg(test)]
mod tests;
