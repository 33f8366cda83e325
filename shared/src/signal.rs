//! Signals: what the amortizer reads from a mini-batch (paper §3, §11.1) — the observations
//! (x, y) themselves, the gradient of the predictor's loss with respect to the state, or both.
//!
//! The paper's gradient signal is one token: the gradient of the mini-batch loss at the current
//! state, "fed as another token" beside the state token (§11.1). Under the causal mask the state
//! after a prefix of j observations must depend on those j only, so there is one gradient token
//! per prefix, the gradient of the mean loss over observations 1..=j, and the state after prefix
//! j reads that token alone (never another prefix's): exactly what a learned optimiser reads.
//!
//! [`Signal::PointGradients`] is this project's extension: one gradient token per observation,
//! ∇_state ℓ(f(x_i; state), y_i), which exposes each point's own gradient (for the squared error,
//! its input scaled by its residual). The implicit regime has no parameters to differentiate, so
//! it reads gradients only in this per-point form, with respect to its own predictions.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::task::LossKind;

/// What the amortizer reads from a mini-batch.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Default,
    strum::Display,
    strum::VariantNames,
    strum::EnumIter,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Signal {
    /// The observations (x, y), encoded by the task, one token each.
    #[default]
    Observations,
    /// The paper's gradient token: the gradient of the mini-batch loss (of each causal prefix)
    /// with respect to the state.
    Gradients,
    /// The observation tokens and the gradient token.
    Both,
    /// One token per observation holding that point's own loss gradient.
    PointGradients,
    /// One token per observation: its encoding plus its own gradient's encoding, summed.
    BothPointGradients,
}

impl Signal {
    /// Whether observation tokens are read.
    pub fn uses_observations(self) -> bool {
        matches!(
            self,
            Signal::Observations | Signal::Both | Signal::BothPointGradients
        )
    }

    /// Whether gradients are read, in either form.
    pub fn uses_gradients(self) -> bool {
        self != Signal::Observations
    }

    /// Whether the gradients come as the paper's mini-batch token (one per causal prefix).
    pub fn gradient_token(self) -> bool {
        matches!(self, Signal::Gradients | Signal::Both)
    }

    /// Whether the gradients come one per observation.
    pub fn per_point(self) -> bool {
        matches!(self, Signal::PointGradients | Signal::BothPointGradients)
    }

    /// The paper's three signals, in its order.
    pub const ALL: [Signal; 3] = [Signal::Gradients, Signal::Observations, Signal::Both];

    /// Every signal: the paper's three and the per-point forms.
    pub const EVERY: [Signal; 5] = [
        Signal::Gradients,
        Signal::Observations,
        Signal::Both,
        Signal::PointGradients,
        Signal::BothPointGradients,
    ];

    /// The name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            // The paper's short names.
            "data" => Ok(Signal::Observations),
            "grad" => Ok(Signal::Gradients),
            _ => crate::choice::parse("signal", s),
        }
    }
}

/// What a signal name written before the paper's gradient token existed means now: `gradients`
/// and `both` were then the per-point forms. (Weights files of format 2 and training configs
/// without `signal_names: 2` are read through this.)
pub fn legacy(signal: Signal) -> Signal {
    match signal {
        Signal::Gradients => Signal::PointGradients,
        Signal::Both => Signal::BothPointGradients,
        s => s,
    }
}

/// The paper's gradient tokens from per-observation gradients `raw` `[B, m, S]`: the gradient of
/// the mean loss over observations 1..=j for every prefix j, `[B, m, S]` (causal attention), or
/// of the whole mini-batch, `[B, 1, S]` (`causal` false); raw, not preprocessed.
pub fn prefix_mean_gradients(raw: Tensor<3>, causal: bool) -> Tensor<3> {
    let [b, m, s] = raw.dims();
    if !causal {
        return raw.mean_dim(1);
    }
    let counts: Vec<f32> = (1..=m).map(|j| j as f32).collect();
    let counts = Tensor::<1>::from_data(burn::tensor::TensorData::new(counts, [m]), &raw.device())
        .reshape([1, m, 1]);
    raw.cumsum(1) / counts.expand([b, m, s])
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn the_gradient_token_of_a_prefix_is_the_mean_of_its_points_gradients() {
        let device = Device::flex();
        // Two tasks, three points, a 2-d state.
        let raw: Vec<f32> = vec![1., 2., 3., 4., 5., 9., -1., 0., 1., 2., 3., -4.];
        let t = Tensor::<3>::from_data(TensorData::new(raw.clone(), [2, 3, 2]), &device);
        let causal = prefix_mean_gradients(t.clone(), true)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // Task 0: prefixes (1,2), mean((1,2),(3,4)) = (2,3), mean of all three = (3,5).
        assert_eq!(&causal[..6], &[1., 2., 2., 3., 3., 5.]);
        // Task 1: (-1,0), (0,1), (1,-2/3).
        let want = [-1., 0., 0., 1., 1., -2. / 3.];
        for (a, b) in causal[6..].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let full = prefix_mean_gradients(t, false);
        assert_eq!(full.dims(), [2, 1, 2]);
        assert_eq!(full.into_data().try_to_vec::<f32>().unwrap()[..2], [3., 5.]);
    }

    #[test]
    fn signals_parse_by_their_names() {
        for s in Signal::EVERY {
            assert_eq!(s.name().parse::<Signal>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
        assert!("gradient"
            .parse::<Signal>()
            .unwrap_err()
            .contains("point-gradients"));
    }
}
