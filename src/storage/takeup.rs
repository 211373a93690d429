//! Take-up events and survey results as stored, and the outcome summary by arm and quarter.

use chrono::NaiveDate;
use serde::Serialize;

use super::StoreError;
use crate::register::RegisterErrors;
use crate::takeup::{SurveyRow, TakeupEvent};

/// Why a take-up upload was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum TakeupFailure {
    /// The events do not fit the firms' registered histories; nothing was written.
    #[error("{0}")]
    Invalid(RegisterErrors),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TakeupFailure {
    fn from(e: sqlx::Error) -> Self {
        TakeupFailure::Store(e.into())
    }
}

/// One arm's sick leave in one quarter: sums over its randomized firms with statistics.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutcomeCell {
    /// The arm.
    pub arm: String,
    /// Year.
    pub arstall: i32,
    /// Quarter.
    pub kvartal: i32,
    /// Firms with statistics that quarter.
    pub firms: i64,
    /// Persons (Σ antall personer).
    pub persons: i64,
    /// Σ tapte dagsverk.
    pub tapte: f64,
    /// Σ mulige dagsverk.
    pub mulige: f64,
}

/// One randomized firm's quarter of NAV statistics, as the estimators read it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PanelRow {
    /// The firm.
    pub orgnr: String,
    /// Year.
    pub arstall: i32,
    /// Quarter.
    pub kvartal: i32,
    /// Tapte dagsverk.
    pub tapte: f64,
    /// Mulige dagsverk.
    pub mulige: f64,
}

/// The trial's randomized firms' statistics between two quarters (as year * 4 + quarter), each
/// firm-quarter at its latest vintage up to $4.
pub(super) const TRIAL_PANEL: &str = "\
    SELECT s.orgnr, s.arstall, s.kvartal, s.tapte_dagsverk AS tapte, s.mulige_dagsverk AS mulige \
    FROM assignments a JOIN statistics s ON s.orgnr = a.orgnr \
    WHERE a.trial_id = $1 AND s.arstall * 4 + s.kvartal BETWEEN $2 AND $3 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $4) \
    ORDER BY s.orgnr, s.arstall, s.kvartal";

pub(super) const SELECT_EVENTS: &str = "\
    SELECT orgnr, status, dato, arbeidsform_levert, timer, merknad, upload_row \
    FROM takeup_events WHERE trial_id = $1 AND ($2 IS NULL OR fylke = $2) ORDER BY orgnr, dato, id";

pub(super) const INSERT_EVENT: &str = "\
    INSERT INTO takeup_events (trial_id, orgnr, fylke, status, dato, arbeidsform_levert, timer, merknad, \
                               upload_row, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub(super) const INSERT_SURVEY: &str = "\
    INSERT INTO survey_results (trial_id, orgnr, fylke, bolge, maal, verdi, antall_svar, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(super) const SELECT_SURVEYS: &str = "\
    SELECT orgnr, bolge, maal, verdi, antall_svar FROM survey_results \
    WHERE trial_id = $1 AND ($2 IS NULL OR fylke = $2) ORDER BY orgnr, bolge, maal";

pub(super) const OUTCOME_SUMMARY: &str = "\
    SELECT a.arm, s.arstall, s.kvartal, COUNT(*) AS firms, SUM(s.antall_personer) AS persons, \
           SUM(s.tapte_dagsverk) AS tapte, SUM(s.mulige_dagsverk) AS mulige \
    FROM assignments a JOIN statistics s ON s.orgnr = a.orgnr \
    WHERE a.trial_id = $1 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $2) \
    GROUP BY a.arm, s.arstall, s.kvartal ORDER BY s.arstall, s.kvartal, a.arm";

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    orgnr: String,
    status: String,
    dato: NaiveDate,
    arbeidsform_levert: Option<String>,
    timer: Option<f64>,
    merknad: Option<String>,
    upload_row: i32,
}

impl TryFrom<EventRow> for TakeupEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(e);
        Ok(TakeupEvent {
            orgnr: r
                .orgnr
                .parse()
                .map_err(|e: crate::domain::OrgnrError| corrupt(e.to_string()))?,
            status: r
                .status
                .parse()
                .map_err(|e: crate::takeup::TakeupStatusError| corrupt(e.to_string()))?,
            dato: r.dato,
            arbeidsform_levert: r.arbeidsform_levert,
            timer: r.timer,
            merknad: r.merknad,
            row: usize::try_from(r.upload_row).unwrap_or(0),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SurveyDbRow {
    orgnr: String,
    bolge: i32,
    maal: String,
    verdi: Option<f64>,
    antall_svar: i32,
}

impl TryFrom<SurveyDbRow> for SurveyRow {
    type Error = StoreError;
    fn try_from(r: SurveyDbRow) -> Result<Self, StoreError> {
        Ok(SurveyRow {
            orgnr: r
                .orgnr
                .parse()
                .map_err(|e: crate::domain::OrgnrError| StoreError::Corrupt(e.to_string()))?,
            bolge: u32::try_from(r.bolge).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            maal: r.maal,
            verdi: r.verdi,
            antall_svar: u32::try_from(r.antall_svar)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            row: 0,
        })
    }
}

/// Implements [`super::TakeupStore`] for a backend store type.
macro_rules! impl_takeup_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl TakeupStore for $store {
            async fn record_takeup(
                &self,
                id: &str,
                events: &[(crate::takeup::TakeupEvent, FylkeCode)],
                by: &str,
                today: chrono::NaiveDate,
                audit: &NewAuditEntry,
            ) -> Result<Audited<usize>, takeup::TakeupFailure> {
                let mut tx = self.pool.begin().await?;
                Self::lock_trial(&mut tx, id, audit.at).await?;
                let rows: Vec<takeup::EventRow> = sqlx::query_as(takeup::SELECT_EVENTS)
                    .bind(id)
                    .bind(None::<&str>)
                    .fetch_all(&mut *tx)
                    .await?;
                let existing = rows
                    .into_iter()
                    .map(crate::takeup::TakeupEvent::try_from)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let new: Vec<crate::takeup::TakeupEvent> = events.iter().map(|(e, _)| e.clone()).collect();
                crate::takeup::validate_history(&existing, &new, today)
                    .map_err(takeup::TakeupFailure::Invalid)?;
                for (e, fylke) in events {
                    sqlx::query(takeup::INSERT_EVENT)
                        .bind(id)
                        .bind(e.orgnr.to_string())
                        .bind(fylke.as_str())
                        .bind(e.status.as_str())
                        .bind(e.dato)
                        .bind(e.arbeidsform_levert.as_deref())
                        .bind(e.timer)
                        .bind(e.merknad.as_deref())
                        .bind(i32::try_from(e.row).unwrap_or(i32::MAX))
                        .bind(audit.at)
                        .bind(by)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.extend(events.iter().map(|(e, _)| format!("orgnr:{}", e.orgnr)));
                audit.object_ids.dedup();
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(events.len(), audit_id))
            }

            async fn takeup_events(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
            ) -> Result<Vec<crate::takeup::TakeupEvent>, StoreError> {
                let rows: Vec<takeup::EventRow> = sqlx::query_as(takeup::SELECT_EVENTS)
                    .bind(id)
                    .bind(fylke.map(|f| f.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(crate::takeup::TakeupEvent::try_from).collect()
            }

            async fn record_surveys(
                &self,
                id: &str,
                rows: &[(crate::takeup::SurveyRow, FylkeCode)],
                by: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<usize>, StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::lock_trial(&mut tx, id, audit.at).await?;
                for (r, fylke) in rows {
                    let inserted = sqlx::query(takeup::INSERT_SURVEY)
                        .bind(id)
                        .bind(r.orgnr.to_string())
                        .bind(fylke.as_str())
                        .bind(i32::try_from(r.bolge).unwrap_or(i32::MAX))
                        .bind(r.maal.as_str())
                        .bind(r.verdi)
                        .bind(i32::try_from(r.antall_svar).unwrap_or(i32::MAX))
                        .bind(audit.at)
                        .bind(by)
                        .execute(&mut *tx)
                        .await;
                    if let Err(sqlx::Error::Database(db)) = &inserted
                        && db.is_unique_violation()
                    {
                        return Err(StoreError::Conflict(format!(
                            "row {}: firm {} already has `{}` for wave {}; results are not replaced",
                            r.row, r.orgnr, r.maal, r.bolge
                        )));
                    }
                    inserted?;
                }
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.push(format!("survey_rows:{}", rows.len()));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(rows.len(), audit_id))
            }

            async fn survey_results(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
            ) -> Result<Vec<crate::takeup::SurveyRow>, StoreError> {
                let rows: Vec<takeup::SurveyDbRow> = sqlx::query_as(takeup::SELECT_SURVEYS)
                    .bind(id)
                    .bind(fylke.map(|f| f.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(crate::takeup::SurveyRow::try_from).collect()
            }

            async fn outcome_summary(
                &self,
                id: &str,
                vintage: Option<i64>,
            ) -> Result<Vec<takeup::OutcomeCell>, StoreError> {
                Ok(sqlx::query_as(takeup::OUTCOME_SUMMARY)
                    .bind(id)
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn trial_panel(
                &self,
                id: &str,
                from: crate::domain::Quarter,
                to: crate::domain::Quarter,
                vintage: Option<i64>,
            ) -> Result<Vec<takeup::PanelRow>, StoreError> {
                let index = |q: crate::domain::Quarter| q.year() * 4 + i32::from(q.quarter());
                Ok(sqlx::query_as(takeup::TRIAL_PANEL)
                    .bind(id)
                    .bind(index(from))
                    .bind(index(to))
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

pub(super) use impl_takeup_store;
