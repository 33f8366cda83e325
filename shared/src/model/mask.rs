//! Attention masks, built on the host. Burn's convention: `true` marks a position that may NOT
//! be attended to. Every row attends at least to itself, so no row is fully masked.

use burn::tensor::{Bool, Device, Tensor, TensorData};

/// How tokens may attend to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Attention {
    /// Causal over observations: one pass yields the state after every prefix of the
    /// mini-batch (parametric/explicit, Fig. 5) or each query's prediction from a prefix of its
    /// choosing (implicit, Fig. 6): every context size is trained at once (§11.3).
    #[default]
    Causal,
    /// Full attention over one context size sampled per training iteration (§11.4).
    Full,
}

/// Mask over `[state, history_1..history_{prefix-1}, o_1..o_m]` for a task-level state: the
/// `prefix` state tokens see each other; o_j sees them and o_1..o_j (causal) or all
/// observations (full). `[T, T]` flattened, T = prefix + m.
pub fn task_state_mask(prefix: usize, m: usize, attention: Attention) -> Vec<bool> {
    let t = prefix + m;
    let mut mask = vec![true; t * t];
    for row in 0..t {
        for col in 0..t {
            let visible = if col < prefix {
                true
            } else if row < prefix {
                attention == Attention::Full
            } else {
                attention == Attention::Full || col <= row
            };
            mask[row * t + col] = !visible;
        }
    }
    mask
}

/// Mask over `[state, history…, o_1..o_m, g_1..g_m]` for a task-level state that reads the
/// paper's gradient token (`obs` observation tokens, 0 or m; `g` gradient tokens). Causal: the
/// prefix and observation rows are as in [`task_state_mask`]; g_j sees the prefix, o_1..o_j and
/// itself only (never another prefix's gradient), so the state read at g_j depends on
/// observations 1..=j alone, through their tokens and the gradient of their mean loss. Full: one
/// gradient token and everything visible. `[T, T]` flattened, T = prefix + obs + g.
pub fn gradient_token_mask(prefix: usize, obs: usize, g: usize, attention: Attention) -> Vec<bool> {
    let t = prefix + obs + g;
    if attention == Attention::Full {
        return vec![false; t * t];
    }
    let mut mask = task_state_mask(prefix, obs, attention);
    // Widen the [prefix + obs]² mask to [t, t].
    let inner = prefix + obs;
    let mut out = vec![true; t * t];
    for row in 0..inner {
        out[row * t..row * t + inner].copy_from_slice(&mask[row * inner..(row + 1) * inner]);
    }
    for j in 0..g {
        let row = inner + j;
        for col in 0..prefix {
            out[row * t + col] = false;
        }
        if obs > 0 {
            for col in prefix..prefix + j + 1 {
                out[row * t + col] = false;
            }
        }
        out[row * t + row] = false;
    }
    mask.clear();
    out
}

/// Mask over `[o_1..o_m, q_1..q_Q]` for per-query states (implicit regime), one per task:
/// context tokens attend causally (or fully) among themselves and never to queries; query i
/// attends to o_1..o_{r_i} and to itself only, where `prefixes[task * Q + i]` = r_i ∈ 1..=m.
/// `[B, T, T]` flattened, T = m + Q.
pub fn query_mask(m: usize, q: usize, prefixes: &[usize], attention: Attention) -> Vec<bool> {
    let t = m + q;
    let b = prefixes.len() / q.max(1);
    let mut mask = vec![true; b * t * t];
    for task in 0..b {
        let base = task * t * t;
        for row in 0..m {
            for col in 0..m {
                let visible = attention == Attention::Full || col <= row;
                mask[base + row * t + col] = !visible;
            }
        }
        for i in 0..q {
            let row = m + i;
            let r = prefixes[task * q + i].min(m);
            for col in 0..r {
                mask[base + row * t + col] = false;
            }
            mask[base + row * t + row] = false;
        }
    }
    mask
}

/// A `[T, T]` mask repeated for `batch` tasks, on `device`.
pub fn shared_mask(mask: Vec<bool>, batch: usize, t: usize, device: &Device) -> Tensor<3, Bool> {
    Tensor::<2, Bool>::from_data(TensorData::new(mask, [t, t]), device)
        .unsqueeze_dim::<3>(0)
        .expand([batch, t, t])
}

/// A `[B, T, T]` mask on `device`.
pub fn batch_mask(mask: Vec<bool>, batch: usize, t: usize, device: &Device) -> Tensor<3, Bool> {
    Tensor::<3, Bool>::from_data(TensorData::new(mask, [batch, t, t]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_mask_is_causal_after_the_state_tokens() {
        let m = task_state_mask(2, 3, Attention::Causal);
        let t = 5;
        let vis = |r: usize, c: usize| !m[r * t + c];
        assert!(vis(0, 1) && vis(1, 0) && !vis(0, 2));
        assert!(vis(2, 0) && vis(2, 1) && vis(2, 2) && !vis(2, 3));
        assert!(vis(4, 2) && vis(4, 3) && vis(4, 4));
        let f = task_state_mask(1, 3, Attention::Full);
        assert!(f.iter().all(|&x| !x));
    }

    #[test]
    fn a_gradient_token_is_read_by_its_own_prefix_only() {
        // [state, o1, o2, o3, g1, g2, g3]
        let m = gradient_token_mask(1, 3, 3, Attention::Causal);
        let t = 7;
        let vis = |r: usize, c: usize| !m[r * t + c];
        // Observation rows: causal, never a gradient token.
        assert!(vis(2, 1) && vis(2, 2) && !vis(2, 3) && !vis(2, 5));
        // g2 sees the state, o1, o2 and itself; not o3, g1 or g3.
        assert!(vis(5, 0) && vis(5, 1) && vis(5, 2) && vis(5, 5));
        assert!(!vis(5, 3) && !vis(5, 4) && !vis(5, 6));
        // Gradients alone: [state, g1, g2] — g2 sees the state and itself.
        let m = gradient_token_mask(1, 0, 2, Attention::Causal);
        let vis = |r: usize, c: usize| !m[r * 3 + c];
        assert!(vis(2, 0) && vis(2, 2) && !vis(2, 1) && vis(0, 0) && !vis(0, 1));
        assert!(gradient_token_mask(1, 3, 1, Attention::Full)
            .iter()
            .all(|&x| !x));
    }

    #[test]
    fn queries_see_their_prefix_and_themselves_only() {
        let m = query_mask(3, 2, &[1, 3], Attention::Causal);
        let t = 5;
        let vis = |r: usize, c: usize| !m[r * t + c];
        assert!(vis(3, 0) && !vis(3, 1) && vis(3, 3) && !vis(3, 4));
        assert!(vis(4, 0) && vis(4, 1) && vis(4, 2) && !vis(4, 3) && vis(4, 4));
        assert!(!vis(0, 1) && vis(1, 0) && !vis(0, 3));
    }
}
