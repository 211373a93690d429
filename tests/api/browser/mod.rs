//! The pages in a real headless Chromium (Debian's `chromium`, driven by its `chromedriver`)
//! against `ia-rct demo --serve` on `127.0.0.1:0`: every page renders without console errors or
//! warnings, the plots' data points are the API's numbers and are drawn inside their charts, a
//! fylke sees only its own firms in the page and in the CSV, forms without their CSRF token are
//! refused, and screenshots of the report (laptop and phone) are saved under
//! `target/tmp/screenshots/`.

mod driver;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use driver::{Browser, Demo, artifacts};

/// Firms in the demo's register: enough for every arm in every stratum, small enough for a debug
/// build.
const FIRMS: usize = 2000;

const TRIAL: &str = "nals-arbeidsformer";
/// The draws of randomization inference `ia-rct demo` asks for (src/cli/demo.rs), so its run is
/// the one `GET /v1/trials/{id}/estimates?ri_draws=10000` serves.
const DEMO_RI_DRAWS: u64 = 10_000;

/// The data points of every chart in the report section `section`, with each point's box and
/// its chart's box: `[{chart, kind, attrs: {...}, inside: bool}]`.
const POINTS_JS: &str = r#"
const section = document.getElementById(arguments[0]);
if (!section) { return null; }
const out = [];
section.querySelectorAll('svg').forEach((svg, chart) => {
  const box = svg.getBoundingClientRect();
  svg.querySelectorAll(arguments[1]).forEach(el => {
    const r = el.getBoundingClientRect();
    const attrs = {};
    for (const a of el.attributes) { if (a.name.startsWith('data-')) attrs[a.name] = a.value; }
    const fig = svg.closest('figure');
    out.push({
      chart, attrs,
      arm: fig ? fig.getAttribute('data-arm') : null,
      series: el.closest('g.series') ? el.closest('g.series').getAttribute('data-name') : null,
      drawn: r.width > 0 && r.height > 0,
      inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5
        && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5,
    });
  });
});
return out;
"#;

/// The report as the directorate reads it: every section, no console errors, plots whose points
/// are the API's numbers, and screenshots on a laptop and on a phone.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_renders_its_sections_and_plots_the_apis_numbers() {
    let demo = Demo::start(FIRMS);
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&demo.base, &demo.direktorat).await;
    browser.assert_clean_console("/").await;
    browser.goto(&format!("{}/forsok", demo.base)).await;
    browser.assert_clean_console("/forsok").await;
    let trials = browser
        .run(
            "return [...document.querySelectorAll('tr[data-trial]')].map(r => r.dataset.trial);",
            json!([]),
        )
        .await;
    assert_eq!(trials, json!([TRIAL]));

    browser.goto(&demo.report).await;
    browser.assert_clean_console("the report").await;
    let sections = browser
        .run(
            "return [...document.querySelectorAll('main section[id]')].map(s => s.id);",
            json!([]),
        )
        .await;
    for id in [
        "protokoll",
        "consort",
        "balanse",
        "sykefravaer",
        "estimater",
        "event-study",
    ] {
        assert!(
            sections.as_array().expect("ids").contains(&json!(id)),
            "the report has no section {id}: {sections}"
        );
    }
    let estimates = demo
        .api(
            &demo.direktorat,
            &format!("/v1/trials/{TRIAL}/estimates?ri_draws={DEMO_RI_DRAWS}"),
        )
        .await;
    let hash = estimates["protocol_hash"].as_str().expect("hash");
    let protocol = browser
        .run(
            "return document.getElementById('protokoll').textContent;",
            json!([]),
        )
        .await;
    assert!(
        protocol.as_str().expect("text").contains(hash),
        "the protocol hash is shown"
    );

    // The event study: each arm's points are the API's coefficients (firm weights, CR1), drawn
    // inside the chart.
    let points = browser
        .run(POINTS_JS, json!(["event-study", "g.coef"]))
        .await;
    let points = points.as_array().expect("points");
    assert!(!points.is_empty(), "event-study points");
    let rows = estimates["estimates"].as_array().expect("estimates");
    let mut arms = BTreeSet::new();
    for p in points {
        let arm = p["arm"].as_str().expect("each plot names its arm");
        arms.insert(arm.to_owned());
        let e: i64 = p["attrs"]["data-e"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("data-e");
        let want = rows
            .iter()
            .find(|r| {
                r["estimator"] == "event_study"
                    && r["weights"] == "firm"
                    && r["se_type"] == "CR1"
                    && r["arm"] == arm
                    && r["event_time"] == e
            })
            .unwrap_or_else(|| panic!("no API coefficient for {arm} e={e}"));
        for (attr, field) in [
            ("data-estimate", "estimate"),
            ("data-low", "ci_low"),
            ("data-high", "ci_high"),
        ] {
            let shown: f64 = p["attrs"][attr]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            assert_eq!(
                shown.to_bits(),
                want[field].as_f64().expect("number").to_bits(),
                "{arm} e={e} {attr}"
            );
        }
        assert!(
            p["drawn"] == true && p["inside"] == true,
            "{arm} e={e}: {p}"
        );
    }
    let treated = rows
        .iter()
        .filter(|r| r["estimator"] == "event_study")
        .filter_map(|r| r["arm"].as_str())
        .collect::<BTreeSet<_>>();
    assert_eq!(
        arms.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        treated
    );
    // And no coefficient is missing: one point per API coefficient (firm, CR1), arm by arm.
    for arm in &treated {
        let want = rows
            .iter()
            .filter(|r| {
                r["estimator"] == "event_study"
                    && r["weights"] == "firm"
                    && r["se_type"] == "CR1"
                    && r["arm"] == *arm
            })
            .count();
        let shown = points.iter().filter(|p| p["arm"] == *arm).count();
        assert_eq!(shown, want, "{arm}: every coefficient is plotted");
    }

    // The quarterly rate by arm: every point is the API's rate for its arm and quarter, inside
    // the chart, and the randomization quarter is marked.
    let outcomes = demo
        .api(
            &demo.direktorat,
            &format!("/v1/trials/{TRIAL}/outcomes/summary"),
        )
        .await;
    let quarters = outcomes["quarters"].as_array().expect("quarters");
    let points = browser
        .run(POINTS_JS, json!(["sykefravaer", "circle.point"]))
        .await;
    let points = points.as_array().expect("points");
    let mut labels: Vec<(i32, i32, String)> = quarters
        .iter()
        .filter_map(|q| q["kvartal"].as_str())
        .map(|k| {
            let (y, q) = k.split_once('K').expect("YYYYKq");
            (
                y.parse().expect("year"),
                q.parse().expect("q"),
                k.to_owned(),
            )
        })
        .collect();
    labels.sort();
    labels.dedup();
    let expected: usize = quarters
        .iter()
        .filter(|q| q["sykefravar_prosent"].as_f64().is_some())
        .count();
    assert_eq!(points.len(), expected, "one point per arm and quarter");
    for p in points {
        let arm = p["series"].as_str().expect("series");
        let x: usize = p["attrs"]["data-x"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("x");
        let y: f64 = p["attrs"]["data-y"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("y");
        let k = &labels[x].2;
        let want = quarters
            .iter()
            .find(|q| q["arm"] == arm && q["kvartal"] == k.as_str())
            .and_then(|q| q["sykefravar_prosent"].as_f64())
            .unwrap_or_else(|| panic!("no API rate for {arm} {k}"));
        assert_eq!(y.to_bits(), want.to_bits(), "{arm} {k}");
        assert!(p["drawn"] == true && p["inside"] == true, "{arm} {k}: {p}");
    }
    let marks = browser
        .run(POINTS_JS, json!(["sykefravaer", "g.mark"]))
        .await;
    assert_eq!(
        marks.as_array().map(Vec::len),
        Some(1),
        "the randomization quarter"
    );

    // The CONSORT flow: each arm's randomized count is the balance route's.
    let balance = demo
        .api(&demo.direktorat, &format!("/v1/trials/{TRIAL}/balance"))
        .await;
    let boxes = browser.run(POINTS_JS, json!(["consort", "g.box"])).await;
    for (arm, n) in balance["consort"]["randomized_per_arm"]
        .as_object()
        .expect("per arm")
    {
        let shown = boxes
            .as_array()
            .expect("boxes")
            .iter()
            .find(|b| b["attrs"]["data-stage"] == "randomized" && b["attrs"]["data-arm"] == *arm)
            .unwrap_or_else(|| panic!("no randomized box for {arm}"));
        assert_eq!(shown["attrs"]["data-count"], n.to_string(), "{arm}");
        assert!(shown["inside"] == true, "{arm}: {shown}");
    }

    // Received help: the demo's take-up, as the outcome summary counts it.
    let mut helped = 0;
    for d in outcomes["delivery"].as_array().expect("delivery") {
        let arm = d["arm"].as_str().expect("arm");
        let shown = boxes
            .as_array()
            .expect("boxes")
            .iter()
            .find(|b| b["attrs"]["data-stage"] == "received" && b["attrs"]["data-arm"] == arm)
            .unwrap_or_else(|| panic!("no received box for {arm}"));
        assert_eq!(
            shown["attrs"]["data-count"],
            d["received"].to_string(),
            "{arm}"
        );
        helped += d["received"].as_u64().unwrap_or(0);
    }
    assert!(helped > 0, "the demo's firms received help");

    // Laptop and phone: the page fits the phone's width (wide tables scroll inside their box).
    let dir = artifacts();
    browser.screenshot(&dir.join("report-laptop.png")).await;
    let phone = Browser::phone().await;
    phone.sign_in(&demo.base, &demo.direktorat).await;
    for (page, name) in [
        (demo.report.clone(), "report-phone.png"),
        (format!("{}/forsok", demo.base), "trials-phone.png"),
    ] {
        phone.goto(&page).await;
        let fits = phone
            .run(
                "return [window.innerWidth, document.documentElement.scrollWidth];",
                json!([]),
            )
            .await;
        assert_eq!(fits[0], 390, "a phone's viewport");
        assert!(
            fits[1].as_u64() <= fits[0].as_u64(),
            "{page} is wider than a phone: {fits}"
        );
        phone.assert_clean_console(&page).await;
        phone.screenshot(&dir.join(name)).await;
    }
    eprintln!("screenshots in {}", dir.display());
}

/// The researcher's report renders without console errors, and a fylke is refused the report.
#[tokio::test(flavor = "multi_thread")]
async fn the_researcher_reads_the_report_and_a_fylke_may_not() {
    let demo = Demo::start(FIRMS);
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&demo.base, &demo.forsker).await;
    browser.assert_clean_console("/").await;
    browser.goto(&demo.report).await;
    browser.assert_clean_console("the report (forsker)").await;
    assert!(
        browser
            .heading()
            .await
            .contains("Arbeidsformer i NAV Arbeidslivssenter"),
        "the report's heading"
    );
    // The researcher's report holds what the API gives a researcher: the same estimate rows
    // (none when the API withholds them), and a rate point only for each unmasked cell.
    let api = demo
        .api(
            &demo.forsker,
            &format!("/v1/trials/{TRIAL}/estimates?ri_draws={DEMO_RI_DRAWS}"),
        )
        .await;
    let main = api["estimates"]
        .as_array()
        .expect("estimates")
        .iter()
        .filter(|e| matches!(e["term"].as_str(), Some("z" | "d")))
        .count();
    let rows = browser
        .run(
            "return document.querySelectorAll('#estimater tr[data-se-type]').length;",
            json!([]),
        )
        .await;
    assert_eq!(rows, json!(main), "the estimate rows a researcher reads");
    let outcomes = demo
        .api(
            &demo.forsker,
            &format!("/v1/trials/{TRIAL}/outcomes/summary"),
        )
        .await;
    let unmasked = outcomes["quarters"]
        .as_array()
        .expect("quarters")
        .iter()
        .filter(|q| q["sykefravar_prosent"].is_number())
        .count();
    let points = browser
        .run(POINTS_JS, json!(["sykefravaer", "circle.point"]))
        .await;
    assert_eq!(points.as_array().map(Vec::len), Some(unmasked));
    let fylke = Browser::start(1280, 900).await;
    fylke.sign_in(&demo.base, &demo.fylke.1).await;
    let (status, _) = fylke.download(&demo.report).await;
    assert_eq!(status, 403, "the report is not for a fylke");
    fylke.goto(&demo.report).await;
    assert_eq!(fylke.heading().await, "Ikke tilgang");
}

/// Sets the take-up form's date (a date input types differently in each locale).
const SET_DATE: &str = "document.getElementById('dato').value = arguments[0]; return true;";

/// The firms with take-up recorded, from the API as the directorate reads it.
async fn recorded(demo: &Demo) -> BTreeSet<String> {
    let takeup = demo
        .api(&demo.direktorat, &format!("/v1/trials/{TRIAL}/takeup"))
        .await;
    takeup["firms"]
        .as_array()
        .expect("firms")
        .iter()
        .map(|f| f["orgnr"].as_str().expect("orgnr").to_owned())
        .collect()
}

/// The firms' orgnr of one fylke, from the API as the directorate reads it.
async fn fylke_firms(demo: &Demo, fylke: &str) -> BTreeSet<String> {
    let all = demo
        .api(
            &demo.direktorat,
            &format!("/v1/trials/{TRIAL}/assignments?limit=10000"),
        )
        .await;
    all["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .filter(|a| a["fylke"] == fylke)
        .map(|a| a["orgnr"].as_str().expect("orgnr").to_owned())
        .collect()
}

/// The fylke's page lists exactly its own firms, and so does the CSV it downloads.
#[tokio::test(flavor = "multi_thread")]
async fn a_fylke_sees_only_its_own_firms_in_the_page_and_in_the_csv() {
    let demo = Demo::start(FIRMS);
    let (code, token) = demo.fylke.clone();
    let own = fylke_firms(&demo, &code).await;
    assert!(own.len() > 10, "the demo's fylke has firms");
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&demo.base, &token).await;
    browser
        .goto(&format!("{}/forsok/{TRIAL}/fylke", demo.base))
        .await;
    browser.assert_clean_console("the fylke's page").await;
    let shown = browser
        .run(
            "return [...document.querySelectorAll('tr[data-orgnr]')].map(r => r.dataset.orgnr);",
            json!([]),
        )
        .await;
    let shown: BTreeSet<String> = shown
        .as_array()
        .expect("rows")
        .iter()
        .map(|v| v.as_str().expect("orgnr").to_owned())
        .collect();
    assert_eq!(
        shown, own,
        "the page lists the fylke's own firms, all of them"
    );
    let link = browser
        .run(
            "return document.querySelector('a[href$=\"tildelinger.csv\"]').href;",
            json!([]),
        )
        .await;
    let (status, csv) = browser.download(link.as_str().expect("the CSV link")).await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert!(lines.next().expect("header").starts_with("orgnr,arm,"));
    let in_csv: BTreeSet<String> = lines
        .map(|l| l.split(',').next().expect("orgnr").to_owned())
        .collect();
    assert_eq!(
        in_csv, own,
        "the CSV holds the fylke's own firms, all of them"
    );
}

/// A form without its CSRF field is refused and writes nothing; with it, the fylke acknowledges
/// its wave and reports take-up by form and by file.
#[tokio::test(flavor = "multi_thread")]
async fn forms_without_their_csrf_token_are_refused_and_with_it_they_record() {
    let demo = Demo::start(FIRMS);
    let (code, token) = demo.fylke.clone();
    // Firms without take-up yet: the demo's control firms (reporting on them is a protocol
    // deviation, recorded and flagged, which is what a fylke might do by mistake).
    let before = recorded(&demo).await;
    let own: Vec<String> = fylke_firms(&demo, &code)
        .await
        .into_iter()
        .filter(|o| !before.contains(o))
        .collect();
    let mut firms = own.iter();
    let (first, second, third) = (
        firms.next().expect("a firm"),
        firms.next().expect("a second firm"),
        firms.next().expect("a third firm"),
    );
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&demo.base, &token).await;
    let page = format!("{}/forsok/{TRIAL}/fylke", demo.base);
    let strip = "document.querySelectorAll(arguments[0] + ' input[name=csrf]')
                   .forEach(e => e.remove()); return true;";

    // Without the token: refused (403), nothing written.
    browser.goto(&page).await;
    browser
        .run(strip, json!(["form[action$='/kvittering']"]))
        .await;
    browser
        .submit("form[action$='/kvittering'] button[type=submit]")
        .await;
    assert_eq!(browser.heading().await, "Avvist");
    browser.goto(&page).await;
    browser.type_into("#orgnr", first).await;
    browser.run(SET_DATE, json!(["2026-01-02"])).await;
    browser.run(strip, json!(["form.takeup"])).await;
    browser.submit("form.takeup button[type=submit]").await;
    assert_eq!(browser.heading().await, "Avvist");
    let acks = demo
        .api(
            &demo.direktorat,
            &format!("/v1/trials/{TRIAL}/acknowledgements"),
        )
        .await;
    assert_eq!(acks["acknowledgements"], json!([]), "nothing acknowledged");
    assert_eq!(recorded(&demo).await, before, "nothing recorded");
    browser.console().await; // the refusals' 403s are expected in the log

    // With it: the wave is acknowledged.
    browser.goto(&page).await;
    browser
        .submit("form[action$='/kvittering'] button[type=submit]")
        .await;
    assert_eq!(browser.heading().await, "Mottak bekreftet");
    browser.assert_clean_console("the acknowledgement").await;
    let acks = demo
        .api(
            &demo.direktorat,
            &format!("/v1/trials/{TRIAL}/acknowledgements"),
        )
        .await;
    assert_eq!(acks["acknowledgements"][0]["fylke"], json!(code));

    // One event by the form.
    browser.goto(&page).await;
    browser.type_into("#orgnr", first).await;
    browser.run(SET_DATE, json!(["2026-01-02"])).await;
    browser.type_into("#timer", "1,5").await;
    browser.submit("form.takeup button[type=submit]").await;
    assert_eq!(browser.heading().await, "Registrert");
    browser.assert_clean_console("the take-up form").await;

    // Two by a file.
    let file = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("file");
    std::fs::write(
        file.path(),
        format!("orgnr;status;dato\n{second};KONTAKTET;2026-01-05\n{third};KONTAKTET;2026-01-06\n"),
    )
    .expect("write");
    browser.goto(&page).await;
    browser
        .type_into("#fil", &file.path().display().to_string())
        .await;
    browser.submit("form.takeup-file button[type=submit]").await;
    assert_eq!(browser.heading().await, "Registrert");
    browser.assert_clean_console("the take-up file").await;

    let takeup = demo
        .api(&demo.direktorat, &format!("/v1/trials/{TRIAL}/takeup"))
        .await;
    let mut want = before.clone();
    want.extend([first, second, third].into_iter().cloned());
    assert_eq!(recorded(&demo).await, want);
    let by_form: &Value = takeup["firms"]
        .as_array()
        .expect("firms")
        .iter()
        .find(|f| f["orgnr"] == first.as_str())
        .expect("the form's firm");
    assert_eq!(by_form["compliance"]["last_status"], "KONTAKTET");
    assert_eq!(by_form["compliance"]["timer"], 1.5);
    // The page shows each firm's latest status.
    browser.goto(&page).await;
    let status = browser
        .run(
            "return document.querySelector('tr[data-orgnr=\"' + arguments[0] + '\"]').cells[6].textContent;",
            json!([second]),
        )
        .await;
    assert_eq!(status, json!("KONTAKTET"));
}
