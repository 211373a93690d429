//! Protocol deviations: a fylke's take-up record for a control firm that the design forbids is
//! accepted, flagged in the response, audited, listed for the directorate and counted per arm and
//! fylke; and a survey measure outside the protocol is refused.

use ia_rct::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{
    Backend, TestApp, assert_envelope, firms_of, make_token, post_csv, test_protocol, test_register,
};
use crate::on_both_backends;

/// A randomized trial made from `protocol` (registered, enrolled with `firms` firms, drawn).
async fn randomized_trial(app: &TestApp, protocol: Value, firms: usize) {
    let id = protocol["id"].as_str().expect("id").to_owned();
    app.direktorat_call(Method::POST, "/v1/trials", Some(protocol), 201)
        .await;
    for to in ["registered", "enrolling"] {
        app.direktorat_call(
            Method::POST,
            &format!("/v1/trials/{id}/transitions"),
            Some(json!({ "to": to })),
            200,
        )
        .await;
    }
    app.enroll_csv(&id, &test_register(firms, 11), 201).await;
    app.randomize(&id).await;
}

/// The first firm in the list of the control arm, and the first of another arm.
fn control_and_treated(firms: &[(String, String)]) -> (String, String, String) {
    let control = firms
        .iter()
        .find(|(_, arm)| arm == "kontroll")
        .expect("a control firm in the fylke")
        .0
        .clone();
    let (treated, arm) = firms
        .iter()
        .find(|(_, arm)| arm != "kontroll")
        .expect("a treated firm in the fylke")
        .clone();
    (control, treated, arm)
}

/// The deviation cells of a response section, as (arm, fylke, kind, deviations, firms).
fn cells(section: &Value) -> Vec<(String, String, String, i64, i64)> {
    section
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {section}"))
        .iter()
        .map(|c| {
            (
                c["arm"].as_str().expect("arm").to_owned(),
                c["fylke"].as_str().expect("fylke").to_owned(),
                c["kind"].as_str().expect("kind").to_owned(),
                c["deviations"].as_i64().expect("deviations"),
                c["firms"].as_i64().expect("firms"),
            )
        })
        .collect()
}

fn cell(
    arm: &str,
    fylke: &str,
    kind: &str,
    n: i64,
    firms: i64,
) -> (String, String, String, i64, i64) {
    (arm.into(), fylke.into(), kind.into(), n, firms)
}

async fn a_design_a_control_firm_contacted_is_a_recorded_deviation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("dev-a", "randomized", 400).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let (control, treated, arm) = control_and_treated(&firms_of(&app, "dev-a", "46").await);

    // Row 1 contacts a control firm (a deviation), row 2 a treated firm (none).
    let csv = format!(
        "orgnr,status,dato,merknad\n\
         {control},KONTAKTET,2025-02-03,virksomheten ringte selv\n\
         {treated},KONTAKTET,2025-02-03,\n"
    );
    let path = "/v1/trials/dev-a/takeup";
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rows"], 2);
    let flagged = body["protocol_deviations"].as_array().expect("list");
    assert_eq!(flagged.len(), 1, "{body}");
    assert_eq!(flagged[0]["row"], 1);
    assert_eq!(flagged[0]["orgnr"], control.as_str());
    assert_eq!(flagged[0]["arm"], "kontroll");
    assert_eq!(flagged[0]["kind"], "control_contacted");
    let warning = body["warning"].as_str().expect("warning");
    assert!(
        warning.contains("protocol deviation") && warning.contains("row(s) 1"),
        "{warning}"
    );
    let first_id = flagged[0]["id"].as_i64().expect("id");

    // The write's audit row names the deviation.
    let audit = app.last_audit().await;
    assert_eq!((audit.method.as_str(), audit.status), ("POST", 201));
    assert!(
        audit.object_ids.contains(&format!("deviation:{first_id}")),
        "{:?}",
        audit.object_ids
    );
    let detail = audit.detail.expect("detail");
    assert!(
        detail.contains("control_contacted") && detail.contains(&control),
        "{detail}"
    );

    // The same control firm starts a samarbeid: a second deviation, of the other kind. A treated
    // firm's help is none.
    let csv = format!(
        "orgnr,status,dato,timer\n{control},AKTIV,2025-03-03,2\n{treated},AKTIV,2025-03-03,4\n"
    );
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 201, "{body}");
    let flagged = body["protocol_deviations"].as_array().expect("list");
    assert_eq!(flagged.len(), 1, "{body}");
    assert_eq!(
        (flagged[0]["row"].as_i64(), flagged[0]["kind"].as_str()),
        (Some(1), Some("control_assisted"))
    );
    let second_id = flagged[0]["id"].as_i64().expect("id");

    // The directorate lists both, with the take-up records they came from; the read is audited.
    let list = app
        .direktorat_call(Method::GET, "/v1/trials/dev-a/deviations", None, 200)
        .await;
    let deviations = list["deviations"].as_array().expect("deviations");
    assert_eq!(deviations.len(), 2, "{list}");
    let d = &deviations[0];
    assert_eq!(d["id"].as_i64(), Some(first_id));
    assert_eq!(d["orgnr"], control.as_str());
    assert_eq!(
        (d["wave"].as_i64(), d["arm"].as_str()),
        (Some(1), Some("kontroll"))
    );
    assert_eq!(d["fylke"], "46");
    assert_eq!(d["kind"], "control_contacted");
    assert_eq!(d["recorded_by"], "NAV Vestland");
    assert!(d["recorded_at"].is_string(), "{d}");
    assert_eq!(d["takeup"]["status"], "KONTAKTET");
    assert_eq!(d["takeup"]["dato"], "2025-02-03");
    assert_eq!(d["takeup"]["row"], 1);
    assert_eq!(d["takeup"]["merknad"], "virksomheten ringte selv");
    assert_eq!(deviations[1]["id"].as_i64(), Some(second_id));
    assert_eq!(deviations[1]["kind"], "control_assisted");
    assert_eq!(deviations[1]["takeup"]["status"], "AKTIV");
    assert_eq!(deviations[1]["takeup"]["timer"], 2.0);
    let read = app.last_audit().await;
    assert_eq!(read.route, "/v1/trials/{id}/deviations");
    for id in [
        format!("orgnr:{control}"),
        format!("deviation:{first_id}"),
        format!("deviation:{second_id}"),
    ] {
        assert!(read.object_ids.contains(&id), "{id}: {:?}", read.object_ids);
    }
    // Only the directorate reads them.
    let response = app
        .client
        .get(app.url("/v1/trials/dev-a/deviations"))
        .bearer_auth(&vestland.secret)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 403);

    // Counted per arm, fylke and kind in the outcomes summary and the CONSORT counts; the treated
    // arm has none.
    let expected = vec![
        cell("kontroll", "46", "control_assisted", 1, 1),
        cell("kontroll", "46", "control_contacted", 1, 1),
    ];
    let summary = app
        .direktorat_call(Method::GET, "/v1/trials/dev-a/outcomes/summary", None, 200)
        .await;
    assert_eq!(
        cells(&summary["protocol_deviations"]),
        expected,
        "{summary}"
    );
    let balance = app
        .direktorat_call(Method::GET, "/v1/trials/dev-a/balance", None, 200)
        .await;
    assert_eq!(
        cells(&balance["consort"]["protocol_deviations"]),
        expected,
        "{}",
        balance["consort"]
    );
    assert!(expected.iter().all(|c| c.0 != arm));

    // Deviations are never changed or removed, whoever asks the database.
    let tampering = [
        "UPDATE protocol_deviations SET kind = 'control_assisted'",
        "UPDATE protocol_deviations SET arm = 'ledere'",
        "DELETE FROM protocol_deviations",
    ];
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url)
                .await
                .expect("connect");
            for statement in tampering {
                let error = sqlx::query(statement)
                    .execute(&mut conn)
                    .await
                    .expect_err(statement);
                assert!(
                    error.to_string().contains("immutable"),
                    "{statement}: {error}"
                );
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url)
                .await
                .expect("connect");
            for statement in tampering.iter().chain(&["TRUNCATE protocol_deviations"]) {
                let error = sqlx::query(statement)
                    .execute(&mut conn)
                    .await
                    .expect_err(statement);
                assert!(
                    error.to_string().contains("immutable"),
                    "{statement}: {error}"
                );
            }
        }
    }
    let list = app
        .direktorat_call(Method::GET, "/v1/trials/dev-a/deviations", None, 200)
        .await;
    assert_eq!(list["deviations"].as_array().map(Vec::len), Some(2));
}

async fn in_design_b_only_help_to_a_control_firm_is_a_deviation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut protocol = test_protocol("dev-b");
    protocol["design"] = Value::from("B");
    protocol["eligibility"]["require_villig"] = Value::from(true);
    // Follow-up 2025K1 to 2025K4: the restriction on control firms ends on 2025-12-31.
    protocol["follow_up"]["post_quarters"] = Value::from(4);
    randomized_trial(&app, protocol, 600).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let own = firms_of(&app, "dev-b", "46").await;
    let (control, treated, _) = control_and_treated(&own);
    let later_control = own
        .iter()
        .filter(|(_, arm)| arm == "kontroll")
        .nth(1)
        .expect("a second control firm")
        .0
        .clone();
    let path = "/v1/trials/dev-b/takeup";

    // Contact with a control firm of design B is expected (it is told it waits): none.
    let csv = format!(
        "orgnr,status,dato\n{control},KONTAKTET,2025-02-03\n{treated},KONTAKTET,2025-02-03\n\
         {treated},AKTIV,2025-02-10\n"
    );
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["protocol_deviations"], json!([]), "{body}");
    assert!(body["warning"].is_null(), "{body}");

    // Starting help for it before the follow-up ends is one.
    let csv = format!("orgnr,status,dato\n{control},AKTIV,2025-03-03\n");
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 201, "{body}");
    let flagged = body["protocol_deviations"].as_array().expect("list");
    assert_eq!(flagged.len(), 1, "{body}");
    assert_eq!(flagged[0]["kind"], "control_assisted");
    let list = app
        .direktorat_call(Method::GET, "/v1/trials/dev-b/deviations", None, 200)
        .await;
    let deviations = list["deviations"].as_array().expect("deviations");
    assert_eq!(deviations.len(), 1, "{list}");
    assert_eq!(deviations[0]["takeup"]["status"], "AKTIV");
    let summary = app
        .direktorat_call(Method::GET, "/v1/trials/dev-b/outcomes/summary", None, 200)
        .await;
    assert_eq!(
        cells(&summary["protocol_deviations"]),
        vec![cell("kontroll", "46", "control_assisted", 1, 1)]
    );

    // Once the follow-up has ended, help to a control firm is what its waiting was for.
    let csv = format!(
        "orgnr,status,dato\n{later_control},KONTAKTET,2025-12-20\n{later_control},AKTIV,2026-01-05\n"
    );
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["protocol_deviations"], json!([]), "{body}");
    let list = app
        .direktorat_call(Method::GET, "/v1/trials/dev-b/deviations", None, 200)
        .await;
    assert_eq!(
        list["deviations"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
}

async fn a_survey_measure_outside_the_protocol_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("dev-survey", "randomized", 400).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let own = firms_of(&app, "dev-survey", "46").await;
    let firm = &own[0].0;
    let path = "/v1/trials/dev-survey/surveys";

    // Row 2 names a measure the protocol does not declare: 422 naming row 2 and `maal`, and
    // nothing of the upload (row 1 is declared) is written.
    let csv = format!(
        "orgnr,bolge,maal,verdi,antall_svar\n{firm},1,arbeidsmiljo_indeks,3.8,14\n{firm},1,trivsel,4.1,14\n"
    );
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_envelope(
        reqwest::StatusCode::from_u16(status).expect("status"),
        &body,
        422,
        "invalid",
    );
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["row"], 2);
    assert_eq!(errors[0]["field"], "maal");
    assert_eq!(errors[0]["value"], "trivsel");
    assert!(
        errors[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("arbeidsmiljo_indeks")),
        "{body}"
    );
    assert!(
        app.store
            .survey_results("dev-survey", None)
            .await
            .expect("results")
            .is_empty()
    );

    // The declared measure alone is recorded.
    let csv = format!("orgnr,bolge,maal,verdi,antall_svar\n{firm},1,arbeidsmiljo_indeks,3.8,14\n");
    let (status, body) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 201, "{body}");
    let stored = app
        .store
        .survey_results("dev-survey", None)
        .await
        .expect("results");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].maal, "arbeidsmiljo_indeks");
}

on_both_backends!(
    a_design_a_control_firm_contacted_is_a_recorded_deviation,
    in_design_b_only_help_to_a_control_firm_is_a_deviation,
    a_survey_measure_outside_the_protocol_is_refused
);
