//! Growing a trained amortizer: more transformer layers that start as the identity.

use burn::module::Param;
use burn::nn::transformer::TransformerEncoderConfig;
use burn::nn::Linear;
use burn::tensor::Device;

use super::Amortizer;

impl Amortizer {
    /// The same model with `extra` transformer layers appended after its own, each starting as
    /// the identity: a pre-norm layer adds its attention's output projection and its
    /// feed-forward's output layer to the residual stream, and both start at zero (weights and
    /// biases), so the deeper model computes exactly what this one does. Their other weights are
    /// drawn fresh on `device` (seed it first), so training can grow them: the first updates
    /// move the zeroed projections, which then pass gradients to the rest. Used to fine-tune a
    /// trained model with more capacity than it was trained with (`train --init … --n-layers`).
    pub fn deepen(mut self, extra: usize, device: &Device) -> Amortizer {
        if extra == 0 {
            return self;
        }
        let c = &self.config;
        let fresh = TransformerEncoderConfig::new(c.d_model, c.d_ff, c.n_heads, extra)
            .with_norm_first(true)
            .with_dropout(0.0)
            .init(device);
        let zero = |l: &mut Linear| {
            l.weight = Param::from_tensor(l.weight.val().zeros_like());
            l.bias = l
                .bias
                .take()
                .map(|b| Param::from_tensor(b.val().zeros_like()));
        };
        for mut layer in fresh.layers {
            zero(&mut layer.mha.output);
            zero(&mut layer.pwff.linear_outer);
            self.encoder.layers.push(layer);
        }
        self.encoder.n_layers += extra;
        self.config.n_layers += extra;
        self
    }
}
