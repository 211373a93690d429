//! Trial protocols: what is registered before any firm is randomized.
//!
//! A protocol is a TOML file in `protocols/` (or the same structure as JSON over the API); its schema
//! is documented in `protocols/README.md`. Parsing is strict (unknown keys are errors, so a typo never
//! passes silently) and [`Protocol::validate`] checks everything that types cannot. The protocol's
//! identity is [`Protocol::content_hash`]: the SHA-256 of its canonical JSON, which an outside script
//! can recompute (`protocols/RANDOMIZATION.md`).

mod diff;
mod eligibility;
mod lifecycle;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Bransje, FylkeCode, NaeringStandard, Quarter, Sektor};

pub use diff::{Change, diff};
pub use eligibility::{BaselineFacts, Exclusion, evaluate};
pub use lifecycle::TrialState;

/// A trial protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Stable identifier: lowercase letters, digits and hyphens (e.g. `nals-arbeidsformer`).
    pub id: String,
    /// Human title.
    pub title: String,
    /// Version; a changed protocol is registered as a new version.
    pub version: u32,
    /// When randomization happens: `A` before any contact (the effect of offering help) or `B`
    /// among firms that agreed to take part (the effect of help among the willing).
    pub design: Design,
    /// What is randomized.
    pub unit: UnitSpec,
    /// The industry standard the firms' næringskoder are in.
    #[serde(default = "default_standard")]
    #[schema(value_type = String)]
    pub naering_standard: NaeringStandard,
    /// The arms: exactly one control and one or more arbeidsformer.
    pub arms: Vec<Arm>,
    /// Who may be enrolled.
    pub eligibility: Eligibility,
    /// The baseline window for sick-leave rates (eligibility, strata, covariates).
    pub baseline: BaselineWindow,
    /// How units are stratified before randomization.
    pub strata: Strata,
    /// What is measured.
    pub outcomes: Outcomes,
    /// When the trial randomizes and how long it follows firms.
    pub follow_up: FollowUp,
    /// The pre-registered analysis.
    pub analysis: AnalysisPlan,
    /// The seed commitment: SHA-256 of each enrollment wave's seed, in wave order.
    pub seed: SeedCommitment,
}

fn default_standard() -> NaeringStandard {
    NaeringStandard::Sn2007
}

/// The two designs of the evaluation report (`002_…txt:2406-2408`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Design {
    /// Randomize eligible firms before any contact: the effect of the offer (ITT), selling-in included.
    A,
    /// Randomize firms that agreed to take part: the effect of help among the willing.
    B,
}

/// The unit of randomization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    /// `virksomhet`: each underenhet on its own; `overordnet_enhet`: underenheter with the same
    /// parent (a kommune, a hospital trust) form one cluster and share an arm.
    pub level: UnitLevel,
    /// With `overordnet_enhet`: only firms in these sectors are clustered (e.g. `["KOMMUNAL"]`);
    /// the rest are randomized one by one. Empty: every firm with a parent is clustered.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub cluster_sektorer: Vec<Sektor>,
}

/// The level units are randomized at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitLevel {
    /// Each underenhet.
    Virksomhet,
    /// Clusters of underenheter sharing an overordnet enhet.
    OverordnetEnhet,
}

/// One arm of the trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Identifier used in assignment files (lowercase letters, digits, `_`).
    pub id: String,
    /// Name.
    pub name: String,
    /// What the arm is.
    pub description: String,
    /// Whether this is the control arm (exactly one).
    #[serde(default)]
    pub control: bool,
    /// Allocation ratio: an arm with ratio 2 gets twice the units of an arm with ratio 1.
    pub ratio: u32,
    /// Planned duration (the report's first dimension).
    pub planned_duration: PlannedDuration,
    /// Who in the firm is involved (the second dimension).
    pub involvement: Involvement,
    /// How far the firm drives the process itself (the third dimension).
    pub firm_drives: Ownership,
    /// What the fylke is told to do with a firm in this arm.
    pub instructions: String,
}

/// Planned duration of the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlannedDuration {
    /// No help (control).
    Ingen,
    /// Short ("kort"), e.g. up to three months.
    Kort,
    /// Long ("lang"), e.g. a year-long process.
    Lang,
}

/// Who is involved in the firm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Involvement {
    /// Nobody (control).
    Ingen,
    /// Leaders only.
    Ledere,
    /// The partsgruppe: leader, tillitsvalgt and verneombud.
    Partsgruppe,
    /// The whole staff.
    HelePersonalet,
}

/// How far the firm is made responsible for driving the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    /// Not applicable (control).
    Ingen,
    /// NAV leads.
    Lav,
    /// Shared.
    Middels,
    /// The firm leads; NAV advises.
    Hoy,
}

/// Thresholds that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// At least this many employees.
    #[serde(default)]
    pub min_employees: Option<u32>,
    /// Baseline sick-leave percent at least this (100 · Σ tapte / Σ mulige over the window).
    #[serde(default)]
    pub min_baseline_percent: Option<f64>,
    /// At least this many lost workdays (tapte dagsverk) a year over the baseline window.
    #[serde(default)]
    pub min_lost_workdays_per_year: Option<f64>,
}

impl Thresholds {
    fn is_empty(&self) -> bool {
        self.min_employees.is_none()
            && self.min_baseline_percent.is_none()
            && self.min_lost_workdays_per_year.is_none()
    }
}

/// Who may be enrolled. A firm is eligible when it meets every listed restriction, all of
/// `required`, and (if `any_of` is not empty) at least one of the `any_of` threshold sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Thresholds every firm must meet.
    #[serde(default)]
    pub required: Thresholds,
    /// Alternative threshold sets; a firm must meet at least one (if any are given).
    #[serde(default)]
    pub any_of: Vec<Thresholds>,
    /// Only these sectors (empty: all).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub sektorer: Vec<Sektor>,
    /// Only these bransjer (empty: all).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub bransjer: Vec<Bransje>,
    /// Only næringskoder starting with one of these digit prefixes, e.g. `"87"` or `"88911"`
    /// (empty: all).
    #[serde(default)]
    pub naeringskoder: Vec<String>,
    /// Only these fylker (empty: all).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub fylker: Vec<FylkeCode>,
    /// Only firms that agreed to take part (`villig = true`); required by design B.
    #[serde(default)]
    pub require_villig: bool,
}

/// The quarters whose statistics make a firm's baseline (inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineWindow {
    /// First quarter.
    #[schema(value_type = String, example = "2024K1")]
    pub from: Quarter,
    /// Last quarter.
    #[schema(value_type = String, example = "2024K4")]
    pub to: Quarter,
}

/// A stratification variable.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StratumVariable {
    /// The fylke (2024 codes).
    Fylke,
    /// The IA bransje group.
    Bransje,
    /// NAV's sektor.
    Sektor,
    /// Employee size band (`size_cuts`).
    Size,
    /// Baseline sick-leave band (`baseline_cuts` or `baseline_quantiles`).
    Baseline,
}

impl StratumVariable {
    /// The name used in stratum keys.
    pub fn as_str(&self) -> &'static str {
        match self {
            StratumVariable::Fylke => "fylke",
            StratumVariable::Bransje => "bransje",
            StratumVariable::Sektor => "sektor",
            StratumVariable::Size => "size",
            StratumVariable::Baseline => "baseline",
        }
    }
}

/// How units are stratified. See `protocols/RANDOMIZATION.md` for the exact rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Strata {
    /// The variables, coarsest first; when strata are too small the last variables are dropped
    /// first.
    pub by: Vec<StratumVariable>,
    /// Employee counts where size bands start, ascending (e.g. `[50, 200]` gives bands
    /// `0-49`, `50-199`, `200+`).
    #[serde(default)]
    pub size_cuts: Vec<u32>,
    /// Baseline percents where baseline bands start, ascending (e.g. `[8.0, 12.0]`).
    #[serde(default)]
    pub baseline_cuts: Vec<f64>,
    /// Instead of fixed cuts: quantiles of the eligible units' baselines (e.g. `[0.5]` for halves).
    #[serde(default)]
    pub baseline_quantiles: Vec<f64>,
    /// Strata with fewer units are merged by the documented rule.
    pub min_size: u32,
}

/// What is measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcomes {
    /// The primary outcome: `sykefravar_prosent` (NAV's legemeldt sick-leave rate).
    pub primary: String,
    /// Secondary outcomes: every one is either estimated or, for a survey measure listed in
    /// `survey`, reported descriptively. Names this version does not estimate are refused
    /// ([`Protocol::validate`]).
    #[serde(default)]
    pub secondary: Vec<String>,
    /// Which of the secondary outcomes are work-environment survey measures (the `maal` of
    /// `POST /v1/trials/{id}/surveys`): reported descriptively, as the mean of the firms' values
    /// by arm and wave in `GET /v1/trials/{id}/outcomes/summary`, with no effect estimate and no
    /// p-value (`protocols/ANALYSIS.md` §7). Left out of the canonical JSON when empty, so a
    /// protocol without survey measures keeps the content hash it had before this field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub survey: Vec<String>,
}

/// Timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// The quarter firms are randomized in (event time 0).
    #[schema(value_type = String, example = "2025K1")]
    pub randomization_quarter: Quarter,
    /// Quarters before randomization in the analysis panel.
    pub pre_quarters: u32,
    /// Quarters after randomization followed.
    pub post_quarters: u32,
    /// The take-up cut-off of `cace_iv`: a firm has received assistance when it was `AKTIV` on
    /// or before this date (ANALYSIS.md §8). Absent: the last day of the post window. Left out of
    /// the canonical JSON when absent, so protocols without it keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date, example = "2027-12-31")]
    pub takeup_cutoff: Option<chrono::NaiveDate>,
}

impl FollowUp {
    /// The take-up cut-off: the protocol's, or the last day of the post window.
    pub fn cutoff(&self) -> chrono::NaiveDate {
        self.takeup_cutoff.unwrap_or_else(|| {
            Quarter::last_day_of_window(self.randomization_quarter, self.post_quarters)
        })
    }
}

/// The pre-registered analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisPlan {
    /// Confirmatory estimators (`itt_dim`, `itt_ancova`, `itt_lin`, `did_twfe`, `event_study`,
    /// `cace_iv`, `ri`); everything else is exploratory.
    pub confirmatory: Vec<String>,
    /// Weightings: `firm` and/or `dagsverk`.
    pub weights: Vec<String>,
    /// Significance level.
    pub alpha: f64,
    /// Multiplicity adjustment over the confirmatory family: `holm` or `none`.
    pub multiplicity: String,
    /// The confirmatory family: `arms_x_primary`.
    pub family: String,
}

/// The seed commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedCommitment {
    /// SHA-256 (hex) of each wave's seed string, wave 1 first.
    pub sha256: Vec<String>,
}

/// Known estimator names (`docs/statistics.md` §A.2).
pub const ESTIMATORS: &[&str] = &[
    "itt_dim",
    "itt_ancova",
    "itt_lin",
    "did_twfe",
    "event_study",
    "cace_iv",
    "ri",
];

/// Estimator names a protocol may not name as confirmatory yet: no estimate would come.
pub const NOT_IMPLEMENTED: &[&str] = &["cace_iv", "ri"];

/// The primary outcome, NAV's legemeldt sick-leave rate (the only one estimated in this version).
pub const PRIMARY_OUTCOME: &str = "sykefravar_prosent";

/// Outcomes from NAV's statistics that ia-rct knows but does not estimate in this version, each
/// with the reason a protocol may not name them yet: no estimate would come.
pub const OUTCOMES_NOT_ESTIMATED: &[(&str, &str)] = &[
    (
        "tapte_dagsverk",
        "ia-rct holds NAV's tapte dagsverk per firm-quarter, but this version estimates only the \
         primary outcome `sykefravar_prosent` (100 · Σ tapte / Σ mulige), the one whose \
         estimators are checked against the reference packages (ANALYSIS.md §7)",
    ),
    (
        "langtidsfravar_prosent",
        "it needs NAV's duration classes (varighet C-F, legemeldt fravær from day 17; \
         docs/nav-data.md §1.8): ingestion stores them with each firm-quarter, but no estimator \
         reads them in this version (ANALYSIS.md §7)",
    ),
];

/// The longest survey measure name (as `maal` in a survey upload).
pub const MAX_SURVEY_NAME_CHARS: usize = crate::takeup::MAX_MAAL_CHARS;

/// The longest pre or post window a protocol may ask for (10 years).
pub const MAX_WINDOW_QUARTERS: u32 = 40;

/// Longest protocol `title`, in characters.
pub const MAX_TITLE_CHARS: usize = 300;

/// Longest arm `name`, in characters.
pub const MAX_ARM_NAME_CHARS: usize = 200;

/// Longest arm `description` or `instructions`, in characters.
pub const MAX_ARM_TEXT_CHARS: usize = 10_000;

/// Why a protocol is not valid: the field (a path such as `arms[2].ratio`) and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[error("{field}: {message}")]
pub struct ProtocolProblem {
    /// Where.
    pub field: String,
    /// What to fix.
    pub message: String,
}

/// Why a protocol could not be read or is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The text is not valid TOML/JSON for the schema.
    #[error("{0}")]
    Parse(String),
    /// It parsed, but these rules are broken.
    #[error("the protocol breaks {} rule(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ProtocolProblem>),
}

impl Protocol {
    /// Parses a protocol from TOML and validates it.
    ///
    /// # Errors
    /// [`ProtocolError::Parse`] with the line and key at fault, or [`ProtocolError::Invalid`].
    pub fn from_toml(text: &str) -> Result<Protocol, ProtocolError> {
        let protocol: Protocol =
            toml::from_str(text).map_err(|e| ProtocolError::Parse(e.to_string()))?;
        protocol.validate()?;
        Ok(protocol)
    }

    /// Parses a protocol from JSON and validates it.
    ///
    /// # Errors
    /// As [`Protocol::from_toml`].
    pub fn from_json(text: &str) -> Result<Protocol, ProtocolError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let protocol: Protocol = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| ProtocolError::Parse(format!("{}: {}", e.path(), e.inner())))?;
        protocol.validate()?;
        Ok(protocol)
    }

    /// Reads a protocol the store wrote, without re-checking the rules: a stored version stays
    /// readable even if a later release tightens validation.
    ///
    /// # Errors
    /// [`ProtocolError::Parse`] if the JSON does not fit the schema.
    pub fn from_stored_json(text: &str) -> Result<Protocol, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Parse(e.to_string()))
    }

    /// The canonical JSON: keys sorted, no whitespace, UTF-8, every key written out (absent
    /// optional values as `null`, empty lists as `[]`), numbers as the TOML gave them (integers
    /// as integers, floats with a decimal point). Python's `json.dumps(p, sort_keys=True,
    /// separators=(",", ":"), ensure_ascii=False)` gives the same bytes
    /// (`notebooks/protocol_hash.py` computes it from the TOML independently).
    pub fn canonical_json(&self) -> String {
        // serde_json's Value keeps object keys sorted (no `preserve_order` feature).
        match serde_json::to_value(self) {
            Ok(value) => value.to_string(),
            // Serializing plain data cannot fail; keep the signature infallible for callers.
            Err(e) => format!("{{\"unserializable\":\"{e}\"}}"),
        }
    }

    /// SHA-256 of [`Protocol::canonical_json`], lowercase hex: the protocol's identity.
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// The control arm.
    pub fn control_arm(&self) -> Option<&Arm> {
        self.arms.iter().find(|a| a.control)
    }

    /// The arm with this id.
    pub fn arm(&self, id: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.id == id)
    }

    /// Checks every rule the types cannot express.
    ///
    /// # Errors
    /// [`ProtocolError::Invalid`] listing every broken rule with its field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(ProtocolProblem {
                field: field.to_owned(),
                message,
            });
        };
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            problem(
                "id",
                "use 1-64 lowercase letters, digits and hyphens".into(),
            );
        }
        if self.title.trim().is_empty() {
            problem("title", "give the trial a title".into());
        } else if let Err(e) = crate::domain::check_line(&self.title, MAX_TITLE_CHARS) {
            problem("title", format!("the title {e}"));
        }
        if self.version == 0 {
            problem("version", "versions start at 1".into());
        }
        if self.unit.level == UnitLevel::Virksomhet && !self.unit.cluster_sektorer.is_empty() {
            problem(
                "unit.cluster_sektorer",
                "only meaningful with level = \"overordnet_enhet\"".into(),
            );
        }

        // Arms.
        let controls = self.arms.iter().filter(|a| a.control).count();
        if controls != 1 {
            problem(
                "arms",
                format!("exactly one arm must have control = true, found {controls}"),
            );
        }
        if self.arms.len() < 2 {
            problem(
                "arms",
                "a trial needs a control and at least one arm".into(),
            );
        }
        if self.arms.len() > 26 {
            problem("arms", "at most 26 arms".into());
        }
        let mut ids = BTreeSet::new();
        for (i, arm) in self.arms.iter().enumerate() {
            let at = |f: &str| format!("arms[{i}].{f}");
            if arm.id.is_empty()
                || arm.id.len() > 32
                || !arm
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                problem(&at("id"), "use 1-32 lowercase letters, digits and _".into());
            }
            if !ids.insert(arm.id.as_str()) {
                problem(&at("id"), format!("`{}` is used by another arm", arm.id));
            }
            if arm.ratio == 0 || arm.ratio > 100 {
                problem(&at("ratio"), "the ratio must be between 1 and 100".into());
            }
            if arm.name.trim().is_empty() {
                problem(&at("name"), "give the arm a name".into());
            } else if let Err(e) = crate::domain::check_line(&arm.name, MAX_ARM_NAME_CHARS) {
                problem(&at("name"), format!("the name {e}"));
            }
            if let Err(e) = crate::domain::check_free_text(&arm.description, MAX_ARM_TEXT_CHARS) {
                problem(&at("description"), format!("the description {e}"));
            }
            if arm.instructions.trim().is_empty() {
                problem(&at("instructions"), "say what the fylke should do".into());
            } else if let Err(e) =
                crate::domain::check_free_text(&arm.instructions, MAX_ARM_TEXT_CHARS)
            {
                problem(&at("instructions"), format!("the instructions {e}"));
            }
        }

        // Eligibility.
        let e = &self.eligibility;
        for (field, t) in std::iter::once(("eligibility.required".to_owned(), &e.required)).chain(
            e.any_of
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("eligibility.any_of[{i}]"), t)),
        ) {
            if let Some(p) = t.min_baseline_percent
                && !(0.0..=100.0).contains(&p)
            {
                problem(&field, format!("min_baseline_percent {p} is not a percent"));
            }
            if let Some(d) = t.min_lost_workdays_per_year
                && !(d.is_finite() && d >= 0.0)
            {
                problem(
                    &field,
                    format!("min_lost_workdays_per_year {d} must be >= 0"),
                );
            }
        }
        if e.any_of.iter().any(Thresholds::is_empty) {
            problem(
                "eligibility.any_of",
                "an empty threshold set admits everyone; remove it".into(),
            );
        }
        for (i, prefix) in e.naeringskoder.iter().enumerate() {
            if prefix.is_empty() || prefix.len() > 5 || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                problem(
                    &format!("eligibility.naeringskoder[{i}]"),
                    format!("`{prefix}` is not a næringskode prefix of 1-5 digits"),
                );
            }
        }
        if self.design == Design::B && !e.require_villig {
            problem(
                "eligibility.require_villig",
                "design B randomizes only firms that agreed to take part: set require_villig = true"
                    .into(),
            );
        }

        // Baseline window and timing.
        if self.baseline.to < self.baseline.from {
            problem("baseline", "`to` is before `from`".into());
        }
        if self.baseline.to >= self.follow_up.randomization_quarter {
            problem(
                "baseline.to",
                format!(
                    "the baseline must end before the randomization quarter {}",
                    self.follow_up.randomization_quarter
                ),
            );
        }
        if self.follow_up.post_quarters > MAX_WINDOW_QUARTERS {
            problem(
                "follow_up.post_quarters",
                format!(
                    "{} quarters is out of range: at most {MAX_WINDOW_QUARTERS}",
                    self.follow_up.post_quarters
                ),
            );
        }
        if self.follow_up.pre_quarters > MAX_WINDOW_QUARTERS {
            problem(
                "follow_up.pre_quarters",
                format!(
                    "{} quarters is out of range: at most {MAX_WINDOW_QUARTERS}",
                    self.follow_up.pre_quarters
                ),
            );
        }
        if self.follow_up.post_quarters == 0 {
            problem(
                "follow_up.post_quarters",
                "follow firms for at least one quarter".into(),
            );
        }
        if self.follow_up.pre_quarters == 0 {
            problem(
                "follow_up.pre_quarters",
                "difference-in-differences needs at least one pre quarter".into(),
            );
        }

        // Strata.
        let s = &self.strata;
        let mut seen = BTreeSet::new();
        for v in &s.by {
            if !seen.insert(*v) {
                problem("strata.by", format!("`{}` is listed twice", v.as_str()));
            }
        }
        let has = |v: StratumVariable| s.by.contains(&v);
        if has(StratumVariable::Size) && s.size_cuts.is_empty() {
            problem(
                "strata.size_cuts",
                "stratifying by size needs cut points".into(),
            );
        }
        if !s.size_cuts.windows(2).all(|w| w[0] < w[1]) || s.size_cuts.first() == Some(&0) {
            problem(
                "strata.size_cuts",
                "cut points must be positive and increasing".into(),
            );
        }
        if has(StratumVariable::Baseline) {
            match (s.baseline_cuts.is_empty(), s.baseline_quantiles.is_empty()) {
                (true, true) => problem(
                    "strata",
                    "stratifying by baseline needs baseline_cuts or baseline_quantiles".into(),
                ),
                (false, false) => problem(
                    "strata",
                    "give baseline_cuts or baseline_quantiles, not both".into(),
                ),
                _ => {}
            }
        }
        if !s.baseline_cuts.windows(2).all(|w| w[0] < w[1])
            || s.baseline_cuts.iter().any(|c| !(0.0..=100.0).contains(c))
        {
            problem(
                "strata.baseline_cuts",
                "cuts must be increasing percents".into(),
            );
        }
        if !s.baseline_quantiles.windows(2).all(|w| w[0] < w[1])
            || s.baseline_quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0))
        {
            problem(
                "strata.baseline_quantiles",
                "quantiles must be increasing and strictly between 0 and 1".into(),
            );
        }
        if s.min_size == 0 {
            problem("strata.min_size", "at least 1".into());
        }

        // Outcomes and analysis.
        if self.outcomes.primary != PRIMARY_OUTCOME {
            problem(
                "outcomes.primary",
                "the primary outcome is NAV's sick-leave rate: `sykefravar_prosent`".into(),
            );
        }
        self.validate_secondary(&mut problem);
        let a = &self.analysis;
        for (i, name) in a.confirmatory.iter().enumerate() {
            if NOT_IMPLEMENTED.contains(&name.as_str()) {
                problem(
                    &format!("analysis.confirmatory[{i}]"),
                    format!(
                        "{name} is not implemented yet in this version; a confirmatory estimator \
                         must be estimated (implemented: {})",
                        ESTIMATORS
                            .iter()
                            .filter(|e| !NOT_IMPLEMENTED.contains(e))
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            } else if !ESTIMATORS.contains(&name.as_str()) {
                problem(
                    &format!("analysis.confirmatory[{i}]"),
                    format!(
                        "unknown estimator `{name}`; known: {}",
                        ESTIMATORS.join(", ")
                    ),
                );
            }
        }
        if a.weights.is_empty() || a.weights.iter().any(|w| w != "firm" && w != "dagsverk") {
            problem("analysis.weights", "use `firm` and/or `dagsverk`".into());
        }
        if !(a.alpha > 0.0 && a.alpha < 0.5) {
            problem("analysis.alpha", "alpha must be in (0, 0.5)".into());
        }
        if a.multiplicity != "holm" {
            problem(
                "analysis.multiplicity",
                "use `holm`: the confirmatory family is always Holm-adjusted (ANALYSIS.md §6); \
                 `none` is not supported"
                    .into(),
            );
        }
        if a.family != "arms_x_primary" {
            problem(
                "analysis.family",
                "the supported family is `arms_x_primary`".into(),
            );
        }

        // Seed commitment.
        if self.seed.sha256.is_empty() {
            problem("seed.sha256", "commit to at least one wave's seed".into());
        }
        for (i, h) in self.seed.sha256.iter().enumerate() {
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                problem(
                    &format!("seed.sha256[{i}]"),
                    "64 lowercase hex digits: the output of `printf %s SEED | sha256sum`".into(),
                );
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Invalid(problems))
        }
    }

    /// Every secondary outcome is estimated or a declared survey measure (issue 10, defect 9): a
    /// name ia-rct knows but does not estimate is refused with the reason, an unknown one with the
    /// names it knows.
    fn validate_secondary(&self, problem: &mut impl FnMut(&str, String)) {
        let o = &self.outcomes;
        let known = || {
            format!(
                "known: {PRIMARY_OUTCOME} (the primary), {} (NAV statistics, not estimated in this \
                 version), or a work-environment survey measure (the `maal` of the survey \
                 uploads) also listed in outcomes.survey",
                OUTCOMES_NOT_ESTIMATED
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut seen = BTreeSet::new();
        for (i, name) in o.secondary.iter().enumerate() {
            let field = format!("outcomes.secondary[{i}]");
            if !seen.insert(name.as_str()) {
                problem(&field, format!("`{name}` is listed twice"));
            } else if name == PRIMARY_OUTCOME {
                problem(
                    &field,
                    format!("`{name}` is the primary outcome; do not list it as secondary"),
                );
            } else if let Some((_, why)) = OUTCOMES_NOT_ESTIMATED.iter().find(|(n, _)| n == name) {
                problem(
                    &field,
                    format!(
                        "`{name}` is not estimated in this version, so no estimate would come: \
                         {why}; remove it"
                    ),
                );
            } else if !o.survey.contains(name) {
                problem(
                    &field,
                    format!("unknown outcome `{}`; {}", display_name(name), known()),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for (i, name) in o.survey.iter().enumerate() {
            let field = format!("outcomes.survey[{i}]");
            let chars = name.chars().count();
            if name.trim().is_empty()
                || name.trim() != name
                || chars > MAX_SURVEY_NAME_CHARS
                || name.chars().any(|c| c.is_control() || is_format_char(c))
            {
                problem(
                    &field,
                    format!(
                        "a survey measure is named as in the uploads' `maal`: 1-{MAX_SURVEY_NAME_CHARS} \
                         characters, no surrounding spaces, control or format characters"
                    ),
                );
            } else if !seen.insert(name.as_str()) {
                problem(&field, format!("`{name}` is listed twice"));
            } else if name == PRIMARY_OUTCOME
                || OUTCOMES_NOT_ESTIMATED.iter().any(|(n, _)| n == name)
            {
                problem(
                    &field,
                    format!("`{name}` comes from NAV's statistics, not from a survey"),
                );
            } else if !o.secondary.contains(name) {
                problem(
                    &field,
                    format!("list the survey measure `{name}` in outcomes.secondary as well"),
                );
            }
        }
    }

    /// Whether `seed` is the committed seed of wave `wave` (1-based).
    pub fn seed_matches(&self, wave: u32, seed: &str) -> bool {
        let hash = hex::encode(Sha256::digest(seed.as_bytes()));
        usize::try_from(wave)
            .ok()
            .and_then(|w| w.checked_sub(1))
            .and_then(|i| self.seed.sha256.get(i))
            .is_some_and(|committed| *committed == hash)
    }
}

/// A name as shown in a message: at most 64 characters, control and format characters escaped.
fn display_name(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(64)
        .flat_map(|c| {
            if c.is_control() || is_format_char(c) {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if name.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

/// Unicode format characters (category Cf) that can reorder or hide text: bidi controls, zero
/// width characters, the BOM, soft hyphen.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests;
