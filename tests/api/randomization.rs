//! Offline randomization: `ia-rct assign` and `ia-rct verify` on a register of 20,000 firms, and the
//! Rust draw against the independent Python reference (`notebooks/randomization_reference.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use ia_rct::protocol::Protocol;
use ia_rct::randomization::files::{read_assignment, read_units, write_assignment};
use ia_rct::randomization::plan::randomize;

use crate::helpers::BIN;

const NALS: &str = "protocols/nals-arbeidsformer.toml";
const SEED: &str = "nals-arbeidsformer-demo-wave-1";

fn ia_rct(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run ia-rct")
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Every fixture in `tests/fixtures/randomization/` that the Python reference produced: the Rust
/// draw from the same protocol, unit list, hash, wave and seed must be byte-identical.
#[test]
fn the_draw_matches_the_independent_python_reference_byte_for_byte() {
    let dir = Path::new("tests/fixtures/randomization");
    let cases = [
        ("protocol.toml", "units.csv", "assignment.csv"),
        (
            "protocol-ratios.toml",
            "units-virksomhet.csv",
            "assignment-ratios.csv",
        ),
    ];
    for (protocol, units, expected) in cases {
        let protocol_text = std::fs::read_to_string(dir.join(protocol)).expect("protocol");
        let protocol = Protocol::from_toml(&protocol_text).expect("valid fixture protocol");
        let units = read_units(&std::fs::read_to_string(dir.join(units)).expect("units"))
            .expect("valid units");
        let expected_text = std::fs::read_to_string(dir.join(expected)).expect("fixture");
        let header = read_assignment(&expected_text)
            .expect("valid fixture")
            .header;
        let ours = randomize(
            &protocol,
            &header.protocol_hash,
            header.wave,
            &header.seed,
            &units,
            None,
        )
        .expect("draw");
        let ours = write_assignment(&ours);
        if ours != expected_text {
            let first = ours
                .lines()
                .zip(expected_text.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("\n  rust:   {a}\n  python: {b}"))
                .unwrap_or_default();
            panic!("{expected}: the Rust draw differs from the Python reference{first}");
        }
    }
}

#[test]
fn assign_balances_every_stratum_is_order_invariant_and_verifies() {
    let dir = tempfile::tempdir().expect("dir");
    let firms = ia_rct::simulate::register(20_000, 2025);
    std::fs::write(
        dir.path().join("firms.csv"),
        ia_rct::simulate::register_csv(&firms),
    )
    .expect("write");
    let mut shuffled = firms.clone();
    shuffled.reverse();
    shuffled.rotate_left(7_777);
    std::fs::write(
        dir.path().join("shuffled.csv"),
        ia_rct::simulate::register_csv(&shuffled),
    )
    .expect("write");

    let assign = |firms: &str, out: &str, extra: &[&str]| {
        let mut args = vec!["assign", "--protocol", NALS, "--firms", firms, "--out", out];
        args.extend_from_slice(extra);
        let output = ia_rct(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let (firms_csv, shuffled_csv) = (
        path(dir.path(), "firms.csv"),
        path(dir.path(), "shuffled.csv"),
    );
    let (a1, a2) = (path(dir.path(), "a1.csv"), path(dir.path(), "a2.csv"));
    let units = path(dir.path(), "units.csv");
    assign(&firms_csv, &a1, &["--seed", SEED, "--units-out", &units]);
    assign(&shuffled_csv, &a2, &["--seed", SEED]);
    let first = std::fs::read(&a1).expect("a1");
    assert_eq!(
        first,
        std::fs::read(&a2).expect("a2"),
        "the same seed gives a byte-identical file whatever the input order"
    );

    // Arm counts per stratum, counting each randomized unit (a cluster once) — differ by at most one.
    let assignment =
        read_assignment(&String::from_utf8(first.clone()).expect("utf8")).expect("valid");
    assert!(
        assignment.rows.len() > 1000,
        "{} firms randomized",
        assignment.rows.len()
    );
    let mut units_by_stratum: BTreeMap<&str, BTreeMap<String, &str>> = BTreeMap::new();
    for row in &assignment.rows {
        let unit = row
            .klynge
            .map_or_else(|| row.orgnr.to_string(), |k| format!("K{k}"));
        let previous = units_by_stratum
            .entry(&row.stratum)
            .or_default()
            .insert(unit, &row.arm);
        if let Some(previous) = previous {
            assert_eq!(
                previous, row.arm,
                "every firm of a cluster has its cluster's arm"
            );
        }
    }
    let arms = ["kontroll", "bred_prosess", "ledere", "digital"];
    let mut overall = BTreeMap::new();
    for (stratum, units) in &units_by_stratum {
        let mut counts: BTreeMap<&str, usize> = arms.iter().map(|a| (*a, 0)).collect();
        for arm in units.values() {
            *counts.get_mut(arm).expect("known arm") += 1;
            *overall.entry(*arm).or_insert(0usize) += 1;
        }
        let (min, max) = (
            counts.values().min().expect("arms"),
            counts.values().max().expect("arms"),
        );
        assert!(max - min <= 1, "stratum {stratum}: {counts:?}");
    }
    let (min, max) = (
        overall.values().min().expect("arms"),
        overall.values().max().expect("arms"),
    );
    assert!(max - min <= 1, "overall: {overall:?}");
    assert!(assignment.rows.iter().all(|r| r.sannsynlighet == 0.25));
    let clustered: BTreeSet<_> = assignment.rows.iter().filter_map(|r| r.klynge).collect();
    assert!(clustered.len() > 50, "kommuner are randomized as clusters");

    // The units file reads back and gives the same draw through the library.
    let unit_rows =
        read_units(&std::fs::read_to_string(&units).expect("units")).expect("valid units");
    let protocol =
        Protocol::from_toml(&std::fs::read_to_string(NALS).expect("protocol")).expect("valid");
    let again = randomize(
        &protocol,
        &protocol.content_hash(),
        1,
        SEED,
        &unit_rows,
        None,
    )
    .expect("draw");
    assert_eq!(write_assignment(&again).into_bytes(), first);

    // verify passes on the file and fails, naming the firm, when one arm is changed.
    let verify = |file: &str, seed: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--protocol",
            NALS,
            "--firms",
            &firms_csv,
            "--seed",
            seed,
            "--assignment",
            file,
        ];
        args.extend_from_slice(extra);
        ia_rct(&args)
    };
    let ok = verify(&a1, SEED, &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let text = String::from_utf8(first).expect("utf8");
    let victim = text.lines().nth(8).expect("a data row").to_owned();
    let fields: Vec<&str> = victim.split(',').collect();
    let new_arm = if fields[1] == "ledere" {
        "digital"
    } else {
        "ledere"
    };
    let tampered_row = victim.replacen(&format!(",{},", fields[1]), &format!(",{new_arm},"), 1);
    let tampered = path(dir.path(), "tampered.csv");
    std::fs::write(&tampered, text.replacen(&victim, &tampered_row, 1)).expect("write");
    let bad = verify(&tampered, SEED, &[]);
    assert!(!bad.status.success());
    let report = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(
        report.lines().count(),
        1,
        "exactly one difference: {report}"
    );
    assert!(
        report.contains(fields[0]) && report.contains("arm") && report.contains(new_arm),
        "{report}"
    );

    // A seed that does not match the commitment is refused, unless it is a dry run.
    let wrong = path(dir.path(), "wrong.csv");
    let refused = ia_rct(&[
        "assign",
        "--protocol",
        NALS,
        "--firms",
        &firms_csv,
        "--seed",
        "guess",
        "--out",
        &wrong,
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("does not match the protocol's commitment")
    );
    assert!(!Path::new(&wrong).exists(), "nothing is written");
    assign(&firms_csv, &wrong, &["--seed", "guess", "--dry-run"]);
    let dry = verify(&wrong, "guess", &["--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let not_dry = verify(&wrong, "guess", &[]);
    assert!(
        !not_dry.status.success(),
        "without --dry-run the commitment is checked"
    );
}
