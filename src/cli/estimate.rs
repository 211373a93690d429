//! `ia-rct estimate`: effect estimates from an assignment file and NAV statistics files, with no
//! database, through the same library functions the service uses (protocols/ANALYSIS.md).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::progress_bar::{self, BYTES_STAGE, Bar};
use crate::domain::Quarter;
use crate::estimate::{
    self, Estimator, Options, StudyData, Weighting, Windows, format_table, read_assignment_table,
};
use crate::progress::Progress;

/// Draws of `ri` when it is named without --ri-draws.
pub const DEFAULT_RI_DRAWS: u64 = 10_000;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `{"estimates": [...], "tests": [...], "skipped": [...], "attrition": [...]}`.
    Json,
    /// A table for reading.
    Table,
    /// The canonical JSON (compact) the service stores an analysis run's result as: the same
    /// bytes, whose SHA-256 is the run's `result_sha256`, for the same data.
    Canonical,
}

/// Which weightings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsArg {
    /// Each firm counts once.
    Firm,
    /// Weighted by possible workdays.
    Dagsverk,
    /// Both.
    Both,
}

/// Options of `estimate`.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {
    /// The assignment: `orgnr, arm, stratum` (and `klynge` when clusters were randomized), as
    /// `ia-rct assign` or the service's draw files write it.
    #[arg(long)]
    pub assignment: PathBuf,
    /// NAV statistics (DVH CSV or virksomhet.json); repeat for several files.
    #[arg(long, required = true)]
    pub stats: Vec<PathBuf>,
    /// The protocol: gives the control arm, the windows, the confirmatory family and the hash.
    #[arg(long)]
    pub protocol: Option<PathBuf>,
    /// The randomization quarter (relative time 0), e.g. 2025K1.
    #[arg(long, required_unless_present = "protocol")]
    pub randomized_at: Option<Quarter>,
    /// Quarters before randomization in the analysis (default 8, or the protocol's).
    #[arg(long)]
    pub pre: Option<u32>,
    /// Quarters from randomization on (default 12, or the protocol's).
    #[arg(long)]
    pub post: Option<u32>,
    /// The control arm (default `kontroll`, or the protocol's control arm).
    #[arg(long)]
    pub control: Option<String>,
    /// `all`, or a comma-separated list of itt_dim, itt_ancova, itt_lin, did_twfe, event_study,
    /// cace_iv (needs --takeup) and ri (randomization inference; `all` includes it when
    /// --ri-draws is given).
    #[arg(long, default_value = "all")]
    pub estimator: String,
    /// Take-up records (CSV or JSON, docs/data-formats.md §3): gives `cace_iv`, the complier
    /// effect of receiving assistance.
    #[arg(long)]
    pub takeup: Option<PathBuf>,
    /// The take-up cut-off, YYYY-MM-DD: a firm received assistance when it was AKTIV on or
    /// before it (default: the protocol's `follow_up.takeup_cutoff`, else the last day of the
    /// post window).
    #[arg(long)]
    pub takeup_cutoff: Option<chrono::NaiveDate>,
    /// Draws of randomization inference: every assignment when the design has at most this
    /// many, else a Monte Carlo sample (default 10000 when `ri` is named in --estimator).
    #[arg(long)]
    pub ri_draws: Option<u64>,
    /// Seed of ri's Monte Carlo draws (ChaCha20, one stream per draw: the same p whatever the
    /// thread count).
    #[arg(long, default_value = "1")]
    pub seed: String,
    /// Weighting.
    #[arg(long, value_enum, default_value_t = WeightsArg::Both)]
    pub weights: WeightsArg,
    /// Skip the CR2 versions of did_twfe and event_study (CR1 is always reported).
    #[arg(long)]
    pub no_cr2: bool,
    /// Confidence level (default 0.95, or 1 - alpha of the protocol's analysis plan, as the
    /// service uses).
    #[arg(long)]
    pub conf_level: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The statistics vintage the files are (as the service numbers its uploads), carried into
    /// every estimate's `vintage`.
    #[arg(long)]
    pub vintage: Option<i64>,
}

/// Runs `estimate`.
pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let protocol = args
        .protocol
        .as_deref()
        .map(super::offline::load_protocol)
        .transpose()?;
    let randomized_at = match (args.randomized_at, &protocol) {
        (Some(q), _) => q,
        (None, Some(p)) => p.follow_up.randomization_quarter,
        (None, None) => bail!("--randomized-at is required without --protocol"),
    };
    let pre = args
        .pre
        .or(protocol.as_ref().map(|p| p.follow_up.pre_quarters))
        .unwrap_or(8);
    let post = args
        .post
        .or(protocol.as_ref().map(|p| p.follow_up.post_quarters))
        .unwrap_or(12);
    let control = match (&args.control, &protocol) {
        (Some(c), _) => c.clone(),
        (None, Some(p)) => p
            .control_arm()
            .map(|a| a.id.clone())
            .context("the protocol has no control arm")?,
        (None, None) => "kontroll".into(),
    };
    let estimators = Estimator::parse_list(&args.estimator).map_err(anyhow::Error::msg)?;
    let conf_level = args.conf_level.unwrap_or(0.95);
    if !(conf_level > 0.0 && conf_level < 1.0) {
        bail!("--conf-level must be between 0 and 1");
    }
    let text = std::fs::read_to_string(&args.assignment)
        .with_context(|| format!("cannot read {}", args.assignment.display()))?;
    let (units, _meta) = read_assignment_table(&text)
        .with_context(|| format!("{} is not a valid assignment", args.assignment.display()))?;
    let windows = Windows {
        randomized_at,
        pre,
        post,
    };
    // Several files (say one per quarter) are streamed one after the other; a firm-quarter may
    // appear only once over all of them.
    let mut sources = Vec::with_capacity(args.stats.len());
    let mut bytes = 0;
    for path in &args.stats {
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        let label = if args.stats.len() == 1 {
            String::new()
        } else {
            path.display().to_string()
        };
        sources.push((label, file));
    }
    // The bar (stderr a terminal only): stage `read` in bytes of the statistics files, then the
    // estimator's stage `estimate`.
    let progress = Arc::new(Progress::new());
    progress.stage(BYTES_STAGE, bytes);
    let watch = progress_bar::watch(progress.clone(), Bar::start());
    let data = StudyData::from_stats_readers_with(windows, units, sources, &progress)?;
    let weights = match args.weights {
        WeightsArg::Firm => vec![Weighting::Firm],
        WeightsArg::Dagsverk => vec![Weighting::Dagsverk],
        WeightsArg::Both => vec![Weighting::Firm, Weighting::Dagsverk],
    };
    let mut opts = Options::all(&control);
    opts.estimators = estimators;
    opts.weights = weights;
    opts.conf_level = conf_level;
    opts.did_cr2 = !args.no_cr2;
    if let Some(p) = &protocol {
        opts.confirmatory = p
            .analysis
            .confirmatory
            .iter()
            .filter_map(|n| Estimator::from_name(n))
            .collect();
        opts.protocol_hash = Some(p.content_hash());
        if args.conf_level.is_none() {
            opts.conf_level = 1.0 - p.analysis.alpha;
        }
    }
    opts.vintage = args.vintage;
    if let Some(path) = &args.takeup {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let events = crate::takeup::parse_takeup(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not valid take-up data:\n{e}", path.display()))?;
        let cutoff = args.takeup_cutoff.unwrap_or_else(|| match &protocol {
            Some(p) => p.follow_up.cutoff(),
            None => Quarter::last_day_of_window(randomized_at, post),
        });
        opts.takeup = Some(estimate::Takeup::from_events(&events, cutoff));
    } else if opts.estimators.contains(&Estimator::CaceIv) && args.estimator != "all" {
        bail!("cace_iv needs --takeup (the take-up records of docs/data-formats.md §3)");
    }
    let ri_named = args.estimator != "all" && opts.estimators.contains(&Estimator::Ri);
    if let Some(draws) = args.ri_draws.or(ri_named.then_some(DEFAULT_RI_DRAWS)) {
        if draws == 0 {
            bail!("--ri-draws must be at least 1");
        }
        crate::randomization::check_seed(&args.seed).map_err(anyhow::Error::msg)?;
        opts.ri = Some(estimate::RiOptions {
            draws,
            seed: args.seed.clone(),
            conf_level: opts.conf_level,
        });
    }
    let report = estimate::estimate_with(&data, &opts, &progress)?;
    watch.finish();
    match args.format {
        Format::Json => {
            let json = crate::json::to_string_pretty(&report)?;
            outln!("{json}");
        }
        Format::Table => out!("{}", format_table(&report)),
        Format::Canonical => {
            // No newline after it: `| sha256sum` gives the run's `result_sha256`.
            let (json, _sha) = crate::analysis::canonical(&report)?;
            out!("{json}");
        }
    }
    Ok(())
}
