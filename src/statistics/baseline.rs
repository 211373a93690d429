//! Baseline sums per firm over a window of quarters, straight from a statistics file (for eligibility
//! and stratification before randomization).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::Serialize;

use crate::domain::{Orgnr, Quarter};
use crate::protocol::BaselineFacts;
use crate::register::{MAX_STORED_ERRORS, RowError};

use super::{StatsFormat, error, read_stats, sniff};

/// Why a statistics file was refused: every problem found, the first [`MAX_STORED_ERRORS`] listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsErrors {
    /// The first [`MAX_STORED_ERRORS`] problems, in the order found.
    pub errors: Vec<RowError>,
    /// How many problems there are in all (`>= errors.len()`).
    pub total: usize,
}

impl StatsErrors {
    fn push(&mut self, error: RowError) {
        self.total += 1;
        if self.errors.len() < MAX_STORED_ERRORS {
            self.errors.push(error);
        }
    }
}

impl fmt::Display for StatsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.total == 1 { "" } else { "s" };
        write!(f, "{} problem{plural} in the statistics", self.total)?;
        if let Some(first) = self.errors.first() {
            write!(f, "; first: {first}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StatsErrors {}

/// Σ tapte and Σ mulige dagsverk (raw, unrounded) per orgnr over the quarters `from..=to`, with the
/// number of quarters found, from a statistics upload in any [`StatsFormat`] of statistics (detected).
///
/// NAV's rule for a window is a ratio of sums over the quarters present (`docs/nav-data.md` §1.6);
/// [`BaselineFacts::percent`] gives it. Rows outside the window are read (and checked) but not summed.
///
/// # Errors
/// [`StatsErrors`] with every problem if any row is invalid, a firm has the same quarter twice, the
/// file is metadata, or it cannot be read. The file is used whole or not at all.
///
/// # Examples
/// ```
/// use ia_rct::domain::Quarter;
/// use ia_rct::statistics::baseline_sums;
/// let csv = "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n\
///            974760673,2024,1,5,100,40\n974760673,2024,2,15,100,40\n974760673,2025,1,50,100,40\n";
/// let sums = baseline_sums(csv.as_bytes(), Quarter::new(2024, 1).unwrap(), Quarter::new(2024, 4).unwrap()).unwrap();
/// let facts = &sums[&"974760673".parse().unwrap()];
/// assert_eq!((facts.tapte, facts.mulige, facts.quarters), (20.0, 200.0, 2));
/// ```
pub fn baseline_sums<R: Read>(
    reader: R,
    from: Quarter,
    to: Quarter,
) -> Result<BTreeMap<Orgnr, BaselineFacts>, StatsErrors> {
    let mut errors = StatsErrors {
        errors: Vec::new(),
        total: 0,
    };
    let (format, reader) = sniff(reader).map_err(|e| StatsErrors {
        errors: vec![error(0, "", "", format!("the file could not be read: {e}"))],
        total: 1,
    })?;
    if matches!(format, StatsFormat::MetadataCsv | StatsFormat::MetadataJson) {
        errors.push(error(
            0,
            "",
            "",
            "this is NAV's virksomhet_metadata (sector and næring), not sickness statistics; give virksomhet.json or the DVH virksomhet view",
        ));
        return Err(errors);
    }
    // Per orgnr: the sums and, for each quarter summed, its row (to report a repeat).
    let mut sums: BTreeMap<Orgnr, (BaselineFacts, BTreeMap<Quarter, usize>)> = BTreeMap::new();
    let mut rows = read_stats(reader, format);
    while let Some(item) = rows.next() {
        let row = match item {
            Ok(row) => row,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if row.quarter < from || row.quarter > to {
            continue;
        }
        let (facts, quarters) = sums.entry(row.orgnr).or_insert_with(|| {
            (
                BaselineFacts {
                    tapte: 0.0,
                    mulige: 0.0,
                    quarters: 0,
                },
                BTreeMap::new(),
            )
        });
        if let Some(first) = quarters.get(&row.quarter) {
            errors.push(error(
                rows.last_row(),
                "orgnr",
                &row.orgnr.to_string(),
                format!(
                    "{} {} is given twice (also row {first}); NAV sends one row per virksomhet and quarter",
                    row.orgnr, row.quarter
                ),
            ));
            continue;
        }
        quarters.insert(row.quarter, rows.last_row());
        facts.tapte += row.tapte_dagsverk;
        facts.mulige += row.mulige_dagsverk;
        facts.quarters += 1;
    }
    if errors.total > 0 {
        return Err(errors);
    }
    Ok(sums
        .into_iter()
        .map(|(orgnr, (facts, _))| (orgnr, facts))
        .collect())
}
