//! The `ia-rct` command line: `serve`, `migrate`, `token`, and the offline `protocol`, `assign` and
//! `verify`.
//!
//! Everything the commands print on stdout goes through [`out!`] and [`outln!`], so that a reader
//! that stops early (`ia-rct protocol show P | head`) ends the command quietly ([`StdoutClosed`])
//! instead of a panic in `println!`; clippy's `print_stdout` keeps it that way.
#![warn(clippy::print_stdout)]

/// `print!` for the commands: writes to stdout, and returns from the enclosing function with
/// [`StdoutClosed`] when the reader has gone away (any other write error with its reason).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))?
    };
}

/// `println!` for the commands, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

mod demo;
mod estimate;
mod offline;
pub mod progress_bar;
mod simulate;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::auth::{TokenSpec, generate_token};
use crate::config::{
    DEFAULT_BODY_LIMIT, DEFAULT_SHUTDOWN_GRACE_SECS, DEFAULT_UPLOAD_LIMIT, HttpConfig,
};
use crate::domain::{FylkeCode, Role};
use crate::http::{self, AppState};
use crate::jobs::JobConfig;
use crate::storage::{
    self, AuditResult, NewAuditEntry, NewToken, StoreOptions, TokenInfo, redact_url,
};
use tokio::sync::Notify;

/// ia-rct: NAV's randomized trial of arbeidsformer against sickness absence.
#[derive(Debug, Parser)]
#[command(name = "ia-rct", version, about, long_about = None)]
pub struct Cli {
    /// Database URL: `sqlite://PATH` (created on first use) or `postgres://USER@HOST/DB`. `demo`
    /// uses it only when given here, never from the variable or the default.
    #[arg(
        long,
        env = "IA_RCT_DATABASE_URL",
        default_value = "sqlite://ia-rct.db",
        global = true
    )]
    pub database_url: String,

    /// Whether `--database-url` was given on the command line, rather than taken from
    /// `IA_RCT_DATABASE_URL` or the default (set by [`Cli::parse_command_line`]): `demo` runs on
    /// that database only then, and otherwise on a temporary SQLite database.
    #[arg(skip)]
    pub database_url_given: bool,

    /// Log format on stderr.
    #[arg(long, env = "IA_RCT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Fault injection for crash tests only: pause this many milliseconds inside every write
    /// transaction before it commits. Only in builds with the `fault-injection` feature (the test
    /// build); other builds have no such option and ignore the variable.
    #[cfg(feature = "fault-injection")]
    #[arg(
        long,
        env = "IA_RCT_FAULT_PAUSE_IN_WRITE_MS",
        hide = true,
        global = true
    )]
    pub fault_pause_in_write_ms: Option<u64>,

    /// Fault injection for crash and cancellation tests only: every job pauses this many
    /// milliseconds before it computes (checking its cancel flag). Only in builds with the
    /// `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    #[arg(long, env = "IA_RCT_FAULT_PAUSE_IN_JOB_MS", hide = true, global = true)]
    pub fault_pause_in_job_ms: Option<u64>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's command line (exiting with clap's message on an error), noting where
    /// the database URL came from.
    pub fn parse_command_line() -> Cli {
        Cli::parse_arguments(std::env::args_os())
    }

    /// Parses `args` (the program name first) as [`Cli::parse_command_line`] does.
    pub fn parse_arguments<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches = Cli::command().get_matches_from(args);
        let given = matches.value_source("database_url") == Some(ValueSource::CommandLine);
        let mut cli = Cli::from_arg_matches_mut(&mut matches)
            .unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
        cli.database_url_given = given;
        cli
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (applies migrations first).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Create, list and revoke bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read a protocol file and print its canonical JSON (`show`) or content hash (`hash`); an
    /// invalid protocol is refused with the reason.
    #[command(subcommand)]
    Protocol(offline::ProtocolCommand),
    /// Randomize a firm register offline, exactly as the service does (no database).
    Assign(offline::AssignArgs),
    /// Recompute an assignment from its inputs and list every difference (no database).
    Verify(offline::VerifyArgs),
    /// Apply NAV statistics files (DVH CSV, virksomhet.json or virksomhet_metadata.json) to the register, each file in one
    /// transaction, exactly as `POST /v1/statistics` does.
    Ingest(IngestArgs),
    /// Write a synthetic register, its NAV statistics and, with a protocol, a draw with known
    /// effects (no database).
    Simulate(simulate::SimulateArgs),
    /// Effect estimates from an assignment and NAV statistics files (no database):
    /// itt_dim, itt_ancova, itt_lin, did_twfe, event_study, for every arm and weighting.
    Estimate(estimate::EstimateArgs),
    /// The whole trial through the service's own routes: protocol, statistics, enrollment,
    /// randomization, follow-up, estimates; on an embedded SQLite database in a temporary folder,
    /// or on the database --database-url names (not IA_RCT_DATABASE_URL), where the trial stays.
    Demo(demo::DemoArgs),
}

/// Options of `ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The files, applied one after another; a file with any invalid row is refused whole.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "IA_RCT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Largest JSON request body in bytes; larger ones get 413.
    #[arg(long, env = "IA_RCT_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Largest file upload (a firm register) in bytes; larger ones get 413.
    #[arg(long, env = "IA_RCT_UPLOAD_LIMIT", default_value_t = DEFAULT_UPLOAD_LIMIT)]
    pub upload_limit: usize,
    /// After SIGTERM/SIGINT, how many seconds to let requests in flight finish before exiting.
    #[arg(long, env = "IA_RCT_SHUTDOWN_GRACE_SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,
    /// Jobs (analysis runs) this instance runs at once (default: one per core; 0: none, an
    /// API-only instance).
    #[arg(long, env = "IA_RCT_JOB_WORKERS")]
    pub job_workers: Option<usize>,
    /// Seconds a worker's claim on a job holds without renewal: after a crash, another worker
    /// (here after a restart, or on another instance) runs the job again once it expires.
    #[arg(long, env = "IA_RCT_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret once (on stdout; everything else goes to stderr).
    Create {
        /// direktorat, fylke or forsker.
        #[arg(long)]
        role: Role,
        /// The 2-digit fylke code a fylke token is bound to (e.g. 46 for Vestland).
        #[arg(long)]
        fylke: Option<FylkeCode>,
        /// A name, unique among active tokens (e.g. "NAV Vestland").
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        /// The token's id (from `token list`).
        id: i64,
    },
}

/// stdout was closed by its reader (`ia-rct protocol show P | head`). The binary exits quietly with
/// status 141, what a shell reports for a program that a closed pipe stopped (128 + SIGPIPE).
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Writes to stdout (see [`out!`]): a closed pipe is [`StdoutClosed`], any other failure an error
/// with its reason.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_fmt(args) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// Sets up logging on stderr: by default `info` (and sqlx's warnings) for the service, and only
/// warnings for `demo`, which tells its own story on stderr (`RUST_LOG` overrides both).
pub fn init_tracing(format: LogFormat, command: &Command) {
    let default = match command {
        Command::Demo(_) => "warn,sqlx=error",
        _ => "info,sqlx=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stops the command, with context for the user.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Protocol(command) => return offline::protocol(command),
        Command::Assign(args) => return offline::assign(args),
        Command::Verify(args) => return offline::verify(args),
        Command::Simulate(args) => return simulate::run(args),
        Command::Estimate(args) => return estimate::run(args),
        Command::Demo(args) => {
            let url = cli.database_url_given.then_some(cli.database_url.as_str());
            return demo::run(args, url).await;
        }
        _ => {}
    }
    #[cfg(feature = "fault-injection")]
    let options = StoreOptions {
        pause_in_write: cli.fault_pause_in_write_ms.map(Duration::from_millis),
    };
    #[cfg(not(feature = "fault-injection"))]
    let options = StoreOptions::default();
    #[cfg(feature = "fault-injection")]
    let job_pause = cli.fault_pause_in_job_ms.map(Duration::from_millis);
    #[cfg(not(feature = "fault-injection"))]
    let job_pause = None;
    let url = cli.database_url.as_str();
    let store = storage::connect(url, options)
        .await
        .with_context(|| format!("could not open the database at {}", redact_url(url)))?;
    let result = match cli.command {
        Command::Migrate => {
            eprintln!("migrations applied to {}", redact_url(url));
            Ok(())
        }
        Command::Serve(args) => serve(store.clone(), args, job_pause).await,
        Command::Token(command) => token(store.as_ref(), command).await,
        Command::Ingest(args) => ingest(store.as_ref(), args).await,
        Command::Protocol(_)
        | Command::Assign(_)
        | Command::Verify(_)
        | Command::Simulate(_)
        | Command::Estimate(_)
        | Command::Demo(_) => Ok(()),
    };
    store.close().await;
    result
}

async fn serve(
    store: Arc<dyn storage::Store>,
    args: ServeArgs,
    job_pause: Option<Duration>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("could not listen on {}", args.bind))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let config = HttpConfig {
        body_limit: args.body_limit,
        upload_limit: args.upload_limit,
    };
    tracing::info!(%addr, backend = ?store.backend(), "listening");
    // One line on stdout that scripts (and the tests) can read the address from; the service keeps
    // running when nobody reads it.
    let announced = write_stdout(format_args!("ia-rct listening on http://{addr}\n"));
    if announced.is_ok() {
        std::io::stdout().flush().ok();
    }

    let stopping = Arc::new(Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown_signal().await;
            stopping.notify_one();
        }
    };
    let mut jobs = JobConfig {
        lease: Duration::from_secs(args.job_lease_secs.max(1)),
        pause: job_pause,
        ..JobConfig::default()
    };
    if let Some(workers) = args.job_workers {
        jobs.workers = workers;
    }
    let state = AppState::with_jobs(store, config, jobs);
    let pool = Arc::clone(&state.jobs);
    tracing::info!(worker = pool.owner(), "job workers started");
    let server = http::serve(listener, state, signal);
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    tokio::select! {
        result = server => result.context("the HTTP server failed")?,
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period; exiting");
        }
    }
    // Running jobs stop at their next check and go back to the queue for the next start.
    pool.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

/// Who acts on the command line: `cli:<login>`, recorded as the actor in the audit log.
pub(super) fn cli_operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}")
}

/// An audit entry for a command-line action by [`cli_operator`].
pub(super) fn cli_audit(command: &str, status: u16) -> NewAuditEntry {
    let mut entry = NewAuditEntry::now("CLI", command, &format!("ia-rct {command}"));
    entry.operator = Some(cli_operator());
    entry.status = status;
    entry
}

/// Records a refused command-line write (the write itself rolled back) and returns its error.
async fn record_cli_failure(
    store: &dyn storage::Store,
    mut entry: NewAuditEntry,
    error: storage::StoreError,
) -> anyhow::Error {
    entry.result = AuditResult::Failed;
    entry.status = match error {
        storage::StoreError::NotFound => 404,
        storage::StoreError::Conflict(_) => 409,
        _ => 500,
    };
    entry.detail = Some(error.to_string());
    if let Err(audit_error) = store.append_audit(&entry).await {
        tracing::error!(error = %audit_error, "could not audit a failed command");
    }
    error.into()
}

async fn token(store: &dyn storage::Store, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { role, fylke, name } => {
            let spec = TokenSpec::new(&name, role, fylke)
                .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field()))?;
            let generated = generate_token()?;
            let new = NewToken {
                name: spec.name,
                role: spec.role,
                fylke: spec.fylke,
                hash: generated.hash,
                created_by: cli_operator(),
            };
            let audit = cli_audit("token create", 201);
            let info = match store.create_token(&new, &audit).await {
                Ok(created) => created.value,
                Err(e) => return Err(record_cli_failure(store, audit, e).await),
            };
            eprintln!(
                "Created token {} \"{}\" (role {}{}). Store the secret now; it is not shown again:",
                info.id,
                info.name,
                info.role,
                info.fylke
                    .map(|f| format!(", fylke {f} {}", f.name()))
                    .unwrap_or_default()
            );
            outln!("{}", generated.secret);
            Ok(())
        }
        TokenCommand::List { json } => {
            let tokens = store.list_tokens().await?;
            if json {
                outln!("{}", crate::json::to_string_pretty(&tokens)?);
            } else {
                print_token_table(&tokens)?;
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let audit = cli_audit("token revoke", 200);
            match store.revoke_token(id, &cli_operator(), &audit).await {
                Ok(revoked) => {
                    eprintln!(
                        "Revoked token {} \"{}\".",
                        revoked.value.id, revoked.value.name
                    );
                    Ok(())
                }
                Err(storage::StoreError::NotFound) => {
                    let error = storage::StoreError::NotFound;
                    record_cli_failure(store, audit, error).await;
                    anyhow::bail!("no token has id {id}; `ia-rct token list` shows them")
                }
                Err(e) => Err(record_cli_failure(store, audit, e).await),
            }
        }
    }
}

async fn ingest(store: &dyn storage::Store, args: IngestArgs) -> anyhow::Result<()> {
    use crate::storage::statistics::{IngestFailure, NewStatisticsUpload, UploadSource};
    for path in &args.files {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let upload = NewStatisticsUpload {
            source: UploadSource::Cli,
            idempotency_key: None,
            created_by: cli_operator(),
        };
        let audit = cli_audit("ingest", 201);
        let started = std::time::Instant::now();
        match crate::ingest::ingest(
            store,
            std::io::BufReader::with_capacity(1 << 20, file),
            u64::MAX,
            &upload,
            &audit,
        )
        .await
        {
            Ok(receipt) => {
                let r = receipt.value;
                eprintln!(
                    "{}: vintage {}, {} rows: {} inserted, {} unchanged, {} revised ({}) in {:.1} s",
                    path.display(),
                    r.vintage,
                    r.rows,
                    r.inserted,
                    r.unchanged,
                    r.revised,
                    r.outcome(),
                    started.elapsed().as_secs_f64()
                );
            }
            Err(IngestFailure::Invalid { errors, total }) => {
                let mut entry = audit.clone();
                entry.result = AuditResult::Failed;
                entry.status = 422;
                entry.detail = Some(format!("{total} invalid row(s) in {}", path.display()));
                store.append_audit(&entry).await.ok();
                let mut message = format!(
                    "{} was refused, nothing was written: {total} problem(s)",
                    path.display()
                );
                for e in &errors {
                    message.push_str(&format!("\n  {e} (value `{}`)", e.value));
                }
                anyhow::bail!(message);
            }
            Err(IngestFailure::Store(e)) => return Err(record_cli_failure(store, audit, e).await),
        }
    }
    Ok(())
}

fn print_token_table(tokens: &[TokenInfo]) -> anyhow::Result<()> {
    outln!(
        "{:>4}  {:<30}  {:<10}  {:<5}  {:<25}  REVOKED",
        "ID",
        "NAME",
        "ROLE",
        "FYLKE",
        "CREATED"
    );
    for t in tokens {
        outln!(
            "{:>4}  {:<30}  {:<10}  {:<5}  {:<25}  {}",
            t.id,
            t.name,
            t.role,
            t.fylke.map(|f| f.as_str()).unwrap_or("-"),
            t.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            t.revoked_at
                .map(|r| r.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "-".to_owned())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;

    /// `--database-url` counts as given wherever it stands on the command line (it is global), and
    /// only there: the default (or IA_RCT_DATABASE_URL) does not make `demo` leave its temporary
    /// SQLite database.
    #[test]
    fn database_url_given_only_on_the_command_line() {
        let default = Cli::parse_arguments(["ia-rct", "demo"]);
        assert!(!default.database_url_given);
        for args in [
            ["ia-rct", "demo", "--database-url", "sqlite://given.db"],
            ["ia-rct", "--database-url", "sqlite://given.db", "demo"],
        ] {
            let cli = Cli::parse_arguments(args);
            assert!(cli.database_url_given, "{args:?}");
            assert_eq!(cli.database_url, "sqlite://given.db");
        }
    }
}
