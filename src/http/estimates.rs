//! `GET /v1/trials/{id}/estimates`: the effect estimates of protocols/ANALYSIS.md over the trial's
//! randomized firms and the statistics register, as of a vintage; confirmatory estimates (the
//! protocol's analysis plan) are marked and Holm-adjusted, the rest are exploratory.

use std::collections::BTreeMap;

use crate::json::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorEnvelope};
use super::examples::{example, no_trial};
use super::trials::not_found;
use crate::auth::Caller;
use crate::disclosure::MaskedCount;
use crate::domain::{Quarter, Role};
use crate::estimate::{
    self, AssignedUnit, Estimate, EstimateError, Estimator, Options, Skipped, StudyData, WaldTest,
    Weighting, Windows,
};
use crate::storage::statistics::UploadKind;

/// Below this many firms in an arm nothing is shown outside the directorate (NAV's rule).
const MIN_FIRMS: usize = 5;

/// Why a contrast is withheld outside the directorate: an arm (or control) has too few firms.
const FEW_FIRMS: &str = "withheld: fewer than 5 firms with data in an arm";

/// Why a contrast is withheld outside the directorate: some, but fewer than 5, firms of an arm
/// (or control) have no post-period data, and the estimate's n and df would show how many.
const FEW_DROPPED: &str = "withheld: an arm has some but fewer than 5 firms without post-period \
     data, which the estimate's n, df and interval would reveal";

/// Query of `GET /v1/trials/{id}/estimates`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EstimatesParams {
    /// The statistics vintage (default: latest).
    #[param(example = 1)]
    pub vintage: Option<i64>,
    /// Comma-separated estimators (default: all): itt_dim, itt_ancova, itt_lin, did_twfe, event_study.
    #[param(example = "itt_dim,did_twfe")]
    pub estimator: Option<String>,
    /// `firm`, `dagsverk` or `both` (default: the protocol's analysis plan).
    #[param(example = "firm")]
    pub weights: Option<String>,
    /// Also report did_twfe with CR2 and Satterthwaite df (default true).
    #[param(example = true)]
    pub cr2: Option<bool>,
}

/// The estimates of one trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstimatesResponse {
    /// The trial.
    pub trial: String,
    /// The protocol version's hash.
    pub protocol_hash: String,
    /// The statistics vintage used (the latest upload at or before the one asked for).
    pub vintage: Option<i64>,
    /// The randomization quarter (relative time 0).
    pub randomized_at: String,
    /// Quarters before randomization in the analysis.
    pub pre_quarters: u32,
    /// Quarters from randomization on.
    pub post_quarters: u32,
    /// Every estimate with the fields of docs/statistics.md §A.4. Outside the directorate `n_units`,
    /// `n_obs`, `n_clusters` and every count under `dropped` is an integer or `"<5"`.
    #[schema(value_type = Vec<Object>)]
    pub estimates: Vec<Estimate>,
    /// Joint tests (the event study's pre-trend test).
    #[schema(value_type = Vec<Object>)]
    pub tests: Vec<WaldTest>,
    /// Estimates not computed (or withheld), with the reason (numbers 1 to 4 in it read `<5`
    /// outside the directorate).
    #[schema(value_type = Vec<Object>)]
    pub skipped: Vec<Skipped>,
    /// Firms without post-period data, by arm. Outside the directorate a count of 1 to 4 is
    /// `"<5"`, and a further count of the arm from which it could be worked out (`assigned =
    /// with_post_data + no_post_data`) is `"masked"` (complementary suppression).
    #[schema(value_type = Vec<AttritionRow>)]
    pub attrition: Vec<serde_json::Value>,
}

/// Attrition of one arm. Outside the directorate every count of 1 to 4 is `"<5"`, and a count
/// from which one could be worked out is `"masked"`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the serialized [`Attrition`]
pub struct AttritionRow {
    /// The arm.
    arm: String,
    /// Firms assigned.
    assigned: MaskedCount,
    /// Firms with post-window data.
    with_post_data: MaskedCount,
    /// Firms without (dropped from every estimate).
    no_post_data: MaskedCount,
    /// Firms without pre-window data (kept, with a missing-baseline indicator).
    no_pre_data: MaskedCount,
}

/// A 422 for the query parameter `field` whose value `value` is not one this route reads, in the
/// shape of the query extractor's (`details`: `in`, `field`, `value`, `expected`).
fn bad(field: &'static str, value: &str, expected: &'static str) -> impl Fn(String) -> ApiError {
    let value = value.to_owned();
    move |message| ApiError::Invalid {
        message: format!("query parameter `{field}`: {message}"),
        details: serde_json::json!({
            "in": "query", "field": field, "value": value, "expected": expected
        }),
    }
}

/// Effect estimates for every arm against control: ITT (difference in means, ANCOVA, Lin) and
/// TWFE difference in differences with its event study (protocols/ANALYSIS.md). Outside the
/// directorate, contrasts with an arm of fewer than 5 firms are withheld.
#[utoipa::path(
    get, path = "/v1/trials/{id}/estimates", tag = "estimates",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), EstimatesParams),
    responses(
        (status = 200, description = "The estimates, joint tests, skipped estimates and attrition (here as a researcher sees them)",
            body = EstimatesResponse, example = json!(example("estimates"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Nothing to estimate yet: no randomized firms, no statistics in the window, or no control arm", body = ErrorEnvelope),
        (status = 422, description = "A query parameter is invalid (an unknown estimator or weighting)", body = ErrorEnvelope)
    )
)]
pub async fn get_estimates(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<EstimatesParams>,
) -> Result<Json<EstimatesResponse>, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let protocol = &trial.protocol;
    let estimator = params.estimator.as_deref().unwrap_or("all");
    let estimators = Estimator::parse_list(estimator).map_err(bad(
        "estimator",
        estimator,
        "all, or a comma-separated list of itt_dim, itt_ancova, itt_lin, did_twfe, event_study",
    ))?;
    let weights = match params.weights.as_deref() {
        None => {
            let w: Vec<Weighting> = protocol
                .analysis
                .weights
                .iter()
                .filter_map(|w| Weighting::from_name(w))
                .collect();
            if w.is_empty() {
                vec![Weighting::Firm, Weighting::Dagsverk]
            } else {
                w
            }
        }
        Some("firm") => vec![Weighting::Firm],
        Some("dagsverk") => vec![Weighting::Dagsverk],
        Some("both") => vec![Weighting::Firm, Weighting::Dagsverk],
        Some(other) => {
            return Err(bad("weights", other, "firm, dagsverk or both")(format!(
                "weights {other:?}: use firm, dagsverk or both"
            )));
        }
    };
    let control = protocol
        .control_arm()
        .map(|a| a.id.clone())
        .ok_or_else(|| ApiError::Conflict("the protocol has no control arm".into()))?;
    let follow = &protocol.follow_up;
    let windows = Windows {
        randomized_at: follow.randomization_quarter,
        pre: follow.pre_quarters,
        post: follow.post_quarters,
    };
    let (from, to) = windows
        .span()
        .ok_or_else(|| ApiError::Conflict("the follow-up window leaves the calendar".into()))?;
    let assignments = state.store.assignments(&id, None, None, u32::MAX).await?;
    if assignments.is_empty() {
        return Err(ApiError::Conflict(format!(
            "trial `{id}` has no randomized firms yet; POST /v1/trials/{id}/randomize first"
        )));
    }
    let vintage = state
        .store
        .statistics_uploads(None)
        .await?
        .iter()
        .filter(|r| r.kind == UploadKind::Statistics)
        .map(|r| r.vintage)
        .filter(|v| params.vintage.is_none_or(|want| *v <= want))
        .max();
    let rows = state
        .store
        .trial_panel(&id, from, to, params.vintage)
        .await?;
    let units: Vec<AssignedUnit> = assignments
        .iter()
        .map(|a| AssignedUnit {
            orgnr: a.orgnr,
            arm: a.arm.clone(),
            // Strata are formed per wave (RANDOMIZATION.md); block on (wave, stratum).
            stratum: format!("{}:{}", a.wave, a.stratum),
            klynge: a.klynge.map(|k| k.to_string()),
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len());
    for r in rows {
        let orgnr = r
            .orgnr
            .parse()
            .map_err(|e| ApiError::Internal(format!("stored orgnr {}: {e}", r.orgnr)))?;
        let quarter = Quarter::new(r.arstall, r.kvartal)
            .map_err(|e| ApiError::Internal(format!("stored quarter: {e}")))?;
        values.push((orgnr, quarter, r.tapte, r.mulige));
    }
    if values.is_empty() {
        return Err(ApiError::Conflict(format!(
            "no NAV statistics for the trial's firms from {from} to {to}{}; POST /v1/statistics first",
            params
                .vintage
                .map(|v| format!(" as of vintage {v}"))
                .unwrap_or_default()
        )));
    }
    let mut opts = Options::all(&control);
    opts.estimators = estimators;
    opts.weights = weights;
    opts.conf_level = 1.0 - protocol.analysis.alpha;
    opts.did_cr2 = params.cr2.unwrap_or(true);
    opts.confirmatory = protocol
        .analysis
        .confirmatory
        .iter()
        .filter_map(|n| Estimator::from_name(n))
        .collect();
    opts.protocol_hash = Some(trial.content_hash.clone());
    opts.vintage = vintage;
    let report = tokio::task::spawn_blocking(move || {
        let data = StudyData::from_values(windows, units, values)?;
        estimate::estimate(&data, &opts)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("estimation task: {e}")))?
    .map_err(|e| match e {
        EstimateError::Internal(m) => ApiError::Internal(m),
        other => ApiError::Conflict(other.to_string()),
    })?;
    let open = caller.role == Role::Direktorat;
    // Why an arm's contrasts are withheld outside the directorate, if they are: too few firms
    // with data, or 1 to 4 firms without post-period data. The arm's size is published (CONSORT,
    // the outcome summary), and an estimate's `n_units`, `n_obs` and residual df (and through
    // them its interval and p-value) are functions of the firms with data, so publishing the
    // estimate would give away the small count that attrition hides.
    let reason: BTreeMap<&str, Option<&str>> = report
        .attrition
        .iter()
        .map(|a| {
            let why = if a.with_post_data < MIN_FIRMS {
                Some(FEW_FIRMS)
            } else if a.no_post_data > 0 && a.no_post_data < MIN_FIRMS {
                Some(FEW_DROPPED)
            } else {
                None
            };
            (a.arm.as_str(), why)
        })
        .collect();
    let why = |arm: &str| reason.get(arm).copied().unwrap_or(Some(FEW_FIRMS));
    let withheld = |arm: &str| -> Option<&str> {
        if open {
            None
        } else {
            why(arm).or_else(|| why(control.as_str()))
        }
    };
    let mut skipped = report.skipped.clone();
    let mut estimates = Vec::new();
    for e in report.estimates {
        if let Some(reason) = withheld(&e.arm) {
            if !skipped
                .iter()
                .any(|s| s.arm == e.arm && s.estimator == e.estimator && s.weights == e.weights)
            {
                skipped.push(Skipped {
                    estimator: e.estimator.clone(),
                    arm: e.arm.clone(),
                    weights: e.weights.clone(),
                    se_type: None,
                    error: reason.to_owned(),
                });
            }
        } else {
            estimates.push(e);
        }
    }
    let tests = report
        .tests
        .into_iter()
        .filter(|t| withheld(&t.arm).is_none())
        .collect();
    // Attrition's counts are protected as one table (a hidden count is not recoverable from
    // `assigned` and the others); the route's masking layer then turns every other count of 1
    // to 4 into "<5" outside the directorate, in `dropped` and the messages.
    let attrition = crate::disclosure::complementary::protect_attrition(&report.attrition, open);
    Ok(Json(EstimatesResponse {
        trial: id,
        protocol_hash: trial.content_hash,
        vintage,
        randomized_at: follow.randomization_quarter.to_string(),
        pre_quarters: follow.pre_quarters,
        post_quarters: follow.post_quarters,
        estimates,
        tests,
        skipped,
        attrition,
    }))
}
