//! Synthetic data for tests, benches, rehearsals and the demo: a firm register that looks like
//! NAV's (the 15 fylker, real næringskoder and sectors, log-normal firm sizes, sick-leave levels by
//! bransje, kommuner as overordnet enheter). Reproducible: the same size and seed give the same
//! register, drawn from its own ChaCha20 stream.
//!
//! [`panel`] adds the register's NAV firm-quarter statistics (with known effects per arm, if asked),
//! streamed to DVH CSV or `virksomhet.json`; [`scenario`] writes a whole simulated trial to a
//! directory, as `ia-rct simulate` does.

use crate::domain::{FYLKER, FylkeCode, Naeringskode, Orgnr, Sektor};
use crate::randomization::{TrialRng, below};
use crate::register::{BaselineDagsverk, Firm};
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

pub mod panel;
pub mod scenario;
pub mod takeup;

pub use panel::{
    ArmEffect, Effects, FirmQuarter, OutputFormat, Panel, PanelError, StatsWriter, baseline_facts,
    write_statistics,
};
pub use scenario::{Scenario, ScenarioReport, Trial, run};

/// Næringskoder (SN2007) with a share of firms, a sector and a typical sick-leave rate (legemeldt,
/// roughly NAV's published levels by bransje, `docs/trial-design.md` §2.2).
const NAERINGER: &[(&str, u32, Sektor, f64)] = &[
    ("88.911", 9, Sektor::Kommunal, 0.080), // barnehager
    ("87.101", 6, Sektor::Kommunal, 0.085), // sykehjem
    ("87.102", 2, Sektor::Kommunal, 0.080), // sykehjem
    ("86.101", 2, Sektor::Statlig, 0.060),  // sykehus
    ("85.201", 6, Sektor::Kommunal, 0.055), // grunnskoler
    ("88.101", 4, Sektor::Kommunal, 0.075), // hjemmetjenester
    ("10.110", 2, Sektor::Privat, 0.058),   // kjøttindustri
    ("10.710", 2, Sektor::Privat, 0.052),   // bakerier
    ("49.311", 2, Sektor::Privat, 0.066),   // rutebuss
    ("41.200", 7, Sektor::Privat, 0.052),   // bygg
    ("42.110", 2, Sektor::Privat, 0.048),   // anlegg
    ("43.210", 6, Sektor::Privat, 0.055),   // elektrikere
    ("47.111", 12, Sektor::Privat, 0.048),  // dagligvare
    ("56.101", 6, Sektor::Privat, 0.045),   // restauranter
    ("62.010", 6, Sektor::Privat, 0.025),   // programvare
    ("69.201", 3, Sektor::Privat, 0.030),   // regnskap
    ("84.110", 3, Sektor::Statlig, 0.045),  // statsforvaltning
    ("81.210", 5, Sektor::Privat, 0.070),   // renhold
    ("52.100", 3, Sektor::Privat, 0.050),   // lager
    ("96.021", 2, Sektor::Privat, 0.050),   // frisører
];

/// Rough shares of firms by fylke (in `FYLKER` order).
const FYLKE_WEIGHTS: [u32; 15] = [14, 9, 5, 5, 6, 14, 5, 7, 5, 3, 6, 12, 9, 3, 2];

fn pick_weighted(rng: &mut TrialRng, weights: impl Iterator<Item = u32> + Clone) -> usize {
    let total: u32 = weights.clone().sum();
    let mut x = below(rng, u64::from(total.max(1)));
    for (i, w) in weights.enumerate() {
        if x < u64::from(w) {
            return i;
        }
        x -= u64::from(w);
    }
    0
}

fn uniform(rng: &mut TrialRng) -> f64 {
    // 53 random bits in [0, 1).
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn normal(rng: &mut TrialRng) -> f64 {
    // Box-Muller.
    let u1 = uniform(rng).max(f64::MIN_POSITIVE);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A distinct valid orgnr for index `i` (8-digit prefixes from a fixed start, skipping those whose
/// check digit would be 10).
fn orgnr(start: u32, i: u32) -> Orgnr {
    let mut prefix = start + i * 11;
    loop {
        if let Some(o) = Orgnr::from_prefix(prefix) {
            return o;
        }
        prefix += 1;
    }
}

/// A synthetic register of `n` virksomheter with baseline dagsverk over four quarters.
///
/// Kommunal firms belong to one of about 25 kommuner per fylke (their overordnet enhet); a third of
/// the private firms belong to one of a few hundred konsern.
pub fn register(n: usize, seed: u64) -> Vec<Firm> {
    let mut key = [0u8; 32];
    key.copy_from_slice(&Sha256::digest(
        format!("ia-rct/simulate/register/{seed}").as_bytes(),
    ));
    let mut rng = TrialRng::from_seed(key);
    let fylker: Vec<FylkeCode> = FYLKER.iter().filter_map(|f| f.code.parse().ok()).collect();
    let mut firms = Vec::with_capacity(n);
    for i in 0..n {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let f = pick_weighted(&mut rng, FYLKE_WEIGHTS.iter().copied());
        let fylke = fylker.get(f).copied().unwrap_or(fylker[0]);
        let k = pick_weighted(&mut rng, NAERINGER.iter().map(|x| x.1));
        let (kode, _, sektor, rate) = NAERINGER[k];
        let employees = (25.0 * (1.1 * normal(&mut rng)).exp())
            .clamp(1.0, 5000.0)
            .round() as u32;
        let mulige = f64::from(employees) * 61.0 * 4.0 * (0.85 + 0.15 * uniform(&mut rng));
        let firm_rate = (rate * (0.45 * normal(&mut rng)).exp()).min(0.6);
        let tapte = (mulige * firm_rate * 1000.0).round() / 1000.0;
        let mulige = (mulige * 1000.0).round() / 1000.0;
        let overordnet_enhet = match sektor {
            Sektor::Kommunal => Some(orgnr(
                90_000_000,
                u32::try_from(f).unwrap_or(0) * 30 + below(&mut rng, 25) as u32,
            )),
            Sektor::Privat if below(&mut rng, 3) == 0 => {
                Some(orgnr(91_000_000, below(&mut rng, 400) as u32))
            }
            _ => None,
        };
        firms.push(Firm {
            orgnr: orgnr(80_000_000, index),
            navn: Some(format!("Virksomhet {i}")),
            fylke,
            kommunenummer: None,
            naeringskode: kode
                .parse::<Naeringskode>()
                .unwrap_or(Naeringskode::UOPPGITT),
            sektor,
            antall_ansatte: employees,
            overordnet_enhet,
            villig: Some(below(&mut rng, 3) > 0),
            baseline: Some(BaselineDagsverk { tapte, mulige }),
            covariates: Default::default(),
        });
    }
    firms
}

/// The header `register_csv` writes.
pub const REGISTER_HEADER: &str = "orgnr,navn,fylke,naringskode,sektor,antall_ansatte,overordnet_enhet,villig,tapte_dagsverk,mulige_dagsverk";

/// Writes a register as CSV in the format of `docs/data-formats.md` §1 (with the baseline columns).
pub fn register_csv(firms: &[Firm]) -> String {
    let mut out = Vec::with_capacity(96 * (firms.len() + 1));
    // Writing to a Vec cannot fail, and every field is UTF-8.
    let _ = write_register_csv(&mut out, firms);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes a register as [`register_csv`] does, streaming to `out`.
///
/// # Errors
/// The writer's error.
pub fn write_register_csv<W: std::io::Write>(mut out: W, firms: &[Firm]) -> std::io::Result<()> {
    writeln!(out, "{REGISTER_HEADER}")?;
    for f in firms {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            f.orgnr,
            f.navn.as_deref().unwrap_or_default(),
            f.fylke,
            f.naeringskode,
            f.sektor.as_str(),
            f.antall_ansatte,
            f.overordnet_enhet
                .map(|o| o.to_string())
                .unwrap_or_default(),
            f.villig.map(|v| v.to_string()).unwrap_or_default(),
            f.baseline.map(|b| b.tapte.to_string()).unwrap_or_default(),
            f.baseline.map(|b| b.mulige.to_string()).unwrap_or_default(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::{RegisterFormat, RegisterOptions, parse_register};

    #[test]
    fn the_register_is_reproducible_valid_and_reads_back() {
        let firms = register(500, 7);
        assert_eq!(firms, register(500, 7));
        assert_ne!(firms, register(500, 8));
        let csv = register_csv(&firms);
        let back = parse_register(
            csv.as_bytes(),
            RegisterFormat::Csv,
            &RegisterOptions::default(),
        )
        .expect("the synthetic register is valid");
        assert_eq!(back, firms);
        let kommunal = firms
            .iter()
            .filter(|f| f.sektor == Sektor::Kommunal)
            .count();
        assert!(kommunal > 100 && kommunal < 300, "{kommunal}");
        assert!(
            firms
                .iter()
                .all(|f| f.overordnet_enhet.is_some() || f.sektor != Sektor::Kommunal)
        );
    }
}

#[cfg(test)]
mod statistics_tests;
