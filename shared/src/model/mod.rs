//! The amortizer h_φ: token encoders, a pre-norm transformer and the state decoder, for every
//! regime and signal.
//!
//! Tokens (paper §11.1): each observation (x, y) through an observation encoder, each gradient
//! through a gradient encoder, the task-level state (parametric θ, explicit z) through a state
//! encoder; in the implicit regime each query with its carried state through a query encoder.
//! Optional history (Fig. 3): the previous states as extra tokens (task-level state) or as extra
//! inputs of each query token (implicit).
//!
//! The paper's implicit models read observations only: they have no task parameters to
//! differentiate. Here an implicit model may also read gradients, with respect to its own
//! predictions: it then carries a state at every context point as well, and a gradient token
//! holds a point's input with ∇ ℓ(prediction there, y), its residual for a squared error. This
//! gives the update what an optimiser reads, how wrong the current solution is on the batch,
//! which observations alone cannot tell a query that sees only its own state.

pub mod mask;
pub mod order;

use burn::module::{Module, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Gelu, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::regime::explicit::{LatentReadout, Predictor, PredictorConfig};
use crate::regime::implicit::{self, StateForm};
use crate::regime::{parametric, Regime};
use crate::signal::Signal;
use crate::task::{LossKind, TaskDims};

fn is_concat(r: &LatentReadout) -> bool {
    *r == LatentReadout::Concat
}

/// Queries per chunk when a step has many queries (see `Amortizer::attend_queries`).
const QUERY_CHUNK: usize = 32;
use mask::Attention;

/// Architecture of the amortizer. An exported model is this config plus its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmortizerConfig {
    /// What the state is.
    pub regime: Regime,
    /// What a mini-batch becomes.
    pub signal: Signal,
    /// Causal (every context size per pass) or full attention (one size per iteration).
    pub attention: Attention,
    /// Previous states read beside the current one (0: Markovian, like SGD).
    pub history: usize,
    /// Implicit regime: the form of the carried per-query state.
    pub state_form: StateForm,
    /// The task's shapes.
    pub task: TaskDims,
    /// Explicit regime: size of the latent z. Default 32.
    pub latent_dim: usize,
    /// Explicit regime: hidden width of the learned predictor. Default 64.
    pub predictor_hidden: usize,
    /// Explicit regime: hidden layers of the learned predictor. Default 2.
    pub predictor_layers: usize,
    /// Explicit regime: how the predictor reads the latent (default: the paper's concatenation).
    #[serde(skip_serializing_if = "is_concat")]
    pub latent_readout: LatentReadout,
    /// Transformer width. Default 64.
    pub d_model: usize,
    /// Attention heads. Default 4.
    pub n_heads: usize,
    /// Transformer layers. Default 3.
    pub n_layers: usize,
    /// Feed-forward width. Default 256.
    pub d_ff: usize,
}

impl Default for AmortizerConfig {
    fn default() -> Self {
        Self {
            regime: Regime::Parametric,
            signal: Signal::Observations,
            attention: Attention::Causal,
            history: 0,
            state_form: StateForm::Logits,
            task: TaskDims {
                obs_dim: 0,
                input_dim: 0,
                output_dim: 0,
                loss: LossKind::Mse,
            },
            latent_dim: 32,
            predictor_hidden: 64,
            predictor_layers: 2,
            latent_readout: LatentReadout::Concat,
            d_model: 64,
            n_heads: 4,
            n_layers: 3,
            d_ff: 256,
        }
    }
}

impl AmortizerConfig {
    /// The default architecture for a task, regime and signal.
    pub fn new(task: TaskDims, regime: Regime, signal: Signal) -> Self {
        Self {
            task,
            regime,
            signal,
            ..Self::default()
        }
    }

    /// The size of the state h_φ refines: θ (parametric), z (explicit), or per query the
    /// prediction or the hidden vector (implicit).
    pub fn state_dim(&self) -> usize {
        match self.regime {
            Regime::Parametric => parametric::state_dim(&self.task),
            Regime::Explicit => self.latent_dim,
            Regime::Implicit => match self.state_form {
                StateForm::PreMlp => self.d_model,
                _ => self.task.output_dim,
            },
        }
    }

    /// Whether the model also carries a state at every context point (implicit regime with a
    /// gradient signal): the gradient it reads for an observation is the loss gradient with
    /// respect to the prediction at that point, which needs the current prediction there.
    pub fn carries_context(&self) -> bool {
        self.regime == Regime::Implicit && self.signal.uses_gradients()
    }

    /// Size of one gradient token's input: ∇_state ℓ per observation `[S]` for a task-level
    /// state; for per-query states the point's input with ∇_prediction ℓ there, `[in + out]`.
    pub fn gradient_dim(&self) -> usize {
        if self.regime.has_task_state() {
            self.state_dim()
        } else {
            self.task.input_dim + self.task.output_dim
        }
    }

    /// Checks what a user may set in a config file, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("task.obs_dim", self.task.obs_dim),
            ("task.input_dim", self.task.input_dim),
            ("task.output_dim", self.task.output_dim),
            ("latent_dim", self.latent_dim),
            ("predictor_hidden", self.predictor_hidden),
            ("predictor_layers", self.predictor_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
            ("d_ff", self.d_ff),
        ];
        for (name, v) in fields {
            if v == 0 || v > 4096 {
                return Err(format!("model.{name} must be in 1..=4096, got {v}"));
            }
        }
        if self.state_dim() > 1 << 16 {
            return Err(format!(
                "the state has {} values; at most 65536",
                self.state_dim()
            ));
        }
        if self.history > 16 {
            return Err(format!(
                "model.history must be in 0..=16, got {}",
                self.history
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!(
                "model.d_model ({}) must be a multiple of model.n_heads ({})",
                self.d_model, self.n_heads
            ));
        }
        if self.regime == Regime::Implicit && self.signal.gradient_token() {
            return Err(format!(
                "the implicit regime has no task parameters to take the mini-batch gradient of (paper §11.1), so it cannot read --signal {}; its own extension reads per-point gradients with respect to its predictions: --signal point-gradients or both-point-gradients",
                self.signal
            ));
        }
        if self.regime != Regime::Explicit && self.latent_readout != LatentReadout::Concat {
            return Err("model.latent_readout applies to the explicit regime only".into());
        }
        if self.regime != Regime::Implicit && self.state_form != StateForm::Logits {
            return Err("model.state_form applies to the implicit regime only".into());
        }
        if self.state_form == StateForm::Softmax && self.task.loss != LossKind::CrossEntropy {
            return Err("model.state_form = softmax needs a classification task".into());
        }
        Ok(())
    }

    /// Builds the module on `device` with freshly initialised weights. Call
    /// [`validate`](Self::validate) first on anything a user wrote.
    pub fn init(&self, device: &Device) -> Amortizer {
        let d = self.d_model;
        let s = self.state_dim();
        let task_state = self.regime.has_task_state();
        let mlp = |input: usize| {
            (
                LinearConfig::new(input, d).init(device),
                LinearConfig::new(d, d).init(device),
            )
        };
        let split = |p: Option<(Linear, Linear)>| match p {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (obs_in, obs_out) = split(
            self.signal
                .uses_observations()
                .then(|| mlp(self.task.obs_dim)),
        );
        let (grad_in, grad_out) = split(
            self.signal
                .uses_gradients()
                .then(|| mlp(self.gradient_dim())),
        );
        let (state_in, state_out) = split(task_state.then(|| mlp(s)));
        let query_input = self.task.input_dim + s * (1 + self.history);
        let (query_in, query_out) = split((!task_state).then(|| mlp(query_input)));
        let head_out = if task_state { s } else { self.task.output_dim };
        let initial = match (self.regime, self.state_form) {
            // θ(0) and z(0) start at zero (for regression θ = 0 is the prior mean); training
            // moves them. The implicit initial prediction starts at zero logits / values.
            (Regime::Implicit, StateForm::PreMlp) => Tensor::zeros([d], device),
            _ => Tensor::zeros([s], device),
        };
        Amortizer {
            obs_in,
            obs_out,
            grad_in,
            grad_out,
            state_in,
            state_out,
            query_in,
            query_out,
            history_age: (task_state && self.history > 0).then(|| {
                Param::from_tensor(Tensor::random(
                    [self.history, d],
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    device,
                ))
            }),
            activation: Gelu::new(),
            encoder: TransformerEncoderConfig::new(d, self.d_ff, self.n_heads, self.n_layers)
                .with_norm_first(true)
                .with_dropout(0.0)
                .init(device),
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, head_out).init(device),
            initial_state: Param::from_tensor(initial),
            predictor: (self.regime == Regime::Explicit).then(|| {
                PredictorConfig::new(
                    self.task.input_dim,
                    self.latent_dim,
                    self.task.output_dim,
                    self.predictor_hidden,
                    self.predictor_layers,
                )
                .with_readout(self.latent_readout)
                .init(device)
            }),
            config: self.clone(),
        }
    }
}

/// h_φ, with the learned initial state, and (explicit regime) the learned predictor f_γ.
#[derive(Module, Debug)]
pub struct Amortizer {
    obs_in: Option<Linear>,
    obs_out: Option<Linear>,
    grad_in: Option<Linear>,
    grad_out: Option<Linear>,
    state_in: Option<Linear>,
    state_out: Option<Linear>,
    query_in: Option<Linear>,
    query_out: Option<Linear>,
    history_age: Option<Param<Tensor<2>>>,
    activation: Gelu,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    head: Linear,
    /// The learned initial state: θ(0), z(0), or the implicit initial prediction (or hidden).
    initial_state: Param<Tensor<1>>,
    predictor: Option<Predictor>,
    #[module(skip)]
    config: AmortizerConfig,
}

/// The inputs of one refinement step, all for the same mini-batch of m observations.
pub struct StepInput {
    /// Observation token inputs `[B, m, obs_dim]` (when the signal reads observations).
    pub obs: Option<Tensor<3>>,
    /// Preprocessed per-observation gradients `[B, m, S]` (per-point gradient signals); per
    /// query states: the point's input beside ∇_prediction ℓ, `[B, m, in + out]`.
    pub grads: Option<Tensor<3>>,
    /// The paper's gradient tokens, preprocessed: the mini-batch loss's gradient for every
    /// causal prefix `[B, m, S]`, or for the whole mini-batch `[B, 1, S]` under full attention
    /// (task-level states with the `gradients` or `both` signal).
    pub grad_tokens: Option<Tensor<3>>,
    /// Previous states, most recent first (exactly `history` of them): `[B, 1, S]` for a
    /// task-level state, `[B, q, S]` per query.
    pub history: Vec<Tensor<3>>,
    /// Mean preprocessed gradient at each previous state `[B, 1, S]` (gradient signals).
    pub history_grads: Vec<Tensor<3>>,
}

impl Amortizer {
    /// The architecture.
    pub fn config(&self) -> &AmortizerConfig {
        &self.config
    }

    fn encode(&self, pair: (&Option<Linear>, &Option<Linear>), x: Tensor<3>) -> Tensor<3> {
        let (a, b) = (
            pair.0
                .as_ref()
                .expect("encoder present for this configuration"),
            pair.1
                .as_ref()
                .expect("encoder present for this configuration"),
        );
        b.forward(self.activation.forward(a.forward(x)))
    }

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

    /// The initial carried state: `[B, 1, S]` for a task-level state, `[B, q, S]` per query.
    pub fn initial(&self, batch: usize, queries: usize) -> Tensor<3> {
        let s = self.initial_state.val();
        let dim = s.dims()[0];
        let rows = if self.config.regime.has_task_state() {
            1
        } else {
            queries
        };
        let s = s.reshape([1, 1, dim]).expand([batch, rows, dim]);
        if self.config.regime == Regime::Implicit {
            implicit::state_of(s, self.config.state_form)
        } else {
            s
        }
    }

    /// Parametric θ(0) or explicit z(0) for `batch` tasks, `[B, S]`.
    pub fn initial_state(&self, batch: usize) -> Tensor<2> {
        let s = self.initial(batch, 1);
        let [b, _, d] = s.dims();
        s.reshape([b, d])
    }

    /// Task-level states on queries: `states` `[B, M, S]`, `inputs` `[B, q, in]` →
    /// `[B, M, q, out]`.
    pub fn predict(&self, states: Tensor<3>, inputs: Tensor<3>) -> Tensor<4> {
        match &self.predictor {
            Some(p) => p.predict(states, inputs),
            None => parametric::predict(states, inputs, &self.config.task),
        }
    }

    /// The prediction each per-query state encodes (implicit regime): `[B, q, S]` →
    /// `[B, q, out]`.
    pub fn decode_queries(&self, states: Tensor<3>) -> Tensor<3> {
        match self.config.state_form {
            StateForm::PreMlp => self.head.forward(states),
            form => implicit::logits_of(states, form),
        }
    }

    /// Per-observation gradients of the predictor's loss at `state` `[B, 1, S]`:
    /// `[B, m, S]`, raw. The predictor's weights are constants here.
    pub fn point_gradients(
        &self,
        state: Tensor<3>,
        inputs: Tensor<3>,
        targets: Tensor<3>,
    ) -> Tensor<3> {
        let [b, _, s] = state.dims();
        let state = state.reshape([b, s]);
        let loss = self.config.task.loss;
        match &self.predictor {
            Some(p) => {
                let fixed = p.valid();
                crate::signal::point_gradients(state, inputs, targets, loss, |z, u| {
                    fixed.predict_paired(z, u)
                })
            }
            None => {
                let dims = self.config.task;
                crate::signal::point_gradients(state, inputs, targets, loss, |w, u| {
                    parametric::predict_paired(w, u, &dims)
                })
            }
        }
    }

    /// One refinement step of a task-level state (parametric, explicit).
    ///
    /// `state` `[B, 1, S]` → with causal attention the refined state after every prefix of the
    /// mini-batch, `[B, m, S]` (row j saw observations 1..=j only); with full attention the
    /// state after the whole mini-batch, `[B, 1, S]`. The update is residual, θ' = θ + Δ, like
    /// an optimiser's step.
    pub fn step_task(&self, state: Tensor<3>, input: StepInput) -> Tensor<3> {
        let [batch, _, s] = state.dims();
        let device = state.device();
        let mut prefix = vec![self.encode((&self.state_in, &self.state_out), state.clone())];
        if let Some(age) = &self.history_age {
            let age = age.val();
            let d = age.dims()[1];
            for (i, past) in input.history.iter().enumerate() {
                let mut tok = self.encode((&self.state_in, &self.state_out), past.clone())
                    + age.clone().slice([i..i + 1, 0..d]).reshape([1, 1, d]);
                if let Some(g) = input.history_grads.get(i) {
                    tok = tok + self.encode((&self.grad_in, &self.grad_out), g.clone());
                }
                prefix.push(tok);
            }
        }
        let p = prefix.len();
        let obs = self.observation_tokens(&input);
        let gradient = input
            .grad_tokens
            .map(|g| self.encode((&self.grad_in, &self.grad_out), g));
        let m_obs = obs.as_ref().map_or(0, |o| o.dims()[1]);
        let m_grad = gradient.as_ref().map_or(0, |g| g.dims()[1]);
        assert!(
            m_obs + m_grad > 0,
            "a step needs observation or gradient tokens"
        );
        let tokens = Tensor::cat(prefix.into_iter().chain(obs).chain(gradient).collect(), 1);
        let t = p + m_obs + m_grad;
        let attention = self.config.attention;
        let mask = if m_grad > 0 {
            mask::gradient_token_mask(p, m_obs, m_grad, attention)
        } else {
            mask::task_state_mask(p, m_obs, attention)
        };
        let h = self.run(tokens, mask::shared_mask(mask, batch, t, &device));
        let d = h.dims()[2];
        // Causal: the state after prefix j is read at the token that closes it, the j-th
        // gradient token when there are any, else the j-th observation.
        let read = match attention {
            Attention::Causal => h.slice([0..batch, t - m_grad.max(m_obs)..t, 0..d]),
            Attention::Full => h.slice([0..batch, 0..1, 0..d]),
        };
        let delta = self.head.forward(read);
        let rows = delta.dims()[1];
        state.expand([batch, rows, s]) + delta
    }

    /// One refinement step of per-query states (implicit).
    ///
    /// `state` `[B, q, S]`, `query_inputs` `[B, q, in]`; query i of task b reads the first
    /// `prefixes[b·q + i]` observations of the mini-batch (all of them at inference; a random
    /// prefix in training, Fig. 6). Returns the predictions `[B, q, out]` and the next carried
    /// states `[B, q, S]`.
    pub fn step_queries(
        &self,
        state: Tensor<3>,
        query_inputs: Tensor<3>,
        input: StepInput,
        prefixes: &[usize],
    ) -> (Tensor<3>, Tensor<3>) {
        let mut parts = vec![query_inputs, state.clone()];
        parts.extend(input.history.iter().cloned());
        let queries = self.encode((&self.query_in, &self.query_out), Tensor::cat(parts, 2));
        let obs = self
            .observation_tokens(&input)
            .expect("an implicit step reads observation or per-point gradient tokens");
        let hq = self.attend_queries(obs, queries, prefixes);
        match self.config.state_form {
            StateForm::PreMlp => (self.head.forward(hq.clone()), hq),
            form => {
                let logits = implicit::logits_of(state, form) + self.head.forward(hq);
                (logits.clone(), implicit::state_of(logits, form))
            }
        }
    }

    /// Runs the transformer over `[o_1..o_m, q_1..q_Q]` per task and returns the query rows
    /// `[B, Q, d]`. A query attends only to its prefix of the observations and to itself, so
    /// queries are independent of each other. Computed directly
    /// ([`attend_direct`](Self::attend_direct)); the masked encoder
    /// ([`attend_masked`](Self::attend_masked)) is the fallback for layers the direct path does
    /// not reproduce.
    fn attend_queries(&self, obs: Tensor<3>, queries: Tensor<3>, prefixes: &[usize]) -> Tensor<3> {
        if obs.dims()[1] > 0 && self.plain_attention() {
            return self.attend_direct(obs, queries, prefixes);
        }
        self.attend_masked(obs, queries, prefixes)
    }

    /// [`attend_queries`](Self::attend_queries) through the encoder under the `(m + Q)²` mask.
    /// When there are many queries (a flow's samples), they are cut into chunks of
    /// `QUERY_CHUNK`, each run beside its own copy of the observations as a task of the batch:
    /// the attention cost falls from (m + Q)² to (m + c)² per chunk.
    fn attend_masked(&self, obs: Tensor<3>, queries: Tensor<3>, prefixes: &[usize]) -> Tensor<3> {
        let [batch, q, d] = queries.dims();
        let m = obs.dims()[1];
        let device = queries.device();
        let c = QUERY_CHUNK;
        if q <= 2 * c {
            let t = m + q;
            let tokens = Tensor::cat(vec![obs, queries], 1);
            let mask = mask::batch_mask(
                mask::query_mask(m, q, prefixes, self.config.attention),
                batch,
                t,
                &device,
            );
            let h = self.run(tokens, mask);
            return h.slice([0..batch, m..t, 0..d]);
        }
        let chunks = q.div_ceil(c);
        let padded = chunks * c;
        let (queries, prefixes) = if padded > q {
            let pad = Tensor::zeros([batch, padded - q, d], &device);
            let mut p = Vec::with_capacity(batch * padded);
            for task in 0..batch {
                p.extend_from_slice(&prefixes[task * q..(task + 1) * q]);
                p.extend(std::iter::repeat_n(m.max(1), padded - q));
            }
            (Tensor::cat(vec![queries, pad], 1), p)
        } else {
            (queries, prefixes.to_vec())
        };
        let rows = batch * chunks;
        let queries = queries.reshape([rows, c, d]);
        let obs = obs
            .unsqueeze_dim::<4>(1)
            .expand([batch, chunks, m, d])
            .reshape([rows, m, d]);
        let t = m + c;
        let tokens = Tensor::cat(vec![obs, queries], 1);
        let mask = mask::batch_mask(
            mask::query_mask(m, c, &prefixes, self.config.attention),
            rows,
            t,
            &device,
        );
        let h = self.run(tokens, mask);
        h.slice([0..rows, m..t, 0..d])
            .reshape([batch, padded, d])
            .slice([0..batch, 0..q, 0..d])
    }

    /// Whether every layer is the plain pre-norm one `attend_direct` reproduces (always, for a
    /// model built by [`AmortizerConfig::init`]; a guard against Burn's other options).
    fn plain_attention(&self) -> bool {
        self.encoder
            .layers
            .iter()
            .all(|l| l.norm_first && !l.mha.quiet_softmax)
    }

    /// [`attend_queries`](Self::attend_queries) computed directly: the same transformer, without
    /// the `(m + Q)²` mask. The observations run through the layers once per task; each query
    /// attends to the keys of its prefix of them and to its own, `m + 1` scores (the prefix
    /// masks the others, `[B, Q, m]`, only when some query reads less than all m), and no copy
    /// of the observations is made per chunk of queries.
    fn attend_direct(&self, obs: Tensor<3>, queries: Tensor<3>, prefixes: &[usize]) -> Tensor<3> {
        let [batch, q, d] = queries.dims();
        let m = obs.dims()[1];
        let device = queries.device();
        let prefix_mask = prefixes.iter().any(|&p| p < m).then(|| {
            let hidden: Vec<bool> = prefixes
                .iter()
                .flat_map(|&p| (0..m).map(move |col| col >= p))
                .collect();
            Tensor::<3, burn::tensor::Bool>::from_data(
                burn::tensor::TensorData::new(hidden, [batch, q, m]),
                &device,
            )
            .unsqueeze_dim::<4>(1)
        });
        let heads = |t: Tensor<3>, h: usize| {
            let [b, n, _] = t.dims();
            t.reshape([b, n, h, d / h]).swap_dims(1, 2)
        };
        let merge = |t: Tensor<4>| {
            let [b, _, n, _] = t.dims();
            t.swap_dims(1, 2).reshape([b, n, d])
        };
        let obs_mask = (self.config.attention == Attention::Causal).then(|| {
            mask::shared_mask(
                mask::task_state_mask(0, m, Attention::Causal),
                batch,
                m,
                &device,
            )
            .unsqueeze_dim::<4>(1)
        });
        let (mut ho, mut hq) = (obs, queries);
        let last = self.encoder.layers.len().saturating_sub(1);
        for (i, layer) in self.encoder.layers.iter().enumerate() {
            let mha = &layer.mha;
            let (h, scale) = (mha.n_heads, 1.0 / (mha.d_k as f32).sqrt());
            let feed_forward =
                |x: Tensor<3>| x.clone() + layer.pwff.forward(layer.norm_1.forward(x));
            let xo = layer.norm_2.forward(ho.clone());
            let xq = layer.norm_2.forward(hq.clone());
            let ko = heads(mha.key.forward(xo.clone()), h);
            let vo = heads(mha.value.forward(xo.clone()), h);
            let qq = heads(mha.query.forward(xq.clone()), h);
            let kq = heads(mha.key.forward(xq.clone()), h);
            let vq = heads(mha.value.forward(xq), h);
            // Each query: softmax over [its m observation scores, its own score].
            let mut to_obs = qq.clone().matmul(ko.clone().transpose()) * scale;
            if let Some(mask) = &prefix_mask {
                to_obs = to_obs.mask_fill(mask.clone(), mha.min_float);
            }
            let to_self = (qq * kq).sum_dim(3) * scale;
            let weights =
                burn::tensor::activation::softmax(Tensor::cat(vec![to_obs, to_self], 3), 3);
            let [b, nh, nq, _] = weights.dims();
            let w_obs = weights.clone().slice([0..b, 0..nh, 0..nq, 0..m]);
            let w_self = weights.slice([0..b, 0..nh, 0..nq, m..m + 1]);
            let context = w_obs.matmul(vo.clone()) + vq * w_self;
            hq = feed_forward(hq + mha.output.forward(merge(context)));
            // The observations' own pass (they never read queries); the last layer's output
            // at the observations is never read.
            if i < last {
                let qo = heads(mha.query.forward(xo), h);
                let mut scores = qo.matmul(ko.transpose()) * scale;
                if let Some(mask) = &obs_mask {
                    scores = scores.mask_fill(mask.clone(), mha.min_float);
                }
                let weights = burn::tensor::activation::softmax(scores, 3);
                ho = feed_forward(ho + mha.output.forward(merge(weights.matmul(vo))));
            }
        }
        self.norm.forward(hq)
    }

    /// One token per observation: its encoding, its own gradient's (per-point signals), or
    /// their sum; `None` when the signal reads neither (the paper's gradient token alone).
    fn observation_tokens(&self, input: &StepInput) -> Option<Tensor<3>> {
        let obs = input
            .obs
            .as_ref()
            .map(|o| self.encode((&self.obs_in, &self.obs_out), o.clone()));
        let grads = input
            .grads
            .as_ref()
            .map(|g| self.encode((&self.grad_in, &self.grad_out), g.clone()));
        match (obs, grads) {
            (Some(o), Some(g)) => Some(o + g),
            (o, g) => o.or(g),
        }
    }

    fn run(&self, tokens: Tensor<3>, mask: Tensor<3, burn::tensor::Bool>) -> Tensor<3> {
        let h = self
            .encoder
            .forward(TransformerEncoderInput::new(tokens).mask_attn(mask));
        self.norm.forward(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small implicit model (d_model 16) of `n_layers` layers.
    fn small(n_layers: usize, attention: Attention) -> AmortizerConfig {
        let dims = TaskDims {
            obs_dim: 2,
            input_dim: 3,
            output_dim: 2,
            loss: LossKind::Mse,
        };
        AmortizerConfig {
            attention,
            n_layers,
            d_ff: 32,
            d_model: 16,
            ..AmortizerConfig::new(dims, Regime::Implicit, Signal::Observations)
        }
    }

    /// A deepened model has the extra layers and computes what the original computes, on both
    /// attention paths; its extra layers are not inert: their projections are at zero, not
    /// missing, and the other weights are drawn.
    #[test]
    fn deepening_preserves_the_function() {
        let device = Device::flex();
        device.seed(5);
        let model = small(2, Attention::Causal).init(&device);
        let dist = burn::tensor::Distribution::Normal(0.0, 1.0);
        let obs = Tensor::<3>::random([2, 5, 16], dist, &device);
        let queries = Tensor::<3>::random([2, 4, 16], dist, &device);
        let prefixes: Vec<usize> = (0..8).map(|i| 1 + i % 5).collect();
        let before = model.attend_direct(obs.clone(), queries.clone(), &prefixes);
        let deeper = model.deepen(2, &device);
        assert_eq!(deeper.config().n_layers, 4);
        assert_eq!(deeper.encoder.layers.len(), 4);
        for path in [
            deeper.attend_direct(obs.clone(), queries.clone(), &prefixes),
            deeper.attend_masked(obs.clone(), queries.clone(), &prefixes),
        ] {
            let gap = (path - before.clone()).abs().max().into_scalar::<f32>();
            assert!(gap < 1e-5, "the deepened model differs by {gap}");
        }
        let added = &deeper.encoder.layers[3];
        let peak = |w: &Param<Tensor<2>>| w.val().abs().max().into_scalar::<f32>();
        assert_eq!(peak(&added.mha.output.weight), 0.0);
        assert_eq!(peak(&added.pwff.linear_outer.weight), 0.0);
        assert!(peak(&added.pwff.linear_inner.weight) > 0.0);
        // The record round-trips through the config's architecture, as a saved file does.
        let record = deeper.clone().into_record();
        let loaded = deeper.config().init(&device).load_record(record);
        let again = loaded.attend_direct(obs, queries, &prefixes);
        let gap = (again - before).abs().max().into_scalar::<f32>();
        assert!(gap < 1e-5, "the reloaded deepened model differs by {gap}");
    }

    /// The direct path computes what the masked encoder computes, with and without chunking of
    /// many queries, under causal and full attention, for whole mini-batches (inference) and
    /// random prefixes (training).
    #[test]
    fn direct_attention_matches_the_masked_encoder() {
        let device = Device::flex();
        device.seed(11);
        for attention in [Attention::Causal, Attention::Full] {
            let model = small(3, attention).init(&device);
            for q in [7, 70] {
                let dist = burn::tensor::Distribution::Normal(0.0, 1.0);
                let obs = Tensor::<3>::random([2, 5, 16], dist, &device);
                let queries = Tensor::<3>::random([2, q, 16], dist, &device);
                let drawn: Vec<usize> = (0..2 * q).map(|i| 1 + (i * 7 + i / 3) % 5).collect();
                for prefixes in [vec![5; 2 * q], drawn] {
                    let direct = model.attend_direct(obs.clone(), queries.clone(), &prefixes);
                    let masked = model.attend_masked(obs.clone(), queries.clone(), &prefixes);
                    assert_eq!(direct.dims(), [2, q, 16]);
                    let gap = (direct - masked).abs().max().into_scalar::<f32>();
                    assert!(gap < 1e-4, "{attention:?}, {q} queries: differs by {gap}");
                }
            }
        }
    }
}
