//! Parametric regime: a fixed linear predictor whose weights θ are the state the amortizer
//! refines. Regression: f(x; θ) = θ·u(x) (u = φ(x) or x); classification: logits = W u(x) + b,
//! θ = (W, b) flattened row by row (a linear softmax classifier).

use burn::tensor::Tensor;

use crate::task::{LossKind, TaskDims};

/// Whether the predictor has a bias column (classification does; the regression features
/// already hold a constant or the task has none).
pub fn has_bias(dims: &TaskDims) -> bool {
    dims.loss == LossKind::CrossEntropy
}

/// Size of θ: `output_dim × (input_dim + bias)`.
pub fn state_dim(dims: &TaskDims) -> usize {
    dims.output_dim * (dims.input_dim + usize::from(has_bias(dims)))
}

fn with_bias<const D: usize>(inputs: Tensor<D>, bias: bool) -> Tensor<D> {
    if !bias {
        return inputs;
    }
    let mut shape = inputs.dims();
    shape[D - 1] = 1;
    let ones = Tensor::ones(shape, &inputs.device());
    Tensor::cat(vec![inputs, ones], D - 1)
}

/// One state per input: `states` `[N, S]`, `inputs` `[N, in]` → `[N, out]`.
pub fn predict_paired(states: Tensor<2>, inputs: Tensor<2>, dims: &TaskDims) -> Tensor<2> {
    let [n, _] = states.dims();
    let u = with_bias(inputs, has_bias(dims));
    let k = u.dims()[1];
    let w = states.reshape([n, dims.output_dim, k]);
    w.matmul(u.reshape([n, k, 1])).reshape([n, dims.output_dim])
}

/// Every state on every query: `states` `[B, M, S]`, `inputs` `[B, q, in]` → `[B, M, q, out]`.
pub fn predict(states: Tensor<3>, inputs: Tensor<3>, dims: &TaskDims) -> Tensor<4> {
    let [b, m, _] = states.dims();
    let q = inputs.dims()[1];
    let out = dims.output_dim;
    let u = with_bias(inputs, has_bias(dims)); // [B, q, k]
    let k = u.dims()[2];
    let w = states.reshape([b, m * out, k]);
    w.matmul(u.swap_dims(1, 2)) // [B, M·out, q]
        .reshape([b, m, out, q])
        .swap_dims(2, 3)
}
