//! One pass over the datagrams: per-endpoint and per-pair counters, the activity of every
//! directed pair per time slot (keep-alives, video, anything), and the gaps between consecutive
//! keep-alives and requests of a pair. Memory grows with endpoints, pairs and the slots in which
//! each pair was active (at most one bit per pair, layer and slot; nothing for silences), not
//! with the number of packets nor with the trace's duration.

use rustc_hash::FxHashMap;
use serde::Serialize;

pub use crate::activity::Activity;
use crate::capture::{Datagram, Endpoint};
use crate::classify::{KINDS, Kind, WireCheck, classify, wire_check};

/// UDP ports of common non-SopCast services, left out by default so that the size classifier
/// does not read a 42-byte DNS answer as a keep-alive in a foreign trace.
pub const DEFAULT_EXCLUDED_PORTS: [u16; 15] =
    [53, 67, 68, 123, 137, 138, 161, 162, 443, 500, 514, 1900, 4500, 5353, 5355];

/// What the one pass needs to know up front.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Width of a time slot, the grid of every snapshot (snapshot lengths must be multiples).
    pub resolution_us: i64,
    /// Datagrams from or to these ports are counted and left out.
    pub excluded_ports: Vec<u16>,
    /// Throughput is measured over this interval, in seconds from the first datagram
    /// (`None`: the whole trace).
    pub from_s: Option<f64>,
    pub to_s: Option<f64>,
}

impl Default for TraceOptions {
    fn default() -> TraceOptions {
        TraceOptions {
            resolution_us: 100_000,
            excluded_ports: DEFAULT_EXCLUDED_PORTS.to_vec(),
            from_s: None,
            to_s: None,
        }
    }
}

/// Histogram of gaps (microseconds) in fixed bins.
#[derive(Debug, Clone, Serialize)]
pub struct GapHistogram {
    pub bin_us: i64,
    pub counts: Vec<u64>,
    /// Gaps beyond the last bin.
    pub overflow: u64,
    pub n: u64,
    pub max_us: i64,
}

impl GapHistogram {
    pub fn new(bin_us: i64, bins: usize) -> GapHistogram {
        GapHistogram { bin_us, counts: vec![0; bins], overflow: 0, n: 0, max_us: 0 }
    }

    #[inline]
    pub fn record(&mut self, gap_us: i64) {
        self.n += 1;
        self.max_us = self.max_us.max(gap_us);
        match self.counts.get_mut((gap_us / self.bin_us) as usize) {
            Some(c) => *c += 1,
            None => self.overflow += 1,
        }
    }

    /// The q-quantile in seconds (linear inside a bin); `None` without data or when it falls
    /// in the overflow.
    pub fn quantile_s(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let target = q * self.n as f64;
        let mut cum = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && cum + c as f64 >= target {
                let frac = ((target - cum) / c as f64).clamp(0.0, 1.0);
                return Some((i as f64 + frac) * self.bin_us as f64 / 1e6);
            }
            cum += c as f64;
        }
        None
    }
}

/// Counters of one endpoint (address and port).
#[derive(Debug, Clone)]
pub struct EndpointStats {
    pub addr: Endpoint,
    pub sent: [u64; KINDS],
    pub received: [u64; KINDS],
    /// Video payload bytes sent and received inside the throughput interval.
    pub video_sent_bytes: u64,
    pub video_received_bytes: u64,
    pub first_us: i64,
    pub last_us: i64,
}

/// Counters and activity of one directed pair `src -> dst`.
#[derive(Debug, Clone)]
pub struct PairStats {
    pub src: u32,
    pub dst: u32,
    pub packets: [u32; KINDS],
    /// Video payload bytes inside the throughput interval, and in all.
    pub video_bytes: u64,
    pub video_bytes_total: u64,
    pub last_keepalive_us: i64,
    pub last_request_us: i64,
    /// Slots with a keep-alive, with a video packet, with any datagram.
    pub keepalive: Activity,
    pub video: Activity,
    pub any: Activity,
}

/// The soplab header cross-check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WireCounts {
    /// The header class agrees with the size class.
    pub agree: u64,
    /// soplab's version byte, but a class other than the size says.
    pub disagree: u64,
    /// Too few bytes captured or not soplab's header (foreign traces).
    pub not_soplab: u64,
}

/// Everything the one pass collects.
pub struct Trace {
    pub opts: TraceOptions,
    /// Time of the first datagram.
    pub start_us: i64,
    /// Latest datagram time.
    pub end_us: i64,
    /// Start of slot 0 (the first datagram's time rounded down to the resolution).
    pub origin_us: i64,
    pub endpoints: Vec<EndpointStats>,
    pub pairs: Vec<PairStats>,
    pub packets: [u64; KINDS],
    pub bytes: [u64; KINDS],
    pub wire: WireCounts,
    pub excluded: u64,
    pub keepalive_gaps: GapHistogram,
    pub request_gaps: GapHistogram,
    /// Datagrams earlier than the first one (out of order across files): put in slot 0.
    pub before_start: u64,
    interval: (i64, i64),
    started: bool,
    excluded_ports: Vec<u64>,
    endpoint_ids: FxHashMap<Endpoint, u32>,
    pair_ids: FxHashMap<u64, u32>,
    last: (Endpoint, Endpoint, u32),
}

/// Bins of the gap histograms: 10 ms wide, up to 30 s.
const GAP_BIN_US: i64 = 10_000;
const GAP_BINS: usize = 3000;

impl Trace {
    pub fn new(opts: TraceOptions) -> Trace {
        let mut excluded_ports = vec![0u64; 1024];
        for &p in &opts.excluded_ports {
            excluded_ports[usize::from(p) / 64] |= 1 << (p % 64);
        }
        Trace {
            opts,
            start_us: 0,
            end_us: 0,
            origin_us: 0,
            endpoints: Vec::new(),
            pairs: Vec::new(),
            packets: [0; KINDS],
            bytes: [0; KINDS],
            wire: WireCounts::default(),
            excluded: 0,
            keepalive_gaps: GapHistogram::new(GAP_BIN_US, GAP_BINS),
            request_gaps: GapHistogram::new(GAP_BIN_US, GAP_BINS),
            before_start: 0,
            interval: (i64::MIN, i64::MAX),
            started: false,
            excluded_ports,
            endpoint_ids: FxHashMap::default(),
            pair_ids: FxHashMap::default(),
            last: (Endpoint::default(), Endpoint::default(), u32::MAX),
        }
    }

    /// The throughput interval (absolute microseconds).
    pub fn interval(&self) -> (i64, i64) {
        (self.interval.0.max(self.start_us), self.interval.1.min(self.end_us))
    }

    /// The slot of a time.
    #[inline]
    pub fn slot(&self, ts_us: i64) -> u64 {
        (ts_us.saturating_sub(self.origin_us).max(0) / self.opts.resolution_us) as u64
    }

    /// Start time of a slot (saturating: the end of a grid may lie beyond any time).
    pub fn slot_start(&self, slot: u64) -> i64 {
        let offset = i64::try_from(slot).unwrap_or(i64::MAX).saturating_mul(self.opts.resolution_us);
        self.origin_us.saturating_add(offset)
    }

    /// Number of slots up to the last datagram.
    pub fn slots(&self) -> u64 {
        self.slot(self.end_us) + 1
    }

    /// Heap bytes of the per-pair activity (to show memory does not grow with packets).
    pub fn activity_bytes(&self) -> usize {
        self.pairs.iter().map(|p| p.keepalive.heap_bytes() + p.video.heap_bytes() + p.any.heap_bytes()).sum()
    }

    fn endpoint(&mut self, e: Endpoint, ts: i64) -> u32 {
        if let Some(&id) = self.endpoint_ids.get(&e) {
            return id;
        }
        let id = self.endpoints.len() as u32;
        self.endpoints.push(EndpointStats {
            addr: e,
            sent: [0; KINDS],
            received: [0; KINDS],
            video_sent_bytes: 0,
            video_received_bytes: 0,
            first_us: ts,
            last_us: ts,
        });
        self.endpoint_ids.insert(e, id);
        id
    }

    /// The id of an endpoint, if it was seen.
    pub fn endpoint_id(&self, e: &Endpoint) -> Option<u32> {
        self.endpoint_ids.get(e).copied()
    }

    /// The pair index of `src -> dst`, if any datagram went that way.
    pub fn pair_id(&self, src: u32, dst: u32) -> Option<u32> {
        self.pair_ids.get(&(u64::from(src) << 32 | u64::from(dst))).copied()
    }

    #[inline]
    fn pair(&mut self, src: u32, dst: u32) -> u32 {
        let key = u64::from(src) << 32 | u64::from(dst);
        if let Some(&id) = self.pair_ids.get(&key) {
            return id;
        }
        let id = self.pairs.len() as u32;
        self.pairs.push(PairStats {
            src,
            dst,
            packets: [0; KINDS],
            video_bytes: 0,
            video_bytes_total: 0,
            last_keepalive_us: i64::MIN,
            last_request_us: i64::MIN,
            keepalive: Activity::default(),
            video: Activity::default(),
            any: Activity::default(),
        });
        self.pair_ids.insert(key, id);
        id
    }

    /// Takes one datagram (in time order, as [`crate::capture::Inputs`] gives them).
    #[inline]
    pub fn add(&mut self, d: &Datagram) {
        let ts = d.ts_us;
        if !self.started {
            self.started = true;
            self.start_us = ts;
            self.end_us = ts;
            self.origin_us = ts - ts.rem_euclid(self.opts.resolution_us);
            let secs = |s: f64| ts.saturating_add((s * 1e6) as i64);
            self.interval = (self.opts.from_s.map_or(i64::MIN, secs), self.opts.to_s.map_or(i64::MAX, secs));
        }
        let excluded = |p: u16| self.excluded_ports[usize::from(p) / 64] & (1 << (p % 64)) != 0;
        if excluded(d.src.port) || excluded(d.dst.port) {
            self.excluded += 1;
            return;
        }
        if ts < self.start_us {
            self.before_start += 1;
        }
        self.end_us = self.end_us.max(ts);
        let kind = classify(d.len);
        let k = kind as usize;
        self.packets[k] += 1;
        self.bytes[k] += u64::from(d.len);
        match wire_check(kind, &d.head[..usize::from(d.head_len)]) {
            WireCheck::Agrees => self.wire.agree += 1,
            WireCheck::Disagrees => self.wire.disagree += 1,
            WireCheck::NotSoplab => self.wire.not_soplab += 1,
        }
        let (s, t, p) = if self.last.2 != u32::MAX && self.last.0 == d.src && self.last.1 == d.dst {
            let p = self.last.2 as usize;
            (self.pairs[p].src, self.pairs[p].dst, self.last.2)
        } else {
            let s = self.endpoint(d.src, ts);
            let t = self.endpoint(d.dst, ts);
            let p = self.pair(s, t);
            self.last = (d.src, d.dst, p);
            (s, t, p)
        };
        let in_interval = ts >= self.interval.0 && ts < self.interval.1;
        let slot = self.slot(ts);
        {
            let e = &mut self.endpoints[s as usize];
            e.sent[k] += 1;
            e.last_us = e.last_us.max(ts);
            if kind.is_video() && in_interval {
                e.video_sent_bytes += u64::from(d.len);
            }
        }
        {
            let e = &mut self.endpoints[t as usize];
            e.received[k] += 1;
            e.last_us = e.last_us.max(ts);
            if kind.is_video() && in_interval {
                e.video_received_bytes += u64::from(d.len);
            }
        }
        let pair = &mut self.pairs[p as usize];
        pair.packets[k] = pair.packets[k].saturating_add(1);
        pair.any.set(slot);
        match kind {
            Kind::KeepAlive => {
                pair.keepalive.set(slot);
                if pair.last_keepalive_us != i64::MIN && ts >= pair.last_keepalive_us {
                    self.keepalive_gaps.record(ts - pair.last_keepalive_us);
                }
                pair.last_keepalive_us = pair.last_keepalive_us.max(ts);
            }
            Kind::Request => {
                if pair.last_request_us != i64::MIN && ts >= pair.last_request_us {
                    self.request_gaps.record(ts - pair.last_request_us);
                }
                pair.last_request_us = pair.last_request_us.max(ts);
            }
            Kind::VideoFull | Kind::VideoTail => {
                pair.video.set(slot);
                pair.video_bytes_total += u64::from(d.len);
                if in_interval {
                    pair.video_bytes += u64::from(d.len);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_quantile() {
        let mut h = GapHistogram::new(10_000, 200);
        for _ in 0..95 {
            h.record(1_000_000);
        }
        for _ in 0..5 {
            h.record(3_000_000);
        }
        let q = h.quantile_s(0.95).unwrap();
        assert!((1.0..=1.01).contains(&q), "{q}");
        assert_eq!(h.overflow, 5);
        assert_eq!(h.quantile_s(0.99), None);
    }

    fn dgram(ts: i64, src: u8, dst: u8, len: u32) -> Datagram {
        Datagram {
            ts_us: ts,
            src: Endpoint::v4([10, 0, 0, src], 3908),
            dst: Endpoint::v4([10, 0, 0, dst], 3908),
            len,
            ..Datagram::default()
        }
    }

    #[test]
    fn pairs_slots_and_gaps() {
        let mut t = Trace::new(TraceOptions::default());
        t.add(&dgram(1_000_050_000, 1, 2, 42));
        t.add(&dgram(1_001_050_000, 1, 2, 42));
        t.add(&dgram(1_001_060_000, 2, 1, 46));
        t.add(&dgram(1_001_070_000, 1, 2, 1320));
        t.add(&dgram(1_001_080_000, 1, 2, 1200));
        let mut dns = dgram(1_001_090_000, 1, 2, 42);
        dns.dst.port = 53;
        t.add(&dns);
        assert_eq!(t.excluded, 1);
        assert_eq!(t.origin_us, 1_000_000_000);
        assert_eq!(t.pairs.len(), 2);
        let p = &t.pairs[t.pair_id(0, 1).unwrap() as usize];
        assert!(p.keepalive.any(0, 1) && p.keepalive.any(10, 11) && !p.keepalive.any(1, 10));
        assert!(p.video.any(10, 11));
        assert_eq!(p.video_bytes, 2520);
        assert_eq!(t.keepalive_gaps.n, 1);
        assert_eq!(t.endpoints[0].sent[Kind::KeepAlive as usize], 2);
        assert_eq!(t.endpoints[1].sent[Kind::Request as usize], 1);
    }
}
