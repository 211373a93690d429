//! The statistics register over the API and `ia-rct ingest`: NAV's formats, atomic uploads,
//! idempotency, vintages.

use reqwest::Method;
use serde_json::{Value, json};

use ia_rct::domain::Orgnr;

use crate::helpers::{
    Backend, ServerProcess, TestApp, TestDb, TestToken, assert_envelope, make_token,
};
use crate::on_both_backends;

/// Valid organisation numbers for test firms.
fn orgnrs(n: u32) -> Vec<Orgnr> {
    (0..n)
        .filter_map(|i| Orgnr::from_prefix(97_000_000 + i * 7))
        .collect()
}

/// NAV `virksomhet.json` rows for some firms and one quarter, numbers as NAV publishes them
/// (quoted strings and JSON numbers mixed).
fn virksomhet_json(firms: &[Orgnr], year: i32, quarter: u32, bump: f64) -> String {
    let rows: Vec<Value> = firms
        .iter()
        .enumerate()
        .map(|(i, orgnr)| {
            let mulige = 77.8716 + i as f64 * 3.25;
            let tapte = 20.23 + i as f64 * 0.5 + bump;
            json!({
                "årstall": year,
                "kvartal": quarter,
                "orgnr": orgnr.to_string(),
                "prosent": "26.0",
                "tapteDagsverk": format!("{tapte}"),
                "muligeDagsverk": mulige,
                "tapteDagsverkGradert": 9.034285,
                "tapteDagsverkPerVarighet": [{ "varighet": "A", "tapteDagsverk": 12.1527 }],
                "antallPersoner": "40",
                "rectype": "2"
            })
        })
        .collect();
    serde_json::to_string(&rows).expect("json")
}

async fn upload(app: &TestApp, body: String, key: Option<&str>) -> (u16, Value, bool) {
    let mut request = app
        .as_direktorat(Method::POST, "/v1/statistics")
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (status, response.json().await.expect("json"), replayed)
}

async fn the_same_quarter_twice_is_unchanged_and_a_revision_keeps_the_old_vintage(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(50);
    let quarter = virksomhet_json(&firms, 2024, 2, 0.0);
    let (status, first, _) = upload(&app, quarter.clone(), None).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["outcome"], "applied");
    assert_eq!(first["receipt"]["inserted"], firms.len());
    let (status, second, _) = upload(&app, quarter.clone(), None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["outcome"], "unchanged");
    assert_eq!(second["receipt"]["unchanged"], firms.len());
    assert_eq!(second["receipt"]["inserted"], 0);
    assert_eq!(first["receipt"]["sha256"], second["receipt"]["sha256"]);

    // One value revised: a new vintage, and the first stays.
    let revised = quarter.replacen("\"20.23\"", "\"21.5\"", 1);
    assert_ne!(revised, quarter);
    let (status, third, _) = upload(&app, revised, None).await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["receipt"]["revised"], 1);
    assert_eq!(third["receipt"]["unchanged"], firms.len() - 1);
    let first_vintage = first["receipt"]["vintage"].as_i64().expect("vintage");
    let latest = app
        .store
        .statistics_values(firms[0], None)
        .await
        .expect("values");
    let before = app
        .store
        .statistics_values(firms[0], Some(first_vintage))
        .await
        .expect("values");
    assert_eq!(latest.len(), 1);
    assert_eq!(before.len(), 1);
    assert_eq!(latest[0].tapte_dagsverk, 21.5);
    assert_eq!(
        before[0].tapte_dagsverk, 20.23,
        "the first vintage is kept at full precision"
    );
    assert_eq!(latest[0].mulige_dagsverk, 77.8716);

    let vintages = app
        .direktorat_call(Method::GET, "/v1/statistics/vintages", None, 200)
        .await;
    assert_eq!(
        vintages["vintages"].as_array().expect("list").len(),
        2,
        "the unchanged upload made no vintage"
    );
}

/// An identical re-upload, or one without rows, makes no vintage: the receipt says `unchanged`
/// and names the vintage that already holds the data; an empty upload is refused.
async fn an_upload_that_changes_nothing_makes_no_vintage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(20);
    let quarter = virksomhet_json(&firms, 2024, 1, 0.0);
    let (status, first, _) = upload(&app, quarter.clone(), None).await;
    assert_eq!(status, 201, "{first}");
    let vintage = first["receipt"]["vintage"].as_i64().expect("vintage");
    for _ in 0..3 {
        let (status, again, _) = upload(&app, quarter.clone(), None).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["outcome"], "unchanged");
        assert_eq!(
            again["receipt"]["vintage"], vintage,
            "names the existing vintage"
        );
        assert_eq!(again["receipt"]["unchanged"], firms.len());
    }
    for empty in ["[]", "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n", ""] {
        let (status, body, _) = upload(&app, empty.to_owned(), None).await;
        assert_eq!(status, 422, "{body}");
        let reason = body["error"]["details"]["errors"][0]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.contains("no rows") || reason.contains("the upload is empty"),
            "{body}"
        );
    }
    let uploads = app.store.statistics_uploads(None).await.expect("uploads");
    assert_eq!(uploads.len(), 1, "one vintage: {uploads:?}");
    let audit = app.last_audit().await;
    assert_eq!(audit.route, "/v1/statistics", "the refusals are audited");
}

/// An `Idempotency-Key` reused for other content is refused naming the key, and nothing of the
/// new content is written; the identical retry still replays.
async fn an_idempotency_key_reused_for_other_content_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(10);
    let body = virksomhet_json(&firms, 2023, 3, 0.0);
    let (status, first, _) = upload(&app, body.clone(), Some("nav-2023K3")).await;
    assert_eq!(status, 201, "{first}");
    let other = virksomhet_json(&firms, 2023, 4, 0.0);
    let (status, refused, replayed) = upload(&app, other, Some("nav-2023K3")).await;
    assert_eq!((status, replayed), (422, false), "{refused}");
    assert_eq!(refused["error"]["details"]["field"], "Idempotency-Key");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nav-2023K3"), "{message}");
    let values = app
        .store
        .statistics_values(firms[0], None)
        .await
        .expect("values");
    assert!(
        values.iter().all(|v| v.kvartal == 3),
        "nothing of 2023K4: {values:?}"
    );
    let (status, again, replayed) = upload(&app, body, Some("nav-2023K3")).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(first["receipt"], again["receipt"]);
    assert_eq!(
        app.store
            .statistics_uploads(None)
            .await
            .expect("uploads")
            .len(),
        1
    );
}

/// A firm-level read during an upload is answered at once and audited durably, although the
/// upload holds the database's writer (paused before its commit by fault injection): killed
/// then, the service leaves the read's audit row and nothing of the upload.
async fn a_read_during_an_upload_is_answered_and_audited_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let firms = orgnrs(30);
    let (mut server, request, direktorat) =
        upload_paused_before_commit(&db, virksomhet_json(&firms, 2025, 2, 0.0), "30000").await;
    let started = std::time::Instant::now();
    let read = reqwest::Client::new()
        .get(format!(
            "{}/v1/statistics/metadata?orgnr={}",
            server.base, firms[3]
        ))
        .bearer_auth(&direktorat.secret)
        .send()
        .await
        .expect("read");
    let elapsed = started.elapsed();
    assert_eq!(read.status().as_u16(), 200);
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "the read waited {elapsed:?} for the upload"
    );
    server.child.start_kill().expect("SIGKILL");
    server.child.wait().await.expect("wait");
    assert!(request.await.expect("join").is_err());

    let store = db.store().await;
    let audit = store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit");
    let object = format!("orgnr:{}", firms[3]);
    assert!(
        audit.iter().any(|e| e.route == "/v1/statistics/metadata"
            && e.status == 200
            && e.object_ids == [object.clone()]),
        "the read's audit row survived the kill: {audit:?}"
    );
    assert!(
        audit.iter().all(|e| e.route != "/v1/statistics"),
        "no audit row of the killed upload"
    );
    assert!(
        store
            .statistics_uploads(None)
            .await
            .expect("uploads")
            .is_empty()
    );
    store.close().await;
}

async fn one_bad_row_refuses_the_upload_naming_row_and_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(30);
    let mut rows: Vec<Value> =
        serde_json::from_str(&virksomhet_json(&firms, 2024, 3, 0.0)).expect("rows");
    rows[16]["muligeDagsverk"] = json!("0");
    let (status, body, _) = upload(&app, serde_json::to_string(&rows).expect("json"), None).await;
    assert_eq!(status, 422, "{body}");
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(body["error"]["details"]["total"], 1);
    assert_eq!(errors[0]["row"], 17);
    assert_eq!(errors[0]["field"], "muligeDagsverk");
    assert!(
        app.store
            .statistics_uploads(None)
            .await
            .expect("uploads")
            .is_empty()
    );
    assert!(
        app.store
            .statistics_values(firms[0], None)
            .await
            .expect("values")
            .is_empty(),
        "nothing written"
    );

    // A firm-quarter twice in one upload is refused too.
    let mut twice: Vec<Value> =
        serde_json::from_str(&virksomhet_json(&firms[..3], 2024, 3, 0.0)).expect("rows");
    twice.push(twice[1].clone());
    let (status, body, _) = upload(&app, serde_json::to_string(&twice).expect("json"), None).await;
    assert_eq!(status, 422, "{body}");
    let reason = body["error"]["details"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("twice") && reason.contains("row 2"),
        "{reason}"
    );
    assert_eq!(body["error"]["details"]["errors"][0]["row"], 4);
}

async fn an_idempotency_key_applies_a_retried_upload_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(10);
    let body = virksomhet_json(&firms, 2023, 4, 0.0);
    let (status, first, replayed) = upload(&app, body.clone(), Some("nav-2023K4-try")).await;
    assert_eq!((status, replayed), (201, false));
    let (status, again, replayed) = upload(&app, body, Some("nav-2023K4-try")).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(
        first["receipt"], again["receipt"],
        "the retry gets the first receipt"
    );
    assert_eq!(
        app.store
            .statistics_uploads(None)
            .await
            .expect("uploads")
            .len(),
        1
    );
    let forsker = make_token(
        app.store.as_ref(),
        "Forsker",
        ia_rct::domain::Role::Forsker,
        None,
    )
    .await;
    let response = app
        .client
        .post(app.url("/v1/statistics"))
        .bearer_auth(&forsker.secret)
        .body("[]")
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
}

/// The same data in NAV's two formats gives the same register.
async fn both_nav_formats_give_the_same_register(backend: Backend) {
    let json_app = TestApp::spawn(backend).await;
    let csv_app = TestApp::spawn(backend).await;
    let firms = orgnrs(25);
    let json_body = virksomhet_json(&firms, 2024, 1, 0.0);
    let rows: Vec<Value> = serde_json::from_str(&json_body).expect("rows");
    let mut csv = String::from(
        "orgnr,arstall,kvartal,taptedv,muligedv,antpers,prosent,taptedv_gs,rectype,varighet_A\n",
    );
    for r in &rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r["orgnr"].as_str().expect("orgnr"),
            r["årstall"],
            r["kvartal"],
            r["tapteDagsverk"].as_str().expect("tapte"),
            r["muligeDagsverk"],
            r["antallPersoner"].as_str().expect("persons"),
            r["prosent"].as_str().expect("prosent"),
            r["tapteDagsverkGradert"],
            r["rectype"].as_str().expect("rectype"),
            r["tapteDagsverkPerVarighet"][0]["tapteDagsverk"],
        ));
    }
    let (status, _, _) = upload(&json_app, json_body, None).await;
    assert_eq!(status, 201);
    csv_app.statistics_csv(csv, 201).await;
    for firm in &firms {
        let a = json_app
            .store
            .statistics_values(*firm, None)
            .await
            .expect("values");
        let b = csv_app
            .store
            .statistics_values(*firm, None)
            .await
            .expect("values");
        assert_eq!(a, b, "{firm}");
        assert_eq!(a.len(), 1);
    }
}

/// `ia-rct ingest` runs the same code path; a SIGKILL in the middle of an upload leaves no trace.
async fn ingest_on_the_command_line_and_a_killed_upload_leaves_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("virksomhet.json");
    let firms = orgnrs(40);
    std::fs::write(&file, virksomhet_json(&firms, 2024, 4, 0.0)).expect("write");
    let run = |args: &[&str]| {
        std::process::Command::new(crate::helpers::BIN)
            .args(["--database-url", &db.url])
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["ingest", file.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("40 inserted"));
    let out = run(&["ingest", file.to_str().expect("path")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("40 unchanged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n974760673,2024,5,1,2,3\n",
    )
    .expect("write");
    let out = run(&["ingest", bad.to_str().expect("path")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("row 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Kill the service while it applies an upload: after a restart the upload left nothing.
    let (mut server, request, _) =
        upload_paused_before_commit(&db, virksomhet_json(&firms, 2025, 1, 0.0), "60000").await;
    server.child.start_kill().expect("SIGKILL");
    server.child.wait().await.expect("wait");
    assert!(request.await.expect("join").is_err());
    let store = db.store().await;
    let uploads = store.statistics_uploads(None).await.expect("uploads");
    assert_eq!(
        uploads.len(),
        1,
        "only the first CLI upload (the second changed nothing)"
    );
    let values = store
        .statistics_values(firms[0], None)
        .await
        .expect("values");
    assert!(
        values.iter().all(|v| v.arstall == 2024),
        "no 2025K1 value survived: {values:?}"
    );
    store.close().await;
}

/// Enrollment takes the baseline from NAV's statistics where the register has them.
async fn enrollment_uses_nav_statistics_for_the_baseline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("with-stats", "enrolling", 0).await;
    let firms = ia_rct::simulate::register(60, 4);
    // Statistics for 2024K1-K4 with 15 % sick leave for every firm; the register file carries a
    // baseline of 1 % which must lose.
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for f in &firms {
        for q in 1..=4 {
            csv.push_str(&format!(
                "{},2024,{q},15,100,{}\n",
                f.orgnr,
                f.antall_ansatte.max(5)
            ));
        }
    }
    app.statistics_csv(csv, 201).await;
    let mut register = firms.clone();
    for f in &mut register {
        f.baseline = Some(ia_rct::register::BaselineDagsverk {
            tapte: 1.0,
            mulige: 100.0,
        });
    }
    app.enroll_csv(
        "with-stats",
        &ia_rct::simulate::register_csv(&register),
        201,
    )
    .await;
    let enrolled = app
        .direktorat_call(Method::GET, "/v1/trials/with-stats/enrollment", None, 200)
        .await;
    for f in enrolled["firms"].as_array().expect("firms") {
        assert_eq!(f["baseline"], json!([60.0, 400.0]), "{f}");
        let big_enough = f["antall_ansatte"].as_u64().expect("n") >= 21;
        assert_eq!(
            f["eligible"], big_enough,
            "15 % qualifies every firm over 20 employees: {f}"
        );
    }
}

/// What is written reads back exactly as uploaded: 400 generated firm-quarters with awkward
/// decimals (up to 17 significant digits, tiny and large values), through DVH CSV.
async fn what_is_uploaded_reads_back_exactly(backend: Backend) {
    use rand_core::{RngCore, SeedableRng};
    let app = TestApp::spawn(backend).await;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4242);
    let firms = orgnrs(100);
    let mut expected = Vec::new();
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for firm in &firms {
        for quarter in 1..=4 {
            let mulige = (rng.next_u64() % 10_000_000) as f64 / 7.0 + 1e-9;
            let tapte = mulige * ((rng.next_u64() % 1000) as f64 / 1000.0);
            let persons = rng.next_u64() % 500;
            csv.push_str(&format!(
                "{firm},2023,{quarter},{tapte:?},{mulige:?},{persons}\n"
            ));
            expected.push((*firm, quarter, tapte, mulige, persons));
        }
    }
    app.statistics_csv(csv, 201).await;
    for (firm, quarter, tapte, mulige, persons) in expected {
        let values = app
            .store
            .statistics_values(firm, None)
            .await
            .expect("values");
        let v = values
            .iter()
            .find(|v| v.kvartal == quarter)
            .expect("quarter");
        assert_eq!(
            (
                v.tapte_dagsverk,
                v.mulige_dagsverk,
                v.antall_personer as u64
            ),
            (tapte, mulige, persons),
            "{firm} K{quarter}"
        );
    }
}

/// NAV `virksomhet_metadata.json` rows for some firms and one quarter, every firm in sektor
/// `sektor` (NAV's code or name).
fn metadata_json(firms: &[Orgnr], year: i32, quarter: u32, sektor: &str) -> String {
    let rows: Vec<Value> = firms
        .iter()
        .map(|orgnr| {
            json!({
                "årstall": year,
                "kvartal": quarter,
                "orgnr": orgnr.to_string(),
                "sektor": sektor,
                "primærnæring": "88",
                "primærnæringskode": "88.911",
                "rectype": "2"
            })
        })
        .collect();
    serde_json::to_string(&rows).expect("json")
}

async fn metadata(app: &TestApp, orgnr: Orgnr, vintage: Option<i64>) -> Value {
    let path = match vintage {
        Some(v) => format!("/v1/statistics/metadata?orgnr={orgnr}&vintage={v}"),
        None => format!("/v1/statistics/metadata?orgnr={orgnr}"),
    };
    app.direktorat_call(Method::GET, &path, None, 200).await
}

/// NAV's metadata take the statistics' path: uploaded twice it is unchanged, a revised sector is a
/// new vintage beside the old, and a firm's metadata read back as of either vintage, audited.
async fn metadata_are_versioned_like_the_statistics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(40);
    let body = metadata_json(&firms, 2024, 2, "3");
    let (status, first, _) = upload(&app, body.clone(), None).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["receipt"]["kind"], "metadata");
    assert_eq!(first["receipt"]["inserted"], firms.len());
    let (status, second, _) = upload(&app, body.clone(), None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["outcome"], "unchanged");
    assert_eq!(second["receipt"]["unchanged"], firms.len());

    // One firm moves to KOMMUNAL (given by name this time); NDJSON, as NAV also publishes it.
    let mut rows: Vec<Value> = serde_json::from_str(&body).expect("rows");
    rows[7]["sektor"] = json!("KOMMUNAL");
    let ndjson: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let (status, third, _) = upload(&app, ndjson, Some("metadata-2024K2-rev")).await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["receipt"]["revised"], 1);
    assert_eq!(third["receipt"]["unchanged"], firms.len() - 1);

    let first_vintage = first["receipt"]["vintage"].as_i64().expect("vintage");
    let latest = metadata(&app, firms[7], None).await;
    assert_eq!(latest["quarters"].as_array().expect("quarters").len(), 1);
    assert_eq!(latest["quarters"][0]["sektor"], "KOMMUNAL");
    assert_eq!(latest["quarters"][0]["primaernaringskode"], "88911");
    assert_eq!(
        latest["quarters"][0]["vintage"],
        third["receipt"]["vintage"]
    );
    let audit = app.last_audit().await;
    assert_eq!(audit.route, "/v1/statistics/metadata");
    assert_eq!(audit.object_ids, vec![format!("orgnr:{}", firms[7])]);
    let before = metadata(&app, firms[7], Some(first_vintage)).await;
    assert_eq!(
        before["quarters"][0]["sektor"], "PRIVAT",
        "the first vintage stays"
    );
    assert_eq!(before["quarters"][0]["vintage"], first_vintage);

    // The statistics and the metadata share vintages but not values.
    assert!(
        app.store
            .statistics_values(firms[7], None)
            .await
            .expect("values")
            .is_empty()
    );
    let vintages = app
        .direktorat_call(Method::GET, "/v1/statistics/vintages", None, 200)
        .await;
    let kinds: Vec<&str> = vintages["vintages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds, ["metadata"; 2],
        "the unchanged upload made no vintage"
    );

    // The metadata are firm-level: the directorate's only.
    let forsker = make_token(
        app.store.as_ref(),
        "Forsker",
        ia_rct::domain::Role::Forsker,
        None,
    )
    .await;
    let response = app
        .client
        .get(app.url(&format!("/v1/statistics/metadata?orgnr={}", firms[0])))
        .bearer_auth(&forsker.secret)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 403);
    let response = app
        .as_direktorat(Method::GET, "/v1/statistics/metadata?orgnr=12345678")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 422);
}

/// A metadata upload with one bad row is refused whole, naming the row and the field.
async fn one_bad_metadata_row_refuses_the_upload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(20);
    let mut rows: Vec<Value> =
        serde_json::from_str(&metadata_json(&firms, 2024, 3, "1")).expect("rows");
    rows[11]["sektor"] = json!("9");
    let (status, body, _) = upload(&app, serde_json::to_string(&rows).expect("json"), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["total"], 1);
    let error = &body["error"]["details"]["errors"][0];
    assert_eq!(error["row"], 12);
    assert_eq!(error["field"], "sektor");
    assert!(
        app.store
            .statistics_uploads(None)
            .await
            .expect("uploads")
            .is_empty()
    );
    let read = metadata(&app, firms[0], None).await;
    assert_eq!(read["quarters"], json!([]), "nothing written");

    // The command line takes the same path.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("virksomhet_metadata.json");
    std::fs::write(&file, metadata_json(&firms, 2024, 3, "1")).expect("write");
    let out = std::process::Command::new(crate::helpers::BIN)
        .args(["--database-url", &app.db.url, "ingest"])
        .arg(&file)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("20 inserted"), "{stderr}");
    let read = metadata(&app, firms[0], None).await;
    assert_eq!(read["quarters"][0]["sektor"], "STATLIG");
}

/// Firm-quarters are compared with the register only in quarters it has: an upload of one known
/// and one new quarter inserts the new and leaves the known unchanged; and out-of-order rows over
/// several chunks still have every duplicate named.
async fn known_and_new_quarters_and_duplicates_out_of_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let firms = orgnrs(3300);
    assert!(firms.len() > 2900, "two chunks of one quarter");
    let (status, _, _) = upload(&app, virksomhet_json(&firms, 2024, 1, 0.0), None).await;
    assert_eq!(status, 201);
    // 2024K1 again (known) and 2024K2 (new), by quarter then firm: three chunks.
    let mut rows: Vec<Value> =
        serde_json::from_str(&virksomhet_json(&firms, 2024, 1, 0.0)).expect("rows");
    let second: Vec<Value> =
        serde_json::from_str(&virksomhet_json(&firms, 2024, 2, 0.0)).expect("rows");
    rows.extend(second);
    let (status, body, _) = upload(&app, serde_json::to_string(&rows).expect("json"), None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["receipt"]["inserted"], firms.len());
    assert_eq!(body["receipt"]["unchanged"], firms.len());
    assert_eq!(
        app.store
            .statistics_values(firms[3], None)
            .await
            .expect("values")
            .len(),
        2
    );

    // 2024K3: sorted for the first chunk (written straight into the register), then out of order,
    // with one firm-quarter of the first chunk and one of the second given again.
    let mut rows: Vec<Value> =
        serde_json::from_str(&virksomhet_json(&firms, 2024, 3, 0.0)).expect("rows");
    rows.swap(2600, 2700);
    let early = rows[10].clone();
    let late = rows[2650].clone();
    rows.insert(2800, early);
    rows.push(late);
    let (status, body, _) = upload(&app, serde_json::to_string(&rows).expect("json"), None).await;
    assert_eq!(status, 422, "{body}");
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(body["error"]["details"]["total"], 2, "{body}");
    assert_eq!(errors[0]["row"], 2801);
    assert!(
        errors[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("twice") && r.contains("before row 2501")),
        "{errors:?}"
    );
    assert_eq!(errors[1]["row"], rows.len());
    assert!(
        errors[1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("first on row 2651")),
        "{errors:?}"
    );
    assert!(
        app.store
            .statistics_values(firms[10], None)
            .await
            .expect("values")
            .iter()
            .all(|v| v.kvartal != 3),
        "nothing of the refused upload was written"
    );
    assert_eq!(
        app.store
            .statistics_uploads(None)
            .await
            .expect("uploads")
            .len(),
        2
    );
}

on_both_backends!(
    an_upload_that_changes_nothing_makes_no_vintage,
    an_idempotency_key_reused_for_other_content_is_refused,
    a_read_during_an_upload_is_answered_and_audited_at_once,
    metadata_are_versioned_like_the_statistics,
    one_bad_metadata_row_refuses_the_upload,
    known_and_new_quarters_and_duplicates_out_of_order,
    what_is_uploaded_reads_back_exactly,
    the_same_quarter_twice_is_unchanged_and_a_revision_keeps_the_old_vintage,
    one_bad_row_refuses_the_upload_naming_row_and_field,
    an_idempotency_key_applies_a_retried_upload_once,
    both_nav_formats_give_the_same_register,
    ingest_on_the_command_line_and_a_killed_upload_leaves_nothing,
    enrollment_uses_nav_statistics_for_the_baseline
);

/// Starts the service with fault injection pausing every write transaction for `pause_ms`, sends
/// `body` as a direktorat statistics upload, and returns once the upload is paused before its
/// commit (holding the database's writer), with the request still in flight and the uploader's
/// token.
async fn upload_paused_before_commit(
    db: &TestDb,
    body: String,
    pause_ms: &str,
) -> (
    ServerProcess,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    TestToken,
) {
    let direktorat = {
        let store = db.store().await;
        let token = make_token(
            store.as_ref(),
            "Direktoratet",
            ia_rct::domain::Role::Direktorat,
            None,
        )
        .await;
        store.close().await;
        token
    };
    let mut server =
        ServerProcess::start(&db.url, &[("IA_RCT_FAULT_PAUSE_IN_WRITE_MS", pause_ms)]).await;
    let url = format!("{}/v1/statistics", server.base);
    let secret = direktorat.secret.clone();
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(secret)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    });
    server
        .wait_for_log("fault injection: pausing inside a write transaction")
        .await;
    (server, request, direktorat)
}
