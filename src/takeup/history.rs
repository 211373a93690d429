//! A firm's take-up history: which status may follow which (after Fia), and what it adds up to.
//!
//! # The transitions, after Fia's current ("new flow") state machine
//! Citations are to `docs/nav-data.md` §6.1 (Fia's new flow and ia-rct's transitions) and §6.2 (årsaker):
//!
//! | from \ to        | KONTAKTET | TAKKET_NEI | AKTIV | FULLFØRT | AVBRUTT |
//! |------------------|-----------|------------|-------|----------|---------|
//! | (no event yet)   | yes       | no         | no    | no       | no      |
//! | KONTAKTET        | yes       | yes        | yes   | no       | no      |
//! | TAKKET_NEI       | yes       | no         | no    | no       | no      |
//! | AKTIV            | no        | no         | yes   | yes      | yes     |
//! | FULLFØRT/AVBRUTT | yes       | no         | no    | no       | no      |
//!
//! - KONTAKTET is Fia's `VirksomhetVurderes` (VURDERES). A virksomhet enters it from
//!   `KlarTilVurdering` by `VurderVirksomhet` (§6.1), so a history starts with KONTAKTET.
//! - From VURDERES: `OpprettNyttSamarbeid` opens a samarbeid (→ AKTIV) and `AvsluttVurdering` ends the
//!   assessment (§6.1), with a "takket nei" årsak for TAKKET_NEI (§6.2). AKTIV and
//!   TAKKET_NEI therefore need a KONTAKTET before them.
//! - KONTAKTET may repeat: `AngreVurderVirksomhet` returns to `KlarTilVurdering` and `AvsluttVurdering` with
//!   a reason other than "takket nei" (e.g. no answer, vurderes senere; §6.2) ends in `ErVurdert`,
//!   and both lead back to VURDERES by `VurderVirksomhet` (§6.1). Neither has a status of its own
//!   here, so the next contact is simply another KONTAKTET.
//! - In `HarAktiveSamarbeid`, "samarbeid/plan/kartlegging events stay" (§6.1), and a virksomhet may have
//!   several samarbeid (§6.1): AKTIV may repeat (e.g. one row per delivered arbeidsform, with its hours).
//! - A samarbeid ends only by `AvsluttSamarbeid` with `typeAvslutning` FULLFØRT or AVBRUTT (§6.1):
//!   both need AKTIV before them. A virksomhet that withdraws after its samarbeid started is AVBRUTT, not
//!   TAKKET_NEI (AvsluttVurdering exists only in VURDERES, §6.1). The old flow let VI_BISTÅR go to
//!   IKKE_AKTUELL (§6.1), but it was removed in 2026-05 (§6.1) and is not followed.
//! - There is no way back from HarAktiveSamarbeid to VURDERES except deleting the last samarbeid
//!   (`SlettSamarbeid`, §6.1), a correction rather than an event: AKTIV → KONTAKTET is refused.
//! - `ErVurdert` (after TAKKET_NEI) and `AlleSamarbeidIVirksomhetErAvsluttet` (after FULLFØRT/AVBRUTT) leave
//!   only by `VurderVirksomhet` (→ VURDERES) or, by hand or automatically after 90 days, to
//!   `KlarTilVurdering` (§6.1): the next status is KONTAKTET, whatever comes after it.
//!
//! Statuses are kept per virksomhet, not per samarbeid (the upload has no samarbeid id): FULLFØRT/AVBRUTT
//! is written when the firm's last running samarbeid ends, as Fia's virksomhet tilstand moves to
//! AVSLUTTET only "when all samarbeid are avsluttet" (§6.1).
//!
//! Not checked, because the upload does not carry it: Fia's blocks on fullføring (`INGEN_PLAN`, an
//! unfinished kartlegging; §6.1), and Fia's 10-day TILBAKE undo of the old flow (§6.1):
//! corrections to a registered history are the directorate's, not an upload's.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::Orgnr;
use crate::register::{RegisterErrors, RowError};

use super::events::{TakeupEvent, TakeupStatus};
use super::reader::Sink;

use TakeupStatus::{Aktiv, Avbrutt, Fullfort, Kontaktet, TakketNei};

/// Where an event of a history came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Registered,
    Row(usize),
}

/// The last event that counted, as shown in messages.
#[derive(Debug, Clone, Copy)]
struct Prev {
    status: TakeupStatus,
    dato: NaiveDate,
    origin: Origin,
}

impl Prev {
    fn describe(&self) -> String {
        let origin = match self.origin {
            Origin::Registered => "already registered".to_owned(),
            Origin::Row(row) => format!("row {row}"),
        };
        format!("{} of {} ({origin})", self.status, self.dato)
    }
}

/// Why Fia does not allow a transition (`rule`) and what the fylke can do about it (`fix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    rule: &'static str,
    fix: &'static str,
}

const ADD_KONTAKTET: &str = "add a KONTAKTET row before it with the date of the contact (the same date works if that row comes first in the file)";

/// Whether `next` may follow `prev` (the module documentation has the table and the sources).
fn transition(prev: Option<TakeupStatus>, next: TakeupStatus) -> Result<(), Refusal> {
    match (prev, next) {
        // Fia: KlarTilVurdering —VurderVirksomhet→ Vurderes (docs/nav-data.md §6.1).
        (None, Kontaktet) => Ok(()),
        // Fia: OpprettNyttSamarbeid only from Vurderes (§6.1).
        (None, Aktiv) => Err(Refusal {
            rule: "in Fia a samarbeid is opened only for a virksomhet that is being assessed (VURDERES)",
            fix: ADD_KONTAKTET,
        }),
        // Fia: AvsluttVurdering ("takket nei") only from Vurderes (§6.1, §6.2).
        (None, TakketNei) => Err(Refusal {
            rule: "in Fia a virksomhet declines while it is being assessed (VURDERES), so it must have been contacted",
            fix: ADD_KONTAKTET,
        }),
        // Fia: AvsluttSamarbeid (FULLFØRT/AVBRUTT) ends a samarbeid, which must exist (§6.1).
        (None, Fullfort | Avbrutt) => Err(Refusal {
            rule: "in Fia only an AKTIV samarbeid can be ended (FULLFØRT or AVBRUTT)",
            fix: "add the KONTAKTET and AKTIV rows, with their dates, before it",
        }),
        // Fia: from Vurderes, OpprettNyttSamarbeid and AvsluttVurdering (§6.1); a repeated contact
        // goes via KlarTilVurdering or ErVurdert back to Vurderes (§6.1).
        (Some(Kontaktet), Kontaktet | Aktiv | TakketNei) => Ok(()),
        (Some(Kontaktet), Fullfort) => Err(Refusal {
            rule: "only an AKTIV samarbeid can be completed (Fia: AvsluttSamarbeid)",
            fix: "add an AKTIV row with the date the samarbeid started before it",
        }),
        (Some(Kontaktet), Avbrutt) => Err(Refusal {
            rule: "only an AKTIV samarbeid can be broken off (Fia: AvsluttSamarbeid)",
            fix: "if the virksomhet declined before any samarbeid started, write TAKKET_NEI; otherwise add the AKTIV row with its date before it",
        }),
        // Fia: in HarAktiveSamarbeid samarbeid events stay (§6.1); AvsluttSamarbeid ends (§6.1).
        (Some(Aktiv), Aktiv | Fullfort | Avbrutt) => Ok(()),
        (Some(Aktiv), Kontaktet) => Err(Refusal {
            rule: "while a samarbeid is AKTIV, Fia does not go back to assessment",
            fix: "end the samarbeid with FULLFØRT or AVBRUTT first; if the AKTIV was registered by mistake, ask the directorate to correct it",
        }),
        // Fia: AvsluttVurdering exists only in Vurderes (§6.1); the old flow's VI_BISTÅR → IKKE_AKTUELL
        // (§6.1) was removed (§6.1).
        (Some(Aktiv), TakketNei) => Err(Refusal {
            rule: "a virksomhet that withdraws after its samarbeid started has broken the samarbeid off",
            fix: "write AVBRUTT instead of TAKKET_NEI",
        }),
        // Fia: ErVurdert and Avsluttet leave only by VurderVirksomhet → Vurderes, or to KlarTilVurdering
        // (§6.1).
        (Some(TakketNei | Fullfort | Avbrutt), Kontaktet) => Ok(()),
        (Some(TakketNei), _) => Err(Refusal {
            rule: "after TAKKET_NEI, Fia assesses the virksomhet again (VURDERES) before anything else can happen",
            fix: ADD_KONTAKTET,
        }),
        (Some(Fullfort | Avbrutt), Fullfort | Avbrutt) => Err(Refusal {
            rule: "the samarbeid has already ended",
            fix: "record the end once: remove this row, or ask the directorate to correct the registered end",
        }),
        (Some(Fullfort | Avbrutt), Aktiv | TakketNei) => Err(Refusal {
            rule: "after a samarbeid has ended, Fia assesses the virksomhet again (VURDERES) before a new samarbeid or a refusal",
            fix: ADD_KONTAKTET,
        }),
    }
}

/// Checks that a new upload of take-up events extends the registered history as Fia allows.
///
/// Per firm, `existing` and `new` events are replayed together in date order; events on the same date keep
/// file order, registered ones first. Each new event must be dated no later than `today`, must not repeat
/// an event already registered or earlier in the upload (every field equal), and its status must be allowed
/// after the firm's status just before it (the transition table is in this module's documentation). A new
/// event that is refused is left out of the replay, so one mistake is reported once. A new event dated
/// before registered ones must also leave those allowed; if not, the error is on the new row's `dato`.
/// `existing` is taken as registered: problems inside it alone are not reported.
///
/// # Errors
/// Every problem, in row order of the new upload, each on field `status` or `dato` with a reason that says
/// what to change. Never panics.
pub fn validate_history(
    existing: &[TakeupEvent],
    new: &[TakeupEvent],
    today: NaiveDate,
) -> Result<(), RegisterErrors> {
    let mut firms: BTreeMap<Orgnr, Vec<(&TakeupEvent, bool)>> = BTreeMap::new();
    for event in existing {
        firms.entry(event.orgnr).or_default().push((event, false));
    }
    for event in new {
        firms.entry(event.orgnr).or_default().push((event, true));
    }
    let mut errors = Vec::new();
    for history in firms.values_mut() {
        history.sort_by_key(|(event, _)| event.dato); // stable: same date keeps file order
        replay(history, today, &mut errors);
    }
    errors.sort_by_key(|e: &RowError| e.row); // stable: a row's own errors keep their order
    let mut sink = Sink::default();
    for e in errors {
        sink.push(e.row, &e.field, &e.value, e.reason);
    }
    sink.finish(())
}

fn replay(history: &[(&TakeupEvent, bool)], today: NaiveDate, errors: &mut Vec<RowError>) {
    let mut prev: Option<Prev> = None;
    let mut counted: Vec<(&TakeupEvent, Origin)> = Vec::new();
    // The last new event replayed since the last registered one: blamed if that registered one no longer
    // fits after it.
    let mut last_new: Option<&TakeupEvent> = None;

    for &(event, is_new) in history {
        if !is_new {
            if let (Some(culprit), Err(refusal)) =
                (last_new, transition(prev.map(|p| p.status), event.status))
            {
                errors.push(RowError {
                    row: culprit.row,
                    field: "dato".to_owned(),
                    value: culprit.dato.to_string(),
                    reason: format!(
                        "dated {}, this {} comes just before the already registered {} of {}, which cannot follow it: {}. Check this row's date; new events must fit into the registered history as Fia allows",
                        culprit.dato, culprit.status, event.status, event.dato, refusal.rule
                    ),
                });
            }
            prev = Some(Prev {
                status: event.status,
                dato: event.dato,
                origin: Origin::Registered,
            });
            counted.push((event, Origin::Registered));
            last_new = None;
            continue;
        }

        if event.dato > today {
            errors.push(RowError {
                row: event.row,
                field: "dato".to_owned(),
                value: event.dato.to_string(),
                reason: format!(
                    "{} is after today ({today}); register an event once it has happened",
                    event.dato
                ),
            });
            continue;
        }
        if let Some((_, origin)) = counted.iter().find(|(other, _)| other.same_as(event)) {
            let place = match origin {
                Origin::Registered => "already registered".to_owned(),
                Origin::Row(row) => format!("already in row {row}"),
            };
            errors.push(RowError {
                row: event.row,
                field: "status".to_owned(),
                value: event.status.to_string(),
                reason: format!(
                    "the same event ({} on {} for {}, with the same other fields) is {place}; remove this row (uploading a file again registers nothing new)",
                    event.status, event.dato, event.orgnr
                ),
            });
            continue;
        }
        match transition(prev.map(|p| p.status), event.status) {
            Ok(()) => {
                prev = Some(Prev {
                    status: event.status,
                    dato: event.dato,
                    origin: Origin::Row(event.row),
                });
                counted.push((event, Origin::Row(event.row)));
                last_new = Some(event);
            }
            Err(refusal) => {
                let after = match &prev {
                    Some(p) => format!("cannot follow {}", p.describe()),
                    None => format!("cannot be the first event for {}", event.orgnr),
                };
                errors.push(RowError {
                    row: event.row,
                    field: "status".to_owned(),
                    value: event.status.to_string(),
                    reason: format!(
                        "{} on {} {after}: {}; {}",
                        event.status, event.dato, refusal.rule, refusal.fix
                    ),
                });
            }
        }
    }
}

/// What a firm's take-up history adds up to: the compliance measures of `docs/trial-design.md` §7 item 8.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Compliance {
    /// Received assistance: has been AKTIV (`docs/data-formats.md` §3).
    pub received: bool,
    /// The date of the first AKTIV.
    pub received_date: Option<NaiveDate>,
    /// The status of the latest event (by date; the last in input order on a tie).
    pub last_status: TakeupStatus,
    /// Adviser hours: the sum of `timer` over all events (a missing `timer` counts 0).
    pub timer: f64,
    /// Every arbeidsform recorded as delivered.
    pub arbeidsform_levert: BTreeSet<String>,
}

/// Per-firm compliance from take-up events (assumed valid; see [`validate_history`]). Events are taken in
/// date order, ties in input order. Firms without events are absent.
pub fn summarize(events: &[TakeupEvent]) -> BTreeMap<Orgnr, Compliance> {
    let mut firms: BTreeMap<Orgnr, Vec<&TakeupEvent>> = BTreeMap::new();
    for event in events {
        firms.entry(event.orgnr).or_default().push(event);
    }
    firms
        .into_iter()
        .filter_map(|(orgnr, mut history)| {
            history.sort_by_key(|event| event.dato);
            let last = history.last()?;
            let received_date = history.iter().find(|e| e.status == Aktiv).map(|e| e.dato);
            let compliance = Compliance {
                received: received_date.is_some(),
                received_date,
                last_status: last.status,
                timer: history.iter().filter_map(|e| e.timer).sum(),
                arbeidsform_levert: history
                    .iter()
                    .filter_map(|e| e.arbeidsform_levert.clone())
                    .collect(),
            };
            Some((orgnr, compliance))
        })
        .collect()
}
