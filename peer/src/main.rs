//! `soplab-peer`: runs one or many peers ([`soplab_peer::Peer`]) over UDP in this process (see
//! [`soplab_peer::daemon`], which `soplab peer` runs too).

use std::process::ExitCode;

use clap::Parser;
use soplab_peer::daemon;

#[derive(Debug, Parser)]
#[command(name = "soplab-peer", version, about = daemon::ABOUT, long_about = daemon::LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    args: daemon::Args,
}

fn main() -> ExitCode {
    let args = Cli::parse().args;
    soplab_shell::process::main(async { daemon::run(args.into_config()?).await })
}
