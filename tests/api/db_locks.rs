//! What the service accepted cannot be rewritten in the database, not even by the connection the
//! service uses: a randomized trial's state cannot go back and its protocol cannot change, draws,
//! assignments and enrollments stay as drawn, and a token keeps its hash, role and fylke and stays
//! revoked. Each refusal is tried as the table owner and, on PostgreSQL, as a role made with the
//! README's own grant SQL; the service is then run as that role through its write routes.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{
    Backend, TestApp, TestDb, make_token, postgres_admin_url, test_protocol, test_register,
};
use crate::on_both_backends;
use ia_rct::config::HttpConfig;
use ia_rct::domain::Role;

/// The README's SQL block that creates the production service role.
fn readme_service_role_sql() -> String {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let fence = "```sql\nCREATE ROLE ia_rct_service";
    let start = readme
        .find(fence)
        .expect("README.md has a ```sql block that starts with CREATE ROLE ia_rct_service");
    let body = &readme[start + "```sql\n".len()..];
    let end = body.find("```").expect("the SQL block ends");
    body[..end].to_owned()
}

/// A login role made by running the README's SQL, as written, on a test database (only its role
/// name, database name and password are replaced, since roles are shared by every test database);
/// dropped when the test ends.
struct ServiceRole {
    name: String,
    /// The test database, connected as the role.
    url: String,
}

impl ServiceRole {
    async fn create(db: &TestDb) -> ServiceRole {
        let name = format!("ia_rct_service_{}", uuid::Uuid::new_v4().simple());
        let (base, database) = db.url.rsplit_once('/').expect("database in the URL");
        let sql = readme_service_role_sql();
        for needle in ["ia_rct_service", "DATABASE ia_rct ", "PASSWORD '…'"] {
            assert!(
                sql.contains(needle),
                "the README's SQL has no `{needle}`:\n{sql}"
            );
        }
        let sql = sql
            .replace("ia_rct_service", &name)
            .replace("DATABASE ia_rct ", &format!("DATABASE {database} "))
            .replace("PASSWORD '…'", "PASSWORD 'test-password'");
        let mut owner = sqlx::PgConnection::connect(&db.url)
            .await
            .expect("connect as the owner");
        sqlx::raw_sql(&sql)
            .execute(&mut owner)
            .await
            .unwrap_or_else(|e| panic!("the README's SQL fails: {e}\n{sql}"));
        owner.close().await.ok();
        let host = base
            .split_once("://")
            .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, host)| host))
            .expect("host in the URL");
        ServiceRole {
            url: format!("postgres://{name}:test-password@{host}/{database}"),
            name,
        }
    }
}

impl Drop for ServiceRole {
    fn drop(&mut self) {
        let (Some(admin), name) = (postgres_admin_url(), self.name.clone()) else {
            return;
        };
        // Its test database is dropped with its grants; DROP OWNED covers one that still exists.
        let database_url = self.url.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let owner_db = database_url
                        .rsplit_once('/')
                        .map(|(_, db)| db.to_owned())
                        .unwrap_or_default();
                    let (admin_base, _) = admin.rsplit_once('/').unwrap_or((&admin, ""));
                    if let Ok(mut conn) =
                        sqlx::PgConnection::connect(&format!("{admin_base}/{owner_db}")).await
                    {
                        let _ = sqlx::raw_sql(&format!("DROP OWNED BY {name}"))
                            .execute(&mut conn)
                            .await;
                        conn.close().await.ok();
                    }
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {name}"))
                            .execute(&mut conn)
                            .await;
                        conn.close().await.ok();
                    }
                });
            }
        })
        .join();
    }
}

/// Runs one statement on its own connection; the database's error message if it is refused.
async fn refused(backend: Backend, url: &str, statement: &str) -> Option<String> {
    let result = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        }
    };
    result.err().map(|e| e.to_string())
}

/// An attempt to rewrite accepted data: the statement, what the refusing trigger's message says,
/// and whether the README's role holds the privilege (then the trigger must refuse it; otherwise
/// the missing privilege refuses it first).
struct Tamper {
    sql: String,
    says: &'static str,
    granted: bool,
}

fn tamper(sql: impl Into<String>, says: &'static str, granted: bool) -> Tamper {
    Tamper {
        sql: sql.into(),
        says,
        granted,
    }
}

/// Everything an outsider can see of the trials and tokens, to compare before and after.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        "/v1/trials/locked",
        "/v1/trials/locked/versions",
        "/v1/trials/locked/assignments",
        "/v1/trials/locked/enrollment",
        "/v1/trials/followed",
        "/v1/trials/followed/versions",
        "/v1/tokens",
    ] {
        seen.push(app.direktorat_call(Method::GET, path, None, 200).await);
    }
    for path in [
        "/v1/trials/locked/draws/1/assignment.csv",
        "/v1/trials/locked/draws/1/units.csv",
    ] {
        let response = app
            .as_direktorat(Method::GET, path)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        seen.push(Value::from(response.text().await.expect("body")));
    }
    seen
}

async fn whoami(app: &TestApp, secret: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url("/v1/whoami"))
        .bearer_auth(secret)
        .send()
        .await
        .expect("whoami");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The issue's SQL and its relatives, as the owner and as the README's role: each is refused and
/// nothing changes.
async fn accepted_trials_and_tokens_cannot_be_rewritten_in_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.trial_in_state("locked", "randomized", 200).await;
    app.trial_in_state("followed", "randomized", 60).await;
    app.direktorat_call(
        Method::POST,
        "/v1/trials/followed/transitions",
        Some(json!({ "to": "follow_up" })),
        200,
    )
    .await;
    let forsker = make_token(app.store.as_ref(), "Forsker", Role::Forsker, None).await;
    let vestland = make_token(app.store.as_ref(), "NAV Vestland", Role::Fylke, Some("46")).await;
    let gone = make_token(app.store.as_ref(), "Revoked", Role::Fylke, Some("03")).await;
    app.direktorat_call(
        Method::POST,
        &format!("/v1/tokens/{}/revoke", gone.info.id),
        None,
        200,
    )
    .await;
    let (forsker_id, vestland_id, gone_id) = (forsker.info.id, vestland.info.id, gone.info.id);

    let mut cases = vec![
        // The issue's: back to draft, then rewrite the protocol.
        tamper(
            "UPDATE trials SET state = 'draft' WHERE id = 'locked'",
            "moves only forward",
            true,
        ),
        tamper(
            "UPDATE protocol_versions SET canonical_json = '{}' WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "UPDATE trials SET state = 'registered' WHERE id = 'locked'",
            "moves only forward",
            true,
        ),
        tamper(
            "UPDATE trials SET state = 'closed' WHERE id = 'locked'",
            "moves only forward",
            true,
        ),
        tamper(
            "UPDATE trials SET state = 'enrolling' WHERE id = 'followed'",
            "moves only forward",
            true,
        ),
        tamper(
            "UPDATE trials SET state = 'randomized' WHERE id = 'followed'",
            "moves only forward",
            true,
        ),
        tamper(
            "UPDATE trials SET state = 'draft' WHERE id = 'followed'",
            "moves only forward",
            true,
        ),
        tamper(
            "UPDATE trials SET current_version = current_version + 1 WHERE id = 'locked'",
            "current version moves only",
            true,
        ),
        tamper(
            "UPDATE trials SET created_by = 'someone' WHERE id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "UPDATE trials SET id = 'moved' WHERE id = 'followed'",
            "immutable",
            false,
        ),
        tamper(
            "DELETE FROM trials WHERE id = 'followed'",
            "never deleted",
            false,
        ),
        tamper(
            "DELETE FROM protocol_versions WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        // A later revision would be what reads show: refused once the trial is past draft.
        tamper(
            "INSERT INTO protocol_versions (trial_id, version, content_hash, canonical_json, \
                                            created_at, created_by, revision) \
             SELECT trial_id, version, content_hash, canonical_json, created_at, created_by, revision + 1 \
             FROM protocol_versions WHERE trial_id = 'locked'",
            "immutable",
            true,
        ),
        tamper(
            "INSERT INTO protocol_versions (trial_id, version, content_hash, canonical_json, \
                                            created_at, created_by, revision) \
             SELECT trial_id, version + 1, content_hash, canonical_json, created_at, created_by, 1 \
             FROM protocol_versions WHERE trial_id = 'locked'",
            "immutable",
            true,
        ),
        tamper(
            "UPDATE draws SET seed = 'other' WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "DELETE FROM draws WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "UPDATE assignments SET arm = 'kontroll' WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "DELETE FROM assignments WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "UPDATE enrollments SET eligible = NOT eligible WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        tamper(
            "DELETE FROM enrollments WHERE trial_id = 'locked'",
            "immutable",
            false,
        ),
        // Rows added to a drawn trial (copies, refused before their keys are checked).
        tamper(
            "INSERT INTO draws SELECT * FROM draws WHERE trial_id = 'locked'",
            "immutable",
            true,
        ),
        tamper(
            "INSERT INTO assignments SELECT * FROM assignments WHERE trial_id = 'locked'",
            "immutable",
            true,
        ),
        tamper(
            "INSERT INTO enrollments SELECT * FROM enrollments WHERE trial_id = 'locked'",
            "immutable",
            true,
        ),
        tamper(
            "INSERT INTO enrollment_uploads (trial_id, wave, sha256, firms, eligible, created_at, created_by) \
             SELECT trial_id, wave, sha256, firms, eligible, created_at, created_by \
             FROM enrollment_uploads WHERE trial_id = 'locked'",
            "immutable",
            true,
        ),
        // Tokens: un-revoke, re-role, re-bind, re-key, rename, delete.
        tamper(
            format!(
                "UPDATE api_tokens SET revoked_at = NULL, revoked_by = NULL WHERE id = {gone_id}"
            ),
            "revocation is immutable",
            true,
        ),
        tamper(
            format!("UPDATE api_tokens SET revoked_by = 'nobody' WHERE id = {gone_id}"),
            "revocation is immutable",
            true,
        ),
        tamper(
            format!("UPDATE api_tokens SET role = 'direktorat' WHERE id = {forsker_id}"),
            "immutable",
            false,
        ),
        tamper(
            format!("UPDATE api_tokens SET role = 'fylke', fylke = '46' WHERE id = {forsker_id}"),
            "immutable",
            false,
        ),
        tamper(
            format!("UPDATE api_tokens SET fylke = '03' WHERE id = {vestland_id}"),
            "immutable",
            false,
        ),
        tamper(
            format!(
                "UPDATE api_tokens SET token_sha256 = '{}' WHERE id = {forsker_id}",
                "a".repeat(64)
            ),
            "immutable",
            false,
        ),
        tamper(
            format!("UPDATE api_tokens SET name = 'Direktoratet' WHERE id = {forsker_id}"),
            "immutable",
            false,
        ),
        tamper(
            format!("DELETE FROM api_tokens WHERE id = {gone_id}"),
            "never deleted",
            false,
        ),
    ];
    if backend == Backend::Postgres {
        cases.extend([
            tamper("TRUNCATE trials CASCADE", "immutable", false),
            tamper("TRUNCATE protocol_versions", "immutable", false),
            tamper("TRUNCATE api_tokens CASCADE", "immutable", false),
            tamper("TRUNCATE draws CASCADE", "immutable", false),
        ]);
    }

    let before = snapshot(&app).await;
    let role = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ServiceRole::create(&app.db).await),
    };
    for case in &cases {
        let error = refused(backend, &app.db.url, &case.sql).await;
        let error = error.unwrap_or_else(|| panic!("the owner may run {}", case.sql));
        assert!(error.contains(case.says), "owner, {}: {error}", case.sql);
        if let Some(role) = &role {
            let error = refused(backend, &role.url, &case.sql).await;
            let error = error.unwrap_or_else(|| panic!("the service role may run {}", case.sql));
            let says = if case.granted {
                case.says
            } else {
                "permission denied"
            };
            assert!(error.contains(says), "service role, {}: {error}", case.sql);
        }
    }
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused statement changed something"
    );
    assert_eq!(whoami(&app, &gone.secret).await.0, 401);
    let (status, me) = whoami(&app, &forsker.secret).await;
    assert_eq!((status, &me["role"]), (200, &json!("forsker")), "{me}");
    let (status, me) = whoami(&app, &vestland.secret).await;
    assert_eq!((status, &me["fylke"]), (200, &json!("46")), "{me}");

    // The role holds no UPDATE but on the columns the service changes, and no DELETE or TRUNCATE.
    if let Some(role) = &role {
        let mut conn = sqlx::PgConnection::connect(&app.db.url)
            .await
            .expect("connect");
        let table: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, privilege_type::text FROM information_schema.table_privileges \
             WHERE grantee = $1 AND privilege_type NOT IN ('SELECT', 'INSERT') ORDER BY 1, 2",
        )
        .bind(&role.name)
        .fetch_all(&mut conn)
        .await
        .expect("table privileges");
        assert_eq!(table, Vec::<(String, String)>::new());
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.column_privileges \
             WHERE grantee = $1 AND privilege_type = 'UPDATE' ORDER BY 1, 2",
        )
        .bind(&role.name)
        .fetch_all(&mut conn)
        .await
        .expect("column privileges");
        let expected: Vec<(String, String)> = [
            ("analysis_runs", "completed_at"),
            ("analysis_runs", "job_id"),
            ("analysis_runs", "result"),
            ("analysis_runs", "result_sha256"),
            ("api_tokens", "revoked_at"),
            ("api_tokens", "revoked_by"),
            ("jobs", "attempts"),
            ("jobs", "cancel_requested"),
            ("jobs", "done"),
            ("jobs", "elapsed_seconds"),
            ("jobs", "error"),
            ("jobs", "finished_at"),
            ("jobs", "lease_owner"),
            ("jobs", "lease_until"),
            ("jobs", "remaining_seconds"),
            ("jobs", "stage"),
            ("jobs", "started_at"),
            ("jobs", "state"),
            ("jobs", "total"),
            ("sessions", "ended_at"),
            ("trials", "current_version"),
            ("trials", "state"),
            ("trials", "updated_at"),
        ]
        .iter()
        .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
        .collect();
        assert_eq!(columns, expected);
    }
}

/// A migrated database and the service on it as the README's role (on SQLite, the only
/// connection there is); the role (dropped with it) and the owner's URL.
async fn serve_as_readme_role(backend: Backend) -> (TestApp, Option<ServiceRole>, String) {
    let db = TestDb::new(backend).await;
    // Migrations run as the owner; the role is made afterwards, as the README says.
    db.store().await.close().await;
    let role = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ServiceRole::create(&db).await),
    };
    let url = role.as_ref().map_or(db.url.clone(), |r| r.url.clone());
    let owner_url = db.url.clone();
    let store = ia_rct::storage::connect(&url, ia_rct::storage::StoreOptions::default())
        .await
        .expect("the service opens the database as its role");
    let app = TestApp::serve(db, store, HttpConfig::default()).await;
    (app, role, owner_url)
}

/// The service's write routes work when it connects as the README's role (on SQLite, as the only
/// connection there is), and a replaced draft is stored as a new revision, never updated.
async fn the_service_writes_as_the_readme_role(backend: Backend) {
    let (app, role, owner_url) = serve_as_readme_role(backend).await;
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(
        ready.status().as_u16(),
        200,
        "{}",
        ready.text().await.unwrap_or_default()
    );

    // A draft saved twice, registered, and versioned.
    app.direktorat_call(
        Method::POST,
        "/v1/trials",
        Some(test_protocol("roled")),
        201,
    )
    .await;
    let mut protocol = test_protocol("roled");
    for min_size in [12, 13] {
        protocol["strata"]["min_size"] = json!(min_size);
        let saved = app
            .direktorat_call(
                Method::PUT,
                "/v1/trials/roled/protocol",
                Some(protocol.clone()),
                200,
            )
            .await;
        assert_eq!(saved["version"], 1, "{saved}");
    }
    let trial = app
        .direktorat_call(Method::GET, "/v1/trials/roled", None, 200)
        .await;
    assert_eq!(trial["protocol"]["strata"]["min_size"], 13, "{trial}");
    let versions = app
        .direktorat_call(Method::GET, "/v1/trials/roled/versions", None, 200)
        .await;
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(1),
        "{versions}"
    );
    let stored = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&owner_url)
                .await
                .expect("connect");
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM protocol_versions WHERE trial_id = 'roled'",
            )
            .fetch_one(&mut conn)
            .await
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&owner_url)
                .await
                .expect("connect");
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM protocol_versions WHERE trial_id = 'roled'",
            )
            .fetch_one(&mut conn)
            .await
        }
    }
    .expect("count revisions");
    assert_eq!(stored, 3, "the first text and two replacements, each kept");

    app.direktorat_call(
        Method::POST,
        "/v1/trials/roled/transitions",
        Some(json!({ "to": "registered" })),
        200,
    )
    .await;
    protocol["strata"]["min_size"] = json!(14);
    protocol["version"] = json!(2);
    let saved = app
        .direktorat_call(
            Method::PUT,
            "/v1/trials/roled/protocol",
            Some(protocol),
            200,
        )
        .await;
    assert_eq!(saved["version"], 2, "{saved}");
    app.direktorat_call(
        Method::POST,
        "/v1/trials/roled/transitions",
        Some(json!({ "to": "enrolling" })),
        200,
    )
    .await;

    // Statistics (a vintage reserved from the receipts' sequence), enrollment, the draw.
    let statistics = json!([{
        "årstall": 2024, "kvartal": 2, "orgnr": "974760673", "prosent": "26.0",
        "tapteDagsverk": "20.23", "muligeDagsverk": 77.8716, "tapteDagsverkGradert": 9.034285,
        "tapteDagsverkPerVarighet": [{ "varighet": "A", "tapteDagsverk": 12.1527 }],
        "antallPersoner": "40", "rectype": "2"
    }]);
    let response = app
        .as_direktorat(Method::POST, "/v1/statistics")
        .header("content-type", "application/json")
        .body(statistics.to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(status, 201, "statistics upload: {body}");
    app.enroll_csv("roled", &test_register(60, 3), 201).await;
    app.randomize("roled").await;

    // A fylke token made over the API acknowledges its firms, and is revoked.
    let assignments = app
        .direktorat_call(Method::GET, "/v1/trials/roled/assignments", None, 200)
        .await;
    let fylke = assignments["assignments"][0]["fylke"]
        .as_str()
        .unwrap_or_else(|| panic!("an assigned firm's fylke in {assignments}"))
        .to_owned();
    let created = app
        .direktorat_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({ "name": "NAV fylke", "role": "fylke", "fylke": fylke })),
            201,
        )
        .await;
    let secret = created["token"].as_str().expect("secret").to_owned();
    let id = created["info"]["id"].as_i64().expect("id");
    let ack = app
        .client
        .post(app.url("/v1/trials/roled/acknowledgements"))
        .bearer_auth(&secret)
        .json(&json!({ "wave": 1 }))
        .send()
        .await
        .expect("send");
    assert_eq!(
        ack.status().as_u16(),
        201,
        "{}",
        ack.text().await.unwrap_or_default()
    );
    // The fylke reports take-up (a control firm's record is a protocol deviation, its own
    // table) and a survey; the directorate uploads DVH CSV statistics (COPY on PostgreSQL) and
    // NAV's metadata, and reads them back.
    let own: Vec<(String, String)> = assignments["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .filter(|a| a["fylke"] == fylke.as_str())
        .map(|a| {
            (
                a["orgnr"].as_str().unwrap_or_default().to_owned(),
                a["arm"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let firm = own[0].0.clone();
    let mut takeup = String::from("orgnr,status,dato,arbeidsform_levert,timer\n");
    for (orgnr, arm) in &own {
        takeup.push_str(&format!("{orgnr},KONTAKTET,2025-02-03,,\n"));
        if arm != "kontroll" {
            takeup.push_str(&format!("{orgnr},AKTIV,2025-02-20,{arm},4.5\n"));
        }
    }
    let (status, body) =
        crate::helpers::post_csv(&app, &secret, "/v1/trials/roled/takeup", takeup).await;
    assert_eq!(status, 201, "take-up: {body}");
    let survey =
        format!("orgnr,bolge,maal,verdi,antall_svar\n{firm},1,arbeidsmiljo_indeks,3.5,6\n");
    let (status, body) =
        crate::helpers::post_csv(&app, &secret, "/v1/trials/roled/surveys", survey).await;
    assert_eq!(status, 201, "survey: {body}");
    app.statistics_csv(
        format!("orgnr,arstall,kvartal,taptedv,muligedv,antpers\n{firm},2025,1,3.5,60,12\n"),
        201,
    )
    .await;
    let metadata = json!([{
        "årstall": 2025, "kvartal": 1, "orgnr": firm, "sektor": "3",
        "primærnæring": "88", "primærnæringskode": "88.911", "rectype": "2"
    }]);
    let response = app
        .as_direktorat(Method::POST, "/v1/statistics")
        .header("content-type", "application/json")
        .body(metadata.to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(status, 201, "metadata upload: {body}");
    app.direktorat_call(
        Method::GET,
        &format!("/v1/statistics/metadata?orgnr={firm}"),
        None,
        200,
    )
    .await;
    app.direktorat_call(Method::GET, "/v1/trials/roled/outcomes/summary", None, 200)
        .await;
    // An analysis run: its job is claimed, renewed and finished as the role.
    let run = app
        .direktorat_call(
            Method::POST,
            "/v1/trials/roled/analyses",
            Some(json!({ "weights": "firm" })),
            202,
        )
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let job = loop {
        let job = app
            .direktorat_call(Method::GET, &format!("/v1/jobs/{}", run["job"]), None, 200)
            .await;
        if job["state"] != "queued" && job["state"] != "running" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        job["state"] == "done" || job["error"]["code"] == "conflict",
        "the job ran as the role: {job}"
    );
    app.direktorat_call(Method::POST, &format!("/v1/tokens/{id}/revoke"), None, 200)
        .await;
    assert_eq!(whoami(&app, &secret).await.0, 401);

    // To the end of the lifecycle, and the audit log reads back.
    for to in ["follow_up", "closed"] {
        app.direktorat_call(
            Method::POST,
            "/v1/trials/roled/transitions",
            Some(json!({ "to": to })),
            200,
        )
        .await;
    }
    let audit = app
        .direktorat_call(Method::GET, "/v1/audit?limit=1000", None, 200)
        .await;
    assert!(
        audit.to_string().contains("/v1/tokens/{id}/revoke"),
        "{audit}"
    );

    // A page session: stored at sign-in, ended at sign-out (its one UPDATE).
    let session = crate::pages::signed_in(&app, &app.direktorat.secret).await;
    assert!(crate::pages::sign_out(&app, &session).await);
    app.store.close().await;
    drop(app);
    drop(role);
}

/// Writes a randomized trial and a revoked token into a database that has the migrations before
/// 0009 only, as a service of that time would have left them.
macro_rules! seed_before_0009 {
    ($conn:expr, $migrator:expr, $protocol:expr) => {{
        let conn = $conn;
        $migrator
            .run(&mut *conn)
            .await
            .expect("migrations 0001-0008");
        let at = ia_rct::storage::now();
        let version = i32::try_from($protocol.version).expect("version");
        sqlx::query(
            "INSERT INTO trials (id, state, current_version, created_at, created_by, updated_at) \
             VALUES ($1, 'randomized', $2, $3, 'test', $3)",
        )
        .bind($protocol.id.as_str())
        .bind(version)
        .bind(at)
        .execute(&mut *conn)
        .await
        .expect("trial");
        sqlx::query(
            "INSERT INTO protocol_versions (trial_id, version, content_hash, canonical_json, \
                                            created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, 'test')",
        )
        .bind($protocol.id.as_str())
        .bind(version)
        .bind($protocol.content_hash())
        .bind($protocol.canonical_json())
        .bind(at)
        .execute(&mut *conn)
        .await
        .expect("protocol version");
        sqlx::query(
            "INSERT INTO api_tokens (name, role, fylke, token_sha256, created_at, created_by, \
                                     revoked_at, revoked_by) \
             VALUES ('Old', 'forsker', NULL, $1, $2, 'test', $2, 'test')",
        )
        .bind("b".repeat(64))
        .bind(at)
        .execute(&mut *conn)
        .await
        .expect("token");
    }};
}

/// A database migrated before 0009 keeps its trials and protocols through the rebuild of
/// `protocol_versions`, and is locked afterwards like a new one.
async fn a_database_from_before_the_locks_keeps_its_trials_and_is_locked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let earlier = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(format!("src/storage/migrations/{folder}")).expect("migrations")
    {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.as_str() < "0009" {
            std::fs::copy(&path, earlier.path().join(&name)).expect("copy migration");
        }
    }
    let migrator = sqlx::migrate::Migrator::new(earlier.path())
        .await
        .expect("the earlier migrations");
    let text = std::fs::read_to_string("protocols/nals-arbeidsformer.toml").expect("protocol");
    let protocol = ia_rct::protocol::Protocol::from_toml(&text).expect("valid protocol");
    match backend {
        Backend::Sqlite => {
            use sqlx::ConnectOptions;
            use std::str::FromStr;
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .expect("url")
                .create_if_missing(true)
                .foreign_keys(true)
                .connect()
                .await
                .expect("connect");
            seed_before_0009!(&mut conn, migrator, protocol);
            conn.close().await.ok();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            seed_before_0009!(&mut conn, migrator, protocol);
            conn.close().await.ok();
        }
    }

    // The service's migrations bring it to 0009.
    let store = db.store().await;
    let trial = store.get_trial(&protocol.id).await.expect("the trial");
    assert_eq!(trial.state, ia_rct::protocol::TrialState::Randomized);
    assert_eq!(trial.content_hash, protocol.content_hash());
    assert_eq!(trial.protocol, protocol);
    let versions = store
        .protocol_versions(&protocol.id)
        .await
        .expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].content_hash, protocol.content_hash());
    let tokens = store.list_tokens().await.expect("tokens");
    assert!(tokens[0].revoked_at.is_some(), "{tokens:?}");
    store.close().await;

    for (sql, says) in [
        ("UPDATE trials SET state = 'draft'", "moves only forward"),
        (
            "UPDATE protocol_versions SET canonical_json = '{}'",
            "immutable",
        ),
        (
            "UPDATE api_tokens SET revoked_at = NULL, revoked_by = NULL",
            "revocation is immutable",
        ),
        ("UPDATE api_tokens SET role = 'direktorat'", "immutable"),
    ] {
        let error = refused(backend, &db.url, sql)
            .await
            .unwrap_or_else(|| panic!("the owner may run {sql}"));
        assert!(error.contains(says), "{sql}: {error}");
    }
    if backend == Backend::Sqlite {
        let mut conn = sqlx::SqliteConnection::connect(&db.url)
            .await
            .expect("connect");
        let keys: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_list('protocol_versions')")
                .fetch_all(&mut conn)
                .await
                .expect("foreign keys");
        assert_eq!(
            keys,
            vec![("trials".to_owned(),)],
            "the rebuilt table keeps its key"
        );
        let broken: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut conn)
                .await
                .expect("foreign key check");
        assert!(broken.is_empty(), "{broken:?}");
    }
}

/// `/readyz` answers 503 when the service cannot write: on PostgreSQL the README's
/// role with one grant taken away (INSERT on `audit_log`), on SQLite a read-only database file;
/// and 200 again once the grant or the permission is back.
async fn readyz_fails_when_the_service_cannot_write(backend: Backend) {
    let (app, role, owner_url) = serve_as_readme_role(backend).await;
    let ready = || async {
        let response = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    };
    assert_eq!(ready().await.0, 200);
    let sqlite_file = owner_url
        .strip_prefix("sqlite://")
        .map(|p| std::path::PathBuf::from(p.split('?').next().unwrap_or(p)));
    let grant = |revoke: bool| {
        let owner_url = owner_url.clone();
        let name = role.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        async move {
            let mut owner = sqlx::PgConnection::connect(&owner_url)
                .await
                .expect("connect as the owner");
            let sql = if revoke {
                format!("REVOKE INSERT ON audit_log FROM {name}")
            } else {
                format!("GRANT INSERT ON audit_log TO {name}")
            };
            sqlx::raw_sql(&sql)
                .execute(&mut owner)
                .await
                .expect("grant");
        }
    };
    let set_readonly = |readonly: bool| {
        let file = sqlite_file.clone().expect("sqlite file");
        let mut permissions = std::fs::metadata(&file).expect("stat").permissions();
        permissions.set_readonly(readonly);
        std::fs::set_permissions(&file, permissions).expect("chmod");
    };
    match backend {
        Backend::Postgres => grant(true).await,
        Backend::Sqlite => set_readonly(true),
    }
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    // The reason (the missing grant, the read-only file) goes to the log, not to the caller.
    assert!(body.contains("cannot write"), "{body}");
    match backend {
        Backend::Postgres => grant(false).await,
        Backend::Sqlite => set_readonly(false),
    }
    let (status, body) = ready().await;
    assert_eq!(status, 200, "{body}");
    app.store.close().await;
    drop(app);
    drop(role);
}

on_both_backends!(
    accepted_trials_and_tokens_cannot_be_rewritten_in_the_database,
    a_database_from_before_the_locks_keeps_its_trials_and_is_locked,
    the_service_writes_as_the_readme_role,
    readyz_fails_when_the_service_cannot_write,
);
