//! Attention masks. Burn's convention: `true` marks a position that may NOT be attended to.

use burn::nn::attention::generate_autoregressive_mask;
use burn::tensor::{Bool, Device, Tensor};

/// Causal mask over `[state, o_1, …, o_m]`: token j attends to the state and o_1..o_j, so the
/// output at o_j is the refined state after seeing a prefix of j observations (paper §11.3,
/// Fig. 5). One pass trains every prefix size at once. `[batch, m + 1, m + 1]`.
pub fn causal_prefix_mask(batch: usize, tokens: usize, device: &Device) -> Tensor<3, Bool> {
    generate_autoregressive_mask(batch, tokens, device)
}
