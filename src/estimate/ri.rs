//! Randomization inference (`ri`, protocols/ANALYSIS.md §9): the distribution of a statistic over
//! re-draws of the assignment, its p-value, and an interval by test inversion under a constant
//! additive effect, computed exactly from the crossing points rather than on a grid.
//!
//! **The re-draw.** [`RiDesign`] holds one contrast's randomization units (firms, or klynger when
//! clusters were randomized), each with its stratum and its realised arm. A draw assigns, within
//! every stratum, the realised number of treated units uniformly among the stratum's units: the
//! stratified complete design. Attrited firms are units like any other (their assignment is
//! re-drawn), and are left out only when the statistic is computed, as in the estimators.
//! - **Exact**: when the number of distinct assignments K = Π_s C(n_s, t_s) is at most the number
//!   of draws asked for, draw k is the k-th assignment in a mixed-radix order (strata in order, each
//!   stratum's treated set by its lexicographic rank), and every assignment is used once.
//! - **Monte Carlo**: otherwise draw r uses its own ChaCha20 stream r of the key
//!   `SHA-256("ia-rct/ri/v1" ‖ 0x00 ‖ seed)`, so a draw does not depend on which thread ran it or
//!   on how many draws came before. Within a draw, strata are taken in order, and a stratum's
//!   treated units are the first t_s of a partial Fisher-Yates shuffle of its units.
//!
//! **Statistics** ([`RiStatistic`]), over the observed firms:
//! - `dim`: the blocked difference in means of `itt_dim` (weighted means and stratum weights for
//!   `dagsverk`); a stratum without an observed firm of both arms in a draw is left out of that
//!   draw's statistic, as `itt_dim` leaves it out;
//! - `ancova`: the z coefficient of y ~ z + baseline with stratum effects, i.e. `itt_ancova`;
//! - `ancova_t`: that coefficient over its HC2 standard error.
//!
//! Each is fitted once; a draw then costs O(n·K) for K baseline columns. The stratum effects and
//! the baseline are partialled out of y once (Frisch-Waugh-Lovell): with ẽ_y the residual of y on
//! strata and baseline and T_s the (weighted) number of treated observed firms of stratum s, the
//! ANCOVA coefficient of a draw is Σ_{i treated} √w_i ẽ_y,i / (Σ_s T_s(1 − T_s/W_s) − u'G⁻u) with
//! u = Σ_{i treated} √w_i B̃_i, and its HC2 leverage adds ž_i²/ž'ž to the fixed part w_i/W_s +
//! B̃_i'G⁻B̃_i (ž the draw's residualized arm indicator).
//!
//! **p-value**: the share of draws with |T*| ≥ |T_obs| − 1e-9·max(1, |T_obs|) (the tolerance keeps
//! ties that rounding would split). Exact: over all K assignments (the realised one among them).
//! Monte Carlo: over the R draws, with its Monte Carlo SE √(p(1−p)/R), as `coin` and `ri2` report.
//!
//! **Interval** (linear statistics: `dim`, `ancova`): under H0: y_i(1) − y_i(0) = τ for every firm,
//! the re-drawn statistic is S(Z*, y − τZ) = a* − τc* with a* = S(Z*, y) and c* = S(Z*, Z), against
//! the realised a − τ. Each draw's verdict |a* − τc*| ≥ |a − τ| changes at most at the two roots of
//! a quadratic in τ, so the p-value is a step function with at most 2R steps: sorting them gives the
//! accepted set {τ : p(τ) > α} exactly.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::EstimateError;
use super::linalg::{invert_gram, quadratic_roots};
use crate::progress::Progress;
use crate::randomization::{self, TrialRng};

/// The key-derivation label of the Monte Carlo streams.
pub const RI_ALGORITHM_ID: &str = "ia-rct/ri/v1";

/// Leverage at or above 1 − this counts as 1 (as in [`super::ols`]).
const LEVERAGE_ONE: f64 = 1e-10;

/// Draws per progress step (and per cancellation check).
const CHUNK: u64 = 16_384;

/// The statistic whose randomization distribution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RiStatistic {
    /// The blocked difference in means (`itt_dim`'s estimate).
    Dim,
    /// The ANCOVA coefficient (`itt_ancova`'s estimate).
    Ancova,
    /// The ANCOVA coefficient over its HC2 standard error (`itt_ancova`'s t statistic).
    AncovaT,
}

impl RiStatistic {
    /// Every statistic, in output order.
    pub const ALL: [RiStatistic; 3] = [RiStatistic::Dim, RiStatistic::Ancova, RiStatistic::AncovaT];

    /// The name the output uses.
    pub fn name(self) -> &'static str {
        match self {
            RiStatistic::Dim => "dim",
            RiStatistic::Ancova => "ancova",
            RiStatistic::AncovaT => "ancova_t",
        }
    }

    /// Whether the statistic is linear in y with S(Z, Z) = 1, so an interval can be inverted.
    pub fn is_linear(self) -> bool {
        !matches!(self, RiStatistic::AncovaT)
    }

    /// The estimator the statistic belongs to.
    pub fn estimator(self) -> &'static str {
        match self {
            RiStatistic::Dim => "itt_dim",
            RiStatistic::Ancova | RiStatistic::AncovaT => "itt_ancova",
        }
    }
}

/// One contrast's randomization: units, their strata and their realised arm.
#[derive(Debug, Clone)]
pub struct RiDesign {
    /// Realised arm per unit.
    treated: Vec<bool>,
    /// Units of each stratum, in unit order.
    strata: Vec<Vec<u32>>,
    /// Treated units per stratum.
    t: Vec<usize>,
}

/// How the draws were made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum RiMethod {
    /// Every one of the K distinct assignments.
    Exact {
        /// The number of distinct assignments.
        assignments: u64,
    },
    /// R draws from the seed.
    MonteCarlo {
        /// Draws.
        draws: u64,
        /// The seed (ChaCha20 key `SHA-256("ia-rct/ri/v1" ‖ 0 ‖ seed)`, stream = draw index).
        seed: String,
    },
}

impl RiDesign {
    /// A design from each unit's stratum (`0..n_strata`) and realised arm.
    ///
    /// # Errors
    /// Lengths differ or a stratum id is out of range.
    pub fn new(
        stratum: &[u32],
        treated: &[bool],
        n_strata: usize,
    ) -> Result<RiDesign, EstimateError> {
        if stratum.len() != treated.len() {
            return Err(EstimateError::Internal(
                "unit strata and arms differ in length".into(),
            ));
        }
        let mut strata = vec![Vec::new(); n_strata];
        let mut t = vec![0; n_strata];
        for (u, (&s, &z)) in stratum.iter().zip(treated).enumerate() {
            let s = s as usize;
            if s >= n_strata {
                return Err(EstimateError::Internal(format!(
                    "stratum {s} of {n_strata}"
                )));
            }
            strata[s].push(
                u32::try_from(u).map_err(|_| EstimateError::Internal("too many units".into()))?,
            );
            t[s] += usize::from(z);
        }
        Ok(RiDesign {
            treated: treated.to_vec(),
            strata,
            t,
        })
    }

    /// Number of units.
    pub fn n_units(&self) -> usize {
        self.treated.len()
    }

    /// The realised assignment.
    pub fn realised(&self) -> &[bool] {
        &self.treated
    }

    /// K = Π_s C(n_s, t_s), or `None` when it exceeds `u64`.
    pub fn n_assignments(&self) -> Option<u64> {
        let mut k: u64 = 1;
        for (units, &t) in self.strata.iter().zip(&self.t) {
            k = k.checked_mul(binomial(units.len() as u64, t as u64)?)?;
        }
        Some(k)
    }

    /// The k-th of the K assignments (`k < K`), written into `out` (one flag per unit).
    fn exact_draw(&self, mut k: u64, out: &mut [bool]) {
        out.fill(false);
        for (units, &t) in self.strata.iter().zip(&self.t) {
            let n = units.len() as u64;
            let c = binomial(n, t as u64).unwrap_or(1).max(1);
            let mut rank = k % c;
            k /= c;
            // Unrank a t-subset of 0..n in lexicographic order.
            let mut left = t as u64;
            let mut i = 0u64;
            while left > 0 {
                // Subsets that start with i: C(n - i - 1, left - 1).
                let with_i = binomial(n - i - 1, left - 1).unwrap_or(u64::MAX);
                if rank < with_i {
                    out[units[i as usize] as usize] = true;
                    left -= 1;
                } else {
                    rank -= with_i;
                }
                i += 1;
            }
        }
    }

    /// Monte Carlo draw `r` from `key`, written into `out`; `scratch` is reused.
    fn random_draw(&self, key: [u8; 32], r: u64, out: &mut [bool], scratch: &mut Vec<u32>) {
        out.fill(false);
        let mut rng: TrialRng = randomization::stream(key, r);
        for (units, &t) in self.strata.iter().zip(&self.t) {
            scratch.clear();
            scratch.extend_from_slice(units);
            let n = scratch.len();
            for i in 0..t.min(n) {
                // A uniform index in i..n; n − i fits in u64 and the result is below n.
                let j = i + randomization::below(&mut rng, (n - i) as u64) as usize;
                scratch.swap(i, j);
                out[scratch[i] as usize] = true;
            }
        }
    }
}

/// C(n, k) in u64, `None` on overflow.
fn binomial(n: u64, k: u64) -> Option<u64> {
    if k > n {
        return Some(0);
    }
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * u128::from(n - i) / u128::from(i + 1);
        if c > u128::from(u64::MAX) {
            return None;
        }
    }
    u64::try_from(c).ok()
}

/// The Monte Carlo key for a seed.
pub fn ri_key(seed: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RI_ALGORITHM_ID.as_bytes());
    h.update([0]);
    h.update(seed.as_bytes());
    h.finalize().into()
}

/// The observed firms of a contrast, as the statistics read them.
#[derive(Debug, Clone)]
pub struct RiData<'a> {
    /// The unit (index into the design) of each observed firm.
    pub unit: &'a [u32],
    /// Stratum of each observed firm (`0..n_strata`, the design's).
    pub stratum: &'a [u32],
    /// Outcome.
    pub y: &'a [f64],
    /// Weights (`dagsverk`), or `None`.
    pub weights: Option<&'a [f64]>,
    /// Baseline columns for ANCOVA (each one value per observed firm).
    pub covariates: &'a [Vec<f64>],
}

/// A fitted statistic, ready to be evaluated on draws.
struct Prepared {
    kind: RiStatistic,
    n_strata: usize,
    unit: Vec<u32>,
    stratum: Vec<u32>,
    w: Vec<f64>,
    /// For `dim`: y; for ANCOVA: √w ẽ_y.
    y: Vec<f64>,
    /// The realised arm of each observed firm, as 0/1 (`dim`), or √w ẽ_z (ANCOVA).
    z: Vec<f64>,
    /// ANCOVA: B̃ rows (n x k, row-major) and G⁻ (k x k), fixed leverage part, W_s.
    b: Vec<f64>,
    k: usize,
    ginv: Vec<f64>,
    h0: Vec<f64>,
    w_s: Vec<f64>,
    sqw: Vec<f64>,
}

/// One draw's statistic: value on y (a*), and for linear statistics on the realised Z (c*).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    a: f64,
    c: f64,
}

impl Prepared {
    fn new(
        kind: RiStatistic,
        data: &RiData<'_>,
        design: &RiDesign,
    ) -> Result<Prepared, EstimateError> {
        let n = data.y.len();
        if data.unit.len() != n || data.stratum.len() != n {
            return Err(EstimateError::Internal(
                "RI data columns differ in length".into(),
            ));
        }
        if data.unit.iter().any(|&u| u as usize >= design.n_units()) {
            return Err(EstimateError::Internal("RI firm outside the design".into()));
        }
        let n_strata = design.strata.len();
        let w: Vec<f64> = data.weights.map_or_else(|| vec![1.0; n], <[f64]>::to_vec);
        let z_real: Vec<f64> = data
            .unit
            .iter()
            .map(|&u| f64::from(u8::from(design.treated[u as usize])))
            .collect();
        let mut p = Prepared {
            kind,
            n_strata,
            unit: data.unit.to_vec(),
            stratum: data.stratum.to_vec(),
            w,
            y: data.y.to_vec(),
            z: z_real,
            b: Vec::new(),
            k: 0,
            ginv: Vec::new(),
            h0: Vec::new(),
            w_s: Vec::new(),
            sqw: Vec::new(),
        };
        if kind != RiStatistic::Dim {
            p.residualize(data.covariates)?;
        }
        Ok(p)
    }

    /// Partials the strata and baseline out of y and the realised z (ANCOVA).
    fn residualize(&mut self, covariates: &[Vec<f64>]) -> Result<(), EstimateError> {
        let n = self.y.len();
        let mut w_s = vec![0.0; self.n_strata];
        for i in 0..n {
            w_s[self.stratum[i] as usize] += self.w[i];
        }
        let sqw: Vec<f64> = self.w.iter().map(|w| w.sqrt()).collect();
        let demean = |v: &[f64]| -> Vec<f64> {
            let mut mean = vec![0.0; self.n_strata];
            for i in 0..n {
                mean[self.stratum[i] as usize] += self.w[i] * v[i];
            }
            for (m, ws) in mean.iter_mut().zip(&w_s) {
                if *ws > 0.0 {
                    *m /= ws;
                }
            }
            (0..n)
                .map(|i| sqw[i] * (v[i] - mean[self.stratum[i] as usize]))
                .collect()
        };
        let cols: Vec<Vec<f64>> = covariates.iter().map(|c| demean(c)).collect();
        let k_all = cols.len();
        let mut gram = ndarray::Array2::zeros((k_all, k_all));
        for a in 0..k_all {
            for b in 0..=a {
                let s: f64 = (0..n).map(|i| cols[a][i] * cols[b][i]).sum();
                gram[[a, b]] = s;
                gram[[b, a]] = s;
            }
        }
        let gi = invert_gram(&gram);
        let kept: Vec<&Vec<f64>> = gi.kept.iter().map(|&j| &cols[j]).collect();
        let k = kept.len();
        let mut ginv = vec![0.0; k * k];
        for (a, &ja) in gi.kept.iter().enumerate() {
            for (b, &jb) in gi.kept.iter().enumerate() {
                ginv[a * k + b] = gi.inv[[ja, jb]];
            }
        }
        let mut b = vec![0.0; n * k];
        for i in 0..n {
            for (j, col) in kept.iter().enumerate() {
                b[i * k + j] = col[i];
            }
        }
        let resid = |v: Vec<f64>| -> Vec<f64> {
            let bv: Vec<f64> = (0..k)
                .map(|j| (0..n).map(|i| b[i * k + j] * v[i]).sum())
                .collect();
            let g: Vec<f64> = (0..k)
                .map(|a| (0..k).map(|c| ginv[a * k + c] * bv[c]).sum())
                .collect();
            (0..n)
                .map(|i| v[i] - (0..k).map(|j| b[i * k + j] * g[j]).sum::<f64>())
                .collect()
        };
        let ey = resid(demean(&self.y));
        let ez = resid(demean(&self.z));
        let h0: Vec<f64> = (0..n)
            .map(|i| {
                let s = self.stratum[i] as usize;
                let fe = if w_s[s] > 0.0 {
                    self.w[i] / w_s[s]
                } else {
                    0.0
                };
                let row = &b[i * k..(i + 1) * k];
                let mut q = 0.0;
                for a in 0..k {
                    for c in 0..k {
                        q += row[a] * ginv[a * k + c] * row[c];
                    }
                }
                fe + q
            })
            .collect();
        self.y = ey;
        self.z = ez;
        self.b = b;
        self.k = k;
        self.ginv = ginv;
        self.h0 = h0;
        self.w_s = w_s;
        self.sqw = sqw;
        Ok(())
    }

    /// The statistic under assignment `z` (one flag per unit); NaN when it is undefined.
    fn eval(&self, z: &[bool], scratch: &mut Scratch) -> Value {
        match self.kind {
            RiStatistic::Dim => self.dim(z, scratch),
            RiStatistic::Ancova | RiStatistic::AncovaT => self.ancova(z, scratch),
        }
    }

    fn dim(&self, z: &[bool], s: &mut Scratch) -> Value {
        // Per stratum and arm: Σw, Σwy, Σw·z_realised.
        s.sums.clear();
        s.sums.resize(self.n_strata * 6, 0.0);
        for i in 0..self.y.len() {
            let arm = usize::from(z[self.unit[i] as usize]);
            let o = self.stratum[i] as usize * 6 + arm * 3;
            let w = self.w[i];
            s.sums[o] += w;
            s.sums[o + 1] += w * self.y[i];
            s.sums[o + 2] += w * self.z[i];
        }
        let (mut num_a, mut num_c, mut den) = (0.0, 0.0, 0.0);
        for j in 0..self.n_strata {
            let b = &s.sums[j * 6..j * 6 + 6];
            if b[0] > 0.0 && b[3] > 0.0 {
                let size = b[0] + b[3];
                num_a += size * (b[4] / b[3] - b[1] / b[0]);
                num_c += size * (b[5] / b[3] - b[2] / b[0]);
                den += size;
            }
        }
        if den > 0.0 {
            Value {
                a: num_a / den,
                c: num_c / den,
            }
        } else {
            Value {
                a: f64::NAN,
                c: f64::NAN,
            }
        }
    }

    fn ancova(&self, z: &[bool], s: &mut Scratch) -> Value {
        let (n, k) = (self.y.len(), self.k);
        s.sums.clear();
        s.sums.resize(self.n_strata, 0.0);
        s.u.clear();
        s.u.resize(k, 0.0);
        let (mut num_a, mut num_c) = (0.0, 0.0);
        for i in 0..n {
            if z[self.unit[i] as usize] {
                let sq = self.sqw[i];
                s.sums[self.stratum[i] as usize] += self.w[i];
                num_a += sq * self.y[i];
                num_c += sq * self.z[i];
                for j in 0..k {
                    s.u[j] += sq * self.b[i * k + j];
                }
            }
        }
        // ž'ž = z̃'z̃ − u'G⁻u, z̃'z̃ = Σ_s T_s (1 − T_s/W_s).
        let mut zz = 0.0;
        for (t, ws) in s.sums.iter().zip(&self.w_s) {
            if *ws > 0.0 {
                zz += t * (1.0 - t / ws);
            }
        }
        s.g.clear();
        s.g.resize(k, 0.0);
        for a in 0..k {
            for c in 0..k {
                s.g[a] += self.ginv[a * k + c] * s.u[c];
            }
        }
        let ugu: f64 = (0..k).map(|j| s.u[j] * s.g[j]).sum();
        let den = zz - ugu;
        if den <= 1e-12 * zz.max(f64::MIN_POSITIVE) || !den.is_finite() {
            return Value {
                a: f64::NAN,
                c: f64::NAN,
            };
        }
        let beta = num_a / den;
        let c = num_c / den;
        if self.kind == RiStatistic::Ancova {
            return Value { a: beta, c };
        }
        // HC2: ž_i = √w_i (z_i − T_s/W_s) − B̃_i'G⁻u, e_i = ẽ_y,i − β ž_i, ψ_i = ž_i / den.
        let mut meat = 0.0;
        for i in 0..n {
            let st = self.stratum[i] as usize;
            let zi = f64::from(u8::from(z[self.unit[i] as usize]));
            let mean = if self.w_s[st] > 0.0 {
                s.sums[st] / self.w_s[st]
            } else {
                0.0
            };
            let mut zc = self.sqw[i] * (zi - mean);
            for j in 0..k {
                zc -= self.b[i * k + j] * s.g[j];
            }
            let h = self.h0[i] + zc * zc / den;
            let one_minus_h = 1.0 - h;
            if one_minus_h <= LEVERAGE_ONE {
                continue;
            }
            let e = self.y[i] - beta * zc;
            let a = zc * e;
            meat += a * a / one_minus_h;
        }
        let se = meat.sqrt() / den;
        Value {
            a: beta / se,
            c: f64::NAN,
        }
    }
}

#[derive(Default)]
struct Scratch {
    z: Vec<bool>,
    order: Vec<u32>,
    sums: Vec<f64>,
    u: Vec<f64>,
    g: Vec<f64>,
}

/// An interval (or a set of intervals) by test inversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiInterval {
    /// Infimum of the accepted set (`None`: unbounded below).
    pub low: Option<f64>,
    /// Supremum (`None`: unbounded above).
    pub high: Option<f64>,
    /// Whether the accepted set is one interval.
    pub connected: bool,
    /// The accepted intervals, in order (`None` end points are infinite).
    pub pieces: Vec<(Option<f64>, Option<f64>)>,
    /// Confidence level.
    pub conf_level: f64,
}

/// The randomization distribution of one statistic and what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiResult {
    /// `dim`, `ancova` or `ancova_t`.
    pub statistic: RiStatistic,
    /// The estimator the statistic belongs to.
    pub estimator: String,
    /// The statistic at the realised assignment.
    pub observed: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Its Monte Carlo standard error (0 when exact).
    pub mc_std_error: f64,
    /// Draws at least as extreme as the realised one.
    pub n_extreme: u64,
    /// Draws used.
    pub n_draws: u64,
    /// Draws where the statistic was undefined (not counted in `n_draws`).
    pub n_undefined: u64,
    /// How the draws were made.
    #[serde(flatten)]
    pub method: RiMethod,
    /// The interval under a constant additive effect (linear statistics only).
    pub interval: Option<RiInterval>,
}

/// Options of a randomization-inference run.
#[derive(Debug, Clone)]
pub struct RiOptions {
    /// Draws asked for: exact enumeration when K is at most this.
    pub draws: u64,
    /// The Monte Carlo seed.
    pub seed: String,
    /// Confidence level of the interval.
    pub conf_level: f64,
}

/// Whether |t| is at least as extreme as |t_obs| (with the tie tolerance).
fn extreme(t: f64, t_obs: f64) -> bool {
    t.abs() >= t_obs.abs() - 1e-9 * t_obs.abs().max(1.0)
}

/// Runs the draws for several statistics at once (each draw is made once and every statistic is
/// evaluated on it), advancing `progress` one step per draw (the caller names the stage).
///
/// # Errors
/// A statistic is undefined at the realised assignment, or the run was cancelled.
pub fn randomization_inference(
    design: &RiDesign,
    data: &RiData<'_>,
    statistics: &[RiStatistic],
    opts: &RiOptions,
    progress: &Progress,
) -> Result<Vec<RiResult>, EstimateError> {
    let prepared: Vec<Prepared> = statistics
        .iter()
        .map(|&s| Prepared::new(s, data, design))
        .collect::<Result<_, _>>()?;
    let mut scratch = Scratch::default();
    let observed: Vec<Value> = prepared
        .iter()
        .map(|p| p.eval(design.realised(), &mut scratch))
        .collect();
    for (p, v) in prepared.iter().zip(&observed) {
        if !v.a.is_finite() {
            return Err(EstimateError::Singular(format!(
                "ri: the {} statistic is undefined at the realised assignment",
                p.kind.name()
            )));
        }
    }
    let k = design.n_assignments();
    let (method, n) = match k {
        Some(k) if k <= opts.draws => (RiMethod::Exact { assignments: k }, k),
        _ => (
            RiMethod::MonteCarlo {
                draws: opts.draws,
                seed: opts.seed.clone(),
            },
            opts.draws,
        ),
    };
    if n == 0 {
        return Err(EstimateError::InvalidData(
            "ri needs at least one draw".into(),
        ));
    }
    let key = ri_key(&opts.seed);
    let exact = matches!(method, RiMethod::Exact { .. });
    let mut values: Vec<Vec<Value>> =
        vec![Vec::with_capacity(usize::try_from(n).unwrap_or(0)); prepared.len()];
    let mut start = 0u64;
    while start < n {
        progress.check().map_err(|_| EstimateError::Cancelled)?;
        let end = (start + CHUNK).min(n);
        let chunk: Vec<Vec<Value>> = (start..end)
            .into_par_iter()
            .map_init(Scratch::default, |s, r| {
                let mut z = std::mem::take(&mut s.z);
                z.resize(design.n_units(), false);
                if exact {
                    design.exact_draw(r, &mut z);
                } else {
                    let mut order = std::mem::take(&mut s.order);
                    design.random_draw(key, r, &mut z, &mut order);
                    s.order = order;
                }
                let out = prepared.iter().map(|p| p.eval(&z, s)).collect();
                s.z = z;
                out
            })
            .collect();
        for draw in chunk {
            for (column, v) in values.iter_mut().zip(draw) {
                column.push(v);
            }
        }
        progress.advance(end - start);
        start = end;
    }
    let alpha = 1.0 - opts.conf_level;
    Ok(prepared
        .iter()
        .zip(&observed)
        .zip(&values)
        .map(|((p, obs), vals)| {
            let defined: Vec<Value> = vals.iter().copied().filter(|v| v.a.is_finite()).collect();
            let n_draws = defined.len() as u64;
            let n_extreme = defined.iter().filter(|v| extreme(v.a, obs.a)).count() as u64;
            let p_value = if n_draws > 0 {
                n_extreme as f64 / n_draws as f64
            } else {
                f64::NAN
            };
            let mc_std_error = if exact || n_draws == 0 {
                0.0
            } else {
                (p_value * (1.0 - p_value) / n_draws as f64).sqrt()
            };
            let interval = p
                .kind
                .is_linear()
                .then(|| invert(*obs, &defined, alpha, opts.conf_level));
            RiResult {
                statistic: p.kind,
                estimator: p.kind.estimator().into(),
                observed: obs.a,
                p_value,
                mc_std_error,
                n_extreme,
                n_draws,
                n_undefined: vals.len() as u64 - n_draws,
                method: method.clone(),
                interval,
            }
        })
        .collect())
}

/// The accepted set {τ : p(τ) > α} from each draw's (a*, c*) and the realised (a, c).
fn invert(obs: Value, draws: &[Value], alpha: f64, conf_level: f64) -> RiInterval {
    let r = draws.len();
    // count(τ) = Σ_r 1{f_r(τ) ≥ 0}, f_r(τ) = (a_r − τc_r)² − (a − τc)². Each draw adds +1 or −1 at
    // its crossing points; `base` is the count as τ → −∞.
    let mut events: Vec<(f64, i64)> = Vec::with_capacity(2 * r);
    let mut base: i64 = 0;
    let same = |v: &Value| {
        (v.a - obs.a).abs() <= 1e-9 * obs.a.abs().max(1.0)
            && (v.c - obs.c).abs() <= 1e-12 * obs.c.abs().max(1.0)
    };
    for v in draws {
        if same(v) {
            base += 1;
            continue;
        }
        let qa = v.c * v.c - obs.c * obs.c;
        let qb = v.a * v.c - obs.a * obs.c;
        let qc = v.a * v.a - obs.a * obs.a;
        let f = |t: f64| qa * t * t - 2.0 * qb * t + qc;
        let mut roots = quadratic_roots(qa, qb, qc);
        roots.sort_by(f64::total_cmp);
        roots.dedup();
        // The verdict on each region, by evaluating f inside it.
        let probe = |lo: Option<f64>, hi: Option<f64>| -> bool {
            let t = match (lo, hi) {
                (None, None) => 0.0,
                (None, Some(h)) => h - h.abs().max(1.0),
                (Some(l), None) => l + l.abs().max(1.0),
                (Some(l), Some(h)) => 0.5 * (l + h),
            };
            f(t) >= 0.0
        };
        let mut bounds: Vec<Option<f64>> = vec![None];
        bounds.extend(roots.iter().map(|&x| Some(x)));
        bounds.push(None);
        let states: Vec<bool> = bounds.windows(2).map(|w| probe(w[0], w[1])).collect();
        base += i64::from(states[0]);
        for (j, &x) in roots.iter().enumerate() {
            let delta = i64::from(states[j + 1]) - i64::from(states[j]);
            if delta != 0 {
                events.push((x, delta));
            }
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let threshold = alpha * r as f64;
    let accepted = |count: i64| count as f64 > threshold;
    let mut pieces: Vec<(Option<f64>, Option<f64>)> = Vec::new();
    let mut count = base;
    let mut open: Option<Option<f64>> = accepted(count).then_some(None);
    let mut i = 0;
    while i < events.len() {
        let x = events[i].0;
        while i < events.len() && events[i].0 == x {
            count += events[i].1;
            i += 1;
        }
        match (open, accepted(count)) {
            (None, true) => open = Some(Some(x)),
            (Some(lo), false) => {
                pieces.push((lo, Some(x)));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(lo) = open {
        pieces.push((lo, None));
    }
    let low = pieces.first().and_then(|p| p.0);
    let high = pieces.last().and_then(|p| p.1);
    RiInterval {
        low,
        high,
        connected: pieces.len() == 1,
        pieces,
        conf_level,
    }
}

/// Dense ids `0..k` for a list of labels, in order of first appearance, and k.
pub fn dense_ids<T: Ord + Clone>(ids: &[T]) -> (Vec<u32>, usize) {
    let mut map: BTreeMap<T, u32> = BTreeMap::new();
    for id in ids {
        let next = map.len() as u32;
        map.entry(id.clone()).or_insert(next);
    }
    (ids.iter().map(|id| map[id]).collect(), map.len())
}

/// What the output says about the re-draw when it starts from an assignment file.
pub const PROCEDURE_FROM_ASSIGNMENT: &str = "stratified complete randomization re-drawn from the \
assignment: within each stratum, the realised number of treated units (firms, or klynger where \
clusters were randomized) among the stratum's units of the two arms, attrited firms included; the \
statistic is computed on the firms with post data";

/// One contrast's inputs to [`randomization_inference`], owned: every firm of the arm and the
/// control (attrited ones too) as design units, the observed ones as data.
#[derive(Debug, Clone)]
pub struct RiContrast {
    /// The re-draw.
    pub design: RiDesign,
    /// Whether units are klynger.
    pub clustered: bool,
    /// Firms of the two arms, attrited included.
    pub n_firms: usize,
    unit: Vec<u32>,
    stratum: Vec<u32>,
    y: Vec<f64>,
    w: Option<Vec<f64>>,
    covariates: Vec<Vec<f64>>,
}

impl RiContrast {
    /// The contrast of `arm` against `control` (dense arm ids of `data.ids`).
    ///
    /// # Errors
    /// An internal inconsistency of the design.
    pub fn new(
        data: &super::StudyData,
        arm: u32,
        control: u32,
        weighted: bool,
    ) -> Result<RiContrast, EstimateError> {
        let ids = &data.ids;
        let firms: Vec<usize> = (0..data.units.len())
            .filter(|&i| ids.arm[i] == arm || ids.arm[i] == control)
            .collect();
        // Randomization units: the klynge where clusters were randomized, else the firm.
        let keys: Vec<u32> = match &ids.cluster {
            Some(cl) => firms.iter().map(|&i| cl[i]).collect(),
            None => firms.iter().map(|&i| i as u32).collect(),
        };
        let (unit_of_firm, n_units) = dense_ids(&keys);
        let mut unit_stratum = vec![0u32; n_units];
        let mut unit_treated = vec![false; n_units];
        for (k, &i) in firms.iter().enumerate() {
            let u = unit_of_firm[k] as usize;
            unit_stratum[u] = ids.stratum[i];
            unit_treated[u] = ids.arm[i] == arm;
        }
        let design = RiDesign::new(&unit_stratum, &unit_treated, ids.strata.len())?;
        let observed: Vec<usize> = (0..firms.len())
            .filter(|&k| data.summaries[firms[k]].post_rate.is_some())
            .collect();
        // The covariates of `itt_ancova` (one rule for when b_missing enters).
        let covariates = data
            .baseline_columns(observed.iter().map(|&k| firms[k]))
            .into_iter()
            .map(|(_, column)| column)
            .collect();
        Ok(RiContrast {
            design,
            clustered: ids.cluster.is_some(),
            n_firms: firms.len(),
            unit: observed.iter().map(|&k| unit_of_firm[k]).collect(),
            stratum: observed.iter().map(|&k| ids.stratum[firms[k]]).collect(),
            y: observed
                .iter()
                .map(|&k| data.summaries[firms[k]].post_rate.unwrap_or(f64::NAN))
                .collect(),
            w: weighted.then(|| {
                observed
                    .iter()
                    .map(|&k| data.summaries[firms[k]].post_mulige)
                    .collect()
            }),
            covariates,
        })
    }

    /// Firms with post data.
    pub fn n_observed(&self) -> usize {
        self.y.len()
    }

    /// The observed firms as the statistics read them.
    pub fn data(&self) -> RiData<'_> {
        RiData {
            unit: &self.unit,
            stratum: &self.stratum,
            y: &self.y,
            weights: self.w.as_deref(),
            covariates: &self.covariates,
        }
    }

    /// Draws a run of `draws` costs: K when it enumerates, else `draws`.
    pub fn n_draws(&self, draws: u64) -> u64 {
        match self.design.n_assignments() {
            Some(k) if k <= draws => k,
            _ => draws,
        }
    }
}

/// One row of the `ri` output: a statistic of one contrast and weighting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiRow {
    /// Outcome.
    pub outcome: String,
    /// The arm.
    pub arm: String,
    /// The control arm.
    pub versus: String,
    /// `firm` or `dagsverk`.
    pub weights: String,
    /// How the assignments were re-drawn.
    pub procedure: String,
    /// Randomization units (firms, or klynger) of the two arms.
    pub n_units: usize,
    /// Firms of the two arms, attrited included.
    pub n_firms: usize,
    /// Firms with post data (the statistic's sample).
    pub n_observed: usize,
    /// The distribution and what follows from it.
    #[serde(flatten)]
    pub result: RiResult,
    /// Statistics vintage.
    pub vintage: Option<i64>,
    /// Protocol hash.
    pub protocol_hash: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ndarray::{Array1, Array2};

    use super::*;
    use crate::estimate::dim::{DimInput, difference_in_means};
    use crate::estimate::ols::{Problem, fit};

    /// A small design: strata of 6, 5 and 4 units with 3, 2 and 2 treated (K = 20·10·6 = 1200),
    /// one firm per unit, two attrited, heavy-tailed weights and a baseline.
    struct Toy {
        design: RiDesign,
        unit: Vec<u32>,
        stratum: Vec<u32>,
        y: Vec<f64>,
        w: Vec<f64>,
        cov: Vec<Vec<f64>>,
    }

    fn toy() -> Toy {
        let sizes = [(6, 3), (5, 2), (4, 2)];
        let mut unit_stratum = Vec::new();
        let mut treated = Vec::new();
        for (s, &(n, t)) in sizes.iter().enumerate() {
            for i in 0..n {
                unit_stratum.push(s as u32);
                treated.push(i % 2 == 0 && i / 2 < t);
            }
        }
        let design = RiDesign::new(&unit_stratum, &treated, sizes.len()).expect("design");
        let attrited = [4usize, 9];
        let mut d = Toy {
            design,
            unit: Vec::new(),
            stratum: Vec::new(),
            y: Vec::new(),
            w: Vec::new(),
            cov: vec![Vec::new(), Vec::new()],
        };
        for u in 0..unit_stratum.len() {
            if attrited.contains(&u) {
                continue;
            }
            let x = u as f64;
            d.unit.push(u as u32);
            d.stratum.push(unit_stratum[u]);
            d.y.push(5.0 + (x * 1.7).sin() * 3.0 + if treated[u] { -1.0 } else { 0.0 });
            d.w.push((x * 0.9).cos().exp() * 10.0);
            d.cov[0].push(4.0 + (x * 0.7).cos() * 2.0);
            d.cov[1].push(f64::from(u8::from(u % 5 == 0)));
        }
        d
    }

    fn data<'a>(t: &'a Toy, weighted: bool) -> RiData<'a> {
        RiData {
            unit: &t.unit,
            stratum: &t.stratum,
            y: &t.y,
            weights: weighted.then_some(t.w.as_slice()),
            covariates: &t.cov,
        }
    }

    fn all_draws(design: &RiDesign) -> Vec<Vec<bool>> {
        let k = design.n_assignments().expect("K");
        (0..k)
            .map(|r| {
                let mut z = vec![false; design.n_units()];
                design.exact_draw(r, &mut z);
                z
            })
            .collect()
    }

    #[test]
    fn exact_enumeration_visits_every_assignment_once() {
        let t = toy();
        assert_eq!(t.design.n_assignments(), Some(1200));
        let draws = all_draws(&t.design);
        let distinct: BTreeSet<Vec<bool>> = draws.iter().cloned().collect();
        assert_eq!(distinct.len(), 1200);
        assert!(distinct.contains(t.design.realised()));
        for z in &draws {
            for (units, &k) in t.design.strata.iter().zip(&t.design.t) {
                assert_eq!(units.iter().filter(|&&u| z[u as usize]).count(), k);
            }
        }
    }

    /// The O(n) statistics equal the estimators refitted from scratch on every assignment.
    #[test]
    fn the_shortcut_statistics_equal_a_full_refit_on_every_draw() {
        let t = toy();
        for weighted in [false, true] {
            let d = data(&t, weighted);
            let prepared: Vec<Prepared> = RiStatistic::ALL
                .iter()
                .map(|&s| Prepared::new(s, &d, &t.design).expect("prepared"))
                .collect();
            let mut scratch = Scratch::default();
            for z in all_draws(&t.design).iter().step_by(7) {
                let zf: Vec<bool> = t.unit.iter().map(|&u| z[u as usize]).collect();
                let yv = Array1::from(t.y.clone());
                let wv = Array1::from(t.w.clone());
                let dim = difference_in_means(DimInput {
                    y: yv.view(),
                    treated: &zf,
                    block: &t.stratum,
                    n_blocks: 3,
                    weights: weighted.then(|| wv.view()),
                    clusters: None,
                });
                let got = prepared[0].eval(z, &mut scratch).a;
                match dim {
                    Ok(r) => assert!((got - r.estimate).abs() < 1e-12, "{got} {}", r.estimate),
                    Err(_) => assert!(got.is_nan() || got.is_finite()),
                }
                let x = Array2::from_shape_fn((t.y.len(), 3), |(i, j)| match j {
                    0 => f64::from(u8::from(zf[i])),
                    j => t.cov[j - 1][i],
                });
                let Ok(f) = fit(Problem {
                    y: yv.view(),
                    x: x.view(),
                    group: &t.stratum,
                    n_groups: 3,
                    weights: weighted.then(|| wv.view()),
                }) else {
                    continue;
                };
                let mut e0 = Array1::zeros(3);
                e0[0] = 1.0;
                let (v, _) = f.hc2(&f.influence(&[], e0.view()));
                let coef = prepared[1].eval(z, &mut scratch).a;
                let tstat = prepared[2].eval(z, &mut scratch).a;
                assert!(
                    (coef - f.beta[0]).abs() < 1e-10 * f.beta[0].abs().max(1.0),
                    "{coef} {}",
                    f.beta[0]
                );
                let want = f.beta[0] / v.sqrt();
                assert!(
                    (tstat - want).abs() < 1e-9 * want.abs().max(1.0),
                    "{tstat} {want}"
                );
            }
        }
    }

    fn opts(draws: u64) -> RiOptions {
        RiOptions {
            draws,
            seed: "ri-test".into(),
            conf_level: 0.95,
        }
    }

    #[test]
    fn monte_carlo_gives_the_same_answer_on_one_and_two_threads() {
        let t = toy();
        let d = data(&t, true);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| {
                    randomization_inference(
                        &t.design,
                        &d,
                        &RiStatistic::ALL,
                        &opts(999),
                        &Progress::new(),
                    )
                    .expect("ri")
                })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one, two);
        assert!(matches!(
            one[0].method,
            RiMethod::MonteCarlo { draws: 999, .. }
        ));
        assert!(one[0].mc_std_error > 0.0);
    }

    /// The first draws of the Monte Carlo stream, pinned: a change of generator, key or shuffle
    /// shows here.
    #[test]
    fn the_monte_carlo_draws_are_pinned() {
        let t = toy();
        let mut z = vec![false; t.design.n_units()];
        let mut scratch = Vec::new();
        let key = ri_key("golden");
        let bits: Vec<String> = (0..3)
            .map(|r| {
                t.design.random_draw(key, r, &mut z, &mut scratch);
                z.iter().map(|&b| if b { '1' } else { '0' }).collect()
            })
            .collect();
        assert_eq!(
            bits,
            ["110001000110011", "010011010101001", "001110010011001"]
        );
    }

    /// Brute force: p(τ) at many τ against the exact accepted set.
    #[test]
    fn the_interval_is_where_the_p_value_exceeds_alpha() {
        let t = toy();
        for weighted in [false, true] {
            let d = data(&t, weighted);
            for stat in [RiStatistic::Dim, RiStatistic::Ancova] {
                let p = Prepared::new(stat, &d, &t.design).expect("prepared");
                let mut s = Scratch::default();
                let obs = p.eval(t.design.realised(), &mut s);
                let draws: Vec<Value> = all_draws(&t.design)
                    .iter()
                    .map(|z| p.eval(z, &mut s))
                    .collect();
                let set = invert(obs, &draws, 0.05, 0.95);
                let (lo, hi) = (set.low.expect("bounded"), set.high.expect("bounded"));
                assert!(lo < obs.a && obs.a < hi, "{set:?} {}", obs.a);
                let p_at = |tau: f64| {
                    let o = obs.a - tau * obs.c;
                    draws
                        .iter()
                        .filter(|v| (v.a - tau * v.c).abs() >= o.abs())
                        .count() as f64
                        / draws.len() as f64
                };
                let width = hi - lo;
                for k in 0..=400 {
                    let tau = lo - width + 3.0 * width * f64::from(k) / 400.0;
                    let near = set
                        .pieces
                        .iter()
                        .flat_map(|p| [p.0, p.1])
                        .flatten()
                        .any(|e| (e - tau).abs() < 1e-9 * width);
                    if near {
                        continue;
                    }
                    let inside = set
                        .pieces
                        .iter()
                        .any(|p| p.0.is_none_or(|l| l < tau) && p.1.is_none_or(|h| tau < h));
                    assert_eq!(
                        inside,
                        p_at(tau) > 0.05,
                        "{stat:?} τ = {tau}: p = {}",
                        p_at(tau)
                    );
                }
            }
        }
    }

    #[test]
    fn exact_enumeration_replaces_monte_carlo_when_it_is_smaller() {
        let t = toy();
        let d = data(&t, false);
        let r = randomization_inference(
            &t.design,
            &d,
            &[RiStatistic::Dim],
            &opts(5000),
            &Progress::new(),
        )
        .expect("ri");
        assert_eq!(r[0].method, RiMethod::Exact { assignments: 1200 });
        assert_eq!(r[0].n_draws + r[0].n_undefined, 1200);
        assert_eq!(r[0].mc_std_error, 0.0);
        assert!(
            r[0].n_extreme >= 1,
            "the realised assignment is as extreme as itself"
        );
    }
}
