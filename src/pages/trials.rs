//! The directorate's list of trials, each with its lifecycle state and the next step, and the jobs
//! waiting or running, with their progress.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Who, admitted, audited, private, render, unavailable};
use crate::domain::Role;
use crate::http::AppState;
use crate::protocol::TrialState;
use crate::storage::jobs::{JobQuery, JobState};

/// One trial's row.
struct TrialRow {
    id: String,
    title: String,
    state: &'static str,
    state_label: &'static str,
    version: u32,
    waves: u32,
    next: &'static str,
}

/// One job's row.
struct JobRow {
    id: i64,
    trial: String,
    state: &'static str,
    stage: String,
    done: u64,
    total: u64,
    elapsed: String,
    remaining: String,
}

#[derive(Template)]
#[template(path = "pages/trials.html")]
struct TrialsPage {
    who: Who,
    trials: Vec<TrialRow>,
    jobs: Vec<JobRow>,
}

/// A state in bokmål.
fn state_label(state: TrialState) -> &'static str {
    match state {
        TrialState::Draft => "Utkast",
        TrialState::Registered => "Registrert",
        TrialState::Enrolling => "Innmelding",
        TrialState::Randomized => "Randomisert",
        TrialState::FollowUp => "Oppfølging",
        TrialState::Closed => "Avsluttet",
    }
}

/// What the directorate does next in a state.
pub fn next_step(state: TrialState) -> &'static str {
    match state {
        TrialState::Draft => "Ferdigstill og registrer protokollen",
        TrialState::Registered => "Åpne innmeldingen av virksomheter",
        TrialState::Enrolling => {
            "Meld inn virksomheter og les inn statistikk, sjekk hva forsøket kan påvise (power), \
             randomiser"
        }
        TrialState::Randomized => {
            "Les inn oppfølgingsstatistikk og analyser, eller meld inn neste bølge"
        }
        TrialState::FollowUp => "Les inn ny statistikk hvert kvartal og analyser",
        TrialState::Closed => "Ingen: forsøket er avsluttet",
    }
}

/// Seconds as "1 min 5 s", or "–".
fn duration(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 => {
            let whole = s.round() as u64;
            if whole >= 60 {
                format!("{} min {} s", whole / 60, whole % 60)
            } else {
                format!("{whole} s")
            }
        }
        _ => "–".to_owned(),
    }
}

/// `GET /forsok` (direktorat).
pub async fn trials(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match admitted(
        &state,
        &headers,
        ("/forsok", "/forsok", None),
        &[Role::Direktorat],
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(list) = state.store.list_trials().await else {
        return unavailable();
    };
    let mut jobs = Vec::new();
    for wanted in [JobState::Running, JobState::Queued] {
        let query = JobQuery {
            state: Some(wanted),
            trial: None,
            limit: 100,
        };
        let Ok(found) = state.store.list_jobs(&query).await else {
            return unavailable();
        };
        jobs.extend(
            found
                .into_iter()
                .map(|j| crate::http::jobs::live(&state, j)),
        );
    }
    let trials = list
        .iter()
        .map(|t| TrialRow {
            id: t.id.clone(),
            title: t.protocol.title.clone(),
            state: t.state.as_str(),
            state_label: state_label(t.state),
            version: t.version,
            waves: t.waves_drawn,
            next: next_step(t.state),
        })
        .collect();
    let jobs = jobs
        .into_iter()
        .map(|j| JobRow {
            id: j.id,
            trial: j.trial.unwrap_or_default(),
            state: j.state.as_str(),
            stage: j.progress.stage.unwrap_or_else(|| "–".to_owned()),
            done: j.progress.done,
            total: j.progress.total,
            elapsed: duration(j.progress.elapsed_seconds),
            remaining: duration(j.progress.remaining_seconds),
        })
        .collect();
    let page = private(render(
        StatusCode::OK,
        &TrialsPage {
            who: Who::of(&s),
            trials,
            jobs,
        },
    ));
    audited(&state, &headers, ("/forsok", "/forsok"), &s, None, page).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_a_next_step_and_a_label() {
        for s in TrialState::ALL {
            assert!(!next_step(s).is_empty());
            assert!(!state_label(s).is_empty());
        }
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(duration(Some(5.4)), "5 s");
        assert_eq!(duration(Some(65.0)), "1 min 5 s");
        assert_eq!(duration(None), "–");
        assert_eq!(duration(Some(f64::NAN)), "–");
    }
}
