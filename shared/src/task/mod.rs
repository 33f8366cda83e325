//! Task samplers. A task family samples episodes; an episode becomes [`TaskData`]: the encoded
//! context observations the amortizer reads, the predictor's inputs and targets on the context
//! (for the gradient signal), and the query inputs and targets the prediction is scored on.

pub mod alphabet;
pub mod batch;
pub mod embeddings;
pub mod flow_matching;
pub mod gmm;
pub mod linear;
pub mod mnist;
pub mod regression;
pub mod schedule;
pub mod scm;

use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// One regression task's raw data, host-side and row-major.
///
/// Context points are what the amortizer reads, in mini-batches; query points are what its
/// prediction is scored on.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Dimension of one input x.
    pub x_dim: usize,
    /// Dimension of one output y.
    pub y_dim: usize,
    /// Context inputs, `[n, x_dim]`.
    pub context_x: Vec<f32>,
    /// Context outputs (noisy observations), `[n, y_dim]`.
    pub context_y: Vec<f32>,
    /// Query inputs, `[q, x_dim]`.
    pub query_x: Vec<f32>,
    /// Query targets, `[q, y_dim]`.
    pub query_y: Vec<f32>,
}

impl Episode {
    /// An episode of scalar targets (y_dim 1) from its (inputs, targets) pairs.
    pub fn scalar(
        x_dim: usize,
        (context_x, context_y): (Vec<f32>, Vec<f32>),
        (query_x, query_y): (Vec<f32>, Vec<f32>),
    ) -> Self {
        Self {
            x_dim,
            y_dim: 1,
            context_x,
            context_y,
            query_x,
            query_y,
        }
    }

    /// Number of context points.
    pub fn context_len(&self) -> usize {
        self.context_x.len() / self.x_dim
    }

    /// Number of query points.
    pub fn query_len(&self) -> usize {
        self.query_x.len() / self.x_dim
    }
}

/// How a prediction is scored (and what the gradient signal differentiates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Squared error on real-valued outputs (regression; flow matching's vector field).
    Mse,
    /// Cross-entropy of logits against one-hot targets (classification).
    CrossEntropy,
}

impl LossKind {
    /// The loss of each prediction, reduced over the last (output) dimension, which is kept with
    /// size 1: mean squared error, or cross-entropy of logits against (one-hot) targets.
    /// `pred` and `target` have the same shape.
    pub fn pointwise<const D: usize>(self, pred: Tensor<D>, target: Tensor<D>) -> Tensor<D> {
        match self {
            LossKind::Mse => (pred - target).square().mean_dim(D - 1),
            LossKind::CrossEntropy => (log_softmax(pred, D - 1) * target).sum_dim(D - 1).neg(),
        }
    }
}

/// The shapes a task family gives the amortizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDims {
    /// Size of one context observation token's input.
    pub obs_dim: usize,
    /// Size of the predictor's input u(x) (also the implicit regime's query input).
    pub input_dim: usize,
    /// Size of one prediction (1 for scalar regression, C for C classes, D for a vector field).
    pub output_dim: usize,
    /// How predictions are scored.
    pub loss: LossKind,
}

/// One task, encoded for the amortizer. Rows are row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    /// The shapes.
    pub dims: TaskDims,
    /// Context observation tokens' inputs, `[n, obs_dim]`.
    pub context_obs: Vec<f32>,
    /// The predictor's inputs on the context, `[n, input_dim]` (empty when no predictor applies).
    pub context_input: Vec<f32>,
    /// The predictor's targets on the context, `[n, output_dim]` (same).
    pub context_target: Vec<f32>,
    /// Query inputs, `[q, input_dim]`.
    pub query_input: Vec<f32>,
    /// Query targets, `[q, output_dim]`.
    pub query_target: Vec<f32>,
}

impl TaskData {
    /// Number of context observations.
    pub fn context_len(&self) -> usize {
        self.context_obs.len() / self.dims.obs_dim.max(1)
    }

    /// Number of queries.
    pub fn query_len(&self) -> usize {
        self.query_input.len() / self.dims.input_dim.max(1)
    }

    /// Whether the context carries the predictor's inputs and targets (needed for gradients).
    pub fn has_context_targets(&self) -> bool {
        let n = self.context_len();
        self.context_input.len() == n * self.dims.input_dim
            && self.context_target.len() == n * self.dims.output_dim
            && n > 0
    }

    /// Checks that every row has the length its dims say, and that every value is finite.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.dims;
        if d.obs_dim == 0 || d.input_dim == 0 || d.output_dim == 0 {
            return Err("task dimensions must be at least 1".into());
        }
        let n = self.context_len();
        let q = self.query_len();
        let checks = [
            (
                "context observations",
                self.context_obs.len(),
                n * d.obs_dim,
            ),
            ("query inputs", self.query_input.len(), q * d.input_dim),
            ("query targets", self.query_target.len(), q * d.output_dim),
        ];
        for (what, got, want) in checks {
            if got != want {
                return Err(format!("{what}: {got} values, expected {want}"));
            }
        }
        if !self.context_input.is_empty() && !self.has_context_targets() {
            return Err("context inputs/targets do not match the context size".into());
        }
        let all = [
            &self.context_obs,
            &self.context_input,
            &self.context_target,
            &self.query_input,
            &self.query_target,
        ];
        if all.iter().any(|v| v.iter().any(|x| !x.is_finite())) {
            return Err("a value is not finite (NaN or infinite)".into());
        }
        Ok(())
    }
}

/// A task family and its parameters: what a config file or a weights header names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskConfig {
    /// 1-D function regression on Legendre features.
    FunctionRegression(regression::FunctionRegressionConfig),
    /// d-dimensional linear regression.
    LinearRegression(linear::LinearRegressionConfig),
    /// MNIST / FashionMNIST classification under a random projection and relabelling.
    Projection(mnist::ProjectionConfig),
    /// Generation of Gaussian-mixture samples by flow matching (implicit regime).
    Gmm(gmm::GmmConfig),
    /// Generation of letter-shaped point clouds by flow matching (implicit regime).
    Alphabet(alphabet::AlphabetConfig),
    /// Classification over precomputed embeddings (e.g. DINOv2 features of ImageNet).
    Embeddings(embeddings::EmbeddingConfig),
}

impl TaskConfig {
    /// The family's name, as in config files.
    pub fn name(&self) -> &'static str {
        match self {
            TaskConfig::FunctionRegression(_) => "function-regression",
            TaskConfig::LinearRegression(_) => "linear-regression",
            TaskConfig::Projection(_) => "projection",
            TaskConfig::Gmm(_) => "gmm",
            TaskConfig::Alphabet(_) => "alphabet",
            TaskConfig::Embeddings(_) => "embeddings",
        }
    }

    /// The shapes the family gives the amortizer.
    pub fn dims(&self) -> TaskDims {
        match self {
            TaskConfig::FunctionRegression(c) => {
                regression::FunctionRegression::new(c.clone()).dims()
            }
            TaskConfig::LinearRegression(c) => linear::LinearRegression::new(c.clone()).dims(),
            TaskConfig::Projection(c) => c.dims(),
            TaskConfig::Gmm(c) => flow_matching::dims(c.dim),
            TaskConfig::Alphabet(_) => flow_matching::dims(2),
            TaskConfig::Embeddings(c) => c.dims(),
        }
    }

    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            TaskConfig::FunctionRegression(c) => {
                regression::FunctionRegression::new(c.clone()).validate()
            }
            TaskConfig::LinearRegression(c) => linear::LinearRegression::new(c.clone()).validate(),
            TaskConfig::Projection(c) => c.validate(),
            TaskConfig::Gmm(c) => c.validate(),
            TaskConfig::Alphabet(c) => c.validate(),
            TaskConfig::Embeddings(c) => c.validate(),
        }
    }

    /// Context points per task.
    pub fn context_len(&self) -> usize {
        match self {
            TaskConfig::FunctionRegression(c) => c.context,
            TaskConfig::LinearRegression(c) => c.context,
            TaskConfig::Projection(c) => c.context,
            TaskConfig::Gmm(c) => c.context,
            TaskConfig::Alphabet(c) => c.context,
            TaskConfig::Embeddings(c) => c.context,
        }
    }

    /// Observation noise σ of a regression family (the Bayes baseline needs it).
    pub fn noise_std(&self) -> Option<f64> {
        match self {
            TaskConfig::FunctionRegression(c) => Some(c.noise_std),
            TaskConfig::LinearRegression(c) => Some(c.noise_std),
            TaskConfig::Projection(_)
            | TaskConfig::Gmm(_)
            | TaskConfig::Alphabet(_)
            | TaskConfig::Embeddings(_) => None,
        }
    }

    /// The same family with `n` context points per task.
    pub fn with_context(&self, n: usize) -> Self {
        let mut out = self.clone();
        match &mut out {
            TaskConfig::FunctionRegression(c) => c.context = n,
            TaskConfig::LinearRegression(c) => c.context = n,
            TaskConfig::Projection(c) => c.context = n,
            TaskConfig::Gmm(c) => c.context = n,
            TaskConfig::Alphabet(c) => c.context = n,
            TaskConfig::Embeddings(c) => c.context = n,
        }
        out
    }

    /// Whether the family is generative (flow matching; implicit regime only).
    pub fn is_generative(&self) -> bool {
        matches!(self, TaskConfig::Gmm(_) | TaskConfig::Alphabet(_))
    }

    /// A generative family with `n` held-out (query) points per task; other families unchanged.
    pub fn with_generation_queries(&self, n: usize) -> Self {
        let mut out = self.clone();
        match &mut out {
            TaskConfig::Gmm(c) => c.queries = n,
            TaskConfig::Alphabet(c) => c.queries = n,
            _ => {}
        }
        out
    }

    /// A generative family's shape scale: the distance δ within which a generated sample counts
    /// as reproducing a point ([`crate::metric::precision_recall`]): 3 × the jitter around a
    /// letter's strokes (0.12 in glyph units, where a letter is 2 high: 0.06 of a unit-high
    /// letter), 2 × a mixture component's std (0.6). At these tolerances a second sample of the
    /// same letter or mixture scores near 1 against the first, and a blob over the shape's box
    /// does not.
    pub fn shape_tolerance(&self) -> Option<f64> {
        match self {
            TaskConfig::Gmm(c) => Some(2.0 * c.component_std),
            TaskConfig::Alphabet(c) => Some(3.0 * c.jitter),
            _ => None,
        }
    }

    /// The widening σ of a generative family's optimal answer (the exact field of the context's
    /// empirical distribution): the σ it trains on with the empirical target, else a third of
    /// [`shape_tolerance`](Self::shape_tolerance) (the letters' jitter, two thirds of a mixture
    /// component's std). None for other families.
    pub fn optimal_sigma(&self) -> Option<f64> {
        match self.flow_target()? {
            flow_matching::FlowTarget::Empirical { sigma } => Some(sigma),
            flow_matching::FlowTarget::Sample => Some(self.shape_tolerance()? / 3.0),
        }
    }

    /// A generative family's training target (None for other families).
    pub fn flow_target(&self) -> Option<flow_matching::FlowTarget> {
        match self {
            TaskConfig::Gmm(c) => Some(c.field),
            TaskConfig::Alphabet(c) => Some(c.field),
            _ => None,
        }
    }

    /// Whether the family draws from a dataset the caller must load.
    pub fn needs_images(&self) -> Option<mnist::ImageSet> {
        match self {
            TaskConfig::Projection(c) => Some(c.dataset),
            _ => None,
        }
    }
}

/// A task family ready to draw tasks: its config and the data it samples from, if any.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// The family.
    pub config: TaskConfig,
    images: Option<mnist::ImageData>,
    embeddings: Option<embeddings::EmbeddingData>,
}

impl Sampler {
    /// A sampler of a synthetic family; a family that reads a dataset needs
    /// [`with_images`](Self::with_images).
    pub fn new(config: TaskConfig) -> Result<Self, String> {
        config.validate()?;
        if let Some(set) = config.needs_images() {
            return Err(format!(
                "the {} task needs the {} images: load them and use Sampler::with_images",
                config.name(),
                set.dir()
            ));
        }
        if let TaskConfig::Embeddings(c) = &config {
            return Err(format!(
                "the embeddings task needs the {} embedding files: load them and use Sampler::with_embeddings",
                c.name
            ));
        }
        Ok(Self {
            config,
            images: None,
            embeddings: None,
        })
    }

    /// A sampler of the embedding family over `data`.
    pub fn with_embeddings(
        config: TaskConfig,
        data: embeddings::EmbeddingData,
    ) -> Result<Self, String> {
        config.validate()?;
        let TaskConfig::Embeddings(c) = &config else {
            return Err(format!("the {} task reads no embeddings", config.name()));
        };
        c.check_data(&data)?;
        Ok(Self {
            config,
            images: None,
            embeddings: Some(data),
        })
    }

    /// A sampler of an image family over `images` (its own dataset, or the other one for an
    /// out-of-distribution evaluation).
    pub fn with_images(config: TaskConfig, images: mnist::ImageData) -> Result<Self, String> {
        config.validate()?;
        if images.train.is_empty() || images.test.is_empty() {
            return Err("the image dataset is empty".into());
        }
        if config.needs_images().is_none() {
            return Err(format!("the {} task reads no images", config.name()));
        }
        Ok(Self {
            config,
            images: Some(images),
            embeddings: None,
        })
    }

    /// Draws one generation task's raw points: the context and a second, held-out sample of the
    /// same distribution, `[n, dim]` and `[q, dim]`; `None` for a family that is not generative.
    pub fn sample_points<R: rand::Rng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Option<(Vec<f32>, Vec<f32>)> {
        match &self.config {
            TaskConfig::Gmm(c) => {
                let t = c.sample(rng);
                Some((t.context, t.queries))
            }
            TaskConfig::Alphabet(c) => {
                let t = c.sample(rng);
                Some((t.context, t.queries))
            }
            _ => None,
        }
    }

    /// Draws one task, encoded.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> TaskData {
        match &self.config {
            TaskConfig::FunctionRegression(c) => {
                let f = regression::FunctionRegression::new(c.clone());
                f.task_data(&f.sample(rng).episode)
            }
            TaskConfig::LinearRegression(c) => {
                let f = linear::LinearRegression::new(c.clone());
                f.task_data(&f.sample(rng).episode)
            }
            TaskConfig::Projection(c) => {
                let images = self.images.as_ref().expect("constructed with images");
                c.sample(images, rng).data
            }
            TaskConfig::Gmm(c) => {
                let t = c.sample(rng);
                c.field.training_data(&t.context, &t.queries, c.dim, rng)
            }
            TaskConfig::Alphabet(c) => {
                let t = c.sample(rng);
                c.field.training_data(&t.context, &t.queries, 2, rng)
            }
            TaskConfig::Embeddings(c) => {
                let data = self
                    .embeddings
                    .as_ref()
                    .expect("constructed with embeddings");
                c.sample(data, rng)
            }
        }
    }
}

/// The checks every regression family shares: a finite noise level, at least one context and one
/// query point.
fn check_regression(noise_std: f64, context: usize, queries: usize) -> Result<(), String> {
    if !(noise_std.is_finite() && noise_std >= 0.0) {
        return Err(format!(
            "noise_std must be finite and >= 0, got {noise_std}"
        ));
    }
    if context == 0 || queries == 0 {
        return Err("context and queries must be at least 1".into());
    }
    Ok(())
}

/// One-hot rows for `labels` over `classes`, `[n, classes]`.
pub fn one_hot(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut out = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        out[i * classes + l] = 1.0;
    }
    out
}
