//! The meta-training loop, written out: sample tasks, run the greedy k-step loss, one optimiser
//! step, log, evaluate on fresh tasks every so often, checkpoint atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use amortize::meta::{
    adamw, materialise, meta_grads as greedy_grads, step_seed, MetaBatch, Objective,
};
use amortize::model::{Amortizer, AmortizerConfig};
use amortize::refine::{greedy_loss_with, StepWeighting, TaskBatch};
use amortize::task::{Sampler, TaskConfig, TaskData};
use amortize::weights::{BundleHeader, ModelBundle};
use amortize::RefineConfig;
use anyhow::Context;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::eval::{eval_steps, evaluate, Setup};
use crate::run::{write_atomic, Budget, RunFiles, StepRecord, FROM_STEP, INTERRUPTED};

/// Everything a run depends on; a run is reproducible from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seed, steps, tasks per step, learning-rate schedule, evaluations.
    #[serde(flatten)]
    pub budget: Budget,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
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

impl TrainConfig {
    /// The configuration in today's signal names (see `signal_names`).
    pub fn upgrade(mut self) -> Self {
        if self.signal_names < 2 {
            self.model.signal = amortize::signal::legacy(self.model.signal);
            self.signal_names = 2;
        }
        self
    }

    /// Checks every field a user can set, naming the one at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
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

    /// The configuration as it stood when step `step` was done: changes from later steps dropped.
    fn as_of(&self, step: usize) -> TrainConfig {
        let mut cfg = self.clone();
        cfg.data_parallel_changes.retain(|c| c.from_step <= step);
        cfg
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
    let step = Checkpoint::read(&files.checkpoint)?.state.step;
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

/// The learning rate at `step` (1-based): linear warm-up, then a cosine decay to 10% of `lr`.
pub fn learning_rate(cfg: &TrainConfig, step: usize) -> f64 {
    cfg.budget.lr_at(step)
}

/// How a call to [`train`] ended.
pub enum Ended {
    /// All steps ran; the model is at this path.
    Finished(PathBuf),
    /// Ctrl-C: a checkpoint was written after this step.
    Interrupted(usize),
}

/// A run in progress: the model and its optimiser (on the autodiff device), the step to run
/// next, and what the run's files record about it.
struct Progress {
    model: Amortizer,
    optim: ModuleOptimizer,
    /// The next step to run.
    next_step: usize,
    /// The smoothed loss shown beside the progress bar.
    ema: Option<f64>,
    /// Training seconds before this process started.
    seconds_before: f64,
    /// The command that started the run, then each resume's (the model card lists them).
    commands: Vec<String>,
    /// How the model the run started from was made (`--init`; null for a fresh start).
    init_provenance: serde_json::Value,
}

impl Progress {
    /// Continues from the checkpoint in `files`: the log is cut back to its step.
    fn resume(
        cfg: &TrainConfig,
        files: &RunFiles,
        command: &str,
        ad: &Device,
    ) -> anyhow::Result<Self> {
        let ck = Checkpoint::read(&files.checkpoint)?;
        anyhow::ensure!(
            ck.state.config == cfg.as_of(ck.state.step),
            "{} was written by another configuration",
            files.checkpoint.display()
        );
        let mut commands = ck.state.commands.clone();
        if ck.state.step < cfg.budget.steps {
            commands.push(format!("{command}{FROM_STEP}{})", ck.state.step + 1));
        }
        // A device count changed on resuming is part of the run's configuration from now on.
        write_atomic(&files.config, serde_json::to_string_pretty(cfg)?.as_bytes())?;
        let model = ModelBundle {
            header: BundleHeader {
                model: cfg.model.clone(),
                task: cfg.task.clone(),
                refine: cfg.refine.clone(),
                provenance: serde_json::Value::Null,
            },
            weights: ck.model,
        }
        .model(ad)
        .with_context(|| format!("loading the weights in {}", files.checkpoint.display()))?;
        let optim = adamw()
            .init()
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(ck.optimizer))
            .map_err(|e| anyhow::anyhow!("loading the optimiser state: {e:?}"))?;
        truncate_log(&files.log, ck.state.step)?;
        Ok(Self {
            model,
            optim,
            next_step: ck.state.step + 1,
            ema: ck.state.ema,
            seconds_before: ck.state.seconds,
            commands,
            init_provenance: ck.state.init_provenance,
        })
    }

    /// A new run: its configuration and an empty log written, the model drawn from the seed (or
    /// read from `--init`).
    fn start(
        cfg: &TrainConfig,
        files: &RunFiles,
        command: &str,
        ad: &Device,
    ) -> anyhow::Result<Self> {
        write_atomic(&files.config, serde_json::to_string_pretty(cfg)?.as_bytes())?;
        fs::File::create(&files.log)
            .with_context(|| format!("creating {}", files.log.display()))?;
        burn::tensor::Device::seed(ad, cfg.budget.seed);
        let (model, init_provenance) = match &cfg.init {
            Some(init) => init.load(cfg, ad)?,
            None => (cfg.model.init(ad), serde_json::Value::Null),
        };
        // Draw the lazily initialised weights now, from the seed, rather than at their first use
        // (where the stream would be step 1's, or on several devices whichever came first).
        materialise(&model);
        Ok(Self {
            model,
            optim: adamw().init(),
            next_step: 1,
            ema: None,
            seconds_before: 0.0,
            commands: vec![command.to_string()],
            init_provenance,
        })
    }

    /// Writes the model as of `step` to `path`, with its card's provenance.
    fn save(
        &self,
        cfg: &TrainConfig,
        path: &Path,
        step: usize,
        seconds: f64,
    ) -> anyhow::Result<()> {
        save(
            cfg,
            &self.model.valid(),
            path,
            &self.commands,
            &self.init_provenance,
            step,
            seconds,
        )
    }

    /// Writes the checkpoint after `step`, and a model snapshot to evaluate while the run goes
    /// on (the final save replaces it).
    fn checkpoint(
        &self,
        cfg: &TrainConfig,
        files: &RunFiles,
        step: usize,
        seconds: f64,
    ) -> anyhow::Result<()> {
        let model_bytes = self.model.valid().into_record().into_bytes()?.to_vec();
        let optimizer = self
            .optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("saving the optimiser state: {e:?}"))?
            .to_vec();
        Checkpoint {
            state: CheckpointState {
                step,
                ema: self.ema,
                seconds,
                config: cfg.clone(),
                commands: self.commands.clone(),
                init_provenance: self.init_provenance.clone(),
            },
            model: model_bytes,
            optimizer,
        }
        .write(&files.checkpoint)?;
        if step < cfg.budget.steps {
            self.save(cfg, &files.model, step, seconds)?;
        }
        Ok(())
    }
}

/// The held-out evaluation logged every `eval_every` steps, printed above the progress bar.
fn held_out(
    cfg: &TrainConfig,
    model: &Amortizer,
    sampler: &Sampler,
    device: &Device,
    step: usize,
    bar: &ProgressBar,
) -> anyhow::Result<serde_json::Value> {
    let setup = Setup {
        model,
        refine: &cfg.refine,
        // Evaluation tasks come from their own stream, the same at every evaluation.
        seed: cfg.budget.seed.wrapping_add(0x5eed_e7a1),
        device,
    };
    let report = evaluate(
        setup,
        sampler,
        cfg.budget.eval_tasks,
        &eval_steps(cfg.refine.steps),
    )?;
    bar.println(format!(
        "step {step}: eval {} {}{}",
        report.metric,
        report
            .model
            .iter()
            .map(|(s, v)| format!("k={s}: {v:.4}"))
            .collect::<Vec<_>>()
            .join(", "),
        report
            .bayes
            .map(|b| format!(" (Bayes {b:.4})"))
            .unwrap_or_default()
    ));
    Ok(serde_json::to_value(&report)?)
}

/// The progress bar of a run of `steps` meta-steps, `done` of them already run.
pub fn progress_bar(steps: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

/// Trains per `cfg` on `replicas` (one device, or several for data parallelism: the first holds
/// the model and the optimiser), writing `config.json`, `log.jsonl`, `checkpoint.bin` and
/// `model.amz` into `out`. With `resume`, continues from `out`'s checkpoint: the log is cut back
/// to the checkpoint's step and the run goes on exactly as if it had never stopped.
pub fn train(
    cfg: &TrainConfig,
    sampler: &Sampler,
    replicas: &[Device],
    out: &Path,
    command: &str,
    resume: bool,
) -> anyhow::Result<Ended> {
    cfg.validate()?;
    anyhow::ensure!(
        replicas.len() == cfg.max_data_parallel(),
        "the run is configured for {} devices, {} given",
        cfg.max_data_parallel(),
        replicas.len()
    );
    let device = &replicas[0];
    let files = RunFiles::new(out);
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    anyhow::ensure!(
        sampler.config == cfg.task,
        "the sampler is not the configured task"
    );
    let ad = device.clone().autodiff();
    let mut run = if resume {
        Progress::resume(cfg, &files, command, &ad)?
    } else {
        Progress::start(cfg, &files, command, &ad)?
    };
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(&files.log)
        .with_context(|| format!("opening {}", files.log.display()))?;
    if run.next_step > cfg.budget.steps {
        run.save(cfg, &files.model, cfg.budget.steps, run.seconds_before)?;
        return Ok(Ended::Finished(files.model));
    }

    let started = Instant::now();
    let before = run.seconds_before;
    let seconds = move |started: &Instant| before + started.elapsed().as_secs_f64();
    let bar = progress_bar(cfg.budget.steps, run.next_step - 1);
    for step in run.next_step..=cfg.budget.steps {
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.budget.seed, step));
        burn::tensor::Device::seed(&ad, step_seed(cfg.budget.seed ^ 0xde71ce, step));
        let MetaBatch { data, schedule } = MetaBatch::draw(
            sampler,
            cfg.budget.tasks_per_step,
            &cfg.refine,
            cfg.horizon,
            &mut rng,
        );
        let (grads, per_step) = meta_grads(
            &run.model,
            &replicas[..cfg.data_parallel_at(step)],
            &data,
            &schedule,
            &mut rng,
            cfg,
            step,
        )?;
        let lr = learning_rate(cfg, step);
        run.model = run.optim.step(lr, run.model, grads);

        let mut record = StepRecord::new(step, &per_step, lr, seconds(&started))?;
        let smoothed = record.smoothed(&mut run.ema);
        if step == cfg.budget.steps
            || (cfg.budget.eval_every > 0 && step % cfg.budget.eval_every == 0)
        {
            record.eval = Some(held_out(
                cfg,
                &run.model.valid(),
                sampler,
                device,
                step,
                &bar,
            )?);
        }
        writeln!(log, "{}", serde_json::to_string(&record)?)?;
        log.flush()?;
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        if step == cfg.budget.steps
            || interrupted
            || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0)
        {
            log.sync_data()?;
            run.checkpoint(cfg, &files, step, seconds(&started))?;
        }
        bar.set_message(format!("loss {smoothed:.4} lr {lr:.2e}"));
        bar.inc(1);
        if interrupted && step < cfg.budget.steps {
            bar.abandon();
            return Ok(Ended::Interrupted(step));
        }
    }
    bar.finish();
    run.save(cfg, &files.model, cfg.budget.steps, seconds(&started))?;
    Ok(Ended::Finished(files.model))
}

/// Keeps the log's records up to `step` (a killed run may have logged steps after its last
/// checkpoint; the resumed run logs them again, identically).
fn truncate_log(path: &Path, step: usize) -> anyhow::Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            break; // a record cut by the kill
        };
        match v["step"].as_u64() {
            Some(s) if (s as usize) <= step => {
                kept += line;
                kept.push('\n');
            }
            _ => break,
        }
    }
    write_atomic(path, kept.as_bytes())
}

/// What a checkpoint says besides the tensors.
#[derive(Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    ema: Option<f64>,
    seconds: f64,
    config: TrainConfig,
    /// The command that started the run, then each resume's with the step it resumed from
    /// (empty in checkpoints written before commands were recorded).
    #[serde(default)]
    commands: Vec<String>,
    /// The provenance of the model the run started from (`--init`), for its model card.
    #[serde(default)]
    init_provenance: serde_json::Value,
}

/// A resumable state: one file, written atomically, checksummed.
struct Checkpoint {
    state: CheckpointState,
    /// Burnpack bytes of the model's record (parameter ids included, which key the optimiser).
    model: Vec<u8>,
    /// Burnpack bytes of the optimiser's state.
    optimizer: Vec<u8>,
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"AMZCKPT1";

impl Checkpoint {
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let state = serde_json::to_vec(&self.state)?;
        let mut out = CHECKPOINT_MAGIC.to_vec();
        for part in [&state, &self.model, &self.optimizer] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        write_atomic(path, &out)
    }

    fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = fs::read(path).with_context(|| {
            format!(
                "reading {} (no checkpoint to resume from; start without --resume)",
                path.display()
            )
        })?;
        let bad = || anyhow::anyhow!("{} is not a valid checkpoint", path.display());
        if bytes.len() < 12 || &bytes[..8] != CHECKPOINT_MAGIC {
            return Err(bad());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(anyhow::anyhow!(
                "{} is damaged (checksum mismatch)",
                path.display()
            ));
        }
        let mut rest = &body[8..];
        let mut parts = Vec::new();
        for _ in 0..3 {
            if rest.len() < 8 {
                return Err(bad());
            }
            let n = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            rest = &rest[8..];
            if rest.len() < n {
                return Err(bad());
            }
            parts.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let optimizer = parts.pop().expect("three parts");
        let model = parts.pop().expect("three parts");
        let mut state: CheckpointState = serde_json::from_slice(&parts[0])
            .with_context(|| format!("{}: bad state record", path.display()))?;
        state.config = state.config.upgrade();
        Ok(Self {
            state,
            model,
            optimizer,
        })
    }
}

fn scalars(losses: &[Tensor<1>]) -> Vec<f64> {
    losses
        .iter()
        .map(|l| l.clone().into_scalar::<f32>() as f64)
        .collect()
}

/// One meta-step's gradients over `data` split across `replicas`, data parallel the way Burn's
/// multi-device training does it: each device gets a copy of the model ([`Module::fork`]) and a
/// contiguous share of the tasks, runs the greedy loss and its backward pass on its own thread,
/// and its gradients move to the first device ([`GradientsParams::to_device`]), where a
/// [`GradientsAccumulator`] sums them. Each share's objective is weighted by its share of the
/// tasks, so the sum is the gradient of the objective over all of `data`; the balanced objective
/// divides by the step losses of the whole batch, which the threads exchange before their
/// backward passes. Returns the gradients and the per-step losses over all tasks.
fn data_parallel_grads(
    model: &Amortizer,
    replicas: &[Device],
    data: &[TaskData],
    sched: &[Vec<usize>],
    cfg: &TrainConfig,
    step: usize,
) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
    let n = replicas.len();
    let total = data.len();
    let shares: Vec<std::ops::Range<usize>> =
        (0..n).map(|r| r * total / n..(r + 1) * total / n).collect();
    let mut batches = Vec::with_capacity(n);
    for (device, share) in replicas.iter().zip(&shares) {
        let ad = device.clone().autodiff();
        let refs: Vec<_> = data[share.clone()].iter().collect();
        let batch = TaskBatch::new(&refs, &ad).map_err(|e| anyhow::anyhow!(e))?;
        batches.push((ad, batch));
    }
    let losses: Mutex<Vec<Vec<f64>>> = Mutex::new(vec![Vec::new(); n]);
    let barrier = Barrier::new(n);
    let main = replicas[0].clone().autodiff();
    let results: Vec<Option<GradientsParams>> = std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .into_iter()
            .zip(&shares)
            .enumerate()
            .map(|(r, ((ad, batch), share))| {
                let (losses, barrier, main, shares) = (&losses, &barrier, &main, &shares);
                s.spawn(move || {
                    // Each device its own random stream (implicit prefixes, full-attention sizes).
                    let seed = step_seed(cfg.budget.seed ^ 0xda7a_0000 ^ r as u64, step);
                    let mut rng = StdRng::seed_from_u64(seed);
                    burn::tensor::Device::seed(&ad, seed);
                    // Every worker reaches the barrier, even one whose forward pass panicked (its
                    // panic is re-raised after it), so that the others never wait forever.
                    let forward = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let local = model.clone().fork(&ad);
                        let loss = greedy_loss_with(
                            &local,
                            &batch,
                            sched,
                            &mut rng,
                            &ad,
                            cfg.full_context_share,
                        );
                        losses.lock().unwrap_or_else(|e| e.into_inner())[r] =
                            scalars(&loss.per_step);
                        (local, loss)
                    }));
                    barrier.wait();
                    let (local, loss) = forward.unwrap_or_else(|p| std::panic::resume_unwind(p));
                    let weight = share.len() as f32 / total as f32;
                    let objective = match cfg.step_weighting {
                        StepWeighting::Mean => loss.total.clone() * weight,
                        StepWeighting::Balanced => {
                            let all = losses.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            let k = loss.per_step.len().max(1) as f32;
                            let terms: Vec<Tensor<1>> = loss
                                .per_step
                                .iter()
                                .enumerate()
                                .map(|(t, l)| {
                                    let whole = weighted_mean(&all, shares, total, t).max(1e-12);
                                    l.clone() * (weight / (whole as f32 * k))
                                })
                                .collect();
                            Tensor::cat(terms, 0).sum()
                        }
                    };
                    GradientsParams::from_grads(objective.backward(), &local)
                        .to_device(main, &local)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let mut acc = GradientsAccumulator::<Amortizer>::new();
    for (r, grads) in results.into_iter().enumerate() {
        let grads = grads.ok_or_else(|| {
            anyhow::anyhow!("step {step}: the worker of device {r} failed (its panic is above)")
        })?;
        acc.accumulate(model, grads);
    }
    let all = losses.into_inner().unwrap_or_else(|e| e.into_inner());
    let per_step = (0..all[0].len())
        .map(|t| weighted_mean(&all, &shares, total, t))
        .collect();
    Ok((acc.grads(), per_step))
}

/// One meta-step's gradients of the greedy objective over `data` and its per-step losses: on the
/// one device, or split across `replicas` ([`data_parallel_grads`]). `rng` draws the one-device
/// pass's random choices (the replicas seed their own from `step`).
pub(crate) fn meta_grads(
    model: &Amortizer,
    replicas: &[Device],
    data: &[TaskData],
    sched: &[Vec<usize>],
    rng: &mut StdRng,
    cfg: &TrainConfig,
    step: usize,
) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
    if replicas.len() > 1 {
        return data_parallel_grads(model, replicas, data, sched, cfg, step);
    }
    let ad = replicas[0].clone().autodiff();
    let (grads, loss) = greedy_grads(
        model,
        data,
        sched,
        rng,
        &ad,
        &Objective {
            weighting: cfg.step_weighting,
            weight: 1.0,
            full_share: cfg.full_context_share,
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok((grads, scalars(&loss.per_step)))
}

/// Step `t`'s mean loss over all tasks, from each share's mean.
fn weighted_mean(
    losses: &[Vec<f64>],
    shares: &[std::ops::Range<usize>],
    total: usize,
    t: usize,
) -> f64 {
    losses
        .iter()
        .zip(shares)
        .map(|(l, share)| l[t] * share.len() as f64)
        .sum::<f64>()
        / total as f64
}

fn save(
    cfg: &TrainConfig,
    model: &amortize::Amortizer,
    path: &Path,
    commands: &[String],
    init_provenance: &serde_json::Value,
    step: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let mut provenance = serde_json::json!({
        "command": commands.first().map_or("", String::as_str),
        "resumed": commands.get(1..).unwrap_or_default(),
        "seed": cfg.budget.seed,
        "meta_steps": step,
        "tasks_per_step": cfg.budget.tasks_per_step,
        "lr": cfg.budget.lr,
        "train_seconds": seconds,
    });
    if let Some(init) = &cfg.init {
        provenance["init"] = serde_json::json!({
            "path": init.path,
            "weights_crc32": init.weights_crc32,
            "n_layers": init.n_layers,
            "provenance": init_provenance,
        });
    }
    let header = BundleHeader {
        model: cfg.model.clone(),
        task: cfg.task.clone(),
        refine: cfg.refine.clone(),
        provenance,
    };
    let bytes = ModelBundle::from_model(header, model.clone())?.encode();
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
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
            },
            checkpoint_every: 0,
            model: AmortizerConfig::new(task.dims(), Regime::Parametric, signal),
            task,
            refine: RefineConfig::new(),
            signal_names: 2,
            horizon: Some(20),
            step_weighting: StepWeighting::Mean,
            full_context_share: 0.0,
            data_parallel: 1,
            data_parallel_changes: Vec::new(),
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
            },
            model: vec![1, 2, 3, 4],
            optimizer: vec![9; 10],
        };
        ck.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.state.step, 7);
        assert_eq!(back.state.config, ck.state.config);
        assert_eq!((back.model, back.optimizer), (ck.model, ck.optimizer));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = Checkpoint::read(&path).err().unwrap().to_string();
        assert!(err.contains("damaged"), "{err}");
        fs::write(&path, &bytes[..6]).unwrap();
        let err = Checkpoint::read(&path).err().unwrap().to_string();
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
