//! `soplab demo` without root tools: it says it falls back to loopback and why, the peers
//! write their own pcaps, it analyses and validates its run, and it ends by printing where the
//! pcaps and the summary are.

use std::process::Command;

use soplab_testkit::{TempDir, read_json};

#[test]
fn demo_falls_back_to_loopback_with_self_written_pcaps() {
    let dir = TempDir::new("demo-test");
    let out_dir = dir.path();
    // No `ip` or tcpdump on this PATH, so the demo must pick loopback even as root.
    let out = Command::new(env!("CARGO_BIN_EXE_soplab"))
        .args(["demo", "--peers", "5", "--duration", "15s", "--out"])
        .arg(out_dir)
        .env("PATH", "/nonexistent")
        .output()
        .expect("run soplab demo");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("loopback") && stderr.contains("is not installed"), "says which mode and why: {stderr}");
    assert!(stdout.contains(&format!("summary: {}", out_dir.join("summary.json").display())), "{stdout}");
    assert!(stdout.contains(&out_dir.join("pcap").display().to_string()), "{stdout}");
    // It analysed and validated its own run: the paper table, precision and recall per layer.
    assert!(stdout.contains("Tang et al.") && stdout.contains("gn_outdegree_share_2_5s"), "{stdout}");
    assert!(stdout.contains("neighbor (tau 2.5 s") && stdout.contains("video (tau 2 s"), "{stdout}");
    assert!(stdout.lines().last().unwrap().starts_with("pcaps are in"), "{stdout}");
    let report = read_json(&out_dir.join("analysis/report.json"));
    assert_eq!(report["paper_comparison"].as_array().unwrap().len(), 11, "{report}");
    let validation = read_json(&out_dir.join("validation.json"));
    for layer in ["neighbor", "video"] {
        assert!(validation["layers"][layer]["recall"].as_f64().is_some(), "{validation}");
    }

    let run = read_json(&out_dir.join("run.json"));
    assert_eq!(run["mode"], "loopback");
    let pcaps = run["pcaps"].as_array().unwrap();
    assert_eq!(pcaps.len(), 5, "one pcap per peer");
    for p in pcaps {
        let bytes = std::fs::read(out_dir.join(p["file"].as_str().unwrap())).unwrap();
        // A pcap header, then records: at least the HELLO / reply / ACK of one link and video.
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_ne_bytes());
        assert!(p["packets"].as_u64().unwrap() > 100, "{p}");
    }
    let summary = read_json(&out_dir.join("summary.json"));
    assert!(summary["peers"].as_array().unwrap().iter().all(|p| p["played_matches_source"] == true), "{summary}");
}
