//! Metrics: MSE, error rate, exact W1 / W2 between point sets, precision and recall of samples.

use burn::tensor::Tensor;

/// Mean squared error between two equal-length slices.
pub fn mse(pred: &[f32], target: &[f32]) -> f32 {
    assert_eq!(pred.len(), target.len(), "mse needs equal lengths");
    if pred.is_empty() {
        return 0.0;
    }
    let sum: f64 = pred
        .iter()
        .zip(target)
        .map(|(p, t)| ((p - t) as f64).powi(2))
        .sum();
    (sum / pred.len() as f64) as f32
}

/// Fraction of queries whose arg-max prediction misses the (one-hot) target, per task:
/// `pred`, `target` `[B, q, C]` → `[B]` in 0..=1.
pub fn error_rate_per_task(pred: Tensor<3>, target: Tensor<3>) -> Tensor<1> {
    let b = pred.dims()[0];
    let hit = pred.argmax(2).equal(target.argmax(2)).float(); // [B, q, 1]
    (hit.mean_dims(&[1, 2]).reshape([b]) - 1.0).neg()
}

/// Largest point set [`wasserstein`] accepts (the exact assignment is O(n³)).
pub const MAX_OT_POINTS: usize = 2000;

/// Exact p-Wasserstein distance between two equal-size point sets with uniform weights:
/// `(min over permutations π of (1/n) Σ_i ‖a_i − b_π(i)‖^p)^(1/p)` (paper §10, eq. 18), by an
/// optimal assignment (Kuhn–Munkres from the `pathfinding` crate) on costs quantised to 2⁻⁴⁰
/// of the largest cost, then evaluated in f64 on the chosen permutation. `a`, `b`: row-major
/// `[n, dim]`; `p` ≥ 1 (1 and 2 in the paper).
pub fn wasserstein(a: &[f32], b: &[f32], dim: usize, p: u32) -> Result<f64, String> {
    if dim == 0 || !a.len().is_multiple_of(dim) || a.len() != b.len() {
        return Err(format!(
            "point sets must have equal sizes and dimension {dim} ({} and {} values)",
            a.len(),
            b.len()
        ));
    }
    if p == 0 {
        return Err("p must be at least 1".into());
    }
    let n = a.len() / dim;
    if n == 0 {
        return Ok(0.0);
    }
    if n > MAX_OT_POINTS {
        return Err(format!(
            "{n} points; the exact distance takes at most {MAX_OT_POINTS}"
        ));
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err("a coordinate is not finite".into());
    }
    let cost = |i: usize, j: usize| -> f64 {
        let d2: f64 = a[i * dim..(i + 1) * dim]
            .iter()
            .zip(&b[j * dim..(j + 1) * dim])
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum();
        d2.sqrt().powi(p as i32)
    };
    let costs: Vec<f64> = (0..n * n).map(|k| cost(k / n, k % n)).collect();
    let max = costs.iter().cloned().fold(0.0f64, f64::max);
    if max == 0.0 {
        return Ok(0.0);
    }
    let scale = (1u64 << 40) as f64 / max;
    let quantised: Vec<i64> = costs.iter().map(|c| (c * scale).round() as i64).collect();
    let matrix = pathfinding::matrix::Matrix::from_vec(n, n, quantised)
        .map_err(|e| format!("cost matrix: {e}"))?;
    let (_, assignment) = pathfinding::kuhn_munkres::kuhn_munkres_min(&matrix);
    let total: f64 = assignment
        .iter()
        .enumerate()
        .map(|(i, &j)| costs[i * n + j])
        .sum();
    Ok((total / n as f64).powf(1.0 / p as f64))
}

/// How much of a point set's shape a generated set reproduces, at tolerance `delta`:
/// *precision*, the share of `generated` samples within `delta` of some `reference` point (a blob
/// around the shape puts many samples off it), and *recall*, the share of `reference` points with a
/// generated sample within `delta` (samples piled on one part miss the rest). Row-major `[n, dim]`;
/// an empty set scores 0 on the side it is counted on.
pub fn precision_recall(
    generated: &[f32],
    reference: &[f32],
    dim: usize,
    delta: f64,
) -> (f64, f64) {
    let near = |p: &[f32], set: &[f32]| {
        set.chunks(dim).any(|r| {
            let d2: f64 = p.iter().zip(r).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
            d2 <= delta * delta
        })
    };
    let share = |from: &[f32], to: &[f32]| {
        let n = from.len() / dim.max(1);
        if n == 0 {
            return 0.0;
        }
        from.chunks(dim).filter(|p| near(p, to)).count() as f64 / n as f64
    };
    (share(generated, reference), share(reference, generated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for at in 0..=p.len() {
                let mut q = p.clone();
                q.insert(at, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn exact_wasserstein_agrees_with_brute_force() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in 1..=6 {
            for dim in [1, 2, 5] {
                let a: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-3.0..3.0)).collect();
                let b: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-3.0..3.0)).collect();
                for p in [1u32, 2] {
                    let brute = permutations(n)
                        .iter()
                        .map(|perm| {
                            perm.iter()
                                .enumerate()
                                .map(|(i, &j)| {
                                    let d2: f64 = (0..dim)
                                        .map(|k| ((a[i * dim + k] - b[j * dim + k]) as f64).powi(2))
                                        .sum();
                                    d2.sqrt().powi(p as i32)
                                })
                                .sum::<f64>()
                        })
                        .fold(f64::INFINITY, f64::min);
                    let brute = (brute / n as f64).powf(1.0 / p as f64);
                    let fast = wasserstein(&a, &b, dim, p).unwrap();
                    assert!(
                        (fast - brute).abs() < 1e-6 * (1.0 + brute),
                        "n {n} dim {dim} p {p}: {fast} vs {brute}"
                    );
                }
            }
        }
        // Identical sets are at distance 0; a shifted set at the shift.
        let a = [0.0f32, 1.0, 2.0];
        let b = [2.5f32, 0.5, 1.5];
        assert!((wasserstein(&a, &b, 1, 1).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(wasserstein(&a, &a, 1, 2).unwrap(), 0.0);
        assert!(wasserstein(&a, &b[..2], 1, 1).is_err());
        assert!(wasserstein(&[f32::NAN], &[0.0], 1, 1).is_err());
    }

    #[test]
    fn precision_and_recall_tell_a_blob_from_the_shape() {
        // The reference: points along the segment y = 0, x in [-1, 1].
        let line: Vec<f32> = (0..41)
            .flat_map(|i| [-1.0 + i as f32 * 0.05, 0.0])
            .collect();
        // The same shape: both 1.
        assert_eq!(precision_recall(&line, &line, 2, 0.06), (1.0, 1.0));
        // A blob over the segment's box: recall stays high, precision falls.
        let mut rng = StdRng::seed_from_u64(2);
        let blob: Vec<f32> = (0..1000)
            .flat_map(|_| {
                [
                    rng.random_range(-1.0f32..1.0),
                    rng.random_range(-0.5f32..0.5),
                ]
            })
            .collect();
        let (p, r) = precision_recall(&blob, &line, 2, 0.06);
        assert!(p < 0.2 && r > 0.9, "blob: precision {p}, recall {r}");
        // Everything on one end: precise, but most of the segment is missed.
        let end: Vec<f32> = (0..50).flat_map(|_| [1.0f32, 0.0]).collect();
        let (p, r) = precision_recall(&end, &line, 2, 0.06);
        assert_eq!(p, 1.0);
        assert!(r < 0.1, "one end: recall {r}");
        assert_eq!(precision_recall(&[], &line, 2, 0.06), (0.0, 0.0));
    }
}
