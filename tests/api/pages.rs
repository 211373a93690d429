//! The pages' sign-in, session cookie and CSRF checks, over HTTP (both backends).

use ia_rct::domain::Role;
use ia_rct::storage::AuditQuery;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::{Backend, TestApp, make_token};

/// A client that shows redirects instead of following them.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `Set-Cookie` values of a response.
fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// The value `name=VALUE` sets, from a `Set-Cookie` list.
fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    })
}

/// The hidden `csrf` field of a form.
pub(crate) fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

/// Opens the sign-in form: its CSRF field and pre-session cookie.
async fn sign_in_form(app: &TestApp) -> (String, String) {
    let resp = client()
        .get(app.url("/logg-inn"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    let cookies = set_cookies(&resp);
    let pre = cookie_value(&cookies, "ia_sign_in").expect("pre-session cookie");
    let html = resp.text().await.expect("body");
    assert!(html.contains("<form method=\"post\" action=\"/logg-inn\">"));
    (csrf_field(&html), pre)
}

/// Signs in with `token`: the response.
async fn post_sign_in(app: &TestApp, token: &str, csrf: &str, pre: &str) -> reqwest::Response {
    client()
        .post(app.url("/logg-inn"))
        .header(COOKIE, format!("ia_sign_in={pre}"))
        .form(&[("token", token), ("csrf", csrf)])
        .send()
        .await
        .expect("post")
}

/// Signs in and returns the session cookie.
pub(crate) async fn signed_in(app: &TestApp, token: &str) -> String {
    let (csrf, pre) = sign_in_form(app).await;
    let resp = post_sign_in(app, token, &csrf, &pre).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    cookie_value(&set_cookies(&resp), "ia_session").expect("session cookie")
}

/// The front page with a session cookie: status and body.
async fn home(app: &TestApp, session: &str) -> (StatusCode, String) {
    let resp = client()
        .get(app.url("/"))
        .header(COOKIE, format!("ia_session={session}"))
        .send()
        .await
        .expect("get");
    (resp.status(), resp.text().await.unwrap_or_default())
}

async fn sign_in_sets_a_strict_http_only_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Without a session the front page sends one to the sign-in form.
    let resp = client().get(app.url("/")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/logg-inn");

    let (csrf, pre) = sign_in_form(&app).await;
    let resp = post_sign_in(&app, &app.direktorat.secret, &csrf, &pre).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/");
    let cookies = set_cookies(&resp);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("ia_session="))
        .expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    // Plain HTTP here: not Secure (it would never be sent back); behind TLS it is.
    assert!(!session.contains("Secure"), "{session}");
    let id = cookie_value(&cookies, "ia_session").expect("value");
    assert_eq!(id.len(), 64);
    // The database keeps only the hash of the cookie's secret.
    let (status, html) = home(&app, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&app.direktorat.info.name), "{html}");
    assert!(html.contains("direktorat"));
    assert!(!html.contains(&id));

    // Behind a TLS proxy the cookie is Secure.
    let (csrf, pre) = sign_in_form(&app).await;
    let resp = client()
        .post(app.url("/logg-inn"))
        .header(COOKIE, format!("ia_sign_in={pre}"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", app.direktorat.secret.as_str()), ("csrf", &csrf)])
        .send()
        .await
        .expect("post");
    let secure = set_cookies(&resp);
    assert!(
        secure
            .iter()
            .any(|c| c.starts_with("ia_session=") && c.ends_with("; Secure")),
        "{secure:?}"
    );

    // The sign-in is audited with its token.
    let audit = app
        .store
        .query_audit(&AuditQuery {
            route: Some("/logg-inn".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.actor_name.as_deref() == Some(app.direktorat.info.name.as_str())),
        "{audit:?}"
    );
}

async fn a_form_without_its_csrf_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.audit_count().await;
    // Sign-in without the field, with a wrong one, and without the pre-session cookie.
    let (csrf, pre) = sign_in_form(&app).await;
    let token = app.direktorat.secret.as_str();
    let zeros = "0".repeat(64);
    for form_csrf in ["", zeros.as_str()] {
        let resp = post_sign_in(&app, token, form_csrf, &pre).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(cookie_value(&set_cookies(&resp), "ia_session").is_none());
    }
    let resp = client()
        .post(app.url("/logg-inn"))
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A cross-site form is refused even with the right field.
    let resp = client()
        .post(app.url("/logg-inn"))
        .header(COOKIE, format!("ia_sign_in={pre}"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = client()
        .post(app.url("/logg-inn"))
        .header(COOKIE, format!("ia_sign_in={pre}"))
        .header("origin", "https://evil.example")
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // No session; each refusal is audited as denied (403, with its reason), as the API audits a
    // refused request, and nothing else is written.
    assert_eq!(app.audit_count().await, before + 5);
    let refusal = app.last_audit().await;
    assert_eq!(refusal.result, ia_rct::storage::AuditResult::Denied);
    assert_eq!((refusal.status, refusal.route.as_str()), (403, "/logg-inn"));
    assert!(
        refusal
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("another origin")),
        "{refusal:?}"
    );

    // Signed in, sign-out without the session's CSRF token is refused and the session lives on.
    let session = signed_in(&app, token).await;
    let resp = client()
        .post(app.url("/logg-ut"))
        .header(COOKIE, format!("ia_session={session}"))
        .form(&[("csrf", "")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let refusal = app.last_audit().await;
    assert_eq!(refusal.route, "/logg-ut");
    assert_eq!(
        refusal.actor_name.as_deref(),
        Some(app.direktorat.info.name.as_str()),
        "the refusal names the session's caller"
    );
    assert_eq!(home(&app, &session).await.0, StatusCode::OK);
}

/// Signs out with the session's own CSRF token: whether the session then ended.
pub(crate) async fn sign_out(app: &TestApp, session: &str) -> bool {
    let (status, html) = home(app, session).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let resp = client()
        .post(app.url("/logg-ut"))
        .header(COOKIE, format!("ia_session={session}"))
        .form(&[("csrf", csrf_field(&html).as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    home(app, session).await.0 == StatusCode::SEE_OTHER
}

async fn sign_out_and_revocation_end_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = signed_in(&app, &app.direktorat.secret).await;
    let (status, html) = home(&app, &session).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_field(&html);
    let resp = client()
        .post(app.url("/logg-ut"))
        .header(COOKIE, format!("ia_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/logg-inn");
    assert!(
        set_cookies(&resp)
            .iter()
            .any(|c| c.starts_with("ia_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(home(&app, &session).await.0, StatusCode::SEE_OTHER);

    // Revoking the token ends its sessions.
    let fylke = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let session = signed_in(&app, &fylke.secret).await;
    let (status, html) = home(&app, &session).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("fylke 46"), "{html}");
    let resp = app
        .as_direktorat(
            reqwest::Method::POST,
            &format!("/v1/tokens/{}/revoke", fylke.info.id),
        )
        .send()
        .await
        .expect("revoke");
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(home(&app, &session).await.0, StatusCode::SEE_OTHER);
}

async fn an_unknown_token_is_refused_and_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (csrf, pre) = sign_in_form(&app).await;
    let fake = format!("iarct_{}", "ab".repeat(32));
    for token in [fake.as_str(), "not a token"] {
        let resp = post_sign_in(&app, token, &csrf, &pre).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(cookie_value(&set_cookies(&resp), "ia_session").is_none());
        let html = resp.text().await.expect("body");
        assert!(html.contains("Ukjent eller tilbakekalt token"));
        assert!(!html.contains(token));
    }
    let last = app.last_audit().await;
    assert_eq!(last.route, "/logg-inn");
    assert_eq!(last.status, 401);
    // A forged session cookie is no session.
    assert_eq!(home(&app, &"ab".repeat(32)).await.0, StatusCode::SEE_OTHER);
    assert_eq!(home(&app, "short").await.0, StatusCode::SEE_OTHER);
}

/// A page with a session cookie, at `path`: status and body.
pub(crate) async fn page(app: &TestApp, session: &str, path: &str) -> (StatusCode, String) {
    let resp = client()
        .get(app.url(path))
        .header(COOKIE, format!("ia_session={session}"))
        .send()
        .await
        .expect("get");
    (resp.status(), resp.text().await.unwrap_or_default())
}

/// The directorate's trials page lists each trial with its state and next step, and the jobs
/// waiting (here no worker runs, so a POSTed run stays queued); other roles get 403, audited.
async fn the_trials_page_shows_states_next_steps_and_jobs(backend: Backend) {
    let app = TestApp::spawn_with_jobs(
        backend,
        ia_rct::jobs::JobConfig {
            workers: 0,
            ..ia_rct::jobs::JobConfig::default()
        },
    )
    .await;
    crate::analyses::trial_with_statistics(&app).await;
    app.trial_in_state("utkast-1", "draft", 0).await;
    let run = app
        .direktorat_call(
            reqwest::Method::POST,
            "/v1/trials/runs/analyses",
            Some(serde_json::json!({})),
            202,
        )
        .await;
    let job = run["job"].as_i64().expect("job id");
    let session = signed_in(&app, &app.direktorat.secret).await;
    let (status, html) = page(&app, &session, "/forsok").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("data-trial=\"runs\" data-state=\"randomized\""),
        "{html}"
    );
    assert!(html.contains("data-trial=\"utkast-1\" data-state=\"draft\""));
    assert!(html.contains("Ferdigstill og registrer protokollen"));
    assert!(html.contains("Les inn oppfølgingsstatistikk og analyser"));
    assert!(
        html.contains(&format!("data-job=\"{job}\" data-state=\"queued\"")),
        "{html}"
    );
    let last = app.last_audit().await;
    assert_eq!((last.route.as_str(), last.status), ("/forsok", 200));

    // Not for a fylke or a researcher; the refusal is audited.
    let fylke = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    for token in [&fylke, &forsker] {
        let session = signed_in(&app, &token.secret).await;
        let (status, html) = page(&app, &session, "/forsok").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!html.contains("data-trial"), "{html}");
        let last = app.last_audit().await;
        assert_eq!((last.route.as_str(), last.status), ("/forsok", 403));
        assert_eq!(last.actor_name.as_deref(), Some(token.info.name.as_str()));
    }
    // Without a session: to the sign-in form.
    let resp = client().get(app.url("/forsok")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

/// The report, read by a researcher from a stored run: the protocol's hash, the run's hash, the
/// estimates the API gives, and the event-study plot with the API's coefficients as its points;
/// it downloads as one file; a fylke gets 403.
async fn the_report_shows_the_stored_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    crate::analyses::trial_with_statistics(&app).await;
    let run = app
        .direktorat_call(
            reqwest::Method::POST,
            "/v1/trials/runs/analyses",
            Some(serde_json::json!({})),
            202,
        )
        .await;
    let id = run["id"].as_i64().expect("run id");
    let done = crate::analyses::finished(&app, id).await;
    assert_eq!(done["state"], "done", "{done}");
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let (_, api) = crate::helpers::get_as(
        &app,
        &forsker.secret,
        &format!("/v1/trials/runs/analyses/{id}"),
    )
    .await;
    // Two firms of one arm received help: a count a researcher must see as "<5".
    let assigned = app
        .direktorat_call(
            reqwest::Method::GET,
            "/v1/trials/runs/assignments?limit=10000",
            None,
            200,
        )
        .await;
    let helped_arm = "bred_prosess";
    let helped: Vec<&str> = assigned["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .filter(|a| a["arm"] == helped_arm)
        .filter_map(|a| a["orgnr"].as_str())
        .take(2)
        .collect();
    assert_eq!(helped.len(), 2);
    let takeup: String = helped
        .iter()
        .map(|o| format!("{o},KONTAKTET,2025-01-10\n{o},AKTIV,2025-02-01\n"))
        .collect();
    let resp = app
        .as_direktorat(reqwest::Method::POST, "/v1/trials/runs/takeup")
        .header("content-type", "text/csv")
        .body(format!("orgnr,status,dato\n{takeup}"))
        .send()
        .await
        .expect("takeup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let session = signed_in(&app, &forsker.secret).await;
    let (status, html) = page(&app, &session, "/forsok/runs/rapport").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!(
            "data-stage=\"received\" data-arm=\"{helped_arm}\" data-count=\"&lt;5\""
        )),
        "two firms helped read <5 to a researcher"
    );
    let direktorat = signed_in(&app, &app.direktorat.secret).await;
    let (_, open) = page(&app, &direktorat, "/forsok/runs/rapport").await;
    assert!(open.contains(&format!(
        "data-stage=\"received\" data-arm=\"{helped_arm}\" data-count=\"2\""
    )));
    let trial = app
        .direktorat_call(reqwest::Method::GET, "/v1/trials/runs", None, 200)
        .await;
    let hash = trial["content_hash"].as_str().expect("hash");
    assert!(html.contains(hash), "the protocol hash");
    let sha = done["result_sha256"].as_str().expect("sha");
    assert!(html.contains(&format!("data-result-sha256=\"{sha}\"")));
    // Every main estimate the API gives the researcher is a row with its own value.
    let estimates = api["result"]["estimates"].as_array().expect("estimates");
    let main: Vec<&serde_json::Value> = estimates
        .iter()
        .filter(|e| matches!(e["term"].as_str(), Some("z" | "d")))
        .collect();
    assert!(!main.is_empty());
    for e in &main {
        let row = format!(
            "data-arm=\"{}\" data-estimator=\"{}\" data-weights=\"{}\" data-se-type=\"{}\" data-estimate=\"{}\"",
            e["arm"].as_str().unwrap_or(""),
            e["estimator"].as_str().unwrap_or(""),
            e["weights"].as_str().unwrap_or(""),
            e["se_type"].as_str().unwrap_or(""),
            e["estimate"]
        );
        assert!(html.contains(&row), "{row}");
    }
    assert_eq!(html.matches("\" data-se-type=\"").count(), main.len());
    // The event-study plot's points are the API's coefficients (firm, CR1), arm by arm.
    let arm = main[0]["arm"].as_str().expect("arm");
    let want: Vec<(i64, String)> = estimates
        .iter()
        .filter(|e| {
            e["estimator"] == "event_study"
                && e["weights"] == "firm"
                && e["se_type"] == "CR1"
                && e["arm"] == arm
        })
        .map(|e| {
            (
                e["event_time"].as_i64().expect("e"),
                e["estimate"].to_string(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    let figure = html
        .split("<figure data-arm=")
        .find(|f| f.starts_with(&format!("\"{arm}\"")))
        .expect("the arm's figure");
    for (e, est) in &want {
        assert!(
            figure.contains(&format!("data-e=\"{e}\" data-estimate=\"{est}\"")),
            "e={e} {est}"
        );
    }
    assert_eq!(figure.matches("<g class=\"coef\"").count(), want.len());
    assert!(figure.contains("Pre-trend-test: F("));

    // The CONSORT flow: each arm's randomized and analysed counts are the API's, as the
    // researcher reads them (masked), in the diagram and in its table.
    let (_, balance) =
        crate::helpers::get_as(&app, &forsker.secret, "/v1/trials/runs/balance").await;
    let attrition = api["result"]["attrition"].as_array().expect("attrition");
    let consort = html
        .split("<section id=\"consort\"")
        .nth(1)
        .expect("a CONSORT section");
    for (arm, n) in balance["consort"]["randomized_per_arm"]
        .as_object()
        .expect("per arm")
    {
        let n = n
            .as_u64()
            .map_or_else(|| n.as_str().unwrap_or("").to_owned(), |n| n.to_string());
        assert!(
            consort.contains(&format!(
                "data-stage=\"randomized\" data-arm=\"{arm}\" data-count=\"{}\"",
                n.replace('<', "&lt;")
            )),
            "{arm} {n}"
        );
        let analysed = attrition
            .iter()
            .find(|a| a["arm"] == arm.as_str())
            .map(|a| a["with_post_data"].to_string().trim_matches('"').to_owned())
            .expect("attrition row");
        assert!(
            consort.contains(&format!(
                "data-stage=\"analysed\" data-arm=\"{arm}\" data-count=\"{}\"",
                analysed.replace('<', "&lt;")
            )),
            "{arm} analysed {analysed}"
        );
    }
    let assessed = balance["consort"]["assessed"].to_string();
    assert!(consort.contains(&format!(
        "data-stage=\"assessed\" data-count=\"{assessed}\""
    )));
    // The balance table: a row per covariate the API lists.
    for c in balance["table"]["covariates"]
        .as_array()
        .expect("covariates")
    {
        let name = c["covariate"].as_str().expect("name");
        assert!(
            html.contains(&format!("<tr data-covariate=\"{name}\">")),
            "{name}"
        );
    }

    // The quarterly rate by arm: each arm's points are the API's rates (as the researcher reads
    // them), in quarter order, and the randomization quarter is marked.
    let (_, outcomes) =
        crate::helpers::get_as(&app, &forsker.secret, "/v1/trials/runs/outcomes/summary").await;
    let rates = html
        .split("<section id=\"sykefravaer\"")
        .nth(1)
        .expect("a rate section");
    let quarters = outcomes["quarters"].as_array().expect("quarters");
    let mut labels: Vec<&str> = quarters
        .iter()
        .filter_map(|q| q["kvartal"].as_str())
        .collect();
    labels.sort_by_key(|k| {
        let (y, q) = k.split_once('K').expect("YYYYKq");
        (
            y.parse::<i32>().expect("year"),
            q.parse::<i32>().expect("q"),
        )
    });
    labels.dedup();
    let arm_points = |arm: &str| -> Vec<String> {
        let group = rates
            .split("<g class=\"series ")
            .find(|g| g.contains(&format!("data-name=\"{arm}\"")))
            .expect("the arm's line");
        group
            .split("data-x=\"")
            .skip(1)
            .map(|p| {
                let x = p.split('"').next().unwrap_or("");
                let y = p
                    .split("data-y=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next());
                format!("{x} {}", y.unwrap_or(""))
            })
            .collect()
    };
    let mut shown = 0;
    for arm in ["kontroll", main[0]["arm"].as_str().expect("arm")] {
        let want: Vec<String> = quarters
            .iter()
            .filter(|q| q["arm"] == arm)
            .filter_map(|q| {
                let k = q["kvartal"].as_str()?;
                let x = labels.iter().position(|l| *l == k)?;
                let y = q["sykefravar_prosent"].as_f64()?;
                Some(format!("{x} {y}"))
            })
            .collect();
        assert!(!want.is_empty(), "{arm}");
        shown += want.len();
        assert_eq!(arm_points(arm), want, "{arm}");
    }
    assert!(shown > 0);
    assert!(
        rates.contains("<g class=\"mark\""),
        "the randomization quarter"
    );

    // One self-contained file to download.
    let resp = client()
        .get(app.url("/forsok/runs/rapport?last-ned=1"))
        .header(COOKIE, format!("ia_session={session}"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"rapport-runs.html\""
    );
    let file = resp.text().await.expect("body");
    assert!(!file.contains("<script") && !file.contains("src=\"http"));
    // A link may only carry its content inline (the icon is `data:,`).
    assert!(
        file.split("<link").skip(1).all(|l| l
            .split('>')
            .next()
            .is_some_and(|tag| tag.contains("href=\"data:"))),
        "a link to another file"
    );
    assert!(!file.contains("Logg ut"), "no sign-out form in the file");

    // Every read is audited, with its trial.
    let last = app.last_audit().await;
    assert_eq!(
        (last.route.as_str(), last.status, last.trial_id.as_deref()),
        ("/forsok/{id}/rapport", 200, Some("runs"))
    );
    assert_eq!(last.actor_name.as_deref(), Some("Forsker"));

    // Not for a fylke.
    let fylke = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let session = signed_in(&app, &fylke.secret).await;
    assert_eq!(
        page(&app, &session, "/forsok/runs/rapport").await.0,
        StatusCode::FORBIDDEN
    );
}

crate::on_both_backends!(
    the_report_shows_the_stored_run,
    the_trials_page_shows_states_next_steps_and_jobs,
    sign_in_sets_a_strict_http_only_session,
    a_form_without_its_csrf_token_is_refused,
    sign_out_and_revocation_end_the_session,
    an_unknown_token_is_refused_and_audited,
);
