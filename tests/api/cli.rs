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
