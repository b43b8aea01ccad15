//! A compact Nelder–Mead simplex minimiser for the least-squares fits (a few parameters, a
//! smooth objective, a good start from the maximum-likelihood fit). Standard coefficients:
//! reflection 1, expansion 2, contraction 1/2, shrink 1/2.

/// Most iterations per parameter before giving up with the best point so far.
const MAX_ITERATIONS_PER_DIM: usize = 500;

/// Minimises `f` from `start`, with initial steps of `step[i]` along each axis. Returns the best
/// point and its value. Non-finite values of `f` count as +∞, so `f` may reject a point by
/// returning NaN or ∞ (the start must be finite).
pub fn minimize(f: impl Fn(&[f64]) -> f64, start: &[f64], step: &[f64]) -> (Vec<f64>, f64) {
    let eval = |x: &[f64]| {
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let dim = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(dim + 1);
    simplex.push((start.to_vec(), eval(start)));
    for i in 0..dim {
        let mut x = start.to_vec();
        x[i] += step[i];
        let v = eval(&x);
        simplex.push((x, v));
    }
    for _ in 0..MAX_ITERATIONS_PER_DIM * dim.max(1) {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if converged(&simplex) {
            break;
        }
        iterate(&eval, &mut simplex);
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

/// The values agree to 1e-10 (relative) and the points to 1e-9 (relative to their size).
fn converged(simplex: &[(Vec<f64>, f64)]) -> bool {
    let (best, worst) = (simplex[0].1, simplex[simplex.len() - 1].1);
    let spread = worst - best;
    if spread.is_nan() || spread > 1e-10 * best.abs() + 1e-300 {
        return false;
    }
    let x0 = &simplex[0].0;
    simplex[1..].iter().all(|(x, _)| x.iter().zip(x0).all(|(a, b)| (a - b).abs() <= 1e-9 * (1.0 + b.abs())))
}

/// One step on a simplex sorted by value, best first.
fn iterate(eval: &impl Fn(&[f64]) -> f64, simplex: &mut [(Vec<f64>, f64)]) {
    let n = simplex.len() - 1;
    let centroid: Vec<f64> = (0..n).map(|i| simplex[..n].iter().map(|(x, _)| x[i]).sum::<f64>() / n as f64).collect();
    // centroid + t (worst − centroid)
    let along =
        |t: f64, worst: &[f64]| -> Vec<f64> { centroid.iter().zip(worst).map(|(c, w)| c + t * (w - c)).collect() };
    let worst = simplex[n].0.clone();
    let (best_v, second_worst_v, worst_v) = (simplex[0].1, simplex[n - 1].1, simplex[n].1);
    let reflected = along(-1.0, &worst);
    let rv = eval(&reflected);
    if rv < best_v {
        let expanded = along(-2.0, &worst);
        let ev = eval(&expanded);
        simplex[n] = if ev < rv { (expanded, ev) } else { (reflected, rv) };
    } else if rv < second_worst_v {
        simplex[n] = (reflected, rv);
    } else {
        // Contract outside (towards the reflected point) or inside (towards the worst).
        let (t, bound) = if rv < worst_v { (-0.5, rv) } else { (0.5, worst_v) };
        let contracted = along(t, &worst);
        let cv = eval(&contracted);
        if cv < bound {
            simplex[n] = (contracted, cv);
        } else {
            shrink(eval, simplex);
        }
    }
}

/// Moves every point halfway towards the best one.
fn shrink(eval: &impl Fn(&[f64]) -> f64, simplex: &mut [(Vec<f64>, f64)]) {
    let best = simplex[0].0.clone();
    for (x, v) in simplex[1..].iter_mut() {
        for (xi, bi) in x.iter_mut().zip(&best) {
            *xi = bi + 0.5 * (*xi - bi);
        }
        *v = eval(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_rosenbrock() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let (x, v) = minimize(rosenbrock, &[-1.2, 1.0], &[0.1, 0.1]);
        assert!((x[0] - 1.0).abs() < 1e-4 && (x[1] - 1.0).abs() < 1e-4, "{x:?}");
        assert!(v < 1e-8, "{v}");
    }

    #[test]
    fn one_dimension_and_rejected_regions() {
        // Minimum at 3 of a parabola defined only for x > 0: the start is the only valid point
        // of the initial simplex's negative side.
        let f = |x: &[f64]| if x[0] > 0.0 { (x[0] - 3.0).powi(2) } else { f64::NAN };
        let (x, _) = minimize(f, &[0.5], &[-1.0]);
        assert!((x[0] - 3.0).abs() < 1e-5, "{x:?}");
    }

    #[test]
    fn three_dimensions() {
        let f = |x: &[f64]| (x[0] - 1.0).powi(2) + 2.0 * (x[1] + 2.0).powi(2) + 3.0 * (x[2] - 0.5).powi(2);
        let (x, _) = minimize(f, &[0.0, 0.0, 0.0], &[0.5, 0.5, 0.5]);
        for (got, want) in x.iter().zip([1.0, -2.0, 0.5]) {
            assert!((got - want).abs() < 1e-5, "{x:?}");
        }
    }
}
