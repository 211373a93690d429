//! CONSORT flow counts: assessed, eligible, excluded by reason, randomized per arm.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::randomization::plan::{Assignment, Screening};

/// The enrollment and allocation boxes of a CONSORT flow diagram (firms, not clusters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Consort {
    /// Firms assessed for eligibility.
    pub assessed: usize,
    /// Firms found eligible.
    pub eligible: usize,
    /// Excluded firms per exclusion code. A firm excluded for several reasons counts under each,
    /// so the sum can exceed `assessed - eligible`.
    pub excluded_by_reason: BTreeMap<String, usize>,
    /// Randomized firms per arm id; every arm given is present, with 0 if it got none.
    pub randomized_per_arm: BTreeMap<String, usize>,
    /// Eligible firms with no assignment.
    pub not_randomized: usize,
}

impl Consort {
    /// Counts the flow from a screening and the assignment drawn from its eligible firms.
    /// `arms` (protocol order) seeds `randomized_per_arm` with zeros; an assignment row's arm that
    /// is not listed is still counted under its own id.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::balance::Consort;
    /// use ia_rct::randomization::plan::{Assignment, DrawHeader, Screening};
    ///
    /// let screening = Screening { eligible: vec![], excluded: vec![] };
    /// let assignment = Assignment {
    ///     header: DrawHeader {
    ///         protocol_id: "p".into(),
    ///         protocol_hash: "h".into(),
    ///         algorithm: "a".into(),
    ///         wave: 1,
    ///         seed: "s".into(),
    ///     },
    ///     rows: vec![],
    ///     baseline_cuts: vec![],
    /// };
    /// let flow = Consort::from_screening(&screening, &assignment, &["kontroll".to_owned()]);
    /// assert_eq!(flow.randomized_per_arm["kontroll"], 0);
    /// ```
    pub fn from_screening(screening: &Screening, assignment: &Assignment, arms: &[String]) -> Self {
        let mut excluded_by_reason: BTreeMap<String, usize> = BTreeMap::new();
        for firm in &screening.excluded {
            let codes: BTreeSet<&str> = firm.reasons.iter().map(|r| r.code.as_str()).collect();
            for code in codes {
                *excluded_by_reason.entry(code.to_owned()).or_default() += 1;
            }
        }
        let mut randomized_per_arm: BTreeMap<String, usize> =
            arms.iter().map(|a| (a.clone(), 0)).collect();
        for row in &assignment.rows {
            *randomized_per_arm.entry(row.arm.clone()).or_default() += 1;
        }
        let assigned: BTreeSet<_> = assignment.rows.iter().map(|r| r.orgnr).collect();
        let not_randomized = screening
            .eligible
            .iter()
            .filter(|u| !assigned.contains(&u.orgnr))
            .count();
        Consort {
            assessed: screening.eligible.len() + screening.excluded.len(),
            eligible: screening.eligible.len(),
            excluded_by_reason,
            randomized_per_arm,
            not_randomized,
        }
    }
}
