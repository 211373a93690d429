//! Page sessions as stored: the SHA-256 of the cookie's secret, the token the session acts as, the
//! session's CSRF token and its lifetime. A session is valid while it has not ended, has not
//! expired, and its token is not revoked.

use chrono::{DateTime, Utc};

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the cookie's secret, hex.
    pub id_hash: String,
    /// The token signed in with.
    pub token_id: i64,
    /// The CSRF token every form of the session carries (64 hex characters).
    pub csrf_token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A valid session: the token it acts as and its CSRF token.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The token.
    pub token: super::TokenInfo,
    /// The CSRF token.
    pub csrf_token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

pub(super) const INSERT_SESSION: &str = "\
    INSERT INTO sessions (id_sha256, token_id, csrf_token, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5)";

pub(super) const FIND_SESSION: &str = "\
    SELECT t.id, t.name, t.role, t.fylke, t.created_at, t.created_by, t.revoked_at, t.revoked_by, \
           s.csrf_token, s.expires_at \
    FROM sessions s JOIN api_tokens t ON t.id = s.token_id \
    WHERE s.id_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND t.revoked_at IS NULL";

pub(super) const END_SESSION: &str = "\
    UPDATE sessions SET ended_at = $1 WHERE id_sha256 = $2 AND ended_at IS NULL";

/// Implements the session methods of [`super::SessionStore`] for a backend store type.
macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl SessionStore for $store {
            async fn create_session(
                &self,
                new: &sessions::NewSession,
                audit: &NewAuditEntry,
            ) -> Result<Audited<()>, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(sessions::INSERT_SESSION)
                    .bind(&new.id_hash)
                    .bind(new.token_id)
                    .bind(&new.csrf_token)
                    .bind(audit.at)
                    .bind(new.expires_at)
                    .execute(&mut *tx)
                    .await?;
                let audit_id = Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(Audited::new((), audit_id))
            }

            async fn find_session(
                &self,
                id_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<sessions::SessionInfo>, StoreError> {
                let row: Option<(
                    i64,
                    String,
                    String,
                    Option<String>,
                    chrono::DateTime<chrono::Utc>,
                    String,
                    Option<chrono::DateTime<chrono::Utc>>,
                    Option<String>,
                    String,
                    chrono::DateTime<chrono::Utc>,
                )> = sqlx::query_as(sessions::FIND_SESSION)
                    .bind(id_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else {
                    return Ok(None);
                };
                let token = TokenInfo::try_from(sql::TokenRow::from_parts(
                    r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7,
                ))?;
                Ok(Some(sessions::SessionInfo {
                    token,
                    csrf_token: r.8,
                    expires_at: r.9,
                }))
            }

            async fn end_session(
                &self,
                id_hash: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<bool>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let ended = sqlx::query(sessions::END_SESSION)
                    .bind(audit.at)
                    .bind(id_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                let audit_id = Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(Audited::new(ended, audit_id))
            }
        }
    };
}

pub(super) use impl_session_store;
