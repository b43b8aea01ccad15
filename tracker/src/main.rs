//! `soplab-tracker`: runs the [`soplab_tracker::Tracker`] core on a UDP socket (see
//! [`soplab_tracker::daemon`], which `soplab tracker` runs too).

use std::process::ExitCode;

use soplab_tracker::daemon;

fn main() -> ExitCode {
    soplab_shell::process::daemon_main("soplab-tracker", daemon::Args::into_config, daemon::run)
}
