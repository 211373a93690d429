//! Output people read (issue 11): JSON writes no `-0.0`, every estimate names its vintage (an
//! integer, as everywhere), its event time and whether it is weighted, take-up hours are `timer`
//! everywhere, and a query string the service cannot read gets a 422 naming the parameter and
//! what it expects.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, assert_envelope};
use crate::on_both_backends;

/// GETs `path` as the directorate: the status, the body as sent, and the body parsed.
async fn get_text(app: &TestApp, path: &str) -> (u16, String, Value) {
    let response = app
        .as_direktorat(Method::GET, path)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, text, body)
}

/// Whether `json` has the number `-0.0` (not `-0.01`, which is a number like any other).
fn has_negative_zero(json: &str) -> bool {
    json.match_indices("-0.0").any(|(at, _)| {
        !json[at + 4..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Statistics for every randomized firm of `id`, 2023K1 to 2027K4 (the test protocol's window:
/// randomized 2025K1, 8 quarters before, 12 after).
async fn upload_statistics(app: &TestApp, id: &str) {
    let assigned = app
        .store
        .assignments(id, None, None, 10_000)
        .await
        .expect("assignments");
    let first: ia_rct::domain::Quarter = "2023K1".parse().expect("quarter");
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for (i, a) in assigned.iter().enumerate() {
        for t in 0..20 {
            let q = first.plus(t).expect("quarter");
            let mulige = 100.0 + (i % 13) as f64 * 11.0;
            let rate = 6.0 + (i % 5) as f64 * 0.4 + ((i * 7 + t as usize * 3) % 11) as f64 * 0.2;
            csv.push_str(&format!(
                "{},{},{},{},{mulige},{}\n",
                a.orgnr,
                q.year(),
                q.quarter(),
                mulige * rate / 100.0,
                10 + i % 5
            ));
        }
    }
    app.statistics_csv(csv, 201).await;
}

/// Issue 11: no response writes `-0.0` (an arm without take-up had `"timer": -0.0`, an empty
/// sum); hours are `timer`; every estimate carries the integer `vintage` of the response, an
/// integer `event_time` in the event study, and `(weighted)` in every weighted design (the
/// per-stratum HC2 of the unclustered weighted difference in means is checked in
/// `src/estimate/run.rs`; this trial is clustered).
async fn responses_write_zero_and_name_things_one_way(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("out", "randomized", 400).await;

    // No take-up yet: every arm's hours are zero, written as 0.0.
    let (status, text, summary) = get_text(&app, "/v1/trials/out/outcomes/summary").await;
    assert_eq!(status, 200, "{text}");
    assert!(!has_negative_zero(&text), "negative zero in {text}");
    let delivery = summary["delivery"].as_array().expect("delivery");
    assert!(!delivery.is_empty(), "{summary}");
    for row in delivery {
        assert!(row.get("hours").is_none(), "{row}");
        let timer = row["timer"]
            .as_f64()
            .expect("timer shown to the directorate");
        assert_eq!(timer.to_bits(), 0.0f64.to_bits(), "{row}");
    }
    assert!(text.contains("\"timer\":0.0"), "{text}");

    upload_statistics(&app, "out").await;
    let (status, text, body) = get_text(&app, "/v1/trials/out/estimates?weights=both").await;
    assert_eq!(status, 200, "{text}");
    assert!(!has_negative_zero(&text), "negative zero in the estimates");
    assert_eq!(body["vintage"], 1, "{}", body["vintage"]);
    let estimates = body["estimates"].as_array().expect("estimates");
    let mut event_times = Vec::new();
    let mut weighted = std::collections::BTreeSet::new();
    for e in estimates {
        assert!(e["vintage"].is_i64(), "{e}");
        assert_eq!(e["vintage"], body["vintage"]);
        assert!(e.get("data_vintage").is_none(), "{e}");
        let term = e["term"].as_str().expect("term");
        if e["estimator"] == "event_study" {
            let time = e["event_time"].as_i64().expect("integer event_time");
            assert_eq!(term, format!("e={time}"), "{e}");
            if e["arm"] == "bred_prosess" && e["weights"] == "firm" && e["se_type"] == "CR1" {
                event_times.push(time);
            }
        } else {
            assert!(e["event_time"].is_null(), "{e}");
        }
        let design = e["design"].as_str().expect("design");
        assert_eq!(
            design.ends_with(" (weighted)"),
            e["weights"] == "dagsverk",
            "{e}"
        );
        if e["weights"] == "dagsverk" {
            weighted.insert(e["estimator"].as_str().expect("estimator").to_owned());
        }
    }
    // The window: 8 quarters before (reference e = -1 left out) and 12 after.
    let want: Vec<i64> = (-8..12).filter(|e| *e != -1).collect();
    assert_eq!(event_times, want);
    assert_eq!(
        weighted.into_iter().collect::<Vec<_>>(),
        [
            "did_twfe",
            "event_study",
            "itt_ancova",
            "itt_dim",
            "itt_lin"
        ]
    );
}

/// Issue 11: a query string the service cannot read is a 422 in the envelope naming the
/// parameter, the value and what is expected, never axum's "Failed to deserialize query string".
async fn query_errors_name_the_parameter_and_what_it_expects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("q", "draft", 0).await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "/v1/audit?from=2026-12-01",
            "from",
            &[
                "`from`",
                "\"2026-12-01\"",
                "RFC 3339",
                "2026-12-01T00:00:00Z",
            ],
        ),
        (
            "/v1/audit?result=maybe",
            "result",
            &["`result`", "\"maybe\"", "permitted", "denied", "failed"],
        ),
        (
            "/v1/audit?limit=many",
            "limit",
            &["`limit`", "\"many\"", "a whole number", "1-1000"],
        ),
        (
            "/v1/audit?limt=5",
            "limt",
            &["unknown query parameter `limt`", "before", "limit"],
        ),
        (
            "/v1/statistics/metadata",
            "orgnr",
            &["`orgnr` is missing", "9 digits"],
        ),
        (
            "/v1/statistics/metadata?orgnr=974760673&vintage=latest",
            "vintage",
            &["`vintage`", "\"latest\"", "a whole number"],
        ),
        (
            "/v1/trials/q/estimates?weights=person",
            "weights",
            &["`weights`", "\"person\"", "firm, dagsverk or both"],
        ),
        (
            "/v1/trials/q/estimates?estimator=itt_dim,ols",
            "estimator",
            &["`estimator`", "\"ols\"", "itt_lin"],
        ),
        (
            "/v1/trials/q/estimates?cr2=maybe",
            "cr2",
            &["`cr2`", "\"maybe\"", "true or false"],
        ),
    ];
    assert!(has_negative_zero("[-0.0]") && has_negative_zero("{\"a\":-0.0}"));
    assert!(!has_negative_zero("[-0.01,0.0,-0.05]"));
    for (path, field, needles) in cases {
        let (status, text, body) = get_text(&app, path).await;
        assert_envelope(
            reqwest::StatusCode::from_u16(status).expect("status"),
            &body,
            422,
            "invalid",
        );
        let message = body["error"]["message"].as_str().expect("message");
        assert!(
            !text.contains("Failed to deserialize"),
            "{path}: axum's rejection: {text}"
        );
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{path}: {needle:?} not in {message:?}"
            );
        }
        let details = &body["error"]["details"];
        assert_eq!(details["in"], "query", "{path}: {body}");
        assert_eq!(details["field"], *field, "{path}: {body}");
        assert!(details.get("expected").is_some(), "{path}: {body}");
    }
    // A well-formed timestamp is read.
    let (status, text, _) = get_text(&app, "/v1/audit?from=2026-12-01T00:00:00Z&limit=5").await;
    assert_eq!(status, 200, "{text}");
}

on_both_backends!(
    responses_write_zero_and_name_things_one_way,
    query_errors_name_the_parameter_and_what_it_expects
);
