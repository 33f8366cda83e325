//! Burn's transformer encoder, run layer by layer with [`gelu`](super::gelu::gelu) in the
//! feed-forward sub-layers: the same modules, weights and arithmetic as
//! `TransformerEncoder::forward`, except that the GELU takes the fused CPU kernels where they
//! apply. A layer whose feed-forward is not the exact GELU runs through Burn unchanged.

use burn::nn::activation::Activation;
use burn::nn::attention::MhaInput;
use burn::nn::transformer::{PositionWiseFeedForward, TransformerEncoder, TransformerEncoderLayer};
use burn::tensor::{Bool, Tensor};

use super::gelu::gelu;

/// `encoder` over `x` `[B, t, d]`, with an optional padding mask `[B, t]` and attention mask
/// `[B, t, t]` (true = may not attend), as `TransformerEncoder::forward` computes it.
pub fn forward(
    encoder: &TransformerEncoder,
    x: Tensor<3>,
    mask_pad: Option<Tensor<2, Bool>>,
    mask_attn: Option<Tensor<3, Bool>>,
) -> Tensor<3> {
    encoder.layers.iter().fold(x, |x, layer| {
        layer_forward(layer, x, mask_pad.clone(), mask_attn.clone())
    })
}

/// Whether the feed-forward's activation is the exact GELU.
fn exact_gelu(pwff: &PositionWiseFeedForward) -> bool {
    matches!(&pwff.activation, Activation::Gelu(g) if !g.approximate)
}

/// The position-wise feed-forward sub-layer, `linear_outer(gelu(linear_inner(x)))`.
pub fn feed_forward<const D: usize>(pwff: &PositionWiseFeedForward, x: Tensor<D>) -> Tensor<D> {
    if !exact_gelu(pwff) {
        return pwff.forward(x);
    }
    let h = gelu(pwff.linear_inner.forward(x));
    pwff.linear_outer.forward(pwff.dropout.forward(h))
}

/// One layer, as `TransformerEncoderLayer::forward` (pre- or post-norm).
fn layer_forward(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    mask_pad: Option<Tensor<2, Bool>>,
    mask_attn: Option<Tensor<3, Bool>>,
) -> Tensor<3> {
    if !exact_gelu(&layer.pwff) {
        return layer.forward(x, mask_pad, mask_attn);
    }
    let residual = if layer.norm_first {
        layer.norm_2.forward(x.clone())
    } else {
        x.clone()
    };
    let mut input = MhaInput::self_attn(residual);
    if let Some(mask) = mask_pad {
        input = input.mask_pad(mask);
    }
    if let Some(mask) = mask_attn {
        input = input.mask_attn(mask);
    }
    let mut x = x + layer.dropout.forward(layer.mha.forward(input).context);
    let residual = if layer.norm_first {
        layer.norm_1.forward(x.clone())
    } else {
        x = layer.norm_1.forward(x);
        x.clone()
    };
    let x = x + layer.dropout.forward(feed_forward(&layer.pwff, residual));
    if layer.norm_first {
        x
    } else {
        layer.norm_2.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
    use burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};

    /// The layer-by-layer run computes what Burn's encoder computes, pre- and post-norm, with
    /// an attention mask and with a padding mask, and so do the input gradients.
    #[test]
    fn matches_burns_encoder_values_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(3);
        for norm_first in [true, false] {
            let encoder = TransformerEncoderConfig::new(16, 32, 2, 2)
                .with_norm_first(norm_first)
                .with_dropout(0.0)
                .init(&device);
            let x = Tensor::<3>::random([3, 5, 16], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let hidden: Vec<bool> = (0..3 * 5 * 5).map(|i| (i % 5) > (i / 5) % 5).collect();
            let attn = Tensor::<3, Bool>::from_data(TensorData::new(hidden, [3, 5, 5]), &device);
            let pad = Tensor::<2, Bool>::from_data(
                TensorData::new((0..15).map(|i| i % 5 == 4).collect::<Vec<_>>(), [3, 5]),
                &device,
            );
            for (mask_pad, mask_attn) in [(None, Some(attn.clone())), (Some(pad.clone()), None)] {
                let mut input = TransformerEncoderInput::new(x.clone());
                if let Some(m) = &mask_pad {
                    input = input.mask_pad(m.clone());
                }
                if let Some(m) = &mask_attn {
                    input = input.mask_attn(m.clone());
                }
                let theirs = encoder.forward(input);
                let ours = super::forward(&encoder, x.clone(), mask_pad, mask_attn);
                let err: f32 = (ours.clone() - theirs.clone()).abs().max().into_scalar();
                assert!(
                    err < 1e-5,
                    "norm_first {norm_first}: values differ by {err:e}"
                );
                let g_ours = x.grad(&ours.sum().backward()).expect("gradient");
                let g_theirs = x.grad(&theirs.sum().backward()).expect("gradient");
                let err: f32 = (g_ours - g_theirs).abs().max().into_scalar();
                assert!(
                    err < 1e-5,
                    "norm_first {norm_first}: gradients differ by {err:e}"
                );
            }
        }
    }
}
