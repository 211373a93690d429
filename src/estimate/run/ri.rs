//! Randomization inference in the run: every arm against control and every weighting
//! (protocols/ANALYSIS.md §9).

use super::{Options, Skipped};
use crate::estimate::ri::{self, RiContrast, RiOptions, RiRow, RiStatistic};
use crate::estimate::{EstimateError, Estimator, StudyData, Weighting};
use crate::progress::Progress;

/// `ri` for every arm against control and every weighting: the blocked difference in means, the
/// ANCOVA coefficient and (firms randomized one by one) its HC2 t, under re-draws of the
/// assignment ([`crate::estimate::ri`]). Progress: stage `ri`, one step per draw.
pub(super) fn randomization_inference(
    data: &StudyData,
    opts: &Options,
    ri_opts: &RiOptions,
    (control, treatments, arms): (u32, &[u32], &[&str]),
    skipped: &mut Vec<Skipped>,
    progress: &Progress,
) -> Result<Vec<RiRow>, EstimateError> {
    let mut jobs = Vec::new();
    for &arm_id in treatments {
        for &weighting in &opts.weights {
            let contrast =
                RiContrast::new(data, arm_id, control, weighting == Weighting::Dagsverk)?;
            jobs.push((arm_id, weighting, contrast));
        }
    }
    progress.stage("ri", jobs.iter().map(|j| j.2.n_draws(ri_opts.draws)).sum());
    let mut rows = Vec::new();
    for (arm_id, weighting, contrast) in &jobs {
        let arm = arms[*arm_id as usize];
        let skip = |statistic: RiStatistic, error: String| Skipped {
            estimator: Estimator::Ri.name().into(),
            arm: arm.into(),
            weights: weighting.name().into(),
            se_type: None,
            error: format!("{}: {error}", statistic.name()),
        };
        let mut statistics = vec![RiStatistic::Dim, RiStatistic::Ancova];
        if contrast.clustered {
            skipped.push(skip(
                RiStatistic::AncovaT,
                "the studentized ANCOVA of ri uses HC2; with klynger randomized its CR2 is not \
                 re-computed per draw in this version (dim and ancova are reported)"
                    .into(),
            ));
        } else {
            statistics.push(RiStatistic::AncovaT);
        }
        let results = match ri::randomization_inference(
            &contrast.design,
            &contrast.data(),
            &statistics,
            ri_opts,
            progress,
        ) {
            Ok(r) => r,
            Err(EstimateError::Cancelled) => return Err(EstimateError::Cancelled),
            Err(e) => {
                progress.advance(contrast.n_draws(ri_opts.draws));
                skipped.push(skip(RiStatistic::Dim, e.to_string()));
                continue;
            }
        };
        for result in results {
            rows.push(RiRow {
                outcome: opts.outcome.clone(),
                arm: arm.into(),
                versus: opts.control.clone(),
                weights: weighting.name().into(),
                procedure: ri::PROCEDURE_FROM_ASSIGNMENT.into(),
                n_units: contrast.design.n_units(),
                n_firms: contrast.n_firms,
                n_observed: contrast.n_observed(),
                result,
                vintage: opts.vintage,
                protocol_hash: opts.protocol_hash.clone(),
            });
        }
    }
    Ok(rows)
}
