//! Helpers for soplab's end-to-end tests in network namespaces: finding the `soplab` binary,
//! skipping (or failing, under `SOPLAB_REQUIRE_NETNS=1`) when the machine cannot run them,
//! running one test at a time, and reading what tcpdump and ndpiReader say about a capture.
//!
//! The tests run `soplab` as a separate process, as users do. `cargo test --workspace` builds
//! it (the `soplab` package's own tests need the binary); to run these tests alone, build it
//! first with `cargo build -p soplab --profile test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// One swarm at a time: they share the machine's two cores, and the checks that nothing is
/// left behind look at the whole machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `soplab` binary next to this test binary (`target/<profile>/soplab`).
pub fn soplab_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join("soplab");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p soplab --profile test` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Whether this machine can run netns tests (root, iproute2, tcpdump, ndpiReader). If not, the
/// test should return early: this prints why, and panics instead when
/// `SOPLAB_REQUIRE_NETNS=1` (CI sets it, so that a skip cannot pass for a success).
pub fn netns_available(test: &str) -> bool {
    let missing: Vec<&str> = [
        (!nix::unistd::geteuid().is_root()).then_some("root"),
        (!on_path("ip")).then_some("ip (iproute2)"),
        (!on_path("tcpdump")).then_some("tcpdump"),
        (!on_path("ndpiReader")).then_some("ndpiReader (libndpi-bin)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {}", missing.join(", "));
    if std::env::var("SOPLAB_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("{msg}, and SOPLAB_REQUIRE_NETNS=1 forbids skipping");
    }
    eprintln!("SKIPPED {msg} (run as root with iproute2, tcpdump and libndpi-bin installed)");
    false
}

/// A fresh directory for one test's run.
pub fn run_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/netns-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the run directory");
    d
}

/// Removes a passing test's run directory (hundreds of MB of streams and captures); a failing
/// test never gets here, so its directory stays for a look (set SOPLAB_KEEP_RUNS=1 to keep all).
pub fn remove_run_dir(dir: &Path) {
    if std::env::var_os("SOPLAB_KEEP_RUNS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// One UDP packet as `tcpdump -tt -n -r` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpLine {
    pub ts: f64,
    pub src: String,
    pub dst: String,
    pub len: usize,
}

/// Reads a capture with tcpdump itself: its UDP packets, and how many other lines it printed.
pub fn tcpdump_udp(pcap: &Path) -> (Vec<UdpLine>, usize) {
    let out = Command::new("tcpdump").args(["-tt", "-n", "-r"]).arg(pcap).output().expect("run tcpdump");
    assert!(out.status.success(), "tcpdump -r {}: {}", pcap.display(), String::from_utf8_lossy(&out.stderr));
    let mut udp = Vec::new();
    let mut other = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // 1795000000.123456 IP 198.18.1.1.3908 > 198.18.1.2.3908: UDP, length 42
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.get(1), f.iter().position(|w| *w == "length"), line.contains(": UDP, length")) {
            (Some(&"IP"), Some(i), true) => udp.push(UdpLine {
                ts: f[0].parse().expect("tcpdump -tt time"),
                src: endpoint(f[2]),
                dst: endpoint(f[4].trim_end_matches(':')),
                len: f[i + 1].parse().expect("UDP length"),
            }),
            _ => other += 1,
        }
    }
    (udp, other)
}

/// `198.18.1.1.3908` (tcpdump) as `198.18.1.1:3908`.
fn endpoint(s: &str) -> String {
    match s.rsplit_once('.') {
        Some((ip, port)) => format!("{ip}:{port}"),
        None => s.to_string(),
    }
}

/// `ndpiReader -v 2` on a capture: each UDP flow's two endpoints and the protocol name.
pub fn ndpi_flows(pcap: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("ndpiReader").args(["-v", "2", "-i"]).arg(pcap).output().expect("run ndpiReader");
    assert!(out.status.success(), "ndpiReader -i {}: {}", pcap.display(), String::from_utf8_lossy(&out.stderr));
    let mut flows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // 	1	UDP 198.18.1.2:3908 <-> 198.18.0.2:3901 [proto: 57/Sopcast][...
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 5 && f[1] == "UDP" && f[3] == "<->" {
            let proto = line.split("[proto: ").nth(1).and_then(|r| r.split(']').next()).unwrap_or("").to_string();
            flows.push((f[2].to_string(), f[4].to_string(), proto));
        }
    }
    flows
}

/// The `ts_us` of every event in a run's truth files, by file stem.
pub fn truth_events(run: &Path) -> Vec<(String, serde_json::Value)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(run.join("truth")).expect("truth dir").flatten() {
        let stem = e.path().file_stem().unwrap().to_string_lossy().to_string();
        for line in std::fs::read_to_string(e.path()).expect("truth file").lines() {
            v.push((stem.clone(), serde_json::from_str(line).expect("a JSON line")));
        }
    }
    v
}

/// Names of soplab namespaces on the machine starting with `prefix`.
pub fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Processes whose command line mentions `needle` (a run directory, say), other than this one.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                v.push(format!("{pid}: {cmd}"));
            }
        }
    }
    v
}
