//! The meta-training loop, written out: sample tasks, run the greedy k-step loss, one optimiser
//! step, log, evaluate on fresh tasks every so often, checkpoint atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use amortize::model::AmortizerConfig;
use amortize::refine::{greedy_loss, schedule, TaskBatch};
use amortize::task::{Sampler, TaskConfig};
use amortize::weights::{BundleHeader, ModelBundle};
use amortize::RefineConfig;
use anyhow::Context;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::eval::evaluate;

/// Everything a run depends on; a run is reproducible from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seed of the task stream, the mini-batch schedules and the initial weights.
    pub seed: u64,
    /// Meta-training steps (optimiser steps).
    pub steps: usize,
    /// Tasks per meta-training step.
    pub tasks_per_step: usize,
    /// Peak learning rate (AdamW), after a linear warm-up, decayed by a cosine to 10%.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Evaluate on fresh tasks every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Tasks per periodic evaluation.
    pub eval_tasks: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// The amortizer's architecture.
    pub model: AmortizerConfig,
    /// The task family.
    pub task: TaskConfig,
    /// Steps k and mini-batch size b.
    pub refine: RefineConfig,
}

impl TrainConfig {
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
        if self.steps == 0 {
            anyhow::bail!("steps must be at least 1");
        }
        if self.tasks_per_step == 0 || self.tasks_per_step > 100_000 {
            anyhow::bail!(
                "tasks_per_step must be in 1..=100000, got {}",
                self.tasks_per_step
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            anyhow::bail!("lr must be in (0, 1), got {}", self.lr);
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
}

/// The learning rate at `step` (1-based): linear warm-up, then a cosine decay to 10% of `lr`.
pub fn learning_rate(cfg: &TrainConfig, step: usize) -> f64 {
    if step <= cfg.warmup {
        return cfg.lr * step as f64 / cfg.warmup.max(1) as f64;
    }
    let span = (cfg.steps - cfg.warmup).max(1) as f64;
    let t = ((step - cfg.warmup) as f64 / span).min(1.0);
    cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Trains per `cfg` on `device`, writing `config.json`, `log.jsonl` and `model.amz` into `out`.
pub fn train(
    cfg: &TrainConfig,
    sampler: &Sampler,
    device: &Device,
    out: &Path,
    command: &str,
) -> anyhow::Result<PathBuf> {
    cfg.validate()?;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(
        &out.join("config.json"),
        serde_json::to_string_pretty(cfg)?.as_bytes(),
    )?;
    let log_path = out.join("log.jsonl");
    let mut log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    let ad = device.clone().autodiff();
    let task = &cfg.task;
    anyhow::ensure!(
        &sampler.config == task,
        "the sampler is not the configured task"
    );
    burn::tensor::Device::seed(&ad, cfg.seed);
    let mut model = cfg.model.init(&ad);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.0)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let started = Instant::now();
    let bar = ProgressBar::new(cfg.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
        )
        .expect("valid template"),
    );
    let mut ema: Option<f64> = None;
    let model_path = out.join("model.amz");
    for step in 1..=cfg.steps {
        let data: Vec<_> = (0..cfg.tasks_per_step)
            .map(|_| sampler.sample(&mut rng))
            .collect();
        let refs: Vec<_> = data.iter().collect();
        let batch = TaskBatch::new(&refs, &ad).map_err(|e| anyhow::anyhow!(e))?;
        let sched = schedule(
            task.context_len(),
            cfg.refine.batch_size,
            cfg.refine.steps,
            &mut rng,
        );
        let loss = greedy_loss(&model, &batch, &sched, &mut rng, &ad);
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        let lr = learning_rate(cfg, step);
        model = optim.step(lr, model, grads);

        let per_step: Vec<f64> = loss
            .per_step
            .iter()
            .map(|l| l.clone().into_scalar::<f32>() as f64)
            .collect();
        let total = per_step.iter().sum::<f64>() / per_step.len() as f64;
        if !total.is_finite() {
            anyhow::bail!("the loss became {total} at step {step}; lower --lr");
        }
        ema = Some(ema.map_or(total, |e| 0.98 * e + 0.02 * total));
        let mut record = serde_json::json!({
            "step": step,
            "loss": total,
            "loss_first_step": per_step[0],
            "loss_last_step": per_step[per_step.len() - 1],
            "lr": lr,
            "seconds": started.elapsed().as_secs_f64(),
        });
        let eval_now = step == cfg.steps || (cfg.eval_every > 0 && step % cfg.eval_every == 0);
        if eval_now {
            let report = evaluate(
                &model.valid(),
                sampler,
                &cfg.refine,
                cfg.eval_tasks,
                // Evaluation tasks come from their own stream, the same at every evaluation.
                cfg.seed.wrapping_add(0x5eed_e7a1),
                &eval_steps(cfg.refine.steps),
                device,
            )?;
            record["eval"] = serde_json::to_value(&report)?;
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
        }
        writeln!(log, "{record}")?;
        if step == cfg.steps || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) {
            save(
                cfg,
                &model.valid(),
                &model_path,
                command,
                step,
                started.elapsed().as_secs_f64(),
            )?;
        }
        bar.set_message(format!("loss {:.4} lr {lr:.2e}", ema.unwrap_or(total)));
        bar.inc(1);
    }
    bar.finish();
    Ok(model_path)
}

/// The steps reported by evaluations: 1, 5, 10 and k, up to k.
pub fn eval_steps(k: usize) -> Vec<usize> {
    let mut s: Vec<usize> = [1, 5, 10, k].into_iter().filter(|&s| s <= k).collect();
    s.sort();
    s.dedup();
    s
}

fn save(
    cfg: &TrainConfig,
    model: &amortize::Amortizer,
    path: &Path,
    command: &str,
    step: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let header = BundleHeader {
        model: cfg.model.clone(),
        task: cfg.task.clone(),
        refine: cfg.refine.clone(),
        provenance: serde_json::json!({
            "command": command,
            "seed": cfg.seed,
            "meta_steps": step,
            "tasks_per_step": cfg.tasks_per_step,
            "lr": cfg.lr,
            "train_seconds": seconds,
        }),
    };
    let bytes = ModelBundle::from_model(header, model.clone())?.encode();
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file, even if training is killed mid-write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
