//! Several capture files as one time-ordered stream of datagrams, each datagram once.
//!
//! Files are merged by timestamp (a k-way merge: each file is read in its own order, and the
//! earliest pending datagram of all files comes next). A datagram captured at several vantage
//! points (at its sender, at its receiver, on the bridge between them) is kept once: the
//! de-duplication key is a hash of its addresses, ports, UDP length and first 32 payload bytes,
//! and a datagram whose key was seen less than the window (default
//! 50 ms) before is dropped. See docs/ANALYZE.md for why that key and that window.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::decode::{Datagram, HEAD};
use super::reader::{CaptureFile, FileStats};
use crate::error::{Error, Result};

/// When to drop datagrams seen twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dedup {
    /// On when there are several files, or one file of Linux cooked captures (`-i any`, which
    /// can see a datagram leave one interface and enter another).
    Auto,
    On,
    Off,
}

/// Counts of the merge.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeStats {
    pub dedup: bool,
    pub dedup_window_us: i64,
    /// Datagrams out of all files (before de-duplication).
    pub datagrams_read: u64,
    /// Datagrams dropped as copies of one already seen.
    pub duplicates: u64,
    /// Duplicates per input file.
    pub duplicates_per_input: Vec<u64>,
    /// Datagrams passed on.
    pub datagrams: u64,
}

/// Recently seen keys in two generations of one window each: a key is a duplicate when it is
/// in either generation within the window.
struct Recent {
    window: i64,
    gen_start: i64,
    current: FxHashMap<u64, i64>,
    previous: FxHashMap<u64, i64>,
}

impl Recent {
    fn new(window: i64) -> Recent {
        Recent { window, gen_start: i64::MIN, current: FxHashMap::default(), previous: FxHashMap::default() }
    }

    /// True when `key` was seen within the window before `ts` (and records it otherwise).
    #[inline]
    fn seen(&mut self, key: u64, ts: i64) -> bool {
        if ts >= self.gen_start.saturating_add(self.window) {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.gen_start = ts;
        }
        let hit = |m: &FxHashMap<u64, i64>| m.get(&key).is_some_and(|&t| (ts - t).abs() <= self.window);
        if hit(&self.current) || hit(&self.previous) {
            return true;
        }
        self.current.insert(key, ts);
        false
    }
}

/// Payload bytes below which the IPv4 identification joins the key.
const FEW_BYTES: u8 = 8;

/// Mixes 64-bit words into one well-spread 64-bit value: the key stands for the datagram, so
/// unlike a hash map's hash every word must reach every bit (FxHasher's multiply-add would not).
#[inline]
fn mix(words: &[u64]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &w in words {
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    }
    h ^ (h >> 32)
}

/// The de-duplication key of a datagram: addresses, ports, UDP length and the first 32 payload
/// bytes. The IPv4 identification is left out (captures written by a node itself, such as
/// soplab's `--self-capture` taps, number their own IP headers, so the sender's and the
/// receiver's copy differ there) unless fewer than 8 payload bytes were captured.
#[inline]
pub fn dedup_key(d: &Datagram) -> u64 {
    let mut head = [0u8; HEAD];
    head[..usize::from(d.head_len)].copy_from_slice(&d.head[..usize::from(d.head_len)]);
    let w = |i: usize| u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    mix(&[
        d.src.ip as u64,
        (d.src.ip >> 64) as u64,
        d.dst.ip as u64,
        (d.dst.ip >> 64) as u64,
        (u64::from(d.src.port) << 48) | (u64::from(d.dst.port) << 32) | u64::from(d.len),
        if d.head_len < FEW_BYTES { u64::from(d.ip_id) } else { 0 },
        w(0),
        w(1),
        w(2),
        w(3),
    ])
}

/// All input files as one stream.
pub struct Inputs {
    files: Vec<CaptureFile>,
    heap: BinaryHeap<Reverse<(i64, u16)>>,
    pending: Vec<Datagram>,
    primed: bool,
    mode: Dedup,
    recent: Option<Recent>,
    window_us: i64,
    /// Per input, an address whose datagrams are counted before de-duplication.
    observe: Vec<Option<u128>>,
    observed: Vec<(u64, u64)>,
    pub stats: MergeStats,
}

impl Inputs {
    /// Opens every file; fails on the first that cannot be opened or is not a capture.
    pub fn open(paths: &[PathBuf], mode: Dedup, window_us: i64) -> Result<Inputs> {
        if paths.len() > usize::from(u16::MAX) {
            return Err(Error::Option(format!("{} input files: at most 65535 at once", paths.len())));
        }
        let files =
            paths.iter().enumerate().map(|(i, p)| CaptureFile::open(p, i as u16)).collect::<Result<Vec<_>>>()?;
        Inputs::new(files, mode, window_us)
    }

    /// Captures already opened (for example with [`CaptureFile::from_reader`]), file `i`
    /// opened as input `i`.
    pub fn new(files: Vec<CaptureFile>, mode: Dedup, window_us: i64) -> Result<Inputs> {
        let n = files.len();
        if n > usize::from(u16::MAX) {
            return Err(Error::Option(format!("{n} input files: at most 65535 at once")));
        }
        Ok(Inputs {
            files,
            heap: BinaryHeap::with_capacity(n),
            pending: vec![Datagram::default(); n],
            primed: false,
            mode,
            recent: None,
            window_us,
            observe: Vec::new(),
            observed: vec![(0, 0); n],
            stats: MergeStats { dedup_window_us: window_us, duplicates_per_input: vec![0; n], ..MergeStats::default() },
        })
    }

    /// Bytes consumed of all files.
    pub fn consumed(&self) -> u64 {
        self.files.iter().map(CaptureFile::consumed).sum()
    }

    /// Total size of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.stats.file_bytes).sum()
    }

    /// Per-file statistics.
    pub fn file_stats(&self) -> Vec<FileStats> {
        self.files.iter().map(|f| f.stats.clone()).collect()
    }

    /// Count, per input, the datagrams (before de-duplication) with `ips[i]` as source or
    /// destination address: a capture taken at one host should hold nothing else.
    pub fn set_observer(&mut self, ips: Vec<Option<u128>>) {
        self.observe = ips;
    }

    /// Per input with an observed address: (datagrams to or from it, all datagrams).
    pub fn observed(&self) -> Vec<Option<(u64, u64)>> {
        (0..self.files.len()).map(|i| self.observe.get(i).copied().flatten().map(|_| self.observed[i])).collect()
    }

    fn prime(&mut self) {
        self.primed = true;
        for (i, f) in self.files.iter_mut().enumerate() {
            if f.next_datagram(&mut self.pending[i]) {
                self.heap.push(Reverse((self.pending[i].ts_us, i as u16)));
            }
        }
        let cooked = self.files.iter().any(|f| f.stats.link_types.iter().any(|&l| l == 113 || l == 276));
        let on = match self.mode {
            Dedup::On => true,
            Dedup::Off => false,
            Dedup::Auto => self.files.len() > 1 || cooked,
        };
        self.stats.dedup = on;
        if on {
            self.recent = Some(Recent::new(self.window_us));
        }
    }

    /// The next datagram in time order, de-duplicated; false when every file is done.
    #[inline]
    pub fn next_datagram(&mut self, out: &mut Datagram) -> bool {
        if !self.primed {
            self.prime();
        }
        loop {
            let Some(Reverse((_, i))) = self.heap.pop() else { return false };
            let i = usize::from(i);
            *out = self.pending[i];
            if self.files[i].next_datagram(&mut self.pending[i]) {
                self.heap.push(Reverse((self.pending[i].ts_us, i as u16)));
            }
            self.stats.datagrams_read += 1;
            if let Some(Some(ip)) = self.observe.get(i) {
                let o = &mut self.observed[i];
                o.1 += 1;
                o.0 += u64::from(out.src.ip == *ip || out.dst.ip == *ip);
            }
            if let Some(r) = self.recent.as_mut()
                && r.seen(dedup_key(out), out.ts_us)
            {
                self.stats.duplicates += 1;
                self.stats.duplicates_per_input[i] += 1;
                continue;
            }
            self.stats.datagrams += 1;
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_spread() {
        let mut m: FxHashMap<u64, u32> = FxHashMap::default();
        for i in 0..10_000u64 {
            m.insert(i << 32 | (i * 7), i as u32);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m[&(5u64 << 32 | 35)], 5);
        assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
    }
}
