//! End-to-end: faults in a running swarm in network namespaces (`soplab swarm --fault`), and
//! losses in bursts (`--loss 5% --loss-burst 4`). Every property is checked from the ground
//! truth, with continuity over sliding windows of 5 s ([`soplab_rundir::continuity`]).
//!
//! - `a_swarm_rides_out_a_tracker_restart_a_source_stop_and_half_its_peers_killed`: 20 peers in
//!   two peer processes stream for 100 s. The tracker is killed at 15 s and started again at
//!   20 s: the running peers keep streaming, and 5 peers that join at 35 s (a workload file)
//!   register with the restarted tracker and stream. The source is stopped (SIGSTOP) at 50 s for
//!   5 s: every peer resumes without restarting. Peer process 1 is SIGKILLed at 75 s (10 peers,
//!   the newcomers among them): the 10 others are back at continuity >= 0.95 within 10 s.
//! - `five_percent_loss_in_bursts_keeps_every_peer_playing`: 10 peers for 30 s, each losing 5%
//!   of what it sends in bursts of 4 datagrams on average, play >= 0.99 with the default lag.
//!
//! Like `netns_swarm.rs`, they need root, iproute2, tcpdump and ndpiReader (without them they
//! say what is missing and pass, unless `SOPLAB_REQUIRE_NETNS=1`, as in CI), and run `soplab`
//! as a separate process: build it first with `cargo build -p soplab --profile test` to run
//! them alone. `--nocapture` shows the measured continuity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;
use soplab_rundir::continuity::{Plays, Slide};
use soplab_rundir::truth::{Event, Line};
use soplab_testkit::{
    TempDir, assert_nothing_left, netns_available, netns_swarm_args, read_json, remove_run_dir, run_dir, run_ok,
    serial, soplab_exe, truth_events,
};

const S: i64 = 1_000_000;
/// Continuity is judged over 5 s windows (about 30 blocks at 500 kbit/s), one every 0.5 s.
const SLIDE: Slide = Slide { width_us: 5 * S, step_us: S / 2 };
/// What "streaming" means in a window: at most one block in 20 missed.
const STREAMING: f64 = 0.95;

/// The faults of the first test, and its peers: 15 from the start, 5 joining at 35 s.
const FAULTS: [&str; 3] =
    ["restart-tracker:at=15s,down=5s", "stop-source:at=50s,for=5s", "kill-peers:at=75s,process=1"];
const PEERS: usize = 20;
const NEWCOMERS: usize = 5;
const JOIN_S: u32 = 35;
const DURATION_S: i64 = 100;

/// A finished run: run.json, and every truth line by the node that wrote it.
struct Run {
    json: Value,
    lines: BTreeMap<SocketAddr, Vec<Line>>,
    /// The peers, in the order of run.json's hosts (peer k is client k of the workload).
    peers: Vec<SocketAddr>,
}

impl Run {
    fn read(dir: &Path) -> Run {
        let json = read_json(&dir.join("run.json"));
        let mut lines: BTreeMap<SocketAddr, Vec<Line>> = BTreeMap::new();
        for (_, l) in truth_events(dir) {
            lines.entry(l.node).or_default().push(l);
        }
        let peers = json["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["role"] == "peer")
            .map(|h| h["address"].as_str().unwrap().parse().unwrap())
            .collect();
        Run { json, lines, peers }
    }

    /// When `action` of the fault whose spec starts with `kind` happened (µs, as the truth).
    fn fault_at(&self, kind: &str, action: &str) -> i64 {
        let fault = self.fault(kind);
        let a = fault["actions"].as_array().unwrap().iter().find(|a| a["action"] == action);
        let a = a.unwrap_or_else(|| panic!("no {action} in {fault}"));
        assert!(a.get("error").is_none(), "{fault}");
        a["ts_us"].as_i64().unwrap()
    }

    fn fault(&self, kind: &str) -> &Value {
        let faults = self.json["faults"].as_array().expect("run.json lists the faults");
        faults.iter().find(|f| f["spec"].as_str().unwrap().starts_with(kind)).expect("the fault ran")
    }

    fn plays(&self, peer: SocketAddr) -> Plays {
        Plays::of(peer, self.lines.get(&peer).into_iter().flatten())
    }

    /// The times of `peer`'s events that `pick` accepts.
    fn times(&self, node: SocketAddr, pick: impl Fn(&Event) -> bool) -> Vec<i64> {
        self.lines.get(&node).into_iter().flatten().filter(|l| pick(&l.event)).map(|l| l.ts_us).collect()
    }

    /// The worst 5 s window of each of `peers` in `[from, to)`: fails unless all are streaming.
    /// Returns the lowest continuity.
    fn all_streaming(&self, peers: &[SocketAddr], from: i64, to: i64, what: &str) -> f64 {
        let mut lowest = 1.0f64;
        for &p in peers {
            let w = self.plays(p).worst(from, to, SLIDE).expect("the interval holds a window");
            let c = w.continuity();
            assert!(c >= STREAMING, "{what}: {p} played {} of {} blocks in the 5 s from {}", w.hits, w.due, w.start_us);
            lowest = lowest.min(c);
        }
        lowest
    }
}

/// One swarm at a time, or nothing (after saying why) when this machine cannot run netns tests.
fn begin(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    netns_available(test).then(serial)
}

#[test]
fn a_swarm_rides_out_a_tracker_restart_a_source_stop_and_half_its_peers_killed() {
    let Some(_one) = begin("a_swarm_rides_out_a_tracker_restart_a_source_stop_and_half_its_peers_killed") else {
        return;
    };
    let scratch = TempDir::new("faults");
    // Every peer is a client of this workload: 15 on from the start, 5 joining after the
    // tracker came back (and after the others re-registered with it, every 30 s).
    let schedule: String = (0..PEERS)
        .map(|k| format!("{k},0,{},{DURATION_S}\n", if k < PEERS - NEWCOMERS { 0 } else { JOIN_S }))
        .collect();
    let csv = scratch.file("schedule.csv", format!("client,session,start,end\n{schedule}"));
    let dir = run_dir("faults");
    let duration = format!("{DURATION_S}s");
    let mut more = vec!["--processes", "2", "--duration", &duration, "--workload", csv.to_str().unwrap()];
    more.extend(FAULTS.iter().flat_map(|f| ["--fault", f]));
    run_ok(&soplab_exe(), &netns_swarm_args(PEERS, 0, &more, &dir));
    let run = Run::read(&dir);
    assert_nothing_left(run.json["prefix"].as_str().unwrap(), &dir);

    tracker_restart(&run);
    source_stop(&run);
    half_the_peers_killed(&run, &read_json(&dir.join("summary.json")));
    remove_run_dir(&dir);
}

/// The tracker was down for 5 s, the running peers kept streaming, and the newcomers joined
/// through the restarted tracker.
fn tracker_restart(run: &Run) {
    let (kill, restart) = (run.fault_at("restart-tracker", "sigkill"), run.fault_at("restart-tracker", "restart"));
    assert!((4_900_000..5_500_000).contains(&(restart - kill)), "down {} µs", restart - kill);
    let tracker: SocketAddr = "198.18.0.1:3900".parse().unwrap();
    let lines = run.times(tracker, |_| true);
    assert!(lines.iter().any(|&t| t < kill) && lines.iter().any(|&t| t > restart), "both lives logged");
    assert!(!lines.iter().any(|&t| kill < t && t < restart), "the tracker logged nothing while down");

    let (old, new) = run.peers.split_at(PEERS - NEWCOMERS);
    // Until the source's stop, so that each property has an interval of its own.
    let stop = run.fault_at("stop-source", "sigstop");
    for &p in new {
        let listed =
            run.times(tracker, |e| matches!(e, Event::TrackerReply { peer, peers, .. } if *peer == p && *peers > 0));
        assert!(listed.iter().any(|&t| t > restart), "the restarted tracker never gave newcomer {p} a peer");
        let start = run.times(p, |e| matches!(e, Event::SessionStart { .. }))[0];
        let playing = *run.times(p, |e| matches!(e, Event::PlaybackStart { .. })).first().expect("newcomer played");
        eprintln!("newcomer {p}: playing {:.1} s after joining", (playing - start) as f64 / 1e6);
        assert!(playing - start < 15 * S, "newcomer {p} took {} µs to start playing", playing - start);
        run.all_streaming(&[p], playing, stop, "a newcomer until the source's stop");
    }
    let lowest = run.all_streaming(old, kill, restart + 10 * S, "while the tracker was down");
    eprintln!(
        "tracker down {:.2} s: running peers' worst 5 s continuity until 10 s after: {lowest:.4}",
        (restart - kill) as f64 / 1e6
    );
}

/// The source was frozen for 5 s, and every peer went on playing without a restart.
fn source_stop(run: &Run) {
    let (stop, cont) = (run.fault_at("stop-source", "sigstop"), run.fault_at("stop-source", "sigcont"));
    assert!((4_900_000..5_500_000).contains(&(cont - stop)), "stopped {} µs", cont - stop);
    let source: SocketAddr = "198.18.0.2:3901".parse().unwrap();
    let frozen = run.times(source, |_| true).into_iter().filter(|&t| stop + 50_000 < t && t < cont).count();
    assert_eq!(frozen, 0, "the stopped source logged {frozen} events");
    assert!(run.times(source, |_| true).iter().any(|&t| t > cont), "the source resumed");
    for &p in &run.peers {
        let sessions = run.times(p, |e| matches!(e, Event::SessionStart { .. })).len();
        let playbacks = run.times(p, |e| matches!(e, Event::PlaybackStart { .. })).len();
        assert_eq!((sessions, playbacks), (1, 1), "{p} restarted");
    }
    let lowest = run.all_streaming(&run.peers, stop, cont + 15 * S, "around the source's stop");
    eprintln!(
        "source stopped {:.2} s: peers' worst 5 s continuity until 15 s after: {lowest:.4}",
        (cont - stop) as f64 / 1e6
    );
}

/// Peer process 1 was killed: its 10 peers fell silent for good, and the 10 others were
/// streaming again within 10 s.
fn half_the_peers_killed(run: &Run, summary: &Value) {
    let kill = run.fault_at("kill-peers", "sigkill");
    let killed: Vec<SocketAddr> = run.fault("kill-peers")["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    let (survivors, second) = run.peers.split_at(PEERS / 2);
    assert_eq!(killed, second, "process 1 hosts the second half");
    for p in &killed {
        assert!(run.times(*p, |_| true).iter().all(|&t| t < kill + 200_000), "{p} lived on after the kill");
    }
    for p in summary["peers"].as_array().unwrap() {
        let dead = killed.contains(&p["address"].as_str().unwrap().parse().unwrap());
        assert_eq!(p["killed"] == true, dead, "{p}");
        assert!(p["played_matches_source"] == true, "{p}");
    }
    let end = run.json["epoch_us"].as_i64().unwrap() + (DURATION_S - 1) * S;
    let mut slowest = 0;
    for &p in survivors {
        let back = run.plays(p).recovery_us(kill, end, SLIDE, STREAMING);
        let worst = run.plays(p).worst(kill, end, SLIDE).unwrap();
        eprintln!(
            "survivor {p}: worst 5 s continuity {:.4} after the kill, >= {STREAMING} again after {:.1} s",
            worst.continuity(),
            back as f64 / 1e6
        );
        assert!(back <= 10 * S, "{p} took {back} µs to stream again after half the swarm was killed");
        slowest = slowest.max(back);
    }
    eprintln!("10 peers killed: the slowest survivor streamed again after {:.1} s", slowest as f64 / 1e6);
}

#[test]
fn five_percent_loss_in_bursts_keeps_every_peer_playing() {
    let Some(_one) = begin("five_percent_loss_in_bursts_keeps_every_peer_playing") else { return };
    let dir = run_dir("burst-loss");
    run_ok(&soplab_exe(), &netns_swarm_args(10, 0, &["--duration", "30s", "--loss", "5%", "--loss-burst", "4"], &dir));
    let run = read_json(&dir.join("run.json"));
    assert_nothing_left(run["prefix"].as_str().unwrap(), &dir);
    // Every peer's shell lost in bursts: its process's configuration says so...
    let config = read_json(&dir.join("logs/peers-0.config.json"));
    assert_eq!(
        (config["impairment"]["loss"].as_f64(), config["impairment"]["loss_burst"].as_f64()),
        (Some(0.05), Some(4.0))
    );
    // ...and the losses cost requests, re-asked elsewhere.
    let stats = read_json(&dir.join("logs/peers-0.stats.json"));
    let timed_out: u64 = stats.as_array().unwrap().iter().map(|s| s["requests_timed_out"].as_u64().unwrap()).sum();
    assert!(timed_out > 0, "5% lost and not one request timed out");
    let summary = read_json(&dir.join("summary.json"));
    let peers = summary["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 10);
    let c: Vec<f64> = peers.iter().map(|p| p["continuity"].as_f64().expect("every peer played")).collect();
    let (min, mean) = (c.iter().copied().fold(1.0, f64::min), c.iter().sum::<f64>() / c.len() as f64);
    eprintln!("5% lost in bursts of 4: continuity min {min:.4}, mean {mean:.4}; {timed_out} requests timed out");
    for p in peers {
        assert!(p["played_matches_source"] == true && p["continuity"].as_f64() >= Some(0.99), "{p}");
    }
    remove_run_dir(&dir);
}
