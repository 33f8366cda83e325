//! Topological orders of structural causal models (paper §9.4) from the command line:
//! `train --task scm` meta-trains the sample × node attention model of `amortize::model::order`,
//! and `eval` scores its orders (the fraction of the graph's edges oriented right) after 1, 5 and
//! 10 refinement steps, in distribution and out of it (other graph families, Laplace noise,
//! disjoint mechanism parameters), per mechanism (linear, RFF).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use amortize::baseline::{r2_sort_order, var_sort_order};
use amortize::meta::{adamw, step_seed};
use amortize::model::order::{greedy_order_loss, predict_orders, OrderBatch, OrderModelConfig};
use amortize::refine::schedule;
use amortize::task::scm::{order_error, Mechanism, ScmConfig, ScmTask, Shift};
use amortize::weights::{OrderBundle, OrderHeader};
use amortize::RefineConfig;
use anyhow::Context;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::eval::{eval_steps, EvalReport, ORDER_ERROR as METRIC};
use crate::run::{write_atomic, Budget, RunFiles, StepRecord, INTERRUPTED};

/// Everything an SCM run depends on; a run is reproducible from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTrainConfig {
    /// Seed (of the SCM stream, the removed-node sets, the schedules and the initial weights),
    /// steps, SCMs per step, learning-rate schedule, evaluations.
    #[serde(flatten)]
    pub budget: Budget,
    /// The architecture.
    pub model: OrderModelConfig,
    /// The SCM family.
    pub task: ScmConfig,
    /// Refinement steps k and samples per mini-batch b.
    pub refine: RefineConfig,
}

impl OrderTrainConfig {
    /// Checks every field, naming the one at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.budget.validate()?;
        self.model.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.task
            .validate()
            .map_err(|e| anyhow::anyhow!("task: {e}"))?;
        self.refine.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(())
    }
}

/// Parses `--mechanism`.
pub fn mechanisms(name: &str) -> anyhow::Result<Vec<Mechanism>> {
    Ok(match name {
        "linear" => vec![Mechanism::Linear],
        "rff" => vec![Mechanism::Rff],
        "both" => vec![Mechanism::Linear, Mechanism::Rff],
        other => anyhow::bail!("--mechanism: unknown {other:?} (expected linear, rff or both)"),
    })
}

/// Meta-trains per `cfg`, writing `config.json`, `log.jsonl` and `model.amz` into `out`.
/// Ctrl-C stops after the current step and writes the model trained so far.
pub fn train(
    cfg: &OrderTrainConfig,
    device: &Device,
    out: &Path,
    command: &str,
) -> anyhow::Result<PathBuf> {
    cfg.validate()?;
    let files = RunFiles::new(out);
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&files.config, serde_json::to_string_pretty(cfg)?.as_bytes())?;
    let mut log = fs::File::create(&files.log)
        .with_context(|| format!("creating {}", files.log.display()))?;
    let ad = device.clone().autodiff();
    burn::tensor::Device::seed(&ad, cfg.budget.seed);
    let mut model = cfg.model.init(&ad);
    let mut optim = adamw().init();
    let started = Instant::now();
    let bar = crate::train::progress_bar(cfg.budget.steps, 0);
    let mut ema: Option<f64> = None;
    let mut last_eval = serde_json::Value::Null;
    let mut done = 0;
    for step in 1..=cfg.budget.steps {
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.budget.seed, step));
        let tasks: Vec<_> = (0..cfg.budget.tasks_per_step)
            .map(|_| cfg.task.sample(&mut rng))
            .collect();
        let batch = OrderBatch::new(tasks, &mut rng);
        let sched = schedule(
            cfg.task.samples,
            cfg.refine.batch_size,
            cfg.refine.steps,
            &mut rng,
        );
        let (loss, per_step) = greedy_order_loss(&model, &batch, &sched, &ad);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = cfg.budget.lr_at(step);
        model = optim.step(lr, model, grads);
        let per_step: Vec<f64> = per_step
            .into_iter()
            .map(|l| l.into_scalar::<f32>() as f64)
            .collect();
        let mut record = StepRecord::new(step, &per_step, lr, started.elapsed().as_secs_f64())?;
        let smoothed = record.smoothed(&mut ema);
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        let eval_now = step == cfg.budget.steps
            || interrupted
            || (cfg.budget.eval_every > 0 && step.is_multiple_of(cfg.budget.eval_every));
        if eval_now {
            let seed = cfg.budget.seed.wrapping_add(0x5eed_e7a1);
            let acc = error(
                &model.valid(),
                &draw(&cfg.task, cfg.budget.eval_tasks, seed),
                &cfg.refine,
                seed,
                &eval_steps(cfg.refine.steps),
                device,
            );
            bar.println(format!(
                "step {step}: eval {METRIC} {}",
                acc.iter()
                    .map(|(s, v)| format!("k={s}: {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            last_eval = serde_json::json!({ "metric": METRIC, "model": acc });
            record.eval = Some(last_eval.clone());
        }
        writeln!(log, "{}", serde_json::to_string(&record)?)?;
        log.flush()?;
        bar.set_message(format!("loss {smoothed:.4} lr {lr:.2e}"));
        bar.inc(1);
        done = step;
        if interrupted {
            bar.abandon();
            eprintln!("interrupted after step {step}: writing the model trained so far (SCM runs do not resume)");
            break;
        }
    }
    bar.finish();
    let header = OrderHeader {
        model: cfg.model.clone(),
        task: cfg.task.clone(),
        refine: cfg.refine.clone(),
        provenance: serde_json::json!({
            "command": command,
            "seed": cfg.budget.seed,
            "meta_steps": done,
            "tasks_per_step": cfg.budget.tasks_per_step,
            "lr": cfg.budget.lr,
            "train_seconds": started.elapsed().as_secs_f64(),
            "eval": last_eval,
        }),
    };
    let bytes = OrderBundle::from_model(header, model.valid())?.encode();
    write_atomic(&files.model, &bytes)?;
    Ok(files.model)
}

/// `tasks` fresh SCMs of `task` from `seed`.
pub fn draw(task: &ScmConfig, tasks: usize, seed: u64) -> Vec<ScmTask> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..tasks).map(|_| task.sample(&mut rng)).collect()
}

/// Mean order error ([`order_error`], the paper's metric) over `scms` after each number of
/// refinement steps in `steps` (0: the learned initial logits, no data seen); the mini-batch
/// schedules come from `seed`.
pub fn error(
    model: &amortize::model::order::OrderAmortizer,
    scms: &[ScmTask],
    refine: &RefineConfig,
    seed: u64,
    steps: &[usize],
    device: &Device,
) -> Vec<(usize, f64)> {
    const CHUNK: usize = 64;
    let tasks = scms.len();
    steps
        .iter()
        .map(|&k| {
            // The same SCMs and the same schedule stream for every k.
            let mut rng = StdRng::seed_from_u64(seed ^ 0x0bde_5eed);
            let mut sum = 0.0;
            for chunk in scms.chunks(CHUNK) {
                let orders = if k == 0 {
                    // No data: the initial logits are all equal, so the order is the
                    // nodes' index order, which is random with respect to the graph.
                    chunk.iter().map(|t| (0..t.nodes).collect()).collect()
                } else {
                    predict_orders(model, chunk, k, refine.batch_size, &mut rng, device)
                };
                for (t, o) in chunk.iter().zip(&orders) {
                    sum += order_error(&t.adj, t.nodes, o);
                }
            }
            (k, sum / tasks as f64)
        })
        .collect()
}

/// The sortability baselines' mean order error on `scms`: var-sortability on the variables' raw
/// variances (before the simulator standardises them) and R²-sortability on the standardised
/// samples the model reads.
pub fn sortability(scms: &[ScmTask]) -> Vec<(String, f64)> {
    let (mut var, mut r2) = (0.0, 0.0);
    for t in scms {
        var += order_error(&t.adj, t.nodes, &var_sort_order(&t.raw_variance));
        r2 += order_error(&t.adj, t.nodes, &r2_sort_order(&t.data, t.nodes));
    }
    let n = scms.len() as f64;
    vec![
        (
            "var-sortability: increasing raw variance (before standardising)".into(),
            var / n,
        ),
        (
            "R²-sortability: increasing R² on the others (the standardised data)".into(),
            r2 / n,
        ),
    ]
}

/// What `eval` of an order model scores.
pub struct OrderEval {
    /// SCMs per mechanism and split.
    pub tasks: usize,
    /// The seed of the SCMs and the mini-batches.
    pub seed: u64,
    /// Variables per SCM (default: as trained).
    pub nodes: Option<usize>,
    /// The most refinement steps (default: as trained).
    pub max_steps: Option<usize>,
    /// Score the training distribution.
    pub in_dist: bool,
    /// Score the shifted distribution (graphs, noise, weights).
    pub out_dist: bool,
}

/// `eval` of an order model: one report per mechanism it was trained on and per split, on
/// SCMs of `nodes` variables (default: as trained; the model reads any number, so more is an
/// out-of-distribution test, the paper's 50-node columns). Each step reads a fresh mini-batch
/// of samples: the datasets hold at least `max_steps` × b.
pub fn reports(
    bundle: &OrderBundle,
    which: &OrderEval,
    device: &Device,
) -> anyhow::Result<(Vec<EvalReport>, Vec<usize>)> {
    let &OrderEval {
        tasks,
        seed,
        nodes,
        max_steps,
        in_dist,
        out_dist,
    } = which;
    let model = bundle.model(device)?;
    let h = &bundle.header;
    let max_steps = max_steps.unwrap_or(h.refine.steps);
    if max_steps == 0 || max_steps > 10_000 {
        anyhow::bail!("--steps must be in 1..=10000, got {max_steps}");
    }
    let mut steps = eval_steps(max_steps);
    let table_steps = steps.clone();
    steps.insert(0, 0);
    let mut out = Vec::new();
    for &mech in &h.task.mechanisms {
        let mut shifts = Vec::new();
        if in_dist {
            shifts.push((Shift::In, "ID".to_string()));
        }
        if out_dist {
            shifts.push((Shift::Out, "OoD: graphs, noise, weights".to_string()));
        }
        for (shift, split) in shifts {
            let task = ScmConfig {
                shift,
                mechanisms: vec![mech],
                nodes: nodes.unwrap_or(h.task.nodes),
                samples: crate::eval::fresh_context(
                    None,
                    h.task.samples,
                    max_steps,
                    h.refine.batch_size,
                )?,
                ..h.task.clone()
            };
            task.validate()
                .map_err(|e| anyhow::anyhow!("--nodes: {e}"))?;
            let scms = draw(&task, tasks, seed);
            let acc = error(&model, &scms, &h.refine, seed, &steps, device);
            out.push(EvalReport {
                task: format!(
                    "scm-{} {}",
                    task.nodes,
                    match mech {
                        Mechanism::Linear => "linear",
                        Mechanism::Rff => "rff",
                    }
                ),
                split,
                label: "order / observations".into(),
                tasks,
                context: task.samples,
                batch_size: h.refine.batch_size,
                seed,
                metric: METRIC.into(),
                model: acc,
                baselines: sortability(&scms),
                paper: crate::paper::scm_reference(
                    task.nodes,
                    mech == Mechanism::Rff,
                    shift == Shift::Out,
                ),
                ..EvalReport::default()
            });
        }
    }
    Ok((out, table_steps))
}
