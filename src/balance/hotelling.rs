//! Hotelling's two-sample T² with deterministic dropping of constant and collinear covariates.

use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use super::moments::{finite, mean, sum};
use super::{
    BalanceInput, DropReason, DroppedCovariate, NotTestedReason, OmnibusResult, OmnibusTest,
    arm_id, value,
};

/// A covariate is constant when its pooled within-arm SD is at most `CONSTANT_TOL` times the
/// largest absolute value it takes in the two arms. Far above the rounding error of a mean of
/// equal values (about `n · 2⁻⁵³` relative), far below any real spread.
pub const CONSTANT_TOL: f64 = 1e-10;

/// A covariate is collinear when `1 - R² <= COLLINEARITY_TOL`, with `R²` its squared multiple
/// correlation (pooled within arms) with the covariates kept before it. That is the pivot of the
/// Cholesky factor of the pooled *correlation* matrix, so the test does not depend on units.
/// In norms it is a relative tolerance of about 3·10⁻⁵, between R's `lm` (10⁻⁷) and the
/// rounding error of exactly collinear data (about 10⁻¹⁵ on the squared scale).
pub const COLLINEARITY_TOL: f64 = 1e-9;

/// Hotelling's T² for `treatment` against the control arm; see [`OmnibusTest`].
pub(super) fn omnibus(input: &BalanceInput, treatment: usize) -> OmnibusTest {
    let control = input.control_index;
    let mut dropped: Vec<(usize, DropReason)> = Vec::new();

    // Step 1: covariates with data in both arms.
    let has_data = |arm: usize, j: usize| {
        input
            .units
            .iter()
            .any(|u| u.arm == arm && value(u, j).is_some())
    };
    let mut candidates = Vec::new();
    for j in 0..input.covariates.len() {
        if has_data(treatment, j) && has_data(control, j) {
            candidates.push(j);
        } else {
            dropped.push((j, DropReason::NoData));
        }
    }

    // Complete cases on the candidates.
    let rows = |arm: usize| -> Vec<Vec<f64>> {
        input
            .units
            .iter()
            .filter(|u| u.arm == arm)
            .filter_map(|u| candidates.iter().map(|&j| value(u, j)).collect())
            .collect()
    };
    let (x1, x2) = (rows(treatment), rows(control));
    let (n1, n2) = (x1.len(), x2.len());
    let mut test = OmnibusTest {
        arm: arm_id(input, treatment),
        versus: arm_id(input, control),
        n_treatment: n1,
        n_control: n2,
        n_used: n1 + n2,
        covariates_used: Vec::new(),
        dropped: Vec::new(),
        result: OmnibusResult::NotTested {
            reason: NotTestedReason::NoCovariates,
        },
    };
    let outcome = statistic(
        &x1,
        &x2,
        treatment,
        control,
        input,
        &mut dropped,
        &candidates,
    );
    dropped.sort_by_key(|&(j, _)| j);
    test.dropped = dropped
        .iter()
        .map(|&(j, reason)| DroppedCovariate {
            covariate: input.covariates.get(j).cloned().unwrap_or_default(),
            reason,
        })
        .collect();
    match outcome {
        Ok((used, result)) => {
            test.covariates_used = used
                .iter()
                .filter_map(|&j| input.covariates.get(j).cloned())
                .collect();
            test.result = result;
        }
        Err(reason) => test.result = OmnibusResult::NotTested { reason },
    }
    test
}

/// Steps 2-3 and the statistic: the covariates used (input indices) and the result.
fn statistic(
    x1: &[Vec<f64>],
    x2: &[Vec<f64>],
    treatment: usize,
    control: usize,
    input: &BalanceInput,
    dropped: &mut Vec<(usize, DropReason)>,
    candidates: &[usize],
) -> Result<(Vec<usize>, OmnibusResult), NotTestedReason> {
    let (n1, n2) = (x1.len(), x2.len());
    let k = candidates.len();
    if k == 0 {
        return Err(NotTestedReason::NoCovariates);
    }
    if n1 == 0 || n2 == 0 {
        let arm = if n1 == 0 { treatment } else { control };
        return Err(NotTestedReason::NoCompleteCases {
            arm: arm_id(input, arm),
        });
    }
    if n1 + n2 <= 2 {
        return Err(NotTestedReason::TooFewUnits {
            n_used: n1 + n2,
            p: k,
        });
    }

    let column_means = |x: &[Vec<f64>]| -> Option<Vec<f64>> {
        (0..k)
            .map(|c| mean(&x.iter().map(|row| row[c]).collect::<Vec<_>>()))
            .collect()
    };
    let (m1, m2) = column_means(x1)
        .zip(column_means(x2))
        .ok_or(NotTestedReason::NonFinite)?;
    let cov = pooled_covariance(x1, &m1, x2, &m2).ok_or(NotTestedReason::NonFinite)?;

    // Step 2: constant covariates.
    let mut kept = Vec::new();
    for c in 0..k {
        let scale = x1
            .iter()
            .chain(x2)
            .map(|row| row[c].abs())
            .fold(0.0_f64, f64::max);
        if cov[c][c].sqrt() <= CONSTANT_TOL * scale {
            dropped.push((candidates[c], DropReason::Constant));
        } else {
            kept.push(c);
        }
    }
    if kept.is_empty() {
        return Err(NotTestedReason::NoCovariates);
    }
    if n1 + n2 <= kept.len() + 1 {
        return Err(NotTestedReason::TooFewUnits {
            n_used: n1 + n2,
            p: kept.len(),
        });
    }

    // Step 3: Cholesky of the correlation matrix, pivoting in listed order, skipping collinear
    // covariates. Row `i` of `factor` belongs to `accepted[i]` and has `i + 1` entries.
    let sd: Vec<f64> = (0..k).map(|c| cov[c][c].sqrt()).collect();
    let mut accepted: Vec<usize> = Vec::new();
    let mut factor: Vec<Vec<f64>> = Vec::new();
    for &c in &kept {
        let mut row = Vec::with_capacity(accepted.len() + 1);
        for (i, &a) in accepted.iter().enumerate() {
            let prior = &factor[i];
            let dot = sum(row.iter().zip(prior).map(|(x, y)| x * y));
            row.push((cov[c][a] / (sd[c] * sd[a]) - dot) / prior[i]);
        }
        let residual = 1.0 - sum(row.iter().map(|x| x * x));
        if !residual.is_finite() {
            return Err(NotTestedReason::NonFinite);
        }
        if residual <= COLLINEARITY_TOL {
            dropped.push((candidates[c], DropReason::Collinear));
        } else {
            row.push(residual.sqrt());
            accepted.push(c);
            factor.push(row);
        }
    }

    // Forward substitution L y = D^{-1/2} d, so d' S⁻¹ d = y'y.
    let mut y: Vec<f64> = Vec::with_capacity(accepted.len());
    for (i, &c) in accepted.iter().enumerate() {
        let row = &factor[i];
        let dot = sum(y.iter().zip(row).map(|(a, b)| a * b));
        y.push(((m1[c] - m2[c]) / sd[c] - dot) / row[i]);
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let p = accepted.len();
    let df2 = n1 + n2 - p - 1;
    let t_squared = n1f * n2f / (n1f + n2f) * sum(y.iter().map(|v| v * v));
    let f = df2 as f64 / (p as f64 * (n1f + n2f - 2.0)) * t_squared;
    let p_value = FisherSnedecor::new(p as f64, df2 as f64)
        .ok()
        .and_then(|dist| finite(f).map(|f| dist.sf(f)))
        .and_then(finite);
    let (Some(t_squared), Some(f), Some(p_value)) = (finite(t_squared), finite(f), p_value) else {
        return Err(NotTestedReason::NonFinite);
    };
    Ok((
        accepted.iter().map(|&c| candidates[c]).collect(),
        OmnibusResult::Tested {
            t_squared,
            f,
            df1: p,
            df2,
            p_value,
        },
    ))
}

/// `((n1-1) S1 + (n2-1) S2) / (n1 + n2 - 2)` from the centred cross-products of each arm;
/// `None` if an entry is not finite. Needs `n1 + n2 > 2`.
fn pooled_covariance<'a>(
    x1: &'a [Vec<f64>],
    m1: &'a [f64],
    x2: &'a [Vec<f64>],
    m2: &'a [f64],
) -> Option<Vec<Vec<f64>>> {
    let k = m1.len();
    let df = (x1.len() + x2.len()) as f64 - 2.0;
    let centred = |x: &'a [Vec<f64>], m: &'a [f64], a: usize, b: usize| {
        x.iter().map(move |row| (row[a] - m[a]) * (row[b] - m[b]))
    };
    // IEEE multiplication commutes, so the matrix is exactly symmetric.
    (0..k)
        .map(|a| {
            (0..k)
                .map(|b| {
                    let cross = centred(x1, m1, a, b).chain(centred(x2, m2, a, b));
                    finite(sum(cross) / df)
                })
                .collect()
        })
        .collect()
}
