//! The `ia-rct` binary: parses the command line and hands over to the library.

use ia_rct::cli::{Cli, StdoutClosed, init_tracing, run};

/// What a shell reports for a program stopped by a closed pipe (128 + SIGPIPE).
const STDOUT_CLOSED: u8 = 141;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse_command_line();
    init_tracing(cli.log_format, &cli.command);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `ia-rct protocol show P | head`: the reader has what it wanted; no message.
        Err(e) if e.chain().any(|c| c.is::<StdoutClosed>()) => {
            std::process::ExitCode::from(STDOUT_CLOSED)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
