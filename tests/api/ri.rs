//! Randomization inference (`ri`, ANALYSIS.md §9): its statistics at the realised assignment are
//! the estimators' own numbers, and its Monte Carlo p-values do not depend on the thread count.

use std::path::{Path, PathBuf};
use std::process::Command;

use ia_rct::estimate::{self, Estimator, Options, RiMethod, RiOptions, RiStatistic, StudyData};

use crate::fixtures::estimates_study;
use crate::helpers::BIN;

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/estimates")
        .join(case)
}

fn study(case: &str) -> (StudyData, String) {
    let (data, params) = estimates_study(&case_dir(case));
    (
        data,
        params["control"].as_str().expect("control").to_owned(),
    )
}

#[test]
fn ri_at_the_realised_assignment_reproduces_the_estimators() {
    let mut compared = 0;
    for case in ["balanced", "unbalanced", "clustered", "collinear"] {
        let (data, control) = study(case);
        let mut opts = Options::all(&control);
        opts.estimators = vec![Estimator::IttDim, Estimator::IttAncova, Estimator::Ri];
        opts.ri = Some(RiOptions {
            draws: 200,
            seed: "fixture".into(),
            conf_level: 0.95,
        });
        let report = estimate::estimate(&data, &opts).expect("report");
        assert!(!report.ri.is_empty(), "{case}");
        for row in &report.ri {
            let r = &row.result;
            let Some(e) = report.estimates.iter().find(|e| {
                e.estimator == r.estimator && e.arm == row.arm && e.weights == row.weights
            }) else {
                continue;
            };
            let want = match r.statistic {
                RiStatistic::AncovaT => e.statistic,
                _ => e.estimate,
            };
            assert!(
                (r.observed - want).abs() <= 1e-10 * want.abs().max(1.0),
                "{case} {} {} {:?}: {} against {want}",
                row.arm,
                row.weights,
                r.statistic,
                r.observed
            );
            compared += 1;
            assert!((0.0..=1.0).contains(&r.p_value));
            if let Some(i) = &r.interval {
                assert!(
                    i.low.is_none_or(|l| l <= r.observed) && i.high.is_none_or(|h| r.observed <= h)
                );
            }
            if case == "clustered" {
                assert_ne!(r.statistic, RiStatistic::AncovaT, "no HC2 t with klynger");
                assert!(row.n_units < row.n_firms, "klynger are the units");
            }
            assert!(matches!(r.method, RiMethod::MonteCarlo { draws: 200, .. }));
        }
    }
    assert!(compared >= 30, "{compared}");
}

fn estimate_json(dir: &Path, threads: &str) -> serde_json::Value {
    let file = |name: &str| dir.join(name).to_str().expect("path").to_owned();
    let out = Command::new(BIN)
        .args([
            "estimate",
            "--protocol",
            "protocols/nals-arbeidsformer.toml",
        ])
        .args(["--assignment", &file("assignment.csv")])
        .args(["--stats", &file("statistics.csv")])
        .args([
            "--estimator",
            "itt_dim,itt_ancova,ri",
            "--ri-draws",
            "3000",
            "--seed",
            "s1",
        ])
        .args(["--format", "json"])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("run estimate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn the_same_seed_gives_the_same_ri_on_one_and_two_threads() {
    let tmp = tempfile::tempdir().expect("dir");
    let sim = tmp.path().join("sim");
    let status = Command::new(BIN)
        .args([
            "simulate",
            "--firms",
            "400",
            "--out",
            sim.to_str().expect("path"),
        ])
        .args(["--effect", "bred_prosess=-0.8"])
        .output()
        .expect("simulate");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let one = estimate_json(&sim, "1");
    let two = estimate_json(&sim, "2");
    let ri = one["ri"].as_array().expect("ri rows");
    assert!(!ri.is_empty());
    assert_eq!(one["ri"], two["ri"]);
    assert!(
        ri.iter()
            .all(|r| r["method"] == "monte_carlo" && r["n_draws"] == 3000)
    );
}

/// A fixture case of `tests/fixtures/ri/` (notebooks/ri_reference.py, README-ri.md): every
/// enrolled firm with arm, stratum, cluster, outcome (empty when attrited), baseline and weight.
struct RiCase {
    unit_stratum: Vec<u32>,
    unit_treated: Vec<bool>,
    n_strata: usize,
    clustered: bool,
    unit: Vec<u32>,
    stratum: Vec<u32>,
    y: Vec<f64>,
    b: Vec<Vec<f64>>,
    m: Vec<f64>,
    expected: serde_json::Value,
}

fn ri_case(case: &str) -> RiCase {
    use std::collections::BTreeMap;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ri")
        .join(case);
    let mut reader = csv::Reader::from_path(dir.join("firms.csv")).expect("firms.csv");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let strata: BTreeMap<String, u32> = rows
        .iter()
        .map(|r| r[2].to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i as u32))
        .collect();
    let clustered = rows.iter().any(|r| !r[3].is_empty());
    let mut units: BTreeMap<String, u32> = BTreeMap::new();
    let mut c = RiCase {
        unit_stratum: Vec::new(),
        unit_treated: Vec::new(),
        n_strata: strata.len(),
        clustered,
        unit: Vec::new(),
        stratum: Vec::new(),
        y: Vec::new(),
        b: vec![Vec::new()],
        m: Vec::new(),
        expected: serde_json::from_str(
            &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"),
        )
        .expect("json"),
    };
    for r in &rows {
        let key = if clustered {
            r[3].to_owned()
        } else {
            r[0].to_owned()
        };
        let next = units.len() as u32;
        let u = *units.entry(key).or_insert_with(|| {
            c.unit_stratum.push(strata[&r[2]]);
            c.unit_treated.push(&r[1] == "treated");
            next
        });
        if r[4].is_empty() {
            continue;
        }
        c.unit.push(u);
        c.stratum.push(strata[&r[2]]);
        c.y.push(r[4].parse().expect("y"));
        c.b[0].push(r[5].parse().expect("b"));
        c.m.push(r[6].parse().expect("m"));
    }
    c
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1.0)
}

/// Exact enumeration against the fixtures' own enumeration: counts exactly, the intervals'
/// end points (crossing points) to 1e-9.
#[test]
fn ri_equals_exact_enumeration_on_the_small_designs() {
    use ia_rct::estimate::ri::{RiData, RiDesign, randomization_inference};
    use ia_rct::progress::Progress;
    let mut checked = 0;
    for case in ["tiny", "small", "weighted", "clustered"] {
        let c = ri_case(case);
        let design = RiDesign::new(&c.unit_stratum, &c.unit_treated, c.n_strata).expect("design");
        let k = c.expected["K"].as_u64().expect("K");
        assert_eq!(design.n_assignments(), Some(k), "{case}");
        let opts = RiOptions {
            draws: k,
            seed: "unused".into(),
            conf_level: 0.95,
        };
        for (name, stat, weighted) in [
            ("dim", RiStatistic::Dim, false),
            ("dim_dagsverk", RiStatistic::Dim, true),
            ("ancova", RiStatistic::Ancova, false),
            ("ancova_t", RiStatistic::AncovaT, false),
        ] {
            let want = &c.expected["statistics"][name];
            if want.is_null() || (c.clustered && stat == RiStatistic::AncovaT) {
                continue; // ri's studentized ANCOVA is HC2 only (ANALYSIS.md §9).
            }
            let data = RiData {
                unit: &c.unit,
                stratum: &c.stratum,
                y: &c.y,
                weights: weighted.then_some(c.m.as_slice()),
                covariates: &c.b,
            };
            let r = randomization_inference(&design, &data, &[stat], &opts, &Progress::new())
                .expect("ri")
                .remove(0);
            let key = format!("{case} {name}");
            assert_eq!(r.method, RiMethod::Exact { assignments: k }, "{key}");
            assert!(
                close(r.observed, want["observed"].as_f64().expect("obs"), 1e-10),
                "{key}: {}",
                r.observed
            );
            assert_eq!(r.n_undefined, 0, "{key}");
            assert_eq!(r.n_extreme, want["n_extreme"].as_u64().expect("n"), "{key}");
            if stat.is_linear() {
                let i = r.interval.as_ref().expect("interval");
                let lo = want["ci_low"].as_f64().expect("lo");
                let hi = want["ci_high"].as_f64().expect("hi");
                assert!(
                    close(i.low.expect("bounded"), lo, 1e-9),
                    "{key}: {i:?} vs {lo}"
                );
                assert!(
                    close(i.high.expect("bounded"), hi, 1e-9),
                    "{key}: {i:?} vs {hi}"
                );
                assert_eq!(
                    i.connected,
                    want["ci_connected"].as_bool().expect("c"),
                    "{key}"
                );
                assert_eq!(
                    i.pieces.len(),
                    want["accepted"].as_array().expect("accepted").len(),
                    "{key}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked}");
}

/// The Monte Carlo p of the blocked difference in means against R `coin`'s stratified
/// permutation test (1e6 resamples) on 400 firms in 20 equal strata, within Monte Carlo error.
#[test]
fn ri_agrees_with_coin_within_monte_carlo_error() {
    use ia_rct::estimate::ri::{RiData, RiDesign, randomization_inference};
    use ia_rct::progress::Progress;
    let c = ri_case("coin_large");
    let design = RiDesign::new(&c.unit_stratum, &c.unit_treated, c.n_strata).expect("design");
    let data = RiData {
        unit: &c.unit,
        stratum: &c.stratum,
        y: &c.y,
        weights: None,
        covariates: &c.b,
    };
    let opts = RiOptions {
        draws: 100_000,
        seed: "coin".into(),
        conf_level: 0.95,
    };
    let r = randomization_inference(
        &design,
        &data,
        &[RiStatistic::Dim, RiStatistic::Ancova, RiStatistic::AncovaT],
        &opts,
        &Progress::new(),
    )
    .expect("ri");
    let coin = &c.expected["coin"];
    let (p_coin, se_coin) = (
        coin["p_value"].as_f64().expect("p"),
        coin["mc_se"].as_f64().expect("se"),
    );
    let dim = &r[0];
    assert!(matches!(
        dim.method,
        RiMethod::MonteCarlo { draws: 100_000, .. }
    ));
    let z = (dim.p_value - p_coin) / (dim.mc_std_error.powi(2) + se_coin.powi(2)).sqrt();
    assert!(
        z.abs() < 4.0,
        "dim p {} ± {} against coin {p_coin} ± {se_coin}",
        dim.p_value,
        dim.mc_std_error
    );
    // The fixture's own 1e6-draw p of the other statistics, within Monte Carlo error too.
    for (res, name) in r.iter().zip(["dim", "ancova", "ancova_t"]) {
        let want = &c.expected["statistics"][name];
        let p = want["p_value"].as_f64().expect("p");
        let se = (p * (1.0 - p) / 1e6).sqrt();
        let z = (res.p_value - p) / (res.mc_std_error.powi(2) + se * se).sqrt();
        assert!(
            z.abs() < 4.0,
            "{name}: {} ± {} against {p}",
            res.p_value,
            res.mc_std_error
        );
        assert!(
            close(res.observed, want["observed"].as_f64().expect("obs"), 1e-10),
            "{name}"
        );
    }
}
