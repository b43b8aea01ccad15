//! The one-sample Kolmogorov–Smirnov statistic and the asymptotic Kolmogorov distribution.

/// The Kolmogorov–Smirnov statistic D = sup |F_n(x) − F(x)| of `sorted` (ascending, finite)
/// against a continuous CDF. Ties in the sample are handled (the empirical CDF jumps once per
/// distinct value). 0 without samples.
pub fn ks_statistic(sorted: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    ks_statistic_with_atoms(sorted, &cdf, &cdf)
}

/// D = sup |F_n(x) − F(x)| against a CDF with atoms (a discrete distribution, or a continuous
/// one capped at a maximum): `cdf(x)` = P(X ≤ x), `cdf_below(x)` = P(X < x). The supremum of
/// two step functions is reached at a sample value, just at it or just below it, so both sides
/// are compared there.
pub fn ks_statistic_with_atoms(sorted: &[f64], cdf: impl Fn(f64) -> f64, cdf_below: impl Fn(f64) -> f64) -> f64 {
    let n = sorted.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let x = sorted[i];
        // Samples equal to x: the empirical CDF is i/n just below x and j/n at x.
        let j = i + sorted[i..].partition_point(|&v| v <= x);
        d = d.max((cdf(x) - j as f64 / n).abs()).max((cdf_below(x) - i as f64 / n).abs());
        i = j;
    }
    d
}

/// P(K > λ) for the Kolmogorov distribution K (the limit of √n D_n), from whichever of its two
/// series converges fast at λ.
pub fn kolmogorov_survival(lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 1.0;
    }
    if lambda < 1.0 {
        // P(K ≤ λ) = √(2π)/λ Σ_{k≥1} exp(−(2k−1)² π² / (8λ²))
        let c = -std::f64::consts::PI.powi(2) / (8.0 * lambda * lambda);
        let sum: f64 = (1..=20).map(|k: i32| (c * f64::from(2 * k - 1).powi(2)).exp()).sum();
        (1.0 - (2.0 * std::f64::consts::PI).sqrt() / lambda * sum).clamp(0.0, 1.0)
    } else {
        // P(K > λ) = 2 Σ_{k≥1} (−1)^(k−1) exp(−2k²λ²)
        let sum: f64 = (1..=100)
            .map(|k: i32| {
                let term = (-2.0 * f64::from(k * k) * lambda * lambda).exp();
                if k % 2 == 1 { term } else { -term }
            })
            .sum();
        (2.0 * sum).clamp(0.0, 1.0)
    }
}

/// Asymptotic p-value of a KS statistic `d` from `n` samples against a fully specified
/// continuous distribution, with Stephens' small-sample correction λ = (√n + 0.12 + 0.11/√n) d.
/// Conservative for discrete distributions and for parameters fitted on the same sample.
pub fn ks_p_value(d: f64, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let sn = (n as f64).sqrt();
    kolmogorov_survival((sn + 0.12 + 0.11 / sn) * d)
}

/// The statistic above which a KS test of `n` samples rejects at significance `alpha`, i.e. the
/// `d` with `ks_p_value(d, n) == alpha` (bisection; p-value decreases in d).
pub fn ks_critical_value(n: usize, alpha: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if ks_p_value(mid, n) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(x: f64) -> f64 {
        x.clamp(0.0, 1.0)
    }

    #[test]
    fn hand_computed_statistics() {
        // ECDF 1/3, 2/3, 1 at 0.1, 0.5, 0.9 against U(0,1): the gaps are |0.1 − 1/3|, |0.5 − 2/3|,
        // |0.9 − 1| just at the points and |0.1 − 0|, |0.5 − 1/3|, |0.9 − 2/3| just below them.
        let d = ks_statistic(&[0.1, 0.5, 0.9], uniform);
        assert!((d - (1.0 / 3.0 - 0.1)).abs() < 1e-12, "{d}");
        // One sample at 0.8: just below it the ECDF is 0 and F is 0.8.
        assert!((ks_statistic(&[0.8], uniform) - 0.8).abs() < 1e-12);
        // Ties: two samples at 0.5 make the ECDF jump from 0 to 1 there.
        assert!((ks_statistic(&[0.5, 0.5], uniform) - 0.5).abs() < 1e-12);
        assert_eq!(ks_statistic(&[], uniform), 0.0);
    }

    #[test]
    fn atoms_are_compared_on_both_sides() {
        // A fair coin on {0, 1}: a sample of two zeros and two ones matches it exactly, which
        // the continuous form (left limit = F(x)) would miss by 1/2.
        let cdf = |x: f64| {
            if x >= 1.0 {
                1.0
            } else if x >= 0.0 {
                0.5
            } else {
                0.0
            }
        };
        let below = |x: f64| {
            if x > 1.0 {
                1.0
            } else if x > 0.0 {
                0.5
            } else {
                0.0
            }
        };
        assert!(ks_statistic_with_atoms(&[0.0, 0.0, 1.0, 1.0], cdf, below) < 1e-12);
        assert!((ks_statistic(&[0.0, 0.0, 1.0, 1.0], cdf) - 0.5).abs() < 1e-12);
        // Three zeros and one one: off by 1/4.
        assert!((ks_statistic_with_atoms(&[0.0, 0.0, 0.0, 1.0], cdf, below) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn kolmogorov_distribution_known_values() {
        // Tabulated quantiles of the Kolmogorov distribution: P(K > 1.358) = 0.05,
        // P(K > 1.628) = 0.01, P(K > 1.949) = 0.001; both series agree at the switch.
        assert!((kolmogorov_survival(1.3581) - 0.05).abs() < 1e-4);
        assert!((kolmogorov_survival(1.6276) - 0.01).abs() < 1e-4);
        assert!((kolmogorov_survival(1.9495) - 0.001).abs() < 2e-5);
        assert!((kolmogorov_survival(0.8276) - 0.5).abs() < 1e-3);
        assert_eq!(kolmogorov_survival(0.0), 1.0);
        let (below, above) = (kolmogorov_survival(1.0 - 1e-9), kolmogorov_survival(1.0));
        assert!((below - above).abs() < 1e-8, "{below} {above}");
    }

    #[test]
    fn critical_value_inverts_the_p_value() {
        // For large n the critical value at 5% is about 1.358/√n.
        let c = ks_critical_value(10_000, 0.05);
        assert!((c * 100.0 - 1.358).abs() < 0.01, "{c}");
        assert!((ks_p_value(c, 10_000) - 0.05).abs() < 1e-6);
    }
}
