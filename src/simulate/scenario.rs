//! A whole simulated trial on disk, as `ia-rct simulate` writes it: a register (`register.csv`), its
//! NAV statistics (`statistics.csv` or `.json`), and, with a protocol, the assignment `ia-rct assign`
//! would draw from those two files (`assignment.csv`, `seed.txt`), with known effects applied to
//! the assigned firms from the randomization quarter on.
//!
//! The draw needs the baseline, which comes from the statistics, and the statistics need the draw
//! (for the effects). The protocol requires the baseline window to end before the randomization
//! quarter, and no effect applies before it, so the baseline is computed first from a pass over the
//! panel without effects; it equals what `ia-rct assign --stats statistics.csv` computes from the
//! written file, value for value.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::panel::{Effects, OutputFormat, Panel, StatsWriter, baseline_facts};
use super::{register, write_register_csv};
use crate::domain::Quarter;
use crate::protocol::Protocol;
use crate::randomization::files::write_assignment;
use crate::randomization::plan::{randomize, screen};
use crate::statistics::MASKING_MIN_PERSONS;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Firms in the register.
    pub firms: usize,
    /// The seed of the register and the statistics.
    pub seed: u64,
    /// The first quarter of statistics.
    pub first: Quarter,
    /// How many quarters.
    pub quarters: u32,
    /// The statistics' shape.
    pub format: OutputFormat,
    /// A draw and effects, if any.
    pub trial: Option<Trial>,
}

/// The draw: the protocol, its seed and wave, and the effects per arm.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The protocol (eligibility, strata, arms, baseline window, randomization quarter).
    pub protocol: Protocol,
    /// The draw's seed (any string `check_seed` accepts).
    pub seed: String,
    /// The enrollment wave (from 1).
    pub wave: u32,
    /// Effects in percentage points per arm id; arms left out have none.
    pub effects: BTreeMap<String, f64>,
}

impl Trial {
    /// The effects per arm from `--effect arm=value` pairs, checked against the protocol: every arm
    /// must be one of its arms, not the control arm (effects are relative to it), and given once.
    ///
    /// # Errors
    /// The first pair that breaks one of these rules, naming the arm and the protocol's arms.
    pub fn effects_for(
        protocol: &Protocol,
        given: &[(String, f64)],
    ) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut effects = BTreeMap::new();
        for (arm, value) in given {
            let Some(spec) = protocol.arm(arm) else {
                anyhow::bail!(
                    "--effect: the protocol has no arm `{arm}` (its arms: {})",
                    protocol
                        .arms
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            if spec.control {
                anyhow::bail!("--effect: `{arm}` is the control arm; effects are relative to it");
            }
            if effects.insert(arm.clone(), *value).is_some() {
                anyhow::bail!("--effect: arm `{arm}` is given twice");
            }
        }
        Ok(effects)
    }
}

/// A file written.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// Where.
    pub path: PathBuf,
    /// Data rows (not counting headers).
    pub rows: u64,
}

/// One arm of the draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmReport {
    /// The arm's id.
    pub arm: String,
    /// Whether it is the control arm.
    pub control: bool,
    /// Firms assigned to it.
    pub firms: usize,
    /// The true effect on the latent rate, percentage points.
    pub effect: f64,
    /// Post-randomization firm-quarters of its firms in the statistics.
    pub post_firm_quarters: u64,
    /// The effect as realized in the data (after clamping rates to [0, 1] and rounding dagsverk):
    /// `100 · Σ(tapte − tapte untreated) / Σ mulige` over those firm-quarters.
    pub realized_dagsverk_weighted: Option<f64>,
    /// The same as a plain mean over firm-quarters of `100 · (tapte − tapte untreated) / mulige`.
    pub realized_mean: Option<f64>,
}

/// What the draw did.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawReport {
    /// The protocol's id.
    pub protocol_id: String,
    /// Its content hash.
    pub protocol_hash: String,
    /// The draw's seed.
    pub seed: String,
    /// Whether the seed matches the protocol's commitment (if not, the draw is a rehearsal, as
    /// `ia-rct assign --dry-run`).
    pub seed_matches: bool,
    /// Eligible firms.
    pub eligible: usize,
    /// Excluded firms.
    pub excluded: usize,
    /// Strata used.
    pub strata: usize,
    /// The randomization quarter (first quarter with effects).
    pub randomization_quarter: Quarter,
    /// Per arm, in protocol order.
    pub arms: Vec<ArmReport>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioReport {
    /// `register.csv`.
    pub register: FileReport,
    /// `statistics.csv` or `statistics.json`.
    pub statistics: FileReport,
    /// `assignment.csv`, with a trial.
    pub assignment: Option<FileReport>,
    /// `seed.txt`, with a trial.
    pub seed_file: Option<PathBuf>,
    /// Firms in the register.
    pub firms: usize,
    /// First quarter of statistics.
    pub first: Quarter,
    /// Last quarter of statistics.
    pub last: Quarter,
    /// Firm-quarters left out (late starts, closures, gaps).
    pub missing: u64,
    /// Firm-quarters with fewer than 5 persons (NAV would mask them; kept here).
    pub masked: u64,
    /// The draw, with a trial.
    pub draw: Option<DrawReport>,
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// Runs a scenario, writing its files into `dir` (created if needed).
///
/// # Errors
/// A file that cannot be written, a quarter range past 2100, or a draw without eligible firms.
pub fn run(scenario: &Scenario, dir: &Path) -> anyhow::Result<ScenarioReport> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let firms = register(scenario.firms, scenario.seed);

    let register_path = dir.join("register.csv");
    let mut out = create(&register_path)?;
    write_register_csv(&mut out, &firms)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", register_path.display()))?;
    drop(out);

    let panel = Panel::new(&firms, scenario.seed, scenario.first, scenario.quarters)?;

    let mut draw = None;
    let mut assignment_file = None;
    let mut seed_file = None;
    let mut effects = None;
    if let Some(trial) = &scenario.trial {
        let protocol = &trial.protocol;
        crate::randomization::check_seed(&trial.seed)
            .map_err(|problem| anyhow::anyhow!("the draw seed: {problem}"))?;
        let baselines = baseline_facts(&panel, None, protocol.baseline.from, protocol.baseline.to);
        let screening = screen(protocol, &firms, &baselines);
        let hash = protocol.content_hash();
        let assignment = randomize(
            protocol,
            &hash,
            trial.wave,
            &trial.seed,
            &screening.eligible,
            None,
        )
        .context("the simulated register could not be randomized")?;
        let path = dir.join("assignment.csv");
        std::fs::write(&path, write_assignment(&assignment))
            .with_context(|| format!("cannot write {}", path.display()))?;
        assignment_file = Some(FileReport {
            path,
            rows: assignment.rows.len() as u64,
        });
        let path = dir.join("seed.txt");
        std::fs::write(&path, format!("{}\n", trial.seed))
            .with_context(|| format!("cannot write {}", path.display()))?;
        seed_file = Some(path);

        let from = protocol.follow_up.randomization_quarter;
        let applied = Effects::from_assignment(from, &assignment, &trial.effects);
        let arms = protocol
            .arms
            .iter()
            .map(|arm| ArmReport {
                arm: arm.id.clone(),
                control: arm.control,
                firms: assignment.rows.iter().filter(|r| r.arm == arm.id).count(),
                effect: trial.effects.get(&arm.id).copied().unwrap_or(0.0),
                post_firm_quarters: 0,
                realized_dagsverk_weighted: None,
                realized_mean: None,
            })
            .collect();
        draw = Some(DrawReport {
            protocol_id: protocol.id.clone(),
            protocol_hash: hash,
            seed: trial.seed.clone(),
            seed_matches: protocol.seed_matches(trial.wave, &trial.seed),
            eligible: screening.eligible.len(),
            excluded: screening.excluded.len(),
            strata: assignment
                .rows
                .iter()
                .map(|r| r.stratum.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            randomization_quarter: from,
            arms,
        });
        effects = Some(applied);
    }

    // The statistics, streamed, with the realized effects summed per arm.
    let statistics_path = dir.join(scenario.format.file_name());
    let mut writer = StatsWriter::new(create(&statistics_path)?, scenario.format)
        .with_context(|| format!("cannot write {}", statistics_path.display()))?;
    let arm_count = effects.as_ref().map_or(0, |e| e.arms.len());
    // Per arm: firm-quarters, Σ(tapte − untreated), Σ mulige, Σ per-quarter differences in pp.
    let mut realized = vec![(0u64, 0.0f64, 0.0f64, 0.0f64); arm_count];
    let mut masked = 0u64;
    for row in panel.rows(effects.as_ref()) {
        writer
            .write(&row)
            .with_context(|| format!("cannot write {}", statistics_path.display()))?;
        if row.antpers < MASKING_MIN_PERSONS {
            masked += 1;
        }
        if let Some(sums) = row.arm.and_then(|k| realized.get_mut(k)) {
            let difference = row.tapte - row.tapte_untreated;
            sums.0 += 1;
            sums.1 += difference;
            sums.2 += row.mulige;
            sums.3 += 100.0 * difference / row.mulige;
        }
    }
    let (_, rows) = writer
        .finish()
        .with_context(|| format!("cannot write {}", statistics_path.display()))?;

    if let (Some(draw), Some(effects)) = (draw.as_mut(), effects.as_ref()) {
        for arm in &mut draw.arms {
            let sums = effects
                .arms
                .iter()
                .position(|a| a.arm == arm.arm)
                .and_then(|k| realized.get(k));
            if let Some(&(n, difference, mulige, per_quarter)) = sums
                && n > 0
            {
                arm.post_firm_quarters = n;
                arm.realized_dagsverk_weighted = Some(100.0 * difference / mulige);
                arm.realized_mean = Some(per_quarter / n as f64);
            }
        }
    }

    Ok(ScenarioReport {
        register: FileReport {
            path: register_path,
            rows: firms.len() as u64,
        },
        statistics: FileReport {
            path: statistics_path,
            rows,
        },
        assignment: assignment_file,
        seed_file,
        firms: panel.firms(),
        first: panel.first(),
        last: panel.last(),
        missing: (panel.firms() as u64 * u64::from(panel.quarters())).saturating_sub(rows),
        masked,
        draw,
    })
}
