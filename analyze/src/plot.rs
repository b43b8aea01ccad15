//! The figures, as PNG and SVG, drawn like those of Tang et al.: Fig. 2 (activation periods),
//! Fig. 3 (accumulated G_N out-degree), Fig. 4 (its mean over time), the G_N snapshot
//! out-degree, Fig. 5 and 6 (G_V in- and out-degree), Fig. 7 (throughput per peer) and the
//! source's children over time; and Borges et al.'s Figs. 4–11 of the client layer
//! ([`clients`]). Text uses the embedded DejaVu Sans (assets/, Bitstream Vera
//! licence), so no system font library is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::analysis::Report;
use crate::error::{Error, Result};
use crate::paper;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                tracing::warn!("the embedded font could not be loaded; plots will have no text");
            }
        }
    });
}

type Res = std::result::Result<(), String>;

trait Str<T> {
    fn s(self) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Display> Str<T> for std::result::Result<T, E> {
    fn s(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

const SIZE: (u32, u32) = (900, 600);
const WIDE: (u32, u32) = (1200, 500);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(0, 0, 0),
];

macro_rules! render {
    ($dir:expr, $name:expr, $size:expr, $f:ident, $r:expr, $out:expr) => {{
        let png = $dir.join(format!("{}.png", $name));
        let svg = $dir.join(format!("{}.svg", $name));
        {
            let root = BitMapBackend::new(&png, $size).into_drawing_area();
            $f(&root, $r).and_then(|_| root.present().s()).map_err(|why| Error::Plot { path: png.clone(), why })?;
        }
        {
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            $f(&root, $r).and_then(|_| root.present().s()).map_err(|why| Error::Plot { path: svg.clone(), why })?;
        }
        $out.push(png);
        $out.push(svg);
    }};
}

mod clients;

/// Draws every figure into `dir`; returns the files written.
pub fn write_plots(dir: &Path, r: &Report) -> Result<Vec<PathBuf>> {
    register_font();
    let mut out = Vec::new();
    render!(dir, "fig2_activation", WIDE, fig2, r, out);
    render!(dir, "fig3_neighbor_accumulated", SIZE, fig3, r, out);
    render!(dir, "fig4_neighbor_mean_outdegree", SIZE, fig4, r, out);
    render!(dir, "neighbor_snapshot_outdegree", SIZE, neighbor_snapshots, r, out);
    render!(dir, "fig5_video_indegree", SIZE, fig5, r, out);
    render!(dir, "fig6_video_outdegree", WIDE, fig6, r, out);
    render!(dir, "fig7_throughput", SIZE, fig7, r, out);
    render!(dir, "source_children", SIZE, source_children, r, out);
    clients::write(dir, r, &mut out)?;
    Ok(out)
}

fn max_f(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(0.0, f64::max)
}

/// Grey tones of Tang et al.'s reference marks, apart from the trace's colours.
const PAPER_GREY: [RGBColor; 2] = [RGBColor(110, 110, 110), RGBColor(170, 170, 170)];

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A dashed line at one of Tang et al.'s values (paper::PAPER), so that a figure shows the
/// paper next to the trace.
fn paper_mark<DB: DrawingBackend>(c: &mut Chart<'_, DB>, line: [(f64, f64); 2], color: RGBColor, label: String) -> Res {
    let style = color.stroke_width(2);
    c.draw_series(DashedLineSeries::new(line, 8, 6, style))
        .s()?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}

/// The other peers the paper's shares are of: all peers of the trace but one.
fn other_peers(r: &Report) -> f64 {
    r.summary.peers.saturating_sub(1) as f64
}

fn fig2<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let panels = root.split_evenly((1, 2));
    let a = &r.activation;
    let panel = [
        ("neighbor link: keep-alive gaps", &a.keepalive, paper::KEEPALIVE_GAP_P95),
        ("video link: request gaps", &a.request, paper::REQUEST_GAP_P95),
    ];
    for (area, (title, g, key)) in panels.iter().zip(panel) {
        let x_max = g.pdf.len() as f64 * g.bin_s;
        let y_max = max_f(g.pdf.iter().copied()).max(1e-6) * 1.1;
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max.max(0.1), 0.0..y_max)
            .s()?;
        c.configure_mesh().x_desc("time between consecutive packets (s)").y_desc("pdf").draw().s()?;
        c.draw_series(LineSeries::new(
            g.pdf.iter().enumerate().map(|(i, p)| ((i as f64 + 0.5) * g.bin_s, *p)),
            PALETTE[0].stroke_width(2),
        ))
        .s()?;
        if let Some(p95) = g.p95_s {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(p95, 0.0), (p95, y_max)],
                PALETTE[1].stroke_width(2),
            )))
            .s()?
            .label(format!("95%: {p95:.2} s ({} gaps)", g.gaps))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[1].stroke_width(2)));
        }
        if let Some(x) = paper::paper_number(key) {
            paper_mark(&mut c, [(x, 0.0), (x, y_max)], PAPER_GREY[0], format!("Tang et al.: 95% within {x} s"))?;
        }
        c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
    }
    Ok(())
}

fn fig3<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let acc: Vec<_> = r.neighbor.accumulated.iter().rev().take(4).rev().collect();
    let panels = root.split_evenly((2, 2));
    let k_max =
        acc.iter().map(|a| a.outdegree.counts.len().max(a.random_graph_pdf.len())).max().unwrap_or(1).max(2) as f64;
    for (i, (area, a)) in panels.iter().zip(&acc).enumerate() {
        let pdf = a.outdegree.pdf();
        let y_max = max_f(pdf.iter().copied().chain(a.random_graph_pdf.iter().copied())).max(1e-6) * 1.1;
        let mut c = ChartBuilder::on(area)
            .caption(format!("G_N over [0, {:.0} s]: {} peers", a.t_s, a.nodes), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..k_max, 0.0..y_max)
            .s()?;
        c.configure_mesh().x_desc("out-degree k").y_desc("Pr[D_out = k]").draw().s()?;
        c.draw_series(
            pdf.iter()
                .enumerate()
                .filter(|(_, p)| **p > 0.0)
                .map(|(k, p)| Circle::new((k as f64, *p), 4, PALETTE[0].filled())),
        )
        .s()?;
        let last = i == acc.len() - 1 && !a.random_graph_pdf.is_empty();
        if last {
            c.draw_series(LineSeries::new(
                a.random_graph_pdf.iter().enumerate().map(|(k, p)| (k as f64, *p)),
                PALETTE[1].stroke_width(2),
            ))
            .s()?
            .label(format!("random graph, p = {:.3}", a.random_graph_p))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[1].stroke_width(2)));
        }
        let p_paper = paper::paper_number(paper::GN_ACCUMULATED_300S).filter(|_| a.t_s == paper::PAPER_ACCUMULATE_S);
        if let Some(p) = p_paper {
            let k = p * a.nodes.saturating_sub(1) as f64;
            paper_mark(&mut c, [(k, 0.0), (k, y_max)], PAPER_GREY[0], format!("Tang et al.: p = {p}, mean {k:.1}"))?;
        }
        if last || p_paper.is_some() {
            c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
        }
    }
    Ok(())
}

fn fig4<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let pts = &r.neighbor.mean_outdegree_over_time;
    let x_max = pts.last().map(|p| p.t_s).unwrap_or(1.0).max(1.0);
    let y_max = max_f(pts.iter().map(|p| p.mean + p.sd)).max(1.0) * 1.1;
    let mut c = ChartBuilder::on(root)
        .caption("Average out-degree of the accumulated neighbour graph", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .s()?;
    c.configure_mesh().x_desc("time T (s)").y_desc("E[D_out] of G_N over [0, T]").draw().s()?;
    let every = (pts.len() / 60).max(1);
    c.draw_series(pts.iter().step_by(every).map(|p| {
        PathElement::new(vec![(p.t_s, (p.mean - p.sd).max(0.0)), (p.t_s, p.mean + p.sd)], PALETTE[0].mix(0.5))
    }))
    .s()?;
    c.draw_series(LineSeries::new(pts.iter().map(|p| (p.t_s, p.mean)), PALETTE[0].stroke_width(2)))
        .s()?
        .label("mean (bars: one standard deviation)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[0].stroke_width(2)));
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
    Ok(())
}

fn neighbor_snapshots<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let snaps = &r.neighbor.snapshots;
    let other = other_peers(r);
    let k_max = (snaps.iter().map(|s| s.outdegree.counts.len()).max().unwrap_or(1).max(2) as f64).max(other + 1.0);
    let y_max = max_f(snaps.iter().flat_map(|s| s.outdegree.pdf())).max(1e-6) * 1.1;
    let mut c = ChartBuilder::on(root)
        .caption("Out-degree of the neighbour graph per snapshot", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..k_max, 0.0..y_max)
        .s()?;
    c.configure_mesh()
        .x_desc("out-degree k (neighbours a peer sends keep-alives to)")
        .y_desc("Pr[D_out = k]")
        .draw()
        .s()?;
    for (i, s) in snaps.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        c.draw_series(
            s.outdegree
                .pdf()
                .into_iter()
                .enumerate()
                .filter(|(_, p)| *p > 0.0)
                .map(|(k, p)| Circle::new((k as f64, p), 4, color.filled())),
        )
        .s()?
        .label(format!("tau = {} s: mean {:.2}, {} samples", s.tau_s, s.outdegree.mean, s.outdegree.samples))
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        if i == 0 {
            c.draw_series(LineSeries::new(
                s.gaussian.pdf.iter().enumerate().map(|(k, p)| (k as f64, *p)),
                color.stroke_width(1),
            ))
            .s()?
            .label("Gaussian fit")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    for (i, (key, tau)) in [(paper::GN_SHARE_2_5S, 2.5), (paper::GN_SHARE_10S, 10.0)].into_iter().enumerate() {
        if let Some(share) = paper::paper_number(key).filter(|_| other > 0.0) {
            let k = share * other;
            let label = format!("Tang et al., tau = {tau} s: {:.1}% of the {other} other peers", 100.0 * share);
            paper_mark(&mut c, [(k, 0.0), (k, y_max)], PAPER_GREY[i], label)?;
        }
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
    Ok(())
}

fn fig5<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let Some(s) = r.video.snapshots.first() else { return Ok(()) };
    let pdf = s.indegree.pdf();
    let k_max = pdf.len().max(2) as f64;
    let y_max = max_f(pdf.iter().copied().chain(s.indegree_gaussian.pdf.iter().copied())).max(1e-6) * 1.1;
    let mut c = ChartBuilder::on(root)
        .caption(format!("In-degree (parents) of the video graph, tau = {} s", s.tau_s), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..k_max, 0.0..y_max)
        .s()?;
    c.configure_mesh().x_desc("in-degree k").y_desc("Pr[D_in = k]").draw().s()?;
    c.draw_series(
        pdf.iter().enumerate().filter(|(_, p)| **p > 0.0).map(|(k, p)| {
            Rectangle::new([(k as f64 - 0.35, 0.0), (k as f64 + 0.35, *p)], PALETTE[0].mix(0.6).filled())
        }),
    )
    .s()?
    .label(format!("{} samples, mean {:.2}", s.indegree.samples, s.indegree.mean))
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], PALETTE[0].mix(0.6).filled()));
    let g = &s.indegree_gaussian;
    c.draw_series(LineSeries::new(g.pdf.iter().enumerate().map(|(k, p)| (k as f64, *p)), PALETTE[1].stroke_width(2)))
        .s()?
        .label(format!("Gaussian fit: mean {:.2}, sd {:.2}", g.mean, g.sd))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[1].stroke_width(2)));
    if let Some(m) = paper::paper_number(paper::GV_INDEGREE_2S) {
        paper_mark(&mut c, [(m, 0.0), (m, y_max)], PAPER_GREY[0], format!("Tang et al.: mean {m}"))?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
    Ok(())
}

fn fig6<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let Some(s) = r.video.snapshots.first() else { return Ok(()) };
    let pts: Vec<(f64, f64)> = s
        .outdegree
        .pdf()
        .into_iter()
        .enumerate()
        .skip(1)
        .filter(|(_, p)| *p > 0.0)
        .map(|(k, p)| (k as f64, p))
        .collect();
    if pts.is_empty() {
        return Ok(());
    }
    let panels = root.split_evenly((1, 2));
    let k_max = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let y_min = pts.iter().map(|p| p.1).fold(1.0, f64::min) / 2.0;
    // Log-log (power law).
    {
        let mut c = ChartBuilder::on(&panels[0])
            .caption(format!("Out-degree (children), tau = {} s: log-log", s.tau_s), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1.0..k_max).log_scale(), (y_min..1.0).log_scale())
            .s()?;
        c.configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("out-degree k")
            .y_desc("Pr[D_out = k]")
            .draw()
            .s()?;
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, PALETTE[0].filled()))).s()?;
        if let Some(l) = &s.outdegree_fits.log_log {
            c.draw_series(LineSeries::new(
                [1.0, k_max].iter().map(|&k: &f64| (k, (l.intercept + l.slope * k.ln()).exp().clamp(y_min, 1.0))),
                PALETTE[1].stroke_width(2),
            ))
            .s()?
            .label(format!("ln Pr = {:.2} {:+.2} ln k (R2 {:.2})", l.intercept, l.slope, l.r2))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[1].stroke_width(2)));
            c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
        }
    }
    // Log-linear (exponential).
    {
        let mut c = ChartBuilder::on(&panels[1])
            .caption("log-linear", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..k_max, (y_min..1.0).log_scale())
            .s()?;
        c.configure_mesh().y_labels(6).x_desc("out-degree k").y_desc("Pr[D_out = k]").draw().s()?;
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, PALETTE[0].filled()))).s()?;
        if let Some(l) = &s.outdegree_fits.log_linear {
            c.draw_series(LineSeries::new(
                (0..=40)
                    .map(|i| i as f64 * k_max / 40.0)
                    .map(|k| (k, (l.intercept + l.slope * k).exp()))
                    .filter(|&(_, y)| (y_min..=1.0).contains(&y)),
                PALETTE[2].stroke_width(2),
            ))
            .s()?
            .label(format!("ln Pr = {:.2} {:+.3} k (R2 {:.2})", l.intercept, l.slope, l.r2))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[2].stroke_width(2)));
            c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
        }
    }
    Ok(())
}

fn fig7<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let peers = &r.load.peers;
    let mb = 1e6;
    let y_max = max_f(peers.iter().flat_map(|p| [p.upload_bps, p.download_bps])).max(1.0) / mb * 1.1;
    let n = peers.len().max(2) as f64;
    let mut c = ChartBuilder::on(root)
        .caption("Throughput per peer (video payload)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..n + 0.5, 0.0..y_max)
        .s()?;
    c.configure_mesh().x_desc("peer id").y_desc("throughput (MBps)").draw().s()?;
    type Get = fn(&crate::overlay::PeerLoad) -> f64;
    let series: [(&str, Get, usize); 4] = [
        ("uploading throughput among peers", |p| p.upload_bps, 0),
        ("downloading throughput among peers", |p| p.download_from_peers_bps, 1),
        ("downloading throughput from SP", |p| p.download_from_source_bps, 2),
        ("downloading throughput from SP and peers", |p| p.download_bps, 5),
    ];
    for (label, get, ci) in series {
        let color = PALETTE[ci];
        c.draw_series(LineSeries::new(
            peers.iter().enumerate().map(|(i, p)| (i as f64 + 1.0, get(p) / mb)),
            color.stroke_width(2),
        ))
        .s()?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        c.draw_series(
            peers.iter().enumerate().map(|(i, p)| Circle::new((i as f64 + 1.0, get(p) / mb), 3, color.filled())),
        )
        .s()?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
    Ok(())
}

fn source_children<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Res {
    root.fill(&WHITE).s()?;
    let s = &r.load.source;
    let x_max = (s.by_snapshot.len() as f64 * s.tau_s).max(1.0);
    let line: Vec<(f64, f64)> =
        s.by_snapshot.outline().into_iter().map(|(k, n)| (k as f64 * s.tau_s, n as f64)).collect();
    let cap = paper::paper_number(paper::SOURCE_MAX_CHILDREN);
    let y_max = (cap.unwrap_or(0.0).max(s.max as f64) + 1.0) * 1.1;
    let mut c = ChartBuilder::on(root)
        .caption(
            format!("Children of the source per {} s snapshot ({} peers ever)", s.tau_s, s.peers_ever),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .s()?;
    c.configure_mesh().x_desc("time from the start of the interval (s)").y_desc("children").draw().s()?;
    c.draw_series(LineSeries::new(line, PALETTE[0].stroke_width(2)))
        .s()?
        .label(format!("at most {}", s.max))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[0].stroke_width(2)));
    if let Some(m) = cap {
        paper_mark(&mut c, [(0.0, m), (x_max, m)], PAPER_GREY[0], format!("Tang et al.: at most {m}"))?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().s()?;
    Ok(())
}
