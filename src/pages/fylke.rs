//! The fylke's page: its own firms with their arms and instructions, the acknowledgement of each
//! drawn wave, the assignment CSV, and take-up reported through a form or a file. Every read and
//! write goes through the API's own functions with the session's caller, so the page shows and
//! accepts exactly what `GET /v1/trials/{id}/assignments`, `POST …/acknowledgements` and
//! `POST …/takeup` would for the fylke's token.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::check_form;
use super::{Page, Who, admitted, audited, audited_read, no_trial, private, render, unavailable};
use crate::auth::Caller;
use crate::domain::{FylkeCode, Orgnr, Role};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::trials::{CsvDialect, audit_objects, delivered, fylke_csv};
use crate::storage::sessions::SessionInfo;
use crate::storage::{AuditResult, NewAuditEntry, StoreError, TrialInfo};
use crate::takeup::TakeupStatus;

/// Firms per page of the table.
const PAGE_SIZE: u32 = 500;

/// One arm as the fylke's page lists it.
struct ArmRow {
    id: String,
    name: String,
    contact: bool,
    instructions: String,
    firms: usize,
}

/// A drawn wave with firms in the fylke.
struct WaveRow {
    wave: u32,
    drawn: String,
    firms: usize,
    acknowledged: Option<String>,
}

/// One firm's row.
struct FirmRow {
    orgnr: String,
    name: String,
    kommune: String,
    arm: String,
    arm_name: String,
    contact: bool,
    wave: u32,
    status: String,
    hours: String,
}

#[derive(Template)]
#[template(path = "pages/fylke.html")]
struct FylkePage {
    who: Who,
    trial_id: String,
    title: String,
    fylke: String,
    fylke_name: String,
    total: usize,
    arms: Vec<ArmRow>,
    waves: Vec<WaveRow>,
    firms: Vec<FirmRow>,
    next_after: Option<String>,
    statuses: Vec<&'static str>,
}

/// The outcome of a form: what was recorded, or why nothing was.
#[derive(Template)]
#[template(path = "pages/fylke_result.html")]
struct ResultPage {
    who: Who,
    trial_id: String,
    title: String,
    text: String,
    problems: Vec<Problem>,
    notes: Vec<String>,
}

/// One row problem of a refused upload (row, field, value, reason).
struct Problem {
    row: String,
    field: String,
    value: String,
    reason: String,
}

/// The page's query: `etter` is the last orgnr of the previous page.
#[derive(Debug, Deserialize)]
pub struct FirmsQuery {
    #[serde(default)]
    etter: Option<String>,
}

/// The CSV's query: `dialekt=excel` for Norwegian Excel.
#[derive(Debug, Deserialize)]
pub struct CsvQuery {
    #[serde(default)]
    dialekt: Option<String>,
}

/// The signed-in fylke of a read of `route` (its `{id}` the trial): its session, fylke and the
/// request path; anyone else gets the 403 page, audited.
async fn fylke_session(
    state: &AppState,
    headers: &HeaderMap,
    route: &str,
    id: &str,
) -> Result<(SessionInfo, FylkeCode, String), Response> {
    let path = route.replace("{id}", id);
    let s = admitted(state, headers, (route, &path, Some(id)), &[Role::Fylke]).await?;
    match s.token.fylke {
        Some(f) => Ok((s, f, path)),
        // A fylke token is always bound to a fylke; one that is not may see nothing.
        None => Err(render(
            StatusCode::FORBIDDEN,
            &Page::message("Ikke tilgang", "Tokenet er ikke knyttet til noe fylke."),
        )),
    }
}

/// `GET /forsok/{id}/fylke` (fylke): a page of the fylke's own firms.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<FirmsQuery>,
) -> Response {
    let route = "/forsok/{id}/fylke";
    let (s, fylke, path) = match fylke_session(&state, &headers, route, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let after = match query.etter.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<Orgnr>() {
            Ok(o) => Some(o),
            Err(e) => {
                let page = render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &Page::message("Ugyldig side", &format!("etter: {e}")),
                );
                return audited(&state, &headers, (route, &path), &s, Some(&id), page).await;
            }
        },
    };
    let (trial, firms, next_after) =
        match delivered(&state, &id, Some(fylke), after, PAGE_SIZE).await {
            Ok(found) => found,
            Err(ApiError::NotFound(_)) => {
                let page = no_trial(&id);
                return audited(&state, &headers, (route, &path), &s, Some(&id), page).await;
            }
            Err(_) => return unavailable(),
        };
    let Ok(counts) = state.store.assignment_counts(&id).await else {
        return unavailable();
    };
    let Ok(acks) = state.store.acknowledgements(&id).await else {
        return unavailable();
    };
    let Ok(draws) = state.store.draws(&id).await else {
        return unavailable();
    };
    let Ok(events) = state.store.takeup_events(&id, Some(fylke)).await else {
        return unavailable();
    };
    let delivery = crate::takeup::summarize(&events);
    // Arms: the firms per arm are counted over every page (the fylke's own firms, which it sees
    // one by one anyway, so no count is masked).
    let Ok(all) = state
        .store
        .assignments(&id, Some(fylke), None, u32::MAX)
        .await
    else {
        return unavailable();
    };
    let mut per_arm: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &all {
        *per_arm.entry(a.arm.as_str()).or_default() += 1;
    }
    let design_a = trial.protocol.design == crate::protocol::Design::A;
    let arms = trial
        .protocol
        .arms
        .iter()
        .map(|a| ArmRow {
            id: a.id.clone(),
            name: a.name.clone(),
            contact: !(a.control && design_a),
            instructions: a.instructions.clone(),
            firms: per_arm.get(a.id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let waves = counts
        .iter()
        .filter(|c| c.fylke == fylke)
        .map(|c| WaveRow {
            wave: c.wave,
            drawn: draws
                .iter()
                .find(|d| d.wave == c.wave)
                .map(|d| d.drawn_at.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            firms: c.firms,
            acknowledged: acks
                .iter()
                .find(|a| a.wave == c.wave && a.fylke == fylke)
                .map(|a| {
                    format!(
                        "{} av {}",
                        a.acknowledged_at.format("%Y-%m-%d %H:%M"),
                        a.acknowledged_by
                    )
                }),
        })
        .collect();
    let objects = audit_objects(&firms);
    let rows = firms
        .iter()
        .map(|f| {
            let d = delivery.get(&f.orgnr);
            FirmRow {
                orgnr: f.orgnr.to_string(),
                name: f.navn.clone().unwrap_or_default(),
                kommune: f.kommunenummer.clone().unwrap_or_default(),
                arm: f.arm.clone(),
                arm_name: f.arm_navn.clone(),
                contact: f.kontakt,
                wave: f.bolge,
                status: d.map_or_else(|| "–".to_owned(), |c| c.last_status.as_str().to_owned()),
                hours: d.map_or_else(String::new, |c| format_hours(c.timer)),
            }
        })
        .collect();
    let page = FylkePage {
        who: Who::of(&s),
        trial_id: trial.id.clone(),
        title: trial.protocol.title.clone(),
        fylke: fylke.as_str().to_owned(),
        fylke_name: fylke.name().to_owned(),
        total: all.len(),
        arms,
        waves,
        firms: rows,
        next_after: next_after.map(|o| o.to_string()),
        statuses: TakeupStatus::ALL.iter().map(|s| s.as_str()).collect(),
    };
    let resp = private(render(StatusCode::OK, &page));
    audited_read(
        &state,
        &headers,
        (route, &path),
        &s,
        Some(&trial.id),
        objects,
        resp,
    )
    .await
}

/// Hours as the page shows them (`7,5`).
fn format_hours(hours: f64) -> String {
    if hours == 0.0 {
        String::new()
    } else {
        let text = format!("{hours:.2}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.replace('.', ",")
    }
}

/// `GET /forsok/{id}/fylke/tildelinger.csv` (fylke): every one of the fylke's firms, in the
/// API's CSV (`dialekt=excel` for Norwegian Excel).
pub async fn csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<CsvQuery>,
) -> Response {
    let route = "/forsok/{id}/fylke/tildelinger.csv";
    let (s, fylke, path) = match fylke_session(&state, &headers, route, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let dialect = match query.dialekt.as_deref() {
        None | Some("") => CsvDialect::Plain,
        Some("excel") => CsvDialect::Excel,
        Some(other) => {
            let page = render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &Page::message(
                    "Ukjent dialekt",
                    &format!("dialekt: «{other}» finnes ikke; bruk excel, eller utelat den"),
                ),
            );
            return audited(&state, &headers, (route, &path), &s, Some(&id), page).await;
        }
    };
    let (trial, firms, _) = match delivered(&state, &id, Some(fylke), None, u32::MAX).await {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) => {
            let page = no_trial(&id);
            return audited(&state, &headers, (route, &path), &s, Some(&id), page).await;
        }
        Err(_) => return unavailable(),
    };
    // A person downloads it to open it in a spreadsheet: formula cells are guarded in both
    // dialects.
    let Ok(body) = fylke_csv(&firms, dialect, true) else {
        return unavailable();
    };
    let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    let name = format!(
        "attachment; filename=\"tildelinger-{}-fylke-{}.csv\"",
        trial.id,
        fylke.as_str()
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    audited_read(
        &state,
        &headers,
        (route, &path),
        &s,
        Some(&trial.id),
        audit_objects(&firms),
        private(resp),
    )
    .await
}

/// The acknowledgement form.
#[derive(Debug, Deserialize)]
pub struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    wave: String,
}

/// A signed-in fylke's form: checked for site, session and CSRF; then the trial and an audit
/// entry for the write.
async fn fylke_form(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    (route, id, action): (&str, &str, &str),
) -> Result<(SessionInfo, Caller, TrialInfo, NewAuditEntry), Box<Response>> {
    let path = format!("/forsok/{id}/fylke/{action}");
    let (_, s) = check_form(state, headers, (route, &path), csrf).await?;
    let caller = s.token.caller();
    let mut audit = NewAuditEntry::now("POST", route, &path);
    audit.request_id = crate::http::middleware::request_id(headers);
    audit.actor = Some(caller.clone());
    audit.trial_id = Some(id.to_owned());
    if s.token.role != Role::Fylke || caller.fylke.is_none() {
        audit.result = AuditResult::Denied;
        audit.status = 403;
        audit.detail = Some("only a fylke reports on the fylke page".into());
        if state.store.append_audit(&audit).await.is_err() {
            return Err(Box::new(unavailable()));
        }
        return Err(Box::new(render(
            StatusCode::FORBIDDEN,
            &Page::message("Ikke tilgang", "Bare et fylke melder på fylkets side."),
        )));
    }
    let trial = match state.store.get_trial(id).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => {
            audit.status = 404;
            audit.result = AuditResult::from_status(404);
            audit.detail = Some(format!("no trial `{id}`"));
            if state.store.append_audit(&audit).await.is_err() {
                return Err(Box::new(unavailable()));
            }
            return Err(Box::new(no_trial(id)));
        }
        Err(_) => return Err(Box::new(unavailable())),
    };
    Ok((s, caller, trial, audit))
}

/// A refused write: audited as failed with its status and reason, then shown with its problems.
async fn refused(
    state: &AppState,
    mut audit: NewAuditEntry,
    (s, trial): (&SessionInfo, &TrialInfo),
    error: ApiError,
) -> Response {
    let status = error.status();
    audit.status = status.as_u16();
    audit.result = AuditResult::from_status(audit.status);
    audit.detail = Some(error.to_string());
    if state.store.append_audit(&audit).await.is_err() {
        return unavailable();
    }
    let problems = match &error {
        ApiError::Invalid { details, .. } => details["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| Problem {
                row: e["row"].as_u64().map(|r| r.to_string()).unwrap_or_default(),
                field: e["field"].as_str().unwrap_or_default().to_owned(),
                value: e["value"].as_str().unwrap_or_default().to_owned(),
                reason: e["reason"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let page = ResultPage {
        who: Who::of(s),
        trial_id: trial.id.clone(),
        title: "Ikke registrert".into(),
        text: format!("Ingenting ble registrert: {error}"),
        problems,
        notes: Vec::new(),
    };
    private(render(status, &page))
}

/// `POST /forsok/{id}/fylke/kvittering` (fylke): acknowledges a wave's assignments.
pub async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<AckForm>,
) -> Response {
    let route = "/forsok/{id}/fylke/kvittering";
    let (s, caller, trial, mut audit) =
        match fylke_form(&state, &headers, &form.csrf, (route, &id, "kvittering")).await {
            Ok(found) => found,
            Err(r) => return *r,
        };
    let Ok(wave) = form.wave.trim().parse::<u32>() else {
        let error = ApiError::invalid_field("wave", "the wave must be a whole number");
        return refused(&state, audit, (&s, &trial), error).await;
    };
    let Some(fylke) = caller.fylke else {
        return unavailable();
    };
    audit.status = 201;
    match state
        .store
        .acknowledge(&id, wave, fylke, &caller.name, &audit)
        .await
    {
        Ok(ack) => {
            let ack = ack.value;
            let page = ResultPage {
                who: Who::of(&s),
                trial_id: trial.id.clone(),
                title: "Mottak bekreftet".into(),
                text: format!(
                    "Fylke {} har bekreftet at det har mottatt tildelingene i bølge {} ({} \
                     virksomheter), {}.",
                    ack.fylke.as_str(),
                    ack.wave,
                    ack.firms,
                    ack.acknowledged_at.format("%Y-%m-%d %H:%M")
                ),
                problems: Vec::new(),
                notes: Vec::new(),
            };
            private(render(StatusCode::CREATED, &page))
        }
        Err(StoreError::Conflict(why)) => {
            refused(&state, audit, (&s, &trial), ApiError::Conflict(why)).await
        }
        Err(StoreError::NotFound) => no_trial(&id),
        Err(_) => unavailable(),
    }
}

/// The take-up form: one event.
#[derive(Debug, Deserialize)]
pub struct TakeupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    orgnr: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    dato: String,
    #[serde(default)]
    arbeidsform_levert: String,
    #[serde(default)]
    timer: String,
    #[serde(default)]
    merknad: String,
}

impl TakeupForm {
    /// The event as one JSON row of an upload: the empty optional fields left out, so the
    /// upload's own rules (`docs/data-formats.md` §3) judge every field.
    fn as_upload(&self) -> Vec<u8> {
        let mut row = serde_json::Map::new();
        for (key, value) in [
            ("orgnr", &self.orgnr),
            ("status", &self.status),
            ("dato", &self.dato),
            ("arbeidsform_levert", &self.arbeidsform_levert),
            ("timer", &self.timer),
            ("merknad", &self.merknad),
        ] {
            let value = value.trim();
            if !value.is_empty() || matches!(key, "orgnr" | "status" | "dato") {
                let value = if key == "timer" {
                    value.replace(',', ".")
                } else {
                    value.to_owned()
                };
                row.insert(key.to_owned(), serde_json::Value::String(value));
            }
        }
        serde_json::Value::Object(row).to_string().into_bytes()
    }
}

/// `POST /forsok/{id}/fylke/oppfolging` (fylke): one take-up event from the form.
pub async fn takeup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<TakeupForm>,
) -> Response {
    let route = "/forsok/{id}/fylke/oppfolging";
    let found = fylke_form(&state, &headers, &form.csrf, (route, &id, "oppfolging")).await;
    match found {
        Ok(found) => record(&state, found, &form.as_upload()).await,
        Err(r) => *r,
    }
}

/// `POST /forsok/{id}/fylke/oppfolging/fil` (fylke): a take-up file (CSV or JSON, as the API
/// takes it), sent as `multipart/form-data` with the CSRF field before the file.
pub async fn takeup_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let route = "/forsok/{id}/fylke/oppfolging/fil";
    // The CSRF field comes first (the form puts it there) and is checked, with the session and
    // the site, before the file is read: nobody but the signed-in fylke makes the server hold an
    // upload.
    let csrf = match multipart.next_field().await {
        Ok(Some(field)) if field.name() == Some("csrf") => match small_field(field).await {
            Some(csrf) => csrf,
            None => return bad_upload(),
        },
        Ok(_) => String::new(),
        Err(e) => return upload_error(&e),
    };
    let found = match fylke_form(&state, &headers, &csrf, (route, &id, "oppfolging/fil")).await {
        Ok(found) => found,
        Err(r) => return *r,
    };
    let mut file: Option<Vec<u8>> = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("fil") => match field.bytes().await {
                Ok(bytes) => file = Some(bytes.to_vec()),
                Err(e) => return upload_error(&e),
            },
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return upload_error(&e),
        }
    }
    match file.filter(|f| !f.is_empty()) {
        Some(body) => record(&state, found, &body).await,
        None => {
            let (s, _, trial, audit) = found;
            let error = ApiError::invalid_field("fil", "choose a take-up file to upload");
            refused(&state, audit, (&s, &trial), error).await
        }
    }
}

/// A short text field (the CSRF token) read whole, or `None` past 256 bytes or on a broken body.
async fn small_field(mut field: axum::extract::multipart::Field<'_>) -> Option<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.ok()? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 256 {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The page for a multipart body that could not be read.
fn upload_error(e: &axum::extract::multipart::MultipartError) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return render(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Page::message("For stor fil", "Filen er større enn tjenesten tar imot."),
        );
    }
    bad_upload()
}

fn bad_upload() -> Response {
    render(
        StatusCode::BAD_REQUEST,
        &Page::message(
            "Ugyldig opplasting",
            "Skjemaet kom ikke fram som multipart/form-data med en fil.",
        ),
    )
}

/// Records take-up rows for the fylke, through the API's own rules, and shows the receipt.
async fn record(
    state: &AppState,
    (s, caller, trial, audit): (SessionInfo, Caller, TrialInfo, NewAuditEntry),
    body: &[u8],
) -> Response {
    match crate::http::takeup::take_up(state, &caller, audit.clone(), &trial.id, body).await {
        Ok(recorded) => {
            let recorded = recorded.value;
            let mut notes: Vec<String> = recorded
                .protocol_deviations
                .iter()
                .map(|d| format!("Rad {} ({}): {}", d.row, d.orgnr, d.reason))
                .collect();
            if let Some(w) = recorded.warning {
                notes.insert(0, w);
            }
            let page = ResultPage {
                who: Who::of(&s),
                trial_id: trial.id.clone(),
                title: "Registrert".into(),
                text: format!("{} rad(er) med oppfølging ble registrert.", recorded.rows),
                problems: Vec::new(),
                notes,
            };
            private(render(StatusCode::CREATED, &page))
        }
        Err(ApiError::Unavailable { .. } | ApiError::Internal(_)) => unavailable(),
        Err(error) => refused(state, audit, (&s, &trial), error).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_read_with_a_decimal_comma() {
        assert_eq!(format_hours(0.0), "");
        assert_eq!(format_hours(7.5), "7,5");
        assert_eq!(format_hours(3.0), "3");
        assert_eq!(format_hours(1.25), "1,25");
    }

    #[test]
    fn the_form_leaves_out_empty_optional_fields() {
        let form = TakeupForm {
            csrf: "x".into(),
            orgnr: " 974760673 ".into(),
            status: "AKTIV".into(),
            dato: "2026-03-01".into(),
            arbeidsform_levert: String::new(),
            timer: "7,5".into(),
            merknad: " ".into(),
        };
        let row: serde_json::Value = serde_json::from_slice(&form.as_upload()).expect("json");
        assert_eq!(
            row,
            serde_json::json!({"orgnr": "974760673", "status": "AKTIV", "dato": "2026-03-01", "timer": "7.5"})
        );
    }
}
