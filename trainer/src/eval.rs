//! Evaluation on fresh tasks: query MSE after given refinement steps, beside the Bayes posterior
//! mean and least squares on the same tasks.

use amortize::baseline::{least_squares, posterior_mean};
use amortize::flow::{self, OdeMethod};
use amortize::metric::mse;
use amortize::metric::{error_rate_per_task, precision_recall, wasserstein};
use amortize::model::Amortizer;
use amortize::refine::{loss_per_task, predictions, refine, schedule, TaskBatch};
use amortize::task::flow_matching::{sample_empirical, FlowTarget};
use amortize::task::{LossKind, Sampler, TaskConfig};
use amortize::RefineConfig;
use burn::tensor::Device;
use rand::{rngs::StdRng, SeedableRng};
use serde::Serialize;

/// One evaluation's numbers.
#[derive(Debug, Clone, Serialize)]
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
    /// Generation: exact Wasserstein distances of generated samples to held-out data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationReport>,
    /// Test-time optimisation of the task's parametric predictor on the same tasks and
    /// mini-batches (Adam, SGD; zero or prior start), each at its best learning rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_time: Option<TestTimeReport>,
}

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

impl EvalReport {
    /// The (empty) report of a run on a user's points: nothing is scored.
    pub fn for_points(task: &amortize::task::TaskConfig, points: usize) -> Self {
        Self {
            task: task.name().to_string(),
            split: "user points".to_string(),
            label: String::new(),
            tasks: 1,
            context: points,
            batch_size: 0,
            seed: 0,
            metric: String::new(),
            model: Vec::new(),
            error_rate: None,
            bayes: None,
            least_squares: None,
            bayes_read: None,
            least_squares_read: None,
            points_read: Vec::new(),
            baselines: Vec::new(),
            paper: None,
            generation: None,
            test_time: None,
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

/// The paper's table layout: rows (model, steps), columns (task, split).
#[derive(Debug, Clone, Serialize)]
pub struct PaperTable {
    /// Column headings: "task (split)".
    pub columns: Vec<String>,
    /// Rows: model label, steps, one cell per column (absent where that model was not run).
    pub rows: Vec<(String, usize, Vec<Option<f64>>)>,
    /// What each column measures.
    pub measures: Vec<String>,
    /// The paper's number for each cell of `rows` (same shape), where its tables have one.
    pub paper: Vec<Vec<Option<String>>>,
}

impl PaperTable {
    /// Lays out `reports` for `steps`.
    pub fn new(reports: &[EvalReport], steps: &[usize]) -> Self {
        let mut columns: Vec<String> = Vec::new();
        let mut measures = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        for r in reports {
            let c = format!("{} ({})", r.task, r.split);
            if !columns.contains(&c) {
                columns.push(c);
                measures.push(r.headline_name().to_string());
            }
            if !labels.contains(&r.label) {
                labels.push(r.label.clone());
            }
        }
        let mut rows = Vec::new();
        let mut paper = Vec::new();
        for label in &labels {
            for &step in steps {
                let found: Vec<Option<&EvalReport>> = columns
                    .iter()
                    .map(|c| {
                        reports.iter().find(|r| {
                            &r.label == label && &format!("{} ({})", r.task, r.split) == c
                        })
                    })
                    .collect();
                rows.push((
                    label.clone(),
                    step,
                    found
                        .iter()
                        .map(|r| r.and_then(|r| r.headline(step)))
                        .collect(),
                ));
                paper.push(
                    found
                        .iter()
                        .map(|r| {
                            let p = (*r)?.paper.as_ref()?;
                            p.values.iter().find(|v| v.0 == step).map(|v| v.1.clone())
                        })
                        .collect(),
                );
            }
        }
        Self {
            columns,
            rows,
            measures,
            paper,
        }
    }

    /// As Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "| model | steps | {} |\n|---|---|{}\n",
            self.columns.join(" | "),
            "---|".repeat(self.columns.len())
        );
        s += &format!(
            "| | | {} |\n",
            self.measures
                .iter()
                .map(|m| format!("*{m}*"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        for ((label, step, cells), paper) in self.rows.iter().zip(&self.paper) {
            s += &format!(
                "| {label} | {step} | {} |\n",
                cells
                    .iter()
                    .zip(paper)
                    .map(|(c, p)| {
                        let ours = c.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
                        match p {
                            Some(p) => format!("{ours} (paper {p})"),
                            None => ours,
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        s
    }
}

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

/// Samples each task by integrating the learned field from noise (every field evaluation runs
/// k refinement steps over the context) and scores the samples ([`SampleScore`]) for each k in
/// `steps`, beside the noise itself, a second sample of the task and the exact empirical field.
/// `samples` points are generated per task; W1 and W2 compare the first `q` of them (the task's
/// query count) with as many held-out points, precision and recall use them all.
#[allow(clippy::too_many_arguments)]
pub fn generation(
    model: &Amortizer,
    sampler: &Sampler,
    refine_cfg: &RefineConfig,
    tasks: usize,
    (samples, delta): (usize, Option<f64>),
    seed: u64,
    steps: &[usize],
    (method, ode_steps): (OdeMethod, usize),
    device: &Device,
) -> anyhow::Result<GenerationReport> {
    anyhow::ensure!(
        (1..=MAX_SAMPLES).contains(&samples),
        "--samples {samples}: expected 1 to {MAX_SAMPLES} samples per task"
    );
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    let task = &sampler.config;
    let d = task.dims().output_dim;
    let delta = match delta {
        Some(d) if d.is_finite() && d > 0.0 => d,
        Some(d) => anyhow::bail!("--delta {d}: expected a finite distance > 0"),
        None => task
            .shape_tolerance()
            .ok_or_else(|| anyhow::anyhow!("{} is not a generation task", task.name()))?,
    };
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
    let n = samples * d;
    let w_len = q * d;
    let score =
        |gen: &[f32], held_out: &dyn Fn(usize) -> Vec<f32>| -> anyhow::Result<SampleScore> {
            let mut total = SampleScore {
                w1: 0.0,
                w2: 0.0,
                precision: 0.0,
                recall: 0.0,
            };
            for (i, (context, held)) in raw.iter().enumerate() {
                let g = &gen[i * n..(i + 1) * n];
                let w = &held_out(i);
                total.w1 += wasserstein(&w[..w_len], &held[..w_len], d, 1)
                    .map_err(|e| anyhow::anyhow!(e))?;
                total.w2 += wasserstein(&w[..w_len], &held[..w_len], d, 2)
                    .map_err(|e| anyhow::anyhow!(e))?;
                let (p, r) = precision_recall(g, context, d, delta);
                total.precision += p;
                total.recall += r;
            }
            let k = tasks as f64;
            Ok(SampleScore {
                w1: total.w1 / k,
                w2: total.w2 / k,
                precision: total.precision / k,
                recall: total.recall / k,
            })
        };
    // The samples themselves are compared with the held-out points.
    let own = |gen: &[f32]| {
        let gen = gen.to_vec();
        move |i: usize| gen[i * n..(i + 1) * n].to_vec()
    };
    let noise = x0
        .clone()
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let none = score(&noise, &own(&noise))?;
    // The floor: a second sample of each task. Precision and recall: the held-out points
    // against the context; W1 and W2: the context's first q points against the held-out ones.
    let floor = if batch.context_len() >= q {
        let second: Vec<f32> = raw
            .iter()
            .flat_map(|(_, held)| held.iter().copied())
            .collect();
        Some(score(&second, &|i: usize| raw[i].0[..w_len].to_vec())?)
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
    let optimal = score(&exact, &own(&exact))?;
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
        scored.push((k, score(&out, &own(&out))?));
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

/// Most samples per task `eval` generates.
pub const MAX_SAMPLES: usize = 4096;

impl EvalReport {
    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "{} ({}), {}: {} fresh tasks, {} context points, mini-batches of {}, seed {}\n\n",
            self.task, self.split, self.label, self.tasks, self.context, self.batch_size, self.seed
        );
        if let (Some(bayes), Some(ls)) = (&self.bayes_read, &self.least_squares_read) {
            // Regression: each step beside the best use of the points read by then.
            s += "| steps | points read | amortizer (query MSE) | Bayes posterior mean on the points read | least squares on them | amortizer ÷ Bayes |\n|---|---|---|---|---|---|\n";
            for (i, (step, v)) in self.model.iter().enumerate() {
                let read = self
                    .points_read
                    .iter()
                    .find(|x| x.0 == *step)
                    .map_or("–".to_string(), |x| x.1.to_string());
                s += &format!(
                    "| {step} | {read} | {v:.4} | {:.4} | {:.4} | {:.2}× |\n",
                    bayes[i].1,
                    ls[i].1,
                    v / bayes[i].1
                );
            }
            if let (Some(b), Some(l)) = (self.bayes, self.least_squares) {
                s += &format!(
                    "\nOn all {} context points: Bayes posterior mean {b:.4}, least squares {l:.4}.\n",
                    self.context
                );
            }
        } else {
            let has_err = self.error_rate.is_some();
            s += &format!(
                "| predictor | {}{} |\n|---|---{}|\n",
                if self.metric == ORDER_ERROR {
                    self.metric.clone()
                } else {
                    format!("query {}", self.metric)
                },
                if has_err { " | error %" } else { "" },
                if has_err { "|---" } else { "" },
            );
            for (i, (step, v)) in self.model.iter().enumerate() {
                let err = self
                    .error_rate
                    .as_ref()
                    .map(|e| format!(" | {:.1}", e[i].1))
                    .unwrap_or_default();
                s += &format!(
                    "| amortizer, {step} step{} | {v:.4}{err} |\n",
                    if *step == 1 { "" } else { "s" },
                );
            }
            for (name, v) in &self.baselines {
                s += &format!("| {name} | {v:.4}{} |\n", if has_err { " | –" } else { "" });
            }
        }
        if let Some(g) = &self.generation {
            s += &format!(
                "\nGenerated samples ({} tasks, {} samples each, {}): W1 and W2 of the first {} to as many held-out points of the task; \
                 precision (samples within δ = {} of a context point) and recall (context points with a sample within δ) of all:\n\n\
                 | samples | W1 | W2 | precision | recall |\n|---|---|---|---|---|\n",
                g.tasks, g.samples, g.ode, g.compared, g.delta
            );
            let row = |name: String, v: &SampleScore| {
                format!(
                    "| {name} | {:.4} | {:.4} | {:.3} | {:.3} |\n",
                    v.w1, v.w2, v.precision, v.recall
                )
            };
            for (k, v) in &g.steps {
                s += &row(
                    format!("amortizer, {k} step{}", if *k == 1 { "" } else { "s" }),
                    v,
                );
            }
            s += &row("no information: N(0, I) samples".into(), &g.none);
            if let Some(f) = &g.floor {
                s += &row("sampling floor: a second sample of the task".into(), f);
            }
            s += &row(
                format!(
                    "optimal: exact field of the context, σ = {}",
                    g.optimal_sigma
                ),
                &g.optimal,
            );
            if let Some(r) = g.w2_over_floor() {
                s += &format!("\nW2 after the most steps is {r:.2}× the sampling floor's.\n");
            }
        }
        if let Some(p) = &self.paper {
            s += &format!(
                "\nThe paper's numbers ({}): {}.\n",
                p.source,
                p.values
                    .iter()
                    .map(|(k, v)| format!("{k} step{} {v}", if *k == 1 { "" } else { "s" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(t) = &self.test_time {
            let steps: Vec<usize> = t.amortizer.iter().map(|x| x.0).collect();
            s += &format!(
                "\nTest-time optimisation on the first {} tasks, same mini-batches (query {}; learning rate: best of the grid by final loss):\n\n\
                 | method | {} | seconds |\n|---|{}---|\n",
                t.tasks,
                self.metric,
                steps.iter().map(|k| format!("{k} steps")).collect::<Vec<_>>().join(" | "),
                "---|".repeat(steps.len())
            );
            let cells = |v: &[(usize, f64)]| {
                steps
                    .iter()
                    .map(|k| {
                        v.iter()
                            .find(|x| x.0 == *k)
                            .map(|x| format!("{:.4}", x.1))
                            .unwrap_or_else(|| "–".into())
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            s += &format!(
                "| amortizer ({}) | {} | {:.3} |\n",
                self.label,
                cells(&t.amortizer),
                t.amortizer_seconds
            );
            for r in &t.runs {
                let name = if r.init == crate::baseline::Init::Maml {
                    format!(
                        "MAML-style: Sgd from a learned θ₀ (first-order, {} × {} tasks, {:.1} s), lr {}",
                        t.maml_iters, t.maml_tasks, t.maml_meta_seconds, r.lr
                    )
                } else {
                    format!("{:?} from {:?}, lr {}", r.optimizer, r.init, r.lr)
                };
                s += &format!("| {name} | {} | {:.3} |\n", cells(&r.loss), r.seconds);
            }
        }
        s
    }
}

fn host(t: burn::tensor::Tensor<1>) -> anyhow::Result<Vec<f64>> {
    Ok(t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// Evaluates `model` on `tasks` fresh tasks drawn from `seed`, reporting `steps`. The tasks come
/// from their own stream and the mini-batch schedules from another, so evaluations that differ
/// only in mini-batch size or steps score the same tasks.
pub fn evaluate(
    model: &Amortizer,
    sampler: &Sampler,
    refine_cfg: &RefineConfig,
    tasks: usize,
    seed: u64,
    steps: &[usize],
    device: &Device,
) -> anyhow::Result<EvalReport> {
    let task = &sampler.config;
    let max_step = steps.iter().copied().max().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sched_rng = StdRng::seed_from_u64(seed ^ 0x5c4e_d01e);
    let dims = task.dims();
    let classification = dims.loss == LossKind::CrossEntropy;
    let regression = task.noise_std();
    let p = dims.input_dim;
    let mut model_sum = vec![0.0f64; steps.len()];
    let mut err_sum = vec![0.0f64; steps.len()];
    let (mut bayes_sum, mut ls_sum) = (0.0f64, 0.0f64);
    let mut bayes_read = vec![0.0f64; steps.len()];
    let mut ls_read = vec![0.0f64; steps.len()];
    let mut points_read = Vec::new();
    let chunk = 250;
    let mut done = 0;
    while done < tasks {
        let n = chunk.min(tasks - done);
        let data: Vec<_> = (0..n).map(|_| sampler.sample(&mut rng)).collect();
        let refs: Vec<_> = data.iter().collect();
        let batch = TaskBatch::new(&refs, device).map_err(|e| anyhow::anyhow!(e))?;
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
        if let Some(noise_std) = regression {
            for d in &data {
                let predict = |w: &[f32]| -> Vec<f32> {
                    d.query_input
                        .chunks(p)
                        .map(|u| u.iter().zip(w).map(|(a, b)| a * b).sum())
                        .collect()
                };
                let wb = posterior_mean(&d.context_input, &d.context_target, p, noise_std);
                bayes_sum += mse(&predict(&wb), &d.query_target) as f64;
                let wl = least_squares(&d.context_input, &d.context_target, p);
                ls_sum += mse(&predict(&wl), &d.query_target) as f64;
                for (j, rows) in read.iter().enumerate() {
                    let x: Vec<f32> = rows
                        .iter()
                        .flat_map(|&i| d.context_input[i * p..(i + 1) * p].iter().copied())
                        .collect();
                    let y: Vec<f32> = rows.iter().map(|&i| d.context_target[i]).collect();
                    let wb = posterior_mean(&x, &y, p, noise_std);
                    bayes_read[j] += mse(&predict(&wb), &d.query_target) as f64;
                    let wl = least_squares(&x, &y, p);
                    ls_read[j] += mse(&predict(&wl), &d.query_target) as f64;
                }
            }
        }
        done += n;
    }
    let t = tasks as f64;
    let per_step = |sums: Vec<f64>, scale: f64| -> Vec<(usize, f64)> {
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
        model: per_step(model_sum, 1.0),
        error_rate: classification.then(|| per_step(err_sum, 100.0)),
        bayes: regression.map(|_| bayes_sum / t),
        least_squares: regression.map(|_| ls_sum / t),
        bayes_read: regression.map(|_| per_step(bayes_read, 1.0)),
        least_squares_read: regression.map(|_| per_step(ls_read, 1.0)),
        points_read,
        baselines: Vec::new(),
        paper: None,
        generation: None,
        test_time: None,
    })
}

/// Outer iterations of the MAML-style baseline's meta-training.
pub const MAML_ITERS: usize = 500;
/// Tasks per MAML outer iteration.
pub const MAML_TASKS: usize = 32;

/// The amortizer against test-time optimisers on the same tasks and mini-batches: Adam and SGD
/// from zero or the prior, and SGD from a MAML-learned initialisation.
#[allow(clippy::too_many_arguments)]
pub fn test_time(
    model: &Amortizer,
    sampler: &Sampler,
    refine_cfg: &RefineConfig,
    tasks: usize,
    seed: u64,
    steps: &[usize],
    device: &Device,
) -> anyhow::Result<TestTimeReport> {
    use crate::baseline::{self, Optim};
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7e57);
    let data: Vec<_> = (0..tasks).map(|_| sampler.sample(&mut rng)).collect();
    let refs: Vec<_> = data.iter().collect();
    let batch = TaskBatch::new(&refs, device).map_err(|e| anyhow::anyhow!(e))?;
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
    let mut runs = Vec::new();
    for optim in [Optim::Adam, Optim::Sgd] {
        for init in baseline::inits(&dims) {
            runs.push(baseline::test_time(
                &batch, &sched, steps, optim, init, seed, device,
            ));
        }
    }
    // MAML-style: θ₀ meta-learned on the training family (its own task stream), then SGD.
    let started = std::time::Instant::now();
    let learned = baseline::maml(
        |rng| {
            let data: Vec<_> = (0..MAML_TASKS).map(|_| sampler.sample(rng)).collect();
            let refs: Vec<_> = data.iter().collect();
            TaskBatch::new(&refs, device).map_err(|e| anyhow::anyhow!(e))
        },
        &dims,
        max_step,
        refine_cfg.batch_size,
        MAML_ITERS,
        seed ^ 0x3a31,
        device,
    )?;
    let maml_meta_seconds = started.elapsed().as_secs_f64();
    runs.push(baseline::from_maml(
        &batch, &sched, steps, &learned, seed, device,
    ));
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
