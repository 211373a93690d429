//! The HTTP API (axum). Handlers are thin: parse, check, call the store, answer.
//!
//! Every route under `/v1` is authenticated and audited ([`middleware::authenticate_and_audit`])
//! and declares the roles it admits ([`routes::Admit::admit`]); the OpenAPI document at
//! `/openapi.json` is generated from the same declarations.

pub(crate) mod analyses;
mod audit;
pub mod error;
mod estimates;
mod examples;
mod health;
pub(crate) mod jobs;
pub mod middleware;
pub mod routes;
mod statistics;
pub(crate) mod takeup;
mod tokens;
pub(crate) mod trials;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::config::HttpConfig;
use crate::domain::Role;
use crate::jobs::{JobConfig, Jobs};
use crate::storage::Store;
use error::envelope;
use middleware::REQUEST_ID_HEADER;
use routes::Admit;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// How the service runs.
    pub config: Arc<HttpConfig>,
    /// The worker pool running this instance's jobs.
    pub jobs: Arc<Jobs>,
}

impl AppState {
    /// State over a store and a configuration, with a worker pool of the default size (one
    /// worker per core) started on it. Call inside a Tokio runtime.
    pub fn new(store: Arc<dyn Store>, config: HttpConfig) -> Self {
        Self::with_jobs(store, config, JobConfig::default())
    }

    /// State with a worker pool configured by `jobs`.
    pub fn with_jobs(store: Arc<dyn Store>, config: HttpConfig, jobs: JobConfig) -> Self {
        AppState {
            jobs: Jobs::start(Arc::clone(&store), jobs),
            store,
            config: Arc::new(config),
        }
    }
}

const DIREKTORAT: &[Role] = &[Role::Direktorat];
const EVERY_ROLE: &[Role] = Role::ALL;
/// Firm-level data: the directorate, and a fylke for its own firms; never researchers.
const FIRM_LEVEL: &[Role] = &[Role::Direktorat, Role::Fylke];
const FYLKE: &[Role] = &[Role::Fylke];
/// Aggregates over firms (masked below 5 outside the directorate).
const AGGREGATES: &[Role] = &[Role::Direktorat, Role::Forsker];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ia-rct",
        description = "Randomized trial of NAV's arbeidsformer against sickness absence: protocols, \
                       enrollment, randomization, NAV statistics and effect estimates. \
                       Authenticate with `Authorization: Bearer iarct_…`; each operation lists the \
                       roles it admits in `x-ia-rct-roles`. Errors share one envelope: \
                       `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "tokens", description = "Bearer tokens and roles"),
        (name = "audit", description = "The append-only audit log"),
        (name = "trials", description = "Trial protocols, versions and the lifecycle"),
        (name = "statistics", description = "NAV's firm-quarter sickness statistics, versioned by upload"),
        (name = "delivery", description = "Take-up, surveys and outcomes by arm"),
        (name = "enrollment", description = "Enrolling firms and their eligibility"),
        (name = "randomization", description = "Draws, assignments delivered to each fylke, acknowledgements"),
        (name = "jobs", description = "Long computations: their state, progress and cancellation"),
        (name = "probes", description = "Liveness, readiness and this document"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `ia-rct token create` or POST /v1/tokens",
                    ))
                    .build(),
            ),
        );
    }
}

/// The authenticated, audited API under `/v1`.
fn v1(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tokens::list_tokens, tokens::create_token).admit(DIREKTORAT))
        .routes(routes!(tokens::revoke_token).admit(DIREKTORAT))
        .routes(routes!(tokens::whoami).admit(EVERY_ROLE))
        .routes(routes!(audit::list_audit).admit(DIREKTORAT))
        .routes(routes!(trials::list_trials).admit(EVERY_ROLE))
        .routes(routes!(trials::create_trial).admit(DIREKTORAT))
        .routes(routes!(trials::get_trial).admit(EVERY_ROLE))
        .routes(routes!(trials::save_protocol).admit(DIREKTORAT))
        .routes(routes!(trials::list_versions).admit(EVERY_ROLE))
        .routes(routes!(trials::transition_trial).admit(DIREKTORAT))
        .routes(
            routes!(trials::enroll)
                .admit(DIREKTORAT)
                .layer(DefaultBodyLimit::max(state.config.upload_limit)),
        )
        .routes(routes!(trials::list_enrollment).admit(FIRM_LEVEL))
        .routes(routes!(trials::randomize_wave).admit(DIREKTORAT))
        .routes(routes!(trials::list_assignments).admit(FIRM_LEVEL))
        .routes(routes!(trials::acknowledge).admit(FYLKE))
        .routes(routes!(trials::list_acknowledgements).admit(FIRM_LEVEL))
        .routes(routes!(trials::acknowledgement_status).admit(DIREKTORAT))
        .routes(routes!(trials::get_balance).admit(AGGREGATES).masked())
        .routes(
            routes!(takeup::record_takeup)
                .admit(FIRM_LEVEL)
                .layer(DefaultBodyLimit::max(state.config.upload_limit)),
        )
        .routes(routes!(takeup::list_takeup).admit(FIRM_LEVEL))
        .routes(
            routes!(takeup::record_surveys)
                .admit(FIRM_LEVEL)
                .layer(DefaultBodyLimit::max(state.config.upload_limit)),
        )
        .routes(routes!(takeup::list_deviations).admit(DIREKTORAT))
        .routes(routes!(takeup::outcome_summary).admit(AGGREGATES).masked())
        .routes(routes!(estimates::get_estimates).admit(AGGREGATES).masked())
        .routes(
            routes!(analyses::list_analyses, analyses::create_analysis)
                .admit(AGGREGATES)
                .masked(),
        )
        .routes(routes!(analyses::get_analysis).admit(AGGREGATES).masked())
        .routes(routes!(analyses::get_analysis_result).admit(DIREKTORAT))
        .routes(routes!(jobs::list_jobs).admit(DIREKTORAT))
        .routes(
            routes!(jobs::get_job, jobs::cancel_job)
                .admit(AGGREGATES)
                .masked(),
        )
        .routes(routes!(statistics::upload_statistics).admit(DIREKTORAT))
        .routes(
            routes!(statistics::list_vintages)
                .admit(AGGREGATES)
                .masked(),
        )
        .routes(routes!(statistics::get_metadata).admit(DIREKTORAT))
        .routes(routes!(trials::get_draw_units).admit(DIREKTORAT))
        .routes(routes!(trials::get_draw_assignment).admit(DIREKTORAT))
        // A panic inside a handler becomes a 500 here, inside the audit layer, so it is audited.
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate_and_audit,
        ))
}

/// The whole application with its OpenAPI document, before the cross-cutting layers.
pub fn router_and_openapi(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::openapi_json))
        .merge(v1(state))
        .split_for_parts()
}

/// The application: every route, with request ids, tracing, error logging, panic catching and the
/// body limit.
pub fn app(state: AppState) -> Router {
    let (router, doc) = router_and_openapi(&state);
    let body_limit = state.config.body_limit;
    router
        .merge(crate::pages::router(state.config.upload_limit))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(Arc::new(doc)))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::log_server_errors))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(REQUEST_ID_HEADER)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let request_id = middleware::request_id(req.headers()).unwrap_or_default();
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), %request_id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static(REQUEST_ID_HEADER),
            MakeRequestUuid,
        ))
        .layer(axum::middleware::from_fn(middleware::sanitize_request_id))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!(
            "no route {} {}; GET /openapi.json lists every route",
            req.method(),
            req.uri().path()
        ),
        json!({}),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!(
            "{} is not allowed on {}; GET /openapi.json lists the methods of every route",
            req.method(),
            req.uri().path()
        ),
        json!({}),
    )
}

/// Serves the application on a bound listener until `shutdown` resolves, then stops accepting
/// connections and finishes the requests in flight.
///
/// # Errors
/// An I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
