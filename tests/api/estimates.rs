//! Every estimator against the reference packages: the fixtures in `tests/fixtures/estimates/` were
//! computed by `notebooks/estimates_reference.py` with estimatr 1.0.0, clubSandwich 0.5.8 and
//! pyfixest 0.60.0 (their headers name versions and calls). Estimates, standard errors, statistics,
//! p-values and interval limits must agree to `REL_TOL`; integer degrees of freedom and counts
//! exactly; Satterthwaite degrees of freedom to `REL_TOL`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ia_rct::estimate::{self, Estimate, Options, StudyData, Windows, read_assignment_table};

/// Relative tolerance against the reference packages (statistics.md: 1e-8).
const REL_TOL: f64 = 1e-8;
/// Absolute floor for quantities that are zero or tiny in the reference (p-values near 0).
const ABS_FLOOR: f64 = 1e-13;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/estimates")
}

fn close(got: f64, want: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    (got - want).abs() <= REL_TOL * want.abs().max(got.abs()) + ABS_FLOOR
}

/// Our `se_type` for a fixture label.
fn se_type(label: &str) -> &str {
    match label {
        "neyman_blocked" => "Neyman",
        "neyman_matched_pair" => "Matched-pair",
        "pashley_miratrix" => "Pashley-Miratrix",
        other => other,
    }
}

struct Case {
    dir: PathBuf,
    report: estimate::Report,
}

fn run_case(dir: &Path) -> Case {
    let params: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("params.json")).expect("params.json"),
    )
    .expect("params json");
    let windows = Windows {
        randomized_at: params["randomized_at"]
            .as_str()
            .expect("R")
            .parse()
            .expect("quarter"),
        pre: params["pre"].as_u64().expect("pre") as u32,
        post: params["post"].as_u64().expect("post") as u32,
    };
    let control = params["control"].as_str().expect("control");
    let text = std::fs::read_to_string(dir.join("assignment.csv")).expect("assignment");
    let (units, _) = read_assignment_table(&text).expect("assignment parses");
    let stats = std::fs::File::open(dir.join("stats.csv")).expect("stats");
    let data = StudyData::from_stats_reader(windows, units, stats).expect("study data");
    let report = estimate::estimate(&data, &Options::all(control)).expect("estimates");
    Case {
        dir: dir.to_owned(),
        report,
    }
}

fn expected_rows(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("expected.csv")).expect("expected.csv");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    row.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().expect("number"))
}

fn check_estimate(case: &Case, row: &BTreeMap<String, String>, failures: &mut Vec<String>) {
    let key = format!(
        "{} {} {} {} {} {}",
        case.dir.file_name().and_then(|n| n.to_str()).unwrap_or(""),
        row["estimator"],
        row["arm"],
        row["weights"],
        row["se_type"],
        row["term"]
    );
    let found: Vec<&Estimate> = case
        .report
        .estimates
        .iter()
        .filter(|e| {
            e.estimator == row["estimator"]
                && e.arm == row["arm"]
                && e.weights == row["weights"]
                && e.se_type == se_type(&row["se_type"])
                && e.term == row["term"]
        })
        .collect();
    let [e] = found.as_slice() else {
        let skipped: Vec<String> = case
            .report
            .skipped
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        failures.push(format!(
            "{key}: {} matching estimates; skipped: {skipped:?}",
            found.len()
        ));
        return;
    };
    for (field, got) in [
        ("estimate", e.estimate),
        ("std_error", e.std_error),
        ("statistic", e.statistic),
        ("p_value", e.p_value),
        ("ci_low", e.ci_low),
        ("ci_high", e.ci_high),
        ("df", e.df),
    ] {
        let want = num(row, field).expect("reference value");
        if !close(got, want) {
            failures.push(format!("{key}: {field} {got:e} vs reference {want:e}"));
        }
    }
    if let Some(want) = num(row, "ssc_factor")
        && !e.ssc_factor.is_some_and(|got| close(got, want))
    {
        failures.push(format!("{key}: ssc_factor {:?} vs {want}", e.ssc_factor));
    }
    for (field, got) in [
        ("n_units", Some(e.n_units)),
        ("n_obs", Some(e.n_obs)),
        ("n_clusters", e.n_clusters),
    ] {
        let want = num(row, field).map(|v| v as usize);
        if got != want {
            failures.push(format!("{key}: {field} {got:?} vs reference {want:?}"));
        }
    }
    if let Some(design) = row.get("design").filter(|d| !d.is_empty())
        && &e.design != design
    {
        failures.push(format!("{key}: design {:?} vs {design:?}", e.design));
    }
    let want_dropped: BTreeMap<String, usize> = row
        .get("dropped")
        .map(|d| {
            d.split(';')
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.parse().expect("count")))
                .collect()
        })
        .unwrap_or_default();
    let got_dropped: BTreeMap<String, usize> = e
        .dropped
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if got_dropped != want_dropped {
        failures.push(format!(
            "{key}: dropped {got_dropped:?} vs {want_dropped:?}"
        ));
    }
}

fn check_pretrend(case: &Case, row: &BTreeMap<String, String>, failures: &mut Vec<String>) {
    let key = format!(
        "{:?} pretrend {} {}",
        case.dir.file_name(),
        row["arm"],
        row["weights"]
    );
    let Some(t) = case
        .report
        .tests
        .iter()
        .find(|t| t.arm == row["arm"] && t.weights == row["weights"])
    else {
        failures.push(format!("{key}: no test"));
        return;
    };
    for (field, got) in [
        ("statistic", t.statistic),
        ("p_value", t.p_value),
        ("df1", t.df_num),
        ("df2", t.df_den),
    ] {
        let want = num(row, field).expect("reference value");
        if !close(got, want) {
            failures.push(format!("{key}: {field} {got:e} vs reference {want:e}"));
        }
    }
}

#[test]
fn every_estimator_matches_the_reference_packages() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.csv").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "fixture cases missing: {dirs:?}");
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in &dirs {
        let case = run_case(dir);
        for row in expected_rows(dir) {
            checked += 1;
            if row["estimator"] == "event_study_pretrend" {
                check_pretrend(&case, &row, &mut failures);
            } else {
                check_estimate(&case, &row, &mut failures);
            }
        }
    }
    assert!(checked > 200, "only {checked} reference rows");
    assert!(
        failures.is_empty(),
        "{} of {checked} reference rows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
