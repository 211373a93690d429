//! Small-cell masking of a balance table for roles outside the directorate.

use serde::Serialize;
use utoipa::ToSchema;

use super::{BalanceTable, Contrast, DroppedCovariate, OmnibusResult};

/// A [`BalanceTable`] with small cells hidden; see [`mask_small_cells`].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MaskedBalanceTable {
    /// Cells based on fewer units than this are hidden.
    pub min_cell: usize,
    /// Arm ids in protocol order.
    pub arms: Vec<String>,
    /// The control arm's id.
    pub control: String,
    /// One entry per covariate, in input order.
    pub covariates: Vec<MaskedCovariateBalance>,
    /// One Hotelling T² test per treatment arm against control.
    pub omnibus: Vec<MaskedOmnibusTest>,
    /// Arm counts per stratum, sorted by stratum key.
    pub strata: Vec<MaskedStratumCounts>,
    /// Units per arm; `None` if below `min_cell`.
    pub arm_totals: Vec<Option<usize>>,
}

/// One covariate's balance, masked.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MaskedCovariateBalance {
    /// The covariate's name.
    pub covariate: String,
    /// Summaries per arm, in protocol order.
    pub arms: Vec<MaskedArmSummary>,
    /// Contrasts; both numbers are `None` when either arm's summary is hidden.
    pub contrasts: Vec<Contrast>,
}

/// One covariate in one arm, masked.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MaskedArmSummary {
    /// The arm's id.
    pub arm: String,
    /// Units with a value; `None` (and so are `mean` and `sd`) if below `min_cell`.
    pub n: Option<usize>,
    /// Units without a value; `None` if below `min_cell`.
    pub missing: Option<usize>,
    /// Mean; `None` if hidden or undefined.
    pub mean: Option<f64>,
    /// Sample SD; `None` if hidden or undefined.
    pub sd: Option<f64>,
}

/// An omnibus test, masked: counts below `min_cell` are hidden, and the result is hidden when
/// either arm has fewer than `min_cell` complete cases.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MaskedOmnibusTest {
    /// The treatment arm's id.
    pub arm: String,
    /// The control arm's id.
    pub versus: String,
    /// Complete cases in the treatment arm.
    pub n_treatment: Option<usize>,
    /// Complete cases in the control arm.
    pub n_control: Option<usize>,
    /// Their sum; hidden when either is.
    pub n_used: Option<usize>,
    /// The covariates in the test.
    pub covariates_used: Vec<String>,
    /// The covariates left out, with why.
    pub dropped: Vec<DroppedCovariate>,
    /// The statistic; `None` if hidden.
    pub result: Option<OmnibusResult>,
}

/// Arm counts in one stratum, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MaskedStratumCounts {
    /// The stratum key.
    pub stratum: String,
    /// Units per arm; `None` if below `min_cell`.
    pub counts: Vec<Option<usize>>,
    /// Units in the stratum; `None` if below `min_cell`.
    pub total: Option<usize>,
}

/// Hides every cell based on fewer than `min` units (NAV masks cells under 5): each per-stratum
/// count, arm total and missing count below `min` (zero included) becomes `None`, and so does each
/// per-arm summary (`n`, mean, SD) with `n < min`, each contrast that uses a hidden summary, and
/// each omnibus result with fewer than `min` complete cases in either arm.
///
/// This is *primary* suppression only. A hidden cell can sometimes be recovered by subtraction
/// (a stratum count from the arm total and the other strata; `missing` from the arm total and
/// `n`); callers who publish all parts together must add complementary suppression.
pub fn mask_small_cells(table: &BalanceTable, min: usize) -> MaskedBalanceTable {
    let keep = |n: usize| (n >= min).then_some(n);
    let covariates = table
        .covariates
        .iter()
        .map(|cov| {
            let arms: Vec<MaskedArmSummary> = cov
                .arms
                .iter()
                .map(|s| {
                    let shown = s.n >= min;
                    MaskedArmSummary {
                        arm: s.arm.clone(),
                        n: keep(s.n),
                        missing: keep(s.missing),
                        mean: s.mean.filter(|_| shown),
                        sd: s.sd.filter(|_| shown),
                    }
                })
                .collect();
            let shown = |id: &str| arms.iter().any(|a| a.arm == id && a.n.is_some());
            let contrasts = cov
                .contrasts
                .iter()
                .map(|c| {
                    let visible = shown(&c.arm) && shown(&c.versus);
                    Contrast {
                        arm: c.arm.clone(),
                        versus: c.versus.clone(),
                        difference: c.difference.filter(|_| visible),
                        std_difference: c.std_difference.filter(|_| visible),
                    }
                })
                .collect();
            MaskedCovariateBalance {
                covariate: cov.covariate.clone(),
                arms,
                contrasts,
            }
        })
        .collect();
    let omnibus = table
        .omnibus
        .iter()
        .map(|t| {
            let visible = t.n_treatment >= min && t.n_control >= min;
            MaskedOmnibusTest {
                arm: t.arm.clone(),
                versus: t.versus.clone(),
                n_treatment: keep(t.n_treatment),
                n_control: keep(t.n_control),
                n_used: visible.then_some(t.n_used),
                covariates_used: t.covariates_used.clone(),
                dropped: t.dropped.clone(),
                result: visible.then(|| t.result.clone()),
            }
        })
        .collect();
    let strata = table
        .strata
        .iter()
        .map(|s| MaskedStratumCounts {
            stratum: s.stratum.clone(),
            counts: s.counts.iter().map(|&n| keep(n)).collect(),
            total: keep(s.total),
        })
        .collect();
    MaskedBalanceTable {
        min_cell: min,
        arms: table.arms.clone(),
        control: table.control.clone(),
        covariates,
        omnibus,
        strata,
        arm_totals: table.arm_totals.iter().map(|&n| keep(n)).collect(),
    }
}
