//! The one meta-training loop, written out, for every model the trainer trains: sample tasks, one
//! meta-step's gradients, one optimiser step, log, evaluate on fresh tasks every so often,
//! checkpoint atomically, and resume from a checkpoint exactly as if the run had never stopped.
//! What differs between the amortizer (`amortizer.rs`) and the SCM order model (`order.rs`) is a
//! [`Learner`]: how the weights start, what a meta-step's gradients are, how the model is scored
//! on held-out tasks and what its file's header says.

mod amortizer;
mod checkpoint;
mod order;
mod parallel;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use amortize::meta::{adamw, step_seed};
use amortize::weights::{Bundle, Header};
use anyhow::Context;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, SeedableRng};
use serde::{de::DeserializeOwned, Serialize};

pub use amortizer::{resumed_on, AmortizerRun, InitFrom, TrainConfig};
use checkpoint::{Checkpoint, CheckpointState};
pub use order::{mechanisms, OrderRun, OrderTrainConfig};
pub(crate) use parallel::meta_grads;

use crate::run::{write_atomic, Budget, RunFiles, StepRecord, FROM_STEP, INTERRUPTED};

/// A run's configuration, as `config.json` and every checkpoint record it.
pub trait RunConfig: Clone + PartialEq + Serialize + DeserializeOwned {
    /// Seed, steps, tasks per step, learning-rate schedule, evaluations.
    fn budget(&self) -> &Budget;
    /// Checks every field a user can set, naming the one at fault.
    fn validate(&self) -> anyhow::Result<()>;
    /// The configuration in today's terms (a file written by an older build may use old names).
    fn upgrade(self) -> Self {
        self
    }
    /// The configuration as it stood when step `step` was done (a resumed run may have changed
    /// settings from a later step on).
    fn as_of(&self, _step: usize) -> Self {
        self.clone()
    }
}

/// The model a learner trains.
pub type Model<L> = <<L as Learner>::Header as Header>::Model;

/// One kind of model the loop trains.
pub trait Learner {
    /// The run's configuration.
    type Config: RunConfig;
    /// The header of the model's file (and of the weights a checkpoint holds).
    type Header: Header;
    /// The configuration trained.
    fn config(&self) -> &Self::Config;
    /// The device that holds the model and the optimiser (the first, with several).
    fn device(&self) -> &Device;
    /// The weights a new run starts from, on `ad` (the autodiff device): drawn from the seed,
    /// or read from a file; and how that file's model was made (null for a fresh start).
    fn init(&self, ad: &Device) -> anyhow::Result<(Model<Self>, serde_json::Value)>;
    /// Meta-step `step`'s gradients and its per-step losses, its random choices from `rng`.
    fn grads(
        &self,
        model: &Model<Self>,
        step: usize,
        rng: &mut StdRng,
    ) -> anyhow::Result<(GradientsParams, Vec<f64>)>;
    /// The held-out evaluation of `model` (without autodiff): the log record and a line to print.
    fn held_out(&self, model: &Model<Self>) -> anyhow::Result<(serde_json::Value, String)>;
    /// The header of the model's file, with `provenance`.
    fn header(&self, provenance: serde_json::Value) -> Self::Header;
    /// Adds what this kind of model says of itself to its card's `provenance`: where a run
    /// started from (`init`, its file's provenance) and the last held-out evaluation.
    fn card(
        &self,
        provenance: &mut serde_json::Value,
        init: &serde_json::Value,
        last_eval: &serde_json::Value,
    );
}

/// The seed of the held-out tasks: their own stream, the same at every evaluation.
fn held_out_seed(budget: &Budget) -> u64 {
    budget.seed.wrapping_add(0x5eed_e7a1)
}

/// A held-out evaluation as the progress bar prints it: `metric k=1: v, k=5: v, …`.
fn eval_line(metric: &str, per_step: &[(usize, f64)]) -> String {
    let steps: Vec<String> = per_step
        .iter()
        .map(|(s, v)| format!("k={s}: {v:.4}"))
        .collect();
    format!("{metric} {}", steps.join(", "))
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
struct Progress<L: Learner + ?Sized> {
    model: Model<L>,
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
    /// The last held-out evaluation (null before the first).
    last_eval: serde_json::Value,
}

impl<L: Learner> Progress<L> {
    /// Continues from the checkpoint in `files`: the log is cut back to its step.
    fn resume(learner: &L, files: &RunFiles, command: &str, ad: &Device) -> anyhow::Result<Self> {
        let cfg = learner.config();
        let ck = Checkpoint::<L::Config>::read(&files.checkpoint)?;
        anyhow::ensure!(
            ck.state.config == cfg.as_of(ck.state.step),
            "{} was written by another configuration",
            files.checkpoint.display()
        );
        let mut commands = ck.state.commands.clone();
        if ck.state.step < cfg.budget().steps {
            commands.push(format!("{command}{FROM_STEP}{})", ck.state.step + 1));
        }
        // A setting changed on resuming is part of the run's configuration from now on.
        write_atomic(&files.config, serde_json::to_string_pretty(cfg)?.as_bytes())?;
        let model = Bundle {
            header: learner.header(serde_json::Value::Null),
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
            last_eval: ck.state.last_eval,
        })
    }

    /// A new run: its configuration and an empty log written, the model from the learner.
    fn start(learner: &L, files: &RunFiles, command: &str, ad: &Device) -> anyhow::Result<Self> {
        let cfg = learner.config();
        write_atomic(&files.config, serde_json::to_string_pretty(cfg)?.as_bytes())?;
        fs::File::create(&files.log)
            .with_context(|| format!("creating {}", files.log.display()))?;
        burn::tensor::Device::seed(ad, cfg.budget().seed);
        let (model, init_provenance) = learner.init(ad)?;
        Ok(Self {
            model,
            optim: adamw().init(),
            next_step: 1,
            ema: None,
            seconds_before: 0.0,
            commands: vec![command.to_string()],
            init_provenance,
            last_eval: serde_json::Value::Null,
        })
    }

    /// Writes the model as of `step` to `path`, with its card.
    fn save(&self, learner: &L, path: &Path, step: usize, seconds: f64) -> anyhow::Result<()> {
        let budget = learner.config().budget();
        let mut provenance = serde_json::json!({
            "command": self.commands.first().map_or("", String::as_str),
            "resumed": self.commands.get(1..).unwrap_or_default(),
            "seed": budget.seed,
            "meta_steps": step,
            "tasks_per_step": budget.tasks_per_step,
            "lr": budget.lr,
            "train_seconds": seconds,
        });
        learner.card(&mut provenance, &self.init_provenance, &self.last_eval);
        let bundle = Bundle::from_model(learner.header(provenance), self.model.valid())?;
        write_atomic(path, &bundle.encode())
    }

    /// Writes the checkpoint after `step`, and a model snapshot to evaluate while the run goes
    /// on (the final save replaces it).
    fn checkpoint(
        &self,
        learner: &L,
        files: &RunFiles,
        step: usize,
        seconds: f64,
    ) -> anyhow::Result<()> {
        let model = self.model.valid().into_record().into_bytes()?.to_vec();
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
                config: learner.config().clone(),
                commands: self.commands.clone(),
                init_provenance: self.init_provenance.clone(),
                last_eval: self.last_eval.clone(),
            },
            model,
            optimizer,
        }
        .write(&files.checkpoint)?;
        if step < learner.config().budget().steps {
            self.save(learner, &files.model, step, seconds)?;
        }
        Ok(())
    }
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

/// Trains `learner`'s model, writing `config.json`, `log.jsonl`, `checkpoint.bin` (every
/// `checkpoint_every` steps of the budget, at the end and on Ctrl-C) and `model.amz` into `out`. With
/// `resume`, continues from `out`'s checkpoint: the log is cut back to the checkpoint's step and
/// the run goes on exactly as if it had never stopped.
pub fn train<L: Learner>(
    learner: &L,
    out: &Path,
    command: &str,
    resume: bool,
) -> anyhow::Result<Ended> {
    let cfg = learner.config();
    cfg.validate()?;
    let budget = cfg.budget();
    let files = RunFiles::new(out);
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ad = learner.device().clone().autodiff();
    let mut run = if resume {
        Progress::resume(learner, &files, command, &ad)?
    } else {
        Progress::start(learner, &files, command, &ad)?
    };
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(&files.log)
        .with_context(|| format!("opening {}", files.log.display()))?;
    if run.next_step > budget.steps {
        run.save(learner, &files.model, budget.steps, run.seconds_before)?;
        return Ok(Ended::Finished(files.model));
    }

    let started = Instant::now();
    let before = run.seconds_before;
    let seconds = move |started: &Instant| before + started.elapsed().as_secs_f64();
    let bar = progress_bar(budget.steps, run.next_step - 1);
    for step in run.next_step..=budget.steps {
        let mut rng = StdRng::seed_from_u64(step_seed(budget.seed, step));
        burn::tensor::Device::seed(&ad, step_seed(budget.seed ^ 0xde71ce, step));
        let (grads, per_step) = learner.grads(&run.model, step, &mut rng)?;
        let lr = budget.lr_at(step);
        run.model = run.optim.step(lr, run.model, grads);

        let mut record = StepRecord::new(step, &per_step, lr, seconds(&started))?;
        let smoothed = record.smoothed(&mut run.ema);
        let last = step == budget.steps;
        if last || (budget.eval_every > 0 && step.is_multiple_of(budget.eval_every)) {
            let (eval, line) = learner.held_out(&run.model.valid())?;
            bar.println(format!("step {step}: eval {line}"));
            run.last_eval = eval.clone();
            record.eval = Some(eval);
        }
        writeln!(log, "{}", serde_json::to_string(&record)?)?;
        log.flush()?;
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        if last
            || interrupted
            || (budget.checkpoint_every > 0 && step.is_multiple_of(budget.checkpoint_every))
        {
            log.sync_data()?;
            run.checkpoint(learner, &files, step, seconds(&started))?;
        }
        bar.set_message(format!("loss {smoothed:.4} lr {lr:.2e}"));
        bar.inc(1);
        if interrupted && !last {
            bar.abandon();
            return Ok(Ended::Interrupted(step));
        }
    }
    bar.finish();
    run.save(learner, &files.model, budget.steps, seconds(&started))?;
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
