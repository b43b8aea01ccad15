//! Paths that are not UTF-8: Linux file names are bytes, and `soplab` takes them as given.
//! A run directory (`--out`), a scenario file (`--scenario`) and an analysis folder named with
//! bytes that are not UTF-8 work as any other: the run, its analysis and its validation.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use soplab_testkit::{TempDir, output_within, read_json, serial};

/// A name with the bytes 0xFF 0xFE, which no UTF-8 text has.
fn not_utf8(base: &TempDir, name: &str) -> PathBuf {
    let mut bytes = name.as_bytes().to_vec();
    bytes.extend_from_slice(b"-\xff\xfe");
    base.join(OsStr::from_bytes(&bytes))
}

fn soplab_ok(args: &[&OsStr]) -> String {
    let out = output_within(Command::new(env!("CARGO_BIN_EXE_soplab")).args(args), Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "soplab {args:?} failed:\n{err}");
    err
}

#[test]
fn a_run_analysis_and_scenario_under_a_non_utf8_path() {
    let _one = serial();
    let base = TempDir::new("paths");
    let scenario = not_utf8(&base, "scenario.toml");
    std::fs::write(&scenario, "peers = 2\nduration = \"16s\"\nhttp_port = 0\nself_capture = true\n").unwrap();
    for mode in ["virtual", "loopback"] {
        let out = not_utf8(&base, mode);
        let args: [&OsStr; 7] = [
            "swarm".as_ref(),
            "--mode".as_ref(),
            mode.as_ref(),
            "--scenario".as_ref(),
            scenario.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        soplab_ok(&args);
        let run = read_json(&out.join("run.json"));
        assert_eq!(run["hosts"].as_array().map(Vec::len), Some(4), "{mode}: {run}");
        let summary = read_json(&out.join("summary.json"));
        assert_eq!(summary["peers"].as_array().map(Vec::len), Some(2), "{mode}: {summary}");
        for p in summary["peers"].as_array().unwrap() {
            assert!(p["blocks_played"].as_u64().unwrap_or(0) > 0, "{mode}: {p}");
        }
        let analysis = not_utf8(&base, &format!("{mode}-analysis"));
        soplab_ok(&["analyze".as_ref(), out.as_os_str(), "--out".as_ref(), analysis.as_os_str()]);
        assert!(analysis.join("report.json").is_file(), "{mode}: no report");
        soplab_ok(&["validate".as_ref(), out.as_os_str()]);
        assert!(out.join("validation.json").is_file(), "{mode}: no validation");
    }
}
