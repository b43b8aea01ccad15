//! Distributions hosts draw a link setting from: upload and download rates (bit/s) and one-way
//! delay and jitter (µs). One [`Dist`] over `u64` values serves both; its [`Unit`] says how the
//! values are written (`2M`, `40ms`) and their floor, so a rate can never be read as a delay.
//!
//! Written as on the command line: a value (`2M`, `40ms`: every host the same),
//! `uniform(LOW,HIGH)`, `lognormal(MEDIAN,SIGMA)` (sigma of the natural log),
//! `choice(V:WEIGHT,...)`, or `list(V,...)` (host i takes the i-th, cycling).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use rand::RngExt;
use soplab_shell::units::{parse_duration, parse_rate};

/// What the values of a [`Dist`] measure.
pub trait Unit {
    /// A value of this unit, as an example for error messages (`1M`, `40ms`).
    const EXAMPLE: &'static str;
    /// Two more, for the `uniform` and `choice` examples (low, high).
    const RANGE: (&'static str, &'static str);
    /// The least value a host draws.
    const FLOOR: u64;
    /// Reads one value.
    fn parse(text: &str) -> Result<u64, String>;
    /// Writes one value so that [`Unit::parse`] reads it back exactly.
    fn show(v: u64) -> String;
}

/// Rates in bits per second. A host draws at least 8 kbit/s, so that tbf can pass a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bps;

impl Unit for Bps {
    const EXAMPLE: &'static str = "1M";
    const RANGE: (&'static str, &'static str) = ("256k", "4M");
    const FLOOR: u64 = 8_000;

    fn parse(text: &str) -> Result<u64, String> {
        parse_rate(text).map_err(|e| e.to_string())
    }

    fn show(v: u64) -> String {
        v.to_string()
    }
}

/// Durations in microseconds, written as durations (`40ms`, `1.5ms`, `2s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usec;

impl Unit for Usec {
    const EXAMPLE: &'static str = "40ms";
    const RANGE: (&'static str, &'static str) = ("5ms", "100ms");
    const FLOOR: u64 = 0;

    fn parse(text: &str) -> Result<u64, String> {
        let d = parse_duration(text).map_err(|e| e.to_string())?;
        // Rounded, not truncated: `1.5ms` is 0.0015 s in floating point, a hair under 1500 µs.
        u64::try_from((d.as_nanos() + 500) / 1000).map_err(|_| format!("`{text}` is too long a duration"))
    }

    fn show(v: u64) -> String {
        match v % 1000 {
            0 => format!("{}ms", v / 1000),
            frac => format!("{}.{frac:03}ms", v / 1000),
        }
    }
}

/// The shape of a distribution, in its unit's integers.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Every host the same.
    Fixed(u64),
    /// Host i takes the i-th, cycling.
    List(Vec<u64>),
    /// Uniform from the first to the second, both included.
    Uniform(u64, u64),
    /// exp(N(ln median, sigma²)).
    LogNormal { median: u64, sigma: f64 },
    /// Values with weights (not necessarily summing to 1).
    Choice(Vec<(u64, f64)>),
}

/// A distribution of values of unit `U` that hosts draw from.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist<U> {
    pub shape: Shape,
    unit: PhantomData<U>,
}

/// Link rates, bits per second: `2M`, `uniform(256k,4M)`, `lognormal(1M,0.8)`,
/// `choice(512k:0.5,2M:0.3,10M:0.2)`, `list(1M,256k,4M)`.
pub type RateDist = Dist<Bps>;

/// One-way delays, µs: `40ms`, `uniform(5ms,100ms)`, `lognormal(30ms,0.6)`,
/// `choice(10ms:0.5,80ms:0.5)`, `list(10ms,50ms)`.
pub type DelayDist = Dist<Usec>;

impl<U: Unit> Dist<U> {
    pub fn new(shape: Shape) -> Dist<U> {
        Dist { shape, unit: PhantomData }
    }

    /// Every host takes `v`.
    pub fn fixed(v: u64) -> Dist<U> {
        Dist::new(Shape::Fixed(v))
    }

    /// The value of host `i` (at least [`Unit::FLOOR`]). Fixed values and lists draw nothing
    /// from `rng`.
    pub fn sample(&self, i: usize, rng: &mut impl rand::Rng) -> u64 {
        let v = match &self.shape {
            Shape::Fixed(v) => *v,
            Shape::List(v) => v[i % v.len()],
            Shape::Uniform(a, b) => rng.random_range(*a..=*b),
            Shape::LogNormal { median, sigma } => {
                let n: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                (*median as f64 * (sigma * n).exp()) as u64
            }
            Shape::Choice(v) => pick(v, rng),
        };
        v.max(U::FLOOR)
    }

    /// What to write instead of a malformed `text`.
    fn usage(text: &str) -> String {
        let (e, (lo, hi)) = (U::EXAMPLE, U::RANGE);
        format!(
            "{text:?} is not a value ({e}) or a distribution: uniform({lo},{hi}), lognormal({e},0.8), \
             choice({lo}:0.5,{hi}:0.5) or list({e},{lo})"
        )
    }
}

/// A value of `v` with probability proportional to its weight.
fn pick(v: &[(u64, f64)], rng: &mut impl rand::Rng) -> u64 {
    let total: f64 = v.iter().map(|(_, w)| w).sum();
    let mut u = rng.random_range(0.0..total);
    for (x, w) in v {
        if u < *w {
            return *x;
        }
        u -= w;
    }
    v[v.len() - 1].0
}

/// The arguments of `name(...)` in `s`, if `s` is that call.
fn call<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.strip_prefix(name)?.trim_start().strip_prefix('(')?.strip_suffix(')')
}

impl<U: Unit> FromStr for Dist<U> {
    type Err = String;

    fn from_str(text: &str) -> Result<Dist<U>, String> {
        let s = text.trim();
        let value = |t: &str| U::parse(t.trim()).map_err(|e| format!("{s:?}: {e}"));
        let shape = if let Some(args) = call(s, "uniform") {
            let (a, b) = args.split_once(',').ok_or_else(|| Self::usage(s))?;
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{s:?}: the low value is above the high one"));
            }
            Shape::Uniform(a, b)
        } else if let Some(args) = call(s, "lognormal") {
            let (m, sd) = args.split_once(',').ok_or_else(|| Self::usage(s))?;
            let sigma: f64 = sd.trim().parse().map_err(|_| format!("{s:?}: sigma must be a number"))?;
            if !(sigma >= 0.0 && sigma.is_finite()) {
                return Err(format!("{s:?}: sigma must be 0 or more"));
            }
            Shape::LogNormal { median: value(m)?, sigma }
        } else if let Some(args) = call(s, "list") {
            Shape::List(args.split(',').map(value).collect::<Result<_, _>>()?)
        } else if let Some(args) = call(s, "choice") {
            Shape::Choice(args.split(',').map(|part| weighted::<U>(s, part)).collect::<Result<_, _>>()?)
        } else {
            Shape::Fixed(U::parse(s).map_err(|e| format!("{e}; {}", Self::usage(s)))?)
        };
        Ok(Dist::new(shape))
    }
}

/// One `VALUE:WEIGHT` of a choice in `s`.
fn weighted<U: Unit>(s: &str, part: &str) -> Result<(u64, f64), String> {
    let (v, w) = part.split_once(':').ok_or(format!("{s:?}: write each choice as VALUE:WEIGHT"))?;
    let w: f64 = w.trim().parse().map_err(|_| format!("{s:?}: weight {w:?} is not a number"))?;
    if !(w > 0.0 && w.is_finite()) {
        return Err(format!("{s:?}: weights must be positive"));
    }
    Ok((U::parse(v.trim()).map_err(|e| format!("{s:?}: {e}"))?, w))
}

impl<U: Unit> fmt::Display for Dist<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: Vec<String>| v.join(",");
        match &self.shape {
            Shape::Fixed(v) => f.write_str(&U::show(*v)),
            Shape::Uniform(a, b) => write!(f, "uniform({},{})", U::show(*a), U::show(*b)),
            Shape::List(v) => write!(f, "list({})", join(v.iter().map(|&x| U::show(x)).collect())),
            Shape::LogNormal { median, sigma } => write!(f, "lognormal({},{sigma})", U::show(*median)),
            Shape::Choice(v) => {
                write!(f, "choice({})", join(v.iter().map(|&(x, w)| format!("{}:{w}", U::show(x))).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> rand_pcg::Pcg64Mcg {
        rand_pcg::Pcg64Mcg::seed_from_u64(1)
    }

    #[test]
    fn rate_distributions_parse_sample_and_round_trip() {
        let mut rng = rng();
        assert_eq!("2M".parse::<RateDist>().unwrap(), RateDist::fixed(2_000_000));
        let u: RateDist = "uniform(256k,4M)".parse().unwrap();
        assert!((0..1000).map(|i| u.sample(i, &mut rng)).all(|r| (256_000..=4_000_000).contains(&r)));
        let per_peer: RateDist = "list(1M,256k)".parse().unwrap();
        assert_eq!(
            (0..4).map(|i| per_peer.sample(i, &mut rng)).collect::<Vec<_>>(),
            [1_000_000, 256_000, 1_000_000, 256_000]
        );
        let c: RateDist = "choice(512k:0.5,2M:0.3,10M:0.2)".parse().unwrap();
        let draws: Vec<u64> = (0..10_000).map(|i| c.sample(i, &mut rng)).collect();
        let share = draws.iter().filter(|&&r| r == 512_000).count() as f64 / 1e4;
        assert!((0.47..0.53).contains(&share), "{share}");
        let l: RateDist = "lognormal(1M,0.8)".parse().unwrap();
        let mut v: Vec<u64> = (0..10_001).map(|i| l.sample(i, &mut rng)).collect();
        v.sort();
        assert!((900_000..1_100_000).contains(&v[5000]), "median {}", v[5000]);
        assert_eq!(RateDist::fixed(1).sample(0, &mut rng), 8_000, "at least 8 kbit/s, so tbf passes a packet");
        assert_eq!(c.to_string(), "choice(512000:0.5,2000000:0.3,10000000:0.2)");
        for d in [u, per_peer, c, l] {
            assert_eq!(d.to_string().parse::<RateDist>().unwrap(), d);
        }
        for bad in ["uniform(4M,1M)", "choice(1M)", "lognormal(1M,-1)", "fast", "uniform(1M)", "list()", "list(1M,x)"] {
            assert!(bad.parse::<RateDist>().is_err(), "{bad}");
        }
        let e = "fast".parse::<RateDist>().unwrap_err();
        assert!(e.contains("uniform(256k,4M)"), "{e}");
    }

    #[test]
    fn delay_distributions_parse_in_microseconds_sample_and_round_trip() {
        let mut rng = rng();
        assert_eq!("40ms".parse::<DelayDist>().unwrap(), DelayDist::fixed(40_000));
        assert_eq!("0".parse::<DelayDist>().unwrap().sample(0, &mut rng), 0, "no floor: zero is no delay");
        assert_eq!("1.5ms".parse::<DelayDist>().unwrap(), DelayDist::fixed(1_500));
        let u: DelayDist = "uniform(5ms,100ms)".parse().unwrap();
        let draws: Vec<u64> = (0..10_000).map(|i| u.sample(i, &mut rng)).collect();
        assert!(draws.iter().all(|d| (5_000..=100_000).contains(d)));
        let mean = draws.iter().sum::<u64>() as f64 / 1e4;
        assert!((50_000.0..55_000.0).contains(&mean), "mean {mean} µs, want about 52.5 ms");
        let l: DelayDist = "lognormal(30ms,0.6)".parse().unwrap();
        let mut v: Vec<u64> = (0..10_001).map(|i| l.sample(i, &mut rng)).collect();
        v.sort();
        assert!((27_000..33_000).contains(&v[5000]), "median {}", v[5000]);
        let c: DelayDist = "choice(10ms:0.5,80ms:0.5)".parse().unwrap();
        assert!((0..100).map(|i| c.sample(i, &mut rng)).all(|d| d == 10_000 || d == 80_000));
        let list: DelayDist = "list(10ms, 50ms)".parse().unwrap();
        assert_eq!((0..3).map(|i| list.sample(i, &mut rng)).collect::<Vec<_>>(), [10_000, 50_000, 10_000]);
        assert_eq!(u.to_string(), "uniform(5ms,100ms)");
        assert_eq!(DelayDist::fixed(1_234).to_string(), "1.234ms");
        for d in [u, l, c, list, DelayDist::fixed(1_234), DelayDist::fixed(0), "2s".parse().unwrap()] {
            assert_eq!(d.to_string().parse::<DelayDist>().unwrap(), d, "{d}");
        }
        for bad in ["uniform(100ms,5ms)", "choice(10ms)", "lognormal(30ms,x)", "soon", "list(10ms,5x)", "1M"] {
            assert!(bad.parse::<DelayDist>().is_err(), "{bad}");
        }
        let e = "soon".parse::<DelayDist>().unwrap_err();
        assert!(e.contains("uniform(5ms,100ms)") && e.contains("soon"), "{e}");
    }
}
