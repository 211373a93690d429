//! Baseline balance of a randomized trial: per-covariate summaries by arm, standardized
//! differences, a Hotelling T² omnibus test per treatment arm, arm counts per stratum, the
//! CONSORT flow counts, and a small-cell-masked copy of the table for roles outside the
//! directorate. Pure: values in, values out; no I/O, no panics, typed errors.
//!
//! # Conventions
//! - **Missing values.** `None` *and every non-finite value* (`NaN`, `±inf`) count as missing. They
//!   are left out of that covariate's summaries and counted in [`ArmSummary::missing`].
//! - **Mean and SD.** The mean comes from a compensated (Neumaier) sum with one refinement pass. The
//!   SD is the sample SD (divisor `n - 1`) from the corrected two-pass formula
//!   `s² = (Σ(x-x̄)² - (Σ(x-x̄))²/n) / (n-1)` (Chan, Golub & LeVeque 1983). The SD is `None` when
//!   `n < 2`, the mean when `n = 0`.
//! - **Standardized difference** (Austin 2009, *Statistics in Medicine* 28:3083, eq. 1), for
//!   treatment arm `t` against control `c`, using each arm's non-missing values:
//!   `d = (x̄_t - x̄_c) / sqrt((s_t² + s_c²) / 2)`. It is `None` when either SD is undefined or the
//!   denominator is zero. The raw difference `x̄_t - x̄_c` is reported next to it.
//! - **Omnibus test**: Hotelling's two-sample T², see [`OmnibusTest`].
//! - **Undefined statistics are `None`** (JSON `null`), never `NaN`. A statistic that overflows
//!   (inputs near `f64::MAX`) is also `None`.
//!
//! # Examples
//! ```
//! use ia_rct::balance::{BalanceInput, BalanceUnit, balance_table};
//!
//! let arms = vec!["kontroll".to_owned(), "dialog".to_owned()];
//! let covariates = vec!["ansatte".to_owned()];
//! let unit = |arm, x: f64| BalanceUnit { arm, stratum: "s".to_owned(), values: vec![Some(x)] };
//! let units = vec![unit(0, 10.0), unit(0, 14.0), unit(1, 12.0), unit(1, 18.0)];
//! let table = balance_table(&BalanceInput {
//!     arms: &arms,
//!     control_index: 0,
//!     units: &units,
//!     covariates: &covariates,
//! })?;
//! let contrast = &table.covariates[0].contrasts[0];
//! assert_eq!(contrast.difference, Some(3.0));
//! assert_eq!(table.arm_totals, vec![2, 2]);
//! # Ok::<(), ia_rct::balance::BalanceError>(())
//! ```

mod consort;
mod hotelling;
mod mask;
mod moments;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use consort::Consort;
pub use hotelling::{COLLINEARITY_TOL, CONSTANT_TOL};
pub use mask::{
    MaskedArmSummary, MaskedBalanceTable, MaskedConsort, MaskedCovariateBalance, MaskedOmnibusTest,
    MaskedStratumCounts, mask_small_cells, mask_with_flow,
};

/// What [`balance_table`] needs. Borrowed, so a caller can build it over data it already holds.
#[derive(Debug, Clone, Copy)]
pub struct BalanceInput<'a> {
    /// Arm ids in protocol order; every index below refers to this list.
    pub arms: &'a [String],
    /// Which arm is the control.
    pub control_index: usize,
    /// One entry per randomized unit (firm or cluster).
    pub units: &'a [BalanceUnit],
    /// Covariate names, in the order of [`BalanceUnit::values`].
    pub covariates: &'a [String],
}

/// One randomized unit's arm, stratum and baseline covariates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalanceUnit {
    /// Index into [`BalanceInput::arms`].
    pub arm: usize,
    /// The stratum key.
    pub stratum: String,
    /// One value per covariate; `None` or a non-finite value is missing.
    pub values: Vec<Option<f64>>,
}

/// The balance table. Every per-arm vector is in the order of [`BalanceTable::arms`].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BalanceTable {
    /// Arm ids in protocol order.
    pub arms: Vec<String>,
    /// The control arm's id.
    pub control: String,
    /// One entry per covariate, in input order.
    pub covariates: Vec<CovariateBalance>,
    /// One Hotelling T² test per treatment arm against control, in protocol order.
    pub omnibus: Vec<OmnibusTest>,
    /// Arm counts per stratum, sorted by stratum key.
    pub strata: Vec<StratumCounts>,
    /// Units per arm.
    pub arm_totals: Vec<usize>,
}

/// One covariate's balance.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CovariateBalance {
    /// The covariate's name.
    pub covariate: String,
    /// Summaries per arm, in protocol order.
    pub arms: Vec<ArmSummary>,
    /// One contrast per treatment arm against control, in protocol order.
    pub contrasts: Vec<Contrast>,
}

/// One covariate in one arm.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ArmSummary {
    /// The arm's id.
    pub arm: String,
    /// Units with a finite value.
    pub n: usize,
    /// Units with no value or a non-finite one.
    pub missing: usize,
    /// Mean of the `n` values; `None` if `n = 0`.
    pub mean: Option<f64>,
    /// Sample SD (divisor `n - 1`); `None` if `n < 2`.
    pub sd: Option<f64>,
}

/// One covariate, one treatment arm against control.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Contrast {
    /// The treatment arm's id.
    pub arm: String,
    /// The control arm's id.
    pub versus: String,
    /// `x̄_t - x̄_c`; `None` if either arm has no values.
    pub difference: Option<f64>,
    /// Austin's standardized difference `(x̄_t - x̄_c) / sqrt((s_t² + s_c²)/2)`; `None` if either SD
    /// is undefined or both are zero.
    pub std_difference: Option<f64>,
}

/// Hotelling's two-sample T² test of equal covariate means, treatment arm against control.
///
/// Uses the units of the two arms with a finite value on every covariate still in the test
/// (complete cases), `n1` treated and `n2` control:
/// `T² = (n1 n2 / (n1 + n2)) d' S⁻¹ d`, with `d` the difference in means (treatment minus control)
/// and `S = ((n1-1) S1 + (n2-1) S2) / (n1 + n2 - 2)` the pooled covariance;
/// `F = (n1 + n2 - p - 1) / (p (n1 + n2 - 2)) · T² ~ F(p, n1 + n2 - p - 1)` under equal means and
/// normality; the p-value is the F survival function.
///
/// Covariates leave the test, in this order and recorded in [`OmnibusTest::dropped`]:
/// 1. [`DropReason::NoData`]: no finite value in one of the two arms (before complete cases are
///    formed, so one empty covariate does not empty the test);
/// 2. [`DropReason::Constant`]: pooled SD `<= CONSTANT_TOL · max|x|` over the complete cases;
/// 3. [`DropReason::Collinear`]: a Cholesky factorisation of `S` that pivots in the listed order and
///    skips a covariate whose residual variance, given the covariates kept before it, is
///    `<= COLLINEARITY_TOL` times its variance (that is, `1 - R² <= COLLINEARITY_TOL`). Of a
///    collinear pair the later-listed one goes, as with R's `lm`.
///
/// When `n1 + n2 - p - 1 <= 0` for the `p` covariates left after step 2, the test is not run
/// ([`NotTestedReason::TooFewUnits`]): with so few units `S` is singular for lack of data, and
/// step 3 would wrongly call covariates collinear.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OmnibusTest {
    /// The treatment arm's id.
    pub arm: String,
    /// The control arm's id.
    pub versus: String,
    /// Complete cases in the treatment arm.
    pub n_treatment: usize,
    /// Complete cases in the control arm.
    pub n_control: usize,
    /// `n_treatment + n_control`.
    pub n_used: usize,
    /// The covariates in the test, in input order.
    pub covariates_used: Vec<String>,
    /// The covariates left out, in input order, with why.
    pub dropped: Vec<DroppedCovariate>,
    /// The statistic, or why there is none.
    pub result: OmnibusResult,
}

/// A covariate left out of an omnibus test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DroppedCovariate {
    /// The covariate's name.
    pub covariate: String,
    /// Why.
    pub reason: DropReason,
}

/// Why a covariate was left out of an omnibus test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    /// No finite value in the treatment arm or in the control arm.
    NoData,
    /// No variation within the two arms (pooled variance zero to [`CONSTANT_TOL`]).
    Constant,
    /// A linear combination of covariates listed before it (to [`COLLINEARITY_TOL`]).
    Collinear,
}

/// Hotelling's T² and its F test, or why it could not be computed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OmnibusResult {
    /// The test was run.
    Tested {
        /// Hotelling's T².
        t_squared: f64,
        /// The F statistic.
        f: f64,
        /// Numerator df: the number of covariates used, `p`.
        df1: usize,
        /// Denominator df: `n1 + n2 - p - 1`.
        df2: usize,
        /// Upper-tail p-value of `F(df1, df2)`.
        p_value: f64,
    },
    /// The test could not be run.
    NotTested {
        /// Why.
        reason: NotTestedReason,
    },
}

/// Why an omnibus test could not be run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotTestedReason {
    /// No covariate is left to test.
    NoCovariates,
    /// An arm has no unit with every remaining covariate observed.
    NoCompleteCases {
        /// The arm's id.
        arm: String,
    },
    /// `n1 + n2 - p - 1 <= 0` (or `n1 + n2 <= 2`): too few complete cases for `p` covariates.
    TooFewUnits {
        /// Complete cases in the two arms.
        n_used: usize,
        /// Covariates that would be tested.
        p: usize,
    },
    /// A statistic overflowed (covariate values near `f64::MAX`).
    NonFinite,
}

/// Arm counts in one stratum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StratumCounts {
    /// The stratum key.
    pub stratum: String,
    /// Units per arm, in protocol order.
    pub counts: Vec<usize>,
    /// Units in the stratum.
    pub total: usize,
}

/// Why a balance table could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceError {
    /// Balance needs a control and at least one treatment arm.
    #[error("need at least 2 arms, got {0}")]
    TooFewArms(usize),
    /// `control_index` is not an index into `arms`.
    #[error("control index {index} is out of range for {arms} arms")]
    ControlOutOfRange {
        /// The index given.
        index: usize,
        /// How many arms there are.
        arms: usize,
    },
    /// An arm id appears twice.
    #[error("arm `{0}` appears twice")]
    DuplicateArm(String),
    /// A covariate name appears twice.
    #[error("covariate `{0}` appears twice")]
    DuplicateCovariate(String),
    /// A unit's arm is not an index into `arms`.
    #[error("unit {unit} has arm index {arm}, but there are {arms} arms")]
    ArmOutOfRange {
        /// The unit's position in `units`.
        unit: usize,
        /// Its arm index.
        arm: usize,
        /// How many arms there are.
        arms: usize,
    },
    /// A unit has a different number of values than there are covariates.
    #[error("unit {unit} has {found} values for {expected} covariates")]
    ValueCount {
        /// The unit's position in `units`.
        unit: usize,
        /// How many covariates there are.
        expected: usize,
        /// How many values the unit has.
        found: usize,
    },
    /// An arm has no units.
    #[error("arm `{0}` has no units")]
    EmptyArm(String),
}

/// Computes the balance table: per covariate and arm `n`, missing, mean and SD; per treatment arm
/// against control the difference in means and the standardized difference; one Hotelling T² test
/// per treatment arm; arm counts per stratum and overall. See the [module docs](self) for the
/// formulas and [`OmnibusTest`] for the test.
///
/// # Errors
/// [`BalanceError`] if there are fewer than 2 arms, the control index or a unit's arm index is out
/// of range, an arm id or covariate name repeats, a unit has the wrong number of values, or an arm
/// has no units.
pub fn balance_table(input: &BalanceInput) -> Result<BalanceTable, BalanceError> {
    validate(input)?;
    let n_arms = input.arms.len();
    let control = input.control_index;

    let mut arm_totals = vec![0usize; n_arms];
    let mut strata: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for unit in input.units {
        if let Some(total) = arm_totals.get_mut(unit.arm) {
            *total += 1;
        }
        let counts = strata
            .entry(unit.stratum.as_str())
            .or_insert_with(|| vec![0; n_arms]);
        if let Some(count) = counts.get_mut(unit.arm) {
            *count += 1;
        }
    }
    if let Some(empty) = arm_totals.iter().position(|&n| n == 0) {
        return Err(BalanceError::EmptyArm(arm_id(input, empty)));
    }

    let treatments: Vec<usize> = (0..n_arms).filter(|&a| a != control).collect();
    let covariates = input
        .covariates
        .iter()
        .enumerate()
        .map(|(j, name)| covariate_balance(input, j, name, &treatments))
        .collect();
    let omnibus = treatments
        .iter()
        .map(|&t| hotelling::omnibus(input, t))
        .collect();
    let strata = strata
        .into_iter()
        .map(|(stratum, counts)| StratumCounts {
            stratum: stratum.to_owned(),
            total: counts.iter().sum(),
            counts,
        })
        .collect();

    Ok(BalanceTable {
        arms: input.arms.to_vec(),
        control: arm_id(input, control),
        covariates,
        omnibus,
        strata,
        arm_totals,
    })
}

fn validate(input: &BalanceInput) -> Result<(), BalanceError> {
    let n_arms = input.arms.len();
    if n_arms < 2 {
        return Err(BalanceError::TooFewArms(n_arms));
    }
    if input.control_index >= n_arms {
        return Err(BalanceError::ControlOutOfRange {
            index: input.control_index,
            arms: n_arms,
        });
    }
    if let Some(arm) = first_duplicate(input.arms) {
        return Err(BalanceError::DuplicateArm(arm.to_owned()));
    }
    if let Some(covariate) = first_duplicate(input.covariates) {
        return Err(BalanceError::DuplicateCovariate(covariate.to_owned()));
    }
    for (i, unit) in input.units.iter().enumerate() {
        if unit.arm >= n_arms {
            return Err(BalanceError::ArmOutOfRange {
                unit: i,
                arm: unit.arm,
                arms: n_arms,
            });
        }
        if unit.values.len() != input.covariates.len() {
            return Err(BalanceError::ValueCount {
                unit: i,
                expected: input.covariates.len(),
                found: unit.values.len(),
            });
        }
    }
    Ok(())
}

fn first_duplicate(names: &[String]) -> Option<&str> {
    let mut seen = BTreeSet::new();
    names
        .iter()
        .find(|name| !seen.insert(name.as_str()))
        .map(String::as_str)
}

fn arm_id(input: &BalanceInput, arm: usize) -> String {
    input.arms.get(arm).cloned().unwrap_or_default()
}

/// The finite value of covariate `j` for `unit`, if any.
fn value(unit: &BalanceUnit, j: usize) -> Option<f64> {
    unit.values
        .get(j)
        .copied()
        .flatten()
        .filter(|x| x.is_finite())
}

fn covariate_balance(
    input: &BalanceInput,
    j: usize,
    name: &str,
    treatments: &[usize],
) -> CovariateBalance {
    let arms: Vec<ArmSummary> = (0..input.arms.len())
        .map(|a| {
            let mut values = Vec::new();
            let mut missing = 0;
            for unit in input.units.iter().filter(|u| u.arm == a) {
                match value(unit, j) {
                    Some(x) => values.push(x),
                    None => missing += 1,
                }
            }
            let m = moments::moments(&values);
            ArmSummary {
                arm: arm_id(input, a),
                n: values.len(),
                missing,
                mean: m.mean,
                sd: m.sd,
            }
        })
        .collect();
    let contrasts = treatments
        .iter()
        .filter_map(|&t| {
            let treated = arms.get(t)?;
            let control = arms.get(input.control_index)?;
            Some(contrast(treated, control))
        })
        .collect();
    CovariateBalance {
        covariate: name.to_owned(),
        arms,
        contrasts,
    }
}

fn contrast(treated: &ArmSummary, control: &ArmSummary) -> Contrast {
    let difference = treated
        .mean
        .zip(control.mean)
        .and_then(|(t, c)| moments::finite(t - c));
    let std_difference = difference
        .zip(treated.sd.zip(control.sd))
        .and_then(|(d, (st, sc))| {
            // Scaled by the larger SD so squaring cannot overflow.
            let scale = st.max(sc);
            if scale <= 0.0 {
                return None;
            }
            let (rt, rc) = (st / scale, sc / scale);
            let pooled = scale * ((rt * rt + rc * rc) / 2.0).sqrt();
            moments::finite(d / pooled)
        });
    Contrast {
        arm: treated.arm.clone(),
        versus: control.arm.clone(),
        difference,
        std_difference,
    }
}
