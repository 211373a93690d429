//! Reading the reference fixtures of `tests/fixtures/`: the `#`-headed CSV tables the notebooks
//! write, and an estimates case (`assignment.csv`, `stats.csv`, `params.json`) as a study.

use std::collections::BTreeMap;
use std::path::Path;

use ia_rct::estimate::{StudyData, Windows, read_assignment_table};

/// The rows of a fixture table, `#` header lines skipped, as column -> value.
pub fn reference_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("reference rows");
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

/// A case's `params.json` and its analysis windows.
pub fn case_params(params: &Path) -> (serde_json::Value, Windows) {
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(params).expect("params.json"))
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
    (params, windows)
}

/// An estimates case as a study, from its three files, and its `params.json`.
pub fn study(assignment: &Path, stats: &Path, params: &Path) -> (StudyData, serde_json::Value) {
    let (params, windows) = case_params(params);
    let text = std::fs::read_to_string(assignment).expect("assignment");
    let (units, _) = read_assignment_table(&text).expect("assignment parses");
    let stats = std::fs::File::open(stats).expect("stats");
    let data = StudyData::from_stats_reader(windows, units, stats).expect("study data");
    (data, params)
}

/// The study of `tests/fixtures/estimates/<dir>` and its `params.json`.
pub fn estimates_study(dir: &Path) -> (StudyData, serde_json::Value) {
    study(
        &dir.join("assignment.csv"),
        &dir.join("stats.csv"),
        &dir.join("params.json"),
    )
}
