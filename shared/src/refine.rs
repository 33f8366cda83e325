//! k-step iterative refinement: inference, and the greedy k-step training loss (paper §4).
//!
//! Each step takes a mini-batch, builds its tokens, runs h_φ under the causal mask, reads the new
//! state, detaches it (no backpropagation through time) and scores every prefix's state on the
//! queries.

use burn::config::Config;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;

use crate::model::mask::Attention;
use crate::model::{Amortizer, StepInput};
use crate::signal::{prediction_gradients, prefix_mean_gradients, preprocess_gradient};
pub use crate::task::batch::{MiniBatch, TaskBatch};
pub use crate::task::schedule::schedule;
use crate::task::LossKind;

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

/// Where a refinement stands: the carried state and the history the model reads.
#[derive(Clone)]
pub struct RefineState {
    /// `[B, 1, S]` (task-level state) or `[B, q, S]` (per query); an implicit model that reads
    /// gradients carries `[B, q + n, S]`, the queries' states then one per context point.
    pub state: Tensor<3>,
    history: Vec<Tensor<3>>,
    history_grads: Vec<Tensor<3>>,
    /// The inputs of the carried rows when they go past the batch's queries (implicit with
    /// gradients: the queries', then the context points'), gathered once per refinement.
    row_inputs: Option<Tensor<3>>,
}

impl RefineState {
    /// The initial state of `batch`'s tasks, its history filled with copies of it (and zero
    /// gradients).
    pub fn start(model: &Amortizer, batch: &TaskBatch) -> Self {
        let cfg = model.config();
        let rows = batch.query_len()
            + if cfg.carries_context() {
                batch.context_len()
            } else {
                0
            };
        let state = model.initial(batch.len(), rows);
        // With no context point yet (a fresh demo) the carried rows are the queries alone.
        let row_inputs =
            cfg.carries_context()
                .then(|| match batch.context_inputs(&state.device()) {
                    Some(context) => Tensor::cat(vec![batch.query_input.clone(), context], 1),
                    None => {
                        assert_eq!(
                            batch.context_len(),
                            0,
                            "an implicit model reading gradients needs context inputs and targets"
                        );
                        batch.query_input.clone()
                    }
                });
        let h = cfg.history;
        let zeros = || {
            let [b, _, s] = state.dims();
            Tensor::zeros([b, 1, s], &state.device())
        };
        Self {
            history: vec![state.clone(); h],
            history_grads: if cfg.signal.uses_gradients() && cfg.regime.has_task_state() {
                (0..h).map(|_| zeros()).collect()
            } else {
                Vec::new()
            },
            state,
            row_inputs,
        }
    }

    /// One inference step over the context points `indices` of `batch`: the state moves on
    /// (detached) and the history with it. Stepping one call at a time gives the same states
    /// as [`refine`] over the same mini-batches (an interactive view steps this way).
    pub fn advance(
        &mut self,
        model: &Amortizer,
        batch: &TaskBatch,
        indices: &[usize],
        device: &Device,
    ) {
        if indices.is_empty() {
            return;
        }
        let out = step(model, self, batch, indices, None, device);
        self.push(out.next.detach(), out.mean_grad);
    }

    fn push(&mut self, next: Tensor<3>, mean_grad: Option<Tensor<3>>) {
        let prev = std::mem::replace(&mut self.state, next);
        if !self.history.is_empty() {
            self.history.pop();
            self.history.insert(0, prev.detach());
            if let Some(g) = mean_grad {
                self.history_grads.pop();
                self.history_grads.insert(0, g.detach());
            }
        }
    }
}

/// What one step produced.
pub struct StepOutput {
    /// Predictions on the queries of every candidate state, `[B, M, q, out]`: M = the prefixes
    /// of the mini-batch (causal task-level state), or 1.
    pub predictions: Tensor<4>,
    /// The state carried to the next step (not detached).
    pub next: Tensor<3>,
    mean_grad: Option<Tensor<3>>,
}

/// One refinement step from `rs` over the mini-batch `indices`. `prefixes` (implicit regime):
/// how many of the mini-batch's observations each query reads, `[B·q]`, or `None` for all.
pub fn step(
    model: &Amortizer,
    rs: &RefineState,
    batch: &TaskBatch,
    indices: &[usize],
    prefixes: Option<&[usize]>,
    device: &Device,
) -> StepOutput {
    let mb = batch.minibatch(indices, device);
    if model.config().regime.has_task_state() {
        task_state_step(model, rs, batch, mb)
    } else {
        query_state_step(model, rs, batch, mb, indices, prefixes, device)
    }
}

/// A step of the parametric and explicit regimes, whose state belongs to the task (θ, or the
/// latent z): the mini-batch's tokens (observations, and the gradient of its loss at the state)
/// with the state and its history go through h_φ, whose output at each prefix of the mini-batch
/// is a candidate next state; every candidate predicts the queries, the last is carried on.
fn task_state_step(
    model: &Amortizer,
    rs: &RefineState,
    batch: &TaskBatch,
    mb: MiniBatch,
) -> StepOutput {
    let cfg = model.config();
    let (grads, grad_tokens, mean_grad) = if cfg.signal.uses_gradients() {
        let raw = model.point_gradients(
            rs.state.clone(),
            mb.inputs
                .clone()
                .expect("the gradient signal needs context inputs and targets"),
            mb.targets
                .clone()
                .expect("the gradient signal needs context inputs and targets"),
        );
        // The mean gradient at this state, kept only for models that read their history.
        let mean = (cfg.history > 0).then(|| preprocess_gradient(raw.clone().mean_dim(1)));
        if cfg.signal.per_point() {
            (Some(preprocess_gradient(raw)), None, mean)
        } else {
            let causal = cfg.attention == Attention::Causal;
            let tokens = preprocess_gradient(prefix_mean_gradients(raw, causal));
            (None, Some(tokens), mean)
        }
    } else {
        (None, None, None)
    };
    let input = StepInput {
        obs: cfg.signal.uses_observations().then_some(mb.obs),
        grads,
        grad_tokens,
        history: rs.history.clone(),
        history_grads: rs.history_grads.clone(),
    };
    let states = model.step_task(rs.state.clone(), input); // [B, M, S]
    let [b, rows, s] = states.dims();
    let next = states.clone().slice([0..b, rows - 1..rows, 0..s]);
    StepOutput {
        predictions: model.predict(states, batch.query_input.clone()),
        next,
        mean_grad,
    }
}

/// A step of the implicit regime, whose state belongs to each query (its current prediction):
/// every query token, carrying its state, reads the mini-batch's tokens (and, reading
/// gradients, those of its points' current predictions) and puts out its next state; the first
/// `prefixes[i]` observations are what query i reads (all, at inference).
fn query_state_step(
    model: &Amortizer,
    rs: &RefineState,
    batch: &TaskBatch,
    mb: MiniBatch,
    indices: &[usize],
    prefixes: Option<&[usize]>,
    device: &Device,
) -> StepOutput {
    let cfg = model.config();
    let m = indices.len();
    let [b, rows, _] = rs.state.dims();
    let q = batch.query_len();
    let all = vec![m; b * rows];
    let grads = cfg.carries_context().then(|| {
        let missing = "an implicit model reading gradients needs context inputs and targets";
        let inputs = mb.inputs.clone().expect(missing);
        let targets = mb.targets.clone().expect(missing);
        // The current prediction at each point of the mini-batch, from its carried state.
        let at: Vec<i64> = indices.iter().map(|&i| (q + i) as i64).collect();
        let at = Tensor::<1, Int>::from_data(TensorData::new(at, [m]), device);
        let held = model.decode_queries(rs.state.clone().select(1, at));
        let g = prediction_gradients(held, targets, cfg.task.loss);
        Tensor::cat(vec![inputs, preprocess_gradient(g)], 2)
    });
    let query_inputs = rs
        .row_inputs
        .clone()
        .unwrap_or_else(|| batch.query_input.clone());
    let input = StepInput {
        obs: cfg.signal.uses_observations().then_some(mb.obs),
        grads,
        grad_tokens: None,
        history: rs.history.clone(),
        history_grads: Vec::new(),
    };
    let (pred, next) = model.step_queries(
        rs.state.clone(),
        query_inputs,
        input,
        prefixes.unwrap_or(&all),
    );
    let out = pred.dims()[2];
    StepOutput {
        // Only the queries are predictions; the context points' states feed the gradients.
        predictions: pred.slice([0..b, 0..q, 0..out]).unsqueeze_dim::<4>(1),
        next,
        mean_grad: None,
    }
}

/// The predictions of a carried state on the batch's queries, `[B, q, out]`.
pub fn predictions(model: &Amortizer, state: &Tensor<3>, batch: &TaskBatch) -> Tensor<3> {
    if model.config().regime.has_task_state() {
        let p = model.predict(state.clone(), batch.query_input.clone()); // [B, 1, q, out]
        let [b, _, q, o] = p.dims();
        p.reshape([b, q, o])
    } else {
        let [b, _, s] = state.dims();
        let q = batch.query_len();
        model.decode_queries(state.clone().slice([0..b, 0..q, 0..s]))
    }
}

/// Mean query loss of predictions `[B, M, q, out]` against targets `[B, q, out]`: a scalar.
pub fn query_loss(kind: LossKind, predictions: Tensor<4>, targets: Tensor<3>) -> Tensor<1> {
    let shape = predictions.dims();
    let t = targets.unsqueeze_dim::<4>(1).expand(shape);
    kind.pointwise(predictions, t).mean()
}

/// Query loss of each task, `[B]`, for predictions `[B, q, out]`.
pub fn loss_per_task(kind: LossKind, predictions: Tensor<3>, targets: Tensor<3>) -> Tensor<1> {
    let b = predictions.dims()[0];
    kind.pointwise(predictions, targets)
        .mean_dims(&[1, 2])
        .reshape([b])
}

/// How the greedy objective weighs its k per-step losses.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    strum::Display,
    strum::VariantNames,
    strum::EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum StepWeighting {
    /// The paper's objective: the mean of the step losses. Early steps, whose loss is large
    /// because few points have been read, dominate its gradient.
    #[default]
    Mean,
    /// The mean of the steps' log-losses: each step's gradient is divided by its own loss, so a
    /// late step's small error counts as much, relatively, as an early step's large one.
    Balanced,
}

crate::choice::from_name!(StepWeighting, "step weighting");

/// The greedy k-step training objective.
pub struct GreedyLoss {
    /// Mean over steps of the per-step losses; its gradient is the sum of the per-step
    /// gradients over k, i.e. gradients accumulated over the k steps.
    pub total: Tensor<1>,
    /// Query loss averaged over every candidate state of each step, one per step.
    pub per_step: Vec<Tensor<1>>,
}

impl GreedyLoss {
    /// The scalar to differentiate under `weighting`: [`total`](Self::total), or the mean of the
    /// per-step log-losses (a floor of 1e-12 keeps a perfect step finite).
    pub fn objective(&self, weighting: StepWeighting) -> Tensor<1> {
        match weighting {
            StepWeighting::Mean => self.total.clone(),
            StepWeighting::Balanced => {
                let k = self.per_step.len().max(1) as f32;
                (Tensor::cat(self.per_step.clone(), 0).clamp_min(1e-12).log()).sum() / k
            }
        }
    }
}

/// Runs k steps over `schedule`, detaching the state between steps, and scores each step's
/// states on the queries (paper eq. 9, §11.2).
///
/// Causal attention trains every context size in one pass (task-level state: every prefix's
/// state is scored; implicit: each query reads a random prefix, drawn from `rng`). Full
/// attention draws one context size per call and truncates every mini-batch to it (§11.4).
/// Because each step's input state is detached, summing the step losses and calling `backward`
/// once yields exactly the gradients that k separate backward passes would accumulate.
pub fn greedy_loss<R: Rng + ?Sized>(
    model: &Amortizer,
    batch: &TaskBatch,
    schedule: &[Vec<usize>],
    rng: &mut R,
    device: &Device,
) -> GreedyLoss {
    greedy_loss_with(model, batch, schedule, rng, device, 0.0)
}

/// [`greedy_loss`], where (implicit regime, causal attention) each query at each step reads the
/// whole mini-batch with probability `full_share` and otherwise a uniform random prefix of it.
/// Inference reads whole mini-batches; with `full_share` 0 (the paper's draw) a query reads all
/// b points at a step only once in b, and its error then, the smallest, weighs least in the
/// mean. `full_share` 0 draws exactly what [`greedy_loss`] draws.
pub fn greedy_loss_with<R: Rng + ?Sized>(
    model: &Amortizer,
    batch: &TaskBatch,
    schedule: &[Vec<usize>],
    rng: &mut R,
    device: &Device,
    full_share: f64,
) -> GreedyLoss {
    let cfg = model.config();
    let full_size = match cfg.attention {
        Attention::Full => {
            let b = schedule.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
            Some(rng.random_range(1..=b))
        }
        Attention::Causal => None,
    };
    let mut rs = RefineState::start(model, batch);
    let mut per_step = Vec::with_capacity(schedule.len());
    for indices in schedule {
        let indices = match full_size {
            Some(n) => &indices[..n.min(indices.len())],
            None => &indices[..],
        };
        if indices.is_empty() {
            continue;
        }
        // Each query reads a random prefix of the mini-batch (Fig. 6), or all of it with
        // probability `full_share`; the states carried at the context points (implicit with
        // gradients) read all of it, as they do at inference.
        let prefixes: Option<Vec<usize>> =
            (!cfg.regime.has_task_state() && cfg.attention == Attention::Causal).then(|| {
                let rows = rs.state.dims()[1];
                let q = batch.query_len();
                (0..batch.len() * rows)
                    .map(|r| {
                        if r % rows >= q || (full_share > 0.0 && rng.random::<f64>() < full_share) {
                            indices.len()
                        } else {
                            rng.random_range(1..=indices.len())
                        }
                    })
                    .collect()
            });
        let out = step(model, &rs, batch, indices, prefixes.as_deref(), device);
        per_step.push(query_loss(
            cfg.task.loss,
            out.predictions,
            batch.query_target.clone(),
        ));
        // Greedy: the next step starts from this step's state, cut from the graph.
        rs.push(out.next.detach(), out.mean_grad);
    }
    let k = per_step.len().max(1) as f32;
    let total = Tensor::cat(per_step.clone(), 0).sum() / k;
    GreedyLoss { total, per_step }
}

/// Inference: the carried state before any step and after each step of `schedule`, `k + 1`
/// tensors (`[B, 1, S]` or `[B, q, S]`), all detached.
pub fn refine(
    model: &Amortizer,
    batch: &TaskBatch,
    schedule: &[Vec<usize>],
    device: &Device,
) -> Vec<Tensor<3>> {
    let mut rs = RefineState::start(model, batch);
    let mut states = vec![rs.state.clone()];
    for indices in schedule {
        rs.advance(model, batch, indices, device);
        states.push(rs.state.clone());
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_weightings_score_the_steps() {
        let device = Device::flex();
        let one = |v: f32| Tensor::<1>::from_floats([v], &device);
        let loss = GreedyLoss {
            total: one(2.25),
            per_step: vec![one(4.0), one(0.5)],
        };
        let value = |w| loss.objective(w).into_scalar::<f32>();
        assert_eq!(value(StepWeighting::Mean), 2.25);
        let balanced = (4.0f32.ln() + 0.5f32.ln()) / 2.0;
        assert!((value(StepWeighting::Balanced) - balanced).abs() < 1e-6);
        assert_eq!("balanced".parse(), Ok(StepWeighting::Balanced));
        assert_eq!(StepWeighting::Mean.to_string(), "mean");
        assert!("log"
            .parse::<StepWeighting>()
            .unwrap_err()
            .contains("mean or balanced"));
    }
}
