//! The attrition bounds beside `itt_dim` in the run (protocols/ANALYSIS.md §10).

use super::Options;
use crate::estimate::bounds::{self, BoundsInput, BoundsRow};
use crate::estimate::{EstimateError, StudyData};

/// Lee and Manski bounds of one contrast over every enrolled firm of the two arms.
pub(super) fn attrition_bounds(
    data: &StudyData,
    opts: &Options,
    (arm_id, control): (u32, u32),
    arm: &str,
) -> Result<BoundsRow, EstimateError> {
    let ids = &data.ids;
    let firms: Vec<usize> = (0..data.units.len())
        .filter(|&i| ids.arm[i] == arm_id || ids.arm[i] == control)
        .collect();
    let treated: Vec<bool> = firms.iter().map(|&i| ids.arm[i] == arm_id).collect();
    let stratum: Vec<u32> = firms.iter().map(|&i| ids.stratum[i]).collect();
    let y: Vec<Option<f64>> = firms.iter().map(|&i| data.summaries[i].post_rate).collect();
    let input = BoundsInput {
        treated: &treated,
        stratum: &stratum,
        n_strata: ids.strata.len(),
        y: &y,
    };
    let count = |arm: bool, observed: bool| {
        treated
            .iter()
            .zip(&y)
            .filter(|(t, y)| **t == arm && (!observed || y.is_some()))
            .count()
    };
    Ok(BoundsRow {
        outcome: opts.outcome.clone(),
        arm: arm.into(),
        versus: opts.control.clone(),
        n_treated: count(true, false),
        observed_treated: count(true, true),
        n_control: count(false, false),
        observed_control: count(false, true),
        lee: bounds::lee(&input, opts.conf_level).ok(),
        manski: bounds::manski(&input, bounds::RATE_RANGE)?,
        vintage: opts.vintage,
        protocol_hash: opts.protocol_hash.clone(),
    })
}
