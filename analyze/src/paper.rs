//! Tang et al.'s numbers next to the trace's: the `paper_comparison` rows of report.json,
//! `paper_comparison.csv`, the table `analyze` prints and the reference marks of the plots.
//! The paper's values are in [`PAPER`] and nowhere else, so that a reader checks them once
//! against the paper (docs/ANALYZE.md, section "Paper against trace").

use std::borrow::Cow;

use serde::Serialize;

use crate::analysis::{Activation, Headline, Interval, LoadReport, NeighborReport, VideoReport};
use crate::clients::Clients;
use crate::overlay::{self, Grid, NeighborSnapshots, VideoSnapshots};
use crate::trace::{GapHistogram, Trace};

/// A value in the paper: a number, or a statement where the paper gives none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PaperValue {
    Number(f64),
    Statement(&'static str),
}

impl std::fmt::Display for PaperValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaperValue::Number(x) => f.write_str(&number(*x)),
            PaperValue::Statement(s) => f.write_str(s),
        }
    }
}

/// One result of Tang et al. and how the trace measures it.
pub struct Reference {
    /// Stable snake_case key (report.json, the CSV table, the docs).
    pub key: &'static str,
    pub description: &'static str,
    pub paper: PaperValue,
    /// Where in the paper the value is.
    pub cite: &'static str,
    /// For the shares of other peers: the paper's mean and how many other peers it is of.
    pub share_of: Option<(f64, u64)>,
    measure: fn(&Ctx) -> Measure,
}

pub const KEEPALIVE_GAP_P95: &str = "keepalive_gap_p95_s";
pub const REQUEST_GAP_P95: &str = "request_gap_p95_s";
pub const GN_SHARE_2_5S: &str = "gn_outdegree_share_2_5s";
pub const GN_SHARE_10S: &str = "gn_outdegree_share_10s";
pub const GV_INDEGREE_2S: &str = "gv_indegree_mean_2s";
pub const GV_POWERLAW_2S: &str = "gv_outdegree_powerlaw_2s";
pub const UPLOAD_GINI: &str = "upload_gini";
pub const DOWNLOAD_GINI: &str = "download_gini";
pub const SOURCE_MAX_CHILDREN: &str = "source_max_children";
pub const SOURCE_PEERS_EVER_FED: &str = "source_peers_ever_fed";
pub const GN_ACCUMULATED_300S: &str = "gn_accumulated_full_mesh_300s";

/// Tang et al.'s [5 min, 35 min], the interval of their snapshot results (section 5.3, 5.4).
pub const PAPER_INTERVAL_S: (f64, f64) = (300.0, 2100.0);
/// The T of the accumulated neighbour graph the paper calls a full mesh (section 5.3, Fig. 3).
pub const PAPER_ACCUMULATE_S: f64 = 300.0;

/// The paper's values, section 5 of Tang et al., "Topology dynamics in a P2PTV network"
/// (IFIP Networking 2009): 51 PlanetLab peers and a source provider, 40 minutes.
pub const PAPER: &[Reference] = &[
    // 5.2, Fig. 2 left: "more than 95% of the cases ... within 2.5 seconds", so tau_N ~ 2.5 s.
    Reference {
        key: KEEPALIVE_GAP_P95,
        description: "95th percentile of the gaps between consecutive keep-alives of a directed pair, s",
        paper: PaperValue::Number(2.5),
        cite: "section 5.2, Fig. 2 (left)",
        share_of: None,
        measure: keepalive_gap,
    },
    // 5.2, Fig. 2 right: consecutive requests of a child to one parent, tau_V ~ 2.0 s.
    Reference {
        key: REQUEST_GAP_P95,
        description: "95th percentile of the gaps between consecutive requests of a child to one parent, s",
        paper: PaperValue::Number(2.0),
        cite: "section 5.2, Fig. 2 (right)",
        share_of: None,
        measure: request_gap,
    },
    // 5.3: 720 snapshots of 2.5 s over [5 min, 35 min], 28,050 samples, mean 37.73; 50 others.
    Reference {
        key: GN_SHARE_2_5S,
        description: "mean G_N out-degree of the 2.5 s snapshots, as a share of the other peers",
        paper: PaperValue::Number(37.73 / 50.0),
        cite: "section 5.3 (37.73 of 50 other peers)",
        share_of: Some((37.73, 50)),
        measure: gn_share_2_5,
    },
    // 5.3: "extended the snapshot duration to 10 seconds ... increases slightly to 41.60".
    Reference {
        key: GN_SHARE_10S,
        description: "mean G_N out-degree of the 10 s snapshots, as a share of the other peers",
        paper: PaperValue::Number(41.60 / 50.0),
        cite: "section 5.3 (41.60 of 50 other peers)",
        share_of: Some((41.60, 50)),
        measure: gn_share_10,
    },
    // 5.4, Fig. 5: 900 snapshots of 2.0 s, 32,320 in-degree samples, "on average, 1.86".
    Reference {
        key: GV_INDEGREE_2S,
        description: "mean G_V in-degree (parents) of the 2 s snapshots",
        paper: PaperValue::Number(1.86),
        cite: "section 5.4, Fig. 5",
        share_of: None,
        measure: gv_indegree,
    },
    // 5.4, Fig. 6: power law on log-log; "on a log-lin scale also fits well with a line".
    Reference {
        key: GV_POWERLAW_2S,
        description: "R^2 of the log-log line minus R^2 of the log-linear line, 2 s G_V out-degree \
                      (> 0: a power law fits better)",
        paper: PaperValue::Statement("yes (power law)"),
        cite: "section 5.4, Fig. 6 (the log-linear line fits well too)",
        share_of: None,
        measure: gv_powerlaw,
    },
    // 5.5, Fig. 7: "they behave differently regarding their uploading performance".
    Reference {
        key: UPLOAD_GINI,
        description: "Gini coefficient of the upload throughput over peers",
        paper: PaperValue::Statement("very uneven"),
        cite: "section 5.5, Fig. 7",
        share_of: None,
        measure: upload_gini,
    },
    // 5.5, Fig. 7: "Peers tend to have uniform downloading throughput".
    Reference {
        key: DOWNLOAD_GINI,
        description: "Gini coefficient of the download throughput over peers",
        paper: PaperValue::Statement("about uniform"),
        cite: "section 5.5, Fig. 7",
        share_of: None,
        measure: download_gini,
    },
    // 5.5: "limited the maximum number of children connected to the SP simultaneously to 11".
    Reference {
        key: SOURCE_MAX_CHILDREN,
        description: "most children of the source in one 2 s (tau_V) snapshot",
        paper: PaperValue::Number(11.0),
        cite: "section 5.5",
        share_of: None,
        measure: source_max_children,
    },
    // 5.5: "During the entire experiment, only 15 nodes downloaded video blocks from the SP".
    Reference {
        key: SOURCE_PEERS_EVER_FED,
        description: "peers that ever downloaded video from the source",
        paper: PaperValue::Number(15.0),
        cite: "section 5.5 (in 40 minutes)",
        share_of: None,
        measure: source_peers_ever_fed,
    },
    // 5.3, Fig. 3 bottom right: over [0, 300 s] "a full mesh", random graph with p = 0.999.
    Reference {
        key: GN_ACCUMULATED_300S,
        description: "link density p of G_N accumulated over [0, 300 s] (mean out-degree / (peers - 1))",
        paper: PaperValue::Number(0.999),
        cite: "section 5.3, Fig. 3 (bottom right)",
        share_of: None,
        measure: gn_accumulated,
    },
];

/// The reference of `key` (one of the constants above).
pub fn reference(key: &str) -> Option<&'static Reference> {
    PAPER.iter().find(|r| r.key == key)
}

/// The paper's number for `key`, for the plots' reference marks.
pub fn paper_number(key: &str) -> Option<f64> {
    match reference(key)?.paper {
        PaperValue::Number(x) => Some(x),
        PaperValue::Statement(_) => None,
    }
}

/// A mean out-degree and the number of other peers it is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    pub mean: f64,
    pub other_peers: u64,
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub measurement: &'static str,
    pub description: &'static str,
    pub paper: PaperValue,
    /// Where in the paper.
    pub paper_source: &'static str,
    /// `None` (null) when the trace cannot give it; the note says why.
    pub measured: Option<f64>,
    /// [from, to], seconds from the first datagram, the measurement actually covered.
    pub interval_s: [f64; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For the shares: the mean out-degree and the other peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
    /// For the yes/no rows: the trace's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<bool>,
}

/// What the comparison reads: the trace, its layers and the report's parts.
pub struct Sources<'a> {
    pub trace: &'a Trace,
    pub is_peer: &'a [bool],
    pub neighbor_pairs: &'a [u32],
    pub video_pairs: &'a [u32],
    /// The analysis interval (`--from`, `--to`, else the whole trace).
    pub interval: &'a Interval,
    /// `--from` or `--to` was given: the snapshot rows keep that interval, not the paper's.
    pub interval_asked: bool,
    pub source_known: bool,
    pub summary: &'a Headline,
    pub neighbor: &'a NeighborReport,
    pub video: &'a VideoReport,
    pub activation: &'a Activation,
    pub load: &'a LoadReport,
}

/// The sources and the interval of the snapshot rows.
struct Ctx<'a> {
    s: &'a Sources<'a>,
    /// Absolute microseconds.
    snap: (i64, i64),
    /// `snap` is the analysis interval, so the report's snapshots can be reused.
    reuse: bool,
}

/// A row's measured part.
struct Measure {
    value: Option<f64>,
    interval_s: [f64; 2],
    note: Option<String>,
    share: Option<Share>,
    answer: Option<bool>,
}

impl Measure {
    fn some(value: f64, interval_s: [f64; 2], note: String) -> Measure {
        Measure { value: Some(value), interval_s, note: Some(note), share: None, answer: None }
    }
    fn none(interval_s: [f64; 2], why: String) -> Measure {
        Measure { value: None, interval_s, note: Some(why), share: None, answer: None }
    }
}

/// Every row of [`PAPER`], measured on the trace.
pub fn compare(s: &Sources) -> Vec<Row> {
    let ctx = Ctx::new(s);
    PAPER
        .iter()
        .map(|r| {
            let m = (r.measure)(&ctx);
            Row {
                measurement: r.key,
                description: r.description,
                paper: r.paper,
                paper_source: r.cite,
                measured: m.value.filter(|x| x.is_finite()),
                interval_s: m.interval_s,
                note: m.note,
                share: m.share,
                answer: m.answer,
            }
        })
        .collect()
}

impl<'a> Ctx<'a> {
    /// The snapshot rows use the paper's interval when the trace covers it and no other was
    /// asked for, else the analysis interval: a shorter trace still gets every row.
    fn new(s: &'a Sources<'a>) -> Ctx<'a> {
        let t = s.trace;
        let (from, to) = PAPER_INTERVAL_S;
        let covers = t.end_us - t.start_us >= (to * 1e6) as i64;
        let snap = if covers && !s.interval_asked {
            (t.start_us + (from * 1e6) as i64, t.start_us + (to * 1e6) as i64)
        } else {
            (s.interval.from_us, s.interval.to_us)
        };
        Ctx { s, snap, reuse: snap == (s.interval.from_us, s.interval.to_us) }
    }

    fn rel(&self, us: i64) -> f64 {
        (us - self.s.trace.start_us) as f64 / 1e6
    }
    fn snap_s(&self) -> [f64; 2] {
        [self.rel(self.snap.0), self.rel(self.snap.1)]
    }
    fn analysis_s(&self) -> [f64; 2] {
        [self.s.interval.from_s, self.s.interval.to_s]
    }
    fn whole_s(&self) -> [f64; 2] {
        [0.0, self.rel(self.s.trace.end_us)]
    }

    /// G_N snapshots of `tau` over the snapshot interval: the report's when they cover it.
    fn neighbor(&self, tau: f64) -> Result<Cow<'a, NeighborSnapshots>, String> {
        let found = self.s.neighbor.snapshots.iter().find(|n| (n.tau_s - tau).abs() < 1e-9);
        if let Some(n) = found.filter(|_| self.reuse) {
            return Ok(Cow::Borrowed(n));
        }
        let grid = Grid::new(self.s.trace, tau, self.snap.0, self.snap.1).map_err(|e| e.to_string())?;
        Ok(Cow::Owned(overlay::neighbor_snapshots(self.s.trace, self.s.neighbor_pairs, &grid, tau)))
    }

    /// G_V snapshots of `tau` over the snapshot interval.
    fn video(&self, tau: f64) -> Result<Cow<'a, VideoSnapshots>, String> {
        let found = self.s.video.snapshots.iter().find(|v| (v.tau_s - tau).abs() < 1e-9);
        if let Some(v) = found.filter(|_| self.reuse) {
            return Ok(Cow::Borrowed(v));
        }
        let grid = Grid::new(self.s.trace, tau, self.snap.0, self.snap.1).map_err(|e| e.to_string())?;
        Ok(Cow::Owned(overlay::video_snapshots(self.s.trace, self.s.video_pairs, &grid, tau)))
    }
}

fn gap(c: &Ctx, g: &overlay::Gaps, h: &GapHistogram, what: &str) -> Measure {
    match g.p95_s {
        Some(p) => Measure::some(p, c.whole_s(), format!("{} {what} gaps", g.gaps)),
        None if g.gaps > 0 => {
            let range_s = (h.bin_us as f64 * h.counts.len() as f64 / 1e6).round();
            let why = format!(
                "the 95th percentile is beyond {range_s} s, the gap histogram's range: {} of {} {what} gaps are longer",
                h.overflow, g.gaps
            );
            Measure::none(c.whole_s(), why)
        }
        None => Measure::none(c.whole_s(), format!("no two consecutive {what}s of a pair in the trace")),
    }
}

fn keepalive_gap(c: &Ctx) -> Measure {
    gap(c, &c.s.activation.keepalive, &c.s.trace.keepalive_gaps, "keep-alive")
}

fn request_gap(c: &Ctx) -> Measure {
    gap(c, &c.s.activation.request, &c.s.trace.request_gaps, "request")
}

/// Mean G_N out-degree at `tau` over the other peers (all peers of the trace but one).
fn gn_share(c: &Ctx, key: &str, tau: f64) -> Measure {
    let other = c.s.summary.peers.saturating_sub(1);
    let n = match c.neighbor(tau) {
        Ok(n) => n,
        Err(why) => return Measure::none(c.snap_s(), why),
    };
    if n.snapshots == 0 || other == 0 {
        let why = format!("{} of {tau} s, {other} other peers", count(n.snapshots, "snapshot"));
        return Measure::none(c.snap_s(), why);
    }
    let (pm, po) = reference(key).and_then(|r| r.share_of).unwrap_or_default();
    let mean = n.outdegree.mean;
    let note = format!(
        "mean out-degree {mean:.2} of {other} other peers over {} (paper: {pm:.2} of {po})",
        count(n.snapshots, "snapshot")
    );
    let mut m = Measure::some(mean / other as f64, c.snap_s(), note);
    m.share = Some(Share { mean, other_peers: other });
    m
}

fn gn_share_2_5(c: &Ctx) -> Measure {
    gn_share(c, GN_SHARE_2_5S, 2.5)
}

fn gn_share_10(c: &Ctx) -> Measure {
    gn_share(c, GN_SHARE_10S, 10.0)
}

fn gv_indegree(c: &Ctx) -> Measure {
    match c.video(2.0) {
        Ok(v) if v.indegree.samples > 0 => Measure::some(
            v.indegree.mean,
            c.snap_s(),
            format!(
                "{} in {}, at most {}",
                count(v.indegree.samples, "sample"),
                count(v.snapshots, "snapshot"),
                v.indegree.max
            ),
        ),
        Ok(v) => {
            Measure::none(c.snap_s(), format!("no peer had a parent in {} of 2 s", count(v.snapshots, "snapshot")))
        }
        Err(why) => Measure::none(c.snap_s(), why),
    }
}

fn gv_powerlaw(c: &Ctx) -> Measure {
    let v = match c.video(2.0) {
        Ok(v) => v,
        Err(why) => return Measure::none(c.snap_s(), why),
    };
    let f = &v.outdegree_fits;
    let (Some(ll), Some(lin)) = (&f.log_log, &f.log_linear) else {
        let values = v.outdegree.counts.iter().skip(1).filter(|&&n| n > 0).count();
        return Measure::none(c.snap_s(), format!("out-degrees take {values} value(s): too few to fit a line"));
    };
    let diff = ll.r2 - lin.r2;
    let yes = diff > 0.0;
    let note = format!(
        "{}: R^2 {:.3} (log-log) against {:.3} (log-linear) over {} out-degrees",
        if yes { "yes" } else { "no" },
        ll.r2,
        lin.r2,
        ll.points
    );
    let mut m = Measure::some(diff, c.snap_s(), note);
    m.answer = Some(yes);
    m
}

fn gini(c: &Ctx, value: f64, what: &str) -> Measure {
    let n = c.s.load.peers.len();
    if n < 2 {
        return Measure::none(c.analysis_s(), format!("{n} peers: no spread to measure"));
    }
    Measure::some(value, c.analysis_s(), format!("{what} over {n} peers (0: all equal)"))
}

fn upload_gini(c: &Ctx) -> Measure {
    gini(c, c.s.load.supernodes.upload_gini, "upload")
}

fn download_gini(c: &Ctx) -> Measure {
    gini(c, c.s.load.supernodes.download_gini, "download")
}

/// The source rows keep the analysis interval (the whole trace by default): the paper
/// counted them over the entire experiment.
fn source_row(c: &Ctx, value: u64, note: String) -> Measure {
    if !c.s.source_known {
        return Measure::none(c.analysis_s(), "no source recognised; name it with --source ADDR:PORT".into());
    }
    Measure::some(value as f64, c.analysis_s(), note)
}

fn source_max_children(c: &Ctx) -> Measure {
    let s = &c.s.load.source;
    let n = count(s.by_snapshot.len(), "snapshot");
    source_row(c, s.max, format!("mean {:.2} over {n} of {} s", s.mean, s.tau_s))
}

fn source_peers_ever_fed(c: &Ctx) -> Measure {
    let s = &c.s.load.source;
    source_row(c, s.peers_ever, format!("{:.0}% of the peers' video came from the source", 100.0 * s.share_of_download))
}

fn gn_accumulated(c: &Ctx) -> Measure {
    let dur = c.rel(c.s.trace.end_us);
    let t = PAPER_ACCUMULATE_S.min(dur);
    let found = c.s.neighbor.accumulated.iter().find(|a| (a.t_s - t).abs() < 1e-9);
    let a = match found {
        Some(a) => Cow::Borrowed(a),
        None => Cow::Owned(overlay::accumulated(c.s.trace, c.s.is_peer, c.s.neighbor_pairs, t)),
    };
    if a.nodes < 2 {
        return Measure::none([0.0, t], format!("{} peers by {t:.0} s", a.nodes));
    }
    let mut note = format!("mean out-degree {:.2} of {} other peers", a.outdegree.mean, a.nodes - 1);
    if t < PAPER_ACCUMULATE_S {
        note += &format!("; the trace is only {dur:.0} s long: accumulated over all of it");
    }
    Measure::some(a.random_graph_p, [0.0, t], note)
}

/// A number with at most 4 decimals and no trailing zeros.
pub fn number(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".into() } else { s.into() }
}

/// "1 snapshot", "2 snapshots".
fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Seconds to one decimal, without a trailing ".0".
fn seconds(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(String::from).unwrap_or(s)
}

/// The rows as an aligned text table, for a terminal.
pub fn table(rows: &[Row]) -> String {
    let head = ["measurement", "paper", "measured", "interval (s)", "note"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.measurement.to_string(),
                r.paper.to_string(),
                r.measured.map(number).unwrap_or_else(|| "-".into()),
                format!("[{}, {}]", seconds(r.interval_s[0]), seconds(r.interval_s[1])),
                r.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: [&str; 5]| {
        let s = format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:<w3$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head);
    for c in &cells {
        out += &line([&c[0], &c[1], &c[2], &c[3], &c[4]]);
    }
    out
}

// ---- Borges et al. (2012): the client layer ----

/// Table 1 of Borges et al.: share of the simultaneous clients all 421 crawlers saw that k
/// crawlers see.
pub const BORGES_COVERAGE: [(u64, f64); 6] =
    [(2, 0.135), (10, 0.421), (50, 0.855), (70, 0.889), (100, 0.93), (200, 0.98)];

/// Table 6 of Borges et al.: (group size, overlap of random groups, of groups of partners).
pub const BORGES_OVERLAP: [(u64, f64, f64); 4] =
    [(2, 0.06576, 0.06881), (3, 0.0127, 0.03134), (4, 0.00328, 0.01743), (5, 0.00133, 0.01165)];

/// One result of Borges et al. for both kinds of transmission, and how the client layer
/// measures it.
pub struct ClientReference {
    pub key: &'static str,
    pub description: &'static str,
    pub event: f64,
    pub non_event: f64,
    pub cite: &'static str,
    measure: fn(&Clients) -> Option<f64>,
}

/// Share of `xs` for which `f` holds; `None` without samples.
fn share(xs: &[f64], f: impl Fn(f64) -> bool) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().filter(|&&x| f(x)).count() as f64 / xs.len() as f64)
}

fn some_if(n: u64, x: f64) -> Option<f64> {
    (n > 0).then_some(x)
}

/// The paper's values ("Characterizing SopCast client behavior", Computer Communications 35,
/// 2012; /work/shared/seed-facts.md has them with their checks). Shares are fractions, ON and
/// OFF percent of the transmission, partnership durations fractions of the remaining ON time.
pub const BORGES: &[ClientReference] = &[
    ClientReference {
        key: "inter_activity_under_5s_share",
        description: "share of the inter-activity times under 5 s",
        event: 0.89,
        non_event: 0.89,
        cite: "section 6.1",
        measure: |c| some_if(c.inter_activity.gaps, c.inter_activity.under_5s_share),
    },
    ClientReference {
        key: "inter_activity_knee_s",
        description: "knee of the CDF of inter-activity times over 5 s (the session gap), s",
        event: 150.0,
        non_event: 150.0,
        cite: "section 6.1, Fig. 4",
        measure: |c| c.inter_activity.knee_s,
    },
    ClientReference {
        key: "inter_arrival_mean_s",
        description: "mean session inter-arrival time, s",
        event: 1.417,
        non_event: 2.012,
        cite: "Table 2",
        measure: |c| some_if(c.inter_arrival_s.samples, c.inter_arrival_s.mean),
    },
    ClientReference {
        key: "inter_arrival_sd_s",
        description: "sd of the session inter-arrival times, s",
        event: 1.113,
        non_event: 4.371,
        cite: "Table 2",
        measure: |c| some_if(c.inter_arrival_s.samples, c.inter_arrival_s.sd),
    },
    ClientReference {
        key: "inter_arrival_over_10s_share",
        description: "share of the session inter-arrival times over 10 s",
        event: 0.003,
        non_event: 0.03,
        cite: "section 6.2",
        measure: |c| share(&c.samples.inter_arrival_s, |x| x > 10.0),
    },
    ClientReference {
        key: "sessions_one_share",
        description: "share of the clients with one session",
        event: 0.54,
        non_event: 0.54,
        cite: "section 6.3, Fig. 6",
        measure: |c| share(&c.samples.sessions_per_client, |x| x == 1.0),
    },
    ClientReference {
        key: "sessions_at_most_two_share",
        description: "share of the clients with at most two sessions",
        event: 0.80,
        non_event: 0.80,
        cite: "section 6.3, Fig. 6",
        measure: |c| share(&c.samples.sessions_per_client, |x| x <= 2.0),
    },
    ClientReference {
        key: "sessions_mean",
        description: "mean sessions per client (the Geometric's 1 / (1 - P_off), P_off = 0.398)",
        event: 1.0 / (1.0 - 0.398),
        non_event: 1.0 / (1.0 - 0.398),
        cite: "section 6.3 (P_off = 0.398)",
        measure: |c| some_if(c.sessions_per_client.clients, c.sessions_per_client.mean),
    },
    ClientReference {
        key: "on_mean_percent",
        description: "mean ON time, % of the transmission",
        event: 23.59,
        non_event: 6.60,
        cite: "Table 3",
        measure: |c| some_if(c.on_percent.samples, c.on_percent.mean),
    },
    ClientReference {
        key: "on_sd_percent",
        description: "sd of the ON times, % of the transmission",
        event: 34.99,
        non_event: 17.96,
        cite: "Table 3",
        measure: |c| some_if(c.on_percent.samples, c.on_percent.sd),
    },
    ClientReference {
        key: "on_at_least_20_percent_share",
        description: "share of the sessions lasting at least 20% of the transmission",
        event: 0.33,
        non_event: 0.10,
        cite: "section 6.4",
        measure: |c| share(&c.samples.on_percent, |x| x >= 20.0),
    },
    ClientReference {
        key: "off_mean_percent",
        description: "mean OFF time, % of the transmission",
        event: 18.49,
        non_event: 18.49,
        cite: "Table 4",
        measure: |c| some_if(c.off_percent.samples, c.off_percent.mean),
    },
    ClientReference {
        key: "off_sd_percent",
        description: "sd of the OFF times, % of the transmission",
        event: 16.17,
        non_event: 16.17,
        cite: "Table 4",
        measure: |c| some_if(c.off_percent.samples, c.off_percent.sd),
    },
    ClientReference {
        key: "off_under_10_percent_share",
        description: "share of the OFF times under 10% of the transmission (10 of the paper's 100 minutes)",
        event: 0.40,
        non_event: 0.40,
        cite: "section 6.5",
        measure: |c| share(&c.samples.off_percent, |x| x < 10.0),
    },
    ClientReference {
        key: "off_under_30_percent_share",
        description: "share of the OFF times under 30% of the transmission (30 of the paper's 100 minutes)",
        event: 0.80,
        non_event: 0.80,
        cite: "section 6.5",
        measure: |c| share(&c.samples.off_percent, |x| x < 30.0),
    },
    ClientReference {
        key: "partners_mean",
        description: "mean partners per client per 1 s snapshot",
        event: 101.453,
        non_event: 101.453,
        cite: "Table 5",
        measure: |c| some_if(c.partners.samples, c.partners.mean),
    },
    ClientReference {
        key: "partners_sd",
        description: "sd of the partners per client per 1 s snapshot",
        event: 41.537,
        non_event: 41.537,
        cite: "Table 5",
        measure: |c| some_if(c.partners.samples, c.partners.sd),
    },
    ClientReference {
        key: "partnership_mean_fraction",
        description: "mean partnership duration, fraction of the session's remaining ON time",
        event: 0.08272,
        non_event: 0.15368,
        cite: "Table 7",
        measure: |c| some_if(c.partnership_fraction.samples, c.partnership_fraction.mean),
    },
    ClientReference {
        key: "partnership_sd_fraction",
        description: "sd of the partnership durations, fraction of the remaining ON time",
        event: 0.19950,
        non_event: 0.24557,
        cite: "Table 7",
        measure: |c| some_if(c.partnership_fraction.samples, c.partnership_fraction.sd),
    },
    ClientReference {
        key: "partnership_under_12_percent_share",
        description: "share of the partnerships shorter than 12% of the remaining ON time",
        event: 0.80,
        non_event: 0.64,
        cite: "section 7.2",
        measure: |c| share(&c.samples.partnership_fraction, |x| x < 0.12),
    },
];

/// A distribution Borges et al. fitted (Tables 2–7), for drawing beside the measured one.
pub struct BorgesFit {
    /// The client quantity (`clients.fits` key, or `sessions_per_client`).
    pub quantity: &'static str,
    /// "event", "non-event" or "both".
    pub preset: &'static str,
    pub params: crate::fit::Params,
    /// Units of the client layer's samples per unit of the paper's fit: the event ON Weibull is
    /// fitted to the fraction of the transmission, the samples are percent (100).
    pub scale: f64,
    pub cite: &'static str,
}

impl BorgesFit {
    /// P(X ≤ x), x in the samples' units.
    pub fn cdf(&self, x: f64) -> f64 {
        self.params.cdf(x / self.scale)
    }

    /// The density at x, in the samples' units.
    pub fn pdf(&self, x: f64) -> f64 {
        self.params.pdf(x / self.scale) / self.scale
    }
}

/// The fitted distributions of Borges et al. (seed-facts.md has them with their checks).
pub const BORGES_FITS: &[BorgesFit] = {
    use crate::fit::Params as P;
    const fn f(quantity: &'static str, preset: &'static str, params: P, scale: f64, cite: &'static str) -> BorgesFit {
        BorgesFit { quantity, preset, params, scale, cite }
    }
    &[
        f("inter_arrival_s", "event", P::LogNormal { m: 0.108, sigma: 0.693 }, 1.0, "Table 2"),
        f("inter_arrival_s", "non-event", P::LogNormal { m: -0.166, sigma: 1.318 }, 1.0, "Table 2"),
        f("sessions_per_client", "both", P::Geometric { p_off: 0.398 }, 1.0, "section 6.3"),
        f("on_percent", "event", P::Weibull { alpha: 2.032, beta: 0.233 }, 100.0, "Table 3"),
        f("on_percent", "non-event", P::LogNormal { m: 0.823, sigma: 1.459 }, 1.0, "Table 3"),
        f("on_percent", "non-event", P::Gamma { alpha: 0.062, beta: 107.3 }, 1.0, "Table 3"),
        f("off_percent", "both", P::Exponential { lambda: 0.054 }, 1.0, "Table 4"),
        f("partners", "both", P::Gamma { alpha: 6.008, beta: 16.886 }, 1.0, "Table 5"),
        f("partners", "both", P::Normal { mu: 101.453, sigma: 41.537 }, 1.0, "Table 5"),
        f("partnership_fraction", "event", P::Gamma { alpha: 0.118, beta: 0.700 }, 1.0, "Table 7"),
        // Table 7 prints β = 0.123 (a repeat of α); the scale that gives its mean of 15.368% is
        // 0.15368 / 0.123 = 1.249.
        f("partnership_fraction", "non-event", P::Gamma { alpha: 0.123, beta: 1.249 }, 1.0, "Table 7, β from its mean"),
    ]
};

/// The paper's column for a run's preset: "event" or "non-event", and whether it was assumed
/// (an unknown or missing preset: event, the model soplab's workloads default to).
pub fn borges_preset(preset: Option<&str>) -> (&'static str, bool) {
    match preset {
        Some("non-event") => ("non-event", false),
        Some("event") => ("event", false),
        _ => ("event", true),
    }
}

/// Borges et al.'s fits of `quantity` for the preset ("event" or "non-event").
pub fn borges_fits(quantity: &str, preset: &str) -> Vec<&'static BorgesFit> {
    BORGES_FITS.iter().filter(|f| f.quantity == quantity && (f.preset == preset || f.preset == "both")).collect()
}

/// One row of `clients.paper_comparison`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientRow {
    pub measurement: &'static str,
    pub description: &'static str,
    pub paper_event: f64,
    pub paper_non_event: f64,
    /// The column of the preset that drove the run (run.json's `workload_preset`), if known.
    pub paper_preset: Option<f64>,
    pub paper_source: &'static str,
    /// `None` (null) when the trace has no samples for it.
    pub measured: Option<f64>,
}

/// Every row of [`BORGES`], measured by the client layer.
pub fn compare_clients(c: &Clients) -> Vec<ClientRow> {
    BORGES
        .iter()
        .map(|r| ClientRow {
            measurement: r.key,
            description: r.description,
            paper_event: r.event,
            paper_non_event: r.non_event,
            paper_preset: match c.preset.as_deref() {
                Some("event") => Some(r.event),
                Some("non-event") => Some(r.non_event),
                _ => None,
            },
            paper_source: r.cite,
            measured: (r.measure)(c).filter(|x| x.is_finite()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(37.73 / 50.0), "0.7546");
        assert_eq!(number(41.60 / 50.0), "0.832");
        assert_eq!(number(11.0), "11");
        assert_eq!(number(-0.00001), "0");
        assert_eq!(number(2100.0), "2100");
    }

    #[test]
    fn every_key_once_and_every_mark_found() {
        let mut keys: Vec<&str> = PAPER.iter().map(|r| r.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), PAPER.len());
        for k in [KEEPALIVE_GAP_P95, REQUEST_GAP_P95, GN_SHARE_2_5S, GN_SHARE_10S, GV_INDEGREE_2S] {
            assert!(paper_number(k).is_some(), "{k}");
        }
        assert!((paper_number(GN_SHARE_2_5S).unwrap() - 0.7546).abs() < 1e-12);
    }
}
