//! Small statistics: distributions of integer samples, the fits of Tang et al.'s figures
//! (Gaussian, log-log and log-linear lines, a random graph's binomial degree), correlations.

use serde::Serialize;

/// Mean and (population) standard deviation; (0, 0) without samples.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Count, mean, standard deviation and percentiles of real-valued samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub samples: u64,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    /// Percentiles (linear between order statistics, as numpy's default).
    pub p5: f64,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Summary {
    /// Of `xs`; all zeros without samples.
    pub fn of(xs: &[f64]) -> Summary {
        if xs.is_empty() {
            return Summary::default();
        }
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let (mean, sd) = mean_sd(&v);
        Summary::from_quantiles(v.len() as u64, mean, sd, |p| quantile_sorted(&v, p))
    }
}

impl Summary {
    /// Of integer samples given as `counts[k]` = how many equal k: exactly what
    /// [`Summary::of`] gives on the samples themselves, in memory that follows the largest
    /// value, not the number of samples.
    pub fn of_counts(counts: &[u64]) -> Summary {
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return Summary::default();
        }
        let mean = counts.iter().enumerate().map(|(k, &c)| k as f64 * c as f64).sum::<f64>() / n as f64;
        let var = counts.iter().enumerate().map(|(k, &c)| c as f64 * (k as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let at = |rank: u64| value_at_rank(counts, rank);
        let q = |p: f64| {
            let h = p.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = h.floor() as u64;
            at(lo) + (h - h.floor()) * (at((lo + 1).min(n - 1)) - at(lo))
        };
        Summary::from_quantiles(n, mean, var.sqrt(), q)
    }

    /// The summary of `samples` values with this mean and sd, whose p-quantile is `q(p)` (the
    /// minimum and maximum are q(0) and q(1)).
    fn from_quantiles(samples: u64, mean: f64, sd: f64, q: impl Fn(f64) -> f64) -> Summary {
        Summary {
            samples,
            mean,
            sd,
            min: q(0.0),
            max: q(1.0),
            p5: q(0.05),
            p10: q(0.10),
            p25: q(0.25),
            p50: q(0.50),
            p75: q(0.75),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
        }
    }
}

/// The value of rank `rank` (from 0) among integer samples given as counts.
fn value_at_rank(counts: &[u64], rank: u64) -> f64 {
    let mut seen = 0u64;
    for (k, &c) in counts.iter().enumerate() {
        seen += c;
        if rank < seen {
            return k as f64;
        }
    }
    counts.len().saturating_sub(1) as f64
}

/// At most `max` order statistics, evenly spaced in rank (the smallest and largest included),
/// of integer samples given as counts: what `fit::thin` keeps of the samples themselves (a
/// `max` under 2 counts as 2).
pub fn spaced_order_statistics(counts: &[u64], max: usize) -> Vec<f64> {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return Vec::new();
    }
    let m = n.min(max.max(2) as u64) as usize;
    let ranks: Vec<u64> = if n as usize <= m {
        (0..n).collect()
    } else {
        (0..m).map(|j| (j as f64 * (n - 1) as f64 / (m - 1) as f64).round() as u64).collect()
    };
    // One walk: the ranks ascend.
    let (mut out, mut k, mut below) = (Vec::with_capacity(m), 0usize, 0u64);
    for r in ranks {
        while k < counts.len() && below + counts[k] <= r {
            below += counts[k];
            k += 1;
        }
        out.push(k.min(counts.len().saturating_sub(1)) as f64);
    }
    out
}

/// The q-quantile of sorted samples, linear between order statistics; 0 without samples.
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let h = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, frac) = (h.floor() as usize, h - h.floor());
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + frac * (v[hi] - v[lo])
}

/// A distribution of non-negative integer samples (degrees).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Distribution {
    pub samples: u64,
    pub mean: f64,
    pub sd: f64,
    pub max: u64,
    /// `counts[k]`: samples equal to k.
    pub counts: Vec<u64>,
}

impl Distribution {
    pub fn from_counts(counts: Vec<u64>) -> Distribution {
        let samples: u64 = counts.iter().sum();
        let mut d = Distribution { samples, counts, ..Distribution::default() };
        if samples == 0 {
            return d;
        }
        let n = samples as f64;
        let mean = d.counts.iter().enumerate().map(|(k, &c)| k as f64 * c as f64).sum::<f64>() / n;
        let var = d.counts.iter().enumerate().map(|(k, &c)| c as f64 * (k as f64 - mean).powi(2)).sum::<f64>() / n;
        d.mean = mean;
        d.sd = var.sqrt();
        d.max = d.counts.iter().rposition(|&c| c > 0).unwrap_or(0) as u64;
        d
    }

    /// Adds one sample.
    pub fn push_count(counts: &mut Vec<u64>, k: usize) {
        if counts.len() <= k {
            counts.resize(k + 1, 0);
        }
        counts[k] += 1;
    }

    /// Pr[D = k] for every k up to the maximum.
    pub fn pdf(&self) -> Vec<f64> {
        let n = self.samples.max(1) as f64;
        self.counts.iter().map(|&c| c as f64 / n).collect()
    }
}

/// Normal cumulative distribution (a zero `sd` is a step at the mean, where statrs's `Normal`
/// refuses it).
pub fn normal_cdf(x: f64, mean: f64, sd: f64) -> f64 {
    if sd <= 0.0 {
        return if x >= mean { 1.0 } else { 0.0 };
    }
    0.5 * (1.0 + statrs::function::erf::erf((x - mean) / (sd * std::f64::consts::SQRT_2)))
}

/// A Gaussian fitted to integer samples (moments), with the probability it gives each integer
/// (the mass of [k - 0.5, k + 0.5)) and the sum of squared errors against the empirical pdf.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GaussianFit {
    pub mean: f64,
    pub sd: f64,
    /// Sum over k of (empirical pdf - fitted pdf)^2.
    pub sse: f64,
    /// Fitted Pr[D = k] for k = 0..=max.
    pub pdf: Vec<f64>,
}

pub fn gaussian_fit(d: &Distribution) -> GaussianFit {
    let emp = d.pdf();
    let pdf: Vec<f64> = (0..emp.len())
        .map(|k| normal_cdf(k as f64 + 0.5, d.mean, d.sd) - normal_cdf(k as f64 - 0.5, d.mean, d.sd))
        .collect();
    let sse = emp.iter().zip(&pdf).map(|(a, b)| (a - b).powi(2)).sum();
    GaussianFit { mean: d.mean, sd: d.sd, sse, pdf }
}

/// A least-squares line y = intercept + slope x.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// Points used.
    pub points: usize,
}

pub fn line_fit(points: &[(f64, f64)]) -> Option<LineFit> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy == 0.0 { 1.0 } else { (sxy * sxy) / (sxx * syy) };
    Some(LineFit { slope, intercept, r2, points: points.len() })
}

/// The two fits of Fig. 6: log Pr[D = k] against log k (a power law) and against k (an
/// exponential), over k >= 1 with Pr[D = k] > 0.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TailFits {
    /// ln Pr = intercept + slope ln k.
    pub log_log: Option<LineFit>,
    /// ln Pr = intercept + slope k.
    pub log_linear: Option<LineFit>,
}

pub fn tail_fits(d: &Distribution) -> TailFits {
    let pdf = d.pdf();
    let pts: Vec<(f64, f64)> =
        pdf.iter().enumerate().skip(1).filter(|(_, p)| **p > 0.0).map(|(k, p)| (k as f64, p.ln())).collect();
    let ll: Vec<(f64, f64)> = pts.iter().map(|(k, y)| (k.ln(), *y)).collect();
    TailFits { log_log: line_fit(&ll), log_linear: line_fit(&pts) }
}

/// ln of the binomial coefficient.
fn ln_choose(n: u64, k: u64) -> f64 {
    fn ln_fact(n: u64) -> f64 {
        (2..=n).map(|i| (i as f64).ln()).sum()
    }
    ln_fact(n) - ln_fact(k) - ln_fact(n - k)
}

/// Degree pdf of a directed random graph on `n` nodes with link density `p`: Binomial(n-1, p).
pub fn binomial_pdf(n: u64, p: f64) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let m = n - 1;
    (0..=m)
        .map(|k| {
            if p <= 0.0 {
                return if k == 0 { 1.0 } else { 0.0 };
            }
            if p >= 1.0 {
                return if k == m { 1.0 } else { 0.0 };
            }
            (ln_choose(m, k) + k as f64 * p.ln() + (m - k) as f64 * (1.0 - p).ln()).exp()
        })
        .collect()
}

/// Pearson correlation; `None` with fewer than 3 points or no variance.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 3 {
        return None;
    }
    let (mx, sx) = mean_sd(xs);
    let (my, sy) = mean_sd(ys);
    if sx == 0.0 || sy == 0.0 {
        return None;
    }
    let cov = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum::<f64>() / xs.len() as f64;
    Some(cov / (sx * sy))
}

fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson of the ranks, ties averaged).
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    pearson(&ranks(xs), &ranks(ys))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts give what the samples themselves give: the summary, and the spaced order
    /// statistics `fit::thin` keeps.
    #[test]
    fn counts_summarise_as_their_samples_do() {
        for counts in [vec![5u64, 0, 3, 1, 0, 7], vec![0, 0, 1], vec![100_000, 1, 2, 50_000], vec![]] {
            let samples: Vec<f64> =
                counts.iter().enumerate().flat_map(|(k, &c)| std::iter::repeat_n(k as f64, c as usize)).collect();
            let (a, b) = (Summary::of_counts(&counts), Summary::of(&samples));
            for (x, y) in [(a.mean, b.mean), (a.sd, b.sd), (a.p5, b.p5), (a.p50, b.p50), (a.p99, b.p99), (a.max, b.max)]
            {
                assert!((x - y).abs() < 1e-9, "{counts:?}: {a:?} against {b:?}");
            }
            assert_eq!(a.samples, b.samples);
            for max in [2, 7, 1000] {
                assert_eq!(spaced_order_statistics(&counts, max), crate::fit::thin(&samples, max), "{counts:?}, {max}");
            }
        }
    }

    #[test]
    fn summary_percentiles() {
        let xs: Vec<f64> = (0..=100).rev().map(f64::from).collect();
        let s = Summary::of(&xs);
        assert_eq!((s.samples, s.min, s.max, s.p50, s.p5, s.p99), (101, 0.0, 100.0, 50.0, 5.0, 99.0));
        assert!((s.mean - 50.0).abs() < 1e-12);
        assert!((quantile_sorted(&[1.0, 2.0], 0.25) - 1.25).abs() < 1e-12);
        assert_eq!(Summary::of(&[]), Summary::default());
    }

    #[test]
    fn distribution_moments() {
        let d = Distribution::from_counts(vec![0, 2, 2]);
        assert_eq!(d.samples, 4);
        assert!((d.mean - 1.5).abs() < 1e-12);
        assert!((d.sd - 0.5).abs() < 1e-12);
        assert_eq!(d.max, 2);
        assert_eq!(d.pdf(), vec![0.0, 0.5, 0.5]);
    }

    #[test]
    fn erf_and_gaussian() {
        use statrs::function::erf::erf;
        assert!((erf(1.0) - 0.842_700_79).abs() < 1e-6);
        assert!((normal_cdf(0.0, 0.0, 1.0) - 0.5).abs() < 1e-7);
        let d = Distribution::from_counts(vec![1, 4, 6, 4, 1]);
        let g = gaussian_fit(&d);
        assert!((g.mean - 2.0).abs() < 1e-12);
        assert!(g.sse < 0.01, "{}", g.sse);
    }

    #[test]
    fn lines_and_tails() {
        let f = line_fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12 && (f.r2 - 1.0).abs() < 1e-12);
        // A power law k^-2 fits the log-log line exactly.
        let counts: Vec<u64> = (0..20u64).map(|k| if k == 0 { 0 } else { 1_000_000 / (k * k) }).collect();
        let t = tail_fits(&Distribution::from_counts(counts));
        let ll = t.log_log.unwrap();
        assert!((ll.slope + 2.0).abs() < 0.01, "{}", ll.slope);
        assert!(ll.r2 > t.log_linear.unwrap().r2);
    }

    #[test]
    fn binomial_and_correlations() {
        let b = binomial_pdf(11, 0.5);
        assert_eq!(b.len(), 11);
        assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((b[5] - 252.0 / 1024.0).abs() < 1e-9);
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[1.0, 10.0, 100.0, 1000.0]).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(pearson(&x, &[1.0, 1.0, 1.0, 1.0]), None);
    }
}
