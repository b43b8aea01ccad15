//! The client layer of Borges et al. (2012), sections 3, 6 and 7, from the data packets the
//! captures hold: per client address its activity, sessions (split where it was inactive for
//! longer than the session gap), ON and OFF times, the session inter-arrival times, partners
//! per 1 s snapshot and partnership durations; and, from per-peer captures, the crawler
//! coverage table (their Table 1) and the partner-list overlap table (Table 6).
//!
//! Derived after ingest from each pair's video activity ([`crate::trace::PairStats::video`]),
//! so it adds nothing per packet; docs/ANALYZE.md, section "Clients", defines every number.

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::coverage::{self, Sightings};
use crate::fit::{self, Family, Fits};
use crate::overlay::{self, Grid, Layer, Roles};
use crate::stats::{Distribution, Summary};
use crate::trace::{Activity, Trace};

/// The paper's session gap, seconds of model time (section 6.1).
pub const DEFAULT_SESSION_GAP_S: f64 = 150.0;
/// Inter-activity times under this (model seconds) are counted, not kept: the paper leaves
/// them out of the CDF it looks for the knee in.
pub const SHORT_GAP_S: f64 = 5.0;
/// The paper's snapshot, seconds of capture time.
pub const SNAPSHOT_S: f64 = 1.0;

/// What the client layer can be told.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Inactive longer than this ends a session, seconds of model time.
    pub session_gap_s: f64,
    /// F: the run played the model F times faster (run.json's `time_scale`); 1 for a trace
    /// in real time.
    pub time_scale: f64,
    /// Where `time_scale` came from: "run.json", "option" or "default".
    pub time_scale_from: &'static str,
    /// Length of the transmission ON and OFF are percentages of, seconds of capture time
    /// (`None`: the trace's length).
    pub transmission_length_s: Option<f64>,
    /// The workload preset that drove the run (run.json's `workload_preset`), to pick the
    /// paper's column.
    pub preset: Option<String>,
    /// Vantage peers known from the run directory (run.json's hosts marked `vantage`): they
    /// stay all along, like the paper's crawlers, so the session quantities leave them out
    /// even when only a bridge captured the run.
    pub vantage: Vec<std::net::IpAddr>,
    /// Vantage sets per k in the coverage table, and groups per size in the overlap table.
    pub coverage_draws: u32,
    pub overlap_draws: u32,
}

impl ClientOptions {
    /// Takes the time scale and the workload preset a run directory's run.json records,
    /// unless an option set them.
    pub fn apply_run(&mut self, run: &crate::rundir::RunDir) {
        let info = run.run.as_ref();
        if self.time_scale_from == "default"
            && let Some(f) = info.and_then(|r| r.time_scale).filter(|f| f.is_finite() && *f > 0.0)
        {
            self.time_scale = f;
            self.time_scale_from = "run.json";
        }
        if self.preset.is_none() {
            self.preset = info.and_then(|r| r.workload_preset.clone());
        }
        if self.vantage.is_empty() {
            let hosts = info.map(|r| r.hosts.as_slice()).unwrap_or_default();
            let vantage = hosts.iter().filter(|h| h.vantage && h.role == soplab_rundir::truth::Role::Peer);
            self.vantage =
                vantage.filter_map(|h| h.address.parse::<std::net::SocketAddr>().ok()).map(|a| a.ip()).collect();
        }
    }
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            session_gap_s: DEFAULT_SESSION_GAP_S,
            time_scale: 1.0,
            time_scale_from: "default",
            transmission_length_s: None,
            preset: None,
            vantage: Vec::new(),
            coverage_draws: 200,
            overlap_draws: 1000,
        }
    }
}

/// The inter-activity times of section 6.1 and the knee the session gap is read from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InterActivity {
    /// All gaps between consecutive active slots of a client.
    pub gaps: u64,
    /// Share of them under 5 s (model time; the paper: 89%).
    pub under_5s_share: f64,
    /// The gaps of 5 s and more (model seconds).
    pub over_5s: Summary,
    /// Where their CDF over a log axis is furthest above its chord (model seconds); `None`
    /// with fewer than 3 distinct gaps.
    pub knee_s: Option<f64>,
}

/// Sessions per client (section 6.3).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionsPerClient {
    pub clients: u64,
    pub mean: f64,
    /// `counts[k]`: clients with k sessions.
    pub distribution: Distribution,
    /// P_off of the least-squares Geometric fit (the paper's method; 0.398 in the paper);
    /// `null` without clients.
    pub p_off: Option<f64>,
    /// The Geometric fitted both ways.
    pub fits: Fits,
}

/// Most values of one quantity that are fitted: above it, [`fit::thin`] keeps this many order
/// statistics evenly spaced in rank (docs/ANALYZE.md, Clients: fits).
pub const FIT_SAMPLES: usize = 20_000;

/// `clients.fits`: the six continuous families fitted to each quantity ([`fit::fit_continuous`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientFits {
    /// At most this many values of each quantity were fitted ([`FIT_SAMPLES`]); a fit's
    /// `samples` says how many it had.
    pub max_samples: usize,
    pub inter_arrival_s: Fits,
    pub on_percent: Fits,
    pub off_percent: Fits,
    pub partners: Fits,
    pub partnership_fraction: Fits,
}

impl ClientFits {
    /// The fits of every quantity's samples.
    pub fn of(s: &Samples) -> ClientFits {
        let f = |xs: &[f64]| fit::fit_continuous(&fit::thin(xs, FIT_SAMPLES));
        ClientFits {
            max_samples: FIT_SAMPLES,
            inter_arrival_s: f(&s.inter_arrival_s),
            on_percent: f(&s.on_percent),
            off_percent: f(&s.off_percent),
            partners: f(&s.partners),
            partnership_fraction: f(&s.partnership_fraction),
        }
    }

    /// (quantity, its fits), in report.json's order.
    pub fn named(&self) -> [(&'static str, &Fits); 5] {
        [
            ("inter_arrival_s", &self.inter_arrival_s),
            ("on_percent", &self.on_percent),
            ("off_percent", &self.off_percent),
            ("partners", &self.partners),
            ("partnership_fraction", &self.partnership_fraction),
        ]
    }
}

/// The Geometric fits of sessions per client and the least-squares P_off.
fn fit_sessions(per_client: &[f64]) -> (Option<f64>, Fits) {
    let fits = fit::fit(fit::thin(per_client, FIT_SAMPLES), &[Family::Geometric]);
    let p_off = fits.lse.as_ref().map(|f| f.params.values()[0]);
    (p_off, fits)
}

/// One row of the crawler coverage table.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageRow {
    pub k: u64,
    /// Vantage sets averaged over (every k-subset when there are few).
    pub draws: u32,
    /// Mean over the sets of: clients seen by the set / clients seen by all vantage peers,
    /// summed over snapshots.
    pub share: f64,
    pub share_sd: f64,
    /// Table 1 of Borges et al. at this k (421 crawlers), if it has one.
    pub paper: Option<f64>,
}

/// Table 1: share of the simultaneously active clients k vantage peers see.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientCoverage {
    /// Why the table is empty, when it is.
    pub note: Option<String>,
    pub snapshot_s: f64,
    /// Non-vantage clients seen by any vantage peer, per snapshot.
    pub clients_per_snapshot: f64,
    pub rows: Vec<CoverageRow>,
}

/// The overlap of the partner lists of groups of one kind and size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OverlapStat {
    /// Groups (snapshot, vantage peers) averaged over.
    pub groups: u64,
    /// Every such group was taken (else a uniform random sample of them).
    pub all: bool,
    /// Mean and sd of |intersection| / |union| of the members' partner lists.
    pub mean: f64,
    pub sd: f64,
}

/// One row of Table 6.
#[derive(Debug, Clone, Serialize)]
pub struct OverlapRow {
    pub group_size: u64,
    pub random: OverlapStat,
    /// Groups whose members are all partners of each other in the snapshot.
    pub partners: OverlapStat,
    pub paper_random: f64,
    pub paper_partners: f64,
}

/// Table 6: the overlap of the vantage peers' partner lists per snapshot.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overlap {
    pub note: Option<String>,
    pub snapshot_s: f64,
    pub rows: Vec<OverlapRow>,
}

/// The sample vectors of the quantities (for the fits; not in report.json).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub inter_arrival_s: Vec<f64>,
    pub on_percent: Vec<f64>,
    pub off_percent: Vec<f64>,
    /// Partners per snapshot: at most [`FIT_SAMPLES`] order statistics evenly spaced in rank
    /// of `partners_counts` (a snapshot per value would make the samples follow the sessions'
    /// length, not the capture's size).
    pub partners: Vec<f64>,
    /// `partners_counts[k]`: snapshots of ON time with k partners, zeros included.
    pub partners_counts: Vec<u64>,
    pub partnership_fraction: Vec<f64>,
    pub sessions_per_client: Vec<f64>,
    /// Inter-activity gaps of 5 s and more (model seconds).
    pub inter_activity_s: Vec<f64>,
    /// The sessions of the characterized clients on the capture's clock (for validation):
    /// from the start of the first active slot to the end of the last.
    pub sessions: Vec<crate::sessions::Span>,
}

/// report.json's `clients`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Clients {
    pub definitions: &'static str,
    /// "full" (a capture of the whole network: every client's partners are seen) or
    /// "vantage" (per-peer captures only).
    pub view: &'static str,
    /// The vantage peers' addresses (per-peer captures).
    pub vantage: Vec<String>,
    /// Session gap asked for (model seconds) and as applied to the captures (divided by F).
    pub session_gap_s: f64,
    pub session_gap_capture_s: f64,
    pub time_scale: f64,
    pub time_scale_from: &'static str,
    /// The slot width in capture and in model seconds: session starts and ends are known to
    /// one slot.
    pub resolution_s: f64,
    pub resolution_model_s: f64,
    /// Capture seconds; "option" or "trace".
    pub transmission_length_s: f64,
    pub transmission_length_from: &'static str,
    pub preset: Option<String>,
    /// Client addresses with a data packet, and those the session quantities are about (all
    /// but the vantage peers, which stay all along like the paper's crawlers).
    pub clients: u64,
    pub characterized_clients: u64,
    /// Addresses left out: the source's and the tracker's.
    pub excluded: Vec<String>,
    pub sessions: u64,
    /// Sessions that start within one session gap of the trace's start (may have begun before
    /// it), and that end within one gap of its end.
    pub sessions_at_trace_start: u64,
    pub sessions_at_trace_end: u64,
    pub inter_activity: InterActivity,
    /// Model seconds between consecutive session starts, over all clients.
    pub inter_arrival_s: Summary,
    pub sessions_per_client: SessionsPerClient,
    /// Percent of the transmission.
    pub on_percent: Summary,
    pub off_percent: Summary,
    /// Partners per client per snapshot of its ON time.
    pub partners: Summary,
    pub partners_snapshot_s: f64,
    /// Partnership duration / the session's remaining ON time at its start.
    pub partnership_fraction: Summary,
    pub coverage: ClientCoverage,
    pub overlap: Overlap,
    /// Borges et al.'s values beside the measured ones.
    pub paper_comparison: Vec<crate::paper::ClientRow>,
    /// Time the client layer took, seconds (it adds nothing while reading the captures), and
    /// the part of it the fits took.
    pub seconds: f64,
    pub fits_seconds: f64,
    /// Each quantity's fits (`lse` and `mle`, the best of each method, and every family's).
    pub fits: ClientFits,
    #[serde(skip)]
    pub samples: Samples,
}

const DEFINITIONS: &str = "docs/ANALYZE.md, section Clients: client = IP address with a data (video class) packet, \
source and tracker left out; activity = a slot with a data packet to or from any partner; a session ends after \
more than session_gap_capture_s of inactivity; ON = the session's slots, OFF = the silent slots between two \
sessions, both in percent of the transmission; inter-arrival = model seconds between consecutive session starts \
of all clients; partners = distinct partners with a data packet per 1 s snapshot of the client's ON time; \
partnership = first to last data slot of a pair within a session, over the session's remaining ON time";

/// One session: its first and last active slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub first: u64,
    pub last: u64,
}

/// A client's data links: one per partner, with the directed pairs carrying its data.
#[derive(Debug, Clone, Default)]
struct Links {
    partner: Vec<u32>,
    pairs: Vec<Vec<u32>>,
}

/// The clients and their data links.
struct Model {
    ids: FxHashMap<u128, u32>,
    ips: Vec<u128>,
    vantage: Vec<bool>,
    links: Vec<Links>,
    /// Pairs with the source (its data counts as activity; it is no partner).
    fed: Vec<Vec<u32>>,
}

impl Model {
    fn new(trace: &Trace, excluded: &[u128], vantage_ips: &[u128]) -> Model {
        let mut m = Model {
            ids: FxHashMap::default(),
            ips: Vec::new(),
            vantage: Vec::new(),
            links: Vec::new(),
            fed: Vec::new(),
        };
        let mut link_of: FxHashMap<(u32, u32), usize> = FxHashMap::default();
        for (i, p) in trace.pairs.iter().enumerate() {
            if p.video.is_empty() {
                continue;
            }
            let (a, b) = (trace.endpoints[p.src as usize].addr.ip, trace.endpoints[p.dst as usize].addr.ip);
            if a == b || excluded.contains(&a) && excluded.contains(&b) {
                continue;
            }
            if excluded.contains(&a) || excluded.contains(&b) {
                let c = if excluded.contains(&a) { b } else { a };
                let c = m.id(c, vantage_ips);
                m.fed[c as usize].push(i as u32);
                continue;
            }
            let (x, y) = (m.id(a, vantage_ips), m.id(b, vantage_ips));
            for (c, partner) in [(x, y), (y, x)] {
                let l = *link_of.entry((c, partner)).or_insert_with(|| {
                    let links = &mut m.links[c as usize];
                    links.partner.push(partner);
                    links.pairs.push(Vec::new());
                    links.partner.len() - 1
                });
                m.links[c as usize].pairs[l].push(i as u32);
            }
        }
        m
    }

    fn id(&mut self, ip: u128, vantage_ips: &[u128]) -> u32 {
        *self.ids.entry(ip).or_insert_with(|| {
            self.ips.push(ip);
            self.vantage.push(vantage_ips.contains(&ip));
            self.links.push(Links::default());
            self.fed.push(Vec::new());
            (self.ips.len() - 1) as u32
        })
    }

    /// Every activity of client `c` (its links' pairs and the source's).
    fn activities<'a>(&'a self, trace: &'a Trace, c: usize) -> impl Iterator<Item = &'a Activity> + 'a {
        let pairs = self.links[c].pairs.iter().flatten().chain(&self.fed[c]);
        pairs.map(move |&i| &trace.pairs[i as usize].video)
    }
}

/// The union of activities as ascending (word, bits), one entry per word.
fn union_words<'a>(acts: impl Iterator<Item = &'a Activity>) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = acts.flat_map(|a| a.words(0, u64::MAX)).collect();
    all.sort_unstable_by_key(|w| w.0);
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len());
    for (w, b) in all {
        match out.last_mut() {
            Some(last) if last.0 == w => last.1 |= b,
            _ => out.push((w, b)),
        }
    }
    out
}

/// The set slots of ascending (word, bits), ascending.
fn slots_of(words: &[(u64, u64)]) -> impl Iterator<Item = u64> + '_ {
    words.iter().flat_map(|&(w, bits)| {
        let mut bits = bits;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                w * 64 + u64::from(b)
            })
        })
    })
}

/// Splits active slots into sessions at gaps of more than `gap_slots`; calls `gap(slots)` for
/// every gap between consecutive active slots.
pub fn sessions(slots: impl Iterator<Item = u64>, gap_slots: u64, mut gap: impl FnMut(u64)) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some(last) => {
                gap(s - last.last);
                if s - last.last > gap_slots {
                    out.push(Session { first: s, last: s });
                } else {
                    last.last = s;
                }
            }
            None => out.push(Session { first: s, last: s }),
        }
    }
    out
}

/// The knee of the CDF of `xs` (all > 0) over a log axis: the sample where the CDF is furthest
/// above the chord from the smallest to the largest sample, both axes scaled to [0, 1].
/// `None` with fewer than 3 distinct values.
pub fn knee(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| *x > 0.0).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    // (ln x, CDF at x) at each distinct x.
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for (i, &x) in v.iter().enumerate() {
        let cdf = (i + 1) as f64 / n;
        match pts.last_mut() {
            Some(p) if p.0 == x.ln() => p.1 = cdf,
            _ => pts.push((x.ln(), cdf)),
        }
    }
    if pts.len() < 3 {
        return None;
    }
    let (x0, y0) = pts[0];
    let (x1, y1) = pts[pts.len() - 1];
    let best = pts.iter().max_by(|a, b| {
        let d = |p: &(f64, f64)| (p.1 - y0) / (y1 - y0) - (p.0 - x0) / (x1 - x0);
        d(a).total_cmp(&d(b))
    })?;
    Some(best.0.exp())
}

/// What the per-client pass collects.
#[derive(Default)]
struct Collected {
    samples: Samples,
    gaps: u64,
    under_5s: u64,
    starts: Vec<u64>,
    sessions: u64,
    at_start: u64,
    at_end: u64,
    per_client: Vec<u64>,
}

/// Everything the quantities need to know of the trace and the options.
struct Frame<'a> {
    trace: &'a Trace,
    model: Model,
    grid: Grid,
    /// Capture seconds per slot, model seconds per slot.
    slot_s: f64,
    model_slot_s: f64,
    gap_slots: u64,
    transmission_s: f64,
    first_slot: u64,
    last_slot: u64,
    /// Every client's partners are in the captures.
    full_view: bool,
}

impl Frame<'_> {
    /// Partners are counted for the clients whose every partner the captures see.
    fn partners_counted(&self, c: usize) -> bool {
        self.full_view || self.model.vantage[c]
    }

    fn client(&self, c: usize, out: &mut Collected) {
        let words = union_words(self.model.activities(self.trace, c));
        let characterized = !self.model.vantage[c];
        let short = (SHORT_GAP_S / self.model_slot_s).ceil() as u64;
        let list = sessions(slots_of(&words), self.gap_slots, |g| {
            if characterized {
                out.gaps += 1;
                if g < short {
                    out.under_5s += 1;
                } else {
                    out.samples.inter_activity_s.push(g as f64 * self.model_slot_s);
                }
            }
        });
        if self.partners_counted(c) {
            self.partners(c, &list, &mut out.samples.partners_counts);
        }
        if !characterized || list.is_empty() {
            return;
        }
        self.session_level(c, &list, out);
        self.partnerships(c, &list, &mut out.samples.partnership_fraction);
    }

    fn session_level(&self, c: usize, list: &[Session], out: &mut Collected) {
        let t = self.trace;
        // Slot times clipped to the trace: a client active all along is ON for 100%.
        let at = |slot: u64| t.slot_start(slot).clamp(t.start_us, t.end_us);
        let client = crate::capture::Endpoint { ip: self.model.ips[c], port: 0 }.socket_addr().ip();
        let spans =
            list.iter().map(|s| crate::sessions::Span { client, start_us: at(s.first), end_us: at(s.last + 1) });
        out.samples.sessions.extend(spans);
        let pct = |from: u64, to: u64| (at(to) - at(from)) as f64 / 1e6 / self.transmission_s * 100.0;
        for (i, s) in list.iter().enumerate() {
            out.samples.on_percent.push(pct(s.first, s.last + 1));
            if let Some(next) = list.get(i + 1) {
                out.samples.off_percent.push(pct(s.last + 1, next.first));
            }
            out.starts.push(s.first);
            out.at_start += u64::from(s.first <= self.first_slot + self.gap_slots);
            out.at_end += u64::from(s.last + self.gap_slots >= self.last_slot);
        }
        out.sessions += list.len() as u64;
        out.per_client.push(list.len() as u64);
    }

    /// Partners per snapshot of each session of `c` (zeros included), added to `counts`
    /// (`counts[k]`: snapshots with k partners). Only the snapshots with a partner are visited;
    /// the silent ones of a session are counted, not walked, so the cost follows the activity,
    /// not the timestamps.
    fn partners(&self, c: usize, list: &[Session], counts: &mut Vec<u64>) {
        let g = &self.grid;
        let snap = |slot: u64| slot.saturating_sub(g.first) / g.tau;
        let (Some(first), Some(last)) = (list.first(), list.last()) else { return };
        let (k0, k1) = (snap(first.first), snap(last.last).min(g.count.saturating_sub(1)));
        if g.count == 0 || k1 < k0 {
            return;
        }
        // Every (snapshot, partner) with data, then the partners per snapshot, in order.
        let mut all: Vec<u64> = Vec::new();
        let mut ks: Vec<u64> = Vec::new();
        for pairs in &self.model.links[c].pairs {
            ks.clear();
            for &i in pairs {
                ks.extend(self.trace.pairs[i as usize].video.snapshots(g.first + k0 * g.tau, g.tau, k1 - k0 + 1));
            }
            ks.sort_unstable();
            ks.dedup();
            all.extend(ks.iter().map(|&k| k + k0));
        }
        all.sort_unstable();
        let busy: Vec<(u64, u64)> = all.chunk_by(|a, b| a == b).map(|run| (run[0], run.len() as u64)).collect();
        for s in list {
            let (a, b) = (snap(s.first).max(k0), snap(s.last).min(k1));
            if b < a {
                continue;
            }
            let (lo, hi) = (busy.partition_point(|x| x.0 < a), busy.partition_point(|x| x.0 <= b));
            for &(_, n) in &busy[lo..hi] {
                Distribution::push_count(counts, n as usize);
            }
            let silent = (b - a + 1) - (hi - lo) as u64;
            if silent > 0 {
                Distribution::push_count(counts, 0);
                counts[0] += silent - 1;
            }
        }
    }

    /// Each partnership's duration over its session's remaining ON time.
    fn partnerships(&self, c: usize, list: &[Session], out: &mut Vec<f64>) {
        for pairs in &self.model.links[c].pairs {
            for s in list {
                let bounds =
                    pairs.iter().filter_map(|&i| self.trace.pairs[i as usize].video.bounds(s.first, s.last + 1));
                let Some((first, last)) = bounds.reduce(|a, b| (a.0.min(b.0), a.1.max(b.1))) else { continue };
                out.push((last - first + 1) as f64 / (s.last + 1 - first) as f64);
            }
        }
    }
}

/// The client layer of a trace. `vantage` holds the addresses of per-peer captures, `full_view`
/// is true when some capture saw the whole network (a bridge, or a file of unknown origin).
pub fn clients(trace: &Trace, roles: &Roles, vantage: &[u128], full_view: bool, opts: &ClientOptions) -> Clients {
    let t0 = std::time::Instant::now();
    let frame = frame(trace, roles, vantage, full_view, opts);
    let mut got = Collected::default();
    for c in 0..frame.model.ips.len() {
        frame.client(c, &mut got);
    }
    got.starts.sort_unstable();
    got.samples.inter_arrival_s = got.starts.windows(2).map(|w| (w[1] - w[0]) as f64 * frame.model_slot_s).collect();
    got.samples.sessions_per_client = got.per_client.iter().map(|&n| n as f64).collect();
    got.samples.partners = crate::stats::spaced_order_statistics(&got.samples.partners_counts, FIT_SAMPLES);
    let (coverage, overlap) = vantage_tables(&frame, opts);
    let mut c = report(&frame, roles, opts, got);
    c.coverage = coverage;
    c.overlap = overlap;
    c.paper_comparison = crate::paper::compare_clients(&c);
    let t_fits = std::time::Instant::now();
    c.fits = ClientFits::of(&c.samples);
    (c.sessions_per_client.p_off, c.sessions_per_client.fits) = fit_sessions(&c.samples.sessions_per_client);
    c.fits_seconds = t_fits.elapsed().as_secs_f64();
    c.seconds = t0.elapsed().as_secs_f64();
    c
}

fn frame<'a>(trace: &'a Trace, roles: &Roles, vantage: &[u128], full_view: bool, opts: &ClientOptions) -> Frame<'a> {
    let excluded: Vec<u128> = [roles.source_id, roles.tracker_id]
        .into_iter()
        .flatten()
        .map(|i| trace.endpoints[i as usize].addr.ip)
        .collect();
    let model = Model::new(trace, &excluded, vantage);
    let res_s = trace.opts.resolution_us as f64 / 1e6;
    let scale = if opts.time_scale.is_finite() && opts.time_scale > 0.0 { opts.time_scale } else { 1.0 };
    let tau_s = ((SNAPSHOT_S / res_s).round().max(1.0)) * res_s;
    let grid = Grid::new(trace, tau_s, trace.start_us, trace.end_us.saturating_add(1)).unwrap_or(Grid {
        first: 0,
        tau: 1,
        count: 0,
    });
    let trace_s = (trace.end_us - trace.start_us) as f64 / 1e6;
    let transmission_s = opts.transmission_length_s.filter(|t| *t > 0.0).unwrap_or(trace_s).max(res_s);
    Frame {
        trace,
        model,
        grid,
        slot_s: res_s,
        model_slot_s: res_s * scale,
        gap_slots: (opts.session_gap_s / scale / res_s).floor().max(0.0) as u64,
        transmission_s,
        first_slot: trace.slot(trace.start_us),
        last_slot: trace.slot(trace.end_us),
        full_view,
    }
}

fn report(f: &Frame, roles: &Roles, opts: &ClientOptions, got: Collected) -> Clients {
    let s = &got.samples;
    let scale = f.model_slot_s / f.slot_s;
    let per_client = {
        let mut counts = Vec::new();
        for &n in &got.per_client {
            Distribution::push_count(&mut counts, n as usize);
        }
        Distribution::from_counts(counts)
    };
    let excluded = [roles.source, roles.tracker].into_iter().flatten().map(|e| e.socket_addr().ip().to_string());
    Clients {
        definitions: DEFINITIONS,
        view: if f.full_view { "full" } else { "vantage" },
        vantage: (0..f.model.ips.len()).filter(|&c| f.model.vantage[c]).map(|c| ip_text(f.model.ips[c])).collect(),
        session_gap_s: opts.session_gap_s,
        session_gap_capture_s: opts.session_gap_s / scale,
        time_scale: scale,
        time_scale_from: opts.time_scale_from,
        resolution_s: f.slot_s,
        resolution_model_s: f.model_slot_s,
        transmission_length_s: f.transmission_s,
        transmission_length_from: if opts.transmission_length_s.is_some() { "option" } else { "trace" },
        preset: opts.preset.clone(),
        clients: f.model.ips.len() as u64,
        characterized_clients: got.per_client.len() as u64,
        excluded: excluded.collect(),
        sessions: got.sessions,
        sessions_at_trace_start: got.at_start,
        sessions_at_trace_end: got.at_end,
        inter_activity: InterActivity {
            gaps: got.gaps,
            under_5s_share: if got.gaps == 0 { 0.0 } else { got.under_5s as f64 / got.gaps as f64 },
            over_5s: Summary::of(&s.inter_activity_s),
            knee_s: knee(&s.inter_activity_s),
        },
        inter_arrival_s: Summary::of(&s.inter_arrival_s),
        sessions_per_client: SessionsPerClient {
            clients: per_client.samples,
            mean: per_client.mean,
            distribution: per_client,
            p_off: None,
            fits: Fits::default(),
        },
        on_percent: Summary::of(&s.on_percent),
        off_percent: Summary::of(&s.off_percent),
        partners: Summary::of_counts(&s.partners_counts),
        partners_snapshot_s: f.grid.tau as f64 * f.slot_s,
        partnership_fraction: Summary::of(&s.partnership_fraction),
        coverage: ClientCoverage::default(),
        overlap: Overlap::default(),
        paper_comparison: Vec::new(),
        seconds: 0.0,
        fits_seconds: 0.0,
        fits: ClientFits::default(),
        samples: got.samples,
    }
}

fn ip_text(ip: u128) -> String {
    crate::capture::Endpoint { ip, port: 0 }.socket_addr().ip().to_string()
}

/// Per snapshot, each vantage peer's partners (client ids, ascending).
struct PartnerLists {
    /// Vantage index -> client id.
    vantage: Vec<u32>,
    /// Per snapshot with any: (snapshot, per vantage index its partners).
    lists: Vec<(u64, Vec<Vec<u32>>)>,
}

fn partner_lists(f: &Frame) -> PartnerLists {
    let vantage: Vec<u32> = (0..f.model.ips.len() as u32).filter(|&c| f.model.vantage[c as usize]).collect();
    let index: FxHashMap<u32, usize> = vantage.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    // Each vantage pair's (vantage index, partner) by pair index.
    let mut of_pair: FxHashMap<u32, (usize, u32)> = FxHashMap::default();
    for (i, &v) in vantage.iter().enumerate() {
        let links = &f.model.links[v as usize];
        for (partner, pairs) in links.partner.iter().zip(&links.pairs) {
            for &p in pairs {
                of_pair.insert(p, (i, *partner));
            }
        }
    }
    let mut pairs: Vec<u32> = of_pair.keys().copied().collect();
    pairs.sort_unstable();
    let mut lists = Vec::new();
    let ids = |e: u32| f.trace.endpoints[e as usize].addr.ip;
    overlay::for_each_snapshot(f.trace, &pairs, Layer::Video, &f.grid, |k, edges| {
        let mut per = vec![Vec::new(); vantage.len()];
        for &(s, d) in edges {
            // Both ends may be vantage peers: the edge is in both lists.
            for (a, b) in [(s, d), (d, s)] {
                if let Some(&i) = client_index(f, ids(a)).and_then(|c| index.get(&c))
                    && let Some(p) = client_index(f, ids(b))
                {
                    per[i].push(p);
                }
            }
        }
        for l in &mut per {
            l.sort_unstable();
            l.dedup();
        }
        lists.push((k, per));
    });
    PartnerLists { vantage, lists }
}

fn client_index(f: &Frame, ip: u128) -> Option<u32> {
    f.model.ids.get(&ip).copied()
}

/// Tables 1 and 6, from the vantage peers' partner lists.
fn vantage_tables(f: &Frame, opts: &ClientOptions) -> (ClientCoverage, Overlap) {
    let snapshot_s = f.grid.tau as f64 * f.slot_s;
    if !f.model.vantage.iter().any(|&v| v) {
        let note = Some(
            "needs per-peer captures (a run directory's vantage pcaps, or files named peer-<ip>-<port>.pcap): a \
             capture of the whole network has no crawlers to draw from"
                .to_string(),
        );
        return (
            ClientCoverage { note: note.clone(), snapshot_s, ..ClientCoverage::default() },
            Overlap { note, snapshot_s, rows: Vec::new() },
        );
    }
    let pl = partner_lists(f);
    (client_coverage(f, &pl, opts, snapshot_s), overlap(&pl, opts, snapshot_s))
}

fn client_coverage(f: &Frame, pl: &PartnerLists, opts: &ClientOptions, snapshot_s: f64) -> ClientCoverage {
    let n = pl.vantage.len();
    let mut seen = Sightings::new(n);
    let mut by_client: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for (_, per) in &pl.lists {
        by_client.clear();
        for (i, l) in per.iter().enumerate() {
            for &c in l.iter().filter(|&&c| !f.model.vantage[c as usize]) {
                by_client.entry(c).or_default().push(i);
            }
        }
        let mut clients: Vec<_> = by_client.iter().collect();
        clients.sort_unstable_by_key(|e| e.0);
        for (_, vs) in clients {
            seen.push(vs.iter().copied());
        }
    }
    let rows = coverage::rows(n, opts.coverage_draws, 0x5eed_c11e_0001, &[&seen])
        .into_iter()
        .map(|r| CoverageRow {
            k: r.k as u64,
            draws: r.draws,
            share: r.shares[0].0,
            share_sd: r.shares[0].1,
            paper: crate::paper::BORGES_COVERAGE.iter().find(|p| p.0 == r.k as u64).map(|p| p.1),
        })
        .collect();
    let count = f.grid.count.max(1);
    ClientCoverage { note: None, snapshot_s, clients_per_snapshot: seen.total as f64 / count as f64, rows }
}

/// |intersection| / |union| of the lists of `group`.
fn overlap_of(per: &[Vec<u32>], group: &[usize]) -> f64 {
    let mut all: Vec<u32> = group.iter().flat_map(|&i| per[i].iter().copied()).collect();
    all.sort_unstable();
    let (mut union, mut inter, mut i) = (0u64, 0u64, 0);
    while i < all.len() {
        let j = all[i..].iter().position(|&x| x != all[i]).map_or(all.len(), |d| i + d);
        union += 1;
        inter += u64::from(j - i == group.len());
        i = j;
    }
    if union == 0 { 0.0 } else { inter as f64 / union as f64 }
}

/// Every two members are partners in the snapshot.
fn is_partner_group(per: &[Vec<u32>], vantage: &[u32], group: &[usize]) -> bool {
    group.iter().all(|&a| group.iter().all(|&b| a == b || per[a].binary_search(&vantage[b]).is_ok()))
}

fn overlap(pl: &PartnerLists, opts: &ClientOptions, snapshot_s: f64) -> Overlap {
    let n = pl.vantage.len();
    let rows = (2..=5.min(n))
        .map(|g| {
            let (random, partners) = overlap_groups(pl, g, opts.overlap_draws);
            let paper = crate::paper::BORGES_OVERLAP.iter().find(|p| p.0 == g as u64);
            OverlapRow {
                group_size: g as u64,
                random,
                partners,
                paper_random: paper.map_or(f64::NAN, |p| p.1),
                paper_partners: paper.map_or(f64::NAN, |p| p.2),
            }
        })
        .collect();
    let note = (n < 2).then(|| "needs at least two vantage peers".to_string());
    Overlap { note, snapshot_s, rows }
}

/// The groups of `g` vantage peers with a partner each, in every snapshot (all of them when
/// there are at most `draws`, else a uniform sample; partner groups by rejection from it).
fn overlap_groups(pl: &PartnerLists, g: usize, draws: u32) -> (OverlapStat, OverlapStat) {
    let active: Vec<Vec<usize>> =
        pl.lists.iter().map(|(_, per)| (0..per.len()).filter(|&i| !per[i].is_empty()).collect()).collect();
    let weights: Vec<u64> = active.iter().map(|a| coverage::choose(a.len(), g)).collect();
    let total: u64 = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    let (mut random, mut partners) = (Vec::new(), Vec::new());
    let look = |s: usize, group: &[usize]| {
        let per = &pl.lists[s].1;
        (overlap_of(per, group), is_partner_group(per, &pl.vantage, group))
    };
    let all = total <= u64::from(draws);
    if all {
        for (s, a) in active.iter().enumerate() {
            coverage::for_each_subset(a.len(), g, |idx| {
                let (x, partner) = look(s, &idx.iter().map(|&i| a[i]).collect::<Vec<_>>());
                random.push(x);
                if partner {
                    partners.push(x);
                }
            });
        }
    } else {
        let cum: Vec<u64> = weights
            .iter()
            .scan(0u64, |acc, &w| {
                *acc = acc.saturating_add(w);
                Some(*acc)
            })
            .collect();
        let mut rng = coverage::Rng(0x0fe7_1a95 ^ g as u64);
        // The first `draws` groups are the random sample; the partner groups among all the
        // groups drawn are a uniform sample of the partner groups (rejection, at most 50 tries
        // per draw).
        for t in 0..u64::from(draws) * 50 {
            if t >= u64::from(draws) && partners.len() >= draws as usize {
                break;
            }
            // One draw: the predicate must not draw at every comparison.
            let r = rng.next_u64() % total;
            let s = cum.partition_point(|&c| c <= r);
            let group: Vec<usize> = rng.subset(active[s].len(), g).into_iter().map(|i| active[s][i]).collect();
            let (x, partner) = look(s, &group);
            if t < u64::from(draws) {
                random.push(x);
            }
            if partner {
                partners.push(x);
            }
        }
        partners.truncate(draws as usize);
    }
    let stat = |xs: &[f64], all: bool| {
        let (mean, sd) = crate::stats::mean_sd(xs);
        OverlapStat { groups: xs.len() as u64, all, mean, sd }
    };
    (stat(&random, all), stat(&partners, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_split_at_long_gaps() {
        let mut gaps = Vec::new();
        let s = sessions([3, 4, 10, 30, 31, 100].into_iter(), 19, |g| gaps.push(g));
        assert_eq!(
            s,
            vec![Session { first: 3, last: 10 }, Session { first: 30, last: 31 }, Session { first: 100, last: 100 }]
        );
        assert_eq!(gaps, vec![1, 6, 20, 1, 69]);
        assert!(sessions(std::iter::empty(), 5, |_| {}).is_empty());
    }

    /// Gaps dense up to 150 s and sparse beyond (as the paper's Fig. 4): the knee is there.
    #[test]
    fn knee_of_a_constructed_gap_distribution() {
        let mut xs = Vec::new();
        // 90% of the gaps spread evenly over ln(5 s) .. ln(150 s), 10% over 150 s .. 20,000 s.
        for i in 0..900 {
            xs.push((5f64.ln() + (150f64.ln() - 5f64.ln()) * f64::from(i) / 899.0).exp());
        }
        for i in 0..100 {
            xs.push((150f64.ln() + (20_000f64.ln() - 150f64.ln()) * f64::from(i + 1) / 100.0).exp());
        }
        let k = knee(&xs).unwrap();
        assert!((120.0..=180.0).contains(&k), "knee at {k} s");
        assert_eq!(knee(&[10.0, 10.0, 20.0]), None, "two distinct values have no knee");
        assert_eq!(knee(&[]), None);
    }

    /// More groups than draws: groups are sampled, each snapshot by its weight. The weights'
    /// running sum did not accumulate, and the snapshot was drawn inside the search's
    /// predicate (a new number at every comparison): the draw landed past the last snapshot,
    /// an index panic `soplab validate` hit on a churned run.
    #[test]
    fn sampled_overlap_groups_stay_within_the_snapshots() {
        let vantage: Vec<u32> = (0..4).collect();
        let lists: Vec<(u64, Vec<Vec<u32>>)> =
            (0..300).map(|k| (k, (0..4).map(|v| vec![10 + v, 20 + (k % 7) as u32]).collect())).collect();
        let pl = PartnerLists { vantage, lists };
        for g in 2..=4 {
            let (random, _) = overlap_groups(&pl, g, 50);
            assert_eq!(random.groups, 50, "g {g}: {random:?}");
        }
    }

    #[test]
    fn overlap_of_partner_lists() {
        let per = vec![vec![1, 2, 3], vec![2, 3, 4], vec![0, 3]];
        assert!((overlap_of(&per, &[0, 1]) - 2.0 / 4.0).abs() < 1e-12);
        assert!((overlap_of(&per, &[0, 1, 2]) - 1.0 / 5.0).abs() < 1e-12);
        // Vantage client ids 0, 1, 2: 0 and 1 are not partners (1 is not in 0's list ...).
        let vantage = [10, 2, 3];
        assert!(!is_partner_group(&per, &vantage, &[0, 2]));
        assert!(is_partner_group(&[vec![3], vec![2]], &[2, 3], &[0, 1]));
    }
}
