//! The two-layer overlay of Tang et al. section 5, rebuilt from a [`Trace`]: who is the
//! tracker and who the source, the neighbour graph G_N (a -> b when a sends b keep-alives) and
//! the video graph G_V (p -> c when p sends c video), the source left out of both, in
//! snapshots of length tau and accumulated over [0, T]; degree distributions and their fits,
//! gap distributions, throughput per peer, the source's children and the supernodes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use serde::Serialize;

use crate::capture::Endpoint;
use crate::classify::Kind;
use crate::series::Series;
use crate::stats::{self, Distribution, GaussianFit, TailFits};
use crate::trace::{Activity, PairStats, Trace};

/// The two layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// G_N: a -> b when a sent b a keep-alive (42 bytes) in the snapshot.
    Neighbor,
    /// G_V: p -> c when p sent c a video packet (1320 bytes or a tail) in the snapshot.
    Video,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Neighbor => "neighbor",
            Layer::Video => "video",
        }
    }
    pub fn activity(self, p: &PairStats) -> &Activity {
        match self {
            Layer::Neighbor => &p.keepalive,
            Layer::Video => &p.video,
        }
    }
}

/// Who the tracker and the source are, and how that was decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Roles {
    #[serde(serialize_with = "ser_endpoint")]
    pub tracker: Option<Endpoint>,
    #[serde(serialize_with = "ser_endpoint")]
    pub source: Option<Endpoint>,
    /// "named" (an option or run.json), "traffic" (recognised), or "none".
    pub tracker_by: &'static str,
    pub source_by: &'static str,
    /// Every endpoint that sends video and no requests, most video first (the source is the
    /// first unless named).
    pub source_candidates: Vec<String>,
    /// Every endpoint that receives 20-byte tracker requests and answers with peer lists.
    pub tracker_candidates: Vec<String>,
    #[serde(skip)]
    pub tracker_id: Option<u32>,
    #[serde(skip)]
    pub source_id: Option<u32>,
}

fn ser_endpoint<S: serde::Serializer>(e: &Option<Endpoint>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

/// Recognises the tracker (receives 20-byte requests, answers with 21 + 6k-byte peer lists,
/// sends no video) and the source (sends video, sends no request) unless they are named.
pub fn roles(trace: &Trace, tracker: Option<Endpoint>, source: Option<Endpoint>) -> Roles {
    let mut r = Roles { tracker_by: "none", source_by: "none", ..Roles::default() };
    let sent = |e: &crate::trace::EndpointStats, k: Kind| e.sent[k as usize];
    let video_sent = |e: &crate::trace::EndpointStats| sent(e, Kind::VideoFull) + sent(e, Kind::VideoTail);
    let mut trackers: Vec<(u64, u32)> = trace
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.received[Kind::TrackerRequest as usize] > 0 && sent(e, Kind::TrackerReply) > 0 && video_sent(e) == 0
        })
        .map(|(i, e)| (e.received[Kind::TrackerRequest as usize], i as u32))
        .collect();
    trackers.sort_by(|a, b| b.cmp(a));
    r.tracker_candidates = trackers.iter().map(|(_, i)| trace.endpoints[*i as usize].addr.to_string()).collect();
    if let Some(t) = tracker {
        r.tracker = Some(t);
        r.tracker_id = trace.endpoint_id(&t);
        r.tracker_by = "named";
    } else if let Some((_, i)) = trackers.first() {
        r.tracker_id = Some(*i);
        r.tracker = Some(trace.endpoints[*i as usize].addr);
        r.tracker_by = "traffic";
    }
    let mut sources: Vec<(u64, u32)> = trace
        .endpoints
        .iter()
        .enumerate()
        .filter(|(i, e)| video_sent(e) > 0 && sent(e, Kind::Request) == 0 && Some(*i as u32) != r.tracker_id)
        .map(|(i, e)| (video_sent(e), i as u32))
        .collect();
    sources.sort_by(|a, b| b.cmp(a));
    r.source_candidates = sources.iter().map(|(_, i)| trace.endpoints[*i as usize].addr.to_string()).collect();
    if let Some(s) = source {
        r.source = Some(s);
        r.source_id = trace.endpoint_id(&s);
        r.source_by = "named";
    } else if let Some((_, i)) = sources.first() {
        r.source_id = Some(*i);
        r.source = Some(trace.endpoints[*i as usize].addr);
        r.source_by = "traffic";
    }
    if r.source_by == "traffic" && sources.len() > 1 {
        tracing::warn!(
            candidates = sources.len(),
            chosen = %r.source.map(|e| e.to_string()).unwrap_or_default(),
            "several endpoints send video and no requests (partial captures?); the one sending most is taken as the \
             source: name it with --source ADDR:PORT if that is wrong"
        );
    }
    r
}

/// The peers: endpoints that sent or received keep-alives, requests or video, other than the
/// tracker and the source. `is_peer[id]` per endpoint id.
pub fn peers(trace: &Trace, roles: &Roles) -> Vec<bool> {
    trace
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let i = Some(i as u32);
            let active = [Kind::KeepAlive, Kind::Request, Kind::VideoFull, Kind::VideoTail]
                .iter()
                .any(|&k| e.sent[k as usize] + e.received[k as usize] > 0);
            active && i != roles.tracker_id && i != roles.source_id
        })
        .collect()
}

/// A grid of snapshots: `count` snapshots of `tau` slots from `first` on.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub first: u64,
    pub tau: u64,
    pub count: u64,
}

impl Grid {
    /// Snapshots of `tau_s` seconds over `[from_us, to_us)` (absolute), whole snapshots only,
    /// aligned on the trace's slots. Fails when tau is not a multiple of the slot width.
    pub fn new(trace: &Trace, tau_s: f64, from_us: i64, to_us: i64) -> Result<Grid, crate::Error> {
        let res = trace.opts.resolution_us;
        let tau_us = (tau_s * 1e6).round() as i64;
        if tau_us <= 0 || tau_us % res != 0 {
            return Err(crate::Error::Option(format!(
                "snapshot length {tau_s} s is not a multiple of the time resolution {} s; choose multiples of it or \
                 change --resolution",
                res as f64 / 1e6
            )));
        }
        let tau = (tau_us / res) as u64;
        // In 128 bits: the interval's ends may be anything an option makes of them.
        let (origin, res) = (i128::from(trace.origin_us), i128::from(res));
        let slots = |x: i128| u64::try_from(x).unwrap_or(u64::MAX);
        let first = slots(((i128::from(from_us) - origin).max(0) + res - 1) / res);
        let end = slots((i128::from(to_us) - origin).max(0) / res);
        let count = end.saturating_sub(first) / tau;
        Ok(Grid { first, tau, count })
    }

    /// Slot range of snapshot k.
    pub fn range(&self, k: u64) -> (u64, u64) {
        let lo = self.first + k * self.tau;
        (lo, lo + self.tau)
    }
}

/// The pairs of a layer (both ends peers, some activity), as indices into `trace.pairs`.
pub fn layer_pairs(trace: &Trace, is_peer: &[bool], layer: Layer) -> Vec<u32> {
    trace
        .pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| is_peer[p.src as usize] && is_peer[p.dst as usize] && !layer.activity(p).is_empty())
        .map(|(i, _)| i as u32)
        .collect()
}

/// Calls `f(k, edges)` for every snapshot of `grid` in which the layer has an edge, in order,
/// with its edges (src, dst) in `pairs` order. Snapshots without an edge are not visited (the
/// callers count them arithmetically), so the cost is O(E log P) for E active (pair, snapshot)
/// and P pairs, whatever the number of snapshots.
pub fn for_each_snapshot(
    trace: &Trace,
    pairs: &[u32],
    layer: Layer,
    grid: &Grid,
    mut f: impl FnMut(u64, &[(u32, u32)]),
) {
    let mut cursors: Vec<_> = pairs
        .iter()
        .map(|&i| layer.activity(&trace.pairs[i as usize]).snapshots(grid.first, grid.tau, grid.count))
        .collect();
    // (next snapshot with an edge, position in `pairs`), earliest first.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
        cursors.iter_mut().enumerate().filter_map(|(j, c)| c.next().map(|k| Reverse((k, j)))).collect();
    let mut edges = Vec::new();
    while let Some(&Reverse((k, _))) = heap.peek() {
        edges.clear();
        while let Some(Reverse((_, j))) = heap.peek_mut().filter(|top| top.0.0 == k).map(PeekMut::pop) {
            let p = &trace.pairs[pairs[j] as usize];
            edges.push((p.src, p.dst));
            if let Some(next) = cursors[j].next() {
                heap.push(Reverse((next, j)));
            }
        }
        f(k, &edges);
    }
}

/// Out- and in-degrees of one snapshot's nodes, cleared in the time of the snapshot's edges
/// (not of all the nodes: a trace may have many nodes and many snapshots with few edges).
struct Degrees {
    out: Vec<u32>,
    inn: Vec<u32>,
    /// The nodes of the last snapshot's edges, ascending.
    nodes: Vec<u32>,
}

impl Degrees {
    fn new(n: usize) -> Degrees {
        Degrees { out: vec![0; n], inn: vec![0; n], nodes: Vec::new() }
    }

    fn of(&mut self, edges: &[(u32, u32)]) {
        for &i in &self.nodes {
            self.out[i as usize] = 0;
            self.inn[i as usize] = 0;
        }
        self.nodes.clear();
        for &(a, b) in edges {
            self.out[a as usize] += 1;
            self.inn[b as usize] += 1;
            self.nodes.extend([a, b]);
        }
        self.nodes.sort_unstable();
        self.nodes.dedup();
    }

    /// (node, out-degree) for the nodes with out-degree >= 1, ascending.
    fn out(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.nodes.iter().map(|&i| (i, self.out[i as usize])).filter(|&(_, d)| d > 0)
    }

    /// (node, in-degree) for the nodes with in-degree >= 1, ascending.
    fn inn(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.nodes.iter().map(|&i| (i, self.inn[i as usize])).filter(|&(_, d)| d > 0)
    }
}

/// G_N in snapshots of one length (Fig. 3 right, the 2.5 s and 10 s results of section 5.3).
#[derive(Debug, Clone, Serialize)]
pub struct NeighborSnapshots {
    pub tau_s: f64,
    pub snapshots: u64,
    /// Out-degree samples: one per peer with out-degree >= 1 per snapshot.
    pub outdegree: Distribution,
    pub gaussian: GaussianFit,
    /// Mean and standard deviation of the out-degree (over peers with out-degree >= 1) per
    /// snapshot, and edges per snapshot (0 in a snapshot without edges).
    pub mean_by_snapshot: Series<f64>,
    pub sd_by_snapshot: Series<f64>,
    pub edges_by_snapshot: Series<u64>,
}

/// G_V in snapshots of one length (Fig. 5, 6).
#[derive(Debug, Clone, Serialize)]
pub struct VideoSnapshots {
    pub tau_s: f64,
    pub snapshots: u64,
    /// In-degree (parents) samples: one per peer with at least one parent per snapshot.
    pub indegree: Distribution,
    pub indegree_gaussian: GaussianFit,
    /// Out-degree (children) samples: one per peer with at least one child per snapshot.
    pub outdegree: Distribution,
    pub outdegree_fits: TailFits,
    pub edges_by_snapshot: Series<u64>,
}

pub fn neighbor_snapshots(trace: &Trace, pairs: &[u32], grid: &Grid, tau_s: f64) -> NeighborSnapshots {
    let mut deg = Degrees::new(trace.endpoints.len());
    let mut counts = Vec::new();
    let (mut means, mut sds) = (Series::new(grid.count), Series::new(grid.count));
    let mut edges_by = Series::new(grid.count);
    let mut xs = Vec::new();
    for_each_snapshot(trace, pairs, Layer::Neighbor, grid, |k, edges| {
        deg.of(edges);
        xs.clear();
        for (_, d) in deg.out() {
            Distribution::push_count(&mut counts, d as usize);
            xs.push(f64::from(d));
        }
        let (m, sd) = stats::mean_sd(&xs);
        means.push(k, m);
        sds.push(k, sd);
        edges_by.push(k, edges.len() as u64);
    });
    let outdegree = Distribution::from_counts(counts);
    let gaussian = stats::gaussian_fit(&outdegree);
    NeighborSnapshots {
        tau_s,
        snapshots: grid.count,
        outdegree,
        gaussian,
        mean_by_snapshot: means,
        sd_by_snapshot: sds,
        edges_by_snapshot: edges_by,
    }
}

pub fn video_snapshots(trace: &Trace, pairs: &[u32], grid: &Grid, tau_s: f64) -> VideoSnapshots {
    let mut deg = Degrees::new(trace.endpoints.len());
    let (mut oc, mut ic) = (Vec::new(), Vec::new());
    let mut edges_by = Series::new(grid.count);
    for_each_snapshot(trace, pairs, Layer::Video, grid, |k, edges| {
        deg.of(edges);
        for (_, d) in deg.out() {
            Distribution::push_count(&mut oc, d as usize);
        }
        for (_, d) in deg.inn() {
            Distribution::push_count(&mut ic, d as usize);
        }
        edges_by.push(k, edges.len() as u64);
    });
    let indegree = Distribution::from_counts(ic);
    let outdegree = Distribution::from_counts(oc);
    VideoSnapshots {
        tau_s,
        snapshots: grid.count,
        indegree_gaussian: stats::gaussian_fit(&indegree),
        outdegree_fits: stats::tail_fits(&outdegree),
        indegree,
        outdegree,
        edges_by_snapshot: edges_by,
    }
}

/// G_N accumulated over [0, T] (Fig. 3): every link once active up to T, multiple links merged.
#[derive(Debug, Clone, Serialize)]
pub struct Accumulated {
    pub t_s: f64,
    /// Peers seen by T (one out-degree sample each, zeros included).
    pub nodes: u64,
    pub outdegree: Distribution,
    /// Link density p of a random graph with the same mean out-degree: mean / (nodes - 1).
    pub random_graph_p: f64,
    /// Binomial(nodes - 1, p) degree pdf of that random graph.
    pub random_graph_pdf: Vec<f64>,
}

/// First slot of keep-alive activity per G_N pair.
fn first_slots(trace: &Trace, pairs: &[u32]) -> Vec<(u32, u64)> {
    pairs
        .iter()
        .filter_map(|&i| {
            let p = &trace.pairs[i as usize];
            p.keepalive.first().map(|s| (p.src, s))
        })
        .collect()
}

pub fn accumulated(trace: &Trace, is_peer: &[bool], pairs: &[u32], t_s: f64) -> Accumulated {
    let limit = trace.start_us.saturating_add((t_s * 1e6) as i64);
    let end_slot = trace.slot(limit);
    let firsts = first_slots(trace, pairs);
    let mut deg = vec![0u64; trace.endpoints.len()];
    for &(src, s) in &firsts {
        if s < end_slot {
            deg[src as usize] += 1;
        }
    }
    let mut counts = Vec::new();
    let mut nodes = 0u64;
    for (i, e) in trace.endpoints.iter().enumerate() {
        if is_peer[i] && e.first_us < limit {
            Distribution::push_count(&mut counts, deg[i] as usize);
            nodes += 1;
        }
    }
    let outdegree = Distribution::from_counts(counts);
    let p = if nodes > 1 { (outdegree.mean / (nodes - 1) as f64).min(1.0) } else { 0.0 };
    Accumulated { t_s, nodes, random_graph_p: p, random_graph_pdf: stats::binomial_pdf(nodes, p), outdegree }
}

/// Mean and standard deviation of the accumulated G_N out-degree at one time (Fig. 4).
#[derive(Debug, Clone, Serialize)]
pub struct DegreeAt {
    pub t_s: f64,
    pub nodes: u64,
    pub mean: f64,
    pub sd: f64,
}

pub fn accumulated_over_time(trace: &Trace, is_peer: &[bool], pairs: &[u32], step_s: f64) -> Vec<DegreeAt> {
    let dur = (trace.end_us - trace.start_us) as f64 / 1e6;
    let mut firsts = first_slots(trace, pairs);
    firsts.sort_by_key(|f| f.1);
    let mut peers: Vec<(i64, u32)> =
        trace.endpoints.iter().enumerate().filter(|(i, _)| is_peer[*i]).map(|(i, e)| (e.first_us, i as u32)).collect();
    peers.sort();
    let mut deg = vec![0u64; trace.endpoints.len()];
    let (mut fi, mut pi) = (0, 0);
    let mut present: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    let mut t = step_s;
    while t <= dur + 1e-9 {
        let limit = trace.start_us.saturating_add((t * 1e6) as i64);
        let end_slot = trace.slot(limit);
        while fi < firsts.len() && firsts[fi].1 < end_slot {
            deg[firsts[fi].0 as usize] += 1;
            fi += 1;
        }
        while pi < peers.len() && peers[pi].0 < limit {
            present.push(peers[pi].1);
            pi += 1;
        }
        let xs: Vec<f64> = present.iter().map(|&i| deg[i as usize] as f64).collect();
        let (mean, sd) = stats::mean_sd(&xs);
        out.push(DegreeAt { t_s: t, nodes: xs.len() as u64, mean, sd });
        t += step_s;
    }
    out
}

/// Gaps between consecutive packets of one kind per pair (Fig. 2).
#[derive(Debug, Clone, Serialize)]
pub struct Gaps {
    pub gaps: u64,
    pub bin_s: f64,
    /// Probability mass per bin, bins from 0.
    pub pdf: Vec<f64>,
    pub beyond_last_bin: u64,
    pub max_s: f64,
    pub median_s: Option<f64>,
    /// The 95th percentile: the activation period tau the data suggests.
    pub p95_s: Option<f64>,
    pub p99_s: Option<f64>,
}

pub fn gaps(h: &crate::trace::GapHistogram, up_to_s: f64) -> Gaps {
    let n = h.n.max(1) as f64;
    let bins = ((up_to_s * 1e6) as i64 / h.bin_us).max(1) as usize;
    let bins = bins.min(h.counts.len());
    Gaps {
        gaps: h.n,
        bin_s: h.bin_us as f64 / 1e6,
        pdf: h.counts[..bins].iter().map(|&c| c as f64 / n).collect(),
        beyond_last_bin: h.counts[bins..].iter().sum::<u64>() + h.overflow,
        max_s: h.max_us as f64 / 1e6,
        median_s: h.quantile_s(0.5),
        p95_s: h.quantile_s(0.95),
        p99_s: h.quantile_s(0.99),
    }
}

/// One peer's load (Fig. 7) and place in the video graph.
#[derive(Debug, Clone, Serialize)]
pub struct PeerLoad {
    pub address: String,
    /// Video payload bytes per second over the interval.
    pub upload_bps: f64,
    pub download_bps: f64,
    pub download_from_source_bps: f64,
    pub download_from_peers_bps: f64,
    /// Mean G_V out-degree (children) over the tau_V snapshots, zeros included.
    pub mean_children: f64,
    pub max_children: u64,
    /// Distinct children and parents over the interval (the source counts as a parent).
    pub children_ever: u64,
    pub parents_ever: u64,
    pub had_source_as_parent: bool,
    /// Distinct G_N out-neighbours over the interval.
    pub neighbors_ever: u64,
}

/// The source's children (Tang et al.: at most 11 at once, few ever).
#[derive(Debug, Clone, Serialize)]
pub struct SourceChildren {
    pub tau_s: f64,
    /// Children per tau_V snapshot.
    pub by_snapshot: Series<u64>,
    pub max: u64,
    pub mean: f64,
    /// Peers that had the source as a parent at some time in the interval.
    pub peers_ever: u64,
    /// Share of all video bytes peers downloaded that came from the source.
    pub share_of_download: f64,
}

/// Top uploaders and how upload goes with out-degree (section 5.5).
#[derive(Debug, Clone, Serialize)]
pub struct Supernodes {
    /// The k top uploaders, k = the number of peers that ever had the source as parent (at
    /// least 1): Tang et al.'s supernodes are those peers.
    pub top_uploaders: Vec<String>,
    /// Share of the top uploaders that had the source as a parent.
    pub top_fed_by_source: f64,
    /// Share of all upload done by the top uploaders.
    pub top_upload_share: f64,
    /// Correlation over peers of mean G_V out-degree and upload.
    pub pearson_children_upload: Option<f64>,
    pub spearman_children_upload: Option<f64>,
    /// Gini coefficient of upload and of download over peers (0: equal).
    pub upload_gini: f64,
    pub download_gini: f64,
}

fn gini(xs: &[f64]) -> f64 {
    let n = xs.len();
    let sum: f64 = xs.iter().sum();
    if n == 0 || sum <= 0.0 {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let weighted: f64 = v.iter().enumerate().map(|(i, x)| (2.0 * (i as f64 + 1.0) - n as f64 - 1.0) * x).sum();
    weighted / (n as f64 * sum)
}

/// Per-peer load, the source's children and the supernodes over `grid` (tau_V snapshots).
pub fn load(
    trace: &Trace,
    roles: &Roles,
    is_peer: &[bool],
    video_pairs: &[u32],
    grid: &Grid,
    tau_s: f64,
) -> (Vec<PeerLoad>, SourceChildren, Supernodes) {
    let totals = Totals::of(trace, roles, is_peer, grid);
    // Peers in address order, so that "peer id" in Fig. 7 is stable.
    let mut peer_ids: Vec<usize> = (0..trace.endpoints.len()).filter(|&i| is_peer[i]).collect();
    peer_ids.sort_by_key(|&i| trace.endpoints[i].addr);
    let loads = peer_loads(trace, &totals, &peer_ids, video_pairs, grid);
    let source = source_children(trace, roles, is_peer, grid, tau_s, &totals, &peer_ids);
    let supernodes = supernodes(&loads, source.peers_ever);
    (loads, source, supernodes)
}

/// Per endpoint: video bytes and distinct G_V and G_N partners over the interval.
struct Totals {
    upload: Vec<u64>,
    download: Vec<u64>,
    from_source: Vec<u64>,
    children: Vec<u64>,
    parents: Vec<u64>,
    neighbors: Vec<u64>,
    /// Had the source as a parent in the interval.
    fed: Vec<bool>,
}

impl Totals {
    /// Over the pairs from a peer or the source to a peer.
    fn of(trace: &Trace, roles: &Roles, is_peer: &[bool], grid: &Grid) -> Totals {
        let n = trace.endpoints.len();
        let (lo, hi) = (grid.first, grid.first + grid.count * grid.tau);
        let zeros = vec![0u64; n];
        let mut t = Totals {
            upload: zeros.clone(),
            download: zeros.clone(),
            from_source: zeros.clone(),
            children: zeros.clone(),
            parents: zeros.clone(),
            neighbors: zeros,
            fed: vec![false; n],
        };
        for p in &trace.pairs {
            let (s, d) = (p.src as usize, p.dst as usize);
            if !is_peer[d] {
                continue;
            }
            let source_edge = Some(p.src) == roles.source_id;
            if !is_peer[s] && !source_edge {
                continue;
            }
            t.download[d] += p.video_bytes;
            if source_edge {
                t.from_source[d] += p.video_bytes;
                if p.video.any(lo, hi) {
                    t.fed[d] = true;
                    t.parents[d] += 1;
                }
                continue;
            }
            t.upload[s] += p.video_bytes;
            if p.video.any(lo, hi) {
                t.children[s] += 1;
                t.parents[d] += 1;
            }
            if p.keepalive.any(lo, hi) {
                t.neighbors[s] += 1;
            }
        }
        t
    }
}

/// Fig. 7's rows: each peer's throughput and children, in `peer_ids` order.
fn peer_loads(trace: &Trace, t: &Totals, peer_ids: &[usize], video_pairs: &[u32], grid: &Grid) -> Vec<PeerLoad> {
    let (from, to) = trace.interval();
    let secs = ((to - from) as f64 / 1e6).max(1e-6);
    let n = trace.endpoints.len();
    let mut child_sum = vec![0u64; n];
    let mut child_max = vec![0u64; n];
    let mut deg = Degrees::new(n);
    for_each_snapshot(trace, video_pairs, Layer::Video, grid, |_, edges| {
        deg.of(edges);
        for (i, d) in deg.out() {
            child_sum[i as usize] += u64::from(d);
            child_max[i as usize] = child_max[i as usize].max(u64::from(d));
        }
    });
    peer_ids
        .iter()
        .map(|&i| PeerLoad {
            address: trace.endpoints[i].addr.to_string(),
            upload_bps: t.upload[i] as f64 / secs,
            download_bps: t.download[i] as f64 / secs,
            download_from_source_bps: t.from_source[i] as f64 / secs,
            download_from_peers_bps: (t.download[i] - t.from_source[i]) as f64 / secs,
            mean_children: if grid.count == 0 { 0.0 } else { child_sum[i] as f64 / grid.count as f64 },
            max_children: child_max[i],
            children_ever: t.children[i],
            parents_ever: t.parents[i],
            had_source_as_parent: t.fed[i],
            neighbors_ever: t.neighbors[i],
        })
        .collect()
}

/// The source's children per snapshot, and how much of the peers' video came from it.
fn source_children(
    trace: &Trace,
    roles: &Roles,
    is_peer: &[bool],
    grid: &Grid,
    tau_s: f64,
    t: &Totals,
    peer_ids: &[usize],
) -> SourceChildren {
    let source_pairs: Vec<u32> = match roles.source_id {
        Some(s) => trace
            .pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.src == s && is_peer[p.dst as usize] && !p.video.is_empty())
            .map(|(i, _)| i as u32)
            .collect(),
        None => Vec::new(),
    };
    let mut by_snapshot = Series::new(grid.count);
    for_each_snapshot(trace, &source_pairs, Layer::Video, grid, |k, edges| by_snapshot.push(k, edges.len() as u64));
    let total_down: u64 = peer_ids.iter().map(|&i| t.download[i]).sum();
    let total_from_source: u64 = peer_ids.iter().map(|&i| t.from_source[i]).sum();
    // The mean over every snapshot, the ones without children included.
    let sum: f64 = by_snapshot.stored().iter().map(|&(_, c)| c as f64).sum();
    SourceChildren {
        tau_s,
        max: by_snapshot.stored().iter().map(|&(_, c)| c).max().unwrap_or(0),
        mean: if grid.count == 0 { 0.0 } else { sum / grid.count as f64 },
        by_snapshot,
        peers_ever: peer_ids.iter().filter(|&&i| t.fed[i]).count() as u64,
        share_of_download: if total_down == 0 { 0.0 } else { total_from_source as f64 / total_down as f64 },
    }
}

/// The top uploaders (as many as peers the source fed, at least 1) and how upload spreads.
fn supernodes(loads: &[PeerLoad], fed_by_source: u64) -> Supernodes {
    let mut order: Vec<usize> = (0..loads.len()).collect();
    order.sort_by(|&a, &b| loads[b].upload_bps.total_cmp(&loads[a].upload_bps));
    let k = (fed_by_source as usize).max(1).min(loads.len());
    let top = &order[..k];
    let ups: Vec<f64> = loads.iter().map(|l| l.upload_bps).collect();
    let downs: Vec<f64> = loads.iter().map(|l| l.download_bps).collect();
    let kids: Vec<f64> = loads.iter().map(|l| l.mean_children).collect();
    let up_total: f64 = ups.iter().sum();
    Supernodes {
        top_uploaders: top.iter().map(|&i| loads[i].address.clone()).collect(),
        top_fed_by_source: if k == 0 {
            0.0
        } else {
            top.iter().filter(|&&i| loads[i].had_source_as_parent).count() as f64 / k as f64
        },
        top_upload_share: if up_total > 0.0 { top.iter().map(|&i| ups[i]).sum::<f64>() / up_total } else { 0.0 },
        pearson_children_upload: stats::pearson(&kids, &ups),
        spearman_children_upload: stats::spearman(&kids, &ups),
        upload_gini: gini(&ups),
        download_gini: gini(&downs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_bounds() {
        assert!(gini(&[1.0, 1.0, 1.0]).abs() < 1e-12);
        assert!(gini(&[0.0, 0.0, 0.0, 10.0]) > 0.7);
    }

    /// Visiting only the snapshots with edges gives what looking at every snapshot gives.
    #[test]
    fn snapshots_with_edges_are_every_snapshot_with_edges() {
        use crate::capture::Datagram;
        use crate::trace::TraceOptions;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut trace = Trace::new(TraceOptions::default());
        let mut ts = 1_000_000_000_000i64;
        for _ in 0..3000 {
            // Mostly close together, sometimes a long silence, sometimes out of order.
            ts += match next(20) {
                0 => 600_000_000,
                1 => -3_000_000,
                _ => next(400_000) as i64,
            };
            let d = Datagram {
                ts_us: ts,
                src: Endpoint::v4([10, 0, 0, next(6) as u8], 3908),
                dst: Endpoint::v4([10, 0, 1, next(6) as u8], 3908),
                len: [42, 1320, 46][next(3) as usize],
                ..Datagram::default()
            };
            trace.add(&d);
        }
        let pairs: Vec<u32> = (0..trace.pairs.len() as u32).collect();
        for (layer, tau) in [(Layer::Neighbor, 2.5), (Layer::Video, 2.0), (Layer::Neighbor, 100.0)] {
            let grid = Grid::new(&trace, tau, trace.start_us, trace.end_us).unwrap();
            let mut got = Vec::new();
            for_each_snapshot(&trace, &pairs, layer, &grid, |k, e| got.push((k, e.to_vec())));
            let want: Vec<(u64, Vec<(u32, u32)>)> = (0..grid.count)
                .map(|k| {
                    let (lo, hi) = grid.range(k);
                    let ps = pairs.iter().map(|&i| &trace.pairs[i as usize]);
                    (k, ps.filter(|p| layer.activity(p).any(lo, hi)).map(|p| (p.src, p.dst)).collect::<Vec<_>>())
                })
                .filter(|(_, e)| !e.is_empty())
                .collect();
            assert!(want.len() > 100 && (want.len() as u64) < grid.count, "{} of {}", want.len(), grid.count);
            assert_eq!(got, want, "{layer:?} at {tau} s");
        }
    }
}
