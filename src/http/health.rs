//! Probes and the API description: `/healthz`, `/readyz`, `/openapi.json`. Open to everyone, not
//! audited (they neither change state nor read firm-level data).

use std::sync::Arc;
use std::time::Duration;

use crate::json::Json;
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::examples::example;
use crate::storage::Backend;

/// How long `/readyz` waits for the database before calling it unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (process up) or `ready` (database reachable and writable).
    pub status: &'static str,
    /// The storage backend, on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub backend: Option<Backend>,
}

/// The process is up.
#[utoipa::path(
    get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is up", body = Status, example = json!(example("healthz"))))
)]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok",
        backend: None,
    })
}

/// The service can work: the database is reachable and the service can write to it (PostgreSQL:
/// not read-only, INSERT on every table and USAGE on every sequence; SQLite: the file and its
/// folder not read-only, the connection not query-only). 200, or 503 with the envelope; the service log has the cause.
#[utoipa::path(
    get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Ready: the database is reachable and writable", body = Status,
            example = json!(example("readyz"))),
        (status = 503, description = "The database is not reachable or the service cannot write to it", body = ErrorEnvelope,
            example = json!(example("readyz_unavailable"))),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let outcome = tokio::time::timeout(READY_TIMEOUT, state.store.ready()).await;
    let reason = match outcome {
        Ok(Ok(())) => {
            return Json(Status {
                status: "ready",
                backend: Some(state.store.backend()),
            })
            .into_response();
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", READY_TIMEOUT.as_secs()),
    };
    ApiError::Unavailable {
        message: "the database is not reachable or the service cannot write to it; the service log has the cause".into(),
        cause: reason,
    }
    .into_response()
}

/// This document: OpenAPI 3 for every route, with the roles each admits (`x-ia-rct-roles`).
#[utoipa::path(
    get, path = "/openapi.json", tag = "probes",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json",
        example = json!(example("openapi"))))
)]
pub async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(doc)
}
