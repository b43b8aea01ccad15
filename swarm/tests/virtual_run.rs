//! `soplab swarm --mode virtual`: a run directory like a netns run's, from the virtual-time
//! network, that the analyzer reads as it reads any other.
//!
//! - `a_virtual_run_is_analysed_and_validated_like_a_netns_run`: 20 peers for 120 s; the
//!   analysis and the validation against the ground truth (the library `soplab analyze` and
//!   `soplab validate` use) give precision and recall >= 0.99 on both layers, from a capture
//!   whose records hold only the first 128 bytes of each packet.
//! - `the_same_seed_writes_the_same_bytes`: two churned, shaped, lossy runs with one seed write
//!   byte-identical captures, truth files and run.json; another seed does not.
//! - `churned_peers_follow_the_schedule_to_the_microsecond`: every session starts and ends when
//!   workload.csv says, vantage peers stay, departures are silent.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use soplab::scenario::{Mode, Scenario, SwarmConfig};
use soplab_analyze::analysis::AnalyzeOptions;
use soplab_analyze::classify::Kind;
use soplab_analyze::cli;
use soplab_rundir::run::RunInfo;
use soplab_rundir::truth::{Event, Line};
use soplab_testkit::{TempDir, assert_continuity, played_sessions, read_json, truth_events};

/// Runs `settings` in virtual time into `out`.
fn run(settings: Scenario, out: &Path) -> (soplab::summary::Summary, RunInfo) {
    let s = Scenario { mode: Some(Mode::Virtual), out: Some(out.to_path_buf()), ..settings };
    let cfg = SwarmConfig::resolve(s, Mode::Virtual).expect("valid settings");
    soplab::run::run_virtual(&cfg).expect("the virtual run completes")
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

#[test]
fn a_virtual_run_is_analysed_and_validated_like_a_netns_run() {
    let dir = TempDir::new("virtual-analyse");
    let (summary, info) =
        run(Scenario { peers: Some(20), duration: secs(120), seed: Some(3), ..Scenario::default() }, dir.path());
    assert_eq!(summary.peers.len(), 20);
    for p in &summary.peers {
        assert_continuity(p, 0.99, "");
        assert!(p.played_matches_source, "peer {} played bytes that are not the source's", p.address);
    }
    assert_eq!(info.mode, Mode::Virtual);
    assert_eq!(info.hosts.len(), 22);
    assert_eq!(
        (info.hosts[0].address.as_str(), info.hosts[2].address.as_str()),
        ("198.18.0.1:3900", "198.18.1.1:3908")
    );
    let [capture] = &info.pcaps[..] else { panic!("one capture, not {:?}", info.pcaps) };
    assert_eq!((capture.file.as_str(), capture.host.as_str()), ("pcap/bridge.pcap", "bridge"));
    assert_eq!(read_json(&dir.join("run.json"))["mode"], "virtual");

    let done = cli::analyze_into(&[dir.path().to_path_buf()], &dir.join("analysis"), AnalyzeOptions::default(), false)
        .expect("the analysis reads the run");
    let r = &done.report;
    assert_eq!(r.summary.peers, 20);
    assert_eq!(r.inputs[0].records, capture.packets);
    assert_eq!(r.wire_crosscheck.disagree, 0);
    // Every video packet was cut to 128 bytes, and still counted at its true size.
    assert!(r.inputs[0].cut_payloads > 1000, "{:?}", r.inputs[0]);
    let full = r.classification.iter().find(|k| k.kind == Kind::VideoFull).expect("a video row");
    assert!(full.packets > 1000 && full.bytes == full.packets * 1320, "{full:?}");
    assert_eq!(r.classification.iter().find(|k| k.kind == Kind::Unknown).map_or(0, |k| k.packets), 0);

    let v = cli::validate_into(dir.path(), &cli::validate_defaults(), &dir.join("validation.json"))
        .expect("the validation reads the run");
    for line in cli::validation_lines(&v) {
        eprintln!("{line}");
    }
    for l in [&v.layers.neighbor, &v.layers.video] {
        assert!(
            l.precision >= 0.99 && l.recall >= 0.99,
            "{:?}: precision {}, recall {}",
            l.layer,
            l.precision,
            l.recall
        );
        assert!(l.measured > 1000 && l.snapshots >= 40, "{l:?}");
    }
    assert_eq!((v.peers.in_truth, v.peers.seen), (20, 20), "{:?}", v.peers.missing);
    assert!(v.roles.traffic_agrees, "{:?}", v.roles);
}

/// A run with every per-host setting and churn: stagger, a workload, upload rates per host, a
/// path with delay, jitter and loss.
fn everything(seed: u64) -> Scenario {
    Scenario {
        peers: Some(16),
        vantage: Some(4),
        duration: secs(60),
        seed: Some(seed),
        stagger: secs(3),
        workload: Some("event".into()),
        time_scale: Some(10.0),
        upload: Some("choice(300k:0.5,5M:0.5)".into()),
        delay: Some("15ms".into()),
        jitter: Some("10ms".into()),
        loss: Some(0.005),
        ..Scenario::default()
    }
}

/// Every file of `dir/sub`, by name.
fn files(dir: &Path, sub: &str) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir.join(sub)).expect("a folder of the run").flatten() {
        m.insert(e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("readable"));
    }
    m
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let (a, b, c) = (TempDir::new("virtual-same-a"), TempDir::new("virtual-same-b"), TempDir::new("virtual-other"));
    run(everything(7), a.path());
    run(everything(7), b.path());
    run(everything(8), c.path());
    let (pa, ta) = (files(a.path(), "pcap"), files(a.path(), "truth"));
    assert_eq!(pa.keys().collect::<Vec<_>>(), ["bridge.pcap"]);
    assert!(pa["bridge.pcap"].len() > 100_000, "a capture of {} bytes", pa["bridge.pcap"].len());
    assert_eq!(ta.len(), 18, "tracker, source and 16 peers");
    assert!(pa == files(b.path(), "pcap"), "two runs with one seed wrote different captures");
    for (name, bytes) in &ta {
        assert!(Some(bytes) == files(b.path(), "truth").get(name), "{name} differs between two runs with one seed");
    }
    let run_json = |d: &TempDir| std::fs::read(d.join("run.json")).expect("run.json");
    assert_eq!(run_json(&a), run_json(&b));
    assert_eq!(std::fs::read(a.join("workload.csv")).unwrap(), std::fs::read(b.join("workload.csv")).unwrap());
    assert!(pa != files(c.path(), "pcap"), "another seed wrote the same capture");
}

#[test]
fn churned_peers_follow_the_schedule_to_the_microsecond() {
    let dir = TempDir::new("virtual-churn");
    let (summary, info) = run(everything(5), dir.path());
    // run.json names the model and the compression, for the analyzer (issue 12).
    assert_eq!((info.workload_preset.as_deref(), info.time_scale), (Some("event"), Some(10.0)));
    let (epoch, dur) = (info.epoch_us as i64, info.duration_s);
    let schedule = played_sessions(dir.path(), dur);
    let mut by_stem: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    for (stem, e) in truth_events(dir.path()) {
        by_stem.entry(stem).or_default().push(e);
    }
    let at = |l: &Line| (l.ts_us - epoch) as f64 / 1e6;
    let mut sessions = 0;
    for (k, h) in info.hosts.iter().filter(|h| h.role == soplab_rundir::truth::Role::Peer).enumerate() {
        let events = by_stem.get(&h.name).cloned().unwrap_or_default();
        let starts: Vec<f64> =
            events.iter().filter(|e| matches!(e.event, Event::SessionStart { .. })).map(at).collect();
        let ends: Vec<(f64, bool)> = events
            .iter()
            .filter_map(|e| match e.event {
                Event::SessionEnd { graceful } => Some((at(e), graceful)),
                _ => None,
            })
            .collect();
        assert!(h.upload_bps == Some(300_000) || h.upload_bps == Some(5_000_000), "{h:?}");
        if k < 4 {
            assert!(h.vantage && !h.churned, "{h:?}");
            assert_eq!((starts.len(), ends.len()), (1, 1), "vantage peer {} runs once, all along", h.name);
            assert!(starts[0] < 3.0 && ends[0] == (dur, true), "vantage peer {}: {starts:?} {ends:?}", h.name);
            continue;
        }
        let want = schedule.get(&(k as u32 - 4)).cloned().unwrap_or_default();
        let got: Vec<(f64, f64)> = starts.iter().zip(&ends).map(|(s, e)| (*s, e.0)).collect();
        assert_eq!(got, want, "{}: sessions against the schedule", h.name);
        for (&(_, we), &(_, graceful)) in want.iter().zip(&ends) {
            assert_eq!(graceful, we >= dur, "{}: a churned peer leaves without a word, unless the run ends", h.name);
        }
        sessions += want.len();
    }
    eprintln!("{sessions} sessions followed the schedule to the microsecond");
    assert!(sessions >= 12, "the workload gave only {sessions} sessions to 12 clients");
    // The 300 kbit/s hosts upload no more video than their rate allows.
    for (p, h) in summary.peers.iter().zip(info.hosts.iter().skip(2)) {
        if h.upload_bps == Some(300_000) {
            assert!(
                p.uploaded_bytes <= 300_000 / 8 * 61,
                "{} uploaded {} bytes at 300 kbit/s",
                p.address,
                p.uploaded_bytes
            );
        }
    }
}

/// The client layer of `soplab validate` on a churned run: the sessions found in the bridge
/// capture are those the peers' own video makes, and the logged sessions' join delays are
/// short (`hellos_at_start`).
#[test]
fn a_churned_runs_sessions_are_found_in_its_capture() {
    let dir = TempDir::new("virtual-sessions");
    let settings = Scenario {
        peers: Some(60),
        vantage: Some(4),
        duration: secs(180),
        seed: Some(2),
        workload: Some("event".into()),
        time_scale: Some(10.0),
        ..Scenario::default()
    };
    run(settings, dir.path());
    let v = soplab_analyze::validate::validate(dir.path(), &cli::validate_defaults()).expect("the run validates");
    let c = &v.clients;
    assert_eq!((c.time_scale, c.preset.as_deref(), c.session_gap_capture_s), (10.0, Some("event"), 15.0));
    let s = &c.sessions;
    assert!(s.found > 20, "{s:?}");
    assert!(s.precision >= 0.98 && s.recall >= 0.98, "{s:?}");
    assert!(s.start_error_s.max.abs() < 1.0 && s.end_error_s.max.abs() < 1.0, "{s:?}");
    // Sessions logged: most have video (the shortest, compressed ten times to a fraction of a
    // second, end before their first; 27 of 83 here).
    let l = &c.logged;
    assert!(l.without_data * 2 < l.sessions && l.join_delay_s.samples + l.without_data == l.sessions, "{l:?}");
    assert!(l.join_delay_s.p50 < 0.5, "{l:?}");
    assert_eq!(c.recovery.len(), 5, "the event model's parameters: {:?}", c.recovery);
    // The played schedule (workload.csv) against the captures: every session found was
    // played (a found session no peer played would be a bug of either side).
    let played = c.played.as_ref().expect("a churned run has a played schedule");
    assert_eq!(played.recovery.len(), 5);
    assert!(played.sessions.truth >= s.found && played.sessions.precision >= 0.95, "{:?}", played.sessions);
}
