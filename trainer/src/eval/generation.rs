//! Generation: samples integrated from the learned field, scored against held-out samples.

use amortize::flow::{self, OdeMethod};
use amortize::metric::{precision_recall, wasserstein};
use amortize::refine::{schedule, TaskBatch};
use amortize::task::flow_matching::{sample_empirical, FlowTarget};
use amortize::task::{Sampler, TaskConfig};
use rand::{rngs::StdRng, SeedableRng};
use serde::Serialize;

use super::Setup;

/// How one set of samples per task scores, averaged over the tasks: exact W1 and W2 against the
/// task's held-out points, and precision and recall against its context points at the task's
/// shape tolerance ([`amortize::metric::precision_recall`]).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SampleScore {
    /// Mean W1 to the held-out points.
    pub w1: f64,
    /// Mean W2 to the held-out points.
    pub w2: f64,
    /// Mean share of samples within δ of a context point.
    pub precision: f64,
    /// Mean share of context points with a sample within δ.
    pub recall: f64,
}

/// Generated samples against held-out samples of the same tasks.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationReport {
    /// Tasks scored.
    pub tasks: usize,
    /// Samples generated per task.
    pub samples: usize,
    /// How many of them W1 and W2 compare with as many held-out points.
    pub compared: usize,
    /// ODE method and steps.
    pub ode: String,
    /// The tolerance δ of precision and recall.
    pub delta: f64,
    /// (refinement steps per field evaluation, scores of the generated samples).
    pub steps: Vec<(usize, SampleScore)>,
    /// No-information baseline: the starting noise N(0, I) itself.
    pub none: SampleScore,
    /// Sampling floor: a second independent sample of each task (W against the held-out points:
    /// its first context points; precision and recall: the held-out points against the context);
    /// `None` when the context is smaller than the held-out set.
    pub floor: Option<SampleScore>,
    /// The optimal answer: samples of the exact field of the context's empirical distribution
    /// widened by `optimal_sigma` (forward Euler, the same number of ODE steps, the same noise).
    pub optimal: SampleScore,
    /// The widening σ of the optimal answer.
    pub optimal_sigma: f64,
}

impl GenerationReport {
    /// W2 after the most steps over the sampling floor's W2.
    pub fn w2_over_floor(&self) -> Option<f64> {
        let floor = self.floor?.w2;
        let &(_, last) = self.steps.last()?;
        (floor > 0.0).then(|| last.w2 / floor)
    }

    /// The scores after `k` steps.
    pub fn at(&self, k: usize) -> Option<SampleScore> {
        self.steps.iter().find(|(s, _)| *s == k).map(|x| x.1)
    }
}

/// The tolerance δ of precision and recall: `--delta`, else the task's own.
fn tolerance(task: &TaskConfig, given: Option<f64>) -> anyhow::Result<f64> {
    match given {
        Some(d) if d.is_finite() && d > 0.0 => Ok(d),
        Some(d) => anyhow::bail!("--delta {d}: expected a finite distance > 0"),
        None => task
            .shape_tolerance()
            .ok_or_else(|| anyhow::anyhow!("{} is not a generation task", task.name())),
    }
}

/// The tasks' points, and how a set of samples per task scores against them.
struct Scorer {
    /// (context, held-out points) per task.
    raw: Vec<(Vec<f32>, Vec<f32>)>,
    /// The points' dimension.
    d: usize,
    /// Floats in one task's samples.
    n: usize,
    /// Floats W1 and W2 compare (the first q points).
    w_len: usize,
    /// Precision and recall's tolerance.
    delta: f64,
}

impl Scorer {
    /// Scores `gen` (every task's samples, task after task): precision and recall of the samples
    /// against the context; W1 and W2 of `held_out(i)` against task i's held-out points.
    fn score(
        &self,
        gen: &[f32],
        held_out: &dyn Fn(usize) -> Vec<f32>,
    ) -> anyhow::Result<SampleScore> {
        let (n, w_len, d) = (self.n, self.w_len, self.d);
        let mut total = SampleScore {
            w1: 0.0,
            w2: 0.0,
            precision: 0.0,
            recall: 0.0,
        };
        for (i, (context, held)) in self.raw.iter().enumerate() {
            let g = &gen[i * n..(i + 1) * n];
            let w = &held_out(i);
            total.w1 +=
                wasserstein(&w[..w_len], &held[..w_len], d, 1).map_err(|e| anyhow::anyhow!(e))?;
            total.w2 +=
                wasserstein(&w[..w_len], &held[..w_len], d, 2).map_err(|e| anyhow::anyhow!(e))?;
            let (p, r) = precision_recall(g, context, d, self.delta);
            total.precision += p;
            total.recall += r;
        }
        let k = self.raw.len() as f64;
        Ok(SampleScore {
            w1: total.w1 / k,
            w2: total.w2 / k,
            precision: total.precision / k,
            recall: total.recall / k,
        })
    }

    /// Scores samples compared, for W1 and W2, with the held-out points themselves.
    fn own(&self, gen: &[f32]) -> anyhow::Result<SampleScore> {
        let n = self.n;
        self.score(gen, &|i: usize| gen[i * n..(i + 1) * n].to_vec())
    }
}

/// Samples each task by integrating the learned field from noise (every field evaluation runs
/// k refinement steps over the context) and scores the samples ([`SampleScore`]) for each k in
/// `steps`, beside the noise itself, a second sample of the task and the exact empirical field.
/// `samples` points are generated per task; W1 and W2 compare the first `q` of them (the task's
/// query count) with as many held-out points, precision and recall use them all.
pub fn generation(
    setup: Setup,
    sampler: &Sampler,
    tasks: usize,
    (samples, delta): (usize, Option<f64>),
    steps: &[usize],
    (method, ode_steps): (OdeMethod, usize),
) -> anyhow::Result<GenerationReport> {
    let (model, refine_cfg, seed, device) = setup.parts();
    anyhow::ensure!(
        (1..=MAX_SAMPLES).contains(&samples),
        "--samples {samples}: expected 1 to {MAX_SAMPLES} samples per task"
    );
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    let task = &sampler.config;
    let d = task.dims().output_dim;
    let delta = tolerance(task, delta)?;
    let sigma = task.optimal_sigma().unwrap_or(delta / 3.0);
    let q = match task {
        TaskConfig::Gmm(c) => c.queries,
        TaskConfig::Alphabet(c) => c.queries,
        _ => 1,
    }
    .min(samples);
    // Held-out points: as many as the samples (the floor's precision and recall), the first q
    // of them for W1 and W2.
    let wide = Sampler::new(task.with_generation_queries(samples.max(q)))
        .map_err(|e| anyhow::anyhow!(e))?;
    let raw: Vec<(Vec<f32>, Vec<f32>)> = (0..tasks)
        .map(|_| wide.sample_points(&mut rng).expect("a generation task"))
        .collect();
    let data: Vec<_> = raw
        .iter()
        .map(|(context, held_out)| {
            FlowTarget::Sample.training_data(context, &held_out[..q * d], d, &mut rng)
        })
        .collect();
    let refs: Vec<_> = data.iter().collect();
    let batch = TaskBatch::new(&refs, device).map_err(|e| anyhow::anyhow!(e))?;
    device.seed(seed);
    let x0 = flow::noise(tasks, samples, d, device);
    let scorer = Scorer {
        n: samples * d,
        w_len: q * d,
        raw,
        d,
        delta,
    };
    let (raw, n, w_len) = (&scorer.raw, scorer.n, scorer.w_len);
    let noise = x0
        .clone()
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let none = scorer.own(&noise)?;
    // The floor: a second sample of each task. Precision and recall: the held-out points
    // against the context; W1 and W2: the context's first q points against the held-out ones.
    let floor = if batch.context_len() >= q {
        let second: Vec<f32> = raw
            .iter()
            .flat_map(|(_, held)| held.iter().copied())
            .collect();
        Some(scorer.score(&second, &|i: usize| raw[i].0[..w_len].to_vec())?)
    } else {
        None
    };
    let exact: Vec<f32> = raw
        .iter()
        .enumerate()
        .flat_map(|(i, (context, _))| {
            sample_empirical(context, d, sigma, &noise[i * n..(i + 1) * n], ode_steps)
        })
        .collect();
    let optimal = scorer.own(&exact)?;
    let mut scored = Vec::new();
    for &k in steps.iter().filter(|&&k| k > 0) {
        let sched = schedule(batch.context_len(), refine_cfg.batch_size, k, &mut rng);
        let path = flow::integrate(model, &batch, x0.clone(), ode_steps, method, &sched, device);
        let out = path
            .last()
            .expect("integrate returns the start")
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        scored.push((k, scorer.own(&out)?));
    }
    Ok(GenerationReport {
        tasks,
        samples,
        compared: q,
        ode: format!("{method:?}, {ode_steps} steps"),
        delta,
        steps: scored,
        none,
        floor,
        optimal,
        optimal_sigma: sigma,
    })
}

/// Most samples per task `eval` generates.
pub const MAX_SAMPLES: usize = 4096;
