//! Signals: what the amortizer reads from a mini-batch (paper §3, §11.1) — the observations
//! (x, y) themselves, the gradients of the predictor's loss with respect to the state, or both.
//!
//! With the causal mask the state after a prefix of j observations must depend on those j only,
//! so the gradient signal is one token per observation: ∇_state ℓ(f(x_i; state), y_i), each
//! point's own loss gradient (attention can average them into the mini-batch gradient of any
//! prefix). With both signals the two encodings of a point are added into one token.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::task::LossKind;

/// What the amortizer reads from a mini-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// The observations (x, y), encoded by the task.
    #[default]
    Observations,
    /// Gradients of the predictor's loss on each observation with respect to the state.
    Gradients,
    /// Both, summed per observation.
    Both,
}

impl Signal {
    /// Whether observation tokens are read.
    pub fn uses_observations(self) -> bool {
        matches!(self, Signal::Observations | Signal::Both)
    }

    /// Whether gradient tokens are read.
    pub fn uses_gradients(self) -> bool {
        matches!(self, Signal::Gradients | Signal::Both)
    }

    /// Every signal, in the paper's order.
    pub const ALL: [Signal; 3] = [Signal::Gradients, Signal::Observations, Signal::Both];
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Observations => "observations",
            Signal::Gradients => "gradients",
            Signal::Both => "both",
        })
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "observations" | "data" => Ok(Signal::Observations),
            "gradients" | "grad" => Ok(Signal::Gradients),
            "both" => Ok(Signal::Both),
            _ => Err(format!(
                "unknown signal {s:?} (expected observations, gradients or both)"
            )),
        }
    }
}

/// Per-observation loss gradients with respect to the state, by autodiff on a detached copy.
///
/// `states` `[B, S]`; `inputs` `[B, m, in]`; `targets` `[B, m, out]`; `predict` maps paired
/// `[N, S]` states and `[N, in]` inputs to `[N, out]` predictions and must not track any
/// parameter (pass a `valid()` copy of a learned predictor). Returns the raw gradients
/// `[B, m, S]`, outside any autodiff graph.
pub fn point_gradients(
    states: Tensor<2>,
    inputs: Tensor<3>,
    targets: Tensor<3>,
    loss: LossKind,
    predict: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<2>,
) -> Tensor<3> {
    let [b, s] = states.dims();
    let [_, m, input_dim] = inputs.dims();
    let out = targets.dims()[2];
    // One copy of the state per observation, so each copy's gradient is that point's alone.
    let copies = states
        .without_autodiff()
        .unsqueeze_dim::<3>(1)
        .expand([b, m, s])
        .reshape([b * m, s])
        .autodiff()
        .require_grad();
    let u = inputs.without_autodiff().reshape([b * m, input_dim]);
    let y = targets.without_autodiff().reshape([b * m, out]);
    let total = loss.pointwise(predict(copies.clone(), u), y).sum();
    let grads = total.backward();
    copies
        .grad(&grads)
        .expect("the copies require gradients")
        .reshape([b, m, s])
}

/// Per-observation loss gradients with respect to predictions: `predictions` and `targets`
/// `[B, m, out]` → ∇_p ℓ(p, y) `[B, m, out]`, raw and outside any autodiff graph (for the squared
/// error, averaged over the outputs, 2(p − y) / out: the residual, negated and scaled).
pub fn prediction_gradients(
    predictions: Tensor<3>,
    targets: Tensor<3>,
    loss: LossKind,
) -> Tensor<3> {
    let [b, m, out] = predictions.dims();
    let p = predictions
        .without_autodiff()
        .reshape([b * m, out])
        .autodiff()
        .require_grad();
    let y = targets.without_autodiff().reshape([b * m, out]);
    let grads = loss.pointwise(p.clone(), y).sum().backward();
    p.grad(&grads)
        .expect("the predictions require gradients")
        .reshape([b, m, out])
}

/// The gradient fed to the encoder: sign(g)·ln(1 + |g|), so that gradients spanning orders of
/// magnitude (large early, tiny near a solution) stay in a range a linear encoder handles.
pub fn preprocess_gradient<const D: usize>(g: Tensor<D>) -> Tensor<D> {
    g.clone().sign() * g.abs().log1p()
}
