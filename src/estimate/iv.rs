//! The complier effect `cace_iv` (docs/statistics.md §A.2, protocols/ANALYSIS.md §8): two-stage
//! least squares of the outcome on "received assistance", instrumented by assignment, and its
//! Anderson-Rubin confidence set in closed form.
//!
//! With one instrument z, one endogenous regressor D and the same exogenous columns W (baseline,
//! stratum effects) in both stages, 2SLS needs no second-stage regression of its own:
//! - the estimate is the ratio β̂ = π̂_y / π̂_d of the z coefficients of the reduced form (y on z, W)
//!   and the first stage (D on z, W);
//! - the second-stage regressors X̂ = [D̂, W] span the same space as [z, W], so the leverage, the
//!   CR2 adjustment and the Satterthwaite df are those of the reduced-form design, and the row of
//!   (X̂'WX̂)⁻¹X̂'W for β is the z row of the reduced form divided by π̂_d;
//! - the structural residuals y − β̂D − Wγ̂ are the residuals of the reduced-form design fitted to
//!   y − β̂D, i.e. e_y − β̂ e_d.
//!
//! So Var(β̂) = V(e_y − β̂ e_d) / π̂_d², where V(e) is the robust (HC2 or CR2) variance of the z
//! coefficient with residuals e, exactly what estimatr `iv_robust` reports.
//!
//! The Anderson-Rubin statistic for H0: β = b is the squared robust t statistic of z in the
//! regression of y − bD on (z, W): t²(b) = (π̂_y − bπ̂_d)² / (V_yy − 2bV_yd + b²V_dd), with V the
//! joint robust covariance of the two z coefficients. The set {b : t²(b) ≤ c} is where the quadratic
//! (π̂_d² − cV_dd) b² − 2(π̂_yπ̂_d − cV_yd) b + (π̂_y² − cV_yy) is at most 0, solved here exactly
//! rather than by a grid (`notebooks/cace_reference.py` checks it against grid inversion).

use serde::{Deserialize, Serialize};

use super::linalg::quadratic_roots;

/// The shape of an Anderson-Rubin confidence set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArShape {
    /// `[low, high]`: the instrument is strong enough (first-stage F above the critical value).
    Bounded,
    /// `(-inf, low] ∪ [high, inf)`: a weak instrument, but some effects are rejected.
    TwoRays,
    /// `[low, inf)`: the boundary case F = critical value.
    RayAbove,
    /// `(-inf, high]`: the boundary case F = critical value.
    RayBelow,
    /// Every effect is consistent with the data: the instrument carries no information.
    WholeLine,
    /// No effect is consistent with the data (impossible with one instrument: t²(β̂) = 0).
    Empty,
}

impl ArShape {
    /// The name the output uses.
    pub fn name(self) -> &'static str {
        match self {
            ArShape::Bounded => "bounded",
            ArShape::TwoRays => "two_rays",
            ArShape::RayAbove => "ray_above",
            ArShape::RayBelow => "ray_below",
            ArShape::WholeLine => "whole_line",
            ArShape::Empty => "empty",
        }
    }
}

/// An Anderson-Rubin confidence set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArSet {
    /// Its shape.
    pub shape: ArShape,
    /// The lower end point of `bounded` and `ray_above`; the upper end of the lower ray of
    /// `two_rays`.
    pub low: Option<f64>,
    /// The upper end point of `bounded` and `ray_below`; the lower end of the upper ray of
    /// `two_rays`.
    pub high: Option<f64>,
    /// The critical value of t²: the square of the t quantile at the confidence level.
    pub critical_value: f64,
    /// Degrees of freedom of that t (the first stage's).
    pub df: f64,
    /// Confidence level.
    pub conf_level: f64,
}

impl ArSet {
    /// Whether `beta` lies in the set.
    pub fn contains(&self, beta: f64) -> bool {
        match self.shape {
            ArShape::Bounded => {
                self.low.is_some_and(|l| l <= beta) && self.high.is_some_and(|h| beta <= h)
            }
            ArShape::TwoRays => {
                self.low.is_some_and(|l| beta <= l) || self.high.is_some_and(|h| h <= beta)
            }
            ArShape::RayAbove => self.low.is_some_and(|l| l <= beta),
            ArShape::RayBelow => self.high.is_some_and(|h| beta <= h),
            ArShape::WholeLine => true,
            ArShape::Empty => false,
        }
    }

    /// The set as text: `[a, b]`, `(-inf, a] ∪ [b, inf)`, ...
    pub fn describe(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.3}"));
        match self.shape {
            ArShape::Bounded => format!("[{}, {}]", f(self.low), f(self.high)),
            ArShape::TwoRays => format!("(-inf, {}] ∪ [{}, inf)", f(self.low), f(self.high)),
            ArShape::RayAbove => format!("[{}, inf)", f(self.low)),
            ArShape::RayBelow => format!("(-inf, {}]", f(self.high)),
            ArShape::WholeLine => "(-inf, inf)".to_owned(),
            ArShape::Empty => "empty".to_owned(),
        }
    }
}

/// The joint robust covariance of the reduced-form (y) and first-stage (d) coefficients of z.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JointCovariance {
    /// Var(π̂_y): the reduced form's squared standard error.
    pub v_yy: f64,
    /// Cov(π̂_y, π̂_d).
    pub v_yd: f64,
    /// Var(π̂_d): the first stage's squared standard error.
    pub v_dd: f64,
}

/// The Anderson-Rubin set {β : (π_y − βπ_d)² ≤ c (V_yy − 2βV_yd + β²V_dd)} in closed form.
pub fn anderson_rubin(
    pi_y: f64,
    pi_d: f64,
    v: JointCovariance,
    crit: f64,
) -> (ArShape, Option<f64>, Option<f64>) {
    // f(β) = Aβ² − 2Bβ + C ≤ 0.
    let a = pi_d * pi_d - crit * v.v_dd;
    let b = pi_y * pi_d - crit * v.v_yd;
    let c = pi_y * pi_y - crit * v.v_yy;
    let mut roots = quadratic_roots(a, b, c);
    roots.sort_by(f64::total_cmp);
    match (roots.as_slice(), a) {
        // Linear (A = 0): −2Bβ + C ≤ 0.
        ([r], 0.0) if b > 0.0 => (ArShape::RayAbove, Some(*r), None),
        ([r], 0.0) => (ArShape::RayBelow, None, Some(*r)),
        ([], 0.0) if c <= 0.0 => (ArShape::WholeLine, None, None),
        ([], 0.0) => (ArShape::Empty, None, None),
        // No real roots, or one double root: f keeps the sign of A away from it.
        ([] | [_], a) if a < 0.0 => (ArShape::WholeLine, None, None),
        ([r], _) => (ArShape::Bounded, Some(*r), Some(*r)),
        ([], _) => (ArShape::Empty, None, None),
        ([low, high, ..], a) if a > 0.0 => (ArShape::Bounded, Some(*low), Some(*high)),
        ([low, high, ..], _) => (ArShape::TwoRays, Some(*low), Some(*high)),
    }
}

/// What `cace_iv` reports beside its estimate row: the first stage, take-up by arm, the reduced
/// form, the joint covariance and the Anderson-Rubin set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IvDetail {
    /// `cace_iv`.
    pub estimator: String,
    /// `ancova` (the firm-level 2SLS, term `received`) or `did` (the panel version, term
    /// `received_x_post`).
    pub model: String,
    /// Outcome.
    pub outcome: String,
    /// The treatment arm (the instrument is assignment to it).
    pub arm: String,
    /// The control arm.
    pub versus: String,
    /// `firm` or `dagsverk`.
    pub weights: String,
    /// `HC2`, or `CR2` when clusters were randomized.
    pub se_type: String,
    /// The take-up cut-off: a firm received assistance when it was `AKTIV` on or before it.
    pub cutoff: String,
    /// First stage: the z coefficient of D on z, baseline and strata (the stratum-adjusted
    /// difference in take-up).
    pub first_stage: f64,
    /// Its robust standard error.
    pub first_stage_std_error: f64,
    /// Its degrees of freedom (CR2: Satterthwaite).
    pub first_stage_df: f64,
    /// First-stage F = (coefficient / SE)²: robust or clustered, with one instrument also the
    /// effective F of Montiel Olea and Pflueger (2013).
    pub first_stage_f: f64,
    /// Upper-tail p-value of that F on (1, df).
    pub first_stage_p_value: f64,
    /// Share of the arm's firms (m-weighted for `dagsverk`) that received assistance.
    pub takeup_treated: f64,
    /// The same share among control firms.
    pub takeup_control: f64,
    /// Firms of the arm that received assistance.
    pub received_treated: usize,
    /// Firms of the arm in the contrast.
    pub n_treated: usize,
    /// Control firms that received assistance.
    pub received_control: usize,
    /// Control firms in the contrast.
    pub n_control: usize,
    /// The reduced form: the z coefficient of y on z, baseline and strata (= `itt_ancova`).
    pub reduced_form: f64,
    /// Its robust standard error.
    pub reduced_form_std_error: f64,
    /// The joint covariance of the two z coefficients.
    pub covariance: JointCovariance,
    /// The Anderson-Rubin confidence set.
    pub anderson_rubin: ArSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(pi_y: f64, pi_d: f64, v: JointCovariance, b: f64) -> f64 {
        (pi_y - b * pi_d).powi(2) / (v.v_yy - 2.0 * b * v.v_yd + b * b * v.v_dd)
    }

    /// Every shape, checked point by point against the statistic it inverts.
    #[test]
    fn the_closed_form_agrees_with_the_statistic_around_every_end_point() {
        let crit = 4.0;
        let cases = [
            // strong: F = 1/0.01 = 100
            (
                -1.0,
                1.0,
                JointCovariance {
                    v_yy: 0.04,
                    v_yd: 0.002,
                    v_dd: 0.01,
                },
                ArShape::Bounded,
            ),
            // weak, informative: F = 0.09/0.04 < 4, but far effects are rejected
            (
                -1.0,
                0.3,
                JointCovariance {
                    v_yy: 0.04,
                    v_yd: 0.0,
                    v_dd: 0.04,
                },
                ArShape::TwoRays,
            ),
            // weak and uninformative
            (
                -0.1,
                0.05,
                JointCovariance {
                    v_yy: 0.04,
                    v_yd: 0.0,
                    v_dd: 0.04,
                },
                ArShape::WholeLine,
            ),
        ];
        for (pi_y, pi_d, v, shape) in cases {
            let (got, low, high) = anderson_rubin(pi_y, pi_d, v, crit);
            assert_eq!(got, shape, "{pi_y} {pi_d} {v:?}");
            let set = ArSet {
                shape: got,
                low,
                high,
                critical_value: crit,
                df: 50.0,
                conf_level: 0.95,
            };
            assert!(
                set.contains(pi_y / pi_d),
                "the estimate is always in the set"
            );
            for end in [low, high].into_iter().flatten() {
                assert!(
                    (t2(pi_y, pi_d, v, end) - crit).abs() < 1e-10,
                    "t² = c at {end}"
                );
                for step in [-1e-6, 1e-6] {
                    let b = end + step;
                    assert_eq!(
                        set.contains(b),
                        t2(pi_y, pi_d, v, b) <= crit,
                        "{b} in {set:?}"
                    );
                }
            }
            for b in [-1e6, -10.0, 0.0, 10.0, 1e6] {
                assert_eq!(
                    set.contains(b),
                    t2(pi_y, pi_d, v, b) <= crit,
                    "{b} in {set:?}"
                );
            }
        }
    }

    #[test]
    fn a_first_stage_at_the_critical_value_gives_one_ray() {
        // A = π_d² − c V_dd = 0.
        let v = JointCovariance {
            v_yy: 0.04,
            v_yd: 0.001,
            v_dd: 0.0625,
        };
        let (shape, low, high) = anderson_rubin(-1.0, 0.5, v, 4.0);
        assert_eq!(shape, ArShape::RayBelow);
        assert!(low.is_none() && high.is_some());
    }
}
