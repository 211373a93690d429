//! "Received assistance" for the complier effect: a firm has received help once it has been
//! `AKTIV` (docs/data-formats.md §3), counted up to a cut-off the protocol names.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::domain::Orgnr;
use crate::takeup::{TakeupEvent, TakeupStatus};

/// Take-up as the estimators read it: the first `AKTIV` date of each firm, and the cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct Takeup {
    /// A firm received assistance when its first `AKTIV` is on or before this date.
    pub cutoff: NaiveDate,
    first_aktiv: HashMap<Orgnr, NaiveDate>,
}

impl Takeup {
    /// From take-up events (any order). A later `AVBRUTT` or `FULLFØRT` does not undo receipt, and
    /// a firm without events has not received help.
    pub fn from_events(events: &[TakeupEvent], cutoff: NaiveDate) -> Takeup {
        let mut first_aktiv: HashMap<Orgnr, NaiveDate> = HashMap::new();
        for e in events.iter().filter(|e| e.status == TakeupStatus::Aktiv) {
            first_aktiv
                .entry(e.orgnr)
                .and_modify(|d| *d = (*d).min(e.dato))
                .or_insert(e.dato);
        }
        Takeup {
            cutoff,
            first_aktiv,
        }
    }

    /// Whether the firm had received assistance by the cut-off (inclusive).
    pub fn received(&self, orgnr: Orgnr) -> bool {
        self.first_aktiv
            .get(&orgnr)
            .is_some_and(|d| *d <= self.cutoff)
    }

    /// Firms that had received assistance by the cut-off.
    pub fn n_received(&self) -> usize {
        self.first_aktiv
            .values()
            .filter(|d| **d <= self.cutoff)
            .count()
    }
}
