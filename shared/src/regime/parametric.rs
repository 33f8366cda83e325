//! Parametric regime: a fixed feature-linear predictor f(x; θ) = φ(x)·θ whose weights θ are the
//! state the amortizer refines.

use burn::tensor::Tensor;

/// Predictions of every state on every query.
///
/// `states`: `[B, m, S]` (m candidate states per task, e.g. one per prefix);
/// `query_features`: φ(x_q), `[B, q, S]` → `[B, m, q]`.
pub fn predict(states: Tensor<3>, query_features: Tensor<3>) -> Tensor<3> {
    states.matmul(query_features.swap_dims(1, 2))
}

/// Mean squared error of every state's predictions against the targets.
///
/// `states`: `[B, m, S]`; `query_features`: `[B, q, S]`; `targets`: `[B, q]` → scalar `[1]`,
/// averaged over tasks, states and queries.
pub fn mse(states: Tensor<3>, query_features: Tensor<3>, targets: Tensor<2>) -> Tensor<1> {
    let pred = predict(states, query_features); // [B, m, q]
    let err = pred - targets.unsqueeze_dim::<3>(1);
    err.square().mean()
}

/// Query MSE of one state per task: `states` `[B, S]`, `query_features` `[B, q, S]`,
/// `targets` `[B, q]` → `[B]`.
pub fn mse_per_task(states: Tensor<2>, query_features: Tensor<3>, targets: Tensor<2>) -> Tensor<1> {
    let pred = predict(states.unsqueeze_dim::<3>(1), query_features); // [B, 1, q]
    let [b, _, q] = pred.dims();
    (pred.reshape([b, q]) - targets)
        .square()
        .mean_dim(1)
        .reshape([b])
}
