//! Whether a firm may be enrolled under a protocol, and if not, every reason why.

use serde::Serialize;

use super::{Protocol, Thresholds};
use crate::domain::Bransje;
use crate::register::Firm;

/// A firm's baseline: sums of tapte and mulige dagsverk over the protocol's baseline window, and
/// how many of the window's quarters they cover.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselineFacts {
    /// Σ tapte dagsverk.
    pub tapte: f64,
    /// Σ mulige dagsverk.
    pub mulige: f64,
    /// Quarters of the window with statistics.
    pub quarters: u32,
}

impl BaselineFacts {
    /// `100 * tapte / mulige`: NAV's ratio of sums over the window.
    pub fn percent(&self) -> Option<f64> {
        (self.mulige > 0.0).then(|| 100.0 * self.tapte / self.mulige)
    }

    /// Tapte dagsverk per year: `tapte * 4 / quarters` (the window annualized over the quarters
    /// with statistics).
    pub fn lost_per_year(&self) -> Option<f64> {
        (self.quarters > 0).then(|| self.tapte * 4.0 / f64::from(self.quarters))
    }
}

/// One reason a firm is not eligible.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Exclusion {
    /// A stable code: `fylke`, `sektor`, `bransje`, `naeringskode`, `ikke_villig`,
    /// `min_employees`, `min_baseline_percent`, `min_lost_workdays_per_year`, `no_baseline`,
    /// `any_of`.
    pub code: String,
    /// The reason in words.
    pub message: String,
}

fn exclusion(code: &str, message: String) -> Exclusion {
    Exclusion {
        code: code.to_owned(),
        message,
    }
}

/// Which thresholds in a set fail, as exclusions.
fn failed(t: &Thresholds, firm: &Firm, baseline: Option<&BaselineFacts>) -> Vec<Exclusion> {
    let mut out = Vec::new();
    if let Some(min) = t.min_employees
        && firm.antall_ansatte < min
    {
        out.push(exclusion(
            "min_employees",
            format!("{} employees, fewer than {min}", firm.antall_ansatte),
        ));
    }
    if let Some(min) = t.min_baseline_percent {
        match baseline.and_then(BaselineFacts::percent) {
            Some(p) if p >= min => {}
            Some(p) => out.push(exclusion(
                "min_baseline_percent",
                format!("baseline sick leave {p:.2} %, below {min} %"),
            )),
            None => out.push(exclusion(
                "no_baseline",
                format!("no baseline statistics to check sick leave >= {min} %"),
            )),
        }
    }
    if let Some(min) = t.min_lost_workdays_per_year {
        match baseline.and_then(BaselineFacts::lost_per_year) {
            Some(d) if d >= min => {}
            Some(d) => out.push(exclusion(
                "min_lost_workdays_per_year",
                format!("{d:.1} lost workdays a year, fewer than {min}"),
            )),
            None => out.push(exclusion(
                "no_baseline",
                format!("no baseline statistics to check lost workdays >= {min} a year"),
            )),
        }
    }
    out
}

/// Every reason `firm` is not eligible under `protocol` (empty: eligible).
pub fn evaluate(
    protocol: &Protocol,
    firm: &Firm,
    baseline: Option<&BaselineFacts>,
) -> Vec<Exclusion> {
    let e = &protocol.eligibility;
    let mut out = Vec::new();
    if !e.fylker.is_empty() && !e.fylker.contains(&firm.fylke) {
        out.push(exclusion(
            "fylke",
            format!("fylke {} is not in the trial", firm.fylke),
        ));
    }
    if !e.sektorer.is_empty() && !e.sektorer.contains(&firm.sektor) {
        out.push(exclusion(
            "sektor",
            format!("sector {} is not in the trial", firm.sektor.as_str()),
        ));
    }
    let bransje = Bransje::of(&firm.naeringskode, protocol.naering_standard);
    if !e.bransjer.is_empty() && !e.bransjer.contains(&bransje) {
        out.push(exclusion(
            "bransje",
            format!(
                "næringskode {} is in bransje {}, which is not in the trial",
                firm.naeringskode,
                bransje.as_str()
            ),
        ));
    }
    if !e.naeringskoder.is_empty()
        && !e
            .naeringskoder
            .iter()
            .any(|p| firm.naeringskode.as_str().starts_with(p.as_str()))
    {
        out.push(exclusion(
            "naeringskode",
            format!(
                "næringskode {} is not in the trial's list",
                firm.naeringskode
            ),
        ));
    }
    if e.require_villig && firm.villig != Some(true) {
        out.push(exclusion(
            "ikke_villig",
            "the firm has not agreed to take part (villig = true)".to_owned(),
        ));
    }
    out.extend(failed(&e.required, firm, baseline));
    if !e.any_of.is_empty() {
        let per_set: Vec<Vec<Exclusion>> =
            e.any_of.iter().map(|t| failed(t, firm, baseline)).collect();
        if per_set.iter().all(|f| !f.is_empty()) {
            let why: Vec<String> = per_set
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let reasons: Vec<&str> = f.iter().map(|x| x.message.as_str()).collect();
                    format!("set {}: {}", i + 1, reasons.join(", "))
                })
                .collect();
            out.push(exclusion(
                "any_of",
                format!("meets none of the threshold sets ({})", why.join("; ")),
            ));
        }
    }
    out
}
