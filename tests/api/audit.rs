//! The audit log: append-only in the database itself, and readable with filters and pages.

use ia_rct::domain::Role;
use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;

use crate::helpers::{Backend, TestApp, get_as, make_token};
use crate::on_both_backends;

/// Statements that would change or remove audit rows; each must be refused by the database.
const TAMPERING: &[&str] = &[
    "UPDATE audit_log SET result = 'permitted'",
    "UPDATE audit_log SET detail = 'edited' WHERE id = 1",
    "DELETE FROM audit_log",
    "DELETE FROM audit_log WHERE id = 1",
];

async fn audit_rows_cannot_be_changed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A few rows of each kind.
    app.client
        .get(app.url("/v1/whoami"))
        .send()
        .await
        .expect("denied call");
    app.as_direktorat(Method::GET, "/v1/whoami")
        .send()
        .await
        .expect("permitted call");
    let before = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("read");
    assert!(before.len() >= 3);

    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url)
                .await
                .expect("connect");
            for statement in TAMPERING {
                let error = sqlx::query(statement)
                    .execute(&mut conn)
                    .await
                    .expect_err(statement);
                assert!(
                    error.to_string().contains("append-only"),
                    "{statement}: {error}"
                );
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url)
                .await
                .expect("connect");
            for statement in TAMPERING.iter().chain(&["TRUNCATE audit_log"]) {
                let error = sqlx::query(statement)
                    .execute(&mut conn)
                    .await
                    .expect_err(statement);
                assert!(
                    error.to_string().contains("append-only"),
                    "{statement}: {error}"
                );
            }
        }
    }

    let after = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("read");
    assert_eq!(before, after, "no audit row changed");
}

async fn audit_log_is_filtered_and_paginated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let fylke = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    for _ in 0..7 {
        app.client
            .get(app.url("/v1/whoami"))
            .bearer_auth(&fylke.secret)
            .send()
            .await
            .expect("call");
    }
    for _ in 0..2 {
        app.client
            .get(app.url("/v1/tokens"))
            .bearer_auth(&fylke.secret)
            .send()
            .await
            .expect("call");
    }

    // Pages of 3 over the fylke's 9 calls, newest first, with no overlap.
    let mut seen = Vec::new();
    let mut next = None::<i64>;
    loop {
        let mut path = "/v1/audit?actor=NAV%20Vestland&limit=3".to_owned();
        if let Some(before) = next {
            path.push_str(&format!("&before={before}"));
        }
        let page: Value = app
            .as_direktorat(Method::GET, &path)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        let entries = page["entries"].as_array().expect("entries");
        seen.extend(entries.iter().map(|e| e["id"].as_i64().expect("id")));
        match page["next_before"].as_i64() {
            Some(before) => next = Some(before),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {seen:?}"
    );

    let denied: Value = app
        .as_direktorat(Method::GET, "/v1/audit?actor=NAV%20Vestland&result=denied")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let denied = denied["entries"].as_array().expect("entries");
    assert_eq!(denied.len(), 2, "the two refused GET /v1/tokens calls");
    assert!(
        denied
            .iter()
            .all(|e| e["route"] == "/v1/tokens" && e["status"] == 403 && e["actor_fylke"] == "46")
    );

    let by_route: Value = app
        .as_direktorat(Method::GET, "/v1/audit?route=/v1/whoami&role=fylke")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(by_route["entries"].as_array().expect("entries").len(), 7);

    let future: Value = app
        .as_direktorat(Method::GET, "/v1/audit?from=2999-01-01T00:00:00Z")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(future["entries"].as_array().expect("entries").len(), 0);
    let past: Value = app
        .as_direktorat(
            Method::GET,
            "/v1/audit?to=2999-01-01T00:00:00Z&from=2000-01-01T00:00:00Z&limit=1000",
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(past["entries"].as_array().expect("entries").len() >= 9);
}

on_both_backends!(
    audit_rows_cannot_be_changed,
    audit_log_is_filtered_and_paginated
);

/// A firm of the trial in `fylke`.
async fn firm_in(app: &TestApp, id: &str, fylke: &str) -> String {
    let firms = app
        .store
        .assignments(id, Some(fylke.parse().expect("fylke")), None, 1)
        .await
        .expect("assignments");
    firms
        .first()
        .unwrap_or_else(|| panic!("a firm in fylke {fylke}"))
        .orgnr
        .to_string()
}

/// `GET /takeup` as a fylke with another fylke's events present: it sees only its own firms, and
/// the read's audit row names exactly those firms.
async fn takeup_read_is_scoped_to_the_fylke_and_names_its_firms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let oslo = make_token(app.store.as_ref(), "NAV Oslo", Role::Fylke, Some("03")).await;
    app.trial_in_state("scoped", "randomized", 200).await;
    let west = firm_in(&app, "scoped", "46").await;
    let east = firm_in(&app, "scoped", "03").await;
    for (token, firm) in [(&vestland, &west), (&oslo, &east)] {
        let response = app
            .client
            .post(app.url("/v1/trials/scoped/takeup"))
            .bearer_auth(&token.secret)
            .header("content-type", "text/csv")
            .body(format!("orgnr,status,dato\n{firm},KONTAKTET,2025-02-03\n"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 201, "{firm}");
    }
    let all = app
        .direktorat_call(Method::GET, "/v1/trials/scoped/takeup", None, 200)
        .await;
    assert_eq!(all["firms"].as_array().expect("firms").len(), 2, "{all}");

    let read = get_as(&app, &vestland.secret, "/v1/trials/scoped/takeup")
        .await
        .1;
    let firms: Vec<&str> = read["firms"]
        .as_array()
        .expect("firms")
        .iter()
        .map(|f| f["orgnr"].as_str().expect("orgnr"))
        .collect();
    assert_eq!(firms, [west.as_str()], "Vestland sees only its own firm");
    let row = app.last_audit().await;
    assert_eq!(row.route, "/v1/trials/{id}/takeup");
    assert_eq!(row.actor_name.as_deref(), Some("NAV Vestland"));
    assert_eq!(row.trial_id.as_deref(), Some("scoped"));
    assert_eq!(row.object_ids, vec![format!("orgnr:{west}")]);
}

on_both_backends!(takeup_read_is_scoped_to_the_fylke_and_names_its_firms);

/// The orgnr column of a CSV body (after its `#` comment lines), sorted.
fn orgnr_column(csv: &str) -> Vec<String> {
    let mut lines = csv.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == "orgnr")
        .unwrap_or_else(|| panic!("no orgnr column in {header:?}"));
    let mut firms: Vec<String> = lines
        .filter(|l| !l.is_empty())
        .map(|l| format!("orgnr:{}", l.split(',').nth(at).expect("orgnr field")))
        .collect();
    firms.sort();
    firms
}

/// Reads of the enrollment and of a draw's files leave an audit row naming exactly the firms
/// returned.
async fn enrollment_and_draw_file_reads_name_their_firms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("named", "randomized", 60).await;

    let list = app
        .direktorat_call(Method::GET, "/v1/trials/named/enrollment", None, 200)
        .await;
    let mut firms: Vec<String> = list["firms"]
        .as_array()
        .expect("firms")
        .iter()
        .map(|f| format!("orgnr:{}", f["orgnr"].as_str().expect("orgnr")))
        .collect();
    assert_eq!(firms.len(), 60, "{list}");
    firms.sort();
    let row = app.last_audit().await;
    assert_eq!(row.route, "/v1/trials/{id}/enrollment");
    assert_eq!(row.trial_id.as_deref(), Some("named"));
    let mut named = row.object_ids.clone();
    named.sort();
    assert_eq!(named, firms, "the enrollment read names every firm listed");

    for file in ["units.csv", "assignment.csv"] {
        let path = format!("/v1/trials/named/draws/1/{file}");
        let response = app
            .as_direktorat(Method::GET, &path)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let csv = response.text().await.expect("body");
        let listed = orgnr_column(&csv);
        assert!(!listed.is_empty(), "{path}: {csv}");
        let row = app.last_audit().await;
        assert_eq!(
            row.route,
            format!("/v1/trials/{{id}}/draws/{{wave}}/{file}")
        );
        assert_eq!(row.trial_id.as_deref(), Some("named"));
        let mut named = row.object_ids.clone();
        named.sort();
        assert_eq!(named, listed, "{path} names every firm in the file");
    }
}

on_both_backends!(enrollment_and_draw_file_reads_name_their_firms);
