//! The trial report (direktorat, forsker), read from stored analysis runs: a list of sections,
//! each built on its own from what the report has read ([`ReportData`]). A later estimator adds
//! its section to [`SECTIONS`] without touching the others.
//!
//! What a role reads is what the API gives it: the run's result through
//! [`crate::analysis::view`] (contrasts withheld outside the directorate) and then
//! [`crate::disclosure::mask_for`] (counts of 1 to 4 read "<5").

mod sections;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::{Who, admitted, audited, private, render};
use crate::domain::Role;
use crate::estimate::Report;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::storage::analyses::AnalysisRecord;
use crate::storage::jobs::JobState;
use crate::storage::{StoreError, TrialInfo};

/// What the sections read: the trial, the latest complete run and its result as the role may
/// read it (masked JSON), and the newest run if it is still computing.
pub struct ReportData {
    /// The trial.
    pub trial: TrialInfo,
    /// The latest run with a result.
    pub done: Option<AnalysisRecord>,
    /// Its estimates, tests and attrition as the role reads them (masked JSON).
    pub result: Option<Value>,
    /// The newest run, when it has no result yet.
    pub pending: Option<AnalysisRecord>,
    /// Whether the reader is the directorate.
    pub open: bool,
    /// The balance table and CONSORT counts as the role reads them (masked JSON), once a wave is
    /// drawn.
    pub balance: Option<Value>,
    /// Randomized firms that received help (have been AKTIV), per arm, as the role reads them
    /// (the outcome summary's `delivery`).
    pub received: Option<Value>,
    /// The outcome summary (the rate by arm and quarter) as the role reads it (masked JSON).
    pub outcomes: Option<Value>,
}

/// One section as rendered: its anchor, title and markup.
pub struct Section {
    id: &'static str,
    title: String,
    html: Rendered,
}

/// Markup that an escaped askama template rendered (with [`crate::plot`]'s SVG inside): the only
/// HTML the report template writes unescaped. Only `sections::section` makes one.
pub struct Rendered(String);

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A section of the report: `None` when it has nothing to show.
type Build = fn(&ReportData) -> Option<Section>;

/// The report's sections, in order.
const SECTIONS: &[Build] = &[
    sections::protocol,
    sections::progress,
    sections::consort,
    sections::balance,
    sections::rates,
    sections::estimates,
    sections::event_study,
];

#[derive(Template)]
#[template(path = "pages/report.html")]
struct ReportPage {
    who: Option<Who>,
    trial_id: String,
    title: String,
    download: bool,
    sections: Vec<Section>,
}

/// The report's query: `last-ned=1` downloads it as one file.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    #[serde(rename = "last-ned", default)]
    download: Option<String>,
}

/// `GET /forsok/{id}/rapport` (direktorat, forsker).
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Response {
    let route = "/forsok/{id}/rapport";
    let path = format!("/forsok/{id}/rapport");
    let target = (route, path.as_str(), Some(id.as_str()));
    let s = match admitted(&state, &headers, target, &[Role::Direktorat, Role::Forsker]).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let trial = match state.store.get_trial(&id).await {
        Ok(trial) => trial,
        Err(StoreError::NotFound) => {
            let page = super::no_trial(&id);
            return audited(&state, &headers, (route, &path), &s, Some(&id), page).await;
        }
        Err(_) => return super::unavailable(),
    };
    let data = match read(&state, trial, s.token.role).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let download = query.download.is_some_and(|v| v == "1");
    let page = ReportPage {
        who: (!download).then(|| Who::of(&s)),
        trial_id: data.trial.id.clone(),
        title: data.trial.protocol.title.clone(),
        download,
        sections: SECTIONS.iter().filter_map(|build| build(&data)).collect(),
    };
    let mut resp = private(render(StatusCode::OK, &page));
    if download {
        let name = format!("attachment; filename=\"rapport-{}.html\"", data.trial.id);
        if let Ok(v) = HeaderValue::from_str(&name) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    audited(
        &state,
        &headers,
        (route, &path),
        &s,
        Some(&data.trial.id),
        resp,
    )
    .await
}

/// Reads the runs and the latest result, as `role` may read it.
async fn read(state: &AppState, trial: TrialInfo, role: Role) -> Result<ReportData, Response> {
    let unavailable = super::unavailable;
    // The report is the default analysis (every estimator of the protocol's plan, the latest
    // vintage), as `GET /v1/trials/{id}/estimates` serves it; a run with other options is read
    // only when the default one has never been made.
    let default = match crate::analysis::key(
        state.store.as_ref(),
        &trial,
        &crate::analysis::AnalysisRequest::default(),
    )
    .await
    {
        Ok(key) => state
            .store
            .find_analysis(&trial.id, &key.hash())
            .await
            .map_err(|_| unavailable())?,
        Err(crate::analysis::AnalysisError::Store(_)) => return Err(unavailable()),
        Err(_) => None,
    };
    let runs = state
        .store
        .list_analyses(&trial.id, 100)
        .await
        .map_err(|_| unavailable())?;
    let latest_done = runs
        .iter()
        .filter(|r| r.result_sha256.is_some())
        .max_by_key(|r| r.id)
        .cloned();
    let done = match &default {
        Some(run) if run.result_sha256.is_some() => Some(run.clone()),
        Some(_) => None,
        None => latest_done,
    };
    let pending = runs
        .iter()
        .filter(|r| r.result_sha256.is_none())
        .filter(|r| {
            r.job
                .as_ref()
                .is_none_or(|j| matches!(j.state, JobState::Queued | JobState::Running))
        })
        .filter(|r| default.as_ref().is_none_or(|d| d.id == r.id))
        .max_by_key(|r| r.id)
        .filter(|p| done.as_ref().is_none_or(|d| p.id > d.id))
        .cloned()
        .map(|mut p| {
            if let Some(job) = p.job.take() {
                p.job = Some(crate::http::jobs::live(state, job));
            }
            p
        });
    let open = role == Role::Direktorat;
    let result = match &done {
        Some(run) => {
            let json = state
                .store
                .analysis_result(run.id)
                .await
                .map_err(|_| unavailable())?
                .unwrap_or_default();
            let report: Report = serde_json::from_str(&json).map_err(|_| unavailable())?;
            // The control arm of the protocol version the run analysed, as the API reads it.
            let control = crate::http::analyses::control_of(state, &trial, run.protocol_version)
                .await
                .map_err(|_| unavailable())?;
            let view = crate::analysis::view(report, open, &control);
            let value = serde_json::to_value(&view).map_err(|_| unavailable())?;
            Some(crate::disclosure::mask_for(role, value))
        }
        None => None,
    };
    // A view the API refuses (409/422: e.g. an arm without randomized firms) leaves its
    // sections out; only a database that does not answer fails the page.
    let refused = |e: &ApiError| matches!(e, ApiError::Conflict(_) | ApiError::Invalid { .. });
    let (balance, received, outcomes) = if trial.waves_drawn > 0 {
        let balance = match crate::http::trials::balance::balance_view(state, &trial, role).await {
            Ok(view) => Some(crate::disclosure::mask_for(
                role,
                serde_json::to_value(&view).map_err(|_| unavailable())?,
            )),
            Err(e) if refused(&e) => None,
            Err(_) => return Err(unavailable()),
        };
        // The rates of the run's own vintage, so the report reads one vintage throughout.
        let vintage = done.as_ref().and_then(|r| r.vintage);
        let outcomes = match crate::http::takeup::outcome_view(state, &trial, role, vintage).await {
            Ok(view) => Some(crate::disclosure::mask_for(
                role,
                serde_json::to_value(&view).map_err(|_| unavailable())?,
            )),
            Err(e) if refused(&e) => None,
            Err(_) => return Err(unavailable()),
        };
        // Received help per arm: the outcome summary's delivery, as the API publishes it.
        let received = outcomes.as_ref().map(|o| {
            Value::Object(
                o["delivery"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        (
                            d["arm"].as_str().unwrap_or("").to_owned(),
                            d["received"].clone(),
                        )
                    })
                    .collect(),
            )
        });
        (balance, received, outcomes)
    } else {
        (None, None, None)
    };
    Ok(ReportData {
        trial,
        done,
        result,
        pending,
        open,
        balance,
        received,
        outcomes,
    })
}
