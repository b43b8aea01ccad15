//! The three daemons as users run them, each a `soplab tracker`, `soplab source` or `soplab peer`
//! process (the same `daemon::run` the `soplab-tracker`, `soplab-source` and `soplab-peer`
//! binaries call), on loopback for about 12 s a test:
//!
//! - the tracker introduces a source and 3 peers to each other and stops by itself
//!   (`--duration`);
//! - the source streams a media file to 3 peers and stops by itself, and stops cleanly on SIGTERM;
//! - one process hosting 3 peers (`--count 3`) streams from a tracker and a source, serves its
//!   stream over HTTP, and stops by itself.
//!
//! Each checks the daemon's exit status, its stats (file and stdout), its ground truth, and that
//! the peers streamed. The tests live in the `soplab` package, which has all three daemons, so
//! that the daemon packages need none of each other to be tested. Addresses 127.88.X.Y, X from
//! the process id, Y 1x (tracker test), 4x (source tests), 7x (peer test); every child process
//! is killed if a test fails, and a failing test's directory is kept.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use soplab_peer::PeerStats;
use soplab_rundir::truth::Event;
use soplab_source::Content;
use soplab_testkit::{Guard, TempDir, serial, test_ip, truth_lines};
use soplab_tracker::Stats;
use soplab_wire::BLOCK_LEN;

const RUN: Duration = Duration::from_secs(12);
const PEERS: usize = 3;

/// One `soplab` daemon process; its stdout and stderr go to `<name>.stdout` and `<name>.stderr`
/// in the test's directory.
struct Daemon {
    guard: Guard,
    out: PathBuf,
    err: PathBuf,
    name: String,
}

impl Daemon {
    /// Starts `soplab <command line>`, whose words are separated by spaces (the paths of these
    /// tests have none: see [`path`]).
    fn start(dir: &Path, name: &str, command_line: &str) -> Daemon {
        let (out, err) = (dir.join(format!("{name}.stdout")), dir.join(format!("{name}.stderr")));
        let guard = Guard::spawn(
            &format!("soplab {name}"),
            Command::new(env!("CARGO_BIN_EXE_soplab"))
                .args(command_line.split_whitespace())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&err).unwrap()),
        );
        Daemon { guard, out, err, name: name.to_string() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until the daemon has logged `addr`, which it does once its socket is bound: a
    /// registration sent before would be lost, and only retried after 30 s.
    fn wait_bound(mut self, addr: SocketAddr) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(&addr.to_string()) {
            assert!(self.guard.is_running(), "{} exited at start-up; its log:\n{}", self.name, self.log());
            assert!(
                Instant::now() < deadline,
                "{} did not bind {addr} within 10 s; its log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// Waits (bounded) for the daemon to stop by itself and checks that it succeeded.
    fn exits_ok_within(&mut self, limit: Duration) {
        let status = self.guard.exit_within(limit);
        assert!(status.success(), "{} exited with {status}; its log:\n{}", self.name, self.log());
    }

    /// Stops the daemon with SIGTERM and checks that it stopped cleanly.
    fn stop(&mut self) {
        self.guard.terminate();
        self.exits_ok_within(Duration::from_secs(5));
    }

    /// Its final counters as written to `--stats` and as printed on stdout.
    fn stats<T: DeserializeOwned>(&self, file: &Path) -> (T, T) {
        let written = serde_json::from_slice(&std::fs::read(file).unwrap()).expect("--stats parses");
        let printed = serde_json::from_str(&std::fs::read_to_string(&self.out).unwrap()).expect("stdout parses");
        (written, printed)
    }
}

/// `soplab tracker --listen <at> --seed 1 <more>`, once it is bound.
fn tracker(dir: &TempDir, at: SocketAddr, more: &str) -> Daemon {
    Daemon::start(dir.path(), "tracker", &format!("tracker --listen {at} --seed 1 {more}")).wait_bound(at)
}

/// `soplab source --listen <at> --tracker <tracker> --seed 2 <more>`, once it is bound.
fn source(dir: &TempDir, at: SocketAddr, tracker: SocketAddr, more: &str) -> Daemon {
    let line = format!("source --listen {at} --tracker {tracker} --seed 2 {more}");
    Daemon::start(dir.path(), "source", &line).wait_bound(at)
}

/// `soplab peer --addr <first> --count 3 --tracker <tracker> --bitrate 500k <more>`.
fn peers(dir: &TempDir, first: SocketAddrV4, tracker: SocketAddr, more: &str) -> Daemon {
    let line = format!("peer --addr {first} --count {PEERS} --tracker {tracker} --bitrate 500k {more}");
    Daemon::start(dir.path(), "peers", &line)
}

/// What each streaming test starts from: its turn (one swarm at a time), its directory, and its
/// addresses, 127.88.X.`base` for the tracker, `base + 1` for the source, from `base + 2` up for
/// the peers.
struct Setup {
    _one: MutexGuard<'static, ()>,
    dir: TempDir,
    tracker: SocketAddr,
    source: SocketAddr,
    first: SocketAddrV4,
}

fn setup(name: &str, base: u8) -> Setup {
    Setup {
        _one: serial(),
        dir: TempDir::new(name),
        tracker: addr(base, 3900),
        source: addr(base + 1, 3901),
        first: SocketAddrV4::new(test_ip(base + 2), 3908),
    }
}

fn addr(y: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(test_ip(y), port))
}

/// `p` as one word of a command line.
fn path(p: &Path) -> &str {
    let s = p.to_str().expect("a UTF-8 temp path");
    assert!(!s.contains(char::is_whitespace), "{s}: set TMPDIR to a path without spaces");
    s
}

/// `--duration` for daemons that must stop `before` the end of a run begun at `started`.
fn until(started: Instant, before: Duration) -> String {
    format!("{}ms", (RUN - before - started.elapsed()).as_millis())
}

/// Every peer played, without gaps.
fn assert_streamed(peers: &[PeerStats]) {
    for p in peers {
        let c = p.continuity.unwrap_or(0.0);
        eprintln!("{}: played {} of {} blocks, continuity {c:.4}", p.addr, p.blocks_played, p.blocks_due);
        assert!(p.blocks_played > 0, "{} played nothing", p.addr);
        assert!(c >= 0.99, "{} continuity {c:.4}", p.addr);
    }
}

/// The peers hosted from `first` up sit at `--addr + i`; each played file holds exactly the
/// blocks its truth says were played in time, each with `content`'s bytes; each session
/// started and ended cleanly.
fn assert_played(peers: &[PeerStats], first: SocketAddrV4, truth: &Path, played: &Path, content: &Content) {
    for (i, p) in peers.iter().enumerate() {
        let addr = SocketAddrV4::new(Ipv4Addr::from(u32::from(*first.ip()) + i as u32), first.port());
        assert_eq!(p.addr, addr.to_string(), "peer {i} is at --addr + {i}");
        let stem = format!("peer-{}-{}", addr.ip(), addr.port());
        let data = std::fs::read(played.join(format!("{stem}.ts"))).unwrap();
        assert_eq!(data.len() as u64, p.blocks_played * BLOCK_LEN as u64, "{stem}.ts length");
        let lines = truth_lines(&truth.join(format!("{stem}.jsonl")));
        assert!(lines.iter().all(|l| l.node.to_string() == p.addr));
        let hits: Vec<u32> = lines
            .iter()
            .filter_map(|l| match l.event {
                Event::Play { block, hit: true } => Some(block),
                _ => None,
            })
            .collect();
        assert_eq!(hits.len() as u64, p.blocks_played);
        for (k, b) in hits.iter().enumerate() {
            assert!(data[k * BLOCK_LEN..(k + 1) * BLOCK_LEN] == content.block(*b)[..], "{stem}: block {b} differs");
        }
        assert!(matches!(lines[0].event, Event::SessionStart { .. }), "{stem} starts with its session");
        assert_eq!(lines.last().unwrap().event, Event::SessionEnd { graceful: true }, "{stem} ended cleanly");
    }
}

/// GETs the stream from `addr` and returns the status line, the head, and how many body bytes
/// came within a few seconds (reading stops at 50 kB).
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

#[test]
fn tracker_introduces_a_swarm_and_stops_by_itself() {
    let Setup { _one, dir, tracker: tracker_addr, source: source_addr, first } = setup("tracker-binary", 11);
    let (truth, stats) = (dir.join("tracker.jsonl"), dir.join("tracker.stats.json"));
    let started = Instant::now();
    let run = format!("--duration {}s --truth {} --stats {}", RUN.as_secs(), path(&truth), path(&stats));
    let mut daemon = tracker(&dir, tracker_addr, &run);

    // A source and peers, stopped (so leaving the tracker) a second before the tracker stops.
    let (source_stats, peer_stats) = (dir.join("source.stats.json"), dir.join("peers.stats.json"));
    let end = until(started, Duration::from_secs(1));
    let more = format!("--synthetic-seed 3 --duration {end} --stats {}", path(&source_stats));
    let mut src = source(&dir, source_addr, tracker_addr, &more);
    let more = format!("--seed 10 --http-port 0 --duration {end} --stats {}", path(&peer_stats));
    let mut hosted = peers(&dir, first, tracker_addr, &more);
    hosted.exits_ok_within(RUN + Duration::from_secs(5));
    src.exits_ok_within(Duration::from_secs(5));

    daemon.exits_ok_within(Duration::from_secs(8));
    let took = started.elapsed();
    assert!(took >= RUN && took < RUN + Duration::from_secs(5), "stopped after {took:?}");

    let (s, printed): (Stats, Stats) = daemon.stats(&stats);
    assert_eq!(s, printed, "the file and stdout hold the same counters");
    assert_eq!(s.new_entries, PEERS as u64 + 1, "{s:?}");
    assert_eq!(s.leaves, PEERS as u64 + 1, "everyone left when stopped: {s:?}");
    assert_eq!((s.entries, s.drops.total()), (0, 0), "{s:?}");
    let lines = truth_lines(&truth);
    assert!(lines.iter().all(|l| l.node == tracker_addr));
    let registered = lines.iter().filter(|l| matches!(l.event, Event::TrackerRegister { new: true, .. })).count();
    let left = lines.iter().filter(|l| matches!(l.event, Event::TrackerExpire { leave: true, .. })).count();
    assert_eq!((registered, left), (PEERS + 1, PEERS + 1));

    let (source_stats, _): (PeerStats, PeerStats) = src.stats(&source_stats);
    assert!(source_stats.uploaded_bytes > 0);
    let (peer_stats, _): (Vec<PeerStats>, Vec<PeerStats>) = hosted.stats(&peer_stats);
    assert_eq!(peer_stats.len(), PEERS);
    assert_streamed(&peer_stats);
}

#[test]
fn source_streams_a_file_to_three_peers_and_stops_by_itself() {
    let Setup { _one, dir, tracker: tracker_addr, source: source_addr, first } = setup("source-binary", 41);
    // The media file: 300 kB of pseudo-random bytes (not a whole number of blocks: it loops).
    let media: Vec<u8> = (0..300_001u64).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8).collect();
    let media_path = dir.file("media.ts", &media);
    let content = Content::file(&media_path).unwrap();

    let mut tracker_daemon = tracker(&dir, tracker_addr, "");
    let (truth, stats) = (dir.join("source.jsonl"), dir.join("source.stats.json"));
    let started = Instant::now();
    let more = format!(
        "--file {} --bitrate 500k --duration {}s --truth {} --stats {}",
        path(&media_path),
        RUN.as_secs(),
        path(&truth),
        path(&stats)
    );
    let mut daemon = source(&dir, source_addr, tracker_addr, &more);

    // Peers that stop before the source does, keeping what they played and their truth.
    let (peer_truth, played, peer_stats) = (dir.join("truth"), dir.join("played"), dir.join("peers.stats.json"));
    let more = format!(
        "--seed 10 --http-port 0 --duration {} --stats {} --truth-dir {} --played-dir {}",
        until(started, Duration::from_secs(1)),
        path(&peer_stats),
        path(&peer_truth),
        path(&played)
    );
    let mut hosted = peers(&dir, first, tracker_addr, &more);
    hosted.exits_ok_within(RUN + Duration::from_secs(5));

    daemon.exits_ok_within(Duration::from_secs(8));
    let took = started.elapsed();
    tracker_daemon.stop();
    assert!(took >= RUN && took < RUN + Duration::from_secs(5), "stopped after {took:?}");

    let (s, printed): (PeerStats, PeerStats) = daemon.stats(&stats);
    assert_eq!((s.role.as_str(), s.addr.as_str()), ("source", source_addr.to_string().as_str()));
    assert_eq!(printed.uploaded_bytes, s.uploaded_bytes);
    assert!(s.uploaded_bytes > 0 && s.responses_sent > 0, "{s:?}");
    assert!((1..=11).contains(&s.max_children), "{s:?}");
    let lines = truth_lines(&truth);
    assert!(matches!(lines[0].event, Event::SessionStart { .. }));
    assert!(lines.iter().any(|l| matches!(l.event, Event::ResponseSent { .. })));
    assert!(matches!(lines.last().unwrap().event, Event::SessionEnd { .. }));

    let (peer_stats, _): (Vec<PeerStats>, Vec<PeerStats>) = hosted.stats(&peer_stats);
    assert_eq!(peer_stats.len(), PEERS);
    assert_streamed(&peer_stats);
    // Every played block is the file's.
    assert_played(&peer_stats, first, &peer_truth, &played, &content);
}

#[test]
fn sigterm_stops_the_source_cleanly() {
    let dir = TempDir::new("source-sigterm");
    let (truth, stats) = (dir.join("source.jsonl"), dir.join("source.stats.json"));
    // No tracker there: the source just keeps registering in vain.
    let more = format!("--truth {} --stats {}", path(&truth), path(&stats));
    let mut daemon = source(&dir, addr(49, 3901), addr(48, 3900), &more);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(daemon.guard.is_running(), "the source runs until told to stop");
    daemon.stop();
    let log = daemon.log();
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    let (s, _): (PeerStats, PeerStats) = daemon.stats(&stats);
    assert_eq!(s.role, "source");
    let lines = truth_lines(&truth);
    assert_eq!(lines.last().unwrap().event, Event::SessionEnd { graceful: true });
}

#[test]
fn three_peers_in_one_process_stream_and_stop_by_themselves() {
    let Setup { _one, dir, tracker: tracker_addr, source: source_addr, first } = setup("peer-binary", 71);

    // A tracker and a source, stopped after the peers.
    let (tracker_stats, source_stats) = (dir.join("tracker.stats.json"), dir.join("source.stats.json"));
    let mut tracker_daemon = tracker(&dir, tracker_addr, &format!("--stats {}", path(&tracker_stats)));
    let more = format!("--synthetic-seed 5 --stats {}", path(&source_stats));
    let mut src = source(&dir, source_addr, tracker_addr, &more);

    let (truth, played, stats) = (dir.join("truth"), dir.join("played"), dir.join("peers.stats.json"));
    let started = Instant::now();
    let more = format!(
        "--seed 100 --duration {}s --stagger 300ms --truth-dir {} --played-dir {} --stats {} --http-port 8902",
        RUN.as_secs(),
        path(&truth),
        path(&played),
        path(&stats)
    );
    let mut daemon = peers(&dir, first, tracker_addr, &more);

    // Mid-run, a player asks the first peer for its stream.
    std::thread::sleep(Duration::from_secs(8));
    let (status, head, body) = http_get(SocketAddr::new((*first.ip()).into(), 8902));

    daemon.exits_ok_within(RUN + Duration::from_secs(8));
    let took = started.elapsed();
    src.stop();
    tracker_daemon.stop();
    assert!(took >= RUN && took < RUN + Duration::from_secs(5), "stopped after {took:?}");

    assert_eq!(status, "HTTP/1.0 200 OK", "{head}");
    assert!(head.contains("Content-Type: video/mp2t"), "{head}");
    assert!(body > 0, "the HTTP stream sent no bytes");

    let (peers, printed): (Vec<PeerStats>, Vec<PeerStats>) = daemon.stats(&stats);
    assert_eq!(peers.len(), PEERS);
    assert_eq!(printed.len(), PEERS);
    assert_streamed(&peers);
    assert_played(&peers, first, &truth, &played, &Content::Synthetic { seed: 5 });
    let (source_stats, _): (PeerStats, PeerStats) = src.stats(&source_stats);
    assert!(source_stats.uploaded_bytes > 0);
    // The source stops before the tracker here, so its leave arrives too; PEERS alone would do.
    let (tracker_stats, _): (Stats, Stats) = tracker_daemon.stats(&tracker_stats);
    assert!(
        tracker_stats.leaves == PEERS as u64 || tracker_stats.leaves == PEERS as u64 + 1,
        "every peer left the tracker when it stopped (leaves: {})",
        tracker_stats.leaves
    );
}
