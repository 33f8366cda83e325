//! Evaluation on fresh tasks: the query loss after given refinement steps, beside classical
//! learners on the same points (Bayes posterior mean and least squares for regression, nearest
//! class mean and nearest neighbour for classification).

mod generation;
mod table;
mod test_time;

pub use generation::{generation, GenerationReport, SampleScore};
pub use table::{markdown_table, PaperTable};
pub use test_time::{test_time, TestTimeReport};

use amortize::baseline::{
    least_squares, nearest_mean_labels, nearest_neighbour_labels, posterior_mean,
};
use amortize::metric::error_rate_per_task;
use amortize::metric::mse;
use amortize::model::Amortizer;
use amortize::refine::{loss_per_task, predictions, refine, schedule, TaskBatch};
use amortize::task::{LossKind, Sampler, TaskData};
use amortize::RefineConfig;
use burn::tensor::Device;
use rand::{rngs::StdRng, SeedableRng};
use serde::Serialize;

/// One evaluation's numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    /// The task family.
    pub task: String,
    /// Which tasks: "ID" (the training distribution) or "OoD: …" (what changed).
    pub split: String,
    /// The model: regime / signal.
    pub label: String,
    /// Tasks evaluated.
    pub tasks: usize,
    /// Context points per task.
    pub context: usize,
    /// Mini-batch size used at each step.
    pub batch_size: usize,
    /// Seed of the task stream.
    pub seed: u64,
    /// The query loss: "MSE" or "cross-entropy".
    pub metric: String,
    /// (step, mean query loss) for each reported step; step 0 is the learned initial state.
    pub model: Vec<(usize, f64)>,
    /// (step, query error rate in %) for classification tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<Vec<(usize, f64)>>,
    /// Mean query MSE of the Bayes posterior mean given all context points (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bayes: Option<f64>,
    /// Mean query MSE of least squares on all context points (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub least_squares: Option<f64>,
    /// (step, mean query MSE) of the Bayes posterior mean given only the points the amortizer
    /// had read by that step (the same mini-batches): the best any learner could do with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bayes_read: Option<Vec<(usize, f64)>>,
    /// (step, mean query MSE) of least squares on the points read by that step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub least_squares_read: Option<Vec<(usize, f64)>>,
    /// Classification: (step, query error %) of the nearest-class-mean classifier on the points
    /// the amortizer had read by that step (steps that read none are left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_mean_read: Option<Vec<(usize, f64)>>,
    /// Classification: the same for the 1-nearest-neighbour classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_neighbour_read: Option<Vec<(usize, f64)>>,
    /// Distinct context points the amortizer had read by each reported step (the same for every
    /// task): steps × b while the steps read fresh mini-batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points_read: Vec<(usize, usize)>,
    /// Baselines that read no refinement step, on the same tasks: (name, value in the report's
    /// metric), e.g. the sortability orders of a causal model's variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<(String, f64)>,
    /// The paper's own numbers for this model and task, where its tables have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paper: Option<crate::paper::PaperRef>,
    /// Beside the paper's numbers: our model's size, budget and task settings, which the paper's
    /// text does not give ([`crate::paper::settings_line`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    /// Generation: exact Wasserstein distances of generated samples to held-out data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationReport>,
    /// Test-time optimisation of the task's parametric predictor on the same tasks and
    /// mini-batches (Adam, SGD; zero or prior start), each at its best learning rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_time: Option<TestTimeReport>,
}

impl EvalReport {
    /// The (empty) report of a run on a user's points: nothing is scored.
    pub fn for_points(task: &amortize::task::TaskConfig, points: usize) -> Self {
        Self {
            task: task.name().to_string(),
            split: "user points".to_string(),
            tasks: 1,
            context: points,
            ..Self::default()
        }
    }

    /// The number a paper-style table shows: error % for classification, W2 for generation,
    /// the query loss otherwise; at `step`.
    pub fn headline(&self, step: usize) -> Option<f64> {
        let pick = |v: &Vec<(usize, f64)>| v.iter().find(|(s, _)| *s == step).map(|x| x.1);
        if let Some(g) = &self.generation {
            return g.at(step).map(|v| v.w2);
        }
        if let Some(e) = &self.error_rate {
            return pick(e);
        }
        pick(&self.model)
    }

    /// What [`headline`](Self::headline) measures.
    pub fn headline_name(&self) -> &'static str {
        if self.metric == ORDER_ERROR {
            "order error (share of edges oriented wrong, lower is better)"
        } else if self.generation.is_some() {
            "W2 of generated samples"
        } else if self.error_rate.is_some() {
            "query error %"
        } else {
            "query MSE"
        }
    }
}

/// Most points per task an evaluation draws by default so that every step reads fresh ones.
pub const MAX_FRESH: usize = 20_000;

/// Context points per task for an evaluation of `steps` steps over mini-batches of `b`: `given`
/// (`--context`; fewer than steps × b are reread in epochs), else steps × b fresh points, at
/// least the `trained` number.
pub fn fresh_context(
    given: Option<usize>,
    trained: usize,
    steps: usize,
    b: usize,
) -> anyhow::Result<usize> {
    if let Some(n) = given {
        return Ok(n);
    }
    let fresh = steps.saturating_mul(b);
    anyhow::ensure!(
        fresh <= MAX_FRESH,
        "--steps {steps}: {steps} steps of {b} fresh points is {fresh} points per task, more than {MAX_FRESH}; give --context N to reread N points in epochs, or fewer --steps"
    );
    Ok(trained.max(fresh))
}

/// The steps `eval` reports up to `max` (besides 0): every step to 10, then every 10th, and `max`.
pub fn report_steps(max: usize) -> Vec<usize> {
    let mut s: Vec<usize> = (1..=max.min(10)).chain((20..=max).step_by(10)).collect();
    if !s.contains(&max) {
        s.push(max);
    }
    s
}

fn host(t: burn::tensor::Tensor<1>) -> anyhow::Result<Vec<f64>> {
    Ok(t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// One model under evaluation: its refinement settings (the mini-batch size), the seed of the
/// evaluation's task and mini-batch streams, and the device it runs on.
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    /// The model.
    pub model: &'a Amortizer,
    /// Its refinement settings (the evaluation's mini-batch size).
    pub refine: &'a RefineConfig,
    /// The seed of the tasks and mini-batches.
    pub seed: u64,
    /// Where it runs.
    pub device: &'a Device,
}

impl<'a> Setup<'a> {
    /// (model, refinement, seed, device).
    pub fn parts(self) -> (&'a Amortizer, &'a RefineConfig, u64, &'a Device) {
        (self.model, self.refine, self.seed, self.device)
    }
}

/// `n` tasks from `sampler`, and the same as one batch of tensors on `device`.
pub fn draw_batch(
    sampler: &Sampler,
    n: usize,
    rng: &mut StdRng,
    device: &Device,
) -> anyhow::Result<(Vec<TaskData>, TaskBatch)> {
    let data: Vec<_> = (0..n).map(|_| sampler.sample(rng)).collect();
    let refs: Vec<_> = data.iter().collect();
    let batch = TaskBatch::new(&refs, device).map_err(|e| anyhow::anyhow!(e))?;
    Ok((data, batch))
}

/// Sums over tasks of the regression baselines' query MSE: Bayes and least squares on all
/// context points, and on the points read by each reported step.
struct RegressionSums {
    noise_std: f64,
    bayes: f64,
    least_squares: f64,
    bayes_read: Vec<f64>,
    least_squares_read: Vec<f64>,
}

impl RegressionSums {
    fn new(noise_std: f64, steps: usize) -> Self {
        Self {
            noise_std,
            bayes: 0.0,
            least_squares: 0.0,
            bayes_read: vec![0.0; steps],
            least_squares_read: vec![0.0; steps],
        }
    }

    /// Adds task `d`, whose reported steps had read the context rows `read[j]`.
    fn add(&mut self, d: &TaskData, read: &[Vec<usize>], p: usize) {
        let noise_std = self.noise_std;
        let predict = |w: &[f32]| -> Vec<f32> {
            d.query_input
                .chunks(p)
                .map(|u| u.iter().zip(w).map(|(a, b)| a * b).sum())
                .collect()
        };
        let score = |x: &[f32], y: &[f32]| -> (f64, f64) {
            let wb = posterior_mean(x, y, p, noise_std);
            let wl = least_squares(x, y, p);
            (
                mse(&predict(&wb), &d.query_target) as f64,
                mse(&predict(&wl), &d.query_target) as f64,
            )
        };
        let (b, l) = score(&d.context_input, &d.context_target);
        self.bayes += b;
        self.least_squares += l;
        for (j, rows) in read.iter().enumerate() {
            let x: Vec<f32> = rows
                .iter()
                .flat_map(|&i| d.context_input[i * p..(i + 1) * p].iter().copied())
                .collect();
            let y: Vec<f32> = rows.iter().map(|&i| d.context_target[i]).collect();
            let (b, l) = score(&x, &y);
            self.bayes_read[j] += b;
            self.least_squares_read[j] += l;
        }
    }
}

/// The class of each one-hot row of `targets` (`classes` wide): its largest entry.
fn classes_of(targets: &[f32], classes: usize) -> Vec<usize> {
    targets
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
        })
        .collect()
}

/// Sums over tasks of the classification baselines' query error (%) on the points read by each
/// reported step: the nearest class mean and the nearest neighbour.
struct ClassifierSums {
    nearest_mean: Vec<f64>,
    nearest_neighbour: Vec<f64>,
}

impl ClassifierSums {
    fn new(steps: usize) -> Self {
        Self {
            nearest_mean: vec![0.0; steps],
            nearest_neighbour: vec![0.0; steps],
        }
    }

    /// Adds task `d` (inputs `p` wide, one-hot targets `classes` wide), whose reported steps had
    /// read the context rows `read[j]`.
    fn add(&mut self, d: &TaskData, read: &[Vec<usize>], p: usize, classes: usize) {
        let truth = classes_of(&d.query_target, classes);
        let labels = classes_of(&d.context_target, classes);
        let error = |pred: Option<Vec<usize>>| -> f64 {
            pred.map_or(0.0, |pred| {
                let wrong = pred.iter().zip(&truth).filter(|(a, b)| a != b).count();
                100.0 * wrong as f64 / truth.len().max(1) as f64
            })
        };
        for (j, rows) in read.iter().enumerate() {
            let x: Vec<f32> = rows
                .iter()
                .flat_map(|&i| d.context_input[i * p..(i + 1) * p].iter().copied())
                .collect();
            let y: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
            self.nearest_mean[j] += error(nearest_mean_labels(&x, &y, p, &d.query_input));
            self.nearest_neighbour[j] += error(nearest_neighbour_labels(&x, &y, p, &d.query_input));
        }
    }
}

/// Evaluates `model` on `tasks` fresh tasks drawn from `seed`, reporting `steps`. The tasks come
/// from their own stream and the mini-batch schedules from another, so evaluations that differ
/// only in mini-batch size or steps score the same tasks.
pub fn evaluate(
    setup: Setup,
    sampler: &Sampler,
    tasks: usize,
    steps: &[usize],
) -> anyhow::Result<EvalReport> {
    let (model, refine_cfg, seed, device) = setup.parts();
    let task = &sampler.config;
    let max_step = steps.iter().copied().max().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sched_rng = StdRng::seed_from_u64(seed ^ 0x5c4e_d01e);
    let dims = task.dims();
    let classification = dims.loss == LossKind::CrossEntropy;
    let mut model_sum = vec![0.0f64; steps.len()];
    let mut err_sum = vec![0.0f64; steps.len()];
    let mut regression = task
        .noise_std()
        .map(|noise_std| RegressionSums::new(noise_std, steps.len()));
    let mut classifiers =
        (classification && dims.output_dim > 1).then(|| ClassifierSums::new(steps.len()));
    let mut points_read = Vec::new();
    let chunk = 250;
    let mut done = 0;
    while done < tasks {
        let n = chunk.min(tasks - done);
        let (data, batch) = draw_batch(sampler, n, &mut rng, device)?;
        let sched = schedule(
            task.context_len(),
            refine_cfg.batch_size,
            max_step,
            &mut sched_rng,
        );
        let states = refine(model, &batch, &sched, device);
        // The distinct points read by each reported step, in the order first read.
        let read: Vec<Vec<usize>> = steps
            .iter()
            .map(|&step| amortize::meta::points_read(&sched, step, task.context_len()))
            .collect();
        points_read = steps
            .iter()
            .zip(&read)
            .map(|(&s, r)| (s, r.len()))
            .collect();
        for (j, &step) in steps.iter().enumerate() {
            let pred = predictions(model, &states[step], &batch);
            if classification {
                err_sum[j] += host(error_rate_per_task(
                    pred.clone(),
                    batch.query_target.clone(),
                ))?
                .iter()
                .sum::<f64>();
            }
            let per_task = loss_per_task(dims.loss, pred, batch.query_target.clone());
            model_sum[j] += host(per_task)?.iter().sum::<f64>();
        }
        if let Some(sums) = &mut regression {
            for d in &data {
                sums.add(d, &read, dims.input_dim);
            }
        }
        if !data.iter().all(TaskData::has_context_targets) {
            // A family whose context carries no labels has nothing for these baselines to read.
            classifiers = None;
        }
        if let Some(sums) = &mut classifiers {
            for d in &data {
                sums.add(d, &read, dims.input_dim, dims.output_dim);
            }
        }
        done += n;
    }
    let t = tasks as f64;
    // The steps that had read at least one point.
    let read_only = |v: Vec<(usize, f64)>| -> Vec<(usize, f64)> {
        v.into_iter()
            .filter(|(s, _)| points_read.iter().any(|(r, n)| r == s && *n > 0))
            .collect()
    };
    let per_step = |sums: &[f64], scale: f64| -> Vec<(usize, f64)> {
        steps
            .iter()
            .zip(sums)
            .map(|(&s, v)| (s, scale * v / t))
            .collect()
    };
    Ok(EvalReport {
        task: task.name().to_string(),
        split: "ID".to_string(),
        label: format!("{} / {}", model.config().regime, model.config().signal).to_lowercase(),
        tasks,
        context: task.context_len(),
        batch_size: refine_cfg.batch_size,
        seed,
        metric: if classification {
            "cross-entropy"
        } else {
            "MSE"
        }
        .to_string(),
        model: per_step(&model_sum, 1.0),
        error_rate: classification.then(|| per_step(&err_sum, 100.0)),
        bayes: regression.as_ref().map(|r| r.bayes / t),
        least_squares: regression.as_ref().map(|r| r.least_squares / t),
        bayes_read: regression.as_ref().map(|r| per_step(&r.bayes_read, 1.0)),
        least_squares_read: regression
            .as_ref()
            .map(|r| per_step(&r.least_squares_read, 1.0)),
        nearest_mean_read: classifiers
            .as_ref()
            .map(|c| read_only(per_step(&c.nearest_mean, 1.0))),
        nearest_neighbour_read: classifiers
            .as_ref()
            .map(|c| read_only(per_step(&c.nearest_neighbour, 1.0))),
        points_read,
        baselines: Vec::new(),
        paper: None,
        settings: None,
        generation: None,
        test_time: None,
    })
}

/// The metric of the topological-order model: the paper's error, 1 − the share of correctly
/// ordered pairs.
pub const ORDER_ERROR: &str = "order error";

/// The steps reported by evaluations: 1, 5, 10 and k, up to k.
pub fn eval_steps(k: usize) -> Vec<usize> {
    let mut s: Vec<usize> = [1, 5, 10, k].into_iter().filter(|&s| s <= k).collect();
    s.sort();
    s.dedup();
    s
}
