//! `amortize bench`: the settings of `train`, timed (`crate::bench`), optionally beside PyTorch.

use clap::ArgMatches;

use super::train::{set_explicitly, start_from, train_config};
use crate::cli::*;
use crate::device;
use crate::eval::markdown_table;
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
    let measured = [
        (
            "meta-training step (sample, greedy k-step loss, backward, AdamW)".to_string(),
            format!("{:.1} ms", r.train_step_ms),
        ),
        (
            format!("one refinement step, all tasks, b = {bs} points (inference)"),
            format!("{:.2} ms", r.refine_step_ms),
        ),
        (
            format!("k = {k} refinement steps over {k} × {bs} points"),
            format!("{:.2} ms", r.k_steps_ms),
        ),
        (
            format!(
                "1 refinement step over all {} points",
                (k * bs).min(cfg.task.context_len())
            ),
            format!("{:.2} ms", r.one_step_ms),
        ),
    ];
    print!(
        "{}",
        markdown_table(
            ["measurement".to_string(), chosen.description.clone()],
            measured.map(|(what, ms)| [what, ms]),
        )
    );
    if let Some(python) = &b.pytorch {
        let t = bench::pytorch(python, &b.pytorch_script, &cfg, b.warmup_iters, b.iters)?;
        let row = |what: &str, ours: f64, theirs: f64, digits: usize| {
            [
                what.to_string(),
                format!("{ours:.digits$} ms"),
                format!("{theirs:.digits$} ms"),
                format!("{:.2}×", ours / theirs),
            ]
        };
        println!();
        print!(
            "{}",
            markdown_table(
                [
                    "same model and step".to_string(),
                    "this trainer".into(),
                    t.framework.clone(),
                    "ratio (ours / PyTorch)".into(),
                ],
                [
                    row("meta-training step", r.train_step_ms, t.train_step_ms, 1),
                    row("refinement step", r.refine_step_ms, t.refine_step_ms, 2),
                ],
            )
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
