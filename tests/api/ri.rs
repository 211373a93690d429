//! Randomization inference (`ri`, ANALYSIS.md §9): its statistics at the realised assignment are
//! the estimators' own numbers, and its Monte Carlo p-values do not depend on the thread count.

use std::path::{Path, PathBuf};
use std::process::Command;

use ia_rct::estimate::{
    self, Estimator, Options, RiMethod, RiOptions, RiStatistic, StudyData, Windows,
    read_assignment_table,
};

use crate::helpers::BIN;

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/estimates")
        .join(case)
}

fn study(case: &str) -> (StudyData, String) {
    let dir = case_dir(case);
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("params.json")).expect("params"))
            .expect("params json");
    let windows = Windows {
        randomized_at: params["randomized_at"]
            .as_str()
            .expect("R")
            .parse()
            .expect("q"),
        pre: params["pre"].as_u64().expect("pre") as u32,
        post: params["post"].as_u64().expect("post") as u32,
    };
    let (units, _) =
        read_assignment_table(&std::fs::read_to_string(dir.join("assignment.csv")).expect("a"))
            .expect("assignment parses");
    let stats = std::fs::File::open(dir.join("stats.csv")).expect("stats");
    (
        StudyData::from_stats_reader(windows, units, stats).expect("study data"),
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
