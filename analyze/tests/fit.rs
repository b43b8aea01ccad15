//! Every fit recovers known parameters from sampled data (the paper's own parameters where it
//! has them), and picks the true family where the families are clearly distinct.

use rand::SeedableRng;
use rand_distr::Distribution;
use rand_pcg::Pcg64Mcg;
use soplab_analyze::fit::{
    Family, Fit, Fits, Method, Params, fit, fit_continuous, fit_sessions_per_client, ks_p_value, ks_statistic,
};

const N: usize = 5000;

fn sample(d: impl Distribution<f64>, seed: u64, n: usize) -> Vec<f64> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    (0..n).map(|_| d.sample(&mut rng)).collect()
}

fn family_fits(fits: &Fits, family: Family) -> (Fit, Fit) {
    let f = fits.all.iter().find(|f| f.family == family).expect("the family was tried");
    (f.lse.clone().expect("an lse fit"), f.mle.clone().expect("an mle fit"))
}

/// Both fits of the true family are within `tolerance` of `want` (relative, or absolute for
/// parameters near zero), and least squares does fit the CDF at least as well as the MLE.
fn assert_recovers(fits: &Fits, want: Params, tolerance: &[f64]) {
    let (lse, mle) = family_fits(fits, want.family());
    for fit in [&lse, &mle] {
        for ((got, w), tol) in fit.params.values().iter().zip(want.values()).zip(tolerance) {
            assert!(
                (got - w).abs() <= tol * w.abs().max(1.0),
                "{:?} {:?}: {got} vs {w} (±{tol})",
                want.family(),
                fit.method
            );
        }
        // A sample of the true distribution: its KS p-value is not small.
        assert!(ks_p_value(fit.ks, fits.samples) > 0.01, "{fit:?}");
    }
    assert!(lse.cdf_mse <= mle.cdf_mse * (1.0 + 1e-9), "{lse:?} {mle:?}");
}

fn assert_aic_picks(fits: &Fits, family: Family) {
    let best = fits.best_by_aic.expect("some fit has an AIC");
    assert_eq!(best.family, family, "{fits:#?}");
    assert_eq!(fits.mle.as_ref().map(|f| f.family), Some(family));
}

#[test]
fn lognormal_inter_arrival_event() {
    let fits = fit_continuous(&sample(rand_distr::LogNormal::new(0.108, 0.693).unwrap(), 1, N));
    assert_recovers(&fits, Params::LogNormal { m: 0.108, sigma: 0.693 }, &[0.03, 0.03]);
    assert_aic_picks(&fits, Family::LogNormal);
}

#[test]
fn exponential_off_time() {
    let fits = fit_continuous(&sample(rand_distr::Exp::new(0.054).unwrap(), 2, N));
    assert_recovers(&fits, Params::Exponential { lambda: 0.054 }, &[0.04]);
    // Gamma and Weibull contain the Exponential (shape 1), so AIC may prefer them by chance;
    // their shapes come out near 1.
    let (_, gamma) = family_fits(&fits, Family::Gamma);
    let (_, weibull) = family_fits(&fits, Family::Weibull);
    assert!((gamma.params.values()[0] - 1.0).abs() < 0.05, "{gamma:?}");
    assert!((weibull.params.values()[1] - 1.0).abs() < 0.05, "{weibull:?}");
}

#[test]
fn weibull_event_on_time_in_the_papers_convention() {
    // rand_distr's Weibull is (scale, shape); the paper's α = scale^(−shape).
    let (alpha, beta) = (2.032_f64, 0.233_f64);
    let scale = alpha.powf(-1.0 / beta);
    let fits = fit_continuous(&sample(rand_distr::Weibull::new(scale, beta).unwrap(), 3, N));
    assert_recovers(&fits, Params::Weibull { alpha, beta }, &[0.05, 0.04]);
    assert_aic_picks(&fits, Family::Weibull);
}

#[test]
fn gamma_partners_per_snapshot() {
    // rand_distr's Gamma is (shape, scale), like the paper's (α, β).
    let fits = fit_continuous(&sample(rand_distr::Gamma::new(6.008, 16.886).unwrap(), 4, N));
    assert_recovers(&fits, Params::Gamma { alpha: 6.008, beta: 16.886 }, &[0.06, 0.06]);
    assert_aic_picks(&fits, Family::Gamma);
}

#[test]
fn normal_partners_per_snapshot() {
    let fits = fit_continuous(&sample(rand_distr::Normal::new(101.453, 41.537).unwrap(), 5, N));
    assert_recovers(&fits, Params::Normal { mu: 101.453, sigma: 41.537 }, &[0.02, 0.04]);
    assert_aic_picks(&fits, Family::Normal);
}

#[test]
fn pareto() {
    let fits = fit_continuous(&sample(rand_distr::Pareto::new(1.5, 2.5).unwrap(), 6, N));
    assert_recovers(&fits, Params::Pareto { alpha: 2.5, xm: 1.5 }, &[0.05, 0.01]);
    assert_aic_picks(&fits, Family::Pareto);
}

#[test]
fn geometric_sessions_per_client() {
    // rand_distr's Geometric counts failures before the first success; sessions count from 1.
    let g = rand_distr::Geometric::new(1.0 - 0.398).unwrap();
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let ks: Vec<u64> = (0..N).map(|_| g.sample(&mut rng) + 1).collect();
    let fits = fit_sessions_per_client(&ks);
    assert_recovers(&fits, Params::Geometric { p_off: 0.398 }, &[0.02]);
    let json = serde_json::to_value(fits.mle.as_ref().unwrap()).unwrap();
    assert_eq!(json["family"], "geometric");
    assert!((json["params"]["p_off"].as_f64().unwrap() - 0.398).abs() < 0.02, "{json}");
    // A wrong P_off is far off: its KS p-value is tiny.
    let sorted = {
        let mut v: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let wrong = Params::Geometric { p_off: 0.45 };
    let d = soplab_analyze::fit::ks_statistic_with_atoms(&sorted, |x| wrong.cdf(x), |x| wrong.cdf_below(x));
    assert!(ks_p_value(d, N) < 1e-3, "{d}");
}

#[test]
fn large_samples_fit_on_a_subsample_of_the_ecdf() {
    let xs = sample(rand_distr::LogNormal::new(0.823, 1.459).unwrap(), 8, 200_000);
    let fits = fit(xs, &[Family::LogNormal]);
    assert_eq!(fits.samples, 200_000);
    assert_recovers(&fits, Params::LogNormal { m: 0.823, sigma: 1.459 }, &[0.01, 0.01]);
}

#[test]
fn json_keys_follow_the_paper() {
    let fits = fit_continuous(&sample(rand_distr::LogNormal::new(0.108, 0.693).unwrap(), 9, 500));
    let json = serde_json::to_value(&fits).unwrap();
    assert_eq!(json["mle"]["family"], "lognormal");
    assert!(json["mle"]["params"]["m"].is_f64() && json["mle"]["params"]["sigma"].is_f64(), "{json}");
    assert!(json["lse"]["ks"].is_f64() && json["lse"]["aic"].is_f64(), "{json}");
    let weibull = json["all"].as_array().unwrap().iter().find(|f| f["family"] == "weibull").unwrap();
    assert!(weibull["mle"]["params"]["alpha"].is_f64() && weibull["mle"]["params"]["beta"].is_f64());
    assert_eq!(json["best_by_aic"]["method"].as_str().map(|m| m == "lse" || m == "mle"), Some(true));
}

/// Every number that reaches the JSON is finite.
fn assert_finite(fits: &Fits) {
    for f in fits.all.iter().flat_map(|f| [&f.lse, &f.mle]).flatten() {
        assert!(f.params.values().iter().all(|v| v.is_finite()), "{f:?}");
        assert!(f.ks.is_finite() && f.cdf_mse.is_finite() && f.aic.is_none_or(f64::is_finite), "{f:?}");
    }
    serde_json::to_string(fits).expect("serialisable");
}

#[test]
fn degenerate_samples_skip_families_without_panicking() {
    let empty = fit_continuous(&[]);
    assert!(empty.lse.is_none() && empty.mle.is_none() && empty.best_by_ks.is_none());
    assert!(empty.all.iter().all(|f| f.skipped == Some("no samples")));

    for xs in [vec![3.0], vec![2.0; 10], vec![f64::NAN, f64::INFINITY, 1.0]] {
        let fits = fit_continuous(&xs);
        assert_finite(&fits);
        // No spread: only the Exponential (a rate from the mean) can be fitted.
        let fitted: Vec<Family> = fits.all.iter().filter(|f| f.mle.is_some()).map(|f| f.family).collect();
        assert_eq!(fitted, [Family::Exponential], "{xs:?}");
    }

    let with_zero = fit_continuous(&[0.0, 1.0, 2.0, 5.0]);
    assert_finite(&with_zero);
    for f in &with_zero.all {
        let positive_only = matches!(f.family, Family::LogNormal | Family::Weibull | Family::Pareto | Family::Gamma);
        assert_eq!(f.skipped == Some("needs values > 0"), positive_only, "{f:?}");
    }
    let negative = fit_continuous(&[-1.0, 1.0, 2.0]);
    let fitted: Vec<Family> = negative.all.iter().filter(|f| f.mle.is_some()).map(|f| f.family).collect();
    assert_eq!(fitted, [Family::Normal]);

    assert!(fit_sessions_per_client(&[0, 1, 2]).mle.is_none());
    let once = fit_sessions_per_client(&[1, 1, 1]);
    assert_finite(&once);
    assert_eq!(once.mle.map(|f| f.params), Some(Params::Geometric { p_off: 0.0 }));
}

#[test]
fn fitted_curves_evaluate() {
    let xs = sample(rand_distr::Exp::new(2.0).unwrap(), 10, 1000);
    let fits = fit(xs, &[Family::Exponential]);
    let mle = fits.mle.unwrap();
    assert_eq!(mle.method, Method::Mle);
    let Params::Exponential { lambda } = mle.params else { panic!("{mle:?}") };
    assert!((mle.cdf(0.5) - (1.0 - (-lambda * 0.5).exp())).abs() < 1e-12);
    assert!((mle.pdf(0.5) - lambda * (-lambda * 0.5).exp()).abs() < 1e-12);
    // The statistic is the fit's own, over the whole sample.
    let mut sorted = sample(rand_distr::Exp::new(2.0).unwrap(), 10, 1000);
    sorted.sort_by(f64::total_cmp);
    assert!((ks_statistic(&sorted, |x| mle.cdf(x)) - mle.ks).abs() < 1e-15);
}

/// A nearly constant sample (ON times of clients that stay all along: 99.5% to 99.95% of the
/// transmission) has a Gamma shape in the hundreds of thousands, where the Gamma is a Normal
/// in all but name and each of its CDFs is slow: the Gamma is skipped, the rest is fitted.
#[test]
fn nearly_constant_samples_skip_the_gamma() {
    let xs: Vec<f64> = (0..51).map(|i| 99.5 + 0.45 * f64::from(i) / 50.0).collect();
    let fits = fit_continuous(&xs);
    assert_finite(&fits);
    let gamma = fits.all.iter().find(|f| f.family == Family::Gamma).unwrap();
    assert!(gamma.mle.is_none() && gamma.lse.is_none(), "{gamma:?}");
    assert_eq!(gamma.skipped, Some(soplab_analyze::fit::NEARLY_CONSTANT));
    let fitted: Vec<Family> = fits.all.iter().filter(|f| f.mle.is_some()).map(|f| f.family).collect();
    assert!(fitted.contains(&Family::Normal) && fitted.contains(&Family::LogNormal), "{fitted:?}");
    // Shapes up to the limit are fitted as before.
    let moderate = fit_continuous(&sample(rand_distr::Gamma::new(200.0, 0.5).unwrap(), 11, 2000));
    assert_recovers(&moderate, Params::Gamma { alpha: 200.0, beta: 0.5 }, &[0.1, 0.1]);
}
