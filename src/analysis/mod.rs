//! Analysis runs: a trial's effect estimates computed once, as a job, and stored with the key they
//! were computed under (docs/analysis-runs.md §1-2).
//!
//! A run's key is the protocol version and its hash, the statistics vintage, the draws (wave,
//! protocol hash and unit list of each), the canonical options and the program version. Everything
//! a run reads is fixed by its key: the protocol version it names (not the trial's current one),
//! the assignments of the waves it names, and each firm-quarter as of its vintage. So the same key
//! always gives the same result, byte for byte, and a job interrupted by a crash can simply run
//! again.
//!
//! The result stored is the [`Report`] of `crate::estimate` as canonical JSON (`crate::json`,
//! compact): the same bytes `ia-rct estimate --format canonical` prints for the same data. What a
//! role reads of it is [`view`]: outside the directorate, contrasts of arms with too few firms are
//! withheld and attrition is protected (docs/nav-data.md §2), and the route's masking layer turns
//! the remaining counts of 1 to 4 into `"<5"`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Quarter;
use crate::estimate::{
    self, AssignedUnit, EstimateError, Estimator, Options, Report, Skipped, StudyData, WaldTest,
    Weighting, Windows,
};
use crate::progress::Progress;
use crate::protocol::Protocol;
use crate::storage::analyses::{AnalysisRecord, NewAnalysis};
use crate::storage::statistics::UploadKind;
use crate::storage::{DrawRecord, Store, StoreError, TrialInfo};

/// The program version every run records and is keyed by: a new version computes new runs. The
/// `+estimators.N` revision counts changes to the arithmetic of the estimators between releases
/// (raise it with any change that can move a number's last bits, such as the order of a sum), so
/// a run stored by an earlier build is never served for a key this build would compute
/// differently.
pub const PROGRAM_VERSION: &str = concat!("ia-rct ", env!("CARGO_PKG_VERSION"), "+estimators.3");

/// Below this many firms in an arm nothing is shown outside the directorate (NAV's rule).
const MIN_FIRMS: usize = 5;

/// Why a contrast is withheld outside the directorate: an arm (or control) has too few firms.
const FEW_FIRMS: &str = "withheld: fewer than 5 firms with data in an arm";

/// Why a contrast is withheld outside the directorate: some, but fewer than 5, firms of an arm
/// (or control) have no post-period data, and the estimate's n and df would show how many.
const FEW_DROPPED: &str = "withheld: an arm has some but fewer than 5 firms without post-period \
     data, which the estimate's n, df and interval would reveal";

/// Why a complier effect is withheld outside the directorate: 1 to 4 firms of an arm received
/// help, which its take-up shares and first stage would reveal.
const FEW_RECEIVED: &str = "withheld: an arm has some but fewer than 5 firms that received help, \
     which the complier effect's take-up and first stage would reveal";

/// What a run estimates, in canonical form: estimators in output order, weightings firm first,
/// and whether CR2 is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalysisOptions {
    /// Estimators, in output order.
    pub estimators: Vec<String>,
    /// Weightings: `firm`, `dagsverk`.
    pub weights: Vec<String>,
    /// Whether `did_twfe` and `event_study` are also reported with CR2 and Satterthwaite df.
    pub cr2: bool,
    /// Randomization inference: draws and seed (absent unless `ri` runs; absent, the key's JSON
    /// is what it was before `ri` existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ri: Option<RiKey>,
}

/// The draws and seed of a run's randomization inference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiKey {
    /// Draws: every assignment when the design has at most this many.
    pub draws: u64,
    /// The Monte Carlo seed.
    pub seed: String,
}

/// The take-up records a run's `cace_iv` read: the cut-off, how many events the trial had and
/// the SHA-256 of their canonical list (`orgnr,status,dato` lines, sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeupKey {
    /// The cut-off (the protocol's `follow_up.takeup_cutoff`, else the post window's last day).
    pub cutoff: String,
    /// Events.
    pub events: usize,
    /// SHA-256 of the canonical list.
    pub sha256: String,
}

/// The canonical list of take-up events and its SHA-256.
pub fn takeup_fingerprint(events: &[crate::takeup::TakeupEvent]) -> String {
    let mut lines: Vec<String> = events
        .iter()
        .map(|e| format!("{},{},{}\n", e.orgnr, e.status.as_str(), e.dato))
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.concat().as_bytes()))
}

/// The options as a caller gives them (a query string or a JSON body): absent means the default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalysisRequest {
    /// The statistics vintage (default: latest).
    #[param(example = 1)]
    #[schema(example = 1)]
    pub vintage: Option<i64>,
    /// Comma-separated estimators (default: all): itt_dim, itt_ancova, itt_lin, did_twfe, event_study.
    #[param(example = "itt_dim,did_twfe")]
    #[schema(example = "itt_dim,did_twfe")]
    pub estimator: Option<String>,
    /// `firm`, `dagsverk` or `both` (default: the protocol's analysis plan).
    #[param(example = "firm")]
    #[schema(example = "both")]
    pub weights: Option<String>,
    /// Also report did_twfe and event_study with CR2 and Satterthwaite df (default true).
    #[param(example = true)]
    #[schema(example = true)]
    pub cr2: Option<bool>,
    /// Draws of randomization inference (`ri`): `all` includes `ri` when given; naming `ri`
    /// without it uses 10000.
    #[param(example = 10000)]
    #[schema(example = 10000)]
    pub ri_draws: Option<u64>,
    /// Seed of ri's Monte Carlo draws (default `1`).
    #[param(example = "1")]
    #[schema(example = "1")]
    pub seed: Option<String>,
}

/// One draw as a run's key names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawKey {
    /// The wave.
    pub wave: u32,
    /// The protocol hash it was drawn under.
    pub protocol_hash: String,
    /// SHA-256 of its unit list.
    pub units_sha256: String,
}

/// Everything a run's result is a function of. Its canonical JSON's SHA-256 is the run's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKey {
    /// The trial.
    pub trial: String,
    /// The protocol version analysed.
    pub protocol_version: u32,
    /// Its hash.
    pub protocol_hash: String,
    /// The statistics vintage (the latest upload at or before the one asked for).
    pub vintage: Option<i64>,
    /// The draws whose assignments are analysed.
    pub draws: Vec<DrawKey>,
    /// The options.
    pub options: AnalysisOptions,
    /// The program version.
    pub program: String,
    /// The take-up records `cace_iv` read (absent when it does not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeup: Option<TakeupKey>,
}

impl RunKey {
    /// The canonical JSON of the key.
    pub fn canonical_json(&self) -> String {
        // A struct of strings, integers and booleans always serializes.
        crate::json::to_string(self).unwrap_or_default()
    }

    /// SHA-256 of the canonical JSON, hex: the run's key.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }
}

/// Why a run could not be set up or computed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A request field is invalid.
    #[error("{message}")]
    Invalid {
        /// The field (a query parameter or body field).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The trial cannot be analysed (yet): no randomized firms, no statistics, no control arm.
    #[error("{0}")]
    Conflict(String),
    /// The computation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A fault (the database, a broken invariant).
    #[error("{0}")]
    Internal(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The canonical options of a request over a protocol.
///
/// # Errors
/// [`AnalysisError::Invalid`] for an unknown estimator or weighting.
pub fn options(
    req: &AnalysisRequest,
    protocol: &Protocol,
) -> Result<AnalysisOptions, AnalysisError> {
    let spec = req.estimator.as_deref().unwrap_or("all");
    let asked = Estimator::parse_list(spec).map_err(|message| AnalysisError::Invalid {
        field: "estimator",
        value: spec.to_owned(),
        expected: "all, or a comma-separated list of itt_dim, itt_ancova, itt_lin, did_twfe, event_study, cace_iv, ri",
        message,
    })?;
    let all = spec.trim() == "all";
    // `all` includes ri only when draws are asked for (cace_iv: when the trial has take-up
    // records, which `key` checks).
    let asked: Vec<Estimator> = asked
        .into_iter()
        .filter(|e| !(all && e.is_randomization_inference() && req.ri_draws.is_none()))
        .collect();
    let ri = if asked.contains(&Estimator::Ri) {
        let draws = req.ri_draws.unwrap_or(DEFAULT_RI_DRAWS);
        if draws == 0 || draws > MAX_RI_DRAWS {
            return Err(AnalysisError::Invalid {
                field: "ri_draws",
                value: draws.to_string(),
                expected: "1 to 10000000",
                message: format!("ri_draws {draws}: use 1 to {MAX_RI_DRAWS}"),
            });
        }
        let seed = req.seed.clone().unwrap_or_else(|| "1".to_owned());
        crate::randomization::check_seed(&seed).map_err(|message| AnalysisError::Invalid {
            field: "seed",
            value: seed.clone(),
            expected: "1-256 characters without control characters",
            message,
        })?;
        Some(RiKey { draws, seed })
    } else {
        None
    };
    let weights: Vec<Weighting> = match req.weights.as_deref() {
        None => {
            let w: Vec<Weighting> = protocol
                .analysis
                .weights
                .iter()
                .filter_map(|w| Weighting::from_name(w))
                .collect();
            if w.is_empty() {
                vec![Weighting::Firm, Weighting::Dagsverk]
            } else {
                w
            }
        }
        Some("firm") => vec![Weighting::Firm],
        Some("dagsverk") => vec![Weighting::Dagsverk],
        Some("both") => vec![Weighting::Firm, Weighting::Dagsverk],
        Some(other) => {
            return Err(AnalysisError::Invalid {
                field: "weights",
                value: other.to_owned(),
                expected: "firm, dagsverk or both",
                message: format!("weights {other:?}: use firm, dagsverk or both"),
            });
        }
    };
    Ok(AnalysisOptions {
        estimators: Estimator::ALL
            .iter()
            .filter(|e| asked.contains(e))
            .map(|e| e.name().to_owned())
            .collect(),
        weights: [Weighting::Firm, Weighting::Dagsverk]
            .iter()
            .filter(|w| weights.contains(w))
            .map(|w| w.name().to_owned())
            .collect(),
        cr2: req.cr2.unwrap_or(true),
        ri,
    })
}

/// Draws of `ri` when it is named without `ri_draws`.
pub const DEFAULT_RI_DRAWS: u64 = 10_000;

/// The most draws a run may ask for (memory: two numbers per draw and statistic).
pub const MAX_RI_DRAWS: u64 = 10_000_000;

/// The statistics vintage a read as of `asked` (latest if none) uses: the latest upload of NAV
/// statistics at or before it; `None` before any.
///
/// # Errors
/// When the store cannot be read.
pub async fn vintage_as_of(
    store: &dyn Store,
    asked: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    Ok(store
        .statistics_uploads(None)
        .await?
        .iter()
        .filter(|r| r.kind == UploadKind::Statistics)
        .map(|r| r.vintage)
        .filter(|v| asked.is_none_or(|want| *v <= want))
        .max())
}

/// The key of a request on a trial as it stands: its current protocol version, the latest
/// statistics vintage at or before the one asked for, and its draws. Cheap: no firm-level data is
/// read.
///
/// # Errors
/// Invalid options; [`AnalysisError::Conflict`] when there is nothing to analyse yet.
pub async fn key(
    store: &dyn Store,
    trial: &TrialInfo,
    req: &AnalysisRequest,
) -> Result<RunKey, AnalysisError> {
    let options = options(req, &trial.protocol)?;
    let id = &trial.id;
    if trial.protocol.control_arm().is_none() {
        return Err(AnalysisError::Conflict(
            "the protocol has no control arm".into(),
        ));
    }
    if windows(&trial.protocol).span().is_none() {
        return Err(AnalysisError::Conflict(
            "the follow-up window leaves the calendar".into(),
        ));
    }
    let draws: Vec<DrawKey> = store
        .draws(id)
        .await?
        .into_iter()
        .map(|d: DrawRecord| DrawKey {
            wave: d.wave,
            protocol_hash: d.protocol_hash,
            units_sha256: d.units_sha256,
        })
        .collect();
    if draws.is_empty() {
        return Err(AnalysisError::Conflict(format!(
            "trial `{id}` has no randomized firms yet; POST /v1/trials/{id}/randomize first"
        )));
    }
    let vintage = vintage_as_of(store, req.vintage).await?;
    if vintage.is_none() {
        return Err(AnalysisError::Conflict(format!(
            "no NAV statistics{}; POST /v1/statistics first",
            req.vintage
                .map(|v| format!(" as of vintage {v}"))
                .unwrap_or_default()
        )));
    }
    // cace_iv reads the trial's take-up records: the key names them.
    let mut options = options;
    let mut takeup = None;
    if options
        .estimators
        .iter()
        .any(|e| e == Estimator::CaceIv.name())
    {
        let events = store.takeup_events(id, None).await?;
        if events.is_empty() {
            let explicit = req.estimator.as_deref().is_some_and(|s| s.trim() != "all");
            if explicit {
                return Err(AnalysisError::Conflict(format!(
                    "cace_iv needs take-up records; trial `{id}` has none (POST /v1/trials/{id}/takeup)"
                )));
            }
            options.estimators.retain(|e| e != Estimator::CaceIv.name());
        } else {
            takeup = Some(TakeupKey {
                cutoff: trial.protocol.follow_up.cutoff().to_string(),
                events: events.len(),
                sha256: takeup_fingerprint(&events),
            });
        }
    }
    Ok(RunKey {
        trial: id.clone(),
        protocol_version: trial.version,
        protocol_hash: trial.content_hash.clone(),
        vintage,
        draws,
        options,
        program: PROGRAM_VERSION.to_owned(),
        takeup,
    })
}

/// The row to store for a new run under `key`.
pub fn new_analysis(key: &RunKey, by: &str, by_token: Option<i64>) -> NewAnalysis {
    NewAnalysis {
        trial: key.trial.clone(),
        run_key: key.hash(),
        key_json: key.canonical_json(),
        protocol_version: key.protocol_version,
        protocol_hash: key.protocol_hash.clone(),
        vintage: key.vintage,
        options: crate::json::to_string(&key.options).unwrap_or_default(),
        program_version: key.program.clone(),
        by: by.to_owned(),
        by_token,
    }
}

/// The estimator options of a key over its protocol, as `ia-rct estimate` builds them too.
pub fn estimate_options(key: &RunKey, protocol: &Protocol) -> Result<Options, AnalysisError> {
    let control = protocol
        .control_arm()
        .map(|a| a.id.clone())
        .ok_or_else(|| AnalysisError::Conflict("the protocol has no control arm".into()))?;
    let mut opts = Options::all(&control);
    opts.estimators = key
        .options
        .estimators
        .iter()
        .filter_map(|n| Estimator::from_name(n))
        .collect();
    opts.weights = key
        .options
        .weights
        .iter()
        .filter_map(|n| Weighting::from_name(n))
        .collect();
    opts.conf_level = 1.0 - protocol.analysis.alpha;
    opts.did_cr2 = key.options.cr2;
    opts.confirmatory = protocol
        .analysis
        .confirmatory
        .iter()
        .filter_map(|n| Estimator::from_name(n))
        .collect();
    opts.protocol_hash = Some(key.protocol_hash.clone());
    opts.vintage = key.vintage;
    opts.ri = key.options.ri.as_ref().map(|r| estimate::RiOptions {
        draws: r.draws,
        seed: r.seed.clone(),
        conf_level: opts.conf_level,
    });
    Ok(opts)
}

/// The windows of a protocol's follow-up.
pub fn windows(protocol: &Protocol) -> Windows {
    let follow = &protocol.follow_up;
    Windows {
        randomized_at: follow.randomization_quarter,
        pre: follow.pre_quarters,
        post: follow.post_quarters,
    }
}

/// Computes a run: reads what its key names from the database (stage `load`), estimates (stage `estimate`), and
/// returns the canonical result JSON and its SHA-256.
///
/// # Errors
/// [`AnalysisError::Conflict`] for data that cannot be analysed, [`AnalysisError::Cancelled`],
/// or a fault.
pub async fn compute(
    store: &dyn Store,
    run: &AnalysisRecord,
    progress: Arc<Progress>,
) -> Result<(String, String), AnalysisError> {
    let key: RunKey = serde_json::from_str(&run.key_json)
        .map_err(|e| AnalysisError::Internal(format!("run {}: stored key: {e}", run.id)))?;
    progress.stage("load", 3);
    let protocol = store
        .protocol_versions(&key.trial)
        .await?
        .into_iter()
        .find(|v| v.version == key.protocol_version)
        .ok_or_else(|| {
            AnalysisError::Internal(format!(
                "run {}: protocol version {} is not stored",
                run.id, key.protocol_version
            ))
        })?;
    if protocol.content_hash != key.protocol_hash {
        return Err(AnalysisError::Internal(format!(
            "run {}: protocol version {} has hash {}, the run names {}",
            run.id, key.protocol_version, protocol.content_hash, key.protocol_hash
        )));
    }
    let protocol = protocol.protocol;
    let mut opts = estimate_options(&key, &protocol)?;
    if let Some(tk) = &key.takeup {
        let events = store.takeup_events(&key.trial, None).await?;
        if events.len() != tk.events || takeup_fingerprint(&events) != tk.sha256 {
            return Err(AnalysisError::Conflict(format!(
                "the trial's take-up records changed after run {} was keyed ({} events then, {} \
                 now); ask for the estimates again",
                run.id,
                tk.events,
                events.len()
            )));
        }
        let cutoff = tk.cutoff.parse().map_err(|e| {
            AnalysisError::Internal(format!("run {}: stored cut-off {}: {e}", run.id, tk.cutoff))
        })?;
        opts.takeup = Some(estimate::Takeup::from_events(&events, cutoff));
    }
    let windows = windows(&protocol);
    let (from, to) = windows.span().ok_or_else(|| {
        AnalysisError::Conflict("the follow-up window leaves the calendar".into())
    })?;
    progress.advance(1);
    progress.check().map_err(|_| AnalysisError::Cancelled)?;
    let waves: Vec<u32> = key.draws.iter().map(|d| d.wave).collect();
    let units: Vec<AssignedUnit> = store
        .assignments(&key.trial, None, None, u32::MAX)
        .await?
        .into_iter()
        .filter(|a| waves.contains(&a.wave))
        .map(|a| AssignedUnit {
            orgnr: a.orgnr,
            arm: a.arm,
            // Strata are formed per wave (RANDOMIZATION.md); block on (wave, stratum).
            stratum: format!("{}:{}", a.wave, a.stratum),
            klynge: a.klynge.map(|k| k.to_string()),
        })
        .collect();
    if units.is_empty() {
        return Err(AnalysisError::Conflict(format!(
            "trial `{}` has no randomized firms yet",
            key.trial
        )));
    }
    progress.advance(1);
    progress.check().map_err(|_| AnalysisError::Cancelled)?;
    let rows = store.trial_panel(&key.trial, from, to, key.vintage).await?;
    progress.advance(1);
    progress.check().map_err(|_| AnalysisError::Cancelled)?;
    let mut values = Vec::with_capacity(rows.len());
    for r in rows {
        let orgnr = u32::try_from(r.orgnr)
            .ok()
            .and_then(crate::domain::Orgnr::from_u32)
            .ok_or_else(|| AnalysisError::Internal(format!("stored orgnr {}", r.orgnr)))?;
        let quarter = Quarter::new(r.arstall, r.kvartal)
            .map_err(|e| AnalysisError::Internal(format!("stored quarter: {e}")))?;
        values.push((orgnr, quarter, r.tapte, r.mulige));
    }
    if values.is_empty() {
        return Err(AnalysisError::Conflict(format!(
            "no NAV statistics for the trial's firms from {from} to {to}{}; POST /v1/statistics first",
            key.vintage
                .map(|v| format!(" as of vintage {v}"))
                .unwrap_or_default()
        )));
    }
    let report = tokio::task::spawn_blocking(move || {
        let data = StudyData::from_values(windows, units, values)?;
        let report = estimate::estimate_with(&data, &opts, &progress)?;
        progress.stage("store", 1);
        Ok::<Report, EstimateError>(report)
    })
    .await
    .map_err(|e| AnalysisError::Internal(format!("estimation task: {e}")))?
    .map_err(|e| match e {
        EstimateError::Cancelled => AnalysisError::Cancelled,
        EstimateError::Internal(m) => AnalysisError::Internal(m),
        other => AnalysisError::Conflict(other.to_string()),
    })?;
    canonical(&report)
}

/// A report's canonical JSON and its SHA-256, hex.
///
/// # Errors
/// [`AnalysisError::Internal`] if it does not serialize (it always does).
pub fn canonical(report: &Report) -> Result<(String, String), AnalysisError> {
    let json = crate::json::to_string(report)
        .map_err(|e| AnalysisError::Internal(format!("serializing the result: {e}")))?;
    let sha = hex::encode(Sha256::digest(json.as_bytes()));
    Ok((json, sha))
}

/// A run's result as one role may read it (before the route's masking layer).
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    /// The estimates shown.
    pub estimates: Vec<estimate::Estimate>,
    /// The joint tests shown.
    pub tests: Vec<WaldTest>,
    /// Estimates not computed or withheld, with the reason.
    pub skipped: Vec<Skipped>,
    /// Attrition by arm, protected as one table outside the directorate.
    pub attrition: Vec<serde_json::Value>,
    /// `cace_iv`'s first stage, take-up and Anderson-Rubin set, per shown contrast.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iv: Vec<estimate::IvDetail>,
    /// Randomization inference, per shown contrast.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ri: Vec<estimate::RiRow>,
    /// Attrition bounds, per shown contrast.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<estimate::bounds::BoundsRow>,
}

/// What a role reads of a report: everything for the directorate (`open`); for anyone else, a
/// contrast is withheld when its arm or the control has fewer than 5 firms with data, or some but
/// fewer than 5 without post-period data (the arm's size is published, and an estimate's
/// `n_units`, `n_obs` and residual df, and through them its interval and p-value, are functions of
/// the firms with data, so publishing it would give away the small count attrition hides).
pub fn view(report: Report, open: bool, control: &str) -> ReportView {
    let reason: BTreeMap<&str, Option<&str>> = report
        .attrition
        .iter()
        .map(|a| {
            let why = if a.with_post_data < MIN_FIRMS {
                Some(FEW_FIRMS)
            } else if a.no_post_data > 0 && a.no_post_data < MIN_FIRMS {
                Some(FEW_DROPPED)
            } else {
                None
            };
            (a.arm.as_str(), why)
        })
        .collect();
    let why = |arm: &str| reason.get(arm).copied().unwrap_or(Some(FEW_FIRMS));
    let withheld = |arm: &str| -> Option<&str> {
        if open {
            None
        } else {
            why(arm).or_else(|| why(control))
        }
    };
    // Outside the directorate a complier effect is withheld where an arm has 1 to 4 firms that
    // received help: its take-up shares and first stage would give the small count away.
    let few_received: BTreeSet<(String, String)> = report
        .iv
        .iter()
        .filter(|d| {
            !open
                && [d.received_treated, d.received_control]
                    .iter()
                    .any(|&r| (1..MIN_FIRMS).contains(&r))
        })
        .map(|d| (d.arm.clone(), d.weights.clone()))
        .collect();
    let iv_withheld = |estimator: &str, arm: &str, weights: &str| {
        estimator == estimate::Estimator::CaceIv.name()
            && few_received.contains(&(arm.to_owned(), weights.to_owned()))
    };
    let mut skipped = report.skipped.clone();
    let mut estimates = Vec::new();
    for e in report.estimates {
        let reason = withheld(&e.arm)
            .or_else(|| iv_withheld(&e.estimator, &e.arm, &e.weights).then_some(FEW_RECEIVED));
        if let Some(reason) = reason {
            if !skipped
                .iter()
                .any(|s| s.arm == e.arm && s.estimator == e.estimator && s.weights == e.weights)
            {
                skipped.push(Skipped {
                    estimator: e.estimator.clone(),
                    arm: e.arm.clone(),
                    weights: e.weights.clone(),
                    se_type: None,
                    error: reason.to_owned(),
                });
            }
        } else {
            estimates.push(e);
        }
    }
    let tests = report
        .tests
        .into_iter()
        .filter(|t| withheld(&t.arm).is_none())
        .collect();
    // Attrition's counts are protected as one table (a hidden count is not recoverable from
    // `assigned` and the others); the route's masking layer then turns every other count of 1
    // to 4 into "<5" outside the directorate, in `dropped` and the messages.
    let attrition = crate::disclosure::complementary::protect_attrition(&report.attrition, open);
    let iv = report
        .iv
        .into_iter()
        .filter(|d| withheld(&d.arm).is_none() && !iv_withheld(&d.estimator, &d.arm, &d.weights))
        .collect();
    let ri = report
        .ri
        .into_iter()
        .filter(|r| withheld(&r.arm).is_none())
        .collect();
    let bounds = report
        .bounds
        .into_iter()
        .filter(|b| withheld(&b.arm).is_none())
        .collect();
    ReportView {
        estimates,
        tests,
        skipped,
        attrition,
        iv,
        ri,
        bounds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{Estimator, Options, Takeup, Windows, read_assignment_table};

    /// A report with complier effects: the `weak` take-up fixture on the `balanced` data.
    fn report() -> Report {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = root.join("estimates/balanced");
        let (units, _) = read_assignment_table(
            &std::fs::read_to_string(dir.join("assignment.csv")).expect("assignment"),
        )
        .expect("assignment parses");
        let windows = Windows {
            randomized_at: "2025K1".parse().expect("quarter"),
            pre: 4,
            post: 4,
        };
        let stats = std::fs::File::open(dir.join("stats.csv")).expect("stats");
        let data = StudyData::from_stats_reader(windows, units, stats).expect("study");
        let events = crate::takeup::parse_takeup(
            &std::fs::read(root.join("cace/weak/takeup.csv")).expect("takeup"),
        )
        .expect("take-up parses");
        let mut opts = Options::all("kontroll");
        opts.estimators = vec![Estimator::IttAncova, Estimator::CaceIv];
        opts.takeup = Some(Takeup::from_events(
            &events,
            "2025-06-30".parse().expect("date"),
        ));
        estimate::estimate(&data, &opts).expect("report")
    }

    #[test]
    fn a_complier_effect_with_few_receivers_is_withheld_outside_the_directorate() {
        let mut r = report();
        for d in r.iv.iter_mut().filter(|d| d.arm == "ledere") {
            d.received_treated = 3;
        }
        let shown = view(r.clone(), false, "kontroll");
        assert!(shown.iv.iter().all(|d| d.arm != "ledere"));
        assert!(
            shown
                .estimates
                .iter()
                .all(|e| !(e.estimator == "cace_iv" && e.arm == "ledere"))
        );
        assert!(
            shown
                .estimates
                .iter()
                .any(|e| e.estimator == "itt_ancova" && e.arm == "ledere")
        );
        assert!(
            shown
                .skipped
                .iter()
                .any(|s| s.arm == "ledere" && s.estimator == "cace_iv" && s.error == FEW_RECEIVED)
        );
        assert!(
            shown.iv.iter().any(|d| d.arm == "digital"),
            "other arms stay"
        );
        let open = view(r, true, "kontroll");
        assert!(
            open.iv.iter().any(|d| d.arm == "ledere"),
            "the directorate sees everything"
        );
    }
}
