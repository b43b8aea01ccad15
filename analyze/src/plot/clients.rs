//! The client layer's figures, drawn like Borges et al.'s Figs. 4–11: for each quantity the
//! empirical CDF (or its complement, or a histogram of the pdf) of the measured samples, the
//! best least-squares and maximum-likelihood fits drawn over it, and the paper's fitted curves
//! for the run's preset (event when it is unknown, as the legend says). Log axes are drawn in
//! log10 coordinates with the tick labels written back in the samples' units.

use super::*;
use crate::clients::Clients;
use crate::fit::{Fit, Fits, Params, ecdf_points, significant};
use crate::paper::BorgesFit;

/// What a panel shows of the samples.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// P(X ≤ x).
    Cdf,
    /// P(X > x).
    Ccdf,
    /// A histogram of the samples as a density, with the fitted densities.
    Pdf,
}

#[derive(Clone, Copy)]
struct Panel {
    kind: Kind,
    log_x: bool,
    log_y: bool,
}

const fn panel(kind: Kind, log_x: bool, log_y: bool) -> Panel {
    Panel { kind, log_x, log_y }
}

/// One figure: a client quantity and the panels the paper's figure has.
pub(super) struct Figure {
    /// `clients_<name>.png`.
    name: &'static str,
    title: &'static str,
    x_desc: &'static str,
    panels: &'static [Panel],
}

/// The figures, in the paper's order (docs/ANALYZE.md, Clients: figures).
pub(super) const FIGURES: [Figure; 7] = [
    Figure {
        name: "inter_activity",
        title: "Inter-activity times over 5 s (Borges et al. Fig. 4)",
        x_desc: "time between consecutive activities of a client (s, model time)",
        panels: &[panel(Kind::Cdf, true, false)],
    },
    Figure {
        name: "inter_arrival_s",
        title: "Session inter-arrival times (Fig. 5)",
        x_desc: "time between consecutive session starts (s, model time)",
        panels: &[panel(Kind::Cdf, true, false), panel(Kind::Ccdf, true, true)],
    },
    Figure {
        name: "sessions_per_client",
        title: "Sessions per client (Fig. 6)",
        x_desc: "sessions k",
        panels: &[panel(Kind::Ccdf, false, true)],
    },
    Figure {
        name: "on_percent",
        title: "ON times (Fig. 7)",
        x_desc: "ON time (% of the transmission)",
        panels: &[panel(Kind::Cdf, true, false), panel(Kind::Cdf, false, false)],
    },
    Figure {
        name: "off_percent",
        title: "OFF times (Fig. 8)",
        x_desc: "OFF time (% of the transmission)",
        panels: &[panel(Kind::Cdf, false, false)],
    },
    Figure {
        name: "partners",
        title: "Partners per client per 1 s snapshot (Fig. 9)",
        x_desc: "partners",
        panels: &[panel(Kind::Cdf, false, false), panel(Kind::Pdf, false, false)],
    },
    Figure {
        name: "partnership_fraction",
        title: "Partnership durations (Figs. 10 and 11)",
        x_desc: "partnership duration / the session's remaining ON time",
        panels: &[panel(Kind::Cdf, false, false), panel(Kind::Ccdf, true, true)],
    },
];

impl Figure {
    pub(super) fn file_stem(&self) -> String {
        format!("clients_{}", self.name)
    }

    pub(super) fn size(&self) -> (u32, u32) {
        if self.panels.len() > 1 { WIDE } else { SIZE }
    }
}

/// A distribution drawn over the samples.
enum Dist {
    Fit(Fit),
    Paper(&'static BorgesFit),
}

impl Dist {
    fn cdf(&self, x: f64) -> f64 {
        match self {
            Dist::Fit(f) => f.cdf(x),
            Dist::Paper(p) => p.cdf(x),
        }
    }
    fn pdf(&self, x: f64) -> f64 {
        match self {
            Dist::Fit(f) => f.pdf(x),
            Dist::Paper(p) => p.pdf(x),
        }
    }
}

struct Curve {
    label: String,
    color: RGBColor,
    dashed: bool,
    dist: Dist,
}

/// A vertical line at x.
struct Mark {
    x: f64,
    label: String,
    color: RGBColor,
    dashed: bool,
}

/// Everything a figure draws.
struct Data {
    sorted: Vec<f64>,
    discrete: bool,
    curves: Vec<Curve>,
    marks: Vec<Mark>,
}

fn sample_and_fits<'a>(c: &'a Clients, name: &str) -> (&'a [f64], Option<&'a Fits>) {
    let (s, f) = (&c.samples, &c.fits);
    match name {
        "inter_arrival_s" => (&s.inter_arrival_s, Some(&f.inter_arrival_s)),
        "on_percent" => (&s.on_percent, Some(&f.on_percent)),
        "off_percent" => (&s.off_percent, Some(&f.off_percent)),
        "partners" => (&s.partners, Some(&f.partners)),
        "partnership_fraction" => (&s.partnership_fraction, Some(&f.partnership_fraction)),
        "sessions_per_client" => (&s.sessions_per_client, Some(&c.sessions_per_client.fits)),
        _ => (&s.inter_activity_s, None),
    }
}

fn params_label(p: &Params) -> String {
    format!("{} {}", p.family().name(), p.text(", ", 3))
}

fn fit_curve(fit: &Fit, what: &str, color: RGBColor) -> Curve {
    let label = format!("{what}: {} (KS {:.3})", params_label(&fit.params), fit.ks);
    Curve { label, color, dashed: false, dist: Dist::Fit(fit.clone()) }
}

fn data(c: &Clients, fig: &Figure) -> Data {
    let (xs, fits) = sample_and_fits(c, fig.name);
    let mut sorted: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut curves = Vec::new();
    if let Some(fits) = fits {
        curves.extend(fits.lse.as_ref().map(|f| fit_curve(f, "least squares", PALETTE[1])));
        curves.extend(fits.mle.as_ref().map(|f| fit_curve(f, "max. likelihood", PALETTE[2])));
    }
    let (preset, assumed) = crate::paper::borges_preset(c.preset.as_deref());
    let column = if assumed { format!("{preset} (preset unknown)") } else { preset.to_string() };
    for (i, p) in crate::paper::borges_fits(fig.name, preset).into_iter().enumerate() {
        let label = format!("Borges et al., {column}, {}: {}", p.cite, params_label(&p.params));
        curves.push(Curve { label, color: PAPER_GREY[i % 2], dashed: true, dist: Dist::Paper(p) });
    }
    Data { discrete: fig.name == "sessions_per_client", marks: marks(c, fig), sorted, curves }
}

/// The knee and the session gap on the inter-activity CDF.
fn marks(c: &Clients, fig: &Figure) -> Vec<Mark> {
    if fig.name != "inter_activity" {
        return Vec::new();
    }
    let mut m = Vec::new();
    if let Some(k) = c.inter_activity.knee_s {
        m.push(Mark { x: k, label: format!("knee: {} s", significant(k, 3)), color: PALETTE[3], dashed: false });
    }
    if let Some(k) = crate::paper::BORGES.iter().find(|r| r.key == "inter_activity_knee_s") {
        let label = format!("Borges et al.: knee about {} s", k.event);
        m.push(Mark { x: k.event, label, color: PAPER_GREY[0], dashed: true });
    }
    // After the paper's knee, which it covers at the default 150 s.
    let gap = c.session_gap_s;
    m.push(Mark { x: gap, label: format!("session gap: {} s", significant(gap, 3)), color: PALETTE[4], dashed: true });
    m
}

/// An axis in drawing coordinates: log10 of the value on a log axis.
#[derive(Clone, Copy)]
struct Axis {
    log: bool,
}

impl Axis {
    fn to(self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }
    fn from(self, t: f64) -> f64 {
        if self.log { 10f64.powf(t) } else { t }
    }
    /// The drawing range of values from `lo` to `hi` (on a log axis, the positive ones).
    fn range(self, lo: f64, hi: f64) -> (f64, f64) {
        let (lo, hi) = (self.to(lo), self.to(hi));
        let pad = if hi > lo { 0.03 * (hi - lo) } else { 0.5 };
        (lo - pad, hi + pad)
    }
}

/// Draws every client figure into `dir`.
pub(super) fn write(dir: &Path, r: &Report, out: &mut Vec<PathBuf>) -> Result<()> {
    for fig in &FIGURES {
        let d = data(&r.clients, fig);
        let name = fig.file_stem();
        render!(dir, name, fig.size(), figure, &(fig, &d), out);
    }
    Ok(())
}

fn figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, (fig, d): &(&Figure, &Data)) -> Res {
    root.fill(&WHITE).s()?;
    let areas = root.split_evenly((1, fig.panels.len()));
    for (area, p) in areas.iter().zip(fig.panels) {
        draw_panel(area, fig, *p, d)?;
    }
    Ok(())
}

/// The x range of a panel, in drawing coordinates.
fn x_range(d: &Data, x: Axis) -> (f64, f64) {
    let drawable: Vec<f64> = d.sorted.iter().copied().filter(|&v| !x.log || v > 0.0).collect();
    let marks = d.marks.iter().map(|m| m.x).filter(|&v| !x.log || v > 0.0);
    let all = || drawable.iter().copied().chain(marks.clone());
    match (all().reduce(f64::min), all().reduce(f64::max)) {
        (Some(lo), Some(hi)) => x.range(lo, hi),
        _ => x.range(1.0, 10.0),
    }
}

fn y_range(d: &Data, p: Panel, xr: (f64, f64), x: Axis) -> (f64, f64) {
    match p.kind {
        Kind::Pdf => (0.0, histogram(d, xr, x).iter().map(|b| b.2).fold(1e-9, f64::max) * 1.3),
        _ if p.log_y => ((0.5 / d.sorted.len().max(1) as f64).max(1e-6).log10(), 0.05),
        _ => (0.0, 1.02),
    }
}

/// A log x axis shows the samples only when they span a decade or more.
fn spans_a_decade(d: &Data) -> bool {
    let positive = || d.sorted.iter().copied().filter(|&v| v > 0.0);
    positive().reduce(f64::max).zip(positive().reduce(f64::min)).is_some_and(|(hi, lo)| hi >= 10.0 * lo)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, fig: &Figure, p: Panel, d: &Data) -> Res {
    let x = Axis { log: p.log_x && (d.sorted.is_empty() || spans_a_decade(d)) };
    let y = Axis { log: p.log_y };
    let xr = x_range(d, x);
    let yr = y_range(d, p, xr, x);
    let what = match p.kind {
        Kind::Cdf => "CDF",
        Kind::Ccdf => "complementary CDF",
        Kind::Pdf => "pdf",
    };
    let empty = if d.sorted.is_empty() { ": no samples" } else { "" };
    let mut c = ChartBuilder::on(area)
        .caption(format!("{}, {what}{empty}", fig.title), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .s()?;
    let fx = move |t: &f64| significant(x.from(*t), 3);
    let fy = move |t: &f64| significant(y.from(*t), 3);
    let y_desc = match p.kind {
        Kind::Cdf => "P(X <= x)",
        Kind::Ccdf => "P(X > x)",
        Kind::Pdf => "density",
    };
    // Linear axes keep plotters' labels, which have the digits their ticks need.
    let mut mesh = c.configure_mesh();
    mesh.x_desc(fig.x_desc).y_desc(y_desc);
    if x.log {
        mesh.x_label_formatter(&fx);
    }
    if y.log {
        mesh.y_label_formatter(&fy);
    }
    mesh.draw().s()?;
    if d.sorted.is_empty() {
        return Ok(());
    }
    measured(&mut c, d, p, x, y, xr)?;
    for curve in &d.curves {
        draw_curve(&mut c, curve, p, x, y, xr, yr)?;
    }
    for m in &d.marks {
        let line = [(x.to(m.x), yr.0), (x.to(m.x), yr.1)];
        if m.dashed {
            paper_mark(&mut c, line, m.color, m.label.clone())?;
        } else {
            let style = m.color.stroke_width(2);
            c.draw_series(std::iter::once(PathElement::new(line.to_vec(), style)))
                .s()?
                .label(m.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    let position = match p.kind {
        Kind::Cdf => SeriesLabelPosition::LowerRight,
        Kind::Ccdf => SeriesLabelPosition::LowerLeft,
        Kind::Pdf => SeriesLabelPosition::UpperRight,
    };
    c.configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 11))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .s()
}

/// (left, right, density) of the histogram bins: one per integer for counts (partners) up to
/// 200 of them, else 40 equal bins over the panel's x range.
fn histogram(d: &Data, xr: (f64, f64), x: Axis) -> Vec<(f64, f64, f64)> {
    let (lo, hi) = (x.from(xr.0), x.from(xr.1));
    let integers = d.sorted.iter().all(|v| v.fract() == 0.0) && hi - lo <= 200.0;
    let (first, w, bins) = if integers {
        (lo.round() - 0.5, 1.0, (hi.round() - lo.round()) as usize + 1)
    } else {
        (lo, (hi - lo) / 40.0, 40)
    };
    let mut counts = vec![0u64; bins];
    for &v in &d.sorted {
        counts[(((v - first) / w).max(0.0) as usize).min(bins - 1)] += 1;
    }
    let n = d.sorted.len().max(1) as f64;
    // Bars of counts are drawn 0.8 wide, apart.
    let inset = if integers { 0.1 } else { 0.0 };
    let edge = |i: usize| first + i as f64 * w;
    (0..bins).map(|i| (edge(i) + inset, edge(i + 1) - inset, counts[i] as f64 / n / w)).collect()
}

/// The measured distribution: a line through at most 1000 points of the empirical CDF (dots
/// for counts), or the histogram.
fn measured<DB: DrawingBackend>(c: &mut Chart<'_, DB>, d: &Data, p: Panel, x: Axis, y: Axis, xr: (f64, f64)) -> Res {
    let color = PALETTE[0];
    let label = format!("measured: {} samples", d.sorted.len());
    let legend = move |(x, y): (i32, i32)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.filled());
    if p.kind == Kind::Pdf {
        let bars = histogram(d, xr, x)
            .into_iter()
            .map(|(a, b, h)| Rectangle::new([(x.to(a), 0.0), (x.to(b), h)], color.mix(0.5).filled()));
        c.draw_series(bars).s()?.label(label).legend(legend);
        return Ok(());
    }
    let points: Vec<(f64, f64)> = ecdf_points(&d.sorted, 1000)
        .into_iter()
        .map(|(v, f)| (v, if p.kind == Kind::Ccdf { 1.0 - f } else { f }))
        .filter(|&(v, f)| (!x.log || v > 0.0) && (!y.log || f > 0.0))
        .map(|(v, f)| (x.to(v), y.to(f)))
        .collect();
    if d.discrete {
        c.draw_series(points.iter().map(|&pt| Circle::new(pt, 5, color.filled()))).s()?.label(label).legend(legend);
    } else {
        c.draw_series(LineSeries::new(points, color.stroke_width(3))).s()?.label(label).legend(legend);
    }
    Ok(())
}

fn draw_curve<DB: DrawingBackend>(
    c: &mut Chart<'_, DB>,
    curve: &Curve,
    p: Panel,
    x: Axis,
    y: Axis,
    xr: (f64, f64),
    yr: (f64, f64),
) -> Res {
    const STEPS: usize = 300;
    let points: Vec<(f64, f64)> = (0..=STEPS)
        .map(|i| xr.0 + (xr.1 - xr.0) * i as f64 / STEPS as f64)
        .map(|t| {
            let v = x.from(t);
            let f = match p.kind {
                Kind::Cdf => curve.dist.cdf(v),
                Kind::Ccdf => 1.0 - curve.dist.cdf(v),
                Kind::Pdf => curve.dist.pdf(v),
            };
            (t, f)
        })
        .filter(|&(_, f)| f.is_finite() && (!y.log || f > 0.0))
        .map(|(t, f)| (t, y.to(f)))
        .filter(|&(_, f)| f >= yr.0 && f <= yr.1)
        .collect();
    let style = curve.color.stroke_width(2);
    let series = if curve.dashed {
        c.draw_series(DashedLineSeries::new(points, 8, 6, style)).s()?
    } else {
        c.draw_series(LineSeries::new(points, style)).s()?
    };
    series.label(curve.label.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}
