//! The `soplab-source` binary's command line: `--help`, a bad flag, and a missing media file.
//! (The source at work, with a tracker and peers, and on SIGTERM, is tested as `soplab source`
//! in swarm/tests/daemons.rs, so that this package needs no other daemon.)

use std::process::Command;
use std::time::Duration;

use soplab_testkit::{check_help_and_bad_flag, output_within};

const EXE: &str = env!("CARGO_BIN_EXE_soplab-source");

#[test]
fn help_lists_the_flags_and_a_bad_flag_fails() {
    check_help_and_bad_flag(EXE, &["--listen", "--tracker", "--file", "--bitrate", "--truth", "--stats", "--duration"]);
}

#[test]
fn missing_file_fails_with_advice() {
    let out = output_within(
        Command::new(EXE).args(["--file", "/nonexistent/soplab/media.ts", "--listen", "127.0.0.1:0"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: cannot read media file /nonexistent/soplab/media.ts"), "{err}");
}
