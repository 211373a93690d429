//! The command line: `ia-rct token create/list/revoke` and `ia-rct migrate`.

use std::process::Command;

use ia_rct::auth::hash_token;
use sqlx::{Connection, Row};

use crate::helpers::{BIN, Backend, TestDb};
use crate::on_both_backends;

fn ia_rct(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["--database-url", url])
        .args(args)
        .env_remove("IA_RCT_DATABASE_URL")
        .output()
        .expect("run ia-rct")
}

async fn stored_token_columns(db: &TestDb) -> Vec<Vec<String>> {
    const SQL: &str = "SELECT CAST(id AS TEXT), name, role, COALESCE(fylke, ''), token_sha256, \
                       CAST(created_at AS TEXT), created_by FROM api_tokens ORDER BY id";
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect");
            let rows = sqlx::query(SQL).fetch_all(&mut conn).await.expect("select");
            rows.iter()
                .map(|r| (0..7).map(|i| r.get::<String, _>(i)).collect())
                .collect()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let rows = sqlx::query(SQL).fetch_all(&mut conn).await.expect("select");
            rows.iter()
                .map(|r| (0..7).map(|i| r.get::<String, _>(i)).collect())
                .collect()
        }
    }
}

async fn token_create_prints_the_secret_once_and_stores_only_its_hash(backend: Backend) {
    let db = TestDb::new(backend).await;
    let out = ia_rct(
        &db.url,
        &[
            "token",
            "create",
            "--role",
            "fylke",
            "--fylke",
            "46",
            "--name",
            "NAV Vestland",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the secret alone: {stdout:?}");
    let secret = lines[0];
    assert!(ia_rct::auth::looks_like_token(secret), "{secret}");
    assert!(
        stderr.contains("NAV Vestland") && stderr.contains("not shown again"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret));

    let rows = stored_token_columns(&db).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        &row[1..4],
        &[
            "NAV Vestland".to_owned(),
            "fylke".to_owned(),
            "46".to_owned()
        ]
    );
    assert_eq!(row[4], hash_token(secret), "the hash is stored");
    for column in row {
        assert!(
            !column.contains(&secret[6..]),
            "the secret is not stored: {column}"
        );
    }

    let list = ia_rct(&db.url, &["token", "list"]);
    let listed = String::from_utf8(list.stdout).expect("utf8");
    assert!(
        listed.contains("NAV Vestland")
            && !listed.contains(&secret[6..])
            && !listed.contains(&row[4])
    );

    // Bad input is refused with the field named, and nothing is written.
    let refused: [(&[&str], &str); 5] = [
        (
            &["--role", "fylke", "--name", "Uten fylke"],
            "--fylke: a fylke token must be bound to a fylke",
        ),
        (
            &[
                "--role",
                "fylke",
                "--fylke",
                "54",
                "--name",
                "Troms og Finnmark",
            ],
            "`54` is not a fylke code",
        ),
        (
            &["--role", "forsker", "--fylke", "46", "--name", "Forsker"],
            "--fylke: only fylke tokens are bound to a fylke",
        ),
        (
            &["--role", "admin", "--name", "Admin"],
            "`admin` is not a role",
        ),
        (
            &["--role", "forsker", "--name", "NAV Vestland"],
            "an active token named `NAV Vestland` already exists",
        ),
    ];
    for (args, expected) in refused {
        let out = ia_rct(&db.url, &[&["token", "create"][..], args].concat());
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(stored_token_columns(&db).await.len(), 1);

    let revoke = ia_rct(&db.url, &["token", "revoke", &row[0]]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let again = ia_rct(&db.url, &["token", "revoke", &row[0]]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));

    let store = db.store().await;
    let audit = store
        .query_audit(&ia_rct::storage::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    let rows: Vec<(&str, &str, u16)> = audit
        .iter()
        .map(|e| (e.route.as_str(), e.result.as_str(), e.status))
        .collect();
    assert_eq!(
        rows,
        [
            ("token revoke", "failed", 409),
            ("token revoke", "permitted", 200),
            ("token create", "failed", 409),
            ("token create", "permitted", 201),
        ],
        "each CLI write is audited, refused ones too"
    );
    assert!(audit.iter().all(|e| {
        e.actor_name
            .as_deref()
            .is_some_and(|a| a.starts_with("cli:"))
    }));
}

async fn migrate_is_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    for _ in 0..2 {
        let out = ia_rct(&db.url, &["migrate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Each `ia-rct ingest` of a file leaves one audit row naming the statistics upload it made.
async fn ingest_audit_names_its_upload(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut named = Vec::new();
    for quarter in [1, 2] {
        let file = dir.path().join(format!("q{quarter}.csv"));
        std::fs::write(
            &file,
            format!(
                "orgnr,arstall,kvartal,taptedv,muligedv,antpers\n974760673,2024,{quarter},5.5,100.25,12\n"
            ),
        )
        .expect("write");
        let out = ia_rct(&db.url, &["ingest", file.to_str().expect("path")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = db.store().await;
        let audit = store
            .query_audit(&ia_rct::storage::AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("audit");
        store.close().await;
        let row = audit.first().expect("an audit row");
        assert_eq!(row.route, "ingest");
        assert_eq!(row.object_ids.len(), 1, "{:?}", row.object_ids);
        assert!(
            row.object_ids[0].starts_with("statistics_upload:"),
            "{:?}",
            row.object_ids
        );
        named.push(row.object_ids[0].clone());
    }
    assert_ne!(named[0], named[1], "each upload is named by its own id");
}

/// `token create` applies the service's rule for token names: no format characters (U+202E shows
/// the name reversed in every list), at most 200 characters; nothing is stored.
async fn token_create_refuses_format_characters_and_long_names(backend: Backend) {
    let db = TestDb::new(backend).await;
    let long = "n".repeat(201);
    for (name, needle) in [
        ("NAV \u{202E}dnalnegA", "U+202E"),
        ("NAV\u{200D}Agder", "U+200D"),
        (long.as_str(), "too long"),
    ] {
        let out = ia_rct(
            &db.url,
            &["token", "create", "--role", "forsker", "--name", name],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {name:?}: {stderr}");
        assert!(
            stderr.contains("--name") && stderr.contains(needle),
            "{stderr}"
        );
    }
    assert!(
        stored_token_columns(&db).await.is_empty(),
        "no token stored"
    );
}

on_both_backends!(
    token_create_refuses_format_characters_and_long_names,
    token_create_prints_the_secret_once_and_stores_only_its_hash,
    migrate_is_idempotent,
    ingest_audit_names_its_upload
);

#[test]
fn an_unsupported_database_url_is_refused_with_a_clear_message() {
    let out = ia_rct("mysql://root@localhost/x", &["migrate"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("use sqlite://PATH or postgres://"),
        "{stderr}"
    );
}

/// `demo --effect` names arms of the built-in protocol, as `simulate --effect` does: an unknown arm is
/// refused before anything is created, and the message lists the protocol's arms.
#[test]
fn demo_refuses_an_effect_for_an_unknown_arm() {
    let dir = tempfile::tempdir().expect("dir");
    let demo_dir = dir.path().join("demo");
    let out = Command::new(BIN)
        .args(["demo", "--firms", "100", "--effect", "bred=-0.8", "--dir"])
        .arg(&demo_dir)
        .env_remove("IA_RCT_DATABASE_URL")
        .output()
        .expect("run ia-rct");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains("no arm `bred`") && stderr.contains("bred_prosess"),
        "{stderr}"
    );
    assert!(
        !demo_dir.join("ia-rct-demo.db").exists(),
        "no database is created for a refused demo"
    );
    // The same for the control arm, which has no effect of its own.
    let out = Command::new(BIN)
        .args([
            "demo",
            "--firms",
            "100",
            "--effect",
            "kontroll=-0.8",
            "--dir",
        ])
        .arg(&demo_dir)
        .env_remove("IA_RCT_DATABASE_URL")
        .output()
        .expect("run ia-rct");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(stderr.contains("control arm"), "{stderr}");
}

/// A small demo: big enough for every estimator, small enough for a debug build.
const DEMO_FIRMS: &str = "1500";

/// The files `demo --dir` keeps beside its database, as the README lists them.
const DEMO_FILES: [&str; 10] = [
    "protocol.toml",
    "statistics-baseline.csv",
    "register.csv",
    "units.csv",
    "assignment.csv",
    "seed.txt",
    "statistics-follow-up.csv",
    "takeup.csv",
    "estimates.json",
    "estimates.txt",
];

fn run_ok(command: &mut Command) -> std::process::Output {
    let out = command.output().expect("run ia-rct");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `demo --dir D` keeps the database and every input and output in D, and they are the real ones:
/// the draw verifies from the kept protocol, register, baseline statistics and seed (and from the
/// published unit list), and `ia-rct estimate` on the kept files gives the estimates the service
/// gave. IA_RCT_DATABASE_URL is not used by the demo (only `--database-url` is), and it says so.
#[test]
fn demo_dir_keeps_the_database_and_every_input_and_output() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("demo");
    let env_db = tmp.path().join("from-env.db");
    let out = run_ok(
        Command::new(BIN)
            .args(["demo", "--firms", DEMO_FIRMS, "--dir"])
            .arg(&dir)
            .env(
                "IA_RCT_DATABASE_URL",
                format!("sqlite://{}", env_db.display()),
            ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not use IA_RCT_DATABASE_URL"),
        "{stderr}"
    );
    assert!(
        !env_db.exists(),
        "the demo did not write to IA_RCT_DATABASE_URL"
    );
    assert!(dir.join("ia-rct-demo.db").is_file(), "the database is kept");
    for name in DEMO_FILES {
        let len = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} is not kept: {e}"))
            .len();
        assert!(len > 0, "{name} is empty");
        assert!(stderr.contains(name), "the demo names {name}: {stderr}");
    }
    let table = std::fs::read_to_string(dir.join("estimates.txt")).expect("table");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(table.trim()),
        "estimates.txt is the table printed"
    );

    let path = |name: &str| dir.join(name);
    let seed = std::fs::read_to_string(path("seed.txt")).expect("seed");
    let seed = seed.trim();
    assert_eq!(seed, "nals-arbeidsformer-demo-wave-1");
    run_ok(
        Command::new(BIN)
            .arg("verify")
            .arg("--protocol")
            .arg(path("protocol.toml"))
            .arg("--firms")
            .arg(path("register.csv"))
            .arg("--stats")
            .arg(path("statistics-baseline.csv"))
            .args(["--seed", seed, "--assignment"])
            .arg(path("assignment.csv")),
    );
    run_ok(
        Command::new(BIN)
            .arg("verify")
            .arg("--protocol")
            .arg(path("protocol.toml"))
            .arg("--units")
            .arg(path("units.csv"))
            .args(["--seed", seed, "--assignment"])
            .arg(path("assignment.csv")),
    );

    let offline = run_ok(
        Command::new(BIN)
            .arg("estimate")
            .arg("--protocol")
            .arg(path("protocol.toml"))
            .arg("--assignment")
            .arg(path("assignment.csv"))
            .arg("--stats")
            .arg(path("statistics-baseline.csv"))
            .arg("--stats")
            .arg(path("statistics-follow-up.csv"))
            .arg("--takeup")
            .arg(path("takeup.csv"))
            .args(["--ri-draws", "10000"])
            .args(["--format", "json"]),
    );
    let offline: serde_json::Value = serde_json::from_slice(&offline.stdout).expect("json");
    let served: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path("estimates.json")).expect("estimates"))
            .expect("json");
    // The same numbers; only the service knows which statistics vintage they come from.
    let without_vintage = |report: &serde_json::Value| -> Vec<serde_json::Value> {
        let mut rows = report["estimates"].as_array().expect("estimates").clone();
        for row in &mut rows {
            row.as_object_mut().expect("row").remove("vintage");
        }
        rows
    };
    let served_rows = without_vintage(&served);
    assert!(served_rows.len() > 10, "{served_rows:?}");
    assert!(
        served_rows.iter().any(|r| r["estimator"] == "cace_iv"),
        "the demo's run has the complier effect"
    );
    assert_eq!(
        without_vintage(&offline),
        served_rows,
        "the kept files give the service's estimates"
    );
    for part in ["iv", "ri", "bounds"] {
        let strip = |v: &serde_json::Value| {
            let mut rows = v[part].as_array().cloned().unwrap_or_default();
            for row in &mut rows {
                if let Some(o) = row.as_object_mut() {
                    o.remove("vintage");
                }
            }
            rows
        };
        assert!(!strip(&served).is_empty() || part == "bounds", "{part}");
        assert_eq!(
            strip(&offline),
            strip(&served),
            "{part}: the kept files give the service's"
        );
    }
}

/// `demo --database-url URL` runs the whole trial on that database and leaves it there; the demo's
/// token is revoked at the end; a second demo on the same database is refused before it writes,
/// since a trial and statistics can never be removed.
async fn demo_runs_on_the_database_url_given(backend: Backend) {
    let db = TestDb::new(backend).await;
    let out = run_ok(
        Command::new(BIN)
            .args(["demo", "--firms", DEMO_FIRMS, "--database-url", &db.url])
            .env_remove("IA_RCT_DATABASE_URL"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(--database-url)"), "{stderr}");
    assert!(!stderr.contains("embedded SQLite"), "{stderr}");

    let store = db.store().await;
    let trials = store.list_trials().await.expect("trials");
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].id, "nals-arbeidsformer");
    assert_eq!(trials[0].waves_drawn, 1);
    let draws = store.draws("nals-arbeidsformer").await.expect("draws");
    assert_eq!(draws.len(), 1);
    let uploads = store.statistics_uploads(None).await.expect("uploads");
    assert_eq!(uploads.len(), 2, "baseline and follow-up");
    let tokens = store.list_tokens().await.expect("tokens");
    assert_eq!(tokens.len(), 1);
    assert!(
        tokens[0].revoked_at.is_some(),
        "the demo's token is revoked"
    );

    let again = Command::new(BIN)
        .args(["demo", "--firms", DEMO_FIRMS, "--database-url", &db.url])
        .env_remove("IA_RCT_DATABASE_URL")
        .output()
        .expect("run ia-rct");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "a second demo ran: {stderr}");
    assert!(
        stderr.contains("already holds 1 trial(s) and 2 statistics upload(s)"),
        "{stderr}"
    );
    assert_eq!(
        store.statistics_uploads(None).await.expect("uploads").len(),
        2
    );
    assert_eq!(store.list_tokens().await.expect("tokens").len(), 1);
    store.close().await;
}

on_both_backends!(demo_runs_on_the_database_url_given);

/// Runs ia-rct with stdout a pipe whose reader is already gone (`ia-rct … | head` once head has
/// exited): the command stops quietly with status 141, with no panic and no error message.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(BIN)
        .args(args)
        .env_remove("IA_RCT_DATABASE_URL")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run ia-rct")
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("ia-rct.db").display());
    let sim = dir.join("sim");
    let sim_s = sim.to_str().expect("path").to_owned();
    run_ok(
        Command::new(BIN)
            .args(["simulate", "--firms", "300", "--out", &sim_s])
            .args(["--effect", "bred_prosess=-0.8"]),
    );
    let file = |name: &str| sim.join(name).to_str().expect("path").to_owned();
    run_ok(Command::new(BIN).args(["--database-url", &db, "migrate"]));
    let protocol = "protocols/nals-arbeidsformer.toml";
    let demo_dir = dir.join("demo").to_str().expect("path").to_owned();
    let commands: Vec<Vec<String>> = [
        vec!["protocol", "show", protocol],
        vec!["protocol", "hash", protocol],
        vec!["--database-url", &db, "token", "list"],
        vec!["--database-url", &db, "token", "list", "--json"],
        vec![
            "--database-url",
            &db,
            "token",
            "create",
            "--role",
            "forsker",
            "--name",
            "pipe",
        ],
        vec!["simulate", "--firms", "200", "--out", &file("again")],
        vec![
            "estimate",
            "--protocol",
            protocol,
            "--assignment",
            &file("assignment.csv"),
            "--stats",
            &file("statistics.csv"),
        ],
        vec!["demo", "--firms", "300", "--dir", &demo_dir],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(str::to_owned).collect())
    .collect();
    for command in &commands {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = with_closed_stdout(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked")
                && !stderr.contains("error")
                && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
    // clap's own output (help, version) does not panic either.
    for args in [["--help"], ["--version"]] {
        let out = with_closed_stdout(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `ia-rct estimate` draws its progress bar only when stderr is a terminal: with stderr a pipe,
/// as here (and in logs and CI), it writes no bar and no control characters.
#[test]
fn estimate_draws_no_progress_bar_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().expect("dir");
    let sim = tmp.path().join("sim");
    let sim_s = sim.to_str().expect("path").to_owned();
    run_ok(
        Command::new(BIN)
            .args(["simulate", "--firms", "300", "--out", &sim_s])
            .args(["--effect", "bred_prosess=-0.8"]),
    );
    let file = |name: &str| sim.join(name).to_str().expect("path").to_owned();
    let out = run_ok(
        Command::new(BIN)
            .args([
                "estimate",
                "--protocol",
                "protocols/nals-arbeidsformer.toml",
            ])
            .args(["--assignment", &file("assignment.csv")])
            .args(["--stats", &file("statistics.csv")])
            .stderr(std::process::Stdio::piped()),
    );
    assert!(!out.stdout.is_empty(), "the table is printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for control in ['\r', '\u{1b}'] {
        assert!(
            !stderr.contains(control),
            "{control:?} on stderr: {stderr:?}"
        );
    }
    for bar_text in ["read ", "estimate ", " MB"] {
        assert!(!stderr.contains(bar_text), "bar text on stderr: {stderr:?}");
    }
}
