//! Trials over the API: the lifecycle and its refusals, protocol versions, enrollment, the draw,
//! and what each fylke sees.

use std::collections::{BTreeMap, BTreeSet};

use ia_rct::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TEST_SEED, TestApp, assert_envelope, get_as, make_token, test_protocol, test_register,
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
    app.randomize("lifecycle").await;
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
        let page = get_as(&app, &vestland.secret, &path).await.1;
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
    let enrolled = get_as(&app, &vestland.secret, "/v1/trials/isolation/enrollment")
        .await
        .1;
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
    let oslo_view = get_as(&app, &oslo.secret, "/v1/trials/isolation/acknowledgements")
        .await
        .1;
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
    app.randomize("same-draw").await;
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
    app.randomize("balance").await;
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
    let masked = get_as(&app, &forsker.secret, "/v1/trials/balance/balance")
        .await
        .1;
    let masked_cells = cells(&masked["table"]);
    assert!(
        masked_cells.iter().any(|c| c == "masked"),
        "small cells are hidden: {masked_cells:?}"
    );
    assert!(
        !masked_cells.iter().any(Value::is_null),
        "a hidden cell is marked, never a bare null: {masked_cells:?}"
    );
    assert!(
        masked_cells
            .iter()
            .filter_map(Value::as_u64)
            .all(|n| n >= 5),
        "no shown cell is below 5"
    );
}

/// The files the service publishes for a draw verify with `ia-rct verify --units`.
async fn a_served_draw_verifies_offline_from_its_published_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("published", "randomized", 300).await;
    let trial = app
        .direktorat_call(Method::GET, "/v1/trials/published", None, 200)
        .await;
    let fetch = |path: &'static str| {
        let app = &app;
        async move {
            let response = app
                .as_direktorat(Method::GET, path)
                .send()
                .await
                .expect("send");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            response.text().await.expect("text")
        }
    };
    let units = fetch("/v1/trials/published/draws/1/units.csv").await;
    let assignment = fetch("/v1/trials/published/draws/1/assignment.csv").await;
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(units.as_bytes())),
        trial["draws"][0]["units_sha256"].as_str().expect("hash")
    );
    assert!(assignment.contains(&format!(
        "# protocol_hash={}",
        trial["content_hash"].as_str().expect("hash")
    )));
    assert!(assignment.contains(&format!("# seed={TEST_SEED}")));
    let missing = app
        .as_direktorat(Method::GET, "/v1/trials/published/draws/2/units.csv")
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status().as_u16(), 404);

    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let protocol = write("protocol.json", &test_protocol("published").to_string());
    let units = write("units.csv", &units);
    let good = write("assignment.csv", &assignment);
    let verify = |file: &std::path::Path| {
        std::process::Command::new(crate::helpers::BIN)
            .arg("verify")
            .arg("--protocol")
            .arg(&protocol)
            .arg("--units")
            .arg(&units)
            .args(["--seed", TEST_SEED, "--assignment"])
            .arg(file)
            .output()
            .expect("verify")
    };
    let ok = verify(&good);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );

    // A duplicated row is a difference.
    let row = assignment.lines().nth(7).expect("row").to_owned();
    let duplicated = write("dup.csv", &format!("{assignment}{row}\n"));
    let bad = verify(&duplicated);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("2 times"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}

/// A second wave is drawn with its own seed, and a cluster drawn in wave 1 is not split by
/// firms of the same overordnet enhet enrolled later.
async fn a_second_wave_never_splits_a_cluster(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("waves", "randomized", 300).await;
    let wave1 = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/waves/assignments?limit=10000",
            None,
            200,
        )
        .await;
    let drawn_clusters: BTreeSet<String> = wave1["assignments"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|a| a["klynge"].as_str().map(str::to_owned))
        .collect();
    assert!(!drawn_clusters.is_empty());

    app.direktorat_call(
        Method::POST,
        "/v1/trials/waves/transitions",
        Some(json!({ "to": "enrolling" })),
        200,
    )
    .await;
    let later = ia_rct::simulate::register(700, 12);
    let later = ia_rct::simulate::register_csv(&later[300..]);
    let receipt = app.enroll_csv("waves", &later, 201).await;
    assert_eq!(receipt["receipt"]["wave"], 2);
    let enrolled = app
        .direktorat_call(Method::GET, "/v1/trials/waves/enrollment", None, 200)
        .await;
    let late_joiners: Vec<&Value> = enrolled["firms"]
        .as_array()
        .expect("firms")
        .iter()
        .filter(|f| {
            f["wave"] == 2
                && f["klynge"]
                    .as_str()
                    .is_some_and(|k| drawn_clusters.contains(k))
        })
        .collect();
    assert!(
        !late_joiners.is_empty(),
        "the test needs firms of an already drawn kommune"
    );
    for firm in &late_joiners {
        assert_eq!(firm["eligible"], false);
        assert!(
            firm["exclusions"]
                .as_array()
                .expect("reasons")
                .iter()
                .any(|e| e["code"] == "klynge_trukket"),
            "{firm}"
        );
    }

    app.direktorat_call(
        Method::POST,
        "/v1/trials/waves/randomize",
        Some(json!({ "seed": TEST_SEED })),
        422,
    )
    .await;
    let drawn = app
        .direktorat_call(
            Method::POST,
            "/v1/trials/waves/randomize",
            Some(json!({ "seed": "test-seed-2" })),
            201,
        )
        .await;
    assert_eq!(drawn["draw"]["wave"], 2);
    let all = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/waves/assignments?limit=10000",
            None,
            200,
        )
        .await;
    let mut arm_of_cluster: BTreeMap<String, String> = BTreeMap::new();
    let mut waves = BTreeSet::new();
    for a in all["assignments"].as_array().expect("rows") {
        waves.insert(a["bolge"].as_u64().expect("wave"));
        if let Some(k) = a["klynge"].as_str() {
            let arm = a["arm"].as_str().expect("arm").to_owned();
            let previous = arm_of_cluster.insert(k.to_owned(), arm.clone());
            assert!(
                previous.is_none_or(|p| p == arm),
                "cluster {k} split across arms"
            );
        }
    }
    assert_eq!(waves, BTreeSet::from([1, 2]));
    // Two committed seeds, two waves: no third wave.
    app.direktorat_call(
        Method::POST,
        "/v1/trials/waves/transitions",
        Some(json!({ "to": "enrolling" })),
        409,
    )
    .await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/waves/transitions",
        Some(json!({ "to": "follow_up" })),
        200,
    )
    .await;
}

/// Nothing accepted is changed: the database itself refuses updates and deletes of draws,
/// assignments, enrollments, acknowledgements and registered protocol versions.
async fn accepted_trial_data_cannot_be_changed_in_the_database(backend: Backend) {
    use sqlx::Connection;
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("frozen", "randomized", 200).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let ack = app
        .client
        .post(app.url("/v1/trials/frozen/acknowledgements"))
        .bearer_auth(&vestland.secret)
        .json(&json!({ "wave": 1 }))
        .send()
        .await
        .expect("send");
    assert_eq!(ack.status().as_u16(), 201);
    let mut statements = vec![
        "UPDATE assignments SET arm = 'kontroll'",
        "DELETE FROM assignments",
        "UPDATE draws SET seed = 'other'",
        "DELETE FROM draws",
        "UPDATE enrollments SET eligible = NOT eligible",
        "DELETE FROM enrollments",
        "UPDATE enrollment_uploads SET sha256 = 'x'",
        "UPDATE acknowledgements SET firms = 0",
        "DELETE FROM acknowledgements",
        "UPDATE protocol_versions SET content_hash = 'x'",
        "DELETE FROM protocol_versions",
    ];
    if backend == Backend::Postgres {
        statements.extend([
            "TRUNCATE assignments CASCADE",
            "TRUNCATE draws CASCADE",
            "TRUNCATE enrollments CASCADE",
        ]);
    }
    for statement in statements {
        let result = match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.db.url)
                    .await
                    .expect("connect");
                sqlx::query(statement).execute(&mut conn).await.map(|_| ())
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.db.url)
                    .await
                    .expect("connect");
                sqlx::query(statement).execute(&mut conn).await.map(|_| ())
            }
        };
        let error = result.expect_err(statement).to_string();
        assert!(error.contains("immutable"), "{statement}: {error}");
    }
}

/// Issue 10, defect 9: a protocol naming a secondary outcome that gets no estimate is refused at
/// registration (and as a draft edit) with a 422 naming `outcomes.secondary[i]` and why, and
/// nothing is written; the shipped survey measure is accepted as declared.
async fn registration_refuses_a_secondary_outcome_that_gets_no_estimate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let problems_of = |body: &Value| -> Vec<(String, String)> {
        body["error"]["details"]["problems"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["field"].as_str().unwrap_or_default().to_owned(),
                            p["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let cases = [
        (
            json!(["arbeidsmiljo_indeks", "tapte_dagsverk"]),
            "outcomes.secondary[1]",
            "not estimated in this version",
        ),
        (
            json!(["langtidsfravar_prosent"]),
            "outcomes.secondary[0]",
            "duration classes",
        ),
        (
            json!(["sykedager"]),
            "outcomes.secondary[0]",
            "unknown outcome `sykedager`; known: sykefravar_prosent",
        ),
    ];
    for (secondary, field, says) in &cases {
        let mut protocol = test_protocol("outcomes");
        protocol["outcomes"]["secondary"] = secondary.clone();
        let response = app
            .as_direktorat(Method::POST, "/v1/trials")
            .json(&protocol)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_envelope(status, &body, 422, "invalid");
        let problems = problems_of(&body);
        assert!(
            problems.iter().any(|(f, m)| f == field && m.contains(says)),
            "{secondary}: {body}"
        );
    }
    // Nothing was registered.
    app.direktorat_call(Method::GET, "/v1/trials/outcomes", None, 404)
        .await;

    // The shipped protocol (a declared survey measure) registers; a draft edit that adds an
    // outcome without an estimate is refused and the draft stays as it was.
    let trial = app.trial_in_state("outcomes", "draft", 0).await;
    assert_eq!(
        trial["protocol"]["outcomes"]["survey"],
        json!(["arbeidsmiljo_indeks"]),
        "{trial}"
    );
    let mut edit = test_protocol("outcomes");
    edit["outcomes"]["secondary"] = json!(["arbeidsmiljo_indeks", "tapte_dagsverk"]);
    let refused = app
        .direktorat_call(Method::PUT, "/v1/trials/outcomes/protocol", Some(edit), 422)
        .await;
    assert!(
        problems_of(&refused)
            .iter()
            .any(|(f, _)| f == "outcomes.secondary[1]"),
        "{refused}"
    );
    let stored = app
        .direktorat_call(Method::GET, "/v1/trials/outcomes", None, 200)
        .await;
    assert_eq!(
        stored["protocol"]["outcomes"]["secondary"],
        json!(["arbeidsmiljo_indeks"]),
        "{stored}"
    );
    assert_eq!(stored["content_hash"], trial["content_hash"]);
}

on_both_backends!(
    registration_refuses_a_secondary_outcome_that_gets_no_estimate,
    a_served_draw_verifies_offline_from_its_published_files,
    a_second_wave_never_splits_a_cluster,
    accepted_trial_data_cannot_be_changed_in_the_database,
    the_balance_table_counts_the_flow_and_masks_small_cells_for_researchers,
    the_lifecycle_refuses_steps_out_of_order,
    enrollment_refuses_bad_rows_whole_and_explains_exclusions,
    a_fylke_sees_only_its_own_firms_and_every_read_is_audited,
    the_service_draws_what_offline_assign_draws
);
