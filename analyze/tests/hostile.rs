//! The analyzer on hostile or odd captures: timestamps far apart (memory and time must follow
//! the file, not the span it claims), timestamps whose arithmetic overflows, and garbage that
//! once made the reader spin. The heavy cases run in a child process under an address-space
//! limit and a time limit, so that a regression fails the test instead of the machine.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use soplab_analyze::analysis::AnalyzeOptions;
use soplab_analyze::capture::{Datagram, Dedup, Inputs};
use soplab_analyze::cli;

const PAIRS: [(usize, usize); 4] = [(1, 2), (2, 1), (3, 4), (4, 3)];

fn quiet() -> AnalyzeOptions {
    AnalyzeOptions { progress: false, ..AnalyzeOptions::default() }
}

fn keepalive_frame(a: usize, b: usize, seq: u32) -> Vec<u8> {
    ip_udp(peer(a), peer(b), &keepalive(seq))
}

/// 800 keep-alives between four pairs, each 86,000 s after the one before (under the reader's
/// one-day check for a plausible record): 69 MB of slots at 100 ms, 800 datagrams.
fn steps_pcap() -> Vec<u8> {
    let t0 = 1_000_000_000_000_000i64;
    let recs: Vec<Rec> = (0..800)
        .map(|i| {
            let (a, b) = PAIRS[i % 4];
            Rec::new(t0 + i as i64 * 86_000_000_000, keepalive_frame(a, b, i as u32))
        })
        .collect();
    pcap(101, &recs, false, false)
}

/// Analyses `path` into `out` with plots, as `soplab analyze` does; returns the report and the
/// size of report.json.
fn analyze(path: &Path, out: &Path) -> (soplab_analyze::analysis::Report, u64) {
    let done = cli::analyze_into(&[path.to_path_buf()], out, quiet(), true).unwrap();
    let json = std::fs::metadata(out.join("report.json")).unwrap().len();
    (done.report, json)
}

#[test]
fn keepalives_a_day_apart_cost_what_the_file_holds() {
    if !bounded_child("keepalives_a_day_apart_cost_what_the_file_holds", 1024, 300) {
        return;
    }
    let dir = TempDir::new("steps");
    let bytes = steps_pcap();
    let p = dir.file("steps.pcap", &bytes);
    let (r, json) = analyze(&p, &dir.0.join("out"));
    // 799 steps of 86,000 s = 687,140,000 slots of 100 ms.
    let span_slots: u64 = 799 * 860_000;
    assert_eq!(r.trace.datagrams, 800);
    assert_eq!(r.summary.peers, 4);
    let n = &r.neighbor.snapshots[0];
    assert_eq!(n.tau_s, 2.5);
    assert_eq!(n.snapshots, span_slots / 25, "whole 2.5 s snapshots from the first datagram to the last");
    // Each keep-alive is alone in its snapshot (the last one's snapshot is not whole).
    assert_eq!((n.outdegree.samples, n.outdegree.mean, n.outdegree.max), (799, 1.0, 1));
    assert_eq!(r.neighbor.links_ever, 4);
    assert_eq!(r.video.links_ever, 0);
    // What is stored follows the datagrams, not the span.
    assert!(r.trace.activity_bytes <= 800 * 64, "activity: {} bytes", r.trace.activity_bytes);
    assert!(json <= 64 * bytes.len() as u64, "report.json: {json} bytes for a {}-byte capture", bytes.len());
}

/// Three keep-alives of one pair, the second 2^62 us - 21 s after the first (146,000 years),
/// the third 10 s later: that span must cost no more than three keep-alives a second apart.
#[test]
fn a_span_of_146000_years_costs_three_keepalives() {
    if !bounded_child("a_span_of_146000_years_costs_three_keepalives", 1024, 300) {
        return;
    }
    let dir = TempDir::new("far");
    let first = 1_000_000i64;
    let second = (1i64 << 62) - 20_000_000;
    let last = second + 10_000_000;
    let packets: Vec<(u32, Rec)> = [first, second, last]
        .iter()
        .enumerate()
        .map(|(i, &ts)| (0, Rec::new(ts, frame(101, &keepalive_frame(1, 2, i as u32)))))
        .collect();
    let bytes = pcapng(&[(101, None)], &packets);
    let p = dir.file("far.pcapng", &bytes);
    let (r, json) = analyze(&p, &dir.0.join("out"));
    assert_eq!(r.trace.datagrams, 3);
    assert_eq!(r.trace.end_us - r.trace.start_us, last - first);
    let n = &r.neighbor.snapshots[0];
    assert_eq!(n.snapshots, ((last - first) / 2_500_000) as u64);
    assert_eq!(n.outdegree.samples, 2, "the first two keep-alives are in whole snapshots");
    assert!(r.trace.activity_bytes <= 3 * 3 * 64, "activity: {} bytes", r.trace.activity_bytes);
    // Fixed-size parts only: gap histograms, the fits, at most 601 points of Fig. 4.
    assert!(json <= 256 * 1024, "report.json: {json} bytes");
}

/// Video between two peers at 1 s and 146,000 years later: two sessions of each client, the
/// client layer's partners per snapshot must not walk (or allocate) the silence between them.
/// Found by the `analyze` fuzz target: a vector over every 1 s snapshot from a client's first
/// session to its last asked for 286 GB.
#[test]
fn client_sessions_146000_years_apart_cost_two_sessions() {
    if !bounded_child("client_sessions_146000_years_apart_cost_two_sessions", 1024, 300) {
        return;
    }
    let dir = TempDir::new("far-clients");
    let second = (1i64 << 62) - 20_000_000;
    let packets: Vec<(u32, Rec)> = [1_000_000i64, 1_500_000, second, second + 500_000]
        .iter()
        .enumerate()
        .map(|(i, &ts)| {
            let (a, b) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
            (0, Rec::new(ts, frame(101, &ip_udp(peer(a), peer(b), &video(i as u32, 1, 1)[0]))))
        })
        .collect();
    let bytes = pcapng(&[(101, None)], &packets);
    let p = dir.file("far.pcapng", &bytes);
    // The source is named (elsewhere): neither peer is taken for it from the traffic.
    let opts = AnalyzeOptions { source: Some(peer(9)), ..quiet() };
    let r = cli::analyze_into(&[p], &dir.0.join("out"), opts, true).unwrap().report;
    let c = &r.clients;
    assert_eq!((c.clients, c.sessions), (2, 4), "two sessions of each client");
    // A snapshot with the partner at each session's start (the last one's is not whole).
    assert!(c.partners.samples <= 4 && c.partners.max == 1.0, "{:?}", c.partners);
}

/// The capture: the second keep-alive 2^62 us after the first, beyond the timestamps the
/// analyzer takes (2^62 us after 1970): it and the third are dropped and counted, not wrapped.
#[test]
fn keepalives_2_62_us_apart_are_dropped_and_counted() {
    if !bounded_child("keepalives_2_62_us_apart_are_dropped_and_counted", 1024, 120) {
        return;
    }
    let dir = TempDir::new("far62");
    let t0 = 1_700_000_000_000_000i64;
    let raw = [t0 as u64, t0 as u64 + (1 << 62), t0 as u64 + (1 << 62) + 1_000_000];
    let frames: Vec<Vec<u8>> = (0..3).map(|i| keepalive_frame(1, 2, i)).collect();
    let packets: Vec<(u32, u64, &[u8], u32)> =
        raw.iter().zip(&frames).map(|(&ts, f)| (0, ts, &f[..], f.len() as u32)).collect();
    let iface = NgIface { linktype: 101, tsresol: None, tsoffset: None };
    let p = dir.file("far62.pcapng", &pcapng_raw(&[iface], &packets));
    let (r, _) = analyze(&p, &dir.0.join("out"));
    assert_eq!(r.inputs[0].records, 3);
    assert_eq!(r.inputs[0].bad_timestamps, 2);
    assert_eq!(r.trace.datagrams, 1);
    assert_eq!(r.trace.start_us, t0);
}

/// if_tsresol in powers of two and of ten, if_tsoffset: computed exactly, and a time that does
/// not fit is dropped and counted.
#[test]
fn pcapng_time_units_and_offsets_are_checked() {
    let dir = TempDir::new("tsresol");
    let f = keepalive_frame(1, 2, 1);
    let iface = |tsresol: Option<u8>, tsoffset: Option<i64>| NgIface { linktype: 101, tsresol, tsoffset };
    let ifaces = [
        iface(Some(0x80 | 20), None),            // 2^20 units per second
        iface(Some(19), None),                   // 10^19 units per second
        iface(None, Some(i64::MAX)),             // an offset in seconds that overflows microseconds
        iface(Some(20), None),                   // 10^20: not a u64
        iface(None, Some(-10)),                  // before 1970
        iface(Some(0x80 | 63), Some(1_000_000)), // 2^63 units per second
        iface(Some(0x80 | 64), None),            // 2^64: not a u64
    ];
    let packets: Vec<(u32, u64, &[u8], u32)> =
        [(0, 5 * (1 << 20) + (1 << 19)), (1, u64::MAX), (2, 1), (3, 1), (4, 1_000_000), (5, u64::MAX), (6, 1)]
            .iter()
            .map(|&(i, ts)| (i, ts, &f[..], f.len() as u32))
            .collect();
    let p = dir.file("units.pcapng", &pcapng_raw(&ifaces, &packets));
    let mut inputs = Inputs::open(&[p], Dedup::Off, 50_000).unwrap();
    let mut got = Vec::new();
    let mut d = Datagram::default();
    while inputs.next_datagram(&mut d) {
        got.push(d.ts_us);
    }
    let stats = &inputs.file_stats()[0];
    assert_eq!(stats.records, 7);
    assert_eq!(stats.bad_timestamps, 4, "offset overflow, 10^20, before 1970, 2^64");
    // 5.5 s; 1.8446744073709551615 s; 1,000,000 s + 1.999999999999999999891 s.
    assert_eq!(got, vec![5_500_000, 1_844_674, 1_000_001_999_999]);
}

/// A 16 MiB snapshot length, one good record, 16 bytes of garbage, then a record header that
/// claims 2 MiB (more than the read buffer): the reader once settled on that header and spun.
#[test]
fn resync_on_a_record_longer_than_the_buffer_ends() {
    let dir = TempDir::new("spin");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&(16u32 << 20).to_le_bytes());
    bytes.extend_from_slice(&101u32.to_le_bytes());
    let good = keepalive_frame(1, 2, 1);
    for x in [1_000_000_000u32, 0, good.len() as u32, good.len() as u32] {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.extend_from_slice(&good);
    bytes.extend_from_slice(&[0xff; 16]);
    for x in [1_000_000_000u32, 0, 2 << 20, 2 << 20] {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.resize(1_500_000, 0);
    let p = dir.file("spin.pcap", &bytes);
    let stats = within(Duration::from_secs(60), move || {
        let mut inputs = Inputs::open(&[p], Dedup::Off, 50_000).unwrap();
        let mut n = 0;
        let mut d = Datagram::default();
        while inputs.next_datagram(&mut d) {
            n += 1;
        }
        (n, inputs.file_stats().remove(0))
    });
    let (n, stats) = stats;
    assert_eq!(n, 1, "the good record");
    assert!(stats.garbage_records >= 1);
    assert!(stats.garbage_bytes >= 16 && stats.garbage_bytes <= bytes.len() as u64, "{stats:?}");
}

/// Runs `f` on a thread and fails when it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|e| panic!("did not finish within {limit:?}: {e}"))
}

/// Intervals and lengths from options at the ends of what a float says: the arithmetic on times
/// saturates or is done wide, and the analysis ends with a report or an error, never a panic.
#[test]
fn extreme_intervals_do_not_overflow() {
    let dir = TempDir::new("extreme");
    // Near 1970, so that an interval reaching far back or forward meets the ends of i64.
    let recs: Vec<Rec> = (0..40).map(|i| Rec::new(i * 300_000, keepalive_frame(1 + (i as usize % 2), 2, 0))).collect();
    let p = dir.file("early.pcap", &pcap(101, &recs, false, false));
    for (from, to) in [(Some(1e300), None), (None, Some(-1e300)), (Some(-1e300), Some(1e300)), (Some(f64::NAN), None)] {
        for accumulate in [vec![-1e300], vec![1e300, 5.0]] {
            let opts = AnalyzeOptions { from_s: from, to_s: to, accumulate_s: accumulate, ..quiet() };
            let ing = soplab_analyze::analysis::ingest(std::slice::from_ref(&p), &opts, &[None]).unwrap();
            if let Ok(r) = soplab_analyze::analysis::report(&ing, &opts) {
                assert!(r.neighbor.snapshots.iter().all(|n| n.outdegree.samples <= 40));
            }
        }
    }
}

/// Found by the `analyze` fuzz target: a pcapng process information block (type 0x80000001)
/// whose length is under 12 bytes made pcap-parser 0.17 subtract past zero. Every pcapng block
/// is at least 12 bytes (type, length, length): a shorter one is garbage, and the packets after
/// it are read.
#[test]
fn a_pcapng_block_shorter_than_its_header_is_garbage() {
    let dir = TempDir::new("shortblock");
    let f = keepalive_frame(1, 2, 1);
    let iface = NgIface { linktype: 101, tsresol: None, tsoffset: None };
    let packets: Vec<(u32, u64, &[u8], u32)> =
        (0..3).map(|i| (0, 1_700_000_000_000_000 + i * 1_000_000, &f[..], f.len() as u32)).collect();
    let good = pcapng_raw(&[iface], &packets);
    // After the second packet: a process information block claiming 8 bytes.
    let epb = (good.len() - 48) / 3;
    let cut = 48 + 2 * epb;
    for len in [0u32, 4, 8] {
        let mut bytes = good[..cut].to_vec();
        bytes.extend_from_slice(&0x8000_0001u32.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&good[cut..]);
        let p = dir.file("short.pcapng", &bytes);
        let mut inputs = Inputs::open(&[p], Dedup::Off, 50_000).unwrap();
        let mut n = 0;
        let mut d = Datagram::default();
        while inputs.next_datagram(&mut d) {
            n += 1;
        }
        let stats = &inputs.file_stats()[0];
        assert_eq!(n, 3, "length {len}: {stats:?}");
        assert_eq!((stats.garbage_records, stats.garbage_bytes, stats.truncated), (1, 8, false), "length {len}");
    }
}

/// Found by the `analyze` fuzz target: a record out of order (15 s, read after 30 s) that
/// falls between two runs of a pair's activity, and an interval that starts 6.4 s in and holds
/// no whole 100 s snapshot: the empty grid's search of the out-of-order words panicked.
#[test]
fn out_of_order_records_and_an_empty_grid() {
    let dir = TempDir::new("emptygrid");
    let t0 = 1_795_000_000_000_000i64;
    let recs: Vec<Rec> =
        [0, 30_000_000, 15_000_000].iter().map(|&dt| Rec::new(t0 + dt, keepalive_frame(1, 2, 0))).collect();
    let p = dir.file("late.pcap", &pcap(101, &recs, false, false));
    let opts = AnalyzeOptions { from_s: Some(6.4), neighbor_taus_s: vec![100.0], ..quiet() };
    let ing = soplab_analyze::analysis::ingest(std::slice::from_ref(&p), &opts, &[None]).unwrap();
    assert_eq!(ing.files[0].out_of_order, 1);
    let r = soplab_analyze::analysis::report(&ing, &opts).unwrap();
    let n100 = r.neighbor.snapshots.iter().find(|n| n.tau_s == 100.0).unwrap();
    assert_eq!((n100.snapshots, n100.outdegree.samples), (0, 0));
    // 2.5 s snapshots from 6.4 s to 30 s: 15 s is in a whole one, 30 s is not.
    let n = &r.neighbor.snapshots[0];
    assert_eq!((n.snapshots, n.outdegree.samples), (9, 1));
}
