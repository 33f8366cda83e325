//! Evaluation on fresh tasks: query MSE after given refinement steps, beside the Bayes posterior
//! mean and least squares on the same tasks.

use amortize::baseline::{least_squares, posterior_mean};
use amortize::metric::mse;
use amortize::model::Amortizer;
use amortize::refine::{refine, schedule, RegressionBatch};
use amortize::regime::parametric;
use amortize::task::regression::FunctionRegression;
use amortize::RefineConfig;
use burn::tensor::{Device, Tensor};
use rand::{rngs::StdRng, SeedableRng};
use serde::Serialize;

/// One evaluation's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Tasks evaluated.
    pub tasks: usize,
    /// Context points per task.
    pub context: usize,
    /// Mini-batch size used at each step.
    pub batch_size: usize,
    /// Seed of the task stream.
    pub seed: u64,
    /// (step, mean query MSE) for each reported step; step 0 is the learned initial state.
    pub model: Vec<(usize, f64)>,
    /// Mean query MSE of the Bayes posterior mean given all context points.
    pub bayes: f64,
    /// Mean query MSE of least squares on all context points.
    pub least_squares: f64,
}

impl EvalReport {
    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "{} fresh tasks, {} context points, mini-batches of {}, seed {}\n\n",
            self.tasks, self.context, self.batch_size, self.seed
        );
        s += "| predictor | query MSE | × Bayes |\n|---|---|---|\n";
        for (step, v) in &self.model {
            s += &format!(
                "| amortizer, {step} step{} | {v:.4} | {:.2}× |\n",
                if *step == 1 { "" } else { "s" },
                v / self.bayes
            );
        }
        s += &format!(
            "| Bayes posterior mean (all {} points) | {:.4} | 1.00× |\n",
            self.context, self.bayes
        );
        s += &format!(
            "| least squares (all {} points) | {:.4} | {:.2}× |\n",
            self.context,
            self.least_squares,
            self.least_squares / self.bayes
        );
        s
    }
}

/// Evaluates `model` on `tasks` fresh tasks drawn from `seed`, reporting `steps`.
pub fn evaluate(
    model: &Amortizer,
    task: &FunctionRegression,
    refine_cfg: &RefineConfig,
    tasks: usize,
    seed: u64,
    steps: &[usize],
    device: &Device,
) -> EvalReport {
    let max_step = steps.iter().copied().max().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let p = task.state_dim();
    let mut model_sum = vec![0.0f64; steps.len()];
    let (mut bayes_sum, mut ls_sum) = (0.0f64, 0.0f64);
    let chunk = 250;
    let mut done = 0;
    while done < tasks {
        let n = chunk.min(tasks - done);
        let sampled: Vec<_> = (0..n).map(|_| task.sample(&mut rng)).collect();
        let episodes: Vec<_> = sampled.iter().map(|t| &t.episode).collect();
        let batch = RegressionBatch::new(task, &episodes, device);
        let sched = schedule(
            task.config.context,
            refine_cfg.batch_size,
            max_step,
            &mut rng,
        );
        let states = refine(model, &batch, &sched, device);
        for (j, &step) in steps.iter().enumerate() {
            model_sum[j] += per_task_mse(states[step].clone(), &batch)
                .iter()
                .sum::<f64>();
        }
        for e in &episodes {
            let design = task.design(&e.context_x);
            let predict = |w: &[f32]| task.eval_many(w, &e.query_x);
            let wb = posterior_mean(&design, &e.context_y, p, task.config.noise_std);
            bayes_sum += mse(&predict(&wb), &e.query_y) as f64;
            let wl = least_squares(&design, &e.context_y, p);
            ls_sum += mse(&predict(&wl), &e.query_y) as f64;
        }
        done += n;
    }
    let t = tasks as f64;
    EvalReport {
        tasks,
        context: task.config.context,
        batch_size: refine_cfg.batch_size,
        seed,
        model: steps
            .iter()
            .zip(model_sum)
            .map(|(&s, v)| (s, v / t))
            .collect(),
        bayes: bayes_sum / t,
        least_squares: ls_sum / t,
    }
}

/// Query MSE of each task's state, `[B]`.
fn per_task_mse(states: Tensor<2>, batch: &RegressionBatch) -> Vec<f64> {
    parametric::mse_per_task(states, batch.query_features.clone(), batch.targets.clone())
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 tensor")
        .into_iter()
        .map(f64::from)
        .collect()
}
