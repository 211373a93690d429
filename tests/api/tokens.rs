//! Token lifecycle over the API: create, use, list, revoke, and the rules on names and fylker.

use ia_rct::auth::hash_token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_envelope};
use crate::on_both_backends;

async fn token_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Create a fylke token.
    let response = app
        .as_direktorat(Method::POST, "/v1/tokens")
        .json(&json!({ "name": "NAV Vestland", "role": "fylke", "fylke": "46" }))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.expect("json");
    let secret = created["token"].as_str().expect("secret").to_owned();
    let id = created["info"]["id"].as_i64().expect("id");
    assert!(
        secret.starts_with("iarct_") && secret.len() == 70,
        "{secret}"
    );
    assert_eq!(created["info"]["role"], "fylke");
    assert_eq!(created["info"]["fylke"], "46");
    assert_eq!(created["info"]["created_by"], "Direktoratet (test)");

    // The audit row of the creation was written with the creation, naming the new token.
    let row = app.last_audit().await;
    assert_eq!(row.route, "/v1/tokens");
    assert_eq!(row.status, 201);
    assert_eq!(row.object_ids, vec![format!("token:{id}")]);

    // The token works and says who it is.
    let me: Value = app
        .client
        .get(app.url("/v1/whoami"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json");
    assert_eq!(
        me,
        json!({ "token_id": id, "name": "NAV Vestland", "role": "fylke", "fylke": "46" })
    );

    // Listing never shows secrets or hashes.
    let list = app
        .as_direktorat(Method::GET, "/v1/tokens")
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(list.contains("NAV Vestland"));
    assert!(!list.contains(&secret[6..]), "secret leaked in list");
    assert!(!list.contains(&hash_token(&secret)), "hash leaked in list");

    // A second active token with the same name is refused.
    let response = app
        .as_direktorat(Method::POST, "/v1/tokens")
        .json(&json!({ "name": "NAV Vestland", "role": "forsker" }))
        .send()
        .await
        .expect("dup");
    let status = response.status();
    assert_envelope(
        status,
        &response.json().await.expect("json"),
        409,
        "conflict",
    );

    // Revoke: the token stops working at once, stays listed, and cannot be revoked twice.
    let response = app
        .as_direktorat(Method::POST, &format!("/v1/tokens/{id}/revoke"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    let revoked: Value = response.json().await.expect("json");
    assert_eq!(revoked["revoked_by"], "Direktoratet (test)");
    assert!(revoked["revoked_at"].is_string());

    let response = app
        .client
        .get(app.url("/v1/whoami"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("whoami after revoke");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_envelope(status, &body, 401, "unauthenticated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked")
    );

    let response = app
        .as_direktorat(Method::POST, &format!("/v1/tokens/{id}/revoke"))
        .send()
        .await
        .expect("revoke again");
    let status = response.status();
    assert_envelope(
        status,
        &response.json().await.expect("json"),
        409,
        "conflict",
    );

    let response = app
        .as_direktorat(Method::POST, "/v1/tokens/999999/revoke")
        .send()
        .await
        .expect("revoke unknown");
    let status = response.status();
    assert_envelope(
        status,
        &response.json().await.expect("json"),
        404,
        "not_found",
    );

    // The name is free again once revoked.
    let response = app
        .as_direktorat(Method::POST, "/v1/tokens")
        .json(&json!({ "name": "NAV Vestland", "role": "fylke", "fylke": "46" }))
        .send()
        .await
        .expect("recreate");
    assert_eq!(response.status(), StatusCode::CREATED);

    let tokens = app.store.list_tokens().await.expect("list");
    let vestland: Vec<_> = tokens.iter().filter(|t| t.name == "NAV Vestland").collect();
    assert_eq!(vestland.len(), 2, "the revoked token is kept");
    assert!(vestland[0].revoked_at.is_some() && vestland[1].revoked_at.is_none());
}

async fn token_requests_are_validated_field_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (json!({ "name": "x", "role": "fylke" }), "fylke"),
        (
            json!({ "name": "x", "role": "fylke", "fylke": "54" }),
            "fylke",
        ),
        (
            json!({ "name": "x", "role": "forsker", "fylke": "46" }),
            "fylke",
        ),
        (json!({ "name": "  ", "role": "forsker" }), "name"),
        (json!({ "name": "a\u{7}b", "role": "forsker" }), "name"),
        (
            json!({ "name": "y".repeat(201), "role": "forsker" }),
            "name",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .as_direktorat(Method::POST, "/v1/tokens")
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let envelope: Value = response.json().await.expect("json");
        assert_envelope(status, &envelope, 422, "invalid");
        assert_eq!(envelope["error"]["details"]["field"], field, "{body}");
    }
    for (body, field) in [
        (json!({ "name": "x", "role": "admin" }), Some("role")),
        (json!({ "name": 7, "role": "forsker" }), Some("name")),
        (
            json!({ "name": "x", "role": "forsker", "colour": "blue" }),
            None,
        ),
        (json!({ "role": "forsker" }), None),
    ] {
        let response = app
            .as_direktorat(Method::POST, "/v1/tokens")
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let envelope: Value = response.json().await.expect("json");
        assert_envelope(status, &envelope, 422, "invalid");
        if let Some(field) = field {
            assert_eq!(envelope["error"]["details"]["field"], field, "{body}");
        }
        let message = envelope["error"]["message"].as_str().unwrap_or_default();
        assert!(
            ["admin", "name", "colour", "role"]
                .iter()
                .any(|w| message.contains(w)),
            "the message names the problem: {message}"
        );
    }
    // Nothing was created by any of them.
    assert_eq!(app.store.list_tokens().await.expect("list").len(), 1);
}

on_both_backends!(token_lifecycle, token_requests_are_validated_field_by_field);
