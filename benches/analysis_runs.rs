//! An analysis run at register scale through the service, and the API's responsiveness while it
//! computes. Times itself (no Criterion: one run is the measurement).
//!
//! Needs a database with a randomized trial and its statistics, as `ia-rct demo` leaves one:
//! `ia-rct demo --firms 290000 --dir D` (about 100,000 randomized firms, 20 quarters) gives
//! `sqlite://D/ia-rct-demo.db`; `--database-url postgres://…` the same on PostgreSQL. Then
//!
//! ```sh
//! IA_RCT_BENCH_DATABASE_URL=sqlite://D/ia-rct-demo.db cargo bench --bench analysis_runs
//! ```
//!
//! It serves the database on `127.0.0.1:0` with the default worker pool, POSTs an analysis run
//! whose key has no run yet (`BENCH_OPTIONS`, JSON, default every estimator, both weightings and
//! CR2; when that run exists, the first of a few other option sets that has none), and while the
//! job computes it reads, over HTTP, the trial, the job and the list of runs (`BENCH_READERS`
//! clients, default 4, each every 50 ms). It prints when each stage of the job started (load,
//! estimate, store), the time from POST to done, the reads' p50, p99 and max, and then the p50 and
//! p99 of 100 repeated identical POSTs (which return the stored run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ia_rct::auth::generate_token;
use ia_rct::config::HttpConfig;
use ia_rct::domain::Role;
use ia_rct::http::{AppState, app};
use ia_rct::storage::{self, NewAuditEntry, NewToken, Store, StoreOptions};
use serde_json::{Value, json};

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "n {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

#[tokio::main]
async fn main() {
    // The service's warnings (RUST_LOG to change), so a refused read says why.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let Ok(url) = std::env::var("IA_RCT_BENCH_DATABASE_URL") else {
        eprintln!(
            "analysis_runs: set IA_RCT_BENCH_DATABASE_URL to a database `ia-rct demo` filled \
             (e.g. ia-rct demo --firms 290000 --dir D, then sqlite://D/ia-rct-demo.db); skipped"
        );
        return;
    };
    let store: Arc<dyn Store> = storage::connect(&url, StoreOptions::default())
        .await
        .expect("open the database");
    let trials = store.list_trials().await.expect("trials");
    let trial = trials
        .first()
        .expect("a trial (run ia-rct demo first)")
        .id
        .clone();
    let token = generate_token().expect("entropy");
    store
        .create_token(
            &NewToken {
                name: format!("bench {}", &token.hash[..12]),
                role: Role::Direktorat,
                fylke: None,
                hash: token.hash.clone(),
                created_by: "bench".into(),
            },
            &NewAuditEntry::now("BENCH", "bench", "bench"),
        )
        .await
        .expect("token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app(AppState::new(Arc::clone(&store), HttpConfig::default()));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let secret = token.secret.clone();
    let post = |body: Value| {
        let request = client
            .post(format!("{base}/v1/trials/{trial}/analyses"))
            .bearer_auth(&secret)
            .json(&body);
        async move {
            let response = request.send().await.expect("post");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };

    let mut candidates: Vec<Value> = match std::env::var("BENCH_OPTIONS") {
        Ok(text) => vec![serde_json::from_str(&text).expect("BENCH_OPTIONS is JSON")],
        Err(_) => Vec::new(),
    };
    candidates.extend([
        json!({}),
        json!({"weights": "both"}),
        json!({"weights": "firm"}),
        json!({"weights": "dagsverk"}),
        json!({"weights": "both", "cr2": false}),
        json!({"estimator": "itt_ancova,did_twfe,event_study"}),
    ]);
    let mut started = None;
    for body in candidates {
        let at = Instant::now();
        let (status, run) = post(body.clone()).await;
        if status == 202 && run["state"] == "queued" {
            started = Some((body, run, at));
            break;
        }
    }
    let Some((body, run, posted)) = started else {
        eprintln!("analysis_runs: every option set already has a run on this database");
        return;
    };
    let job = run["job"].as_i64().expect("job");
    println!(
        "trial {trial}: analysis run {} (job {job}) with {body}",
        run["id"]
    );

    // Readers while it computes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: usize = std::env::var("BENCH_READERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4);
    let mut handles = Vec::new();
    for k in 0..readers {
        let client = client.clone();
        let secret = secret.clone();
        let stop = Arc::clone(&stop);
        let paths = [
            format!("{base}/v1/trials/{trial}"),
            format!("{base}/v1/jobs/{job}"),
            format!("{base}/v1/trials/{trial}/analyses"),
        ];
        handles.push(tokio::spawn(async move {
            let mut ms = Vec::new();
            let mut i = k;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let at = Instant::now();
                let response = client
                    .get(&paths[i % paths.len()])
                    .bearer_auth(&secret)
                    .send()
                    .await
                    .expect("read");
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.expect("body");
                ms.push(at.elapsed().as_secs_f64() * 1e3);
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ms
        }));
    }

    let mut stage = String::new();
    let done = loop {
        let j: Value = client
            .get(format!("{base}/v1/jobs/{job}"))
            .bearer_auth(&secret)
            .send()
            .await
            .expect("job")
            .json()
            .await
            .expect("json");
        let now = j["progress"]["stage"]
            .as_str()
            .unwrap_or("queued")
            .to_owned();
        if now != stage {
            println!("  {:>7.2} s  stage {now}", posted.elapsed().as_secs_f64());
            stage = now;
        }
        if !matches!(j["state"].as_str(), Some("queued" | "running")) {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let total = posted.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = Vec::new();
    for h in handles {
        reads.extend(h.await.expect("reader"));
    }
    println!(
        "POST to {}: {:.2} s; job elapsed {:.2} s",
        done["state"],
        total.as_secs_f64(),
        done["progress"]["elapsed_seconds"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    println!("reads while it ran ({readers} clients): {}", summary(reads));

    let mut repeats = Vec::new();
    for _ in 0..100 {
        let at = Instant::now();
        let (status, again) = post(body.clone()).await;
        repeats.push(at.elapsed().as_secs_f64() * 1e3);
        assert_eq!((status, &again["id"]), (200, &run["id"]), "{again}");
    }
    println!("repeated identical POST: {}", summary(repeats));
}
