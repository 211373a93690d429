//! Simulated take-up for `ia-rct demo`: what the fylker would report to Fia after a draw. Every
//! firm offered help (not in the control arm) is contacted in the randomization quarter; a share
//! of them (`rate`) starts a samarbeid three weeks later (`AKTIV`, so it has received help) and
//! completes it five months after that; the others decline (`TAKKET_NEI`). The draws come from
//! ChaCha20 keyed by the seed, one stream per firm (its row in the assignment, sorted by orgnr),
//! so the file does not depend on anything but the seed and the assignment.

use chrono::{Duration, NaiveDate};
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::randomization::TrialRng;
use crate::randomization::plan::AssignmentRow;

/// Take-up events (docs/data-formats.md §3, `orgnr,status,dato,arbeidsform_levert,timer`) for
/// every firm of `rows` outside `control`, from `start` on.
pub fn takeup_csv(
    rows: &[AssignmentRow],
    control: &str,
    seed: u64,
    start: NaiveDate,
    rate: f64,
) -> String {
    let key: [u8; 32] = Sha256::digest(format!("ia-rct/simulate/takeup/{seed}").as_bytes()).into();
    let mut sorted: Vec<&AssignmentRow> = rows.iter().filter(|r| r.arm != control).collect();
    sorted.sort_by_key(|r| r.orgnr);
    let mut out = String::from("orgnr,status,dato,arbeidsform_levert,timer\n");
    for (i, row) in sorted.into_iter().enumerate() {
        let mut rng = TrialRng::from_seed(key);
        rng.set_stream(i as u64);
        let u = super::uniform(&mut rng);
        let contacted = start + Duration::days(i64::from((rng.next_u32() % 60) as u16));
        out.push_str(&format!("{},KONTAKTET,{contacted},,1\n", row.orgnr));
        if u < rate {
            let active = contacted + Duration::days(21);
            let done = active + Duration::days(150);
            out.push_str(&format!("{},AKTIV,{active},{},6\n", row.orgnr, row.arm));
            out.push_str(&format!("{},FULLFØRT,{done},{},12\n", row.orgnr, row.arm));
        } else {
            let declined = contacted + Duration::days(14);
            out.push_str(&format!("{},TAKKET_NEI,{declined},,0.5\n", row.orgnr));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Orgnr;

    fn rows(n: usize) -> Vec<AssignmentRow> {
        (0..n)
            .map(|i| AssignmentRow {
                orgnr: super::super::orgnr(80_000_000, i as u32),
                arm: if i % 4 == 0 { "kontroll" } else { "tiltak" }.to_owned(),
                stratum: "s".to_owned(),
                klynge: None,
                bolge: 1,
                sannsynlighet: 0.5,
                trukket: None,
            })
            .collect()
    }

    #[test]
    fn every_offered_firm_is_contacted_and_a_share_is_helped() {
        let rows = rows(4000);
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let csv = takeup_csv(&rows, "kontroll", 7, start, 0.6);
        assert_eq!(
            csv,
            takeup_csv(&rows, "kontroll", 7, start, 0.6),
            "reproducible"
        );
        assert_ne!(csv, takeup_csv(&rows, "kontroll", 8, start, 0.6));
        let events = crate::takeup::parse_takeup(csv.as_bytes()).expect("valid take-up");
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        crate::takeup::validate_history(&[], &events, today).expect("valid histories");
        let control: Vec<Orgnr> = rows
            .iter()
            .filter(|r| r.arm == "kontroll")
            .map(|r| r.orgnr)
            .collect();
        assert!(events.iter().all(|e| !control.contains(&e.orgnr)));
        let summary = crate::takeup::summarize(&events);
        assert_eq!(summary.len(), 3000, "every offered firm");
        let helped = summary.values().filter(|c| c.received).count() as f64 / 3000.0;
        // 0.6 within 4 binomial standard errors (0.009).
        assert!((helped - 0.6).abs() < 0.036, "{helped}");
    }
}
