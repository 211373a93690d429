//! Attrition bounds against `tests/fixtures/bounds/` (notebooks/bounds_reference.py: exact
//! rational arithmetic rounded once; README-bounds.md gives the definitions and the StatsPAI
//! cross-check). Counts and the trimmed arm exactly, everything else to 1e-12.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ia_rct::estimate::bounds::{self, BoundsInput, RATE_RANGE, TrimmedArm};

const TOL: f64 = 1e-12;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bounds")
}

struct Firms {
    treated: Vec<bool>,
    stratum: Vec<u32>,
    n_strata: usize,
    y: Vec<Option<f64>>,
}

fn firms(case: &str) -> Firms {
    let mut reader = csv::Reader::from_path(dir().join(case).join("firms.csv")).expect("firms.csv");
    let mut strata: BTreeMap<String, u32> = BTreeMap::new();
    let mut f = Firms {
        treated: Vec::new(),
        stratum: Vec::new(),
        n_strata: 0,
        y: Vec::new(),
    };
    for row in reader.records() {
        let row = row.expect("row");
        f.treated.push(match &row[1] {
            "treated" => true,
            "control" => false,
            other => panic!("arm {other}"),
        });
        let next = strata.len() as u32;
        f.stratum
            .push(*strata.entry(row[2].to_owned()).or_insert(next));
        f.y.push((!row[3].is_empty()).then(|| row[3].parse().expect("y")));
    }
    f.n_strata = strata.len();
    f
}

fn check(what: &str, got: f64, want: &serde_json::Value, failures: &mut Vec<String>) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: {want}"));
    if (got - want).abs() > TOL * want.abs().max(1.0) {
        failures.push(format!("{what}: got {got:e}, want {want:e}"));
    }
}

#[test]
fn lee_and_manski_bounds_match_the_exact_reference() {
    let mut failures = Vec::new();
    let cases = [
        "unbalanced",
        "treated_attrits_more",
        "control_attrits_more",
        "equal_attrition",
        "tiny",
    ];
    for case in cases {
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir().join(case).join("expected.json")).expect("expected"),
        )
        .expect("json");
        let f = firms(case);
        let input = BoundsInput {
            treated: &f.treated,
            stratum: &f.stratum,
            n_strata: f.n_strata,
            y: &f.y,
        };
        let lee = bounds::lee(&input, 0.95).expect("lee");
        let arm = match lee.trimmed_arm {
            TrimmedArm::Treated => "treated",
            TrimmedArm::Control => "control",
            TrimmedArm::None => "none",
        };
        assert_eq!(arm, expected["trimmed_arm"], "{case}");
        assert_eq!(
            lee.warning.is_some(),
            arm == "none",
            "{case}: warns exactly at q = 0"
        );
        let l = &expected["lee"];
        for (what, got, want) in [
            ("q", lee.q, &expected["q"]),
            ("p1", lee.observed_share_treated, &expected["p1"]),
            ("p0", lee.observed_share_control, &expected["p0"]),
            ("lower", lee.lower, &l["lower"]),
            ("upper", lee.upper, &l["upper"]),
            ("se_lower", lee.se_lower, &l["se_lower"]),
            ("se_upper", lee.se_upper, &l["se_upper"]),
            ("im_c", lee.im_c, &l["im_c"]),
            ("im_ci_low", lee.im_ci_low, &l["im_ci_low"]),
            ("im_ci_high", lee.im_ci_high, &l["im_ci_high"]),
            ("naive_ci_low", lee.naive_ci_low, &l["naive_ci_low"]),
            ("naive_ci_high", lee.naive_ci_high, &l["naive_ci_high"]),
        ] {
            check(&format!("{case} {what}"), got, want, &mut failures);
        }
        let m = bounds::manski(&input, RATE_RANGE).expect("manski");
        check(
            &format!("{case} manski lower"),
            m.lower,
            &expected["manski_pooled"]["lower"],
            &mut failures,
        );
        check(
            &format!("{case} manski upper"),
            m.upper,
            &expected["manski_pooled"]["upper"],
            &mut failures,
        );
        check(
            &format!("{case} manski blocked lower"),
            m.blocked_lower.expect("blocked"),
            &expected["manski_blocked"]["lower"],
            &mut failures,
        );
        check(
            &format!("{case} manski blocked upper"),
            m.blocked_upper.expect("blocked"),
            &expected["manski_blocked"]["upper"],
            &mut failures,
        );
        assert!(
            m.lower <= lee.lower && lee.upper <= m.upper,
            "{case}: Lee inside Manski"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
