//! Metrics.

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
