//! Readers during uploads: 50 fylke clients read their own firms' assignments
//! (`GET /v1/trials/{id}/assignments`, each read audited with the firms it returned) while national
//! quarters of NAV statistics (250,000 firms each, from `ia_rct::simulate`, each a quarter new to the
//! register) are uploaded back to back. Reports every read's status and its latency: errors, p50,
//! p99 and max, on SQLite and, when `IA_RCT_BENCH_POSTGRES_URL` names a server (a database
//! `ia_rct_bench_<pid>` is created there and dropped after), on PostgreSQL.
//!
//! Each client reads once a second (`LOAD_INTERVAL_MS`), as fylke offices do, not in a closed loop:
//! 50 clients in a closed loop measure how many reads two cores serve beside an upload (their
//! latency is then 50 / throughput), not whether a read waits for the upload.
//!
//! Run: `cargo bench --bench upload_load`. Knobs: `LOAD_CLIENTS` (50), `LOAD_INTERVAL_MS` (1000),
//! `LOAD_QUARTERS` (4 national quarters), `LOAD_FIRMS` (250000 per quarter), `LOAD_TRIAL_FIRMS`
//! (20000 in the trial's register).
//! The server and the clients share one process and one tokio runtime (real HTTP on 127.0.0.1).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ia_rct::auth::generate_token;
use ia_rct::config::HttpConfig;
use ia_rct::domain::{FylkeCode, Role};
use ia_rct::http::{AppState, app};
use ia_rct::protocol::Protocol;
use ia_rct::simulate::{self, OutputFormat, Panel, StatsWriter};
use ia_rct::storage::{self, NewAuditEntry, NewToken, Store, StoreOptions};

const PROTOCOL: &str = include_str!("../protocols/nals-arbeidsformer.toml");

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn token(store: &dyn Store, name: &str, role: Role, fylke: Option<FylkeCode>) -> String {
    let token = generate_token().expect("entropy");
    store
        .create_token(
            &NewToken {
                name: name.to_owned(),
                role,
                fylke,
                hash: token.hash.clone(),
                created_by: "bench".into(),
            },
            &NewAuditEntry::now("BENCH", "bench", "bench"),
        )
        .await
        .expect("token");
    token.secret
}

async fn call(
    client: &reqwest::Client,
    url: String,
    secret: &str,
    content_type: &str,
    body: Vec<u8>,
    expected: u16,
) {
    let response = client
        .post(url.clone())
        .bearer_auth(secret)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, expected, "{url}: {}", &text[..text.len().min(500)]);
}

fn csv_of(rows: impl Iterator<Item = simulate::FirmQuarter>) -> Vec<u8> {
    let mut writer = StatsWriter::new(Vec::new(), OutputFormat::DvhCsv).expect("writer");
    for row in rows {
        writer.write(&row).expect("write");
    }
    writer.finish().expect("finish").0
}

struct Outcome {
    reads: Vec<(u16, Duration)>,
    uploads: Vec<Duration>,
    wall: Duration,
}

async fn run(
    url: &str,
    quarters: &[Vec<u8>],
    trial_firms: usize,
    clients: usize,
    interval: Duration,
) -> Outcome {
    let store: Arc<dyn Store> = storage::connect(url, StoreOptions::default())
        .await
        .expect("open store");
    let direktorat = token(store.as_ref(), "bench direktorat", Role::Direktorat, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app(AppState::new(Arc::clone(&store), HttpConfig::default()));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    // The trial: protocol, baseline statistics, enrollment, randomization (as `ia-rct demo`).
    let protocol = Protocol::from_toml(PROTOCOL).expect("protocol");
    let id = protocol.id.clone();
    call(
        &client,
        format!("{base}/v1/trials"),
        &direktorat,
        "application/toml",
        PROTOCOL.into(),
        201,
    )
    .await;
    for to in ["registered", "enrolling"] {
        let body = serde_json::to_vec(&serde_json::json!({ "to": to })).expect("json");
        call(
            &client,
            format!("{base}/v1/trials/{id}/transitions"),
            &direktorat,
            "application/json",
            body,
            200,
        )
        .await;
    }
    let firms = simulate::register(trial_firms, 1);
    let r = protocol.follow_up.randomization_quarter;
    let first = r
        .plus(-(protocol.follow_up.pre_quarters as i32))
        .expect("window")
        .min(protocol.baseline.from);
    let before = r.plus(-1).expect("quarter");
    let panel = Panel::new(
        &firms,
        1,
        first,
        u32::try_from(before - first + 1).expect("n"),
    )
    .expect("panel");
    let baseline = csv_of(panel.rows(None));
    call(
        &client,
        format!("{base}/v1/statistics"),
        &direktorat,
        "text/csv",
        baseline,
        201,
    )
    .await;
    let register = simulate::register_csv(&firms);
    call(
        &client,
        format!("{base}/v1/trials/{id}/enrollment"),
        &direktorat,
        "text/csv",
        register.into_bytes(),
        201,
    )
    .await;
    let seed = serde_json::to_vec(&serde_json::json!({ "seed": format!("{id}-demo-wave-1") }))
        .expect("json");
    call(
        &client,
        format!("{base}/v1/trials/{id}/randomize"),
        &direktorat,
        "application/json",
        seed,
        201,
    )
    .await;

    // One token per fylke; the clients take them in turn.
    let fylker: BTreeSet<FylkeCode> = firms.iter().map(|f| f.fylke).collect();
    let mut secrets = Vec::new();
    for f in &fylker {
        secrets.push(
            token(
                store.as_ref(),
                &format!("NAV {}", f.as_str()),
                Role::Fylke,
                Some(*f),
            )
            .await,
        );
    }

    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for c in 0..clients {
        let secret = secrets[c % secrets.len()].clone();
        let url = format!("{base}/v1/trials/{id}/assignments");
        let done = Arc::clone(&done);
        let client = client.clone();
        // Each client reads once per `interval`, the clients spread evenly over it.
        let offset = interval.mul_f64(c as f64 / clients as f64);
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !done.load(Ordering::Relaxed) {
                ticks.tick().await;
                let started = Instant::now();
                let status = match client.get(&url).bearer_auth(&secret).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                seen.push((status, started.elapsed()));
            }
            seen
        }));
    }
    let started = Instant::now();
    let mut uploads = Vec::new();
    for quarter in quarters {
        let t = Instant::now();
        call(
            &client,
            format!("{base}/v1/statistics"),
            &direktorat,
            "text/csv",
            quarter.clone(),
            201,
        )
        .await;
        uploads.push(t.elapsed());
    }
    done.store(true, Ordering::Relaxed);
    let wall = started.elapsed();
    let mut reads = Vec::new();
    for reader in readers {
        reads.extend(reader.await.expect("reader"));
    }
    store.close().await;
    Outcome {
        reads,
        uploads,
        wall,
    }
}

fn report(label: &str, outcome: &Outcome) {
    let mut latencies: Vec<Duration> = outcome.reads.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let errors = outcome.reads.iter().filter(|(s, _)| *s != 200).count();
    let uploads: Vec<String> = outcome
        .uploads
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64()))
        .collect();
    println!(
        "{label}: {} uploads back to back in {:.1} s (each {} s); {} reads, {errors} errors; \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        outcome.uploads.len(),
        outcome.wall.as_secs_f64(),
        uploads.join(", "),
        latencies.len(),
        at(0.50),
        at(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other filter argument is ignored.
    let clients = knob("LOAD_CLIENTS", 50);
    let n_quarters = knob("LOAD_QUARTERS", 4);
    let national = knob("LOAD_FIRMS", 250_000);
    let trial_firms = knob("LOAD_TRIAL_FIRMS", 20_000);
    let interval = Duration::from_millis(knob("LOAD_INTERVAL_MS", 1000) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // National quarters after everything the trial uploads: each is new to the register.
    let protocol = Protocol::from_toml(PROTOCOL).expect("protocol");
    let start = protocol.follow_up.randomization_quarter;
    let register = simulate::register(national, 2);
    let panel =
        Panel::new(&register, 2, start, u32::try_from(n_quarters).expect("n")).expect("panel");
    let quarters: Vec<Vec<u8>> = (0..n_quarters)
        .map(|k| {
            let q = start.plus(k as i32).expect("quarter");
            csv_of(panel.rows(None).filter(|row| row.quarter == q))
        })
        .collect();
    println!(
        "{clients} fylke clients, each reading its assignments every {} ms, of a {trial_firms}-firm \
         trial while {n_quarters} national quarters of {national} firms ({:.1} MB each) upload back \
         to back",
        interval.as_millis(),
        quarters.first().map_or(0, Vec::len) as f64 / 1e6
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("load.db").display());
    let outcome = rt.block_on(run(&url, &quarters, trial_firms, clients, interval));
    report("sqlite", &outcome);

    if let Some(admin) = std::env::var("IA_RCT_BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let name = format!("ia_rct_bench_{}", std::process::id());
        let (base, _) = admin.rsplit_once('/').expect("postgres://…/db");
        let url = format!("{base}/{name}");
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create");
            let outcome = run(&url, &quarters, trial_firms, clients, interval).await;
            report("postgres", &outcome);
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .expect("drop");
        });
    }
}
