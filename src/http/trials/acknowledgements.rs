//! `/v1/trials/{id}/acknowledgements`: a fylke confirms it received its firms' assignments, and
//! the directorate sees which fylker are still waiting (`/acknowledgements/status`).

use std::collections::BTreeMap;

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::domain::FylkeCode;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorEnvelope};
use crate::http::examples::{example, no_trial};
use crate::http::middleware::{AuditDetails, AuditedJson, RequestMeta};

/// Which wave a fylke acknowledges.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// The wave whose assignments were received.
    pub wave: u32,
}

/// A fylke acknowledges that it received its firms' assignments of a wave.
#[utoipa::path(
    post, path = "/v1/trials/{id}/acknowledgements", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(content = AcknowledgeRequest, description = "The wave whose assignments were received",
        example = json!(example("acknowledge_request"))),
    responses(
        (status = 201, description = "Acknowledged: the fylke, wave and number of firms", body = crate::storage::Acknowledgement,
            example = json!(example("acknowledgement"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Nothing to acknowledge, or already acknowledged", body = ErrorEnvelope),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AcknowledgeRequest>,
) -> Result<AuditedJson<crate::storage::Acknowledgement>, ApiError> {
    let Some(fylke) = super::scope(&caller)? else {
        return Err(ApiError::Forbidden(
            "only a fylke acknowledges its assignments".into(),
        ));
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let ack = state
        .store
        .acknowledge(&id, request.wave, fylke, &caller.name, &audit)
        .await
        .map_err(super::not_found(&id))?;
    Ok(AuditedJson(StatusCode::CREATED, ack))
}

/// Acknowledgements so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgementList {
    /// By wave and fylke.
    pub acknowledgements: Vec<crate::storage::Acknowledgement>,
}

/// Which fylker have acknowledged which waves (a fylke sees its own).
#[utoipa::path(
    get, path = "/v1/trials/{id}/acknowledgements", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "The acknowledgements the caller may see, by wave and fylke", body = AcknowledgementList,
            example = json!(example("acknowledgement_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn list_acknowledgements(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AcknowledgementList>, ApiError> {
    let fylke = super::scope(&caller)?;
    state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
    let acknowledgements = state
        .store
        .acknowledgements(&id)
        .await?
        .into_iter()
        .filter(|a| fylke.is_none_or(|f| f == a.fylke))
        .collect();
    Ok(Json(AcknowledgementList { acknowledgements }))
}

/// One fylke's acknowledgement state for a wave.
#[derive(Debug, Serialize, ToSchema)]
pub struct FylkeAcknowledgement {
    /// The fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// Its name.
    pub fylke_navn: String,
    /// How many of its firms the wave assigned.
    pub firms: usize,
    /// Whether it has acknowledged the wave's assignments.
    pub acknowledged: bool,
    /// When; null while waiting.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// By whom (the token's name); null while waiting.
    pub acknowledged_by: Option<String>,
}

/// A fylke that has not acknowledged a wave's assignments.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingFylke {
    /// The fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// Its name.
    pub fylke_navn: String,
    /// How many of its firms the wave assigned.
    pub firms: usize,
}

/// A drawn wave's acknowledgements, fylke by fylke.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaveAcknowledgements {
    /// The wave.
    pub wave: u32,
    /// When it was drawn.
    pub drawn_at: DateTime<Utc>,
    /// Every fylke the wave assigned firms in, by fylke code.
    pub fylker: Vec<FylkeAcknowledgement>,
    /// The fylker that have not acknowledged yet, by fylke code, with their firms.
    pub waiting: Vec<WaitingFylke>,
    /// Firms assigned in the fylker still waiting.
    pub firms_waiting: usize,
}

/// Which fylker have acknowledged each drawn wave, and which are still waiting.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgementStatus {
    /// The trial.
    pub trial_id: String,
    /// Each drawn wave, oldest first.
    pub waves: Vec<WaveAcknowledgements>,
    /// Fylker waiting, summed over the waves (a fylke waiting for two waves counts twice).
    pub waiting_total: usize,
}

/// For the directorate: per drawn wave, every fylke with firms assigned, how many, whether and
/// when it acknowledged them, and the fylker still waiting.
#[utoipa::path(
    get, path = "/v1/trials/{id}/acknowledgements/status", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "Per drawn wave, each fylke's firms and acknowledgement, and the fylker still waiting", body = AcknowledgementStatus,
            example = json!(example("acknowledgement_status"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn acknowledgement_status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
    let drawn_at: BTreeMap<u32, DateTime<Utc>> = state
        .store
        .draws(&id)
        .await?
        .into_iter()
        .map(|d| (d.wave, d.drawn_at))
        .collect();
    let acks: BTreeMap<(u32, FylkeCode), crate::storage::Acknowledgement> = state
        .store
        .acknowledgements(&id)
        .await?
        .into_iter()
        .map(|a| ((a.wave, a.fylke), a))
        .collect();
    let mut waves: BTreeMap<u32, WaveAcknowledgements> = drawn_at
        .iter()
        .map(|(&wave, &at)| {
            (
                wave,
                WaveAcknowledgements {
                    wave,
                    drawn_at: at,
                    fylker: Vec::new(),
                    waiting: Vec::new(),
                    firms_waiting: 0,
                },
            )
        })
        .collect();
    for count in state.store.assignment_counts(&id).await? {
        let Some(wave) = waves.get_mut(&count.wave) else {
            return Err(ApiError::Internal(format!(
                "trial {id} has assignments in wave {} but no draw of it",
                count.wave
            )));
        };
        let ack = acks.get(&(count.wave, count.fylke));
        if ack.is_none() {
            wave.waiting.push(WaitingFylke {
                fylke: count.fylke,
                fylke_navn: count.fylke.name().to_owned(),
                firms: count.firms,
            });
            wave.firms_waiting += count.firms;
        }
        wave.fylker.push(FylkeAcknowledgement {
            fylke: count.fylke,
            fylke_navn: count.fylke.name().to_owned(),
            firms: count.firms,
            acknowledged: ack.is_some(),
            acknowledged_at: ack.map(|a| a.acknowledged_at),
            acknowledged_by: ack.map(|a| a.acknowledged_by.clone()),
        });
    }
    let waves: Vec<WaveAcknowledgements> = waves.into_values().collect();
    let waiting_total = waves.iter().map(|w| w.waiting.len()).sum();
    let details = AuditDetails {
        trial_id: Some(id.clone()),
        object_ids: Vec::new(),
    };
    let mut response = Json(AcknowledgementStatus {
        trial_id: id,
        waves,
        waiting_total,
    })
    .into_response();
    response.extensions_mut().insert(details);
    Ok(response)
}
