//! `soplab-analyze`: the `analyze` and `validate` subcommands of `soplab` on their own.

use std::process::ExitCode;

use clap::Parser;
use soplab_analyze::cli;

/// Rebuild the SopCast overlay of Tang et al. from packet captures, and check it against
/// soplab's ground truth.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
enum Cli {
    #[command(about = "Rebuild the overlay from captures: report.json, CSV tables, plots", long_about = cli::ANALYZE_ABOUT)]
    Analyze(cli::AnalyzeArgs),
    #[command(about = "Check the overlay rebuilt from a run's captures against its ground truth", long_about = cli::VALIDATE_ABOUT)]
    Validate(cli::ValidateArgs),
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match Cli::parse() {
        Cli::Analyze(a) => cli::analyze(&a),
        Cli::Validate(a) => cli::validate(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
