//! The `soplab-tracker` binary's command line: `--help`, a bad flag, and a taken port. (The
//! tracker at work, with a source and peers, is tested as `soplab tracker` in
//! swarm/tests/daemons.rs, so that this package needs no other daemon.)

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use soplab_testkit::{check_help_and_bad_flag, output_within};

const EXE: &str = env!("CARGO_BIN_EXE_soplab-tracker");

#[test]
fn help_lists_the_flags_and_a_bad_flag_fails() {
    check_help_and_bad_flag(EXE, &["--listen", "--ttl", "--seed", "--truth", "--stats", "--duration"]);
}

#[test]
fn a_taken_port_fails_with_advice() {
    let taken = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = taken.local_addr().unwrap();
    let out = output_within(Command::new(EXE).args(["--listen", &addr.to_string()]), Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("error: cannot listen on UDP {addr}")) && err.contains("pick another port"), "{err}");
}
