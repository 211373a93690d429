//! Disclosure over HTTP (issue 10, defects 3 and 12): every response a fylke or a researcher gets
//! from a route with aggregates over firms is scanned whole, every number under a count key and
//! every number in every message, for a count of 1 to 4 (docs/data-formats.md §2). The data are built
//! to produce such counts: an arm that attrition leaves with 3 firms (its contrasts are withheld),
//! an arm with attrition of exactly 1 firm (leaving a stratum with 1 firm of the arm), small strata, a survey of 3 respondents at 1 firm, and
//! take-up with hours at 2 firms. As the directorate the same scanner finds the true counts.

use std::collections::BTreeSet;

use ia_rct::domain::{Quarter, Role};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, get_as, make_token};
use crate::on_both_backends;

/// Keys whose numbers count firms, persons, clusters or rows (everything under them counts too).
const COUNT_KEYS: &[&str] = &[
    "n",
    "n_units",
    "n_obs",
    "n_clusters",
    "n_treatment",
    "n_control",
    "n_used",
    "dropped",
    "assigned",
    "with_post_data",
    "no_post_data",
    "no_pre_data",
    "missing",
    "counts",
    "total",
    "arm_totals",
    "assessed",
    "eligible",
    "not_randomized",
    "excluded_by_reason",
    "randomized_per_arm",
    "firms",
    "received",
    "respondents",
];

/// Keys whose strings name things (arms, estimators, quarters, hashes) and never count them.
const IDENTIFIER_KEYS: &[&str] = &[
    "trial",
    "protocol_hash",
    "arm",
    "arms",
    "versus",
    "control",
    "estimator",
    "outcome",
    "weights",
    "term",
    "se_type",
    "kvartal",
    "randomized_at",
    "maal",
    "covariate",
    "covariates_used",
    "stratum",
    "code",
];

/// Every standalone number 1..=4 in `text`: not part of a longer number, a decimal, a word
/// (`q2`, `2025K1`), a zero-padded date or time, or a signed or assigned value (`e=-1`).
fn small_numbers(text: &str) -> Vec<u64> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let before = start.checked_sub(1).map(|j| b[j]);
        let after = b.get(i).copied();
        let glued_before = before.is_some_and(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+' | b'=') || c >= 0x80
        });
        let glued_after = after
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)
            || (after == Some(b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        let run = &text[start..i];
        let padded = run.len() > 1 && run.starts_with('0');
        if let Ok(k) = run.parse::<u64>()
            && (1..=4).contains(&k)
            && !glued_before
            && !glued_after
            && !padded
        {
            found.push(k);
        }
    }
    found
}

/// Walks the whole response and names (by JSON path) every count of 1 to 4 under a count key and
/// every message with a number 1 to 4 in it.
fn small_counts(value: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, count: bool, identifier: bool, out: &mut Vec<String>) {
        match v {
            Value::Number(n) if count && n.as_f64().is_some_and(|x| (1.0..5.0).contains(&x)) => {
                out.push(format!("{path} = {n}"));
            }
            Value::String(s) if !identifier && !small_numbers(s).is_empty() => {
                out.push(format!("{path} = {s:?}"));
            }
            Value::Array(items) => {
                for (k, x) in items.iter().enumerate() {
                    walk(x, &format!("{path}[{k}]"), count, identifier, out);
                }
            }
            Value::Object(map) => {
                for (k, x) in map {
                    let c = count || COUNT_KEYS.contains(&k.as_str());
                    let id = IDENTIFIER_KEYS.contains(&k.as_str());
                    walk(x, &format!("{path}.{k}"), c, id, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "$", false, false, &mut out);
    out
}

#[test]
fn the_scanner_finds_small_counts_in_fields_and_messages() {
    let leaky = serde_json::json!({
        "trial": "t1", "vintage": 3,
        "estimates": [{"term": "e=-3", "n_units": 40, "dropped": {"no_post_data": 1}}],
        "skipped": [{"error": "a stratum has 1 cluster(s) in the arm and 12 in control"}],
        "quarters": [{"kvartal": "2025K2", "firms": 4, "created": "2025-02-03T04:05:06Z"}],
    });
    assert_eq!(
        small_counts(&leaky),
        vec![
            "$.estimates[0].dropped.no_post_data = 1".to_owned(),
            "$.quarters[0].firms = 4".to_owned(),
            "$.skipped[0].error = \"a stratum has 1 cluster(s) in the arm and 12 in control\""
                .to_owned(),
        ]
    );
    let clean = serde_json::json!({
        "estimates": [{"n_units": 40, "n_clusters": 0, "dropped": {"no_post_data": "<5"}}],
        "skipped": [{"error": "a stratum has <5 cluster(s); all 12 leads (e <= -2); 0.3"}],
    });
    assert_eq!(small_counts(&clean), Vec::<String>::new());
}

async fn post_csv(app: &TestApp, secret: &str, path: &str, csv: String) {
    let (status, body) = crate::helpers::post_csv(app, secret, path, csv).await;
    assert_eq!(status, 201, "{path}: {body}");
}

/// Whether an estimates response carries any estimate of `arm`.
fn shows_arm(estimates: &Value, arm: &str) -> bool {
    estimates["estimates"]
        .as_array()
        .expect("estimates")
        .iter()
        .any(|e| e["arm"] == arm)
}

fn find(rows: &Value, pred: impl Fn(&Value) -> bool) -> &Value {
    rows.as_array()
        .and_then(|a| a.iter().find(|r| pred(r)))
        .unwrap_or_else(|| panic!("no matching row in {rows}"))
}

/// The aggregate routes of a trial, as paths.
fn aggregate_paths(id: &str) -> Vec<String> {
    vec![
        format!("/v1/trials/{id}/estimates"),
        format!("/v1/trials/{id}/estimates?weights=firm&estimator=itt_dim,did_twfe"),
        format!("/v1/trials/{id}/outcomes/summary"),
        format!("/v1/trials/{id}/balance"),
    ]
}

/// A server with trial `id` randomized over 160 firms (small strata, 4 arms), and its assignments.
async fn randomized_160(
    backend: Backend,
    id: &str,
) -> (TestApp, Vec<ia_rct::storage::AssignmentRecord>) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state(id, "randomized", 160).await;
    let assigned = app
        .store
        .assignments(id, None, None, 10_000)
        .await
        .expect("assignments");
    (app, assigned)
}

async fn no_count_below_5_reaches_a_fylke_or_a_researcher(backend: Backend) {
    let id = "mask";
    let (app, assigned) = randomized_160(backend, id).await;
    let in_arm = |arm: &str| -> Vec<_> { assigned.iter().filter(|a| a.arm == arm).collect() };
    assert!(
        ["kontroll", "bred_prosess", "ledere", "digital"]
            .iter()
            .all(|arm| in_arm(arm).len() >= 8),
        "every arm needs firms: {}",
        assigned.len()
    );
    // `digital` keeps post-period data for 3 firms only; `ledere` loses exactly 1 firm.
    let digital_kept: BTreeSet<String> = in_arm("digital")
        .iter()
        .take(3)
        .map(|a| a.orgnr.to_string())
        .collect();
    // The lost `ledere` firm leaves its stratum with one `ledere` firm, so the weighted
    // difference in means refuses with a message that counts it.
    let ledere = in_arm("ledere");
    let ledere_lost = ledere
        .iter()
        .find(|a| {
            ledere
                .iter()
                .filter(|b| (b.wave, &b.stratum) == (a.wave, &a.stratum))
                .count()
                == 2
        })
        .expect("a stratum with two ledere firms")
        .orgnr
        .to_string();
    let first: Quarter = "2023K1".parse().expect("quarter");
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for (i, a) in assigned.iter().enumerate() {
        let orgnr = a.orgnr.to_string();
        let post = if a.arm == "digital" {
            digital_kept.contains(&orgnr)
        } else {
            orgnr != ledere_lost
        };
        for t in 0..if post { 20 } else { 8 } {
            let q = first.plus(t).expect("quarter");
            let mulige = 100.0 + (i % 17) as f64 * 13.0;
            let rate = 6.0 + (i % 7) as f64 * 0.5 + ((i * 31 + t as usize * 7) % 11) as f64 * 0.3;
            csv.push_str(&format!(
                "{orgnr},{},{},{},{mulige},{}\n",
                q.year(),
                q.quarter(),
                mulige * rate / 100.0,
                10 + i % 5
            ));
        }
    }
    app.statistics_csv(csv, 201).await;

    // A fylke with firms in `bred_prosess`: take-up with hours at 2 of them, and a survey with 3
    // respondents at 1.
    let fylke = in_arm("bred_prosess")
        .iter()
        .map(|a| a.fylke)
        .find(|f| {
            in_arm("bred_prosess")
                .iter()
                .filter(|a| a.fylke == *f)
                .count()
                >= 2
        })
        .expect("a fylke with two bred_prosess firms");
    let fylke_token = make_token(
        app.store.as_ref(),
        "NAV fylke",
        Role::Fylke,
        Some(&fylke.to_string()),
    )
    .await;
    let own: Vec<String> = in_arm("bred_prosess")
        .iter()
        .filter(|a| a.fylke == fylke)
        .take(2)
        .map(|a| a.orgnr.to_string())
        .collect();
    let mut takeup = String::from("orgnr,status,dato,arbeidsform_levert,timer\n");
    for firm in &own {
        takeup.push_str(&format!(
            "{firm},KONTAKTET,2025-02-03,,\n{firm},AKTIV,2025-02-20,bred_prosess,6.5\n"
        ));
    }
    let secret = fylke_token.secret.clone();
    post_csv(&app, &secret, &format!("/v1/trials/{id}/takeup"), takeup).await;
    let survey = format!(
        "orgnr,bolge,maal,verdi,antall_svar\n{},1,arbeidsmiljo_indeks,3.5,3\n",
        own[0]
    );
    post_csv(&app, &secret, &format!("/v1/trials/{id}/surveys"), survey).await;

    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let direktorat = app.direktorat.secret.clone();

    // The directorate sees the true counts: the scanner finds them, so it can fail.
    let estimates = get_as(&app, &direktorat, &format!("/v1/trials/{id}/estimates"))
        .await
        .1;
    let ledere = find(&estimates["estimates"], |e| e["arm"] == "ledere");
    assert_eq!(ledere["dropped"]["no_post_data"], 1, "{ledere}");
    let digital = find(&estimates["attrition"], |a| a["arm"] == "digital");
    assert_eq!(digital["with_post_data"], 3, "{digital}");
    let found = small_counts(&estimates);
    assert!(
        found
            .iter()
            .any(|p| p.contains(".dropped.no_post_data = 1")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.starts_with("$.skipped")),
        "a message with a small count: {:#}",
        estimates["skipped"]
    );
    let summary = get_as(
        &app,
        &direktorat,
        &format!("/v1/trials/{id}/outcomes/summary"),
    )
    .await
    .1;
    let cell = find(&summary["surveys"], |s| s["arm"] == "bred_prosess");
    assert_eq!(
        (cell["firms"].as_i64(), cell["respondents"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(cell["mean"], 3.5);
    let delivery = find(&summary["delivery"], |d| d["arm"] == "bred_prosess");
    assert_eq!(
        (delivery["received"].as_i64(), delivery["timer"].as_f64()),
        (Some(2), Some(13.0))
    );
    let post = find(&summary["quarters"], |q| {
        q["arm"] == "digital" && q["kvartal"] == "2026K1"
    });
    assert_eq!(post["firms"], 3);
    assert!(
        post["sykefravar_prosent"].is_number() && post["masked"] != true,
        "{post}"
    );
    let balance = get_as(&app, &direktorat, &format!("/v1/trials/{id}/balance"))
        .await
        .1;
    assert!(
        !small_counts(&balance).is_empty(),
        "160 firms in 4 arms make small strata"
    );

    // A researcher: 200 on every aggregate route, and not one count of 1 to 4 anywhere.
    for path in aggregate_paths(id) {
        let (status, body) = get_as(&app, &forsker.secret, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let found = small_counts(&body);
        assert!(
            found.is_empty(),
            "forsker {path} shows counts below 5: {found:#?}"
        );
    }
    // A fylke is refused them, and the refusal shows no count either.
    for path in aggregate_paths(id) {
        let (status, body) = get_as(&app, &secret, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
        let found = small_counts(&body);
        assert!(found.is_empty(), "fylke {path}: {found:#?}");
    }

    // What the researcher sees instead: markers, flags and the withholding.
    let estimates = get_as(&app, &forsker.secret, &format!("/v1/trials/{id}/estimates"))
        .await
        .1;
    // `ledere` lost 1 firm: its estimates would give the count away through n and df, so they
    // are withheld, and no estimate carries a `dropped` count of 1 to 4.
    assert!(
        !shows_arm(&estimates, "ledere"),
        "a contrast whose arm lost 1 firm is withheld"
    );
    let digital = find(&estimates["attrition"], |a| a["arm"] == "digital");
    assert_eq!(digital["with_post_data"], "<5", "{digital}");
    // No hidden attrition count follows from the others: `assigned = with_post_data +
    // no_post_data`, so where one of the three is hidden, a second one is too.
    for row in estimates["attrition"].as_array().expect("attrition") {
        let hidden = ["assigned", "with_post_data", "no_post_data"]
            .iter()
            .filter(|k| !row[**k].is_number())
            .count();
        assert!(
            hidden != 1,
            "one hidden count is the difference of the others: {row}"
        );
    }
    let ledere_attrition = find(&estimates["attrition"], |a| a["arm"] == "ledere");
    assert_eq!(ledere_attrition["no_post_data"], "<5", "{ledere_attrition}");
    assert!(
        !shows_arm(&estimates, "digital"),
        "a contrast with 3 firms is withheld"
    );
    let refused = find(&estimates["skipped"], |s| {
        s["arm"] == "ledere" && s["error"].as_str().is_some_and(|m| m.contains("stratum"))
    });
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|m| m.contains("a stratum has <5 ")),
        "the refusal's counts are masked: {refused}"
    );
    let dropped = find(&estimates["skipped"], |s| {
        s["arm"] == "ledere" && s["estimator"] == "did_twfe"
    });
    assert!(
        dropped["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("withheld: an arm has some but fewer than 5 firms")),
        "{dropped}"
    );
    let withheld = find(&estimates["skipped"], |s| {
        s["arm"] == "digital" && s["estimator"] == "itt_dim"
    });
    assert!(
        withheld["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("withheld: fewer than 5 firms")),
        "{withheld}"
    );
    let summary = get_as(
        &app,
        &forsker.secret,
        &format!("/v1/trials/{id}/outcomes/summary"),
    )
    .await
    .1;
    let cell = find(&summary["surveys"], |s| s["arm"] == "bred_prosess");
    assert_eq!(cell["firms"], "<5");
    assert!(
        cell["mean"].is_null() && cell["respondents"].is_null(),
        "{cell}"
    );
    assert_eq!(cell["masked"], true);
    let delivery = find(&summary["delivery"], |d| d["arm"] == "bred_prosess");
    assert_eq!(delivery["received"], "<5");
    assert!(
        delivery["timer"].is_null() && delivery["masked"] == true,
        "{delivery}"
    );
    let post = find(&summary["quarters"], |q| {
        q["arm"] == "digital" && q["kvartal"] == "2026K1"
    });
    assert_eq!(post["firms"], "<5");
    assert!(
        post["sykefravar_prosent"].is_null() && post["masked"] == true,
        "{post}"
    );
}

/// The arm values `w` (firms with post-period data) of `arm` that agree with everything one
/// response shows: its attrition row, the n of each estimate of the arm (`n_units` counts the
/// arm's and control's firms for an ITT estimate), and each shown count of the arm's firms with
/// data in a post quarter (each a lower bound). An attacker across fields, independent of the
/// service's masking code; `assigned` comes from a response that publishes it.
fn consistent_with_post(
    estimates: &Value,
    summary: &Value,
    arm: &str,
    assigned: u64,
    control: &str,
    post_from: &str,
) -> Vec<u64> {
    let row = find(&estimates["attrition"], |a| a["arm"] == arm);
    let control_w =
        find(&estimates["attrition"], |a| a["arm"] == control)["with_post_data"].as_u64();
    (0..=assigned)
        .filter(|&w| {
            let dropped = assigned - w;
            let fits = |key: &str, v: u64| match &row[key] {
                Value::Number(n) => n.as_u64() == Some(v),
                Value::String(m) if m == "<5" => (1..5).contains(&v),
                _ => true,
            };
            if !fits("with_post_data", w) || !fits("no_post_data", dropped) {
                return false;
            }
            let itt = ["itt_dim", "itt_ancova", "itt_lin"];
            let n_fit = estimates["estimates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["arm"] == arm && itt.iter().any(|x| e["estimator"] == *x))
                .all(|e| match (e["n_units"].as_u64(), control_w) {
                    (Some(n), Some(c)) => n == w + c,
                    _ => true,
                });
            let bounds = summary["quarters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|q| q["arm"] == arm && q["kvartal"].as_str() >= Some(post_from))
                .all(|q| q["firms"].as_u64().is_none_or(|f| f <= w));
            n_fit && bounds
        })
        .collect()
}

/// Issue 10, defect 3, across fields and vintages: an arm that loses 1 firm in one vintage (and
/// gets its data in the next) shows that count to nobody outside the directorate. The arm's size
/// is published (CONSORT, the outcome summary), so the count would follow from the estimates' n
/// or the quarter counts; at that vintage the arm's contrasts are withheld and the quarter counts
/// that would give it are hidden. The same attacker, run on the directorate's responses, finds
/// the true count, so it can fail.
async fn a_small_attrition_count_cannot_be_derived_across_fields(backend: Backend) {
    let id = "derive";
    let (app, assigned) = randomized_160(backend, id).await;
    let ledere: Vec<_> = assigned.iter().filter(|a| a.arm == "ledere").collect();
    let n_ledere = ledere.len() as u64;
    assert!(n_ledere >= 10, "{n_ledere}");
    let lost = ledere[0].orgnr.to_string();
    let first: Quarter = "2023K1".parse().expect("quarter");
    let rows = |only: Option<&str>, quarters: std::ops::Range<i32>| {
        let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
        for (i, a) in assigned.iter().enumerate() {
            let orgnr = a.orgnr.to_string();
            if only.is_some_and(|o| o != orgnr) {
                continue;
            }
            let end = if only.is_none() && orgnr == lost {
                8
            } else {
                quarters.end
            };
            for t in quarters.start..end {
                let q = first.plus(t).expect("quarter");
                let mulige = 100.0 + (i % 17) as f64 * 13.0;
                let rate = 6.0 + (i % 7) as f64 * 0.5 + ((i * 31 + t as usize) % 11) as f64 * 0.3;
                csv.push_str(&format!(
                    "{orgnr},{},{},{},{mulige},{}\n",
                    q.year(),
                    q.quarter(),
                    mulige * rate / 100.0,
                    10 + i % 5
                ));
            }
        }
        csv
    };
    let v1 = app.statistics_csv(rows(None, 0..20), 201).await["receipt"]["vintage"]
        .as_i64()
        .expect("vintage");
    // The lost firm's first three post quarters arrive in a second upload of 3 rows.
    app.statistics_csv(rows(Some(&lost), 8..11), 201).await;

    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let direktorat = app.direktorat.secret.clone();
    let post_from = "2025K1";
    let read = |secret: String, vintage: Option<i64>| {
        let app = &app;
        async move {
            let q = vintage.map(|v| format!("?vintage={v}")).unwrap_or_default();
            let e = get_as(app, &secret, &format!("/v1/trials/{id}/estimates{q}")).await;
            let s = get_as(
                app,
                &secret,
                &format!("/v1/trials/{id}/outcomes/summary{q}"),
            )
            .await;
            assert_eq!((e.0, s.0), (200, 200), "{} {}", e.1, s.1);
            (e.1, s.1)
        }
    };
    // The arm's size is public: the researcher's outcome summary publishes it.
    let balance = get_as(&app, &forsker.secret, &format!("/v1/trials/{id}/balance"))
        .await
        .1;
    let (_, published) = read(forsker.secret.clone(), None).await;
    assert_eq!(
        find(&published["delivery"], |d| d["arm"] == "ledere")["firms"].as_u64(),
        Some(n_ledere),
        "{:#}",
        published["delivery"]
    );

    // The directorate: the attacker pins the count at vintage 1 (so it can fail).
    let (e, s) = read(direktorat.clone(), Some(v1)).await;
    assert_eq!(
        consistent_with_post(&e, &s, "ledere", n_ledere, "kontroll", post_from),
        vec![n_ledere - 1]
    );

    // The researcher at vintage 1: the count is "<5" and nothing pins it.
    let (e, s) = read(forsker.secret.clone(), Some(v1)).await;
    let row = find(&e["attrition"], |a| a["arm"] == "ledere");
    assert_eq!(row["no_post_data"], "<5", "{row}");
    let found = consistent_with_post(&e, &s, "ledere", n_ledere, "kontroll", post_from);
    assert!(found.len() > 1, "derived from one response: {found:?}");
    assert!(found.contains(&(n_ledere - 1)), "{found:?}");
    assert!(!shows_arm(&e, "ledere"), "the contrast is withheld");
    let quarter = find(&s["quarters"], |q| {
        q["arm"] == "ledere" && q["kvartal"] == "2025K2"
    });
    assert_eq!(quarter["firms"], "masked", "{quarter}");
    assert!(
        quarter["sykefravar_prosent"].is_number(),
        "the rate over many firms stays: {quarter}"
    );

    // The researcher at the latest vintage: no attrition, the arm's estimates are back, and
    // together with vintage 1 they give only a bound (firms with data never decrease).
    let (e2, s2) = read(forsker.secret.clone(), None).await;
    let row = find(&e2["attrition"], |a| a["arm"] == "ledere");
    assert_eq!(row["no_post_data"], 0, "{row}");
    assert!(
        e2["estimates"]
            .as_array()
            .expect("estimates")
            .iter()
            .any(|x| x["arm"] == "ledere" && x["n_units"].is_u64()),
        "{:#}",
        e2["skipped"]
    );
    assert_eq!(
        consistent_with_post(&e2, &s2, "ledere", n_ledere, "kontroll", post_from),
        vec![n_ledere]
    );
    // The list of vintages counts firm-quarters per upload: 3 is a small count too.
    let vintages = get_as(&app, &direktorat, "/v1/statistics/vintages").await.1;
    assert_eq!(vintages["vintages"][1]["inserted"], 3, "{vintages:#}");
    let vintages = get_as(&app, &forsker.secret, "/v1/statistics/vintages")
        .await
        .1;
    assert_eq!(vintages["vintages"][1]["inserted"], "<5", "{vintages:#}");
    for body in [&e, &s, &e2, &s2, &balance, &vintages] {
        let small = small_counts(body);
        assert!(small.is_empty(), "{small:#?}");
    }
}

/// Every route open to a fylke or a researcher either passes its responses through the masking
/// layer (`x-ia-rct-masked`) or is one of the hand-listed routes that show no aggregate over firms
/// (a fylke's own firms, protocols, tokens, upload receipts).
async fn every_aggregate_route_is_masked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let masked: BTreeSet<&str> = [
        "GET /v1/trials/{id}/estimates",
        "GET /v1/trials/{id}/outcomes/summary",
        "GET /v1/trials/{id}/balance",
        "GET /v1/statistics/vintages",
        "GET /v1/trials/{id}/analyses",
        "POST /v1/trials/{id}/analyses",
        "GET /v1/trials/{id}/analyses/{run}",
        "GET /v1/jobs/{job}",
        "DELETE /v1/jobs/{job}",
    ]
    .into();
    let no_aggregates: BTreeSet<&str> = [
        "GET /v1/whoami",
        "GET /v1/trials",
        "GET /v1/trials/{id}",
        "GET /v1/trials/{id}/versions",
        "GET /v1/trials/{id}/enrollment",
        "GET /v1/trials/{id}/assignments",
        "POST /v1/trials/{id}/acknowledgements",
        "GET /v1/trials/{id}/acknowledgements",
        "GET /v1/trials/{id}/takeup",
        "POST /v1/trials/{id}/takeup",
        "POST /v1/trials/{id}/surveys",
    ]
    .into();
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let roles: Vec<&str> = op["x-ia-rct-roles"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !roles.iter().any(|r| *r == "fylke" || *r == "forsker") {
                continue;
            }
            let key = format!("{} {path}", method.to_uppercase());
            let is_masked = op["x-ia-rct-masked"] == true;
            assert!(
                masked.contains(key.as_str()) == is_masked,
                "{key}: x-ia-rct-masked is {is_masked}"
            );
            assert!(
                is_masked || no_aggregates.contains(key.as_str()),
                "{key} is open to {roles:?} but neither masked nor listed as showing no \
                 aggregates"
            );
            seen.insert(key);
        }
    }
    for key in &masked {
        assert!(seen.contains(*key), "{key} missing from the document");
    }
    // The schemas admit the marker.
    let count = &doc["components"]["schemas"]["MaskedCount"];
    assert!(count["oneOf"].is_array(), "MaskedCount: {count}");
    assert!(count.to_string().contains("<5"), "{count}");
    let marker = &doc["components"]["schemas"]["Marker"]["enum"];
    assert_eq!(
        marker,
        &json!(["<5", "masked"]),
        "the markers: a small count and attrition's complement"
    );
}

on_both_backends!(
    no_count_below_5_reaches_a_fylke_or_a_researcher,
    a_small_attrition_count_cannot_be_derived_across_fields,
    every_aggregate_route_is_masked
);
