//! Runs the estimators over every arm and weighting and assembles the §A.4 rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ndarray::{Array1, Array2};
use serde::Serialize;

use super::bounds::BoundsRow;
use super::data::{Obs, StudyData};
use super::dim::{self, DimInput};
use super::iv::IvDetail;
use super::linalg::invert_gram;
use super::ols::{self, Clusters, Problem};
use super::panel::{self, Panel};
use super::received::Takeup;
use super::ri::{RiOptions, RiRow};
use super::{
    Estimate, EstimateError, Estimator, WeightSummary, Weighting, f_p_value, holm, t_p_value,
    t_quantile,
};
use crate::progress::Progress;

mod bounds;
mod iv;
mod ri;

/// The suffix of the `design` of every `dagsverk` (weighted) estimate.
const WEIGHTED: &str = " (weighted)";

/// What to estimate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The control arm's id.
    pub control: String,
    /// Estimators to run.
    pub estimators: Vec<Estimator>,
    /// Weightings to run.
    pub weights: Vec<Weighting>,
    /// Confidence level.
    pub conf_level: f64,
    /// Also report `did_twfe` and `event_study` with CR2 and Satterthwaite df.
    pub did_cr2: bool,
    /// The protocol's confirmatory estimators (Holm family = these x arms, per weighting).
    pub confirmatory: Vec<Estimator>,
    /// Outcome name.
    pub outcome: String,
    /// Statistics vintage, carried into every row.
    pub vintage: Option<i64>,
    /// Protocol hash, carried into every row.
    pub protocol_hash: Option<String>,
    /// Take-up records and the cut-off, for `cace_iv` (which `all` runs only when they are given).
    pub takeup: Option<Takeup>,
    /// Draws and seed of randomization inference (`ri` runs only when they are given).
    pub ri: Option<RiOptions>,
}

impl Options {
    /// Every estimator and weighting, 95 %, control `kontroll`.
    pub fn all(control: &str) -> Options {
        Options {
            control: control.to_owned(),
            estimators: Estimator::ALL.to_vec(),
            weights: vec![Weighting::Firm, Weighting::Dagsverk],
            conf_level: 0.95,
            did_cr2: true,
            confirmatory: Vec::new(),
            outcome: "sykefravar_prosent".into(),
            vintage: None,
            protocol_hash: None,
            takeup: None,
            ri: None,
        }
    }
}

/// Attrition by arm: firms without post-window data.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Attrition {
    /// Arm.
    pub arm: String,
    /// Firms assigned.
    pub assigned: usize,
    /// Firms with post-window data.
    pub with_post_data: usize,
    /// Firms without (dropped from every estimate).
    pub no_post_data: usize,
    /// Firms without pre-window data (kept, with a missing-baseline indicator).
    pub no_pre_data: usize,
}

/// An estimate that could not be computed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Estimator.
    pub estimator: String,
    /// Arm.
    pub arm: String,
    /// Weighting.
    pub weights: String,
    /// Standard error type, where the estimate itself was computed.
    pub se_type: Option<String>,
    /// The typed error.
    pub error: String,
}

/// A joint Wald test on cluster-adjusted df (docs/statistics.md B.11).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WaldTest {
    /// Estimator the test belongs to.
    pub estimator: String,
    /// Arm.
    pub arm: String,
    /// Control arm.
    pub versus: String,
    /// Weighting.
    pub weights: String,
    /// The null hypothesis.
    pub hypothesis: String,
    /// F statistic.
    pub statistic: f64,
    /// Numerator df (rank of the constraints).
    pub df_num: f64,
    /// Denominator df (G - 1).
    pub df_den: f64,
    /// Upper-tail p-value.
    pub p_value: f64,
    /// Covariance used.
    pub se_type: String,
    /// Clusters.
    pub n_clusters: usize,
}

/// Everything one run produces.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    /// The estimates.
    pub estimates: Vec<Estimate>,
    /// Joint tests (the event study's pre-trend test).
    pub tests: Vec<WaldTest>,
    /// Estimates not computed, with the reason.
    pub skipped: Vec<Skipped>,
    /// Attrition by arm.
    pub attrition: Vec<Attrition>,
    /// What `cace_iv` reports beside its estimates: first stage, take-up by arm, the
    /// Anderson-Rubin set (absent when no complier effect was asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iv: Vec<IvDetail>,
    /// Randomization inference per arm, weighting and statistic (absent unless asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ri: Vec<RiRow>,
    /// Attrition bounds of `itt_dim` per arm, where some firm of the contrast lacks post data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<BoundsRow>,
}

/// Shared per-contrast data.
struct Contrast<'a> {
    arm: &'a str,
    /// Units of the arm and control with post data, in unit order.
    units: Vec<u32>,
    treated: Vec<bool>,
    /// Dense stratum id per contrast unit (global sorted order) and the number of strata.
    stratum: Vec<u32>,
    n_strata: usize,
    /// Dense cluster id per contrast unit, when the design is clustered.
    cluster: Option<Vec<u32>>,
    /// Received assistance by the cut-off, per contrast unit, when take-up records are given.
    received: Option<Vec<bool>>,
}

/// Runs the requested estimators for every arm against the control.
///
/// # Errors
/// No control arm, or no arm besides it.
pub fn estimate(data: &StudyData, opts: &Options) -> Result<Report, EstimateError> {
    estimate_with(data, opts, &Progress::new())
}

/// [`estimate`], reporting to `progress`: stage `estimate`, one step per estimator, arm and
/// weighting. It checks for cancellation between steps and inside the long ones.
///
/// # Errors
/// As [`estimate`], and [`EstimateError::Cancelled`] once `progress` is cancelled.
pub fn estimate_with(
    data: &StudyData,
    opts: &Options,
    progress: &Progress,
) -> Result<Report, EstimateError> {
    // Arms, strata and clusters as the study's dense ids: everything here compares integers.
    let ids = &data.ids;
    let arms: Vec<&str> = ids.arms.iter().map(String::as_str).collect();
    let (unit_arm, unit_stratum) = (&ids.arm, &ids.stratum);
    let Some(control) = arms.iter().position(|a| *a == opts.control.as_str()) else {
        return Err(EstimateError::EmptyArm(format!(
            "the control arm {:?} has no firm in the assignment (arms: {})",
            opts.control,
            arms.join(", ")
        )));
    };
    let control = control as u32;
    let treatments: Vec<u32> = (0..arms.len() as u32).filter(|&a| a != control).collect();
    if treatments.is_empty() {
        return Err(EstimateError::EmptyArm(
            "the assignment has no treatment arm".into(),
        ));
    }

    // Attrition by arm, in one pass.
    let mut counts = vec![[0usize; 3]; arms.len()];
    for (i, &a) in unit_arm.iter().enumerate() {
        let s = &data.summaries[i];
        let c = &mut counts[a as usize];
        c[0] += 1;
        if s.post_rate.is_some() {
            c[1] += 1;
            if s.baseline.is_none() {
                c[2] += 1;
            }
        }
    }
    let attrition: Vec<Attrition> = arms
        .iter()
        .zip(&counts)
        .map(|(arm, &[assigned, with_post, no_pre])| Attrition {
            arm: (*arm).to_owned(),
            assigned,
            with_post_data: with_post,
            no_post_data: assigned - with_post,
            no_pre_data: no_pre,
        })
        .collect();

    let mut estimates = Vec::new();
    let mut skipped = Vec::new();
    let mut tests = Vec::new();
    let mut iv = Vec::new();
    let mut bounds = Vec::new();
    // The Holm family is the protocol's, whatever was asked for (ANALYSIS.md §6): run every
    // confirmatory estimator too, and keep only the requested ones at the end.
    let run: Vec<Estimator> = Estimator::ALL
        .iter()
        .copied()
        .filter(|e| opts.estimators.contains(e) || opts.confirmatory.contains(e))
        .filter(|e| !e.needs_takeup() || opts.takeup.is_some())
        .filter(|e| !e.is_randomization_inference())
        .collect();
    progress.stage(
        "estimate",
        (treatments.len() * opts.weights.len() * run.len()) as u64,
    );
    for &arm_id in &treatments {
        let arm = arms[arm_id as usize];
        let units: Vec<u32> = (0..data.units.len() as u32)
            .filter(|&i| {
                let a = unit_arm[i as usize];
                (a == arm_id || a == control) && data.summaries[i as usize].post_rate.is_some()
            })
            .collect();
        let contrast = Contrast {
            arm,
            treated: units
                .iter()
                .map(|&i| unit_arm[i as usize] == arm_id)
                .collect(),
            stratum: units.iter().map(|&i| unit_stratum[i as usize]).collect(),
            n_strata: ids.strata.len(),
            cluster: ids
                .cluster
                .as_ref()
                .map(|cl| units.iter().map(|&i| cl[i as usize]).collect()),
            received: opts.takeup.as_ref().map(|t| {
                units
                    .iter()
                    .map(|&i| t.received(data.units[i as usize].orgnr))
                    .collect()
            }),
            units,
        };
        let attrition_dropped =
            attrition[arm_id as usize].no_post_data + attrition[control as usize].no_post_data;
        if attrition_dropped > 0 && opts.estimators.contains(&Estimator::IttDim) {
            bounds.push(bounds::attrition_bounds(
                data,
                opts,
                (arm_id, control),
                arm,
            )?);
        }
        for &weighting in &opts.weights {
            let mut ctx = Ctx {
                data,
                opts,
                contrast: &contrast,
                weighting,
                attrition_dropped,
                control_mean: f64::NAN,
                weight_summary: None,
                progress,
            };
            ctx.control_mean = ctx.control_mean();
            ctx.weight_summary = ctx.weights().map(|w| {
                WeightSummary::of(contrast.treated.iter().copied().zip(w.iter().copied()))
            });
            for &estimator in &run {
                progress.check()?;
                let result = match estimator {
                    Estimator::IttDim => ctx.itt_dim().map(|e| vec![e]),
                    Estimator::IttAncova => ctx.itt_ancova().map(|e| vec![e]),
                    Estimator::IttLin => ctx.itt_lin().map(|e| vec![e]),
                    Estimator::DidTwfe => ctx.did_twfe(&mut skipped),
                    Estimator::EventStudy => ctx.event_study(&mut tests, &mut skipped),
                    Estimator::CaceIv => ctx.cace_iv(&mut iv, &mut skipped),
                    Estimator::Ri => continue,
                };
                progress.advance(1);
                match result {
                    Ok(rows) => estimates.extend(rows),
                    Err(EstimateError::Cancelled) => return Err(EstimateError::Cancelled),
                    Err(e) => skipped.push(Skipped {
                        estimator: estimator.name().into(),
                        arm: arm.into(),
                        weights: weighting.name().into(),
                        se_type: None,
                        error: e.to_string(),
                    }),
                }
            }
        }
    }
    // Holm within each weighting's confirmatory family: every confirmatory estimator x every
    // treatment arm. A member that could not be computed counts as p = 1, and its `skipped`
    // entry says so.
    for &weighting in &opts.weights {
        let mut members: Vec<Option<usize>> = Vec::new();
        for &arm_id in &treatments {
            for estimator in &opts.confirmatory {
                members.push((0..estimates.len()).find(|&i| {
                    let e = &estimates[i];
                    e.confirmatory
                        && e.weights == weighting.name()
                        && e.estimator == estimator.name()
                        && e.arm == arms[arm_id as usize]
                }));
            }
        }
        let adjusted = holm(
            &members
                .iter()
                .map(|m| m.map_or(1.0, |i| estimates[i].p_value))
                .collect::<Vec<_>>(),
        );
        for (m, p) in members.iter().zip(adjusted) {
            if let Some(i) = m {
                estimates[*i].p_holm = Some(p);
            }
        }
    }
    for s in &mut skipped {
        if s.se_type.is_none()
            && opts.confirmatory.iter().any(|e| e.name() == s.estimator)
            && opts.weights.iter().any(|w| w.name() == s.weights)
        {
            s.error
                .push_str(" (a confirmatory estimate: counted as p = 1 in the Holm family)");
        }
    }
    let ri = match &opts.ri {
        Some(ri_opts) if opts.estimators.contains(&Estimator::Ri) => ri::randomization_inference(
            data,
            opts,
            ri_opts,
            (control, &treatments, &arms),
            &mut skipped,
            progress,
        )?,
        _ => Vec::new(),
    };
    let asked = |name: &str| opts.estimators.iter().any(|e| e.name() == name);
    estimates.retain(|e| asked(&e.estimator));
    tests.retain(|t| asked(&t.estimator));
    skipped.retain(|s| asked(&s.estimator));
    iv.retain(|d: &IvDetail| asked(&d.estimator));
    Ok(Report {
        estimates,
        tests,
        skipped,
        attrition,
        iv,
        ri,
        bounds,
    })
}

struct Ctx<'a> {
    data: &'a StudyData,
    opts: &'a Options,
    contrast: &'a Contrast<'a>,
    weighting: Weighting,
    attrition_dropped: usize,
    /// The control arm's (weighted) mean outcome, for every estimate's `control_mean`.
    control_mean: f64,
    /// Under `dagsverk`: the concentration of each arm's weight, for every estimate.
    weight_summary: Option<WeightSummary>,
    /// Where the run reports, and whether it was cancelled.
    progress: &'a Progress,
}

/// An ANCOVA fit, its z row's influence, and `dropped` with the collinear baseline columns.
type AncovaZ = (ols::Fit, Vec<f64>, BTreeMap<String, usize>);

/// The core numbers of one estimate.
struct Core {
    estimator: Estimator,
    term: String,
    /// The event study's relative quarter.
    event_time: Option<i32>,
    estimate: f64,
    variance: f64,
    df: f64,
    n_units: usize,
    n_clusters: Option<usize>,
    n_obs: usize,
    se_type: String,
    ssc_factor: Option<f64>,
    design: String,
    dropped: BTreeMap<String, usize>,
}

impl Ctx<'_> {
    fn y(&self) -> Array1<f64> {
        self.contrast
            .units
            .iter()
            .map(|&i| {
                self.data.summaries[i as usize]
                    .post_rate
                    .unwrap_or(f64::NAN)
            })
            .collect()
    }

    fn weights(&self) -> Option<Array1<f64>> {
        match self.weighting {
            Weighting::Firm => None,
            Weighting::Dagsverk => Some(
                self.contrast
                    .units
                    .iter()
                    .map(|&i| self.data.summaries[i as usize].post_mulige)
                    .collect(),
            ),
        }
    }

    fn control_mean(&self) -> f64 {
        let y = self.y();
        let w = self.weights();
        let mut num = 0.0;
        let mut den = 0.0;
        for k in 0..y.len() {
            if !self.contrast.treated[k] {
                let wk = w.as_ref().map_or(1.0, |w| w[k]);
                num += wk * y[k];
                den += wk;
            }
        }
        num / den
    }

    fn base_dropped(&self) -> BTreeMap<String, usize> {
        let mut d = BTreeMap::new();
        if self.attrition_dropped > 0 {
            d.insert("no_post_data".to_owned(), self.attrition_dropped);
        }
        d
    }

    fn check_arms(&self, treated: &[bool]) -> Result<(), EstimateError> {
        let n1 = treated.iter().filter(|t| **t).count();
        let n0 = treated.len() - n1;
        if n1 == 0 || n0 == 0 {
            return Err(EstimateError::EmptyArm(format!(
                "{} firm(s) in {} and {} in {} have post-period data",
                n1, self.contrast.arm, n0, self.opts.control
            )));
        }
        if n1 < 2 || n0 < 2 {
            return Err(EstimateError::TooFewClusters(format!(
                "{n1} firm(s) in {} and {n0} in {}; robust standard errors need at least 2 in each \
                 arm",
                self.contrast.arm, self.opts.control
            )));
        }
        // A cluster-robust variance with one cluster in an arm is degenerate (the arm is that
        // cluster): refuse rather than report a zero standard error.
        if let Some(cl) = &self.contrast.cluster {
            let mut per_arm = [BTreeSet::new(), BTreeSet::new()];
            for (k, t) in self.contrast.treated.iter().enumerate() {
                per_arm[usize::from(*t)].insert(cl[k]);
            }
            if per_arm.iter().any(|s| s.len() < 2) {
                return Err(EstimateError::TooFewClusters(format!(
                    "{} cluster(s) in {} and {} in {}; cluster-robust standard errors need at \
                     least 2 in each arm",
                    per_arm[1].len(),
                    self.contrast.arm,
                    per_arm[0].len(),
                    self.opts.control
                )));
            }
        }
        Ok(())
    }

    fn finish(&self, core: Core) -> Result<Estimate, EstimateError> {
        if !(core.variance.is_finite() && core.variance >= 0.0 && core.estimate.is_finite()) {
            return Err(EstimateError::Singular(format!(
                "{} gave a non-finite estimate or variance",
                core.estimator.name()
            )));
        }
        if !(core.df.is_finite() && core.df > 0.0) {
            return Err(EstimateError::Design(format!(
                "{} has {} degrees of freedom",
                core.estimator.name(),
                core.df
            )));
        }
        let se = core.variance.sqrt();
        let statistic = core.estimate / se;
        let q = t_quantile(1.0 - (1.0 - self.opts.conf_level) / 2.0, core.df);
        let control_mean = self.control_mean;
        let primary = core.term == "z" || core.term == "d" || core.term == "received";
        // Every weighted estimate says so in its design (the difference in means already does).
        let design = if self.weighting == Weighting::Dagsverk && !core.design.ends_with(WEIGHTED) {
            format!("{}{WEIGHTED}", core.design)
        } else {
            core.design
        };
        Ok(Estimate {
            estimator: core.estimator.name().into(),
            outcome: self.opts.outcome.clone(),
            arm: self.contrast.arm.into(),
            versus: self.opts.control.clone(),
            weights: self.weighting.name().into(),
            term: core.term,
            event_time: core.event_time,
            estimate: core.estimate,
            std_error: se,
            df: core.df,
            statistic,
            p_value: t_p_value(statistic, core.df),
            p_holm: None,
            ci_low: core.estimate - q * se,
            ci_high: core.estimate + q * se,
            conf_level: self.opts.conf_level,
            control_mean,
            relative_effect: 100.0 * core.estimate / control_mean,
            n_units: core.n_units,
            n_clusters: core.n_clusters,
            n_obs: core.n_obs,
            se_type: core.se_type,
            ssc_factor: core.ssc_factor,
            design,
            dropped: core.dropped,
            vintage: self.opts.vintage,
            protocol_hash: self.opts.protocol_hash.clone(),
            confirmatory: primary
                && se.is_finite()
                && self.opts.confirmatory.contains(&core.estimator),
            weight_summary: self.weight_summary,
        })
    }

    fn itt_dim(&self) -> Result<Estimate, EstimateError> {
        let c = self.contrast;
        self.check_arms(&c.treated)?;
        let y = self.y();
        let w = self.weights();
        let r = dim::difference_in_means(DimInput {
            y: y.view(),
            treated: &c.treated,
            block: &c.stratum,
            n_blocks: c.n_strata,
            weights: w.as_ref().map(|w| w.view()),
            clusters: c.cluster.as_deref(),
        })?;
        let mut dropped = self.base_dropped();
        if r.dropped_units > 0 {
            dropped.insert("stratum_without_both_arms".into(), r.dropped_units);
        }
        let se_type = if c.cluster.is_some() {
            "CR2"
        } else if w.is_some() {
            // HC2 within each stratum, combined with the strata's shares (ANALYSIS.md §5).
            "per-stratum HC2"
        } else {
            match r.design.as_str() {
                "Blocked" => "Neyman",
                "Matched-pair" => "Matched-pair",
                _ => "Pashley-Miratrix",
            }
        };
        let n_clusters = c.cluster.as_ref().map(|cl| {
            let used: BTreeSet<u32> = (0..cl.len()).map(|k| cl[k]).collect();
            used.len()
        });
        self.finish(Core {
            estimator: Estimator::IttDim,
            term: "z".into(),
            event_time: None,
            estimate: r.estimate,
            variance: r.variance,
            df: r.df,
            n_units: r.n_units,
            n_clusters,
            n_obs: r.n_units,
            se_type: se_type.into(),
            ssc_factor: None,
            design: r.design,
            dropped,
        })
    }

    /// Baseline columns: b (0 when missing) and, when any is missing, the indicator.
    fn baseline_columns(&self, units: &[u32]) -> Vec<(String, Vec<f64>)> {
        self.data
            .baseline_columns(units.iter().map(|&i| i as usize))
    }

    /// HC2, or CR2 when clusters were randomized, of the contrast's rows `keep`: variance, df,
    /// SE type and clusters. Rows with leverage one under HC2 are counted in `dropped`.
    fn robust(
        &self,
        fit: &ols::Fit,
        influence: &[f64],
        keep: &[usize],
        dropped: &mut BTreeMap<String, usize>,
    ) -> Result<(f64, f64, String, Option<usize>), EstimateError> {
        let c = self.contrast;
        match &c.cluster {
            Some(cl) => {
                let ids: Vec<u32> = keep.iter().map(|&k| cl[k]).collect();
                let clusters = Clusters::from_ids(&ids);
                if clusters.len() < 2 {
                    return Err(EstimateError::TooFewClusters(format!(
                        "{} cluster(s); CR2 needs at least 2",
                        clusters.len()
                    )));
                }
                let r = fit.cr2(influence, &clusters)?;
                Ok((r.variance, r.df, "CR2".into(), Some(clusters.len())))
            }
            None => {
                let (v, saturated) = fit.hc2(influence);
                if saturated > 0 {
                    dropped.insert("leverage_one_rows".into(), saturated);
                }
                let df = fit.n() as f64 - fit.rank() as f64;
                Ok((v, df, "HC2".into(), None))
            }
        }
    }

    /// The ANCOVA design: the arm indicator, then the baseline columns (stratum effects absorbed).
    fn ancova_design(&self) -> (Array2<f64>, Vec<(String, Vec<f64>)>) {
        let c = self.contrast;
        let base = self.baseline_columns(&c.units);
        let x = Array2::from_shape_fn((c.units.len(), 1 + base.len()), |(i, j)| {
            if j == 0 {
                f64::from(u8::from(c.treated[i]))
            } else {
                base[j - 1].1[i]
            }
        });
        (x, base)
    }

    /// `outcome` on the ANCOVA design `x` with the stratum effects absorbed (and weights).
    fn fit_ancova(
        &self,
        outcome: &Array1<f64>,
        x: &Array2<f64>,
        w: Option<&Array1<f64>>,
    ) -> Result<ols::Fit, EstimateError> {
        ols::fit(Problem {
            y: outcome.view(),
            x: x.view(),
            group: &self.contrast.stratum,
            n_groups: self.contrast.n_strata,
            weights: w.map(|w| w.view()),
        })
    }

    /// The ANCOVA fit of `outcome` and what its z coefficient's robust SE needs: the fit, the z
    /// row's influence, and `dropped` naming the baseline columns found collinear.
    fn ancova_z(
        &self,
        outcome: &Array1<f64>,
        x: &Array2<f64>,
        base: &[(String, Vec<f64>)],
        w: Option<&Array1<f64>>,
    ) -> Result<AncovaZ, EstimateError> {
        let fit = self.fit_ancova(outcome, x, w)?;
        if fit.ginv.dropped.contains(&0) {
            return Err(EstimateError::Singular(
                "the arm indicator is collinear with the strata and baseline".into(),
            ));
        }
        let mut z = Array1::zeros(x.ncols());
        z[0] = 1.0;
        let influence = fit.influence(&[], z.view());
        let mut dropped = self.base_dropped();
        for &k in &fit.ginv.dropped {
            dropped.insert(format!("collinear_column:{}", base[k - 1].0), 0);
        }
        Ok((fit, influence, dropped))
    }

    fn itt_ancova(&self) -> Result<Estimate, EstimateError> {
        let c = self.contrast;
        self.check_arms(&c.treated)?;
        let keep: Vec<usize> = (0..c.units.len()).collect();
        let y = self.y();
        let w = self.weights();
        let (x, base) = self.ancova_design();
        let n = x.nrows();
        let (fit, influence, mut dropped) = self.ancova_z(&y, &x, &base, w.as_ref())?;
        let (variance, df, se_type, n_clusters) =
            self.robust(&fit, &influence, &keep, &mut dropped)?;
        self.finish(Core {
            estimator: Estimator::IttAncova,
            term: "z".into(),
            event_time: None,
            estimate: fit.beta[0],
            variance,
            df,
            n_units: n,
            n_clusters,
            n_obs: n,
            se_type,
            ssc_factor: None,
            design: "Stratum fixed effects".into(),
            dropped,
        })
    }

    fn itt_lin(&self) -> Result<Estimate, EstimateError> {
        let c = self.contrast;
        self.check_arms(&c.treated)?;
        // Which arms each stratum has (after attrition). lm_lin keeps every firm; the interaction
        // z x stratum_j of a stratum without both arms is a linear combination of earlier columns
        // and is dropped, so that stratum's effect is the one of the stratum whose interaction is
        // absent: the first stratum in sorted order (left out of the dummies) when it has both
        // arms, else the last stratum with both arms, whose interaction R's qr() finds
        // redundant once z and the others are in (ANALYSIS.md §4).
        let mut has = vec![[false; 2]; c.n_strata];
        for k in 0..c.units.len() {
            has[c.stratum[k] as usize][usize::from(c.treated[k])] = true;
        }
        let present: Vec<usize> = (0..c.n_strata).filter(|&j| has[j] != [false; 2]).collect();
        let both: Vec<usize> = present
            .iter()
            .copied()
            .filter(|&j| has[j] == [true; 2])
            .collect();
        let (Some(&first), Some(&last_both)) = (present.first(), both.last()) else {
            return Err(EstimateError::Singular(
                "no stratum has firms of both arms: the arm indicator is collinear with the strata"
                    .into(),
            ));
        };
        let anchor = if has[first] == [true; 2] {
            first
        } else {
            last_both
        };
        let mut dropped = self.base_dropped();
        if both.len() < present.len() {
            dropped.insert("collinear_column:z*stratum_without_both_arms".into(), 0);
        }
        let n = c.units.len();
        let keep: Vec<usize> = (0..n).collect();
        let y = self.y();
        let w = self.weights();
        let base = self.baseline_columns(&c.units);
        let nb = base.len();
        // Columns: each baseline column times z, then times (1 - z).
        let x = Array2::from_shape_fn((n, 2 * nb), |(i, j)| {
            let (col, arm) = (j / 2, j % 2 == 0);
            if c.treated[i] == arm {
                base[col].1[i]
            } else {
                0.0
            }
        });
        let group: Vec<u32> = (0..n)
            .map(|k| c.stratum[k] * 2 + u32::from(c.treated[k]))
            .collect();
        let fit = ols::fit(Problem {
            y: y.view(),
            x: x.view(),
            group: &group,
            n_groups: 2 * c.n_strata,
            weights: w.as_ref().map(|w| w.view()),
        })?;
        // θ = Σ_j p_j (FE_(j,1) − FE_(j,0)) + Σ_cov x̄ (γ_1 − γ_0), p_j and x̄ (weighted) over the sample.
        let wv: Vec<f64> = match &w {
            Some(w) => w.to_vec(),
            None => vec![1.0; n],
        };
        let total: f64 = wv.iter().sum();
        let mut share = vec![0.0; c.n_strata];
        for (k, wk) in wv.iter().enumerate() {
            share[c.stratum[k] as usize] += wk / total;
        }
        // A stratum without both arms takes the anchor's effect (see above).
        let mut cvec = vec![0.0; 2 * c.n_strata];
        for (j, s) in share.iter().enumerate() {
            let to = if has[j] == [true; 2] { j } else { anchor };
            cvec[2 * to + 1] += *s;
            cvec[2 * to] -= *s;
        }
        let mut d = Array1::zeros(2 * nb);
        for (col, (_, values)) in base.iter().enumerate() {
            let mean: f64 = values.iter().zip(&wv).map(|(v, w)| v * w).sum::<f64>() / total;
            d[2 * col] = mean;
            d[2 * col + 1] = -mean;
        }
        // A covariate without variation in one arm (e.g. no treated firm lacks a baseline) has no
        // slope there; lm_lin then drops the later, interacted column, so that arm shares the
        // other arm's slope and the covariate terms cancel in θ (ANALYSIS.md §4).
        for col in 0..nb {
            let (treated_col, control_col) = (2 * col, 2 * col + 1);
            if fit.ginv.dropped.contains(&treated_col) || fit.ginv.dropped.contains(&control_col) {
                d[treated_col] = 0.0;
                d[control_col] = 0.0;
            }
        }
        let influence = fit.influence(&cvec, d.view());
        let estimate = fit.value(&influence, &ols::transformed_y(&fit, y.view()));
        for &k in &fit.ginv.dropped {
            let arm = if k % 2 == 0 { "z" } else { "1-z" };
            dropped.insert(format!("collinear_column:{}*{arm}", base[k / 2].0), 0);
        }
        let (variance, df, se_type, n_clusters) =
            self.robust(&fit, &influence, &keep, &mut dropped)?;
        self.finish(Core {
            estimator: Estimator::IttLin,
            term: "z".into(),
            event_time: None,
            estimate,
            variance,
            df,
            n_units: n,
            n_clusters,
            n_obs: n,
            se_type,
            ssc_factor: None,
            design: "Lin (interacted strata and baseline)".into(),
            dropped,
        })
    }

    /// The contrast's panel; `treat_col` maps a treated row's relative quarter to its column.
    fn panel(&self, n_treat: usize, treat_col: impl Fn(i32) -> Option<u16>) -> (Panel, usize) {
        let c = self.contrast;
        let pre = self.data.windows.pre as i32;
        let n_quarters = (self.data.windows.pre + self.data.windows.post) as usize;
        // The contrast's position of each unit of the study (u32::MAX: not in the contrast).
        let mut pos = vec![u32::MAX; self.data.units.len()];
        for (k, &u) in c.units.iter().enumerate() {
            if let Some(slot) = pos.get_mut(u as usize) {
                *slot = k as u32;
            }
        }
        let in_contrast = |o: &&Obs| pos.get(o.unit as usize).is_some_and(|&k| k != u32::MAX);
        // Exact capacities: the panel is the largest allocation of a register-scale estimate.
        let n = self.data.obs.iter().filter(in_contrast).count();
        let weighted = self.weighting == Weighting::Dagsverk;
        let mut p = Panel {
            firm: Vec::with_capacity(n),
            quarter: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            w: Vec::with_capacity(if weighted { n } else { 0 }),
            treat_col: Vec::with_capacity(n),
            n_treat,
            n_quarters,
            firm_cluster: (0..c.units.len())
                .map(|k| c.cluster.as_ref().map_or(k as u32, |cl| cl[k]))
                .collect(),
            n_clusters: c.cluster.as_ref().map_or(c.units.len(), |cl| {
                cl.iter().max().map_or(0, |m| *m as usize + 1)
            }),
        };
        for o in self.data.obs.iter().filter(in_contrast) {
            let k = pos[o.unit as usize] as usize;
            let rel = i32::from(o.rel);
            p.firm.push(k as u32);
            p.quarter.push((rel + pre) as u16);
            p.y.push(100.0 * o.tapte / o.mulige);
            if weighted {
                p.w.push(o.mulige);
            }
            p.treat_col.push(if c.treated[k] {
                treat_col(rel).unwrap_or(u16::MAX)
            } else {
                u16::MAX
            });
        }
        let singletons = panel::drop_singletons(&mut p);
        (p, singletons)
    }

    fn panel_dropped(&self, singletons: usize) -> BTreeMap<String, usize> {
        let mut d = self.base_dropped();
        if singletons > 0 {
            d.insert("singleton".into(), singletons);
        }
        d
    }

    fn panel_units(p: &Panel) -> usize {
        let mut n = 0;
        for i in 0..p.firm.len() {
            if i == 0 || p.firm[i] != p.firm[i - 1] {
                n += 1;
            }
        }
        n
    }

    fn did_twfe(&self, skipped: &mut Vec<Skipped>) -> Result<Vec<Estimate>, EstimateError> {
        let c = self.contrast;
        self.check_arms(&c.treated)?;
        let (p, singletons) = self.panel(1, |rel| (rel >= 0).then_some(0));
        let fit = panel::fit_cr1(&p)?;
        let mut out = vec![self.finish(Core {
            estimator: Estimator::DidTwfe,
            term: "d".into(),
            event_time: None,
            estimate: fit.beta[0],
            variance: fit.vcov_cr1[[0, 0]],
            df: fit.n_clusters as f64 - 1.0,
            n_units: Self::panel_units(&p),
            n_clusters: Some(fit.n_clusters),
            n_obs: fit.n_obs,
            se_type: "CR1".into(),
            ssc_factor: Some(fit.ssc_factor),
            design: "Two-way fixed effects (firm, quarter)".into(),
            dropped: self.panel_dropped(singletons),
        })?];
        if self.opts.did_cr2 {
            match panel::cr2(&p, &fit, self.progress).and_then(|r| {
                r.into_iter()
                    .next()
                    .ok_or_else(|| EstimateError::Internal("no CR2 of d".into()))
            }) {
                Ok(r) => out.push(self.finish(Core {
                    estimator: Estimator::DidTwfe,
                    term: "d".into(),
                    event_time: None,
                    estimate: fit.beta[0],
                    variance: r.variance,
                    df: r.df,
                    n_units: Self::panel_units(&p),
                    n_clusters: Some(fit.n_clusters),
                    n_obs: fit.n_obs,
                    se_type: "CR2".into(),
                    ssc_factor: None,
                    design: "Two-way fixed effects (firm, quarter)".into(),
                    dropped: self.panel_dropped(singletons),
                })?),
                Err(EstimateError::Cancelled) => return Err(EstimateError::Cancelled),
                Err(e) => skipped.push(Skipped {
                    estimator: Estimator::DidTwfe.name().into(),
                    arm: c.arm.into(),
                    weights: self.weighting.name().into(),
                    se_type: Some("CR2".into()),
                    error: e.to_string(),
                }),
            }
        }
        // CR2 rows are not part of the confirmatory family (CR1 is the pre-registered SE).
        for e in out.iter_mut().skip(1) {
            e.confirmatory = false;
        }
        Ok(out)
    }

    fn event_study(
        &self,
        tests: &mut Vec<WaldTest>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<Estimate>, EstimateError> {
        let c = self.contrast;
        self.check_arms(&c.treated)?;
        let pre = self.data.windows.pre as i32;
        let post = self.data.windows.post as i32;
        let rels: Vec<i32> = (-pre..post).filter(|&e| e != -1).collect();
        let col_of: HashMap<i32, u16> = rels
            .iter()
            .enumerate()
            .map(|(k, &e)| (e, k as u16))
            .collect();
        let (p, singletons) = self.panel(rels.len(), |rel| col_of.get(&rel).copied());
        let fit = panel::fit_cr1(&p)?;
        let df = fit.n_clusters as f64 - 1.0;
        let n_units = Self::panel_units(&p);
        let mut out = Vec::with_capacity(rels.len() + 1);
        for (k, &e) in rels.iter().enumerate() {
            out.push(self.finish(Core {
                estimator: Estimator::EventStudy,
                term: format!("e={e}"),
                event_time: Some(e),
                estimate: fit.beta[k],
                variance: fit.vcov_cr1[[k, k]],
                df,
                n_units,
                n_clusters: Some(fit.n_clusters),
                n_obs: fit.n_obs,
                se_type: "CR1".into(),
                ssc_factor: Some(fit.ssc_factor),
                design: "Event study, reference e=-1".into(),
                dropped: self.panel_dropped(singletons),
            })?);
        }
        // CR2 with Satterthwaite df per coefficient, on request (not confirmatory, as did_twfe's).
        if self.opts.did_cr2 {
            match panel::cr2(&p, &fit, self.progress) {
                Ok(cr2) => {
                    for ((k, &e), r) in rels.iter().enumerate().zip(cr2) {
                        let mut row = self.finish(Core {
                            estimator: Estimator::EventStudy,
                            term: format!("e={e}"),
                            event_time: Some(e),
                            estimate: fit.beta[k],
                            variance: r.variance,
                            df: r.df,
                            n_units,
                            n_clusters: Some(fit.n_clusters),
                            n_obs: fit.n_obs,
                            se_type: "CR2".into(),
                            ssc_factor: None,
                            design: "Event study, reference e=-1".into(),
                            dropped: self.panel_dropped(singletons),
                        })?;
                        row.confirmatory = false;
                        out.push(row);
                    }
                }
                Err(EstimateError::Cancelled) => return Err(EstimateError::Cancelled),
                Err(e) => skipped.push(Skipped {
                    estimator: Estimator::EventStudy.name().into(),
                    arm: c.arm.into(),
                    weights: self.weighting.name().into(),
                    se_type: Some("CR2".into()),
                    error: e.to_string(),
                }),
            }
        }
        // Joint Wald test of the leads (e <= -2), F on (rank, G - 1).
        let leads: Vec<usize> = rels
            .iter()
            .enumerate()
            .filter(|(_, e)| **e <= -2)
            .map(|(k, _)| k)
            .collect();
        if !leads.is_empty() {
            let l = leads.len();
            let v = Array2::from_shape_fn((l, l), |(a, b)| fit.vcov_cr1[[leads[a], leads[b]]]);
            let b: Array1<f64> = leads.iter().map(|&k| fit.beta[k]).collect();
            let vinv = invert_gram(&v);
            let rank = vinv.kept.len();
            if rank > 0 {
                let f = b.dot(&vinv.inv.dot(&b)) / rank as f64;
                tests.push(WaldTest {
                    estimator: Estimator::EventStudy.name().into(),
                    arm: c.arm.into(),
                    versus: self.opts.control.clone(),
                    weights: self.weighting.name().into(),
                    hypothesis: format!("all {l} leads (e <= -2) are zero"),
                    statistic: f,
                    df_num: rank as f64,
                    df_den: df,
                    p_value: f_p_value(f, rank as f64, df),
                    se_type: "CR1".into(),
                    n_clusters: fit.n_clusters,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Orgnr, Quarter};
    use crate::estimate::data::{AssignedUnit, Windows};

    /// Valid orgnrs (MOD11) from a counter.
    fn orgnr(k: u32) -> Orgnr {
        let mut n = 800_000_000 + k * 100;
        loop {
            if let Ok(o) = format!("{n:09}").parse::<Orgnr>() {
                return o;
            }
            n += 1;
        }
    }

    fn study(arms: &[(&str, &str, Option<&str>)], with_post: impl Fn(usize) -> bool) -> StudyData {
        let r: Quarter = "2025K1".parse().expect("quarter");
        let units: Vec<AssignedUnit> = arms
            .iter()
            .enumerate()
            .map(|(i, (arm, stratum, klynge))| AssignedUnit {
                orgnr: orgnr(i as u32),
                arm: (*arm).into(),
                stratum: (*stratum).into(),
                klynge: klynge.map(str::to_owned),
            })
            .collect();
        let mut rows = Vec::new();
        for (i, u) in units.iter().enumerate() {
            for t in -2..2 {
                if t >= 0 && !with_post(i) {
                    continue;
                }
                let mulige = 100.0 + i as f64;
                let tapte = mulige * (0.05 + 0.001 * ((i * 7 + (t + 2) as usize * 3) % 13) as f64);
                rows.push((u.orgnr, r.plus(t).expect("quarter"), tapte, mulige));
            }
        }
        let windows = Windows {
            randomized_at: r,
            pre: 2,
            post: 2,
        };
        StudyData::from_values(windows, units, rows).expect("study")
    }

    fn errors_of(report: &Report, estimator: &str) -> Vec<String> {
        report
            .skipped
            .iter()
            .filter(|s| s.estimator == estimator)
            .map(|s| s.error.clone())
            .collect()
    }

    #[test]
    fn an_arm_without_post_data_is_a_typed_error_not_a_nan() {
        let design: Vec<(&str, &str, Option<&str>)> = (0..12)
            .map(|i| (if i % 2 == 0 { "kontroll" } else { "a" }, "s1", None))
            .collect();
        let data = study(&design, |i| i % 2 == 0);
        let report = estimate(&data, &Options::all("kontroll")).expect("report");
        assert!(report.estimates.is_empty());
        for e in Estimator::ALL
            .into_iter()
            .filter(|e| !e.needs_takeup() && !e.is_randomization_inference())
        {
            let errors = errors_of(&report, e.name());
            assert!(!errors.is_empty(), "{e:?}");
            assert!(
                errors.iter().all(|m| m.starts_with("empty arm")),
                "{errors:?}"
            );
        }
        assert_eq!(
            report
                .attrition
                .iter()
                .map(|a| a.no_post_data)
                .sum::<usize>(),
            6
        );
    }

    #[test]
    fn one_cluster_per_arm_is_too_few_clusters() {
        let design: Vec<(&str, &str, Option<&str>)> = (0..12)
            .map(|i| {
                if i % 2 == 0 {
                    ("kontroll", "s1", Some("k0"))
                } else {
                    ("a", "s1", Some("k1"))
                }
            })
            .collect();
        let data = study(&design, |_| true);
        let report = estimate(&data, &Options::all("kontroll")).expect("report");
        for e in ["itt_dim", "itt_ancova", "itt_lin", "did_twfe"] {
            let errors = errors_of(&report, e);
            assert!(!errors.is_empty(), "{e}: {:?}", report.estimates);
        }
        assert!(report.estimates.iter().all(|e| e.std_error.is_finite()));
        assert!(
            errors_of(&report, "did_twfe")
                .iter()
                .any(|m| m.contains("too few clusters"))
        );
    }

    #[test]
    fn a_missing_control_arm_is_refused() {
        let design: Vec<(&str, &str, Option<&str>)> = (0..6).map(|_| ("a", "s1", None)).collect();
        let data = study(&design, |_| true);
        assert!(matches!(
            estimate(&data, &Options::all("kontroll")),
            Err(EstimateError::EmptyArm(_))
        ));
    }

    /// Every estimator on 40 firms, two arms and two strata, all with post-period data; none is
    /// skipped.
    fn regular_report() -> Report {
        let design: Vec<(&str, &str, Option<&str>)> = (0..40)
            .map(|i| {
                let arm = ["kontroll", "a"][i % 2];
                (arm, ["s1", "s2"][(i / 2) % 2], None)
            })
            .collect();
        let data = study(&design, |_| true);
        let report = estimate(&data, &Options::all("kontroll")).expect("report");
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        report
    }

    #[test]
    fn every_estimate_is_finite_on_a_regular_design() {
        let report = regular_report();
        for e in &report.estimates {
            for v in [
                e.estimate,
                e.std_error,
                e.df,
                e.p_value,
                e.ci_low,
                e.ci_high,
            ] {
                assert!(v.is_finite(), "{e:?}");
            }
        }
    }

    /// Issue 11: every weighted estimate says `(weighted)` in its design, the weighted difference
    /// in means names its per-stratum HC2, and event-study rows carry their integer event time.
    #[test]
    fn weighted_designs_se_types_and_event_times_are_labelled() {
        let report = regular_report();
        let mut seen = BTreeSet::new();
        for e in &report.estimates {
            seen.insert((e.estimator.clone(), e.weights.clone()));
            assert_eq!(
                e.design.ends_with(" (weighted)"),
                e.weights == "dagsverk",
                "{} {} {}: {:?}",
                e.estimator,
                e.weights,
                e.se_type,
                e.design
            );
            assert!(!e.design.ends_with(" (weighted) (weighted)"), "{e:?}");
            let want_se = match (e.estimator.as_str(), e.weights.as_str()) {
                ("itt_dim", "dagsverk") => "per-stratum HC2",
                ("itt_dim", _) => "Neyman",
                ("itt_ancova" | "itt_lin", _) => "HC2",
                _ => e.se_type.as_str(),
            };
            assert_eq!(e.se_type, want_se, "{e:?}");
            let want_time = e
                .term
                .strip_prefix("e=")
                .map(|t| t.parse::<i32>().expect("event time"));
            assert_eq!(e.event_time, want_time, "{e:?}");
            assert_eq!(e.event_time.is_some(), e.estimator == "event_study");
        }
        // Every estimator in both weightings was checked.
        assert_eq!(seen.len(), 10, "{seen:?}");
        // The event study's CR1 rows, and its CR2 rows (not confirmatory) for the same times.
        for se in ["CR1", "CR2"] {
            let rows: Vec<&Estimate> = report
                .estimates
                .iter()
                .filter(|e| e.estimator == "event_study" && e.weights == "firm" && e.se_type == se)
                .collect();
            let times: Vec<i32> = rows.iter().filter_map(|e| e.event_time).collect();
            assert_eq!(times, [-2, 0, 1], "{se}");
            assert!(
                se == "CR1" || rows.iter().all(|e| !e.confirmatory),
                "{rows:?}"
            );
        }
    }

    /// Issue 10, defect 8: the Holm family is the protocol's confirmatory estimators x arms per
    /// weighting, whatever the estimator filter; a member that could not be computed counts as 1.
    #[test]
    fn the_holm_family_is_the_protocols_whatever_the_filter() {
        let design: Vec<(&str, &str, Option<&str>)> = (0..60)
            .map(|i| {
                let arm = ["kontroll", "a", "b"][i % 3];
                (arm, ["s1", "s2"][(i / 3) % 2], None)
            })
            .collect();
        let data = study(&design, |_| true);
        let mut all = Options::all("kontroll");
        all.confirmatory = vec![Estimator::IttAncova, Estimator::DidTwfe];
        let full = estimate(&data, &all).expect("report");
        let p_holm = |r: &Report, est: &str, arm: &str, w: &str| {
            r.estimates
                .iter()
                .find(|e| e.estimator == est && e.arm == arm && e.weights == w && e.confirmatory)
                .and_then(|e| e.p_holm)
        };
        for w in ["firm", "dagsverk"] {
            let members: Vec<(&str, &str)> = [
                ("itt_ancova", "a"),
                ("did_twfe", "a"),
                ("itt_ancova", "b"),
                ("did_twfe", "b"),
            ]
            .to_vec();
            let ps: Vec<f64> = members
                .iter()
                .map(|(est, arm)| {
                    full.estimates
                        .iter()
                        .find(|e| {
                            e.estimator == *est && e.arm == *arm && e.weights == w && e.confirmatory
                        })
                        .map(|e| e.p_value)
                        .expect("member")
                })
                .collect();
            let want = holm(&ps);
            for ((est, arm), want) in members.iter().zip(want) {
                assert_eq!(p_holm(&full, est, arm, w), Some(want), "{est} {arm} {w}");
            }
        }
        let mut only = all.clone();
        only.estimators = vec![Estimator::IttAncova];
        let filtered = estimate(&data, &only).expect("report");
        assert!(
            filtered
                .estimates
                .iter()
                .all(|e| e.estimator == "itt_ancova")
        );
        for arm in ["a", "b"] {
            assert_eq!(
                p_holm(&filtered, "itt_ancova", arm, "firm"),
                p_holm(&full, "itt_ancova", arm, "firm")
            );
        }
        // A member that cannot be computed (arm b keeps one firm with post data) counts as 1.
        let design: Vec<(&str, &str, Option<&str>)> = (0..40)
            .map(|i| (["kontroll", "a", "b"][i % 3], "s1", None))
            .collect();
        let data = study(&design, |i| i % 3 != 2 || i < 3);
        let mut opts = Options::all("kontroll");
        opts.confirmatory = vec![Estimator::IttAncova];
        opts.weights = vec![Weighting::Firm];
        let r = estimate(&data, &opts).expect("report");
        let refused = r
            .skipped
            .iter()
            .find(|s| s.estimator == "itt_ancova" && s.arm == "b")
            .expect("b refused");
        assert!(refused.error.contains("counted as p = 1"), "{refused:?}");
        let a = r
            .estimates
            .iter()
            .find(|e| e.estimator == "itt_ancova" && e.arm == "a")
            .expect("a");
        assert_eq!(a.p_holm, Some(holm(&[a.p_value, 1.0])[0]));
    }
}
