//! The amortizer's architecture ([`AmortizerConfig`]): regime, signal, attention, history, the
//! transformer's size and each regime's options, checked, and the model it initialises.

use burn::module::Param;
use burn::nn::transformer::TransformerEncoderConfig;
use burn::nn::{LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::regime::explicit::{LatentReadout, PredictorConfig};
use crate::regime::implicit::StateForm;
use crate::regime::{parametric, Regime};
use crate::signal::Signal;
use crate::task::{LossKind, TaskDims};

use super::mask::Attention;
use super::Amortizer;

fn is_concat(r: &LatentReadout) -> bool {
    *r == LatentReadout::Concat
}

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
