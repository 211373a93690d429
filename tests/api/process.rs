//! The real process: readiness when the database goes away, a SIGKILL in the middle of a write,
//! and a graceful SIGTERM that finishes the request in flight.

use std::time::Duration;

use ia_rct::domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, ServerProcess, TestApp, TestDb, assert_envelope, make_token};
use crate::on_both_backends;

const PAUSE_ENV: &str = "IA_RCT_FAULT_PAUSE_IN_WRITE_MS";
const PAUSE_LOG: &str = "fault injection: pausing inside a write transaction";

async fn readyz_turns_503_when_the_database_goes_away(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);

    match backend {
        Backend::Sqlite => {
            let dir = app.db.dir.as_ref().expect("sqlite dir").path().to_owned();
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                std::fs::remove_file(entry.expect("entry").path()).expect("remove");
            }
        }
        Backend::Postgres => app.db.drop_postgres_database().await,
    }

    for _ in 0..2 {
        let response = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        let status = response.status();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_owned();
        let body: Value = response.json().await.expect("envelope");
        assert_envelope(status, &body, 503, "unavailable");
        assert_eq!(
            body["error"]["details"]["request_id"], request_id,
            "a 5xx names its request id"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("ia-rct.db") && !message.contains("ia_rct_test"),
            "no internals: {message}"
        );
    }
    // The process is still up and answering.
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

async fn sigkill_in_the_middle_of_a_write_leaves_nothing_behind(backend: Backend) {
    let db = TestDb::new(backend).await;
    let direktorat = {
        let store = db.store().await;
        let token = make_token(store.as_ref(), "Direktoratet", Role::Direktorat, None).await;
        store.close().await;
        token
    };
    let audit_rows_before = {
        let store = db.store().await;
        let n = store
            .query_audit(&ia_rct::storage::AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("audit")
            .len();
        store.close().await;
        n
    };

    let mut server = ServerProcess::start(&db.url, &[(PAUSE_ENV, "60000")]).await;
    let url = format!("{}/v1/tokens", server.base);
    let secret = direktorat.secret.clone();
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(secret)
            .json(&json!({ "name": "half-written", "role": "forsker" }))
            .send()
            .await
    });
    // The token row is inserted and the transaction is open when the pause starts.
    server.wait_for_log(PAUSE_LOG).await;
    server.child.start_kill().expect("SIGKILL");
    let status = server.child.wait().await.expect("wait");
    assert!(!status.success(), "killed, not exited: {status:?}");
    assert!(
        request.await.expect("join").is_err(),
        "the client saw the connection die"
    );

    // After a restart: no trace of the request, and the database is healthy.
    let store = db.store().await;
    let tokens = store.list_tokens().await.expect("list");
    assert!(
        tokens.iter().all(|t| t.name != "half-written"),
        "partial token survived: {tokens:?}"
    );
    let audit = store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        audit.len(),
        audit_rows_before,
        "no audit row for the killed request"
    );
    if backend == Backend::Sqlite {
        let url = db.url.clone();
        let check: String = {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await
                .expect("check")
        };
        assert_eq!(check, "ok");
    }
    store.close().await;

    let mut server = ServerProcess::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    let created = client
        .post(format!("{}/v1/tokens", server.base))
        .bearer_auth(&direktorat.secret)
        .json(&json!({ "name": "half-written", "role": "forsker" }))
        .send()
        .await
        .expect("retry");
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "the retried request applies cleanly"
    );
    server.child.start_kill().expect("kill");
    server.child.wait().await.expect("wait");
}

async fn sigterm_finishes_the_request_in_flight(backend: Backend) {
    let db = TestDb::new(backend).await;
    let direktorat = {
        let store = db.store().await;
        let token = make_token(store.as_ref(), "Direktoratet", Role::Direktorat, None).await;
        store.close().await;
        token
    };
    let mut server = ServerProcess::start(&db.url, &[(PAUSE_ENV, "1500")]).await;
    let url = format!("{}/v1/tokens", server.base);
    let secret = direktorat.secret.clone();
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(secret)
            .json(&json!({ "name": "in flight", "role": "forsker" }))
            .send()
            .await
    });
    server.wait_for_log(PAUSE_LOG).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(kill.success());

    let response = request
        .await
        .expect("join")
        .expect("the request in flight is answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(status.success(), "clean exit: {status:?}");

    let store = db.store().await;
    let tokens = store.list_tokens().await.expect("list");
    assert!(tokens.iter().any(|t| t.name == "in flight"));
    store.close().await;
}

on_both_backends!(
    readyz_turns_503_when_the_database_goes_away,
    sigkill_in_the_middle_of_a_write_leaves_nothing_behind,
    sigterm_finishes_the_request_in_flight
);
