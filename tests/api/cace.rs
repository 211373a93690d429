//! `cace_iv` and its Anderson-Rubin set against the reference packages: the fixtures in
//! `tests/fixtures/cace/` were computed by `notebooks/cace_reference.py` (estimatr 1.0.0
//! `iv_robust`, `lm_robust` for the first stage, the reduced form and the AR grid inversion;
//! linearmodels `IV2SLS` as a cross-check; their headers name versions and calls). Each case takes
//! its assignment, statistics and windows from an estimates case and adds `takeup.csv`.
//!
//! Estimates, standard errors, df, p-values, interval limits, first stage, take-up shares and the
//! joint covariance agree to 1e-8 relative; counts and the AR shape exactly; each AR end point lies
//! within the grid inversion's bracket (its resolution).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fixtures::{estimates_study, reference_rows, study};
use ia_rct::estimate::{self, ArShape, Estimator, IvDetail, Options, Takeup};

const REL_TOL: f64 = 1e-8;
const ABS_FLOOR: f64 = 1e-13;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= REL_TOL * want.abs().max(got.abs()) + ABS_FLOOR
}

fn num(row: &BTreeMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {:?}", row[key]))
}

/// Runs `cace_iv` (and `itt_ancova`, its reduced form) on one case.
fn run(case: &str) -> estimate::Report {
    let dir = root().join("tests/fixtures/cace").join(case);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cace.json")).expect("cace.json"))
            .expect("cace json");
    let path = |key: &str| root().join(spec[key].as_str().expect(key));
    let (data, params) = study(&path("assignment"), &path("stats"), &path("params"));
    let events = ia_rct::takeup::parse_takeup(&std::fs::read(path("takeup")).expect("takeup"))
        .expect("take-up parses");
    let cutoff = spec["cutoff"]
        .as_str()
        .expect("cutoff")
        .parse()
        .expect("date");
    let mut opts = Options::all(params["control"].as_str().expect("control"));
    opts.estimators = vec![Estimator::IttAncova, Estimator::DidTwfe, Estimator::CaceIv];
    opts.takeup = Some(Takeup::from_events(&events, cutoff));
    estimate::estimate(&data, &opts).expect("estimates")
}

/// One case's rows: `expected.csv` (the firm-level 2SLS, term `received`) or, `panel`,
/// `expected_panel.csv` (the DiD version, term `received_x_post`, CR1 and CR2 rows).
fn check_case(case: &str, panel: bool, failures: &mut Vec<String>) -> usize {
    let report = run(case);
    let (file, term, model) = if panel {
        ("expected_panel.csv", "received_x_post", "did")
    } else {
        ("expected.csv", "received", "ancova")
    };
    let expected = reference_rows(&root().join("tests/fixtures/cace").join(case).join(file));
    assert!(!expected.is_empty(), "{case}: no reference rows");
    for row in &expected {
        let key = format!(
            "{case} {} {} {}",
            row["arm"], row["weights"], row["se_type"]
        );
        let mut check = |what: &str, got: f64, want: f64| {
            if !close(got, want) {
                failures.push(format!("{key} {what}: got {got:e}, want {want:e}"));
            }
        };
        let est: Vec<_> = report
            .estimates
            .iter()
            .filter(|e| {
                e.estimator == "cace_iv"
                    && e.term == term
                    && e.se_type == row["se_type"]
                    && e.arm == row["arm"]
                    && e.weights == row["weights"]
            })
            .collect();
        let [e] = est.as_slice() else {
            failures.push(format!(
                "{key}: {} cace_iv rows; skipped: {:?}",
                est.len(),
                report.skipped
            ));
            continue;
        };
        if let Some(ssc) = row.get("ssc_factor").filter(|v| !v.is_empty()) {
            check(
                "ssc_factor",
                e.ssc_factor.unwrap_or(f64::NAN),
                ssc.parse().expect("ssc"),
            );
        }
        assert_eq!(e.n_units.to_string(), row["n_units"], "{key} n_units");
        assert_eq!(e.n_obs.to_string(), row["n_obs"], "{key} n_obs");
        assert_eq!(
            e.n_clusters.map(|n| n.to_string()).unwrap_or_default(),
            row["n_clusters"],
            "{key} n_clusters"
        );
        for (what, got) in [
            ("estimate", e.estimate),
            ("std_error", e.std_error),
            ("df", e.df),
            ("statistic", e.statistic),
            ("p_value", e.p_value),
            ("ci_low", e.ci_low),
            ("ci_high", e.ci_high),
        ] {
            check(what, got, num(row, what));
        }
        let details: Vec<&IvDetail> = report
            .iv
            .iter()
            .filter(|d| {
                d.model == model
                    && d.se_type == row["se_type"]
                    && d.arm == row["arm"]
                    && d.weights == row["weights"]
            })
            .collect();
        let [d] = details.as_slice() else {
            failures.push(format!("{key}: {} iv details", details.len()));
            continue;
        };
        for (what, got) in [
            ("fs_estimate", d.first_stage),
            ("fs_std_error", d.first_stage_std_error),
            ("fs_df", d.first_stage_df),
            ("fs_F", d.first_stage_f),
            ("fs_p_value", d.first_stage_p_value),
            ("takeup_treated", d.takeup_treated),
            ("takeup_control", d.takeup_control),
            ("rf_estimate", d.reduced_form),
            ("rf_std_error", d.reduced_form_std_error),
            ("V_yy", d.covariance.v_yy),
            ("V_yd", d.covariance.v_yd),
            ("V_dd", d.covariance.v_dd),
            ("ar_df", d.anderson_rubin.df),
            ("ar_crit", d.anderson_rubin.critical_value),
        ] {
            // The panel fixtures have no take-up shares or first-stage p.
            if row.contains_key(what) {
                check(what, got, num(row, what));
            }
        }
        for (what, got) in [
            ("received_treated", d.received_treated),
            ("n_treated", d.n_treated),
            ("received_control", d.received_control),
            ("n_control", d.n_control),
        ] {
            assert_eq!(got.to_string(), row[what], "{key} {what}");
        }
        // The reduced form is itt_ancova (or did_twfe), row for row.
        let reduced = if panel { "did_twfe" } else { "itt_ancova" };
        let itt = report
            .estimates
            .iter()
            .find(|a| {
                a.estimator == reduced
                    && (!panel || a.se_type == row["se_type"])
                    && a.arm == row["arm"]
                    && a.weights == row["weights"]
            })
            .expect("the reduced form's row");
        assert_eq!(
            itt.estimate, d.reduced_form,
            "{key}: reduced form = {reduced}"
        );
        assert!(
            (itt.std_error - d.reduced_form_std_error).abs() <= 1e-12 * itt.std_error,
            "{key}: the reduced form's SE is {reduced}'s"
        );
        // The Anderson-Rubin set: shape exactly, end points within the grid's bracket.
        let ar = &d.anderson_rubin;
        assert_eq!(ar.shape.name(), row["ar_shape"], "{key} AR shape");
        let end = |which: &str, got: Option<f64>, failures: &mut Vec<String>| {
            let Some(got) = got else {
                failures.push(format!("{key} ar_{which}: missing"));
                return;
            };
            let (a, r) = (
                num(row, &format!("ar_{which}_accepted")),
                num(row, &format!("ar_{which}_rejected")),
            );
            let slack = 1e-12 * got.abs().max(1.0);
            let inside = a.min(r) - slack <= got && got <= a.max(r) + slack;
            let near = (got - num(row, &format!("ar_{which}"))).abs() <= num(row, "ar_resolution");
            if !(inside || near) {
                failures.push(format!(
                    "{key} ar_{which}: {got:e} outside the bracket [{a:e}, {r:e}]"
                ));
            }
        };
        match ar.shape {
            ArShape::Bounded | ArShape::TwoRays => {
                end("low", ar.low, failures);
                end("high", ar.high, failures);
            }
            ArShape::WholeLine => {
                assert!(ar.low.is_none() && ar.high.is_none(), "{key}");
                assert!(num(row, "ar_t2_peak") <= num(row, "ar_crit"), "{key}");
            }
            other => failures.push(format!("{key}: unexpected AR shape {other:?}")),
        }
        assert!(
            ar.contains(e.estimate),
            "{key}: the estimate lies in its AR set"
        );
    }
    expected.len()
}

#[test]
fn cace_iv_matches_iv_robust_and_the_ar_grid_inversion() {
    let mut failures = Vec::new();
    let mut n = 0;
    for case in ["balanced", "unbalanced", "clustered", "collinear", "weak"] {
        n += check_case(case, false, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {n} rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n >= 20, "{n} reference rows");
}

/// The panel version against pyfixest `feols("r ~ 1 | orgnr + kvartal | rd ~ d")` (CR1) and
/// AER `ivreg` + clubSandwich CR2 (notebooks/README-cace-panel.md).
#[test]
fn the_panel_cace_iv_matches_pyfixest_and_clubsandwich() {
    let mut failures = Vec::new();
    let mut n = 0;
    for case in ["balanced", "unbalanced", "clustered", "collinear", "weak"] {
        n += check_case(case, true, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {n} rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n >= 40, "{n} reference rows");
}

#[test]
fn the_weak_case_has_unbounded_ar_sets_and_the_strong_ones_bounded() {
    let weak = run("weak");
    let shapes: Vec<ArShape> = weak
        .iv
        .iter()
        .filter(|d| d.model == "ancova")
        .map(|d| d.anderson_rubin.shape)
        .collect();
    assert!(shapes.contains(&ArShape::TwoRays), "{shapes:?}");
    assert!(shapes.contains(&ArShape::WholeLine), "{shapes:?}");
    for d in weak.iv.iter().filter(|d| d.model == "ancova") {
        assert!(d.first_stage_f < d.anderson_rubin.critical_value, "{d:?}");
    }
    // Every weighted estimate says how concentrated its arms' weights are; firm-weighted ones not.
    for e in &weak.estimates {
        let w = e.weight_summary;
        assert_eq!(
            w.is_some(),
            e.weights == "dagsverk",
            "{} {}",
            e.estimator,
            e.weights
        );
        if let Some(w) = w {
            assert!(
                w.effective_n_treated >= 1.0 && w.effective_n_treated <= 39.0,
                "{w:?}"
            );
            assert!(w.max_weight_share_control > 0.0 && w.max_weight_share_control <= 1.0);
        }
    }
    let strong = run("balanced");
    assert!(
        strong
            .iv
            .iter()
            .all(|d| d.anderson_rubin.shape == ArShape::Bounded)
    );
}

#[test]
fn without_take_up_records_all_leaves_cace_iv_out() {
    let (data, _) = estimates_study(&root().join("tests/fixtures/estimates/balanced"));
    let report = estimate::estimate(&data, &Options::all("kontroll")).expect("estimates");
    assert!(report.estimates.iter().all(|e| e.estimator != "cace_iv"));
    assert!(report.iv.is_empty());
}
