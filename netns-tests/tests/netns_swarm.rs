//! End-to-end: soplab swarms in network namespaces, captured by real tcpdump, churned by a
//! compressed workload, and torn down even when the orchestrator is SIGKILLed.
//!
//! The tests need root, iproute2, tcpdump and ndpiReader; without them each says what is
//! missing and passes, unless `SOPLAB_REQUIRE_NETNS=1` (CI), in which case it fails. They run
//! `soplab` as a separate process, as users do. `cargo test --workspace` builds it (the `soplab`
//! package's own tests need the binary); to run these tests alone, build it first with
//! `cargo build -p soplab --profile test`. Helpers come from soplab-testkit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use soplab_rundir::truth::{Event, Line};
use soplab_testkit::{
    assert_nothing_left, namespaces, ndpi_flows, netns_available, netns_swarm_args, played_sessions, read_json,
    remove_run_dir, run_dir, run_ok, serial, soplab_exe, tcpdump_udp, truth_events,
};

/// The tracker's address in every netns run.
const TRACKER: &str = "198.18.0.1:3900";
/// Control sizes of Table 1 of Tang et al.
const CONTROL: [usize; 5] = [52, 80, 28, 42, 46];
/// soplab's video packet sizes: full packets and the response tails (docs/PROTOCOL.md).
const VIDEO: [usize; 9] = [1320, 1200, 1080, 960, 840, 720, 600, 480, 360];

fn run_json(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("run.json"))
}

/// Runs `soplab swarm --mode netns --peers <peers> --vantage <vantage> <more...> --out <dir>`,
/// which must succeed.
fn netns_swarm(peers: usize, vantage: usize, more: &[&str], dir: &Path) -> Output {
    run_ok(&soplab_exe(), &netns_swarm_args(peers, vantage, more, dir))
}

/// One swarm at a time, or `None` (after saying why) when this machine cannot run netns tests.
fn begin(test: &str) -> Option<MutexGuard<'static, ()>> {
    netns_available(test).then(serial)
}

/// A truth line's time in seconds.
fn secs(l: &Line) -> f64 {
    l.ts_us as f64 / 1e6
}

#[test]
fn thirty_peers_captured_at_five_vantage_points_and_on_the_bridge() {
    let Some(_one) = begin("thirty_peers_captured_at_five_vantage_points_and_on_the_bridge") else { return };
    let dir = run_dir("thirty");
    netns_swarm(30, 5, &["--bridge-capture", "--duration", "3m"], &dir);
    let run = run_json(&dir);
    let prefix = run["prefix"].as_str().unwrap().to_string();
    assert_nothing_left(&prefix, &dir);

    // Six captures (five vantage peers and the bridge), none empty, each read by tcpdump.
    let pcaps = run["pcaps"].as_array().unwrap();
    assert_eq!(pcaps.len(), 6, "{pcaps:?}");
    let mut bridge = None;
    for p in pcaps {
        let file = dir.join(p["file"].as_str().unwrap());
        let (udp, _) = tcpdump_udp(&file);
        assert!(!udp.is_empty(), "{} is empty", file.display());
        assert!(p["packets"].as_u64().unwrap() as usize >= udp.len(), "run.json counts {p:?}");
        // Between peers (and with the source): only Table 1's control sizes and video packets.
        let mut sizes: BTreeMap<usize, u64> = BTreeMap::new();
        for u in udp.iter().filter(|u| u.src != TRACKER && u.dst != TRACKER) {
            *sizes.entry(u.len).or_default() += 1;
        }
        let odd: Vec<_> = sizes.keys().filter(|s| !CONTROL.contains(s) && !VIDEO.contains(s)).collect();
        assert!(odd.is_empty(), "{}: sizes outside Table 1 and video: {odd:?} in {sizes:?}", file.display());
        assert!(sizes.keys().all(|&s| s <= 1320));
        for s in CONTROL.iter().chain([&1320]) {
            assert!(sizes.contains_key(s), "{}: no {s}-byte packets in {sizes:?}", file.display());
        }
        if let Some(addr) = p["address"].as_str() {
            assert!(udp.iter().all(|u| u.src == addr || u.dst == addr), "a vantage pcap holds its own traffic only");
        } else {
            bridge = Some((file, udp));
        }
    }
    let (bridge_file, bridge_udp) = bridge.expect("a bridge capture");

    // ndpiReader calls every peer flow (all but the tracker's) SopCast.
    let flows = ndpi_flows(&bridge_file);
    let peer_flows: Vec<_> = flows.iter().filter(|(a, b, _)| a != TRACKER && b != TRACKER).collect();
    assert!(peer_flows.len() >= 30, "only {} peer flows: {flows:?}", peer_flows.len());
    let not_sopcast: Vec<_> = peer_flows.iter().filter(|(_, _, p)| !p.contains("Sopcast")).collect();
    assert!(not_sopcast.is_empty(), "flows not labelled SopCast: {not_sopcast:?}");

    // The bridge saw every peer, and the ground truth covers the same interval as the capture.
    let seen: BTreeSet<&str> = bridge_udp.iter().flat_map(|u| [u.src.as_str(), u.dst.as_str()]).collect();
    for h in run["hosts"].as_array().unwrap() {
        assert!(seen.contains(h["address"].as_str().unwrap()), "the bridge never saw {h}");
    }
    let truth = truth_events(&dir);
    let ts: Vec<f64> = truth.iter().map(|(_, e)| secs(e)).collect();
    let (t0, t1) = (ts.iter().copied().fold(f64::MAX, f64::min), ts.iter().copied().fold(0.0, f64::max));
    let (c0, c1) = (bridge_udp[0].ts, bridge_udp[bridge_udp.len() - 1].ts);
    assert!(c0 <= t0 + 0.01, "capture starts ({c0}) before the first daemon event ({t0})");
    assert!((c1 - t1).abs() < 2.0, "capture ends ({c1}) with the last daemon event ({t1})");
    let epoch = run["epoch_us"].as_u64().unwrap() as f64 / 1e6;
    assert!(t0 <= epoch + 1.0 && t1 >= epoch + 179.0, "truth covers the 3 minutes: {t0}..{t1}, epoch {epoch}");

    // And the swarm streamed.
    let summary = read_json(&dir.join("summary.json"));
    let peers = summary["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 30);
    assert!(peers.iter().all(|p| p["played_matches_source"] == true), "{peers:?}");
    let mean = peers.iter().map(|p| p["continuity"].as_f64().unwrap()).sum::<f64>() / 30.0;
    assert!(mean >= 0.99, "mean continuity {mean}");
    remove_run_dir(&dir);
}

#[test]
fn a_compressed_workload_starts_and_stops_every_peer_on_schedule() {
    let Some(_one) = begin("a_compressed_workload_starts_and_stops_every_peer_on_schedule") else { return };
    let dir = run_dir("churn");
    netns_swarm(30, 5, &["--workload", "event", "--time-scale", "10", "--duration", "90s", "--seed", "5"], &dir);
    let run = run_json(&dir);
    assert_nothing_left(run["prefix"].as_str().unwrap(), &dir);
    let epoch = run["epoch_us"].as_u64().unwrap() as f64 / 1e6;
    let dur = run["duration_s"].as_f64().unwrap();

    let schedule = played_sessions(&dir, dur);
    let hosts: Vec<&serde_json::Value> =
        run["hosts"].as_array().unwrap().iter().filter(|h| h["role"] == "peer").collect();
    let mut by_stem: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    for (stem, e) in truth_events(&dir) {
        by_stem.entry(stem).or_default().push(e);
    }
    let (mut sessions, mut worst, mut silent) = (0, 0.0f64, 0);
    for (k, h) in hosts.iter().enumerate() {
        let stem = format!("peer-{}", h["address"].as_str().unwrap().replace(':', "-"));
        let events = by_stem.get(&stem).cloned().unwrap_or_default();
        let starts: Vec<f64> =
            events.iter().filter(|e| matches!(e.event, Event::SessionStart { .. })).map(|e| secs(e) - epoch).collect();
        let ends: Vec<(f64, bool)> = events
            .iter()
            .filter_map(|e| match e.event {
                Event::SessionEnd { graceful } => Some((secs(e) - epoch, graceful)),
                _ => None,
            })
            .collect();
        if k < 5 {
            assert!(h["vantage"] == true && h["churned"] == false);
            assert_eq!((starts.len(), ends.len()), (1, 1), "vantage peer {stem} runs once, all along");
            assert!(ends[0].0 >= dur - 1.0, "vantage peer {stem} stays to the end");
            continue;
        }
        let want = schedule.get(&(k as u32 - 5)).cloned().unwrap_or_default();
        assert_eq!(starts.len(), want.len(), "{stem}: sessions {starts:?} against the schedule {want:?}");
        assert_eq!(ends.len(), want.len(), "{stem}: ends {ends:?} against the schedule {want:?}");
        for ((ws, we), (s, (e, graceful))) in want.iter().zip(starts.iter().zip(&ends)) {
            worst = worst.max((ws - s).abs()).max((we - e).abs());
            assert!((ws - s).abs() <= 1.0 && (we - e).abs() <= 1.0, "{stem}: ran {s:.3}..{e:.3}, scheduled {ws}..{we}");
            // A client leaving before the end vanishes; one still on at the end is stopped.
            if *we < dur - 0.5 {
                assert!(!graceful, "{stem}: a churned peer leaves without a word");
                silent += 1;
            }
        }
        sessions += want.len();
    }
    eprintln!("{sessions} sessions followed the schedule; worst error {worst:.3} s; {silent} silent departures");
    assert!(sessions >= 25, "the workload gave only {sessions} sessions to 25 clients");
    assert!(silent > 0, "some clients left during the run");
    remove_run_dir(&dir);
}

#[test]
fn a_sigkilled_run_is_swept_by_the_next_run_and_by_cleanup() {
    let Some(_one) = begin("a_sigkilled_run_is_swept_by_the_next_run_and_by_cleanup") else { return };
    for (i, sweeper) in ["next run", "cleanup"].iter().enumerate() {
        let dir = run_dir(&format!("killed-{i}"));
        let mut child = Command::new(soplab_exe())
            .args(netns_swarm_args(8, 2, &["--bridge-capture", "--duration", "5m"], &dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start soplab");
        let prefix = format!("soplab-{}", child.id());
        // Wait until the swarm is up and capturing, then kill the orchestrator outright.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(dir.join("pcap/bridge.pcap").exists() && dir.join("truth").read_dir().unwrap().count() >= 10) {
            assert!(Instant::now() < deadline, "the swarm never came up");
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(3));
        child.kill().expect("SIGKILL the orchestrator");
        child.wait().unwrap();
        let stale = namespaces(&format!("{prefix}-"));
        assert!(stale.len() >= 11, "a SIGKILLed run cannot remove its namespaces: {stale:?}");

        if *sweeper == "next run" {
            let next = run_dir(&format!("after-kill-{i}"));
            let out = netns_swarm(3, 1, &["--duration", "10s"], &next);
            let run = run_json(&next);
            let swept: Vec<&str> = run["swept"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            assert!(stale.iter().all(|n| swept.contains(&n.as_str())), "{swept:?} {stale:?} {out:?}");
            assert_nothing_left(run["prefix"].as_str().unwrap(), &next);
            remove_run_dir(&next);
        } else {
            let out = run_ok(&soplab_exe(), &["cleanup"]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("removed"), "{text}");
        }
        assert_nothing_left(&prefix, &dir);
        remove_run_dir(&dir);
    }
}

/// Each peer host delays what it sends by the delay run.json gives it: on the bridge, the
/// quickest HELLO reply (80 bytes) of a peer comes that long after the HELLO (52) it answers,
/// plus at most the jitter and a little processing.
fn replies_wait_for_the_repliers_delay(run: &serde_json::Value, udp: &[soplab_testkit::UdpLine]) {
    let delay: BTreeMap<&str, f64> = run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["role"] == "peer")
        .map(|h| (h["address"].as_str().unwrap(), h["delay_us"].as_u64().unwrap() as f64 / 1e6))
        .collect();
    let drawn: BTreeSet<u64> = delay.values().map(|d| (d * 1e3).round() as u64).collect();
    assert_eq!(drawn, BTreeSet::from([10, 60]), "hosts take the list's delays in turn: {delay:?}");
    // The first HELLO of each pair not answered yet, and each replier's quickest answer.
    let mut waiting: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut quickest: BTreeMap<&str, f64> = BTreeMap::new();
    for u in udp.iter().filter(|u| delay.contains_key(u.src.as_str()) && delay.contains_key(u.dst.as_str())) {
        match u.len {
            52 => _ = waiting.entry((u.src.as_str(), u.dst.as_str())).or_insert(u.ts),
            80 => {
                if let Some(t) = waiting.remove(&(u.dst.as_str(), u.src.as_str())) {
                    let q = quickest.entry(u.src.as_str()).or_insert(f64::INFINITY);
                    *q = q.min(u.ts - t);
                }
            }
            _ => {}
        }
    }
    assert!(quickest.len() >= delay.len() / 2, "too few replies seen: {quickest:?}");
    // A reply never comes before the replier's delay. It comes within 25 ms of it only where
    // nothing queues ahead of it: on a host whose uplink (tbf) is fast. Behind a 256 kbit/s
    // cap, one video packet already takes 41 ms to leave, and a peer relaying video keeps such
    // a queue (so the quickest reply of a slow host depends on when its first HELLO came).
    let upload: BTreeMap<&str, u64> = run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["role"] == "peer")
        .map(|h| (h["address"].as_str().unwrap(), h["upload_bps"].as_u64().unwrap()))
        .collect();
    let mut fast_checked = 0;
    for (peer, q) in &quickest {
        let d = delay[peer];
        assert!(d - 0.001 <= *q, "{peer}, delay {d} s, answered a HELLO {q} s after");
        if upload[peer] >= 10_000_000 {
            fast_checked += 1;
            assert!(*q <= d + 0.025, "{peer}, delay {d} s, fast uplink, answered a HELLO {q} s after at best");
        }
    }
    assert!(fast_checked > 0, "no fast host's replies were seen: {quickest:?}");
}

#[test]
fn tc_rates_cap_what_each_peer_host_uploads() {
    let Some(_one) = begin("tc_rates_cap_what_each_peer_host_uploads") else { return };
    let dir = run_dir("links");
    // A source that can feed about two children makes the peers relay, so the slow hosts are
    // pushed against their cap.
    let links = ["--source-upload", "1M", "--upload", "choice(256k:0.5,20M:0.5)", "--download", "50M"];
    // Hosts alternate between two one-way delays, so a peer's replies show which one it drew.
    let impairments = ["--delay", "list(10ms,60ms)", "--jitter", "5ms", "--loss", "0.005"];
    netns_swarm(12, 1, &[&["--bridge-capture"][..], &links, &impairments, &["--duration", "25s"]].concat(), &dir);
    let run = run_json(&dir);
    assert_nothing_left(run["prefix"].as_str().unwrap(), &dir);
    let rates: BTreeMap<String, u64> = run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["role"] == "peer")
        .map(|h| (h["address"].as_str().unwrap().to_string(), h["upload_bps"].as_u64().unwrap()))
        .collect();
    let distinct: BTreeSet<u64> = rates.values().copied().collect();
    assert_eq!(distinct, BTreeSet::from([256_000, 20_000_000]), "hosts draw from the distribution: {rates:?}");
    assert!(
        run["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["role"] == "peer")
            .all(|h| h["download_bps"] == 50_000_000)
    );
    // What left each host, as the bridge saw it: tbf counts Ethernet frames (UDP payload + 8 +
    // 20 + 14 bytes). (The peers' own upload counters cannot be used: they count what a peer
    // handed to its socket, and tbf drops what overflows its queue.)
    let (udp, _) = tcpdump_udp(&dir.join("pcap/bridge.pcap"));
    replies_wait_for_the_repliers_delay(&run, &udp);
    let mut sent: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for u in &udp {
        let e = sent.entry(u.src.as_str()).or_insert((u.ts, u.ts, 0.0));
        e.1 = u.ts;
        e.2 += ((u.len + 42) * 8) as f64;
    }
    let mut slow_checked = 0;
    for (addr, rate) in &rates {
        let (first, last, bits) = sent[addr.as_str()];
        let cap = *rate as f64 * (last - first) + 4096.0 * 8.0;
        assert!(bits <= cap * 1.02, "{addr} sent {bits} bits in {:.1} s under a {rate} bit/s cap", last - first);
        if *rate == 256_000 && bits > 0.5 * cap {
            slow_checked += 1;
        }
    }
    assert!(slow_checked > 0, "no 256k host came near its cap, so the test proved nothing: {sent:?}");
    let summary = read_json(&dir.join("summary.json"));
    // The slow hosts did not stop the stream: the source and the fast peers carry it.
    let played = summary["peers"].as_array().unwrap().iter().filter(|p| p["blocks_played"].as_u64() > Some(0)).count();
    assert_eq!(played, 12);
    remove_run_dir(&dir);
}
