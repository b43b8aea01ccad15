//! `soplab-source`: runs the source provider ([`soplab_source::source`]) on a UDP socket (see
//! [`soplab_source::daemon`], which `soplab source` runs too).

use std::process::ExitCode;

use clap::Parser;
use soplab_source::daemon;

#[derive(Debug, Parser)]
#[command(name = "soplab-source", version, about = daemon::ABOUT, long_about = daemon::LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    args: daemon::Args,
}

fn main() -> ExitCode {
    let args = Cli::parse().args;
    soplab_shell::process::main(async { daemon::run(args.into_config()?).await })
}
