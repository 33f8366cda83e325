//! Test-time optimisation baselines (paper §5.2): the task's fixed parametric predictor fitted by
//! Adam or SGD on the task's own context, one mini-batch per step — the same mini-batches the
//! amortizer reads — from zero or from a draw of the prior over θ. Burn's optimisers do the
//! updates; one parameter tensor holds every task's θ, and the loss is the sum of the tasks'
//! losses, so each task's gradient is its own.
//!
//! The MAML-style baseline (Finn et al., 2017) learns one initial θ₀ for the whole task family:
//! SGD from θ₀ over k mini-batches of a task's context, then the query loss; θ₀ is meta-trained by
//! first-order MAML (the query-loss gradient at the adapted θ stands for the gradient through
//! the inner loop: Burn has no second-order autodiff), with Adam. At test time it is SGD from θ₀
//! with the same inner learning rate and the same mini-batches as everything else.

use std::time::Instant;

use amortize::refine::{loss_per_task, TaskBatch};
use amortize::regime::parametric;
use amortize::task::{LossKind, TaskDims};
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

/// Every task's θ, `[B, S]`.
#[derive(Module, Debug)]
struct Thetas {
    theta: Param<Tensor<2>>,
}

/// The optimisers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optim {
    /// Adam (β = 0.9, 0.999).
    Adam,
    /// Plain SGD.
    Sgd,
}

/// Where θ starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// θ = 0.
    Zero,
    /// θ ~ N(0, I), the regression tasks' prior.
    Prior,
    /// θ₀ meta-learned by first-order MAML on the training task family.
    Maml,
}

/// One optimiser's run at its best learning rate.
#[derive(Debug, Clone, Serialize)]
pub struct TestTimeRun {
    /// Optimiser.
    pub optimizer: Optim,
    /// Start.
    pub init: Init,
    /// The learning rate (best final query loss on the grid).
    pub lr: f64,
    /// (steps, mean query loss) at the reported steps.
    pub loss: Vec<(usize, f64)>,
    /// Wall-clock seconds for all steps on all tasks at this learning rate.
    pub seconds: f64,
}

/// The learning rates tried for each optimiser.
pub fn lr_grid(optim: Optim) -> &'static [f64] {
    match optim {
        Optim::Adam => &[0.01, 0.03, 0.1, 0.3],
        Optim::Sgd => &[0.01, 0.03, 0.1, 0.3],
    }
}

fn query_loss_per_task(theta: Tensor<2>, batch: &TaskBatch) -> Tensor<1> {
    let dims = batch.dims();
    let pred = parametric::predict(theta.unsqueeze_dim(1), batch.query_input.clone(), &dims); // [B, 1, q, out]
    let [b, _, q, o] = pred.dims();
    loss_per_task(
        dims.loss,
        pred.reshape([b, q, o]),
        batch.query_target.clone(),
    )
}

fn mean(t: Tensor<1>) -> f64 {
    t.mean().into_scalar::<f32>() as f64
}

/// What every optimiser is run on: the tasks, the mini-batch each step reads (the amortizer's),
/// and the steps after which the query loss is reported (0 = the start).
#[derive(Clone, Copy)]
pub struct Episodes<'a> {
    /// The tasks.
    pub batch: &'a TaskBatch,
    /// The context indices step i reads.
    pub schedule: &'a [Vec<usize>],
    /// The steps reported.
    pub report: &'a [usize],
}

/// Runs `optim` from `init` for `schedule.len()` steps at each learning rate of the grid and keeps
/// the best by final query loss, reporting the loss after each of `report` steps (0 = the start).
pub fn test_time(
    episodes: Episodes,
    optim: Optim,
    init: Init,
    seed: u64,
    device: &Device,
) -> TestTimeRun {
    let grid: Vec<(f64, Option<Tensor<1>>)> = lr_grid(optim).iter().map(|&lr| (lr, None)).collect();
    run_grid(episodes, (optim, init), &grid, seed, device)
}

/// SGD from MAML-learned initialisations: one θ₀ per inner learning rate (`learned`), the best
/// by final query loss.
pub fn from_maml(
    episodes: Episodes,
    learned: &[(f64, Tensor<1>)],
    seed: u64,
    device: &Device,
) -> TestTimeRun {
    let grid: Vec<(f64, Option<Tensor<1>>)> = learned
        .iter()
        .map(|(lr, t)| (*lr, Some(t.clone())))
        .collect();
    run_grid(episodes, (Optim::Sgd, Init::Maml), &grid, seed, device)
}

fn run_grid(
    Episodes {
        batch,
        schedule,
        report,
    }: Episodes,
    (optim, init): (Optim, Init),
    grid: &[(f64, Option<Tensor<1>>)],
    seed: u64,
    device: &Device,
) -> TestTimeRun {
    let dims = batch.dims();
    let s = parametric::state_dim(&dims);
    let n = batch.len();
    let ad = device.clone().autodiff();
    let mut best: Option<TestTimeRun> = None;
    for (lr, learned) in grid {
        let lr = *lr;
        device.seed(seed);
        let start = match (init, learned) {
            (_, Some(t)) => t.clone().reshape([1, s]).expand([n, s]),
            (Init::Zero | Init::Maml, None) => Tensor::<2>::zeros([n, s], device),
            (Init::Prior, None) => {
                Tensor::<2>::random([n, s], Distribution::Normal(0.0, 1.0), device)
            }
        };
        let started = Instant::now();
        let mut thetas = Thetas {
            theta: Param::from_tensor(Tensor::from_data(start.to_data(), &ad)),
        };
        let mut optimizer = match optim {
            Optim::Adam => AdamConfig::new().init(),
            Optim::Sgd => SgdConfig::new().init(),
        };
        let mut loss = Vec::new();
        if report.contains(&0) {
            loss.push((0, mean(query_loss_per_task(start, batch))));
        }
        for (i, indices) in schedule.iter().enumerate() {
            let mb = batch.minibatch(indices, &ad);
            let (Some(inputs), Some(targets)) = (mb.inputs, mb.targets) else {
                break;
            };
            let theta = thetas.theta.val();
            let pred = parametric::predict(theta.unsqueeze_dim(1), inputs, &dims);
            let [b, _, m, o] = pred.dims();
            let l = loss_per_task(dims.loss, pred.reshape([b, m, o]), targets).sum();
            let grads = GradientsParams::from_grads(l.backward(), &thetas);
            thetas = optimizer.step(lr, thetas, grads);
            if report.contains(&(i + 1)) {
                let theta = thetas.theta.val().inner();
                loss.push((i + 1, mean(query_loss_per_task(theta, batch))));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let last = loss.last().map(|l| l.1).unwrap_or(f64::INFINITY);
        let better = best.as_ref().is_none_or(|b| {
            last.is_finite() && last < b.loss.last().map(|l| l.1).unwrap_or(f64::INFINITY)
        });
        if better {
            best = Some(TestTimeRun {
                optimizer: optim,
                init,
                lr,
                loss,
                seconds,
            });
        }
    }
    best.expect("the grid is not empty")
}

/// Meta-learns θ₀ by first-order MAML for each inner learning rate of SGD's grid: `iters`
/// Adam steps (lr 1e-2) on batches of `tasks` fresh tasks from `sample`, each adapted by SGD over
/// `k` mini-batches of `b` context points. Returns (inner lr, θ₀) pairs.
pub fn maml<F>(
    mut sample: F,
    dims: &TaskDims,
    k: usize,
    b: usize,
    iters: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Vec<(f64, Tensor<1>)>>
where
    F: FnMut(&mut rand::rngs::StdRng) -> anyhow::Result<TaskBatch>,
{
    use rand::SeedableRng;
    let s = parametric::state_dim(dims);
    let ad = device.clone().autodiff();
    let mut out = Vec::new();
    for &alpha in lr_grid(Optim::Sgd) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut init = Thetas {
            theta: Param::from_tensor(Tensor::<2>::zeros([1, s], &ad)),
        };
        let mut outer = AdamConfig::new().init();
        for _ in 0..iters {
            let batch = sample(&mut rng)?;
            let n = batch.len();
            let sched = amortize::refine::schedule(batch.context_len(), b, k, &mut rng);
            // Inner loop on plain tensors: θ ← θ − α ∇ L_mini-batch(θ).
            let theta0 = init.theta.val().inner();
            let mut theta = theta0.clone().expand([n, s]);
            for indices in &sched {
                let mb = batch.minibatch(indices, &ad);
                let (Some(inputs), Some(targets)) = (mb.inputs, mb.targets) else {
                    break;
                };
                let t = Tensor::<2>::from_inner(theta.clone()).require_grad();
                let pred = parametric::predict(t.clone().unsqueeze_dim(1), inputs, dims);
                let [bb, _, m, o] = pred.dims();
                let l = loss_per_task(dims.loss, pred.reshape([bb, m, o]), targets).sum();
                let g = t.grad(&l.backward()).expect("θ takes part in the loss");
                theta = theta - g * alpha;
            }
            // First-order MAML: the query loss at θ₀ + (θ_k − θ₀), the shift held fixed.
            let shift = theta - theta0.expand([n, s]);
            let adapted = init.theta.val().expand([n, s]) + Tensor::from_inner(shift);
            let pred = parametric::predict(
                adapted.unsqueeze_dim(1),
                Tensor::from_inner(batch.query_input.clone()),
                dims,
            );
            let [bb, _, q, o] = pred.dims();
            let l = loss_per_task(
                dims.loss,
                pred.reshape([bb, q, o]),
                Tensor::from_inner(batch.query_target.clone()),
            )
            .mean();
            let value = l.clone().into_scalar::<f32>();
            if !value.is_finite() {
                // This inner learning rate diverges on the family: it cannot be the best.
                break;
            }
            let grads = GradientsParams::from_grads(l.backward(), &init);
            init = outer.step(1e-2, init, grads);
        }
        out.push((alpha, init.theta.val().inner().reshape([s])));
    }
    Ok(out)
}

/// The inits that make sense for a task: zero always; the prior for regression (θ ~ N(0, I)).
pub fn inits(dims: &TaskDims) -> Vec<Init> {
    match dims.loss {
        LossKind::Mse => vec![Init::Zero, Init::Prior],
        LossKind::CrossEntropy => vec![Init::Zero],
    }
}
