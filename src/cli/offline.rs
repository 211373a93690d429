//! Commands that need no database: `protocol`, `assign` and `verify`. They run the same code as
//! the service (`crate::protocol`, `crate::register`, `crate::randomization`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use crate::domain::{Orgnr, Sektor};
use crate::protocol::{BaselineFacts, Protocol};
use crate::randomization::files::{
    differences, read_assignment, read_units, write_assignment, write_units,
};
use crate::randomization::plan::{Screening, randomize, screen};
use crate::register::{RegisterOptions, detect_format, parse_register};

/// `protocol` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ProtocolCommand {
    /// Print a protocol's canonical JSON (what its hash is taken over), or refuse it as invalid.
    Show {
        /// The protocol file (TOML, or JSON if it ends in .json).
        path: PathBuf,
    },
    /// Print a protocol's content hash (SHA-256 of the canonical JSON), or refuse it as invalid.
    Hash {
        /// The protocol file.
        path: PathBuf,
    },
}

/// What a draw needs: protocol, firms, statistics and seed.
#[derive(Debug, clap::Args)]
pub struct DrawArgs {
    /// The protocol (TOML, or JSON if it ends in .json).
    #[arg(long)]
    pub protocol: PathBuf,
    /// The firm register: CSV, JSON or Brønnøysund underenhet JSON (docs/data-formats.md §1).
    #[arg(long, required_unless_present = "units", conflicts_with = "units")]
    pub firms: Option<PathBuf>,
    /// Instead of a register: the canonical unit list of a draw (`units.csv`, RANDOMIZATION.md §6,
    /// as `GET /v1/trials/{id}/draws/{wave}/units.csv` serves it); eligibility is then taken as
    /// given.
    #[arg(long, conflicts_with = "stats")]
    pub units: Option<PathBuf>,
    /// NAV sickness statistics for the baseline window (docs/data-formats.md §2); repeat for several files.
    #[arg(long)]
    pub stats: Vec<PathBuf>,
    /// The wave's seed; its SHA-256 must match the protocol's commitment unless --dry-run.
    #[arg(long)]
    pub seed: String,
    /// The enrollment wave (from 1); `assign` defaults to 1, `verify` to the wave in the file.
    #[arg(long)]
    pub wave: Option<u32>,
    /// Accept any seed (rehearsals and power studies); the output format is the same.
    #[arg(long)]
    pub dry_run: bool,
    /// Sector for Brønnøysund rows, which carry none (STATLIG, KOMMUNAL, PRIVAT, UKJENT or 0-3).
    #[arg(long)]
    pub sektor: Option<Sektor>,
}

/// Options of `assign`.
#[derive(Debug, clap::Args)]
pub struct AssignArgs {
    /// Protocol, firms, statistics, seed.
    #[command(flatten)]
    pub draw: DrawArgs,
    /// Where to write the assignment (docs/data-formats.md §5).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the canonical unit list the draw used (RANDOMIZATION.md §6).
    #[arg(long)]
    pub units_out: Option<PathBuf>,
    /// Also write every excluded firm with its reasons.
    #[arg(long)]
    pub exclusions_out: Option<PathBuf>,
    /// Record this time (RFC 3339) as `trukket`; by default it is left empty, so the same inputs
    /// give a byte-identical file.
    #[arg(long)]
    pub drawn_at: Option<DateTime<Utc>>,
}

/// Options of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Protocol, firms, statistics, seed.
    #[command(flatten)]
    pub draw: DrawArgs,
    /// The assignment file to check.
    #[arg(long)]
    pub assignment: PathBuf,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and validates a protocol file.
pub fn load_protocol(path: &Path) -> anyhow::Result<Protocol> {
    let bytes = read(path)?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        Protocol::from_json(&text)
    } else {
        Protocol::from_toml(&text)
    };
    parsed.with_context(|| format!("{} is not a valid protocol", path.display()))
}

/// Runs a `protocol` subcommand.
pub fn protocol(command: ProtocolCommand) -> anyhow::Result<()> {
    match command {
        ProtocolCommand::Show { path } => {
            let json = load_protocol(&path)?.canonical_json();
            outln!("{json}");
        }
        ProtocolCommand::Hash { path } => {
            let hash = load_protocol(&path)?.content_hash();
            outln!("{hash}");
        }
    }
    Ok(())
}

/// Baseline sums per firm over the protocol's window, from NAV statistics files.
fn baselines(
    protocol: &Protocol,
    paths: &[PathBuf],
) -> anyhow::Result<BTreeMap<Orgnr, BaselineFacts>> {
    let mut out: BTreeMap<Orgnr, BaselineFacts> = BTreeMap::new();
    for path in paths {
        let sums = crate::statistics::baseline_sums(
            std::io::BufReader::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            ),
            protocol.baseline.from,
            protocol.baseline.to,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (orgnr, facts) in sums {
            let entry = out.entry(orgnr).or_insert(BaselineFacts {
                tapte: 0.0,
                mulige: 0.0,
                quarters: 0,
            });
            entry.tapte += facts.tapte;
            entry.mulige += facts.mulige;
            entry.quarters += facts.quarters;
        }
    }
    Ok(out)
}

struct Prepared {
    protocol: Protocol,
    hash: String,
    screening: Screening,
    seed_ok: bool,
}

fn prepare(args: &DrawArgs, wave: u32) -> anyhow::Result<Prepared> {
    let protocol = load_protocol(&args.protocol)?;
    let hash = protocol.content_hash();
    let seed_ok = protocol.seed_matches(wave, &args.seed);
    if let Err(problem) = crate::randomization::check_seed(&args.seed) {
        bail!("--seed: {problem}");
    }
    let screening = match (&args.firms, &args.units) {
        (_, Some(units)) => {
            let text = String::from_utf8(read(units)?)
                .with_context(|| format!("{} is not UTF-8", units.display()))?;
            let eligible = read_units(&text).map_err(|e| problems(units, &e))?;
            Screening {
                eligible,
                excluded: Vec::new(),
            }
        }
        (Some(firms_path), None) => {
            let bytes = read(firms_path)?;
            let options = RegisterOptions {
                default_sektor: args.sektor,
            };
            let firms = parse_register(&bytes, detect_format(&bytes), &options)
                .map_err(|e| problems(firms_path, &e))?;
            let stats = baselines(&protocol, &args.stats)?;
            screen(&protocol, &firms, &stats)
        }
        (None, None) => bail!("give --firms or --units"),
    };
    Ok(Prepared {
        protocol,
        hash,
        screening,
        seed_ok,
    })
}

fn problems(path: &Path, e: &crate::register::RegisterErrors) -> anyhow::Error {
    let mut message = format!("{} has {} problem(s):", path.display(), e.total);
    for problem in &e.errors {
        let _ = write!(message, "\n  {problem} (value `{}`)", problem.value);
    }
    anyhow::anyhow!(message)
}

fn seed_refusal(wave: u32, protocol: &Protocol) -> String {
    format!(
        "the seed does not match the protocol's commitment for wave {} ({}); give the committed \
         seed, or --dry-run for a rehearsal",
        wave,
        protocol
            .seed
            .sha256
            .get(wave.saturating_sub(1) as usize)
            .map_or("no commitment for this wave", String::as_str)
    )
}

/// Runs `assign`.
pub fn assign(args: AssignArgs) -> anyhow::Result<()> {
    let wave = args.draw.wave.unwrap_or(1);
    let prepared = prepare(&args.draw, wave)?;
    if !prepared.seed_ok && !args.draw.dry_run {
        bail!(seed_refusal(wave, &prepared.protocol));
    }
    let assignment = randomize(
        &prepared.protocol,
        &prepared.hash,
        wave,
        &args.draw.seed,
        &prepared.screening.eligible,
        args.drawn_at,
    )?;
    write_file(&args.out, &write_assignment(&assignment))?;
    if let Some(path) = &args.units_out {
        write_file(path, &write_units(&prepared.screening.eligible))?;
    }
    if let Some(path) = &args.exclusions_out {
        let mut out = String::from("orgnr,code,reason\n");
        for excluded in &prepared.screening.excluded {
            for reason in &excluded.reasons {
                let _ = writeln!(
                    out,
                    "{},{},\"{}\"",
                    excluded.orgnr,
                    reason.code,
                    reason.message.replace('"', "\"\"")
                );
            }
        }
        write_file(path, &out)?;
    }
    let mut per_arm: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &assignment.rows {
        *per_arm.entry(row.arm.as_str()).or_default() += 1;
    }
    let strata: std::collections::BTreeSet<&str> =
        assignment.rows.iter().map(|r| r.stratum.as_str()).collect();
    eprintln!(
        "{} firms eligible, {} excluded; {} strata; {}{}",
        prepared.screening.eligible.len(),
        prepared.screening.excluded.len(),
        strata.len(),
        per_arm
            .iter()
            .map(|(arm, n)| format!("{arm} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        if args.draw.dry_run { " (dry run)" } else { "" }
    );
    Ok(())
}

/// Runs `verify`: recomputes the assignment and lists every difference.
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let text = String::from_utf8(read(&args.assignment)?)
        .with_context(|| format!("{} is not UTF-8", args.assignment.display()))?;
    let found = read_assignment(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not an assignment file: {e}",
            args.assignment.display()
        )
    })?;
    let wave = args.draw.wave.unwrap_or(found.header.wave);
    let prepared = prepare(&args.draw, wave)?;
    let expected = randomize(
        &prepared.protocol,
        &prepared.hash,
        wave,
        &args.draw.seed,
        &prepared.screening.eligible,
        None,
    )?;
    let diffs = differences(&expected, &found);
    for d in &diffs {
        let who = if d.orgnr.is_empty() {
            "header".to_owned()
        } else {
            d.orgnr.clone()
        };
        outln!(
            "{who}\t{}\texpected {}\tfound {}",
            d.field,
            d.expected,
            d.found
        );
    }
    let seed_problem =
        (!prepared.seed_ok && !args.draw.dry_run).then(|| seed_refusal(wave, &prepared.protocol));
    if let Some(problem) = &seed_problem {
        outln!("seed\t{problem}");
    }
    match (diffs.len(), seed_problem) {
        (0, None) => {
            eprintln!(
                "verified: {} firms match the recomputed assignment{}",
                found.rows.len(),
                if args.draw.dry_run {
                    " (dry run: seed commitment not checked)"
                } else {
                    "; the seed matches the commitment"
                }
            );
            Ok(())
        }
        (n, _) => bail!(
            "the assignment does not verify: {n} difference(s){}",
            if prepared.seed_ok || args.draw.dry_run {
                ""
            } else {
                " and a seed that does not match the commitment"
            }
        ),
    }
}

fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}
