//! Explicit regime: a learned predictor f_γ(x, z), an MLP over the input and a latent z; z is
//! the state the amortizer refines, γ is trained jointly with h_φ.
//!
//! The paper's predictor reads the latent beside the input (§5.2: "a trained MLP taking a query
//! and latent as input"): its first layer is W_u u + W_z z, a sum. A task's answer is usually a
//! product of the two — linear regression's is u·w — which a sum followed by GELUs only
//! approximates with many units, so early in training a latent barely changes the prediction,
//! the amortizer gets little signal to move it, and the pair stays near the prior mean.
//! [`LatentReadout::Bilinear`] adds a multiplicative term, (A u) ⊙ (B z), so a latent can scale
//! the input's features from the start.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// How the learned predictor's first layer reads the latent.
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
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum LatentReadout {
    /// The paper's: input and latent summed, W_u u + W_z z.
    #[default]
    Concat,
    /// W_u u + W_z z + (A u) ⊙ (B z): the latent also scales features of the input.
    Bilinear,
}

crate::choice::from_name!(LatentReadout, "latent readout");
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::model::gelu::gelu;

/// Shape of the learned predictor.
#[derive(Config, Debug, PartialEq)]
pub struct PredictorConfig {
    /// Predictor input size.
    pub input_dim: usize,
    /// Latent (state) size.
    pub latent_dim: usize,
    /// Output size.
    pub output_dim: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers (at least 1).
    pub layers: usize,
    /// How the first layer reads the latent.
    #[config(default = "LatentReadout::Concat")]
    pub readout: LatentReadout,
}

impl PredictorConfig {
    /// Builds the predictor with fresh weights.
    pub fn init(&self, device: &Device) -> Predictor {
        Predictor {
            input: LinearConfig::new(self.input_dim, self.hidden).init(device),
            latent: LinearConfig::new(self.latent_dim, self.hidden)
                .with_bias(false)
                .init(device),
            input_gate: (self.readout == LatentReadout::Bilinear).then(|| {
                LinearConfig::new(self.input_dim, self.hidden)
                    .with_bias(false)
                    .init(device)
            }),
            latent_gate: (self.readout == LatentReadout::Bilinear).then(|| {
                LinearConfig::new(self.latent_dim, self.hidden)
                    .with_bias(false)
                    .init(device)
            }),
            hidden: (1..self.layers.max(1))
                .map(|_| LinearConfig::new(self.hidden, self.hidden).init(device))
                .collect(),
            output: LinearConfig::new(self.hidden, self.output_dim).init(device),
        }
    }
}

/// f_γ(u, z): the first layer is split into an input part and a latent part so that every
/// latent meets every query without materialising the concatenation.
#[derive(Module, Debug)]
pub struct Predictor {
    input: Linear,
    latent: Linear,
    input_gate: Option<Linear>,
    latent_gate: Option<Linear>,
    hidden: Vec<Linear>,
    output: Linear,
}

impl Predictor {
    fn rest<const D: usize>(&self, mut h: Tensor<D>) -> Tensor<D> {
        h = gelu(h);
        for layer in &self.hidden {
            h = gelu(layer.forward(h));
        }
        self.output.forward(h)
    }

    /// One latent per input: `latents` `[N, L]`, `inputs` `[N, in]` → `[N, out]`.
    pub fn predict_paired(&self, latents: Tensor<2>, inputs: Tensor<2>) -> Tensor<2> {
        let mut h = self.input.forward(inputs.clone()) + self.latent.forward(latents.clone());
        if let (Some(a), Some(b)) = (&self.input_gate, &self.latent_gate) {
            h = h + a.forward(inputs) * b.forward(latents);
        }
        self.rest(h)
    }

    /// Every latent on every query: `[B, M, L]` and `[B, q, in]` → `[B, M, q, out]`.
    pub fn predict(&self, latents: Tensor<3>, inputs: Tensor<3>) -> Tensor<4> {
        let [b, m, _] = latents.dims();
        let q = inputs.dims()[1];
        let hu = self.input.forward(inputs.clone()).unsqueeze_dim::<4>(1); // [B, 1, q, H]
        let hz = self.latent.forward(latents.clone()).unsqueeze_dim::<4>(2); // [B, M, 1, H]
        let h = hu.dims()[3];
        let mut sum = hu.expand([b, m, q, h]) + hz.expand([b, m, q, h]);
        if let (Some(a), Some(g)) = (&self.input_gate, &self.latent_gate) {
            let gu = a.forward(inputs).unsqueeze_dim::<4>(1).expand([b, m, q, h]);
            let gz = g
                .forward(latents)
                .unsqueeze_dim::<4>(2)
                .expand([b, m, q, h]);
            sum = sum + gu * gz;
        }
        self.rest(sum)
    }
}
