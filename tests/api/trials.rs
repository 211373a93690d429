//! Trials over the API: the lifecycle and its refusals, protocol versions, enrollment, the draw,
//! and what each fylke sees.

use std::collections::{BTreeMap, BTreeSet};

use ia_rct::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TEST_SEED, TestApp, assert_envelope, make_token, test_protocol, test_register,
};
use crate::on_both_backends;

async fn the_lifecycle_refuses_steps_out_of_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("lifecycle", "draft", 0).await;
    let step = |to: &'static str, expected: u16| {
        let app = &app;
        async move {
            app.direktorat_call(
                Method::POST,
                "/v1/trials/lifecycle/transitions",
                Some(json!({ "to": to })),
                expected,
            )
            .await
        }
    };
    // A draft cannot be enrolled or randomized.
    let refused = step("enrolling", 409).await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("registered"),
        "{refused}"
    );
    app.enroll_csv("lifecycle", &test_register(20, 1), 409)
        .await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/lifecycle/randomize",
        Some(json!({ "seed": TEST_SEED })),
        409,
    )
    .await;

    // A draft is edited in place; once registered, a change is the next version with a diff.
    let mut protocol = test_protocol("lifecycle");
    protocol["strata"]["min_size"] = json!(12);
    let edited = app
        .direktorat_call(
            Method::PUT,
            "/v1/trials/lifecycle/protocol",
            Some(protocol.clone()),
            200,
        )
        .await;
    assert_eq!(edited["version"], 1);
    step("registered", 200).await;
    let same_version = app
        .direktorat_call(
            Method::PUT,
            "/v1/trials/lifecycle/protocol",
            Some(protocol.clone()),
            409,
        )
        .await;
    assert!(
        same_version["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("version = 2")
    );
    protocol["version"] = json!(2);
    protocol["strata"]["min_size"] = json!(16);
    let v2 = app
        .direktorat_call(
            Method::PUT,
            "/v1/trials/lifecycle/protocol",
            Some(protocol.clone()),
            200,
        )
        .await;
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["content_hash"], edited["content_hash"]);
    let versions = app
        .direktorat_call(Method::GET, "/v1/trials/lifecycle/versions", None, 200)
        .await;
    let changes = &versions["versions"][1]["changes"];
    let paths: Vec<&str> = changes
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert_eq!(paths, vec!["strata.min_size", "version"]);
    assert_eq!(changes[0]["before"], 12);
    assert_eq!(changes[0]["after"], 16);

    // Enrolling locks the protocol; randomizing is the only way out of enrolling.
    step("enrolling", 200).await;
    protocol["version"] = json!(3);
    let locked = app
        .direktorat_call(
            Method::PUT,
            "/v1/trials/lifecycle/protocol",
            Some(protocol),
            409,
        )
        .await;
    assert!(
        locked["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("locked")
    );
    let out = step("follow_up", 409).await;
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("randomize")
    );
    app.enroll_csv("lifecycle", &test_register(120, 2), 201)
        .await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/lifecycle/randomize",
        Some(json!({ "seed": "wrong" })),
        422,
    )
    .await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/lifecycle/randomize",
        Some(json!({ "seed": TEST_SEED })),
        201,
    )
    .await;
    // A drawn wave cannot be drawn again, and its firms cannot be enrolled again.
    app.direktorat_call(
        Method::POST,
        "/v1/trials/lifecycle/randomize",
        Some(json!({ "seed": TEST_SEED })),
        409,
    )
    .await;
    // The second committed wave opens; the same firms are refused; then the trial closes.
    step("enrolling", 200).await;
    let again = app
        .enroll_csv("lifecycle", &test_register(120, 2), 409)
        .await;
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already enrolled")
    );
    step("closed", 409).await;

    let trial = app
        .direktorat_call(Method::GET, "/v1/trials/lifecycle", None, 200)
        .await;
    assert_eq!(trial["state"], "enrolling");
    assert_eq!(trial["waves_drawn"], 1);
    assert_eq!(trial["draws"][0]["seed"], TEST_SEED);
}

async fn enrollment_refuses_bad_rows_whole_and_explains_exclusions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("enroll", "enrolling", 0).await;
    let mut csv = test_register(30, 5);
    // Row 7: a bad check digit; row 12: an unknown fylke.
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let orgnr = lines[7].split(',').next().expect("orgnr").to_owned();
    let bad = format!("{}{}", &orgnr[..8], (orgnr.as_bytes()[8] - b'0' + 1) % 10);
    lines[7] = lines[7].replacen(&orgnr, &bad, 1);
    let fields: Vec<&str> = lines[12].split(',').collect();
    let mut changed: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    changed[2] = "54".to_owned();
    lines[12] = changed.join(",");
    csv = lines.join("\n") + "\n";
    let refused = app.enroll_csv("enroll", &csv, 422).await;
    let errors = refused["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(refused["error"]["details"]["total"], 2);
    assert_eq!(
        (errors[0]["row"].as_u64(), errors[0]["field"].as_str()),
        (Some(7), Some("orgnr"))
    );
    assert_eq!(
        (errors[1]["row"].as_u64(), errors[1]["field"].as_str()),
        (Some(12), Some("fylke"))
    );
    let listed = app
        .direktorat_call(Method::GET, "/v1/trials/enroll/enrollment", None, 200)
        .await;
    assert_eq!(
        listed["firms"].as_array().expect("firms").len(),
        0,
        "nothing was written"
    );

    let accepted = app.enroll_csv("enroll", &test_register(300, 5), 201).await;
    let receipt = &accepted["receipt"];
    assert_eq!(receipt["firms"], 300);
    assert_eq!(receipt["wave"], 1);
    let eligible = receipt["eligible"].as_u64().expect("eligible");
    assert!(eligible > 30 && eligible < 300, "{eligible}");
    let reasons = accepted["excluded_by_reason"].as_object().expect("reasons");
    assert_eq!(
        reasons.values().filter_map(Value::as_u64).sum::<u64>(),
        300 - eligible
    );
    assert!(accepted["excluded"][0]["exclusions"][0]["message"].is_string());
}

async fn a_fylke_sees_only_its_own_firms_and_every_read_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("isolation", "randomized", 400).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let oslo = make_token(app.store.as_ref(), "NAV Oslo", Role::Fylke, Some("03")).await;
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;

    let all = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/isolation/assignments?limit=10000",
            None,
            200,
        )
        .await;
    let all = all["assignments"].as_array().expect("assignments").clone();
    let in_46: BTreeSet<String> = all
        .iter()
        .filter(|a| a["fylke"] == "46")
        .map(|a| a["orgnr"].as_str().expect("orgnr").to_owned())
        .collect();
    assert!(!in_46.is_empty() && in_46.len() < all.len());

    // Vestland pages through its own firms only.
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/v1/trials/isolation/assignments?limit=7".to_owned();
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let before = app.audit_count().await;
        let page: Value = app
            .client
            .get(app.url(&path))
            .bearer_auth(&vestland.secret)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let rows = page["assignments"].as_array().expect("rows");
        assert!(rows.iter().all(|r| r["fylke"] == "46"), "{page}");
        for r in rows {
            seen.insert(r["orgnr"].as_str().expect("orgnr").to_owned());
            assert!(r["instruks"].as_str().is_some_and(|i| !i.is_empty()));
            let control = r["arm"] == "kontroll";
            assert_eq!(
                r["kontakt"], !control,
                "design A: control firms are not to be contacted"
            );
        }
        // The read left one audit row naming the trial and exactly the firms returned.
        assert_eq!(app.audit_count().await, before + 1);
        let row = app.last_audit().await;
        assert_eq!(row.actor_name.as_deref(), Some("NAV Vestland"));
        assert_eq!(row.trial_id.as_deref(), Some("isolation"));
        let named: Vec<String> = rows
            .iter()
            .map(|r| format!("orgnr:{}", r["orgnr"].as_str().expect("orgnr")))
            .collect();
        assert_eq!(row.object_ids, named);
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, in_46, "Vestland saw exactly its own firms");

    // Oslo's CSV has only Oslo's firms; the researcher gets no firm-level list.
    let csv = app
        .client
        .get(app.url("/v1/trials/isolation/assignments?format=csv&limit=10000"))
        .bearer_auth(&oslo.secret)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("csv");
    let oslo_rows: Vec<&str> = csv.lines().skip(1).collect();
    let oslo_expected = all.iter().filter(|a| a["fylke"] == "03").count();
    assert_eq!(oslo_rows.len(), oslo_expected);
    assert!(
        oslo_rows
            .iter()
            .all(|r| !in_46.contains(r.split(',').next().unwrap_or_default()))
    );
    let response = app
        .client
        .get(app.url("/v1/trials/isolation/assignments"))
        .bearer_auth(&forsker.secret)
        .send()
        .await
        .expect("send");
    let status = response.status();
    assert_envelope(
        status,
        &response.json().await.expect("json"),
        403,
        "forbidden",
    );
    let response = app
        .client
        .get(app.url("/v1/trials/isolation/enrollment"))
        .bearer_auth(&forsker.secret)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 403);

    // Enrollment lists are scoped the same way.
    let enrolled: Value = app
        .client
        .get(app.url("/v1/trials/isolation/enrollment"))
        .bearer_auth(&vestland.secret)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        enrolled["firms"]
            .as_array()
            .expect("firms")
            .iter()
            .all(|f| f["fylke"] == "46")
    );

    // Vestland acknowledges wave 1, once; the direktorat sees it, Oslo does not.
    let ack: Value = app
        .client
        .post(app.url("/v1/trials/isolation/acknowledgements"))
        .bearer_auth(&vestland.secret)
        .json(&json!({ "wave": 1 }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(ack["firms"].as_u64(), Some(in_46.len() as u64));
    let twice = app
        .client
        .post(app.url("/v1/trials/isolation/acknowledgements"))
        .bearer_auth(&vestland.secret)
        .json(&json!({ "wave": 1 }))
        .send()
        .await
        .expect("send");
    assert_eq!(twice.status().as_u16(), 409);
    let acks = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/isolation/acknowledgements",
            None,
            200,
        )
        .await;
    assert_eq!(acks["acknowledgements"].as_array().expect("acks").len(), 1);
    let oslo_view: Value = app
        .client
        .get(app.url("/v1/trials/isolation/acknowledgements"))
        .bearer_auth(&oslo.secret)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        oslo_view["acknowledgements"]
            .as_array()
            .expect("acks")
            .len(),
        0
    );

    // The audit log shows each fylke read.
    let reads = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            route: Some("/v1/trials/{id}/assignments".into()),
            actor_name: Some("NAV Vestland".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert!(
        reads.len() >= 2
            && reads
                .iter()
                .all(|r| r.result == ia_rct::storage::AuditResult::Permitted)
    );
}

/// The service draws exactly what the offline `ia-rct assign` draws from the same register.
async fn the_service_draws_what_offline_assign_draws(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("same-draw", "enrolling", 0).await;
    let csv = test_register(500, 21);
    app.enroll_csv("same-draw", &csv, 201).await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/same-draw/randomize",
        Some(json!({ "seed": TEST_SEED })),
        201,
    )
    .await;
    let served = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/same-draw/assignments?limit=10000",
            None,
            200,
        )
        .await;
    let served: BTreeMap<String, (String, String)> = served["assignments"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|a| {
            (
                a["orgnr"].as_str().expect("orgnr").to_owned(),
                (
                    a["arm"].as_str().expect("arm").to_owned(),
                    a["stratum"].as_str().expect("stratum").to_owned(),
                ),
            )
        })
        .collect();

    let dir = tempfile::tempdir().expect("dir");
    let protocol_path = dir.path().join("protocol.json");
    std::fs::write(&protocol_path, test_protocol("same-draw").to_string()).expect("write");
    let firms_path = dir.path().join("firms.csv");
    std::fs::write(&firms_path, &csv).expect("write");
    let out = dir.path().join("assignment.csv");
    let status = std::process::Command::new(crate::helpers::BIN)
        .args(["assign", "--protocol"])
        .arg(&protocol_path)
        .arg("--firms")
        .arg(&firms_path)
        .args(["--seed", TEST_SEED, "--out"])
        .arg(&out)
        .output()
        .expect("assign");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let offline = ia_rct::randomization::files::read_assignment(
        &std::fs::read_to_string(&out).expect("read"),
    )
    .expect("valid");
    let offline: BTreeMap<String, (String, String)> = offline
        .rows
        .iter()
        .map(|r| (r.orgnr.to_string(), (r.arm.clone(), r.stratum.clone())))
        .collect();
    assert_eq!(served, offline);
}

async fn the_balance_table_counts_the_flow_and_masks_small_cells_for_researchers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("balance", "enrolling", 0).await;
    app.direktorat_call(Method::GET, "/v1/trials/balance/balance", None, 409)
        .await;
    app.enroll_csv("balance", &test_register(600, 8), 201).await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/balance/randomize",
        Some(json!({ "seed": TEST_SEED })),
        201,
    )
    .await;
    let full = app
        .direktorat_call(Method::GET, "/v1/trials/balance/balance", None, 200)
        .await;
    let consort = &full["consort"];
    assert_eq!(consort["assessed"], 600);
    let eligible = consort["eligible"].as_u64().expect("eligible");
    let randomized: u64 = consort["randomized_per_arm"]
        .as_object()
        .expect("arms")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(randomized, eligible);
    assert_eq!(consort["not_randomized"], 0);
    let table = &full["table"];
    assert_eq!(table["control"], "kontroll");
    assert_eq!(table["covariates"][0]["covariate"], "antall_ansatte");
    assert_eq!(
        table["omnibus"].as_array().expect("omnibus").len(),
        3,
        "one test per arm against control"
    );
    let cells = |t: &Value| -> Vec<Value> {
        t["strata"]
            .as_array()
            .expect("strata")
            .iter()
            .flat_map(|s| s["counts"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    assert!(
        cells(table).iter().all(Value::is_u64),
        "the directorate sees every cell"
    );

    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let masked: Value = app
        .client
        .get(app.url("/v1/trials/balance/balance"))
        .bearer_auth(&forsker.secret)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let masked_cells = cells(&masked["table"]);
    assert!(
        masked_cells.iter().any(Value::is_null),
        "small cells are hidden: {masked_cells:?}"
    );
    assert!(
        masked_cells
            .iter()
            .filter_map(Value::as_u64)
            .all(|n| n >= 5),
        "no shown cell is below 5"
    );
}

on_both_backends!(
    the_balance_table_counts_the_flow_and_masks_small_cells_for_researchers,
    the_lifecycle_refuses_steps_out_of_order,
    enrollment_refuses_bad_rows_whole_and_explains_exclusions,
    a_fylke_sees_only_its_own_firms_and_every_read_is_audited,
    the_service_draws_what_offline_assign_draws
);
