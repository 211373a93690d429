//! `ia-rct demo`: the whole trial through the service's own HTTP routes (in process, with a
//! direktorat token), on an embedded SQLite database in a temporary folder or on the database that
//! `--database-url` names: register the protocol, ingest NAV statistics for the baseline, enroll a
//! simulated register, randomize with the protocol's published demonstration seed, ingest the
//! follow-up statistics (with known effects), and print the estimates a researcher would read.
//! Every input and output is written to the folder as it is made ([`KEPT`]); `--dir` keeps it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use crate::auth::{TokenSpec, generate_token};
use crate::config::HttpConfig;
use crate::domain::Role;
use crate::estimate::{Report, format_table};
use crate::http::{self, AppState};
use crate::progress::Snapshot;
use crate::protocol::Protocol;
use crate::randomization::files::read_assignment;
use crate::simulate::{self, Effects, OutputFormat, Panel, StatsWriter, Trial};
use crate::storage::{self, NewToken, Store, StoreOptions, redact_url};

use super::simulate::{DEFAULT_PROTOCOL, parse_effect};

/// Options of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Firms in the simulated register (about a third are eligible under the protocol).
    #[arg(long, default_value_t = 20_000)]
    pub firms: usize,
    /// Seed of the simulated register and statistics.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// True effects in percentage points per arm, from the randomization quarter on.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_effect,
        default_value = "bred_prosess=-0.8,ledere=-0.4,digital=-0.2"
    )]
    pub effect: Vec<(String, f64)>,
    /// Keep the files in this folder, and the SQLite database unless --database-url names another
    /// (default: a temporary folder, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the estimates as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Then keep the demo trial running: serve the API and the pages on --bind, print the report's
    /// address and sign-in tokens (direktorat, forsker, and the fylke with the most firms), and
    /// stop on Ctrl-C (the tokens end with it).
    #[arg(long)]
    pub serve: bool,
    /// With --serve: the address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0", requires = "serve")]
    pub bind: std::net::SocketAddr,
}

struct Client {
    app: axum::Router,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        expected: StatusCode,
    ) -> anyhow::Result<Vec<u8>> {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(Body::from(body))
            .context("request")?;
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .context("the service failed")?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .context("response body")?;
        if status != expected {
            bail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
            );
        }
        Ok(bytes.to_vec())
    }
}

fn step(started: Instant, what: &str) {
    eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
}

/// The share of firms offered help that take it, in the demo's simulated take-up.
const TAKEUP_RATE: f64 = 0.65;

/// Draws of the randomization inference the demo asks for (the API's default when `ri` is named).
const DEMO_RI_DRAWS: u64 = 10_000;

/// The SQLite database in the demo's folder when no `--database-url` is given.
pub const DATABASE_FILE: &str = "ia-rct-demo.db";

/// The files the demo writes to its folder, in the order it makes them, with what they hold.
pub const KEPT: [(&str, &str); 10] = [
    ("protocol.toml", "the protocol registered"),
    (
        "statistics-baseline.csv",
        "the baseline NAV statistics ingested (DVH CSV)",
    ),
    ("register.csv", "the firm register enrolled"),
    (
        "units.csv",
        "the draw's canonical unit list, as the service publishes it",
    ),
    (
        "assignment.csv",
        "the draw's assignment, as the service publishes it",
    ),
    ("seed.txt", "the wave's seed"),
    (
        "statistics-follow-up.csv",
        "the follow-up NAV statistics ingested, with the true effects",
    ),
    (
        "takeup.csv",
        "the take-up recorded (simulated: contacted, helped or declined)",
    ),
    ("estimates.json", "GET /v1/trials/{id}/estimates"),
    ("estimates.txt", "the estimates table printed"),
];

/// Runs `demo`, on `database_url` when it was given on the command line (the trial stays there),
/// otherwise on an embedded SQLite database in the demo's folder.
pub async fn run(args: DemoArgs, database_url: Option<&str>) -> anyhow::Result<()> {
    if args.firms < 100 {
        bail!("--firms must be at least 100 for a trial with strata");
    }
    // Refused before anything is created, as `ia-rct simulate` refuses it: an unknown arm, the control
    // arm or an arm given twice.
    let protocol = Protocol::from_toml(DEFAULT_PROTOCOL).context("the built-in protocol")?;
    let effects = Trial::effects_for(&protocol, &args.effect)?;
    let started = Instant::now();
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            (
                std::env::temp_dir().join(format!("ia-rct-demo-{}-{nanos}", std::process::id())),
                true,
            )
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let url = match database_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", dir.join(DATABASE_FILE).display()),
    };
    step(
        started,
        &match (database_url, temporary) {
            (None, true) => format!(
                "embedded SQLite database in a temporary folder, {} (removed at the end; --dir keeps it)",
                dir.display()
            ),
            (None, false) => format!(
                "embedded SQLite database {url}; files kept in {}",
                dir.display()
            ),
            (Some(url), _) => format!(
                "database {} (--database-url); files {} {}",
                redact_url(url),
                if temporary {
                    "in a temporary folder,"
                } else {
                    "kept in"
                },
                dir.display()
            ),
        },
    );
    if database_url.is_none()
        && std::env::var_os("IA_RCT_DATABASE_URL").is_some_and(|v| !v.is_empty())
    {
        eprintln!(
            "note: the demo does not use IA_RCT_DATABASE_URL (it would add a trial and simulated \
             statistics there for good); give --database-url to run it on that database"
        );
    }
    let result = open_and_run(&args, &effects, &dir, &url, started).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else if result.is_ok() {
        let database = match database_url {
            Some(url) => format!("the trial is in {}", redact_url(url)),
            None => format!("the database is {DATABASE_FILE}"),
        };
        eprintln!(
            "\nkept in {}: {database}; {}",
            dir.display(),
            KEPT.iter()
                .map(|(name, what)| format!("{name} ({what})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let d = dir.display();
        eprintln!(
            "re-derive the draw:  ia-rct verify --protocol {d}/protocol.toml --firms {d}/register.csv \
             --stats {d}/statistics-baseline.csv --seed \"$(cat {d}/seed.txt)\" --assignment {d}/assignment.csv"
        );
        eprintln!(
            "and the estimates:   ia-rct estimate --protocol {d}/protocol.toml --assignment {d}/assignment.csv \
             --stats {d}/statistics-baseline.csv --stats {d}/statistics-follow-up.csv \
             --takeup {d}/takeup.csv --ri-draws {DEMO_RI_DRAWS}"
        );
    }
    result
}

/// Writes one of the [`KEPT`] files.
fn keep(dir: &Path, name: &str, content: &[u8]) -> anyhow::Result<()> {
    debug_assert!(
        KEPT.iter().any(|(kept, _)| *kept == name),
        "{name} is listed in KEPT"
    );
    let path = dir.join(name);
    std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))
}

async fn open_and_run(
    args: &DemoArgs,
    effects: &BTreeMap<String, f64>,
    dir: &Path,
    url: &str,
    started: Instant,
) -> anyhow::Result<()> {
    let store = storage::connect(url, StoreOptions::default())
        .await
        .with_context(|| format!("could not open the database at {}", redact_url(url)))?;
    let result = match refuse_a_used_database(store.as_ref(), url).await {
        Ok(()) => demo(&store, args, effects, dir, started).await,
        Err(e) => Err(e),
    };
    store.close().await;
    result
}

/// The demo writes a trial and simulated statistics, which the database keeps for good (they are
/// never updated or deleted): it runs only on a database that holds neither yet.
async fn refuse_a_used_database(store: &dyn Store, url: &str) -> anyhow::Result<()> {
    let trials = store.list_trials().await?;
    let uploads = store.statistics_uploads(None).await?;
    if !trials.is_empty() || !uploads.is_empty() {
        bail!(
            "the database at {} already holds {} trial(s) and {} statistics upload(s); the demo \
             adds a trial and simulated NAV statistics that can never be removed, so it runs only \
             on a database without either (a new one, or no --database-url for a temporary one)",
            redact_url(url),
            trials.len(),
            uploads.len()
        );
    }
    Ok(())
}

async fn demo(
    store: &Arc<dyn Store>,
    args: &DemoArgs,
    effects: &BTreeMap<String, f64>,
    dir: &Path,
    started: Instant,
) -> anyhow::Result<()> {
    let (token, secret) = issue(store, "ia-rct demo", Role::Direktorat, None).await?;
    let state = AppState::new(Arc::clone(store), HttpConfig::default());
    let client = Client {
        app: http::app(state.clone()),
        token: secret,
    };
    let pool = Arc::clone(&state.jobs);
    let result = match walk(&client, args, effects, dir, started).await {
        Ok(id) if args.serve => serve(store, state, &id, args.bind, &client.token).await,
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    // The job workers stop before the store closes, on every path (a worker still polling a
    // closed pool would log an error as the demo ends).
    pool.shutdown().await;
    // The token's secret is gone with this process; revoked, it is listed as used and ended.
    revoke(store, token).await?;
    result
}

/// Creates a token for the demo; its id and secret.
async fn issue(
    store: &Arc<dyn Store>,
    name: &str,
    role: Role,
    fylke: Option<crate::domain::FylkeCode>,
) -> anyhow::Result<(i64, String)> {
    let generated = generate_token()?;
    let spec = TokenSpec::new(name, role, fylke).map_err(|e| anyhow::anyhow!("{e}"))?;
    let audit = super::cli_audit("token create", 201);
    let token = store
        .create_token(
            &NewToken {
                name: spec.name,
                role: spec.role,
                fylke: spec.fylke,
                hash: generated.hash,
                created_by: super::cli_operator(),
            },
            &audit,
        )
        .await?
        .value;
    Ok((token.id, generated.secret))
}

/// Revokes a token the demo created.
async fn revoke(store: &Arc<dyn Store>, id: i64) -> anyhow::Result<()> {
    let audit = super::cli_audit("token revoke", 200);
    store
        .revoke_token(id, &super::cli_operator(), &audit)
        .await
        .context("could not revoke a demo token")?;
    Ok(())
}

/// `--serve`: the API and the pages on `bind` over the demo's trial until Ctrl-C or SIGTERM, with
/// a token for each role printed (one line each, for people and scripts), then revoked.
async fn serve(
    store: &Arc<dyn Store>,
    state: AppState,
    id: &str,
    bind: std::net::SocketAddr,
    direktorat: &str,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("could not listen on {bind}"))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let mut per_fylke: BTreeMap<crate::domain::FylkeCode, usize> = BTreeMap::new();
    for count in store.assignment_counts(id).await? {
        *per_fylke.entry(count.fylke).or_default() += count.firms;
    }
    // The fylke with the most firms (the first by code on a tie).
    let fylke = per_fylke
        .iter()
        .max_by_key(|(f, n)| (**n, std::cmp::Reverse(**f)))
        .map(|(f, _)| *f)
        .context("the demo assigned no firms")?;
    let (forsker_id, forsker) = issue(store, "ia-rct demo (forsker)", Role::Forsker, None).await?;
    let (fylke_id, fylke_secret) = issue(
        store,
        &format!("ia-rct demo (NAV {})", fylke.name()),
        Role::Fylke,
        Some(fylke),
    )
    .await?;
    let base = format!("http://{addr}");
    out!(
        "\nThe demo trial is served at {base} until Ctrl-C. Open the report, sign in with a token \
         below (each role sees what the API gives it), and the fylke's page with the fylke token.\n\
         serving {base}\n\
         report {base}/forsok/{id}/rapport\n\
         sign-in {base}/logg-inn\n\
         token direktorat {direktorat}\n\
         token forsker {forsker}\n\
         token fylke:{f} {fylke_secret}\n\
         fylke-page {base}/forsok/{id}/fylke\n\
         ready\n",
        f = fylke.as_str(),
    );
    std::io::Write::flush(&mut std::io::stdout()).ok();
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            super::shutdown_signal().await;
            stopping.notify_one();
        }
    };
    let grace = std::time::Duration::from_secs(5);
    let served = tokio::select! {
        result = http::serve(listener, state, signal) => result.context("the HTTP server failed"),
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => Ok(()),
    };
    revoke(store, forsker_id).await?;
    revoke(store, fylke_id).await?;
    eprintln!("stopped; the demo's tokens are revoked");
    served
}

/// The trial's steps, through the service's routes.
async fn walk(
    client: &Client,
    args: &DemoArgs,
    effects_map: &BTreeMap<String, f64>,
    dir: &Path,
    started: Instant,
) -> anyhow::Result<String> {
    // The protocol.
    let protocol = Protocol::from_toml(DEFAULT_PROTOCOL).context("the built-in protocol")?;
    let id = protocol.id.clone();
    keep(dir, "protocol.toml", DEFAULT_PROTOCOL.as_bytes())?;
    client
        .call(
            Method::POST,
            "/v1/trials",
            "application/toml",
            DEFAULT_PROTOCOL.into(),
            StatusCode::CREATED,
        )
        .await?;
    for to in ["registered", "enrolling"] {
        client
            .call(
                Method::POST,
                &format!("/v1/trials/{id}/transitions"),
                "application/json",
                serde_json::to_vec(&serde_json::json!({ "to": to }))?,
                StatusCode::OK,
            )
            .await?;
    }
    step(
        started,
        &format!(
            "registered protocol {id} ({} arms) and opened enrollment",
            protocol.arms.len()
        ),
    );

    // Simulated register and NAV statistics over the baseline and follow-up windows.
    let firms = simulate::register(args.firms, args.seed);
    let follow = &protocol.follow_up;
    let r = follow.randomization_quarter;
    let first = r
        .plus(-(follow.pre_quarters as i32))
        .context("the follow-up window")?
        .min(protocol.baseline.from);
    let last = r
        .plus(follow.post_quarters as i32 - 1)
        .context("the follow-up window")?;
    let quarters = u32::try_from(last - first + 1).context("quarters")?;
    let panel = Panel::new(&firms, args.seed, first, quarters)?;
    let before = r.plus(-1).context("quarter before randomization")?;
    let mut writer = StatsWriter::new(Vec::new(), OutputFormat::DvhCsv)?;
    for row in panel.rows_through(None, before) {
        writer.write(&row)?;
    }
    let (baseline_csv, baseline_rows) = writer.finish()?;
    keep(dir, "statistics-baseline.csv", &baseline_csv)?;
    client
        .call(
            Method::POST,
            "/v1/statistics",
            "text/csv",
            baseline_csv,
            StatusCode::CREATED,
        )
        .await?;
    step(
        started,
        &format!("ingested {baseline_rows} firm-quarters of NAV statistics, {first} to {before}"),
    );

    let register = simulate::register_csv(&firms);
    keep(dir, "register.csv", register.as_bytes())?;
    client
        .call(
            Method::POST,
            &format!("/v1/trials/{id}/enrollment"),
            "text/csv",
            register.into_bytes(),
            StatusCode::CREATED,
        )
        .await?;
    step(
        started,
        &format!(
            "enrolled a register of {} firms (eligibility from the baseline statistics)",
            firms.len()
        ),
    );

    let seed = format!("{id}-demo-wave-1");
    client
        .call(
            Method::POST,
            &format!("/v1/trials/{id}/randomize"),
            "application/json",
            serde_json::to_vec(&serde_json::json!({ "seed": seed }))?,
            StatusCode::CREATED,
        )
        .await?;
    keep(dir, "seed.txt", format!("{seed}\n").as_bytes())?;
    let units = client
        .call(
            Method::GET,
            &format!("/v1/trials/{id}/draws/1/units.csv"),
            "text/plain",
            Vec::new(),
            StatusCode::OK,
        )
        .await?;
    keep(dir, "units.csv", &units)?;
    let csv = client
        .call(
            Method::GET,
            &format!("/v1/trials/{id}/draws/1/assignment.csv"),
            "text/plain",
            Vec::new(),
            StatusCode::OK,
        )
        .await?;
    keep(dir, "assignment.csv", &csv)?;
    let assignment = read_assignment(&String::from_utf8(csv)?)
        .map_err(|e| anyhow::anyhow!("the published assignment: {e:?}"))?;
    let mut per_arm: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &assignment.rows {
        *per_arm.entry(row.arm.as_str()).or_default() += 1;
    }
    step(
        started,
        &format!(
            "randomized wave 1 with the published seed `{seed}`: {}",
            per_arm
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    let effects = Effects::from_assignment(r, &assignment, effects_map);
    let mut writer = StatsWriter::new(Vec::new(), OutputFormat::DvhCsv)?;
    for row in panel.rows(Some(&effects)).filter(|row| row.quarter >= r) {
        writer.write(&row)?;
    }
    let (follow_csv, follow_rows) = writer.finish()?;
    keep(dir, "statistics-follow-up.csv", &follow_csv)?;
    client
        .call(
            Method::POST,
            "/v1/statistics",
            "text/csv",
            follow_csv,
            StatusCode::CREATED,
        )
        .await?;
    step(
        started,
        &format!(
            "ingested {follow_rows} follow-up firm-quarters, {r} to {last}, with true effects {}",
            args.effect
                .iter()
                .map(|(a, e)| format!("{a} {e:+}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    // What the fylker report to Fia: every firm offered help is contacted in the randomization
    // quarter, and about two in three take it (the CONSORT flow's "received help").
    let control = protocol
        .control_arm()
        .map(|a| a.id.clone())
        .context("the protocol has no control arm")?;
    let start = chrono::NaiveDate::from_ymd_opt(r.year(), u32::from(r.quarter()) * 3 - 2, 1)
        .context("the randomization quarter's first day")?;
    let takeup =
        simulate::takeup::takeup_csv(&assignment.rows, &control, args.seed, start, TAKEUP_RATE);
    keep(dir, "takeup.csv", takeup.as_bytes())?;
    let receipt = client
        .call(
            Method::POST,
            &format!("/v1/trials/{id}/takeup"),
            "text/csv",
            takeup.into_bytes(),
            StatusCode::CREATED,
        )
        .await?;
    let receipt: serde_json::Value = serde_json::from_slice(&receipt)?;
    step(
        started,
        &format!(
            "recorded {} take-up events (POST /v1/trials/{id}/takeup): every firm offered help \
             contacted, about {:.0} % helped",
            receipt["rows"],
            TAKEUP_RATE * 100.0
        ),
    );

    // The estimates as an analysis run: a job, whose progress is shown while it computes. With
    // take-up recorded, `all` includes the complier effect; the draws add randomization inference.
    let accepted = client
        .call(
            Method::POST,
            &format!("/v1/trials/{id}/analyses"),
            "application/json",
            format!("{{\"ri_draws\": {DEMO_RI_DRAWS}}}").into_bytes(),
            StatusCode::ACCEPTED,
        )
        .await?;
    let accepted: serde_json::Value = serde_json::from_slice(&accepted)?;
    let job = accepted["job"]
        .as_i64()
        .context("the analysis run names no job")?;
    step(
        started,
        &format!(
            "analysis run {} started (POST /v1/trials/{id}/analyses), job {job}",
            accepted["id"]
        ),
    );
    let estimation = Instant::now();
    // A bar on a terminal; elsewhere (a pipe, CI) one line per stage.
    let bar = super::progress_bar::Bar::start();
    let mut last_stage = String::new();
    let state = loop {
        let body = client
            .call(
                Method::GET,
                &format!("/v1/jobs/{job}"),
                "application/json",
                Vec::new(),
                StatusCode::OK,
            )
            .await?;
        let job: serde_json::Value = serde_json::from_slice(&body)?;
        let state = job["state"].as_str().unwrap_or_default().to_owned();
        let progress = &job["progress"];
        if let Some(stage) = progress["stage"].as_str() {
            bar.update(&Snapshot {
                stage: stage.to_owned(),
                done: progress["done"].as_u64().unwrap_or(0),
                total: progress["total"].as_u64().unwrap_or(0),
                elapsed_seconds: progress["elapsed_seconds"].as_f64().unwrap_or(0.0),
                remaining_seconds: progress["remaining_seconds"].as_f64(),
            });
            if stage != last_stage && !bar.is_drawn() {
                step(started, &format!("  job {job}: {stage}", job = job["id"]));
            }
            last_stage = stage.to_owned();
        }
        if !matches!(state.as_str(), "queued" | "running") {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    bar.finish();
    if state != "done" {
        bail!("the analysis job {job} ended {state}; GET /v1/jobs/{job} says why");
    }
    let body = client
        .call(
            Method::GET,
            &format!("/v1/trials/{id}/estimates?ri_draws={DEMO_RI_DRAWS}"),
            "application/json",
            Vec::new(),
            StatusCode::OK,
        )
        .await?;
    keep(dir, "estimates.json", &body)?;
    step(
        started,
        &format!(
            "estimated in {:.1} s (job {job}; GET /v1/trials/{id}/estimates serves the run)",
            estimation.elapsed().as_secs_f64()
        ),
    );
    let mut value: serde_json::Value = serde_json::from_slice(&body)?;
    let report = Report {
        estimates: serde_json::from_value(value["estimates"].take())?,
        tests: serde_json::from_value(value["tests"].take())?,
        skipped: serde_json::from_value(value["skipped"].take())?,
        attrition: serde_json::from_value(value["attrition"].take())?,
        iv: match value.get_mut("iv") {
            Some(iv) => serde_json::from_value(iv.take())?,
            None => Vec::new(),
        },
        ri: match value.get_mut("ri") {
            Some(ri) => serde_json::from_value(ri.take())?,
            None => Vec::new(),
        },
        bounds: match value.get_mut("bounds") {
            Some(b) => serde_json::from_value(b.take())?,
            None => Vec::new(),
        },
    };
    let table = format!(
        "ia-rct demo: trial {id}, protocol {}, statistics vintage {}, randomized {r}, \
         {} quarters before and {} after\n\n{}\ntrue effects used by the simulation (percentage points): {}\n",
        value["protocol_hash"]
            .as_str()
            .map_or("", |h| &h[..12.min(h.len())]),
        value["vintage"],
        follow.pre_quarters,
        follow.post_quarters,
        format_table(&report),
        args.effect
            .iter()
            .map(|(a, e)| format!("{a} {e:+}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    keep(dir, "estimates.txt", table.as_bytes())?;
    if args.json {
        outln!("{}", String::from_utf8_lossy(&body));
    } else {
        out!("\n{table}");
    }
    Ok(id)
}
