//! The `soplab-source` binary on loopback: it streams a media file for 12 s (`--duration`) to an
//! in-process tracker and 3 in-process peers, then stops by itself; and it stops cleanly on
//! SIGTERM. Checks its exit status, its stats, its ground truth, and that the peers played
//! exactly the file's bytes. Addresses 127.88.X.4Y, X from the process id; the child process is
//! killed if the test fails.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use soplab_node::Media;
use soplab_peer::{Peer, PeerConfig, PeerStats};
use soplab_shell as shell;
use soplab_source::Content;
use soplab_tracker::{Config as TrackerConfig, Tracker};

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
    /// Waits (bounded) for the child to exit.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn ip(y: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 88, (std::process::id() % 251) as u8, y)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("soplab-source-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

fn spawn_source(dir: &Path, args: &[String]) -> Kill {
    let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    Kill(
        Command::new(env!("CARGO_BIN_EXE_soplab-source"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("soplab-source starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_streams_a_file_to_three_peers_and_stops_by_itself() {
    let dir = scratch("binary");
    let tracker_addr = SocketAddr::V4(SocketAddrV4::new(ip(41), 3900));
    let source_addr = SocketAddr::V4(SocketAddrV4::new(ip(42), 3901));
    // The media file: 300 kB of pseudo-random bytes (not a whole number of blocks: it loops).
    let media_path = dir.join("media.ts");
    let media: Vec<u8> = (0..300_001u64).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8).collect();
    std::fs::write(&media_path, &media).unwrap();
    let content = Content::file(&media_path).unwrap();

    let (truth, stats) = (dir.join("source.jsonl"), dir.join("source.stats.json"));
    let started = Instant::now();
    let mut child = spawn_source(
        &dir,
        &[
            "--listen".into(),
            source_addr.to_string(),
            "--tracker".into(),
            tracker_addr.to_string(),
            "--file".into(),
            media_path.display().to_string(),
            "--bitrate".into(),
            "500k".into(),
            "--seed".into(),
            "2".into(),
            "--duration".into(),
            format!("{}s", RUN.as_secs()),
            "--truth".into(),
            truth.display().to_string(),
            "--stats".into(),
            stats.display().to_string(),
        ],
    );

    // In-process tracker and peers; the peers stop before the source does.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let sock = shell::bind_udp(tracker_addr).unwrap();
    let mut tracker = Tracker::new(TrackerConfig { seed: 1, ..TrackerConfig::new(tracker_addr) });
    let s = stop();
    let tracker_task = tokio::spawn(async move {
        shell::run(&mut tracker, sock, s, &mut std::io::sink()).await.unwrap();
    });
    // Per peer: blocks handed to the player, and how many differ from the file.
    let played = Arc::new(Mutex::new(vec![(0u64, 0u64); PEERS]));
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let addr = SocketAddr::V4(SocketAddrV4::new(ip(43 + i as u8), 3908));
        let sock = shell::bind_udp(addr).unwrap();
        let mut peer = Peer::new(PeerConfig::peer(addr, tracker_addr, 1, 10 + i as u64), None);
        let (s, content, played) = (stop(), content.clone(), played.clone());
        peers.push(tokio::spawn(async move {
            let mut check = move |m: Media| {
                let mut p = played.lock().unwrap();
                p[i].0 += 1;
                if content.block(m.block) != m.data {
                    p[i].1 += 1;
                }
            };
            shell::run_with_player(&mut peer, sock, s, &mut std::io::sink(), &mut check).await.unwrap();
            peer.stats()
        }));
    }
    tokio::time::sleep(RUN - Duration::from_millis(700)).await;
    let _ = stop_tx.send(true);
    let mut peer_stats: Vec<PeerStats> = Vec::new();
    for p in peers {
        peer_stats.push(p.await.unwrap());
    }
    tracker_task.await.unwrap();

    let status = child.exit_within(Duration::from_secs(8)).await;
    let took = started.elapsed();
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(status.success(), "soplab-source exited with {status}; its log:\n{log}");
    assert!(took >= RUN && took < RUN + Duration::from_secs(5), "stopped after {took:?}");

    let s: PeerStats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).expect("--stats parses");
    let printed: PeerStats =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stdout")).unwrap()).expect("stdout parses");
    assert_eq!((s.role.as_str(), s.addr.as_str()), ("source", source_addr.to_string().as_str()));
    assert_eq!(printed.uploaded_bytes, s.uploaded_bytes);
    assert!(s.uploaded_bytes > 0 && s.responses_sent > 0, "{s:?}");
    assert!((1..=11).contains(&s.max_children), "{s:?}");
    let lines = truth_lines(&truth);
    assert_eq!(lines.first().unwrap()["event"], "session_start");
    assert!(lines.iter().any(|v| v["event"] == "response_sent"));
    assert_eq!(lines.last().unwrap()["event"], "session_end");

    let played = played.lock().unwrap();
    for (i, p) in peer_stats.iter().enumerate() {
        let c = p.continuity.unwrap_or(0.0);
        eprintln!("{}: played {} of {} blocks, continuity {c:.4}", p.addr, p.blocks_played, p.blocks_due);
        assert!(p.blocks_played > 0, "{} played nothing", p.addr);
        assert!(c >= 0.99, "{} continuity {c:.4}", p.addr);
        assert_eq!(played[i], (p.blocks_played, 0), "{}: every played block is the file's", p.addr);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn sigterm_stops_the_source_cleanly() {
    let dir = scratch("sigterm");
    let (truth, stats) = (dir.join("source.jsonl"), dir.join("source.stats.json"));
    // No tracker there: the source just keeps registering in vain.
    let mut child = spawn_source(
        &dir,
        &[
            "--listen".into(),
            SocketAddrV4::new(ip(49), 3901).to_string(),
            "--tracker".into(),
            SocketAddrV4::new(ip(48), 3900).to_string(),
            "--truth".into(),
            truth.display().to_string(),
            "--stats".into(),
            stats.display().to_string(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(child.0.try_wait().unwrap().is_none(), "the source runs until told to stop");
    let term = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.exit_within(Duration::from_secs(5)).await;
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(status.success(), "exited with {status}; its log:\n{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    let s: PeerStats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).expect("--stats parses");
    assert_eq!(s.role, "source");
    let lines = truth_lines(&truth);
    assert_eq!(lines.last().unwrap()["event"], "session_end");
    assert_eq!(lines.last().unwrap()["graceful"], true);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_fails_with_advice() {
    let out = Command::new(env!("CARGO_BIN_EXE_soplab-source"))
        .args(["--file", "/nonexistent/soplab/media.ts", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: cannot read media file /nonexistent/soplab/media.ts"), "{err}");
}
