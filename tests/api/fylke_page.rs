//! The fylke's page over HTTP (both backends): its own firms and nothing else, in the page and in
//! the CSV, each read audited with the firms shown; the acknowledgement and take-up forms and the
//! file upload write what the API would, refuse what the API would (naming row and field), and
//! write nothing without their CSRF field.

use std::collections::BTreeSet;

use ia_rct::domain::Role;
use ia_rct::storage::AuditResult;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, get_as, make_token};
use crate::on_both_backends;
use crate::pages::{client, csrf_field, page, signed_in};

const TRIAL: &str = "fylke-page";

/// `POST path` with a session and a form: status and body.
async fn post(app: &TestApp, session: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let resp = client()
        .post(app.url(path))
        .header(COOKIE, format!("ia_session={session}"))
        .form(form)
        .send()
        .await
        .expect("post");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

/// `POST path` with a session and a `multipart/form-data` body of `csrf` (if given) and `fil`.
async fn upload(
    app: &TestApp,
    session: &str,
    path: &str,
    csrf: Option<&str>,
    file: &str,
) -> (u16, String) {
    let boundary = "ia-rct-test-boundary-7f3a";
    let mut body = String::new();
    if let Some(csrf) = csrf {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"fil\"; filename=\"takeup.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    let resp = client()
        .post(app.url(path))
        .header(COOKIE, format!("ia_session={session}"))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

/// The `data-orgnr` of each firm row of the page.
fn rows(html: &str) -> BTreeSet<String> {
    html.split("<tr data-orgnr=\"")
        .skip(1)
        .map(|r| r.split('"').next().expect("orgnr").to_owned())
        .collect()
}

/// A randomized trial of 300 firms; the orgnrs by fylke `46` and the rest.
async fn randomized(app: &TestApp) -> (BTreeSet<String>, BTreeSet<String>) {
    app.trial_in_state(TRIAL, "randomized", 300).await;
    let (_, all) = get_as(
        app,
        &app.direktorat.secret,
        &format!("/v1/trials/{TRIAL}/assignments?limit=10000"),
    )
    .await;
    let mut own = BTreeSet::new();
    let mut others = BTreeSet::new();
    for a in all["assignments"].as_array().expect("assignments") {
        let orgnr = a["orgnr"].as_str().expect("orgnr").to_owned();
        if a["fylke"] == "46" {
            own.insert(orgnr);
        } else {
            others.insert(orgnr);
        }
    }
    assert!(!own.is_empty() && !others.is_empty());
    (own, others)
}

async fn the_fylke_page_shows_only_its_own_firms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (own, _) = randomized(&app).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let session = signed_in(&app, &vestland.secret).await;

    let (status, html) = page(&app, &session, &format!("/forsok/{TRIAL}/fylke")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(rows(&html), own, "the page lists the fylke's own firms");
    assert!(html.contains("data-wave=\"1\" data-acknowledged=\"false\""));
    let audit = app.last_audit().await;
    assert_eq!(audit.route, "/forsok/{id}/fylke");
    assert_eq!(audit.actor_name.as_deref(), Some("NAV Vestland"));
    assert_eq!(audit.trial_id.as_deref(), Some(TRIAL));
    let named: BTreeSet<String> = audit
        .object_ids
        .iter()
        .map(|o| o.trim_start_matches("orgnr:").to_owned())
        .collect();
    assert_eq!(named, own, "the audit row names the firms shown");

    // The CSV: the same firms, and the API's columns.
    let (status, csv) = page(
        &app,
        &session,
        &format!("/forsok/{TRIAL}/fylke/tildelinger.csv"),
    )
    .await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("orgnr,arm,stratum,klynge,bolge,sannsynlighet,trukket,arm_navn")
    );
    let in_csv: BTreeSet<String> = lines
        .map(|l| l.split(',').next().expect("orgnr").to_owned())
        .collect();
    assert_eq!(in_csv, own);
    assert_eq!(
        app.last_audit().await.object_ids.len(),
        own.len(),
        "the CSV's read names its firms"
    );
    let (_, excel) = page(
        &app,
        &session,
        &format!("/forsok/{TRIAL}/fylke/tildelinger.csv?dialekt=excel"),
    )
    .await;
    assert!(excel.starts_with('\u{feff}') && excel.contains(';'));

    // Not for a researcher, nor for the directorate (they have the API and the report).
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let forsker_session = signed_in(&app, &forsker.secret).await;
    for path in ["fylke", "fylke/tildelinger.csv"] {
        let (status, _) = page(&app, &forsker_session, &format!("/forsok/{TRIAL}/{path}")).await;
        assert_eq!(status, 403, "{path}");
        let denied = app.last_audit().await;
        assert_eq!(denied.result, AuditResult::Denied);
        assert_eq!(denied.path, format!("/forsok/{TRIAL}/{path}"));
        assert_eq!(denied.trial_id.as_deref(), Some(TRIAL));
    }
    let (status, _) = page(&app, &session, "/forsok/no-such-trial/fylke").await;
    assert_eq!(status, 404);
}

async fn the_fylke_reports_through_its_forms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (own, others) = randomized(&app).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let session = signed_in(&app, &vestland.secret).await;
    let (_, html) = page(&app, &session, &format!("/forsok/{TRIAL}/fylke")).await;
    let csrf = csrf_field(&html);
    let mut firms = own.iter();
    let (a, b) = (firms.next().expect("a"), firms.next().expect("b"));
    let foreign = others.iter().next().expect("another fylke's firm");
    let ack = format!("/forsok/{TRIAL}/fylke/kvittering");
    let form = format!("/forsok/{TRIAL}/fylke/oppfolging");
    let file = format!("/forsok/{TRIAL}/fylke/oppfolging/fil");
    let takeup = async |app: &TestApp| -> Value {
        get_as(
            app,
            &app.direktorat.secret,
            &format!("/v1/trials/{TRIAL}/takeup"),
        )
        .await
        .1
    };

    // Without the CSRF field, nothing is written.
    let before = app.audit_count().await;
    let (status, _) = post(&app, &session, &ack, &[("wave", "1")]).await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &app,
        &session,
        &form,
        &[
            ("orgnr", a),
            ("status", "KONTAKTET"),
            ("dato", "2026-01-02"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let row = format!("orgnr,status,dato\n{a},KONTAKTET,2026-01-02\n");
    let (status, _) = upload(&app, &session, &file, None, &row).await;
    assert_eq!(status, 403);
    // A wrong token, and a right one from another site, are refused too.
    let wrong = "0".repeat(64);
    let (status, _) = post(&app, &session, &ack, &[("csrf", &wrong), ("wave", "1")]).await;
    assert_eq!(status, 403);
    let resp = client()
        .post(app.url(&ack))
        .header(COOKIE, format!("ia_session={session}"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("wave", "1")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 403);
    // Each refusal is one denied audit row naming the fylke; nothing else is written.
    assert_eq!(app.audit_count().await, before + 5);
    let refusal = app.last_audit().await;
    assert_eq!(refusal.result, AuditResult::Denied);
    assert_eq!(refusal.route, "/forsok/{id}/fylke/kvittering");
    assert!(
        refusal
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("Sec-Fetch-Site")),
        "{refusal:?}"
    );
    assert_eq!(refusal.actor_name.as_deref(), Some("NAV Vestland"));
    assert_eq!(takeup(&app).await["firms"], serde_json::json!([]));

    // The acknowledgement, once.
    let (status, body) = post(&app, &session, &ack, &[("csrf", &csrf), ("wave", "1")]).await;
    assert_eq!(status, 201, "{body}");
    let (_, acks) = get_as(
        &app,
        &app.direktorat.secret,
        &format!("/v1/trials/{TRIAL}/acknowledgements"),
    )
    .await;
    assert_eq!(acks["acknowledgements"][0]["fylke"], "46");
    assert_eq!(
        acks["acknowledgements"][0]["acknowledged_by"],
        "NAV Vestland"
    );
    let (status, body) = post(&app, &session, &ack, &[("csrf", &csrf), ("wave", "1")]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(app.last_audit().await.result, AuditResult::Failed);

    // One event by the form (a decimal comma in the hours).
    let (status, body) = post(
        &app,
        &session,
        &form,
        &[
            ("csrf", &csrf),
            ("orgnr", a),
            ("status", "KONTAKTET"),
            ("dato", "2026-01-02"),
            ("timer", "1,5"),
            ("arbeidsform_levert", ""),
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let audit = app.last_audit().await;
    assert_eq!(audit.route, "/forsok/{id}/fylke/oppfolging");
    assert_eq!(audit.status, 201);

    // A row the upload's rules refuse: 422, the row and field named, nothing written.
    let bad = format!("orgnr,status,dato\n{b},VURDERES,2026-01-03\n");
    let (status, body) = upload(&app, &session, &file, Some(&csrf), &bad).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("<td>1</td><td>status</td><td>VURDERES</td>"),
        "{body}"
    );
    // Another fylke's firm: 403, nothing written.
    let theirs = format!("orgnr,status,dato\n{foreign},KONTAKTET,2026-01-03\n");
    let (status, _) = upload(&app, &session, &file, Some(&csrf), &theirs).await;
    assert_eq!(status, 403);
    let recorded = takeup(&app).await;
    assert_eq!(recorded["firms"].as_array().map(Vec::len), Some(1));

    // The file upload.
    let good = format!("orgnr;status;dato;timer\n{b};KONTAKTET;2026-01-03;2,25\n");
    let (status, body) = upload(&app, &session, &file, Some(&csrf), &good).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("1 rad(er)"));
    let recorded = takeup(&app).await;
    let firms: BTreeSet<&str> = recorded["firms"]
        .as_array()
        .expect("firms")
        .iter()
        .filter_map(|f| f["orgnr"].as_str())
        .collect();
    assert_eq!(firms, BTreeSet::from([a.as_str(), b.as_str()]));
    // The page shows each firm's latest status and hours.
    let (_, html) = page(&app, &session, &format!("/forsok/{TRIAL}/fylke")).await;
    let row = html
        .split(&format!("<tr data-orgnr=\"{b}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("the firm's row");
    assert!(row.contains("<td>KONTAKTET</td><td>2,25</td>"), "{row}");
}

on_both_backends!(
    the_fylke_page_shows_only_its_own_firms,
    the_fylke_reports_through_its_forms,
);
