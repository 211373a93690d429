//! `GET /v1/audit`: the audit log, newest first, filterable and paginated (direktorat only).

use crate::json::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiQuery, ErrorEnvelope};
use super::examples::example;
use crate::domain::Role;
use crate::storage::{AuditEntry, AuditQuery, AuditResult};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;

/// Filters for the audit log; all optional and combined with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries older than this id (pass `next_before` from the previous page).
    #[param(example = 120)]
    pub before: Option<i64>,
    /// Only this actor (token name).
    #[param(example = "NAV Vestland")]
    pub actor: Option<String>,
    /// Only this role.
    #[param(example = "fylke")]
    pub role: Option<Role>,
    /// Only this result: `permitted`, `denied` or `failed`.
    #[param(example = "denied")]
    pub result: Option<AuditResult>,
    /// Only this route template, e.g. `/v1/tokens`.
    #[param(example = "/v1/tokens")]
    pub route: Option<String>,
    /// Only this trial.
    #[param(example = "nals-arbeidsformer")]
    pub trial: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(example = "2026-12-01T00:00:00Z")]
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    #[param(example = "2026-12-31T00:00:00Z")]
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1-1000 (default 100).
    #[param(example = 20)]
    pub limit: Option<u32>,
}

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Reads the audit log, newest first.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of entries, newest first, and the cursor to the next", body = AuditPage,
            example = json!(example("audit_page"))),
        (status = 422, description = "A filter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list_audit(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let query = AuditQuery {
        before_id: params.before,
        actor_name: params.actor,
        actor_role: params.role,
        result: params.result,
        route: params.route,
        trial_id: params.trial,
        from: params.from,
        to: params.to,
        limit,
    };
    let entries = state.store.query_audit(&query).await?;
    let next_before = if entries.len() == limit as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}
