//! Take-up and survey uploads: what was actually delivered to each firm (`docs/data-formats.md` §3), whether
//! its status history follows NAV's Fia case system, what that adds up to per firm (compliance, dose), and
//! repeated work-environment survey outcomes with small-cell masking (`docs/data-formats.md` §4).
//!
//! Pure: bytes in, values or every problem out; no database. Problems are the register's [`RowError`]s
//! (row, field, value, reason) collected in a [`RegisterErrors`] (the first 100 kept, all counted), and
//! uploads are read by the same rules as the register: UTF-8 CSV, comma or semicolon separated with a
//! header row and optional BOM, or JSON (an array of objects, or one object per line); names are matched
//! exactly and an unknown column is refused.
//!
//! - [`parse_takeup`] reads events `orgnr, status, dato` (+ `arbeidsform_levert`, `timer`, `merknad`);
//!   statuses are [`TakeupStatus`]: `KONTAKTET, TAKKET_NEI, AKTIV, FULLFØRT, AVBRUTT` (`FULLFORT` is
//!   accepted on input as an ASCII spelling of `FULLFØRT`).
//! - [`validate_history`] checks a new upload against the registered events: Fia's transitions (the table
//!   and its sources are in the documentation of the `history` source file and of [`validate_history`]),
//!   no repeated events, no dates after `today`.
//! - [`summarize`] gives each firm's [`Compliance`]: received assistance (has been `AKTIV`) and when,
//!   the latest status, adviser hours and the arbeidsformer delivered.
//! - [`deviation`] says whether a take-up record is a protocol deviation (contact with a design-A
//!   control firm, help to any control firm) and of which [`DeviationKind`].
//! - [`parse_surveys`] reads `orgnr, bolge, maal, verdi, antall_svar`; [`masked`] says whether a cell has
//!   fewer than [`SURVEY_MIN_RESPONDENTS`] respondents, and a [`SurveyRow`] always serializes masked.
//!
//! Who may upload for which firm (a fylke only for its own, `docs/data-formats.md` §3) is the caller's check.
//!
//! # Examples
//! ```
//! use chrono::NaiveDate;
//! use ia_rct::takeup::{TakeupStatus, parse_takeup, summarize, validate_history};
//! let csv = "orgnr;status;dato;timer\n\
//!            974760673;KONTAKTET;2025-01-06;1,5\n\
//!            974760673;AKTIV;2025-02-03;6\n";
//! let events = parse_takeup(csv.as_bytes()).unwrap();
//! let today = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
//! validate_history(&[], &events, today).unwrap();
//! let firm = &summarize(&events)[&events[0].orgnr];
//! assert!(firm.received);
//! assert_eq!(firm.last_status, TakeupStatus::Aktiv);
//! assert_eq!(firm.timer, 7.5);
//! ```

mod deviation;
mod events;
mod history;
mod reader;
mod survey;
#[cfg(test)]
mod tests;

pub use crate::register::{RegisterErrors, RowError};

pub use deviation::{DeviationKind, deviation};
pub use events::{
    FIRST_DATE, LAST_DATE, MAX_ARBEIDSFORM_CHARS, MAX_MERKNAD_CHARS, MAX_TIMER, TakeupEvent,
    TakeupStatus, TakeupStatusError, parse_takeup,
};
pub use history::{Compliance, summarize, validate_history};
pub use survey::{
    MAX_ANTALL_SVAR, MAX_BOLGE, MAX_MAAL_CHARS, MAX_VERDI, MaskedSurveyRow, SURVEY_MIN_RESPONDENTS,
    SurveyRow, check_measures, masked, parse_surveys,
};
