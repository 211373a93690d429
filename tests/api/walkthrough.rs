//! The README's walk-through, run as the script `scripts/walkthrough.sh` against a real `ia-rct
//! serve` process, on each backend; and the README shows the script's steps, not others.

use std::path::Path;
use std::process::Stdio;

use crate::helpers::{BIN, Backend, ServerProcess, TestDb};
use crate::on_both_backends;

on_both_backends!(the_readme_walkthrough_runs_end_to_end);

/// The script exits 0 and says so; each of its steps checks the status it expects, Vestland sees
/// only its own firms, and the served assignment re-derives offline with the same eligibility.
async fn the_readme_walkthrough_runs_end_to_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    // The server migrates the database on start; the script's `token create` then writes to it.
    let server = ServerProcess::start(&db.url, &[]).await;
    let work = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("bash")
        .arg(root.join("scripts/walkthrough.sh"))
        .current_dir(root)
        .env("IA_RCT_URL", &server.base)
        .env("IA_RCT", BIN)
        .env("IA_RCT_DATABASE_URL", &db.url)
        .env("WORK", work.path())
        .env("FIRMS", "1500")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run bash scripts/walkthrough.sh (needs bash and curl)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("walk-through: ok"),
        "the walk-through failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("verified: "), "{all}");
    assert!(all.contains("eligible firms, as the service"), "{all}");
    drop(server);
}

/// Every command line of the README's walk-through block appears in the script, so a reader who
/// copies the README runs what the test runs.
#[test]
fn the_readme_shows_the_scripts_steps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let script = std::fs::read_to_string(root.join("scripts/walkthrough.sh")).expect("script");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("A walk through"))
        .expect("README has a section `## A walk through ...`");
    let mut checked = 0;
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let line = line.trim();
        if !in_block || line.is_empty() || line.starts_with('#') {
            continue;
        }
        assert!(
            script.contains(line),
            "README's walk-through line is not in scripts/walkthrough.sh: {line}"
        );
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} walk-through lines in the README"
    );
}
