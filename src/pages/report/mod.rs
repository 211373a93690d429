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

use super::{Page, Who, admitted, audited, private, render};
use crate::domain::Role;
use crate::estimate::Report;
use crate::http::AppState;
use crate::storage::TrialInfo;
use crate::storage::analyses::AnalysisRecord;
use crate::storage::jobs::JobState;

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

/// One section as rendered: its anchor, title and markup (built from escaped templates and
/// [`crate::plot`] only).
pub struct Section {
    id: &'static str,
    title: String,
    html: String,
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
    let s = match admitted(&state, &headers, route, &[Role::Direktorat, Role::Forsker]).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(trial) = state.store.get_trial(&id).await else {
        return render(
            StatusCode::NOT_FOUND,
            &Page::message(
                "Finnes ikke",
                &format!("Det finnes ikke noe forsøk «{id}»."),
            ),
        );
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
    let path = format!("/forsok/{}/rapport", data.trial.id);
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
    let runs = state
        .store
        .list_analyses(&trial.id, 100)
        .await
        .map_err(|_| unavailable())?;
    let done = runs
        .iter()
        .filter(|r| r.result_sha256.is_some())
        .max_by_key(|r| r.id)
        .cloned();
    let pending = runs
        .iter()
        .filter(|r| r.result_sha256.is_none())
        .filter(|r| {
            r.job
                .as_ref()
                .is_none_or(|j| matches!(j.state, JobState::Queued | JobState::Running))
        })
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
            let control = trial
                .protocol
                .control_arm()
                .map(|a| a.id.clone())
                .unwrap_or_default();
            let view = crate::analysis::view(report, open, &control);
            let value = serde_json::to_value(&view).map_err(|_| unavailable())?;
            Some(crate::disclosure::mask_for(role, value))
        }
        None => None,
    };
    let (balance, received, outcomes) = if trial.waves_drawn > 0 {
        let view = crate::http::trials::balance::balance_view(state, &trial, role)
            .await
            .map_err(|_| unavailable())?;
        let value = serde_json::to_value(&view).map_err(|_| unavailable())?;
        let outcomes = crate::http::takeup::outcome_view(state, &trial, role, None)
            .await
            .map_err(|_| unavailable())?;
        let outcomes = crate::disclosure::mask_for(
            role,
            serde_json::to_value(&outcomes).map_err(|_| unavailable())?,
        );
        // Received help per arm: the outcome summary's delivery, as the API publishes it.
        let received: serde_json::Map<String, Value> = outcomes["delivery"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["arm"].as_str().unwrap_or("").to_owned(),
                    d["received"].clone(),
                )
            })
            .collect();
        (
            Some(crate::disclosure::mask_for(role, value)),
            Some(Value::Object(received)),
            Some(outcomes),
        )
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
