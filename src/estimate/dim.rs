//! The blocked difference in means (docs/statistics.md B.4, ANALYSIS.md §5): estimatr's
//! `difference_in_means(blocks =)` for blocks with two or more units in each arm, Pashley & Miratrix
//! (2021) for blocks with a singleton arm, estimatr's weighted HC2 and clustered CR2 per block.

use ndarray::{Array1, Array2, ArrayView1};

use super::EstimateError;
use super::linalg::KahanSum;
use super::ols::{self, Clusters, Problem};

/// One contrast's data for the difference in means.
#[derive(Debug, Clone, Copy)]
pub struct DimInput<'a> {
    /// Outcome per unit.
    pub y: ArrayView1<'a, f64>,
    /// Treated (the arm) or control.
    pub treated: &'a [bool],
    /// Block (stratum) per unit, `0..n_blocks`.
    pub block: &'a [u32],
    /// Number of blocks.
    pub n_blocks: usize,
    /// Weights, or `None`.
    pub weights: Option<ArrayView1<'a, f64>>,
    /// Cluster per unit (dense ids), or `None` when units were randomized one by one.
    pub clusters: Option<&'a [u32]>,
}

/// The estimate and its design-based variance.
#[derive(Debug, Clone, PartialEq)]
pub struct DimResult {
    /// Σ_j (N_j/N) τ_j.
    pub estimate: f64,
    /// Estimated variance.
    pub variance: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// "Blocked", "Matched-pair", "Small blocks", "Hybrid blocked", "Block-clustered", with
    /// " (weighted)" appended for weights.
    pub design: String,
    /// Blocks used.
    pub n_blocks: usize,
    /// Units used.
    pub n_units: usize,
    /// Units in blocks where one arm had no unit (not used).
    pub dropped_units: usize,
}

#[derive(Debug, Clone, Default)]
struct Block {
    n: [usize; 2],
    w: [KahanSum; 2],
    wy: [KahanSum; 2],
    rows: Vec<usize>,
    clusters: [Vec<u32>; 2],
}

/// Estimates the blocked difference in means.
pub fn difference_in_means(input: DimInput<'_>) -> Result<DimResult, EstimateError> {
    let n = input.y.len();
    let mut blocks = vec![Block::default(); input.n_blocks];
    for i in 0..n {
        let j = input.block[i] as usize;
        let a = usize::from(input.treated[i]);
        let w = input.weights.map_or(1.0, |w| w[i]);
        let b = &mut blocks[j];
        b.n[a] += 1;
        b.w[a].add(w);
        b.wy[a].add(w * input.y[i]);
        b.rows.push(i);
        if let Some(c) = input.clusters
            && !b.clusters[a].contains(&c[i])
        {
            b.clusters[a].push(c[i]);
        }
    }
    let mut dropped_units = 0;
    let used: Vec<usize> = (0..input.n_blocks)
        .filter(|&j| {
            let b = &blocks[j];
            let both = b.n[0] > 0 && b.n[1] > 0;
            if !both {
                dropped_units += b.n[0] + b.n[1];
            }
            both
        })
        .collect();
    if used.is_empty() {
        return Err(EstimateError::EmptyArm(
            "no stratum has units in both the arm and the control group".into(),
        ));
    }
    let weighted = input.weights.is_some();
    let suffix = if weighted { " (weighted)" } else { "" };
    if input.clusters.is_some() {
        return clustered(&input, &blocks, &used, dropped_units, suffix);
    }
    if weighted {
        return weighted_hc2(&input, &blocks, &used, dropped_units);
    }
    // Unweighted, unit randomized.
    let mut tau = Vec::with_capacity(used.len());
    let mut vj = Vec::with_capacity(used.len());
    let mut size = Vec::with_capacity(used.len());
    let mut singleton = Vec::with_capacity(used.len());
    for &j in &used {
        let b = &blocks[j];
        let mean = [
            b.wy[0].value() / b.w[0].value(),
            b.wy[1].value() / b.w[1].value(),
        ];
        let mut ss = [KahanSum::default(), KahanSum::default()];
        for &i in &b.rows {
            let a = usize::from(input.treated[i]);
            let d = input.y[i] - mean[a];
            ss[a].add(d * d);
        }
        tau.push(mean[1] - mean[0]);
        size.push((b.n[0] + b.n[1]) as f64);
        let single = b.n[0] < 2 || b.n[1] < 2;
        singleton.push(single);
        vj.push(if single {
            f64::NAN
        } else {
            ss[1].value() / ((b.n[1] - 1) * b.n[1]) as f64
                + ss[0].value() / ((b.n[0] - 1) * b.n[0]) as f64
        });
    }
    let n_total: f64 = size.iter().sum();
    let estimate = weighted_sum(&tau, &size) / n_total;
    let big: Vec<usize> = (0..used.len()).filter(|&k| !singleton[k]).collect();
    let small: Vec<usize> = (0..used.len()).filter(|&k| singleton[k]).collect();
    let n_units = n_total as usize;
    let n_big: f64 = big.iter().map(|&k| size[k]).sum();
    let n_small: f64 = small.iter().map(|&k| size[k]).sum();
    let v_big = if big.is_empty() {
        0.0
    } else {
        let mut s = KahanSum::default();
        for &k in &big {
            s.add(size[k] * size[k] * vj[k]);
        }
        s.value() / (n_big * n_big)
    };
    let df_big = n_big - 2.0 * big.len() as f64;
    if small.is_empty() {
        return Ok(DimResult {
            estimate,
            variance: v_big,
            df: df_big,
            design: "Blocked".into(),
            n_blocks: used.len(),
            n_units,
            dropped_units,
        });
    }
    if small.len() == 1 {
        return Err(EstimateError::Design(
            "exactly one stratum has a single unit in the arm or the control group; its variance \
             cannot be estimated (Pashley & Miratrix need at least two such strata)"
                .into(),
        ));
    }
    let tau_small = small.iter().map(|&k| size[k] * tau[k]).sum::<f64>() / n_small;
    let equal = small.iter().all(|&k| size[k] == size[small[0]]);
    let ks = small.len() as f64;
    let v_small = if equal {
        let s: f64 = small.iter().map(|&k| (tau[k] - tau_small).powi(2)).sum();
        s / (ks * (ks - 1.0))
    } else {
        if let Some(&k) = small.iter().find(|&&k| 2.0 * size[k] >= n_small) {
            return Err(EstimateError::Design(format!(
                "a stratum with a singleton arm holds {} of the {} units in such strata (half or \
                 more); the Pashley-Miratrix variance is undefined",
                size[k], n_small
            )));
        }
        let omega: Vec<f64> = small
            .iter()
            .map(|&k| size[k] * size[k] / (n_small - 2.0 * size[k]))
            .collect();
        let num: f64 = small
            .iter()
            .zip(&omega)
            .map(|(&k, o)| o * (tau[k] - tau_small).powi(2))
            .sum();
        num / (n_small + omega.iter().sum::<f64>())
    };
    let df_small = ks - 1.0;
    let all_pairs = big.is_empty() && small.iter().all(|&k| size[k] == 2.0);
    if big.is_empty() {
        return Ok(DimResult {
            estimate,
            variance: v_small,
            df: df_small,
            design: if all_pairs {
                "Matched-pair"
            } else {
                "Small blocks"
            }
            .into(),
            n_blocks: used.len(),
            n_units,
            dropped_units,
        });
    }
    let part_big = (n_big / n_total).powi(2) * v_big;
    let part_small = (n_small / n_total).powi(2) * v_small;
    let variance = part_big + part_small;
    let df =
        variance * variance / (part_big * part_big / df_big + part_small * part_small / df_small);
    Ok(DimResult {
        estimate,
        variance,
        df,
        design: "Hybrid blocked".into(),
        n_blocks: used.len(),
        n_units,
        dropped_units,
    })
}

fn weighted_sum(values: &[f64], weights: &[f64]) -> f64 {
    let mut s = KahanSum::default();
    for (v, w) in values.iter().zip(weights) {
        s.add(v * w);
    }
    s.value()
}

/// Weighted: estimatr hands each block to `lm_robust` with HC2; block weights are the blocks'
/// shares of the weights; df = rows − 2 × blocks.
fn weighted_hc2(
    input: &DimInput<'_>,
    blocks: &[Block],
    used: &[usize],
    dropped_units: usize,
) -> Result<DimResult, EstimateError> {
    let w = input
        .weights
        .ok_or_else(|| EstimateError::Internal("weights expected".into()))?;
    if let Some(&j) = used
        .iter()
        .find(|&&j| blocks[j].n[0] < 2 || blocks[j].n[1] < 2)
    {
        let b = &blocks[j];
        return Err(EstimateError::Design(format!(
            "a stratum has {} unit(s) in the arm and {} in the control group; the weighted \
             difference in means needs two in each (use itt_lin, or the firm weighting)",
            b.n[1], b.n[0]
        )));
    }
    let w_total: f64 = used
        .iter()
        .map(|&j| blocks[j].w[0].value() + blocks[j].w[1].value())
        .sum();
    let mut est = KahanSum::default();
    let mut var = KahanSum::default();
    let mut rows = 0;
    for &j in used {
        let b = &blocks[j];
        let wa = [b.w[0].value(), b.w[1].value()];
        let mean = [b.wy[0].value() / wa[0], b.wy[1].value() / wa[1]];
        let share = (wa[0] + wa[1]) / w_total;
        est.add(share * (mean[1] - mean[0]));
        let mut vj = KahanSum::default();
        for &i in &b.rows {
            let a = usize::from(input.treated[i]);
            let h = w[i] / wa[a];
            let e = input.y[i] - mean[a];
            vj.add(h * h * e * e / (1.0 - h));
        }
        var.add(share * share * vj.value());
        rows += b.n[0] + b.n[1];
    }
    Ok(DimResult {
        estimate: est.value(),
        variance: var.value(),
        df: rows as f64 - 2.0 * used.len() as f64,
        design: "Blocked (weighted)".into(),
        n_blocks: used.len(),
        n_units: rows,
        dropped_units,
    })
}

/// Clustered: CR2 of y on (1, z) within each block, combined with the blocks' shares; df = clusters
/// − 2 × blocks.
fn clustered(
    input: &DimInput<'_>,
    blocks: &[Block],
    used: &[usize],
    dropped_units: usize,
    suffix: &str,
) -> Result<DimResult, EstimateError> {
    let cl = input
        .clusters
        .ok_or_else(|| EstimateError::Internal("clusters expected".into()))?;
    if let Some(&j) = used
        .iter()
        .find(|&&j| blocks[j].clusters[0].len() < 2 || blocks[j].clusters[1].len() < 2)
    {
        let b = &blocks[j];
        return Err(EstimateError::Design(format!(
            "a stratum has {} cluster(s) in the arm and {} in the control group; a block-clustered \
             difference in means needs two of each (docs/statistics.md B.4)",
            b.clusters[1].len(),
            b.clusters[0].len()
        )));
    }
    // Rows of the used blocks; factor = (block, arm).
    let rows: Vec<usize> = used
        .iter()
        .flat_map(|&j| blocks[j].rows.iter().copied())
        .collect();
    let mut level_of = vec![[u32::MAX; 2]; blocks.len()];
    let mut n_levels = 0u32;
    for &j in used {
        for a in 0..2 {
            level_of[j][a] = n_levels;
            n_levels += 1;
        }
    }
    let y: Array1<f64> = rows.iter().map(|&i| input.y[i]).collect();
    let group: Vec<u32> = rows
        .iter()
        .map(|&i| level_of[input.block[i] as usize][usize::from(input.treated[i])])
        .collect();
    let w: Option<Array1<f64>> = input.weights.map(|w| rows.iter().map(|&i| w[i]).collect());
    let x = Array2::<f64>::zeros((rows.len(), 0));
    let fit = ols::fit(Problem {
        y: y.view(),
        x: x.view(),
        group: &group,
        n_groups: n_levels as usize,
        weights: w.as_ref().map(|w| w.view()),
    })?;
    let total: f64 = fit.group_w.iter().sum();
    let mut c = vec![0.0; n_levels as usize];
    for &j in used {
        let share =
            (fit.group_w[level_of[j][0] as usize] + fit.group_w[level_of[j][1] as usize]) / total;
        c[level_of[j][1] as usize] = share;
        c[level_of[j][0] as usize] = -share;
    }
    let influence = fit.influence(&c, Array1::<f64>::zeros(0).view());
    let estimate = fit.value(&influence, &ols::transformed_y(&fit, y.view()));
    let cluster_ids: Vec<u32> = rows.iter().map(|&i| cl[i]).collect();
    let clusters = Clusters::from_ids(&cluster_ids);
    let cr2 = fit.cr2(&influence, &clusters)?;
    Ok(DimResult {
        estimate,
        variance: cr2.variance,
        df: clusters.len() as f64 - 2.0 * used.len() as f64,
        design: format!("Block-clustered{suffix}"),
        n_blocks: used.len(),
        n_units: rows.len(),
        dropped_units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(y: &[f64], t: &[bool], b: &[u32], nb: usize) -> Result<DimResult, EstimateError> {
        difference_in_means(DimInput {
            y: ArrayView1::from(y),
            treated: t,
            block: b,
            n_blocks: nb,
            weights: None,
            clusters: None,
        })
    }

    #[test]
    fn one_block_is_welch_with_block_df() {
        let y = [1.0, 2.0, 4.0, 3.0, 6.0, 8.0];
        let t = [false, false, false, true, true, true];
        let r = run(&y, &t, &[0; 6], 1).expect("dim");
        assert!((r.estimate - (17.0 / 3.0 - 7.0 / 3.0)).abs() < 1e-14);
        // s1² = (3-17/3)²+(6-17/3)²+(8-17/3)² over 2
        let m1 = 17.0 / 3.0;
        let m0 = 7.0 / 3.0;
        let s1 = ((3.0f64 - m1).powi(2) + (6.0f64 - m1).powi(2) + (8.0f64 - m1).powi(2)) / 2.0;
        let s0 = ((1.0f64 - m0).powi(2) + (2.0f64 - m0).powi(2) + (4.0f64 - m0).powi(2)) / 2.0;
        assert!((r.variance - (s1 / 3.0 + s0 / 3.0)).abs() < 1e-14);
        assert_eq!(r.df, 4.0);
        assert_eq!(r.design, "Blocked");
    }

    #[test]
    fn pairs_use_the_matched_pair_formula() {
        let y = [1.0, 2.0, 5.0, 3.0, 2.0, 7.0];
        let t = [false, true, false, true, false, true];
        let b = [0, 0, 1, 1, 2, 2];
        let r = run(&y, &t, &b, 3).expect("dim");
        let taus = [1.0, -2.0, 5.0];
        let mean = 4.0 / 3.0;
        let v: f64 = taus.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 6.0;
        assert!((r.estimate - mean).abs() < 1e-14);
        assert!((r.variance - v).abs() < 1e-14);
        assert_eq!(r.df, 2.0);
        assert_eq!(r.design, "Matched-pair");
    }

    #[test]
    fn a_single_small_block_is_refused() {
        let y = [1.0, 2.0, 5.0, 3.0, 2.0, 7.0, 1.0];
        let t = [false, true, false, true, false, true, true];
        let b = [0, 0, 1, 1, 1, 1, 1];
        assert!(matches!(run(&y, &t, &b, 2), Err(EstimateError::Design(_))));
    }

    #[test]
    fn a_block_without_one_arm_is_dropped_and_counted() {
        let y = [1.0, 2.0, 4.0, 3.0, 6.0, 8.0, 9.0, 9.5];
        let t = [false, false, false, true, true, true, true, true];
        let b = [0, 0, 0, 0, 0, 0, 1, 1];
        let r = run(&y, &t, &b, 2).expect("dim");
        assert_eq!(r.dropped_units, 2);
        assert_eq!(r.n_units, 6);
    }
}
