//! `/v1/trials/{id}/balance`: the balance table and CONSORT counts of the randomized firms.

use std::collections::{BTreeMap, BTreeSet};

use crate::json::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::domain::{Orgnr, Role};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ErrorEnvelope};
use crate::http::examples::{example, no_trial};
use crate::storage::EnrollmentRecord;

/// CONSORT counts. Outside the directorate a count below 5 firms is hidden (`"masked"`), and so is
/// any further count from which a hidden one could be derived (complementary suppression over
/// this response: CONSORT sums, stratum and arm totals, `n + missing`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsortView {
    /// Firms assessed for eligibility.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub assessed: Option<usize>,
    /// Firms found eligible.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub eligible: Option<usize>,
    /// Excluded firms per reason code (a firm with several reasons counts under each).
    #[serde(serialize_with = "crate::disclosure::hidden_count_map")]
    #[schema(value_type = BTreeMap<String, crate::disclosure::MaskedCount>)]
    pub excluded_by_reason: BTreeMap<String, Option<usize>>,
    /// Randomized firms per arm.
    #[serde(serialize_with = "crate::disclosure::hidden_count_map")]
    #[schema(value_type = BTreeMap<String, crate::disclosure::MaskedCount>)]
    pub randomized_per_arm: BTreeMap<String, Option<usize>>,
    /// Eligible firms not (yet) randomized.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub not_randomized: Option<usize>,
    /// Protocol deviations after allocation (control firms contacted in design A, or helped) per
    /// arm, fylke and kind: `deviations` records over `firms` firms; only cells with one.
    pub protocol_deviations: Vec<crate::storage::takeup::DeviationCount>,
}

impl From<crate::balance::MaskedConsort> for ConsortView {
    fn from(c: crate::balance::MaskedConsort) -> Self {
        ConsortView {
            assessed: c.assessed,
            eligible: c.eligible,
            excluded_by_reason: c.excluded_by_reason,
            randomized_per_arm: c.randomized_per_arm,
            not_randomized: c.not_randomized,
            protocol_deviations: Vec::new(),
        }
    }
}

/// Balance and flow of a trial's randomized firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceView {
    /// CONSORT counts: assessed, eligible, excluded by reason, randomized per arm.
    pub consort: ConsortView,
    /// Covariates by arm (means, SDs, standardized differences), Hotelling's omnibus test per arm
    /// against control, and counts per stratum and arm. Outside the directorate every cell based
    /// on fewer than 5 firms is hidden (a count reads `"masked"`, a mean or SD `null`), and so is every count from which a hidden one
    /// could be derived by the table's sums (complementary suppression).
    pub table: crate::balance::MaskedBalanceTable,
}

/// Cells below this many firms are hidden from every role but the directorate (NAV's rule).
const MIN_CELL: usize = 5;

/// The balance table and CONSORT counts of the firms randomized so far.
#[utoipa::path(
    get, path = "/v1/trials/{id}/balance", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "CONSORT counts and the balance table (here as a researcher sees them)", body = BalanceView,
            example = json!(example("balance"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Nothing randomized yet", body = ErrorEnvelope),
    )
)]
pub async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BalanceView>, ApiError> {
    let trial = state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
    Ok(Json(balance_view(&state, &trial, caller.role).await?))
}

/// The balance table and CONSORT counts of a trial's randomized firms as `role` reads them (before
/// the route's masking layer): the API's and the report page's one computation.
pub(crate) async fn balance_view(
    state: &AppState,
    trial: &crate::storage::TrialInfo,
    role: Role,
) -> Result<BalanceView, ApiError> {
    let id = trial.id.as_str();
    let enrolled = state.store.enrollments(id, None, None).await?;
    let assigned = state.store.assignments(id, None, None, u32::MAX).await?;
    if assigned.is_empty() {
        return Err(ApiError::Conflict(
            "no firm has been randomized yet; the balance table follows the first draw".into(),
        ));
    }
    let arms: Vec<String> = trial.protocol.arms.iter().map(|a| a.id.clone()).collect();
    let control_index = trial
        .protocol
        .arms
        .iter()
        .position(|a| a.control)
        .unwrap_or(0);

    let mut excluded_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for firm in enrolled.iter().filter(|f| !f.eligible) {
        let codes: BTreeSet<&str> = firm.exclusions.iter().map(|e| e.code.as_str()).collect();
        for code in codes {
            *excluded_by_reason.entry(code.to_owned()).or_default() += 1;
        }
    }
    let mut randomized_per_arm: BTreeMap<String, usize> =
        arms.iter().map(|a| (a.clone(), 0)).collect();
    for a in &assigned {
        *randomized_per_arm.entry(a.arm.clone()).or_default() += 1;
    }
    let eligible = enrolled.iter().filter(|f| f.eligible).count();
    let consort = crate::balance::Consort {
        assessed: enrolled.len(),
        eligible,
        excluded_by_reason,
        randomized_per_arm,
        not_randomized: eligible.saturating_sub(assigned.len()),
    };

    let by_orgnr: BTreeMap<Orgnr, &EnrollmentRecord> =
        enrolled.iter().map(|e| (e.orgnr, e)).collect();
    let extra: BTreeSet<&String> = enrolled.iter().flat_map(|e| e.covariates.keys()).collect();
    let mut covariates = vec![
        "antall_ansatte".to_owned(),
        "baseline_prosent".to_owned(),
        "baseline_tapte_dagsverk".to_owned(),
    ];
    covariates.extend(extra.iter().map(|k| (*k).clone()));
    let units: Vec<crate::balance::BalanceUnit> = assigned
        .iter()
        .filter_map(|a| {
            let firm = by_orgnr.get(&a.orgnr)?;
            let arm = arms.iter().position(|x| *x == a.arm)?;
            let mut values = vec![
                Some(f64::from(firm.antall_ansatte)),
                firm.baseline.map(|(t, m)| 100.0 * t / m),
                firm.baseline.map(|(t, _)| t),
            ];
            values.extend(extra.iter().map(|k| firm.covariates.get(*k).copied()));
            Some(crate::balance::BalanceUnit {
                arm,
                stratum: a.stratum.clone(),
                values,
            })
        })
        .collect();
    let table = crate::balance::balance_table(&crate::balance::BalanceInput {
        arms: &arms,
        control_index,
        units: &units,
        covariates: &covariates,
    })
    .map_err(|e| ApiError::Conflict(format!("no balance table: {e}")))?;
    let min = if role == Role::Direktorat {
        0
    } else {
        MIN_CELL
    };
    let (table, consort) = crate::balance::mask_with_flow(&table, &consort, min);
    let mut consort: ConsortView = consort.into();
    consort.protocol_deviations = state.store.deviation_counts(id).await?;
    Ok(BalanceView { consort, table })
}
