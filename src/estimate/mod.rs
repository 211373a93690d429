//! Effect estimates (docs/statistics.md §A, protocols/ANALYSIS.md): the blocked difference in means,
//! ANCOVA and Lin for the intention-to-treat effect, and two-way fixed effects difference in
//! differences with its event study, for every arm against control in both weightings.
//!
//! The estimators are pure functions of the study data. Each one is a linear function of the
//! outcome, so one weighted least-squares engine with an absorbed factor ([`ols`]) and the panel
//! engine ([`panel`]) carry all of them; their numbers are checked against estimatr, clubSandwich
//! and pyfixest in `tests/fixtures/estimates/`.

// Numerical kernels index several parallel arrays at once; iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

pub mod bounds;
pub mod cr2;
pub mod data;
pub mod dim;
pub mod iv;
pub mod linalg;
pub mod ols;
pub mod panel;
pub mod received;
pub mod ri;
mod run;
mod table;

pub use data::{AssignedUnit, StudyData, UnitIds, Windows, read_assignment_table};
pub use iv::{ArSet, ArShape, IvDetail, JointCovariance};
pub use received::Takeup;
pub use ri::{RiInterval, RiMethod, RiOptions, RiResult, RiRow, RiStatistic};
pub use run::{Attrition, Options, Report, Skipped, WaldTest, estimate, estimate_with};
pub use table::{format_table, percent};

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{Continuous, ContinuousCDF, FisherSnedecor, StudentsT};

/// Why an estimate could not be computed. Never a NaN.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimateError {
    /// An arm (or the control group) has no units with data.
    #[error("empty arm: {0}")]
    EmptyArm(String),
    /// The design matrix is singular for the coefficient of interest.
    #[error("singular design: {0}")]
    Singular(String),
    /// Fewer than two clusters.
    #[error("too few clusters: {0}")]
    TooFewClusters(String),
    /// The design does not allow this estimator (e.g. one singleton-arm stratum).
    #[error("design not supported: {0}")]
    Design(String),
    /// The input data are invalid.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A bug: an internal invariant failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// The computation was cancelled ([`crate::progress::Progress::cancel`]).
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::progress::Cancelled> for EstimateError {
    fn from(_: crate::progress::Cancelled) -> Self {
        EstimateError::Cancelled
    }
}

/// The estimators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// Blocked difference in means of the post-period rate.
    IttDim,
    /// OLS on arm, baseline and stratum effects (HC2).
    IttAncova,
    /// Lin (2013) fully interacted adjustment (HC2).
    IttLin,
    /// Two-way fixed effects difference in differences (CR1, and CR2 where requested).
    DidTwfe,
    /// One coefficient per quarter relative to randomization, with a pre-trend test.
    EventStudy,
    /// Two-stage least squares of the outcome on received assistance, instrumented by assignment
    /// (HC2/CR2 on the structural residuals), with its Anderson-Rubin set. Needs take-up records.
    CaceIv,
    /// Randomization inference for `itt_dim` and `itt_ancova` ([`ri`]): re-draws of the
    /// assignment, exact or Monte Carlo. Runs when [`Options::ri`] is set.
    Ri,
}

impl Estimator {
    /// Every estimator, in output order.
    pub const ALL: [Estimator; 7] = [
        Estimator::IttDim,
        Estimator::IttAncova,
        Estimator::IttLin,
        Estimator::DidTwfe,
        Estimator::EventStudy,
        Estimator::CaceIv,
        Estimator::Ri,
    ];

    /// The name used by the API and the command line.
    pub fn name(self) -> &'static str {
        match self {
            Estimator::IttDim => "itt_dim",
            Estimator::IttAncova => "itt_ancova",
            Estimator::IttLin => "itt_lin",
            Estimator::DidTwfe => "did_twfe",
            Estimator::EventStudy => "event_study",
            Estimator::CaceIv => "cace_iv",
            Estimator::Ri => "ri",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Estimator> {
        Estimator::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether the estimator needs take-up records ([`Options::takeup`]). `all` runs it only
    /// when they are given.
    pub fn needs_takeup(self) -> bool {
        self == Estimator::CaceIv
    }

    /// Whether this is randomization inference rather than an estimator with estimate rows: it
    /// runs after the estimators, and `all` includes it only when draws were asked for.
    pub fn is_randomization_inference(self) -> bool {
        self == Estimator::Ri
    }

    /// Parses `all` or a comma-separated list of names (the command line's `--estimator` and the
    /// API's `estimator` parameter).
    ///
    /// # Errors
    /// The first unknown name, with the names there are.
    pub fn parse_list(spec: &str) -> Result<Vec<Estimator>, String> {
        if spec == "all" {
            return Ok(Estimator::ALL.to_vec());
        }
        spec.split(',')
            .map(|name| {
                Estimator::from_name(name.trim()).ok_or_else(|| {
                    format!(
                        "unknown estimator {name:?}; use all or some of itt_dim, itt_ancova, \
                         itt_lin, did_twfe, event_study, cace_iv, ri"
                    )
                })
            })
            .collect()
    }
}

/// How firms are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Each firm counts once.
    Firm,
    /// Weighted by possible workdays (the effect on the national rate).
    Dagsverk,
}

impl Weighting {
    /// The name used by the API and the command line.
    pub fn name(self) -> &'static str {
        match self {
            Weighting::Firm => "firm",
            Weighting::Dagsverk => "dagsverk",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Weighting> {
        [Weighting::Firm, Weighting::Dagsverk]
            .into_iter()
            .find(|w| w.name() == name)
    }
}

/// One estimate with every field of docs/statistics.md §A.4.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Estimate {
    /// Estimator name.
    pub estimator: String,
    /// Outcome.
    pub outcome: String,
    /// The treatment arm.
    pub arm: String,
    /// The comparison arm (control).
    pub versus: String,
    /// `firm` or `dagsverk`.
    pub weights: String,
    /// Coefficient: `z` (ITT), `d` (DiD), `e=-3` (event study), `pretrend` (joint test).
    pub term: String,
    /// The event study's quarter relative to randomization (`-3` for the term `e=-3`); `null` for
    /// every other estimator.
    #[serde(default)]
    pub event_time: Option<i32>,
    /// Point estimate, percentage points.
    pub estimate: f64,
    /// Standard error.
    pub std_error: f64,
    /// Degrees of freedom of the t (or denominator of the F) distribution.
    pub df: f64,
    /// t statistic (F for the pre-trend test).
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Holm-adjusted p-value within the confirmatory family.
    pub p_holm: Option<f64>,
    /// Lower confidence limit.
    pub ci_low: f64,
    /// Upper confidence limit.
    pub ci_high: f64,
    /// Confidence level.
    pub conf_level: f64,
    /// (Weighted) mean post-period rate of the control firms in the contrast.
    pub control_mean: f64,
    /// 100 × estimate / control mean.
    pub relative_effect: f64,
    /// Firms used.
    pub n_units: usize,
    /// Clusters used (None for unit-randomized ITT estimates).
    pub n_clusters: Option<usize>,
    /// Rows used (firms for ITT, firm-quarters for the panel).
    pub n_obs: usize,
    /// Standard error type: `Neyman`, `Matched-pair`, `Pashley-Miratrix`, `per-stratum HC2`
    /// (the weighted difference in means), `HC2`, `CR2` or `CR1`.
    pub se_type: String,
    /// Small-sample factor applied, where one is.
    pub ssc_factor: Option<f64>,
    /// Design detected; ` (weighted)` is appended for every `dagsverk` estimate.
    pub design: String,
    /// Units or rows dropped, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// The statistics vintage used (the integer of `GET /v1/statistics/vintages`).
    #[serde(default)]
    pub vintage: Option<i64>,
    /// The protocol's hash, when run from a protocol.
    pub protocol_hash: Option<String>,
    /// Part of the protocol's confirmatory family.
    pub confirmatory: bool,
    /// Under `dagsverk` weighting: how concentrated each arm's weight is (issue 14: within a
    /// small stratum one large firm can carry most of an arm's weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_summary: Option<WeightSummary>,
}

/// How concentrated the weights m_i (post-window possible workdays) of a contrast's arms are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct WeightSummary {
    /// Kish's effective number of firms of the arm, (Σm)²/Σm².
    pub effective_n_treated: f64,
    /// The same for the control arm.
    pub effective_n_control: f64,
    /// The largest firm's share of the arm's weight.
    pub max_weight_share_treated: f64,
    /// The same for the control arm.
    pub max_weight_share_control: f64,
}

impl WeightSummary {
    /// From each firm's arm (treated or not) and weight.
    pub fn of(firms: impl Iterator<Item = (bool, f64)>) -> WeightSummary {
        // Per arm: Σm, Σm², max m.
        let mut a = [[0.0f64; 3]; 2];
        for (treated, m) in firms {
            let k = &mut a[usize::from(treated)];
            k[0] += m;
            k[1] += m * m;
            k[2] = k[2].max(m);
        }
        WeightSummary {
            effective_n_treated: a[1][0] * a[1][0] / a[1][1],
            effective_n_control: a[0][0] * a[0][0] / a[0][1],
            max_weight_share_treated: a[1][2] / a[1][0],
            max_weight_share_control: a[0][2] / a[0][0],
        }
    }
}

/// Two-sided p-value of a t statistic, from the survival function.
pub fn t_p_value(t: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => (2.0 * d.sf(t.abs())).min(1.0),
        Err(_) => f64::NAN,
    }
}

/// The `p` quantile of the t distribution, polished by Newton steps on the cdf.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let Ok(d) = StudentsT::new(0.0, 1.0, df) else {
        return f64::NAN;
    };
    let mut x = d.inverse_cdf(p);
    for _ in 0..3 {
        let (f, dens) = if x > 0.0 {
            (1.0 - p - d.sf(x), d.pdf(x))
        } else {
            (d.cdf(x) - p, d.pdf(x))
        };
        // f = cdf(x) - p, with the cdf taken from the survival function in the upper half.
        if dens <= 0.0 || !f.is_finite() {
            break;
        }
        let step = -f / dens;
        x += step;
        if step.abs() <= 1e-16 * x.abs() {
            break;
        }
    }
    x
}

/// Upper-tail p-value of an F statistic.
pub fn f_p_value(f: f64, df1: f64, df2: f64) -> f64 {
    match FisherSnedecor::new(df1, df2) {
        Ok(d) => d.sf(f),
        Err(_) => f64::NAN,
    }
}

/// Holm step-down adjustment of a family of p-values (statsmodels `multipletests(method="holm")`).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_summary_is_kish_and_the_largest_share() {
        // Treated weights 1, 1, 2 (Kish 16/6); control 3, 1 (Kish 16/10).
        let w = WeightSummary::of(
            [
                (true, 1.0),
                (false, 3.0),
                (true, 1.0),
                (true, 2.0),
                (false, 1.0),
            ]
            .into_iter(),
        );
        assert!((w.effective_n_treated - 16.0 / 6.0).abs() < 1e-15);
        assert!((w.effective_n_control - 1.6).abs() < 1e-15);
        assert_eq!(w.max_weight_share_treated, 0.5);
        assert_eq!(w.max_weight_share_control, 0.75);
    }

    #[test]
    fn t_quantiles_match_r_qt() {
        // R: qt(0.975, c(1, 4, 30, 1000))
        let want = [
            12.706204736174698,
            2.7764451051977934,
            2.0422724563012378,
            1.9623390808264078,
        ];
        for (df, w) in [1.0, 4.0, 30.0, 1000.0].into_iter().zip(want) {
            let q = t_quantile(0.975, df);
            assert!((q - w).abs() < 1e-12 * w, "df {df}: {q} vs {w}");
        }
    }

    #[test]
    fn holm_matches_statsmodels() {
        // statsmodels multipletests([0.01, 0.04, 0.03, 0.005], method="holm")[1]
        let got = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15);
        }
    }
}
