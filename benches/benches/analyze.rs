//! Criterion benchmarks of the trace analyzer (`soplab-analyze`).
//!
//! ```text
//! cargo bench -p soplab-benches --bench analyze -- --warm-up-time 1 --measurement-time 5
//! SOPLAB_BENCH_PCAP=runs/n30/pcap/bridge.pcap cargo bench -p soplab-benches --bench analyze
//! ```
//!
//! The capture is `SOPLAB_BENCH_PCAP` if set, else a synthetic one written once to the temp
//! directory: 40 peers, the source and the tracker for 60 s, every peer sending keep-alives to
//! 20 others each second and getting one 4-block response (31 x 1320 + 840 bytes) a second from
//! one of 4 parents, in Ethernet frames (about 100,000 records, two thirds video).
//!
//! Groups (throughput in records):
//! - `analyze/read`: pcap framing and link/IP/UDP decoding (`Inputs`);
//! - `analyze/ingest`: the same plus the one pass (`Trace::add`: classification, endpoint and
//!   pair ids, per-slot activity, gaps, counters);
//! - `analyze/report`: every figure's data from an ingested trace (snapshots at 6 lengths,
//!   accumulated graphs, fits, load), per run.
//!
//! Target (docs/PERFORMANCE.md): ingest at >= 10x `tcpdump -n -r` on one core.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use soplab_analyze::analysis::{self, AnalyzeOptions};
use soplab_analyze::capture::{Datagram, Dedup, Inputs};
use soplab_analyze::trace::{Trace, TraceOptions};

fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, class: u16, len: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (20 + 8 + len) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let ulen = (8 + len) as u16;
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    let mut payload = vec![0u8; len];
    payload[..2].copy_from_slice(&class.to_be_bytes());
    payload[2] = 1;
    payload[3] = 7;
    f.extend_from_slice(&payload);
    f
}

fn synthetic() -> PathBuf {
    let path = std::env::temp_dir().join(format!("soplab-bench-analyze-{}.pcap", std::process::id()));
    let peers = 40u8;
    let ip = |i: u8| [198, 18, 1, i];
    let mut recs: Vec<(i64, Vec<u8>)> = Vec::new();
    let t0 = 1_795_000_000_000_000i64;
    for sec in 0..60i64 {
        for a in 1..=peers {
            for j in 1..=20u8 {
                let b = (a + j - 1) % peers + 1;
                let at = t0 + sec * 1_000_000 + i64::from(a) * 10_000 + i64::from(j) * 100;
                recs.push((at, frame(ip(a), ip(b), 3908, 3908, 0x0002, 42)));
            }
            let parent = if a <= 4 { [198, 18, 0, 2] } else { ip((a + sec as u8) % 4 + 1) };
            let sport = if a <= 4 { 3901 } else { 3908 };
            let at = t0 + sec * 1_000_000 + 500_000 + i64::from(a) * 5_000;
            recs.push((at, frame(ip(a), parent, 3908, sport, 0x0004, 46)));
            for k in 0..32 {
                let len = if k == 31 { 840 } else { 1320 };
                recs.push((at + 500 + k * 20, frame(parent, ip(a), sport, 3908, 0x0010, len)));
            }
        }
        recs.push((t0 + sec * 1_000_000, frame(ip(1), [198, 18, 0, 1], 3908, 3900, 0x0020, 20)));
        recs.push((t0 + sec * 1_000_000 + 100, frame([198, 18, 0, 1], ip(1), 3900, 3908, 0x0022, 21 + 6 * 40)));
    }
    recs.sort_by_key(|r| r.0);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("temp file"));
    let mut header = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 262_144, 1] {
        header.extend_from_slice(&w.to_le_bytes());
    }
    out.write_all(&header).expect("write");
    for (ts, f) in &recs {
        for w in [(ts / 1_000_000) as u32, (ts % 1_000_000) as u32, f.len() as u32, f.len() as u32] {
            out.write_all(&w.to_le_bytes()).expect("write");
        }
        out.write_all(f).expect("write");
    }
    out.flush().expect("write");
    path
}

fn count(path: &PathBuf) -> u64 {
    let mut inputs = Inputs::open(std::slice::from_ref(path), Dedup::Off, 50_000).expect("capture");
    let mut d = Datagram::default();
    while inputs.next_datagram(&mut d) {}
    inputs.file_stats()[0].records
}

fn bench(c: &mut Criterion) {
    let (path, temp) = match std::env::var_os("SOPLAB_BENCH_PCAP") {
        Some(p) => (PathBuf::from(p), false),
        None => (synthetic(), true),
    };
    let records = count(&path);
    let mut g = c.benchmark_group("analyze");
    g.throughput(Throughput::Elements(records));
    g.bench_function("read", |b| {
        b.iter(|| {
            let mut inputs = Inputs::open(std::slice::from_ref(&path), Dedup::Off, 50_000).expect("capture");
            let mut d = Datagram::default();
            let mut n = 0u64;
            while inputs.next_datagram(&mut d) {
                n += u64::from(d.len);
            }
            black_box(n)
        })
    });
    g.bench_function("ingest", |b| {
        b.iter(|| {
            let mut inputs = Inputs::open(std::slice::from_ref(&path), Dedup::Off, 50_000).expect("capture");
            let mut trace = Trace::new(TraceOptions::default());
            let mut d = Datagram::default();
            while inputs.next_datagram(&mut d) {
                trace.add(&d);
            }
            black_box(trace.pairs.len())
        })
    });
    let opts = AnalyzeOptions { progress: false, ..AnalyzeOptions::default() };
    let ing = analysis::ingest(std::slice::from_ref(&path), &opts, &[None]).expect("ingest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("report", |b| b.iter(|| black_box(analysis::report(&ing, &opts).expect("report").summary.peers)));
    g.finish();
    if temp {
        let _ = std::fs::remove_file(&path);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
