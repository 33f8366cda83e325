//! Baselines on the same tasks: the Bayes posterior mean and least squares.

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

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
