//! Topological orders of structural causal models (paper §9.4) from the command line: `eval`
//! scores the orders of the sample × node attention model of `amortize::model::order` (trained
//! by `train --task scm` through the one loop, `train/order.rs`) in the paper's metric, the
//! share of the graph's edges oriented wrong, after 1, 5 and 10 refinement steps, in
//! distribution and out of it (other graph families, Laplace noise, disjoint mechanism
//! parameters), per mechanism (linear, RFF), beside the sortability baselines.

use amortize::baseline::{r2_sort_order, var_sort_order};
use amortize::model::order::predict_orders;
use amortize::task::scm::{order_error, Mechanism, ScmConfig, ScmTask, Shift};
use amortize::weights::OrderBundle;
use amortize::RefineConfig;
use burn::module::Module;
use burn::tensor::Device;
use rand::{rngs::StdRng, SeedableRng};

use crate::eval::{eval_steps, EvalReport, ORDER_ERROR as METRIC};

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
                settings: Some(crate::paper::settings_line(
                    crate::paper::Size {
                        d_model: h.model.d_model,
                        n_layers: h.model.n_layers,
                        n_heads: h.model.n_heads,
                        d_ff: h.model.d_ff,
                        parameters: model.num_params(),
                    },
                    &h.provenance,
                    h.refine.steps,
                    h.refine.batch_size,
                    crate::paper::scm_settings(&h.task),
                )),
                ..EvalReport::default()
            });
        }
    }
    Ok((out, table_steps))
}
