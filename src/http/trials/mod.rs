//! `/v1/trials`: a trial and its lifecycle. Each resource under a trial has its own file:
//! protocol versions, enrollment, draws, assignments, acknowledgements, and balance.

mod acknowledgements;
mod assignments;
pub(crate) mod balance;
mod draws;
mod enrollment;
mod protocols;

pub use acknowledgements::*;
pub use assignments::*;
pub use balance::*;
pub use draws::*;
pub use enrollment::*;
use protocols::protocol_from_body;
pub use protocols::*;

use crate::json::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::domain::{FylkeCode, Role};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorEnvelope};
use crate::http::examples::{example, no_trial, protocol_json, protocol_toml};
use crate::http::middleware::{AuditedJson, RequestMeta};
use crate::protocol::TrialState;
use crate::storage::{DrawRecord, StoreError, TrialInfo};

/// Maps a missing trial to a 404 naming it; other store errors as usual.
pub(in crate::http) fn not_found(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => {
            ApiError::NotFound(format!("no trial `{id}`; GET /v1/trials lists them"))
        }
        other => other.into(),
    }
}

/// The fylke a caller is limited to: its own for a fylke token, none for the others.
pub(in crate::http) fn scope(caller: &Caller) -> Result<Option<FylkeCode>, ApiError> {
    match (caller.role, caller.fylke) {
        (Role::Fylke, Some(f)) => Ok(Some(f)),
        (Role::Fylke, None) => Err(ApiError::Forbidden(
            "this fylke token is bound to no fylke".into(),
        )),
        _ => Ok(None),
    }
}

/// A trial with its draws.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialView {
    /// The trial.
    #[serde(flatten)]
    pub trial: TrialInfo,
    /// Its draws (each with the seed, published once drawn).
    pub draws: Vec<DrawRecord>,
}

/// Every trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialList {
    /// The trials.
    pub trials: Vec<TrialInfo>,
}

/// Registers a new trial from its protocol (JSON or TOML); it starts as a draft.
#[utoipa::path(
    post, path = "/v1/trials", tag = "trials",
    request_body(
        description = "The protocol (protocols/README.md), as JSON or TOML by `Content-Type` \
                       (`application/json`, `application/toml` or `text/toml`); another type gets 415",
        content(
            (Object = "application/json", example = json!(protocol_json())),
            (String = "application/toml", example = json!(protocol_toml())),
            (String = "text/toml", example = json!(protocol_toml())),
        )
    ),
    responses(
        (status = 201, description = "Registered as a draft", body = TrialInfo, example = json!(example("trial_info"))),
        (status = 409, description = "A trial with this id exists", body = ErrorEnvelope),
        (status = 415, description = "The body is neither JSON nor TOML", body = ErrorEnvelope),
        (status = 422, description = "The protocol is invalid; details.problems lists each rule broken", body = ErrorEnvelope),
    )
)]
pub async fn create_trial(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<AuditedJson<TrialInfo>, ApiError> {
    let protocol = protocol_from_body(&headers, &body)?;
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let created = state
        .store
        .create_trial(&protocol, &caller.name, &audit)
        .await?;
    Ok(AuditedJson(StatusCode::CREATED, created))
}

/// Lists every trial.
#[utoipa::path(
    get, path = "/v1/trials", tag = "trials",
    responses((status = 200, description = "Every trial", body = TrialList, example = json!(example("trial_list"))))
)]
pub async fn list_trials(State(state): State<AppState>) -> Result<Json<TrialList>, ApiError> {
    Ok(Json(TrialList {
        trials: state.store.list_trials().await?,
    }))
}

/// One trial: its state, current protocol and draws.
#[utoipa::path(
    get, path = "/v1/trials/{id}", tag = "trials",
    params(("id" = String, Path, description = "The trial (protocol) id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "The trial and its draws", body = TrialView, example = json!(example("trial_view"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn get_trial(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TrialView>, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let draws = state.store.draws(&id).await?;
    Ok(Json(TrialView { trial, draws }))
}

/// A lifecycle step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The state to move to: `registered`, `enrolling`, `follow_up` or `closed`.
    pub to: TrialState,
}

/// Moves a trial along its lifecycle (draft → registered → enrolling; randomized → enrolling for
/// another committed wave, or → follow_up → closed).
#[utoipa::path(
    post, path = "/v1/trials/{id}/transitions", tag = "trials",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(content = TransitionRequest, description = "The state to move to",
        example = json!(example("transition_request"))),
    responses(
        (status = 200, description = "Moved: the trial in its new state", body = TrialInfo,
            example = json!(example("trial_registered"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Out of order; the message names the allowed next step", body = ErrorEnvelope),
    )
)]
pub async fn transition_trial(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<TransitionRequest>,
) -> Result<AuditedJson<TrialInfo>, ApiError> {
    let audit = meta.audit_entry(Some(&caller));
    let moved = state
        .store
        .transition_trial(&id, request.to, &audit)
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(StatusCode::OK, moved))
}
