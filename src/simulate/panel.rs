//! Synthetic NAV firm-quarter sickness statistics (`docs/data-formats.md` §2) for a firm register: what the
//! DVH view `agg_ia_sykefravar__virksomhet` would hold for these firms over a range of quarters,
//! before NAV masks anything (quarters with fewer than 5 persons are kept: this is the unmasked data).
//!
//! The model, per firm `i` and quarter `t`:
//! - **Size**: `s_it = employees_i · exp(w_it)`, `w` a mean-reverting AR(1) around 0 (ρ 0.9, stationary
//!   sd ≈ 7 %). `antpers = round(s_it · (1 + 0.02 z))`, at least 1; `muligedv = s_it · 61 · part-time
//!   factor · (1 + 0.01 z)`, rounded to 6 decimals like DVH's `number(20,6)`.
//! - **Latent rate**: `μ_it = level_i · season(q) + a_it + g_pt (+ effect/100 when treated)`, where
//!   `level_i` is the bransje level (`NAERINGER`) times a log-normal firm effect (taken from the
//!   register's own baseline dagsverk when it has them, so the register and the statistics agree),
//!   `season` is NAV's pattern (Q1 high, Q3 low), `a_it` an AR(1) firm shock (ρ 0.6, innovation sd
//!   15 % of the firm's level) and `g_pt` an AR(1) shock shared by all firms with the same overordnet
//!   enhet (ρ 0.6, innovation sd 0.3 percentage points).
//! - **Observed rate**: `μ_it + sd_it · z`, `sd_it² = 0.4 · μ(1 - μ) / antpers` (binomial-like: it
//!   shrinks with the firm's size), clamped to `[0, 1]`; `taptedv = rate · muligedv`, 6 decimals.
//! - **Unbalanced panel**: about 1.5 % of firms start late, 1.5 % close early, and 0.3 % of the
//!   remaining firm-quarters are missing at random (≈ 1.8 % of firm-quarters missing in all).
//!
//! Everything is drawn from ChaCha20 ([`TrialRng`]) with one key per purpose (firm constants,
//! lifecycle, size, absence, overordnet-enhet shocks), derived from the seed, and one stream per firm
//! (its orgnr), so a firm's path depends only on the seed, the firm and the quarter range, not on
//! which other firms are in the register, and never on an effect except through the effect itself.
//!
//! Rows come out firm by firm (sorted by orgnr), quarters ascending, generated on the fly: memory is
//! bounded by the number of firms, not of rows.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::{NAERINGER, normal, uniform};
use crate::domain::{Naeringskode, Orgnr, Quarter};
use crate::protocol::BaselineFacts;
use crate::randomization::plan::Assignment;
use crate::randomization::{TrialRng, below, stream};
use crate::register::Firm;
use crate::statistics::dvh_percent;

/// Average workdays (dagsverk) per employee and quarter.
pub const WORKDAYS_PER_QUARTER: f64 = 61.0;
/// Seasonal factors on the firm's level for kvartal 1-4: NAV's pattern of a high first quarter, a
/// low third, and the second and fourth in between (mean 1).
pub const SEASONALITY: [f64; 4] = [1.10, 0.97, 0.90, 1.03];
/// Persistence of the firm's absence shocks.
pub const AR_RHO: f64 = 0.6;
/// Innovation sd of the firm's absence shock, as a share of the firm's level.
pub const AR_INNOVATION: f64 = 0.15;
/// Persistence of the shock shared by firms with the same overordnet enhet.
pub const PARENT_RHO: f64 = 0.6;
/// Innovation sd of the shared shock (a rate: 0.003 is 0.3 percentage points).
pub const PARENT_INNOVATION: f64 = 0.003;
/// Observation noise: `var = BINOMIAL_FACTOR · μ(1 - μ) / antpers` (below 1 because a person's
/// absence in a quarter is a fraction of days, not all or nothing).
pub const BINOMIAL_FACTOR: f64 = 0.4;
/// Share of firms that start after the first quarter.
pub const LATE_START: f64 = 0.015;
/// Share of firms that close before the last quarter.
pub const CLOSES: f64 = 0.015;
/// Share of the other firm-quarters missing at random.
pub const GAP: f64 = 0.003;
/// Persistence and innovation sd of log firm size.
const SIZE_RHO: f64 = 0.9;
const SIZE_INNOVATION: f64 = 0.03;
/// Bransje level for a næringskode not in the table.
const DEFAULT_LEVEL: f64 = 0.055;

/// The columns of the DVH CSV written.
pub const DVH_HEADER: &str = "orgnr,arstall,kvartal,taptedv,muligedv,antpers";

/// Why a panel cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PanelError {
    /// No quarters asked for.
    #[error("at least one quarter is needed")]
    NoQuarters,
    /// The range runs past the last quarter a [`Quarter`] can be.
    #[error("{quarters} quarters from {first} run past the year 2100")]
    OutOfRange {
        /// The first quarter.
        first: Quarter,
        /// How many.
        quarters: u32,
    },
}

/// One simulated firm-quarter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirmQuarter {
    /// The firm.
    pub orgnr: Orgnr,
    /// The quarter.
    pub quarter: Quarter,
    /// Tapte dagsverk (6 decimals), the effect included.
    pub tapte: f64,
    /// Mulige dagsverk (6 decimals, > 0, >= `tapte`).
    pub mulige: f64,
    /// Antall personer (>= 1; below 5 NAV would mask the quarter).
    pub antpers: u32,
    /// Tapte dagsverk had the firm not been treated: the untreated potential outcome, drawn with the
    /// same noise. Equal to `tapte` where no effect applies.
    pub tapte_untreated: f64,
    /// The index (in [`Effects::arms`]) of the firm's arm, from the effect's first quarter on.
    pub arm: Option<usize>,
}

/// One arm's additive effect.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmEffect {
    /// The arm's id.
    pub arm: String,
    /// The effect on the latent sick-leave rate, in percentage points (e.g. -0.8).
    pub percentage_points: f64,
}

/// Known effects: each assigned firm's latent rate moves by its arm's effect from `from` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    /// The first quarter with the effect (the randomization quarter).
    pub from: Quarter,
    /// The arms, in order of first appearance in the assignment, then any others given.
    pub arms: Vec<ArmEffect>,
    arm_of: HashMap<Orgnr, usize>,
}

impl Effects {
    /// Effects for `assigned` firms (orgnr, arm id), with `effects` in percentage points per arm id;
    /// an arm without an entry has effect 0.
    pub fn new<'a>(
        from: Quarter,
        assigned: impl IntoIterator<Item = (Orgnr, &'a str)>,
        effects: &BTreeMap<String, f64>,
    ) -> Effects {
        let mut arms: Vec<ArmEffect> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut arm_of = HashMap::new();
        let mut slot = |arm: &str, arms: &mut Vec<ArmEffect>| -> usize {
            if let Some(&k) = index.get(arm) {
                return k;
            }
            arms.push(ArmEffect {
                arm: arm.to_owned(),
                percentage_points: effects.get(arm).copied().unwrap_or(0.0),
            });
            index.insert(arm.to_owned(), arms.len() - 1);
            arms.len() - 1
        };
        for (orgnr, arm) in assigned {
            let k = slot(arm, &mut arms);
            arm_of.insert(orgnr, k);
        }
        for arm in effects.keys() {
            slot(arm, &mut arms);
        }
        Effects { from, arms, arm_of }
    }

    /// Effects for the firms of an assignment.
    pub fn from_assignment(
        from: Quarter,
        assignment: &Assignment,
        effects: &BTreeMap<String, f64>,
    ) -> Effects {
        Effects::new(
            from,
            assignment.rows.iter().map(|r| (r.orgnr, r.arm.as_str())),
            effects,
        )
    }

    /// The firm's arm index and effect (percentage points), if it was assigned.
    pub fn of(&self, orgnr: Orgnr) -> Option<(usize, f64)> {
        let k = *self.arm_of.get(&orgnr)?;
        Some((k, self.arms.get(k)?.percentage_points))
    }
}

/// A firm's constants.
#[derive(Debug, Clone, Copy)]
struct FirmParams {
    orgnr: Orgnr,
    employees: f64,
    level: f64,
    part_time: f64,
    parent: Option<usize>,
}

/// The ChaCha20 keys, one per purpose.
#[derive(Debug, Clone, Copy)]
struct Keys {
    firm: [u8; 32],
    life: [u8; 32],
    size: [u8; 32],
    absence: [u8; 32],
    parent: [u8; 32],
}

fn key(seed: u64, purpose: &str) -> [u8; 32] {
    Sha256::digest(format!("ia-rct/simulate/statistics/{purpose}/{seed}").as_bytes()).into()
}

/// Rounds to 6 decimals (DVH's `number(20,6)`).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The simulated statistics of a register over a range of quarters, generated on demand.
#[derive(Debug, Clone)]
pub struct Panel {
    first: Quarter,
    quarters: u32,
    keys: Keys,
    firms: Vec<FirmParams>,
    /// The shared shock of each overordnet enhet, one value per quarter.
    parents: Vec<Vec<f64>>,
}

impl Panel {
    /// The panel of `firms` (sorted by orgnr; a repeated orgnr is kept once) over `quarters` quarters
    /// from `first`, drawn from `seed`.
    ///
    /// # Errors
    /// [`PanelError`] if there are no quarters or the range runs past 2100.
    pub fn new(
        firms: &[Firm],
        seed: u64,
        first: Quarter,
        quarters: u32,
    ) -> Result<Panel, PanelError> {
        if quarters == 0 {
            return Err(PanelError::NoQuarters);
        }
        let span =
            i32::try_from(quarters - 1).map_err(|_| PanelError::OutOfRange { first, quarters })?;
        if first.plus(span).is_none() {
            return Err(PanelError::OutOfRange { first, quarters });
        }
        let keys = Keys {
            firm: key(seed, "firm"),
            life: key(seed, "lifecycle"),
            size: key(seed, "size"),
            absence: key(seed, "absence"),
            parent: key(seed, "overordnet-enhet"),
        };
        let mut sorted: Vec<&Firm> = firms.iter().collect();
        sorted.sort_by_key(|f| f.orgnr);
        sorted.dedup_by_key(|f| f.orgnr);

        let mut parent_index: BTreeMap<Orgnr, usize> = BTreeMap::new();
        for firm in &sorted {
            if let Some(parent) = firm.overordnet_enhet {
                let next = parent_index.len();
                parent_index.entry(parent).or_insert(next);
            }
        }
        let mut parents = vec![Vec::new(); parent_index.len()];
        for (parent, &k) in &parent_index {
            let mut rng = stream(keys.parent, u64::from(parent.as_u32()));
            let stationary = PARENT_INNOVATION / (1.0 - PARENT_RHO * PARENT_RHO).sqrt();
            let mut g = stationary * normal(&mut rng);
            let mut path = Vec::with_capacity(quarters as usize);
            for t in 0..quarters {
                if t > 0 {
                    g = PARENT_RHO * g + PARENT_INNOVATION * normal(&mut rng);
                }
                path.push(g);
            }
            parents[k] = path;
        }

        let table: Vec<(Naeringskode, f64)> = NAERINGER
            .iter()
            .filter_map(|(kode, _, _, rate)| Some((kode.parse().ok()?, *rate)))
            .collect();
        let params = sorted
            .iter()
            .map(|firm| {
                let employees = f64::from(firm.antall_ansatte.max(1));
                let (level, part_time) = match firm.baseline {
                    Some(b) if b.mulige > 0.0 => (
                        (b.tapte / b.mulige).clamp(0.0, 0.6),
                        (b.mulige / (employees * 4.0 * WORKDAYS_PER_QUARTER)).clamp(0.2, 1.0),
                    ),
                    _ => {
                        let bransje = table
                            .iter()
                            .find(|(k, _)| *k == firm.naeringskode)
                            .map_or(DEFAULT_LEVEL, |(_, r)| *r);
                        let mut rng = stream(keys.firm, u64::from(firm.orgnr.as_u32()));
                        let level = (bransje * (0.45 * normal(&mut rng)).exp()).min(0.6);
                        (level, 0.85 + 0.15 * uniform(&mut rng))
                    }
                };
                FirmParams {
                    orgnr: firm.orgnr,
                    employees,
                    level,
                    part_time,
                    parent: firm
                        .overordnet_enhet
                        .and_then(|p| parent_index.get(&p).copied()),
                }
            })
            .collect();
        Ok(Panel {
            first,
            quarters,
            keys,
            firms: params,
            parents,
        })
    }

    /// The number of firms.
    pub fn firms(&self) -> usize {
        self.firms.len()
    }

    /// The number of quarters.
    pub fn quarters(&self) -> u32 {
        self.quarters
    }

    /// The first quarter.
    pub fn first(&self) -> Quarter {
        self.first
    }

    /// The last quarter.
    pub fn last(&self) -> Quarter {
        self.quarter(self.quarters - 1)
    }

    fn quarter(&self, t: u32) -> Quarter {
        i32::try_from(t)
            .ok()
            .and_then(|t| self.first.plus(t))
            .unwrap_or(self.first)
    }

    /// Every firm-quarter, firm by firm (by orgnr), quarters ascending, with `effects` if given.
    pub fn rows<'a>(&'a self, effects: Option<&'a Effects>) -> Rows<'a> {
        self.rows_through(effects, self.last())
    }

    /// As [`Panel::rows`], up to and including the quarter `last` (quicker when only the first
    /// quarters are needed; the rows are the same as in the whole panel).
    pub fn rows_through<'a>(&'a self, effects: Option<&'a Effects>, last: Quarter) -> Rows<'a> {
        let upto = u32::try_from((last - self.first) + 1)
            .unwrap_or(0)
            .min(self.quarters);
        Rows {
            panel: self,
            effects,
            upto,
            next_firm: 0,
            buffer: Vec::with_capacity(upto as usize),
            position: 0,
        }
    }

    /// Generates quarters `0..upto` of firm `i` into `out`.
    fn generate(&self, i: usize, upto: u32, effects: Option<&Effects>, out: &mut Vec<FirmQuarter>) {
        let Some(p) = self.firms.get(i) else {
            return;
        };
        let id = u64::from(p.orgnr.as_u32());
        let total = self.quarters;
        let mut life: TrialRng = stream(self.keys.life, id);
        let mut size: TrialRng = stream(self.keys.size, id);
        let mut absence: TrialRng = stream(self.keys.absence, id);

        // Lifecycle: a late start in 1..T-1 and an end (exclusive) in 1..T-1, always drawn.
        let positions = u64::from(total.max(2) - 1);
        let starts_late = uniform(&mut life) < LATE_START && total > 1;
        let start_at = below(&mut life, positions) as u32 + 1;
        let closes = uniform(&mut life) < CLOSES && total > 1;
        let end_at = below(&mut life, positions) as u32 + 1;
        let begin = if starts_late { start_at } else { 0 };
        let mut end = if closes { end_at } else { total };
        if end <= begin {
            end = total;
        }

        let treatment = effects.and_then(|e| e.of(p.orgnr).map(|(k, pp)| (e.from, k, pp)));
        let parent = p.parent.and_then(|k| self.parents.get(k));
        let ar_stationary = AR_INNOVATION / (1.0 - AR_RHO * AR_RHO).sqrt();
        let size_stationary = SIZE_INNOVATION / (1.0 - SIZE_RHO * SIZE_RHO).sqrt();
        let mut w = size_stationary * normal(&mut size);
        let mut a = ar_stationary * p.level * normal(&mut absence);
        for t in 0..upto.min(total) {
            // Draws in a fixed order and number per quarter, whether or not the row is kept.
            let gap = uniform(&mut life) < GAP;
            if t > 0 {
                w = SIZE_RHO * w + SIZE_INNOVATION * normal(&mut size);
                a = AR_RHO * a + AR_INNOVATION * p.level * normal(&mut absence);
            }
            let z_mulige = normal(&mut size);
            let z_persons = normal(&mut size);
            let z_rate = normal(&mut absence);
            if gap || t < begin || t >= end {
                continue;
            }
            let quarter = self.quarter(t);
            let persons = p.employees * w.exp();
            let antpers = (persons * (1.0 + 0.02 * z_persons)).round().max(1.0) as u32;
            let mulige =
                round6(persons * WORKDAYS_PER_QUARTER * p.part_time * (1.0 + 0.01 * z_mulige))
                    .max(1e-6);
            let season = SEASONALITY
                .get(usize::from(quarter.quarter()).saturating_sub(1))
                .copied()
                .unwrap_or(1.0);
            let shared = parent
                .and_then(|g| g.get(t as usize))
                .copied()
                .unwrap_or(0.0);
            let mu = p.level * season + a + shared;
            let m = mu.clamp(0.0005, 0.9995);
            let noise = (BINOMIAL_FACTOR * m * (1.0 - m) / f64::from(antpers)).sqrt() * z_rate;
            let tapte_of = |rate: f64| round6(rate.clamp(0.0, 1.0) * mulige).min(mulige);
            let tapte_untreated = tapte_of(mu + noise);
            let (tapte, arm) = match treatment {
                Some((from, k, pp)) if quarter >= from => {
                    (tapte_of(mu + pp / 100.0 + noise), Some(k))
                }
                _ => (tapte_untreated, None),
            };
            out.push(FirmQuarter {
                orgnr: p.orgnr,
                quarter,
                tapte,
                mulige,
                antpers,
                tapte_untreated,
                arm,
            });
        }
    }
}

/// The rows of a [`Panel`], generated one firm at a time.
#[derive(Debug)]
pub struct Rows<'a> {
    panel: &'a Panel,
    effects: Option<&'a Effects>,
    upto: u32,
    next_firm: usize,
    buffer: Vec<FirmQuarter>,
    position: usize,
}

impl Iterator for Rows<'_> {
    type Item = FirmQuarter;

    fn next(&mut self) -> Option<FirmQuarter> {
        loop {
            if let Some(row) = self.buffer.get(self.position) {
                self.position += 1;
                return Some(*row);
            }
            if self.next_firm >= self.panel.firms.len() {
                return None;
            }
            self.buffer.clear();
            self.position = 0;
            self.panel
                .generate(self.next_firm, self.upto, self.effects, &mut self.buffer);
            self.next_firm += 1;
        }
    }
}

impl std::iter::FusedIterator for Rows<'_> {}

/// Baseline sums per firm over `from..=to`, exactly as [`crate::statistics::baseline_sums`] computes
/// them from the written statistics (the same values added in the same order), for the firms with at
/// least one row in the window.
pub fn baseline_facts(
    panel: &Panel,
    effects: Option<&Effects>,
    from: Quarter,
    to: Quarter,
) -> BTreeMap<Orgnr, BaselineFacts> {
    let mut out: BTreeMap<Orgnr, BaselineFacts> = BTreeMap::new();
    if to < panel.first() {
        return out;
    }
    for row in panel.rows_through(effects, to.min(panel.last())) {
        if row.quarter < from || row.quarter > to {
            continue;
        }
        let facts = out.entry(row.orgnr).or_insert(BaselineFacts {
            tapte: 0.0,
            mulige: 0.0,
            quarters: 0,
        });
        facts.tapte += row.tapte;
        facts.mulige += row.mulige;
        facts.quarters += 1;
    }
    out
}

/// The shape of the statistics written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// The DVH view's CSV: `orgnr,arstall,kvartal,taptedv,muligedv,antpers`.
    DvhCsv,
    /// NAV's `virksomhet.json` rows as a JSON array (with `prosent` as DVH rounds it and
    /// `rectype` "2").
    VirksomhetJson,
}

impl OutputFormat {
    /// The file name the simulation uses.
    pub fn file_name(self) -> &'static str {
        match self {
            OutputFormat::DvhCsv => "statistics.csv",
            OutputFormat::VirksomhetJson => "statistics.json",
        }
    }
}

/// Writes firm-quarters as NAV statistics, one row at a time. Numbers are written with Rust's
/// shortest round-trip formatting, so they read back as exactly the same `f64`.
#[derive(Debug)]
pub struct StatsWriter<W: Write> {
    out: W,
    format: OutputFormat,
    rows: u64,
}

impl<W: Write> StatsWriter<W> {
    /// Starts the file (the CSV header, or the JSON array's `[`).
    ///
    /// # Errors
    /// The writer's error.
    pub fn new(mut out: W, format: OutputFormat) -> io::Result<StatsWriter<W>> {
        match format {
            OutputFormat::DvhCsv => writeln!(out, "{DVH_HEADER}")?,
            OutputFormat::VirksomhetJson => out.write_all(b"[")?,
        }
        Ok(StatsWriter {
            out,
            format,
            rows: 0,
        })
    }

    /// Writes one row.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write(&mut self, row: &FirmQuarter) -> io::Result<()> {
        let (year, kvartal) = (row.quarter.year(), row.quarter.quarter());
        match self.format {
            OutputFormat::DvhCsv => writeln!(
                self.out,
                "{},{year},{kvartal},{},{},{}",
                row.orgnr, row.tapte, row.mulige, row.antpers
            )?,
            OutputFormat::VirksomhetJson => {
                let separator = if self.rows == 0 { "\n" } else { ",\n" };
                write!(
                    self.out,
                    "{separator}{{\"årstall\":{year},\"kvartal\":{kvartal},\"orgnr\":\"{}\",",
                    row.orgnr
                )?;
                if let Some(p) = dvh_percent(row.tapte, row.mulige) {
                    write!(self.out, "\"prosent\":{p},")?;
                }
                write!(
                    self.out,
                    "\"tapteDagsverk\":{},\"muligeDagsverk\":{},\"antallPersoner\":{},\"rectype\":\"2\"}}",
                    row.tapte, row.mulige, row.antpers
                )?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Ends the file and flushes; returns the writer and the number of rows.
    ///
    /// # Errors
    /// The writer's error.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.format == OutputFormat::VirksomhetJson {
            self.out.write_all(b"\n]\n")?;
        }
        self.out.flush()?;
        Ok((self.out, self.rows))
    }
}

/// Writes every row of the panel (with `effects`, if given) as NAV statistics; returns the rows
/// written.
///
/// # Errors
/// The writer's error.
pub fn write_statistics<W: Write>(
    panel: &Panel,
    effects: Option<&Effects>,
    format: OutputFormat,
    out: W,
) -> io::Result<u64> {
    let mut writer = StatsWriter::new(out, format)?;
    for row in panel.rows(effects) {
        writer.write(&row)?;
    }
    writer.finish().map(|(_, rows)| rows)
}
