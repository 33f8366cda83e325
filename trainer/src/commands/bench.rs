//! `amortize bench`: the settings of `train`, timed (`crate::bench`), optionally beside PyTorch.

use clap::ArgMatches;

use super::train::{set_explicitly, start_from, train_config};
use crate::cli::*;
use crate::device;
use crate::train::RunConfig;
use crate::{bench, data};

pub fn run(b: BenchArgs, m: &ArgMatches) -> anyhow::Result<()> {
    if b.iters == 0 || b.iters > 10_000 || b.warmup_iters > 10_000 {
        anyhow::bail!("--iters must be in 1..=10000 and --warmup-iters in 0..=10000");
    }
    let a = effective_train_args(b.train, m)?;
    let mut cfg = train_config(&a)?;
    if let Some(path) = &a.init {
        // Times the file's architecture and task (speed does not depend on the weights).
        start_from(&mut cfg, path, &set_explicitly(&a, m)?)?;
    }
    cfg.validate()?;
    let sampler = data::sampler(&cfg.task, &data::data_dir(a.data.as_deref()), None)?;
    let chosen = device::choose_replicas(a.device, cfg.data_parallel)?;
    eprintln!("device: {}", chosen.description);
    let r = bench::bench(&cfg, &sampler, &chosen.replicas, b.warmup_iters, b.iters)?;
    let (k, bs) = (cfg.refine.steps, cfg.refine.batch_size);
    println!(
        "{} / {} on {}, {} tasks per step, k = {k}, b = {bs}, d_model {}, {} layers, {} parameters; {} threads; median of {} iterations\n",
        cfg.model.regime,
        cfg.model.signal,
        cfg.task.name(),
        cfg.budget.tasks_per_step,
        cfg.model.d_model,
        cfg.model.n_layers,
        r.parameters,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        b.iters
    );
    println!("| measurement | {} |", chosen.description);
    println!("|---|---|");
    println!(
        "| meta-training step (sample, greedy k-step loss, backward, AdamW) | {:.1} ms |",
        r.train_step_ms
    );
    println!(
        "| one refinement step, all tasks, b = {bs} points (inference) | {:.2} ms |",
        r.refine_step_ms
    );
    println!(
        "| k = {k} refinement steps over {k} × {bs} points | {:.2} ms |",
        r.k_steps_ms
    );
    println!(
        "| 1 refinement step over all {} points | {:.2} ms |",
        (k * bs).min(cfg.task.context_len()),
        r.one_step_ms
    );
    if let Some(python) = &b.pytorch {
        let t = bench::pytorch(python, &b.pytorch_script, &cfg, b.warmup_iters, b.iters)?;
        println!(
            "\n| same model and step | this trainer | {} | ratio (ours / PyTorch) |\n|---|---|---|---|",
            t.framework
        );
        println!(
            "| meta-training step | {:.1} ms | {:.1} ms | {:.2}× |",
            r.train_step_ms,
            t.train_step_ms,
            r.train_step_ms / t.train_step_ms
        );
        println!(
            "| refinement step | {:.2} ms | {:.2} ms | {:.2}× |",
            r.refine_step_ms,
            t.refine_step_ms,
            r.refine_step_ms / t.refine_step_ms
        );
        if t.parameters != r.parameters {
            println!(
                "\nnote: parameter counts differ (ours {}, PyTorch {})",
                r.parameters, t.parameters
            );
        }
    }
    Ok(())
}
