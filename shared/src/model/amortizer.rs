//! h_φ ([`Amortizer`]): the token encoders, the pre-norm transformer and the state decoder; its
//! initial state, predictions and one refinement step of either kind of state.

use burn::module::{Module, Param};
use burn::nn::transformer::TransformerEncoder;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

use crate::regime::explicit::Predictor;
use crate::regime::implicit::{self, StateForm};
use crate::regime::{parametric, Regime};

use super::encoder;
use super::gelu::gelu;
use super::mask::{self, Attention};
use super::AmortizerConfig;

/// h_φ, with the learned initial state, and (explicit regime) the learned predictor f_γ.
#[derive(Module, Debug)]
pub struct Amortizer {
    pub(super) obs_in: Option<Linear>,
    pub(super) obs_out: Option<Linear>,
    pub(super) grad_in: Option<Linear>,
    pub(super) grad_out: Option<Linear>,
    pub(super) state_in: Option<Linear>,
    pub(super) state_out: Option<Linear>,
    pub(super) query_in: Option<Linear>,
    pub(super) query_out: Option<Linear>,
    pub(super) history_age: Option<Param<Tensor<2>>>,
    pub(super) encoder: TransformerEncoder,
    pub(super) norm: LayerNorm,
    pub(super) head: Linear,
    /// The learned initial state: θ(0), z(0), or the implicit initial prediction (or hidden).
    pub(super) initial_state: Param<Tensor<1>>,
    pub(super) predictor: Option<Predictor>,
    #[module(skip)]
    pub(super) config: AmortizerConfig,
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

    pub(super) fn encode(
        &self,
        pair: (&Option<Linear>, &Option<Linear>),
        x: Tensor<3>,
    ) -> Tensor<3> {
        let (a, b) = (
            pair.0
                .as_ref()
                .expect("encoder present for this configuration"),
            pair.1
                .as_ref()
                .expect("encoder present for this configuration"),
        );
        b.forward(gelu(a.forward(x)))
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

    /// One token per observation: its encoding, its own gradient's (per-point signals), or
    /// their sum; `None` when the signal reads neither (the paper's gradient token alone).
    pub(super) fn observation_tokens(&self, input: &StepInput) -> Option<Tensor<3>> {
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

    pub(super) fn run(&self, tokens: Tensor<3>, mask: Tensor<3, burn::tensor::Bool>) -> Tensor<3> {
        let h = encoder::forward(&self.encoder, tokens, None, Some(mask));
        self.norm.forward(h)
    }
}
