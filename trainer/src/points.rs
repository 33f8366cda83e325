//! `eval --points FILE`: a trained model on a user's own context points (CSV or JSON), printed
//! as CSV. Regression: the predicted curve (function regression, on a grid over [-1, 1]) or the
//! predictions at the points (linear regression) after each reported number of steps.
//! Generation: samples drawn from noise given the points, after each reported number of steps.

use std::path::Path;

use amortize::flow::{self, OdeMethod};
use amortize::refine::{predictions, refine, schedule, TaskBatch};
use amortize::task::flow_matching::FlowTarget;
use amortize::task::linear::LinearRegression;
use amortize::task::regression::FunctionRegression;
use amortize::task::{Episode, TaskConfig};
use anyhow::Context;
use rand::{rngs::StdRng, SeedableRng};

use crate::eval::Setup;

/// At most this many points are read.
pub const MAX_POINTS: usize = 4096;

/// Reads the point file at `path` (`amortize::points`: CSV or JSON, the web app's rules).
pub fn read(path: &Path) -> anyhow::Result<Vec<Vec<f64>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --points {}", path.display()))?;
    amortize::points::parse_rows(&text, MAX_POINTS)
        .map_err(|e| anyhow::anyhow!("--points {}: {e}", path.display()))
}

fn host(t: burn::tensor::Tensor<3>) -> anyhow::Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn need(task: &TaskConfig, cols: usize, c: usize, what: &str) -> anyhow::Result<()> {
    if cols != c {
        anyhow::bail!(
            "--points: the {} model reads {c} columns ({what}), the file has {cols}",
            task.name()
        );
    }
    Ok(())
}

/// Runs `model` on `rows` and returns the CSV text.
pub fn run(
    setup: Setup,
    task: &TaskConfig,
    rows: &[Vec<f64>],
    steps: &[usize],
    ode: (OdeMethod, usize),
) -> anyhow::Result<String> {
    let (model, refine_cfg, seed, device) = setup.parts();
    let n = rows.len();
    let cols = rows[0].len();
    let mut rng = StdRng::seed_from_u64(seed);
    let max_step = steps.iter().copied().max().unwrap_or(0);
    let sched = schedule(n, refine_cfg.batch_size, max_step, &mut rng);
    let flat = |f: &dyn Fn(&Vec<f64>) -> Vec<f64>| -> Vec<f32> {
        rows.iter().flat_map(f).map(|x| x as f32).collect()
    };
    let (data, labels, first) = match task {
        TaskConfig::FunctionRegression(c) => {
            need(task, cols, 2, "x, y")?;
            let grid: Vec<f32> = (0..=100).map(|i| -1.0 + 0.02 * i as f32).collect();
            let e = Episode {
                x_dim: 1,
                y_dim: 1,
                context_x: flat(&|r| vec![r[0]]),
                context_y: flat(&|r| vec![r[1]]),
                query_y: vec![0.0; grid.len()],
                query_x: grid.clone(),
            };
            let labels: Vec<String> = grid.iter().map(|x| format!("{x:.2}")).collect();
            (FunctionRegression::new(c.clone()).task_data(&e), labels, "x")
        }
        TaskConfig::LinearRegression(c) => {
            need(task, cols, c.dim + 1, "x_1..x_d, y")?;
            let xs = flat(&|r| r[..c.dim].to_vec());
            let e = Episode {
                x_dim: c.dim,
                y_dim: 1,
                context_x: xs.clone(),
                context_y: flat(&|r| vec![r[c.dim]]),
                query_x: xs,
                query_y: vec![0.0; n],
            };
            let labels = (1..=n).map(|i| i.to_string()).collect();
            (LinearRegression::new(c.clone()).task_data(&e), labels, "point")
        }
        TaskConfig::Gmm(_) | TaskConfig::Alphabet(_) => {
            let d = task.dims().output_dim;
            need(task, cols, d, "one coordinate per dimension")?;
            return generate(setup, &flat(&|r| r.clone()), d, steps, &sched, ode);
        }
        _ => anyhow::bail!(
            "--points: runs regression (function, linear) and generation (gmm, alphabet) models, not {}",
            task.name()
        ),
    };
    let batch = TaskBatch::new(&[&data], device).map_err(|e| anyhow::anyhow!("--points: {e}"))?;
    let states = refine(model, &batch, &sched, device);
    let preds: Vec<Vec<f32>> = steps
        .iter()
        .map(|&k| host(predictions(model, &states[k], &batch)))
        .collect::<anyhow::Result<_>>()?;
    let mut out = std::iter::once(first.to_string())
        .chain(steps.iter().map(|k| format!("steps_{k}")))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for (i, label) in labels.iter().enumerate() {
        out += label;
        for p in &preds {
            out += &format!(",{}", p[i]);
        }
        out.push('\n');
    }
    Ok(out)
}

/// Samples from noise given the context `points` `[n, d]`: as many samples as points (at least
/// 256), after each reported number of refinement steps per field evaluation. CSV: `steps,x1..xd`.
fn generate(
    Setup {
        model,
        seed,
        device,
        ..
    }: Setup,
    points: &[f32],
    d: usize,
    steps: &[usize],
    sched: &[Vec<usize>],
    (method, ode_steps): (OdeMethod, usize),
) -> anyhow::Result<String> {
    let n = points.len() / d;
    let samples = n.max(256);
    let mut rng = StdRng::seed_from_u64(seed);
    let data = FlowTarget::Sample.training_data(points, &vec![0.0; samples * d], d, &mut rng);
    let batch = TaskBatch::new(&[&data], device).map_err(|e| anyhow::anyhow!("--points: {e}"))?;
    device.seed(seed);
    let x0 = flow::noise(1, samples, d, device);
    let mut out = std::iter::once("steps".to_string())
        .chain((1..=d).map(|i| format!("x{i}")))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for &k in steps.iter().filter(|&&k| k > 0) {
        let path = flow::integrate(
            model,
            &batch,
            x0.clone(),
            ode_steps,
            method,
            &sched[..k],
            device,
        );
        let x = host(path.last().expect("integrate returns the start").clone())?;
        for p in x.chunks(d) {
            out += &k.to_string();
            for v in p {
                out += &format!(",{v}");
            }
            out.push('\n');
        }
    }
    Ok(out)
}
