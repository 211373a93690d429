//! `simulate`: a synthetic register, its NAV statistics and, with a protocol, a draw with known
//! effects, for rehearsals, power studies and checking the estimators (`crate::simulate`).

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::domain::Quarter;
use crate::protocol::Protocol;
use crate::simulate::{OutputFormat, Scenario, ScenarioReport, Trial};

/// The protocol used when `--effect` is given without `--protocol`.
pub(super) const DEFAULT_PROTOCOL: &str = include_str!("../../protocols/nals-arbeidsformer.toml");
/// Its path, as printed.
const DEFAULT_PROTOCOL_NAME: &str = "protocols/nals-arbeidsformer.toml";
/// The quarter range without a protocol: 2023K1 and 20 quarters (2023K1-2027K4), the range of the
/// default protocol's follow-up.
const DEFAULT_START: &str = "2023K1";
const DEFAULT_QUARTERS: u32 = 20;

/// Statistics file shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// NAV's DVH view as CSV: `orgnr,arstall,kvartal,taptedv,muligedv,antpers`.
    Csv,
    /// NAV's `virksomhet.json` rows (a JSON array).
    Json,
}

/// Options of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Firms in the synthetic register.
    #[arg(long)]
    pub firms: usize,
    /// Quarters of statistics; by default the protocol's baseline and follow-up windows (pre + post
    /// around the randomization quarter), or 20 without a protocol.
    #[arg(long)]
    pub quarters: Option<u32>,
    /// The directory to write register.csv, statistics.csv (or .json) and, with a protocol,
    /// assignment.csv and seed.txt into (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// The seed of the register and the statistics; the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The first quarter (e.g. 2023K1); by default the earliest of the protocol's windows, or
    /// 2023K1 without a protocol.
    #[arg(long)]
    pub start: Option<Quarter>,
    /// Randomize the register with this protocol, exactly as `ia-rct assign` does; with --effect and
    /// no --protocol, protocols/nals-arbeidsformer.toml (built in).
    #[arg(long)]
    pub protocol: Option<PathBuf>,
    /// True effects in percentage points per arm, from the randomization quarter on, e.g.
    /// `bred_prosess=-0.8,ledere=-0.4,digital=-0.2`; arms left out have none.
    #[arg(long, value_delimiter = ',', value_parser = parse_effect)]
    pub effect: Vec<(String, f64)>,
    /// The statistics file's shape.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// The draw's seed (written to seed.txt); by default `ia-rct-simulate-<seed>`. Unless it is the
    /// protocol's committed seed, the draw is a rehearsal like `assign --dry-run`.
    #[arg(long)]
    pub draw_seed: Option<String>,
}

pub(super) fn parse_effect(text: &str) -> Result<(String, f64), String> {
    let (arm, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected ARM=PERCENTAGE_POINTS, e.g. ledere=-0.4"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: `{value}` is not a number"))?;
    if !value.is_finite() || value.abs() > 100.0 {
        return Err(format!(
            "`{text}`: an effect is between -100 and 100 percentage points"
        ));
    }
    Ok((arm.trim().to_owned(), value))
}

/// Runs `simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if args.firms == 0 {
        bail!("--firms must be at least 1");
    }
    let protocol = match (&args.protocol, args.effect.is_empty()) {
        (Some(path), _) => Some((
            super::offline::load_protocol(path)?,
            path.display().to_string(),
        )),
        (None, false) => Some((
            Protocol::from_toml(DEFAULT_PROTOCOL).context("the built-in protocol is not valid")?,
            DEFAULT_PROTOCOL_NAME.to_owned(),
        )),
        (None, true) => None,
    };

    // The windows the protocol needs: [baseline] and [follow_up] (pre + post around R).
    let needed = protocol.as_ref().and_then(|(p, _)| {
        let r = p.follow_up.randomization_quarter;
        let pre = r.plus(-i32::try_from(p.follow_up.pre_quarters).ok()?)?;
        let last = r.plus(i32::try_from(p.follow_up.post_quarters).ok()? - 1)?;
        Some((pre.min(p.baseline.from), last))
    });
    let first = match (args.start, needed) {
        (Some(start), _) => start,
        (None, Some((from, _))) => from,
        (None, None) => DEFAULT_START.parse()?,
    };
    let quarters = match (args.quarters, needed) {
        (Some(n), _) => n,
        (None, Some((_, last))) => u32::try_from(last - first + 1)
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| {
                format!("--start {first} is after the protocol's last quarter {last}")
            })?,
        (None, None) => DEFAULT_QUARTERS,
    };
    if quarters == 0 {
        bail!("--quarters must be at least 1");
    }
    if let Some((from, last)) = needed {
        let end = i32::try_from(quarters - 1).ok().and_then(|n| first.plus(n));
        if first > from || end.is_none_or(|e| e < last) {
            eprintln!(
                "note: the quarters simulated do not cover the protocol's windows ({from}-{last})"
            );
        }
    }

    let trial = match protocol {
        Some((protocol, name)) => {
            let effects = Trial::effects_for(&protocol, &args.effect)?;
            Some((
                Trial {
                    protocol,
                    seed: args
                        .draw_seed
                        .clone()
                        .unwrap_or_else(|| format!("ia-rct-simulate-{}", args.seed)),
                    wave: 1,
                    effects,
                },
                name,
            ))
        }
        None => {
            if args.draw_seed.is_some() {
                bail!("--draw-seed needs --protocol or --effect");
            }
            None
        }
    };
    let scenario = Scenario {
        firms: args.firms,
        seed: args.seed,
        first,
        quarters,
        format: match args.format {
            Format::Csv => OutputFormat::DvhCsv,
            Format::Json => OutputFormat::VirksomhetJson,
        },
        trial: trial.as_ref().map(|(t, _)| t.clone()),
    };
    // Files of an earlier run that this one does not overwrite would look like part of it.
    let mut stale = vec![match scenario.format {
        OutputFormat::DvhCsv => OutputFormat::VirksomhetJson.file_name(),
        OutputFormat::VirksomhetJson => OutputFormat::DvhCsv.file_name(),
    }];
    if scenario.trial.is_none() {
        stale.extend(["assignment.csv", "seed.txt"]);
    }
    for name in stale {
        let path = args.out.join(name);
        if path.exists() {
            eprintln!(
                "note: {} is from an earlier run and does not belong to this one",
                path.display()
            );
        }
    }
    let started = std::time::Instant::now();
    let report = crate::simulate::run(&scenario, &args.out)?;
    print_summary(
        &report,
        trial.as_ref().map(|(_, name)| name.as_str()),
        started.elapsed(),
    )
}

fn print_summary(
    report: &ScenarioReport,
    protocol: Option<&str>,
    elapsed: std::time::Duration,
) -> anyhow::Result<()> {
    let expected = report.statistics.rows + report.missing;
    outln!(
        "{}: {} firms",
        report.register.path.display(),
        report.register.rows
    );
    outln!(
        "{}: {} firm-quarters, {}-{} ({} missing: {:.2} %; {} with fewer than 5 persons, unmasked)",
        report.statistics.path.display(),
        report.statistics.rows,
        report.first,
        report.last,
        report.missing,
        100.0 * report.missing as f64 / expected.max(1) as f64,
        report.masked
    );
    if let (Some(draw), Some(assignment)) = (&report.draw, &report.assignment) {
        outln!(
            "{}: {} firms eligible, {} excluded, {} strata; protocol {} ({}, {}), wave 1",
            assignment.path.display(),
            draw.eligible,
            draw.excluded,
            draw.strata,
            draw.protocol_id,
            protocol.unwrap_or_default(),
            draw.protocol_hash.get(..12).unwrap_or_default()
        );
        if let Some(seed_file) = &report.seed_file {
            outln!(
                "{}: draw seed `{}`{}",
                seed_file.display(),
                draw.seed,
                if draw.seed_matches {
                    ", the protocol's committed seed"
                } else {
                    " (not the protocol's commitment: a rehearsal, as `ia-rct assign --dry-run`)"
                }
            );
        }
        outln!(
            "true effects from {} on (percentage points on the latent rate; realized = after clamping to [0, 1]):",
            draw.randomization_quarter
        );
        for arm in &draw.arms {
            let realized = match (arm.realized_dagsverk_weighted, arm.realized_mean) {
                (Some(w), Some(m)) if !arm.control => format!(
                    "; realized {w:+.3} dagsverk-weighted, {m:+.3} mean over {} firm-quarters",
                    arm.post_firm_quarters
                ),
                _ => String::new(),
            };
            outln!(
                "  {:<14} {:>7} firms  {}{realized}",
                arm.arm,
                arm.firms,
                if arm.control {
                    "control".to_owned()
                } else {
                    format!("{:+}", arm.effect)
                }
            );
        }
    }
    outln!("done in {:.1} s", elapsed.as_secs_f64());
    Ok(())
}
