//! `soplab-tracker`: runs the [`soplab_tracker::Tracker`] core on a UDP socket (see
//! [`soplab_tracker::daemon`], which `soplab tracker` runs too).

use std::process::ExitCode;

use clap::Parser;
use soplab_tracker::daemon;

#[derive(Debug, Parser)]
#[command(name = "soplab-tracker", version, about = daemon::ABOUT, long_about = daemon::LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    args: daemon::Args,
}

fn main() -> ExitCode {
    let args = Cli::parse().args;
    soplab_shell::process::main(async { daemon::run(args.into_config()?).await })
}
