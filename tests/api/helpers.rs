//! Test harness: a real server on `127.0.0.1:0` over a fresh database per test, on SQLite always and
//! on PostgreSQL when `IA_RCT_TEST_POSTGRES_URL` is set.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ia_rct::auth::{TokenSpec, generate_token};
use ia_rct::config::HttpConfig;
use ia_rct::domain::{FylkeCode, Role};
use ia_rct::http::{AppState, app};
use ia_rct::storage::{self, NewAuditEntry, NewToken, Store, StoreOptions, TokenInfo};
use serde_json::Value;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// The environment variable that points the tests at a PostgreSQL server (an admin URL; each test
/// creates and drops its own database there).
pub const POSTGRES_ENV: &str = "IA_RCT_TEST_POSTGRES_URL";

pub use ia_rct::storage::Backend;

/// Runs `test` once on SQLite and once on PostgreSQL, as `<test>::sqlite` and `<test>::postgres`.
/// The PostgreSQL variant is `#[ignore]`d (reported as ignored, not as a pass) unless
/// `IA_RCT_TEST_POSTGRES_URL` was set when the tests were built (`build.rs` sets
/// `cfg(ia_rct_postgres_tests)` then, and rebuilds when the variable changes); when it is set, the
/// variant fails (never skips) if the server cannot be used.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(ia_rct_postgres_tests),
                    ignore = "set IA_RCT_TEST_POSTGRES_URL to run the PostgreSQL variant"
                )]
                async fn postgres() {
                    super::$test($crate::helpers::Backend::Postgres).await;
                }
            }
        )+
    };
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{}{}", &base[..host_end], name, query)
}

/// A fresh, empty database for one test; dropped (PostgreSQL) or deleted (SQLite) afterwards.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// SQLite: the folder holding the file. Kept until the test ends.
    pub dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin URL and the database name, to drop it afterwards.
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("ia-rct.db").display());
                TestDb {
                    backend,
                    url,
                    dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url().unwrap_or_else(|| {
                    panic!(
                        "{POSTGRES_ENV} was set when the tests were built but is not set now: \
                         run them with it set, or rebuild without it"
                    )
                });
                let name = format!("ia_rct_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{POSTGRES_ENV} is set but PostgreSQL is not reachable there: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                TestDb {
                    backend,
                    url: with_database(&admin, &name),
                    dir: None,
                    pg: Some((admin, name)),
                }
            }
        }
    }

    /// Opens a store on this database and migrates it.
    pub async fn store(&self) -> Arc<dyn Store> {
        storage::connect(&self.url, StoreOptions::default())
            .await
            .expect("open test store")
    }

    /// Drops the PostgreSQL database now (used to make the database "go away").
    pub async fn drop_postgres_database(&self) {
        if let Some((admin, name)) = &self.pg {
            drop_pg(admin, name).await;
        }
    }
}

async fn drop_pg(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        conn.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs inside the test's runtime; use a runtime of our own on another thread.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_pg(&admin, &name));
                }
            })
            .join();
        }
    }
}

/// A token created for a test, with its secret.
pub struct TestToken {
    pub secret: String,
    pub info: TokenInfo,
}

/// Creates a token directly in the store (as `ia-rct token create` does).
pub async fn make_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    fylke: Option<&str>,
) -> TestToken {
    let fylke: Option<FylkeCode> = fylke.map(|f| f.parse().expect("fylke code"));
    let spec = TokenSpec::new(name, role, fylke).expect("valid token spec");
    let generated = generate_token().expect("entropy");
    let new = NewToken {
        name: spec.name,
        role: spec.role,
        fylke: spec.fylke,
        hash: generated.hash,
        created_by: "test".into(),
    };
    let audit = NewAuditEntry::now("TEST", "make_token", "helpers::make_token");
    let info = store
        .create_token(&new, &audit)
        .await
        .expect("create token")
        .value;
    TestToken {
        secret: generated.secret,
        info,
    }
}

/// A running service on `127.0.0.1:0`, in this process.
pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub direktorat: TestToken,
    /// The application's state (its job workers: `state.jobs`).
    pub state: AppState,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, HttpConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, config: HttpConfig) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        Self::serve(db, store, config).await
    }

    /// A test app whose job workers run with `jobs` (`workers: 0` runs none).
    pub async fn spawn_with_jobs(backend: Backend, jobs: ia_rct::jobs::JobConfig) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        Self::serve_with_jobs(db, store, HttpConfig::default(), jobs).await
    }

    /// Serves `store` (opened on `db`, by whatever connection the test chose) with a direktorat
    /// token created through it.
    pub async fn serve(db: TestDb, store: Arc<dyn Store>, config: HttpConfig) -> TestApp {
        Self::serve_with_jobs(db, store, config, ia_rct::jobs::JobConfig::default()).await
    }

    /// [`TestApp::serve`] with job workers configured by `jobs`.
    pub async fn serve_with_jobs(
        db: TestDb,
        store: Arc<dyn Store>,
        config: HttpConfig,
        jobs: ia_rct::jobs::JobConfig,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = AppState::with_jobs(store.clone(), config, jobs);
        let router = app(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("server");
        });
        let direktorat = make_token(
            store.as_ref(),
            "Direktoratet (test)",
            Role::Direktorat,
            None,
        )
        .await;
        TestApp {
            base: format!("http://{addr}"),
            store,
            client: waiting_client(),
            state,
            db,
            direktorat,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request as the test's direktorat token.
    pub fn as_direktorat(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.direktorat.secret)
    }

    /// The number of audit rows (tests stay well under the 1000 one query returns).
    pub async fn audit_count(&self) -> usize {
        let n = self
            .store
            .query_audit(&storage::AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("query audit")
            .len();
        assert!(n < 1000, "audit_count only counts up to 1000 rows");
        n
    }

    /// The newest audit row.
    pub async fn last_audit(&self) -> storage::AuditEntry {
        self.store
            .query_audit(&storage::AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("query audit")
            .into_iter()
            .next()
            .expect("an audit row")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Asserts the error envelope: status, code, and a non-empty message; returns the envelope.
#[track_caller]
pub fn assert_envelope(status: reqwest::StatusCode, body: &Value, expected: u16, code: &str) {
    assert_eq!(status.as_u16(), expected, "status; body: {body}");
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` in {body}"));
    assert_eq!(error["code"], code, "code in {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert!(
        error.get("details").is_some_and(Value::is_object),
        "details in {body}"
    );
}

/// The `ia-rct` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ia-rct");

/// A child `ia-rct serve` process, with its output lines forwarded to channels.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub base: String,
    pub stderr: mpsc::UnboundedReceiver<String>,
}

impl ServerProcess {
    /// Starts `ia-rct serve --bind 127.0.0.1:0` on `url` with extra environment, and waits for
    /// its listening line.
    pub async fn start(url: &str, env: &[(&str, &str)]) -> ServerProcess {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(["--database-url", url, "serve", "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn ia-rct serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (err_tx, err_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[ia-rct] {line}");
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), out.next_line())
            .await
            .expect("ia-rct serve did not start within 60 s")
            .expect("read stdout")
            .expect("ia-rct serve exited before listening");
        let base = line
            .strip_prefix("ia-rct listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        ServerProcess {
            child,
            base,
            stderr: err_rx,
        }
    }

    /// Waits until a stderr line contains `needle`.
    pub async fn wait_for_log(&mut self, needle: &str) {
        let wait = async {
            while let Some(line) = self.stderr.recv().await {
                if line.contains(needle) {
                    return;
                }
            }
            panic!("ia-rct exited without logging `{needle}`");
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("no log line with `{needle}` within 30 s"));
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("child still running")
    }
}

/// The seed every test protocol commits to for wave 1 (and `test-seed-2` for wave 2).
pub const TEST_SEED: &str = "test-seed";

/// `protocols/nals-arbeidsformer.toml` as JSON, with its id replaced and its seed commitments set
/// to `TEST_SEED` and `test-seed-2`.
pub fn test_protocol(id: &str) -> Value {
    use sha2::Digest;
    let text = std::fs::read_to_string("protocols/nals-arbeidsformer.toml").expect("protocol");
    let protocol = ia_rct::protocol::Protocol::from_toml(&text).expect("valid");
    let mut value = serde_json::to_value(&protocol).expect("json");
    value["id"] = Value::from(id);
    value["seed"]["sha256"] = serde_json::json!([
        hex::encode(sha2::Sha256::digest(TEST_SEED.as_bytes())),
        hex::encode(sha2::Sha256::digest(b"test-seed-2")),
    ]);
    value
}

/// A synthetic register of `n` firms as CSV.
pub fn test_register(n: usize, seed: u64) -> String {
    ia_rct::simulate::register_csv(&ia_rct::simulate::register(n, seed))
}

impl TestApp {
    /// Sends a request as the direktorat and asserts its status.
    pub async fn direktorat_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let mut request = self.as_direktorat(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, expected, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a trial from [`test_protocol`] and moves it to `state` (`draft`, `registered`,
    /// `enrolling`, or `randomized` with `firms` enrolled and drawn).
    pub async fn trial_in_state(&self, id: &str, state: &str, firms: usize) -> Value {
        use reqwest::Method;
        let mut trial = self
            .direktorat_call(Method::POST, "/v1/trials", Some(test_protocol(id)), 201)
            .await;
        let steps: &[&str] = match state {
            "draft" => &[],
            "registered" => &["registered"],
            "enrolling" | "randomized" => &["registered", "enrolling"],
            other => panic!("no fixture for state {other}"),
        };
        for to in steps {
            trial = self
                .direktorat_call(
                    Method::POST,
                    &format!("/v1/trials/{id}/transitions"),
                    Some(serde_json::json!({ "to": to })),
                    200,
                )
                .await;
        }
        if firms > 0 {
            self.enroll_csv(id, &test_register(firms, 11), 201).await;
        }
        if state == "randomized" {
            self.randomize(id).await;
        }
        trial
    }

    /// Draws the open wave of trial `id` with [`TEST_SEED`] as the direktorat (201); the draw.
    pub async fn randomize(&self, id: &str) -> Value {
        self.direktorat_call(
            reqwest::Method::POST,
            &format!("/v1/trials/{id}/randomize"),
            Some(serde_json::json!({ "seed": TEST_SEED })),
            201,
        )
        .await
    }

    /// Uploads NAV statistics as DVH CSV as the direktorat and asserts the status.
    pub async fn statistics_csv(&self, csv: String, expected: u16) -> Value {
        let response = self
            .as_direktorat(reqwest::Method::POST, "/v1/statistics")
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, expected, "statistics upload: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Uploads a register CSV to a trial's enrollment as the direktorat.
    pub async fn enroll_csv(&self, id: &str, csv: &str, expected: u16) -> Value {
        let response = self
            .as_direktorat(
                reqwest::Method::POST,
                &format!("/v1/trials/{id}/enrollment"),
            )
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, expected, "enrollment: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// The trial's randomized firms in `fylke`, as (orgnr, arm), read from the store.
pub async fn firms_of(app: &TestApp, id: &str, fylke: &str) -> Vec<(String, String)> {
    app.store
        .assignments(id, Some(fylke.parse().expect("fylke")), None, 10_000)
        .await
        .expect("assignments")
        .into_iter()
        .map(|a| (a.orgnr.to_string(), a.arm))
        .collect()
}

/// POSTs `csv` to `path` with `secret`; the status and the JSON body.
pub async fn post_csv(app: &TestApp, secret: &str, path: &str, csv: String) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(secret)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// GETs `path` with `secret`; the status and the JSON body (a body that is not JSON panics,
/// naming the path).
pub async fn get_as(app: &TestApp, secret: &str, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(secret)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, body)
}

/// A client that asks every request to wait for its result (`Prefer: wait=60`, RFC 7240): `GET
/// …/estimates` then answers 200 once its analysis run is done, instead of 202 at once.
pub fn waiting_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "prefer",
        reqwest::header::HeaderValue::from_static("wait=60"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}
