//! The `analyze` and `validate` subcommands (of `soplab` and of `soplab-analyze`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::analysis::{self, AnalyzeOptions};
use crate::capture::Dedup;
use crate::clients::ClientOptions;
use crate::error::{Error, Result};
use crate::rundir::RunDir;
use crate::trace::DEFAULT_EXCLUDED_PORTS;
use crate::validate::{self, ValidateOptions};
use soplab_rundir::claim::{self, Layout};

/// Long help of `analyze`.
pub const ANALYZE_ABOUT: &str = "Rebuild the SopCast overlay of Tang et al. from packet captures.

Reads pcap/pcapng files (several are merged by time, a datagram captured at several vantage points \
counts once), classifies UDP datagrams by payload size (Table 1: HELLO 52, reply 80, ACK 28, \
keep-alive 42, request 46, video 1320 and tails), recognises the tracker and the source, and builds \
the neighbour graph G_N and the video graph G_V in snapshots of length tau and accumulated over \
[0, T]. Writes OUT/report.json (every figure's data and the summary), CSV tables and PNG/SVG plots.

An INPUT is a capture file or a run directory (its pcap/*.pcap, pcap/*.pcapng or the captures its \
run.json lists; run.json or truth/ also name the tracker and the source).

Example: soplab analyze runs/demo --out runs/demo/analysis";

/// Long help of `validate`.
pub const VALIDATE_ABOUT: &str = "Check the overlay rebuilt from a run's captures against its ground truth.

Analyses RUN_DIR's captures like `analyze`, reads RUN_DIR/truth/*.jsonl, and writes \
RUN_DIR/validation.json: for the neighbour and the video layer, precision and recall of the edges \
per snapshot (default tau and others), degree errors, which peers were seen, and the share of \
active peers and edges k vantage points see as k grows. docs/ANALYZE.md defines each number.

Example: soplab validate runs/demo --min 0.99";

fn parse_list(s: &str) -> std::result::Result<Vec<f64>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(|x| x.trim().parse::<f64>().map_err(|_| format!("not a number: {x}"))).collect()
}

fn parse_ports(s: &str) -> std::result::Result<Vec<u16>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(|x| x.trim().parse::<u16>().map_err(|_| format!("not a port: {x}"))).collect()
}

/// `println!` that ignores a closed stdout (`soplab analyze ... | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// A comma-separated list of numbers (an alias so that clap takes the list as one value).
type Floats = Vec<f64>;
/// A comma-separated list of ports.
type Ports = Vec<u16>;

/// Options shared by `analyze` and `validate`.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// The tracker's ADDRESS:PORT (default: named by run.json or truth/, else recognised from
    /// the traffic: it answers 20-byte requests with 21+6k-byte peer lists).
    #[arg(long)]
    pub tracker: Option<SocketAddr>,
    /// The source provider's ADDRESS:PORT (default: named by run.json or truth/, else
    /// recognised: the endpoint sending most video while sending no requests).
    #[arg(long)]
    pub source: Option<SocketAddr>,
    /// Snapshot length of the neighbour graph, seconds (tau_N).
    #[arg(long, default_value_t = 2.5)]
    pub tau_neighbor: f64,
    /// Snapshot length of the video graph, seconds (tau_V).
    #[arg(long, default_value_t = 2.0)]
    pub tau_video: f64,
    /// Time slot, seconds: every snapshot length must be a multiple of it.
    #[arg(long, default_value_t = 0.1)]
    pub resolution: f64,
    /// Drop a datagram seen again (same addresses, ports, length, first 32 payload bytes)
    /// within --dedup-window: auto = when several files or Linux cooked captures.
    #[arg(long, value_enum, default_value_t = Dedup::Auto)]
    pub dedup: Dedup,
    /// De-duplication window, seconds.
    #[arg(long, default_value_t = 0.05)]
    pub dedup_window: f64,
    /// UDP ports left out (comma-separated; other services' datagrams would be classified by
    /// size too). Empty to keep all.
    #[arg(long, value_parser = parse_ports, default_value = "53,67,68,123,137,138,161,162,443,500,514,1900,4500,5353,5355")]
    pub exclude_ports: Ports,
    /// Client sessions (Borges et al.): a client without a data packet for longer than this
    /// many seconds of model time ends its session; divided by the run's time scale (run.json's
    /// `time_scale`, or --time-scale) before it is applied to the captures.
    #[arg(long, default_value_t = crate::clients::DEFAULT_SESSION_GAP_S, value_parser = positive)]
    pub session_gap: f64,
}

fn positive(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

impl Common {
    fn options(&self) -> AnalyzeOptions {
        AnalyzeOptions {
            tracker: self.tracker,
            source: self.source,
            tau_neighbor_s: self.tau_neighbor,
            tau_video_s: self.tau_video,
            resolution_s: self.resolution,
            dedup: self.dedup,
            dedup_window_s: self.dedup_window,
            excluded_ports: self.exclude_ports.clone(),
            clients: ClientOptions { session_gap_s: self.session_gap, ..ClientOptions::default() },
            ..AnalyzeOptions::default()
        }
    }
}

/// `analyze`.
#[derive(clap::Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// Capture files (pcap, pcapng) or run directories.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory (created). It must be new, empty or an earlier analysis's: soplab
    /// clears there only the files an analysis writes, and refuses a directory holding other
    /// files it did not mark as its own (.soplab-run).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: Common,
    /// More neighbour snapshot lengths to report, seconds (comma-separated).
    #[arg(long, value_parser = parse_list, default_value = "1,10")]
    pub neighbor_taus: Floats,
    /// More video snapshot lengths to report, seconds (comma-separated).
    #[arg(long, value_parser = parse_list, default_value = "1,10,100")]
    pub video_taus: Floats,
    /// T of the neighbour graphs accumulated over [0, T], seconds (comma-separated).
    #[arg(long, value_parser = parse_list, default_value = "10,60,300,600")]
    pub accumulate: Floats,
    /// Start of the snapshot and throughput interval, seconds from the first datagram
    /// (Tang et al. used 300).
    #[arg(long)]
    pub from: Option<f64>,
    /// End of that interval, seconds from the first datagram (Tang et al. used 2100).
    #[arg(long)]
    pub to: Option<f64>,
    /// Write report.json and the CSV tables only.
    #[arg(long)]
    pub no_plots: bool,
    /// Length of the transmission the clients' ON and OFF times are percentages of, seconds of
    /// capture time (default: the trace's length).
    #[arg(long, value_parser = positive)]
    pub transmission_length: Option<f64>,
    /// The captures play the client model this many times faster (default: run.json's
    /// `time_scale`, else 1): the session gap is divided by it and inter-arrival and
    /// inter-activity times multiplied by it, into model time.
    #[arg(long, value_parser = positive)]
    pub time_scale: Option<f64>,
}

/// `validate`.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// A run directory with captures (pcap/) and ground truth (truth/).
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub common: Common,
    /// Snapshot lengths to validate besides the defaults, seconds (comma-separated).
    #[arg(long, value_parser = parse_list, default_value = "0.5,1,2,2.5,5,10")]
    pub taus: Floats,
    /// Keep-alive period of the daemons, seconds (ground truth: a link up for 1.5 periods of a
    /// snapshot must show a keep-alive in it; docs/ANALYZE.md).
    #[arg(long, default_value_t = 1.0)]
    pub keepalive_period: f64,
    /// Write the result here instead of RUN_DIR/validation.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fail (exit status 1) when a layer's precision or recall at the default tau is below this.
    #[arg(long)]
    pub min: Option<f64>,
    /// Random vantage sets drawn per k for the coverage table.
    #[arg(long, default_value_t = 20)]
    pub coverage_draws: u32,
}

/// Capture files, the vantage address of each, and the first run directory among the inputs.
type Resolved = (Vec<PathBuf>, Vec<Option<SocketAddr>>, Option<RunDir>);

fn inputs_of(paths: &[PathBuf]) -> Result<Resolved> {
    let mut files = Vec::new();
    let mut vantage = Vec::new();
    let mut first_run = None;
    for p in paths {
        if p.is_dir() {
            let run = RunDir::open(p)?;
            for c in &run.captures {
                files.push(c.path.clone());
                vantage.push(c.address);
            }
            if run.captures.is_empty() {
                run.capture_paths()?;
            }
            first_run.get_or_insert(run);
        } else {
            files.push(p.clone());
            vantage.push(None);
        }
    }
    Ok((files, vantage, first_run))
}

/// What an analysis wrote, for printing.
pub struct Analyzed {
    pub report: crate::analysis::Report,
    /// report.json, the CSV tables and the plots.
    pub written: Vec<PathBuf>,
    /// Seconds spent reading the captures.
    pub read_seconds: f64,
    pub plots: bool,
}

/// Analyses `inputs` (capture files or run directories) into `out` as `analyze` does: the
/// library entry for callers such as `soplab demo`, which must not spawn a second program.
/// Tracker and source not set in `opts` are taken from the first run directory's run.json.
/// `out` is claimed first (see [`soplab_rundir::claim`]): locked while the analysis writes it,
/// cleared of an earlier analysis's files only, refused if it holds files soplab did not write.
pub fn analyze_into(inputs: &[PathBuf], out: &Path, mut opts: AnalyzeOptions, plots: bool) -> Result<Analyzed> {
    let claimed = claim::claim(out, Layout::Analysis, "soplab analyze")?;
    if let Some(note) = claimed.kept_note() {
        eprintln!("soplab: {note}");
    }
    let (files, vantage, run) = inputs_of(inputs)?;
    if let Some(run) = &run {
        opts.tracker = opts.tracker.or(run.tracker);
        opts.source = opts.source.or(run.source);
        opts.clients.apply_run(run);
    }
    tracing::info!(files = files.len(), "reading captures");
    let ing = analysis::ingest(&files, &opts, &vantage)?;
    let report = analysis::report(&ing, &opts)?;
    #[cfg_attr(not(feature = "plots"), allow(unused_mut))]
    let mut written = crate::output::write_report(out, &report)?;
    #[cfg(feature = "plots")]
    if plots {
        written.extend(crate::plot::write_plots(out, &report)?);
    }
    #[cfg(not(feature = "plots"))]
    if plots {
        tracing::warn!("built without the `plots` feature: no PNG/SVG plots (the CSV tables have their data)");
    }
    let plots = plots && cfg!(feature = "plots");
    Ok(Analyzed { report, written, read_seconds: ing.seconds, plots })
}

/// Runs `analyze`; prints the headline numbers and the paper comparison.
pub fn analyze(a: &AnalyzeArgs) -> Result<()> {
    let mut opts = a.common.options();
    opts.neighbor_taus_s = a.neighbor_taus.clone();
    opts.video_taus_s = a.video_taus.clone();
    opts.accumulate_s = a.accumulate.clone();
    opts.from_s = a.from;
    opts.to_s = a.to;
    opts.clients.transmission_length_s = a.transmission_length;
    if let Some(f) = a.time_scale {
        opts.clients.time_scale = f;
        opts.clients.time_scale_from = "option";
    }
    let done = analyze_into(&a.inputs, &a.out, opts, !a.no_plots)?;
    print_headline(&done);
    say!("wrote {} files to {}", done.written.len(), a.out.display());
    say!("");
    print_comparison(&done.report);
    print_outputs(&done, &a.out);
    Ok(())
}

/// The headline lines of `analyze`.
fn print_headline(done: &Analyzed) {
    let report = &done.report;
    let s = &report.summary;
    let records: u64 = report.inputs.iter().map(|f| f.records).sum();
    say!(
        "{} files, {records} records, {} datagrams in {:.2} s ({:.0} records/s); {:.0} s of trace",
        report.inputs.len(),
        report.trace.datagrams,
        done.read_seconds,
        records as f64 / done.read_seconds.max(1e-9),
        report.trace.duration_s
    );
    say!(
        "tracker {} ({}), source {} ({}); {} peers",
        report.roles.tracker.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
        report.roles.tracker_by,
        report.roles.source.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
        report.roles.source_by,
        s.peers
    );
    say!(
        "G_N, tau {} s: mean out-degree {:.2} (sd {:.2}); G_V, tau {} s: mean in-degree {:.2}, out-degree {:.2}",
        s.neighbor_tau_s,
        s.neighbor_mean_outdegree,
        s.neighbor_sd_outdegree,
        s.video_tau_s,
        s.video_mean_indegree,
        s.video_mean_outdegree
    );
    let p = |x: Option<f64>| x.map(|v| format!("{v:.2} s")).unwrap_or_else(|| "-".into());
    say!(
        "95% of keep-alive gaps within {}, of request gaps within {}; source: at most {} children, {} peers ever",
        p(s.keepalive_gap_p95_s),
        p(s.request_gap_p95_s),
        s.source_max_children,
        s.peers_ever_fed_by_source
    );
    say!("{}", client_headline(&report.clients));
}

/// The client layer in one line.
pub fn client_headline(c: &crate::clients::Clients) -> String {
    let knee = c.inter_activity.knee_s.map_or_else(|| "-".into(), |k| format!("{k:.0} s"));
    format!(
        "clients: {} ({} characterized), {} sessions (gap {} s model = {:.2} s captured, time scale {}); \
         inter-arrival mean {:.3} s, ON mean {:.1}%, OFF mean {:.1}%, partners mean {:.1}, partnership mean \
         {:.3}; knee {knee}",
        c.clients,
        c.characterized_clients,
        c.sessions,
        c.session_gap_s,
        c.session_gap_capture_s,
        c.time_scale,
        c.inter_arrival_s.mean,
        c.on_percent.mean,
        c.off_percent.mean,
        c.partners.mean,
        c.partnership_fraction.mean
    ) + &client_fits_headline(c)
}

/// The best family per quantity by the paper's criterion (least squares on the CDF), and P_off.
fn client_fits_headline(c: &crate::clients::Clients) -> String {
    let best: Vec<String> = c
        .fits
        .named()
        .iter()
        .map(|(q, f)| format!("{q} {}", f.lse.as_ref().map_or("-", |f| f.family.name())))
        .collect();
    let p_off = c.sessions_per_client.p_off.map_or_else(|| "-".into(), |p| format!("{p:.3}"));
    format!("\n  best fits (least squares): {}; P_off {p_off}", best.join(", "))
}

/// Prints the paper-against-trace table of a report.
pub fn print_comparison(report: &crate::analysis::Report) {
    say!("Tang et al. (2009) against this trace:");
    for line in crate::paper::table(&report.paper_comparison).lines() {
        say!("  {line}");
    }
}

/// Prints where an analysis written to `out` put its report and figures.
pub fn print_outputs(done: &Analyzed, out: &Path) {
    say!("report: {} (paper_comparison; also paper_comparison.csv)", out.join("report.json").display());
    if done.plots {
        say!("figures: {} (fig2..fig7 and clients_*, .png and .svg)", out.display());
    } else {
        say!("figures: none (plots off); the CSV tables in {} have their data", out.display());
    }
}

/// Validates `run_dir` as `validate` does and writes the result to `out`.
pub fn validate_into(run_dir: &Path, vopts: &ValidateOptions, out: &Path) -> Result<validate::Validation> {
    let v = validate::validate(run_dir, vopts)?;
    crate::output::write_json(out, &v)?;
    Ok(v)
}

/// One line per layer: precision and recall at the default snapshot length.
pub fn validation_lines(v: &validate::Validation) -> Vec<String> {
    let mut lines: Vec<String> = [("neighbor", &v.layers.neighbor), ("video", &v.layers.video)]
        .into_iter()
        .map(|(name, l)| {
            format!(
                "{name:>8} (tau {} s, {} snapshots): precision {:.4}, recall {:.4} ({} measured, {} true \
                 edge-snapshots)",
                l.tau_s, l.snapshots, l.precision, l.recall, l.measured, l.truth_strict
            )
        })
        .collect();
    let c = &v.clients;
    let s = &c.sessions;
    lines.push(format!(
        "sessions (gap {} s, {} s in the captures): precision {:.4}, recall {:.4} ({} found, {} in the truth's \
         video); {} logged, {} without video, join delay median {:.2} s",
        c.session_gap_s,
        c.session_gap_capture_s,
        s.precision,
        s.recall,
        s.found,
        s.truth,
        c.logged.sessions,
        c.logged.without_data,
        c.logged.join_delay_s.p50
    ));
    let recovered: Vec<String> = c
        .recovery
        .iter()
        .map(|r| format!("{} {} (model {:.3})", r.key, r.measured.map_or("-".into(), |x| format!("{x:.3}")), r.model))
        .collect();
    if !recovered.is_empty() {
        lines.push(format!("model ({}): {}", c.preset.as_deref().unwrap_or("?"), recovered.join(", ")));
    }
    if let Some(p) = &c.played {
        let rows: Vec<String> = p
            .recovery
            .iter()
            .map(|r| {
                format!("{} {} (played {:.3})", r.key, r.measured.map_or("-".into(), |x| format!("{x:.3}")), r.model)
            })
            .collect();
        lines.push(format!(
            "played schedule: sessions recall {:.4}, precision {:.4} ({} played); {}",
            p.sessions.recall,
            p.sessions.precision,
            p.sessions.truth,
            rows.join(", ")
        ));
    }
    lines
}

/// The options of `validate` with their command-line defaults (for callers without a command
/// line, such as `soplab demo`).
pub fn validate_defaults() -> ValidateOptions {
    ValidateOptions {
        analyze: AnalyzeOptions { neighbor_taus_s: Vec::new(), video_taus_s: Vec::new(), ..AnalyzeOptions::default() },
        ..ValidateOptions::default()
    }
}

/// Runs `validate`; prints precision and recall.
pub fn validate(a: &ValidateArgs) -> Result<()> {
    let mut opts = a.common.options();
    opts.neighbor_taus_s = Vec::new();
    opts.video_taus_s = Vec::new();
    let vopts = ValidateOptions {
        analyze: opts,
        taus_s: a.taus.clone(),
        keepalive_period_s: a.keepalive_period,
        coverage_draws: a.coverage_draws,
    };
    let out = a.out.clone().unwrap_or_else(|| a.run_dir.join("validation.json"));
    let v = validate_into(&a.run_dir, &vopts, &out)?;
    for line in validation_lines(&v) {
        say!("{line}");
    }
    say!(
        "peers: {} in truth, {} seen in the captures; {} captures; wrote {}",
        v.peers.in_truth,
        v.peers.seen,
        v.captures.len(),
        out.display()
    );
    if let Some(min) = a.min {
        let worst =
            [v.layers.neighbor.precision, v.layers.neighbor.recall, v.layers.video.precision, v.layers.video.recall]
                .into_iter()
                .fold(f64::INFINITY, f64::min);
        if worst < min {
            return Err(Error::Option(format!(
                "validation below --min {min}: the worst precision or recall is {worst:.4} (see {})",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Default excluded ports (for callers building options by hand).
pub fn default_excluded_ports() -> Vec<u16> {
    DEFAULT_EXCLUDED_PORTS.to_vec()
}
