//! Signals: which tokens a mini-batch becomes.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// What the amortizer reads from a mini-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// The observations (x, y) themselves, encoded by the task.
    Observations,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signal::Observations => write!(f, "observations"),
        }
    }
}

/// Observation tokens for one mini-batch: for each task, the rows `indices[t]` of its encoded
/// observations (`encoded[t]`, row-major `[n_t, obs_dim]`). Every task's mini-batch must have
/// the same length m. Returns `[B, m, obs_dim]`.
pub fn observation_tokens(
    encoded: &[&[f32]],
    indices: &[&[usize]],
    obs_dim: usize,
    device: &Device,
) -> Tensor<3> {
    let m = indices.first().map_or(0, |i| i.len());
    let mut data = Vec::with_capacity(encoded.len() * m * obs_dim);
    for (rows, idx) in encoded.iter().zip(indices) {
        assert_eq!(idx.len(), m, "every task's mini-batch has the same size");
        for &i in idx.iter() {
            data.extend_from_slice(&rows[i * obs_dim..(i + 1) * obs_dim]);
        }
    }
    Tensor::from_data(TensorData::new(data, [encoded.len(), m, obs_dim]), device)
}
