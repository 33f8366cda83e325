//! One meta-step's gradients of the amortizer's greedy objective, on one device or data
//! parallel across several, each device's share in micro-batches.

use std::ops::Range;
use std::sync::{Barrier, Mutex};

use amortize::meta::{meta_grads as greedy_grads, step_seed, Objective};
use amortize::model::Amortizer;
use amortize::refine::{greedy_loss_with, GreedyLoss, StepWeighting, TaskBatch};
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

/// `range` cut into the fewest near-equal contiguous parts of at most `micro` tasks each (one
/// part when `micro` is 0).
fn split(range: Range<usize>, micro: usize) -> Vec<Range<usize>> {
    let len = range.len();
    let parts = if micro == 0 {
        1
    } else {
        len.div_ceil(micro).max(1)
    };
    (0..parts)
        .map(|p| range.start + p * len / parts..range.start + (p + 1) * len / parts)
        .collect()
}

/// What every device's worker shares: the whole meta-step's tasks and their cut.
struct Step<'a> {
    model: &'a Amortizer,
    data: &'a [TaskData],
    sched: &'a [Vec<usize>],
    cfg: &'a TrainConfig,
    /// Every part of the meta-step, across all devices, in task order.
    parts: Vec<Range<usize>>,
    /// Each part's per-step mean losses, filled in by the forward passes.
    losses: Mutex<Vec<Vec<f64>>>,
    /// Where the workers wait for each other's losses (balanced weighting needs them all).
    barrier: Barrier,
}

impl Step<'_> {
    /// Step `t`'s mean loss over all tasks, from each part's mean.
    fn mean_loss(&self, all: &[Vec<f64>], t: usize) -> f64 {
        all.iter()
            .zip(&self.parts)
            .map(|(l, part)| l[t] * part.len() as f64)
            .sum::<f64>()
            / self.data.len() as f64
    }

    /// The scalar whose gradient is part `p`'s contribution to the gradient of the objective over
    /// every task: its greedy loss weighted by its share of the tasks; under the balanced weighting,
    /// each step's loss also divided by that step's mean over all tasks (the gradient of the mean
    /// log-loss of the whole meta-step).
    fn objective(&self, p: usize, loss: &GreedyLoss) -> Tensor<1> {
        let weight = self.parts[p].len() as f32 / self.data.len() as f32;
        match self.cfg.step_weighting {
            StepWeighting::Mean => loss.total.clone() * weight,
            StepWeighting::Balanced => {
                let all = self
                    .losses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let k = loss.per_step.len().max(1) as f32;
                let terms: Vec<Tensor<1>> = loss
                    .per_step
                    .iter()
                    .enumerate()
                    .map(|(t, l)| {
                        let whole = self.mean_loss(&all, t).max(1e-12);
                        l.clone() * (weight / (whole as f32 * k))
                    })
                    .collect();
                Tensor::cat(terms, 0).sum()
            }
        }
    }

    /// One device's work: the forward pass of each of its parts (`mine`, indices into `parts`)
    /// one after another, then (once every device has its losses, for the balanced weighting) the
    /// backward passes, summed on `ad` and moved to `main`. Under the mean weighting a part's
    /// backward pass follows its forward pass at once, so only one part's graph is alive at a time.
    fn device_grads(
        &self,
        ad: &Device,
        main: &Device,
        mine: Range<usize>,
        rng: &mut StdRng,
        wait: bool,
    ) -> Result<GradientsParams, String> {
        let local = self.model.clone().fork(ad);
        let mut acc = GradientsAccumulator::<Amortizer>::new();
        let mut pending = Vec::new();
        // A worker whose forward pass failed still reaches the barrier (its error or panic is
        // raised after it), so that the others never wait forever.
        let forward =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
                for p in mine.clone() {
                    let refs: Vec<_> = self.data[self.parts[p].clone()].iter().collect();
                    let batch = TaskBatch::new(&refs, ad)?;
                    let loss = greedy_loss_with(
                        &local,
                        &batch,
                        self.sched,
                        rng,
                        ad,
                        self.cfg.full_context_share,
                    );
                    self.losses.lock().unwrap_or_else(|e| e.into_inner())[p] =
                        scalars(&loss.per_step);
                    if self.cfg.step_weighting == StepWeighting::Mean {
                        let grads = self.objective(p, &loss).backward();
                        acc.accumulate(&local, GradientsParams::from_grads(grads, &local));
                    } else {
                        pending.push((p, loss));
                    }
                }
                Ok(())
            }));
        if wait {
            self.barrier.wait();
        }
        forward.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        for (p, loss) in pending {
            let grads = self.objective(p, &loss).backward();
            acc.accumulate(&local, GradientsParams::from_grads(grads, &local));
        }
        Ok(acc.grads().to_device(main, &local))
    }
}

/// One meta-step's gradients over `data` split across `replicas`, data parallel the way Burn's
/// multi-device training does it: each device gets a copy of the model ([`Module::fork`]) and a
/// contiguous share of the tasks, runs its greedy loss and backward pass on its own thread, and
/// its gradients move to the first device ([`GradientsParams::to_device`]), where a
/// [`GradientsAccumulator`] sums them. A share of more than `micro_batch` tasks runs as
/// near-equal micro-batches one after another (Burn's CPU backend slows faster than linearly
/// beyond about 40 tasks at once). Each part's objective is weighted by its share of the tasks, so
/// the sum is the gradient of the objective over all of `data`; the balanced objective divides by
/// the step losses of the whole meta-step, which the devices exchange before their backward
/// passes. `rng` draws the one-device pass's random choices; each of several devices seeds its own
/// from `step`. Returns the gradients and the per-step losses over all tasks.
fn sharded_grads(
    model: &Amortizer,
    replicas: &[Device],
    data: &[TaskData],
    sched: &[Vec<usize>],
    rng: &mut StdRng,
    cfg: &TrainConfig,
    step: usize,
) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
    let n = replicas.len();
    let total = data.len();
    // Each device's parts: indices into `parts`.
    let mut parts = Vec::new();
    let mut mine = Vec::with_capacity(n);
    for r in 0..n {
        let first = parts.len();
        parts.extend(split(r * total / n..(r + 1) * total / n, cfg.micro_batch));
        mine.push(first..parts.len());
    }
    let work = Step {
        model,
        data,
        sched,
        cfg,
        losses: Mutex::new(vec![Vec::new(); parts.len()]),
        parts,
        barrier: Barrier::new(n),
    };
    let main = replicas[0].clone().autodiff();
    let results: Vec<Option<Result<GradientsParams, String>>> = if n == 1 {
        vec![Some(work.device_grads(
            &main,
            &main,
            mine[0].clone(),
            rng,
            false,
        ))]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = replicas
                .iter()
                .zip(mine)
                .enumerate()
                .map(|(r, (device, mine))| {
                    let (work, main) = (&work, &main);
                    s.spawn(move || {
                        // Each device its own random stream (implicit prefixes, full-attention sizes).
                        let seed = step_seed(cfg.budget.seed ^ 0xda7a_0000 ^ r as u64, step);
                        let mut rng = StdRng::seed_from_u64(seed);
                        let ad = device.clone().autodiff();
                        burn::tensor::Device::seed(&ad, seed);
                        work.device_grads(&ad, main, mine, &mut rng, true)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok()).collect()
        })
    };
    let mut acc = GradientsAccumulator::<Amortizer>::new();
    for (r, grads) in results.into_iter().enumerate() {
        let grads = grads
            .ok_or_else(|| {
                anyhow::anyhow!("step {step}: the worker of device {r} failed (its panic is above)")
            })?
            .map_err(|e| anyhow::anyhow!(e))?;
        acc.accumulate(model, grads);
    }
    let all = work
        .losses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let per_step = (0..all[0].len()).map(|t| work.mean_loss(&all, t)).collect();
    Ok((acc.grads(), per_step))
}

/// One meta-step's gradients of the greedy objective over `data` and its per-step losses: on the
/// one device in one pass when its tasks fit one micro-batch (`TrainConfig::micro_batch`), or
/// split across `replicas` and micro-batches ([`sharded_grads`]). `rng` draws the one-device
/// pass's random choices (several replicas seed their own from `step`).
pub(crate) fn meta_grads(
    model: &Amortizer,
    replicas: &[Device],
    data: &[TaskData],
    sched: &[Vec<usize>],
    rng: &mut StdRng,
    cfg: &TrainConfig,
    step: usize,
) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
    if replicas.len() > 1 || (cfg.micro_batch > 0 && data.len() > cfg.micro_batch) {
        return sharded_grads(model, replicas, data, sched, rng, cfg, step);
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

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn shares_split_into_near_equal_micro_batches() {
        assert_eq!(split(0..64, 32), vec![0..32, 32..64]);
        assert_eq!(split(0..64, 0), vec![0..64]);
        assert_eq!(split(10..50, 32), vec![10..30, 30..50]);
        assert_eq!(split(0..65, 32), vec![0..21, 21..43, 43..65]);
        assert_eq!(split(0..5, 32), vec![0..5]);
        assert_eq!(split(3..3, 32), vec![3..3]);
    }
}
