//! `validate`: the overlay rebuilt from a run's captures against the run's ground truth.
//!
//! Definitions (docs/ANALYZE.md explains the choices):
//!
//! - Snapshots: `[t0 + k tau, t0 + (k+1) tau)` over the interval both the captures and the
//!   truth cover, on the analysis' time slots.
//! - Measured edge a -> b in a snapshot: a datagram of the layer (keep-alive; video packet) from
//!   a to b was captured in it. The source and the tracker are left out.
//! - Neighbour truth: a considered b an established neighbour (between its `neighbor_up` and
//!   `neighbor_down` for b, or its session's end) for part of the snapshot. The edge is
//!   *possible* when that part is longer than zero, *certain* when it is at least 1.5
//!   keep-alive periods (or the whole snapshot, if shorter), not counting the times the truth
//!   says the link was quiet (`keepalive_late`: the next keep-alive held back): otherwise a
//!   daemon sends a keep-alive to every established neighbour at least once per period, so in
//!   that time at least one must leave.
//! - Video truth: a response from p to c is *possible* in every snapshot that overlaps the time
//!   from c's `request_sent` to the later of p's `response_sent` (its last packet) and c's
//!   `response_received` (a host's emulated delay holds packets back after the daemon sent
//!   them), and *certain* in the snapshot holding `response_sent`.
//! - Precision = sum over snapshots of |measured and possible| / |measured|; recall = sum of
//!   |measured and certain| / |certain|. The "plain" figures use the possible edges on both
//!   sides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::{self, AnalyzeOptions, Ingest};
use crate::capture::{Endpoint, FileStats, MergeStats};
use crate::coverage::{self, Sightings};
use crate::error::{Error, Result};
use crate::overlay::{self, Grid, Layer, Roles};
use crate::rundir::RunDir;
use crate::trace::Trace;
use crate::truth::{NodeHistory, Truth};

/// What `validate` can be told.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    pub analyze: AnalyzeOptions,
    /// Snapshot lengths to report besides the defaults.
    pub taus_s: Vec<f64>,
    /// The daemons' keep-alive period (soplab: 1 s).
    pub keepalive_period_s: f64,
    /// Vantage sets per k in the coverage table: random ones, or every k-subset when there
    /// are no more than this.
    pub coverage_draws: u32,
}

impl Default for ValidateOptions {
    fn default() -> ValidateOptions {
        ValidateOptions {
            analyze: AnalyzeOptions { progress: true, ..AnalyzeOptions::default() },
            taus_s: vec![0.5, 1.0, 2.0, 2.5, 5.0, 10.0],
            keepalive_period_s: 1.0,
            coverage_draws: 20,
        }
    }
}

/// Precision and recall of one layer at one snapshot length.
#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    pub layer: Layer,
    pub tau_s: f64,
    pub snapshots: u64,
    /// Edge-snapshots measured from the captures.
    pub measured: u64,
    /// Edge-snapshots the truth makes certain, and possible.
    pub truth_strict: u64,
    pub truth_lenient: u64,
    /// Measured edge-snapshots that are possible (precision's numerator).
    pub measured_possible: u64,
    /// Certain edge-snapshots that were measured (recall's numerator).
    pub certain_measured: u64,
    pub precision: f64,
    pub recall: f64,
    /// Both against the possible edges.
    pub plain_precision: f64,
    pub plain_recall: f64,
    /// Lowest per-snapshot values (snapshots with something to measure).
    pub min_snapshot_precision: Option<f64>,
    pub min_snapshot_recall: Option<f64>,
    /// A few misses, to look into: "snapshot k: a -> b".
    pub false_positive_examples: Vec<String>,
    pub false_negative_examples: Vec<String>,
}

/// Degree errors at the default snapshot length, over (snapshot, peer) samples of peers whose
/// session overlaps the snapshot.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DegreeError {
    pub samples: u64,
    /// Mean |measured - possible| and |measured - certain| degree.
    pub mean_abs_error_possible: f64,
    pub mean_abs_error_certain: f64,
    /// Share of samples with certain <= measured <= possible.
    pub within_bounds: f64,
    pub mean_measured: f64,
    pub mean_certain: f64,
    pub mean_possible: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Degrees {
    pub neighbor_out: DegreeError,
    pub video_in: DegreeError,
    pub video_out: DegreeError,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerSeen {
    pub address: String,
    pub seen: bool,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub sessions: usize,
    pub silent_ends: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Peers {
    pub in_truth: u64,
    pub seen: u64,
    pub missing: Vec<String>,
    /// Endpoints in the captures that the truth does not know (with the datagrams they sent).
    pub unknown_endpoints: Vec<(String, u64)>,
    pub per_peer: Vec<PeerSeen>,
}

/// One row of the coverage table (Table 1 of Borges et al.).
#[derive(Debug, Clone, Serialize)]
pub struct CoverageRow {
    pub k: u64,
    pub draws: u32,
    /// Mean over draws of: active peers seen / active peers, summed over snapshots.
    pub peers_seen: f64,
    pub peers_seen_sd: f64,
    /// Mean over draws of: certain G_N edges seen / certain edges.
    pub edges_seen: f64,
    pub edges_seen_sd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// How the k vantage points' views were built: each vantage point sees the datagrams its
    /// peer sent or received, taken from the merged captures.
    pub method: &'static str,
    pub tau_s: f64,
    pub active_peers_per_snapshot: f64,
    pub rows: Vec<CoverageRow>,
}

/// One capture of the run and how much of it is its vantage peer's own traffic.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureCheck {
    #[serde(serialize_with = "crate::output::path_text")]
    pub path: PathBuf,
    pub host: Option<String>,
    pub address: Option<SocketAddr>,
    /// For a capture at one peer: share of its datagrams to or from that peer's address.
    pub own_traffic_share: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolesCheck {
    pub tracker: Option<SocketAddr>,
    pub source: Option<SocketAddr>,
    pub named_by: &'static str,
    /// What the traffic alone says (the analysis of a foreign trace would use these).
    pub tracker_from_traffic: Option<String>,
    pub source_from_traffic: Option<String>,
    pub traffic_agrees: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerPair {
    pub neighbor: LayerResult,
    pub video: LayerResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct OtherTaus {
    pub neighbor: Vec<LayerResult>,
    pub video: Vec<LayerResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidationInterval {
    pub from_us: i64,
    pub to_us: i64,
    pub seconds: f64,
}

/// validation.json.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub tool: String,
    #[serde(serialize_with = "crate::output::path_text")]
    pub run_dir: PathBuf,
    pub definitions: &'static str,
    pub captures: Vec<CaptureCheck>,
    pub roles: RolesCheck,
    pub interval: ValidationInterval,
    pub keepalive_period_s: f64,
    /// At the default snapshot lengths (tau_N, tau_V).
    pub layers: LayerPair,
    pub other_taus: OtherTaus,
    pub degrees: Degrees,
    pub peers: Peers,
    pub coverage: Coverage,
    /// The client layer (Borges et al.): sessions against the truth's, and the workload's
    /// model recovered.
    pub clients: crate::validate_clients::ClientValidation,
    pub inputs: Vec<FileStats>,
    pub merge: MergeStats,
}

const DEFINITIONS: &str = "docs/ANALYZE.md, section Validation: measured = a datagram of the layer captured in the \
snapshot; possible = truth allows it (link up for part of the snapshot; response between request and last packet); \
certain = truth requires it (link up >= 1.5 keep-alive periods of the snapshot; response's last packet in the \
snapshot); precision = measured&possible/measured, recall = certain&measured/certain, summed over snapshots";

/// Ids for the addresses of both sides: the trace's endpoint ids, then the truth's other
/// addresses in the order they are met.
struct Ids {
    map: HashMap<Endpoint, u32>,
    /// Each id's address, for the examples of misses.
    names: Vec<String>,
}

impl Ids {
    fn new(trace: &Trace) -> Ids {
        let map: HashMap<Endpoint, u32> = trace.endpoints.iter().enumerate().map(|(i, e)| (e.addr, i as u32)).collect();
        Ids { map, names: trace.endpoints.iter().map(|e| e.addr.to_string()).collect() }
    }
    fn id(&mut self, a: SocketAddr) -> u32 {
        let e = Endpoint::from_socket_addr(a);
        let next = self.names.len() as u32;
        *self.map.entry(e).or_insert_with(|| {
            self.names.push(e.to_string());
            next
        })
    }
    fn name(&self, id: u32) -> String {
        self.names.get(id as usize).cloned().unwrap_or_else(|| format!("#{id}"))
    }
}

/// Per snapshot, sorted de-duplicated edges.
type PerSnapshot = Vec<Vec<(u32, u32)>>;

fn sort_all(v: &mut PerSnapshot) {
    for s in v.iter_mut() {
        s.sort_unstable();
        s.dedup();
    }
}

fn intersection(a: &[(u32, u32)], b: &[(u32, u32)]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

struct Truths {
    strict: PerSnapshot,
    lenient: PerSnapshot,
}

fn grid_time(trace: &Trace, grid: &Grid, k: u64) -> (i64, i64) {
    let (lo, hi) = grid.range(k);
    (trace.slot_start(lo), trace.slot_start(hi))
}

/// Snapshot index range `[k0, k1)` overlapping `[s, e]`.
fn snapshots_overlapping(trace: &Trace, grid: &Grid, s: i64, e: i64) -> (u64, u64) {
    let t0 = trace.slot_start(grid.first);
    let tau = grid.tau as i64 * trace.opts.resolution_us;
    let end = t0 + tau * grid.count as i64;
    if e < t0 || s >= end {
        return (0, 0);
    }
    let k0 = ((s - t0).max(0) / tau) as u64;
    let k1 = (((e - t0) / tau) as u64 + 1).min(grid.count);
    (k0, k1)
}

fn neighbor_truth(
    trace: &Trace,
    truth: &Truth,
    grid: &Grid,
    ids: &mut Ids,
    excluded: &[SocketAddr],
    certain_us: i64,
) -> Truths {
    let n = grid.count as usize;
    let mut t = Truths { strict: vec![Vec::new(); n], lenient: vec![Vec::new(); n] };
    let tau_us = grid.tau as i64 * trace.opts.resolution_us;
    let need = certain_us.min(tau_us);
    for l in &truth.links {
        if excluded.contains(&l.from) || excluded.contains(&l.to) || l.down_us <= l.up_us {
            continue;
        }
        let (a, b) = (ids.id(l.from), ids.id(l.to));
        let (k0, k1) = snapshots_overlapping(trace, grid, l.up_us, l.down_us);
        let quiet = truth.quiet.get(&(l.from, l.to)).map_or(&[][..], Vec::as_slice);
        for k in k0..k1 {
            let (lo, hi) = grid_time(trace, grid, k);
            let (lo, hi) = (l.up_us.max(lo), l.down_us.min(hi));
            let overlap = hi - lo;
            if overlap > 0 {
                t.lenient[k as usize].push((a, b));
                // A keep-alive is certain only outside the link's quiet times.
                if overlap - quiet_within(quiet, lo, hi) >= need {
                    t.strict[k as usize].push((a, b));
                }
            }
        }
    }
    sort_all(&mut t.strict);
    sort_all(&mut t.lenient);
    t
}

/// How much of [lo, hi) the sorted quiet times cover. The keep-alive that opens a quiet time
/// is sent at its start, so a quiet time only takes away what follows it.
fn quiet_within(quiet: &[(i64, i64)], lo: i64, hi: i64) -> i64 {
    let mut covered = 0;
    let mut until = lo;
    for &(s, e) in quiet {
        let (s, e) = (s.max(until), e.min(hi));
        if e > s {
            covered += e - s;
            until = e;
        }
    }
    covered
}

fn video_truth(trace: &Trace, truth: &Truth, grid: &Grid, ids: &mut Ids, excluded: &[SocketAddr]) -> Truths {
    let n = grid.count as usize;
    let mut t = Truths { strict: vec![Vec::new(); n], lenient: vec![Vec::new(); n] };
    for r in &truth.responses {
        if excluded.contains(&r.parent) || excluded.contains(&r.child) {
            continue;
        }
        let Some((s, e)) = r.possible() else { continue };
        let (p, c) = (ids.id(r.parent), ids.id(r.child));
        let (k0, k1) = snapshots_overlapping(trace, grid, s, e);
        for k in k0..k1 {
            t.lenient[k as usize].push((p, c));
        }
        if let Some(sent) = r.sent_us {
            let (k0, k1) = snapshots_overlapping(trace, grid, sent, sent);
            for k in k0..k1 {
                t.strict[k as usize].push((p, c));
            }
        }
    }
    sort_all(&mut t.strict);
    sort_all(&mut t.lenient);
    t
}

fn measured(trace: &Trace, pairs: &[u32], layer: Layer, grid: &Grid) -> PerSnapshot {
    let mut out = vec![Vec::new(); grid.count as usize];
    overlay::for_each_snapshot(trace, pairs, layer, grid, |k, edges| out[k as usize] = edges.to_vec());
    sort_all(&mut out);
    out
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn compare(layer: Layer, tau_s: f64, m: &PerSnapshot, t: &Truths, name: &dyn Fn(u32) -> String) -> LayerResult {
    let (mut measured, mut strict, mut lenient, mut mp, mut cm, mut plain_tp) = (0, 0, 0, 0, 0, 0);
    let (mut min_p, mut min_r): (Option<f64>, Option<f64>) = (None, None);
    let (mut fps, mut fns) = (Vec::new(), Vec::new());
    for (k, ms) in m.iter().enumerate() {
        let (s, l) = (&t.strict[k], &t.lenient[k]);
        let a = intersection(ms, l);
        let b = intersection(ms, s);
        measured += ms.len() as u64;
        strict += s.len() as u64;
        lenient += l.len() as u64;
        mp += a;
        cm += b;
        plain_tp += a;
        if !ms.is_empty() {
            let p = a as f64 / ms.len() as f64;
            min_p = Some(min_p.map_or(p, |x: f64| x.min(p)));
        }
        if !s.is_empty() {
            let r = b as f64 / s.len() as f64;
            min_r = Some(min_r.map_or(r, |x: f64| x.min(r)));
        }
        if fps.len() < 10 {
            for e in ms.iter().filter(|e| l.binary_search(e).is_err()).take(10 - fps.len()) {
                fps.push(format!("snapshot {k}: {} -> {}", name(e.0), name(e.1)));
            }
        }
        if fns.len() < 10 {
            for e in s.iter().filter(|e| ms.binary_search(e).is_err()).take(10 - fns.len()) {
                fns.push(format!("snapshot {k}: {} -> {}", name(e.0), name(e.1)));
            }
        }
    }
    LayerResult {
        layer,
        tau_s,
        snapshots: m.len() as u64,
        measured,
        truth_strict: strict,
        truth_lenient: lenient,
        measured_possible: mp,
        certain_measured: cm,
        precision: ratio(mp, measured),
        recall: ratio(cm, strict),
        plain_precision: ratio(plain_tp, measured),
        plain_recall: ratio(plain_tp, lenient),
        min_snapshot_precision: min_p,
        min_snapshot_recall: min_r,
        false_positive_examples: fps,
        false_negative_examples: fns,
    }
}

fn degree_error(samples: &[(u32, u32, u32)]) -> DegreeError {
    if samples.is_empty() {
        return DegreeError::default();
    }
    let n = samples.len() as f64;
    let mut d = DegreeError { samples: samples.len() as u64, ..DegreeError::default() };
    let mut inside = 0u64;
    for &(m, c, p) in samples {
        d.mean_abs_error_possible += f64::from(m.abs_diff(p));
        d.mean_abs_error_certain += f64::from(m.abs_diff(c));
        d.mean_measured += f64::from(m);
        d.mean_certain += f64::from(c);
        d.mean_possible += f64::from(p);
        inside += u64::from(c <= m && m <= p);
    }
    d.mean_abs_error_possible /= n;
    d.mean_abs_error_certain /= n;
    d.mean_measured /= n;
    d.mean_certain /= n;
    d.mean_possible /= n;
    d.within_bounds = inside as f64 / n;
    d
}

/// (measured, certain, possible) degree per active peer per snapshot; `out` picks the edge end.
fn degree_samples(m: &PerSnapshot, t: &Truths, active: &[Vec<u32>], out: bool) -> Vec<(u32, u32, u32)> {
    let mut samples = Vec::new();
    let mut count: HashMap<u32, [u32; 3]> = HashMap::new();
    for (k, ms) in m.iter().enumerate() {
        count.clear();
        for (which, set) in [ms, &t.strict[k], &t.lenient[k]].into_iter().enumerate() {
            for e in set {
                let node = if out { e.0 } else { e.1 };
                count.entry(node).or_insert([0; 3])[which] += 1;
            }
        }
        for p in &active[k] {
            let c = count.get(p).copied().unwrap_or([0; 3]);
            samples.push((c[0], c[1], c[2]));
        }
    }
    samples
}

/// What the coverage table is drawn from: per snapshot, each active peer with the peers that
/// see it (itself and those it exchanged anything with), and each certain G_N edge that was
/// measured with its two ends; peers as indices into the truth's peers.
struct CoverageData {
    n: usize,
    peers: Sightings,
    edges: Sightings,
}

impl CoverageData {
    fn new(
        trace: &Trace,
        grid: &Grid,
        peers: &[u32],
        active: &[Vec<u32>],
        certain: &PerSnapshot,
        measured: &PerSnapshot,
    ) -> Self {
        let n = peers.len();
        let index: HashMap<u32, usize> = peers.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let mut seen_peers = Sightings::new(n);
        let words = seen_peers.words();
        let mut edges = Sightings::new(n);
        for (k, a) in adjacency(trace, grid, &index, words).iter().enumerate() {
            for i in active[k].iter().filter_map(|p| index.get(p).copied()) {
                let mut bits = a[i * words..(i + 1) * words].to_vec();
                bits[i / 64] |= 1 << (i % 64);
                seen_peers.push_bits(&bits);
            }
            for e in certain[k].iter().filter(|e| measured[k].binary_search(e).is_ok()) {
                if let (Some(&x), Some(&y)) = (index.get(&e.0), index.get(&e.1)) {
                    edges.push([x, y]);
                }
            }
        }
        edges.total = certain
            .iter()
            .map(|c| c.iter().filter(|e| index.contains_key(&e.0) && index.contains_key(&e.1)).count() as u64)
            .sum();
        CoverageData { n, peers: seen_peers, edges }
    }
}

/// Per snapshot of `grid`: bitsets of the peers each peer exchanged any datagram with.
fn adjacency(trace: &Trace, grid: &Grid, index: &HashMap<u32, usize>, words: usize) -> Vec<Vec<u64>> {
    let n = index.len();
    let peer_pairs: Vec<(usize, usize, u32)> = trace
        .pairs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((*index.get(&p.src)?, *index.get(&p.dst)?, i as u32)))
        .collect();
    let mut adj: Vec<Vec<u64>> = Vec::with_capacity(grid.count as usize);
    for k in 0..grid.count {
        let (lo, hi) = grid.range(k);
        let mut a = vec![0u64; n * words];
        for &(s, d, i) in &peer_pairs {
            if trace.pairs[i as usize].any.any(lo, hi) {
                a[s * words + d / 64] |= 1 << (d % 64);
                a[d * words + s / 64] |= 1 << (s % 64);
            }
        }
        adj.push(a);
    }
    adj
}

/// The coverage table (Table 1 of Borges et al.): active peers and certain G_N edges seen by
/// k vantage points, k = 1, 2, 5, ... and all peers.
fn coverage(trace: &Trace, layer: &LayerRun, tau_s: f64, peers: &[u32], active: &[Vec<u32>], draws: u32) -> Coverage {
    let data = CoverageData::new(trace, &layer.grid, peers, active, &layer.truths.strict, &layer.measured);
    let rows = coverage::rows(data.n, draws, 0x5eed_50bc_a575_0001, &[&data.peers, &data.edges])
        .into_iter()
        .map(|r| CoverageRow {
            k: r.k as u64,
            draws: r.draws,
            peers_seen: r.shares[0].0,
            peers_seen_sd: r.shares[0].1,
            edges_seen: r.shares[1].0,
            edges_seen_sd: r.shares[1].1,
        })
        .collect();
    let count = layer.grid.count;
    Coverage {
        method: "emulated: vantage point v sees the datagrams v sent or received (from the merged captures)",
        tau_s,
        active_peers_per_snapshot: if count == 0 { 0.0 } else { data.peers.total as f64 / count as f64 },
        rows,
    }
}

/// What the layer comparisons of one validation share.
struct Comparison<'a> {
    trace: &'a Trace,
    truth: &'a Truth,
    /// The interval both sides cover.
    from: i64,
    to: i64,
    /// The tracker and the source, in neither layer.
    excluded: Vec<SocketAddr>,
    neighbor_pairs: Vec<u32>,
    video_pairs: Vec<u32>,
    /// How long a link must be up in a snapshot for a keep-alive to be certain.
    certain_us: i64,
}

/// One layer compared at one snapshot length.
struct LayerRun {
    result: LayerResult,
    measured: PerSnapshot,
    truths: Truths,
    grid: Grid,
}

impl Comparison<'_> {
    fn run(&self, layer: Layer, tau: f64, ids: &mut Ids) -> Result<LayerRun> {
        let (trace, truth) = (self.trace, self.truth);
        let grid = Grid::new(trace, tau, self.from, self.to)?;
        let (truths, pairs) = match layer {
            Layer::Neighbor => {
                (neighbor_truth(trace, truth, &grid, ids, &self.excluded, self.certain_us), &self.neighbor_pairs)
            }
            Layer::Video => (video_truth(trace, truth, &grid, ids, &self.excluded), &self.video_pairs),
        };
        let measured = measured(trace, pairs, layer, &grid);
        let result = compare(layer, tau, &measured, &truths, &|i| ids.name(i));
        Ok(LayerRun { result, measured, truths, grid })
    }

    /// Both layers at the further snapshot lengths (those that are not the defaults).
    fn other_taus(&self, opts: &ValidateOptions, ids: &mut Ids) -> Result<OtherTaus> {
        let mut other = OtherTaus { neighbor: Vec::new(), video: Vec::new() };
        for &tau in &opts.taus_s {
            if (tau - opts.analyze.tau_neighbor_s).abs() > 1e-9 {
                other.neighbor.push(self.run(Layer::Neighbor, tau, ids)?.result);
            }
            if (tau - opts.analyze.tau_video_s).abs() > 1e-9 {
                other.video.push(self.run(Layer::Video, tau, ids)?.result);
            }
        }
        Ok(other)
    }
}

/// Validates the run in `dir`.
pub fn validate(dir: &Path, opts: &ValidateOptions) -> Result<Validation> {
    let run = RunDir::open(dir)?;
    if !run.has_truth {
        return Err(Error::NoTruth { path: dir.into() });
    }
    let truth = Truth::read_dir(&dir.join("truth"))?;
    let tracker = opts.analyze.tracker.or(run.tracker).or(truth.tracker());
    let source = opts.analyze.source.or(run.source).or(truth.source());
    let ing = ingest_run(&run, opts, tracker, source)?;
    let trace = &ing.trace;
    let roles: Roles =
        overlay::roles(trace, tracker.map(Endpoint::from_socket_addr), source.map(Endpoint::from_socket_addr));
    let is_peer = overlay::peers(trace, &roles);
    let (from, to) = interval(trace, &truth, &run)?;
    let cmp = Comparison {
        trace,
        truth: &truth,
        from,
        to,
        excluded: [tracker, source].into_iter().flatten().collect(),
        neighbor_pairs: overlay::layer_pairs(trace, &is_peer, Layer::Neighbor),
        video_pairs: overlay::layer_pairs(trace, &is_peer, Layer::Video),
        certain_us: (1.5 * opts.keepalive_period_s * 1e6).round() as i64,
    };
    let mut ids = Ids::new(trace);
    let neighbor = cmp.run(Layer::Neighbor, opts.analyze.tau_neighbor_s, &mut ids)?;
    let video = cmp.run(Layer::Video, opts.analyze.tau_video_s, &mut ids)?;
    let other_taus = cmp.other_taus(opts, &mut ids)?;

    let truth_peers: Vec<(u32, &NodeHistory)> = truth.peers().map(|n| (ids.id(n.addr), n)).collect();
    let n_active = active_peers(trace, &neighbor.grid, &truth_peers);
    let v_active = active_peers(trace, &video.grid, &truth_peers);
    let degrees = Degrees {
        neighbor_out: degree_error(&degree_samples(&neighbor.measured, &neighbor.truths, &n_active, true)),
        video_in: degree_error(&degree_samples(&video.measured, &video.truths, &v_active, false)),
        video_out: degree_error(&degree_samples(&video.measured, &video.truths, &v_active, true)),
    };
    let peer_ids: Vec<u32> = truth_peers.iter().map(|(id, _)| *id).collect();
    let tau_n = opts.analyze.tau_neighbor_s;
    let coverage = coverage(trace, &neighbor, tau_n, &peer_ids, &n_active, opts.coverage_draws);
    let mut client_opts = opts.analyze.clients.clone();
    client_opts.apply_run(&run);
    let clients = crate::analysis::client_layer(&ing, &roles, &client_opts);
    let played = played_schedule(&run, &truth)?;
    Ok(Validation {
        tool: format!("soplab-analyze {}", env!("CARGO_PKG_VERSION")),
        run_dir: dir.to_path_buf(),
        definitions: DEFINITIONS,
        captures: capture_checks(&run, &ing),
        roles: roles_check(trace, tracker, source, named_by(&run, opts)),
        interval: ValidationInterval { from_us: from, to_us: to, seconds: (to - from) as f64 / 1e6 },
        keepalive_period_s: opts.keepalive_period_s,
        layers: LayerPair { neighbor: neighbor.result, video: video.result },
        other_taus,
        degrees,
        peers: peers_seen(trace, &truth, &truth_peers),
        coverage,
        clients: crate::validate_clients::validate_clients(&clients, &truth, played.as_deref()),
        inputs: ing.files.clone(),
        merge: ing.merge.clone(),
    })
}

/// The schedule a churned run's peers played (workload.csv, as run.json names it), on the
/// run's clock; `None` for a run without churn.
fn played_schedule(run: &RunDir, truth: &Truth) -> Result<Option<Vec<crate::sessions::Span>>> {
    let Some(info) = &run.run else { return Ok(None) };
    let Some(file) = &info.workload else { return Ok(None) };
    let path = run.root.join(file);
    let schedule = soplab_rundir::schedule::Schedule::read_csv(&path)?;
    let peers: Vec<std::net::IpAddr> = info
        .hosts
        .iter()
        .filter(|h| h.churned)
        .filter_map(|h| h.address.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
        .collect();
    let end_us = if info.ended_us > 0 { info.ended_us as i64 } else { truth.last_us };
    Ok(Some(crate::sessions::played_spans(&schedule, &peers, info.epoch_us as i64, end_us)))
}

/// The run's captures read with the tracker and the source named.
fn ingest_run(
    run: &RunDir,
    opts: &ValidateOptions,
    tracker: Option<SocketAddr>,
    source: Option<SocketAddr>,
) -> Result<Ingest> {
    let files = run.capture_paths()?;
    let vantage: Vec<Option<SocketAddr>> = run.captures.iter().map(|c| c.address).collect();
    let aopts = AnalyzeOptions { tracker, source, ..opts.analyze.clone() };
    let ing = analysis::ingest(&files, &aopts, &vantage)?;
    if ing.trace.pairs.is_empty() {
        return Err(Error::Option(format!(
            "no UDP datagrams in the captures of {}; was tcpdump running?",
            run.root.display()
        )));
    }
    Ok(ing)
}

/// The interval both the captures and the truth (and run.json, when it says) cover.
fn interval(trace: &Trace, truth: &Truth, run: &RunDir) -> Result<(i64, i64)> {
    let mut from = trace.start_us.max(truth.start_us().unwrap_or(truth.first_us));
    let mut to = trace.end_us.min(truth.last_us);
    let (started, ended) = run.span_us();
    if let Some(s) = started {
        from = from.max(s);
    }
    if let Some(e) = ended {
        to = to.min(e);
    }
    if to <= from {
        return Err(Error::Option(format!(
            "the captures ({} .. {}) and the ground truth ({} .. {}) do not overlap in time; were they taken in the \
             same run?",
            trace.start_us, trace.end_us, truth.first_us, truth.last_us
        )));
    }
    Ok((from, to))
}

/// Who named the tracker and the source: an option, run.json or the truth.
fn named_by(run: &RunDir, opts: &ValidateOptions) -> &'static str {
    if opts.analyze.tracker.is_some() || opts.analyze.source.is_some() {
        "option"
    } else if run.named_by != "none" {
        run.named_by
    } else {
        "truth"
    }
}

/// The named roles against what the traffic alone says.
fn roles_check(
    trace: &Trace,
    tracker: Option<SocketAddr>,
    source: Option<SocketAddr>,
    named_by: &'static str,
) -> RolesCheck {
    let traffic: Roles = overlay::roles(trace, None, None);
    let first = |v: &[String]| v.first().cloned();
    let traffic_agrees = traffic.tracker.map(|e| e.socket_addr())
        == tracker.or(traffic.tracker.map(|e| e.socket_addr()))
        && traffic.source.map(|e| e.socket_addr()) == source.or(traffic.source.map(|e| e.socket_addr()));
    RolesCheck {
        tracker,
        source,
        named_by,
        tracker_from_traffic: first(&traffic.tracker_candidates),
        source_from_traffic: first(&traffic.source_candidates),
        traffic_agrees,
    }
}

/// Per snapshot of `grid`: the truth's peers whose session overlaps it.
fn active_peers(trace: &Trace, grid: &Grid, truth_peers: &[(u32, &NodeHistory)]) -> Vec<Vec<u32>> {
    (0..grid.count)
        .map(|k| {
            let (lo, hi) = grid_time(trace, grid, k);
            truth_peers
                .iter()
                .filter(|(_, n)| n.sessions.iter().any(|&(s, e)| s < hi && e >= lo))
                .map(|(id, _)| *id)
                .collect()
        })
        .collect()
}

/// Which of the truth's peers the captures saw, and which endpoints the truth does not know.
fn peers_seen(trace: &Trace, truth: &Truth, truth_peers: &[(u32, &NodeHistory)]) -> Peers {
    let mut per_peer = Vec::new();
    for (_, n) in truth_peers {
        let e = trace.endpoint_id(&Endpoint::from_socket_addr(n.addr)).map(|i| &trace.endpoints[i as usize]);
        let sent: u64 = e.map(|e| e.sent.iter().sum()).unwrap_or(0);
        let received: u64 = e.map(|e| e.received.iter().sum()).unwrap_or(0);
        per_peer.push(PeerSeen {
            address: n.addr.to_string(),
            seen: sent > 0,
            datagrams_sent: sent,
            datagrams_received: received,
            sessions: n.sessions.len(),
            silent_ends: n.silent_ends,
        });
    }
    let known: Vec<Endpoint> = truth.nodes.iter().map(|n| Endpoint::from_socket_addr(n.addr)).collect();
    let mut unknown: Vec<(String, u64)> = trace
        .endpoints
        .iter()
        .filter(|e| !known.contains(&e.addr))
        .map(|e| (e.addr.to_string(), e.sent.iter().sum::<u64>()))
        .filter(|(_, s)| *s > 0)
        .collect();
    unknown.sort_by_key(|u| std::cmp::Reverse(u.1));
    unknown.truncate(50);
    Peers {
        in_truth: per_peer.len() as u64,
        seen: per_peer.iter().filter(|p| p.seen).count() as u64,
        missing: per_peer.iter().filter(|p| !p.seen).map(|p| p.address.clone()).collect(),
        unknown_endpoints: unknown,
        per_peer,
    }
}

/// Each capture with the share of its datagrams that are its vantage peer's own.
fn capture_checks(run: &RunDir, ing: &Ingest) -> Vec<CaptureCheck> {
    run.captures
        .iter()
        .zip(&ing.vantage_match)
        .map(|(c, m)| CaptureCheck {
            path: c.path.clone(),
            host: c.host.clone(),
            address: c.address,
            own_traffic_share: m.map(|(a, b)| ratio(a, b)),
        })
        .collect()
}

#[cfg(test)]
mod quiet_tests {
    use super::quiet_within;

    #[test]
    fn quiet_times_count_once_and_only_inside_the_window() {
        assert_eq!(quiet_within(&[], 0, 100), 0);
        assert_eq!(quiet_within(&[(10, 30)], 0, 100), 20);
        assert_eq!(quiet_within(&[(-50, 30), (90, 200)], 0, 100), 40, "clipped to the window");
        assert_eq!(quiet_within(&[(10, 60), (40, 80)], 0, 100), 70, "overlaps counted once");
        assert_eq!(quiet_within(&[(120, 130)], 0, 100), 0);
    }
}
