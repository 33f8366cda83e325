//! Explicit regime: a learned predictor f_γ(x, z), an MLP over the input and a latent z; z is
//! the state the amortizer refines, γ is trained jointly with h_φ.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Gelu, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

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
}

impl PredictorConfig {
    /// Builds the predictor with fresh weights.
    pub fn init(&self, device: &Device) -> Predictor {
        Predictor {
            input: LinearConfig::new(self.input_dim, self.hidden).init(device),
            latent: LinearConfig::new(self.latent_dim, self.hidden)
                .with_bias(false)
                .init(device),
            hidden: (1..self.layers.max(1))
                .map(|_| LinearConfig::new(self.hidden, self.hidden).init(device))
                .collect(),
            output: LinearConfig::new(self.hidden, self.output_dim).init(device),
            activation: Gelu::new(),
        }
    }
}

/// f_γ(u, z): the first layer is split into an input part and a latent part so that every
/// latent meets every query without materialising the concatenation.
#[derive(Module, Debug)]
pub struct Predictor {
    input: Linear,
    latent: Linear,
    hidden: Vec<Linear>,
    output: Linear,
    activation: Gelu,
}

impl Predictor {
    fn rest<const D: usize>(&self, mut h: Tensor<D>) -> Tensor<D> {
        h = self.activation.forward(h);
        for layer in &self.hidden {
            h = self.activation.forward(layer.forward(h));
        }
        self.output.forward(h)
    }

    /// One latent per input: `latents` `[N, L]`, `inputs` `[N, in]` → `[N, out]`.
    pub fn predict_paired(&self, latents: Tensor<2>, inputs: Tensor<2>) -> Tensor<2> {
        self.rest(self.input.forward(inputs) + self.latent.forward(latents))
    }

    /// Every latent on every query: `[B, M, L]` and `[B, q, in]` → `[B, M, q, out]`.
    pub fn predict(&self, latents: Tensor<3>, inputs: Tensor<3>) -> Tensor<4> {
        let [b, m, _] = latents.dims();
        let q = inputs.dims()[1];
        let hu = self.input.forward(inputs).unsqueeze_dim::<4>(1); // [B, 1, q, H]
        let hz = self.latent.forward(latents).unsqueeze_dim::<4>(2); // [B, M, 1, H]
        let h = hu.dims()[3];
        self.rest(hu.expand([b, m, q, h]) + hz.expand([b, m, q, h]))
    }
}
