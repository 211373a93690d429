//! Reference values come from this script (Python 3, numpy 2.4.6, scipy 1.17.1), run as
//! `python3 ref.py`; it prints every number asserted in the `reference_*` tests below.
//!
//! ```python
//! import numpy as np
//! from scipy import stats
//! N = None
//! # (arm, stratum, x1, x2, x3); arms = ["a", "kontroll", "b"], control = 1
//! data = [
//!     (0, "s2", 36.8, 5.22, 30.9), (0, "s1", 13.2, 6.43, 7.3), (0, "s1", 29.1, N, 3.8),
//!     (0, "s2", 37.6, 4.9, 34.2), (0, "s1", 46.6, 4.61, 27.9), (0, "s1", 17.9, 4.82, 17.5),
//!     (0, "s2", 52.9, 6.34, 42.7), (0, "s1", 27.0, 6.29, 13.4),
//!     (1, "s2", 46.6, 5.4, 45.8), (1, "s1", 46.0, 7.75, 32.7), (1, "s1", 54.3, 6.04, N),
//!     (1, "s2", 13.6, 7.01, 0.6), (1, "s1", 30.0, 5.67, 8.9), (1, "s1", 25.1, 4.94, 16.9),
//!     (1, "s2", 14.4, 4.39, 10.1),
//!     (2, "s2", 44.0, 4.41, 35.2), (2, "s1", 38.3, 7.16, 22.5), (2, "s1", 46.9, 4.67, 46.1),
//!     (2, "s2", 31.4, 6.71, 13.2), (2, "s1", N, 4.58, 21.3), (2, "s1", 23.2, 4.64, 18.5),
//!     (2, "s2", 45.5, 6.71, 44.2), (2, "s1", 51.0, 6.77, 50.2), (2, "s1", 29.4, 8.68, 23.0),
//! ]
//! X = np.array([[np.nan if v is None else v for v in r[2:]] for r in data])
//! arm = np.array([r[0] for r in data])
//! ctrl = 1
//! def summ(a, j):
//!     v = X[arm == a, j]; v = v[~np.isnan(v)]
//!     return len(v), v.mean(), v.std(ddof=1)
//! for j in range(3):
//!     for a in range(3):
//!         print("x%d arm %d n=%d mean=%r sd=%r" % ((j + 1, a) + summ(a, j)))
//!     for t in (0, 2):
//!         nt, mt, st = summ(t, j); nc, mc, sc = summ(ctrl, j)
//!         print("x%d %d-vs-c diff=%r std=%r" % (j + 1, t, mt - mc, (mt - mc) / np.sqrt((st**2 + sc**2) / 2)))
//! for t in (0, 2):
//!     A = X[(arm == t) & ~np.isnan(X).any(axis=1)]
//!     B = X[(arm == ctrl) & ~np.isnan(X).any(axis=1)]
//!     n1, n2, p = len(A), len(B), X.shape[1]
//!     d = A.mean(0) - B.mean(0)
//!     S = ((n1 - 1) * np.cov(A.T) + (n2 - 1) * np.cov(B.T)) / (n1 + n2 - 2)
//!     t2 = n1 * n2 / (n1 + n2) * d @ np.linalg.solve(S, d)
//!     df2 = n1 + n2 - p - 1
//!     F = df2 / (p * (n1 + n2 - 2)) * t2
//!     print("T2 %d: n1=%d n2=%d t2=%r F=%r df=(%d,%d) p=%r" % (t, n1, n2, t2, F, p, df2, stats.f.sf(F, p, df2)))
//! ```

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::domain::{Bransje, FylkeCode, Orgnr, Sektor};
use crate::protocol::Exclusion;
use crate::randomization::plan::{
    Assignment, AssignmentRow, DrawHeader, Excluded, Screening, UnitRow,
};

/// Agreement with the numpy/scipy reference, relative (statrs `prec` style).
const REL_ACC: f64 = 1e-10;

#[track_caller]
fn assert_close(actual: Option<f64>, expected: f64) {
    let Some(actual) = actual else {
        panic!("expected {expected}, got None");
    };
    let tolerance = REL_ACC * expected.abs().max(f64::MIN_POSITIVE);
    assert!(
        (actual - expected).abs() <= tolerance,
        "expected {expected}, got {actual} (relative error {:e})",
        ((actual - expected) / expected).abs()
    );
}

const N: Option<f64> = None;

fn unit(arm: usize, stratum: &str, values: &[Option<f64>]) -> BalanceUnit {
    BalanceUnit {
        arm,
        stratum: stratum.to_owned(),
        values: values.to_vec(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn arms() -> Vec<String> {
    names(&["a", "kontroll", "b"])
}

/// The script's dataset; arm 1 ("kontroll") is the control.
fn reference_units() -> Vec<BalanceUnit> {
    #[rustfmt::skip]
    let rows: [(usize, &str, [Option<f64>; 3]); 24] = [
        (0, "s2", [Some(36.8), Some(5.22), Some(30.9)]), (0, "s1", [Some(13.2), Some(6.43), Some(7.3)]),
        (0, "s1", [Some(29.1), N, Some(3.8)]), (0, "s2", [Some(37.6), Some(4.9), Some(34.2)]),
        (0, "s1", [Some(46.6), Some(4.61), Some(27.9)]), (0, "s1", [Some(17.9), Some(4.82), Some(17.5)]),
        (0, "s2", [Some(52.9), Some(6.34), Some(42.7)]), (0, "s1", [Some(27.0), Some(6.29), Some(13.4)]),
        (1, "s2", [Some(46.6), Some(5.4), Some(45.8)]), (1, "s1", [Some(46.0), Some(7.75), Some(32.7)]),
        (1, "s1", [Some(54.3), Some(6.04), N]), (1, "s2", [Some(13.6), Some(7.01), Some(0.6)]),
        (1, "s1", [Some(30.0), Some(5.67), Some(8.9)]), (1, "s1", [Some(25.1), Some(4.94), Some(16.9)]),
        (1, "s2", [Some(14.4), Some(4.39), Some(10.1)]),
        (2, "s2", [Some(44.0), Some(4.41), Some(35.2)]), (2, "s1", [Some(38.3), Some(7.16), Some(22.5)]),
        (2, "s1", [Some(46.9), Some(4.67), Some(46.1)]), (2, "s2", [Some(31.4), Some(6.71), Some(13.2)]),
        (2, "s1", [N, Some(4.58), Some(21.3)]), (2, "s1", [Some(23.2), Some(4.64), Some(18.5)]),
        (2, "s2", [Some(45.5), Some(6.71), Some(44.2)]), (2, "s1", [Some(51.0), Some(6.77), Some(50.2)]),
        (2, "s1", [Some(29.4), Some(8.68), Some(23.0)]),
    ];
    rows.iter()
        .map(|(arm, stratum, values)| unit(*arm, stratum, values))
        .collect()
}

/// A covariate computed from `x1`, `x2` and `x3`.
type Derived = fn(f64, f64, f64) -> f64;

/// Runs `balance_table` on the reference units, with `extra` computing added covariates
/// from the three reference values.
fn table_with(extra: &[(&str, Derived)], first: bool) -> BalanceTable {
    let mut units = reference_units();
    for u in &mut units {
        let (x1, x2, x3) = (u.values[0], u.values[1], u.values[2]);
        let added: Vec<Option<f64>> = extra.iter().map(|(_, f)| Some(f(x1?, x2?, x3?))).collect();
        if first {
            u.values.splice(0..0, added);
        } else {
            u.values.extend(added);
        }
    }
    let mut covariates: Vec<String> = names(&["x1", "x2", "x3"]);
    let added = extra.iter().map(|(name, _)| (*name).to_owned());
    if first {
        covariates.splice(0..0, added);
    } else {
        covariates.extend(added);
    }
    let arms = arms();
    balance_table(&BalanceInput {
        arms: &arms,
        control_index: 1,
        units: &units,
        covariates: &covariates,
    })
    .expect("valid input")
}

fn reference_table() -> BalanceTable {
    table_with(&[], false)
}

/// The reference omnibus numbers for treatment arm `a` (index 0) and `b` (index 2).
#[track_caller]
fn assert_reference_omnibus(table: &BalanceTable) {
    let expected = [
        (
            "a",
            7,
            6,
            0.8250140431179162,
            0.22500382994124984,
            9,
            0.8766661020035954,
        ),
        (
            "b",
            8,
            6,
            2.609399907178314,
            0.7248333075495317,
            10,
            0.559953422643423,
        ),
    ];
    assert_eq!(table.omnibus.len(), 2);
    for (test, (arm, n1, n2, t2, f, df2, p)) in table.omnibus.iter().zip(expected) {
        assert_eq!(test.arm, arm);
        assert_eq!(test.versus, "kontroll");
        assert_eq!(
            (test.n_treatment, test.n_control, test.n_used),
            (n1, n2, n1 + n2)
        );
        let OmnibusResult::Tested {
            t_squared,
            f: f_stat,
            df1,
            df2: df2_got,
            p_value,
        } = test.result
        else {
            panic!("not tested: {:?}", test.result);
        };
        assert_eq!((df1, df2_got), (3, df2));
        assert_close(Some(t_squared), t2);
        assert_close(Some(f_stat), f);
        assert_close(Some(p_value), p);
    }
}

#[test]
fn reference_means_and_sds_match_numpy() {
    let table = reference_table();
    assert_eq!(table.arms, arms());
    assert_eq!(table.control, "kontroll");
    // (covariate, arm) -> (n, missing, mean, sd)
    let expected = [
        [
            (8, 0, 32.6375, 13.558227602245276),
            (7, 0, 32.857142857142854, 16.33624366685491),
            (8, 1, 38.712500000000006, 9.805601533234533),
        ],
        [
            (7, 1, 5.515714285714284, 0.8047537334045559),
            (7, 0, 5.885714285714286, 1.1674310421156524),
            (9, 0, 6.036666666666666, 1.5116216457830973),
        ],
        [
            (8, 0, 22.2125, 13.797146444102127),
            (6, 1, 19.166666666666668, 16.911258577251626),
            (9, 0, 30.466666666666665, 13.644595999882153),
        ],
    ];
    assert_eq!(table.covariates.len(), 3);
    for (cov, rows) in table.covariates.iter().zip(expected) {
        for (summary, (n, missing, mean, sd)) in cov.arms.iter().zip(rows) {
            assert_eq!(
                (summary.n, summary.missing),
                (n, missing),
                "{}",
                cov.covariate
            );
            assert_close(summary.mean, mean);
            assert_close(summary.sd, sd);
        }
    }
}

#[test]
fn reference_differences_and_standardized_differences_match_numpy() {
    let table = reference_table();
    // covariate -> [(a vs kontroll), (b vs kontroll)] as (difference, standardized difference)
    let expected = [
        [
            (-0.21964285714285126, -0.014631507610939839),
            (5.855357142857152, 0.4346117955069286),
        ],
        [
            (-0.3700000000000019, -0.3690303725111565),
            (0.15095238095238006, 0.11177219674292913),
        ],
        [
            (3.0458333333333307, 0.19735910843816265),
            (11.299999999999997, 0.7354382930993597),
        ],
    ];
    for (cov, rows) in table.covariates.iter().zip(expected) {
        assert_eq!(cov.contrasts.len(), 2);
        for (contrast, (arm, (diff, std))) in
            cov.contrasts.iter().zip([("a", rows[0]), ("b", rows[1])])
        {
            assert_eq!(
                (contrast.arm.as_str(), contrast.versus.as_str()),
                (arm, "kontroll")
            );
            assert_close(contrast.difference, diff);
            assert_close(contrast.std_difference, std);
        }
    }
}

#[test]
fn reference_hotelling_t2_matches_scipy() {
    let table = reference_table();
    assert_reference_omnibus(&table);
    for test in &table.omnibus {
        assert_eq!(test.covariates_used, names(&["x1", "x2", "x3"]));
        assert!(test.dropped.is_empty());
    }
}

#[test]
fn strata_are_sorted_and_counted_per_arm() {
    let table = reference_table();
    assert_eq!(table.arm_totals, vec![8, 7, 9]);
    assert_eq!(
        table.strata,
        vec![
            StratumCounts {
                stratum: "s1".to_owned(),
                counts: vec![5, 4, 6],
                total: 15,
            },
            StratumCounts {
                stratum: "s2".to_owned(),
                counts: vec![3, 3, 3],
                total: 9,
            },
        ]
    );
}

#[test]
fn a_constant_covariate_is_dropped_and_reported() {
    // 0.1 is not exactly representable, so the pooled variance is rounding noise, not 0.
    let table = table_with(&[("konstant", |_, _, _| 0.1)], false);
    assert_reference_omnibus(&table);
    for test in &table.omnibus {
        assert_eq!(test.covariates_used, names(&["x1", "x2", "x3"]));
        assert_eq!(
            test.dropped,
            vec![DroppedCovariate {
                covariate: "konstant".to_owned(),
                reason: DropReason::Constant,
            }]
        );
    }
    let konstant = &table.covariates[3];
    assert!(konstant.arms.iter().all(|a| a.sd == Some(0.0)));
    assert!(
        konstant
            .contrasts
            .iter()
            .all(|c| c.std_difference.is_none())
    );
}

#[test]
fn the_later_listed_of_a_collinear_pair_is_dropped() {
    let after = table_with(&[("x1_tiere", |x1, _, _| 10.0 * x1)], false);
    assert_reference_omnibus(&after);
    let before = table_with(&[("x1_tiere", |x1, _, _| 10.0 * x1)], true);
    assert_reference_omnibus(&before);
    for test in &after.omnibus {
        assert_eq!(test.covariates_used, names(&["x1", "x2", "x3"]));
        assert_eq!(test.dropped[0].covariate, "x1_tiere");
        assert_eq!(test.dropped[0].reason, DropReason::Collinear);
    }
    for test in &before.omnibus {
        assert_eq!(test.covariates_used, names(&["x1_tiere", "x2", "x3"]));
        assert_eq!(test.dropped[0].covariate, "x1");
        assert_eq!(test.dropped[0].reason, DropReason::Collinear);
    }
}

#[test]
fn a_linear_combination_of_earlier_covariates_is_dropped() {
    let table = table_with(
        &[("kombinasjon", |x1, x2, x3| 2.0 * x1 - x3 + 0.5 * x2)],
        false,
    );
    assert_reference_omnibus(&table);
    for test in &table.omnibus {
        assert_eq!(
            test.dropped,
            vec![DroppedCovariate {
                covariate: "kombinasjon".to_owned(),
                reason: DropReason::Collinear,
            }]
        );
    }
}

#[test]
fn a_covariate_with_no_data_in_an_arm_is_dropped_not_fatal() {
    let mut units = reference_units();
    for u in &mut units {
        let v = if u.arm == 2 {
            None
        } else {
            Some(1.0 + u.arm as f64)
        };
        u.values.push(v);
    }
    let covariates = names(&["x1", "x2", "x3", "bare_a_og_kontroll"]);
    let arms = arms();
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 1,
        units: &units,
        covariates: &covariates,
    })
    .expect("valid input");
    // For b vs kontroll the new covariate has no data in b: dropped, the rest as the reference.
    let b = &table.omnibus[1];
    assert_eq!(b.dropped[0].reason, DropReason::NoData);
    let OmnibusResult::Tested { t_squared, .. } = b.result else {
        panic!("not tested");
    };
    assert_close(Some(t_squared), 2.609399907178314);
    // For a vs kontroll it is constant within both arms (1 vs 2): no within-arm variation.
    assert_eq!(table.omnibus[0].dropped[0].reason, DropReason::Constant);
    assert_eq!(table.covariates[3].arms[2].n, 0);
    assert_eq!(table.covariates[3].arms[2].mean, None);
    assert_eq!(table.covariates[3].contrasts[1].difference, None);
}

#[test]
fn too_few_units_gives_a_typed_reason_instead_of_a_number() {
    let arms = names(&["kontroll", "t"]);
    let covariates = names(&["x1", "x2", "x3"]);
    let units = vec![
        unit(0, "s", &[Some(1.0), Some(2.0), Some(4.0)]),
        unit(0, "s", &[Some(2.0), Some(1.0), Some(3.0)]),
        unit(1, "s", &[Some(3.0), Some(5.0), Some(1.0)]),
        unit(1, "s", &[Some(5.0), Some(3.0), Some(2.0)]),
    ];
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 0,
        units: &units,
        covariates: &covariates,
    })
    .expect("valid input");
    assert_eq!(
        table.omnibus[0].result,
        OmnibusResult::NotTested {
            reason: NotTestedReason::TooFewUnits { n_used: 4, p: 3 },
        }
    );
    let one_each = [units[0].clone(), units[2].clone()];
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 0,
        units: &one_each,
        covariates: &covariates,
    })
    .expect("valid input");
    assert!(matches!(
        table.omnibus[0].result,
        OmnibusResult::NotTested {
            reason: NotTestedReason::TooFewUnits { n_used: 2, .. }
        }
    ));
    assert!(table.covariates[0].arms.iter().all(|a| a.sd.is_none()));
    assert!(
        table.covariates[0]
            .contrasts
            .iter()
            .all(|c| c.difference.is_some() && c.std_difference.is_none())
    );
}

#[test]
fn no_covariates_gives_a_typed_reason() {
    let arms = names(&["kontroll", "t"]);
    let units = vec![unit(0, "s", &[]), unit(1, "s", &[])];
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 0,
        units: &units,
        covariates: &[],
    })
    .expect("valid input");
    assert_eq!(
        table.omnibus[0].result,
        OmnibusResult::NotTested {
            reason: NotTestedReason::NoCovariates,
        }
    );
}

#[test]
fn an_empty_arm_is_a_typed_error() {
    let units: Vec<BalanceUnit> = reference_units()
        .into_iter()
        .filter(|u| u.arm != 2)
        .collect();
    let arms = arms();
    let covariates = names(&["x1", "x2", "x3"]);
    let result = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 1,
        units: &units,
        covariates: &covariates,
    });
    assert_eq!(result, Err(BalanceError::EmptyArm("b".to_owned())));
}

#[test]
fn malformed_inputs_are_typed_errors() {
    let arms = arms();
    let covariates = names(&["x1", "x2", "x3"]);
    let units = reference_units();
    let run = |arms: &[String], control_index, units: &[BalanceUnit], covariates: &[String]| {
        balance_table(&BalanceInput {
            arms,
            control_index,
            units,
            covariates,
        })
    };
    assert_eq!(
        run(&arms[..1], 0, &units, &covariates),
        Err(BalanceError::TooFewArms(1))
    );
    assert_eq!(
        run(&arms, 3, &units, &covariates),
        Err(BalanceError::ControlOutOfRange { index: 3, arms: 3 })
    );
    assert_eq!(
        run(&names(&["a", "b", "a"]), 0, &units, &covariates),
        Err(BalanceError::DuplicateArm("a".to_owned()))
    );
    assert_eq!(
        run(&arms, 1, &units, &names(&["x1", "x2", "x1"])),
        Err(BalanceError::DuplicateCovariate("x1".to_owned()))
    );
    let mut bad = units.clone();
    bad[4].arm = 7;
    assert_eq!(
        run(&arms, 1, &bad, &covariates),
        Err(BalanceError::ArmOutOfRange {
            unit: 4,
            arm: 7,
            arms: 3
        })
    );
    let mut short = units;
    short[5].values.pop();
    assert_eq!(
        run(&arms, 1, &short, &covariates),
        Err(BalanceError::ValueCount {
            unit: 5,
            expected: 3,
            found: 2
        })
    );
}

#[test]
fn non_finite_values_count_as_missing() {
    let mut units = reference_units();
    let replacements = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let mut k = 0;
    for u in &mut units {
        for v in &mut u.values {
            if v.is_none() {
                *v = Some(replacements[k % 3]);
                k += 1;
            }
        }
    }
    assert_eq!(k, 3);
    let arms = arms();
    let covariates = names(&["x1", "x2", "x3"]);
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 1,
        units: &units,
        covariates: &covariates,
    })
    .expect("valid input");
    assert_eq!(table, reference_table());
}

/// Every float the table reports.
fn floats(table: &BalanceTable) -> Vec<f64> {
    let mut out = Vec::new();
    for cov in &table.covariates {
        for a in &cov.arms {
            out.extend(a.mean.into_iter().chain(a.sd));
        }
        for c in &cov.contrasts {
            out.extend(c.difference.into_iter().chain(c.std_difference));
        }
    }
    for test in &table.omnibus {
        if let OmnibusResult::Tested {
            t_squared,
            f,
            p_value,
            ..
        } = test.result
        {
            out.extend([t_squared, f, p_value]);
        }
    }
    out
}

#[test]
fn overflowing_values_give_none_not_nan() {
    let arms = names(&["kontroll", "t"]);
    let covariates = names(&["stor", "x"]);
    let units = vec![
        unit(0, "s", &[Some(f64::MAX), Some(1.0)]),
        unit(0, "s", &[Some(-f64::MAX), Some(2.0)]),
        unit(0, "s", &[Some(f64::MAX), Some(4.0)]),
        unit(1, "s", &[Some(f64::MAX), Some(3.0)]),
        unit(1, "s", &[Some(-f64::MAX), Some(5.0)]),
        unit(1, "s", &[Some(f64::MAX), Some(8.0)]),
    ];
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 0,
        units: &units,
        covariates: &covariates,
    })
    .expect("valid input");
    assert!(floats(&table).iter().all(|x| x.is_finite()));
    assert_eq!(
        table.omnibus[0].result,
        OmnibusResult::NotTested {
            reason: NotTestedReason::NonFinite,
        }
    );
}

#[test]
fn undefined_statistics_serialize_as_null() {
    let arms = names(&["kontroll", "t"]);
    let covariates = names(&["x"]);
    let units = vec![unit(0, "s", &[Some(1.0)]), unit(1, "s", &[N])];
    let table = balance_table(&BalanceInput {
        arms: &arms,
        control_index: 0,
        units: &units,
        covariates: &covariates,
    })
    .expect("valid input");
    let json = serde_json::to_value(&table).expect("serializes");
    let cov = &json["covariates"][0];
    assert_eq!(cov["arms"][0]["mean"], serde_json::json!(1.0));
    assert!(cov["arms"][0]["sd"].is_null());
    assert!(cov["arms"][1]["mean"].is_null());
    assert!(cov["contrasts"][0]["difference"].is_null());
    assert_eq!(json["omnibus"][0]["result"]["status"], "not_tested");
}

#[test]
fn masking_hides_cells_below_5_and_keeps_larger_ones() {
    let table = reference_table();
    let masked = mask_small_cells(&table, 5);
    assert_eq!(masked.min_cell, 5);
    assert_eq!(masked.arm_totals, vec![Some(8), Some(7), Some(9)]);
    assert_eq!(masked.strata[0].counts, vec![Some(5), None, Some(6)]);
    assert_eq!(masked.strata[0].total, Some(15));
    assert_eq!(masked.strata[1].counts, vec![None, None, None]);
    assert_eq!(masked.strata[1].total, Some(9));
    // Every arm has at least 6 values per covariate: summaries and contrasts stay.
    for (m, t) in masked.covariates.iter().zip(&table.covariates) {
        for (ma, ta) in m.arms.iter().zip(&t.arms) {
            assert_eq!((ma.n, ma.mean, ma.sd), (Some(ta.n), ta.mean, ta.sd));
            // Missing counts are 0 or 1: hidden.
            assert_eq!(ma.missing, None);
        }
        assert_eq!(m.contrasts, t.contrasts);
    }
    assert!(masked.omnibus.iter().all(|t| t.result.is_some()));
    assert_eq!(masked.omnibus[1].n_used, Some(14));
}

#[test]
fn masking_hides_contrasts_and_tests_built_on_hidden_cells() {
    let table = reference_table();
    let masked = mask_small_cells(&table, 7);
    // x3 has 6 values in kontroll: its summary and both contrasts on x3 are hidden.
    let x3 = &masked.covariates[2];
    assert_eq!(
        (x3.arms[1].n, x3.arms[1].mean, x3.arms[1].sd),
        (None, None, None)
    );
    assert_eq!(x3.arms[0].n, Some(8));
    assert!(
        x3.contrasts
            .iter()
            .all(|c| c.difference.is_none() && c.std_difference.is_none())
    );
    // x1 has 7 in kontroll and 8 in a and b: kept.
    assert!(
        masked.covariates[0]
            .contrasts
            .iter()
            .all(|c| c.difference.is_some())
    );
    // 6 complete control cases: omnibus results hidden, and n_used with them.
    for test in &masked.omnibus {
        assert_eq!(
            (test.n_control, test.n_used, &test.result),
            (None, None, &None)
        );
    }
    assert_eq!(masked.omnibus[1].n_treatment, Some(8));
    assert_eq!(masked.omnibus[0].n_treatment, Some(7));
}

fn firm(prefix: u32) -> Orgnr {
    (prefix..prefix + 20)
        .find_map(Orgnr::from_prefix)
        .expect("a valid orgnr within 20 prefixes")
}

#[test]
fn consort_counts_the_flow() {
    let eligible: Vec<UnitRow> = [88_964_078, 91_000_000, 92_000_000]
        .into_iter()
        .map(|p| UnitRow {
            orgnr: firm(p),
            klynge: None,
            fylke: "46".parse::<FylkeCode>().expect("fylke"),
            bransje: Bransje::Barnehager,
            sektor: Sektor::Privat,
            antall_ansatte: 12,
            dagsverk: None,
        })
        .collect();
    let exclusion = |code: &str| Exclusion {
        code: code.to_owned(),
        message: String::new(),
    };
    let excluded = vec![
        Excluded {
            orgnr: firm(93_000_000),
            reasons: vec![exclusion("fylke"), exclusion("min_employees")],
        },
        Excluded {
            orgnr: firm(94_000_000),
            reasons: vec![exclusion("fylke")],
        },
    ];
    let row = |unit: &UnitRow, arm: &str| AssignmentRow {
        orgnr: unit.orgnr,
        arm: arm.to_owned(),
        stratum: "s".to_owned(),
        klynge: None,
        bolge: 1,
        sannsynlighet: 0.5,
        trukket: None,
    };
    let assignment = Assignment {
        header: DrawHeader {
            protocol_id: "p".to_owned(),
            protocol_hash: "h".to_owned(),
            algorithm: "a".to_owned(),
            wave: 1,
            seed: "s".to_owned(),
        },
        rows: vec![row(&eligible[0], "kontroll"), row(&eligible[2], "dialog")],
        baseline_cuts: vec![],
    };
    let screening = Screening { eligible, excluded };
    let flow = Consort::from_screening(
        &screening,
        &assignment,
        &names(&["kontroll", "dialog", "kurs"]),
    );
    assert_eq!(
        flow,
        Consort {
            assessed: 5,
            eligible: 3,
            excluded_by_reason: BTreeMap::from([
                ("fylke".to_owned(), 2),
                ("min_employees".to_owned(), 1)
            ]),
            randomized_per_arm: BTreeMap::from([
                ("dialog".to_owned(), 1),
                ("kontroll".to_owned(), 1),
                ("kurs".to_owned(), 0)
            ]),
            not_randomized: 1,
        }
    );
}

fn any_value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        4 => (-1e3..1e3_f64).prop_map(Some),
        1 => Just(None),
        1 => prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            0.0,
            1e300,
        ])
        .prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn never_panics_and_reports_only_finite_numbers(
        n_arms in 0usize..4,
        n_cov in 0usize..4,
        control_index in 0usize..4,
        raw in prop::collection::vec(
            (0usize..5, 0usize..3, prop::collection::vec(any_value(), 0..5)),
            0..16,
        ),
        min in 0usize..6,
    ) {
        let arms: Vec<String> = (0..n_arms).map(|a| format!("arm{a}")).collect();
        let covariates: Vec<String> = (0..n_cov).map(|j| format!("x{j}")).collect();
        let units: Vec<BalanceUnit> = raw
            .into_iter()
            .map(|(arm, stratum, mut values)| {
                // Mostly the right length, so most cases get past validation.
                if values.len() != 4 {
                    values.resize(n_cov, Some(1.0));
                }
                BalanceUnit { arm, stratum: format!("s{stratum}"), values }
            })
            .collect();
        let input = BalanceInput { arms: &arms, control_index, units: &units, covariates: &covariates };
        if let Ok(table) = balance_table(&input) {
            prop_assert!(floats(&table).iter().all(|x| x.is_finite()));
            let masked = mask_small_cells(&table, min);
            prop_assert_eq!(masked.arm_totals.len(), arms.len());
            prop_assert!(serde_json::to_string(&masked).is_ok());
        }
    }
}

/// Primary suppression left stratum s1 as `[5, None, 6]` beside its total 15, so the hidden 4 was
/// 15 - 5 - 6. With the CONSORT flow published alongside, no hidden count may follow from the
/// shown ones by the table's sums.
#[test]
fn masking_with_the_flow_leaves_no_hidden_stratum_count_derivable() {
    let table = reference_table();
    let primary = mask_small_cells(&table, 5);
    assert_eq!(primary.strata[0].counts, vec![Some(5), None, Some(6)]);
    assert_eq!(primary.strata[0].total, Some(15));
    let flow = Consort {
        assessed: 30,
        eligible: 24,
        excluded_by_reason: [("sektor".to_owned(), 6)].into_iter().collect(),
        randomized_per_arm: table
            .arms
            .iter()
            .cloned()
            .zip(table.arm_totals.iter().copied())
            .collect(),
        not_randomized: 0,
    };
    let (masked, consort) = mask_with_flow(&table, &flow, 5);
    // Every stratum row and arm column: either no hidden cell, or at least two unknowns
    // (hidden cells or a hidden margin), so no subtraction gives a hidden cell.
    for (s, full) in masked.strata.iter().zip(&table.strata) {
        let hidden = s.counts.iter().filter(|c| c.is_none()).count();
        let unknown = hidden + usize::from(s.total.is_none());
        assert!(hidden == 0 || unknown >= 2, "{s:?} of {full:?}");
    }
    for a in 0..table.arms.len() {
        let hidden = masked
            .strata
            .iter()
            .filter(|s| s.counts[a].is_none())
            .count();
        let unknown = hidden + usize::from(masked.arm_totals[a].is_none());
        assert!(hidden == 0 || unknown >= 2, "arm {a}: {masked:?}");
    }
    // n + missing = arm total: a hidden missing count keeps a partner hidden.
    for cov in &masked.covariates {
        for (a, s) in cov.arms.iter().enumerate() {
            if s.missing.is_none() {
                assert!(
                    s.n.is_none() || masked.arm_totals[a].is_none(),
                    "{}: {s:?}",
                    cov.covariate
                );
            }
        }
    }
    // CONSORT's not_randomized 0 is hidden (zeros are small in this table) and so must be a
    // partner in eligible = Σ randomized + not_randomized.
    assert_eq!(consort.not_randomized, None);
    let unknown = consort
        .randomized_per_arm
        .values()
        .filter(|v| v.is_none())
        .count()
        + usize::from(consort.eligible.is_none());
    assert!(unknown >= 1, "{consort:?}");
    // The directorate sees everything.
    let (open, flow_open) = mask_with_flow(&table, &flow, 0);
    assert_eq!(open.strata[0].counts, vec![Some(5), Some(4), Some(6)]);
    assert_eq!(flow_open.not_randomized, Some(0));
}
