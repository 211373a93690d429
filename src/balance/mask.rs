//! Small-cell masking of a balance table for roles outside the directorate.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{BalanceTable, Consort, Contrast, DroppedCovariate, OmnibusResult};
use crate::disclosure::complementary::{Rules, Table, protect};

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
    /// Units per arm; `"masked"` if hidden.
    #[serde(serialize_with = "crate::disclosure::hidden_counts")]
    #[schema(value_type = Vec<crate::disclosure::MaskedCount>)]
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
    /// Units with a value; `"masked"` (and `mean` and `sd` are `null`) if hidden.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub n: Option<usize>,
    /// Units without a value; `"masked"` if hidden.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
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
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub n_treatment: Option<usize>,
    /// Complete cases in the control arm.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub n_control: Option<usize>,
    /// Their sum; hidden when either is.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
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
    /// Units per arm; `"masked"` if hidden.
    #[serde(serialize_with = "crate::disclosure::hidden_counts")]
    #[schema(value_type = Vec<crate::disclosure::MaskedCount>)]
    pub counts: Vec<Option<usize>>,
    /// Units in the stratum; `"masked"` if hidden.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub total: Option<usize>,
}

/// Hides every cell based on fewer than `min` units (NAV masks cells under 5): each per-stratum
/// count, arm total and missing count below `min` (zero included) becomes `None`, and so does each
/// per-arm summary (`n`, mean, SD) with `n < min`, each contrast that uses a hidden summary, and
/// each omnibus result with fewer than `min` complete cases in either arm.
///
/// This is *primary* suppression only. A hidden cell can sometimes be recovered by subtraction
/// (a stratum count from the arm total and the other strata; `missing` from the arm total and
/// `n`); [`mask_with_flow`] adds complementary suppression and is what a response uses.
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

/// CONSORT counts with cells hidden; see [`mask_with_flow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MaskedConsort {
    /// Firms assessed for eligibility.
    pub assessed: Option<usize>,
    /// Firms found eligible.
    pub eligible: Option<usize>,
    /// Excluded firms per reason code.
    pub excluded_by_reason: BTreeMap<String, Option<usize>>,
    /// Randomized firms per arm.
    pub randomized_per_arm: BTreeMap<String, Option<usize>>,
    /// Eligible firms not randomized.
    pub not_randomized: Option<usize>,
}

/// The balance table and the CONSORT counts as published together, masked: every count below
/// `min` (zero included) is hidden, as in [`mask_small_cells`], and then further counts are hidden
/// (complementary suppression, [`crate::disclosure::complementary`]) until no hidden count can be
/// derived from the shown ones and the relations a reader knows:
/// - stratum total = Σ its arm counts; arm total = Σ its stratum counts;
/// - for each covariate and arm, arm total = `n` + `missing`;
/// - for each omnibus test, `n_used = n_treatment + n_control`, and the control's `n_control` is
///   the same in every test;
/// - `eligible = Σ randomized_per_arm + not_randomized`, `assessed = eligible + Σ
///   excluded_by_reason` and `randomized_per_arm = arm_totals`, each where it holds (a reader who
///   assumes it is then right).
///
/// A count hidden as a complement is `None` like a small one. Means, SDs, contrasts and omnibus
/// results follow the primary rule only (they hide with a small `n`).
///
/// With `min == 0` nothing is hidden.
pub fn mask_with_flow(
    table: &BalanceTable,
    flow: &Consort,
    min: usize,
) -> (MaskedBalanceTable, MaskedConsort) {
    let mut masked = mask_small_cells(table, min);
    let keep = |n: usize| (n >= min).then_some(n);
    let mut consort = MaskedConsort {
        assessed: keep(flow.assessed),
        eligible: keep(flow.eligible),
        excluded_by_reason: flow
            .excluded_by_reason
            .iter()
            .map(|(k, &n)| (k.clone(), keep(n)))
            .collect(),
        randomized_per_arm: flow
            .randomized_per_arm
            .iter()
            .map(|(k, &n)| (k.clone(), keep(n)))
            .collect(),
        not_randomized: keep(flow.not_randomized),
    };
    if min == 0 {
        return (masked, consort);
    }
    let mut t = Table::new();
    let arm_totals: Vec<usize> = table.arm_totals.iter().map(|&n| t.margin(n)).collect();
    let mut strata = Vec::new();
    for s in &table.strata {
        let cells: Vec<usize> = s.counts.iter().map(|&n| t.cell(n)).collect();
        let total = t.margin(s.total);
        t.sum(total, &cells);
        strata.push((cells, total));
    }
    for (a, &total) in arm_totals.iter().enumerate() {
        let parts: Vec<usize> = strata
            .iter()
            .filter_map(|(c, _)| c.get(a).copied())
            .collect();
        t.sum(total, &parts);
    }
    let mut covariates = Vec::new();
    for cov in &table.covariates {
        let mut arms = Vec::new();
        for (a, s) in cov.arms.iter().enumerate() {
            let n = t.cell(s.n);
            let missing = t.cell(s.missing);
            if let Some(&total) = arm_totals.get(a) {
                t.sum(total, &[n, missing]);
            }
            arms.push((n, missing));
        }
        covariates.push(arms);
    }
    let mut omnibus = Vec::new();
    let mut control_cells = Vec::new();
    for test in &table.omnibus {
        let nt = t.cell(test.n_treatment);
        let nc = t.cell(test.n_control);
        let used = t.margin(test.n_used);
        if test.n_treatment < min || test.n_control < min {
            t.withhold(used);
        }
        if test.n_used == test.n_treatment + test.n_control {
            t.sum(used, &[nt, nc]);
        }
        if let Some(&first) = control_cells.first()
            && t.values()[first] == t.values()[nc]
        {
            t.equal(first, nc);
        }
        control_cells.push(nc);
        omnibus.push((nt, nc, used));
    }
    let assessed = t.margin(flow.assessed);
    let eligible = t.margin(flow.eligible);
    let excluded: Vec<(String, usize)> = flow
        .excluded_by_reason
        .iter()
        .map(|(k, &n)| (k.clone(), t.cell(n)))
        .collect();
    let randomized: Vec<(String, usize)> = flow
        .randomized_per_arm
        .iter()
        .map(|(k, &n)| (k.clone(), t.cell(n)))
        .collect();
    let not_randomized = t.cell(flow.not_randomized);
    let n_randomized: usize = flow.randomized_per_arm.values().sum();
    if flow.eligible == n_randomized + flow.not_randomized {
        let mut parts: Vec<usize> = randomized.iter().map(|(_, c)| *c).collect();
        parts.push(not_randomized);
        t.sum(eligible, &parts);
    }
    if flow.assessed == flow.eligible + flow.excluded_by_reason.values().sum::<usize>() {
        let mut parts: Vec<usize> = excluded.iter().map(|(_, c)| *c).collect();
        parts.push(eligible);
        t.sum(assessed, &parts);
    }
    for (arm, cell) in &randomized {
        if let Some(a) = table.arms.iter().position(|x| x == arm)
            && table.arm_totals.get(a) == flow.randomized_per_arm.get(arm)
        {
            t.equal(arm_totals[a], *cell);
        }
    }
    let state = protect(
        &t,
        Rules {
            min: min as u64,
            hide_zero: true,
        },
    );
    let hide = |slot: &mut Option<usize>, cell: usize| {
        if state[cell].is_hidden() {
            *slot = None;
        }
    };
    for (slot, &cell) in masked.arm_totals.iter_mut().zip(&arm_totals) {
        hide(slot, cell);
    }
    for (s, (cells, total)) in masked.strata.iter_mut().zip(&strata) {
        for (slot, &cell) in s.counts.iter_mut().zip(cells) {
            hide(slot, cell);
        }
        hide(&mut s.total, *total);
    }
    for (m, cells) in masked.covariates.iter_mut().zip(&covariates) {
        for (arm, &(n, missing)) in m.arms.iter_mut().zip(cells) {
            hide(&mut arm.n, n);
            hide(&mut arm.missing, missing);
        }
    }
    for (test, &(nt, nc, used)) in masked.omnibus.iter_mut().zip(&omnibus) {
        hide(&mut test.n_treatment, nt);
        hide(&mut test.n_control, nc);
        hide(&mut test.n_used, used);
    }
    hide(&mut consort.assessed, assessed);
    hide(&mut consort.eligible, eligible);
    hide(&mut consort.not_randomized, not_randomized);
    for (k, cell) in &excluded {
        if let Some(slot) = consort.excluded_by_reason.get_mut(k) {
            hide(slot, *cell);
        }
    }
    for (k, cell) in &randomized {
        if let Some(slot) = consort.randomized_per_arm.get_mut(k) {
            hide(slot, *cell);
        }
    }
    (masked, consort)
}
