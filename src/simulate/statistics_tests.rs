//! Tests of the simulated statistics and the simulated trial on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::*;
use crate::domain::Quarter;
use crate::protocol::Protocol;
use crate::randomization::files::{read_assignment, write_assignment};
use crate::randomization::plan::{randomize, screen};
use crate::register::{RegisterOptions, detect_format, parse_register};
use crate::statistics::{StatRow, StatsFormat, baseline_sums, detect, read_stats};

const PROTOCOL: &str = include_str!("../../protocols/nals-arbeidsformer.toml");

fn q(text: &str) -> Quarter {
    text.parse().expect("a quarter")
}

fn protocol() -> Protocol {
    Protocol::from_toml(PROTOCOL).expect("the example protocol is valid")
}

fn trial(effects: &[(&str, f64)]) -> Trial {
    Trial {
        protocol: protocol(),
        seed: "test-draw".to_owned(),
        wave: 1,
        effects: effects.iter().map(|(a, e)| ((*a).to_owned(), *e)).collect(),
    }
}

fn scenario(firms: usize, seed: u64, format: OutputFormat, trial: Option<Trial>) -> Scenario {
    Scenario {
        firms,
        seed,
        first: q("2023K1"),
        quarters: 20,
        format,
        trial,
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("the file was written")
}

fn stat_rows(path: &Path) -> Vec<StatRow> {
    let bytes = read(path);
    read_stats(bytes.as_slice(), detect(&bytes))
        .map(|r| r.expect("every simulated row is valid"))
        .collect()
}

/// Per firm: Σ tapte and Σ mulige before and from `from`.
fn sums(rows: &[StatRow], from: Quarter) -> BTreeMap<Orgnr, [f64; 4]> {
    let mut out: BTreeMap<Orgnr, [f64; 4]> = BTreeMap::new();
    for r in rows {
        let s = out.entry(r.orgnr).or_default();
        let k = if r.quarter < from { 0 } else { 2 };
        s[k] += r.tapte_dagsverk;
        s[k + 1] += r.mulige_dagsverk;
    }
    out
}

/// The difference in differences of firm rates (post minus pre, percent), arm minus control, and its
/// standard error.
fn did(
    sums: &BTreeMap<Orgnr, [f64; 4]>,
    arm_of: &HashMap<Orgnr, String>,
    arm: &str,
    control: &str,
) -> (f64, f64, usize) {
    let change = |a: &str| -> Vec<f64> {
        sums.iter()
            .filter(|(o, s)| {
                arm_of.get(o).map(String::as_str) == Some(a) && s[1] > 0.0 && s[3] > 0.0
            })
            .map(|(_, s)| 100.0 * (s[2] / s[3] - s[0] / s[1]))
            .collect()
    };
    let moments = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var / n)
    };
    let (treated, controls) = (change(arm), change(control));
    let ((m1, v1), (m0, v0)) = (moments(&treated), moments(&controls));
    (m1 - m0, (v1 + v0).sqrt(), treated.len().min(controls.len()))
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() {
    let files = [
        "register.csv",
        "statistics.csv",
        "assignment.csv",
        "seed.txt",
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("a temporary directory"))
        .collect();
    for (dir, seed) in dirs.iter().zip([7, 7, 8]) {
        let s = scenario(
            400,
            seed,
            OutputFormat::DvhCsv,
            Some(trial(&[("ledere", -1.0)])),
        );
        run(&s, dir.path()).expect("the scenario runs");
    }
    for file in files {
        assert_eq!(
            read(&dirs[0].path().join(file)),
            read(&dirs[1].path().join(file)),
            "{file}"
        );
    }
    for file in ["register.csv", "statistics.csv", "assignment.csv"] {
        assert_ne!(
            read(&dirs[0].path().join(file)),
            read(&dirs[2].path().join(file)),
            "{file}"
        );
    }
    // The JSON shape is reproducible too.
    let json: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            run(
                &scenario(50, 3, OutputFormat::VirksomhetJson, None),
                dir.path(),
            )
            .expect("the scenario runs");
            read(&dir.path().join("statistics.json"))
        })
        .collect();
    assert_eq!(json[0], json[1]);
}

#[test]
fn the_files_read_back_and_assign_draws_the_same_assignment() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = scenario(
        1500,
        11,
        OutputFormat::DvhCsv,
        Some(trial(&[("bred_prosess", -0.8), ("digital", -0.2)])),
    );
    let report = run(&s, dir.path()).expect("the scenario runs");

    // The register reads back as the register simulated.
    let register_bytes = read(&dir.path().join("register.csv"));
    let firms = parse_register(
        &register_bytes,
        detect_format(&register_bytes),
        &RegisterOptions::default(),
    )
    .expect("the register is valid");
    assert_eq!(firms, register(1500, 11));

    // The statistics read back without errors, and every row is what the panel generated.
    let statistics = dir.path().join("statistics.csv");
    assert_eq!(detect(&read(&statistics)), StatsFormat::DvhCsv);
    let rows = stat_rows(&statistics);
    assert_eq!(rows.len() as u64, report.statistics.rows);
    assert!(rows.iter().all(|r| r.tapte_dagsverk <= r.mulige_dagsverk));

    // assign's path: baseline sums from the written file, screening, the draw.
    let protocol = protocol();
    let file = std::fs::File::open(&statistics).expect("the statistics exist");
    let baselines = baseline_sums(file, protocol.baseline.from, protocol.baseline.to)
        .expect("the statistics are valid");
    let panel = Panel::new(&firms, 11, q("2023K1"), 20).expect("a panel");
    let simulated = baseline_facts(&panel, None, protocol.baseline.from, protocol.baseline.to);
    assert_eq!(baselines, simulated, "the baseline sums agree to the bit");
    let screening = screen(&protocol, &firms, &baselines);
    let expected = randomize(
        &protocol,
        &protocol.content_hash(),
        1,
        "test-draw",
        &screening.eligible,
        None,
    )
    .expect("the draw");
    let written = String::from_utf8(read(&dir.path().join("assignment.csv"))).expect("UTF-8");
    assert_eq!(written, write_assignment(&expected));
    let back = read_assignment(&written).expect("the assignment reads back");
    assert_eq!(back.rows, expected.rows);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seed.txt")).expect("seed.txt"),
        "test-draw\n"
    );
    let draw = report.draw.expect("a draw");
    assert_eq!(draw.eligible, screening.eligible.len());
    assert_eq!(
        draw.arms.iter().map(|a| a.firms).sum::<usize>(),
        back.rows.len()
    );

    // The same statistics as JSON read back as the same rows.
    let json_dir = tempfile::tempdir().expect("a temporary directory");
    let json_scenario = Scenario {
        format: OutputFormat::VirksomhetJson,
        ..s
    };
    run(&json_scenario, json_dir.path()).expect("the scenario runs");
    let json_path = json_dir.path().join("statistics.json");
    assert_eq!(detect(&read(&json_path)), StatsFormat::VirksomhetJson);
    let json_rows = stat_rows(&json_path);
    assert_eq!(json_rows.len(), rows.len());
    for (j, c) in json_rows.iter().zip(&rows) {
        assert_eq!(
            (
                j.orgnr,
                j.quarter,
                j.tapte_dagsverk,
                j.mulige_dagsverk,
                j.antall_personer
            ),
            (
                c.orgnr,
                c.quarter,
                c.tapte_dagsverk,
                c.mulige_dagsverk,
                c.antall_personer
            )
        );
        assert_eq!(j.rectype.as_deref(), Some("2"));
    }
}

#[test]
fn the_panel_is_unbalanced_seasonal_and_keeps_small_firms() {
    let firms = register(3000, 5);
    let panel = Panel::new(&firms, 5, q("2023K1"), 20).expect("a panel");
    let rows: Vec<FirmQuarter> = panel.rows(None).collect();
    let expected = 3000 * 20;
    let missing = expected - rows.len();
    let share = missing as f64 / expected as f64;
    assert!((0.005..0.035).contains(&share), "missing share {share}");
    assert!(rows.iter().any(|r| r.antpers < 5), "small firms are kept");
    assert!(
        rows.iter()
            .all(|r| r.mulige > 0.0 && r.tapte >= 0.0 && r.tapte <= r.mulige)
    );
    assert!(
        rows.iter().any(|r| r.tapte == 0.0),
        "some quarters without sick leave"
    );
    // Rows are sorted by orgnr, then quarter, and within the range.
    assert!(
        rows.windows(2)
            .all(|w| (w[0].orgnr, w[0].quarter) < (w[1].orgnr, w[1].quarter))
    );
    assert!(
        rows.iter()
            .all(|r| r.quarter >= q("2023K1") && r.quarter <= q("2027K4"))
    );
    // NAV's seasonality: the first quarter above the third, overall.
    let rate = |k: u8| {
        let (t, m) = rows
            .iter()
            .filter(|r| r.quarter.quarter() == k)
            .fold((0.0, 0.0), |(t, m), r| (t + r.tapte, m + r.mulige));
        100.0 * t / m
    };
    let (q1, q3) = (rate(1), rate(3));
    assert!(q1 > q3 + 0.5, "Q1 {q1:.2} %, Q3 {q3:.2} %");
    assert!((3.0..9.0).contains(&q3), "Q3 {q3:.2} %");
    // A prefix of the panel is the same as the first quarters of the whole panel.
    let prefix: Vec<FirmQuarter> = panel.rows_through(None, q("2024K2")).collect();
    let whole: Vec<FirmQuarter> = rows
        .iter()
        .filter(|r| r.quarter <= q("2024K2"))
        .copied()
        .collect();
    assert_eq!(prefix, whole);
    // A firm's path does not depend on the other firms in the register.
    let alone = Panel::new(&firms[10..11], 5, q("2023K1"), 20).expect("a panel");
    let own: Vec<FirmQuarter> = rows
        .iter()
        .filter(|r| r.orgnr == firms[10].orgnr)
        .copied()
        .collect();
    assert_eq!(alone.rows(None).collect::<Vec<_>>(), own);
    assert_eq!(
        Panel::new(&firms, 5, q("2023K1"), 0).err(),
        Some(PanelError::NoQuarters)
    );
    assert!(Panel::new(&firms, 5, q("2100K1"), 5).is_err());
}

#[test]
fn a_known_effect_shows_up_between_arms() {
    let firms = register(4000, 21);
    let panel = Panel::new(&firms, 21, q("2024K1"), 12).expect("a panel");
    let from = q("2025K1");
    let mut sorted: Vec<Orgnr> = firms.iter().map(|f| f.orgnr).collect();
    sorted.sort();
    let arm_of: HashMap<Orgnr, String> = sorted
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                *o,
                if i % 2 == 0 { "tiltak" } else { "kontroll" }.to_owned(),
            )
        })
        .collect();
    let effects = Effects::new(
        from,
        arm_of.iter().map(|(o, a)| (*o, a.as_str())),
        &BTreeMap::from([("tiltak".to_owned(), -1.0)]),
    );
    let treated: Vec<FirmQuarter> = panel.rows(Some(&effects)).collect();
    let untreated: Vec<FirmQuarter> = panel.rows(None).collect();
    assert_eq!(treated.len(), untreated.len());
    let tiltak = effects
        .arms
        .iter()
        .position(|a| a.arm == "tiltak")
        .expect("the arm");
    let mut realized = (0.0, 0.0);
    for (t, u) in treated.iter().zip(&untreated) {
        // The effect changes nothing but the treated firms' tapte from `from` on.
        assert_eq!(
            (t.orgnr, t.quarter, t.mulige, t.antpers),
            (u.orgnr, u.quarter, u.mulige, u.antpers)
        );
        assert_eq!(t.tapte_untreated, u.tapte);
        match t.arm {
            Some(k) if k == tiltak => {
                assert!(t.quarter >= from);
                assert!(t.tapte <= u.tapte);
                realized.0 += t.tapte - u.tapte;
                realized.1 += t.mulige;
            }
            _ => assert_eq!(t.tapte, u.tapte),
        }
    }
    let weighted = 100.0 * realized.0 / realized.1;
    assert!((-1.0..-0.85).contains(&weighted), "realized {weighted}");

    // What an analyst sees: the difference in differences of firm rates.
    let as_stats: Vec<StatRow> = treated
        .iter()
        .map(|r| StatRow {
            orgnr: r.orgnr,
            quarter: r.quarter,
            tapte_dagsverk: r.tapte,
            mulige_dagsverk: r.mulige,
            antall_personer: r.antpers,
            tapte_dagsverk_gradert: None,
            prosent_published: None,
            rectype: None,
            varighet: BTreeMap::new(),
        })
        .collect();
    let (estimate, se, n) = did(&sums(&as_stats, from), &arm_of, "tiltak", "kontroll");
    assert!(n > 1800, "{n} firms per arm");
    assert!(se < 0.25, "se {se}");
    assert!(
        (estimate + 1.0).abs() < 4.0 * se,
        "estimate {estimate} ± {se}"
    );
    assert!(estimate < -0.4, "estimate {estimate}");
}

#[test]
fn the_effects_of_a_simulated_trial_show_up_in_its_files() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = scenario(
        6000,
        4,
        OutputFormat::DvhCsv,
        Some(trial(&[("bred_prosess", -2.0), ("ledere", -1.0)])),
    );
    let report = run(&s, dir.path()).expect("the scenario runs");
    let assignment = read_assignment(
        &String::from_utf8(read(&dir.path().join("assignment.csv"))).expect("UTF-8"),
    )
    .expect("the assignment reads back");
    let arm_of: HashMap<Orgnr, String> = assignment
        .rows
        .iter()
        .map(|r| (r.orgnr, r.arm.clone()))
        .collect();
    let rows = stat_rows(&dir.path().join("statistics.csv"));
    let from = protocol().follow_up.randomization_quarter;
    let sums = sums(&rows, from);
    for (arm, effect) in [("bred_prosess", -2.0), ("ledere", -1.0), ("digital", 0.0)] {
        let (estimate, se, n) = did(&sums, &arm_of, arm, "kontroll");
        assert!(n > 150, "{arm}: {n} firms");
        assert!(
            (estimate - effect).abs() < 4.0 * se,
            "{arm}: estimate {estimate} ± {se}, effect {effect}"
        );
        let realized = report
            .draw
            .as_ref()
            .and_then(|d| d.arms.iter().find(|a| a.arm == arm))
            .and_then(|a| a.realized_dagsverk_weighted)
            .unwrap_or(0.0);
        assert!(
            (realized - effect).abs() <= 0.1 * effect.abs(),
            "{arm}: realized {realized}, effect {effect}"
        );
    }
    let (estimate, se, _) = did(&sums, &arm_of, "bred_prosess", "kontroll");
    assert!(
        estimate + 4.0 * se < 0.0,
        "bred_prosess is detected: {estimate} ± {se}"
    );
}
