//! Writing a [`Report`]: `report.json` and one CSV table per figure (docs/ANALYZE.md lists the
//! columns).

use std::path::{Path, PathBuf};

use crate::analysis::Report;
use crate::error::{Error, Result};

fn write_err(path: &Path, e: std::io::Error) -> Error {
    Error::Write { path: path.into(), cause: e }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| write_err(path, std::io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(|e| write_err(path, e))
}

struct Table {
    path: PathBuf,
    w: csv::Writer<std::fs::File>,
}

impl Table {
    fn create(dir: &Path, name: &str, header: &[&str]) -> Result<Table> {
        let path = dir.join(name);
        let mut w = csv::Writer::from_path(&path).map_err(|e| Error::Csv { path: path.clone(), cause: e })?;
        w.write_record(header).map_err(|e| Error::Csv { path: path.clone(), cause: e })?;
        Ok(Table { path, w })
    }
    fn row(&mut self, fields: &[String]) -> Result<()> {
        self.w.write_record(fields).map_err(|e| Error::Csv { path: self.path.clone(), cause: e })
    }
    fn finish(mut self) -> Result<PathBuf> {
        self.w.flush().map_err(|e| write_err(&self.path, e))?;
        Ok(self.path)
    }
}

fn f(x: f64) -> String {
    if x == 0.0 { "0".into() } else { format!("{x:.6}") }
}

fn opt(x: Option<f64>) -> String {
    x.map(f).unwrap_or_default()
}

/// One CSV table of a report, written into a directory; returns its path.
type TableWriter = fn(&Path, &Report) -> Result<PathBuf>;

/// The tables in the order they are written (docs/ANALYZE.md lists them).
const TABLES: [TableWriter; 14] = [
    classification,
    activation_gaps,
    neighbor_snapshot_outdegree,
    neighbor_snapshot_series,
    neighbor_accumulated_outdegree,
    neighbor_mean_outdegree,
    video_degree,
    peers,
    source_children,
    inputs,
    paper_comparison,
    clients_sessions_per_client,
    clients_paper_comparison,
    clients_fits,
];

/// Writes report.json and the CSV tables into `dir` (created); returns the files written.
pub fn write_report(dir: &Path, r: &Report) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let json = dir.join("report.json");
    write_json(&json, r)?;
    let mut written = vec![json];
    for table in TABLES {
        written.push(table(dir, r)?);
    }
    written.extend(clients_quantities(dir, r)?);
    written.extend(clients_tables(dir, r)?);
    Ok(written)
}

/// `classification.csv`: packets and bytes per size class (Table 1).
fn classification(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(dir, "classification.csv", &["kind", "packets", "bytes"])?;
    for c in &r.classification {
        t.row(&[c.kind.name().into(), c.packets.to_string(), c.bytes.to_string()])?;
    }
    t.finish()
}

/// `activation_gaps.csv`: the gap distributions of Fig. 2.
fn activation_gaps(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(dir, "activation_gaps.csv", &["kind", "bin_start_s", "bin_end_s", "probability"])?;
    for (name, g) in [("keep_alive", &r.activation.keepalive), ("request", &r.activation.request)] {
        for (i, p) in g.pdf.iter().enumerate() {
            t.row(&[name.into(), f(i as f64 * g.bin_s), f((i + 1) as f64 * g.bin_s), f(*p)])?;
        }
    }
    t.finish()
}

/// `neighbor_snapshot_outdegree.csv`: G_N snapshot out-degree and its Gaussian fit per tau (Fig. 5).
fn neighbor_snapshot_outdegree(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t =
        Table::create(dir, "neighbor_snapshot_outdegree.csv", &["tau_s", "degree", "samples", "pdf", "gaussian_pdf"])?;
    for s in &r.neighbor.snapshots {
        let pdf = s.outdegree.pdf();
        for (k, c) in s.outdegree.counts.iter().enumerate() {
            t.row(&[
                f(s.tau_s),
                k.to_string(),
                c.to_string(),
                f(pdf[k]),
                f(s.gaussian.pdf.get(k).copied().unwrap_or(0.0)),
            ])?;
        }
    }
    t.finish()
}

/// `neighbor_snapshot_series.csv`: G_N edges and out-degree per snapshot (only the snapshots with
/// edges in a series longer than [`crate::series::DENSE_SNAPSHOTS`]).
fn neighbor_snapshot_series(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(
        dir,
        "neighbor_snapshot_series.csv",
        &["tau_s", "snapshot", "start_s", "edges", "mean_outdegree", "sd_outdegree"],
    )?;
    for s in &r.neighbor.snapshots {
        for (k, e) in s.edges_by_snapshot.rows() {
            t.row(&[
                f(s.tau_s),
                k.to_string(),
                f(r.interval.from_s + k as f64 * s.tau_s),
                e.to_string(),
                f(s.mean_by_snapshot.get(k)),
                f(s.sd_by_snapshot.get(k)),
            ])?;
        }
    }
    t.finish()
}

/// `neighbor_accumulated_outdegree.csv`: accumulated G_N out-degree against the random graph (Fig. 3).
fn neighbor_accumulated_outdegree(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(
        dir,
        "neighbor_accumulated_outdegree.csv",
        &["t_s", "degree", "peers", "pdf", "random_graph_pdf"],
    )?;
    for a in &r.neighbor.accumulated {
        let pdf = a.outdegree.pdf();
        let len = pdf.len().max(a.random_graph_pdf.len());
        for k in 0..len {
            t.row(&[
                f(a.t_s),
                k.to_string(),
                a.outdegree.counts.get(k).copied().unwrap_or(0).to_string(),
                f(pdf.get(k).copied().unwrap_or(0.0)),
                f(a.random_graph_pdf.get(k).copied().unwrap_or(0.0)),
            ])?;
        }
    }
    t.finish()
}

/// `neighbor_mean_outdegree.csv`: mean accumulated G_N out-degree over time (Fig. 4).
fn neighbor_mean_outdegree(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(dir, "neighbor_mean_outdegree.csv", &["t_s", "peers", "mean", "sd"])?;
    for d in &r.neighbor.mean_outdegree_over_time {
        t.row(&[f(d.t_s), d.nodes.to_string(), f(d.mean), f(d.sd)])?;
    }
    t.finish()
}

/// `video_degree.csv`: G_V in- and out-degree with their fits (Figs. 5 and 6).
fn video_degree(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(dir, "video_degree.csv", &["tau_s", "direction", "degree", "samples", "pdf", "fit_pdf"])?;
    for s in &r.video.snapshots {
        let pin = s.indegree.pdf();
        for (k, c) in s.indegree.counts.iter().enumerate() {
            let fit = s.indegree_gaussian.pdf.get(k).copied().unwrap_or(0.0);
            t.row(&[f(s.tau_s), "in".into(), k.to_string(), c.to_string(), f(pin[k]), f(fit)])?;
        }
        let pout = s.outdegree.pdf();
        for (k, c) in s.outdegree.counts.iter().enumerate() {
            let fit = s
                .outdegree_fits
                .log_log
                .as_ref()
                .filter(|_| k > 0)
                .map(|l| (l.intercept + l.slope * (k as f64).ln()).exp());
            t.row(&[f(s.tau_s), "out".into(), k.to_string(), c.to_string(), f(pout[k]), opt(fit)])?;
        }
    }
    t.finish()
}

/// `peers.csv`: load per peer (Fig. 7).
fn peers(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(
        dir,
        "peers.csv",
        &[
            "address",
            "upload_Bps",
            "download_Bps",
            "download_from_source_Bps",
            "download_from_peers_Bps",
            "mean_children",
            "max_children",
            "children_ever",
            "parents_ever",
            "had_source_as_parent",
            "neighbors_ever",
        ],
    )?;
    for p in &r.load.peers {
        t.row(&[
            p.address.clone(),
            f(p.upload_bps),
            f(p.download_bps),
            f(p.download_from_source_bps),
            f(p.download_from_peers_bps),
            f(p.mean_children),
            p.max_children.to_string(),
            p.children_ever.to_string(),
            p.parents_ever.to_string(),
            p.had_source_as_parent.to_string(),
            p.neighbors_ever.to_string(),
        ])?;
    }
    t.finish()
}

/// `source_children.csv`: the source's children per snapshot (as `neighbor_snapshot_series`).
fn source_children(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(dir, "source_children.csv", &["tau_s", "snapshot", "start_s", "children"])?;
    let s = &r.load.source;
    for (k, c) in s.by_snapshot.rows() {
        t.row(&[f(s.tau_s), k.to_string(), f(r.interval.from_s + k as f64 * s.tau_s), c.to_string()])?;
    }
    t.finish()
}

/// `inputs.csv`: what was read from each input file.
fn inputs(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(
        dir,
        "inputs.csv",
        &[
            "path",
            "format",
            "records",
            "udp",
            "not_ip",
            "not_udp",
            "ip_fragments",
            "cut_headers",
            "cut_payloads",
            "malformed",
            "unsupported_link",
            "garbage_records",
            "truncated",
            "bad_timestamps",
        ],
    )?;
    for i in &r.inputs {
        t.row(&[
            i.path.display().to_string(),
            i.format.map(|x| format!("{x:?}").to_lowercase()).unwrap_or_default(),
            i.records.to_string(),
            i.udp.to_string(),
            i.not_ip.to_string(),
            i.not_udp.to_string(),
            i.ip_fragments.to_string(),
            i.cut_headers.to_string(),
            i.cut_payloads.to_string(),
            i.malformed.to_string(),
            i.unsupported_link.to_string(),
            i.garbage_records.to_string(),
            i.truncated.to_string(),
            i.bad_timestamps.to_string(),
        ])?;
    }
    t.finish()
}

/// `paper_comparison.csv`: Tang et al.'s value and the trace's per measurement (report.json's
/// `paper_comparison`; an empty `measured` is null there).
fn paper_comparison(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(
        dir,
        "paper_comparison.csv",
        &["measurement", "description", "paper", "measured", "from_s", "to_s", "note"],
    )?;
    for row in &r.paper_comparison {
        t.row(&[
            row.measurement.into(),
            row.description.into(),
            row.paper.to_string(),
            opt(row.measured),
            f(row.interval_s[0]),
            f(row.interval_s[1]),
            row.note.clone().unwrap_or_default(),
        ])?;
    }
    t.finish()
}

/// At most this many points of each client quantity's empirical CDF are written.
const CDF_POINTS: usize = 1000;

/// `clients_<quantity>.csv`: the empirical CDF of each client quantity (value, cdf), at most
/// [`CDF_POINTS`] points (evenly spaced ranks, the largest value always).
fn clients_quantities(dir: &Path, r: &Report) -> Result<Vec<PathBuf>> {
    let s = &r.clients.samples;
    let quantities: [(&str, &[f64]); 6] = [
        ("inter_arrival_s", &s.inter_arrival_s),
        ("on_percent", &s.on_percent),
        ("off_percent", &s.off_percent),
        ("partners", &s.partners),
        ("partnership_fraction", &s.partnership_fraction),
        ("inter_activity_s", &s.inter_activity_s),
    ];
    let mut written = Vec::new();
    for (name, xs) in quantities {
        let mut t = Table::create(dir, &format!("clients_{name}.csv"), &["value", "cdf"])?;
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let step = n.div_ceil(CDF_POINTS).max(1);
        for i in (0..n).filter(|i| (i + 1) % step == 0 || i + 1 == n) {
            t.row(&[f(v[i]), f((i + 1) as f64 / n as f64)])?;
        }
        written.push(t.finish()?);
    }
    Ok(written)
}

/// `clients_sessions_per_client.csv`: sessions, clients, pdf.
fn clients_sessions_per_client(dir: &Path, r: &Report) -> Result<PathBuf> {
    let d = &r.clients.sessions_per_client.distribution;
    let mut t = Table::create(dir, "clients_sessions_per_client.csv", &["sessions", "clients", "pdf"])?;
    for (k, (c, p)) in d.counts.iter().zip(d.pdf()).enumerate().skip(1) {
        t.row(&[k.to_string(), c.to_string(), f(p)])?;
    }
    t.finish()
}

/// `clients_coverage.csv` (Table 1) and `clients_overlap.csv` (Table 6).
fn clients_tables(dir: &Path, r: &Report) -> Result<Vec<PathBuf>> {
    let c = &r.clients;
    let mut t = Table::create(dir, "clients_coverage.csv", &["k", "draws", "share", "share_sd", "paper"])?;
    for row in &c.coverage.rows {
        t.row(&[row.k.to_string(), row.draws.to_string(), f(row.share), f(row.share_sd), opt(row.paper)])?;
    }
    let coverage = t.finish()?;
    let mut t =
        Table::create(dir, "clients_overlap.csv", &["group_size", "kind", "groups", "all", "mean", "sd", "paper"])?;
    for row in &c.overlap.rows {
        for (kind, s, paper) in
            [("random", &row.random, row.paper_random), ("partners", &row.partners, row.paper_partners)]
        {
            let fields = [s.groups.to_string(), s.all.to_string(), f(s.mean), f(s.sd), f(paper)];
            t.row(&[&[row.group_size.to_string(), kind.to_string()][..], &fields[..]].concat())?;
        }
    }
    Ok(vec![coverage, t.finish()?])
}

/// `clients_fits.csv`: every fit of every client quantity (`clients.fits` and
/// `clients.sessions_per_client.fits`): quantity, method, family, params as `k=v;k=v`, ks, aic
/// (empty when null), and `selected` (the fit is the quantity's `lse` or `mle`). Families that
/// were skipped have no row.
fn clients_fits(dir: &Path, r: &Report) -> Result<PathBuf> {
    let c = &r.clients;
    let header = ["quantity", "method", "family", "params", "ks", "aic", "selected"];
    let mut t = Table::create(dir, "clients_fits.csv", &header)?;
    let sessions = [("sessions_per_client", &c.sessions_per_client.fits)];
    for (quantity, fits) in c.fits.named().into_iter().chain(sessions) {
        for fit in fits.all.iter().flat_map(|f| [&f.lse, &f.mle]).flatten() {
            let selected = [&fits.lse, &fits.mle].into_iter().flatten().any(|s| s == fit);
            t.row(&[
                quantity.into(),
                fit.method.name().into(),
                fit.family.name().into(),
                fit.params.text(";", 6),
                f(fit.ks),
                opt(fit.aic),
                selected.to_string(),
            ])?;
        }
    }
    t.finish()
}

/// `clients_paper_comparison.csv`: Borges et al.'s values (event, non-event, the run's preset)
/// and the trace's (`clients.paper_comparison` in report.json).
fn clients_paper_comparison(dir: &Path, r: &Report) -> Result<PathBuf> {
    let mut t = Table::create(
        dir,
        "clients_paper_comparison.csv",
        &["measurement", "description", "paper_event", "paper_non_event", "paper_preset", "measured", "paper_source"],
    )?;
    for row in &r.clients.paper_comparison {
        t.row(&[
            row.measurement.into(),
            row.description.into(),
            f(row.paper_event),
            f(row.paper_non_event),
            opt(row.paper_preset),
            opt(row.measured),
            row.paper_source.into(),
        ])?;
    }
    t.finish()
}

/// Serialises a path as text, with any bytes that are not UTF-8 shown as U+FFFD: JSON strings
/// are UTF-8, and a capture under a non-UTF-8 path must not stop the report from being written.
pub fn path_text<S: serde::Serializer>(path: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}
