//! The analysis end to end: read the captures into a [`Trace`], recognise the roles, compute
//! every figure of Tang et al. section 5 into a [`Report`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::capture::{Datagram, Dedup, Endpoint, FileStats, Inputs, MergeStats};
use crate::classify::Kind;
use crate::clients::{self, ClientOptions, Clients};
use crate::error::{Error, Result};
use crate::overlay::{self, Accumulated, DegreeAt, Gaps, Grid, Layer, NeighborSnapshots, PeerLoad, Roles};
use crate::overlay::{SourceChildren, Supernodes, VideoSnapshots};
use crate::paper;
use crate::trace::{DEFAULT_EXCLUDED_PORTS, Trace, TraceOptions, WireCounts};

/// Everything an analysis can be told.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Name the tracker or the source instead of recognising them from the traffic.
    pub tracker: Option<SocketAddr>,
    pub source: Option<SocketAddr>,
    /// The default snapshot lengths (Tang et al.: tau_N = 2.5 s, tau_V = 2.0 s).
    pub tau_neighbor_s: f64,
    pub tau_video_s: f64,
    /// Further snapshot lengths to report (section 5.3: 10 s; section 5.4: 10 s and 100 s).
    pub neighbor_taus_s: Vec<f64>,
    pub video_taus_s: Vec<f64>,
    /// T of the graphs accumulated over [0, T] (Fig. 3).
    pub accumulate_s: Vec<f64>,
    /// Interval of the snapshots and the throughput, seconds from the first datagram.
    pub from_s: Option<f64>,
    pub to_s: Option<f64>,
    /// Time slot width (snapshot lengths must be multiples of it).
    pub resolution_s: f64,
    pub dedup: Dedup,
    pub dedup_window_s: f64,
    pub excluded_ports: Vec<u16>,
    /// Show a progress bar (on a terminal only).
    pub progress: bool,
    /// The client layer (Borges et al.): session gap, time scale, transmission length.
    pub clients: ClientOptions,
}

impl Default for AnalyzeOptions {
    fn default() -> AnalyzeOptions {
        AnalyzeOptions {
            tracker: None,
            source: None,
            tau_neighbor_s: 2.5,
            tau_video_s: 2.0,
            neighbor_taus_s: vec![1.0, 10.0],
            video_taus_s: vec![1.0, 10.0, 100.0],
            accumulate_s: vec![10.0, 60.0, 300.0, 600.0],
            from_s: None,
            to_s: None,
            resolution_s: 0.1,
            dedup: Dedup::Auto,
            dedup_window_s: 0.05,
            excluded_ports: DEFAULT_EXCLUDED_PORTS.to_vec(),
            progress: true,
            clients: ClientOptions::default(),
        }
    }
}

/// Captures read into a trace.
pub struct Ingest {
    pub trace: Trace,
    pub files: Vec<FileStats>,
    pub merge: MergeStats,
    /// Per input: datagrams (before de-duplication) with the vantage address as source or
    /// destination, and all datagrams, when a vantage address was given for the input.
    pub vantage_match: Vec<Option<(u64, u64)>>,
    /// Per input: the address it was captured at, when at one peer (`None`: the whole network,
    /// or not known).
    pub vantage: Vec<Option<SocketAddr>>,
    pub seconds: f64,
}

impl Ingest {
    /// A trace built some other way (tests, benchmarks, a simulator's datagrams): no files, one
    /// view of the whole network.
    pub fn from_trace(trace: Trace) -> Ingest {
        Ingest {
            trace,
            files: Vec::new(),
            merge: MergeStats::default(),
            vantage_match: Vec::new(),
            vantage: Vec::new(),
            seconds: 0.0,
        }
    }
}

/// Reads `paths` into a [`Trace`]. `vantage[i]` is the address a capture was taken at, if it
/// was taken at one host (to check that it only holds that host's traffic).
pub fn ingest(paths: &[PathBuf], opts: &AnalyzeOptions, vantage: &[Option<SocketAddr>]) -> Result<Ingest> {
    resolution_us(opts)?;
    let mut inputs = Inputs::open(paths, opts.dedup, (opts.dedup_window_s * 1e6).round() as i64)?;
    let vantage_ips: Vec<Option<u128>> =
        (0..paths.len()).map(|i| vantage.get(i).copied().flatten().map(|a| Endpoint::from_socket_addr(a).ip)).collect();
    if vantage_ips.iter().any(Option::is_some) {
        inputs.set_observer(vantage_ips);
    }
    let mut ing = ingest_inputs(inputs, opts)?;
    ing.vantage = (0..paths.len()).map(|i| vantage.get(i).copied().flatten()).collect();
    Ok(ing)
}

/// Reads captures already opened (files, or any byte stream through
/// [`crate::capture::CaptureFile::from_reader`]) into a [`Trace`].
pub fn ingest_inputs(mut inputs: Inputs, opts: &AnalyzeOptions) -> Result<Ingest> {
    let t0 = Instant::now();
    let res_us = resolution_us(opts)?;
    let bar = progress_bar(opts.progress, inputs.total_bytes());
    let mut trace = Trace::new(TraceOptions {
        resolution_us: res_us,
        excluded_ports: opts.excluded_ports.clone(),
        from_s: opts.from_s,
        to_s: opts.to_s,
    });
    let mut d = Datagram::default();
    let mut n: u64 = 0;
    while inputs.next_datagram(&mut d) {
        trace.add(&d);
        n += 1;
        if n & 0xffff == 0 {
            bar.set_position(inputs.consumed());
        }
    }
    bar.finish_and_clear();
    let vantage_match = inputs.observed();
    Ok(Ingest {
        files: inputs.file_stats(),
        merge: inputs.stats.clone(),
        vantage_match,
        vantage: Vec::new(),
        trace,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn resolution_us(opts: &AnalyzeOptions) -> Result<i64> {
    let res_us = (opts.resolution_s * 1e6).round() as i64;
    if res_us <= 0 {
        return Err(Error::Option("--resolution must be positive".into()));
    }
    Ok(res_us)
}

/// "reading captures" with the bytes read, on a terminal when `show`.
fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    b.set_style(
        indicatif::ProgressStyle::with_template("{spinner} reading captures {bar:40} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// Packets and bytes of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindCount {
    pub kind: Kind,
    pub packets: u64,
    pub bytes: u64,
}

/// The trace as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    pub start_us: i64,
    pub end_us: i64,
    pub duration_s: f64,
    pub resolution_s: f64,
    /// Datagrams analysed (after de-duplication, without excluded ports).
    pub datagrams: u64,
    /// Datagrams to or from an excluded port.
    pub excluded_datagrams: u64,
    pub excluded_ports: Vec<u16>,
    pub endpoints: u64,
    pub pairs: u64,
    /// Memory held by the per-pair activity bitmaps.
    pub activity_bytes: u64,
    pub read_seconds: f64,
}

/// The G_N results.
#[derive(Debug, Clone, Serialize)]
pub struct NeighborReport {
    pub tau_s: f64,
    /// One entry per snapshot length, the default first.
    pub snapshots: Vec<NeighborSnapshots>,
    pub accumulated: Vec<Accumulated>,
    pub mean_outdegree_over_time: Vec<DegreeAt>,
    /// Distinct directed pairs that ever exchanged keep-alives (source left out).
    pub links_ever: u64,
}

/// The G_V results.
#[derive(Debug, Clone, Serialize)]
pub struct VideoReport {
    pub tau_s: f64,
    pub snapshots: Vec<VideoSnapshots>,
    pub links_ever: u64,
}

/// Fig. 2.
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    /// Gaps between consecutive keep-alives of a directed pair.
    pub keepalive: Gaps,
    /// Gaps between consecutive requests of a child to one parent.
    pub request: Gaps,
}

/// Fig. 7 and section 5.5.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub interval_s: f64,
    pub peers: Vec<PeerLoad>,
    pub source: SourceChildren,
    pub supernodes: Supernodes,
}

/// The headline numbers (`summary` in report.json; not summary.json's
/// `soplab_rundir::summary::Summary`).
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    pub peers: u64,
    pub neighbor_tau_s: f64,
    pub neighbor_mean_outdegree: f64,
    pub neighbor_sd_outdegree: f64,
    pub video_tau_s: f64,
    pub video_mean_indegree: f64,
    pub video_mean_outdegree: f64,
    pub video_max_indegree: u64,
    pub keepalive_gap_p95_s: Option<f64>,
    pub request_gap_p95_s: Option<f64>,
    pub source_max_children: u64,
    pub peers_ever_fed_by_source: u64,
    pub upload_gini: f64,
    pub download_gini: f64,
    pub pearson_children_upload: Option<f64>,
}

/// The interval of the snapshots and throughput.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub from_s: f64,
    pub to_s: f64,
    pub from_us: i64,
    pub to_us: i64,
}

/// report.json.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub inputs: Vec<FileStats>,
    pub merge: MergeStats,
    pub trace: TraceSummary,
    pub classification: Vec<KindCount>,
    /// soplab's header class against the size class.
    pub wire_crosscheck: WireCounts,
    pub roles: Roles,
    pub interval: Interval,
    pub summary: Headline,
    pub activation: Activation,
    pub neighbor: NeighborReport,
    pub video: VideoReport,
    pub load: LoadReport,
    /// Tang et al.'s results next to the trace's, one row per measurement (docs/ANALYZE.md).
    pub paper_comparison: Vec<paper::Row>,
    /// Borges et al.'s client layer: sessions, ON/OFF, partners, coverage (docs/ANALYZE.md,
    /// section Clients).
    pub clients: Clients,
}

fn taus(default: f64, more: &[f64]) -> Vec<f64> {
    let mut v = vec![default];
    for &t in more {
        if !v.iter().any(|x| (x - t).abs() < 1e-9) {
            v.push(t);
        }
    }
    v
}

/// Computes the report from an ingested trace.
pub fn report(ing: &Ingest, opts: &AnalyzeOptions) -> Result<Report> {
    let trace = &ing.trace;
    if trace.pairs.is_empty() {
        return Err(nothing_to_analyse(ing, opts));
    }
    let roles = overlay::roles(
        trace,
        opts.tracker.map(Endpoint::from_socket_addr),
        opts.source.map(Endpoint::from_socket_addr),
    );
    let is_peer = overlay::peers(trace, &roles);
    let (from_us, to_us) = trace.interval();
    let n_pairs = overlay::layer_pairs(trace, &is_peer, Layer::Neighbor);
    let v_pairs = overlay::layer_pairs(trace, &is_peer, Layer::Video);
    let neighbor = neighbor_report(trace, &is_peer, &n_pairs, opts)?;
    let video = video_report(trace, &v_pairs, opts)?;
    let vgrid = Grid::new(trace, opts.tau_video_s, from_us, to_us)?;
    let (peers, source, supernodes) = overlay::load(trace, &roles, &is_peer, &v_pairs, &vgrid, opts.tau_video_s);
    let activation = Activation {
        keepalive: overlay::gaps(&trace.keepalive_gaps, 5.0),
        request: overlay::gaps(&trace.request_gaps, 5.0),
    };
    let load = LoadReport { interval_s: (to_us - from_us) as f64 / 1e6, peers, source, supernodes };
    let summary = headline(&is_peer, &neighbor, &video, &activation, &load);
    let interval = Interval {
        from_s: (from_us - trace.start_us) as f64 / 1e6,
        to_s: (to_us - trace.start_us) as f64 / 1e6,
        from_us,
        to_us,
    };
    let paper_comparison = paper::compare(&paper::Sources {
        trace,
        is_peer: &is_peer,
        neighbor_pairs: &n_pairs,
        video_pairs: &v_pairs,
        interval: &interval,
        interval_asked: opts.from_s.is_some() || opts.to_s.is_some(),
        source_known: roles.source_id.is_some(),
        summary: &summary,
        neighbor: &neighbor,
        video: &video,
        activation: &activation,
        load: &load,
    });
    let clients = client_layer(ing, &roles, &opts.clients);
    let classification = Kind::ALL
        .iter()
        .map(|&k| KindCount { kind: k, packets: trace.packets[k as usize], bytes: trace.bytes[k as usize] })
        .collect();
    Ok(Report {
        tool: format!("soplab-analyze {}", env!("CARGO_PKG_VERSION")),
        inputs: ing.files.clone(),
        merge: ing.merge.clone(),
        trace: trace_summary(ing),
        classification,
        wire_crosscheck: trace.wire.clone(),
        roles,
        interval,
        summary,
        activation,
        neighbor,
        video,
        load,
        paper_comparison,
        clients,
    })
}

/// The client layer: the vantage peers are the addresses of the per-peer captures; a capture
/// of unknown vantage (a bridge, a file given by name) sees every client's partners.
pub(crate) fn client_layer(ing: &Ingest, roles: &Roles, opts: &ClientOptions) -> Clients {
    let mut vantage: Vec<u128> = ing.vantage.iter().flatten().map(|a| Endpoint::from_socket_addr(*a).ip).collect();
    // And those run.json names (a bridge capture alone cannot tell them).
    vantage.extend(opts.vantage.iter().map(|&ip| Endpoint::from_socket_addr(std::net::SocketAddr::new(ip, 0)).ip));
    vantage.sort_unstable();
    vantage.dedup();
    let full_view =
        ing.files.is_empty() || ing.vantage.len() < ing.files.len() || ing.vantage.iter().any(Option::is_none);
    clients::clients(&ing.trace, roles, &vantage, full_view, opts)
}

/// Why a trace without datagrams cannot be analysed, with the counts that say where they went.
fn nothing_to_analyse(ing: &Ingest, opts: &AnalyzeOptions) -> Error {
    let sum = |f: fn(&FileStats) -> u64| ing.files.iter().map(f).sum::<u64>();
    Error::Option(format!(
        "no UDP datagrams to analyse in {}: {} records, {} UDP ({} to or from the excluded ports {:?}), {} not IP, \
         {} IP but not UDP, {} malformed, {} of unsupported link types {:?}, {} cut by the snapshot length, {} with \
         a time before 1970 or after 2^62 us (pcapng: check if_tsresol and if_tsoffset); check the capture filter and \
         the link type",
        ing.files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(", "),
        sum(|f| f.records),
        sum(|f| f.udp),
        ing.trace.excluded,
        opts.excluded_ports,
        sum(|f| f.not_ip),
        sum(|f| f.not_udp),
        sum(|f| f.malformed),
        sum(|f| f.unsupported_link),
        ing.files.iter().flat_map(|f| f.link_types.iter().copied()).collect::<Vec<_>>(),
        sum(|f| f.cut_headers),
        sum(|f| f.bad_timestamps),
    ))
}

/// Seconds from the first to the last datagram.
fn duration_s(trace: &Trace) -> f64 {
    (trace.end_us - trace.start_us) as f64 / 1e6
}

/// G_N: snapshots at every tau (the default first), graphs accumulated over [0, T] and their
/// mean out-degree over time.
fn neighbor_report(trace: &Trace, is_peer: &[bool], pairs: &[u32], opts: &AnalyzeOptions) -> Result<NeighborReport> {
    let (from_us, to_us) = trace.interval();
    let dur = duration_s(trace);
    let mut snapshots = Vec::new();
    for tau in taus(opts.tau_neighbor_s, &opts.neighbor_taus_s) {
        let grid = Grid::new(trace, tau, from_us, to_us)?;
        snapshots.push(overlay::neighbor_snapshots(trace, pairs, &grid, tau));
    }
    let mut ts: Vec<f64> = opts.accumulate_s.iter().copied().filter(|&t| t <= dur + 1e-9).collect();
    if ts.is_empty() || *ts.last().unwrap_or(&0.0) < dur {
        ts.push(dur);
    }
    let accumulated: Vec<Accumulated> = ts.iter().map(|&t| overlay::accumulated(trace, is_peer, pairs, t)).collect();
    let step = (dur / 600.0).max(1.0);
    Ok(NeighborReport {
        tau_s: opts.tau_neighbor_s,
        snapshots,
        accumulated,
        mean_outdegree_over_time: overlay::accumulated_over_time(trace, is_peer, pairs, step),
        links_ever: pairs.len() as u64,
    })
}

/// G_V over its `pairs`: snapshots at every tau, the default first.
fn video_report(trace: &Trace, pairs: &[u32], opts: &AnalyzeOptions) -> Result<VideoReport> {
    let (from_us, to_us) = trace.interval();
    let mut snapshots = Vec::new();
    for tau in taus(opts.tau_video_s, &opts.video_taus_s) {
        let grid = Grid::new(trace, tau, from_us, to_us)?;
        snapshots.push(overlay::video_snapshots(trace, pairs, &grid, tau));
    }
    Ok(VideoReport { tau_s: opts.tau_video_s, snapshots, links_ever: pairs.len() as u64 })
}

/// The headline numbers, at the default snapshot lengths.
fn headline(
    is_peer: &[bool],
    neighbor: &NeighborReport,
    video: &VideoReport,
    activation: &Activation,
    load: &LoadReport,
) -> Headline {
    let (n0, v0) = (&neighbor.snapshots[0], &video.snapshots[0]);
    Headline {
        peers: is_peer.iter().filter(|&&p| p).count() as u64,
        neighbor_tau_s: n0.tau_s,
        neighbor_mean_outdegree: n0.outdegree.mean,
        neighbor_sd_outdegree: n0.outdegree.sd,
        video_tau_s: v0.tau_s,
        video_mean_indegree: v0.indegree.mean,
        video_mean_outdegree: v0.outdegree.mean,
        video_max_indegree: v0.indegree.max,
        keepalive_gap_p95_s: activation.keepalive.p95_s,
        request_gap_p95_s: activation.request.p95_s,
        source_max_children: load.source.max,
        peers_ever_fed_by_source: load.source.peers_ever,
        upload_gini: load.supernodes.upload_gini,
        download_gini: load.supernodes.download_gini,
        pearson_children_upload: load.supernodes.pearson_children_upload,
    }
}

/// The trace as a whole.
fn trace_summary(ing: &Ingest) -> TraceSummary {
    let trace = &ing.trace;
    TraceSummary {
        start_us: trace.start_us,
        end_us: trace.end_us,
        duration_s: duration_s(trace),
        resolution_s: trace.opts.resolution_us as f64 / 1e6,
        datagrams: trace.packets.iter().sum(),
        excluded_datagrams: trace.excluded,
        excluded_ports: trace.opts.excluded_ports.clone(),
        endpoints: trace.endpoints.len() as u64,
        pairs: trace.pairs.len() as u64,
        activity_bytes: trace.activity_bytes() as u64,
        read_seconds: ing.seconds,
    }
}
