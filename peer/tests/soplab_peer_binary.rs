//! The `soplab-peer` binary's command line: `--help`, a bad flag, and addresses it cannot use.
//! (Peers at work, with a tracker and a source, are tested as `soplab peer` in
//! swarm/tests/daemons.rs, so that this package needs no other daemon.)

use std::process::{Command, Output};
use std::time::Duration;

use soplab_testkit::{check_help_and_bad_flag, output_within};

const EXE: &str = env!("CARGO_BIN_EXE_soplab-peer");

fn peer(args: &[&str]) -> Output {
    output_within(Command::new(EXE).args(args), Duration::from_secs(20))
}

#[test]
fn help_lists_the_flags_and_a_bad_flag_fails() {
    check_help_and_bad_flag(EXE, &["--addr", "--count", "--tracker", "--truth-dir", "--played-dir", "--http-port"]);
}

#[test]
fn bad_addresses_fail_with_advice() {
    let out = peer(&["--addr", "127.255.255.254:3908", "--count", "5", "--duration", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: --count 5 from --addr 127.255.255.254") && err.contains("at most 2 peers"), "{err}");

    let out = peer(&["--addr", "10.1.2.3:3908"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside 127.0.0.0/8 and 198.18.0.0/15"), "{err}");
}

/// A flood of garbage at a peer over real UDP costs its ground truth a bounded number of lines:
/// per reason and second at most [`DROPPED_LINES_PER_INTERVAL`] `dropped` lines and one
/// `dropped_summary`, and the lines still count every drop the peer's stats count.
#[test]
fn a_flood_of_bad_datagrams_leaves_a_bounded_truth_file() {
    use std::collections::BTreeMap;
    use std::net::{SocketAddr, UdpSocket};

    use soplab_rundir::truth::{DROPPED_INTERVAL_US, DROPPED_LINES_PER_INTERVAL, Line};
    use soplab_testkit::{Guard, TempDir, test_ip};

    const FLOOD: u32 = 100_000;
    let dir = TempDir::new("peer-flood");
    let addr = SocketAddr::from((test_ip(40), 3908));
    let stats = dir.path().join("stats.json");
    let (a, s, t) = (addr.to_string(), stats.display().to_string(), dir.path().join("truth").display().to_string());
    let tracker = SocketAddr::from((test_ip(41), 3900)).to_string();
    let args = ["--addr", &a, "--tracker", &tracker, "--http-port", "0", "--duration", "4s", "--truth-dir", &t];
    let mut daemon = Guard::spawn("soplab-peer", Command::new(EXE).args(args).args(["--stats", &s]));
    std::thread::sleep(Duration::from_millis(700));

    // Bounded in count (FLOOD) and time (the daemon's 4 s); paced so the peer reads most of it.
    let flood = UdpSocket::bind((test_ip(42), 0)).unwrap();
    for i in 0..FLOOD {
        let _ = flood.send_to(&[0xAB; 40], addr);
        if i % 200 == 199 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    assert!(daemon.exit_within(Duration::from_secs(20)).success());

    let peers: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let counted = peers[0]["dropped"]["undecodable"].as_u64().unwrap_or(0);
    assert!(counted > u64::from(FLOOD) / 10, "the peer read only {counted} of {FLOOD} datagrams");
    let truth = dir.path().join("truth").join(format!("peer-{}-3908.jsonl", addr.ip()));
    let text = std::fs::read_to_string(&truth).unwrap();
    let lines: Vec<Line> = text.lines().map(|l| Line::parse(l).unwrap()).collect();
    let mut dropped = BTreeMap::new();
    for l in &lines {
        if let Some((reason, n)) = l.event.dropped_inputs() {
            *dropped.entry(reason.as_str()).or_insert(0) += n;
        }
    }
    assert_eq!(dropped, BTreeMap::from([("undecodable", counted)]), "truth and stats disagree");
    // The flood spans at most 5 intervals of the ts_us clock (4 s of run, plus a boundary).
    let span = 4_000_000 / DROPPED_INTERVAL_US + 2;
    let drop_lines = lines.iter().filter(|l| l.event.dropped_inputs().is_some()).count() as u64;
    assert!(
        drop_lines <= span * u64::from(DROPPED_LINES_PER_INTERVAL + 1),
        "{drop_lines} lines of drops ({} bytes) for {counted} dropped datagrams",
        text.len()
    );
}

/// A ground-truth file that cannot be written (a full disk: /dev/full) stops the daemon
/// cleanly: it exits with an error that names the file and the OS error, and still writes its
/// stats.
#[test]
fn a_full_disk_stops_the_peer_with_an_error_naming_the_file() {
    use soplab_testkit::{TempDir, test_ip};

    let dir = TempDir::new("peer-full");
    let stats = dir.path().join("stats.json");
    let (a, tracker) = (format!("{}:3908", test_ip(50)), format!("{}:3900", test_ip(51)));
    let args = ["--addr", &a, "--tracker", &tracker, "--http-port", "0", "--duration", "30s", "--truth", "/dev/full"];
    let out = output_within(Command::new(EXE).args(args).arg("--stats").arg(&stats), Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("error: peer {a} stopped: cannot write the ground-truth file /dev/full")),
        "{last}"
    );
    assert!(last.contains("No space left on device (os error 28)") && !last.contains("socket"), "{last}");
    let peers: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(peers[0]["addr"], a.as_str());
}
