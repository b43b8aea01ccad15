//! The paper-against-trace table (`paper_comparison` in report.json, paper_comparison.csv) on
//! the synthetic swarm of `common::Swarm`, whose overlay is known: the rows and Tang et al.'s
//! values, agreement with the headline numbers, the 10 s share, the CSV, and the interval each
//! row reports.

mod common;

use common::*;
use soplab_analyze::analysis::{self, AnalyzeOptions, Ingest, Report};
use soplab_analyze::capture::{Datagram, Endpoint, HEAD};
use soplab_analyze::paper::{PaperValue, Row};
use soplab_analyze::trace::{Trace, TraceOptions};

fn quiet() -> AnalyzeOptions {
    AnalyzeOptions { progress: false, ..AnalyzeOptions::default() }
}

/// The report of `swarm` read from a pcap, as `analyze` reads it.
fn analysed(swarm: &Swarm, what: &str, opts: &AnalyzeOptions) -> Report {
    let dir = TempDir::new(what);
    let p = dir.file("swarm.pcap", &swarm.pcap());
    let ing = analysis::ingest(&[p], opts, &[None]).unwrap();
    analysis::report(&ing, opts).unwrap()
}

/// The report of `swarm` fed to the trace directly (no pcap: a 40-minute swarm would be
/// hundreds of megabytes).
fn analysed_in_memory(swarm: &Swarm, opts: &AnalyzeOptions) -> Report {
    let mut trace = Trace::new(TraceOptions {
        resolution_us: 100_000,
        from_s: opts.from_s,
        to_s: opts.to_s,
        ..TraceOptions::default()
    });
    swarm.for_each_datagram(|ts, s, d, p| trace.add(&datagram(ts, s, d, p)));
    let ing = Ingest::from_trace(trace);
    analysis::report(&ing, opts).unwrap()
}

/// The datagram a capture of `p` from `s` to `d` at `ts` gives.
fn datagram(ts: i64, s: std::net::SocketAddr, d: std::net::SocketAddr, p: &[u8]) -> Datagram {
    let mut g = Datagram {
        ts_us: ts,
        src: Endpoint::from_socket_addr(s),
        dst: Endpoint::from_socket_addr(d),
        len: p.len() as u32,
        head_len: p.len().min(HEAD) as u8,
        ..Datagram::default()
    };
    g.head[..usize::from(g.head_len)].copy_from_slice(&p[..usize::from(g.head_len)]);
    g
}

fn row<'a>(r: &'a Report, key: &str) -> &'a Row {
    r.paper_comparison.iter().find(|x| x.measurement == key).unwrap_or_else(|| panic!("no row {key}"))
}

fn measured(r: &Report, key: &str) -> f64 {
    row(r, key).measured.unwrap_or_else(|| panic!("{key} not measured: {:?}", row(r, key).note))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn every_row_is_there_with_the_papers_value() {
    let r = analysed(&Swarm::new(), "paper-rows", &quiet());
    let numbers = [
        ("keepalive_gap_p95_s", 2.5),
        ("request_gap_p95_s", 2.0),
        ("gn_outdegree_share_2_5s", 0.7546),
        ("gn_outdegree_share_10s", 0.832),
        ("gv_indegree_mean_2s", 1.86),
        ("source_max_children", 11.0),
        ("source_peers_ever_fed", 15.0),
        ("gn_accumulated_full_mesh_300s", 0.999),
    ];
    for (key, want) in numbers {
        match row(&r, key).paper {
            PaperValue::Number(x) => assert!((x - want).abs() < 1e-9, "{key}: {x}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    for key in ["gv_outdegree_powerlaw_2s", "upload_gini", "download_gini"] {
        assert!(matches!(row(&r, key).paper, PaperValue::Statement(_)), "{key}");
    }
    assert_eq!(r.paper_comparison.len(), numbers.len() + 3);
    for x in &r.paper_comparison {
        assert!(!x.description.is_empty() && x.paper_source.contains("section 5"), "{x:?}");
    }
    // In report.json: the shares carry the paper's "of 50" and the trace's mean and peers.
    let json = serde_json::to_value(&r).unwrap();
    let rows = json["paper_comparison"].as_array().unwrap();
    let share = rows.iter().find(|x| x["measurement"] == "gn_outdegree_share_2_5s").unwrap();
    assert_eq!(share["share"]["other_peers"], 3);
    assert!(share["note"].as_str().unwrap().contains("37.73 of 50"), "{share}");
    let gini = rows.iter().find(|x| x["measurement"] == "upload_gini").unwrap();
    assert_eq!(gini["paper"], "very uneven");
}

#[test]
fn measured_values_are_the_headlines() {
    let r = analysed(&Swarm::new(), "paper-headline", &quiet());
    let s = &r.summary;
    assert!(close(measured(&r, "keepalive_gap_p95_s"), s.keepalive_gap_p95_s.unwrap()));
    assert!(close(measured(&r, "request_gap_p95_s"), s.request_gap_p95_s.unwrap()));
    // Every peer sends keep-alives to the three others: out-degree 3 of 3 other peers.
    let share = row(&r, "gn_outdegree_share_2_5s").share.unwrap();
    assert_eq!(share.other_peers, s.peers - 1);
    assert!(close(share.mean, s.neighbor_mean_outdegree));
    assert!(close(measured(&r, "gn_outdegree_share_2_5s"), s.neighbor_mean_outdegree / 3.0));
    assert!(close(measured(&r, "gv_indegree_mean_2s"), s.video_mean_indegree));
    assert!(close(measured(&r, "upload_gini"), s.upload_gini));
    assert!(close(measured(&r, "download_gini"), s.download_gini));
    assert!(measured(&r, "upload_gini") > 0.4, "P1 and P2 upload, P3 and P4 do not");
    assert!(close(measured(&r, "source_max_children"), s.source_max_children as f64));
    assert!(close(measured(&r, "source_peers_ever_fed"), s.peers_ever_fed_by_source as f64));
    assert_eq!(s.peers_ever_fed_by_source, 2);
    assert!(close(measured(&r, "gn_accumulated_full_mesh_300s"), 1.0));
    // Every parent has one child: one out-degree value, no line to fit; said, not guessed.
    let pl = row(&r, "gv_outdegree_powerlaw_2s");
    assert_eq!((pl.measured, pl.answer), (None, None));
    assert!(pl.note.as_deref().unwrap().contains("too few"), "{pl:?}");
}

#[test]
fn the_10s_share_is_computed_even_when_not_asked_for() {
    // P1 sends P2 no keep-alive in seconds 10..13: some 2.5 s snapshots lack that edge, no
    // 10 s snapshot does (as in the paper, the 10 s share is the larger).
    let swarm = Swarm { drop_keepalives: Some((1, 2, 10, 13)), ..Swarm::new() };
    let asked = analysed(&swarm, "paper-10s-asked", &quiet());
    let opts = AnalyzeOptions { neighbor_taus_s: Vec::new(), ..quiet() };
    let r = analysed(&swarm, "paper-10s", &opts);
    assert_eq!(r.neighbor.snapshots.len(), 1, "only tau_N in the report");
    let (s25, s10) = (measured(&r, "gn_outdegree_share_2_5s"), measured(&r, "gn_outdegree_share_10s"));
    assert!(s25 < 1.0 && close(s10, 1.0), "{s25} {s10}");
    let ten = asked.neighbor.snapshots.iter().find(|n| n.tau_s == 10.0).unwrap();
    assert!(close(s10, ten.outdegree.mean / 3.0), "computed and reported 10 s snapshots agree");
    assert!(close(s10, measured(&asked, "gn_outdegree_share_10s")));
    assert!(row(&r, "gn_outdegree_share_10s").note.as_deref().unwrap().contains("over 2 snapshots"));
}

#[test]
fn the_csv_has_the_same_rows() {
    let dir = TempDir::new("paper-csv");
    let r = analysed(&Swarm::new(), "paper-csv-in", &quiet());
    soplab_analyze::output::write_report(&dir.0, &r).unwrap();
    let mut csv = csv::Reader::from_path(dir.0.join("paper_comparison.csv")).unwrap();
    let head: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(head, ["measurement", "description", "paper", "measured", "from_s", "to_s", "note"]);
    let lines: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(lines.len(), r.paper_comparison.len());
    for (l, x) in lines.iter().zip(&r.paper_comparison) {
        assert_eq!((&l[0], &l[1], &l[2]), (x.measurement, x.description, x.paper.to_string().as_str()));
        match x.measured {
            Some(m) => assert!((l[3].parse::<f64>().unwrap() - m).abs() < 1e-6, "{l:?}"),
            None => assert_eq!(&l[3], ""),
        }
        assert!((l[4].parse::<f64>().unwrap() - x.interval_s[0]).abs() < 1e-6);
        assert!((l[5].parse::<f64>().unwrap() - x.interval_s[1]).abs() < 1e-6);
        assert_eq!(&l[6], x.note.as_deref().unwrap_or(""));
    }
    assert_eq!(&lines[2][2], "0.7546");
}

#[test]
fn a_short_trace_reports_the_interval_it_used() {
    let r = analysed(&Swarm::new(), "paper-short", &quiet());
    let dur = r.trace.duration_s;
    assert!(dur < 30.0);
    let snap = [r.interval.from_s, r.interval.to_s];
    for key in ["gn_outdegree_share_2_5s", "gn_outdegree_share_10s", "gv_indegree_mean_2s", "upload_gini"] {
        assert_eq!(row(&r, key).interval_s, snap, "{key}");
    }
    assert_eq!(row(&r, "keepalive_gap_p95_s").interval_s, [0.0, dur]);
    let acc = row(&r, "gn_accumulated_full_mesh_300s");
    assert_eq!(acc.interval_s, [0.0, dur]);
    assert!(acc.note.as_deref().unwrap().contains("only"), "{acc:?}");
    // An interval asked for is the one used.
    let opts = AnalyzeOptions { from_s: Some(5.0), to_s: Some(25.0), ..quiet() };
    let r = analysed(&Swarm::new(), "paper-asked", &opts);
    assert_eq!(row(&r, "gn_outdegree_share_2_5s").interval_s, [5.0, 25.0]);
    assert_eq!(row(&r, "source_max_children").interval_s, [5.0, 25.0]);
}

#[test]
fn a_trace_of_35_minutes_uses_the_papers_interval() {
    // P1 sends P2 no keep-alive before 300 s: the whole trace's G_N misses that edge for
    // 5 minutes, the paper's [300 s, 2100 s] never; and G_N over [0, 300 s] lacks it.
    let swarm = Swarm { seconds: 2_110, drop_keepalives: Some((1, 2, 0, 300)), ..Swarm::new() };
    let r = analysed_in_memory(&swarm, &quiet());
    assert!(r.summary.neighbor_mean_outdegree < 3.0);
    let share = row(&r, "gn_outdegree_share_2_5s");
    assert_eq!(share.interval_s, [300.0, 2100.0]);
    assert!(close(share.measured.unwrap(), 1.0), "{share:?}");
    assert!(close(measured(&r, "gn_outdegree_share_10s"), 1.0));
    // 719 whole 2.5 s snapshots, not 720: the interval starts at the first datagram (t0 + 1 ms),
    // rounded up to the 0.1 s slot.
    assert!(share.note.as_deref().unwrap().contains("over 719 snapshots"), "{share:?}");
    assert_eq!(row(&r, "gv_indegree_mean_2s").interval_s, [300.0, 2100.0]);
    let acc = row(&r, "gn_accumulated_full_mesh_300s");
    assert_eq!(acc.interval_s, [0.0, 300.0]);
    assert!(close(acc.measured.unwrap(), 11.0 / 12.0), "{acc:?}");
    // The source rows keep the analysis interval (the paper counted them over 40 minutes).
    assert_eq!(row(&r, "source_peers_ever_fed").interval_s, [r.interval.from_s, r.interval.to_s]);
    // Asking for an interval overrides the paper's.
    let opts = AnalyzeOptions { from_s: Some(0.0), to_s: Some(2_000.0), ..quiet() };
    let r = analysed_in_memory(&swarm, &opts);
    assert_eq!(row(&r, "gn_outdegree_share_2_5s").interval_s, [0.0, 2_000.0]);
    assert!(measured(&r, "gn_outdegree_share_2_5s") < 1.0);
}

/// Requests of a pair 40 s apart: the gap histogram ends at 30 s, so the 95th percentile is
/// unknown, and the row says so instead of claiming there were no two consecutive requests.
#[test]
fn gaps_beyond_the_histogram_are_reported_as_such() {
    let mut trace = Trace::new(TraceOptions { resolution_us: 100_000, ..TraceOptions::default() });
    let t0 = 1_795_000_000_000_000;
    for k in 0..10 {
        trace.add(&datagram(t0 + i64::from(k) * 40_000_000, peer(1), peer(2), &request(k, k + 1)));
    }
    let ing = Ingest::from_trace(trace);
    let r = analysis::report(&ing, &quiet()).unwrap();
    let row = row(&r, "request_gap_p95_s");
    assert_eq!(row.measured, None);
    let note = row.note.as_deref().unwrap_or_default();
    assert!(note.contains("beyond 30 s") && note.contains("9 of 9 request gaps"), "{note}");
}
