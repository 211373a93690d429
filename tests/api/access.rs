//! Every route, called with no token, a bad token and each role: 401/403/2xx exactly as the route
//! declares in the OpenAPI document, and every call to `/v1` leaves exactly one audit row.

use ia_rct::domain::Role;
use ia_rct::storage::AuditResult;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TEST_SEED, TestApp, make_token, test_protocol, test_register};
use crate::on_both_backends;

/// A request body.
enum Body {
    None,
    Json(Value),
    Csv(String),
}

/// Every operation the service has, with the roles it admits, written out by hand (public probes
/// admit everyone and have none). The test fails if `/openapi.json` lists more or fewer operations,
/// or if a route's declared roles or its live behaviour differ from this matrix, so neither a new
/// route nor a change of roles can ship without changing it here.
const OPERATIONS: &[(&str, &str, &[Role])] = &[
    ("GET", "/healthz", &[]),
    ("GET", "/readyz", &[]),
    ("GET", "/openapi.json", &[]),
    ("GET", "/v1/tokens", &[Role::Direktorat]),
    ("POST", "/v1/tokens", &[Role::Direktorat]),
    ("POST", "/v1/tokens/{id}/revoke", &[Role::Direktorat]),
    (
        "GET",
        "/v1/whoami",
        &[Role::Direktorat, Role::Fylke, Role::Forsker],
    ),
    ("GET", "/v1/audit", &[Role::Direktorat]),
    (
        "GET",
        "/v1/trials",
        &[Role::Direktorat, Role::Fylke, Role::Forsker],
    ),
    ("POST", "/v1/trials", &[Role::Direktorat]),
    (
        "GET",
        "/v1/trials/{id}",
        &[Role::Direktorat, Role::Fylke, Role::Forsker],
    ),
    ("PUT", "/v1/trials/{id}/protocol", &[Role::Direktorat]),
    (
        "GET",
        "/v1/trials/{id}/versions",
        &[Role::Direktorat, Role::Fylke, Role::Forsker],
    ),
    ("POST", "/v1/trials/{id}/transitions", &[Role::Direktorat]),
    ("POST", "/v1/trials/{id}/enrollment", &[Role::Direktorat]),
    (
        "GET",
        "/v1/trials/{id}/enrollment",
        &[Role::Direktorat, Role::Fylke],
    ),
    ("POST", "/v1/trials/{id}/randomize", &[Role::Direktorat]),
    (
        "GET",
        "/v1/trials/{id}/assignments",
        &[Role::Direktorat, Role::Fylke],
    ),
    ("POST", "/v1/trials/{id}/acknowledgements", &[Role::Fylke]),
    (
        "GET",
        "/v1/trials/{id}/acknowledgements",
        &[Role::Direktorat, Role::Fylke],
    ),
    (
        "GET",
        "/v1/trials/{id}/acknowledgements/status",
        &[Role::Direktorat],
    ),
    (
        "GET",
        "/v1/trials/{id}/balance",
        &[Role::Direktorat, Role::Forsker],
    ),
    (
        "GET",
        "/v1/trials/{id}/draws/{wave}/units.csv",
        &[Role::Direktorat],
    ),
    (
        "GET",
        "/v1/trials/{id}/draws/{wave}/assignment.csv",
        &[Role::Direktorat],
    ),
    ("POST", "/v1/statistics", &[Role::Direktorat]),
    (
        "GET",
        "/v1/statistics/vintages",
        &[Role::Direktorat, Role::Forsker],
    ),
    ("GET", "/v1/statistics/metadata", &[Role::Direktorat]),
    (
        "POST",
        "/v1/trials/{id}/takeup",
        &[Role::Direktorat, Role::Fylke],
    ),
    (
        "GET",
        "/v1/trials/{id}/takeup",
        &[Role::Direktorat, Role::Fylke],
    ),
    (
        "POST",
        "/v1/trials/{id}/surveys",
        &[Role::Direktorat, Role::Fylke],
    ),
    ("GET", "/v1/trials/{id}/deviations", &[Role::Direktorat]),
    (
        "GET",
        "/v1/trials/{id}/outcomes/summary",
        &[Role::Direktorat, Role::Forsker],
    ),
    (
        "GET",
        "/v1/trials/{id}/estimates",
        &[Role::Direktorat, Role::Forsker],
    ),
    (
        "POST",
        "/v1/trials/{id}/analyses",
        &[Role::Direktorat, Role::Forsker],
    ),
    (
        "GET",
        "/v1/trials/{id}/analyses",
        &[Role::Direktorat, Role::Forsker],
    ),
    (
        "GET",
        "/v1/trials/{id}/analyses/{run}",
        &[Role::Direktorat, Role::Forsker],
    ),
    (
        "GET",
        "/v1/trials/{id}/analyses/{run}/result.json",
        &[Role::Direktorat],
    ),
    ("GET", "/v1/jobs", &[Role::Direktorat]),
    ("GET", "/v1/jobs/{job}", &[Role::Direktorat, Role::Forsker]),
    (
        "DELETE",
        "/v1/jobs/{job}",
        &[Role::Direktorat, Role::Forsker],
    ),
];

/// The analysis options of the shared trial's run (the estimates case's query).
fn shared_options() -> Value {
    json!({ "estimator": "itt_dim,itt_ancova", "weights": "firm" })
}

/// The shared trial's analysis run (computed before the calls) and its job.
async fn shared_run(app: &TestApp) -> (i64, i64) {
    let runs = app.store.list_analyses(SHARED, 10).await.expect("runs");
    let run = runs.last().expect("the shared run");
    (run.id, run.job.as_ref().expect("job").id)
}

/// The trial the read-only cases use: randomized, with firms enrolled.
const SHARED: &str = "access-shared";

/// How to call one route successfully: the concrete path and body, built fresh per call because
/// some calls consume what they act on (a token to revoke, a draft to register, a wave to draw).
async fn request_for(app: &TestApp, method: &Method, template: &str, n: usize) -> (String, Body) {
    let fresh = |prefix: &str| format!("access-{prefix}-{n}");
    let shared = |suffix: &str| format!("/v1/trials/{SHARED}{suffix}");
    match (method.as_str(), template) {
        (
            "GET",
            "/healthz" | "/readyz" | "/openapi.json" | "/v1/tokens" | "/v1/whoami" | "/v1/trials",
        ) => (template.to_owned(), Body::None),
        ("GET", "/v1/audit") => ("/v1/audit?limit=5".to_owned(), Body::None),
        ("POST", "/v1/tokens") => (
            template.to_owned(),
            Body::Json(json!({ "name": format!("access-test {n}"), "role": "forsker" })),
        ),
        ("POST", "/v1/tokens/{id}/revoke") => {
            let victim = make_token(
                app.store.as_ref(),
                &format!("victim {n}"),
                Role::Forsker,
                None,
            )
            .await;
            (format!("/v1/tokens/{}/revoke", victim.info.id), Body::None)
        }
        ("GET", "/v1/statistics/vintages") => (template.to_owned(), Body::None),
        ("GET", "/v1/statistics/metadata") => (
            "/v1/statistics/metadata?orgnr=974760673".to_owned(),
            Body::None,
        ),
        ("GET", "/v1/trials/{id}/takeup") => (shared("/takeup"), Body::None),
        ("GET", "/v1/trials/{id}/deviations") => (shared("/deviations"), Body::None),
        ("GET", "/v1/trials/{id}/outcomes/summary") => (shared("/outcomes/summary"), Body::None),
        ("GET", "/v1/trials/{id}/estimates") => (
            shared("/estimates?estimator=itt_dim,itt_ancova&weights=firm"),
            Body::None,
        ),
        ("POST", "/v1/trials/{id}/analyses") => (shared("/analyses"), Body::Json(shared_options())),
        ("GET", "/v1/trials/{id}/analyses") => (shared("/analyses"), Body::None),
        ("GET", "/v1/trials/{id}/analyses/{run}") => {
            let (run, _) = shared_run(app).await;
            (shared(&format!("/analyses/{run}")), Body::None)
        }
        ("GET", "/v1/trials/{id}/analyses/{run}/result.json") => {
            let (run, _) = shared_run(app).await;
            (shared(&format!("/analyses/{run}/result.json")), Body::None)
        }
        ("GET", "/v1/jobs") => (template.to_owned(), Body::None),
        ("GET", "/v1/jobs/{job}") => {
            let (_, job) = shared_run(app).await;
            (format!("/v1/jobs/{job}"), Body::None)
        }
        ("DELETE", "/v1/jobs/{job}") => {
            // A queued job (the workers are stopped) that the researcher's token started, so
            // both admitted roles may cancel it.
            let forsker = app
                .store
                .list_tokens()
                .await
                .expect("tokens")
                .into_iter()
                .find(|t| t.name == "Forsker")
                .expect("the forsker token");
            let key = format!("{n:064}");
            let new = ia_rct::storage::analyses::NewAnalysis {
                trial: SHARED.into(),
                run_key: key.clone(),
                key_json: "{}".into(),
                protocol_version: 1,
                protocol_hash: key,
                vintage: None,
                options: r#"{"estimators":[],"weights":["firm"],"cr2":false}"#.into(),
                program_version: "test".into(),
                by: "Forsker".into(),
                by_token: Some(forsker.id),
            };
            let audit = ia_rct::storage::NewAuditEntry::now("TEST", "test", "/");
            let created = app.store.create_analysis(&new, &audit).await.expect("job");
            let job = created.value.0.job.expect("job").id;
            (format!("/v1/jobs/{job}"), Body::None)
        }
        ("POST", "/v1/trials/{id}/takeup" | "/v1/trials/{id}/surveys") => {
            let id = fresh("deliver");
            app.trial_in_state(&id, "randomized", 200).await;
            let firm = vestland_firm(app, &id).await;
            let (suffix, csv) = if template.ends_with("takeup") {
                (
                    "takeup",
                    format!("orgnr,status,dato\n{firm},KONTAKTET,2025-02-03\n"),
                )
            } else {
                (
                    "surveys",
                    format!(
                        "orgnr,bolge,maal,verdi,antall_svar\n{firm},1,arbeidsmiljo_indeks,3.5,12\n"
                    ),
                )
            };
            (format!("/v1/trials/{id}/{suffix}"), Body::Csv(csv))
        }
        ("POST", "/v1/statistics") => {
            // A new quarter each call, so every accepted upload inserts.
            let year = 2000 + n / 4;
            let quarter = n % 4 + 1;
            let csv = format!(
                "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n974760673,{year},{quarter},5.5,100.25,12\n"
            );
            (template.to_owned(), Body::Csv(csv))
        }
        ("POST", "/v1/trials") => (
            template.to_owned(),
            Body::Json(test_protocol(&fresh("new"))),
        ),
        ("GET", "/v1/trials/{id}") => (shared(""), Body::None),
        ("GET", "/v1/trials/{id}/versions") => (shared("/versions"), Body::None),
        ("GET", "/v1/trials/{id}/enrollment") => (shared("/enrollment"), Body::None),
        ("GET", "/v1/trials/{id}/assignments") => (shared("/assignments?limit=50"), Body::None),
        ("GET", "/v1/trials/{id}/acknowledgements") => (shared("/acknowledgements"), Body::None),
        ("GET", "/v1/trials/{id}/acknowledgements/status") => {
            (shared("/acknowledgements/status"), Body::None)
        }
        ("GET", "/v1/trials/{id}/balance") => (shared("/balance"), Body::None),
        ("GET", "/v1/trials/{id}/draws/{wave}/units.csv") => {
            (shared("/draws/1/units.csv"), Body::None)
        }
        ("GET", "/v1/trials/{id}/draws/{wave}/assignment.csv") => {
            (shared("/draws/1/assignment.csv"), Body::None)
        }
        ("PUT", "/v1/trials/{id}/protocol") => {
            let id = fresh("put");
            app.trial_in_state(&id, "draft", 0).await;
            let mut protocol = test_protocol(&id);
            protocol["title"] = Value::from("A better title");
            (format!("/v1/trials/{id}/protocol"), Body::Json(protocol))
        }
        ("POST", "/v1/trials/{id}/transitions") => {
            let id = fresh("step");
            app.trial_in_state(&id, "draft", 0).await;
            (
                format!("/v1/trials/{id}/transitions"),
                Body::Json(json!({ "to": "registered" })),
            )
        }
        ("POST", "/v1/trials/{id}/enrollment") => {
            let id = fresh("enroll");
            app.trial_in_state(&id, "enrolling", 0).await;
            (
                format!("/v1/trials/{id}/enrollment"),
                Body::Csv(test_register(40, 3)),
            )
        }
        ("POST", "/v1/trials/{id}/randomize") => {
            let id = fresh("draw");
            app.trial_in_state(&id, "enrolling", 60).await;
            (
                format!("/v1/trials/{id}/randomize"),
                Body::Json(json!({ "seed": TEST_SEED })),
            )
        }
        ("POST", "/v1/trials/{id}/acknowledgements") => {
            let id = fresh("ack");
            app.trial_in_state(&id, "randomized", 200).await;
            (
                format!("/v1/trials/{id}/acknowledgements"),
                Body::Json(json!({ "wave": 1 })),
            )
        }
        _ => panic!(
            "no access-test case for {method} {template}: add one to tests/api/access.rs::request_for"
        ),
    }
}

/// A randomized firm of the trial in fylke 46 (Vestland), whose token the test uses.
async fn vestland_firm(app: &TestApp, id: &str) -> String {
    let firms = app
        .store
        .assignments(id, Some("46".parse().expect("fylke")), None, 1)
        .await
        .expect("assignments");
    firms.first().expect("a firm in Vestland").orgnr.to_string()
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    Malformed,
    UnknownToken,
    /// A direktorat token that has been revoked: 401 everywhere, like an unknown one.
    Revoked,
    Role(Role),
}

async fn every_route_admits_exactly_its_declared_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let fylke = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    app.trial_in_state(SHARED, "randomized", 200).await;
    // Statistics for the shared trial's firms around randomization (2025K1), so estimates exist.
    let assigned = app
        .store
        .assignments(SHARED, None, None, 10_000)
        .await
        .expect("assignments");
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for (i, a) in assigned.iter().enumerate() {
        for (year, quarter) in [(2024, 4), (2025, 1)] {
            csv.push_str(&format!(
                "{},{year},{quarter},{},100,12\n",
                a.orgnr,
                4 + (i * 7 + quarter) % 9
            ));
        }
    }
    app.statistics_csv(csv, 201).await;
    // The shared analysis run, computed now; then the workers stop, so that every call below
    // leaves exactly its own audit row and a queued job stays queued.
    let run = app
        .direktorat_call(
            Method::POST,
            &format!("/v1/trials/{SHARED}/analyses"),
            Some(shared_options()),
            202,
        )
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let view = app
            .direktorat_call(
                Method::GET,
                &format!("/v1/trials/{SHARED}/analyses/{}", run["id"]),
                None,
                200,
            )
            .await;
        if view["state"] == "done" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.state.jobs.shutdown().await;
    let bad = format!("iarct_{}", "ab".repeat(32));
    let revoked = make_token(
        app.store.as_ref(),
        "Revoked direktorat",
        Role::Direktorat,
        None,
    )
    .await;
    app.direktorat_call(
        Method::POST,
        &format!("/v1/tokens/{}/revoke", revoked.info.id),
        None,
        200,
    )
    .await;

    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(
        documented, expected,
        "/openapi.json lists exactly the service's operations"
    );
    let mut calls = 0;
    for (template, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().expect("method");
            let declared = operation.get("x-ia-rct-roles");
            if !template.starts_with("/v1/") {
                assert!(
                    declared.is_none(),
                    "{method} {template} is public but declares roles"
                );
                let before = app.audit_count().await;
                let (path, _) = request_for(&app, &method, template, calls).await;
                let response = app
                    .client
                    .request(method.clone(), app.url(&path))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(
                    response.status(),
                    StatusCode::OK,
                    "{method} {template} without a token"
                );
                assert_eq!(app.audit_count().await, before, "probes are not audited");
                calls += 1;
                continue;
            }
            let admitted: Vec<Role> = declared
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{method} {template} declares no roles"))
                .iter()
                .map(|r| r.as_str().expect("role name").parse().expect("role"))
                .collect();
            assert!(!admitted.is_empty(), "{method} {template} admits nobody");
            let matrix: &[Role] = OPERATIONS
                .iter()
                .find(|(m, p, _)| *m == method.as_str() && p == template)
                .map(|(_, _, roles)| *roles)
                .unwrap_or_else(|| panic!("{method} {template} is not in OPERATIONS"));
            assert_eq!(
                admitted, matrix,
                "{method} {template}: declared roles differ from the hand-written matrix"
            );
            // The live server is held to the hand-written matrix, not to the document.
            let admitted = matrix;
            assert!(
                operation["security"].is_array(),
                "{method} {template} has no security requirement"
            );

            for who in [
                Who::Nobody,
                Who::Malformed,
                Who::UnknownToken,
                Who::Revoked,
                Who::Role(Role::Direktorat),
                Who::Role(Role::Fylke),
                Who::Role(Role::Forsker),
            ] {
                calls += 1;
                let (path, body) = request_for(&app, &method, template, calls).await;
                let before = app.audit_count().await;
                let mut request = app.client.request(method.clone(), app.url(&path));
                let secret = match who {
                    Who::Nobody => None,
                    Who::Malformed => {
                        request = request.header("authorization", "Basic YWRtaW46YWRtaW4=");
                        None
                    }
                    Who::UnknownToken => Some(bad.as_str()),
                    Who::Revoked => Some(revoked.secret.as_str()),
                    Who::Role(Role::Direktorat) => Some(app.direktorat.secret.as_str()),
                    Who::Role(Role::Fylke) => Some(fylke.secret.as_str()),
                    Who::Role(Role::Forsker) => Some(forsker.secret.as_str()),
                };
                if let Some(secret) = secret {
                    request = request.bearer_auth(secret);
                }
                match body {
                    Body::None => {}
                    Body::Json(body) => request = request.json(&body),
                    Body::Csv(csv) => {
                        request = request.header("content-type", "text/csv").body(csv)
                    }
                }
                let response = request.send().await.expect("send");
                let status = response.status();
                let expected = match who {
                    Who::Nobody | Who::Malformed | Who::UnknownToken | Who::Revoked => {
                        Some(StatusCode::UNAUTHORIZED)
                    }
                    Who::Role(role) if !admitted.contains(&role) => Some(StatusCode::FORBIDDEN),
                    Who::Role(_) => None,
                };
                match expected {
                    Some(code) => assert_eq!(status, code, "{who:?} on {method} {template}"),
                    None => assert!(
                        status.is_success(),
                        "{who:?} on {method} {template}: {status}"
                    ),
                }
                if status == StatusCode::UNAUTHORIZED {
                    assert_eq!(
                        response
                            .headers()
                            .get("www-authenticate")
                            .map(|v| v.as_bytes()),
                        Some(&b"Bearer"[..])
                    );
                }

                assert_eq!(
                    app.audit_count().await,
                    before + 1,
                    "{who:?} on {method} {template} left one audit row"
                );
                let row = app.last_audit().await;
                assert_eq!(row.method, method.as_str());
                assert_eq!(&row.route, template);
                assert_eq!(row.path, path.split('?').next().unwrap_or_default());
                assert_eq!(row.status, status.as_u16());
                assert!(row.request_id.is_some(), "request id recorded");
                let (result, actor) = match who {
                    Who::Nobody | Who::Malformed | Who::UnknownToken | Who::Revoked => {
                        (AuditResult::Denied, None)
                    }
                    Who::Role(role) if !admitted.contains(&role) => {
                        (AuditResult::Denied, Some(role))
                    }
                    Who::Role(role) => (AuditResult::Permitted, Some(role)),
                };
                assert_eq!(row.result, result, "{who:?} on {method} {template}");
                assert_eq!(row.actor_role, actor, "{who:?} on {method} {template}");
                if actor == Some(Role::Fylke) {
                    assert_eq!(row.actor_fylke.map(|f| f.as_str()), Some("46"));
                    assert_eq!(row.actor_name.as_deref(), Some("NAV Vestland"));
                }
                if result == AuditResult::Denied {
                    assert!(row.detail.is_some(), "a denial records why");
                }
            }
        }
    }
}

on_both_backends!(every_route_admits_exactly_its_declared_roles);
