//! Take-up events (`docs/data-formats.md` §3): one row per firm and event, with Fia's statuses.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::Orgnr;
use crate::register::RegisterErrors;

use super::reader::{self, Lines, Record, Sink, Spec, Table};

/// Longest `arbeidsform_levert`, in characters.
pub const MAX_ARBEIDSFORM_CHARS: usize = 200;
/// Longest `merknad`, in characters.
pub const MAX_MERKNAD_CHARS: usize = 1000;
/// The most adviser hours (`timer`) accepted on one event: a full-time adviser's year is about 1,700.
pub const MAX_TIMER: f64 = 10_000.0;

/// The first date a take-up event may have (`dato`).
pub const FIRST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1990, 1, 1) {
    Some(date) => date,
    None => NaiveDate::MIN,
};

/// The last date a take-up event may have (`dato`).
pub const LAST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2100, 12, 31) {
    Some(date) => date,
    None => NaiveDate::MAX,
};

/// A take-up status, named after NAV's Fia case system (`docs/data-formats.md` §3).
///
/// `KONTAKTET` and `TAKKET_NEI` are the virksomhet's assessment in Fia (tilstand `VirksomhetVurderes`, and
/// `AvsluttVurdering` with a "takket nei" årsak); `AKTIV`, `FULLFØRT` and `AVBRUTT` are Fia's samarbeid
/// statuses (`docs/nav-data.md` §6.1-§6.2). On input, values are trimmed and matched without regard to
/// case, `-` or space may stand for `_`, and `FULLFORT` is accepted as an ASCII spelling of `FULLFØRT`
/// (for files from systems without æøå). Output is always the canonical name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum TakeupStatus {
    /// The firm has been contacted / is being assessed (Fia: VURDERES).
    #[serde(rename = "KONTAKTET")]
    Kontaktet,
    /// The firm declined before any samarbeid started (Fia: AvsluttVurdering, "takket nei").
    #[serde(rename = "TAKKET_NEI")]
    TakketNei,
    /// A samarbeid is running: the firm has received assistance.
    #[serde(rename = "AKTIV")]
    Aktiv,
    /// The samarbeid was completed (`FULLFORT` accepted on input).
    #[serde(rename = "FULLFØRT", alias = "FULLFORT")]
    Fullfort,
    /// The samarbeid was broken off.
    #[serde(rename = "AVBRUTT")]
    Avbrutt,
}

impl TakeupStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TakeupStatus; 5] = [
        TakeupStatus::Kontaktet,
        TakeupStatus::TakketNei,
        TakeupStatus::Aktiv,
        TakeupStatus::Fullfort,
        TakeupStatus::Avbrutt,
    ];

    /// The canonical name (`FULLFØRT` with Ø).
    pub fn as_str(self) -> &'static str {
        match self {
            TakeupStatus::Kontaktet => "KONTAKTET",
            TakeupStatus::TakketNei => "TAKKET_NEI",
            TakeupStatus::Aktiv => "AKTIV",
            TakeupStatus::Fullfort => "FULLFØRT",
            TakeupStatus::Avbrutt => "AVBRUTT",
        }
    }
}

impl fmt::Display for TakeupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value is not a [`TakeupStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a take-up status; {hint}")]
pub struct TakeupStatusError {
    value: String,
    hint: &'static str,
}

impl FromStr for TakeupStatus {
    type Err = TakeupStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_uppercase().replace(['-', ' '], "_");
        let hint = match key.as_str() {
            "KONTAKTET" => return Ok(TakeupStatus::Kontaktet),
            "TAKKET_NEI" => return Ok(TakeupStatus::TakketNei),
            "AKTIV" => return Ok(TakeupStatus::Aktiv),
            "FULLFØRT" | "FULLFORT" => return Ok(TakeupStatus::Fullfort),
            "AVBRUTT" => return Ok(TakeupStatus::Avbrutt),
            // Fia's IA-sak statuses (docs/nav-data.md §6.1), as a Fia export may carry them.
            "VURDERES" | "KONTAKTES" | "KARTLEGGES" => {
                "this is a Fia IA-sak status; write KONTAKTET for it"
            }
            "VI_BISTÅR" | "VI_BISTAR" | "VI_BISTAAR" => {
                "this is a Fia IA-sak status; write AKTIV for it"
            }
            "IKKE_AKTUELL" | "VURDERT" => {
                "this is a Fia IA-sak status; write TAKKET_NEI if the virksomhet declined, otherwise leave the firm at KONTAKTET"
            }
            "AVSLUTTET" => {
                "write FULLFØRT if the samarbeid was completed or AVBRUTT if it was broken off"
            }
            "SLETTET" => "a deleted sak or samarbeid is not a take-up event; leave the row out",
            _ => "",
        };
        Err(TakeupStatusError {
            value: reader::truncate(s),
            hint: if hint.is_empty() {
                "expected KONTAKTET, TAKKET_NEI, AKTIV, FULLFØRT (or FULLFORT) or AVBRUTT"
            } else {
                hint
            },
        })
    }
}

/// One take-up event for one firm (`docs/data-formats.md` §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TakeupEvent {
    /// The virksomhet (underenhet).
    pub orgnr: Orgnr,
    /// What happened.
    pub status: TakeupStatus,
    /// When it happened (ISO date, `YYYY-MM-DD`).
    pub dato: NaiveDate,
    /// The arbeidsform (form of help) delivered, if recorded with this event (at most 200 characters).
    /// Not allowed on `KONTAKTET` or `TAKKET_NEI`: nothing is delivered before a samarbeid starts.
    pub arbeidsform_levert: Option<String>,
    /// Adviser hours spent (decimal, >= 0), if recorded with this event.
    pub timer: Option<f64>,
    /// Free-text note (at most 1000 characters). No personal data: the trial holds firm-level data only.
    pub merknad: Option<String>,
    /// The 1-based data row of the upload the event came from (0 when not from an upload); errors from
    /// [`validate_history`](super::validate_history) name it.
    #[serde(default)]
    pub row: usize,
}

impl TakeupEvent {
    /// Whether two events say the same thing (every field but `row` equal): a repeated row or re-upload.
    pub fn same_as(&self, other: &TakeupEvent) -> bool {
        TakeupEvent {
            row: 0,
            ..self.clone()
        } == TakeupEvent {
            row: 0,
            ..other.clone()
        }
    }
}

const SPEC: Spec = Spec {
    columns: &[
        "orgnr",
        "status",
        "dato",
        "arbeidsform_levert",
        "timer",
        "merknad",
    ],
    required: &[
        ("orgnr", "the virksomhet's 9-digit orgnr"),
        (
            "status",
            "one of KONTAKTET, TAKKET_NEI, AKTIV, FULLFØRT, AVBRUTT",
        ),
        (
            "dato",
            "the date of the event as YYYY-MM-DD, e.g. 2025-03-14",
        ),
    ],
    what: "take-up event",
};

/// Reads take-up events (`docs/data-formats.md` §3) from CSV (comma or semicolon, header row, optional BOM;
/// semicolon files may write `timer` with a decimal comma) or JSON (an array of objects, one object, or
/// one object per line). Columns: `orgnr`, `status`, `dato` required; `arbeidsform_levert`, `timer`,
/// `merknad` optional; any other column is refused.
///
/// Events come back in file order, each with its row. Only each row on its own is checked here; whether the
/// statuses follow one another as Fia allows is [`validate_history`](super::validate_history)'s job.
///
/// # Errors
/// Every problem found, each naming its row and field: an invalid orgnr, status, date or hours, a missing
/// required value, an unknown column, text too long, an arbeidsform on a status that delivers nothing, a
/// file that is not UTF-8 or not well-formed, or a file with no events. Never panics.
pub fn parse_takeup(input: &[u8]) -> Result<Vec<TakeupEvent>, RegisterErrors> {
    let mut sink = Sink::default();
    let table = reader::read(input, &SPEC, &mut sink);
    let events: Vec<TakeupEvent> = table
        .records
        .iter()
        .filter_map(|record| event(&table, record, &mut sink))
        .collect();
    if sink.total() == 0 && events.is_empty() {
        sink.push(
            0,
            "",
            "",
            "the upload has no take-up events; expected at least one row after the header (CSV) or one object (JSON)",
        );
    }
    sink.finish(events)
}

fn event(table: &Table, record: &Record, sink: &mut Sink) -> Option<TakeupEvent> {
    let row = record.row;
    let before = sink.total();

    let orgnr = table
        .required(record, "orgnr", sink)
        .and_then(|cell| reader::orgnr(row, cell, sink));
    let status = table.required(record, "status", sink).and_then(|cell| {
        let text = reader::text(row, cell, false, sink)?;
        text.parse::<TakeupStatus>()
            .map_err(|e| sink.push_cell(row, cell, e.to_string()))
            .ok()
    });
    let dato = table.required(record, "dato", sink).and_then(|cell| {
        let text = reader::text(row, cell, false, sink)?;
        iso_date(&text)
            .and_then(|date| {
                if (FIRST_DATE..=LAST_DATE).contains(&date) {
                    Ok(date)
                } else {
                    Err(format!(
                        "`{text}` is out of range: a take-up date lies between {FIRST_DATE} and {LAST_DATE}"
                    ))
                }
            })
            .map_err(|reason| sink.push_cell(row, cell, reason))
            .ok()
    });
    let arbeidsform_levert = record.get("arbeidsform_levert").and_then(|cell| {
        let text = reader::bounded_text(row, cell, MAX_ARBEIDSFORM_CHARS, Lines::One, sink)?;
        match status {
            Some(s @ (TakeupStatus::Kontaktet | TakeupStatus::TakketNei)) => {
                sink.push_cell(
                    row,
                    cell,
                    format!(
                        "an arbeidsform cannot be delivered with status {s}: nothing is delivered before a samarbeid is AKTIV; move it to the AKTIV, FULLFØRT or AVBRUTT row"
                    ),
                );
                None
            }
            _ => Some(text),
        }
    });
    let timer = record
        .get("timer")
        .and_then(|cell| match table.number(&cell.raw) {
            Ok(hours) if hours < 0.0 => {
                sink.push_cell(row, cell, "adviser hours cannot be negative");
                None
            }
            Ok(hours) if hours > MAX_TIMER => {
                sink.push_cell(
                    row,
                    cell,
                    format!(
                        "{hours} adviser hours on one event is out of range: at most {MAX_TIMER}"
                    ),
                );
                None
            }
            Ok(hours) => Some(hours),
            Err(reason) => {
                sink.push_cell(row, cell, format!("{reason} (adviser hours)"));
                None
            }
        });
    let merknad = record
        .get("merknad")
        .and_then(|cell| reader::bounded_text(row, cell, MAX_MERKNAD_CHARS, Lines::Many, sink));

    if sink.total() != before {
        return None;
    }
    Some(TakeupEvent {
        orgnr: orgnr?,
        status: status?,
        dato: dato?,
        arbeidsform_levert,
        timer,
        merknad,
        row,
    })
}

/// An ISO date, exactly `YYYY-MM-DD`.
pub(super) fn iso_date(text: &str) -> Result<NaiveDate, String> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        let hint = if text.len() > 10 && text.get(..10).is_some_and(|d| iso_date(d).is_ok()) {
            "; give the date only, without a time"
        } else {
            ""
        };
        return Err(format!(
            "`{}` is not a date as YYYY-MM-DD (e.g. 2025-03-14 for 14 March 2025){hint}",
            reader::truncate(text)
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date in the calendar; check the day and month"))
}
