//! `amortize bench`: time per meta-training step and per refinement step on the chosen backend,
//! the paper's runtime claim (k steps over k·b points against one step over all k·b points), and
//! optionally the same model and step in PyTorch on the same machine in the same run.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use amortize::meta::adamw;
use amortize::refine::{refine, schedule, TaskBatch};
use amortize::task::Sampler;
use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use rand::{rngs::StdRng, SeedableRng};

use crate::train::{meta_grads, TrainConfig};

/// Medians in milliseconds.
pub struct BenchResult {
    /// One meta-training step: sample tasks, greedy k-step loss, backward, AdamW.
    pub train_step_ms: f64,
    /// One refinement step of all tasks over a mini-batch of b points (inference).
    pub refine_step_ms: f64,
    /// k refinement steps over k mini-batches of b points.
    pub k_steps_ms: f64,
    /// One refinement step over all k·b points at once.
    pub one_step_ms: f64,
    /// Trainable parameters.
    pub parameters: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<F: FnMut() -> anyhow::Result<()>>(
    warmup: usize,
    iters: usize,
    mut f: F,
) -> anyhow::Result<f64> {
    let mut ms = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        f()?;
        if i >= warmup {
            ms.push(1e3 * t.elapsed().as_secs_f64());
        }
    }
    Ok(median(ms))
}

/// Times the configuration's steps. The meta-training step runs data-parallel over `replicas`
/// when there are several (as `amortize train --data-parallel` does); inference runs on the first.
pub fn bench(
    cfg: &TrainConfig,
    sampler: &Sampler,
    replicas: &[Device],
    warmup: usize,
    iters: usize,
) -> anyhow::Result<BenchResult> {
    let device = &replicas[0];
    let ad = device.clone().autodiff();
    ad.seed(cfg.budget.seed);
    let mut model = cfg.model.init(&ad);
    let parameters = model.num_params();
    let mut optim = adamw().init();
    let mut rng = StdRng::seed_from_u64(cfg.budget.seed);
    let (n, b, k) = (
        cfg.task.context_len(),
        cfg.refine.batch_size,
        cfg.refine.steps,
    );
    let mut step = 0;
    let train_step_ms = time(warmup, iters, || {
        step += 1;
        let data: Vec<_> = (0..cfg.budget.tasks_per_step)
            .map(|_| sampler.sample(&mut rng))
            .collect();
        let sched = schedule(n, b, k, &mut rng);
        // The trainer's own meta-step (one device or data-parallel), its losses read back.
        let (grads, _) = meta_grads(&model, replicas, &data, &sched, &mut rng, cfg, step)?;
        model = optim.step(1e-3, model.clone(), grads);
        Ok(())
    })?;

    let valid = model.valid();
    let data: Vec<_> = (0..cfg.budget.tasks_per_step)
        .map(|_| sampler.sample(&mut rng))
        .collect();
    let refs: Vec<_> = data.iter().collect();
    let batch = TaskBatch::new(&refs, device).map_err(|e| anyhow::anyhow!(e))?;
    let read = |states: Vec<burn::tensor::Tensor<3>>| {
        let _ = states
            .last()
            .expect("refine returns the start")
            .clone()
            .sum()
            .into_scalar::<f32>();
    };
    let refine_step_ms = time(warmup, iters, || {
        let sched = schedule(n, b, 1, &mut rng);
        read(refine(&valid, &batch, &sched, device));
        Ok(())
    })?;
    let k_steps_ms = time(warmup, iters, || {
        let sched = schedule(n, b, k, &mut rng);
        read(refine(&valid, &batch, &sched, device));
        Ok(())
    })?;
    let one_step_ms = time(warmup, iters, || {
        let sched = schedule(n, (k * b).min(n), 1, &mut rng);
        read(refine(&valid, &batch, &sched, device));
        Ok(())
    })?;
    Ok(BenchResult {
        train_step_ms,
        refine_step_ms,
        k_steps_ms,
        one_step_ms,
        parameters,
    })
}

/// What the PyTorch script printed.
pub struct TorchResult {
    /// e.g. "PyTorch 2.5.1".
    pub framework: String,
    /// Parameters of its model (should equal ours).
    pub parameters: usize,
    /// Median ms per meta-training step.
    pub train_step_ms: f64,
    /// Median ms per refinement step.
    pub refine_step_ms: f64,
}

/// Runs `trainer/benches/pytorch_step.py` with `python` for the same configuration.
pub fn pytorch(
    python: &str,
    script: &Path,
    cfg: &TrainConfig,
    warmup: usize,
    iters: usize,
) -> anyhow::Result<TorchResult> {
    use amortize::regime::Regime;
    use amortize::signal::Signal;
    use amortize::task::TaskConfig;
    let TaskConfig::LinearRegression(task) = &cfg.task else {
        anyhow::bail!("--pytorch: the PyTorch script implements the linear-regression task only");
    };
    if cfg.model.regime != Regime::Parametric
        || cfg.model.signal != Signal::Observations
        || cfg.model.history != 0
    {
        anyhow::bail!(
            "--pytorch: the PyTorch script implements the parametric regime with the observation signal and no history"
        );
    }
    let m = &cfg.model;
    let args: Vec<String> = [
        ("--dim", task.dim.to_string()),
        ("--context", task.context.to_string()),
        ("--queries", task.queries.to_string()),
        ("--noise-std", task.noise_std.to_string()),
        ("--tasks", cfg.budget.tasks_per_step.to_string()),
        ("--k", cfg.refine.steps.to_string()),
        ("--batch-size", cfg.refine.batch_size.to_string()),
        ("--d-model", m.d_model.to_string()),
        ("--n-heads", m.n_heads.to_string()),
        ("--n-layers", m.n_layers.to_string()),
        ("--d-ff", m.d_ff.to_string()),
        ("--iters", iters.to_string()),
        ("--warmup", warmup.to_string()),
        ("--seed", cfg.budget.seed.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect();
    let out = Command::new(python)
        .arg(script)
        .args(&args)
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "--pytorch: the script failed: {}",
            err.lines().last().unwrap_or("no output")
        );
    }
    let v: serde_json::Value = serde_json::from_slice(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .as_bytes(),
    )
    .context("--pytorch: the script printed no JSON line")?;
    let num = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| anyhow::anyhow!("--pytorch: no {k} in the script's output"))
    };
    Ok(TorchResult {
        framework: v["framework"].as_str().unwrap_or("PyTorch").to_string(),
        parameters: num("parameters")? as usize,
        train_step_ms: num("train_step_ms")?,
        refine_step_ms: num("refine_step_ms")?,
    })
}
