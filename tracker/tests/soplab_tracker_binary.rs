//! The `soplab-tracker` binary on loopback: an in-process source and 3 in-process peers find
//! each other through it for 12 s (`--duration`), then it stops by itself. Checks its exit
//! status, its stats (file and stdout), its ground truth, and that the peers streamed.
//! Addresses 127.88.X.1Y, X from the process id; the child process is killed if the test fails.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use soplab_peer::{Peer, PeerConfig, PeerStats};
use soplab_shell as shell;
use soplab_source::Content;
use soplab_tracker::Stats;

const RUN: Duration = Duration::from_secs(12);
const PEERS: usize = 3;

/// Kills the child when dropped (a failed assertion must not leave it running).
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Kill {
    /// Waits (bounded) for the child to exit by itself.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop by itself within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn ip(y: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 88, (std::process::id() % 251) as u8, y)
}

/// Every line parses as a JSON object with `ts_us`, `node` and `event`; returns them.
fn truth_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display())))
        .collect();
    assert!(!lines.is_empty(), "{} is empty", path.display());
    for v in &lines {
        assert!(v["ts_us"].is_u64() && v["node"].is_string() && v["event"].is_string(), "{v}");
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_introduces_a_swarm_and_stops_by_itself() {
    let dir = std::env::temp_dir().join(format!("soplab-tracker-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tracker_addr = SocketAddr::V4(SocketAddrV4::new(ip(11), 3900));
    let source_addr = SocketAddr::V4(SocketAddrV4::new(ip(12), 3901));

    let (truth, stats) = (dir.join("tracker.jsonl"), dir.join("tracker.stats.json"));
    let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    let started = Instant::now();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_soplab-tracker"))
            .args(["--listen", &tracker_addr.to_string(), "--seed", "1"])
            .args(["--duration", &format!("{}s", RUN.as_secs())])
            .arg("--truth")
            .arg(&truth)
            .arg("--stats")
            .arg(&stats)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("soplab-tracker starts"),
    );
    // Let it bind before the first registration (a lost one is only retried after 30 s).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // In-process source and peers, stopped (so leaving the tracker) before the tracker stops.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let sock = shell::bind_udp(source_addr).unwrap();
    let mut source =
        soplab_source::source(PeerConfig::source(source_addr, tracker_addr, 1, 2), Content::Synthetic { seed: 3 });
    let s = stop();
    let source_task = tokio::spawn(async move {
        shell::run(&mut source, sock, s, &mut std::io::sink()).await.unwrap();
        source.stats()
    });
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let addr = SocketAddr::V4(SocketAddrV4::new(ip(13 + i as u8), 3908));
        let sock = shell::bind_udp(addr).unwrap();
        let mut peer = Peer::new(PeerConfig::peer(addr, tracker_addr, 1, 10 + i as u64), None);
        let s = stop();
        peers.push(tokio::spawn(async move {
            shell::run(&mut peer, sock, s, &mut std::io::sink()).await.unwrap();
            peer.stats()
        }));
    }
    tokio::time::sleep(RUN - Duration::from_millis(1000)).await;
    let _ = stop_tx.send(true);
    let mut peer_stats: Vec<PeerStats> = Vec::new();
    for p in peers {
        peer_stats.push(p.await.unwrap());
    }
    let source_stats = source_task.await.unwrap();

    let status = child.exit_within(Duration::from_secs(8)).await;
    let took = started.elapsed();
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(status.success(), "soplab-tracker exited with {status}; its log:\n{log}");
    assert!(took >= RUN && took < RUN + Duration::from_secs(5), "stopped after {took:?}");

    let s: Stats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).expect("--stats parses");
    let printed: Stats =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stdout")).unwrap()).expect("stdout parses");
    assert_eq!(s, printed, "the file and stdout hold the same counters");
    assert_eq!(s.new_entries, PEERS as u64 + 1, "{s:?}");
    assert_eq!(s.leaves, PEERS as u64 + 1, "everyone left when stopped: {s:?}");
    assert_eq!((s.entries, s.drops.total()), (0, 0), "{s:?}");
    let lines = truth_lines(&truth);
    assert!(lines.iter().all(|v| v["node"] == tracker_addr.to_string().as_str()));
    let registered = lines.iter().filter(|v| v["event"] == "tracker_register" && v["new"] == true).count();
    let left = lines.iter().filter(|v| v["event"] == "tracker_expire" && v["leave"] == true).count();
    assert_eq!((registered, left), (PEERS + 1, PEERS + 1));

    assert!(source_stats.uploaded_bytes > 0);
    for p in &peer_stats {
        let c = p.continuity.unwrap_or(0.0);
        eprintln!("{}: played {} of {} blocks, continuity {c:.4}", p.addr, p.blocks_played, p.blocks_due);
        assert!(p.blocks_played > 0, "{} played nothing", p.addr);
        assert!(c >= 0.99, "{} continuity {c:.4}", p.addr);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_taken_port_fails_with_advice() {
    let taken = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = taken.local_addr().unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_soplab-tracker")).args(["--listen", &addr.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("error: cannot listen on UDP {addr}")) && err.contains("pick another port"), "{err}");
}
