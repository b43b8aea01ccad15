//! Faults a run must survive and report: output files that cannot be written. A daemon that
//! cannot write stops with an error naming the file and the OS error; `soplab swarm` then
//! still stops the rest, writes run.json and summary.json naming the failed daemon and its
//! error, and exits with that error.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use soplab_testkit::{TempDir, output_within, read_json, serial};

/// Every file the swarm and its daemons write is capped at 64 KiB (RLIMIT_FSIZE, inherited by
/// the daemons, with SIGXFSZ ignored so that a write past it fails with EFBIG instead of
/// killing the writer): a peer's played stream (62.5 kB/s at 500 kbit/s) hits it a second
/// into playback, while run.json and summary.json fit.
#[test]
fn a_daemon_that_cannot_write_ends_the_run_with_run_json_naming_it() {
    let _one = serial();
    let dir = TempDir::new("swarm-file-too-large");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soplab"));
    cmd.args(["swarm", "--loopback", "--peers", "2", "--duration", "30s", "--http-port", "0", "--out"]).arg(dir.path());
    // SAFETY: between fork and exec the closure only makes the async-signal-safe system calls
    // setrlimit and sigaction.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::resource::{Resource, setrlimit};
            use nix::sys::signal::{SigHandler, Signal, signal};
            setrlimit(Resource::RLIMIT_FSIZE, 64 << 10, 64 << 10)?;
            signal(Signal::SIGXFSZ, SigHandler::SigIgn)?;
            Ok(())
        });
    }
    let out = output_within(&mut cmd, Duration::from_secs(90));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("peers-0 failed") && last.contains("File too large (os error 27)"), "{last}");

    let run = read_json(&dir.path().join("run.json"));
    let failures = run["failures"].as_array().expect("run.json lists the failures");
    let peers = failures.iter().find(|f| f["daemon"] == "peers-0").unwrap_or_else(|| panic!("{failures:?}"));
    let error = peers["error"].as_str().unwrap();
    assert!(error.contains("cannot write its played stream to") && error.contains("File too large"), "{error}");
    assert_eq!(peers["log"], "logs/peers-0.log");
    let summary = read_json(&dir.path().join("summary.json"));
    assert_eq!(summary["peers"].as_array().map(Vec::len), Some(2), "{summary}");
}
