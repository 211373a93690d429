//! What every API request pays before its handler's own work: bearer-token lookup, role check and
//! the audit-log insert (a committed, fsynced SQLite transaction), measured end to end over real
//! HTTP on `127.0.0.1`, plus one audited write (token creation: two inserts in one transaction).
//!
//! Run: `cargo bench --bench http`. PostgreSQL too when `IA_RCT_BENCH_POSTGRES_URL` names a
//! database to use (it is migrated and written to).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ia_rct::auth::generate_token;
use ia_rct::config::HttpConfig;
use ia_rct::domain::Role;
use ia_rct::http::{AppState, app};
use ia_rct::storage::{self, NewAuditEntry, NewToken, Store, StoreOptions};

struct Running {
    base: String,
    secret: String,
    client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

async fn start(url: Option<String>) -> Running {
    let (url, dir) = match url {
        Some(url) => (url, None),
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            (url, Some(dir))
        }
    };
    let store: Arc<dyn Store> = storage::connect(&url, StoreOptions::default())
        .await
        .expect("open store");
    let token = generate_token().expect("entropy");
    let name = format!("bench {}", &token.hash[..12]);
    let _token = store
        .create_token(
            &NewToken {
                name,
                role: Role::Direktorat,
                fylke: None,
                hash: token.hash.clone(),
                created_by: "bench".into(),
            },
            &NewAuditEntry::now("BENCH", "bench", "bench"),
        )
        .await
        .expect("token")
        .value;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app(AppState::new(store, HttpConfig::default()));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Running {
        base,
        secret: token.secret,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn bench_backend(c: &mut Criterion, label: &str, url: Option<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let running = rt.block_on(start(url));
    let mut group = c.benchmark_group(format!("http_{label}"));

    group.bench_function("healthz (no auth, no audit)", |b| {
        b.to_async(&rt).iter(|| async {
            let r = running
                .client
                .get(format!("{}/healthz", running.base))
                .send()
                .await
                .expect("send");
            black_box(r.status())
        });
    });

    group.bench_function("GET /v1/whoami (token lookup + audit insert)", |b| {
        b.to_async(&rt).iter(|| async {
            let r = running
                .client
                .get(format!("{}/v1/whoami", running.base))
                .bearer_auth(&running.secret)
                .send()
                .await
                .expect("send");
            black_box(r.status())
        });
    });

    let counter = std::sync::atomic::AtomicU64::new(0);
    group.bench_function("POST /v1/tokens (audited write transaction)", |b| {
        b.to_async(&rt).iter(|| async {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = running
                .client
                .post(format!("{}/v1/tokens", running.base))
                .bearer_auth(&running.secret)
                .json(&serde_json::json!({ "name": format!("bench token {n}"), "role": "forsker" }))
                .send()
                .await
                .expect("send");
            assert!(r.status().is_success(), "{}", r.status());
            black_box(r.status())
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_backend(c, "sqlite", None);
    if let Ok(url) = std::env::var("IA_RCT_BENCH_POSTGRES_URL") {
        bench_backend(c, "postgres", Some(url));
    }
}

criterion_group!(http, benches);
criterion_main!(http);
