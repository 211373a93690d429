//! The pages people read, served by the same binary: HTML from askama templates (`templates/pages`,
//! escaped by default), plots from [`crate::plot`], no front-end build step. A person signs in
//! with a token through a form ([`session`]); a page shows only what the API gives that token's
//! role, and every state change is audited.
//!
//! The pages live beside the API, outside `/v1` and outside the OpenAPI document.

pub mod fylke;
pub mod report;
pub mod session;
pub mod trials;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::domain::Role;
use crate::http::AppState;
use crate::storage::sessions::SessionInfo;
use crate::storage::{AuditResult, NewAuditEntry};

/// The pages' routes.
pub fn router(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route(
            "/logg-inn",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/logg-ut", post(session::sign_out))
        .route("/forsok", get(trials::trials))
        .route("/forsok/{id}/rapport", get(report::report))
        .route("/forsok/{id}/fylke", get(fylke::page))
        .route("/forsok/{id}/fylke/tildelinger.csv", get(fylke::csv))
        .route("/forsok/{id}/fylke/kvittering", post(fylke::acknowledge))
        .route("/forsok/{id}/fylke/oppfolging", post(fylke::takeup_form))
        .route(
            "/forsok/{id}/fylke/oppfolging/fil",
            post(fylke::takeup_file).layer(DefaultBodyLimit::max(upload_limit)),
        )
}

/// A template rendered as a page with `status`; a template that fails to render is a 500 page
/// that says so (never a half page).
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                     form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A page with a title and one paragraph.
#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct Page {
    title: String,
    text: String,
}

impl Page {
    /// A message page.
    pub fn message(title: &str, text: &str) -> Page {
        Page {
            title: title.to_owned(),
            text: text.to_owned(),
        }
    }
}

/// Who is signed in, as every signed-in page's header shows it (`templates/pages/who.html`),
/// with the session's CSRF token for its forms.
pub struct Who {
    name: String,
    role: String,
    fylke: Option<String>,
    csrf: String,
}

impl Who {
    fn of(s: &SessionInfo) -> Who {
        Who {
            name: s.token.name.clone(),
            role: s.token.role.as_str().to_owned(),
            fylke: s.token.fylke.map(|f| f.as_str().to_owned()),
            csrf: s.csrf_token.clone(),
        }
    }
}

/// The session of a page request, or the answer without one: to the sign-in form.
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<SessionInfo, Response> {
    match session::current(state, headers).await {
        Ok(Some((_, s))) => Ok(s),
        Ok(None) => Err(Redirect::to("/logg-inn").into_response()),
        Err(unavailable) => Err(*unavailable),
    }
}

/// The session of a page request whose role is one of `roles`; a refused role gets a 403 page,
/// and the refusal is audited as the API audits one.
pub async fn admitted(
    state: &AppState,
    headers: &HeaderMap,
    (route, path, trial): (&str, &str, Option<&str>),
    roles: &[Role],
) -> Result<SessionInfo, Response> {
    let s = signed_in(state, headers).await?;
    if roles.contains(&s.token.role) {
        return Ok(s);
    }
    let mut audit = NewAuditEntry::now("GET", route, path);
    audit.trial_id = trial.map(str::to_owned);
    audit.request_id = crate::http::middleware::request_id(headers);
    audit.actor = Some(s.token.caller());
    audit.result = AuditResult::Denied;
    audit.status = 403;
    audit.detail = Some(format!(
        "the page is not for the {} role",
        s.token.role.as_str()
    ));
    if state.store.append_audit(&audit).await.is_err() {
        return Err(unavailable());
    }
    let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
    Err(render(
        StatusCode::FORBIDDEN,
        &Page::message(
            "Ikke tilgang",
            &format!(
                "Denne siden er for rollen {}; du er logget inn som {}.",
                names.join(" og "),
                s.token.role.as_str()
            ),
        ),
    ))
}

/// Records a signed-in page read in the audit log, as the API records every request (the trial
/// it concerns, if any), and returns the page; if the row cannot be written the page is not
/// served.
pub async fn audited(
    state: &AppState,
    headers: &HeaderMap,
    (route, path): (&str, &str),
    s: &SessionInfo,
    trial: Option<&str>,
    page: Response,
) -> Response {
    audited_read(state, headers, (route, path), s, trial, Vec::new(), page).await
}

/// [`audited`] for a page that shows firm-level data: the audit row names the firms shown
/// (`orgnr:…`), as the API's row does.
pub async fn audited_read(
    state: &AppState,
    headers: &HeaderMap,
    (route, path): (&str, &str),
    s: &SessionInfo,
    trial: Option<&str>,
    objects: Vec<String>,
    page: Response,
) -> Response {
    let mut audit = NewAuditEntry::now("GET", route, path);
    audit.object_ids = objects;
    audit.request_id = crate::http::middleware::request_id(headers);
    audit.actor = Some(s.token.caller());
    audit.trial_id = trial.map(str::to_owned);
    audit.status = page.status().as_u16();
    audit.result = AuditResult::from_status(audit.status);
    match state.store.append_audit(&audit).await {
        Ok(_) => page,
        Err(_) => unavailable(),
    }
}

/// The page for a trial id that names no trial.
pub fn no_trial(id: &str) -> Response {
    render(
        StatusCode::NOT_FOUND,
        &Page::message(
            "Finnes ikke",
            &format!("Det finnes ikke noe forsøk «{id}»."),
        ),
    )
}

/// The page when the database does not answer.
pub fn unavailable() -> Response {
    render(
        StatusCode::SERVICE_UNAVAILABLE,
        &Page::message(
            "Utilgjengelig",
            "Databasen svarer ikke akkurat nå. Prøv igjen om litt.",
        ),
    )
}

/// A signed-in page: no caching, by browser or proxy.
fn private(mut page: Response) -> Response {
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

/// The front page of a signed-in person.
#[derive(Template)]
#[template(path = "pages/home.html")]
struct Home {
    who: Who,
    expires: String,
    /// Every trial (id, title): the API lists them to every role.
    trials: Vec<(String, String)>,
}

/// `GET /`: who is signed in, or the way to sign in.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(trials) = state.store.list_trials().await else {
        return unavailable();
    };
    let page = private(render(
        StatusCode::OK,
        &Home {
            who: Who::of(&s),
            expires: s.expires_at.format("%Y-%m-%d %H:%M").to_string(),
            trials: trials
                .into_iter()
                .map(|t| (t.id, t.protocol.title))
                .collect(),
        },
    ));
    audited(&state, &headers, ("/", "/"), &s, None, page).await
}
