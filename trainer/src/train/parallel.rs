//! One meta-step's gradients of the amortizer's greedy objective, on one device or data
//! parallel across several.

use std::sync::{Barrier, Mutex};

use amortize::meta::{meta_grads as greedy_grads, step_seed, Objective};
use amortize::model::Amortizer;
use amortize::refine::{greedy_loss_with, StepWeighting, TaskBatch};
use amortize::task::TaskData;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use rand::{rngs::StdRng, SeedableRng};

use super::TrainConfig;

fn scalars(losses: &[Tensor<1>]) -> Vec<f64> {
    losses
        .iter()
        .map(|l| l.clone().into_scalar::<f32>() as f64)
        .collect()
}

/// One meta-step's gradients over `data` split across `replicas`, data parallel the way Burn's
/// multi-device training does it: each device gets a copy of the model ([`Module::fork`]) and a
/// contiguous share of the tasks, runs the greedy loss and its backward pass on its own thread,
/// and its gradients move to the first device ([`GradientsParams::to_device`]), where a
/// [`GradientsAccumulator`] sums them. Each share's objective is weighted by its share of the
/// tasks, so the sum is the gradient of the objective over all of `data`; the balanced objective
/// divides by the step losses of the whole batch, which the threads exchange before their
/// backward passes. Returns the gradients and the per-step losses over all tasks.
fn data_parallel_grads(
    model: &Amortizer,
    replicas: &[Device],
    data: &[TaskData],
    sched: &[Vec<usize>],
    cfg: &TrainConfig,
    step: usize,
) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
    let n = replicas.len();
    let total = data.len();
    let shares: Vec<std::ops::Range<usize>> =
        (0..n).map(|r| r * total / n..(r + 1) * total / n).collect();
    let mut batches = Vec::with_capacity(n);
    for (device, share) in replicas.iter().zip(&shares) {
        let ad = device.clone().autodiff();
        let refs: Vec<_> = data[share.clone()].iter().collect();
        let batch = TaskBatch::new(&refs, &ad).map_err(|e| anyhow::anyhow!(e))?;
        batches.push((ad, batch));
    }
    let losses: Mutex<Vec<Vec<f64>>> = Mutex::new(vec![Vec::new(); n]);
    let barrier = Barrier::new(n);
    let main = replicas[0].clone().autodiff();
    let results: Vec<Option<GradientsParams>> = std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .into_iter()
            .zip(&shares)
            .enumerate()
            .map(|(r, ((ad, batch), share))| {
                let (losses, barrier, main, shares) = (&losses, &barrier, &main, &shares);
                s.spawn(move || {
                    // Each device its own random stream (implicit prefixes, full-attention sizes).
                    let seed = step_seed(cfg.budget.seed ^ 0xda7a_0000 ^ r as u64, step);
                    let mut rng = StdRng::seed_from_u64(seed);
                    burn::tensor::Device::seed(&ad, seed);
                    // Every worker reaches the barrier, even one whose forward pass panicked (its
                    // panic is re-raised after it), so that the others never wait forever.
                    let forward = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let local = model.clone().fork(&ad);
                        let loss = greedy_loss_with(
                            &local,
                            &batch,
                            sched,
                            &mut rng,
                            &ad,
                            cfg.full_context_share,
                        );
                        losses.lock().unwrap_or_else(|e| e.into_inner())[r] =
                            scalars(&loss.per_step);
                        (local, loss)
                    }));
                    barrier.wait();
                    let (local, loss) = forward.unwrap_or_else(|p| std::panic::resume_unwind(p));
                    let weight = share.len() as f32 / total as f32;
                    let objective = match cfg.step_weighting {
                        StepWeighting::Mean => loss.total.clone() * weight,
                        StepWeighting::Balanced => {
                            let all = losses.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            let k = loss.per_step.len().max(1) as f32;
                            let terms: Vec<Tensor<1>> = loss
                                .per_step
                                .iter()
                                .enumerate()
                                .map(|(t, l)| {
                                    let whole = weighted_mean(&all, shares, total, t).max(1e-12);
                                    l.clone() * (weight / (whole as f32 * k))
                                })
                                .collect();
                            Tensor::cat(terms, 0).sum()
                        }
                    };
                    GradientsParams::from_grads(objective.backward(), &local)
                        .to_device(main, &local)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let mut acc = GradientsAccumulator::<Amortizer>::new();
    for (r, grads) in results.into_iter().enumerate() {
        let grads = grads.ok_or_else(|| {
            anyhow::anyhow!("step {step}: the worker of device {r} failed (its panic is above)")
        })?;
        acc.accumulate(model, grads);
    }
    let all = losses.into_inner().unwrap_or_else(|e| e.into_inner());
    let per_step = (0..all[0].len())
        .map(|t| weighted_mean(&all, &shares, total, t))
        .collect();
    Ok((acc.grads(), per_step))
}

/// One meta-step's gradients of the greedy objective over `data` and its per-step losses: on the
/// one device, or split across `replicas` ([`data_parallel_grads`]). `rng` draws the one-device
/// pass's random choices (the replicas seed their own from `step`).
pub(crate) fn meta_grads(
    model: &Amortizer,
    replicas: &[Device],
    data: &[TaskData],
    sched: &[Vec<usize>],
    rng: &mut StdRng,
    cfg: &TrainConfig,
    step: usize,
) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
    if replicas.len() > 1 {
        return data_parallel_grads(model, replicas, data, sched, cfg, step);
    }
    let ad = replicas[0].clone().autodiff();
    let (grads, loss) = greedy_grads(
        model,
        data,
        sched,
        rng,
        &ad,
        &Objective {
            weighting: cfg.step_weighting,
            weight: 1.0,
            full_share: cfg.full_context_share,
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok((grads, scalars(&loss.per_step)))
}

/// Step `t`'s mean loss over all tasks, from each share's mean.
fn weighted_mean(
    losses: &[Vec<f64>],
    shares: &[std::ops::Range<usize>],
    total: usize,
    t: usize,
) -> f64 {
    losses
        .iter()
        .zip(shares)
        .map(|(l, share)| l[t] * share.len() as f64)
        .sum::<f64>()
        / total as f64
}
