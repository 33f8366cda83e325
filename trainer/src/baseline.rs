//! Test-time optimisation baselines (paper §5.2): the task's fixed parametric predictor fitted by
//! Adam or SGD on the task's own context, one mini-batch per step — the same mini-batches the
//! amortizer reads — from zero or from a draw of the prior over θ. Burn's optimisers do the
//! updates; one parameter tensor holds every task's θ, and the loss is the sum of the tasks'
//! losses, so each task's gradient is its own.

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

/// Runs `optim` from `init` for `schedule.len()` steps at each learning rate of the grid and keeps
/// the best by final query loss, reporting the loss after each of `report` steps (0 = the start).
pub fn test_time(
    batch: &TaskBatch,
    schedule: &[Vec<usize>],
    report: &[usize],
    optim: Optim,
    init: Init,
    seed: u64,
    device: &Device,
) -> TestTimeRun {
    let dims = batch.dims();
    let s = parametric::state_dim(&dims);
    let n = batch.len();
    let ad = device.clone().autodiff();
    let mut best: Option<TestTimeRun> = None;
    for &lr in lr_grid(optim) {
        device.seed(seed);
        let start = match init {
            Init::Zero => Tensor::<2>::zeros([n, s], device),
            Init::Prior => Tensor::<2>::random([n, s], Distribution::Normal(0.0, 1.0), device),
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

/// The inits that make sense for a task: zero always; the prior for regression (θ ~ N(0, I)).
pub fn inits(dims: &TaskDims) -> Vec<Init> {
    match dims.loss {
        LossKind::Mse => vec![Init::Zero, Init::Prior],
        LossKind::CrossEntropy => vec![Init::Zero],
    }
}
