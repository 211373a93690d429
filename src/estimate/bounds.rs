//! Attrition bounds for `itt_dim` (protocols/ANALYSIS.md §10): Lee (2009) trimming bounds with
//! his analytic standard errors and the Imbens-Manski (2004) interval, and Manski's worst-case
//! bounds for a rate that lies between 0 and 100.
//!
//! Lee, pooled over strata and firm-weighted, with exact fractional trimming:
//! - the arm with the larger observed share p is trimmed (decided in integers, O_t·N_c against
//!   O_c·N_t), by q = (p_T − p_U)/p_T, so that its kept mass K = O_U·N_T/N_U is what the other arm's
//!   share would have left; the boundary observation carries the fractional weight;
//! - the lower bound trims the treated arm's top (or the control arm's bottom) q, the upper bound
//!   the other tail;
//! - Var = σ²/K + (y_b − μ)²q/K + (y_b − μ)²[(1 − p_T)/O_T + (1 − p_U)/O_U] + s²_U/O_U for each
//!   bound, with μ, σ² (divisor K) the kept tail's moments, y_b its boundary value and s²_U the
//!   other arm's variance (Lee 2009 Proposition 3, as Stata `leebounds` 1.5 computes it in its
//!   fractional branch);
//! - equal observed shares (q = 0): both bounds are the difference of observed means, with its
//!   unpooled SE, and the output warns that Lee's asymptotics assume unequal attrition.
//!
//! `notebooks/bounds_reference.py` computes the fixtures in exact rational arithmetic and
//! validates the SE by simulation (`notebooks/README-bounds.md`).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::EstimateError;
use super::linalg::KahanSum;

/// The range of the outcome for Manski's bounds: a sick-leave rate in percent.
pub const RATE_RANGE: (f64, f64) = (0.0, 100.0);

/// One contrast's enrolled firms: arm, stratum and outcome (`None` when attrited).
#[derive(Debug, Clone, Copy)]
pub struct BoundsInput<'a> {
    /// Treated (the arm) or control, per firm.
    pub treated: &'a [bool],
    /// Stratum per firm, `0..n_strata`.
    pub stratum: &'a [u32],
    /// Number of strata.
    pub n_strata: usize,
    /// Outcome, `None` for a firm without post data.
    pub y: &'a [Option<f64>],
}

/// Which arm Lee trims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrimmedArm {
    /// The arm (its observed share is the larger).
    Treated,
    /// The control arm.
    Control,
    /// Equal observed shares: nothing is trimmed.
    None,
}

/// Lee's bounds and intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeeBounds {
    /// The trimmed arm.
    pub trimmed_arm: TrimmedArm,
    /// The trimming share q.
    pub q: f64,
    /// Observed share of the arm's firms (p1).
    pub observed_share_treated: f64,
    /// Observed share of the control firms (p0).
    pub observed_share_control: f64,
    /// Lower bound of the effect on the always-observed.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Lee's analytic SE of the lower bound.
    pub se_lower: f64,
    /// Of the upper bound.
    pub se_upper: f64,
    /// The Imbens-Manski critical value C.
    pub im_c: f64,
    /// Imbens-Manski interval for the effect: [lower − C·se_lower, upper + C·se_upper].
    pub im_ci_low: f64,
    /// Its upper end.
    pub im_ci_high: f64,
    /// The interval for the identified set: the normal quantile of 1 − α/2 on each side.
    pub naive_ci_low: f64,
    /// Its upper end.
    pub naive_ci_high: f64,
    /// Confidence level.
    pub conf_level: f64,
    /// Set when the bounds rest on weak grounds (equal attrition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Manski's worst-case bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManskiBounds {
    /// The outcome's range.
    pub y_min: f64,
    /// Its upper end.
    pub y_max: f64,
    /// Pooled: the arm's missing outcomes at y_min and the control's at y_max.
    pub lower: f64,
    /// Pooled, the other way round.
    pub upper: f64,
    /// Blocked (stratum weights N_j/N over enrolled firms), `None` when a stratum lacks an arm.
    pub blocked_lower: Option<f64>,
    /// Its upper end.
    pub blocked_upper: Option<f64>,
}

/// One arm's observed outcomes and counts.
struct Arm {
    n: u64,
    y: Vec<f64>,
}

impl Arm {
    fn o(&self) -> u64 {
        self.y.len() as u64
    }

    fn share(&self) -> f64 {
        self.o() as f64 / self.n as f64
    }

    fn mean(&self) -> f64 {
        let mut s = KahanSum::default();
        for &v in &self.y {
            s.add(v);
        }
        s.value() / self.y.len() as f64
    }

    /// Sample variance, divisor O − 1.
    fn var(&self) -> f64 {
        let m = self.mean();
        let mut s = KahanSum::default();
        for &v in &self.y {
            s.add((v - m) * (v - m));
        }
        s.value() / (self.y.len() as f64 - 1.0)
    }
}

fn arms(input: &BoundsInput<'_>) -> Result<(Arm, Arm), EstimateError> {
    if input.treated.len() != input.y.len() || input.stratum.len() != input.y.len() {
        return Err(EstimateError::Internal(
            "bounds: columns differ in length".into(),
        ));
    }
    let mut t = Arm {
        n: 0,
        y: Vec::new(),
    };
    let mut c = Arm {
        n: 0,
        y: Vec::new(),
    };
    for (&z, y) in input.treated.iter().zip(input.y) {
        let arm = if z { &mut t } else { &mut c };
        arm.n += 1;
        if let Some(v) = y {
            arm.y.push(*v);
        }
    }
    Ok((t, c))
}

/// The kept tail's moments and boundary value: (μ, σ², y_b).
fn tail(sorted: &[f64], k: usize, f: f64, mass: f64, keep_low: bool) -> (f64, f64, f64) {
    let n = sorted.len();
    let weight = |i: usize| -> f64 {
        if keep_low {
            if i < k {
                1.0
            } else if i == k {
                f
            } else {
                0.0
            }
        } else if i >= n - k {
            1.0
        } else if i + 1 == n - k {
            f
        } else {
            0.0
        }
    };
    let boundary = match (keep_low, f > 0.0) {
        (true, true) => k,
        (true, false) => k - 1,
        (false, true) => n - k - 1,
        (false, false) => n - k,
    };
    let mut s = KahanSum::default();
    for (i, &v) in sorted.iter().enumerate() {
        s.add(weight(i) * v);
    }
    let mu = s.value() / mass;
    let mut ss = KahanSum::default();
    for (i, &v) in sorted.iter().enumerate() {
        ss.add(weight(i) * (v - mu) * (v - mu));
    }
    (mu, ss.value() / mass, sorted[boundary])
}

fn normal() -> Normal {
    // Mean 0 and SD 1 are valid parameters.
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("the standard normal"))
}

/// Φ(x) from `libm::erfc` (accurate to about one ulp; statrs' normal CDF is good to 1e-11 only).
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The Imbens-Manski critical value: C with Φ(C + Δ/max σ) − Φ(−C) = level, by bisection on
/// [Φ⁻¹(level), Φ⁻¹(1 − (1 − level)/2)].
pub fn imbens_manski_c(delta: f64, sigma_max: f64, level: f64) -> f64 {
    let nd = normal();
    let hi = nd.inverse_cdf(1.0 - (1.0 - level) / 2.0);
    if !(delta > 0.0 && sigma_max > 0.0) {
        return hi;
    }
    let g = |c: f64| phi(c + delta / sigma_max) - phi(-c) - level;
    let (mut a, mut b) = (nd.inverse_cdf(level), hi);
    if g(a) >= 0.0 {
        return a;
    }
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if m <= a || m >= b {
            break;
        }
        if g(m) < 0.0 {
            a = m;
        } else {
            b = m;
        }
    }
    0.5 * (a + b)
}

/// Lee's bounds (pooled, firm-weighted).
///
/// # Errors
/// Fewer than two observed firms in an arm.
pub fn lee(input: &BoundsInput<'_>, conf_level: f64) -> Result<LeeBounds, EstimateError> {
    let (t, c) = arms(input)?;
    if t.o() < 2 || c.o() < 2 {
        return Err(EstimateError::EmptyArm(format!(
            "Lee bounds need two observed firms in each arm (treated {}, control {})",
            t.o(),
            c.o()
        )));
    }
    let nd = normal();
    let z = nd.inverse_cdf(1.0 - (1.0 - conf_level) / 2.0);
    let lhs = u128::from(t.o()) * u128::from(c.n);
    let rhs = u128::from(c.o()) * u128::from(t.n);
    let (p1, p0) = (t.share(), c.share());
    let finish = |trimmed_arm, q, lower: f64, upper: f64, se_l: f64, se_u: f64, warning| {
        let im_c = imbens_manski_c(upper - lower, se_l.max(se_u), conf_level);
        LeeBounds {
            trimmed_arm,
            q,
            observed_share_treated: p1,
            observed_share_control: p0,
            lower,
            upper,
            se_lower: se_l,
            se_upper: se_u,
            im_c,
            im_ci_low: lower - im_c * se_l,
            im_ci_high: upper + im_c * se_u,
            naive_ci_low: lower - z * se_l,
            naive_ci_high: upper + z * se_u,
            conf_level,
            warning,
        }
    };
    if lhs == rhs {
        let d = t.mean() - c.mean();
        let se = (t.var() / t.o() as f64 + c.var() / c.o() as f64).sqrt();
        return Ok(finish(
            TrimmedArm::None,
            0.0,
            d,
            d,
            se,
            se,
            Some(
                "equal observed shares: nothing is trimmed, and the bounds are the difference \
                 of observed means; Lee's analytic SE assumes unequal attrition"
                    .into(),
            ),
        ));
    }
    let treated_trimmed = lhs > rhs;
    let (tr, un) = if treated_trimmed { (&t, &c) } else { (&c, &t) };
    // Kept mass K = O_U·N_T/N_U = k + f, in integers; q = 1 − K/O_T.
    let num = u128::from(un.o()) * u128::from(tr.n);
    let den = u128::from(un.n);
    let k = usize::try_from(num / den).unwrap_or(usize::MAX);
    let f = (num % den) as f64 / den as f64;
    let mass = num as f64 / den as f64;
    let q_num = u128::from(tr.o()) * den - num;
    let q = q_num as f64 / (u128::from(tr.o()) * den) as f64;
    let mut sorted = tr.y.clone();
    sorted.sort_by(f64::total_cmp);
    let o_t = tr.o() as f64;
    let o_u = un.o() as f64;
    let (p_t, p_u) = (tr.share(), un.share());
    let var_u = un.var();
    let mean_u = un.mean();
    let bound = |keep_low: bool| -> (f64, f64) {
        let (mu, s2, yb) = tail(&sorted, k, f, mass, keep_low);
        let d2 = (yb - mu) * (yb - mu);
        let v =
            s2 / mass + d2 * q / mass + d2 * ((1.0 - p_t) / o_t + (1.0 - p_u) / o_u) + var_u / o_u;
        (mu, v.sqrt())
    };
    let (mu_low, se_low) = bound(true);
    let (mu_high, se_high) = bound(false);
    Ok(if treated_trimmed {
        finish(
            TrimmedArm::Treated,
            q,
            mu_low - mean_u,
            mu_high - mean_u,
            se_low,
            se_high,
            None,
        )
    } else {
        finish(
            TrimmedArm::Control,
            q,
            mean_u - mu_high,
            mean_u - mu_low,
            se_high,
            se_low,
            None,
        )
    })
}

/// Manski's worst-case bounds for an outcome in `range`, pooled and blocked.
///
/// # Errors
/// An arm has no firm.
pub fn manski(input: &BoundsInput<'_>, range: (f64, f64)) -> Result<ManskiBounds, EstimateError> {
    let (t, c) = arms(input)?;
    if t.n == 0 || c.n == 0 {
        return Err(EstimateError::EmptyArm(
            "Manski bounds need firms in both arms".into(),
        ));
    }
    let (lo, hi) = range;
    // Per stratum and arm: enrolled firms, Σ observed y, observed firms.
    let mut cells = vec![[(0u64, KahanSum::default(), 0u64); 2]; input.n_strata];
    for ((&z, y), &s) in input.treated.iter().zip(input.y).zip(input.stratum) {
        let cell = &mut cells[s as usize][usize::from(z)];
        cell.0 += 1;
        if let Some(v) = y {
            cell.1.add(*v);
            cell.2 += 1;
        }
    }
    // Mean of an arm with missing outcomes filled in by `fill`.
    let filled = |cell: &(u64, KahanSum, u64), fill: f64| {
        (cell.1.value() + (cell.0 - cell.2) as f64 * fill) / cell.0 as f64
    };
    let mut pooled = [(0u64, KahanSum::default(), 0u64); 2];
    for strat in &cells {
        for a in 0..2 {
            pooled[a].0 += strat[a].0;
            pooled[a].1.add(strat[a].1.value());
            pooled[a].2 += strat[a].2;
        }
    }
    let lower = filled(&pooled[1], lo) - filled(&pooled[0], hi);
    let upper = filled(&pooled[1], hi) - filled(&pooled[0], lo);
    let present: Vec<&[(u64, KahanSum, u64); 2]> =
        cells.iter().filter(|s| s[0].0 + s[1].0 > 0).collect();
    let complete = present.iter().all(|s| s[0].0 > 0 && s[1].0 > 0);
    let (blocked_lower, blocked_upper) = if complete {
        let total: u64 = present.iter().map(|s| s[0].0 + s[1].0).sum();
        let mut l = KahanSum::default();
        let mut u = KahanSum::default();
        for s in &present {
            let share = (s[0].0 + s[1].0) as f64 / total as f64;
            l.add(share * (filled(&s[1], lo) - filled(&s[0], hi)));
            u.add(share * (filled(&s[1], hi) - filled(&s[0], lo)));
        }
        (Some(l.value()), Some(u.value()))
    } else {
        (None, None)
    };
    Ok(ManskiBounds {
        y_min: lo,
        y_max: hi,
        lower,
        upper,
        blocked_lower,
        blocked_upper,
    })
}

/// The bounds of one contrast, as the output reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundsRow {
    /// Outcome.
    pub outcome: String,
    /// The arm.
    pub arm: String,
    /// The control arm.
    pub versus: String,
    /// Firms of the arm (enrolled) and how many have post data.
    pub n_treated: usize,
    /// Of those, with post data.
    pub observed_treated: usize,
    /// Control firms enrolled.
    pub n_control: usize,
    /// Of those, with post data.
    pub observed_control: usize,
    /// Lee's bounds (absent when an arm has fewer than two observed firms).
    pub lee: Option<LeeBounds>,
    /// Manski's bounds.
    pub manski: ManskiBounds,
    /// Statistics vintage.
    pub vintage: Option<i64>,
    /// Protocol hash.
    pub protocol_hash: Option<String>,
}
