//! Topological-order inference for SCMs (paper §9.4, after Scetbon et al.): a transformer that
//! alternates attention over samples and attention over nodes, reads each node's current leaf
//! logit, and refines the leaf logits of the nodes not yet removed, one mini-batch of samples per
//! step (implicit-style state: one logit per node). The order is built from the end: the most
//! confident leaf is removed, and the process repeats on the remaining nodes.

use burn::module::{Module, Param};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::encoder;
use crate::task::schedule::schedule;
use crate::task::scm::{leaves, ScmTask};

/// Architecture of the order amortizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderModelConfig {
    /// Width. Default 64.
    pub d_model: usize,
    /// Heads. Default 4.
    pub n_heads: usize,
    /// Pairs of (samples, nodes) attention layers. Default 2.
    pub n_layers: usize,
    /// Feed-forward width. Default 128.
    pub d_ff: usize,
}

impl Default for OrderModelConfig {
    fn default() -> Self {
        Self {
            d_model: 64,
            n_heads: 4,
            n_layers: 2,
            d_ff: 128,
        }
    }
}

impl OrderModelConfig {
    /// Checks the fields, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
            ("d_ff", self.d_ff),
        ] {
            if v == 0 || v > 4096 {
                return Err(format!("model.{name} must be in 1..=4096, got {v}"));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err("model.d_model must be a multiple of model.n_heads".into());
        }
        Ok(())
    }

    /// Builds the module with fresh weights.
    pub fn init(&self, device: &Device) -> OrderAmortizer {
        let layer = || {
            TransformerEncoderConfig::new(self.d_model, self.d_ff, self.n_heads, 1)
                .with_norm_first(true)
                .with_dropout(0.0)
                .init(device)
        };
        OrderAmortizer {
            value_in: LinearConfig::new(1, self.d_model).init(device),
            logit_in: LinearConfig::new(1, self.d_model).init(device),
            over_samples: (0..self.n_layers).map(|_| layer()).collect(),
            over_nodes: (0..self.n_layers).map(|_| layer()).collect(),
            norm: LayerNormConfig::new(self.d_model).init(device),
            head: LinearConfig::new(self.d_model, 1).init(device),
            initial_logit: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }
}

/// h_φ for topological orders.
#[derive(Module, Debug)]
pub struct OrderAmortizer {
    value_in: Linear,
    logit_in: Linear,
    over_samples: Vec<TransformerEncoder>,
    over_nodes: Vec<TransformerEncoder>,
    norm: LayerNorm,
    head: Linear,
    initial_logit: Param<Tensor<1>>,
}

impl OrderAmortizer {
    /// The learned initial leaf logit for every node, `[B, n]`.
    pub fn initial(&self, batch: usize, nodes: usize) -> Tensor<2> {
        self.initial_logit
            .val()
            .reshape([1, 1])
            .expand([batch, nodes])
    }

    /// One refinement step: `data` `[B, m, n]` (a mini-batch of m samples), `logits` `[B, n]`,
    /// `removed` `[B, n]` (true: no longer in the graph) → refined logits `[B, n]`.
    pub fn step(&self, data: Tensor<3>, logits: Tensor<2>, removed: Tensor<2, Bool>) -> Tensor<2> {
        let [b, m, n] = data.dims();
        let d = self.head.weight.val().dims()[0];
        let values = self.value_in.forward(data.reshape([b, m, n, 1])); // [B, m, n, d]
        let state = self
            .logit_in
            .forward(logits.clone().reshape([b, 1, n, 1]))
            .expand([b, m, n, d]);
        let mut h = values + state;
        let pad = removed
            .clone()
            .reshape([b, 1, n])
            .expand([b, m, n])
            .reshape([b * m, n]);
        for (samples, nodes) in self.over_samples.iter().zip(&self.over_nodes) {
            // Attention over samples, one sequence per node.
            let x = h.swap_dims(1, 2).reshape([b * n, m, d]);
            let x = encoder::forward(samples, x, None, None);
            h = x.reshape([b, n, m, d]).swap_dims(1, 2);
            // Attention over the remaining nodes, one sequence per sample.
            let x = h.reshape([b * m, n, d]);
            let x = encoder::forward(nodes, x, Some(pad.clone()), None);
            h = x.reshape([b, m, n, d]);
        }
        let pooled = self.norm.forward(h.mean_dim(1).reshape([b, n, d]));
        let delta = self.head.forward(pooled).reshape([b, n]);
        logits + delta
    }
}

/// Binary cross-entropy of leaf logits against the true leaves, over the remaining nodes only:
/// a scalar.
pub fn leaf_loss(logits: Tensor<2>, leaves: Tensor<2>, removed: Tensor<2, Bool>) -> Tensor<1> {
    let keep = removed.bool_not().float();
    let z = logits;
    let per = z.clone().clamp_min(0.0) - z.clone() * leaves + z.abs().neg().exp().log1p();
    (per * keep.clone()).sum() / keep.sum().clamp_min(1.0)
}

/// A batch of SCM datasets, on the host, with a random set of removed nodes per task for
/// training: the last r nodes of the true order (a set closed under descendants, as after r
/// rounds of leaf removal).
pub struct OrderBatch {
    tasks: Vec<ScmTask>,
    samples: usize,
    nodes: usize,
    removed: Vec<bool>,
    leaves: Vec<f32>,
}

impl OrderBatch {
    /// Prepares `tasks` (same sizes), removing a random number of nodes in each.
    pub fn new<R: Rng + ?Sized>(tasks: Vec<ScmTask>, rng: &mut R) -> Self {
        let n = tasks[0].nodes;
        let samples = tasks[0].data.len() / n;
        let mut removed = Vec::with_capacity(tasks.len() * n);
        let mut leaf = Vec::with_capacity(tasks.len() * n);
        for t in &tasks {
            let r = rng.random_range(0..n);
            let mut rem = vec![false; n];
            for &v in &t.order[n - r..] {
                rem[v] = true;
            }
            let remaining: Vec<bool> = rem.iter().map(|x| !x).collect();
            leaf.extend(
                leaves(&t.adj, n, &remaining)
                    .iter()
                    .map(|&l| l as u8 as f32),
            );
            removed.extend(rem);
        }
        Self {
            tasks,
            samples,
            nodes: n,
            removed,
            leaves: leaf,
        }
    }

    /// Samples `indices` of every task, `[B, m, n]`.
    pub fn minibatch(&self, indices: &[usize], device: &Device) -> Tensor<3> {
        let n = self.nodes;
        let mut out = Vec::with_capacity(self.tasks.len() * indices.len() * n);
        for t in &self.tasks {
            for &s in indices {
                out.extend_from_slice(&t.data[s * n..(s + 1) * n]);
            }
        }
        Tensor::from_data(
            TensorData::new(out, [self.tasks.len(), indices.len(), n]),
            device,
        )
    }

    fn removed(&self, device: &Device) -> Tensor<2, Bool> {
        Tensor::from_data(
            TensorData::new(self.removed.clone(), [self.tasks.len(), self.nodes]),
            device,
        )
    }

    fn leaves(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.leaves.clone(), [self.tasks.len(), self.nodes]),
            device,
        )
    }
}

/// The greedy k-step loss over `schedule` (mini-batches of samples), the logits detached between
/// steps; the mean of the step losses.
pub fn greedy_order_loss(
    model: &OrderAmortizer,
    batch: &OrderBatch,
    schedule: &[Vec<usize>],
    device: &Device,
) -> (Tensor<1>, Vec<Tensor<1>>) {
    let removed = batch.removed(device);
    let target = batch.leaves(device);
    let mut logits = model.initial(batch.tasks.len(), batch.nodes);
    let mut per_step = Vec::new();
    for idx in schedule {
        let next = model.step(batch.minibatch(idx, device), logits, removed.clone());
        per_step.push(leaf_loss(next.clone(), target.clone(), removed.clone()));
        logits = next.detach();
    }
    let k = per_step.len().max(1) as f32;
    (Tensor::cat(per_step.clone(), 0).sum() / k, per_step)
}

/// Predicts a topological order for each task: k refinement steps over mini-batches of `b`
/// samples, then the remaining node with the highest leaf logit goes last; repeat.
pub fn predict_orders<R: Rng + ?Sized>(
    model: &OrderAmortizer,
    tasks: &[ScmTask],
    k: usize,
    b: usize,
    rng: &mut R,
    device: &Device,
) -> Vec<Vec<usize>> {
    let n = tasks[0].nodes;
    let batch = OrderBatch {
        samples: tasks[0].data.len() / n,
        nodes: n,
        removed: vec![false; tasks.len() * n],
        leaves: vec![0.0; tasks.len() * n],
        tasks: tasks.to_vec(),
    };
    let mut removed = vec![false; tasks.len() * n];
    let mut reversed: Vec<Vec<usize>> = vec![Vec::with_capacity(n); tasks.len()];
    for _ in 0..n {
        let mask: Tensor<2, Bool> =
            Tensor::from_data(TensorData::new(removed.clone(), [tasks.len(), n]), device);
        let mut logits = model.initial(tasks.len(), n);
        for idx in schedule(batch.samples, b, k, rng) {
            logits = model.step(batch.minibatch(&idx, device), logits, mask.clone());
        }
        let host: Vec<f32> = logits
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 logits");
        for (t, rev) in reversed.iter_mut().enumerate() {
            let best = (0..n)
                .filter(|&v| !removed[t * n + v])
                .max_by(|&a, &c| host[t * n + a].total_cmp(&host[t * n + c]))
                .expect("a node remains");
            removed[t * n + best] = true;
            rev.push(best);
        }
    }
    reversed
        .into_iter()
        .map(|mut r| {
            r.reverse();
            r
        })
        .collect()
}
