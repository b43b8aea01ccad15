//! Fitting distributions to measured samples, the way Borges et al. fitted their client
//! behaviour (paper 003, section 6): each family by least squares on the empirical CDF (their
//! method, so the parameters compare with their Tables 2–7) and by maximum likelihood, with the
//! Kolmogorov–Smirnov statistic and the AIC of every fit. The client layer uses it; so can any
//! figure that draws a fitted curve.
//!
//! # Families and their parameters (the paper's conventions)
//!
//! | family | `params` | CDF | statrs / rand_distr |
//! |---|---|---|---|
//! | `exponential` | `lambda` (rate) | 1 − e^(−λx) | `Exp(λ)` |
//! | `lognormal` | `m`, `sigma` (of ln x) | Φ((ln x − m)/σ) | `LogNormal(m, σ)` |
//! | `weibull` | `alpha`, `beta` | 1 − exp(−α x^β) | shape k = β, scale λ = α^(−1/β) (α = λ^(−k)); statrs `Weibull(k, λ)`, rand_distr `Weibull(λ, k)` |
//! | `pareto` | `alpha` (shape), `xm` (minimum) | 1 − (xm/x)^α, x ≥ xm | statrs `Pareto(xm, α)` |
//! | `gamma` | `alpha` (shape), `beta` (scale) | P(α, x/β) | statrs `Gamma(α, 1/β)` (rate), rand_distr `Gamma(α, β)` |
//! | `normal` | `mu`, `sigma` | Φ((x − μ)/σ) | `Normal(μ, σ)` |
//! | `geometric` | `p_off` | P(k) = (1 − p_off) p_off^(k−1), k ≥ 1 | statrs `Geometric(1 − p_off)` (trials from 1) |
//!
//! `p_off` is the probability that a client comes back after a session: the paper's
//! P_off = 0.398 gives 60.2% of clients one session only.
//!
//! # Methods
//!
//! - **Maximum likelihood** (`mle`): closed forms for Exponential (λ = 1/mean), LogNormal and
//!   Normal (mean and population sd, of ln x for LogNormal), Pareto (xm = min, α = n/Σ ln(x/xm))
//!   and Geometric (p_off = 1 − 1/mean); the Weibull and Gamma shapes solve their profile
//!   likelihood equations by bisection (both are monotone in the shape), the scale follows.
//! - **Least squares on the CDF** (`lse`): minimises Σ (F(x_j) − F_n(x_j))² over points x_j of
//!   the sample, F_n(x) being the share of samples ≤ x, with a Nelder–Mead simplex started at
//!   the maximum-likelihood fit (positive parameters are optimised as logarithms, `p_off` as a
//!   logit). Above [`LSE_POINTS`] samples the points are [`LSE_POINTS`] order statistics evenly
//!   spaced in rank (the ECDF still counts every sample), which keeps a fit of 10^6 values cheap
//!   and changes the fitted parameters by far less than their sampling error.
//!
//! Every fit reports `ks`, the KS statistic against the whole sample ([`ks_statistic`]; atoms
//! of the Geometric are handled), `aic` = 2k − 2 ln L (k parameters; `null` when some sample has
//! zero density under the fit, which happens to a least-squares Pareto whose `xm` lies above the
//! minimum) and `cdf_mse`, the least-squares objective divided by the number of points.
//!
//! # Choosing a family
//!
//! [`Fits::lse`] is the least-squares fit with the smallest `cdf_mse` (the paper's choice, by
//! its own criterion); [`Fits::mle`] is the maximum-likelihood fit with the smallest AIC.
//! [`Fits::best_by_ks`] and [`Fits::best_by_aic`] name the best fit of either method by those
//! criteria. Each family's fits stay in [`Fits::all`].
//!
//! # Degenerate samples
//!
//! Non-finite values are dropped. A family that cannot be fitted is listed with `skipped` set
//! and no fits: no samples, values outside its support (LogNormal, Weibull, Pareto and Gamma
//! need x > 0, Exponential x ≥ 0, Geometric integers ≥ 1), or a sample that pins a parameter at
//! a limit (all values equal), or one of so small a spread that the Gamma shape would exceed
//! [`MAX_GAMMA_SHAPE`] or the Weibull's α = scale^(−β) leaves the floating-point range
//! ([`NEARLY_CONSTANT`]). Nothing non-finite reaches the JSON.

mod ks;
mod nelder_mead;

pub use ks::{kolmogorov_survival, ks_critical_value, ks_p_value, ks_statistic, ks_statistic_with_atoms};

use serde::Serialize;
use statrs::distribution::{self as sd, Continuous, ContinuousCDF, Discrete, DiscreteCDF};
use statrs::function::gamma::digamma;

use crate::stats::mean_sd;

/// Most points of the empirical CDF that a least-squares fit compares with the model.
pub const LSE_POINTS: usize = 2000;

/// A family of distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Exponential,
    LogNormal,
    Weibull,
    Pareto,
    Gamma,
    Normal,
    Geometric,
}

impl Family {
    /// The families fitted to continuous quantities, in the paper's order.
    pub const CONTINUOUS: [Family; 6] =
        [Family::Exponential, Family::LogNormal, Family::Weibull, Family::Pareto, Family::Gamma, Family::Normal];

    /// The name used in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Family::Exponential => "exponential",
            Family::LogNormal => "lognormal",
            Family::Weibull => "weibull",
            Family::Pareto => "pareto",
            Family::Gamma => "gamma",
            Family::Normal => "normal",
            Family::Geometric => "geometric",
        }
    }

    /// Number of free parameters (the k of the AIC).
    pub fn parameters(self) -> usize {
        match self {
            Family::Exponential | Family::Geometric => 1,
            _ => 2,
        }
    }

    /// Why a sorted, non-empty sample lies outside the family's support, if it does.
    fn unsupported(self, sorted: &[f64]) -> Option<&'static str> {
        let min = sorted[0];
        match self {
            Family::LogNormal | Family::Weibull | Family::Pareto | Family::Gamma if min <= 0.0 => {
                Some("needs values > 0")
            }
            Family::Exponential if min < 0.0 => Some("needs values >= 0"),
            Family::Geometric if min < 1.0 || sorted.iter().any(|x| x.fract() != 0.0) => {
                Some("needs integer counts >= 1")
            }
            _ => None,
        }
    }
}

/// How a fit was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Least squares on the empirical CDF.
    Lse,
    /// Maximum likelihood.
    Mle,
}

impl Method {
    /// The name used in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lse => "lse",
            Method::Mle => "mle",
        }
    }
}

/// A distribution in the paper's parametrisation (see the module docs); serialises as the bare
/// parameter map, e.g. `{"m": 0.108, "sigma": 0.693}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Params {
    Exponential { lambda: f64 },
    LogNormal { m: f64, sigma: f64 },
    Weibull { alpha: f64, beta: f64 },
    Pareto { alpha: f64, xm: f64 },
    Gamma { alpha: f64, beta: f64 },
    Normal { mu: f64, sigma: f64 },
    Geometric { p_off: f64 },
}

impl Params {
    /// The paper's Weibull F(x) = 1 − exp(−α x^β) from the usual shape k and scale λ.
    pub fn weibull_from_shape_scale(shape: f64, scale: f64) -> Params {
        Params::Weibull { alpha: scale.powf(-shape), beta: shape }
    }

    pub fn family(&self) -> Family {
        match self {
            Params::Exponential { .. } => Family::Exponential,
            Params::LogNormal { .. } => Family::LogNormal,
            Params::Weibull { .. } => Family::Weibull,
            Params::Pareto { .. } => Family::Pareto,
            Params::Gamma { .. } => Family::Gamma,
            Params::Normal { .. } => Family::Normal,
            Params::Geometric { .. } => Family::Geometric,
        }
    }

    /// The names of the parameters, in the order of [`Params::values`].
    pub fn names(&self) -> &'static [&'static str] {
        match self {
            Params::Exponential { .. } => &["lambda"],
            Params::LogNormal { .. } => &["m", "sigma"],
            Params::Weibull { .. } | Params::Gamma { .. } => &["alpha", "beta"],
            Params::Pareto { .. } => &["alpha", "xm"],
            Params::Normal { .. } => &["mu", "sigma"],
            Params::Geometric { .. } => &["p_off"],
        }
    }

    /// The parameters as `name=value` joined by `sep`, values with `digits` significant
    /// digits (for tables and legends).
    pub fn text(&self, sep: &str, digits: usize) -> String {
        let v = self.values();
        self.names().iter().zip(v).map(|(n, x)| format!("{n}={}", significant(x, digits))).collect::<Vec<_>>().join(sep)
    }

    /// The parameters in the order of the `params` map.
    pub fn values(&self) -> Vec<f64> {
        match *self {
            Params::Exponential { lambda } => vec![lambda],
            Params::LogNormal { m: a, sigma: b }
            | Params::Weibull { alpha: a, beta: b }
            | Params::Pareto { alpha: a, xm: b }
            | Params::Gamma { alpha: a, beta: b }
            | Params::Normal { mu: a, sigma: b } => vec![a, b],
            Params::Geometric { p_off } => vec![p_off],
        }
    }

    /// P(X ≤ x); 0 for parameters no distribution has.
    pub fn cdf(&self, x: f64) -> f64 {
        self.model().map_or(0.0, |m| m.cdf(x))
    }

    /// P(X < x), the CDF's left limit: differs from [`Params::cdf`] at the Geometric's atoms
    /// only (for [`ks_statistic_with_atoms`]).
    pub fn cdf_below(&self, x: f64) -> f64 {
        self.model().map_or(0.0, |m| m.cdf_below(x))
    }

    /// The density at x (the probability of x for the Geometric); 0 for invalid parameters.
    pub fn pdf(&self, x: f64) -> f64 {
        self.model().map_or(0.0, |m| m.ln_pdf(x).exp())
    }

    fn model(&self) -> Option<Model> {
        if !self.values().iter().all(|v| v.is_finite()) {
            return None;
        }
        Some(match *self {
            Params::Exponential { lambda } => Model::Exponential(sd::Exp::new(lambda).ok()?),
            Params::LogNormal { m, sigma } => Model::LogNormal(sd::LogNormal::new(m, sigma).ok()?),
            Params::Weibull { alpha, beta } => {
                // α = scale^(−β) under- or overflows for very large shapes.
                let scale = alpha.powf(-1.0 / beta);
                if !(alpha > 0.0 && scale.is_finite()) {
                    return None;
                }
                Model::Weibull(sd::Weibull::new(beta, scale).ok()?)
            }
            Params::Pareto { alpha, xm } => Model::Pareto(sd::Pareto::new(xm, alpha).ok()?),
            Params::Gamma { alpha, beta } => Model::Gamma(sd::Gamma::new(alpha, 1.0 / beta).ok()?),
            Params::Normal { mu, sigma } => Model::Normal(sd::Normal::new(mu, sigma).ok()?),
            Params::Geometric { p_off } => Model::Geometric(sd::Geometric::new(1.0 - p_off).ok()?),
        })
    }
}

/// A statrs distribution built once from [`Params`], for evaluating many points.
enum Model {
    Exponential(sd::Exp),
    LogNormal(sd::LogNormal),
    Weibull(sd::Weibull),
    Pareto(sd::Pareto),
    Gamma(sd::Gamma),
    Normal(sd::Normal),
    Geometric(sd::Geometric),
}

impl Model {
    fn cdf(&self, x: f64) -> f64 {
        match self {
            Model::Exponential(d) => d.cdf(x),
            Model::LogNormal(d) => d.cdf(x),
            Model::Weibull(d) => d.cdf(x),
            Model::Pareto(d) => d.cdf(x),
            Model::Gamma(d) => d.cdf(x),
            Model::Normal(d) => d.cdf(x),
            Model::Geometric(d) if x >= 1.0 => d.cdf(x.floor() as u64),
            Model::Geometric(_) => 0.0,
        }
    }

    /// P(X < x): differs from the CDF at the Geometric's atoms only.
    fn cdf_below(&self, x: f64) -> f64 {
        match self {
            Model::Geometric(_) => self.cdf(x.ceil() - 1.0),
            _ => self.cdf(x),
        }
    }

    fn ln_pdf(&self, x: f64) -> f64 {
        match self {
            Model::Exponential(d) => d.ln_pdf(x),
            Model::LogNormal(d) => d.ln_pdf(x),
            Model::Weibull(d) => d.ln_pdf(x),
            Model::Pareto(d) => d.ln_pdf(x),
            Model::Gamma(d) => d.ln_pdf(x),
            Model::Normal(d) => d.ln_pdf(x),
            Model::Geometric(d) if x >= 1.0 && x.fract() == 0.0 => d.ln_pmf(x as u64),
            Model::Geometric(_) => f64::NEG_INFINITY,
        }
    }
}

/// One fitted distribution and how well it fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub family: Family,
    pub method: Method,
    pub params: Params,
    /// Kolmogorov–Smirnov statistic against the whole sample.
    pub ks: f64,
    /// 2k − 2 ln L; `None` when a sample has zero density under the fit.
    pub aic: Option<f64>,
    /// Mean squared difference between the fitted CDF and the empirical CDF at the
    /// least-squares points (what the least-squares fit minimises).
    pub cdf_mse: f64,
}

impl Fit {
    pub fn cdf(&self, x: f64) -> f64 {
        self.params.cdf(x)
    }

    pub fn pdf(&self, x: f64) -> f64 {
        self.params.pdf(x)
    }
}

/// Both fits of one family, or why it was not fitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyFits {
    pub family: Family,
    pub lse: Option<Fit>,
    pub mle: Option<Fit>,
    /// Why the family was not fitted (support, no samples, degenerate sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
}

/// Which fit is best by some criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Best {
    pub family: Family,
    pub method: Method,
}

/// Every family fitted to one sample, and the best ones (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fits {
    /// Finite samples used.
    pub samples: usize,
    /// The least-squares fit with the smallest `cdf_mse`.
    pub lse: Option<Fit>,
    /// The maximum-likelihood fit with the smallest AIC.
    pub mle: Option<Fit>,
    pub best_by_ks: Option<Best>,
    pub best_by_aic: Option<Best>,
    pub all: Vec<FamilyFits>,
}

/// `x` with `digits` significant digits, without trailing zeros.
pub fn significant(x: f64, digits: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (digits as i32 - 1 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// `k` ranks of `0..n` evenly spaced, the first and the last included; all of them when n ≤ k.
fn spaced_ranks(n: usize, k: usize) -> Vec<usize> {
    if n <= k || k < 2 {
        return (0..n).collect();
    }
    (0..k).map(|j| (j as f64 * (n - 1) as f64 / (k - 1) as f64).round() as usize).collect()
}

/// At most `max` of the finite values of `xs`, sorted: all of them, or `max` order statistics
/// evenly spaced in rank (the smallest and the largest included). A deterministic sample whose
/// empirical CDF is within about 1/`max` of the whole sample's, so fits of it cost what fits of
/// `max` values cost (see docs/ANALYZE.md, Clients: fits).
pub fn thin(xs: &[f64], max: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.len() <= max {
        return sorted;
    }
    spaced_ranks(sorted.len(), max).into_iter().map(|r| sorted[r]).collect()
}

/// At most `max` points (x, share of `sorted` ≤ x) of the empirical CDF of a sorted sample, at
/// order statistics evenly spaced in rank.
pub fn ecdf_points(sorted: &[f64], max: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    spaced_ranks(n, max)
        .into_iter()
        .map(|r| {
            let x = sorted[r];
            (x, sorted.partition_point(|&v| v <= x) as f64 / n as f64)
        })
        .collect()
}

/// Fits the six continuous families to `xs`.
pub fn fit_continuous(xs: &[f64]) -> Fits {
    fit(xs.iter().copied(), &Family::CONTINUOUS)
}

/// Fits the Geometric distribution of sessions per client (every count ≥ 1).
pub fn fit_sessions_per_client(ks: &[u64]) -> Fits {
    fit(ks.iter().map(|&k| k as f64), &[Family::Geometric])
}

/// Fits the given families to the finite values of `xs`.
pub fn fit(xs: impl IntoIterator<Item = f64>, families: &[Family]) -> Fits {
    let sample = Sample::new(xs);
    let all: Vec<FamilyFits> = families.iter().map(|&f| sample.fit_family(f)).collect();
    let fits = || all.iter().flat_map(|f| [&f.lse, &f.mle]).flatten();
    let min_by = |key: &dyn Fn(&Fit) -> Option<f64>, method: Option<Method>| {
        fits()
            .filter(|f| method.is_none_or(|m| f.method == m))
            .filter_map(|f| key(f).map(|k| (k, f)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, f)| f.clone())
    };
    let best = |f: Option<Fit>| f.map(|f| Best { family: f.family, method: f.method });
    Fits {
        samples: sample.sorted.len(),
        lse: min_by(&|f| Some(f.cdf_mse), Some(Method::Lse)),
        mle: min_by(&|f| f.aic, Some(Method::Mle)),
        best_by_ks: best(min_by(&|f| Some(f.ks), None)),
        best_by_aic: best(min_by(&|f| f.aic, None)),
        all,
    }
}

/// A sorted sample and the empirical-CDF points the least-squares fits use.
struct Sample {
    sorted: Vec<f64>,
    /// (x, share of samples ≤ x)
    points: Vec<(f64, f64)>,
}

impl Sample {
    fn new(xs: impl IntoIterator<Item = f64>) -> Sample {
        let mut sorted: Vec<f64> = xs.into_iter().filter(|x| x.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let points = ecdf_points(&sorted, LSE_POINTS);
        Sample { sorted, points }
    }

    fn fit_family(&self, family: Family) -> FamilyFits {
        let skipped = |why| FamilyFits { family, lse: None, mle: None, skipped: Some(why) };
        let mle = match mle(family, &self.sorted) {
            Ok(p) => p,
            Err(why) => return skipped(why),
        };
        let (Some(mle_fit), Some(lse_fit)) =
            (self.evaluate(mle, Method::Mle), self.evaluate(self.least_squares(mle), Method::Lse))
        else {
            return skipped("degenerate sample");
        };
        FamilyFits { family, lse: Some(lse_fit), mle: Some(mle_fit), skipped: None }
    }

    /// Sum of squared differences between the model's CDF and the ECDF at the points.
    fn squared_error(&self, model: &Model) -> f64 {
        self.points.iter().map(|&(x, e)| (model.cdf(x) - e).powi(2)).sum()
    }

    fn evaluate(&self, params: Params, method: Method) -> Option<Fit> {
        let model = params.model()?;
        let ks = ks_statistic_with_atoms(&self.sorted, |x| model.cdf(x), |x| model.cdf_below(x));
        let ln_l: f64 = self.sorted.iter().map(|&x| model.ln_pdf(x)).sum();
        let aic = 2.0 * params.family().parameters() as f64 - 2.0 * ln_l;
        let cdf_mse = self.squared_error(&model) / self.points.len() as f64;
        Some(Fit { family: params.family(), method, params, ks, aic: aic.is_finite().then_some(aic), cdf_mse })
    }

    /// The least-squares fit, started from `start`.
    fn least_squares(&self, start: Params) -> Params {
        let family = start.family();
        let v0 = to_vector(&start);
        let step: Vec<f64> = v0.iter().map(|v| (0.05 * v.abs()).max(0.1)).collect();
        let objective = |v: &[f64]| {
            let p = from_vector(family, v);
            if !fittable(&p) {
                return f64::NAN;
            }
            p.model().map_or(f64::NAN, |m| self.squared_error(&m))
        };
        let (v, _) = nelder_mead::minimize(objective, &v0, &step);
        from_vector(family, &v)
    }
}

/// The unconstrained coordinates the simplex moves in: logarithms of positive parameters (the
/// Weibull as ln scale, ln shape, better conditioned than α, β), the logit of `p_off`.
fn to_vector(p: &Params) -> Vec<f64> {
    match *p {
        Params::Exponential { lambda } => vec![lambda.ln()],
        Params::LogNormal { m, sigma } => vec![m, sigma.ln()],
        Params::Weibull { alpha, beta } => vec![-alpha.ln() / beta, beta.ln()],
        Params::Pareto { alpha, xm } => vec![alpha.ln(), xm.ln()],
        Params::Gamma { alpha, beta } => vec![alpha.ln(), beta.ln()],
        Params::Normal { mu, sigma } => vec![mu, sigma.ln()],
        Params::Geometric { p_off } => {
            let p = p_off.clamp(1e-9, 1.0 - 1e-9);
            vec![(p / (1.0 - p)).ln()]
        }
    }
}

fn from_vector(family: Family, v: &[f64]) -> Params {
    match family {
        Family::Exponential => Params::Exponential { lambda: v[0].exp() },
        Family::LogNormal => Params::LogNormal { m: v[0], sigma: v[1].exp() },
        Family::Weibull => Params::weibull_from_shape_scale(v[1].exp(), v[0].exp()),
        Family::Pareto => Params::Pareto { alpha: v[0].exp(), xm: v[1].exp() },
        Family::Gamma => Params::Gamma { alpha: v[0].exp(), beta: v[1].exp() },
        Family::Normal => Params::Normal { mu: v[0], sigma: v[1].exp() },
        Family::Geometric => Params::Geometric { p_off: 1.0 / (1.0 + (-v[0]).exp()) },
    }
}

const ALL_EQUAL: &str = "all values are equal";

/// Largest Gamma shape fitted. Above it the Gamma has a skewness under 0.07 (a Normal in all
/// but name) and each of its CDFs costs microseconds, so that a least-squares fit of a nearly
/// constant sample (ON times of clients that stay all along) took seconds.
pub const MAX_GAMMA_SHAPE: f64 = 1000.0;
/// Why a family was not fitted to a sample of tiny spread: a Gamma shape above
/// [`MAX_GAMMA_SHAPE`], or a Weibull whose α = scale^(−β) is out of range.
pub const NEARLY_CONSTANT: &str = "nearly constant sample: parameters out of range (see the Normal)";

/// Parameters a fit may take: a Gamma shape up to [`MAX_GAMMA_SHAPE`], and any that define a
/// distribution.
fn fittable(p: &Params) -> bool {
    !matches!(p, Params::Gamma { alpha, .. } if *alpha > MAX_GAMMA_SHAPE) && p.model().is_some()
}

/// The maximum-likelihood fit of a sorted sample, or why there is none.
fn mle(family: Family, sorted: &[f64]) -> Result<Params, &'static str> {
    if sorted.is_empty() {
        return Err("no samples");
    }
    if let Some(why) = family.unsupported(sorted) {
        return Err(why);
    }
    let n = sorted.len() as f64;
    let (mean, sd) = mean_sd(sorted);
    let params = match family {
        Family::Exponential => Params::Exponential { lambda: 1.0 / mean },
        Family::Normal if sd > 0.0 => Params::Normal { mu: mean, sigma: sd },
        Family::LogNormal => {
            let (m, sigma) = mean_sd(&sorted.iter().map(|x| x.ln()).collect::<Vec<_>>());
            Params::LogNormal { m, sigma }
        }
        Family::Pareto => {
            let xm = sorted[0];
            Params::Pareto { alpha: n / sorted.iter().map(|x| (x / xm).ln()).sum::<f64>(), xm }
        }
        Family::Geometric => Params::Geometric { p_off: 1.0 - 1.0 / mean },
        Family::Weibull => weibull_mle(sorted)?,
        Family::Gamma => gamma_mle(sorted, mean)?,
        Family::Normal => return Err(ALL_EQUAL),
    };
    // Invalid or infinite parameters (a zero spread, an infinite rate) mean a degenerate sample.
    match params {
        Params::Weibull { .. } | Params::Gamma { .. } if !fittable(&params) => Err(NEARLY_CONSTANT),
        _ => params.model().map(|_| params).ok_or(ALL_EQUAL),
    }
}

/// Weibull shape k from the profile likelihood equation Σ y^k ln y / Σ y^k − 1/k − mean(ln y)
/// = 0 (increasing in k), with y = x / geometric mean so that mean(ln y) = 0 and powers stay
/// finite; the scale then is (Σ x^k / n)^(1/k).
fn weibull_mle(sorted: &[f64]) -> Result<Params, &'static str> {
    let logs: Vec<f64> = sorted.iter().map(|x| x.ln()).collect();
    let (mean_ln, sd_ln) = mean_sd(&logs);
    if sd_ln <= 0.0 {
        return Err(ALL_EQUAL);
    }
    let centred: Vec<f64> = logs.iter().map(|l| l - mean_ln).collect();
    let max = centred.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Σ w and Σ w ln y with w = y^k / e^(k max), which is at most 1.
    let sums = |k: f64| {
        centred.iter().fold((0.0, 0.0), |(s, sl), &l| {
            let w = (k * (l - max)).exp();
            (s + w, sl + w * l)
        })
    };
    let shape = solve_increasing(
        |k| {
            let (s, sl) = sums(k);
            sl / s - 1.0 / k
        },
        1e-6,
        1e6,
    )
    .ok_or("Weibull shape out of range")?;
    let (s, _) = sums(shape);
    let ln_scale = mean_ln + max + (s / sorted.len() as f64).ln() / shape;
    Ok(Params::weibull_from_shape_scale(shape, ln_scale.exp()))
}

/// Gamma shape α from ln α − ψ(α) = ln(mean) − mean(ln x) (decreasing in α); scale = mean/α.
fn gamma_mle(sorted: &[f64], mean: f64) -> Result<Params, &'static str> {
    let mean_ln = sorted.iter().map(|x| x.ln()).sum::<f64>() / sorted.len() as f64;
    let s = mean.ln() - mean_ln;
    if s <= 0.0 {
        return Err(ALL_EQUAL);
    }
    let alpha = solve_increasing(|a| s - (a.ln() - digamma(a)), 1e-8, 1e8).ok_or("Gamma shape out of range")?;
    Ok(Params::Gamma { alpha, beta: mean / alpha })
}

/// The root of an increasing function on [lo, hi] (both > 0), by bisection on a log scale;
/// `None` if it does not change sign there.
fn solve_increasing(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> Option<f64> {
    let (mut lo, mut hi) = (lo.ln(), hi.ln());
    if !(f(lo.exp()) < 0.0 && f(hi.exp()) > 0.0) {
        return None;
    }
    while hi - lo > 1e-13 {
        let mid = 0.5 * (lo + hi);
        if f(mid.exp()) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((0.5 * (lo + hi)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_coordinates_round_trip() {
        let all = [
            Params::Exponential { lambda: 0.054 },
            Params::LogNormal { m: 0.108, sigma: 0.693 },
            Params::Weibull { alpha: 2.032, beta: 0.233 },
            Params::Pareto { alpha: 2.5, xm: 3.0 },
            Params::Gamma { alpha: 6.008, beta: 16.886 },
            Params::Normal { mu: 101.45, sigma: 41.54 },
            Params::Geometric { p_off: 0.398 },
        ];
        for p in all {
            let back = from_vector(p.family(), &to_vector(&p));
            for (a, b) in p.values().iter().zip(back.values()) {
                assert!((a - b).abs() < 1e-12 * a.abs().max(1.0), "{p:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn paper_conventions_match_the_closed_forms() {
        // Weibull F(x) = 1 − exp(−α x^β); Gamma with β a scale; Geometric P(1) = 1 − p_off.
        let w = Params::Weibull { alpha: 2.032, beta: 0.233 };
        assert!((w.cdf(0.5) - (1.0 - (-2.032 * 0.5_f64.powf(0.233)).exp())).abs() < 1e-12);
        let g = Params::Gamma { alpha: 2.0, beta: 3.0 };
        // Gamma(2, scale 3): F(x) = 1 − e^(−x/3)(1 + x/3).
        assert!((g.cdf(6.0) - (1.0 - (-2.0_f64).exp() * 3.0)).abs() < 1e-12);
        let geo = Params::Geometric { p_off: 0.398 };
        assert!((geo.pdf(1.0) - 0.602).abs() < 1e-12);
        assert!((geo.pdf(2.0) - 0.602 * 0.398).abs() < 1e-12);
        assert!((geo.cdf(2.5) - (1.0 - 0.398_f64.powi(2))).abs() < 1e-12);
        assert!((geo.cdf_below(2.0) - 0.602).abs() < 1e-12);
        assert!((geo.cdf_below(2.5) - geo.cdf(2.0)).abs() < 1e-12);
        assert_eq!(w.cdf_below(0.5), w.cdf(0.5));
        let p = Params::Pareto { alpha: 2.0, xm: 1.0 };
        assert!((p.cdf(2.0) - 0.75).abs() < 1e-12);
        assert_eq!(Params::LogNormal { m: 0.0, sigma: -1.0 }.cdf(1.0), 0.0);
    }

    #[test]
    fn thinning_keeps_evenly_spaced_order_statistics() {
        let xs: Vec<f64> = (0..1001).rev().map(f64::from).chain([f64::NAN]).collect();
        assert_eq!(thin(&xs, 5), vec![0.0, 250.0, 500.0, 750.0, 1000.0]);
        assert_eq!(thin(&[3.0, 1.0, f64::INFINITY], 5), vec![1.0, 3.0]);
        assert!(thin(&[], 5).is_empty());
        let sorted = [1.0, 1.0, 2.0, 3.0];
        assert_eq!(ecdf_points(&sorted, 10), vec![(1.0, 0.5), (1.0, 0.5), (2.0, 0.75), (3.0, 1.0)]);
        assert_eq!(ecdf_points(&sorted, 2), vec![(1.0, 0.5), (3.0, 1.0)]);
    }

    #[test]
    fn parameters_as_text() {
        let p = Params::Gamma { alpha: 6.008, beta: 16.886 };
        assert_eq!(p.text(";", 6), "alpha=6.008;beta=16.886");
        assert_eq!(Params::LogNormal { m: -0.1661, sigma: 1.318 }.text(", ", 2), "m=-0.17, sigma=1.3");
        assert_eq!(significant(101453.2, 4), "101453");
        assert_eq!(significant(0.0001234567, 3), "0.000123");
    }

    #[test]
    fn solve_increasing_finds_roots_or_says_none() {
        let r = solve_increasing(|x| x * x - 2.0, 1e-3, 1e3).unwrap();
        assert!((r - 2f64.sqrt()).abs() < 1e-10);
        assert!(solve_increasing(|x| x + 1.0, 1e-3, 1e3).is_none());
    }
}
