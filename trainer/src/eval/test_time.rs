//! The amortizer against test-time optimisers of the task's parametric predictor (paper §5.2).

use amortize::refine::{loss_per_task, predictions, refine, schedule};
use amortize::task::Sampler;
use rand::{rngs::StdRng, SeedableRng};
use serde::Serialize;

use super::{draw_batch, host, Setup};
use crate::baseline::{self, Episodes, Optim};

/// The amortizer's wall time beside test-time optimisers'.
#[derive(Debug, Clone, Serialize)]
pub struct TestTimeReport {
    /// Tasks in the comparison (the first chunk of the evaluation's tasks).
    pub tasks: usize,
    /// Seconds the amortizer took for its largest number of steps on those tasks.
    pub amortizer_seconds: f64,
    /// (steps, mean query loss) of the amortizer on those tasks.
    pub amortizer: Vec<(usize, f64)>,
    /// The optimisers.
    pub runs: Vec<crate::baseline::TestTimeRun>,
    /// MAML-style baseline: outer iterations and tasks per iteration of its meta-training.
    pub maml_iters: usize,
    /// Tasks per MAML outer iteration.
    pub maml_tasks: usize,
    /// Seconds spent meta-training the MAML initialisations (all inner learning rates).
    pub maml_meta_seconds: f64,
}

/// Outer iterations of the MAML-style baseline's meta-training.
pub const MAML_ITERS: usize = 500;
/// Tasks per MAML outer iteration.
pub const MAML_TASKS: usize = 32;

/// The amortizer against test-time optimisers on the same tasks and mini-batches: Adam and SGD
/// from zero or the prior, and SGD from a MAML-learned initialisation.
pub fn test_time(
    setup: Setup,
    sampler: &Sampler,
    tasks: usize,
    steps: &[usize],
) -> anyhow::Result<TestTimeReport> {
    let (model, refine_cfg, seed, device) = setup.parts();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7e57);
    let (_, batch) = draw_batch(sampler, tasks, &mut rng, device)?;
    let max_step = steps.iter().copied().max().unwrap_or(0);
    let sched = schedule(
        batch.context_len(),
        refine_cfg.batch_size,
        max_step,
        &mut rng,
    );
    let dims = batch.dims();
    let started = std::time::Instant::now();
    let states = refine(model, &batch, &sched, device);
    let mut amortizer = Vec::new();
    for &k in steps {
        let pred = predictions(model, &states[k], &batch);
        amortizer.push((
            k,
            host(loss_per_task(dims.loss, pred, batch.query_target.clone()))?
                .iter()
                .sum::<f64>()
                / tasks as f64,
        ));
    }
    let amortizer_seconds = started.elapsed().as_secs_f64();
    let episodes = Episodes {
        batch: &batch,
        schedule: &sched,
        report: steps,
    };
    let mut runs = Vec::new();
    for optim in [Optim::Adam, Optim::Sgd] {
        for init in baseline::inits(&dims) {
            runs.push(baseline::test_time(episodes, optim, init, seed, device));
        }
    }
    // MAML-style: θ₀ meta-learned on the training family (its own task stream), then SGD.
    let started = std::time::Instant::now();
    let learned = baseline::maml(
        |rng| Ok(draw_batch(sampler, MAML_TASKS, rng, device)?.1),
        &dims,
        max_step,
        refine_cfg.batch_size,
        MAML_ITERS,
        seed ^ 0x3a31,
        device,
    )?;
    let maml_meta_seconds = started.elapsed().as_secs_f64();
    runs.push(baseline::from_maml(episodes, &learned, seed, device));
    Ok(TestTimeReport {
        tasks,
        amortizer_seconds,
        amortizer,
        runs,
        maml_iters: MAML_ITERS,
        maml_tasks: MAML_TASKS,
        maml_meta_seconds,
    })
}
