//! `soplab-tracker`: runs the [`soplab_tracker::Tracker`] core on a UDP socket (see
//! [`soplab_tracker::daemon`], which `soplab tracker` runs too).

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use soplab_tracker::daemon;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "soplab-tracker", version, about = daemon::ABOUT, long_about = daemon::LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    args: daemon::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    match run(cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes included, no backtrace: the message says what to do.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: daemon::Args) -> Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")?;
    runtime.block_on(daemon::run(args))
}
