//! The capture reader and the analysis (`soplab analyze` without its files) on any bytes: no
//! panic, an end (libFuzzer's `-timeout`) and bounded memory (`-rss_limit_mb`,
//! `-malloc_limit_mb`), whatever the timestamps, lengths and garbage say.
//!
//! The first byte picks how the rest becomes captures:
//! - 0: the bytes are one file as they are (pcap, pcapng, or neither, by the magic number);
//! - 1: legacy pcap framing around records the bytes describe (byte order, nanoseconds, link
//!   type, snapshot length, times);
//! - 2: pcapng framing: up to three interfaces with the bytes' if_tsresol and if_tsoffset,
//!   enhanced packets with 64-bit times, simple packets, unknown blocks;
//! - 3: two files of modes 1 and 2, split where a byte says, merged with de-duplication.
//!
//! In modes 1-3 a record is either the bytes as a frame or a UDP datagram the harness builds
//! (IPv4 between eight endpoints, a SopCast size from the classification table, its payload cut
//! to the bytes given), so that the analysis past the reader is reached.
//!
//! Checked besides: the counts add up, and what the analysis keeps is O(records): the heap
//! still live once the report is made (the reader's buffers are gone by then), the activity
//! bytes, and the snapshots each per-snapshot series holds.

#![no_main]

use std::io::{Cursor, Write};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use soplab_analyze::analysis::{self, AnalyzeOptions, Report};
use soplab_analyze::capture::{CaptureFile, Dedup, Inputs};
use soplab_fuzz::alloc;

/// SopCast sizes (Tang et al., Table 1, and soplab's), then a few others.
const SIZES: [u16; 16] = [42, 46, 1320, 1200, 1080, 377, 52, 80, 28, 20, 27, 45, 0, 7, 1500, 65507];
/// Link types the reader decodes, then one it does not.
const LINKS: [u32; 9] = [101, 1, 113, 276, 0, 228, 229, 108, 147];

/// Reads the fuzz bytes front to back; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One record's frame: raw bytes, or a UDP datagram built from the bytes, under `link`'s header.
fn frame(b: &mut Bytes<'_>, link: u32) -> Vec<u8> {
    let h = b.u8();
    if h & 3 == 0 {
        let n = usize::from(b.u8());
        return b.take(n).to_vec();
    }
    let (src, dst) = (b.u8(), b.u8());
    let size = SIZES[usize::from(h >> 4)];
    let captured = usize::from(h >> 2 & 3) * 4;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 1, src & 7, 198, 18, 1, dst & 7];
    let total = 28u16.saturating_add(size);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4] = src;
    let port: u16 = if h & 3 == 3 { 53 } else { 3908 };
    ip.extend_from_slice(&port.to_be_bytes());
    ip.extend_from_slice(&3908u16.to_be_bytes());
    ip.extend_from_slice(&8u16.saturating_add(size).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(b.take(captured.min(usize::from(size))));
    let mut f = match link {
        1 => vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00],
        113 => vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00],
        276 => vec![0x08, 0, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0],
        0 => 2u32.to_le_bytes().to_vec(),
        108 => 2u32.to_be_bytes().to_vec(),
        _ => Vec::new(),
    };
    f.extend_from_slice(&ip);
    f
}

/// Seconds to add: mostly small steps, sometimes up to a day or anything.
fn step(b: &mut Bytes<'_>) -> u32 {
    match b.u8() {
        0..=199 => 0,
        200..=239 => u32::from(b.u8()),
        240..=251 => u32::from(b.u16()) * 2,
        _ => b.u32(),
    }
}

/// Mode 1: a legacy pcap.
fn legacy(b: &mut Bytes<'_>, max_records: usize) -> Vec<u8> {
    let opts = b.u8();
    let (big, nanos) = (opts & 1 != 0, opts & 2 != 0);
    let link = LINKS[usize::from(opts >> 2) % LINKS.len()];
    let snaplen = if opts & 0x80 != 0 { b.u32() } else { 262_144 };
    let w32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
    let mut v = Vec::new();
    w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w32(&mut v, if big { 0x0002_0004 } else { 0x0004_0002 });
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, snaplen);
    w32(&mut v, link);
    let mut sec = b.u32();
    for _ in 0..max_records {
        if b.is_empty() {
            break;
        }
        sec = sec.wrapping_add(step(b));
        let frac = u32::from(b.u16()) * if nanos { 15_259 } else { 15 };
        let f = frame(b, link);
        let orig = if b.u8() == 0xff { b.u32() } else { f.len() as u32 };
        for x in [sec, frac, f.len() as u32, orig] {
            w32(&mut v, x);
        }
        v.extend_from_slice(&f);
    }
    v
}

fn block(out: &mut Vec<u8>, t: u32, body: &[u8]) {
    let len = (12 + body.len().next_multiple_of(4)) as u32;
    out.extend_from_slice(&t.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + body.len().next_multiple_of(4) - body.len(), 0);
    out.extend_from_slice(&len.to_le_bytes());
}

/// Mode 2: a pcapng file.
fn pcapng(b: &mut Bytes<'_>, max_records: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let n = 1 + b.u8() % 3;
    let mut links = Vec::new();
    for _ in 0..n {
        let opts = b.u8();
        let link = LINKS[usize::from(opts) % LINKS.len()];
        links.push(link);
        let mut idb = (link as u16).to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        if opts & 0x10 != 0 {
            idb.extend_from_slice(&[9, 0, 1, 0, b.u8(), 0, 0, 0]);
        }
        if opts & 0x20 != 0 {
            idb.extend_from_slice(&[14, 0, 8, 0]);
            let offset = if opts & 0x40 != 0 { b.u64() } else { u64::from(b.u16()) };
            idb.extend_from_slice(&offset.to_le_bytes());
        }
        if opts & 0x30 != 0 {
            idb.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(&mut out, 1, &idb);
    }
    let mut ts = b.u64();
    for _ in 0..max_records {
        if b.is_empty() {
            break;
        }
        let kind = b.u8();
        let iface = u32::from(kind % (n + 1));
        ts = match kind >> 6 {
            0 => ts.wrapping_add(u64::from(b.u16())),
            1 => ts.wrapping_add(u64::from(b.u32())),
            2 => b.u64(),
            _ => ts.wrapping_sub(u64::from(b.u16())),
        };
        let f = frame(b, links.get(iface as usize).copied().unwrap_or(101));
        let mut body = iface.to_le_bytes().to_vec();
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(f.len() as u32).to_le_bytes());
        body.extend_from_slice(&(f.len() as u32).to_le_bytes());
        body.extend_from_slice(&f);
        match kind & 0x30 {
            0x30 if kind & 8 != 0 => block(&mut out, 3, &body[16..]),
            0x30 => block(&mut out, 0x0bad, &body[..8]),
            _ => block(&mut out, 6, &body),
        }
    }
    out
}

/// The analysis options, some from the bytes.
fn options(b: &mut Bytes<'_>) -> AnalyzeOptions {
    let o = b.u8();
    let mut opts = AnalyzeOptions { progress: false, ..AnalyzeOptions::default() };
    if o & 1 != 0 {
        opts.from_s = Some(f64::from(b.u16() as i16));
    }
    if o & 2 != 0 {
        opts.to_s = Some(f64::from(b.u16()) * 4.0);
    }
    if o & 4 != 0 {
        opts.resolution_s = 0.5;
        opts.tau_neighbor_s = 2.5;
        opts.tau_video_s = 2.0 + 0.5 * f64::from(b.u8() % 4);
        opts.neighbor_taus_s = vec![10.0];
        opts.video_taus_s = vec![1.0, 100.0];
    }
    opts
}

fn open(name: &str, bytes: Vec<u8>, input: u16) -> Option<CaptureFile> {
    let n = bytes.len() as u64;
    CaptureFile::from_reader(Cursor::new(bytes), Path::new(name), n, input).ok()
}

/// A writer that takes `left` bytes and then fails: the series' serialisation is checked
/// without paying for long dense series (or the whole report) in every run.
struct Budget {
    left: usize,
}

impl Write for Budget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other("budget"));
        }
        self.left -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serialising one value or another through one closure.
mod erased {
    pub trait Ser {
        fn write(&self, w: &mut super::Budget);
    }
    impl<T: serde::Serialize> Ser for T {
        fn write(&self, w: &mut super::Budget) {
            let _ = serde_json::to_writer(w, self);
        }
    }
}

fn check(r: &Report) {
    let datagrams = r.trace.datagrams;
    assert!(r.trace.end_us >= r.trace.start_us);
    assert!(
        r.trace.activity_bytes <= 256 * (datagrams + r.trace.excluded_datagrams),
        "activity {} bytes for {datagrams} datagrams",
        r.trace.activity_bytes
    );
    let json = |s: &dyn erased::Ser| s.write(&mut Budget { left: 512 });
    for n in &r.neighbor.snapshots {
        assert!(n.edges_by_snapshot.stored().len() as u64 <= datagrams);
        assert!(n.outdegree.samples <= datagrams && n.edges_by_snapshot.len() == n.snapshots);
        json(&n.edges_by_snapshot);
        json(&n.mean_by_snapshot);
    }
    for v in &r.video.snapshots {
        assert!(v.edges_by_snapshot.stored().len() as u64 <= datagrams);
        assert!(v.indegree.samples <= datagrams && v.outdegree.samples <= datagrams);
        json(&v.edges_by_snapshot);
    }
    assert!(r.load.source.by_snapshot.stored().len() as u64 <= datagrams);
    json(&r.load.source.by_snapshot);
    let _ = soplab_analyze::paper::table(&r.paper_comparison);
}

/// At most this many records per built file (a run must stay short).
const RECORDS: usize = 4096;

/// Heap the trace and the report may hold: a fixed part (gap histograms, fits, 601 points of
/// Fig. 4, the ports table) and a part per record (an endpoint, a pair, its activity).
const HEAP_FIXED: isize = 1 << 20;
const HEAP_PER_RECORD: isize = 2048;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fuzz_target!(|data: &[u8]| {
    let before = alloc::live();
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut b = Bytes(rest);
    let opts = options(&mut b);
    let files: Vec<CaptureFile> = match mode % 4 {
        0 => open("raw", b.0.to_vec(), 0).into_iter().collect(),
        1 => open("legacy.pcap", legacy(&mut b, RECORDS), 0).into_iter().collect(),
        2 => open("ng.pcapng", pcapng(&mut b, RECORDS), 0).into_iter().collect(),
        _ => {
            let split = usize::from(b.u16()).min(b.0.len());
            let mut first = Bytes(&b.0[..split]);
            let mut second = Bytes(&b.0[split..]);
            let mut files: Vec<CaptureFile> = open("a.pcap", legacy(&mut first, RECORDS), 0).into_iter().collect();
            let input = files.len() as u16;
            files.extend(open("b.pcapng", pcapng(&mut second, RECORDS), input));
            files
        }
    };
    let Ok(inputs) = Inputs::new(files, Dedup::Auto, 50_000) else { return };
    let Ok(ing) = analysis::ingest_inputs(inputs, &opts) else { return };
    let read: u64 = ing.files.iter().map(|f| f.udp).sum();
    assert_eq!(ing.merge.datagrams + ing.merge.duplicates, ing.merge.datagrams_read);
    assert!(ing.merge.datagrams_read <= read);
    for f in &ing.files {
        assert!(f.udp + f.bad_timestamps <= f.records, "{f:?}");
    }
    let records: u64 = ing.files.iter().map(|f| f.records).sum();
    if let Ok(report) = analysis::report(&ing, &opts) {
        check(&report);
        let held = alloc::live() - before;
        let bound = HEAP_FIXED + HEAP_PER_RECORD * records as isize;
        assert!(held <= bound, "{held} heap bytes held after the report of {records} records (bound {bound})");
    }
});
