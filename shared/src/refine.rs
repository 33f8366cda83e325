//! k-step iterative refinement: inference, and the greedy k-step training loss (paper §4).
//!
//! Each step takes a mini-batch, builds its tokens, runs h_φ under the causal mask, reads the new
//! state, detaches it (no backpropagation through time) and scores every prefix's state on the
//! queries.

use burn::config::Config;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::model::Amortizer;
use crate::regime::parametric;
use crate::signal::observation_tokens;
use crate::task::regression::FunctionRegression;
use crate::task::Episode;

/// How many refinement steps and how many observations each one reads.
#[derive(Config, Debug, PartialEq)]
pub struct RefineConfig {
    /// Refinement steps k. Default 10.
    #[config(default = 10)]
    pub steps: usize,
    /// Observations per mini-batch b. Default 8.
    #[config(default = 8)]
    pub batch_size: usize,
}

impl RefineConfig {
    /// Checks what a user may set.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps == 0 || self.steps > 1000 {
            return Err(format!(
                "refine.steps must be in 1..=1000, got {}",
                self.steps
            ));
        }
        if self.batch_size == 0 || self.batch_size > 1024 {
            return Err(format!(
                "refine.batch_size must be in 1..=1024, got {}",
                self.batch_size
            ));
        }
        Ok(())
    }
}

/// The mini-batches of k steps over n points: shuffled passes over the data, like SGD's epochs,
/// chopped into batches of min(b, n) indices. When n ≤ b every step reads all n points.
pub fn schedule<R: Rng + ?Sized>(n: usize, b: usize, k: usize, rng: &mut R) -> Vec<Vec<usize>> {
    let b = b.min(n);
    let mut pass: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        if n == 0 {
            out.push(Vec::new());
            continue;
        }
        if n <= b {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(rng);
            out.push(all);
            continue;
        }
        let mut batch = Vec::with_capacity(b);
        while batch.len() < b {
            if pass.is_empty() {
                pass = (0..n).collect();
                pass.shuffle(rng);
            }
            let i = pass.pop().expect("refilled above");
            // A point may end one pass and start the next; never twice in one batch.
            if batch.contains(&i) {
                pass.insert(0, i);
                continue;
            }
            batch.push(i);
        }
        out.push(batch);
    }
    out
}

/// A batch of regression tasks ready for the amortizer: encoded observations on the host, query
/// features and targets on the device.
pub struct RegressionBatch {
    encoded: Vec<Vec<f32>>,
    obs_dim: usize,
    /// φ(x_q), `[B, q, S]`.
    pub query_features: Tensor<3>,
    /// Query targets, `[B, q]`.
    pub targets: Tensor<2>,
}

impl RegressionBatch {
    /// Prepares `episodes` (all with the same number of queries) on `device`.
    pub fn new(task: &FunctionRegression, episodes: &[&Episode], device: &Device) -> Self {
        let b = episodes.len();
        let q = episodes.first().map_or(0, |e| e.query_len());
        let s = task.state_dim();
        let mut phi = Vec::with_capacity(b * q * s);
        let mut targets = Vec::with_capacity(b * q);
        let mut encoded = Vec::with_capacity(b);
        for e in episodes {
            assert_eq!(
                e.query_len(),
                q,
                "every task in a batch has the same number of queries"
            );
            phi.extend(task.design(&e.query_x));
            targets.extend_from_slice(&e.query_y);
            encoded.push(task.encode_observations(&e.context_x, &e.context_y));
        }
        Self {
            encoded,
            obs_dim: task.observation_dim(),
            query_features: Tensor::from_data(TensorData::new(phi, [b, q, s]), device),
            targets: Tensor::from_data(TensorData::new(targets, [b, q]), device),
        }
    }

    /// Tasks in the batch.
    pub fn len(&self) -> usize {
        self.encoded.len()
    }

    /// Whether the batch holds no task.
    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    /// Observation tokens of one mini-batch (the same indices in every task), `[B, m, obs_dim]`.
    pub fn tokens(&self, indices: &[usize], device: &Device) -> Tensor<3> {
        let encoded: Vec<&[f32]> = self.encoded.iter().map(|e| e.as_slice()).collect();
        let idx: Vec<&[usize]> = vec![indices; self.encoded.len()];
        observation_tokens(&encoded, &idx, self.obs_dim, device)
    }
}

/// The greedy k-step training objective.
pub struct GreedyLoss {
    /// Mean over steps of the per-step losses; its gradient is the sum of the per-step
    /// gradients over k, i.e. gradients accumulated over the k steps.
    pub total: Tensor<1>,
    /// Query MSE averaged over every prefix of each step's mini-batch, one per step.
    pub per_step: Vec<Tensor<1>>,
}

/// Runs k steps over `schedule`, detaching the state between steps, and scores every prefix's
/// state on the queries (causal masking trains all context sizes in one pass, Fig. 5).
///
/// Because each step's input state is detached, summing the step losses and calling `backward`
/// once yields exactly the gradients that k separate backward passes would accumulate.
pub fn greedy_loss(
    model: &Amortizer,
    batch: &RegressionBatch,
    schedule: &[Vec<usize>],
    device: &Device,
) -> GreedyLoss {
    let mut state = model.initial_state(batch.len());
    let mut per_step = Vec::with_capacity(schedule.len());
    for indices in schedule {
        let obs = batch.tokens(indices, device);
        let states = model.step_prefixes(state.clone(), obs); // [B, m, S]
        let loss = parametric::mse(
            states.clone(),
            batch.query_features.clone(),
            batch.targets.clone(),
        );
        per_step.push(loss);
        let [b, m, s] = states.dims();
        // Greedy: the next step starts from this step's final state, cut from the graph.
        state = states
            .slice([0..b, m - 1..m, 0..s])
            .reshape([b, s])
            .detach();
    }
    let k = per_step.len().max(1) as f32;
    let total = Tensor::cat(per_step.clone(), 0).sum() / k;
    GreedyLoss { total, per_step }
}

/// Inference: the state before any step and after each of the k steps, `k + 1` tensors `[B, S]`.
pub fn refine(
    model: &Amortizer,
    batch: &RegressionBatch,
    schedule: &[Vec<usize>],
    device: &Device,
) -> Vec<Tensor<2>> {
    let mut states = vec![model.initial_state(batch.len())];
    for indices in schedule {
        let prev = states.last().expect("holds the initial state").clone();
        if indices.is_empty() {
            states.push(prev);
            continue;
        }
        let obs = batch.tokens(indices, device);
        states.push(model.step(prev, obs).detach());
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn schedule_walks_passes_without_repeats_in_a_batch() {
        let mut rng = StdRng::seed_from_u64(1);
        let s = schedule(32, 8, 8, &mut rng);
        assert_eq!(s.len(), 8);
        // Two full passes: every point exactly twice.
        let mut counts = [0; 32];
        for b in &s {
            assert_eq!(b.len(), 8);
            let mut sorted = b.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 8);
            for &i in b {
                counts[i] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 2));
        // Fewer points than a batch: every step reads them all.
        let s = schedule(5, 8, 3, &mut rng);
        assert!(s.iter().all(|b| b.len() == 5));
        // Awkward sizes never repeat a point within a batch.
        for b in schedule(10, 8, 20, &mut rng) {
            let mut sorted = b.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 8);
        }
    }
}
