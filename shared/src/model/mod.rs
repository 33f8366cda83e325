//! The amortizer h_φ: token encoders, a pre-norm transformer and the state decoder.

pub mod mask;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Gelu, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Architecture of the amortizer. An exported model is this config plus its weights.
#[derive(Config, Debug, PartialEq)]
pub struct AmortizerConfig {
    /// Size of one observation token's input (task-defined).
    pub obs_dim: usize,
    /// Size of the state the amortizer refines (parametric: the predictor's weights θ).
    pub state_dim: usize,
    /// Transformer width. Default 64.
    #[config(default = 64)]
    pub d_model: usize,
    /// Attention heads. Default 4.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Transformer layers. Default 3.
    #[config(default = 3)]
    pub n_layers: usize,
    /// Feed-forward width. Default 256.
    #[config(default = 256)]
    pub d_ff: usize,
}

impl AmortizerConfig {
    /// Checks what a user may set in a config file.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("obs_dim", self.obs_dim),
            ("state_dim", self.state_dim),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
            ("d_ff", self.d_ff),
        ];
        for (name, v) in fields {
            if v == 0 || v > 4096 {
                return Err(format!("model.{name} must be in 1..=4096, got {v}"));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!(
                "model.d_model ({}) must be a multiple of model.n_heads ({})",
                self.d_model, self.n_heads
            ));
        }
        Ok(())
    }

    /// Builds the module on `device` with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Amortizer {
        let d = self.d_model;
        Amortizer {
            obs_in: LinearConfig::new(self.obs_dim, d).init(device),
            obs_out: LinearConfig::new(d, d).init(device),
            state_in: LinearConfig::new(self.state_dim, d).init(device),
            state_out: LinearConfig::new(d, d).init(device),
            activation: Gelu::new(),
            encoder: TransformerEncoderConfig::new(d, self.d_ff, self.n_heads, self.n_layers)
                .with_norm_first(true)
                .with_dropout(0.0)
                .init(device),
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, self.state_dim).init(device),
            // θ(0) starts at zero, the prior mean of the regression weights; training moves it.
            initial_state: Param::from_tensor(Tensor::zeros([self.state_dim], device)),
        }
    }
}

/// h_φ: reads the current state and a mini-batch of observation tokens, returns the refined
/// state for every prefix of the mini-batch.
#[derive(Module, Debug)]
pub struct Amortizer {
    obs_in: Linear,
    obs_out: Linear,
    state_in: Linear,
    state_out: Linear,
    activation: Gelu,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    head: Linear,
    /// The learned initial state θ(0).
    initial_state: Param<Tensor<1>>,
}

impl Amortizer {
    /// θ(0) repeated for `batch` tasks: `[batch, state_dim]`.
    pub fn initial_state(&self, batch: usize) -> Tensor<2> {
        let s = self.initial_state.val();
        let dim = s.dims()[0];
        s.unsqueeze_dim::<2>(0).expand([batch, dim])
    }

    /// One refinement step for every prefix size at once.
    ///
    /// `state`: `[B, S]`; `obs`: `[B, m, obs_dim]` → refined states `[B, m, S]`, where row j
    /// saw the state and observations 1..=j only (causal mask). The update is residual,
    /// θ_j = θ + Δ_j, like an optimiser's step.
    pub fn step_prefixes(&self, state: Tensor<2>, obs: Tensor<3>) -> Tensor<3> {
        let [batch, m, _] = obs.dims();
        let device = obs.device();
        // [B, 1, d]
        let state_tok = self
            .state_out
            .forward(
                self.activation
                    .forward(self.state_in.forward(state.clone())),
            )
            .unsqueeze_dim::<3>(1);
        // [B, m, d]
        let obs_tok = self
            .obs_out
            .forward(self.activation.forward(self.obs_in.forward(obs)));
        let tokens = Tensor::cat(vec![state_tok, obs_tok], 1); // [B, m + 1, d]
        let mask = mask::causal_prefix_mask(batch, m + 1, &device);
        let h = self
            .encoder
            .forward(TransformerEncoderInput::new(tokens).mask_attn(mask));
        let h = self.norm.forward(h);
        let d = h.dims()[2];
        let h_obs = h.slice([0..batch, 1..m + 1, 0..d]); // [B, m, d]
        let delta = self.head.forward(h_obs); // [B, m, S]
        state.unsqueeze_dim::<3>(1) + delta
    }

    /// One refinement step over a whole mini-batch: the state after its last prefix, `[B, S]`.
    pub fn step(&self, state: Tensor<2>, obs: Tensor<3>) -> Tensor<2> {
        let m = obs.dims()[1];
        let all = self.step_prefixes(state, obs);
        let [b, _, s] = all.dims();
        all.slice([0..b, m - 1..m, 0..s]).reshape([b, s])
    }
}
