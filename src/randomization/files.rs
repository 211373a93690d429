//! The published files of a draw: the canonical unit list (`units.csv`) and the assignment
//! (`assignment.csv`), exactly as `protocols/RANDOMIZATION.md` §6 specifies, and the comparison
//! `ia-rct verify` makes.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::{Assignment, AssignmentRow, DrawHeader, UnitRow};
use crate::domain::Orgnr;
use crate::register::{RegisterErrors, RowError};

/// The columns of `units.csv`.
pub const UNITS_HEADER: &str =
    "orgnr,klynge,fylke,bransje,sektor,antall_ansatte,tapte_dagsverk,mulige_dagsverk";

/// The columns of `assignment.csv`.
pub const ASSIGNMENT_HEADER: &str = "orgnr,arm,stratum,klynge,bolge,sannsynlighet,trukket";

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Writes `units.csv`.
pub fn write_units(rows: &[UnitRow]) -> String {
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(UNITS_HEADER);
    out.push('\n');
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.orgnr,
            opt(r.klynge),
            r.fylke,
            r.bransje.as_str(),
            r.sektor.as_str(),
            r.antall_ansatte,
            opt(r.dagsverk.map(|d| d.0)),
            opt(r.dagsverk.map(|d| d.1)),
        );
    }
    out
}

fn problem(row: usize, field: &str, value: &str, reason: impl Into<String>) -> RowError {
    RowError {
        row,
        field: field.to_owned(),
        value: value.chars().take(120).collect(),
        reason: reason.into(),
    }
}

fn collect<T>(rows: Vec<T>, errors: Vec<RowError>) -> Result<Vec<T>, RegisterErrors> {
    if errors.is_empty() {
        Ok(rows)
    } else {
        let total = errors.len();
        Err(RegisterErrors {
            errors: errors.into_iter().take(100).collect(),
            total,
        })
    }
}

/// Reads `units.csv`.
///
/// # Errors
/// Every malformed row and field.
pub fn read_units(text: &str) -> Result<Vec<UnitRow>, RegisterErrors> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let mut errors = Vec::new();
    if lines.next().map(|h| h.trim_start_matches('\u{feff}')) != Some(UNITS_HEADER) {
        errors.push(problem(
            0,
            "",
            "",
            format!("the header must be `{UNITS_HEADER}`"),
        ));
        return collect(Vec::new(), errors);
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let row = i + 1;
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            errors.push(problem(row, "", line, "expected 8 fields"));
            continue;
        }
        let mut field = |name: &str, value: &str, r: Result<(), String>| {
            if let Err(reason) = r {
                errors.push(problem(row, name, value, reason));
            }
        };
        let orgnr = f[0].parse::<Orgnr>();
        field(
            "orgnr",
            f[0],
            orgnr.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        let klynge = (!f[1].is_empty())
            .then(|| f[1].parse::<Orgnr>())
            .transpose();
        field(
            "klynge",
            f[1],
            klynge.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        let fylke = f[2].parse();
        field(
            "fylke",
            f[2],
            fylke
                .as_ref()
                .map(|_| ())
                .map_err(|e: &crate::domain::FylkeCodeError| e.to_string()),
        );
        let bransje = f[3].parse();
        field(
            "bransje",
            f[3],
            bransje
                .as_ref()
                .map(|_| ())
                .map_err(|e: &crate::domain::BransjeError| e.to_string()),
        );
        let sektor = f[4].parse();
        field(
            "sektor",
            f[4],
            sektor
                .as_ref()
                .map(|_| ())
                .map_err(|e: &crate::domain::SektorError| e.to_string()),
        );
        let ansatte = f[5].parse::<u32>();
        field(
            "antall_ansatte",
            f[5],
            ansatte
                .as_ref()
                .map(|_| ())
                .map_err(|_| "a whole number >= 0".to_owned()),
        );
        let dagsverk = match (f[6], f[7]) {
            ("", "") => Ok(None),
            (t, m) => match (t.parse::<f64>(), m.parse::<f64>()) {
                (Ok(t), Ok(m))
                    if t.is_finite() && m.is_finite() && t >= 0.0 && m > 0.0 && t <= m =>
                {
                    Ok(Some((t, m)))
                }
                _ => Err(
                    "tapte and mulige dagsverk: both empty, or 0 <= tapte <= mulige, mulige > 0"
                        .to_owned(),
                ),
            },
        };
        field(
            "tapte_dagsverk",
            f[6],
            dagsverk.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        if let (
            Ok(orgnr),
            Ok(klynge),
            Ok(fylke),
            Ok(bransje),
            Ok(sektor),
            Ok(antall_ansatte),
            Ok(dagsverk),
        ) = (orgnr, klynge, fylke, bransje, sektor, ansatte, dagsverk)
        {
            rows.push(UnitRow {
                orgnr,
                klynge,
                fylke,
                bransje,
                sektor,
                antall_ansatte,
                dagsverk,
            });
        }
    }
    collect(rows, errors)
}

/// Writes `assignment.csv` with its header lines.
pub fn write_assignment(assignment: &Assignment) -> String {
    let h = &assignment.header;
    let mut out = String::with_capacity(96 * (assignment.rows.len() + 8));
    let _ = writeln!(out, "# ia-rct assignment");
    let _ = writeln!(out, "# protocol_id={}", h.protocol_id);
    let _ = writeln!(out, "# protocol_hash={}", h.protocol_hash);
    let _ = writeln!(out, "# algorithm={}", h.algorithm);
    let _ = writeln!(out, "# wave={}", h.wave);
    let _ = writeln!(out, "# seed={}", h.seed);
    out.push_str(ASSIGNMENT_HEADER);
    out.push('\n');
    for r in &assignment.rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            r.orgnr,
            r.arm,
            r.stratum,
            opt(r.klynge),
            r.bolge,
            r.sannsynlighet,
            opt(r
                .trukket
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
        );
    }
    out
}

/// Reads `assignment.csv`.
///
/// # Errors
/// Every malformed header line, row and field.
pub fn read_assignment(text: &str) -> Result<Assignment, RegisterErrors> {
    let mut errors = Vec::new();
    let mut meta = std::collections::BTreeMap::new();
    let mut body = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("# ") {
            Some(comment) => {
                if let Some((k, v)) = comment.split_once('=') {
                    meta.insert(k.to_owned(), v.to_owned());
                }
            }
            None => body.push(line),
        }
    }
    let mut get = |key: &str| {
        meta.get(key).cloned().unwrap_or_else(|| {
            errors.push(problem(
                0,
                key,
                "",
                format!("the header line `# {key}=…` is missing"),
            ));
            String::new()
        })
    };
    let header = DrawHeader {
        protocol_id: get("protocol_id"),
        protocol_hash: get("protocol_hash"),
        algorithm: get("algorithm"),
        wave: 0,
        seed: get("seed"),
    };
    let wave_text = get("wave");
    let wave = wave_text.parse::<u32>().unwrap_or_else(|_| {
        errors.push(problem(
            0,
            "wave",
            &wave_text,
            "the wave must be a whole number",
        ));
        0
    });
    let header = DrawHeader { wave, ..header };
    let mut lines = body.into_iter();
    if lines.next() != Some(ASSIGNMENT_HEADER) {
        errors.push(problem(
            0,
            "",
            "",
            format!("the column header must be `{ASSIGNMENT_HEADER}`"),
        ));
        return collect(Vec::<AssignmentRow>::new(), errors).map(|rows| Assignment {
            header,
            rows,
            baseline_cuts: Vec::new(),
        });
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let row = i + 1;
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            errors.push(problem(row, "", line, "expected 7 fields"));
            continue;
        }
        let orgnr = f[0]
            .parse::<Orgnr>()
            .map_err(|e| problem(row, "orgnr", f[0], e.to_string()));
        let klynge = (!f[3].is_empty())
            .then(|| f[3].parse::<Orgnr>())
            .transpose()
            .map_err(|e| problem(row, "klynge", f[3], e.to_string()));
        let bolge = f[4]
            .parse::<u32>()
            .map_err(|_| problem(row, "bolge", f[4], "a whole number"));
        let p = f[5]
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 1.0)
            .ok_or_else(|| problem(row, "sannsynlighet", f[5], "a probability in (0, 1]"));
        let trukket = (!f[6].is_empty())
            .then(|| {
                chrono::DateTime::parse_from_rfc3339(f[6]).map(|t| t.with_timezone(&chrono::Utc))
            })
            .transpose()
            .map_err(|_| problem(row, "trukket", f[6], "an RFC 3339 time or empty"));
        match (orgnr, klynge, bolge, p, trukket) {
            (Ok(orgnr), Ok(klynge), Ok(bolge), Ok(sannsynlighet), Ok(trukket)) => {
                rows.push(AssignmentRow {
                    orgnr,
                    arm: f[1].to_owned(),
                    stratum: f[2].to_owned(),
                    klynge,
                    bolge,
                    sannsynlighet,
                    trukket,
                })
            }
            (a, b, c, d, e) => {
                errors.extend(a.err());
                errors.extend(b.err());
                errors.extend(c.err());
                errors.extend(d.err());
                errors.extend(e.err());
            }
        }
    }
    collect(rows, errors).map(|rows| Assignment {
        header,
        rows,
        baseline_cuts: Vec::new(),
    })
}

/// One way a checked assignment differs from the recomputed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The firm, or empty for a header difference.
    pub orgnr: String,
    /// The field that differs.
    pub field: String,
    /// The recomputed value.
    pub expected: String,
    /// The value in the checked file.
    pub found: String,
}

/// Every difference between the recomputed assignment and a checked one (header, missing and extra
/// firms, and every field of every firm; `trukket` is not compared).
pub fn differences(expected: &Assignment, found: &Assignment) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut diff = |orgnr: String, field: &str, e: String, f: String| {
        if e != f {
            out.push(Difference {
                orgnr,
                field: field.to_owned(),
                expected: e,
                found: f,
            });
        }
    };
    let (eh, fh) = (&expected.header, &found.header);
    diff(
        String::new(),
        "protocol_id",
        eh.protocol_id.clone(),
        fh.protocol_id.clone(),
    );
    diff(
        String::new(),
        "protocol_hash",
        eh.protocol_hash.clone(),
        fh.protocol_hash.clone(),
    );
    diff(
        String::new(),
        "algorithm",
        eh.algorithm.clone(),
        fh.algorithm.clone(),
    );
    diff(
        String::new(),
        "wave",
        eh.wave.to_string(),
        fh.wave.to_string(),
    );
    diff(String::new(), "seed", eh.seed.clone(), fh.seed.clone());
    let mut times: std::collections::BTreeMap<Orgnr, usize> = std::collections::BTreeMap::new();
    for r in &found.rows {
        *times.entry(r.orgnr).or_default() += 1;
    }
    for (orgnr, n) in times.iter().filter(|(_, n)| **n > 1) {
        diff(
            orgnr.to_string(),
            "row",
            "once".into(),
            format!("{n} times"),
        );
    }
    let found_rows: std::collections::BTreeMap<Orgnr, &AssignmentRow> =
        found.rows.iter().map(|r| (r.orgnr, r)).collect();
    let expected_rows: std::collections::BTreeMap<Orgnr, &AssignmentRow> =
        expected.rows.iter().map(|r| (r.orgnr, r)).collect();
    for (orgnr, e) in &expected_rows {
        let id = orgnr.to_string();
        match found_rows.get(orgnr) {
            None => diff(id, "row", "present".into(), "missing".into()),
            Some(f) => {
                diff(id.clone(), "arm", e.arm.clone(), f.arm.clone());
                diff(id.clone(), "stratum", e.stratum.clone(), f.stratum.clone());
                diff(id.clone(), "klynge", opt(e.klynge), opt(f.klynge));
                diff(
                    id.clone(),
                    "bolge",
                    e.bolge.to_string(),
                    f.bolge.to_string(),
                );
                diff(
                    id,
                    "sannsynlighet",
                    e.sannsynlighet.to_string(),
                    f.sannsynlighet.to_string(),
                );
            }
        }
    }
    for orgnr in found_rows.keys().filter(|o| !expected_rows.contains_key(o)) {
        diff(orgnr.to_string(), "row", "absent".into(), "extra".into());
    }
    out
}
