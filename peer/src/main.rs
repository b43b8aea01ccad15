//! `soplab-peer`: runs one or many peers ([`soplab_peer::Peer`]) over UDP in this process (see
//! [`soplab_peer::daemon`], which `soplab peer` runs too).

use std::process::ExitCode;

use soplab_peer::daemon;

fn main() -> ExitCode {
    soplab_shell::process::daemon_main("soplab-peer", daemon::Args::into_config, daemon::run)
}
