//! Baselines on the same tasks: the Bayes posterior mean and least squares (regression), the
//! nearest class mean and the nearest neighbour (classification), and the sortability orders of a
//! causal model's variables (topological order).

use nalgebra::{DMatrix, DVector};

/// Posterior mean of w for y = Φw + ε, w ~ N(0, I), ε ~ N(0, σ² I):
/// (ΦᵀΦ + σ² I)⁻¹ Φᵀy. `design` is row-major `[n, p]`. The Bayes-optimal predictor under
/// squared error. With σ = 0 and too few points it falls back to the minimum-norm solution.
pub fn posterior_mean(design: &[f32], y: &[f32], p: usize, noise_std: f64) -> Vec<f32> {
    let n = y.len();
    if n == 0 {
        return vec![0.0; p];
    }
    let phi = DMatrix::from_row_slice(n, p, &to_f64(design));
    let y = DVector::from_vec(to_f64(y));
    let a = phi.transpose() * &phi + DMatrix::identity(p, p) * noise_std.powi(2);
    let rhs = phi.transpose() * y;
    let w = match a.clone().cholesky() {
        Some(c) => c.solve(&rhs),
        None => a
            .svd(true, true)
            .solve(&rhs, 1e-10)
            .unwrap_or(DVector::zeros(p)),
    };
    w.iter().map(|&v| v as f32).collect()
}

/// Least squares, the minimum-norm solution of min ‖Φw − y‖² (by SVD).
pub fn least_squares(design: &[f32], y: &[f32], p: usize) -> Vec<f32> {
    let n = y.len();
    if n == 0 {
        return vec![0.0; p];
    }
    let phi = DMatrix::from_row_slice(n, p, &to_f64(design));
    let y = DVector::from_vec(to_f64(y));
    let w = phi
        .svd(true, true)
        .solve(&y, 1e-9)
        .unwrap_or(DVector::zeros(p));
    w.iter().map(|&v| v as f32).collect()
}

/// Var-sortability's order (Reisach et al., 2021): the variables by increasing variance, roots
/// first. In many simulated SCMs variance accumulates along the causal order, so this "order"
/// is often right without looking at any dependence.
pub fn var_sort_order(variances: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..variances.len()).collect();
    order.sort_by(|&a, &b| variances[a].total_cmp(&variances[b]));
    order
}

/// R²-sortability's order (Reisach et al., 2023): the variables by increasing R², the share of
/// each one's variance explained by a linear regression on all the others, roots first. Unlike
/// variance, R² does not change when each variable is standardised, so it applies to the data
/// the model reads. `data` row-major `[samples, n]`.
pub fn r2_sort_order(data: &[f32], n: usize) -> Vec<usize> {
    let samples = data.len() / n.max(1);
    let r2: Vec<f64> = (0..n)
        .map(|j| {
            let y: Vec<f32> = (0..samples).map(|s| data[s * n + j]).collect();
            // The other variables and an intercept.
            let design: Vec<f32> = (0..samples)
                .flat_map(|s| {
                    (0..n)
                        .filter(move |&i| i != j)
                        .map(move |i| data[s * n + i])
                        .chain(std::iter::once(1.0))
                })
                .collect();
            let w = least_squares(&design, &y, n);
            let mean = y.iter().map(|&v| v as f64).sum::<f64>() / samples.max(1) as f64;
            let (mut res, mut tot) = (0.0f64, 0.0f64);
            for (s, &t) in y.iter().enumerate() {
                let fit: f64 = design[s * n..(s + 1) * n]
                    .iter()
                    .zip(&w)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                res += (t as f64 - fit).powi(2);
                tot += (t as f64 - mean).powi(2);
            }
            if tot > 0.0 {
                1.0 - res / tot
            } else {
                0.0
            }
        })
        .collect();
    var_sort_order(&r2)
}

/// Squared Euclidean distance.
fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The index of the smallest of `values` (the first on ties); None when empty.
fn argmin(values: impl Iterator<Item = f32>) -> Option<usize> {
    values
        .enumerate()
        .fold(None, |best: Option<(usize, f32)>, (i, v)| match best {
            Some((_, b)) if b <= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// The nearest-class-mean classifier (a prototype classifier, with nothing to tune): each query
/// takes the label whose labelled points have the nearest mean (Euclidean; the smallest label on
/// ties). `x` row-major `[n, p]` with their `labels`, `queries` row-major `[q, p]`. None when
/// there is no labelled point.
pub fn nearest_mean_labels(
    x: &[f32],
    labels: &[usize],
    p: usize,
    queries: &[f32],
) -> Option<Vec<usize>> {
    let classes = labels.iter().max()? + 1;
    let mut sums = vec![0.0f64; classes * p];
    let mut counts = vec![0usize; classes];
    for (row, &c) in x.chunks(p).zip(labels) {
        counts[c] += 1;
        for (s, &v) in sums[c * p..(c + 1) * p].iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let seen: Vec<usize> = (0..classes).filter(|&c| counts[c] > 0).collect();
    let means: Vec<Vec<f32>> = seen
        .iter()
        .map(|&c| {
            sums[c * p..(c + 1) * p]
                .iter()
                .map(|&s| (s / counts[c] as f64) as f32)
                .collect()
        })
        .collect();
    Some(
        queries
            .chunks(p)
            .map(|q| seen[argmin(means.iter().map(|m| dist2(q, m))).expect("a class")])
            .collect(),
    )
}

/// The 1-nearest-neighbour classifier: each query takes the label of its nearest labelled point
/// (Euclidean; the first on ties). Shapes as [`nearest_mean_labels`]; None when there is no
/// labelled point.
pub fn nearest_neighbour_labels(
    x: &[f32],
    labels: &[usize],
    p: usize,
    queries: &[f32],
) -> Option<Vec<usize>> {
    if labels.is_empty() {
        return None;
    }
    Some(
        queries
            .chunks(p)
            .map(|q| labels[argmin(x.chunks(p).map(|r| dist2(q, r))).expect("a point")])
            .collect(),
    )
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_mean_and_nearest_neighbour_classify_by_distance() {
        // Two clusters in 2-D, labels 0 and 2 (label 1 never seen); one outlier of label 0 sits
        // next to the label-2 cluster.
        let x = [0.0, 0.0, 0.2, 0.0, 0.0, 0.2, 5.0, 5.0, 5.2, 5.0, 4.6, 4.6];
        let labels = [0, 0, 0, 2, 2, 0];
        let queries = [0.1, 0.1, 5.1, 5.1, 4.5, 4.5];
        // Means: label 0 at (0.8, 0.8) (the outlier pulls it), label 2 at (5.1, 5.0).
        assert_eq!(
            nearest_mean_labels(&x, &labels, 2, &queries).unwrap(),
            [0, 2, 2]
        );
        // The third query's nearest point is the outlier.
        assert_eq!(
            nearest_neighbour_labels(&x, &labels, 2, &queries).unwrap(),
            [0, 2, 0]
        );
        assert_eq!(nearest_mean_labels(&[], &[], 2, &queries), None);
        assert_eq!(nearest_neighbour_labels(&[], &[], 2, &queries), None);
    }

    #[test]
    fn sortability_orders_follow_variance_and_explained_variance() {
        assert_eq!(var_sort_order(&[3.0, 1.0, 2.0]), [1, 2, 0]);
        // A chain x0 → x1 → x2 (columns x2, x0, x1): x1, between the other two, is the one
        // they explain best.
        let mut data = Vec::new();
        let mut state = 1u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for _ in 0..400 {
            let x0 = noise();
            let x1 = x0 + 0.3 * noise();
            let x2 = x1 + 0.3 * noise();
            data.extend_from_slice(&[x2, x0, x1]);
        }
        let order = r2_sort_order(&data, 3);
        assert_eq!(
            order[2], 2,
            "the middle of the chain is explained best: {order:?}"
        );
    }

    #[test]
    fn least_squares_recovers_exact_weights_and_prior_shrinks() {
        // y = 2 + 3x on five points.
        let xs = [-1.0f32, -0.5, 0.0, 0.5, 1.0];
        let design: Vec<f32> = xs.iter().flat_map(|&x| [1.0, x]).collect();
        let y: Vec<f32> = xs.iter().map(|&x| 2.0 + 3.0 * x).collect();
        let w = least_squares(&design, &y, 2);
        assert!(
            (w[0] - 2.0).abs() < 1e-4 && (w[1] - 3.0).abs() < 1e-4,
            "{w:?}"
        );
        let b = posterior_mean(&design, &y, 2, 1.0);
        assert!(
            b[0].abs() < 2.0 && b[1].abs() < 3.0,
            "the prior shrinks: {b:?}"
        );
        let b0 = posterior_mean(&design, &y, 2, 0.0);
        assert!((b0[0] - 2.0).abs() < 1e-3, "{b0:?}");
    }
}
