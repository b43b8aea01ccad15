//! `soplab-source`: runs the source provider ([`soplab_source::source`]) on a UDP socket (see
//! [`soplab_source::daemon`], which `soplab source` runs too).

use std::process::ExitCode;

use soplab_source::daemon;

fn main() -> ExitCode {
    soplab_shell::process::daemon_main("soplab-source", daemon::Args::into_config, daemon::run)
}
