//! The SQL both backends share. Queries use `$n` placeholders, which SQLite and PostgreSQL both
//! accept; values are bound, never formatted into SQL. [`impl_store!`] implements [`Store`] for a
//! backend's store type from these queries; what differs (connection setup, readiness checks,
//! migrations) lives in `sqlite.rs` and `postgres.rs`.
//!
//! [`Store`]: super::Store

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{AuditEntry, AuditResult, StoreError, TokenInfo};

pub(super) const INSERT_TOKEN: &str = "\
    INSERT INTO api_tokens (name, role, fylke, token_sha256, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6) \
    RETURNING id, name, role, fylke, created_at, created_by, revoked_at, revoked_by";

pub(super) const LIST_TOKENS: &str = "\
    SELECT id, name, role, fylke, created_at, created_by, revoked_at, revoked_by \
    FROM api_tokens ORDER BY id";

pub(super) const GET_TOKEN: &str = "\
    SELECT id, name, role, fylke, created_at, created_by, revoked_at, revoked_by \
    FROM api_tokens WHERE id = $1";

pub(super) const FIND_ACTIVE_TOKEN: &str = "\
    SELECT id, name, role, fylke, created_at, created_by, revoked_at, revoked_by \
    FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL";

pub(super) const REVOKE_TOKEN: &str = "\
    UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 \
    WHERE id = $3 AND revoked_at IS NULL \
    RETURNING id, name, role, fylke, created_at, created_by, revoked_at, revoked_by";

pub(super) const INSERT_AUDIT: &str = "\
    INSERT INTO audit_log (at, request_id, actor_token_id, actor_name, actor_role, actor_fylke, \
                           method, route, path, trial_id, object_ids, result, status, detail) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
    RETURNING id";

/// Every filter is optional: a NULL parameter matches everything.
pub(super) const QUERY_AUDIT: &str = "\
    SELECT id, at, request_id, actor_token_id, actor_name, actor_role, actor_fylke, \
           method, route, path, trial_id, object_ids, result, status, detail \
    FROM audit_log \
    WHERE ($1 IS NULL OR id < $1) \
      AND ($2 IS NULL OR actor_name = $2) \
      AND ($3 IS NULL OR actor_role = $3) \
      AND ($4 IS NULL OR result = $4) \
      AND ($5 IS NULL OR route = $5) \
      AND ($6 IS NULL OR trial_id = $6) \
      AND ($7 IS NULL OR at >= $7) \
      AND ($8 IS NULL OR at < $8) \
    ORDER BY id DESC \
    LIMIT $9";

/// A token row as the database returns it.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    id: i64,
    name: String,
    role: String,
    fylke: Option<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    revoked_at: Option<DateTime<Utc>>,
    revoked_by: Option<String>,
}

impl TokenRow {
    /// A row from its columns (a query that joins api_tokens to another table).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_parts(
        id: i64,
        name: String,
        role: String,
        fylke: Option<String>,
        created_at: DateTime<Utc>,
        created_by: String,
        revoked_at: Option<DateTime<Utc>>,
        revoked_by: Option<String>,
    ) -> Self {
        TokenRow {
            id,
            name,
            role,
            fylke,
            created_at,
            created_by,
            revoked_at,
            revoked_by,
        }
    }
}

impl TryFrom<TokenRow> for TokenInfo {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(TokenInfo {
            id: row.id,
            name: row.name,
            role: row.role.parse().map_err(corrupt)?,
            fylke: row.fylke.map(|f| f.parse()).transpose().map_err(corrupt)?,
            created_at: row.created_at,
            created_by: row.created_by,
            revoked_at: row.revoked_at,
            revoked_by: row.revoked_by,
        })
    }
}

/// An audit row as the database returns it.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    request_id: Option<String>,
    actor_token_id: Option<i64>,
    actor_name: Option<String>,
    actor_role: Option<String>,
    actor_fylke: Option<String>,
    method: String,
    route: String,
    path: String,
    trial_id: Option<String>,
    object_ids: Json<Vec<String>>,
    result: String,
    status: i32,
    detail: Option<String>,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let result = match row.result.as_str() {
            "permitted" => AuditResult::Permitted,
            "denied" => AuditResult::Denied,
            "failed" => AuditResult::Failed,
            other => return Err(corrupt(format!("audit result `{other}`"))),
        };
        Ok(AuditEntry {
            id: row.id,
            at: row.at,
            request_id: row.request_id,
            actor_token_id: row.actor_token_id,
            actor_name: row.actor_name,
            actor_role: row
                .actor_role
                .map(|r| r.parse())
                .transpose()
                .map_err(corrupt)?,
            actor_fylke: row
                .actor_fylke
                .map(|f| f.parse())
                .transpose()
                .map_err(corrupt)?,
            method: row.method,
            route: row.route,
            path: row.path,
            trial_id: row.trial_id,
            object_ids: row.object_ids.0,
            result,
            status: u16::try_from(row.status).map_err(corrupt)?,
            detail: row.detail,
        })
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Maps a unique-constraint violation on token names to a conflict a user can act on.
pub(super) fn token_insert_error(e: sqlx::Error, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
            "an active token named `{name}` already exists; revoke it first or choose another name"
        )),
        _ => e.into(),
    }
}

/// The migrations recorded as applied: `(version, checksum)`.
pub(super) const APPLIED_MIGRATIONS: &str =
    "SELECT version, checksum FROM _sqlx_migrations WHERE success";

/// Implements [`super::Store`] for a backend store type that has a `pool: sqlx::Pool<$db>` field,
/// an `options: StoreOptions` field and the inherent methods `check_ready`, `append_audit_row`
/// (how a standalone audit row is made durable), `settle_audit` (makes every durable audit row
/// readable in `audit_log`) and `before_close`, in a module with a `MIGRATOR` static.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr) => {
        impl $store {
            /// Applies pending migrations. When every migration is already applied with its
            /// checksum, nothing is written, so the service can run as a database role that may
            /// read and write rows but not create tables (see the README).
            async fn run_migrations(&self) -> Result<(), StoreError> {
                let applied: Result<Vec<(i64, Vec<u8>)>, sqlx::Error> =
                    sqlx::query_as(sql::APPLIED_MIGRATIONS)
                        .fetch_all(&self.pool)
                        .await;
                let pending = match applied {
                    Ok(applied) => MIGRATOR.iter().any(|m| {
                        !applied.iter().any(|(version, checksum)| {
                            *version == m.version && **checksum == *m.checksum
                        })
                    }),
                    // No migrations table yet: a new database.
                    Err(_) => true,
                };
                if pending {
                    MIGRATOR.run(&self.pool).await?;
                }
                Ok(())
            }

            /// Fault injection for crash tests (see [`StoreOptions::pause_in_write`]): called after
            /// a write's last statement, audit row included, just before commit.
            async fn fault_pause(&self) {
                if let Some(pause) = self.options.pause_in_write {
                    tracing::warn!(
                        pause_ms = pause.as_millis() as u64,
                        "fault injection: pausing inside a write transaction"
                    );
                    tokio::time::sleep(pause).await;
                }
            }

            async fn insert_audit<'c, E>(
                executor: E,
                entry: &NewAuditEntry,
            ) -> Result<i64, StoreError>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let actor = entry.actor.as_ref();
                let id: i64 = sqlx::query_scalar(sql::INSERT_AUDIT)
                    .bind(entry.at)
                    .bind(entry.request_id.as_deref())
                    .bind(actor.map(|a| a.token_id))
                    .bind(actor.map(|a| a.name.as_str()).or(entry.operator.as_deref()))
                    .bind(actor.map(|a| a.role.as_str()))
                    .bind(actor.and_then(|a| a.fylke).map(|f| f.as_str()))
                    .bind(entry.method.as_str())
                    .bind(entry.route.as_str())
                    .bind(entry.path.as_str())
                    .bind(entry.trial_id.as_deref())
                    .bind(sqlx::types::Json(&entry.object_ids))
                    .bind(entry.result.as_str())
                    .bind(i32::from(entry.status))
                    .bind(entry.detail.as_deref())
                    .fetch_one(executor)
                    .await?;
                Ok(id)
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                self.run_migrations().await
            }

            async fn ready(&self) -> Result<(), StoreError> {
                self.check_ready().await
            }

            async fn create_token(
                &self,
                token: &NewToken,
                audit: &NewAuditEntry,
            ) -> Result<Audited<TokenInfo>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let row: sql::TokenRow = sqlx::query_as(sql::INSERT_TOKEN)
                    .bind(token.name.as_str())
                    .bind(token.role.as_str())
                    .bind(token.fylke.map(|f| f.as_str()))
                    .bind(token.hash.as_str())
                    .bind(audit.at)
                    .bind(token.created_by.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| sql::token_insert_error(e, &token.name))?;
                let info = TokenInfo::try_from(row)?;
                let mut audit = audit.clone();
                audit.object_ids.push(format!("token:{}", info.id));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(info, audit_id))
            }

            async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
                let rows: Vec<sql::TokenRow> = sqlx::query_as(sql::LIST_TOKENS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(TokenInfo::try_from).collect()
            }

            async fn revoke_token(
                &self,
                id: i64,
                revoked_by: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<TokenInfo>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let revoked: Option<sql::TokenRow> = sqlx::query_as(sql::REVOKE_TOKEN)
                    .bind(audit.at)
                    .bind(revoked_by)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = revoked else {
                    let existing: Option<sql::TokenRow> = sqlx::query_as(sql::GET_TOKEN)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return match existing.map(TokenInfo::try_from).transpose()? {
                        Some(TokenInfo {
                            revoked_at: Some(at),
                            revoked_by: Some(by),
                            ..
                        }) => Err(StoreError::Conflict(format!(
                            "token {id} was already revoked at {} by {by}",
                            at.to_rfc3339()
                        ))),
                        _ => Err(StoreError::NotFound),
                    };
                };
                let info = TokenInfo::try_from(row)?;
                let mut audit = audit.clone();
                audit.object_ids.push(format!("token:{id}"));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(info, audit_id))
            }

            async fn find_active_token(&self, hash: &str) -> Result<Option<TokenInfo>, StoreError> {
                let row: Option<sql::TokenRow> = sqlx::query_as(sql::FIND_ACTIVE_TOKEN)
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TokenInfo::try_from).transpose()
            }

            async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
                self.append_audit_row(entry).await
            }

            async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
                self.settle_audit().await?;
                let rows: Vec<sql::AuditRow> = sqlx::query_as(sql::QUERY_AUDIT)
                    .bind(q.before_id)
                    .bind(q.actor_name.as_deref())
                    .bind(q.actor_role.map(|r| r.as_str()))
                    .bind(q.result.map(|r| r.as_str()))
                    .bind(q.route.as_deref())
                    .bind(q.trial_id.as_deref())
                    .bind(q.from)
                    .bind(q.to)
                    .bind(i64::from(q.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(AuditEntry::try_from).collect()
            }

            async fn close(&self) {
                self.before_close().await;
                self.pool.close().await;
            }
        }
    };
}

pub(super) use impl_store;
