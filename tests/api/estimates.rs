//! Every estimator against the reference packages: the fixtures in `tests/fixtures/estimates/` were
//! computed by `notebooks/estimates_reference.py` with estimatr 1.0.0, clubSandwich 0.5.8 and
//! pyfixest 0.60.0 (their headers name versions and calls). Estimates, standard errors, statistics,
//! p-values and interval limits must agree to `REL_TOL`; integer degrees of freedom and counts
//! exactly; Satterthwaite degrees of freedom to `REL_TOL`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ia_rct::estimate::{self, Estimate, Options, StudyData, Windows, read_assignment_table};

use crate::fixtures::{case_params, estimates_study, reference_rows};

/// Relative tolerance against the reference packages (docs/statistics.md §A.5: 1e-8).
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
fn se_type<'a>(estimator: &str, weights: &str, label: &'a str) -> &'a str {
    match label {
        "HC2" if estimator == "itt_dim" && weights == "dagsverk" => "per-stratum HC2",
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
    let (data, params) = estimates_study(dir);
    let control = params["control"].as_str().expect("control");
    let report = estimate::estimate(&data, &Options::all(control)).expect("estimates");
    Case {
        dir: dir.to_owned(),
        report,
    }
}

/// The reference rows of a case: `expected.csv`, and `expected_event_study_cr2.csv` (the event
/// study's CR2, notebooks/event_study_cr2_reference.py) where the case has panel estimates.
fn expected_rows(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let mut rows = reference_rows(&dir.join("expected.csv"));
    let cr2 = dir.join("expected_event_study_cr2.csv");
    if cr2.exists() {
        rows.extend(reference_rows(&cr2));
    }
    rows
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
                && e.se_type == se_type(&row["estimator"], &row["weights"], &row["se_type"])
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
    // The exact list: a case that vanishes (or a new one without its name here) fails.
    let names: Vec<&str> = dirs
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()))
        .collect();
    assert_eq!(
        names,
        [
            "balanced",
            "clustered",
            "collinear",
            "constant_in_arm",
            "emptied_control",
            "emptied_stratum",
            "longer",
            "singleton_hybrid",
            "singleton_pairs",
            "singleton_small_blocks",
            "unbalanced",
            "zero_variance",
        ],
        "fixture cases"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    // The reverse direction: per case, the ia-rct rows no reference row checks, the refusals
    // and the attrition, pinned (a new unchecked row or refusal changes these and fails).
    let mut reverse = Vec::new();
    for dir in &dirs {
        let case = run_case(dir);
        let rows = expected_rows(dir);
        let unchecked = case
            .report
            .estimates
            .iter()
            .filter(|e| {
                !rows.iter().any(|r| {
                    e.estimator == r["estimator"]
                        && e.arm == r["arm"]
                        && e.weights == r["weights"]
                        && e.se_type == se_type(&r["estimator"], &r["weights"], &r["se_type"])
                        && e.term == r["term"]
                })
            })
            .count();
        let attrition: Vec<(String, usize, usize, usize)> = case
            .report
            .attrition
            .iter()
            .map(|a| (a.arm.clone(), a.assigned, a.with_post_data, a.no_pre_data))
            .collect();
        reverse.push(format!(
            "{}: unchecked {unchecked}, skipped {:?}, attrition {attrition:?}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            case.report
                .skipped
                .iter()
                .map(|s| format!("{} {} {} {:?}", s.estimator, s.arm, s.weights, s.se_type))
                .collect::<Vec<_>>()
        ));
        for row in rows {
            checked += 1;
            if row["estimator"] == "event_study_pretrend" {
                check_pretrend(&case, &row, &mut failures);
            } else {
                check_estimate(&case, &row, &mut failures);
            }
        }
    }
    assert!(checked > 200, "only {checked} reference rows");
    let pinned: Vec<String> = include_str!("../fixtures/estimates/reverse.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        reverse, pinned,
        "unchecked rows, refusals or attrition changed"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} reference rows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A 9-digit orgnr with a valid MOD11 check digit, from a counter.
fn orgnr_from(k: u32) -> String {
    let mut base = 81_000_000 + k * 37;
    loop {
        let digits: Vec<u32> = format!("{base:08}")
            .bytes()
            .map(|b| u32::from(b - b'0'))
            .collect();
        let sum: u32 = digits
            .iter()
            .zip([3, 2, 7, 6, 5, 4, 3, 2])
            .map(|(d, w)| d * w)
            .sum();
        let check = (11 - sum % 11) % 11;
        if check < 10 {
            return format!("{base:08}{check}");
        }
        base += 1;
    }
}

/// `lm_lin` written out: columns (Intercept), z, the centered covariates (b [, b_missing], the
/// stratum dummies without the first stratum in sorted order), their products with z; a column
/// that is a linear combination of the ones before it is dropped (R's `qr()` rule, ANALYSIS.md §4);
/// weighted least squares and HC2 on the √w rows. Returns (z coefficient, HC2 SE, n − rank).
fn dense_lm_lin(y: &[f64], z: &[f64], covariates: &[Vec<f64>], weights: &[f64]) -> (f64, f64, f64) {
    let n = y.len();
    let total: f64 = weights.iter().sum();
    let centered: Vec<Vec<f64>> = covariates
        .iter()
        .map(|c| {
            let mean = c.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>() / total;
            c.iter().map(|v| v - mean).collect()
        })
        .collect();
    let mut columns: Vec<Vec<f64>> = vec![vec![1.0; n], z.to_vec()];
    columns.extend(centered.iter().cloned());
    columns.extend(
        centered
            .iter()
            .map(|c| c.iter().zip(z).map(|(v, zi)| v * zi).collect()),
    );
    let sqw: Vec<f64> = weights.iter().map(|w| w.sqrt()).collect();
    let scaled: Vec<Vec<f64>> = columns
        .iter()
        .map(|c| c.iter().zip(&sqw).map(|(v, s)| v * s).collect())
        .collect();
    // Modified Gram-Schmidt in column order: keep a column unless its residual is ~0.
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    for (j, c) in scaled.iter().enumerate() {
        let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut r = c.clone();
        for q in &basis {
            let dot: f64 = r.iter().zip(q).map(|(a, b)| a * b).sum();
            for (ri, qi) in r.iter_mut().zip(q) {
                *ri -= dot * qi;
            }
        }
        let rn = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        if rn > 1e-9 * norm.max(1e-300) {
            basis.push(r.iter().map(|v| v / rn).collect());
            kept.push(j);
        }
    }
    assert!(kept.contains(&1), "z is collinear");
    let k = kept.len();
    let x: Vec<&Vec<f64>> = kept.iter().map(|&j| &scaled[j]).collect();
    // M = (X̃'X̃)⁻¹ by Gauss-Jordan.
    let mut a = vec![vec![0.0; 2 * k]; k];
    for r in 0..k {
        for c in 0..k {
            a[r][c] = x[r].iter().zip(x[c]).map(|(u, v)| u * v).sum();
        }
        a[r][k + r] = 1.0;
    }
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("pivot");
        a.swap(col, piv);
        let d = a[col][col];
        for v in a[col].iter_mut() {
            *v /= d;
        }
        for r in 0..k {
            if r != col {
                let f = a[r][col];
                let pivot_row = a[col].clone();
                for (v, pv) in a[r].iter_mut().zip(&pivot_row) {
                    *v -= f * pv;
                }
            }
        }
    }
    let m: Vec<Vec<f64>> = a.iter().map(|row| row[k..].to_vec()).collect();
    let yt: Vec<f64> = y.iter().zip(&sqw).map(|(v, s)| v * s).collect();
    let xty: Vec<f64> = x
        .iter()
        .map(|c| c.iter().zip(&yt).map(|(u, v)| u * v).sum())
        .collect();
    let beta: Vec<f64> = m
        .iter()
        .map(|row| row.iter().zip(&xty).map(|(u, v)| u * v).sum())
        .collect();
    let zpos = kept.iter().position(|&j| j == 1).expect("z kept");
    let mut var = 0.0;
    for i in 0..n {
        let xi: Vec<f64> = x.iter().map(|c| c[i]).collect();
        let fit: f64 = xi.iter().zip(&beta).map(|(u, v)| u * v).sum();
        let e = yt[i] - fit;
        let mx: Vec<f64> = m
            .iter()
            .map(|row| row.iter().zip(&xi).map(|(u, v)| u * v).sum())
            .collect();
        let h: f64 = xi.iter().zip(&mx).map(|(u, v)| u * v).sum();
        var += (mx[zpos] * e).powi(2) / (1.0 - h);
    }
    (beta[zpos], var.sqrt(), (n - k) as f64)
}

/// Issue 10, defect 7: itt_lin keeps a stratum that attrition leaves with one arm only, and its z
/// coefficient, HC2 SE and df are those of lm_lin written out with R's rule for collinear
/// columns, whichever stratum loses an arm: a later one, the first in sorted order, several, and
/// a stratum without control firms; also with a baseline indicator that has no variation among
/// the treated (defect 12, seed 7 of check_unseen.py).
#[test]
fn itt_lin_is_lm_lin_when_attrition_empties_a_stratum_arm() {
    let arms = ["kontroll", "a", "b", "c"];
    let strata = ["s1", "s2", "s3", "s4", "s5"];
    // (arm, stratum) pairs whose firms all lack post data; "kontroll" in s4: every contrast
    // has a stratum without control firms too.
    let emptied = [
        ("a", "s3"),
        ("b", "s1"),
        ("c", "s2"),
        ("c", "s5"),
        ("kontroll", "s4"),
    ];
    let r: ia_rct::domain::Quarter = "2025K1".parse().expect("quarter");
    let mut assignment = String::from("orgnr,arm,stratum,klynge\n");
    let mut stats = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    let mut k = 0u32;
    let mut n_control = 0usize;
    let mut noise = 0.37_f64;
    let mut next = || {
        noise = (noise * 9301.0 + 0.49297).fract();
        noise
    };
    for (si, stratum) in strata.iter().enumerate() {
        for arm in arms {
            for _ in 0..(4 + (si + k as usize) % 3) {
                let orgnr = orgnr_from(k);
                assignment.push_str(&format!("{orgnr},{arm},{stratum},\n"));
                let gone = emptied.contains(&(arm, stratum));
                // Three control firms (in three strata) lack a baseline and no treated firm
                // does, so z x b_missing has no variation.
                let no_pre = arm == "kontroll" && !gone && [1, 9, 17].contains(&n_control);
                n_control += usize::from(arm == "kontroll");
                let size = 80.0 + 900.0 * next();
                let level = 3.0 + si as f64 * 0.7 + 4.0 * next();
                for t in -2..2 {
                    if (t >= 0 && gone) || (t < 0 && no_pre) {
                        continue;
                    }
                    let q = r.plus(t).expect("quarter");
                    let effect = if t >= 0 && arm != "kontroll" {
                        -0.6
                    } else {
                        0.0
                    };
                    let mulige = (size * (0.9 + 0.2 * next()) * 100.0).round() / 100.0;
                    let rate = level + effect + 1.5 * next();
                    let tapte = (rate / 100.0 * mulige * 1000.0).round() / 1000.0;
                    stats.push_str(&format!(
                        "{orgnr},{},{},{tapte},{mulige},10\n",
                        q.year(),
                        q.quarter()
                    ));
                }
                k += 1;
            }
        }
    }
    let windows = Windows {
        randomized_at: r,
        pre: 2,
        post: 2,
    };
    let (units, _) = read_assignment_table(&assignment).expect("assignment");
    let data =
        StudyData::from_stats_reader(windows, units.clone(), stats.as_bytes()).expect("study data");
    let report = estimate::estimate(&data, &Options::all("kontroll")).expect("estimates");
    // The firm-level data of each contrast, from the rows as written (ANALYSIS.md §2).
    let mut sums: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    for line in stats.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let post = f[1] == "2025";
        let e = sums.entry(f[0].to_owned()).or_default();
        let (tapte, mulige): (f64, f64) = (f[3].parse().expect("t"), f[4].parse().expect("m"));
        if post {
            e[0] += tapte;
            e[1] += mulige;
        } else {
            e[2] += tapte;
            e[3] += mulige;
        }
    }
    let mut checked = 0;
    for arm in ["a", "b", "c"] {
        let firms: Vec<(&str, f64, f64, Option<f64>, f64)> = units
            .iter()
            .filter(|u| u.arm == arm || u.arm == "kontroll")
            .filter_map(|u| {
                let s = sums.get(&u.orgnr.to_string())?;
                (s[1] > 0.0).then(|| {
                    (
                        u.stratum.as_str(),
                        f64::from(u8::from(u.arm == arm)),
                        100.0 * s[0] / s[1],
                        (s[3] > 0.0).then(|| 100.0 * s[2] / s[3]),
                        s[1],
                    )
                })
            })
            .collect();
        let y: Vec<f64> = firms.iter().map(|f| f.2).collect();
        let z: Vec<f64> = firms.iter().map(|f| f.1).collect();
        let mut covariates = vec![firms.iter().map(|f| f.3.unwrap_or(0.0)).collect::<Vec<_>>()];
        assert!(firms.iter().any(|f| f.3.is_none()));
        covariates.push(
            firms
                .iter()
                .map(|f| f64::from(u8::from(f.3.is_none())))
                .collect(),
        );
        let mut present: Vec<&str> = firms.iter().map(|f| f.0).collect();
        present.sort_unstable();
        present.dedup();
        for s in &present[1..] {
            covariates.push(
                firms
                    .iter()
                    .map(|f| f64::from(u8::from(f.0 == *s)))
                    .collect(),
            );
        }
        for (weighting, w) in [
            ("firm", vec![1.0; firms.len()]),
            ("dagsverk", firms.iter().map(|f| f.4).collect()),
        ] {
            let (want, want_se, want_df) = dense_lm_lin(&y, &z, &covariates, &w);
            let got = report
                .estimates
                .iter()
                .find(|e| e.estimator == "itt_lin" && e.arm == arm && e.weights == weighting)
                .unwrap_or_else(|| panic!("itt_lin {arm} {weighting}: {:?}", report.skipped));
            let key = format!("itt_lin {arm} {weighting}");
            assert!(
                close(got.estimate, want),
                "{key}: {} vs {want}",
                got.estimate
            );
            assert!(
                close(got.std_error, want_se),
                "{key}: {} vs {want_se}",
                got.std_error
            );
            assert_eq!(got.df, want_df, "{key}");
            assert_eq!(got.n_obs, firms.len(), "{key}");
            assert_eq!(
                got.dropped
                    .get("collinear_column:z*stratum_without_both_arms"),
                Some(&0),
                "{key}: {:?}",
                got.dropped
            );
            assert!(
                !got.dropped.contains_key("stratum_without_both_arms"),
                "{key}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

/// Statistics split over several files (one per quarter, in both NAV formats) give the same study
/// as one file; a firm-quarter given in two files is refused, and a problem names its file.
#[test]
fn several_statistics_files_are_one_study() {
    let dir = fixtures().join("unbalanced");
    let (params, case_windows) = case_params(&dir.join("params.json"));
    let windows = || case_windows.clone();
    let text = std::fs::read_to_string(dir.join("assignment.csv")).expect("assignment");
    let (units, _) = read_assignment_table(&text).expect("assignment parses");
    let stats = std::fs::read_to_string(dir.join("stats.csv")).expect("stats");
    let mut lines = stats.lines();
    let header = lines.next().expect("header");
    // One CSV per quarter; every other quarter as NAV's JSON instead.
    let mut by_quarter: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        by_quarter
            .entry(format!("{}K{}", fields[1], fields[2]))
            .or_default()
            .push(line);
    }
    assert!(by_quarter.len() > 4, "{by_quarter:?}");
    let files: Vec<(String, Vec<u8>)> = by_quarter
        .iter()
        .enumerate()
        .map(|(k, (quarter, rows))| {
            if k % 2 == 0 {
                let mut csv = format!("{header}\n");
                for row in rows {
                    csv.push_str(row);
                    csv.push('\n');
                }
                (format!("{quarter}.csv"), csv.into_bytes())
            } else {
                let elements: Vec<String> = rows
                    .iter()
                    .map(|row| {
                        let f: Vec<&str> = row.split(',').collect();
                        format!(
                            r#"{{"orgnr":"{}","årstall":{},"kvartal":{},"tapteDagsverk":"{}","muligeDagsverk":"{}","antallPersoner":{}}}"#,
                            f[0], f[1], f[2], f[3], f[4], f[5]
                        )
                    })
                    .collect();
                (
                    format!("{quarter}.json"),
                    format!("[{}]", elements.join(",")).into_bytes(),
                )
            }
        })
        .collect();
    let one =
        StudyData::from_stats_reader(windows(), units.clone(), stats.as_bytes()).expect("one file");
    let sources = files
        .iter()
        .map(|(name, bytes)| (name.clone(), bytes.as_slice()))
        .collect();
    let several =
        StudyData::from_stats_readers(windows(), units.clone(), sources).expect("several files");
    assert_eq!(several.obs, one.obs);
    assert_eq!(several.rows_read, one.rows_read);
    let control = params["control"].as_str().expect("control");
    let a = estimate::estimate(&one, &Options::all(control)).expect("estimates");
    let b = estimate::estimate(&several, &Options::all(control)).expect("estimates");
    assert_eq!(
        serde_json::to_value(&a.estimates).expect("json"),
        serde_json::to_value(&b.estimates).expect("json")
    );

    // The first quarter's file twice: a duplicate firm-quarter.
    let mut twice: Vec<(String, &[u8])> = vec![(files[0].0.clone(), files[0].1.as_slice())];
    twice.push(("again.csv".to_owned(), files[0].1.as_slice()));
    let err = StudyData::from_stats_readers(windows(), units.clone(), twice)
        .expect_err("duplicate firm-quarter");
    assert!(err.to_string().contains("two rows for quarter"), "{err}");

    // A bad row in the second file is named with the file.
    let bad = b"orgnr,arstall,kvartal,taptedv,muligedv,antpers\n987654325,2023,1,5,-1,10\n";
    let with_bad: Vec<(String, &[u8])> = vec![
        (files[0].0.clone(), files[0].1.as_slice()),
        ("bad.csv".to_owned(), bad.as_slice()),
    ];
    let err = StudyData::from_stats_readers(windows(), units, with_bad).expect_err("bad row");
    let message = err.to_string();
    assert!(
        message.contains("bad.csv: row 1") && message.contains("muligedv"),
        "{message}"
    );
}

mod api {
    use reqwest::Method;

    use ia_rct::domain::{Quarter, Role};
    use ia_rct::estimate::{self, AssignedUnit, Options, StudyData, Windows};

    use crate::helpers::{Backend, TestApp, make_token};

    /// The service's estimates are the library's on the same rows, name the vintage and protocol,
    /// mark the confirmatory family, and are audited reads for direktorat and forsker.
    async fn the_service_estimates_every_arm_from_the_register(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.trial_in_state("est", "randomized", 400).await;
        let assigned = app
            .store
            .assignments("est", None, None, 10_000)
            .await
            .expect("assignments");
        // nals-arbeidsformer: randomized 2025K1, 8 quarters before, 12 after.
        let first: Quarter = "2023K1".parse().expect("quarter");
        let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
        let mut values = Vec::new();
        for (i, a) in assigned.iter().enumerate() {
            for t in 0..20 {
                if (i + t) % 37 == 0 {
                    continue; // a missing quarter now and then
                }
                let q = first.plus(t as i32).expect("quarter");
                let effect = if t >= 8 && a.arm == "bred_prosess" {
                    -3.0
                } else {
                    0.0
                };
                let mulige = 100.0 + (i % 17) as f64 * 13.0;
                let rate =
                    6.0 + (i % 7) as f64 * 0.5 + ((i * 31 + t * 7) % 11) as f64 * 0.3 + effect;
                let tapte = mulige * rate / 100.0;
                csv.push_str(&format!(
                    "{},{},{},{tapte},{mulige},{}\n",
                    a.orgnr,
                    q.year(),
                    q.quarter(),
                    10 + i % 5
                ));
                values.push((a.orgnr, q, tapte, mulige));
            }
        }
        app.statistics_csv(csv, 201).await;
        let before = app.audit_count().await;
        let body = app
            .direktorat_call(
                Method::GET,
                "/v1/trials/est/estimates?weights=firm",
                None,
                200,
            )
            .await;
        // The GET started the run (audited with it), its job started and finished (audited),
        // and the read that served it is audited too.
        let rows = app
            .store
            .query_audit(&ia_rct::storage::AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("audit");
        assert!(rows.len() > before, "audited");
        let reads = rows
            .iter()
            .filter(|r| r.route == "/v1/trials/{id}/estimates" && r.method == "GET")
            .count();
        assert_eq!(
            reads, 2,
            "the request that started the run and the one that read it"
        );
        assert_eq!(body["vintage"], 1);
        let estimates = body["estimates"].as_array().expect("estimates");
        assert!(!estimates.is_empty(), "{body}");
        // The same rows through the library.
        let units: Vec<AssignedUnit> = assigned
            .iter()
            .map(|a| AssignedUnit {
                orgnr: a.orgnr,
                arm: a.arm.clone(),
                stratum: format!("{}:{}", a.wave, a.stratum),
                klynge: a.klynge.map(|k| k.to_string()),
            })
            .collect();
        let windows = Windows {
            randomized_at: "2025K1".parse().expect("quarter"),
            pre: 8,
            post: 12,
        };
        let data = StudyData::from_values(windows, units, values).expect("data");
        let mut opts = Options::all("kontroll");
        opts.weights = vec![ia_rct::estimate::Weighting::Firm];
        let report = estimate::estimate(&data, &opts).expect("estimates");
        assert_eq!(estimates.len(), report.estimates.len());
        for (served, local) in estimates.iter().zip(&report.estimates) {
            assert_eq!(served["estimator"], local.estimator.as_str());
            assert_eq!(served["arm"], local.arm.as_str());
            // Same rows, same code: equal up to the last bits of the stored doubles.
            let same = |key: &str, want: f64| {
                served[key]
                    .as_f64()
                    .is_some_and(|got| (got - want).abs() <= 1e-12 * want.abs())
            };
            assert!(same("estimate", local.estimate), "{served} vs {local:?}");
            assert!(same("std_error", local.std_error), "{served} vs {local:?}");
        }
        let did = estimates
            .iter()
            .find(|e| {
                e["estimator"] == "did_twfe" && e["arm"] == "bred_prosess" && e["se_type"] == "CR1"
            })
            .expect("did_twfe");
        assert!(
            (did["estimate"].as_f64().expect("estimate") + 3.0).abs() < 0.5,
            "{did}"
        );
        assert_eq!(did["confirmatory"], true);
        // p_holm over the protocol's family: itt_ancova and did_twfe (CR1) x three arms.
        let members: Vec<&serde_json::Value> = estimates
            .iter()
            .filter(|e| e["confirmatory"] == true)
            .collect();
        assert_eq!(members.len(), 2 * 3, "{members:?}");
        let ps: Vec<f64> = members
            .iter()
            .map(|e| e["p_value"].as_f64().expect("p"))
            .collect();
        for (e, want) in members.iter().zip(estimate::holm(&ps)) {
            let got = e["p_holm"].as_f64().expect("p_holm");
            assert!((got - want).abs() <= 1e-12, "{e}: {got} vs {want}");
        }
        let unfiltered_holm = did["p_holm"].as_f64().expect("p_holm");
        // One name and one type for the vintage: the response's and every row's.
        assert_eq!(did["vintage"], 1);
        assert!(
            estimates
                .iter()
                .all(|e| e["vintage"] == body["vintage"] && e.get("data_vintage").is_none())
        );
        assert!(did["protocol_hash"].as_str().is_some_and(|h| h.len() == 64));
        let lin = estimates
            .iter()
            .find(|e| e["estimator"] == "itt_lin")
            .expect("itt_lin");
        assert_eq!(
            lin["confirmatory"], false,
            "itt_lin is exploratory in this protocol"
        );

        // A researcher sees the same estimates (every arm has well over 5 firms).
        let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
        let response = app
            .client
            .get(app.url("/v1/trials/est/estimates?weights=firm&estimator=did_twfe"))
            .bearer_auth(&forsker.secret)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(
            body["estimates"].as_array().map(Vec::len),
            Some(2 * 3),
            "CR1 and CR2 for three arms: {body}"
        );
        // The filter does not shrink the Holm family (issue 10, defect 8).
        let filtered = body["estimates"]
            .as_array()
            .and_then(|a| {
                a.iter().find(|e| {
                    e["arm"] == "bred_prosess" && e["se_type"] == "CR1" && e["confirmatory"] == true
                })
            })
            .and_then(|e| e["p_holm"].as_f64())
            .expect("filtered p_holm");
        assert_eq!(filtered, unfiltered_holm);
        // A vintage before any upload: nothing to estimate from.
        let body = app
            .direktorat_call(Method::GET, "/v1/trials/est/estimates?vintage=0", None, 409)
            .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("no NAV statistics")),
            "{body}"
        );
    }

    crate::on_both_backends!(the_service_estimates_every_arm_from_the_register);
}
