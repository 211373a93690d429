//! What the store keeps about trials: protocol versions, enrollment, draws, assignments and
//! acknowledgements, and the SQL both backends share for them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::StoreError;
use crate::domain::{Bransje, FylkeCode, Naeringskode, Orgnr, Sektor};
use crate::protocol::{Exclusion, Protocol, TrialState};

/// A trial as stored: its state and current protocol.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrialInfo {
    /// The protocol's id.
    pub id: String,
    /// Lifecycle state.
    pub state: TrialState,
    /// The current protocol version.
    pub version: u32,
    /// SHA-256 of the current version's canonical JSON.
    pub content_hash: String,
    /// The current protocol.
    pub protocol: Protocol,
    /// Waves drawn so far.
    pub waves_drawn: u32,
    /// When the trial was created.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl TrialInfo {
    /// The wave enrollment and the next draw are for.
    pub fn current_wave(&self) -> u32 {
        self.waves_drawn + 1
    }
}

/// One stored version of a protocol.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProtocolVersionInfo {
    /// The version.
    pub version: u32,
    /// Its content hash.
    pub content_hash: String,
    /// The protocol.
    pub protocol: Protocol,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
}

/// One enrolled firm: the facts eligibility and strata used, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EnrollmentRecord {
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// The wave it was enrolled in.
    pub wave: u32,
    /// The upload it came in.
    pub upload_id: i64,
    /// Name.
    pub navn: Option<String>,
    /// Fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// Kommunenummer.
    pub kommunenummer: Option<String>,
    /// Næringskode.
    #[schema(value_type = String)]
    pub naeringskode: Naeringskode,
    /// Bransje in the protocol's standard.
    #[schema(value_type = String)]
    pub bransje: Bransje,
    /// Sector.
    #[schema(value_type = String)]
    pub sektor: Sektor,
    /// Employees.
    pub antall_ansatte: u32,
    /// Parent unit.
    #[schema(value_type = Option<String>)]
    pub overordnet_enhet: Option<Orgnr>,
    /// Agreed to take part.
    pub villig: Option<bool>,
    /// Baseline-window `[tapte, mulige]` dagsverk.
    #[schema(value_type = Option<Vec<f64>>, min_items = 2, max_items = 2)]
    pub baseline: Option<(f64, f64)>,
    /// Numeric covariates.
    pub covariates: BTreeMap<String, f64>,
    /// Eligible under the protocol version in force at enrollment.
    pub eligible: bool,
    /// Why not, if not.
    pub exclusions: Vec<Exclusion>,
    /// The cluster it is randomized with, if any.
    #[schema(value_type = Option<String>)]
    pub klynge: Option<Orgnr>,
}

impl EnrollmentRecord {
    /// The firm's row in the canonical unit list a draw is computed from (`units.csv`).
    pub fn unit_row(&self) -> crate::randomization::plan::UnitRow {
        crate::randomization::plan::UnitRow {
            orgnr: self.orgnr,
            klynge: self.klynge,
            fylke: self.fylke,
            bransje: self.bransje,
            sektor: self.sektor,
            antall_ansatte: self.antall_ansatte,
            dagsverk: self.baseline,
        }
    }
}

/// An enrollment upload to store.
#[derive(Debug, Clone)]
pub struct NewEnrollment {
    /// The wave.
    pub wave: u32,
    /// SHA-256 of the uploaded bytes.
    pub sha256: String,
    /// The firms with their verdicts.
    pub firms: Vec<EnrollmentRecord>,
    /// Who uploads.
    pub created_by: String,
}

/// The receipt of an accepted enrollment upload.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UploadReceipt {
    /// The upload's id.
    pub upload_id: i64,
    /// The wave.
    pub wave: u32,
    /// SHA-256 of the uploaded bytes.
    pub sha256: String,
    /// Firms in the upload.
    pub firms: usize,
    /// Of which eligible.
    pub eligible: usize,
}

/// A draw as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DrawRecord {
    /// The wave.
    pub wave: u32,
    /// The protocol version drawn under.
    pub protocol_version: u32,
    /// Its hash.
    pub protocol_hash: String,
    /// The algorithm.
    pub algorithm: String,
    /// The seed (published once drawn).
    pub seed: String,
    /// The baseline cuts the strata used.
    pub baseline_cuts: Vec<f64>,
    /// SHA-256 of the canonical unit list the draw was computed from (`units.csv`).
    pub units_sha256: String,
    /// When.
    pub drawn_at: DateTime<Utc>,
    /// By whom.
    pub drawn_by: String,
}

/// One firm's stored assignment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AssignmentRecord {
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// The wave.
    pub wave: u32,
    /// The firm's fylke (who receives the assignment).
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// The arm's id.
    pub arm: String,
    /// The stratum.
    pub stratum: String,
    /// The cluster.
    #[schema(value_type = Option<String>)]
    pub klynge: Option<Orgnr>,
    /// The probability of the firm's arm.
    pub sannsynlighet: f64,
    /// Every arm's probability, in protocol order.
    pub probabilities: Vec<f64>,
}

/// A draw and its assignments, to store together.
#[derive(Debug, Clone)]
pub struct NewDraw {
    /// The draw.
    pub draw: DrawRecord,
    /// The assignments.
    pub assignments: Vec<AssignmentRecord>,
}

/// A fylke's acknowledgement of a wave's assignments.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Acknowledgement {
    /// The wave.
    pub wave: u32,
    /// The fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// How many of its firms the wave assigned.
    pub firms: usize,
    /// When.
    pub acknowledged_at: DateTime<Utc>,
    /// By whom.
    pub acknowledged_by: String,
}

/// Which enrolled firms to read, and which page of them.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    /// Only this fylke's firms.
    pub fylke: Option<FylkeCode>,
    /// Only this wave's.
    pub wave: Option<u32>,
    /// Only this upload's.
    pub upload_id: Option<i64>,
    /// Only the eligible (`true`) or the excluded (`false`).
    pub eligible: Option<bool>,
    /// Only firms after this orgnr (the cursor).
    pub after: Option<Orgnr>,
    /// At most this many.
    pub limit: u32,
}

/// A page of enrolled firms and what the whole list holds.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentPage {
    /// The page, sorted by orgnr.
    pub firms: Vec<EnrollmentRecord>,
    /// Firms matching every filter but the cursor, over all pages.
    pub total: u64,
    /// Of the firms matching the fylke, wave and upload filters, how many are excluded (whatever
    /// the `eligible` filter says).
    pub excluded_total: u64,
}

/// An assignment with the firm's name and kommune from the register it was enrolled from.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignedFirm {
    /// The assignment.
    pub assignment: AssignmentRecord,
    /// The firm's name in the register, if it had one.
    pub navn: Option<String>,
    /// Its kommunenummer in the register, if it had one.
    pub kommunenummer: Option<String>,
}

/// How many firms a wave assigned in a fylke.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentCount {
    /// The wave.
    pub wave: u32,
    /// The fylke.
    pub fylke: FylkeCode,
    /// Its firms assigned in the wave.
    pub firms: usize,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn u32_of(v: i32) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(corrupt)
}

/// An integer column value from a `u32` (both backends store INTEGER as 32-bit signed).
pub(super) fn i32_of(v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Conflict(format!("{v} is too large to store")))
}

pub(super) const LOCK_TRIAL: &str = "\
    UPDATE trials SET updated_at = $1 WHERE id = $2 \
    RETURNING state, current_version";

pub(super) const INSERT_TRIAL: &str = "\
    INSERT INTO trials (id, state, current_version, created_at, created_by, updated_at) \
    VALUES ($1, 'draft', $2, $3, $4, $3)";

/// The first revision of a version (a new trial's, or a registered trial's next version).
pub(super) const INSERT_VERSION: &str = "\
    INSERT INTO protocol_versions (trial_id, version, revision, content_hash, canonical_json, created_at, created_by) \
    VALUES ($1, $2, 1, $3, $4, $5, $6)";

/// A draft replaced: the next revision of its version. Stored versions are never updated (the
/// database refuses it); reads take a version's latest revision.
pub(super) const INSERT_REVISION: &str = "\
    INSERT INTO protocol_versions (trial_id, version, revision, content_hash, canonical_json, created_at, created_by) \
    SELECT $1, $2, COALESCE(MAX(revision), 0) + 1, $3, $4, $5, $6 \
    FROM protocol_versions WHERE trial_id = $1 AND version = $2";

pub(super) const SET_VERSION: &str = "UPDATE trials SET current_version = $1 WHERE id = $2";

pub(super) const SET_STATE: &str = "UPDATE trials SET state = $1 WHERE id = $2";

pub(super) const SELECT_TRIALS: &str = "\
    SELECT t.id, t.state, t.current_version, v.content_hash, v.canonical_json, \
           (SELECT COUNT(*) FROM draws d WHERE d.trial_id = t.id) AS waves_drawn, \
           t.created_at, t.created_by, t.updated_at \
    FROM trials t JOIN protocol_versions v ON v.trial_id = t.id AND v.version = t.current_version \
        AND v.revision = (SELECT MAX(r.revision) FROM protocol_versions r \
                          WHERE r.trial_id = t.id AND r.version = t.current_version) \
    WHERE ($1 IS NULL OR t.id = $1) \
    ORDER BY t.id";

pub(super) const SELECT_VERSIONS: &str = "\
    SELECT v.version, v.content_hash, v.canonical_json, v.created_at, v.created_by \
    FROM protocol_versions v WHERE v.trial_id = $1 \
      AND v.revision = (SELECT MAX(r.revision) FROM protocol_versions r \
                        WHERE r.trial_id = v.trial_id AND r.version = v.version) \
    ORDER BY v.version";

pub(super) const INSERT_UPLOAD: &str = "\
    INSERT INTO enrollment_uploads (trial_id, wave, sha256, firms, eligible, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

pub(super) const INSERT_ENROLLMENT: &str = "\
    INSERT INTO enrollments (trial_id, orgnr, wave, upload_id, navn, fylke, kommunenummer, naeringskode, \
        bransje, sektor, antall_ansatte, overordnet_enhet, villig, baseline_tapte, baseline_mulige, \
        covariates, eligible, exclusions, klynge) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

pub(super) const ENROLLED_ORGNRS: &str = "SELECT orgnr FROM enrollments WHERE trial_id = $1";

pub(super) const SELECT_ENROLLMENTS: &str = "\
    SELECT orgnr, wave, upload_id, navn, fylke, kommunenummer, naeringskode, bransje, sektor, \
           antall_ansatte, overordnet_enhet, villig, baseline_tapte, baseline_mulige, covariates, \
           eligible, exclusions, klynge \
    FROM enrollments \
    WHERE trial_id = $1 AND ($2 IS NULL OR fylke = $2) AND ($3 IS NULL OR wave = $3) \
    ORDER BY orgnr";

/// The filters every enrollment page and its counts share ($1 trial, $2 fylke, $3 wave, $4 upload).
const ENROLLMENT_FILTERS: &str = "trial_id = $1 AND ($2 IS NULL OR fylke = $2) \
    AND ($3 IS NULL OR wave = $3) AND ($4 IS NULL OR upload_id = $4)";

/// A page of enrollments: the shared filters, $5 eligible, $6 the cursor, $7 the page size.
pub(super) fn select_enrollment_page() -> String {
    format!(
        "SELECT orgnr, wave, upload_id, navn, fylke, kommunenummer, naeringskode, bransje, sektor, \
                antall_ansatte, overordnet_enhet, villig, baseline_tapte, baseline_mulige, \
                covariates, eligible, exclusions, klynge \
         FROM enrollments \
         WHERE {ENROLLMENT_FILTERS} AND ($5 IS NULL OR eligible = $5) AND ($6 IS NULL OR orgnr > $6) \
         ORDER BY orgnr LIMIT $7"
    )
}

/// The counts of an enrollment page: the shared filters, $5 eligible.
pub(super) fn count_enrollment_page() -> String {
    format!(
        "SELECT COALESCE(SUM(CASE WHEN $5 IS NULL OR eligible = $5 THEN 1 ELSE 0 END), 0) AS total, \
                COALESCE(SUM(CASE WHEN eligible THEN 0 ELSE 1 END), 0) AS excluded \
         FROM enrollments WHERE {ENROLLMENT_FILTERS}"
    )
}

pub(super) const COUNT_ELIGIBLE_IN_WAVE: &str =
    "SELECT COUNT(*) FROM enrollments WHERE trial_id = $1 AND wave = $2 AND eligible";

pub(super) const INSERT_DRAW: &str = "\
    INSERT INTO draws (trial_id, wave, protocol_version, protocol_hash, algorithm, seed, baseline_cuts, units_sha256, drawn_at, drawn_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub(super) const SELECT_DRAWS: &str = "\
    SELECT wave, protocol_version, protocol_hash, algorithm, seed, baseline_cuts, units_sha256, drawn_at, drawn_by \
    FROM draws WHERE trial_id = $1 ORDER BY wave";

pub(super) const INSERT_ASSIGNMENT: &str = "\
    INSERT INTO assignments (trial_id, orgnr, wave, fylke, arm, stratum, klynge, sannsynlighet, probabilities) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(super) const SELECT_ASSIGNMENTS: &str = "\
    SELECT orgnr, wave, fylke, arm, stratum, klynge, sannsynlighet, probabilities \
    FROM assignments \
    WHERE trial_id = $1 AND ($2 IS NULL OR fylke = $2) AND ($3 IS NULL OR orgnr > $3) \
    ORDER BY orgnr LIMIT $4";

/// Assignments with the firm's name and kommune from its enrollment (every assignment has one).
pub(super) const SELECT_ASSIGNED_FIRMS: &str = "\
    SELECT a.orgnr, a.wave, a.fylke, a.arm, a.stratum, a.klynge, a.sannsynlighet, a.probabilities, \
           e.navn, e.kommunenummer \
    FROM assignments a JOIN enrollments e ON e.trial_id = a.trial_id AND e.orgnr = a.orgnr \
    WHERE a.trial_id = $1 AND ($2 IS NULL OR a.fylke = $2) AND ($3 IS NULL OR a.orgnr > $3) \
    ORDER BY a.orgnr LIMIT $4";

/// Firms assigned per wave and fylke.
pub(super) const COUNT_ASSIGNMENTS_BY_FYLKE: &str = "\
    SELECT wave, fylke, COUNT(*) AS firms FROM assignments WHERE trial_id = $1 \
    GROUP BY wave, fylke ORDER BY wave, fylke";

pub(super) const COUNT_ASSIGNMENTS_FOR: &str =
    "SELECT COUNT(*) FROM assignments WHERE trial_id = $1 AND wave = $2 AND fylke = $3";

pub(super) const INSERT_ACK: &str = "\
    INSERT INTO acknowledgements (trial_id, wave, fylke, firms, acknowledged_at, acknowledged_by) \
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(super) const SELECT_ACKS: &str = "\
    SELECT wave, fylke, firms, acknowledged_at, acknowledged_by \
    FROM acknowledgements WHERE trial_id = $1 ORDER BY wave, fylke";

#[derive(sqlx::FromRow)]
pub(super) struct TrialRow {
    id: String,
    state: String,
    current_version: i32,
    content_hash: String,
    canonical_json: String,
    waves_drawn: i64,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TrialRow> for TrialInfo {
    type Error = StoreError;
    fn try_from(r: TrialRow) -> Result<Self, StoreError> {
        Ok(TrialInfo {
            id: r.id,
            state: r.state.parse().map_err(corrupt)?,
            version: u32_of(r.current_version)?,
            content_hash: r.content_hash,
            protocol: Protocol::from_stored_json(&r.canonical_json).map_err(corrupt)?,
            waves_drawn: u32::try_from(r.waves_drawn).map_err(corrupt)?,
            created_at: r.created_at,
            created_by: r.created_by,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    version: i32,
    content_hash: String,
    canonical_json: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl TryFrom<VersionRow> for ProtocolVersionInfo {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> Result<Self, StoreError> {
        Ok(ProtocolVersionInfo {
            version: u32_of(r.version)?,
            content_hash: r.content_hash,
            protocol: Protocol::from_stored_json(&r.canonical_json).map_err(corrupt)?,
            created_at: r.created_at,
            created_by: r.created_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EnrollmentRow {
    orgnr: String,
    wave: i32,
    upload_id: i64,
    navn: Option<String>,
    fylke: String,
    kommunenummer: Option<String>,
    naeringskode: String,
    bransje: String,
    sektor: String,
    antall_ansatte: i32,
    overordnet_enhet: Option<String>,
    villig: Option<bool>,
    baseline_tapte: Option<f64>,
    baseline_mulige: Option<f64>,
    covariates: Json<BTreeMap<String, f64>>,
    eligible: bool,
    exclusions: Json<Vec<Exclusion>>,
    klynge: Option<String>,
}

fn orgnr(s: &str) -> Result<Orgnr, StoreError> {
    s.parse().map_err(corrupt)
}

impl TryFrom<EnrollmentRow> for EnrollmentRecord {
    type Error = StoreError;
    fn try_from(r: EnrollmentRow) -> Result<Self, StoreError> {
        Ok(EnrollmentRecord {
            orgnr: orgnr(&r.orgnr)?,
            wave: u32_of(r.wave)?,
            upload_id: r.upload_id,
            navn: r.navn,
            fylke: r.fylke.parse().map_err(corrupt)?,
            kommunenummer: r.kommunenummer,
            naeringskode: r.naeringskode.parse().map_err(corrupt)?,
            bransje: r.bransje.parse().map_err(corrupt)?,
            sektor: r.sektor.parse().map_err(corrupt)?,
            antall_ansatte: u32_of(r.antall_ansatte)?,
            overordnet_enhet: r.overordnet_enhet.as_deref().map(orgnr).transpose()?,
            villig: r.villig,
            baseline: r.baseline_tapte.zip(r.baseline_mulige),
            covariates: r.covariates.0,
            eligible: r.eligible,
            exclusions: r.exclusions.0,
            klynge: r.klynge.as_deref().map(orgnr).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DrawRow {
    wave: i32,
    protocol_version: i32,
    protocol_hash: String,
    algorithm: String,
    seed: String,
    baseline_cuts: Json<Vec<f64>>,
    units_sha256: String,
    drawn_at: DateTime<Utc>,
    drawn_by: String,
}

impl TryFrom<DrawRow> for DrawRecord {
    type Error = StoreError;
    fn try_from(r: DrawRow) -> Result<Self, StoreError> {
        Ok(DrawRecord {
            wave: u32_of(r.wave)?,
            protocol_version: u32_of(r.protocol_version)?,
            protocol_hash: r.protocol_hash,
            algorithm: r.algorithm,
            seed: r.seed,
            baseline_cuts: r.baseline_cuts.0,
            units_sha256: r.units_sha256,
            drawn_at: r.drawn_at,
            drawn_by: r.drawn_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AssignmentDbRow {
    orgnr: String,
    wave: i32,
    fylke: String,
    arm: String,
    stratum: String,
    klynge: Option<String>,
    sannsynlighet: f64,
    probabilities: Json<Vec<f64>>,
}

impl TryFrom<AssignmentDbRow> for AssignmentRecord {
    type Error = StoreError;
    fn try_from(r: AssignmentDbRow) -> Result<Self, StoreError> {
        Ok(AssignmentRecord {
            orgnr: orgnr(&r.orgnr)?,
            wave: u32_of(r.wave)?,
            fylke: r.fylke.parse().map_err(corrupt)?,
            arm: r.arm,
            stratum: r.stratum,
            klynge: r.klynge.as_deref().map(orgnr).transpose()?,
            sannsynlighet: r.sannsynlighet,
            probabilities: r.probabilities.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AssignedFirmRow {
    #[sqlx(flatten)]
    assignment: AssignmentDbRow,
    navn: Option<String>,
    kommunenummer: Option<String>,
}

impl TryFrom<AssignedFirmRow> for AssignedFirm {
    type Error = StoreError;
    fn try_from(r: AssignedFirmRow) -> Result<Self, StoreError> {
        Ok(AssignedFirm {
            assignment: AssignmentRecord::try_from(r.assignment)?,
            navn: r.navn,
            kommunenummer: r.kommunenummer,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AssignmentCountRow {
    wave: i32,
    fylke: String,
    firms: i64,
}

impl TryFrom<AssignmentCountRow> for AssignmentCount {
    type Error = StoreError;
    fn try_from(r: AssignmentCountRow) -> Result<Self, StoreError> {
        Ok(AssignmentCount {
            wave: u32_of(r.wave)?,
            fylke: r.fylke.parse().map_err(corrupt)?,
            firms: usize::try_from(r.firms).map_err(corrupt)?,
        })
    }
}

/// The counts of an enrollment page as read.
#[derive(sqlx::FromRow)]
pub(super) struct EnrollmentCountRow {
    total: i64,
    excluded: i64,
}

impl EnrollmentCountRow {
    /// The page with these counts.
    pub(super) fn page(self, firms: Vec<EnrollmentRecord>) -> Result<EnrollmentPage, StoreError> {
        Ok(EnrollmentPage {
            firms,
            total: u64::try_from(self.total).map_err(corrupt)?,
            excluded_total: u64::try_from(self.excluded).map_err(corrupt)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AckRow {
    wave: i32,
    fylke: String,
    firms: i32,
    acknowledged_at: DateTime<Utc>,
    acknowledged_by: String,
}

impl TryFrom<AckRow> for Acknowledgement {
    type Error = StoreError;
    fn try_from(r: AckRow) -> Result<Self, StoreError> {
        Ok(Acknowledgement {
            wave: u32_of(r.wave)?,
            fylke: r.fylke.parse().map_err(corrupt)?,
            firms: usize::try_from(r.firms).map_err(corrupt)?,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
        })
    }
}

/// Implements [`super::TrialStore`] for a backend store type (see `impl_store!`).
macro_rules! impl_trial_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Locks the trial for the rest of the transaction (the first statement writes, so the
            /// transaction holds the write lock from the start on SQLite and the row lock on
            /// PostgreSQL) and returns it.
            async fn lock_trial(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<TrialInfo, StoreError> {
                let locked: Option<(String, i32)> = sqlx::query_as(trials::LOCK_TRIAL)
                    .bind(now)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                if locked.is_none() {
                    return Err(StoreError::NotFound);
                }
                let row: trials::TrialRow = sqlx::query_as(trials::SELECT_TRIALS)
                    .bind(Some(id))
                    .fetch_one(&mut **tx)
                    .await?;
                TrialInfo::try_from(row)
            }

            async fn trial_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
            ) -> Result<TrialInfo, StoreError> {
                let row: trials::TrialRow = sqlx::query_as(trials::SELECT_TRIALS)
                    .bind(Some(id))
                    .fetch_one(&mut **tx)
                    .await?;
                TrialInfo::try_from(row)
            }
        }

        #[async_trait::async_trait]
        impl TrialStore for $store {
            async fn create_trial(
                &self,
                protocol: &Protocol,
                by: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<TrialInfo>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(trials::INSERT_TRIAL)
                    .bind(protocol.id.as_str())
                    .bind(trials::i32_of(protocol.version)?)
                    .bind(audit.at)
                    .bind(by)
                    .execute(&mut *tx)
                    .await;
                if let Err(sqlx::Error::Database(db)) = &inserted
                    && db.is_unique_violation()
                {
                    return Err(StoreError::Conflict(format!(
                        "a trial with id `{}` exists; change its protocol with PUT /v1/trials/{}/protocol",
                        protocol.id, protocol.id
                    )));
                }
                inserted?;
                sqlx::query(trials::INSERT_VERSION)
                    .bind(protocol.id.as_str())
                    .bind(trials::i32_of(protocol.version)?)
                    .bind(protocol.content_hash())
                    .bind(protocol.canonical_json())
                    .bind(audit.at)
                    .bind(by)
                    .execute(&mut *tx)
                    .await?;
                let info = Self::trial_in(&mut tx, &protocol.id).await?;
                let mut audit = audit.clone();
                audit.trial_id = Some(protocol.id.clone());
                audit.object_ids.push(format!("protocol:{}@{}", protocol.id, protocol.version));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(info, audit_id))
            }

            async fn list_trials(&self) -> Result<Vec<TrialInfo>, StoreError> {
                let rows: Vec<trials::TrialRow> = sqlx::query_as(trials::SELECT_TRIALS)
                    .bind(None::<&str>)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(TrialInfo::try_from).collect()
            }

            async fn get_trial(&self, id: &str) -> Result<TrialInfo, StoreError> {
                let row: Option<trials::TrialRow> = sqlx::query_as(trials::SELECT_TRIALS)
                    .bind(Some(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TrialInfo::try_from).transpose()?.ok_or(StoreError::NotFound)
            }

            async fn save_protocol(
                &self,
                protocol: &Protocol,
                by: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<TrialInfo>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let trial = Self::lock_trial(&mut tx, &protocol.id, audit.at).await?;
                let version = trials::i32_of(protocol.version)?;
                match trial.state {
                    TrialState::Draft if protocol.version == trial.version => {
                        sqlx::query(trials::INSERT_REVISION)
                            .bind(protocol.id.as_str())
                            .bind(version)
                            .bind(protocol.content_hash())
                            .bind(protocol.canonical_json())
                            .bind(audit.at)
                            .bind(by)
                            .execute(&mut *tx)
                            .await?;
                    }
                    TrialState::Draft => {
                        return Err(StoreError::Conflict(format!(
                            "a draft is edited in place: keep version = {}",
                            trial.version
                        )));
                    }
                    TrialState::Registered if protocol.version == trial.version + 1 => {
                        sqlx::query(trials::INSERT_VERSION)
                            .bind(protocol.id.as_str())
                            .bind(version)
                            .bind(protocol.content_hash())
                            .bind(protocol.canonical_json())
                            .bind(audit.at)
                            .bind(by)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(trials::SET_VERSION)
                            .bind(version)
                            .bind(protocol.id.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    TrialState::Registered => {
                        return Err(StoreError::Conflict(format!(
                            "version {} is registered and its hash is fixed; a change is a new \
                             version: set version = {}",
                            trial.version,
                            trial.version + 1
                        )));
                    }
                    state => {
                        return Err(StoreError::Conflict(format!(
                            "the protocol is locked once enrollment has started (the trial is {state})"
                        )));
                    }
                }
                let info = Self::trial_in(&mut tx, &protocol.id).await?;
                let mut audit = audit.clone();
                audit.trial_id = Some(protocol.id.clone());
                audit.object_ids.push(format!("protocol:{}@{}", protocol.id, protocol.version));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(info, audit_id))
            }

            async fn protocol_versions(&self, id: &str) -> Result<Vec<ProtocolVersionInfo>, StoreError> {
                let rows: Vec<trials::VersionRow> = sqlx::query_as(trials::SELECT_VERSIONS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                if rows.is_empty() {
                    return Err(StoreError::NotFound);
                }
                rows.into_iter().map(ProtocolVersionInfo::try_from).collect()
            }

            async fn transition_trial(
                &self,
                id: &str,
                to: TrialState,
                audit: &NewAuditEntry,
            ) -> Result<Audited<TrialInfo>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let trial = Self::lock_trial(&mut tx, id, audit.at).await?;
                trial.state.check_transition(to).map_err(StoreError::Conflict)?;
                if trial.state == TrialState::Randomized
                    && to == TrialState::Enrolling
                    && trial.protocol.seed.sha256.len() <= trial.waves_drawn as usize
                {
                    return Err(StoreError::Conflict(format!(
                        "all {} committed wave(s) are drawn; another wave needs a new protocol \
                         version, which cannot follow randomization: follow up instead",
                        trial.waves_drawn
                    )));
                }
                if trial.state == TrialState::Enrolling && trial.waves_drawn == 0 {
                    return Err(StoreError::Conflict(
                        "no wave has been randomized: draw the first wave before follow-up".to_owned(),
                    ));
                }
                sqlx::query(trials::SET_STATE)
                    .bind(to.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let info = Self::trial_in(&mut tx, id).await?;
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.push(format!("state:{}->{}", trial.state, to));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(info, audit_id))
            }

            async fn enroll(
                &self,
                id: &str,
                upload: &NewEnrollment,
                audit: &NewAuditEntry,
            ) -> Result<Audited<UploadReceipt>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let trial = Self::lock_trial(&mut tx, id, audit.at).await?;
                if trial.state != TrialState::Enrolling {
                    return Err(StoreError::Conflict(format!(
                        "firms are enrolled only while the trial is enrolling (it is {})",
                        trial.state
                    )));
                }
                if upload.wave != trial.current_wave() {
                    return Err(StoreError::Conflict(format!(
                        "the open wave is {}, not {}",
                        trial.current_wave(),
                        upload.wave
                    )));
                }
                let enrolled: std::collections::BTreeSet<String> =
                    sqlx::query_scalar(trials::ENROLLED_ORGNRS)
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .collect();
                let already: Vec<String> = upload
                    .firms
                    .iter()
                    .map(|f| f.orgnr.to_string())
                    .filter(|o| enrolled.contains(o))
                    .collect();
                if !already.is_empty() {
                    let shown: Vec<&str> = already.iter().take(20).map(String::as_str).collect();
                    return Err(StoreError::Conflict(format!(
                        "{} firm(s) are already enrolled in this trial: {}{}",
                        already.len(),
                        shown.join(", "),
                        if already.len() > shown.len() { ", …" } else { "" }
                    )));
                }
                let eligible = upload.firms.iter().filter(|f| f.eligible).count();
                let upload_id: i64 = sqlx::query_scalar(trials::INSERT_UPLOAD)
                    .bind(id)
                    .bind(trials::i32_of(upload.wave)?)
                    .bind(upload.sha256.as_str())
                    .bind(i64::try_from(upload.firms.len()).unwrap_or(i64::MAX))
                    .bind(i64::try_from(eligible).unwrap_or(i64::MAX))
                    .bind(audit.at)
                    .bind(upload.created_by.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                for f in &upload.firms {
                    sqlx::query(trials::INSERT_ENROLLMENT)
                        .bind(id)
                        .bind(f.orgnr.to_string())
                        .bind(trials::i32_of(upload.wave)?)
                        .bind(upload_id)
                        .bind(f.navn.as_deref())
                        .bind(f.fylke.as_str())
                        .bind(f.kommunenummer.as_deref())
                        .bind(f.naeringskode.as_str())
                        .bind(f.bransje.as_str())
                        .bind(f.sektor.as_str())
                        .bind(trials::i32_of(f.antall_ansatte)?)
                        .bind(f.overordnet_enhet.map(|o| o.to_string()))
                        .bind(f.villig)
                        .bind(f.baseline.map(|b| b.0))
                        .bind(f.baseline.map(|b| b.1))
                        .bind(sqlx::types::Json(&f.covariates))
                        .bind(f.eligible)
                        .bind(sqlx::types::Json(&f.exclusions))
                        .bind(f.klynge.map(|o| o.to_string()))
                        .execute(&mut *tx)
                        .await?;
                }
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.push(format!("upload:{upload_id}"));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(
                    UploadReceipt {
                        upload_id,
                        wave: upload.wave,
                        sha256: upload.sha256.clone(),
                        firms: upload.firms.len(),
                        eligible,
                    },
                    audit_id,
                ))
            }

            async fn enrollments(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
                wave: Option<u32>,
            ) -> Result<Vec<EnrollmentRecord>, StoreError> {
                let wave = wave.map(trials::i32_of).transpose()?;
                let rows: Vec<trials::EnrollmentRow> = sqlx::query_as(trials::SELECT_ENROLLMENTS)
                    .bind(id)
                    .bind(fylke.map(|f| f.as_str()))
                    .bind(wave)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(EnrollmentRecord::try_from).collect()
            }

            async fn enrollment_page(
                &self,
                id: &str,
                filter: &EnrollmentFilter,
            ) -> Result<EnrollmentPage, StoreError> {
                let fylke = filter.fylke.map(|f| f.as_str());
                let wave = filter.wave.map(trials::i32_of).transpose()?;
                // One transaction, so the page and its counts see the same enrollments.
                let mut tx = self.pool.begin().await?;
                let rows: Vec<trials::EnrollmentRow> =
                    sqlx::query_as(&trials::select_enrollment_page())
                        .bind(id)
                        .bind(fylke)
                        .bind(wave)
                        .bind(filter.upload_id)
                        .bind(filter.eligible)
                        .bind(filter.after.map(|o| o.to_string()))
                        .bind(i64::from(filter.limit))
                        .fetch_all(&mut *tx)
                        .await?;
                let counts: trials::EnrollmentCountRow =
                    sqlx::query_as(&trials::count_enrollment_page())
                        .bind(id)
                        .bind(fylke)
                        .bind(wave)
                        .bind(filter.upload_id)
                        .bind(filter.eligible)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                let firms = rows
                    .into_iter()
                    .map(EnrollmentRecord::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                counts.page(firms)
            }

            async fn record_draw(
                &self,
                id: &str,
                new: &NewDraw,
                audit: &NewAuditEntry,
            ) -> Result<Audited<DrawRecord>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let trial = Self::lock_trial(&mut tx, id, audit.at).await?;
                let draw = &new.draw;
                if trial.state != TrialState::Enrolling {
                    return Err(StoreError::Conflict(format!(
                        "a wave is drawn while the trial is enrolling (it is {})",
                        trial.state
                    )));
                }
                if draw.wave != trial.current_wave() || draw.protocol_hash != trial.content_hash {
                    return Err(StoreError::Conflict(
                        "the trial changed while randomizing; try again".to_owned(),
                    ));
                }
                let eligible: i64 = sqlx::query_scalar(trials::COUNT_ELIGIBLE_IN_WAVE)
                    .bind(id)
                    .bind(trials::i32_of(draw.wave)?)
                    .fetch_one(&mut *tx)
                    .await?;
                if usize::try_from(eligible).ok() != Some(new.assignments.len()) {
                    return Err(StoreError::Conflict(
                        "firms were enrolled while randomizing; try again".to_owned(),
                    ));
                }
                sqlx::query(trials::INSERT_DRAW)
                    .bind(id)
                    .bind(trials::i32_of(draw.wave)?)
                    .bind(trials::i32_of(draw.protocol_version)?)
                    .bind(draw.protocol_hash.as_str())
                    .bind(draw.algorithm.as_str())
                    .bind(draw.seed.as_str())
                    .bind(sqlx::types::Json(&draw.baseline_cuts))
                    .bind(draw.units_sha256.as_str())
                    .bind(draw.drawn_at)
                    .bind(draw.drawn_by.as_str())
                    .execute(&mut *tx)
                    .await?;
                for a in &new.assignments {
                    sqlx::query(trials::INSERT_ASSIGNMENT)
                        .bind(id)
                        .bind(a.orgnr.to_string())
                        .bind(trials::i32_of(a.wave)?)
                        .bind(a.fylke.as_str())
                        .bind(a.arm.as_str())
                        .bind(a.stratum.as_str())
                        .bind(a.klynge.map(|k| k.to_string()))
                        .bind(a.sannsynlighet)
                        .bind(sqlx::types::Json(&a.probabilities))
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(trials::SET_STATE)
                    .bind(TrialState::Randomized.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.push(format!("draw:{}", draw.wave));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(draw.clone(), audit_id))
            }

            async fn draws(&self, id: &str) -> Result<Vec<DrawRecord>, StoreError> {
                let rows: Vec<trials::DrawRow> = sqlx::query_as(trials::SELECT_DRAWS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(DrawRecord::try_from).collect()
            }

            async fn assignments(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
                after: Option<Orgnr>,
                limit: u32,
            ) -> Result<Vec<AssignmentRecord>, StoreError> {
                let rows: Vec<trials::AssignmentDbRow> = sqlx::query_as(trials::SELECT_ASSIGNMENTS)
                    .bind(id)
                    .bind(fylke.map(|f| f.as_str()))
                    .bind(after.map(|o| o.to_string()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(AssignmentRecord::try_from).collect()
            }

            async fn assigned_firms(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
                after: Option<Orgnr>,
                limit: u32,
            ) -> Result<Vec<AssignedFirm>, StoreError> {
                let rows: Vec<trials::AssignedFirmRow> =
                    sqlx::query_as(trials::SELECT_ASSIGNED_FIRMS)
                        .bind(id)
                        .bind(fylke.map(|f| f.as_str()))
                        .bind(after.map(|o| o.to_string()))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(AssignedFirm::try_from).collect()
            }

            async fn assignment_counts(&self, id: &str) -> Result<Vec<AssignmentCount>, StoreError> {
                let rows: Vec<trials::AssignmentCountRow> =
                    sqlx::query_as(trials::COUNT_ASSIGNMENTS_BY_FYLKE)
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(AssignmentCount::try_from).collect()
            }

            async fn acknowledge(
                &self,
                id: &str,
                wave: u32,
                fylke: FylkeCode,
                by: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<Acknowledgement>, StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::lock_trial(&mut tx, id, audit.at).await?;
                let firms: i64 = sqlx::query_scalar(trials::COUNT_ASSIGNMENTS_FOR)
                    .bind(id)
                    .bind(trials::i32_of(wave)?)
                    .bind(fylke.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                if firms == 0 {
                    return Err(StoreError::Conflict(format!(
                        "wave {wave} assigned no firms in fylke {fylke}; nothing to acknowledge"
                    )));
                }
                let firms_i32 = i32::try_from(firms).unwrap_or(i32::MAX);
                let inserted = sqlx::query(trials::INSERT_ACK)
                    .bind(id)
                    .bind(trials::i32_of(wave)?)
                    .bind(fylke.as_str())
                    .bind(firms_i32)
                    .bind(audit.at)
                    .bind(by)
                    .execute(&mut *tx)
                    .await;
                if let Err(sqlx::Error::Database(db)) = &inserted
                    && db.is_unique_violation()
                {
                    return Err(StoreError::Conflict(format!(
                        "fylke {fylke} has already acknowledged wave {wave}"
                    )));
                }
                inserted?;
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.push(format!("ack:{wave}:{fylke}"));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(
                    Acknowledgement {
                        wave,
                        fylke,
                        firms: usize::try_from(firms).unwrap_or(usize::MAX),
                        acknowledged_at: audit.at,
                        acknowledged_by: by.to_owned(),
                    },
                    audit_id,
                ))
            }

            async fn acknowledgements(&self, id: &str) -> Result<Vec<Acknowledgement>, StoreError> {
                let rows: Vec<trials::AckRow> = sqlx::query_as(trials::SELECT_ACKS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(Acknowledgement::try_from).collect()
            }
        }
    };
}

pub(super) use impl_trial_store;
