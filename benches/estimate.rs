//! Effect estimates at 20,000 firms x 16 quarters (320,000 firm-quarters): each estimator on its
//! own (firm weighting, CR1 only), and the data step before them (NAV DVH CSV to `StudyData`).
//!
//! The data are made in-process by the crate's simulator (`ia_rct::simulate`) with the design that
//! `benches/estimate_vs_reference.sh` uses: two arms (kontroll / behandling), strata = fylke x
//! size class (75 strata), half of each stratum treated, no clusters, so every firm is in every
//! estimate; R = 2021K1 with 8 quarters before and 8 from it. The register scale (300,000 x 40) and
//! the comparison with pyfixest and estimatr are in that script.
//!
//! `panel_cr2_20000x16` times `did_twfe` and `event_study` with their CR2 rows as well.
//!
//! Run: `cargo bench --bench estimate`.
//!
//! With `IA_RCT_ESTIMATE_PHASES=DIR` the binary instead times the phases on DIR's files (as
//! `benches/estimate_vs_reference.sh` lays them out: `assignment.csv`, `statistics.csv`,
//! `design.json`) and prints one JSON line: the data step (reading the statistics into `StudyData`)
//! and each estimator's `estimate` call (firm weighting, CR1 only; best of
//! `IA_RCT_ESTIMATE_REPEAT`, default 3), the estimate-only part of the script's table.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hint::black_box;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group};
use ia_rct::domain::Quarter;
use ia_rct::estimate::{
    AssignedUnit, Estimator, Options, StudyData, Weighting, Windows, estimate,
    read_assignment_table,
};
use ia_rct::register::Firm;
use ia_rct::simulate::{Effects, OutputFormat, Panel, StatsWriter};
use ia_rct::statistics::StatRow;

const FIRMS: usize = 20_000;
const QUARTERS: u32 = 16;
const START: &str = "2019K1";
const RANDOMIZED_AT: &str = "2021K1";
const PRE: u32 = 8;
const POST: u32 = 8;
/// True effect of `behandling`, percentage points from R on.
const EFFECT: f64 = -0.5;

/// splitmix64: the within-stratum order (the same rule as `estimate_reference_timing.py assign`).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Five size classes by employees.
fn size_class(employees: u32) -> u32 {
    match employees {
        0..=4 => 0,
        5..=14 => 1,
        15..=49 => 2,
        50..=149 => 3,
        _ => 4,
    }
}

/// Stratum = fylke x size class; within a stratum, firms ordered by `splitmix64(orgnr)` and every
/// second one (ranks 1, 3, ...) treated.
fn assign(firms: &[Firm]) -> Vec<AssignedUnit> {
    let mut strata: BTreeMap<String, Vec<&Firm>> = BTreeMap::new();
    for f in firms {
        let label = format!("{}-{}", f.fylke, size_class(f.antall_ansatte));
        strata.entry(label).or_default().push(f);
    }
    let mut units = Vec::with_capacity(firms.len());
    for (label, mut members) in strata {
        members.sort_by_key(|f| (splitmix64(u64::from(f.orgnr.as_u32())), f.orgnr));
        for (rank, f) in members.into_iter().enumerate() {
            units.push(AssignedUnit {
                orgnr: f.orgnr,
                arm: if rank % 2 == 1 {
                    "behandling"
                } else {
                    "kontroll"
                }
                .to_owned(),
                stratum: label.clone(),
                klynge: None,
            });
        }
    }
    units
}

struct Setup {
    windows: Windows,
    units: Vec<AssignedUnit>,
    csv: Vec<u8>,
    data: StudyData,
}

fn setup() -> Setup {
    let start: Quarter = START.parse().expect("quarter");
    let randomized_at: Quarter = RANDOMIZED_AT.parse().expect("quarter");
    let firms = ia_rct::simulate::register(FIRMS, 1);
    let units = assign(&firms);
    let panel = Panel::new(&firms, 1, start, QUARTERS).expect("panel");
    let effect = BTreeMap::from([("behandling".to_owned(), EFFECT)]);
    let effects = Effects::new(
        randomized_at,
        units.iter().map(|u| (u.orgnr, u.arm.as_str())),
        &effect,
    );
    let mut writer = StatsWriter::new(Vec::new(), OutputFormat::DvhCsv).expect("csv");
    let mut rows = Vec::new();
    for fq in panel.rows(Some(&effects)) {
        writer.write(&fq).expect("csv row");
        rows.push(StatRow {
            orgnr: fq.orgnr,
            quarter: fq.quarter,
            tapte_dagsverk: fq.tapte,
            mulige_dagsverk: fq.mulige,
            antall_personer: fq.antpers,
            tapte_dagsverk_gradert: None,
            prosent_published: None,
            rectype: None,
            varighet: BTreeMap::new(),
        });
    }
    let (csv, _) = writer.finish().expect("csv");
    let windows = Windows {
        randomized_at,
        pre: PRE,
        post: POST,
    };
    let data = StudyData::new(windows.clone(), units.clone(), rows).expect("study data");
    Setup {
        windows,
        units,
        csv,
        data,
    }
}

fn options(control: &str, estimator: Estimator) -> Options {
    let mut opts = Options::all(control);
    opts.estimators = vec![estimator];
    opts.weights = vec![Weighting::Firm];
    opts.did_cr2 = false;
    opts
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let n_obs = s.data.obs.len();

    // Every estimator must give its rows (and no skipped ones) before it is timed.
    let mut expected: HashMap<Estimator, usize> = HashMap::new();
    for estimator in Estimator::ALL {
        let report = estimate(&s.data, &options("kontroll", estimator)).expect("estimate");
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        assert!(!report.estimates.is_empty(), "{estimator:?} gave no rows");
        expected.insert(estimator, report.estimates.len());
    }

    let mut group = c.benchmark_group("estimate_20000x16");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("load_dvh_csv", n_obs), |b| {
        b.iter(|| {
            black_box(
                StudyData::from_stats_reader(s.windows.clone(), s.units.clone(), &s.csv[..])
                    .expect("study data"),
            )
        });
    });
    for estimator in Estimator::ALL {
        let opts = options("kontroll", estimator);
        group.bench_function(BenchmarkId::new(estimator.name(), n_obs), |b| {
            b.iter(|| {
                let report = estimate(black_box(&s.data), &opts).expect("estimate");
                assert_eq!(report.estimates.len(), expected[&estimator]);
                black_box(report)
            });
        });
    }
    group.finish();
}

/// Times the data step and each estimator on the files in `dir` (see the module docs).
fn phases(dir: &Path) -> anyhow::Result<()> {
    let repeat: usize = std::env::var("IA_RCT_ESTIMATE_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let design: serde_json::Value =
        serde_json::from_reader(BufReader::new(File::open(dir.join("design.json"))?))?;
    let field = |k: &str| design[k].to_string().trim_matches('"').to_owned();
    let windows = Windows {
        randomized_at: field("randomized_at").parse()?,
        pre: field("pre").parse()?,
        post: field("post").parse()?,
    };
    let control = field("control");
    let text = std::fs::read_to_string(dir.join("assignment.csv"))?;
    let started = Instant::now();
    let (units, _) = read_assignment_table(&text)?;
    let file = BufReader::new(File::open(dir.join("statistics.csv"))?);
    let data = StudyData::from_stats_reader(windows, units, file)?;
    let load_s = started.elapsed().as_secs_f64();
    let mut times = serde_json::Map::new();
    for estimator in Estimator::ALL {
        let opts = options(&control, estimator);
        let mut best = f64::INFINITY;
        for _ in 0..repeat {
            let started = Instant::now();
            let report = black_box(estimate(&data, &opts)?);
            best = best.min(started.elapsed().as_secs_f64());
            drop(report);
        }
        times.insert(estimator.name().to_owned(), best.into());
    }
    let out = serde_json::json!({
        "load_s": load_s,
        "rows": data.obs.len(),
        "repeat": repeat,
        "estimate_s": times,
    });
    println!("{out}");
    Ok(())
}

criterion_group!(estimates, benches);

/// `did_twfe` and `event_study` with CR2 (and CR1) at 20,000 firms x 16 quarters: the panel's
/// cluster-by-cluster CR2 (issue 12), both weightings for `did_twfe`.
fn panel_cr2(c: &mut Criterion) {
    let s = setup();
    let n_obs = s.data.obs.len();
    let mut group = c.benchmark_group("panel_cr2_20000x16");
    group.sample_size(10);
    for (estimator, weighting) in [
        (Estimator::DidTwfe, Weighting::Firm),
        (Estimator::DidTwfe, Weighting::Dagsverk),
        (Estimator::EventStudy, Weighting::Firm),
    ] {
        let mut opts = options("kontroll", estimator);
        opts.weights = vec![weighting];
        opts.did_cr2 = true;
        let report = estimate(&s.data, &opts).expect("estimate");
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        assert!(report.estimates.iter().any(|e| e.se_type == "CR2"));
        let name = format!("{}_{}_cr2", estimator.name(), weighting.name());
        group.bench_function(BenchmarkId::new(name, n_obs), |b| {
            b.iter(|| black_box(estimate(black_box(&s.data), &opts).expect("estimate")));
        });
    }
    group.finish();
}

criterion_group!(panel_cr2_benches, panel_cr2);

fn main() -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("IA_RCT_ESTIMATE_PHASES") {
        return phases(Path::new(&dir));
    }
    estimates();
    panel_cr2_benches();
    Criterion::default().configure_from_args().final_summary();
    Ok(())
}
