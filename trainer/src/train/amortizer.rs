//! The amortizer's side of the meta-training loop: its run configuration, where its weights
//! start (`--init`), a meta-step's gradients (data parallel across devices when asked), its
//! held-out evaluation and its file's header.

use std::fs;
use std::path::{Path, PathBuf};

use amortize::meta::{materialise, MetaBatch};
use amortize::model::{Amortizer, AmortizerConfig};
use amortize::refine::StepWeighting;
use amortize::task::{Sampler, TaskConfig};
use amortize::weights::{BundleHeader, ModelBundle};
use amortize::RefineConfig;
use anyhow::Context;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::{eval_line, held_out_seed, meta_grads, Learner, Model, RunConfig};
use crate::eval::{eval_steps, evaluate, Setup};
use crate::run::{Budget, RunFiles};

/// Everything a run depends on; a run is reproducible from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seed, steps, tasks per step, learning-rate schedule, evaluations.
    #[serde(flatten)]
    pub budget: Budget,
    /// The amortizer's architecture.
    pub model: AmortizerConfig,
    /// The task family.
    pub task: TaskConfig,
    /// Steps k and mini-batch size b.
    pub refine: RefineConfig,
    /// What `model.signal`'s names mean here: 2, or 1 in a file written before the paper's
    /// gradient token existed, whose `gradients` and `both` were the per-point forms (read
    /// through [`TrainConfig::upgrade`]).
    #[serde(default = "one")]
    pub signal_names: usize,
    /// Longest refinement in training: each meta-step runs a number of steps drawn uniformly
    /// from k to this, each on a fresh mini-batch. None: always k.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<usize>,
    /// How the greedy objective weighs the k steps' losses (default: their mean, as in the paper).
    #[serde(default)]
    pub step_weighting: StepWeighting,
    /// Implicit regime: the share of training queries that read the whole mini-batch at a step
    /// (`greedy_loss_with`); 0, the default, draws every query's prefix uniformly.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub full_context_share: f64,
    /// Devices each meta-step's tasks are split across (data parallel; default 1). Part of the
    /// configuration because the implicit regime's random prefixes are drawn per device.
    #[serde(default = "one")]
    pub data_parallel: usize,
    /// Changes of the device count made on resuming (`train --resume --data-parallel N`): from
    /// each entry's step on, the run split its tasks across that many devices. Empty for a run
    /// that never changed; with them the run is still reproducible from this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_parallel_changes: Vec<DataParallelChange>,
    /// The most tasks a device runs through the model at once: a larger share of a meta-step
    /// runs as near-equal micro-batches one after another, their gradients summed (the same
    /// meta-step). 0, in runs written before it existed: the whole share at once.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub micro_batch: usize,
    /// The trained model the run starts from (`train --init FILE`, fine-tuning) instead of
    /// weights drawn from the seed. None: a fresh start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitFrom>,
}

/// The weights a fine-tuning run starts from: a model file and the CRC-32 of its weights, so the
/// run is reproducible from its configuration and a changed file is caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitFrom {
    pub path: PathBuf,
    pub weights_crc32: u32,
    /// The file's transformer layers; the run may have more (`Amortizer::deepen`). 0 in
    /// configurations written before this was recorded.
    #[serde(default)]
    pub n_layers: usize,
}

impl InitFrom {
    /// Reads the model file at `path`: the record of where it starts, and the bundle.
    pub fn read(path: &Path) -> anyhow::Result<(Self, ModelBundle)> {
        let bytes =
            fs::read(path).with_context(|| format!("--init: reading {}", path.display()))?;
        let bundle = ModelBundle::decode(&bytes)
            .map_err(|e| anyhow::anyhow!("--init: {}: {e}", path.display()))?;
        let init = Self {
            path: path.to_path_buf(),
            weights_crc32: crc32fast::hash(&bundle.weights),
            n_layers: bundle.header.model.n_layers,
        };
        Ok((init, bundle))
    }

    /// The model it names, checked against the checksum and against the run's architecture and
    /// task, on `device`; and the file's provenance (how that model was made).
    fn load(
        &self,
        cfg: &TrainConfig,
        device: &Device,
    ) -> anyhow::Result<(Amortizer, serde_json::Value)> {
        let (now, bundle) = Self::read(&self.path)?;
        anyhow::ensure!(
            now.weights_crc32 == self.weights_crc32,
            "--init: the weights in {} changed since the run was configured (CRC-32 {:08x}, configured {:08x})",
            self.path.display(),
            now.weights_crc32,
            self.weights_crc32
        );
        let file = &bundle.header.model;
        let extra = cfg.model.n_layers.saturating_sub(file.n_layers);
        anyhow::ensure!(
            cfg.model.n_layers >= file.n_layers
                && AmortizerConfig {
                    n_layers: cfg.model.n_layers,
                    ..file.clone()
                } == cfg.model,
            "--init: {} holds another architecture than the run's",
            self.path.display()
        );
        // The run may give each task more context points than the file's (room for every step
        // to read fresh points); the family must be the same.
        anyhow::ensure!(
            bundle.header.task.with_context(cfg.task.context_len()) == cfg.task,
            "--init: {} was trained on another task than the run's",
            self.path.display()
        );
        let model = bundle
            .model(device)
            .map_err(|e| anyhow::anyhow!("--init: {}: {e}", self.path.display()))?
            .deepen(extra, device);
        Ok((model, bundle.header.provenance))
    }
}

/// From meta-step `from_step` on, a run used `data_parallel` devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataParallelChange {
    pub from_step: usize,
    pub data_parallel: usize,
}

fn one() -> usize {
    1
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero_usize(x: &usize) -> bool {
    *x == 0
}

impl RunConfig for TrainConfig {
    fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The configuration in today's signal names (see `signal_names`).
    fn upgrade(mut self) -> Self {
        if self.signal_names < 2 {
            self.model.signal = amortize::signal::legacy(self.model.signal);
            self.signal_names = 2;
        }
        self
    }

    /// Checks every field a user can set, naming the one at fault.
    fn validate(&self) -> anyhow::Result<()> {
        self.task
            .validate()
            .map_err(|e| anyhow::anyhow!("task: {e}"))?;
        self.model.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.refine.validate().map_err(|e| anyhow::anyhow!(e))?;
        if self.task.is_generative() && self.model.regime != amortize::regime::Regime::Implicit {
            anyhow::bail!(
                "the {} task is generative (flow matching): use the implicit regime",
                self.task.name()
            );
        }
        if self.task.is_generative() && self.model.signal.uses_gradients() {
            anyhow::bail!(
                "the {} task is generative: its samples have no targets to take a loss gradient of; use signal = observations",
                self.task.name()
            );
        }
        if self.budget.steps == 0 {
            anyhow::bail!("steps must be at least 1");
        }
        if let Some(h) = self.horizon {
            if h < self.refine.steps || h > 1000 {
                anyhow::bail!(
                    "horizon must be in k ({}) to 1000 refinement steps, got {h}",
                    self.refine.steps
                );
            }
        }
        if !(0.0..=1.0).contains(&self.full_context_share) {
            anyhow::bail!(
                "full_context_share must be in [0, 1], got {}",
                self.full_context_share
            );
        }
        if self.full_context_share > 0.0
            && (self.model.regime != amortize::regime::Regime::Implicit
                || self.model.attention != amortize::model::mask::Attention::Causal)
        {
            anyhow::bail!(
                "full_context_share applies to the implicit regime with causal attention (its queries read random prefixes)"
            );
        }
        if self.budget.tasks_per_step == 0 || self.budget.tasks_per_step > 100_000 {
            anyhow::bail!(
                "tasks_per_step must be in 1..=100000, got {}",
                self.budget.tasks_per_step
            );
        }
        let counts = std::iter::once(self.data_parallel)
            .chain(self.data_parallel_changes.iter().map(|c| c.data_parallel));
        for n in counts {
            if n == 0 || n > 64 {
                anyhow::bail!("data_parallel must be in 1..=64, got {n}");
            }
            if n > self.budget.tasks_per_step {
                anyhow::bail!(
                    "data_parallel ({n}) exceeds tasks_per_step ({}): every device needs a task",
                    self.budget.tasks_per_step
                );
            }
        }
        let mut after = 1;
        for c in &self.data_parallel_changes {
            if c.from_step <= after || c.from_step > self.budget.steps {
                anyhow::bail!(
                    "data_parallel_changes: from_step {} must be past the previous change and within the {} steps",
                    c.from_step,
                    self.budget.steps
                );
            }
            after = c.from_step;
        }
        if !(self.budget.lr.is_finite() && self.budget.lr > 0.0 && self.budget.lr < 1.0) {
            anyhow::bail!("lr must be in (0, 1), got {}", self.budget.lr);
        }
        if self.model.task != self.task.dims() {
            anyhow::bail!(
                "model.task {:?} does not match the task's shapes {:?}",
                self.model.task,
                self.task.dims()
            );
        }
        Ok(())
    }

    /// The configuration as it stood when step `step` was done: changes from later steps dropped.
    fn as_of(&self, step: usize) -> TrainConfig {
        let mut cfg = self.clone();
        cfg.data_parallel_changes.retain(|c| c.from_step <= step);
        cfg
    }
}

impl TrainConfig {
    /// Devices meta-step `step` splits its tasks across.
    pub fn data_parallel_at(&self, step: usize) -> usize {
        self.data_parallel_changes
            .iter()
            .rev()
            .find(|c| c.from_step <= step)
            .map_or(self.data_parallel, |c| c.data_parallel)
    }

    /// Devices the run needs at once: the most any of its steps uses.
    pub fn max_data_parallel(&self) -> usize {
        self.data_parallel_changes
            .iter()
            .map(|c| c.data_parallel)
            .fold(self.data_parallel, usize::max)
    }
}

/// The configuration of the run in `out` continued on `n` devices from its checkpoint on: a
/// change is recorded at the step after the checkpoint (replacing any recorded past it, which no
/// checkpoint holds yet). Unchanged when the run already uses `n` there.
pub fn resumed_on(cfg: &TrainConfig, out: &Path, n: usize) -> anyhow::Result<TrainConfig> {
    let mut probe = cfg.clone();
    probe.data_parallel = n;
    probe.data_parallel_changes.clear();
    probe.validate()?;
    let files = RunFiles::new(out);
    let step = Checkpoint::<TrainConfig>::read(&files.checkpoint)?
        .state
        .step;
    let mut cfg = cfg.as_of(step);
    if step < cfg.budget.steps && cfg.data_parallel_at(step + 1) != n {
        cfg.data_parallel_changes.push(DataParallelChange {
            from_step: step + 1,
            data_parallel: n,
        });
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The amortizer's side of the loop: the configuration, the task sampler and the devices.
pub struct AmortizerRun<'a> {
    cfg: &'a TrainConfig,
    sampler: &'a Sampler,
    replicas: &'a [Device],
}

impl<'a> AmortizerRun<'a> {
    /// A run of `cfg` drawing its tasks from `sampler` on `replicas` (one device, or several for
    /// data parallelism: the first holds the model and the optimiser).
    pub fn new(
        cfg: &'a TrainConfig,
        sampler: &'a Sampler,
        replicas: &'a [Device],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            replicas.len() == cfg.max_data_parallel(),
            "the run is configured for {} devices, {} given",
            cfg.max_data_parallel(),
            replicas.len()
        );
        anyhow::ensure!(
            sampler.config == cfg.task,
            "the sampler is not the configured task"
        );
        Ok(Self {
            cfg,
            sampler,
            replicas,
        })
    }
}

impl Learner for AmortizerRun<'_> {
    type Config = TrainConfig;
    type Header = BundleHeader;

    fn config(&self) -> &TrainConfig {
        self.cfg
    }

    fn device(&self) -> &Device {
        &self.replicas[0]
    }

    fn init(&self, ad: &Device) -> anyhow::Result<(Amortizer, serde_json::Value)> {
        let (model, provenance) = match &self.cfg.init {
            Some(init) => init.load(self.cfg, ad)?,
            None => (self.cfg.model.init(ad), serde_json::Value::Null),
        };
        // Draw the lazily initialised weights now, from the seed, rather than at their first use
        // (where the stream would be step 1's, or on several devices whichever came first).
        materialise(&model);
        Ok((model, provenance))
    }

    fn grads(
        &self,
        model: &Amortizer,
        step: usize,
        rng: &mut StdRng,
    ) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
        let cfg = self.cfg;
        let MetaBatch { data, schedule } = MetaBatch::draw(
            self.sampler,
            cfg.budget.tasks_per_step,
            &cfg.refine,
            cfg.horizon,
            rng,
        );
        let replicas = &self.replicas[..cfg.data_parallel_at(step)];
        meta_grads(model, replicas, &data, &schedule, rng, cfg, step)
    }

    fn held_out(&self, model: &Model<Self>) -> anyhow::Result<(serde_json::Value, String)> {
        let cfg = self.cfg;
        let setup = Setup {
            model,
            refine: &cfg.refine,
            seed: held_out_seed(&cfg.budget),
            device: self.device(),
        };
        let report = evaluate(
            setup,
            self.sampler,
            cfg.budget.eval_tasks,
            &eval_steps(cfg.refine.steps),
        )?;
        let bayes = report.bayes.map(|b| format!(" (Bayes {b:.4})"));
        let line = eval_line(&report.metric, &report.model) + &bayes.unwrap_or_default();
        Ok((serde_json::to_value(&report)?, line))
    }

    fn header(&self, provenance: serde_json::Value) -> BundleHeader {
        BundleHeader {
            model: self.cfg.model.clone(),
            task: self.cfg.task.clone(),
            refine: self.cfg.refine.clone(),
            provenance,
        }
    }

    fn card(
        &self,
        provenance: &mut serde_json::Value,
        init: &serde_json::Value,
        _last_eval: &serde_json::Value,
    ) {
        if let Some(from) = &self.cfg.init {
            provenance["init"] = serde_json::json!({
                "path": from.path,
                "weights_crc32": from.weights_crc32,
                "n_layers": from.n_layers,
                "provenance": init,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::CheckpointState;
    use super::*;
    use amortize::regime::Regime;
    use amortize::signal::Signal;
    use amortize::task::linear::LinearRegressionConfig;

    fn config(signal: Signal) -> TrainConfig {
        let task = TaskConfig::LinearRegression(LinearRegressionConfig::default());
        TrainConfig {
            budget: Budget {
                seed: 3,
                steps: 100,
                tasks_per_step: 8,
                lr: 1e-3,
                warmup: 10,
                eval_every: 0,
                eval_tasks: 8,
                checkpoint_every: 0,
            },
            model: AmortizerConfig::new(task.dims(), Regime::Parametric, signal),
            task,
            refine: RefineConfig::new(),
            signal_names: 2,
            horizon: Some(20),
            step_weighting: StepWeighting::Mean,
            full_context_share: 0.0,
            data_parallel: 1,
            data_parallel_changes: Vec::new(),
            micro_batch: 0,
            init: None,
        }
    }

    /// A checkpoint reads back exactly, and a flipped byte or a cut file is refused by name.
    #[test]
    fn checkpoints_round_trip_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        let ck = Checkpoint {
            state: CheckpointState {
                step: 7,
                ema: Some(0.25),
                seconds: 1.5,
                config: config(Signal::Gradients),
                commands: vec!["amortize train".into()],
                init_provenance: serde_json::Value::Null,
                last_eval: serde_json::Value::Null,
            },
            model: vec![1, 2, 3, 4],
            optimizer: vec![9; 10],
        };
        ck.write(&path).unwrap();
        let back = Checkpoint::<TrainConfig>::read(&path).unwrap();
        assert_eq!(back.state.step, 7);
        assert_eq!(back.state.config, ck.state.config);
        assert_eq!((back.model, back.optimizer), (ck.model, ck.optimizer));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = Checkpoint::<TrainConfig>::read(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("damaged"), "{err}");
        fs::write(&path, &bytes[..6]).unwrap();
        let err = Checkpoint::<TrainConfig>::read(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a valid checkpoint"), "{err}");
    }

    /// A configuration written before the paper's gradient token (no `signal_names`) meant the
    /// per-point forms by `gradients` and `both`; today's keeps its names.
    #[test]
    fn old_configurations_keep_the_signal_they_trained_with() {
        for (old, now) in [
            (Signal::Gradients, Signal::PointGradients),
            (Signal::Both, Signal::BothPointGradients),
            (Signal::Observations, Signal::Observations),
        ] {
            let mut json = serde_json::to_value(config(old)).unwrap();
            json.as_object_mut().unwrap().remove("signal_names");
            let read: TrainConfig = serde_json::from_value(json).unwrap();
            assert_eq!(read.upgrade().model.signal, now);
            let today: TrainConfig =
                serde_json::from_value(serde_json::to_value(config(old)).unwrap()).unwrap();
            assert_eq!(today.upgrade().model.signal, old);
        }
    }
}
