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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The two swarms would compete for the CPU (and tcpdump's buffers): one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn require_tools() -> bool {
    std::env::var("SOPLAB_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// True when the tools are there; otherwise explains and skips (or fails under
/// SOPLAB_REQUIRE_TOOLS=1).
fn tools(test: &str, programs: &[&str]) -> bool {
    let mut missing: Vec<String> = programs.iter().filter(|p| !on_path(p)).map(|p| p.to_string()).collect();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {} (apt-get install -y tcpdump iproute2; run as root)", missing.join(", "));
    assert!(!require_tools(), "{msg}; SOPLAB_REQUIRE_TOOLS=1 makes this an error");
    eprintln!("skipped {msg}");
    false
}

/// A run directory removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    fn new(name: &str) -> RunDir {
        let p = std::env::temp_dir().join(format!("soplab-analyze-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        RunDir(p)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if std::env::var_os("SOPLAB_KEEP_RUNS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn soplab(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_soplab")).args(args).output().expect("run soplab");
    assert!(
        out.status.success(),
        "soplab {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Validates and analyses `dir`; checks >= 0.99 for both layers, every peer seen, the roles
/// recognised from the traffic, and every output file.
fn check(dir: &Path, peers: u64) {
    let d = dir.to_str().expect("utf-8 path");
    let printed = soplab(&["validate", d, "--min", "0.99"]);
    eprintln!("{printed}");
    let v = json(&dir.join("validation.json"));
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
    let r = json(&out.join("report.json"));
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
    if !tools("loopback_capture_validates", &["tcpdump"]) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = RunDir::new("lo");
    let pcap = std::env::temp_dir().join(format!("soplab-analyze-e2e-lo-{}.pcap", std::process::id()));
    let swarm = Command::new(env!("CARGO_BIN_EXE_soplab"))
        .args(["swarm", "--loopback", "--peers", "10", "--duration", "40s", "--http-port", "0", "--out"])
        .arg(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start soplab swarm");
    // The run's addresses are 127.(100 + pid % 100).0.0/16 (swarm/src/loopback.rs): capture
    // those only, not other runs on this machine.
    let net = format!("127.{}.0.0/16", 100 + swarm.id() % 100);
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&pcap)
        .args(["udp and net", &net])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tcpdump");
    let out = swarm.wait_with_output().expect("swarm");
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(tcpdump.id() as i32), nix::sys::signal::Signal::SIGINT).ok();
    tcpdump.wait().expect("tcpdump");
    assert!(out.status.success(), "soplab swarm failed:\n{}", String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir_all(dir.0.join("pcap")).unwrap();
    std::fs::copy(&pcap, dir.0.join("pcap/lo.pcap")).expect("capture written");
    std::fs::remove_file(&pcap).ok();
    check(&dir.0, 10);
}

#[test]
fn netns_capture_validates() {
    if !tools("netns_capture_validates", &["tcpdump", "ip"]) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = RunDir::new("netns");
    let d = dir.0.to_str().unwrap().to_string();
    soplab(&[
        "swarm",
        "--mode",
        "netns",
        "--peers",
        "30",
        "--vantage",
        "5",
        "--bridge-capture",
        "--duration",
        "30s",
        "--http-port",
        "0",
        "--out",
        &d,
    ]);
    check(&dir.0, 30);
    let v = json(&dir.0.join("validation.json"));
    // Six captures merged: every vantage capture holds only its peer's traffic, and the copies
    // of datagrams seen at a vantage peer and on the bridge were dropped.
    let caps = v["captures"].as_array().unwrap();
    assert_eq!(caps.len(), 6);
    for c in caps.iter().filter(|c| !c["address"].is_null()) {
        assert_eq!(c["own_traffic_share"], 1.0, "{c:#}");
    }
    assert!(v["merge"]["duplicates"].as_u64().unwrap() > 1000, "{:#}", v["merge"]);
}
