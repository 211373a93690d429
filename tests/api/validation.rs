//! Every value the service accepts has a range or a length limit, checked in the parser: a value
//! outside it is a 422 that names the row and the field, the same on both backends, and nothing is
//! written. Rows whose shape is wrong (too few or too many CSV fields, JSON cut off) name the field
//! where they go wrong.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_envelope, test_register};
use crate::on_both_backends;

/// Posts `body` with `content_type` as the direktorat; the status and the JSON body.
async fn post(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .as_direktorat(Method::POST, path)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text })),
    )
}

/// Asserts a 422 whose first row error is at `(row, field)` and whose reason contains `needle`.
#[track_caller]
fn assert_row_error(status: u16, body: &Value, row: u64, field: &str, needle: &str) {
    assert_envelope(
        reqwest::StatusCode::from_u16(status).expect("status"),
        body,
        422,
        "invalid",
    );
    let error = &body["error"]["details"]["errors"][0];
    assert_eq!(error["row"], row, "row in {body}");
    assert_eq!(error["field"], field, "field in {body}");
    assert!(
        error["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains(needle)),
        "`{needle}` in {body}"
    );
}

/// The first few assigned firms of a randomized trial.
async fn assigned(app: &TestApp, id: &str) -> Vec<String> {
    app.store
        .assignments(id, None, None, 10)
        .await
        .expect("assignments")
        .into_iter()
        .map(|a| a.orgnr.to_string())
        .collect()
}

async fn take_up_values_out_of_range_are_refused_and_nothing_is_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("val", "randomized", 400).await;
    let firm = assigned(&app, "val").await.remove(0);
    let path = "/v1/trials/val/takeup";
    let ok = format!("{firm},KONTAKTET,2025-01-06");

    // Each case: the second row is bad; the first is fine but is not written either.
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("orgnr,status,dato\n{ok}\n{firm},AKTIV,0000-01-01\n"),
            "dato",
            "1990-01-01",
        ),
        (
            format!("orgnr,status,dato\n{ok}\n{firm},AKTIV,2101-01-01\n"),
            "dato",
            "2100-12-31",
        ),
        (
            format!("orgnr,status,dato,timer\n{ok},\n{firm},AKTIV,2025-02-03,1e300\n"),
            "timer",
            "at most 10000",
        ),
        (
            format!("orgnr,status,dato,merknad\n{ok},\n{firm},AKTIV,2025-02-03,ok\u{202E}txet\n"),
            "merknad",
            "U+202E",
        ),
        (
            format!(
                "orgnr,status,dato,arbeidsform_levert\n{ok},\n{firm},AKTIV,2025-02-03,{}\n",
                "b".repeat(201)
            ),
            "arbeidsform_levert",
            "too long",
        ),
        // A truncated row names its first missing column.
        (
            format!("orgnr,status,dato,timer\n{ok},\n{firm},AKTIV\n"),
            "dato",
            "has 2 fields but the header has 4",
        ),
        // A row with more fields than the header names the header's last column.
        (
            format!("orgnr,status,dato,timer\n{ok},\n{firm},AKTIV,2025-02-03,1,5\n"),
            "timer",
            "1 more than the header",
        ),
    ];
    for (csv, field, needle) in cases {
        let (status, body) = post(&app, path, "text/csv", csv.into_bytes()).await;
        assert_row_error(status, &body, 2, field, needle);
    }

    // JSON: a number out of range, and a file cut off inside a value, each at its element and key.
    let json = format!(
        r#"[{{"orgnr": "{firm}", "status": "KONTAKTET", "dato": "2025-01-06"}},
            {{"orgnr": "{firm}", "status": "AKTIV", "dato": "2025-02-03", "timer": 1e300}}]"#
    );
    let (status, body) = post(&app, path, "application/json", json.into_bytes()).await;
    assert_row_error(status, &body, 2, "timer", "at most 10000");
    let json = format!(
        r#"[{{"orgnr": "{firm}", "status": "KONTAKTET", "dato": "2025-01-06"}},
            {{"orgnr": "{firm}", "status": "AKTIV", "dato": "2025-02"#
    );
    let (status, body) = post(&app, path, "application/json", json.into_bytes()).await;
    assert_row_error(status, &body, 2, "dato", "not valid JSON");

    let events = app.store.takeup_events("val", None).await.expect("events");
    assert!(events.is_empty(), "nothing written: {events:?}");

    // The same rows within range are accepted (the limits are not off by one).
    let csv = format!(
        "orgnr,status,dato,timer\n{ok},\n{firm},AKTIV,2025-02-03,10000\n{firm},FULLFØRT,2025-03-03,0\n"
    );
    let (status, body) = post(&app, path, "text/csv", csv.into_bytes()).await;
    assert_eq!(status, 201, "{body}");
}

async fn survey_values_out_of_range_are_refused_and_nothing_is_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("val", "randomized", 400).await;
    let firms = assigned(&app, "val").await;
    let (a, b) = (&firms[0], &firms[1]);
    let path = "/v1/trials/val/surveys";
    let header = "orgnr,bolge,maal,verdi,antall_svar";
    let ok = format!("{a},1,trivsel,3.8,14");
    let cases: Vec<(String, &str, &str)> = vec![
        // 2^31 does not fit PostgreSQL's INTEGER; far beyond any wave anyway.
        (
            format!("{b},2147483648,trivsel,3.8,14"),
            "bolge",
            "at most 100",
        ),
        (format!("{b},101,trivsel,3.8,14"), "bolge", "at most 100"),
        (
            format!("{b},1,trivsel,3.8,2147483648"),
            "antall_svar",
            "at most",
        ),
        (format!("{b},1,trivsel,1e300,14"), "verdi", "out of range"),
        (format!("{b},1,triv\u{200B}sel,3.8,14"), "maal", "U+200B"),
        (format!("{b},1,trivsel,3.8"), "antall_svar", "has 4 fields"),
    ];
    for (row, field, needle) in cases {
        let csv = format!("{header}\n{ok}\n{row}\n");
        let (status, body) = post(&app, path, "text/csv", csv.into_bytes()).await;
        assert_row_error(status, &body, 2, field, needle);
    }
    let rows = app.store.survey_results("val", None).await.expect("rows");
    assert!(rows.is_empty(), "nothing written: {rows:?}");
}

async fn token_names_with_format_characters_or_too_long_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.store.list_tokens().await.expect("tokens").len();
    for (name, needle) in [
        ("NAV \u{202E}dnalnegA", "U+202E"),
        ("NAV\u{200B}Agder", "U+200B"),
        ("NAV\u{2028}Agder", "U+2028"),
        ("NAV\u{0007}Agder", "U+0007"),
        ("NAV\u{FEFF}Agder", "U+FEFF"),
    ] {
        let (status, body) = post(
            &app,
            "/v1/tokens",
            "application/json",
            serde_json::to_vec(&json!({ "name": name, "role": "forsker" })).expect("json"),
        )
        .await;
        assert_envelope(
            reqwest::StatusCode::from_u16(status).expect("status"),
            &body,
            422,
            "invalid",
        );
        assert_eq!(body["error"]["details"]["field"], "name", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "{body}"
        );
    }
    let long = "å".repeat(201);
    let (status, body) = post(
        &app,
        "/v1/tokens",
        "application/json",
        serde_json::to_vec(&json!({ "name": long, "role": "forsker" })).expect("json"),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "name", "{body}");
    assert_eq!(
        app.store.list_tokens().await.expect("tokens").len(),
        before,
        "no token was created"
    );
    // 200 characters of Norwegian text pass.
    let (status, body) = post(
        &app,
        "/v1/tokens",
        "application/json",
        serde_json::to_vec(&json!({ "name": "å".repeat(200), "role": "forsker" })).expect("json"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A value of the wrong type names its path.
    let (status, body) = post(
        &app,
        "/v1/tokens",
        "application/json",
        br#"{"name": ["NAV"], "role": "forsker"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "name", "{body}");
}

/// The simulated register's rows, each split into its fields.
fn register_rows(n: usize) -> (String, Vec<Vec<String>>) {
    let csv = test_register(n, 11);
    let mut lines = csv.lines();
    let header = lines.next().expect("header").to_owned();
    let rows = lines
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn register_csv(header: &str, rows: &[Vec<String>]) -> String {
    let mut out = format!("{header}\n");
    for row in rows {
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

async fn register_values_out_of_range_are_refused_and_nothing_is_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("val", "enrolling", 0).await;
    let path = "/v1/trials/val/enrollment";
    let (header, rows) = register_rows(3);
    let column = |name: &str| {
        header
            .split(',')
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("{name} in {header}"))
    };
    let (navn, ansatte, tapte) = (
        column("navn"),
        column("antall_ansatte"),
        column("tapte_dagsverk"),
    );

    let with = |index: usize, value: String| {
        let mut rows = rows.clone();
        rows[1][index] = value;
        register_csv(&header, &rows)
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with(navn, "N".repeat(3 * 1024 * 1024)),
            "navn",
            "at most 300",
        ),
        (with(navn, "Firma \u{202E}SA".to_owned()), "navn", "U+202E"),
        // 2^31: PostgreSQL's INTEGER column answered 500 for this before.
        (
            with(ansatte, "2147483648".to_owned()),
            "antall_ansatte",
            "1000000",
        ),
        (
            with(ansatte, "1000001".to_owned()),
            "antall_ansatte",
            "1000000",
        ),
        (
            with(tapte, "1e300".to_owned()),
            "tapte_dagsverk",
            "dagsverk",
        ),
    ];
    for (csv, field, needle) in cases {
        let (status, body) = post(&app, path, "text/csv", csv.into_bytes()).await;
        assert_row_error(status, &body, 2, field, needle);
    }

    // A covariate beyond ±1e9, and a covariate name with a format character.
    let mut covariate_rows = rows.clone();
    for (i, row) in covariate_rows.iter_mut().enumerate() {
        row.push(if i == 1 { "-2e9".into() } else { "12".into() });
    }
    let csv = register_csv(&format!("{header},x_alder"), &covariate_rows);
    let (status, body) = post(&app, path, "text/csv", csv.into_bytes()).await;
    assert_row_error(status, &body, 2, "x_alder", "between");

    // A truncated row names the first missing column; too many fields name the last column.
    let mut short = rows.clone();
    short[1].truncate(ansatte);
    let (status, body) = post(
        &app,
        path,
        "text/csv",
        register_csv(&header, &short).into_bytes(),
    )
    .await;
    assert_row_error(
        status,
        &body,
        2,
        "antall_ansatte",
        "fields but the header has",
    );
    let mut long = rows.clone();
    long[1].push("x".into());
    let last = header.rsplit(',').next().expect("a column");
    let (status, body) = post(
        &app,
        path,
        "text/csv",
        register_csv(&header, &long).into_bytes(),
    )
    .await;
    assert_row_error(status, &body, 2, last, "1 more than the header");

    // JSON cut off inside a value names the element and key.
    let json = format!(
        r#"[{{"orgnr": "{}", "fylke": "46", "naringskode": "88.911", "sektor": 3, "antall_ansatte": 12}},
            {{"orgnr": "{}", "fylke": "46", "naringskode": "88.9"#,
        rows[0][0], rows[1][0]
    );
    let (status, body) = post(&app, path, "application/json", json.into_bytes()).await;
    assert_row_error(status, &body, 2, "naringskode", "not valid JSON");

    let enrolled = app
        .store
        .enrollments("val", None, None)
        .await
        .expect("enrolled");
    assert!(
        enrolled.is_empty(),
        "nothing written: {} firms",
        enrolled.len()
    );

    // The limits themselves are accepted.
    let mut edge = rows.clone();
    edge[1][navn] = "N".repeat(300);
    edge[1][ansatte] = "1000000".into();
    let (status, body) = post(
        &app,
        path,
        "text/csv",
        register_csv(&header, &edge).into_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn statistics_rows_of_the_wrong_shape_name_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let header = "orgnr,arstall,kvartal,taptedv,muligedv,antpers";
    for (row, field, needle) in [
        ("974760673,2024,2,5.5,100.25", "antpers", "has 5 fields"),
        ("974760673,2024,2", "taptedv", "has 3 fields"),
        (
            "974760673,2024,2,5.5,100.25,12,7",
            "antpers",
            "1 more than the header",
        ),
    ] {
        let csv = format!("{header}\n974760673,2024,1,5.5,100.25,12\n{row}\n");
        let (status, body) = post(&app, "/v1/statistics", "text/csv", csv.into_bytes()).await;
        assert_row_error(status, &body, 2, field, needle);
    }
    // virksomhet.json cut off inside a value: the element and the key.
    let json = r#"[{"årstall":2024,"kvartal":1,"orgnr":"974760673","tapteDagsverk":"20.23","muligeDagsverk":"77.8716","antallPersoner":"40"},
                   {"årstall":2024,"kvartal":2,"orgnr":"974760673","tapteDagsverk":"20.2"#;
    let (status, body) = post(
        &app,
        "/v1/statistics",
        "application/json",
        json.as_bytes().to_vec(),
    )
    .await;
    assert_row_error(status, &body, 2, "tapteDagsverk", "truncated");
    // A syntax error inside a nested value names the path into it.
    let json = r#"[{"årstall":2024,"kvartal":1,"orgnr":"974760673","tapteDagsverk":"20.23","muligeDagsverk":"77.8716","antallPersoner":"40",
                    "tapteDagsverkPerVarighet":[{"varighet":"A","tapteDagsverk":1},{"varighet":"B","tapteDagsverk":tru}]}]"#;
    let (status, body) = post(
        &app,
        "/v1/statistics",
        "application/json",
        json.as_bytes().to_vec(),
    )
    .await;
    assert_row_error(
        status,
        &body,
        1,
        "tapteDagsverkPerVarighet[1].tapteDagsverk",
        "not valid JSON",
    );
    let uploads = app.store.statistics_uploads(None).await.expect("uploads");
    assert!(uploads.is_empty(), "nothing written: {uploads:?}");
}

on_both_backends!(
    take_up_values_out_of_range_are_refused_and_nothing_is_written,
    survey_values_out_of_range_are_refused_and_nothing_is_written,
    token_names_with_format_characters_or_too_long_are_refused,
    register_values_out_of_range_are_refused_and_nothing_is_written,
    statistics_rows_of_the_wrong_shape_name_the_field
);
