//! Protocol deviations a take-up record reveals: contact with, or help to, a firm of the control arm
//! where the design forbids it (`docs/trial-design.md` §1.2).
//!
//! - **Design A** randomizes before any contact, and the control group "ikke kontaktes overhodet"
//!   (`002_…txt:2406`). Every take-up status shows contact: a history starts with `KONTAKTET`, and
//!   `TAKKET_NEI`, `AKTIV`, `FULLFØRT` and `AVBRUTT` all follow one (see the transitions in the
//!   `history` source file). So every take-up record of a design-A control firm is a deviation:
//!   [`DeviationKind::ControlAssisted`] when it is `AKTIV` (a samarbeid is running), otherwise
//!   [`DeviationKind::ControlContacted`]. A contact the firm itself started is contact too; the
//!   protocol asks for it to be registered, and the directorate judges it from the record.
//! - **Design B** randomizes firms that were contacted and agreed to take part, so contact with a
//!   control firm is expected (it is told it is on the waiting list); starting help before the
//!   follow-up ends is not ("ikke start bistand før det", `protocols/nals-villige-b.toml`). An
//!   `AKTIV` record of a design-B control firm is [`DeviationKind::ControlAssisted`]; other statuses
//!   are not deviations (`FULLFØRT`/`AVBRUTT` end a samarbeid whose `AKTIV` was already flagged).
//!
//! Both restrictions hold until the follow-up ends: a record dated after the protocol's last post
//! quarter is not a deviation (the caller passes `control = false` for it).
//!
//! Records of firms in an active arm are never deviations here: declining or not starting is
//! non-compliance, which [`super::summarize`] measures.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::TakeupStatus;
use crate::protocol::Design;

/// What kind of deviation a take-up record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    /// A design-A control firm was contacted.
    ControlContacted,
    /// A control firm received help (`AKTIV`) during the trial.
    ControlAssisted,
}

impl DeviationKind {
    /// Every kind.
    pub const ALL: [DeviationKind; 2] = [
        DeviationKind::ControlContacted,
        DeviationKind::ControlAssisted,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviationKind::ControlContacted => "control_contacted",
            DeviationKind::ControlAssisted => "control_assisted",
        }
    }

    /// What the deviation means, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            DeviationKind::ControlContacted => {
                "the firm is in the control arm of a design-A trial and must not be contacted"
            }
            DeviationKind::ControlAssisted => {
                "the firm is in the control arm and must not receive help during the trial"
            }
        }
    }
}

impl fmt::Display for DeviationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviationKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a protocol deviation kind"))
    }
}

/// The deviation a take-up record with `status` is, for a firm of an arm that is (`control`) or is
/// not the control arm, in a trial of `design`; `None` if it is none.
///
/// # Examples
/// ```
/// use ia_rct::protocol::Design;
/// use ia_rct::takeup::{DeviationKind, TakeupStatus, deviation};
/// assert_eq!(
///     deviation(Design::A, true, TakeupStatus::Kontaktet),
///     Some(DeviationKind::ControlContacted)
/// );
/// assert_eq!(deviation(Design::A, false, TakeupStatus::Kontaktet), None);
/// assert_eq!(deviation(Design::B, true, TakeupStatus::Kontaktet), None);
/// assert_eq!(
///     deviation(Design::B, true, TakeupStatus::Aktiv),
///     Some(DeviationKind::ControlAssisted)
/// );
/// ```
pub fn deviation(design: Design, control: bool, status: TakeupStatus) -> Option<DeviationKind> {
    if !control {
        return None;
    }
    match (design, status) {
        (_, TakeupStatus::Aktiv) => Some(DeviationKind::ControlAssisted),
        (Design::A, _) => Some(DeviationKind::ControlContacted),
        (Design::B, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_of_a_design_a_control_firm_is_contact() {
        for status in TakeupStatus::ALL {
            let expected = if status == TakeupStatus::Aktiv {
                DeviationKind::ControlAssisted
            } else {
                DeviationKind::ControlContacted
            };
            assert_eq!(
                deviation(Design::A, true, status),
                Some(expected),
                "{status}"
            );
        }
    }

    #[test]
    fn only_help_to_a_design_b_control_firm_is_a_deviation() {
        for status in TakeupStatus::ALL {
            let expected =
                (status == TakeupStatus::Aktiv).then_some(DeviationKind::ControlAssisted);
            assert_eq!(deviation(Design::B, true, status), expected, "{status}");
        }
    }

    #[test]
    fn treated_firms_never_deviate() {
        for design in [Design::A, Design::B] {
            for status in TakeupStatus::ALL {
                assert_eq!(
                    deviation(design, false, status),
                    None,
                    "{design:?} {status}"
                );
            }
        }
    }

    #[test]
    fn kinds_round_trip_through_their_stored_names() {
        for kind in DeviationKind::ALL {
            assert_eq!(kind.as_str().parse::<DeviationKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(kind.as_str().into()));
        }
        assert!("control".parse::<DeviationKind>().is_err());
    }
}
