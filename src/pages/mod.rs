//! The pages people read, served by the same binary: HTML from askama templates (`templates/pages`,
//! escaped by default), plots from [`crate::plot`], no front-end build step. A person signs in
//! with a token through a form ([`session`]); a page shows only what the API gives that token's
//! role, and every state change is audited.
//!
//! The pages live beside the API, outside `/v1` and outside the OpenAPI document.

pub mod session;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::http::AppState;

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route(
            "/logg-inn",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/logg-ut", post(session::sign_out))
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

/// The front page of a signed-in person.
#[derive(Template)]
#[template(path = "pages/home.html")]
struct Home {
    name: String,
    role: String,
    fylke: Option<String>,
    csrf: String,
    expires: String,
}

/// `GET /`: who is signed in, or the way to sign in.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((_, s)) = session::current(&state, &headers).await else {
        return Redirect::to("/logg-inn").into_response();
    };
    let mut page = render(
        StatusCode::OK,
        &Home {
            name: s.token.name.clone(),
            role: s.token.role.as_str().to_owned(),
            fylke: s.token.fylke.map(|f| f.as_str().to_owned()),
            csrf: s.csrf_token.clone(),
            expires: s.expires_at.format("%Y-%m-%d %H:%M").to_string(),
        },
    );
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}
