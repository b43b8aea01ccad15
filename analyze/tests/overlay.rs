//! The analysis and the validation on a synthetic swarm whose overlay is known exactly
//! (`common::Swarm`): roles recognised from the traffic, G_N and G_V degrees, throughput split,
//! the source's children, supernodes; and validation that finds capture losses and video the
//! truth cannot explain.

mod common;

use common::*;
use soplab_analyze::analysis::{self, AnalyzeOptions};
use soplab_analyze::validate::{self, ValidateOptions};

fn quiet() -> AnalyzeOptions {
    AnalyzeOptions { progress: false, ..AnalyzeOptions::default() }
}

#[test]
fn synthetic_swarm_overlay_is_rebuilt() {
    let dir = TempDir::new("overlay");
    let p = dir.file("swarm.pcap", &Swarm::new().pcap());
    let opts = quiet();
    let ing = analysis::ingest(&[p], &opts, &[None]).unwrap();
    let r = analysis::report(&ing, &opts).unwrap();
    assert_eq!(r.roles.tracker.unwrap().to_string(), TRACKER);
    assert_eq!(r.roles.source.unwrap().to_string(), SOURCE);
    assert_eq!((r.roles.tracker_by, r.roles.source_by), ("traffic", "traffic"));
    assert_eq!(r.summary.peers, 4);
    // G_N: every peer sends keep-alives to the three others in every 2.5 s snapshot.
    let n = &r.neighbor.snapshots[0];
    assert_eq!(n.tau_s, 2.5);
    assert!(n.snapshots >= 11, "{}", n.snapshots);
    assert_eq!((n.outdegree.mean, n.outdegree.sd), (3.0, 0.0));
    assert_eq!(n.outdegree.samples, 4 * n.snapshots);
    assert_eq!(r.neighbor.links_ever, 12);
    // Accumulated over [0, 10 s]: complete, the random graph has p = 1.
    let acc = &r.neighbor.accumulated[0];
    assert_eq!((acc.t_s, acc.nodes, acc.outdegree.mean), (10.0, 4, 3.0));
    assert!((acc.random_graph_p - 1.0).abs() < 1e-12);
    // G_V at 2 s: P1 -> P3 and P2 -> P4 (the source left out): in- and out-degree 1.
    let v = &r.video.snapshots[0];
    assert_eq!((v.indegree.mean, v.outdegree.mean, v.indegree.max), (1.0, 1.0, 1));
    assert_eq!(v.indegree.samples, 2 * v.snapshots);
    assert_eq!(r.video.links_ever, 2);
    // Fig. 2: a keep-alive per pair per second, a request per pair per second.
    let ka = r.activation.keepalive.p95_s.unwrap();
    let rq = r.activation.request.p95_s.unwrap();
    assert!((0.99..=1.01).contains(&ka) && (0.99..=1.01).contains(&rq), "{ka} {rq}");
    // Fig. 7: P1 and P2 download from the source, P3 and P4 from peers, 10,440 bytes a second.
    let per_s = 10_440.0 * 30.0 / (r.load.interval_s);
    let find = |i: usize| r.load.peers.iter().find(|l| l.address == peer(i).to_string()).unwrap();
    for i in 1..=4 {
        let l = find(i);
        assert!((l.download_bps - per_s).abs() / per_s < 0.01, "peer {i}: {}", l.download_bps);
        let (from_src, up) = if i <= 2 { (per_s, per_s) } else { (0.0, 0.0) };
        assert!((l.download_from_source_bps - from_src).abs() <= 0.01 * per_s, "peer {i}");
        assert!((l.upload_bps - up).abs() <= 0.01 * per_s, "peer {i}");
        assert_eq!(l.had_source_as_parent, i <= 2);
    }
    let order: Vec<String> = r.load.peers.iter().map(|l| l.address.clone()).collect();
    assert_eq!(order, (1..=4).map(|i| peer(i).to_string()).collect::<Vec<_>>(), "peers in address order");
    assert_eq!((r.load.source.max, r.load.source.peers_ever), (2, 2));
    assert!((r.load.source.share_of_download - 0.5).abs() < 0.01);
    let mut top = r.load.supernodes.top_uploaders.clone();
    top.sort();
    assert_eq!(top, vec![peer(1).to_string(), peer(2).to_string()]);
    assert_eq!(r.load.supernodes.top_fed_by_source, 1.0);
    assert!(r.load.supernodes.pearson_children_upload.unwrap() > 0.99);
    // The header cross-check agrees with the sizes on every datagram.
    assert_eq!(r.wire_crosscheck.disagree, 0);
    assert_eq!(r.wire_crosscheck.agree, r.trace.datagrams);
}

#[test]
fn naming_the_source_overrides_recognition() {
    let dir = TempDir::new("named");
    let p = dir.file("swarm.pcap", &Swarm::new().pcap());
    let opts = AnalyzeOptions { source: Some(peer(1)), ..quiet() };
    let ing = analysis::ingest(&[p], &opts, &[None]).unwrap();
    let r = analysis::report(&ing, &opts).unwrap();
    assert_eq!(r.roles.source_by, "named");
    assert_eq!(r.roles.source.unwrap().socket_addr(), peer(1));
    // The real source now counts as a peer and P1 does not.
    assert_eq!(r.summary.peers, 4);
    assert!(r.load.peers.iter().any(|l| l.address == SOURCE));
}

#[cfg(feature = "plots")]
#[test]
fn outputs_are_written() {
    let dir = TempDir::new("outputs");
    let p = dir.file("swarm.pcap", &Swarm::new().pcap());
    let opts = quiet();
    let ing = analysis::ingest(&[p], &opts, &[None]).unwrap();
    let r = analysis::report(&ing, &opts).unwrap();
    let out = dir.0.join("out");
    let files = soplab_analyze::output::write_report(&out, &r).unwrap();
    let plots = soplab_analyze::plot::write_plots(&out, &r).unwrap();
    for f in files.iter().chain(&plots) {
        let len = std::fs::metadata(f).unwrap().len();
        // The client tables of a swarm without churn may hold their header only (no OFF times).
        let header_only = f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("clients_"));
        assert!(len > if header_only { 5 } else { 20 }, "{} is {len} bytes", f.display());
    }
    assert!(files.iter().any(|f| f.ends_with("clients_partners.csv")));
    assert_eq!(json_of(&out)["clients"]["clients"], 4, "P1..P4: the source is no client");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["summary"]["peers"], 4);
    let png = std::fs::read(out.join("fig5_video_indegree.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let svg = std::fs::read_to_string(out.join("fig7_throughput.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("uploading throughput"), "the SVG has its legend text");
    let csv = std::fs::read_to_string(out.join("peers.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
}

fn json_of(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn validation_of_a_faithful_capture_is_perfect() {
    let dir = TempDir::new("valid");
    let run = Swarm::new().run_dir(&dir);
    let v = validate::validate(&run, &ValidateOptions { analyze: quiet(), ..ValidateOptions::default() }).unwrap();
    let (n, vid) = (&v.layers.neighbor, &v.layers.video);
    assert_eq!((n.precision, n.recall, vid.precision, vid.recall), (1.0, 1.0, 1.0, 1.0));
    assert_eq!(n.measured, 12 * n.snapshots);
    assert_eq!(vid.measured, 2 * vid.snapshots);
    assert_eq!(v.roles.named_by, "truth");
    assert!(v.roles.traffic_agrees);
    assert_eq!((v.peers.in_truth, v.peers.seen), (4, 4));
    assert!(v.peers.unknown_endpoints.is_empty(), "{:?}", v.peers.unknown_endpoints);
    assert_eq!(v.degrees.neighbor_out.within_bounds, 1.0);
    // With every peer as a vantage point everything is seen; one sees the half of the G_N
    // edges it is an end of (6 of 12).
    let all = v.coverage.rows.last().unwrap();
    assert_eq!((all.k, all.peers_seen, all.edges_seen), (4, 1.0, 1.0));
    let one = &v.coverage.rows[0];
    assert_eq!(one.k, 1);
    assert!((one.edges_seen - 0.5).abs() < 1e-9, "{}", one.edges_seen);
}

#[test]
fn validation_finds_lost_keepalives_and_unexplained_video() {
    let dir = TempDir::new("lossy");
    // Keep-alives P1 -> P2 (sent at s + 0.062 s) missing for s = 10..19. Snapshots start with
    // the first datagram (t0 + 1 ms) rounded up to the 0.1 s slot: [0.1 + 2.5k, 2.6 + 2.5k).
    // Those from 10.1 s to 17.6 s (k = 4, 5, 6) hold none; [17.6, 20.1) still has 20.062.
    let swarm = Swarm { drop_keepalives: Some((1, 2, 10, 20)), unexplained_video_at: Some(15), ..Swarm::new() };
    let run = swarm.run_dir(&dir);
    let v = validate::validate(&run, &ValidateOptions { analyze: quiet(), ..ValidateOptions::default() }).unwrap();
    let n = &v.layers.neighbor;
    assert_eq!(n.precision, 1.0);
    assert_eq!(n.truth_strict - n.certain_measured, 3, "{:?}", n.false_negative_examples);
    assert!(n.false_negative_examples.iter().map(|e| &e[..10]).eq(["snapshot 4", "snapshot 5", "snapshot 6"]));
    assert!(n.recall < 1.0);
    assert!(n.false_negative_examples[0].contains("198.18.1.1:3908 -> 198.18.1.2:3908"));
    let vid = &v.layers.video;
    assert_eq!(vid.recall, 1.0);
    assert_eq!(vid.measured - vid.measured_possible, 1);
    assert!(vid.precision < 1.0);
    assert!(vid.false_positive_examples[0].contains("198.18.1.3:3908 -> 198.18.1.4:3908"));
}
