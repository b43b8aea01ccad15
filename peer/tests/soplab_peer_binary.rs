//! The `soplab-peer` binary's command line: `--help`, a bad flag, and addresses it cannot use.
//! (Peers at work, with a tracker and a source, are tested as `soplab peer` in
//! swarm/tests/daemons.rs, so that this package needs no other daemon.)

use std::process::{Command, Output};
use std::time::Duration;

use soplab_testkit::{check_help_and_bad_flag, output_within};

const EXE: &str = env!("CARGO_BIN_EXE_soplab-peer");

fn peer(args: &[&str]) -> Output {
    output_within(Command::new(EXE).args(args), Duration::from_secs(20))
}

#[test]
fn help_lists_the_flags_and_a_bad_flag_fails() {
    check_help_and_bad_flag(EXE, &["--addr", "--count", "--tracker", "--truth-dir", "--played-dir", "--http-port"]);
}

#[test]
fn bad_addresses_fail_with_advice() {
    let out = peer(&["--addr", "127.255.255.254:3908", "--count", "5", "--duration", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: --count 5 from --addr 127.255.255.254") && err.contains("at most 2 peers"), "{err}");

    let out = peer(&["--addr", "10.1.2.3:3908"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside 127.0.0.0/8 and 198.18.0.0/15"), "{err}");
}
