//! NAV's firm-quarter statistics and metadata as stored: versioned by upload (vintage), never
//! changed, read as of a vintage. Uploads arrive as a stream of row chunks and are applied in one
//! transaction.
//!
//! # How an upload is applied
//! Uploads are applied one at a time (SQLite `BEGIN IMMEDIATE`, a transaction-scoped advisory lock
//! on PostgreSQL), so vintages are committed in order and each upload is compared with everything
//! before it. Each chunk's rows are routed by quarter:
//! - a quarter in which the register (of the upload's kind) has no row yet (`statistics_quarters`,
//!   written with a quarter's first values) goes straight into the register with the upload's
//!   vintage (`COPY` on PostgreSQL): every such row is `inserted`;
//! - a quarter the register has is staged in a temporary table `incoming`, then classified against
//!   the latest values (`inserted`, `unchanged` or `revised`) and applied.
//!
//! Duplicate (orgnr, quarter) rows are found while streaming as long as the rows come sorted, by
//! firm then quarter or by quarter then firm: equal keys are then adjacent. From
//! the first chunk out of order on, every row is staged, and the duplicates that involve those rows
//! are found in the database. The primary key (orgnr, quarter, vintage) refuses a duplicate in any
//! case.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::domain::{Orgnr, Quarter};
use crate::register::RowError;
use crate::statistics::{MetadataRow, StatRow};

/// Where an upload came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadSource {
    /// `POST /v1/statistics`.
    Api,
    /// `ia-rct ingest`.
    Cli,
}

impl UploadSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadSource::Api => "api",
            UploadSource::Cli => "cli",
        }
    }
}

/// What an upload brought. Both kinds share one sequence of vintages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    /// Sickness statistics: DVH CSV or `virksomhet.json`.
    Statistics,
    /// Sector and næring: `virksomhet_metadata.json` or the DVH metadata CSV.
    Metadata,
}

impl UploadKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Statistics => "statistics",
            UploadKind::Metadata => "metadata",
        }
    }

    /// The SQL for this kind's register.
    pub(super) fn sql(self) -> &'static KindSql {
        match self {
            UploadKind::Statistics => &STATISTICS_SQL,
            UploadKind::Metadata => &METADATA_SQL,
        }
    }
}

/// What the ingesting side sends the store, in order: chunks of rows (and of problems), then the
/// end with the content's hash.
#[derive(Debug)]
pub enum IngestMessage {
    /// Valid statistics rows with their 1-based row numbers.
    Rows(Vec<(usize, StatRow)>),
    /// Valid metadata rows with their 1-based row numbers.
    Metadata(Vec<(usize, MetadataRow)>),
    /// Invalid rows.
    Problems(Vec<RowError>),
    /// The upload is complete.
    Done {
        /// SHA-256 (hex) of the uploaded bytes.
        sha256: String,
        /// What the upload holds.
        kind: UploadKind,
    },
    /// Reading the upload failed; nothing may be applied.
    Failed(String),
}

/// An upload to apply.
#[derive(Debug, Clone)]
pub struct NewStatisticsUpload {
    /// API or command line.
    pub source: UploadSource,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Who uploads.
    pub created_by: String,
}

/// The receipt of an upload; its id is the vintage of the values it brought.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatisticsReceipt {
    /// The vintage (upload id). An upload that changed nothing makes no vintage: its receipt
    /// (not stored) names the latest vintage, whose register already holds every row it brought.
    pub vintage: i64,
    /// Statistics or metadata.
    pub kind: UploadKind,
    /// SHA-256 of the uploaded content.
    pub sha256: String,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// API or command line.
    pub source: UploadSource,
    /// Rows in the upload.
    pub rows: u64,
    /// Firm-quarters new to the register.
    pub inserted: u64,
    /// Firm-quarters whose values were already the latest.
    pub unchanged: u64,
    /// Firm-quarters with changed values: a new vintage beside the old.
    pub revised: u64,
    /// When.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
}

impl StatisticsReceipt {
    /// `unchanged` when the upload changed nothing, else `applied`.
    pub fn outcome(&self) -> &'static str {
        if self.inserted == 0 && self.revised == 0 {
            "unchanged"
        } else {
            "applied"
        }
    }
}

/// Why an upload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestFailure {
    /// Invalid rows: the first 100 and the total. Nothing was written.
    #[error("{total} problem(s) in the upload; nothing was written")]
    Invalid {
        /// The first 100 problems.
        errors: Vec<RowError>,
        /// How many in all.
        total: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IngestFailure {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // The primary key (orgnr, quarter, vintage) is the backstop for duplicates the checks
            // below did not name; uploads are serialized, so no other upload can hold the vintage.
            sqlx::Error::Database(db) if db.is_unique_violation() => IngestFailure::Invalid {
                errors: vec![RowError {
                    row: 0,
                    field: "orgnr".to_owned(),
                    value: String::new(),
                    reason: format!(
                        "a firm-quarter appears twice in this upload ({})",
                        db.message()
                    ),
                }],
                total: 1,
            },
            other => IngestFailure::Store(other.into()),
        }
    }
}

/// How many problems an [`IngestFailure::Invalid`] lists.
const MAX_LISTED: usize = 100;

/// Canonical JSON of a row's varighet classes (sorted keys), as stored and compared.
pub(super) fn varighet_json(varighet: &BTreeMap<char, f64>) -> String {
    if varighet.is_empty() {
        return "{}".to_owned();
    }
    serde_json::to_string(varighet).unwrap_or_else(|_| "{}".to_owned())
}

/// A firm-quarter: what an upload may hold once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    orgnr: Orgnr,
    quarter: Quarter,
}

/// A row that can be stored: statistics or metadata.
pub(super) trait Keyed: Sized + Send + Sync {
    /// Its firm-quarter.
    fn key(&self) -> Key;
    /// Rows of this kind as [`Rows`].
    fn rows(rows: Vec<(usize, Self)>) -> Rows;
}

impl Keyed for StatRow {
    fn key(&self) -> Key {
        Key {
            orgnr: self.orgnr,
            quarter: self.quarter,
        }
    }
    fn rows(rows: Vec<(usize, Self)>) -> Rows {
        Rows::Statistics(rows)
    }
}

impl Keyed for MetadataRow {
    fn key(&self) -> Key {
        Key {
            orgnr: self.orgnr,
            quarter: self.quarter,
        }
    }
    fn rows(rows: Vec<(usize, Self)>) -> Rows {
        Rows::Metadata(rows)
    }
}

/// Valid rows of one kind with their row numbers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Batch<'a> {
    /// Sickness statistics.
    Statistics(&'a [(usize, StatRow)]),
    /// Metadata.
    Metadata(&'a [(usize, MetadataRow)]),
}

/// Valid rows of one kind with their row numbers, owned.
#[derive(Debug)]
pub(super) enum Rows {
    /// Sickness statistics.
    Statistics(Vec<(usize, StatRow)>),
    /// Metadata.
    Metadata(Vec<(usize, MetadataRow)>),
}

impl Rows {
    /// The rows, borrowed.
    pub fn batch(&self) -> Batch<'_> {
        match self {
            Rows::Statistics(rows) => Batch::Statistics(rows),
            Rows::Metadata(rows) => Batch::Metadata(rows),
        }
    }
}

impl Batch<'_> {
    /// The kind of the rows.
    pub fn kind(&self) -> UploadKind {
        match self {
            Batch::Statistics(_) => UploadKind::Statistics,
            Batch::Metadata(_) => UploadKind::Metadata,
        }
    }
}

/// Where rows go: straight into the register, or into the staging table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dest {
    /// The register, with the upload's vintage.
    Register,
    /// The staging table `incoming`, with row numbers.
    Incoming,
}

/// Where a batch is written, as [`Dest`] with the vintage.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    /// Into the register, with this vintage.
    Register(i64),
    /// Into the staging table `incoming`, with row numbers.
    Incoming,
}

/// Rows with their 1-based row numbers.
type Numbered<T> = Vec<(usize, T)>;

/// Writes still to be made, in order.
pub(super) type Work = std::collections::VecDeque<(Dest, Rows)>;

/// How the stream of an upload ended.
#[derive(Debug)]
pub(super) enum End {
    /// Complete, with the content's hash and kind.
    Done(String, UploadKind),
    /// Reading it failed.
    Failed(String),
}

/// The SQL of one kind's register; the statements differ only in the table and its value columns.
pub(super) struct KindSql {
    /// A `SELECT` with the staging table's columns and no rows, for `CREATE TEMP TABLE … AS`.
    pub incoming_like: &'static str,
    /// `COPY` into the register (PostgreSQL).
    pub copy_register: &'static str,
    /// `COPY` into the staging table (PostgreSQL).
    pub copy_incoming: &'static str,
    /// `INSERT … ` into the register, before `VALUES` (SQLite).
    pub insert_register: &'static str,
    /// `INSERT … ` into the staging table, before `VALUES` (SQLite).
    pub insert_incoming: &'static str,
    /// Marks each staged row `inserted` (no value yet), `unchanged` (equal to the latest) or
    /// `revised`.
    pub classify: &'static str,
    /// Writes the staged rows that are not `unchanged` with vintage `$1`.
    pub apply: &'static str,
    /// Duplicates that involve a staged row numbered `$1` or later: firm-quarters staged more than
    /// once, or staged and also written straight into the register with vintage `$2`.
    pub duplicates: &'static str,
    /// One firm's rows as of vintage `$2` (metadata only; the statistics have their own reads).
    pub select_latest: &'static str,
}

/// Builds a [`KindSql`] from the table, its value columns and the condition under which a
/// register row `s` equals the staged row `incoming`.
macro_rules! kind_sql {
    ($table:literal, $columns:literal, $same:literal) => {
        KindSql {
            incoming_like: concat!(
                "SELECT CAST(0 AS BIGINT) AS row_no, orgnr, arstall, kvartal, ", $columns,
                ", CAST(NULL AS TEXT) AS status FROM ", $table, " WHERE 1 = 0"
            ),
            copy_register: concat!(
                "COPY ", $table, " (orgnr, arstall, kvartal, vintage, ", $columns,
                ") FROM STDIN WITH (FORMAT text)"
            ),
            copy_incoming: concat!(
                "COPY incoming (row_no, orgnr, arstall, kvartal, ", $columns,
                ") FROM STDIN WITH (FORMAT text)"
            ),
            insert_register: concat!(
                "INSERT INTO ", $table, " (orgnr, arstall, kvartal, vintage, ", $columns, ") "
            ),
            insert_incoming: concat!(
                "INSERT INTO incoming (row_no, orgnr, arstall, kvartal, ", $columns, ") "
            ),
            classify: concat!(
                "UPDATE incoming SET status = CASE \
                   WHEN NOT EXISTS (SELECT 1 FROM ", $table, " s WHERE s.orgnr = incoming.orgnr \
                                    AND s.arstall = incoming.arstall AND s.kvartal = incoming.kvartal) \
                     THEN 'inserted' \
                   WHEN EXISTS (SELECT 1 FROM ", $table, " s WHERE s.orgnr = incoming.orgnr \
                                AND s.arstall = incoming.arstall AND s.kvartal = incoming.kvartal \
                                AND s.vintage = (SELECT MAX(v.vintage) FROM ", $table, " v \
                                                 WHERE v.orgnr = incoming.orgnr \
                                                 AND v.arstall = incoming.arstall \
                                                 AND v.kvartal = incoming.kvartal) \
                                AND ", $same, ") THEN 'unchanged' \
                   ELSE 'revised' END"
            ),
            apply: concat!(
                "INSERT INTO ", $table, " (orgnr, arstall, kvartal, vintage, ", $columns, ") \
                 SELECT orgnr, arstall, kvartal, $1, ", $columns, " \
                 FROM incoming WHERE status IS NULL OR status <> 'unchanged'"
            ),
            duplicates: concat!(
                "SELECT i.orgnr, i.arstall, i.kvartal, MIN(i.row_no), MAX(i.row_no), \
                        EXISTS (SELECT 1 FROM ", $table, " s WHERE s.orgnr = i.orgnr \
                                AND s.arstall = i.arstall AND s.kvartal = i.kvartal AND s.vintage = $2) \
                 FROM incoming i GROUP BY i.orgnr, i.arstall, i.kvartal \
                 HAVING MAX(i.row_no) >= $1 \
                    AND (COUNT(*) > 1 \
                         OR EXISTS (SELECT 1 FROM ", $table, " s WHERE s.orgnr = i.orgnr \
                                    AND s.arstall = i.arstall AND s.kvartal = i.kvartal \
                                    AND s.vintage = $2)) \
                 ORDER BY MIN(i.row_no)"
            ),
            select_latest: concat!(
                "SELECT s.orgnr, s.arstall, s.kvartal, s.vintage, ", $columns, " FROM ", $table, " s \
                 WHERE s.orgnr = $1 \
                   AND s.vintage = (SELECT MAX(v.vintage) FROM ", $table, " v WHERE v.orgnr = s.orgnr \
                                    AND v.arstall = s.arstall AND v.kvartal = s.kvartal \
                                    AND v.vintage <= $2) \
                 ORDER BY s.arstall, s.kvartal"
            ),
        }
    };
}

const STATISTICS_SQL: KindSql = kind_sql!(
    "statistics",
    "tapte_dagsverk, mulige_dagsverk, antall_personer, tapte_gradert, prosent, rectype, varighet",
    "s.tapte_dagsverk = incoming.tapte_dagsverk \
     AND s.mulige_dagsverk = incoming.mulige_dagsverk \
     AND s.antall_personer = incoming.antall_personer \
     AND s.tapte_gradert IS NOT DISTINCT FROM incoming.tapte_gradert \
     AND s.prosent IS NOT DISTINCT FROM incoming.prosent \
     AND s.rectype IS NOT DISTINCT FROM incoming.rectype \
     AND s.varighet = incoming.varighet"
);

const METADATA_SQL: KindSql = kind_sql!(
    "statistics_metadata",
    "sektor, primaernaring, primaernaringskode, rectype",
    "s.sektor = incoming.sektor \
     AND s.primaernaring IS NOT DISTINCT FROM incoming.primaernaring \
     AND s.primaernaringskode IS NOT DISTINCT FROM incoming.primaernaringskode \
     AND s.rectype IS NOT DISTINCT FROM incoming.rectype"
);

/// The quarters in which a register (`$1`, the kind) has values.
pub(super) const SELECT_QUARTERS: &str =
    "SELECT arstall, kvartal FROM statistics_quarters WHERE kind = $1";

/// Records that a register (`$1`, the kind) has values in a quarter.
pub(super) const INSERT_QUARTER: &str = "\
    INSERT INTO statistics_quarters (kind, arstall, kvartal) VALUES ($1, $2, $3) \
    ON CONFLICT DO NOTHING";

pub(super) const COUNT_STATUS: &str = "SELECT status, COUNT(*) FROM incoming GROUP BY status";

/// The content hash of an earlier upload with the same idempotency key, looked for once the
/// upload holds the lock and its own hash is known.
pub(super) const SELECT_IDEMPOTENT: &str =
    "SELECT sha256 FROM statistics_uploads WHERE idempotency_key = $1";

/// The latest vintage of the register (of either kind), if any.
pub(super) const SELECT_LATEST_VINTAGE: &str = "SELECT MAX(id) FROM statistics_uploads";

/// What an upload whose `Idempotency-Key` was used before gets: a conflict when the content is
/// the same (the caller answers with the first receipt), and a refusal naming the key when the
/// content differs, so new data is never dropped as if it were a retry.
pub(super) fn idempotency_outcome(key: &str, earlier_sha256: &str, sha256: &str) -> IngestFailure {
    if earlier_sha256 == sha256 {
        IngestFailure::Store(StoreError::Conflict(
            "an upload with this Idempotency-Key was applied meanwhile".to_owned(),
        ))
    } else {
        key_reused(key, earlier_sha256, sha256)
    }
}

/// The refusal of an `Idempotency-Key` reused with other content.
pub fn key_reused(key: &str, earlier_sha256: &str, sha256: &str) -> IngestFailure {
    IngestFailure::Invalid {
        errors: vec![RowError {
            row: 0,
            field: "Idempotency-Key".to_owned(),
            value: key.to_owned(),
            reason: format!(
                "the Idempotency-Key `{key}` was first used for other content (SHA-256 \
                 {earlier_sha256}, this upload {sha256}); use a new key for new data"
            ),
        }],
        total: 1,
    }
}

/// The refusal of an upload without a single row: it can change nothing.
pub(super) fn no_rows() -> IngestFailure {
    IngestFailure::Invalid {
        errors: vec![RowError {
            row: 0,
            field: String::new(),
            value: String::new(),
            reason: "the upload has no rows; nothing to apply".to_owned(),
        }],
        total: 1,
    }
}

pub(super) const SELECT_UPLOADS: &str = "\
    SELECT id, kind, sha256, idempotency_key, source, rows, inserted, unchanged, revised, created_at, created_by \
    FROM statistics_uploads WHERE ($1 IS NULL OR idempotency_key = $1) ORDER BY id";

/// Baseline sums over a window, from the register as of a vintage (latest by default).
pub(super) const BASELINE_SUMS: &str = "\
    SELECT s.orgnr, SUM(s.tapte_dagsverk), SUM(s.mulige_dagsverk), COUNT(*) \
    FROM statistics s \
    WHERE (s.arstall * 4 + s.kvartal) BETWEEN $1 AND $2 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $3) \
    GROUP BY s.orgnr";

/// The largest antall_personer per firm over a window (latest vintage up to `$3`).
pub(super) const BASELINE_PERSONS: &str = "\
    SELECT s.orgnr, CAST(MAX(s.antall_personer) AS BIGINT) \
    FROM statistics s \
    WHERE (s.arstall * 4 + s.kvartal) BETWEEN $1 AND $2 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $3) \
    GROUP BY s.orgnr";

/// One firm-quarter's values as of a vintage.
pub(super) const SELECT_VALUES: &str = "\
    SELECT s.orgnr, s.arstall, s.kvartal, s.vintage, s.tapte_dagsverk, s.mulige_dagsverk, s.antall_personer \
    FROM statistics s \
    WHERE s.orgnr = $1 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $2) \
    ORDER BY s.arstall, s.kvartal";

#[derive(sqlx::FromRow)]
pub(super) struct UploadRow {
    id: i64,
    kind: String,
    sha256: String,
    idempotency_key: Option<String>,
    source: String,
    rows: i64,
    inserted: i64,
    unchanged: i64,
    revised: i64,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl TryFrom<UploadRow> for StatisticsReceipt {
    type Error = StoreError;
    fn try_from(r: UploadRow) -> Result<Self, StoreError> {
        let count = |v: i64| u64::try_from(v).map_err(|e| StoreError::Corrupt(e.to_string()));
        Ok(StatisticsReceipt {
            vintage: r.id,
            kind: match r.kind.as_str() {
                "statistics" => UploadKind::Statistics,
                "metadata" => UploadKind::Metadata,
                other => return Err(StoreError::Corrupt(format!("upload kind `{other}`"))),
            },
            sha256: r.sha256,
            idempotency_key: r.idempotency_key,
            source: match r.source.as_str() {
                "api" => UploadSource::Api,
                "cli" => UploadSource::Cli,
                other => return Err(StoreError::Corrupt(format!("upload source `{other}`"))),
            },
            rows: count(r.rows)?,
            inserted: count(r.inserted)?,
            unchanged: count(r.unchanged)?,
            revised: count(r.revised)?,
            created_at: r.created_at,
            created_by: r.created_by,
        })
    }
}

/// One firm-quarter as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredValue {
    /// The firm.
    pub orgnr: String,
    /// Year.
    pub arstall: i32,
    /// Quarter 1-4.
    pub kvartal: i32,
    /// The vintage the value came in.
    pub vintage: i64,
    /// Tapte dagsverk.
    pub tapte_dagsverk: f64,
    /// Mulige dagsverk.
    pub mulige_dagsverk: f64,
    /// Persons.
    pub antall_personer: i32,
}

/// One firm-quarter of NAV's metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredMetadata {
    /// The firm.
    #[schema(example = "974760673")]
    pub orgnr: String,
    /// Year.
    pub arstall: i32,
    /// Quarter 1-4.
    pub kvartal: i32,
    /// The vintage the values came in.
    pub vintage: i64,
    /// NAV's sektor: `STATLIG`, `KOMMUNAL`, `PRIVAT` or `UKJENT`.
    pub sektor: String,
    /// The 2-digit primærnæring, if given.
    pub primaernaring: Option<String>,
    /// The 5-digit primærnæringskode without the dot, if given.
    pub primaernaringskode: Option<String>,
    /// `rectype`, if given.
    pub rectype: Option<String>,
}

/// Rows in PostgreSQL's `COPY … (FORMAT text)` form: tab-separated, `\N` for NULL, with
/// backslash, tab, newline and carriage return escaped. Into the register the columns are the key,
/// the vintage and the values; into `incoming`, the row number, the key and the values.
pub(super) fn copy_text(batch: Batch<'_>, target: Target) -> Vec<u8> {
    let mut out = CopyText(String::with_capacity(match batch {
        Batch::Statistics(rows) => rows.len() * 112,
        Batch::Metadata(rows) => rows.len() * 56,
    }));
    let key = |out: &mut CopyText, row_no: usize, orgnr: Orgnr, quarter: Quarter| match target {
        Target::Incoming => {
            out.int(row_no);
            out.key(orgnr, quarter);
        }
        Target::Register(vintage) => {
            out.key(orgnr, quarter);
            out.int(vintage);
        }
    };
    match batch {
        Batch::Statistics(rows) => {
            for (row_no, r) in rows {
                key(&mut out, *row_no, r.orgnr, r.quarter);
                out.float(r.tapte_dagsverk);
                out.float(r.mulige_dagsverk);
                out.int(r.antall_personer);
                out.opt_float(r.tapte_dagsverk_gradert);
                out.opt_float(r.prosent_published);
                out.opt_text(r.rectype.as_deref());
                out.last_text(&varighet_json(&r.varighet));
            }
        }
        Batch::Metadata(rows) => {
            for (row_no, r) in rows {
                key(&mut out, *row_no, r.orgnr, r.quarter);
                out.text(r.sektor.as_str());
                out.opt_text(r.primaernaring.as_deref());
                out.opt_text(r.primaernaringskode.as_deref());
                out.opt_text(r.rectype.as_deref());
                // Replace the last tab by the end of the line.
                out.0.pop();
                out.0.push('\n');
            }
        }
    }
    out.0.into_bytes()
}

/// A `COPY` text buffer; every field but the last of a line is followed by a tab.
struct CopyText(String);

impl CopyText {
    fn key(&mut self, orgnr: Orgnr, quarter: Quarter) {
        let _ = write!(
            self.0,
            "{orgnr}\t{}\t{}\t",
            quarter.year(),
            quarter.quarter()
        );
    }

    fn int(&mut self, v: impl std::fmt::Display) {
        let _ = write!(self.0, "{v}\t");
    }

    /// The shortest text that reads back as the same `f64`.
    fn float(&mut self, v: f64) {
        let _ = write!(self.0, "{v:?}\t");
    }

    fn opt_float(&mut self, v: Option<f64>) {
        match v {
            Some(v) => self.float(v),
            None => self.0.push_str("\\N\t"),
        }
    }

    fn escaped(&mut self, value: &str) {
        if !value.contains(['\\', '\t', '\n', '\r']) {
            self.0.push_str(value);
            return;
        }
        for c in value.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '\t' => self.0.push_str("\\t"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                other => self.0.push(other),
            }
        }
    }

    fn text(&mut self, value: &str) {
        self.escaped(value);
        self.0.push('\t');
    }

    fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.text(v),
            None => self.0.push_str("\\N\t"),
        }
    }

    fn last_text(&mut self, value: &str) {
        self.escaped(value);
        self.0.push('\n');
    }
}

/// Finds duplicate firm-quarters while the rows come sorted (by firm then quarter, or by quarter
/// then firm), where equal keys are adjacent; knows when they stop coming sorted.
#[derive(Debug)]
struct Order {
    last: Option<(Key, usize)>,
    by_firm: bool,
    by_quarter: bool,
    /// The first row of the run of equal keys that ends at `last`, if it is longer than one.
    run_first: Option<usize>,
    found: Vec<RowError>,
    total: usize,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            last: None,
            by_firm: true,
            by_quarter: true,
            run_first: None,
            found: Vec::new(),
            total: 0,
        }
    }
}

impl Order {
    /// Whether both orders still hold after `a` then `b`: (by firm, by quarter).
    fn step(a: Key, b: Key) -> (bool, bool) {
        let firm = (a.orgnr, a.quarter) <= (b.orgnr, b.quarter);
        let quarter = (a.quarter, a.orgnr) <= (b.quarter, b.orgnr);
        (firm, quarter)
    }

    /// Whether the rows so far followed by `chunk` are still sorted one way or the other.
    fn extends<T: Keyed>(&self, chunk: &[(usize, T)]) -> bool {
        let (mut by_firm, mut by_quarter) = (self.by_firm, self.by_quarter);
        let mut last = self.last.map(|(k, _)| k);
        for (_, row) in chunk {
            let key = row.key();
            if let Some(prev) = last {
                let (f, q) = Order::step(prev, key);
                by_firm &= f;
                by_quarter &= q;
                if !by_firm && !by_quarter {
                    return false;
                }
            }
            last = Some(key);
        }
        true
    }

    /// Takes in a chunk that [`Order::extends`] the rows so far.
    fn feed<T: Keyed>(&mut self, chunk: &[(usize, T)]) {
        for (row_no, row) in chunk {
            let key = row.key();
            if let Some((prev, prev_row)) = self.last {
                let (f, q) = Order::step(prev, key);
                self.by_firm &= f;
                self.by_quarter &= q;
                if prev == key {
                    self.run_first.get_or_insert(prev_row);
                } else {
                    self.end_run();
                }
            }
            self.last = Some((key, *row_no));
        }
    }

    /// Reports the run of equal keys that ends at `last`, if there is one.
    fn end_run(&mut self) {
        if let (Some(first), Some((key, last))) = (self.run_first.take(), self.last) {
            self.total += 1;
            if self.found.len() < MAX_LISTED {
                self.found
                    .push(duplicate(key, last, &format!("first on row {first}")));
            }
        }
    }
}

/// The problem of a firm-quarter given twice, reported on its last row.
fn duplicate(key: Key, row: usize, first: &str) -> RowError {
    RowError {
        row,
        field: "orgnr".to_owned(),
        value: format!("{} {}", key.orgnr, key.quarter),
        reason: format!(
            "firm {} has {} twice in this upload ({first})",
            key.orgnr, key.quarter
        ),
    }
}

/// The state of an upload being applied: counts, problems, and where each quarter's rows go.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Valid rows received.
    pub rows: u64,
    /// Row problems (the first [`MAX_LISTED`]).
    problems: Vec<RowError>,
    problem_total: usize,
    order: Order,
    /// The first row of the first chunk that came out of order; from it on, rows are staged.
    unsorted_from: Option<usize>,
    /// The quarters the register had before this upload, once read.
    known: Option<BTreeSet<Quarter>>,
    /// Each quarter seen, and whether the register had rows in it before this upload.
    quarters: BTreeMap<Quarter, bool>,
    /// Rows written straight into the register: all `inserted`.
    pub direct: u64,
    /// Rows staged in `incoming`.
    pub staged: u64,
    /// Whether any staged row is in a quarter the register had (else all staged rows are new).
    pub staged_in_known_quarters: bool,
    /// Whether `incoming` exists.
    pub incoming: bool,
    /// The upload's vintage, once reserved.
    pub vintage: Option<i64>,
    /// Duplicates found in the database.
    db_duplicates: Vec<RowError>,
    db_duplicate_total: usize,
}

impl Plan {
    /// Takes in invalid rows.
    fn problems(&mut self, problems: Vec<RowError>) {
        self.problem_total += problems.len();
        let room = MAX_LISTED.saturating_sub(self.problems.len());
        self.problems.extend(problems.into_iter().take(room));
    }

    /// Whether the upload will be refused whatever follows; nothing more need be written.
    pub fn refused(&self) -> bool {
        self.problem_total > 0 || self.order.total > 0
    }

    /// Follows the order of the rows and finds duplicates while they come sorted.
    fn observe<T: Keyed>(&mut self, chunk: &[(usize, T)]) {
        if self.unsorted_from.is_some() {
            return;
        }
        if self.order.extends(chunk) {
            self.order.feed(chunk);
        } else {
            self.order.end_run();
            self.unsorted_from = chunk.first().map(|(row_no, _)| *row_no);
        }
    }

    /// The kind whose known quarters must be read (with [`SELECT_QUARTERS`]) before `message`
    /// can be taken in, if any.
    pub fn quarters_needed(&self, message: &IngestMessage) -> Option<UploadKind> {
        if self.known.is_some() || self.refused() {
            return None;
        }
        match message {
            IngestMessage::Rows(rows) if !rows.is_empty() => Some(UploadKind::Statistics),
            IngestMessage::Metadata(rows) if !rows.is_empty() => Some(UploadKind::Metadata),
            _ => None,
        }
    }

    /// Takes in the rows of [`SELECT_QUARTERS`].
    pub fn known_quarters(&mut self, rows: Vec<(i32, i32)>) {
        self.known = Some(
            rows.into_iter()
                .filter_map(|(year, quarter)| Quarter::new(year, quarter).ok())
                .collect(),
        );
    }

    /// Takes in one message of the stream: rows are counted, checked and routed into `work`;
    /// problems kept; the end of the stream put in `end`.
    pub fn take(&mut self, message: IngestMessage, work: &mut Work, end: &mut Option<End>) {
        match message {
            IngestMessage::Rows(chunk) => self.chunk(chunk, work),
            IngestMessage::Metadata(chunk) => self.chunk(chunk, work),
            IngestMessage::Problems(problems) => self.problems(problems),
            IngestMessage::Done { sha256, kind } => *end = Some(End::Done(sha256, kind)),
            IngestMessage::Failed(reason) => *end = Some(End::Failed(reason)),
        }
    }

    fn chunk<T: Keyed>(&mut self, chunk: Vec<(usize, T)>, work: &mut Work) {
        self.rows += chunk.len() as u64;
        self.observe(&chunk);
        if self.refused() || chunk.is_empty() {
            return;
        }
        let (direct, staged) = self.route(chunk);
        if !direct.is_empty() {
            work.push_back((Dest::Register, T::rows(direct)));
        }
        if !staged.is_empty() {
            work.push_back((Dest::Incoming, T::rows(staged)));
        }
    }

    /// Splits a chunk into the rows to write straight into the register (a quarter new to it, and
    /// the rows still sorted) and the rows to stage.
    fn route<T: Keyed>(&mut self, chunk: Numbered<T>) -> (Numbered<T>, Numbered<T>) {
        for (_, row) in &chunk {
            let quarter = row.key().quarter;
            if !self.quarters.contains_key(&quarter) {
                let known = self.known.as_ref().is_some_and(|k| k.contains(&quarter));
                self.quarters.insert(quarter, known);
            }
        }
        let sorted = self.unsorted_from.is_none();
        let direct = |quarter: &Quarter| sorted && self.quarters.get(quarter) == Some(&false);
        let (direct_rows, staged_rows): (Vec<_>, Vec<_>) =
            if chunk.iter().all(|(_, r)| direct(&r.key().quarter)) {
                (chunk, Vec::new())
            } else if chunk.iter().all(|(_, r)| !direct(&r.key().quarter)) {
                (Vec::new(), chunk)
            } else {
                chunk
                    .into_iter()
                    .partition(|(_, r)| direct(&r.key().quarter))
            };
        if staged_rows
            .iter()
            .any(|(_, r)| self.quarters.get(&r.key().quarter) == Some(&true))
        {
            self.staged_in_known_quarters = true;
        }
        self.direct += direct_rows.len() as u64;
        self.staged += staged_rows.len() as u64;
        (direct_rows, staged_rows)
    }

    /// The quarters new to the register: once the upload commits, it has values in each.
    pub fn new_quarters(&self) -> impl Iterator<Item = Quarter> + '_ {
        self.quarters
            .iter()
            .filter(|(_, in_register)| !**in_register)
            .map(|(quarter, _)| *quarter)
    }

    /// Ends the stream: the last run of equal keys is reported.
    pub fn finish(&mut self) {
        if self.unsorted_from.is_none() {
            self.order.end_run();
        }
    }

    /// Whether duplicates must be looked for in the database, and from which row on.
    pub fn check_duplicates_from(&self) -> Option<usize> {
        if self.refused() || !self.incoming {
            return None;
        }
        self.unsorted_from
    }

    /// Takes in the rows of [`KindSql::duplicates`]: orgnr, year, quarter, first and last staged
    /// row, and whether the firm-quarter was also written straight into the register.
    pub fn db_duplicates(&mut self, rows: Vec<(String, i32, i32, i64, i64, bool)>) {
        let from = self.unsorted_from.unwrap_or(0);
        for (orgnr, year, quarter, first, last, in_register) in rows {
            self.db_duplicate_total += 1;
            if self.db_duplicates.len() >= MAX_LISTED {
                continue;
            }
            let row = usize::try_from(last).unwrap_or(0);
            let key = match (orgnr.parse::<Orgnr>(), Quarter::new(year, quarter)) {
                (Ok(orgnr), Ok(quarter)) => Key { orgnr, quarter },
                _ => continue,
            };
            let first = if in_register {
                format!("first on a row before row {from}")
            } else {
                format!("first on row {first}")
            };
            self.db_duplicates.push(duplicate(key, row, &first));
        }
    }

    /// The refusal, if there is anything to refuse: the first [`MAX_LISTED`] problems by row.
    pub fn refusal(&mut self) -> Option<IngestFailure> {
        let total = self.problem_total + self.order.total + self.db_duplicate_total;
        if total == 0 {
            return None;
        }
        let mut errors: Vec<RowError> = std::mem::take(&mut self.problems);
        errors.append(&mut self.order.found);
        errors.append(&mut self.db_duplicates);
        errors.sort_by_key(|e| e.row);
        errors.truncate(MAX_LISTED);
        Some(IngestFailure::Invalid { errors, total })
    }
}

/// Implements [`super::StatisticsStore`] for a backend store type. `$backend` is the backend's
/// module of ingest primitives: `begin` (a transaction that holds the upload lock), `receive`
/// (takes the stream in with [`Plan::take`] and makes the writes it calls for, returning how the
/// stream ended), `reserve_vintage` and `INSERT_UPLOAD` (with an explicit id).
macro_rules! impl_statistics_store {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait::async_trait]
        impl StatisticsStore for $store {
            async fn ingest_statistics(
                &self,
                mut messages: tokio::sync::mpsc::Receiver<statistics::IngestMessage>,
                upload: &statistics::NewStatisticsUpload,
                audit: &NewAuditEntry,
            ) -> Result<Audited<statistics::StatisticsReceipt>, statistics::IngestFailure> {
                use statistics::IngestFailure;
                let mut tx = $backend::begin(&self.pool).await?;
                let mut plan = statistics::Plan::default();
                let end = $backend::receive(&mut tx, &mut plan, &mut messages).await?;
                let (sha256, kind) = match end {
                    Some(statistics::End::Done(sha256, kind)) => (sha256, kind),
                    Some(statistics::End::Failed(reason)) => {
                        return Err(IngestFailure::Invalid {
                            errors: vec![crate::register::RowError {
                                row: 0,
                                field: String::new(),
                                value: String::new(),
                                reason,
                            }],
                            total: 1,
                        });
                    }
                    None => {
                        return Err(IngestFailure::Store(StoreError::Unavailable(
                            "the upload ended before it was complete".to_owned(),
                        )));
                    }
                };
                // The key's first use decides: the same content is a replay (answered with the
                // first receipt by the caller), other content is refused naming the key.
                if let Some(key) = upload.idempotency_key.as_deref() {
                    let earlier: Option<String> = sqlx::query_scalar(statistics::SELECT_IDEMPOTENT)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(earlier) = earlier {
                        return Err(statistics::idempotency_outcome(key, &earlier, &sha256));
                    }
                }
                let sql = kind.sql();
                plan.finish();
                if let Some(from) = plan.check_duplicates_from() {
                    let rows: Vec<(String, i32, i32, i64, i64, bool)> =
                        sqlx::query_as(sql.duplicates)
                            .bind(i64::try_from(from).unwrap_or(i64::MAX))
                            .bind(plan.vintage.unwrap_or(0))
                            .fetch_all(&mut *tx)
                            .await?;
                    plan.db_duplicates(rows);
                }
                if let Some(refusal) = plan.refusal() {
                    return Err(refusal);
                }
                if plan.rows == 0 {
                    return Err(statistics::no_rows());
                }
                let staged = i64::try_from(plan.staged).unwrap_or(i64::MAX);
                let (mut inserted, unchanged, revised) = if plan.staged_in_known_quarters {
                    sqlx::query(sql.classify).execute(&mut *tx).await?;
                    let counts: Vec<(String, i64)> = sqlx::query_as(statistics::COUNT_STATUS)
                        .fetch_all(&mut *tx)
                        .await?;
                    let count = |status: &str| {
                        counts
                            .iter()
                            .find(|(s, _)| s == status)
                            .map_or(0, |(_, n)| *n)
                    };
                    (count("inserted"), count("unchanged"), count("revised"))
                } else {
                    (staged, 0, 0)
                };
                inserted += i64::try_from(plan.direct).unwrap_or(i64::MAX);
                // Nothing changed: no new vintage. The receipt names the latest vintage, whose
                // register already holds every row of the upload.
                let changed = inserted != 0 || revised != 0;
                let vintage = if changed {
                    let vintage = match plan.vintage {
                        Some(v) => v,
                        None => $backend::reserve_vintage(&mut tx).await?,
                    };
                    if staged > unchanged {
                        sqlx::query(sql.apply).bind(vintage).execute(&mut *tx).await?;
                    }
                    for quarter in plan.new_quarters() {
                        sqlx::query(statistics::INSERT_QUARTER)
                            .bind(kind.as_str())
                            .bind(quarter.year())
                            .bind(i32::from(quarter.quarter()))
                            .execute(&mut *tx)
                            .await?;
                    }
                    let rows = i64::try_from(plan.rows).unwrap_or(i64::MAX);
                    let inserted_upload = sqlx::query($backend::INSERT_UPLOAD)
                        .bind(vintage)
                        .bind(sha256.as_str())
                        .bind(upload.idempotency_key.as_deref())
                        .bind(upload.source.as_str())
                        .bind(rows)
                        .bind(inserted)
                        .bind(unchanged)
                        .bind(revised)
                        .bind(audit.at)
                        .bind(upload.created_by.as_str())
                        .bind(kind.as_str())
                        .execute(&mut *tx)
                        .await;
                    match inserted_upload {
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                            return Err(IngestFailure::Store(StoreError::Conflict(
                                "an upload with this Idempotency-Key was applied meanwhile".to_owned(),
                            )));
                        }
                        other => other?,
                    };
                    vintage
                } else {
                    let latest: Option<i64> = sqlx::query_scalar(statistics::SELECT_LATEST_VINTAGE)
                        .fetch_one(&mut *tx)
                        .await?;
                    let Some(vintage) = latest else {
                        return Err(IngestFailure::Store(StoreError::Corrupt(
                            "unchanged rows but no vintage in the register".to_owned(),
                        )));
                    };
                    vintage
                };
                let mut audit = audit.clone();
                audit.object_ids.push(format!("statistics_upload:{vintage}"));
                if !changed {
                    audit.status = 200;
                    audit.detail = Some("unchanged: no new vintage".to_owned());
                }
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                let receipt = statistics::StatisticsReceipt {
                    vintage,
                    kind,
                    sha256,
                    idempotency_key: upload.idempotency_key.clone(),
                    source: upload.source,
                    rows: plan.rows,
                    inserted: count(inserted),
                    unchanged: count(unchanged),
                    revised: count(revised),
                    created_at: audit.at,
                    created_by: upload.created_by.clone(),
                };
                Ok(Audited::new(receipt, audit_id))
            }

            async fn statistics_uploads(
                &self,
                idempotency_key: Option<&str>,
            ) -> Result<Vec<statistics::StatisticsReceipt>, StoreError> {
                let rows: Vec<statistics::UploadRow> = sqlx::query_as(statistics::SELECT_UPLOADS)
                    .bind(idempotency_key)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(statistics::StatisticsReceipt::try_from)
                    .collect()
            }

            async fn baseline_sums(
                &self,
                from: crate::domain::Quarter,
                to: crate::domain::Quarter,
                vintage: Option<i64>,
            ) -> Result<std::collections::BTreeMap<Orgnr, crate::protocol::BaselineFacts>, StoreError> {
                let index = |q: crate::domain::Quarter| q.year() * 4 + i32::from(q.quarter());
                let rows: Vec<(String, f64, f64, i64)> = sqlx::query_as(statistics::BASELINE_SUMS)
                    .bind(index(from))
                    .bind(index(to))
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(orgnr, tapte, mulige, quarters)| {
                        Ok((
                            orgnr.parse().map_err(|e: crate::domain::OrgnrError| StoreError::Corrupt(e.to_string()))?,
                            crate::protocol::BaselineFacts {
                                tapte,
                                mulige,
                                quarters: u32::try_from(quarters).unwrap_or(0),
                            },
                        ))
                    })
                    .collect()
            }

            async fn baseline_persons(
                &self,
                from: crate::domain::Quarter,
                to: crate::domain::Quarter,
                vintage: Option<i64>,
            ) -> Result<std::collections::BTreeMap<Orgnr, u64>, StoreError> {
                let index = |q: crate::domain::Quarter| q.year() * 4 + i32::from(q.quarter());
                let rows: Vec<(String, Option<i64>)> = sqlx::query_as(statistics::BASELINE_PERSONS)
                    .bind(index(from))
                    .bind(index(to))
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(orgnr, persons)| {
                        Ok((
                            orgnr.parse().map_err(|e: crate::domain::OrgnrError| StoreError::Corrupt(e.to_string()))?,
                            persons.and_then(|p| u64::try_from(p).ok()).unwrap_or(0),
                        ))
                    })
                    .collect()
            }

            async fn statistics_values(
                &self,
                orgnr: Orgnr,
                vintage: Option<i64>,
            ) -> Result<Vec<statistics::StoredValue>, StoreError> {
                Ok(sqlx::query_as(statistics::SELECT_VALUES)
                    .bind(orgnr.to_string())
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn statistics_metadata(
                &self,
                orgnr: Orgnr,
                vintage: Option<i64>,
            ) -> Result<Vec<statistics::StoredMetadata>, StoreError> {
                Ok(sqlx::query_as(statistics::UploadKind::Metadata.sql().select_latest)
                    .bind(orgnr.to_string())
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

pub(super) use impl_statistics_store;

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(orgnr: Orgnr, quarter: &str) -> StatRow {
        StatRow {
            orgnr,
            quarter: quarter.parse().expect("quarter"),
            tapte_dagsverk: 1.5,
            mulige_dagsverk: 10.0,
            antall_personer: 7,
            tapte_dagsverk_gradert: None,
            prosent_published: Some(15.0),
            rectype: Some("2".to_owned()),
            varighet: BTreeMap::from([('A', 0.25)]),
        }
    }

    fn firm(i: u32) -> Orgnr {
        (0..)
            .find_map(|j| Orgnr::from_prefix(80_000_000 + i * 20 + j))
            .expect("orgnr")
    }

    fn rows(keys: &[(u32, &str)]) -> Vec<(usize, StatRow)> {
        keys.iter()
            .enumerate()
            .map(|(i, (f, q))| (i + 1, stat(firm(*f), q)))
            .collect()
    }

    #[test]
    fn copy_text_escapes_and_orders_columns_by_target() {
        let mut chunk = rows(&[(1, "2024K2")]);
        chunk[0].1.rectype = Some("a\tb\\".to_owned());
        let staged = String::from_utf8(copy_text(Batch::Statistics(&chunk), Target::Incoming))
            .expect("utf8");
        let orgnr = firm(1);
        assert_eq!(
            staged,
            format!("1\t{orgnr}\t2024\t2\t1.5\t10.0\t7\t\\N\t15.0\ta\\tb\\\\\t{{\"A\":0.25}}\n")
        );
        let direct = String::from_utf8(copy_text(Batch::Statistics(&chunk), Target::Register(9)))
            .expect("utf8");
        assert!(direct.starts_with(&format!("{orgnr}\t2024\t2\t9\t1.5\t")));
    }

    #[test]
    fn sorted_rows_report_every_duplicate_with_both_rows() {
        let mut plan = Plan::default();
        let chunk = rows(&[
            (1, "2024K1"),
            (1, "2024K2"),
            (1, "2024K2"),
            (2, "2024K1"),
            (3, "2024K1"),
            (3, "2024K1"),
            (3, "2024K1"),
        ]);
        plan.observe(&chunk[..4]);
        plan.observe(&chunk[4..]);
        plan.finish();
        assert!(plan.check_duplicates_from().is_none());
        let Some(IngestFailure::Invalid { errors, total }) = plan.refusal() else {
            panic!("duplicates refused");
        };
        assert_eq!(total, 2);
        assert_eq!((errors[0].row, errors[1].row), (3, 7));
        assert!(errors[0].reason.contains("first on row 2"), "{errors:?}");
        assert!(errors[1].reason.contains("first on row 5"), "{errors:?}");
    }

    /// Takes in a chunk of statistics; returns the destinations of the writes it called for.
    fn take(plan: &mut Plan, chunk: Vec<(usize, StatRow)>) -> Vec<(Dest, usize)> {
        let mut work = Work::new();
        let mut end = None;
        plan.take(IngestMessage::Rows(chunk), &mut work, &mut end);
        work.iter()
            .map(|(dest, rows)| {
                let n = match rows.batch() {
                    Batch::Statistics(r) => r.len(),
                    Batch::Metadata(r) => r.len(),
                };
                (*dest, n)
            })
            .collect()
    }

    #[test]
    fn rows_out_of_order_are_staged_from_the_chunk_that_breaks_the_order() {
        let mut plan = Plan::default();
        let first = rows(&[(1, "2024K1"), (2, "2024K1")]);
        let message = IngestMessage::Rows(first.clone());
        assert_eq!(plan.quarters_needed(&message), Some(UploadKind::Statistics));
        plan.known_quarters(Vec::new());
        assert_eq!(take(&mut plan, first), [(Dest::Register, 2)]);
        // By quarter then firm, 2024K2 after 2024K1 would be fine; by firm it is not, and firm 1
        // after firm 2 in the same quarter breaks both orders.
        let mut second = rows(&[(3, "2024K1"), (1, "2024K2"), (1, "2024K1")]);
        for (i, (row_no, _)) in second.iter_mut().enumerate() {
            *row_no = 3 + i;
        }
        assert_eq!(take(&mut plan, second), [(Dest::Incoming, 3)]);
        plan.incoming = true;
        assert_eq!(plan.check_duplicates_from(), Some(3));
        assert_eq!(plan.new_quarters().count(), 2);
    }

    #[test]
    fn quarters_already_in_the_register_are_staged() {
        let mut plan = Plan::default();
        plan.known_quarters(vec![(2024, 1)]);
        let chunk = rows(&[(1, "2024K1"), (1, "2024K2"), (2, "2024K1"), (2, "2024K2")]);
        assert_eq!(
            take(&mut plan, chunk),
            [(Dest::Register, 2), (Dest::Incoming, 2)]
        );
        assert!(plan.staged_in_known_quarters);
        assert_eq!(
            plan.new_quarters().collect::<Vec<_>>(),
            ["2024K2".parse::<Quarter>().expect("quarter")]
        );
    }
}
