//! End to end for the analyzer (issue 5): a real swarm captured by real tcpdump, analysed and
//! validated against its ground truth by the `soplab` binary.
//!
//! - `loopback_capture_validates`: 10 peers on loopback for 40 s, `tcpdump -i lo` filtered to
//!   the run's 127.x.0.0/16; `soplab validate --min 0.99` and `soplab analyze`.
//! - `netns_capture_validates`: 30 peers in network namespaces for 30 s, captured on the bridge
//!   and at 5 vantage peers (six files merged, copies dropped); the same checks.
//!
//! Both need root and tcpdump (the netns test also iproute2). Without them a test says what is
//! missing and passes, unless `SOPLAB_REQUIRE_TOOLS=1` is set (CI), in which case it fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use soplab_testkit::{TempDir, netns_swarm_args, read_json, root_and_tools_available, run_ok, serial};

fn o(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn soplab(args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(Path::new(env!("CARGO_BIN_EXE_soplab")), args).stdout).into_owned()
}

/// Validates and analyses `dir`; checks >= 0.99 for both layers, every peer seen, the roles
/// recognised from the traffic, and every output file.
fn check(dir: &Path, peers: u64) {
    let d = dir.to_str().expect("utf-8 path");
    let printed = soplab(&["validate", d, "--min", "0.99"]);
    eprintln!("{printed}");
    let v = read_json(&dir.join("validation.json"));
    for layer in ["neighbor", "video"] {
        let l = &v["layers"][layer];
        let (p, r) = (l["precision"].as_f64().unwrap(), l["recall"].as_f64().unwrap());
        assert!(p >= 0.99 && r >= 0.99, "{layer}: precision {p}, recall {r}: {l:#}");
        assert!(l["measured"].as_u64().unwrap() > 0, "{layer}: nothing measured");
        assert!(l["snapshots"].as_u64().unwrap() >= 10, "{layer}: too few snapshots");
    }
    assert_eq!(v["peers"]["in_truth"], peers);
    assert_eq!(v["peers"]["seen"], peers, "{:#}", v["peers"]["missing"]);
    assert_eq!(v["roles"]["traffic_agrees"], true, "{:#}", v["roles"]);
    let out = dir.join("analysis");
    soplab(&["analyze", d, "--out", out.to_str().unwrap()]);
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["summary"]["peers"], peers);
    assert!(r["summary"]["neighbor_mean_outdegree"].as_f64().unwrap() >= 3.0, "{:#}", r["summary"]);
    assert!(r["summary"]["video_mean_indegree"].as_f64().unwrap() >= 1.0, "{:#}", r["summary"]);
    let p95 = r["summary"]["keepalive_gap_p95_s"].as_f64().unwrap();
    assert!((0.9..=2.5).contains(&p95), "keep-alive gaps: 95% within {p95} s");
    assert_eq!(r["wire_crosscheck"]["disagree"], 0);
    for f in ["peers.csv", "video_degree.csv", "fig2_activation.png", "fig5_video_indegree.svg", "fig7_throughput.png"]
    {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f}: {len} bytes");
    }
}

#[test]
fn loopback_capture_validates() {
    if !root_and_tools_available("loopback_capture_validates", &["tcpdump"]) {
        return;
    }
    // The two swarms would compete for the CPU (and tcpdump's buffers): one at a time.
    let _one = serial();
    let dir = TempDir::new("analyze-e2e-lo");
    let pcap = std::env::temp_dir().join(format!("soplab-analyze-e2e-lo-{}.pcap", std::process::id()));
    // The run takes a free /16 of loopback as it starts (run.json says which): capture all of
    // loopback's UDP from before the run, and keep the run's block afterwards.
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&pcap)
        .args(["udp and net 127.0.0.0/8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tcpdump");
    std::thread::sleep(Duration::from_secs(1));
    let out = Command::new(env!("CARGO_BIN_EXE_soplab"))
        .args(["swarm", "--loopback", "--peers", "10", "--duration", "40s", "--http-port", "0", "--out"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run soplab swarm");
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(tcpdump.id() as i32), nix::sys::signal::Signal::SIGINT).ok();
    tcpdump.wait().expect("tcpdump");
    assert!(out.status.success(), "soplab swarm failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let tracker = read_json(&dir.join("run.json"))["hosts"][0]["address"].as_str().unwrap().to_string();
    let block = tracker.split('.').nth(1).expect("a 127.x.0.1 address");
    std::fs::create_dir_all(dir.join("pcap")).unwrap();
    let lo = dir.join("pcap/lo.pcap");
    let filter = format!("udp and net 127.{block}.0.0/16");
    run_ok(Path::new("tcpdump"), &[o("-r"), pcap.as_os_str(), o("-w"), lo.as_os_str(), o(&filter)]);
    std::fs::remove_file(&pcap).ok();
    check(dir.path(), 10);
}

#[test]
fn netns_capture_validates() {
    if !root_and_tools_available("netns_capture_validates", &["tcpdump", "ip"]) {
        return;
    }
    let _one = serial();
    let dir = TempDir::new("analyze-e2e-netns");
    let more = ["--bridge-capture", "--duration", "30s", "--http-port", "0"];
    run_ok(Path::new(env!("CARGO_BIN_EXE_soplab")), &netns_swarm_args(30, 5, &more, dir.path()));
    check(dir.path(), 30);
    let v = read_json(&dir.join("validation.json"));
    // Six captures merged: every vantage capture holds only its peer's traffic, and the copies
    // of datagrams seen at a vantage peer and on the bridge were dropped.
    let caps = v["captures"].as_array().unwrap();
    assert_eq!(caps.len(), 6);
    for c in caps.iter().filter(|c| !c["address"].is_null()) {
        assert_eq!(c["own_traffic_share"], 1.0, "{c:#}");
    }
    assert!(v["merge"]["duplicates"].as_u64().unwrap() > 1000, "{:#}", v["merge"]);
}
