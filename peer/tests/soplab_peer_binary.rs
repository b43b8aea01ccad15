//! The `soplab-peer` binary on loopback: one process hosting 3 peers (`--count 3`) streams from
//! an in-process tracker and source for 12 s (`--duration`), then stops by itself. Checks its
//! exit status, its stats, its played files (length and bytes), its ground truth, and its
//! HTTP stream. Addresses 127.88.X.7Y, X from the process id; the whole test takes about 13 s,
//! and the child process is killed if the test fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use soplab_peer::{PeerConfig, PeerStats};
use soplab_shell as shell;
use soplab_source::Content;
use soplab_tracker::{Config as TrackerConfig, Tracker};
use soplab_wire::BLOCK_LEN;

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

/// GETs the stream from `addr` and returns the status line and how many body bytes came
/// within a few seconds (reading stops at 50 kB).
fn http_get(addr: SocketAddr) -> (String, String, usize) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("the peer serves HTTP");
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while got.len() < 50_000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let end = text.find("\r\n\r\n").expect("a complete HTTP head");
    let head = text[..end].to_string();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, head, got.len() - end - 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_in_one_process_stream_and_stop_by_themselves() {
    let dir: PathBuf = std::env::temp_dir().join(format!("soplab-peer-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tracker_addr = SocketAddr::V4(SocketAddrV4::new(ip(71), 3900));
    let source_addr = SocketAddr::V4(SocketAddrV4::new(ip(72), 3901));
    let first = SocketAddrV4::new(ip(73), 3908);

    // In-process tracker and source, stopped after the peers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let content = Content::Synthetic { seed: 5 };
    let sock = shell::bind_udp(tracker_addr).unwrap();
    let mut tracker = Tracker::new(TrackerConfig { seed: 1, ..TrackerConfig::new(tracker_addr) });
    let s = stop();
    let tracker_task = tokio::spawn(async move {
        shell::run(&mut tracker, sock, s, &mut std::io::sink()).await.unwrap();
        tracker.stats()
    });
    let sock = shell::bind_udp(source_addr).unwrap();
    let mut source = soplab_source::source(PeerConfig::source(source_addr, tracker_addr, 1, 2), content.clone());
    let s = stop();
    let source_task = tokio::spawn(async move {
        shell::run(&mut source, sock, s, &mut std::io::sink()).await.unwrap();
        source.stats()
    });

    let (truth, played, stats) = (dir.join("truth"), dir.join("played"), dir.join("peers.stats.json"));
    let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    let started = Instant::now();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_soplab-peer"))
            .args(["--addr", &first.to_string(), "--count", &PEERS.to_string()])
            .args(["--tracker", &tracker_addr.to_string(), "--bitrate", "500k", "--seed", "100"])
            .args(["--duration", &format!("{}s", RUN.as_secs()), "--stagger", "300ms"])
            .arg("--truth-dir")
            .arg(&truth)
            .arg("--played-dir")
            .arg(&played)
            .arg("--stats")
            .arg(&stats)
            .args(["--http-port", "8902"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("soplab-peer starts"),
    );

    // Mid-run, a player asks the first peer for its stream.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let http_at = SocketAddr::new((*first.ip()).into(), 8902);
    let (status, head, body) = tokio::task::spawn_blocking(move || http_get(http_at)).await.unwrap();

    let status_code = child.exit_within(RUN + Duration::from_secs(8)).await;
    let took = started.elapsed();
    let _ = stop_tx.send(true);
    let source_stats = source_task.await.unwrap();
    let tracker_stats = tracker_task.await.unwrap();
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(status_code.success(), "soplab-peer exited with {status_code}; its log:\n{log}");
    assert!(took >= RUN && took < RUN + Duration::from_secs(5), "stopped after {took:?}");

    assert_eq!(status, "HTTP/1.0 200 OK", "{head}");
    assert!(head.contains("Content-Type: video/mp2t"), "{head}");
    assert!(body > 0, "the HTTP stream sent no bytes");

    let peers: Vec<PeerStats> = serde_json::from_slice(&std::fs::read(&stats).unwrap()).expect("--stats parses");
    let printed: Vec<PeerStats> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stdout")).unwrap()).expect("stdout parses");
    assert_eq!(peers.len(), PEERS);
    assert_eq!(printed.len(), PEERS);
    for (i, p) in peers.iter().enumerate() {
        let addr = SocketAddrV4::new(Ipv4Addr::from(u32::from(*first.ip()) + i as u32), 3908);
        assert_eq!(p.addr, addr.to_string(), "peer {i} is at --addr + {i}");
        let c = p.continuity.unwrap_or(0.0);
        eprintln!("{}: played {} of {} blocks, continuity {c:.4}", p.addr, p.blocks_played, p.blocks_due);
        assert!(p.blocks_played > 0, "{} played nothing", p.addr);
        assert!(c >= 0.99, "{} continuity {c:.4}", p.addr);

        let stem = format!("peer-{}-{}", addr.ip(), addr.port());
        let data = std::fs::read(played.join(format!("{stem}.ts"))).unwrap();
        assert_eq!(data.len() as u64, p.blocks_played * BLOCK_LEN as u64, "{stem}.ts length");
        let lines = truth_lines(&truth.join(format!("{stem}.jsonl")));
        assert!(lines.iter().all(|v| v["node"] == p.addr.as_str()));
        let hits: Vec<u32> = lines
            .iter()
            .filter(|v| v["event"] == "play" && v["hit"] == true)
            .map(|v| v["block"].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(hits.len() as u64, p.blocks_played);
        for (k, b) in hits.iter().enumerate() {
            assert!(data[k * BLOCK_LEN..(k + 1) * BLOCK_LEN] == content.block(*b)[..], "{stem}: block {b} differs");
        }
        assert_eq!(lines.first().unwrap()["event"], "session_start");
        assert_eq!(lines.last().unwrap()["event"], "session_end", "{stem} ended cleanly");
        assert_eq!(lines.last().unwrap()["graceful"], true);
    }
    assert!(source_stats.uploaded_bytes > 0);
    // The in-process source stops together with the tracker, so its own leave may or may not
    // arrive before the tracker stops: PEERS or PEERS + 1.
    assert!(
        tracker_stats.leaves == PEERS as u64 || tracker_stats.leaves == PEERS as u64 + 1,
        "every peer left the tracker when it stopped (leaves: {})",
        tracker_stats.leaves
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_addresses_fail_with_advice() {
    let out = Command::new(env!("CARGO_BIN_EXE_soplab-peer"))
        .args(["--addr", "127.255.255.254:3908", "--count", "5", "--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: --count 5 from --addr 127.255.255.254") && err.contains("at most 2 peers"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_soplab-peer")).args(["--addr", "10.1.2.3:3908"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside 127.0.0.0/8 and 198.18.0.0/15"), "{err}");
}
