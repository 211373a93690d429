//! The one error envelope, for 404, 405, 413, 415, 400 and 422.

use ia_rct::config::HttpConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_envelope};
use crate::on_both_backends;

async fn send(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    let body = response
        .json()
        .await
        .expect("every error is a JSON envelope");
    (status, body)
}

async fn errors_share_one_envelope(backend: Backend) {
    let config = HttpConfig {
        body_limit: 1024,
        ..HttpConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;

    let (status, body) = send(app.client.get(app.url("/no/such/route"))).await;
    assert_envelope(status, &body, 404, "not_found");

    let (status, body) = send(app.as_direktorat(Method::GET, "/v1/no-such-thing")).await;
    assert_envelope(status, &body, 404, "not_found");

    let (status, body) = send(app.as_direktorat(Method::DELETE, "/v1/tokens")).await;
    assert_envelope(status, &body, 405, "method_not_allowed");

    let (status, body) = send(app.client.post(app.url("/healthz"))).await;
    assert_envelope(status, &body, 405, "method_not_allowed");

    let big = json!({ "name": "x".repeat(2048), "role": "forsker" });
    let (status, body) = send(app.as_direktorat(Method::POST, "/v1/tokens").json(&big)).await;
    assert_envelope(status, &body, 413, "payload_too_large");

    let (status, body) = send(
        app.as_direktorat(Method::POST, "/v1/tokens")
            .header("content-type", "text/plain")
            .body(r#"{"name":"x","role":"forsker"}"#),
    )
    .await;
    assert_envelope(status, &body, 415, "unsupported_media_type");

    let (status, body) = send(
        app.as_direktorat(Method::POST, "/v1/tokens")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_envelope(status, &body, 400, "bad_request");
    // A body cut off after a value names where parsing stopped: line, column and the field.
    let (status, body) = send(
        app.as_direktorat(Method::POST, "/v1/tokens")
            .header("content-type", "application/json")
            .body("{\"name\": \"x\",\n \"role\": \"fors"),
    )
    .await;
    assert_envelope(status, &body, 400, "bad_request");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 2 column") && message.contains("in `role`"),
        "{message}"
    );

    let (status, body) = send(
        app.as_direktorat(Method::POST, "/v1/tokens")
            .json(&json!({ "name": "x", "role": "fylke", "fylke": "99" })),
    )
    .await;
    assert_envelope(status, &body, 422, "invalid");
    assert_eq!(body["error"]["details"]["field"], "fylke");

    let (status, body) = send(app.as_direktorat(Method::POST, "/v1/tokens/abc/revoke")).await;
    assert_envelope(status, &body, 422, "invalid");

    let (status, body) = send(app.as_direktorat(Method::GET, "/v1/audit?limit=0")).await;
    assert_envelope(status, &body, 422, "invalid");
    assert_eq!(body["error"]["details"]["field"], "limit");

    let (status, body) = send(app.as_direktorat(Method::GET, "/v1/audit?colour=blue")).await;
    assert_envelope(status, &body, 422, "invalid");

    // Failed requests are audited as failed, with the message.
    let row = app.last_audit().await;
    assert_eq!(row.result, ia_rct::storage::AuditResult::Failed);
    assert_eq!(row.status, 422);
    assert!(row.detail.is_some());

    // Every response carries a request id; a client's own id is kept if it is short and plain,
    // and replaced otherwise (it goes into logs and the audit log).
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "my-trace-1")
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["x-request-id"], "my-trace-1");
    for forged in ["a".repeat(65), "x y".to_owned(), "a\"b".to_owned()] {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", &forged)
            .send()
            .await
            .expect("send");
        let id = response.headers()["x-request-id"].to_str().expect("ascii");
        assert_ne!(id, forged);
        assert_eq!(id.len(), 36, "a fresh UUID: {id}");
    }

    // Nothing under /v1 is cached: it carries secrets and firm data.
    let response = app
        .as_direktorat(Method::GET, "/v1/whoami")
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

on_both_backends!(errors_share_one_envelope);
