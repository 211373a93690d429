//! Analysis runs and jobs: a run is computed once per key and stored with its hash, equals the
//! offline `ia-rct estimate` byte for byte, can be cancelled, survives a SIGKILL of its server,
//! and is shared by two server processes on one database.

use std::time::{Duration, Instant};

use ia_rct::domain::{Quarter, Role};
use ia_rct::jobs::JobConfig;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{BIN, Backend, ServerProcess, TestApp, make_token};
use crate::on_both_backends;

const TRIAL: &str = "runs";

/// NAV statistics for every randomized firm of `TRIAL`, 2023K1 to 2027K4, with an effect of -3
/// in `bred_prosess` from randomization (2025K1) on; `shift` changes every rate a little (a
/// revision, for a second vintage).
async fn statistics(app: &TestApp, shift: f64) -> String {
    let assigned = app
        .store
        .assignments(TRIAL, None, None, 10_000)
        .await
        .expect("assignments");
    let first: Quarter = "2023K1".parse().expect("quarter");
    let mut csv = String::from("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n");
    for (i, a) in assigned.iter().enumerate() {
        for t in 0..20 {
            if (i + t) % 37 == 0 {
                continue;
            }
            let q = first.plus(t as i32).expect("quarter");
            let effect = if t >= 8 && a.arm == "bred_prosess" {
                -3.0
            } else {
                0.0
            };
            let mulige = 100.0 + (i % 17) as f64 * 13.0;
            let rate = 6.0 + (i % 7) as f64 * 0.5 + ((i * 31 + t * 7) % 11) as f64 * 0.3 + effect;
            let tapte = mulige * (rate + shift) / 100.0;
            csv.push_str(&format!(
                "{},{},{},{tapte},{mulige},{}\n",
                a.orgnr,
                q.year(),
                q.quarter(),
                10 + i % 5
            ));
        }
    }
    csv
}

/// A randomized trial of 300 firms with one statistics upload (vintage 1); returns the CSV.
pub(crate) async fn trial_with_statistics(app: &TestApp) -> String {
    app.trial_in_state(TRIAL, "randomized", 300).await;
    let csv = statistics(app, 0.0).await;
    app.statistics_csv(csv.clone(), 201).await;
    csv
}

/// Polls a run until it is no longer queued or running.
pub(crate) async fn finished(app: &TestApp, run: i64) -> Value {
    let path = format!("/v1/trials/{TRIAL}/analyses/{run}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body = app.direktorat_call(Method::GET, &path, None, 200).await;
        if !matches!(body["state"].as_str(), Some("queued" | "running")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ia-rct estimate --format canonical` on the trial's protocol, published assignment and the
/// statistics files given, as of `vintage`.
async fn offline_canonical(app: &TestApp, stats: &[&str], vintage: i64) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    let trial = app
        .direktorat_call(Method::GET, &format!("/v1/trials/{TRIAL}"), None, 200)
        .await;
    let protocol = dir.path().join("protocol.json");
    std::fs::write(&protocol, trial["protocol"].to_string()).expect("write");
    let assignment = app
        .as_direktorat(
            Method::GET,
            &format!("/v1/trials/{TRIAL}/draws/1/assignment.csv"),
        )
        .send()
        .await
        .expect("assignment")
        .text()
        .await
        .expect("text");
    let assignment_path = dir.path().join("assignment.csv");
    std::fs::write(&assignment_path, assignment).expect("write");
    let mut command = std::process::Command::new(BIN);
    command
        .arg("estimate")
        .arg("--protocol")
        .arg(&protocol)
        .arg("--assignment")
        .arg(&assignment_path)
        .args(["--format", "canonical", "--vintage", &vintage.to_string()]);
    for (k, s) in stats.iter().enumerate() {
        let path = dir.path().join(format!("statistics-{k}.csv"));
        std::fs::write(&path, s).expect("write");
        command.arg("--stats").arg(path);
    }
    let out = command.output().expect("ia-rct estimate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Polls a run on the server at `base` until it is done.
async fn done_on(client: &reqwest::Client, base: &str, secret: &str, run: i64) -> Value {
    let url = format!("{base}/v1/trials/{TRIAL}/analyses/{run}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body: Value = client
            .get(&url)
            .bearer_auth(secret)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if body["state"] == "done" {
            return body;
        }
        assert!(Instant::now() < deadline, "run {run} is not done: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A run is stored once per key, with the SHA-256 of its canonical JSON, which is byte for byte
/// what `ia-rct estimate` prints from the same files; a second POST returns it without computing;
/// a new vintage gives a new run and the old one stays readable; every start and completion is
/// audited, and the roles hold.
async fn a_run_is_computed_once_and_equals_the_offline_estimate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let csv = trial_with_statistics(&app).await;
    let path = format!("/v1/trials/{TRIAL}/analyses");

    let response = app
        .as_direktorat(Method::POST, &path)
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let first: Value = response.json().await.expect("json");
    let run = first["id"].as_i64().expect("id");
    let job = first["job"].as_i64().expect("job");
    assert_eq!(location, format!("/v1/trials/{TRIAL}/analyses/{run}"));
    assert_eq!(first["location"], location);
    assert_eq!(first["vintage"], 1);
    assert_eq!(first["options"]["cr2"], true);

    let done = finished(&app, run).await;
    assert_eq!(done["state"], "done", "{done}");
    let sha = done["result_sha256"].as_str().expect("sha").to_owned();
    let result = &done["result"];
    assert!(
        result["estimates"].as_array().is_some_and(|e| e.len() > 20),
        "{done}"
    );

    // The same key again: the same run and job, nothing recomputed.
    let started = Instant::now();
    let again = app
        .direktorat_call(Method::POST, &path, Some(json!({})), 200)
        .await;
    eprintln!(
        "a repeated POST answered in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(
        (again["id"].as_i64(), again["job"].as_i64()),
        (Some(run), Some(job))
    );
    let spelled_out = app
        .direktorat_call(
            Method::POST,
            &path,
            Some(json!({"estimator": "all", "weights": "both", "cr2": true, "vintage": 1})),
            200,
        )
        .await;
    assert_eq!(
        spelled_out["id"].as_i64(),
        Some(run),
        "the defaults spelled out are the same key"
    );
    let jobs = app
        .direktorat_call(Method::GET, "/v1/jobs", None, 200)
        .await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs["jobs"][0]["attempts"], 1);

    // The stored bytes: their hash is the run's, and they are what the offline command prints.
    let stored = app
        .as_direktorat(Method::GET, &format!("{location}/result.json"))
        .send()
        .await
        .expect("result");
    assert_eq!(stored.status().as_u16(), 200);
    assert_eq!(
        stored.headers()["etag"].to_str().expect("etag"),
        format!("\"{sha}\"")
    );
    let stored = stored.bytes().await.expect("bytes").to_vec();
    assert_eq!(sha256_hex(&stored), sha);
    let offline = offline_canonical(&app, &[&csv], 1).await;
    assert!(
        offline == stored,
        "the offline estimate differs from the stored run:\n{}\n{}",
        String::from_utf8_lossy(&offline[..offline.len().min(600)]),
        String::from_utf8_lossy(&stored[..stored.len().min(600)])
    );

    // The database refuses to change or remove a completed run, whoever asks.
    for sql in [
        format!("UPDATE analysis_runs SET result = '{{}}' WHERE id = {run}"),
        format!("UPDATE analysis_runs SET job_id = NULL WHERE id = {run}"),
        format!("DELETE FROM analysis_runs WHERE id = {run}"),
    ] {
        let refused = match backend {
            Backend::Sqlite => {
                use sqlx::Connection;
                let mut conn = sqlx::SqliteConnection::connect(&app.db.url)
                    .await
                    .expect("db");
                sqlx::query(&sql).execute(&mut conn).await.err()
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("db");
                sqlx::query(&sql).execute(&mut conn).await.err()
            }
        };
        let error = refused.unwrap_or_else(|| panic!("the database ran {sql}"));
        assert!(error.to_string().contains("immutable"), "{sql}: {error}");
    }

    // GET …/estimates serves the run.
    let served = app
        .direktorat_call(
            Method::GET,
            &format!("/v1/trials/{TRIAL}/estimates"),
            None,
            200,
        )
        .await;
    assert_eq!(served["analysis"].as_i64(), Some(run));
    assert_eq!(served["result_sha256"], sha.as_str());

    // Start and completion are audited with the job, the run and the worker.
    let audit = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            trial_id: Some(TRIAL.into()),
            ..Default::default()
        })
        .await
        .expect("audit");
    let of = |route: &str| -> Vec<&ia_rct::storage::AuditEntry> {
        audit.iter().filter(|e| e.route == route).collect()
    };
    assert_eq!(of("job start").len(), 1, "{audit:?}");
    let finish = of("job finish");
    assert_eq!(finish.len(), 1, "{audit:?}");
    assert!(finish[0].object_ids.contains(&format!("job:{job}")));
    assert!(finish[0].object_ids.contains(&format!("analysis:{run}")));
    assert!(
        finish[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(&sha)),
        "{:?}",
        finish[0]
    );
    assert!(
        finish[0]
            .actor_name
            .as_deref()
            .is_some_and(|n| n.starts_with("worker:")),
        "{:?}",
        finish[0]
    );

    // A new vintage: a new run; the old one stays as it was.
    app.statistics_csv(statistics(&app, 0.25).await, 201).await;
    let second = app
        .direktorat_call(Method::POST, &path, Some(json!({})), 202)
        .await;
    let run2 = second["id"].as_i64().expect("id");
    assert_ne!(run2, run);
    assert_eq!(second["vintage"], 2);
    let done2 = finished(&app, run2).await;
    assert_eq!(done2["state"], "done");
    assert_ne!(done2["result_sha256"], sha.as_str());
    let old = finished(&app, run).await;
    assert_eq!(old["result_sha256"], sha.as_str());
    assert_eq!(old["result"], done["result"]);
    let list = app.direktorat_call(Method::GET, &path, None, 200).await;
    let ids: Vec<i64> = list["analyses"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![run2, run], "newest first");
    let latest = app
        .direktorat_call(
            Method::GET,
            &format!("/v1/trials/{TRIAL}/estimates"),
            None,
            200,
        )
        .await;
    assert_eq!(latest["analysis"].as_i64(), Some(run2));
    let pinned = app
        .direktorat_call(
            Method::GET,
            &format!("/v1/trials/{TRIAL}/estimates?vintage=1"),
            None,
            200,
        )
        .await;
    assert_eq!(pinned["analysis"].as_i64(), Some(run));

    // Roles: a researcher starts and reads runs; a fylke may not; the raw result is the
    // directorate's.
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let fylke = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let call = |secret: &str, method: Method, path: String| {
        let request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(secret);
        async move {
            request
                .json(&json!({}))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(&forsker.secret, Method::POST, path.clone()).await, 200);
    assert_eq!(
        call(&forsker.secret, Method::GET, location.clone()).await,
        200
    );
    assert_eq!(call(&fylke.secret, Method::POST, path.clone()).await, 403);
    assert_eq!(
        call(&fylke.secret, Method::GET, location.clone()).await,
        403
    );
    assert_eq!(
        call(
            &forsker.secret,
            Method::GET,
            format!("{location}/result.json")
        )
        .await,
        403
    );
    assert_eq!(
        call(&forsker.secret, Method::GET, "/v1/jobs".into()).await,
        403
    );
    assert_eq!(
        call(&forsker.secret, Method::DELETE, format!("/v1/jobs/{job}")).await,
        403,
        "a researcher cancels only their own jobs"
    );
    assert_eq!(
        call(
            &app.direktorat.secret,
            Method::DELETE,
            format!("/v1/jobs/{job}")
        )
        .await,
        409,
        "a finished job cannot be cancelled"
    );
}

/// A running job stops within a second of `DELETE /v1/jobs/{id}` and stays `cancelled`; a queued
/// one is cancelled at once; a POST of a cancelled run's key queues it again.
async fn a_cancel_stops_a_run_within_a_second(backend: Backend) {
    let app = TestApp::spawn_with_jobs(
        backend,
        JobConfig {
            workers: 1,
            pause: Some(Duration::from_secs(60)),
            ..JobConfig::default()
        },
    )
    .await;
    trial_with_statistics(&app).await;
    let path = format!("/v1/trials/{TRIAL}/analyses");
    let running = app
        .direktorat_call(Method::POST, &path, Some(json!({})), 202)
        .await;
    let queued = app
        .direktorat_call(Method::POST, &path, Some(json!({"weights": "firm"})), 202)
        .await;
    let (job, queued_job) = (
        running["job"].as_i64().expect("job"),
        queued["job"].as_i64().expect("job"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = app
            .direktorat_call(Method::GET, &format!("/v1/jobs/{job}"), None, 200)
            .await;
        if j["state"] == "running" && j["progress"]["stage"] == "pause (fault injection)" {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not start: {j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The second job waits behind the first (one worker): cancelled at once.
    let cancelled = app
        .direktorat_call(Method::DELETE, &format!("/v1/jobs/{queued_job}"), None, 200)
        .await;
    assert_eq!(cancelled["state"], "cancelled");

    let asked = Instant::now();
    let stopping = app
        .direktorat_call(Method::DELETE, &format!("/v1/jobs/{job}"), None, 202)
        .await;
    assert_eq!(stopping["cancel_requested"], true);
    let stopped = loop {
        let j = app
            .direktorat_call(Method::GET, &format!("/v1/jobs/{job}"), None, 200)
            .await;
        if j["state"] != "running" {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "still running: {j}"
        );
    };
    let took = asked.elapsed();
    eprintln!(
        "the job stopped {:.0} ms after the cancel",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(stopped["state"], "cancelled", "{stopped}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let run = finished(&app, running["id"].as_i64().expect("id")).await;
    assert_eq!(run["state"], "cancelled");
    assert!(run.get("result").is_none());
    let audit = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.route == "job finish"
                && e.detail.as_deref() == Some("analysis job cancelled")),
        "the cancellation's end is audited"
    );
    assert!(
        audit
            .iter()
            .filter(|e| e.route == "/v1/jobs/{job}" && e.method == "DELETE")
            .count()
            == 2,
        "both cancellations are audited"
    );

    // The cancelled run's key again: the same run, a new job.
    let again = app
        .direktorat_call(Method::POST, &path, Some(json!({})), 202)
        .await;
    assert_eq!(again["id"], running["id"]);
    assert_ne!(again["job"].as_i64(), Some(job));
}

/// A server SIGKILLed while a run computes: after the restart the run's job is claimed again once
/// its lease has expired, and completes with the hash the same data give offline.
async fn a_killed_server_requeues_its_run_with_the_same_result(backend: Backend) {
    let app = TestApp::spawn_with_jobs(
        backend,
        JobConfig {
            workers: 0,
            ..JobConfig::default()
        },
    )
    .await;
    let csv = trial_with_statistics(&app).await;
    let lease = ("IA_RCT_JOB_LEASE_SECS", "1");
    let mut first = ServerProcess::start(
        &app.db.url,
        &[lease, ("IA_RCT_FAULT_PAUSE_IN_JOB_MS", "60000")],
    )
    .await;
    let client = reqwest::Client::new();
    let post = client
        .post(format!("{}/v1/trials/{TRIAL}/analyses", first.base))
        .bearer_auth(&app.direktorat.secret)
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status().as_u16(), 202);
    let run: Value = post.json().await.expect("json");
    first
        .wait_for_log("fault injection: pausing inside a job")
        .await;
    first.child.start_kill().expect("SIGKILL");
    first.child.wait().await.expect("wait");

    let second = ServerProcess::start(&app.db.url, &[lease]).await;
    let run_id = run["id"].as_i64().expect("id");
    let done = done_on(&client, &second.base, &app.direktorat.secret, run_id).await;
    let job: Value = client
        .get(format!("{}/v1/jobs/{}", second.base, run["job"]))
        .bearer_auth(&app.direktorat.secret)
        .send()
        .await
        .expect("job")
        .json()
        .await
        .expect("json");
    assert_eq!(job["attempts"], 2, "started again after the kill: {job}");
    let offline = offline_canonical(&app, &[&csv], 1).await;
    assert_eq!(done["result_sha256"], sha256_hex(&offline).as_str());
    let starts: Vec<String> = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            route: Some("job start".into()),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .filter_map(|e| e.actor_name)
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_ne!(starts[0], starts[1], "two processes started it: {starts:?}");
}

/// Two server processes on one database share the queue: every job runs once, on one of them,
/// and when one dies mid-job the other finishes it after the lease.
async fn two_servers_share_one_queue(backend: Backend) {
    let app = TestApp::spawn_with_jobs(
        backend,
        JobConfig {
            workers: 0,
            ..JobConfig::default()
        },
    )
    .await;
    trial_with_statistics(&app).await;
    let env = [
        ("IA_RCT_JOB_LEASE_SECS", "1"),
        ("IA_RCT_FAULT_PAUSE_IN_JOB_MS", "1500"),
        ("IA_RCT_JOB_WORKERS", "2"),
    ];
    let a = ServerProcess::start(&app.db.url, &env).await;
    let b = ServerProcess::start(&app.db.url, &env).await;
    let client = reqwest::Client::new();
    let options = [
        json!({}),
        json!({"weights": "firm"}),
        json!({"weights": "dagsverk"}),
        json!({"estimator": "did_twfe"}),
    ];
    let mut runs = Vec::new();
    for (k, body) in options.iter().enumerate() {
        let base = if k % 2 == 0 { &a.base } else { &b.base };
        let response = client
            .post(format!("{base}/v1/trials/{TRIAL}/analyses"))
            .bearer_auth(&app.direktorat.secret)
            .json(body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 202);
        let run: Value = response.json().await.expect("json");
        runs.push(run["id"].as_i64().expect("id"));
    }
    for run in &runs {
        done_on(&client, &a.base, &app.direktorat.secret, *run).await;
    }
    let jobs = app
        .store
        .list_jobs(&ia_rct::storage::jobs::JobQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), 4);
    assert!(
        jobs.iter().all(|j| j.attempts == 1),
        "each job ran once: {jobs:?}"
    );
    let starts: Vec<(String, String)> = app
        .store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 1000,
            route: Some("job start".into()),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .map(|e| {
            (
                e.object_ids.first().cloned().unwrap_or_default(),
                e.actor_name.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(starts.len(), 4, "one start per job: {starts:?}");
    let workers: std::collections::BTreeSet<&String> = starts.iter().map(|(_, w)| w).collect();
    eprintln!("jobs started by {workers:?}");
    drop((a, b));
}

on_both_backends!(
    a_run_is_computed_once_and_equals_the_offline_estimate,
    a_cancel_stops_a_run_within_a_second,
    a_killed_server_requeues_its_run_with_the_same_result,
    two_servers_share_one_queue,
);
