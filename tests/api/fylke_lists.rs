//! The lists people read: the enrollment list paged with its totals, the fylke's assignment list
//! with firm names and kommune (JSON, CSV and Excel's CSV dialect), and the directorate's view of
//! which fylker have not acknowledged their assignments. Each is scoped to a fylke's own firms and
//! audited with the firms it returns.

use std::collections::{BTreeMap, BTreeSet};

use ia_rct::domain::Role;
use ia_rct::storage::{AuditQuery, AuditResult};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, TestToken, assert_envelope, get_as, make_token, test_register,
};
use crate::on_both_backends;

/// The orgnrs of a JSON list of firms or assignments.
fn orgnrs(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {rows}"))
        .iter()
        .map(|r| r["orgnr"].as_str().expect("orgnr").to_owned())
        .collect()
}

/// Asserts that the newest audit row is `actor`'s permitted read of `route` on trial `id` naming
/// exactly `firms`.
async fn assert_read_audited(app: &TestApp, actor: &str, route: &str, id: &str, firms: &[String]) {
    let row = app.last_audit().await;
    assert_eq!(row.actor_name.as_deref(), Some(actor));
    assert_eq!(row.route, route);
    assert_eq!(row.result, AuditResult::Permitted);
    assert_eq!(row.status, 200);
    assert_eq!(row.trial_id.as_deref(), Some(id));
    let named: Vec<String> = firms.iter().map(|o| format!("orgnr:{o}")).collect();
    assert_eq!(
        row.object_ids, named,
        "the audit row names the firms returned"
    );
}

/// Follows `next` from `first` as `token`, checking every page's totals and audit row; the firms
/// listed, in order.
async fn follow_pages(
    app: &TestApp,
    token: &TestToken,
    id: &str,
    first: &str,
    total: u64,
    excluded_total: u64,
) -> Vec<String> {
    let mut listed = Vec::new();
    let mut path = Some(first.to_owned());
    while let Some(p) = path {
        let before = app.audit_count().await;
        let (status, page) = get_as(app, &token.secret, &p).await;
        assert_eq!(status, 200, "{p}: {page}");
        assert_eq!(page["total"], total, "{p}");
        assert_eq!(page["excluded_total"], excluded_total, "{p}");
        let firms = orgnrs(&page["firms"]);
        assert!(
            !firms.is_empty() || total == 0,
            "{p}: `next` never leads to an empty page"
        );
        assert_eq!(app.audit_count().await, before + 1, "{p}: one audit row");
        assert_read_audited(
            app,
            &token.info.name,
            "/v1/trials/{id}/enrollment",
            id,
            &firms,
        )
        .await;
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(
                    page["next_after"].as_str(),
                    firms.last().map(String::as_str),
                    "{p}"
                );
                path = Some(next.to_owned());
            }
            None => {
                assert!(page["next_after"].is_null(), "{p}: {page}");
                path = None;
            }
        }
        listed.extend(firms);
    }
    listed
}

/// The enrollment upload says how many firms are excluded and where the rest of the list is; the
/// enrollment list is paged, with totals, for the directorate and for a fylke's own firms.
async fn the_enrollment_list_is_paged_and_says_how_many(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("paged", "enrolling", 0).await;
    let accepted = app.enroll_csv("paged", &test_register(900, 5), 201).await;
    let stored = app
        .store
        .enrollments("paged", None, None)
        .await
        .expect("enrollments");
    assert_eq!(stored.len(), 900);
    let excluded: Vec<String> = stored
        .iter()
        .filter(|f| !f.eligible)
        .map(|f| f.orgnr.to_string())
        .collect();
    let eligible: Vec<String> = stored
        .iter()
        .filter(|f| f.eligible)
        .map(|f| f.orgnr.to_string())
        .collect();
    assert!(
        excluded.len() > 100,
        "the fixture excludes more firms than the upload response lists: {}",
        excluded.len()
    );

    // The upload's response: the total, the first 100 by orgnr, and the way to the rest.
    assert_eq!(accepted["excluded_total"], excluded.len());
    let shown = orgnrs(&accepted["excluded"]);
    assert_eq!(
        shown,
        excluded[..100],
        "the first 100 excluded firms by orgnr"
    );
    let upload = accepted["receipt"]["upload_id"]
        .as_i64()
        .expect("upload id");
    let rest = accepted["excluded_next"].as_str().expect("excluded_next");
    assert_eq!(
        rest,
        format!(
            "/v1/trials/paged/enrollment?upload={upload}&eligible=false&after={}&limit=100",
            excluded[99]
        )
    );
    let direktorat = TestToken {
        secret: app.direktorat.secret.clone(),
        info: app.direktorat.info.clone(),
    };
    let mut all_excluded = shown.clone();
    all_excluded.extend(
        follow_pages(
            &app,
            &direktorat,
            "paged",
            rest,
            excluded.len() as u64,
            excluded.len() as u64,
        )
        .await,
    );
    assert_eq!(all_excluded, excluded, "excluded_next reads the rest");

    // The default page is 1000 firms; the whole list fits.
    let (_, whole) = get_as(&app, &app.direktorat.secret, "/v1/trials/paged/enrollment").await;
    assert_eq!(whole["total"], 900);
    assert_eq!(whole["excluded_total"], excluded.len());
    assert_eq!(whole["firms"].as_array().expect("firms").len(), 900);
    assert!(whole["next"].is_null() && whole["next_after"].is_null());

    // The eligible firms in pages of 37.
    let listed = follow_pages(
        &app,
        &direktorat,
        "paged",
        "/v1/trials/paged/enrollment?eligible=true&limit=37",
        eligible.len() as u64,
        excluded.len() as u64,
    )
    .await;
    assert_eq!(listed, eligible);

    // A fylke pages through its own firms only, and its totals count only them.
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let own: Vec<&ia_rct::storage::EnrollmentRecord> =
        stored.iter().filter(|f| f.fylke.as_str() == "46").collect();
    assert!(!own.is_empty() && own.len() < stored.len());
    let own_excluded = own.iter().filter(|f| !f.eligible).count() as u64;
    let listed = follow_pages(
        &app,
        &vestland,
        "paged",
        "/v1/trials/paged/enrollment?limit=25",
        own.len() as u64,
        own_excluded,
    )
    .await;
    let expected: Vec<String> = own.iter().map(|f| f.orgnr.to_string()).collect();
    assert_eq!(listed, expected, "Vestland saw exactly its own firms");
    // A page that ends the list exactly says so.
    let (_, exact) = get_as(
        &app,
        &vestland.secret,
        &format!("/v1/trials/paged/enrollment?limit={}", own.len()),
    )
    .await;
    assert_eq!(orgnrs(&exact["firms"]), expected);
    assert!(
        exact["next"].is_null() && exact["next_after"].is_null(),
        "{}",
        exact["next"]
    );
    let listed = follow_pages(
        &app,
        &vestland,
        "paged",
        &format!("/v1/trials/paged/enrollment?wave=1&upload={upload}&eligible=false&limit=10"),
        own_excluded,
        own_excluded,
    )
    .await;
    let expected: Vec<String> = own
        .iter()
        .filter(|f| !f.eligible)
        .map(|f| f.orgnr.to_string())
        .collect();
    assert_eq!(listed, expected);
    // Another wave or upload has none of them.
    let (_, none) = get_as(&app, &vestland.secret, "/v1/trials/paged/enrollment?wave=2").await;
    assert_eq!(
        (&none["total"], &none["excluded_total"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(none["firms"], json!([]));

    // Bad paging is refused, naming the parameter, and audited.
    for (query, field) in [
        ("limit=0", Some("limit")),
        ("limit=10001", Some("limit")),
        ("wave=0", Some("wave")),
        ("eligible=perhaps", None),
        ("after=123", None),
        ("offset=10", None),
    ] {
        let path = format!("/v1/trials/paged/enrollment?{query}");
        let before = app.audit_count().await;
        let (status, body) = get_as(&app, &vestland.secret, &path).await;
        assert_envelope(
            reqwest::StatusCode::from_u16(status).expect("status"),
            &body,
            422,
            "invalid",
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        match field {
            Some(field) => assert_eq!(body["error"]["details"]["field"], field, "{query}"),
            None => {
                let name = query.split('=').next().unwrap_or_default();
                assert!(message.contains(name), "{query}: {message}");
            }
        }
        assert_eq!(app.audit_count().await, before + 1, "{query} is audited");
        let row = app.last_audit().await;
        assert_eq!(row.status, 422);
        assert!(row.object_ids.is_empty(), "a refused read names no firm");
    }
}

/// `test_register(n, seed)` with a kommunenummer for every firm (`{fylke}01`) and a few names
/// that need quoting or start like a formula; the register and each firm's (navn, kommunenummer).
fn register_with_names(n: usize, seed: u64) -> (String, BTreeMap<String, (String, String)>) {
    let plain = test_register(n, seed);
    let mut reader = csv::Reader::from_reader(plain.as_bytes());
    let header = reader.headers().expect("header").clone();
    let at = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (orgnr_at, navn_at, fylke_at) = (at("orgnr"), at("navn"), at("fylke"));
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut out_header: Vec<&str> = header.iter().collect();
    out_header.insert(fylke_at + 1, "kommunenummer");
    writer.write_record(&out_header).expect("write");
    let mut names = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.expect("record");
        let mut fields: Vec<String> = record.iter().map(str::to_owned).collect();
        let kommune = format!("{}01", fields[fylke_at]);
        fields[navn_at] = match i % 4 {
            0 => format!("Bygg; Anlegg \"{i}\" AS"),
            1 => format!("=HYPERLINK(\"x\";\"{i}\")"),
            2 => format!("Æøå, avd. {i}"),
            _ => fields[navn_at].clone(),
        };
        names.insert(
            fields[orgnr_at].clone(),
            (fields[navn_at].clone(), kommune.clone()),
        );
        fields.insert(fylke_at + 1, kommune);
        writer.write_record(&fields).expect("write");
    }
    let csv = String::from_utf8(writer.into_inner().expect("flush")).expect("utf-8");
    (csv, names)
}

/// GETs `path` as `secret`: the status, the content type and the raw body.
async fn get_bytes(app: &TestApp, secret: &str, path: &str) -> (u16, String, Vec<u8>) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(secret)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.bytes().await.expect("body").to_vec(),
    )
}

const CSV_HEADER: [&str; 12] = [
    "orgnr",
    "arm",
    "stratum",
    "klynge",
    "bolge",
    "sannsynlighet",
    "trukket",
    "arm_navn",
    "kontakt",
    "instruks",
    "navn",
    "kommunenummer",
];

/// The rows of an assignment CSV read with `delimiter`, after checking its header.
fn csv_rows(text: &str, delimiter: u8) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, CSV_HEADER);
    reader
        .records()
        .map(|r| r.expect("record").iter().map(str::to_owned).collect())
        .collect()
}

/// A fylke's assignment list names each firm and its kommune as the register gave them, in JSON,
/// in plain CSV (unchanged: `,`, no BOM, LF) and in Excel's dialect (`;`, BOM, CRLF, decimal
/// comma), with only the fylke's own firms and an audit row naming them.
async fn assignments_name_the_firms_and_speak_excel(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("named-list", "enrolling", 0).await;
    let (register, names) = register_with_names(300, 9);
    app.enroll_csv("named-list", &register, 201).await;
    app.randomize("named-list").await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let route = "/v1/trials/{id}/assignments";

    // The directorate's JSON has every firm's name and kommune.
    let (_, all) = get_as(
        &app,
        &app.direktorat.secret,
        "/v1/trials/named-list/assignments?limit=10000",
    )
    .await;
    let all = all["assignments"].as_array().expect("assignments").clone();
    assert!(!all.is_empty());
    for a in &all {
        let (navn, kommune) = &names[a["orgnr"].as_str().expect("orgnr")];
        assert_eq!(a["navn"], json!(navn), "{a}");
        assert_eq!(a["kommunenummer"], json!(kommune), "{a}");
    }
    let own: BTreeSet<String> = all
        .iter()
        .filter(|a| a["fylke"] == "46")
        .map(|a| a["orgnr"].as_str().expect("orgnr").to_owned())
        .collect();
    assert!(!own.is_empty() && own.len() < all.len());

    // Vestland's JSON: its own firms, named.
    let (_, page) = get_as(
        &app,
        &vestland.secret,
        "/v1/trials/named-list/assignments?limit=10000",
    )
    .await;
    let listed = orgnrs(&page["assignments"]);
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), own);
    for a in page["assignments"].as_array().expect("rows") {
        assert_eq!(a["fylke"], "46");
        assert_eq!(
            a["navn"],
            json!(names[a["orgnr"].as_str().expect("orgnr")].0)
        );
    }
    assert_read_audited(&app, "NAV Vestland", route, "named-list", &listed).await;

    // The default CSV keeps its dialect: `,`, no BOM, LF line ends.
    let (status, content_type, plain) = get_bytes(
        &app,
        &vestland.secret,
        "/v1/trials/named-list/assignments?format=csv&limit=10000",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let plain = String::from_utf8(plain).expect("utf-8");
    assert!(plain.starts_with("orgnr,arm,"), "no BOM: {plain:.40}");
    assert!(!plain.contains('\r'), "LF line ends");
    let plain_rows = csv_rows(&plain, b',');
    let plain_orgnrs: Vec<String> = plain_rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(plain_orgnrs, listed);
    for row in &plain_rows {
        let (navn, kommune) = &names[&row[0]];
        assert_eq!((&row[10], &row[11]), (navn, kommune), "{row:?}");
        assert!(
            row[5].contains('.') || row[5] == "1",
            "decimal point: {row:?}"
        );
    }
    assert_read_audited(&app, "NAV Vestland", route, "named-list", &listed).await;

    // Excel's dialect: BOM, `;`, CRLF, decimal comma, formulas defused; the same firms and values.
    let (status, content_type, excel) = get_bytes(
        &app,
        &vestland.secret,
        "/v1/trials/named-list/assignments?format=csv&dialect=excel&limit=10000",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert!(excel.starts_with(b"\xEF\xBB\xBF"), "a UTF-8 BOM");
    let excel = String::from_utf8(excel[3..].to_vec()).expect("utf-8");
    assert!(excel.starts_with("orgnr;arm;stratum;"), "{excel:.60}");
    assert_eq!(
        excel.matches("\r\n").count(),
        excel.matches('\n').count(),
        "every line ends in CRLF"
    );
    assert!(excel.ends_with("\r\n"));
    let excel_rows = csv_rows(&excel, b';');
    assert_eq!(excel_rows.len(), plain_rows.len());
    let mut defused = 0;
    for (x, p) in excel_rows.iter().zip(&plain_rows) {
        for (i, (xv, pv)) in x.iter().zip(p).enumerate() {
            match CSV_HEADER[i] {
                "sannsynlighet" => assert_eq!(xv, &pv.replace('.', ","), "{x:?}"),
                "navn" if pv.starts_with('=') => {
                    assert_eq!(xv, &format!("'{pv}"), "a formula is defused");
                    defused += 1;
                }
                _ => assert_eq!(xv, pv, "{} of {x:?}", CSV_HEADER[i]),
            }
        }
    }
    assert!(
        defused > 0,
        "the fixture has names that start like a formula"
    );
    assert_read_audited(&app, "NAV Vestland", route, "named-list", &listed).await;

    // The cursor header still comes with a short page.
    let response = app
        .client
        .get(app.url("/v1/trials/named-list/assignments?format=csv&dialect=excel&limit=2"))
        .bearer_auth(&vestland.secret)
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("x-next-after")
            .and_then(|v| v.to_str().ok()),
        Some(listed[1].as_str())
    );

    // A dialect without CSV, or an unknown one, is refused naming `dialect`, and audited.
    for query in [
        "dialect=excel",
        "format=json&dialect=excel",
        "format=csv&dialect=libreoffice",
    ] {
        let path = format!("/v1/trials/named-list/assignments?{query}");
        let before = app.audit_count().await;
        let (status, body) = get_as(&app, &vestland.secret, &path).await;
        assert_envelope(
            reqwest::StatusCode::from_u16(status).expect("status"),
            &body,
            422,
            "invalid",
        );
        assert_eq!(body["error"]["details"]["field"], "dialect", "{query}");
        assert_eq!(app.audit_count().await, before + 1);
        assert!(app.last_audit().await.object_ids.is_empty());
    }
}

/// The directorate sees, per drawn wave, every fylke's firms and acknowledgement and the fylker
/// still waiting; a fylke cannot read it and sees only its own acknowledgements.
async fn the_directorate_sees_which_fylker_still_wait(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("waiting", "enrolling", 0).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let oslo = make_token(app.store.as_ref(), "NAV Oslo", Role::Fylke, Some("03")).await;
    let status_path = "/v1/trials/waiting/acknowledgements/status";

    // Before the draw there is nothing to acknowledge.
    let status = app
        .direktorat_call(Method::GET, status_path, None, 200)
        .await;
    assert_eq!(
        status,
        json!({ "trial_id": "waiting", "waves": [], "waiting_total": 0 })
    );

    app.enroll_csv("waiting", &test_register(400, 11), 201)
        .await;
    let draw = app.randomize("waiting").await;
    let mut per_fylke: BTreeMap<String, usize> = BTreeMap::new();
    for a in app
        .store
        .assignments("waiting", None, None, 10_000)
        .await
        .expect("assignments")
    {
        *per_fylke.entry(a.fylke.as_str().to_owned()).or_default() += 1;
    }
    assert!(per_fylke.contains_key("46") && per_fylke.contains_key("03"));
    let firms_total: usize = per_fylke.values().sum();

    let before = app.audit_count().await;
    let status = app
        .direktorat_call(Method::GET, status_path, None, 200)
        .await;
    assert_eq!(app.audit_count().await, before + 1);
    let row = app.last_audit().await;
    assert_eq!(row.route, "/v1/trials/{id}/acknowledgements/status");
    assert_eq!(row.actor_role, Some(Role::Direktorat));
    assert_eq!(row.result, AuditResult::Permitted);
    assert_eq!(row.trial_id.as_deref(), Some("waiting"));
    assert!(row.object_ids.is_empty(), "counts per fylke name no firm");
    let wave = &status["waves"][0];
    assert_eq!(status["waves"].as_array().map(Vec::len), Some(1));
    assert_eq!(wave["wave"], 1);
    assert_eq!(wave["drawn_at"], draw["draw"]["drawn_at"]);
    let fylker: BTreeMap<String, usize> = wave["fylker"]
        .as_array()
        .expect("fylker")
        .iter()
        .map(|f| {
            assert_eq!(f["acknowledged"], false, "{f}");
            assert!(f["acknowledged_at"].is_null() && f["acknowledged_by"].is_null());
            (
                f["fylke"].as_str().expect("fylke").to_owned(),
                f["firms"].as_u64().expect("firms") as usize,
            )
        })
        .collect();
    assert_eq!(
        fylker, per_fylke,
        "every fylke with firms, with their count"
    );
    let waiting: BTreeMap<String, usize> = wave["waiting"]
        .as_array()
        .expect("waiting")
        .iter()
        .map(|f| {
            (
                f["fylke"].as_str().expect("fylke").to_owned(),
                f["firms"].as_u64().expect("firms") as usize,
            )
        })
        .collect();
    assert_eq!(waiting, per_fylke, "all wait before anyone acknowledges");
    assert_eq!(wave["firms_waiting"], firms_total);
    assert_eq!(status["waiting_total"], per_fylke.len());
    assert_eq!(
        wave["waiting"][0]["fylke_navn"].as_str().map(str::is_empty),
        Some(false)
    );

    // Vestland acknowledges.
    let ack: Value = app
        .client
        .post(app.url("/v1/trials/waiting/acknowledgements"))
        .bearer_auth(&vestland.secret)
        .json(&json!({ "wave": 1 }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(ack["firms"], per_fylke["46"]);
    let status = app
        .direktorat_call(Method::GET, status_path, None, 200)
        .await;
    let wave = &status["waves"][0];
    let find = |list: &Value, code: &str| {
        list.as_array()
            .expect("list")
            .iter()
            .find(|f| f["fylke"] == code)
            .cloned()
    };
    let own = find(&wave["fylker"], "46").expect("Vestland listed");
    assert_eq!(
        own,
        json!({
            "fylke": "46",
            "fylke_navn": "Vestland",
            "firms": per_fylke["46"],
            "acknowledged": true,
            "acknowledged_at": ack["acknowledged_at"],
            "acknowledged_by": "NAV Vestland",
        })
    );
    assert_eq!(
        find(&wave["fylker"], "03").expect("Oslo")["acknowledged"],
        false
    );
    assert!(
        find(&wave["waiting"], "46").is_none(),
        "Vestland no longer waits"
    );
    assert_eq!(
        find(&wave["waiting"], "03").expect("Oslo waits")["firms"],
        per_fylke["03"]
    );
    assert_eq!(wave["firms_waiting"], firms_total - per_fylke["46"]);
    assert_eq!(status["waiting_total"], per_fylke.len() - 1);

    // A fylke may not read the overview (403, audited as denied), and sees only its own
    // acknowledgements: Oslo not Vestland's.
    for token in [&vestland, &oslo] {
        let before = app.audit_count().await;
        let (status, body) = get_as(&app, &token.secret, status_path).await;
        assert_envelope(
            reqwest::StatusCode::from_u16(status).expect("status"),
            &body,
            403,
            "forbidden",
        );
        assert_eq!(app.audit_count().await, before + 1);
        let row = app.last_audit().await;
        assert_eq!(row.result, AuditResult::Denied);
        assert_eq!(row.actor_name.as_deref(), Some(token.info.name.as_str()));
    }
    let (_, oslo_acks) = get_as(&app, &oslo.secret, "/v1/trials/waiting/acknowledgements").await;
    assert_eq!(oslo_acks["acknowledgements"], json!([]));
    let (_, own_acks) = get_as(
        &app,
        &vestland.secret,
        "/v1/trials/waiting/acknowledgements",
    )
    .await;
    assert_eq!(
        own_acks["acknowledgements"].as_array().map(Vec::len),
        Some(1)
    );

    // Every read of the overview is in the audit log.
    let reads = app
        .store
        .query_audit(&AuditQuery {
            route: Some("/v1/trials/{id}/acknowledgements/status".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(reads.len(), 5, "three reads and two refusals");

    // An unknown trial is a 404.
    let (status, body) = get_as(
        &app,
        &app.direktorat.secret,
        "/v1/trials/no-such/acknowledgements/status",
    )
    .await;
    assert_envelope(
        reqwest::StatusCode::from_u16(status).expect("status"),
        &body,
        404,
        "not_found",
    );
}

on_both_backends!(
    the_enrollment_list_is_paged_and_says_how_many,
    assignments_name_the_firms_and_speak_excel,
    the_directorate_sees_which_fylker_still_wait,
);
