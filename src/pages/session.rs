//! Signing in to the pages with a token, the session cookie, and the CSRF checks every form passes.
//!
//! - **Sign-in.** `GET /logg-inn` shows a form whose hidden `csrf` field equals a short-lived
//!   pre-session cookie (double submit). `POST /logg-inn` checks the token as the API does, and
//!   then stores a session: the cookie `ia_session` holds 32 random bytes (hex), the database only
//!   their SHA-256. The cookie is `HttpOnly; SameSite=Strict; Path=/`, and `Secure` when the request
//!   came over TLS (`X-Forwarded-Proto: https` from the proxy in front).
//! - **The session** acts as its token: revoking the token ends it; it expires after
//!   [`SESSION_HOURS`]; `POST /logg-ut` ends it.
//! - **CSRF.** A POST is refused (403, audited as denied, nothing else written) unless its `csrf` field equals the
//!   session's CSRF token (the pre-session cookie's at sign-in), its `Sec-Fetch-Site`, when sent,
//!   is `same-origin` or `none`, and its `Origin`, when sent, names this host.
//! - Sign-in (permitted or refused) and sign-out are audited.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Page, render, unavailable};
use crate::auth::{Caller, hash_token, looks_like_token};
use crate::http::AppState;
use crate::storage::sessions::{NewSession, SessionInfo};
use crate::storage::{AuditResult, NewAuditEntry};

/// The session cookie.
pub const SESSION_COOKIE: &str = "ia_session";

/// The pre-session cookie of the sign-in form (double-submit CSRF).
pub const SIGN_IN_COOKIE: &str = "ia_sign_in";

/// How long a session lasts.
pub const SESSION_HOURS: i64 = 8;

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// 32 random bytes as hex; `None` if the operating system's random source failed.
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// The answer when the random source fails: nothing can be made safely.
fn no_entropy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the random source failed; try again",
    )
        .into_response()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Whether two secrets are equal, in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the request came over TLS (as the proxy in front says).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over TLS; `max_age` 0 clears.
fn set_cookie(name: &str, value: &str, max_age: i64, headers: &HeaderMap) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    let v = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Why a form was refused as cross-site, if it was.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some("the form came from another site (Sec-Fetch-Site)");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let bare = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if bare != Some(host) {
            return Some("the form came from another origin (Origin)");
        }
    }
    None
}

/// A refused form: audited as denied (403, with the reason and the session's caller if there is
/// one), then a 403 page with the reason. Nothing else is written.
async fn refused(
    state: &AppState,
    headers: &HeaderMap,
    (route, path): (&str, &str),
    actor: Option<Caller>,
    reason: &str,
) -> Response {
    let mut audit = NewAuditEntry::now("POST", route, path);
    audit.request_id = crate::http::middleware::request_id(headers);
    audit.actor = actor;
    audit.result = AuditResult::Denied;
    audit.status = 403;
    audit.detail = Some(format!("form refused: {reason}"));
    if state.store.append_audit(&audit).await.is_err() {
        return unavailable();
    }
    let mut page = render(
        StatusCode::FORBIDDEN,
        &Page::message("Avvist", &format!("Skjemaet ble avvist: {reason}.")),
    );
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

/// The valid session of a request, with the hash of its cookie; `None` without one; the 503 page
/// when the database does not answer (a person is not signed out by an outage, nor a form's
/// content lost to the sign-in page).
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, SessionInfo)>, Box<Response>> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hash = sha256_hex(&id);
    match state.store.find_session(&hash, crate::storage::now()).await {
        Ok(found) => Ok(found.map(|s| (hash, s))),
        Err(_) => Err(Box::new(unavailable())),
    }
}

/// The sign-in form.
#[derive(askama::Template)]
#[template(path = "pages/sign_in.html")]
struct SignInPage {
    csrf: String,
    error: Option<String>,
}

/// `GET /logg-inn`: the form, with a fresh pre-session CSRF cookie.
pub async fn sign_in_form(headers: HeaderMap) -> Response {
    let Some(csrf) = random_hex() else {
        return no_entropy();
    };
    sign_in_page(StatusCode::OK, csrf, None, &headers)
}

fn sign_in_page(
    status: StatusCode,
    csrf: String,
    error: Option<String>,
    h: &HeaderMap,
) -> Response {
    let cookie = set_cookie(SIGN_IN_COOKIE, &csrf, 600, h);
    let mut page = render(status, &SignInPage { csrf, error });
    page.headers_mut().insert(header::SET_COOKIE, cookie);
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /logg-inn`: checks the CSRF field and the token, then starts a session.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if let Some(reason) = cross_site(&headers) {
        return refused(&state, &headers, ("/logg-inn", "/logg-inn"), None, reason).await;
    }
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&expected, &form.csrf) {
        return refused(
            &state,
            &headers,
            ("/logg-inn", "/logg-inn"),
            None,
            "the CSRF field does not match this browser's sign-in form; reload it",
        )
        .await;
    }
    let token = form.token.trim();
    let found = if looks_like_token(token) {
        match state.store.find_active_token(&hash_token(token)).await {
            Ok(found) => found,
            Err(_) => return unavailable(),
        }
    } else {
        None
    };
    let mut audit = NewAuditEntry::now("POST", "/logg-inn", "/logg-inn");
    audit.request_id = crate::http::middleware::request_id(&headers);
    let Some(info) = found else {
        audit.result = AuditResult::Denied;
        audit.status = 401;
        audit.detail = Some("sign-in with an unknown or revoked token".into());
        if state.store.append_audit(&audit).await.is_err() {
            return unavailable();
        }
        let Some(csrf) = random_hex() else {
            return no_entropy();
        };
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            csrf,
            Some("Ukjent eller tilbakekalt token.".into()),
            &headers,
        );
    };
    let (Some(id), Some(csrf)) = (random_hex(), random_hex()) else {
        return no_entropy();
    };
    let caller: Caller = info.caller();
    audit.actor = Some(caller);
    audit.status = 303;
    audit.object_ids.push(format!("token:{}", info.id));
    let new = NewSession {
        id_hash: sha256_hex(&id),
        token_id: info.id,
        csrf_token: csrf,
        expires_at: audit.at + chrono::Duration::hours(SESSION_HOURS),
    };
    if state.store.create_session(&new, &audit).await.is_err() {
        return unavailable();
    }
    let mut resp = Redirect::to("/").into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_HOURS * 3600, &headers),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", 0, &headers),
    );
    resp
}

/// A form with only its CSRF field.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// Checks a signed-in form posted to `(route, path)`: the site, the session and the CSRF field;
/// the refusal otherwise (audited).
pub async fn check_form(
    state: &AppState,
    headers: &HeaderMap,
    target: (&str, &str),
    csrf: &str,
) -> Result<(String, SessionInfo), Box<Response>> {
    let found = current(state, headers).await?;
    if let Some(reason) = cross_site(headers) {
        let actor = found.as_ref().map(|(_, s)| s.token.caller());
        return Err(Box::new(
            refused(state, headers, target, actor, reason).await,
        ));
    }
    let Some((hash, session)) = found else {
        return Err(Box::new(Redirect::to("/logg-inn").into_response()));
    };
    if !same_secret(&session.csrf_token, csrf) {
        let actor = Some(session.token.caller());
        let reason = "the CSRF field is missing or wrong";
        return Err(Box::new(
            refused(state, headers, target, actor, reason).await,
        ));
    }
    Ok((hash, session))
}

/// `POST /logg-ut`: ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let target = ("/logg-ut", "/logg-ut");
    let (hash, session) = match check_form(&state, &headers, target, &form.csrf).await {
        Ok(found) => found,
        Err(r) => return *r,
    };
    let mut audit = NewAuditEntry::now("POST", "/logg-ut", "/logg-ut");
    audit.request_id = crate::http::middleware::request_id(&headers);
    audit.actor = Some(session.token.caller());
    audit.status = 303;
    if state.store.end_session(&hash, &audit).await.is_err() {
        return unavailable();
    }
    let mut resp = Redirect::to("/logg-inn").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, &headers),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn cookies_are_read_by_name() {
        let h = headers(&[("cookie", "a=1; ia_session=abc"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = set_cookie(SESSION_COOKIE, "x", 60, &HeaderMap::new());
        let plain = plain.to_str().expect("ascii");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = set_cookie(
            SESSION_COOKIE,
            "x",
            60,
            &headers(&[("x-forwarded-proto", "https")]),
        );
        assert!(tls.to_str().expect("ascii").ends_with("; Secure"));
    }

    #[test]
    fn cross_site_forms_are_recognised() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_none());
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(cross_site(&same).is_none());
        let other = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(cross_site(&other).is_some());
        assert!(cross_site(&HeaderMap::new()).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("", "a"));
    }
}
