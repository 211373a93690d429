//! Repeated survey outcomes (`docs/data-formats.md` §4): one value per firm, wave and measure, with the number of
//! respondents, masked below [`SURVEY_MIN_RESPONDENTS`].

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::openapi::{RefOr, schema::Schema};

use crate::domain::Orgnr;
use crate::register::{RegisterErrors, RowError};

use super::reader::{self, Lines, Record, Sink, Spec, Table};

/// A survey cell with fewer respondents than this is masked in every output: NAV shows survey
/// (kartlegging) results only with at least 3 answers (`MINIMUM_ANTALL_DELTAKERE = 3`,
/// `docs/nav-data.md` §2; `docs/data-formats.md` §4).
pub const SURVEY_MIN_RESPONDENTS: u32 = 3;

/// Longest `maal` (measure name), in characters.
pub const MAX_MAAL_CHARS: usize = 200;

/// The highest wave (`bolge`) accepted: a trial followed for years with a survey every quarter has
/// a few dozen.
pub const MAX_BOLGE: u32 = 100;

/// The most respondents (`antall_svar`) accepted in one firm: no more than its persons
/// ([`crate::statistics::MAX_PERSONS`]).
pub const MAX_ANTALL_SVAR: u32 = crate::statistics::MAX_PERSONS;

/// The largest survey value (`verdi`) accepted, in absolute value: indices, shares and means of
/// scales are far smaller.
pub const MAX_VERDI: f64 = 1e6;

/// One survey cell: a firm's value on one measure in one wave.
///
/// Inside the service the value is at hand (`verdi`), as for any estimate; whenever the row is serialized
/// (for an API response or an export) it is written as a [`MaskedSurveyRow`], with `verdi` `null` and
/// `maskert: true` when [`masked`], so no output can reveal a masked cell by accident.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "MaskedSurveyRow")]
pub struct SurveyRow {
    /// The virksomhet (underenhet).
    pub orgnr: Orgnr,
    /// The wave (bølge), a whole number >= 0 (0 may be a baseline wave).
    pub bolge: u32,
    /// The measure's name, as given (trimmed, at most 200 characters).
    pub maal: String,
    /// The value; `None` only where the source already masked it (blank or `null` with fewer than
    /// [`SURVEY_MIN_RESPONDENTS`] respondents).
    pub verdi: Option<f64>,
    /// The number of respondents behind the value.
    pub antall_svar: u32,
    /// The 1-based data row of the upload it came from.
    pub row: usize,
}

/// A survey cell as every output shows it: the value only with at least [`SURVEY_MIN_RESPONDENTS`]
/// respondents.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MaskedSurveyRow {
    /// The virksomhet (underenhet).
    pub orgnr: Orgnr,
    /// The wave.
    pub bolge: u32,
    /// The measure's name.
    pub maal: String,
    /// The value; `null` when masked.
    pub verdi: Option<f64>,
    /// The number of respondents (shown even when masked, as NAV does).
    pub antall_svar: u32,
    /// Whether the cell is masked (fewer than 3 respondents).
    pub maskert: bool,
}

impl From<SurveyRow> for MaskedSurveyRow {
    fn from(row: SurveyRow) -> Self {
        let maskert = masked(&row);
        MaskedSurveyRow {
            orgnr: row.orgnr,
            bolge: row.bolge,
            maal: row.maal,
            verdi: if maskert { None } else { row.verdi },
            antall_svar: row.antall_svar,
            maskert,
        }
    }
}

/// The schema of what [`SurveyRow`] serializes to ([`MaskedSurveyRow`]).
impl utoipa::PartialSchema for SurveyRow {
    fn schema() -> RefOr<Schema> {
        <MaskedSurveyRow as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for SurveyRow {}

/// Whether a survey cell must be masked in every output: fewer than [`SURVEY_MIN_RESPONDENTS`]
/// respondents.
pub fn masked(row: &SurveyRow) -> bool {
    row.antall_svar < SURVEY_MIN_RESPONDENTS
}

const SPEC: Spec = Spec {
    columns: &["orgnr", "bolge", "maal", "verdi", "antall_svar"],
    required: &[
        ("orgnr", "the virksomhet's 9-digit orgnr"),
        ("bolge", "the wave, a whole number >= 0"),
        ("maal", "the measure's name"),
        (
            "verdi",
            "the value (it may be blank only with fewer than 3 respondents)",
        ),
        (
            "antall_svar",
            "the number of respondents, a whole number >= 0",
        ),
    ],
    what: "survey cell",
};

/// Reads survey outcomes (`docs/data-formats.md` §4) from CSV (comma or semicolon, header row, optional BOM;
/// semicolon files may use a decimal comma) or JSON (an array of objects, one object, or one per line).
/// Columns `orgnr, bolge, maal, verdi, antall_svar`, all required; `verdi` may be blank (or `null`) only
/// where the source masked it, i.e. with fewer than [`SURVEY_MIN_RESPONDENTS`] respondents.
///
/// # Errors
/// Every problem found, each naming its row and field: an invalid orgnr, wave, value or count, a value with
/// 0 respondents, a missing value, a repeat of an earlier row's (orgnr, bolge, maal), an unknown column, a
/// file that is not UTF-8 or not well-formed, or a file without rows. Never panics.
pub fn parse_surveys(input: &[u8]) -> Result<Vec<SurveyRow>, RegisterErrors> {
    let mut sink = Sink::default();
    let table = reader::read(input, &SPEC, &mut sink);
    let mut seen: BTreeMap<(Orgnr, u32, String), usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for record in &table.records {
        let Some(row) = survey_row(&table, record, &mut sink) else {
            continue;
        };
        let key = (row.orgnr, row.bolge, row.maal.clone());
        if let Some(first) = seen.get(&key) {
            let name = record.get("maal").map_or("maal", |cell| cell.name.as_str());
            sink.push(
                row.row,
                name,
                &row.maal,
                format!(
                    "duplicate: orgnr {}, bolge {}, maal `{}` is already in row {first}; each firm has one value per wave and measure",
                    row.orgnr,
                    row.bolge,
                    reader::truncate(&row.maal)
                ),
            );
            continue;
        }
        seen.insert(key, row.row);
        rows.push(row);
    }
    if sink.total() == 0 && rows.is_empty() {
        sink.push(
            0,
            "",
            "",
            "the upload has no survey rows; expected at least one row after the header (CSV) or one object (JSON)",
        );
    }
    sink.finish(rows)
}

/// Checks that every row's `maal` is a survey measure the trial's protocol declares (`declared`:
/// its `outcomes.survey`, each also a secondary outcome). A result is never replaced once
/// recorded, so a measure outside the protocol would stay in the trial for good.
///
/// # Errors
/// Every row whose `maal` is not declared, each naming its row and the field `maal`.
///
/// # Examples
/// ```
/// use ia_rct::takeup::{check_measures, parse_surveys};
/// let rows = parse_surveys(b"orgnr,bolge,maal,verdi,antall_svar\n974760673,1,trivsel,3.5,12\n").unwrap();
/// let e = check_measures(&rows, &["arbeidsmiljo_indeks"]).unwrap_err();
/// assert_eq!((e.errors[0].row, e.errors[0].field.as_str()), (1, "maal"));
/// ```
pub fn check_measures(rows: &[SurveyRow], declared: &[&str]) -> Result<(), RegisterErrors> {
    let wrong: Vec<&SurveyRow> = rows
        .iter()
        .filter(|r| !declared.contains(&r.maal.as_str()))
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    let list = if declared.is_empty() {
        "none".to_owned()
    } else {
        declared
            .iter()
            .map(|d| format!("`{d}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(RegisterErrors {
        total: wrong.len(),
        errors: wrong
            .into_iter()
            .take(crate::register::MAX_STORED_ERRORS)
            .map(|r| RowError {
                row: r.row,
                field: "maal".into(),
                value: reader::truncate(&r.maal),
                reason: format!(
                    "`{}` is not a survey measure of the trial's protocol (outcomes.survey: \
                     {list}); results are never replaced, so only declared measures are \
                     recorded",
                    reader::truncate(&r.maal)
                ),
            })
            .collect(),
    })
}

fn survey_row(table: &Table, record: &Record, sink: &mut Sink) -> Option<SurveyRow> {
    let row = record.row;
    let before = sink.total();

    let orgnr = table
        .required(record, "orgnr", sink)
        .and_then(|cell| reader::orgnr(row, cell, sink));
    let bolge = table.required(record, "bolge", sink).and_then(|cell| {
        reader::whole(&cell.raw, "the wave")
            .and_then(|bolge| {
                if bolge > MAX_BOLGE {
                    Err(format!("wave {bolge} is out of range: at most {MAX_BOLGE}"))
                } else {
                    Ok(bolge)
                }
            })
            .map_err(|reason| sink.push_cell(row, cell, reason))
            .ok()
    });
    let maal = table
        .required(record, "maal", sink)
        .and_then(|cell| reader::bounded_text(row, cell, MAX_MAAL_CHARS, Lines::One, sink));
    let antall_svar = table
        .required(record, "antall_svar", sink)
        .and_then(|cell| {
            reader::whole(&cell.raw, "the number of respondents")
                .and_then(|n| {
                    if n > MAX_ANTALL_SVAR {
                        Err(format!(
                            "{n} respondents is out of range: at most {MAX_ANTALL_SVAR} in one firm"
                        ))
                    } else {
                        Ok(n)
                    }
                })
                .map_err(|reason| sink.push_cell(row, cell, reason))
                .ok()
        });
    // `verdi` is required unless the cell is masked at the source.
    let verdi = match record.get("verdi") {
        Some(cell) => match table.number(&cell.raw) {
            Ok(_) if antall_svar == Some(0) => {
                sink.push_cell(
                    row,
                    cell,
                    "a value with 0 respondents; check `antall_svar`, or leave `verdi` blank",
                );
                None
            }
            Ok(value) if value.abs() > MAX_VERDI => {
                sink.push_cell(
                    row,
                    cell,
                    format!(
                        "the value is out of range: it must lie between -{MAX_VERDI:e} and {MAX_VERDI:e}"
                    ),
                );
                None
            }
            Ok(value) => Some(value),
            Err(reason) => {
                sink.push_cell(row, cell, reason);
                None
            }
        },
        None => {
            if antall_svar.is_some_and(|n| n >= SURVEY_MIN_RESPONDENTS) {
                table.required(record, "verdi", sink);
            }
            None
        }
    };

    if sink.total() != before {
        return None;
    }
    Some(SurveyRow {
        orgnr: orgnr?,
        bolge: bolge?,
        maal: maal?,
        verdi,
        antall_svar: antall_svar?,
        row,
    })
}
