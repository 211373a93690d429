//! What was delivered: take-up reported by the fylker, surveys, and outcomes by arm.

use ia_rct::domain::Role;
use ia_rct::storage::AuditResult;
use reqwest::Method;

use crate::helpers::{Backend, TestApp, assert_envelope, firms_of, get_as, make_token, post_csv};
use crate::on_both_backends;

async fn a_fylke_reports_take_up_only_for_its_own_firms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("delivery", "randomized", 400).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let own = firms_of(&app, "delivery", "46").await;
    let other = firms_of(&app, "delivery", "03").await;
    assert!(!own.is_empty() && !other.is_empty());

    // Another fylke's firm: 403, nothing written, and the refusal is in the audit log.
    let csv = format!(
        "orgnr,status,dato\n{},KONTAKTET,2025-02-03\n{},KONTAKTET,2025-02-03\n",
        own[0].0, other[0].0
    );
    let (status, body) = post_csv(&app, &vestland.secret, "/v1/trials/delivery/takeup", csv).await;
    assert_envelope(
        reqwest::StatusCode::from_u16(status).expect("status"),
        &body,
        403,
        "forbidden",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("row(s) 2"),
        "{body}"
    );
    let row = app.last_audit().await;
    assert_eq!((row.result, row.status), (AuditResult::Denied, 403));
    assert_eq!(row.actor_name.as_deref(), Some("NAV Vestland"));
    assert!(
        app.store
            .takeup_events("delivery", None)
            .await
            .expect("events")
            .is_empty()
    );

    // Its own firms: contacted, then active with hours, then completed.
    let firm = &own[0].0;
    let csv = format!(
        "orgnr,status,dato,arbeidsform_levert,timer\n\
         {firm},KONTAKTET,2025-02-03,,\n\
         {firm},AKTIV,2025-02-20,bred_prosess,6.5\n"
    );
    let (status, body) = post_csv(&app, &vestland.secret, "/v1/trials/delivery/takeup", csv).await;
    assert_eq!(status, 201, "{body}");
    // FULLFØRT straight after KONTAKTET is refused; after AKTIV it is fine.
    if let Some((second, _)) = own.get(1) {
        let csv = format!(
            "orgnr,status,dato\n{second},KONTAKTET,2025-03-01\n{second},FULLFØRT,2025-03-02\n"
        );
        let (status, body) =
            post_csv(&app, &vestland.secret, "/v1/trials/delivery/takeup", csv).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"]["errors"][0]["field"], "status");
    }
    let csv = format!("orgnr,status,dato,timer\n{firm},FULLFØRT,2025-06-30,3\n");
    let (status, body) = post_csv(&app, &vestland.secret, "/v1/trials/delivery/takeup", csv).await;
    assert_eq!(status, 201, "{body}");

    let delivery = get_as(&app, &vestland.secret, "/v1/trials/delivery/takeup")
        .await
        .1;
    let firms = delivery["firms"].as_array().expect("firms");
    assert_eq!(firms.len(), 1);
    assert_eq!(firms[0]["compliance"]["received"], true);
    assert_eq!(firms[0]["compliance"]["received_date"], "2025-02-20");
    assert_eq!(firms[0]["compliance"]["timer"], 9.5);

    // The directorate sees adviser hours per arm; a researcher sees them only above 5 firms.
    let summary = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/delivery/outcomes/summary",
            None,
            200,
        )
        .await;
    let arm = &own[0].1;
    let row = summary["delivery"]
        .as_array()
        .expect("arms")
        .iter()
        .find(|d| d["arm"] == arm.as_str())
        .expect("arm")
        .clone();
    assert_eq!(row["received"], 1);
    assert_eq!(row["timer"], 9.5);
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let masked = get_as(
        &app,
        &forsker.secret,
        "/v1/trials/delivery/outcomes/summary",
    )
    .await
    .1;
    let row = masked["delivery"]
        .as_array()
        .expect("arms")
        .iter()
        .find(|d| d["arm"] == arm.as_str())
        .expect("arm")
        .clone();
    assert_eq!(row["received"], "<5", "one firm is masked: {row}");
    assert!(
        row["timer"].is_null() && row["masked"] == true,
        "the hours of one firm are hidden and marked: {row}"
    );

    // Surveys: recorded once, never replaced; a cell of fewer than 3 respondents never counts.
    let mut csv =
        format!("orgnr,bolge,maal,verdi,antall_svar\n{firm},1,arbeidsmiljo_indeks,3.8,14\n");
    if let Some((second, _)) = own.get(1) {
        csv.push_str(&format!("{second},1,arbeidsmiljo_indeks,,2\n"));
    }
    let path = "/v1/trials/delivery/surveys";
    let (status, body) = post_csv(&app, &vestland.secret, path, csv.clone()).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post_csv(&app, &vestland.secret, path, csv).await;
    assert_eq!(status, 409);
    let summary = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/delivery/outcomes/summary",
            None,
            200,
        )
        .await;
    let cell = summary["surveys"]
        .as_array()
        .expect("surveys")
        .iter()
        .find(|s| s["arm"] == arm.as_str())
        .expect("cell")
        .clone();
    assert_eq!(
        (
            cell["firms"].as_i64(),
            cell["respondents"].as_i64(),
            cell["mean"].as_f64()
        ),
        (Some(1), Some(14), Some(3.8))
    );
}

/// Sick leave by arm and quarter comes from the statistics register, masked for researchers.
async fn the_outcome_summary_is_a_ratio_of_sums_by_arm_and_quarter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("outcomes", "randomized", 300).await;
    let assigned = app
        .store
        .assignments("outcomes", None, None, 10_000)
        .await
        .expect("assignments");
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for (i, a) in assigned.iter().enumerate() {
        csv.push_str(&format!(
            "{},2025,2,{},100,{}\n",
            a.orgnr,
            5 + i % 3,
            3 + i % 4
        ));
    }
    let upload = app.statistics_csv(csv, 201).await;
    let summary = app
        .direktorat_call(
            Method::GET,
            "/v1/trials/outcomes/outcomes/summary",
            None,
            200,
        )
        .await;
    assert_eq!(
        summary["vintage"], upload["receipt"]["vintage"],
        "the summary names the vintage it used (the latest)"
    );
    let quarters = summary["quarters"].as_array().expect("quarters");
    assert_eq!(quarters.len(), 4, "one cell per arm for 2025K2");
    for cell in quarters {
        let arm = cell["arm"].as_str().expect("arm");
        let (mut tapte, mut mulige, mut firms) = (0.0, 0.0, 0);
        for (i, a) in assigned.iter().enumerate() {
            if a.arm == arm {
                tapte += (5 + i % 3) as f64;
                mulige += 100.0;
                firms += 1;
            }
        }
        assert_eq!(cell["kvartal"], "2025K2");
        assert_eq!(cell["firms"], firms);
        let rate = cell["sykefravar_prosent"].as_f64().expect("rate");
        assert!(
            (rate - 100.0 * tapte / mulige).abs() < 1e-9,
            "{arm}: {rate}"
        );
    }
}

on_both_backends!(
    a_fylke_reports_take_up_only_for_its_own_firms,
    the_outcome_summary_is_a_ratio_of_sums_by_arm_and_quarter
);
