//! From enrolled firms to an assignment: eligibility, the canonical unit list, clusters, strata and
//! the draw (`protocols/RANDOMIZATION.md` §1-§5). Pure: values in, values out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::strata::{MemberFacts, UnitFacts, aggregate_cluster, stratify};
use super::{ALGORITHM_ID, RandomizationError, Unit, arm_probabilities, assign, derive_key};
use crate::domain::{Bransje, FylkeCode, Orgnr, Sektor};
use crate::protocol::{BaselineFacts, Exclusion, Protocol, UnitLevel, evaluate};
use crate::register::Firm;

/// One eligible firm in the canonical unit list (`units.csv`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitRow {
    /// The firm.
    pub orgnr: Orgnr,
    /// Its cluster (the overordnet enhet) when the protocol clusters it.
    pub klynge: Option<Orgnr>,
    /// Fylke.
    pub fylke: FylkeCode,
    /// Bransje in the protocol's næring standard.
    pub bransje: Bransje,
    /// Sector.
    pub sektor: Sektor,
    /// Employees.
    pub antall_ansatte: u32,
    /// Baseline-window `(tapte, mulige)` dagsverk, if known.
    pub dagsverk: Option<(f64, f64)>,
}

/// A firm that is not eligible, with every reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excluded {
    /// The firm.
    pub orgnr: Orgnr,
    /// Why.
    pub reasons: Vec<Exclusion>,
}

/// The result of screening a register against a protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Screening {
    /// Eligible firms, sorted by orgnr.
    pub eligible: Vec<UnitRow>,
    /// The others, sorted by orgnr.
    pub excluded: Vec<Excluded>,
}

/// One firm's screening: its baseline, cluster, bransje and verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The baseline used: NAV statistics over the window, else the register's dagsverk.
    pub baseline: Option<BaselineFacts>,
    /// The cluster it is randomized with, if the protocol clusters it.
    pub klynge: Option<Orgnr>,
    /// Its bransje in the protocol's standard.
    pub bransje: Bransje,
    /// Why it is not eligible (empty: eligible).
    pub exclusions: Vec<Exclusion>,
}

/// Screens one firm. Its baseline is its NAV statistics over the baseline window where `stats`
/// has them, else the dagsverk given in the register (taken to cover the whole window).
pub fn verdict(
    protocol: &Protocol,
    firm: &Firm,
    stats: &BTreeMap<Orgnr, BaselineFacts>,
) -> Verdict {
    let window_quarters =
        u32::try_from(protocol.baseline.to - protocol.baseline.from + 1).unwrap_or(0);
    let baseline = stats.get(&firm.orgnr).copied().or_else(|| {
        firm.baseline.map(|b| BaselineFacts {
            tapte: b.tapte,
            mulige: b.mulige,
            quarters: window_quarters,
        })
    });
    let clustered = protocol.unit.level == UnitLevel::OverordnetEnhet
        && (protocol.unit.cluster_sektorer.is_empty()
            || protocol.unit.cluster_sektorer.contains(&firm.sektor));
    Verdict {
        exclusions: evaluate(protocol, firm, baseline.as_ref()),
        baseline,
        klynge: firm.overordnet_enhet.filter(|_| clustered),
        bransje: Bransje::of(&firm.naeringskode, protocol.naering_standard),
    }
}

/// Screens `firms` against `protocol` ([`verdict`] for each).
pub fn screen(
    protocol: &Protocol,
    firms: &[Firm],
    stats: &BTreeMap<Orgnr, BaselineFacts>,
) -> Screening {
    let mut sorted: Vec<&Firm> = firms.iter().collect();
    sorted.sort_by_key(|f| f.orgnr);
    let mut eligible = Vec::new();
    let mut excluded = Vec::new();
    for firm in sorted {
        let v = verdict(protocol, firm, stats);
        if !v.exclusions.is_empty() {
            excluded.push(Excluded {
                orgnr: firm.orgnr,
                reasons: v.exclusions,
            });
            continue;
        }
        eligible.push(UnitRow {
            orgnr: firm.orgnr,
            klynge: v.klynge,
            fylke: firm.fylke,
            bransje: v.bransje,
            sektor: firm.sektor,
            antall_ansatte: firm.antall_ansatte,
            dagsverk: v
                .baseline
                .filter(|b| b.mulige > 0.0)
                .map(|b| (b.tapte, b.mulige)),
        });
    }
    Screening { eligible, excluded }
}

/// What identifies one draw: the protocol, the wave and the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrawHeader {
    /// The protocol's id.
    pub protocol_id: String,
    /// The protocol's content hash.
    pub protocol_hash: String,
    /// The algorithm (`ia-rct/randomization/v1`).
    pub algorithm: String,
    /// The enrollment wave (from 1).
    pub wave: u32,
    /// The seed.
    pub seed: String,
}

/// One firm's assignment (`docs/data-formats.md` §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignmentRow {
    /// The firm.
    pub orgnr: Orgnr,
    /// The arm's id.
    pub arm: String,
    /// The stratum key.
    pub stratum: String,
    /// The cluster, if the firm was randomized with its overordnet enhet.
    pub klynge: Option<Orgnr>,
    /// The wave.
    pub bolge: u32,
    /// The probability of the firm's arm.
    pub sannsynlighet: f64,
    /// When it was drawn (empty offline unless given).
    pub trukket: Option<DateTime<Utc>>,
}

/// A whole draw: header and one row per firm, sorted by orgnr.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    /// What identifies the draw.
    pub header: DrawHeader,
    /// The firms' assignments.
    pub rows: Vec<AssignmentRow>,
    /// The baseline cuts the strata used.
    pub baseline_cuts: Vec<f64>,
}

/// Randomizes the canonical unit list (RANDOMIZATION.md §2-§5).
///
/// # Errors
/// [`RandomizationError`] if there are no units or the protocol's ratios are unusable.
pub fn randomize(
    protocol: &Protocol,
    protocol_hash: &str,
    wave: u32,
    seed: &str,
    units: &[UnitRow],
    drawn_at: Option<DateTime<Utc>>,
) -> Result<Assignment, RandomizationError> {
    // §2: units and clusters.
    let mut clusters: BTreeMap<Orgnr, Vec<MemberFacts>> = BTreeMap::new();
    let mut facts: Vec<UnitFacts> = Vec::new();
    for row in units {
        let member = MemberFacts {
            orgnr: row.orgnr.to_string(),
            fylke: row.fylke,
            bransje: row.bransje,
            sektor: row.sektor,
            employees: u64::from(row.antall_ansatte),
            dagsverk: row.dagsverk,
        };
        match row.klynge {
            Some(parent) => clusters.entry(parent).or_default().push(member),
            None => facts.extend(aggregate_cluster(member.orgnr.clone(), &[member])),
        }
    }
    for (parent, members) in &clusters {
        facts.extend(aggregate_cluster(format!("K{parent}"), members));
    }

    // §3: strata; §4-§5: the draw.
    let stratification = stratify(&protocol.strata, &facts);
    let draw_units: Vec<Unit> = stratification
        .keys
        .iter()
        .map(|(id, stratum)| Unit {
            id: id.clone(),
            stratum: stratum.clone(),
        })
        .collect();
    let ratios: Vec<u32> = protocol.arms.iter().map(|a| a.ratio).collect();
    let probabilities = arm_probabilities(&ratios);
    let draws = assign(derive_key(protocol_hash, wave, seed), &ratios, &draw_units)?;
    let by_unit: BTreeMap<&str, (usize, &str)> = draws
        .iter()
        .map(|d| (d.id.as_str(), (d.arm, d.stratum.as_str())))
        .collect();

    let mut rows = Vec::with_capacity(units.len());
    for row in units {
        let unit_id = match row.klynge {
            Some(parent) => format!("K{parent}"),
            None => row.orgnr.to_string(),
        };
        let Some(&(arm, stratum)) = by_unit.get(unit_id.as_str()) else {
            continue;
        };
        let (Some(arm_spec), Some(p)) = (protocol.arms.get(arm), probabilities.get(arm)) else {
            continue;
        };
        rows.push(AssignmentRow {
            orgnr: row.orgnr,
            arm: arm_spec.id.clone(),
            stratum: stratum.to_owned(),
            klynge: row.klynge,
            bolge: wave,
            sannsynlighet: *p,
            trukket: drawn_at,
        });
    }
    rows.sort_by_key(|r| r.orgnr);
    Ok(Assignment {
        header: DrawHeader {
            protocol_id: protocol.id.clone(),
            protocol_hash: protocol_hash.to_owned(),
            algorithm: ALGORITHM_ID.to_owned(),
            wave,
            seed: seed.to_owned(),
        },
        rows,
        baseline_cuts: stratification.baseline_cuts,
    })
}
