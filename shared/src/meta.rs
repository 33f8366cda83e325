//! The outer loop, one meta-step at a time (paper §3, eq. 9): draw a meta-batch of tasks and the
//! mini-batches of their k refinement steps, differentiate the greedy k-step loss, and take an
//! AdamW step at the scheduled learning rate. `amortize train` wraps these pieces in its files,
//! logs and devices; the web app's Train tab runs them in the page, with the same streams, so a
//! model trained there is made exactly as the command would make it on one device.
//!
//! [`Probe`] scores a model as it trains: the query loss after chosen refinement steps on a fixed
//! set of fresh tasks, beside least squares and the Bayes posterior mean on the points those
//! steps have read.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::baseline::{least_squares, posterior_mean};
use crate::metric::mse;
use crate::model::{Amortizer, AmortizerConfig};
use crate::refine::{
    greedy_loss_with, loss_per_task, predictions, refine, GreedyLoss, RefineConfig, StepWeighting,
    TaskBatch,
};
use crate::task::schedule::schedule;
use crate::task::{Sampler, TaskData};
use crate::weights::{BundleHeader, ModelBundle, WeightsError};

/// Linear warm-up to `lr` over `warmup` steps, then cosine decay to a tenth of it at `steps`
/// (`step` is 1-based; past `steps` it stays at the tenth).
pub fn lr_at(lr: f64, warmup: usize, steps: usize, step: usize) -> f64 {
    if step <= warmup {
        return lr * step as f64 / warmup.max(1) as f64;
    }
    let span = (steps.saturating_sub(warmup)).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// The random stream of meta-training step `step`: a function of the seed and the step only, so a
/// resumed run draws exactly the tasks and mini-batches an uninterrupted one would.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    // SplitMix64 finaliser of (seed, step): distinct, well-mixed seeds per step.
    let mut z = seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The meta-optimiser: AdamW without weight decay, each gradient clipped to norm 1.
pub fn adamw() -> AdamWConfig {
    AdamWConfig::new()
        .with_weight_decay(0.0)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
}

/// Reads every float parameter, which initialises a lazy one: call it right after
/// [`AmortizerConfig::init`] so that the weights come from the device's seed, not from whatever
/// stream is current at their first use.
pub fn materialise(model: &Amortizer) {
    struct Materialise;
    impl ModuleVisitor for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Materialise);
}

/// One meta-step's draw: its tasks and the mini-batches of their k steps.
pub struct MetaBatch {
    /// The tasks.
    pub data: Vec<TaskData>,
    /// Indices into each task's context, one list per refinement step.
    pub schedule: Vec<Vec<usize>>,
}

impl MetaBatch {
    /// `tasks` fresh tasks from `sampler` and one schedule of k steps for all of them: k is the
    /// configured number of steps, or with a `horizon` above it drawn uniformly from k..=horizon.
    pub fn draw<R: Rng + ?Sized>(
        sampler: &Sampler,
        tasks: usize,
        refine: &RefineConfig,
        horizon: Option<usize>,
        rng: &mut R,
    ) -> Self {
        let data: Vec<_> = (0..tasks).map(|_| sampler.sample(rng)).collect();
        let k = match horizon {
            Some(h) if h > refine.steps => rng.random_range(refine.steps..=h),
            _ => refine.steps,
        };
        let schedule = schedule(sampler.config.context_len(), refine.batch_size, k, rng);
        Self { data, schedule }
    }
}

/// What a meta-step differentiates: the greedy loss under a step weighting, scaled by a weight (a
/// share of a larger meta-batch weighs by its share), with the implicit regime's full-context share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// How the k step losses combine.
    pub weighting: StepWeighting,
    /// The factor on the whole objective.
    pub weight: f32,
    /// The share of queries that read whole mini-batches (implicit regime, causal attention).
    pub full_share: f64,
}

impl Default for Objective {
    /// The paper's: the mean of the step losses, weight 1, prefixes drawn uniformly.
    fn default() -> Self {
        Self {
            weighting: StepWeighting::Mean,
            weight: 1.0,
            full_share: 0.0,
        }
    }
}

/// The gradients of `objective` over `data` on the autodiff device `device`, and the loss, whose
/// per-step values the caller reads (synchronously on the CPU, asynchronously on WebGPU).
pub fn meta_grads<R: Rng + ?Sized>(
    model: &Amortizer,
    data: &[TaskData],
    schedule: &[Vec<usize>],
    rng: &mut R,
    device: &Device,
    objective: &Objective,
) -> Result<(GradientsParams, GreedyLoss), String> {
    let refs: Vec<_> = data.iter().collect();
    let batch = TaskBatch::new(&refs, device)?;
    let loss = greedy_loss_with(model, &batch, schedule, rng, device, objective.full_share);
    let scalar = loss.objective(objective.weighting) * objective.weight;
    let grads = GradientsParams::from_grads(scalar.backward(), model);
    Ok((grads, loss))
}

/// What a [`MetaLearner`] trains with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetaSettings {
    /// Seed of the weights and of every meta-step's draw.
    pub seed: u64,
    /// Tasks per meta-step.
    pub tasks_per_step: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Steps of the schedule: the learning rate decays to a tenth by then.
    pub steps: usize,
    /// k and the mini-batch size of the greedy objective.
    pub refine: RefineConfig,
}

/// A size of model and meta-batch that trains in a page on a laptop: the Train tab offers these,
/// and `amortize bench --preset` times the same natively.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Its name (URL value).
    pub name: &'static str,
    /// What it is, in words.
    pub label: &'static str,
    /// Transformer width, heads, layers and feed-forward width.
    pub d_model: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub d_ff: usize,
    /// Tasks per meta-step.
    pub tasks_per_step: usize,
    /// Peak learning rate, warm-up and schedule length.
    pub lr: f64,
    pub warmup: usize,
    pub steps: usize,
}

/// The presets, smallest first (the first is the default).
pub const PRESETS: [Preset; 3] = [
    Preset {
        name: "tiny",
        label: "tiny: width 32, 1 layer, 8 tasks a step",
        d_model: 32,
        n_heads: 4,
        n_layers: 1,
        d_ff: 64,
        tasks_per_step: 8,
        lr: 2e-3,
        warmup: 20,
        steps: 20000,
    },
    Preset {
        name: "small",
        label: "small: width 64, 2 layers, 16 tasks a step",
        d_model: 64,
        n_heads: 4,
        n_layers: 2,
        d_ff: 128,
        tasks_per_step: 16,
        lr: 1e-3,
        warmup: 100,
        steps: 20000,
    },
    Preset {
        name: "shipped",
        label: "as shipped: width 64, 2 layers, 32 tasks a step",
        d_model: 64,
        n_heads: 4,
        n_layers: 2,
        d_ff: 128,
        tasks_per_step: 32,
        lr: 1e-3,
        warmup: 500,
        steps: 55000,
    },
];

impl Preset {
    /// The preset called `name`.
    pub fn named(name: &str) -> Option<Preset> {
        PRESETS.iter().find(|p| p.name == name).copied()
    }

    /// The model of this size for `config`'s task, regime and signal.
    pub fn model(&self, config: AmortizerConfig) -> AmortizerConfig {
        AmortizerConfig {
            d_model: self.d_model,
            n_heads: self.n_heads,
            n_layers: self.n_layers,
            d_ff: self.d_ff,
            ..config
        }
    }

    /// Its training settings, with `seed` and the refinement `refine`.
    pub fn settings(&self, seed: u64, refine: RefineConfig) -> MetaSettings {
        MetaSettings {
            seed,
            tasks_per_step: self.tasks_per_step,
            lr: self.lr,
            warmup: self.warmup,
            steps: self.steps,
            refine,
        }
    }
}

/// A model being meta-trained, one step at a time, on one device: its weights, the optimiser's
/// moments and the step count. Each step draws exactly what `amortize train` draws at that step
/// with the same seed (its tasks, k and mini-batches).
pub struct MetaLearner {
    /// The model, on the autodiff device.
    pub model: Amortizer,
    optim: ModuleOptimizer,
    /// The task family.
    pub sampler: Sampler,
    /// How it trains.
    pub settings: MetaSettings,
    /// Meta-steps taken.
    pub step: usize,
    device: Device,
}

/// One meta-step in progress: its draw, and the gradients summed over the parts done so far
/// (a page computes a step in parts, yielding between them, so that it stays responsive).
pub struct StepInProgress {
    /// The draw.
    pub batch: MetaBatch,
    rng: StdRng,
    acc: GradientsAccumulator<Amortizer>,
    done: usize,
}

impl StepInProgress {
    /// Tasks of the draw whose gradients are in.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Whether every task's gradient is in.
    pub fn is_complete(&self) -> bool {
        self.done == self.batch.data.len()
    }
}

impl MetaLearner {
    /// A fresh model of `config` on `device` (an autodiff device), its weights drawn from the
    /// seed.
    pub fn new(
        config: &AmortizerConfig,
        sampler: Sampler,
        settings: MetaSettings,
        device: &Device,
    ) -> Result<Self, String> {
        config.validate()?;
        settings.refine.validate()?;
        if config.task != sampler.config.dims() {
            return Err("the model's task shapes are not the sampler's".to_string());
        }
        if settings.tasks_per_step == 0 || settings.steps == 0 {
            return Err("a meta-step needs tasks, and the schedule steps".to_string());
        }
        if !(settings.lr.is_finite() && settings.lr > 0.0) {
            return Err(format!(
                "the learning rate must be positive, got {}",
                settings.lr
            ));
        }
        Device::seed(device, settings.seed);
        let model = config.init(device);
        materialise(&model);
        Ok(Self {
            model,
            optim: adamw().init(),
            sampler,
            settings,
            step: 0,
            device: device.clone(),
        })
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        let s = &self.settings;
        lr_at(s.lr, s.warmup, s.steps, self.step + 1)
    }

    /// Starts the next meta-step: draws its tasks and mini-batches.
    pub fn begin(&self) -> StepInProgress {
        let step = self.step + 1;
        let s = &self.settings;
        let mut rng = StdRng::seed_from_u64(step_seed(s.seed, step));
        Device::seed(&self.device, step_seed(s.seed ^ 0xde71ce, step));
        let batch = MetaBatch::draw(&self.sampler, s.tasks_per_step, &s.refine, None, &mut rng);
        StepInProgress {
            batch,
            rng,
            acc: GradientsAccumulator::new(),
            done: 0,
        }
    }

    /// Adds the gradients of up to `tasks` more of the step's tasks (the paper's mean objective,
    /// each part weighted by its share); returns that part's loss, one value per refinement step.
    pub fn work(&self, part: &mut StepInProgress, tasks: usize) -> Result<Tensor<1>, String> {
        let total = part.batch.data.len();
        let range = part.done..(part.done + tasks.max(1)).min(total);
        if range.is_empty() {
            return Err("the meta-step is complete".to_string());
        }
        let weight = range.len() as f32 / total as f32;
        let (grads, loss) = meta_grads(
            &self.model,
            &part.batch.data[range.clone()],
            &part.batch.schedule,
            &mut part.rng,
            &self.device,
            &Objective {
                weight,
                ..Objective::default()
            },
        )?;
        part.acc.accumulate(&self.model, grads);
        part.done = range.end;
        Ok(Tensor::cat(loss.per_step, 0))
    }

    /// Takes the optimiser step of a complete meta-step; returns the learning rate it used.
    pub fn finish(&mut self, mut part: StepInProgress) -> Result<f64, String> {
        if !part.is_complete() {
            return Err("the meta-step has tasks left".to_string());
        }
        let lr = self.lr();
        let grads = part.acc.grads();
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        Ok(lr)
    }

    /// The model as it is now, for inference.
    pub fn current(&self) -> Amortizer {
        self.model.valid()
    }

    /// The model as it is now, as the bytes of a model file (`.amz`), with `provenance` (how it
    /// was made) in its header.
    pub fn bundle(&self, provenance: serde_json::Value) -> Result<ModelBundle, WeightsError> {
        let header = BundleHeader {
            model: self.model.config().clone(),
            task: self.sampler.config.clone(),
            refine: self.settings.refine.clone(),
            provenance,
        };
        ModelBundle::from_model(header, self.current())
    }
}

/// The distinct context points that the first `step` mini-batches of `schedule` read, in the
/// order first read.
pub fn points_read(schedule: &[Vec<usize>], step: usize, n: usize) -> Vec<usize> {
    let mut taken = vec![false; n];
    let mut seen = Vec::new();
    for &i in schedule[..step.min(schedule.len())].iter().flatten() {
        if i < n && !std::mem::replace(&mut taken[i], true) {
            seen.push(i);
        }
    }
    seen
}

/// A fixed set of fresh tasks that scores a model as it trains (regression families): the mean
/// query MSE after each of `steps` refinement steps, and least squares and the Bayes posterior
/// mean fitted to the points those steps have read.
pub struct Probe {
    batch: TaskBatch,
    schedule: Vec<Vec<usize>>,
    /// The refinement steps scored.
    pub steps: Vec<usize>,
    /// Least squares on the points read by each step, mean query MSE.
    pub least_squares: Vec<f64>,
    /// The Bayes posterior mean on the points read by each step, mean query MSE.
    pub bayes: Vec<f64>,
}

impl Probe {
    /// `tasks` tasks from `sampler` drawn from `seed`, refined over `refine`'s mini-batch size.
    pub fn new(
        sampler: &Sampler,
        refine: &RefineConfig,
        tasks: usize,
        seed: u64,
        steps: &[usize],
        device: &Device,
    ) -> Result<Self, String> {
        let noise_std = sampler
            .config
            .noise_std()
            .ok_or("the probe scores regression families only")?;
        if tasks == 0 || steps.is_empty() {
            return Err("the probe needs tasks and steps".to_string());
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let data: Vec<_> = (0..tasks).map(|_| sampler.sample(&mut rng)).collect();
        let n = sampler.config.context_len();
        let k = steps.iter().copied().max().unwrap_or(0);
        let schedule = schedule(n, refine.batch_size, k, &mut rng);
        let p = sampler.config.dims().input_dim;
        let (mut least, mut bayes) = (Vec::new(), Vec::new());
        for &step in steps {
            let read = points_read(&schedule, step, n);
            let (mut ls_sum, mut bayes_sum) = (0.0, 0.0);
            for d in &data {
                let design: Vec<f32> = read
                    .iter()
                    .flat_map(|&i| d.context_input[i * p..(i + 1) * p].iter().copied())
                    .collect();
                let y: Vec<f32> = read.iter().map(|&i| d.context_target[i]).collect();
                let predict = |w: &[f32]| -> Vec<f32> {
                    d.query_input
                        .chunks(p)
                        .map(|u| u.iter().zip(w).map(|(a, b)| a * b).sum())
                        .collect()
                };
                ls_sum += mse(&predict(&least_squares(&design, &y, p)), &d.query_target) as f64;
                bayes_sum += mse(
                    &predict(&posterior_mean(&design, &y, p, noise_std)),
                    &d.query_target,
                ) as f64;
            }
            least.push(ls_sum / tasks as f64);
            bayes.push(bayes_sum / tasks as f64);
        }
        let refs: Vec<_> = data.iter().collect();
        Ok(Self {
            batch: TaskBatch::new(&refs, device)?,
            schedule,
            steps: steps.to_vec(),
            least_squares: least,
            bayes,
        })
    }

    /// The model's mean query loss after each scored step, `[steps.len()]` (the caller reads it).
    pub fn losses(&self, model: &Amortizer) -> Tensor<1> {
        let states = refine(model, &self.batch, &self.schedule, &self.batch_device());
        let kind = model.config().task.loss;
        let per_step: Vec<Tensor<1>> = self
            .steps
            .iter()
            .map(|&s| {
                let pred = predictions(model, &states[s], &self.batch);
                loss_per_task(kind, pred, self.batch.query_target.clone())
                    .mean()
                    .reshape([1])
            })
            .collect();
        Tensor::cat(per_step, 0)
    }

    fn batch_device(&self) -> Device {
        self.batch.query_target.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learning_rate_warms_up_then_decays_by_a_cosine_to_a_tenth() {
        assert_eq!(lr_at(1.0, 10, 100, 0), 0.0);
        assert!((lr_at(1.0, 10, 100, 5) - 0.5).abs() < 1e-12);
        assert!((lr_at(1.0, 10, 100, 10) - 1.0).abs() < 1e-12);
        assert!(
            (lr_at(1.0, 10, 100, 55) - 0.55).abs() < 1e-12,
            "half way: (1 + 0.1) / 2"
        );
        assert!((lr_at(1.0, 10, 100, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(1.0, 10, 100, 500) - 0.1).abs() < 1e-12);
        let after: Vec<f64> = (10..=100).map(|s| lr_at(1.0, 10, 100, s)).collect();
        assert!(after.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn points_read_are_distinct_and_in_first_read_order() {
        let schedule = vec![vec![3, 1], vec![1, 0], vec![2, 3]];
        assert_eq!(points_read(&schedule, 0, 4), Vec::<usize>::new());
        assert_eq!(points_read(&schedule, 1, 4), vec![3, 1]);
        assert_eq!(points_read(&schedule, 2, 4), vec![3, 1, 0]);
        assert_eq!(points_read(&schedule, 9, 4), vec![3, 1, 0, 2]);
    }

    #[test]
    fn step_seeds_differ_by_step_and_seed() {
        let seeds: std::collections::HashSet<u64> = (0..1000)
            .flat_map(|s| [step_seed(1, s), step_seed(2, s)])
            .collect();
        assert_eq!(seeds.len(), 2000);
    }
}
