//! The generative tasks' encoding for flow matching (paper §5, §9.5–9.6): a query is a point x_t on
//! the straight path x_t = (1 − t)·x_0 + t·x_1 from noise x_0 ~ N(0, I) to a data point x_1, with
//! the flow time t; its target is a velocity.
//!
//! Two targets, one per [`FlowTarget`]:
//! - [`FlowTarget::Sample`] (the paper's conditional flow matching): x_1 − x_0 for a fresh point
//!   x_1 of the task. Its mean given x_t is the field of the task's distribution, but one sample is
//!   mostly noise, so a model learns the field slowly.
//! - [`FlowTarget::Empirical`]: the exact field of the context's empirical distribution, each
//!   point widened by a Gaussian of std σ, at x_t ([`empirical_field`]). It is a softmax over the
//!   context points (one attention layer can express it), has no sampling noise, and its samples
//!   reproduce the context's shape: what a visitor who draws a letter expects back.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{LossKind, TaskData, TaskDims};

/// The shapes of a generation task over `dim`-dimensional points: observations are points, a
/// query is (x_t, t), a prediction is a velocity.
pub fn dims(dim: usize) -> TaskDims {
    TaskDims {
        obs_dim: dim,
        input_dim: dim + 1,
        output_dim: dim,
        loss: LossKind::Mse,
    }
}

/// What a generation task's queries are trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum FlowTarget {
    /// x_1 − x_0 for a fresh sample x_1 of the task (the paper's conditional flow matching).
    #[default]
    Sample,
    /// The exact field of the context's empirical distribution widened by N(0, σ² I).
    Empirical {
        /// The widening σ (in the task's units; > 0).
        sigma: f64,
    },
}

impl FlowTarget {
    /// Whether this is the paper's default (configs written before the choice existed omit it).
    pub fn is_sample(&self) -> bool {
        matches!(self, FlowTarget::Sample)
    }

    /// Checks σ.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            FlowTarget::Sample => Ok(()),
            FlowTarget::Empirical { sigma } if sigma.is_finite() && sigma > 0.0 => Ok(()),
            FlowTarget::Empirical { sigma } => Err(format!(
                "the empirical field's sigma must be finite and > 0, got {sigma}"
            )),
        }
    }

    /// A training task: `context` (what the amortizer reads) and queries built on `targets`
    /// (fresh points of the task, `[q, dim]`): each x_1 in `targets` gives one query (x_t, t)
    /// with fresh x_0 ~ N(0, I) and t ~ U(0, 1). Its target is x_1 − x_0 ([`Self::Sample`]) or
    /// the empirical field of `context` at (x_t, t) ([`Self::Empirical`]; x_1 is then a context
    /// point widened by σ, so that x_t follows the path of the distribution the field moves).
    pub fn training_data<R: Rng + ?Sized>(
        &self,
        context: &[f32],
        targets: &[f32],
        dim: usize,
        rng: &mut R,
    ) -> TaskData {
        let q = targets.len() / dim;
        let n = context.len() / dim;
        let mut input = Vec::with_capacity(q * (dim + 1));
        let mut field = Vec::with_capacity(q * dim);
        for x1 in targets.chunks(dim) {
            let t: f32 = rng.random_range(0.0..1.0);
            let x0: Vec<f32> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
            match *self {
                FlowTarget::Sample => {
                    input.extend(x0.iter().zip(x1).map(|(a, b)| (1.0 - t) * a + t * b));
                    input.push(t);
                    field.extend(x0.iter().zip(x1).map(|(a, b)| b - a));
                }
                FlowTarget::Empirical { sigma } => {
                    let i = rng.random_range(0..n.max(1));
                    let x1: Vec<f32> = (0..dim)
                        .map(|k| {
                            let z: f32 = StandardNormal.sample(rng);
                            context.get(i * dim + k).copied().unwrap_or(0.0) + sigma as f32 * z
                        })
                        .collect();
                    let xt: Vec<f32> = x0
                        .iter()
                        .zip(&x1)
                        .map(|(a, b)| (1.0 - t) * a + t * b)
                        .collect();
                    field.extend(empirical_field(context, dim, sigma, &xt, t));
                    input.extend(xt);
                    input.push(t);
                }
            }
        }
        TaskData {
            dims: dims(dim),
            context_obs: context.to_vec(),
            context_input: Vec::new(),
            context_target: Vec::new(),
            query_input: input,
            query_target: field,
        }
    }
}

/// The exact velocity E[x_1 − x_0 | x_t = x] at the points `x` (`[m, dim]`) and time `t` of the
/// straight path from N(0, I) to the mixture (1/n) Σ_i N(p_i, σ² I) over the points `points`
/// (`[n, dim]`). Given component i, x_t ~ N(t·p_i, s² I) with s² = (1 − t)² + t²σ², and
///   E[x_1 | x_t, i] = p_i + (tσ²/s²)(x − t·p_i),  E[x_0 | x_t, i] = ((1 − t)/s²)(x − t·p_i),
/// so v(x) = Σ_i w_i(x) [p_i + ((tσ² − (1 − t))/s²)(x − t·p_i)] with softmax weights
/// w_i ∝ exp(−‖x − t·p_i‖² / (2s²)). No points: the field of N(0, I) itself,
/// v = ((t − (1 − t))/s²)·x with σ = 1. Returns `[m, dim]`.
pub fn empirical_field(points: &[f32], dim: usize, sigma: f64, x: &[f32], t: f32) -> Vec<f32> {
    let t = t as f64;
    let n = points.len() / dim.max(1);
    if n == 0 {
        // The data distribution is then taken as N(0, I): s² = (1 − t)² + t².
        let s2 = (1.0 - t).powi(2) + t * t;
        let c = (t - (1.0 - t)) / s2;
        return x.iter().map(|&v| (c * v as f64) as f32).collect();
    }
    let s2 = (1.0 - t).powi(2) + t * t * sigma * sigma;
    let c = (t * sigma * sigma - (1.0 - t)) / s2;
    let mut out = Vec::with_capacity(x.len());
    let mut logits = vec![0.0f64; n];
    for xm in x.chunks(dim) {
        let mut best = f64::NEG_INFINITY;
        for (i, p) in points.chunks(dim).enumerate() {
            let d2: f64 = xm
                .iter()
                .zip(p)
                .map(|(&a, &b)| (a as f64 - t * b as f64).powi(2))
                .sum();
            logits[i] = -d2 / (2.0 * s2);
            best = best.max(logits[i]);
        }
        let mut total = 0.0;
        let mut v = vec![0.0f64; dim];
        for (i, p) in points.chunks(dim).enumerate() {
            let w = (logits[i] - best).exp();
            total += w;
            for k in 0..dim {
                let pk = p[k] as f64;
                v[k] += w * (pk + c * (xm[k] as f64 - t * pk));
            }
        }
        out.extend(v.iter().map(|vk| (vk / total) as f32));
    }
    out
}

/// Samples of the empirical distribution's flow: the points `x0` (`[m, dim]`, standard normal)
/// carried from t = 0 to 1 by `steps` forward-Euler steps of [`empirical_field`], the reference a
/// learned field is compared with (what an exact field gives under the same integrator).
pub fn sample_empirical(
    points: &[f32],
    dim: usize,
    sigma: f64,
    x0: &[f32],
    steps: usize,
) -> Vec<f32> {
    let steps = steps.max(1);
    let h = 1.0 / steps as f32;
    let mut x = x0.to_vec();
    for i in 0..steps {
        let v = empirical_field(points, dim, sigma, &x, i as f32 * h);
        for (a, b) in x.iter_mut().zip(v) {
            *a += h * b;
        }
    }
    x
}

/// The data points x_1 behind [`FlowTarget::Sample`] queries, `[q, dim]`: every query lies on the
/// straight path, so x_1 = x_t + (1 − t)·v.
pub fn data_points(task: &TaskData) -> Vec<f32> {
    let d = task.dims.output_dim;
    task.query_input
        .chunks(d + 1)
        .zip(task.query_target.chunks(d))
        .flat_map(|(x, v)| (0..d).map(move |k| x[k] + (1.0 - x[d]) * v[k]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    /// The closed form is the mean of x_1 − x_0 given x_t: compare with a Monte Carlo estimate
    /// that weighs joint draws (x_0, x_1) by the density of x_t near the query.
    #[test]
    fn empirical_field_is_the_conditional_mean_velocity() {
        let points = [-1.0f32, 0.5, 1.2, -0.3, 0.2, 1.0];
        let sigma = 0.3;
        let mut rng = StdRng::seed_from_u64(3);
        for &(t, x) in &[
            (0.3f32, [0.1f32, 0.2]),
            (0.7, [-0.5, 0.4]),
            (0.0, [0.3, -0.2]),
        ] {
            let exact = empirical_field(&points, 2, sigma, &x, t);
            // Draw x_1 from the mixture, then x_0 | x_t = x exactly: x_0 = (x − t x_1)/(1 − t)
            // is deterministic given x_1, so weigh each x_1 draw by p(x_t = x | x_1).
            let (mut num, mut den) = ([0.0f64; 2], 0.0f64);
            for _ in 0..200_000 {
                let i = rng.random_range(0..3);
                let x1: Vec<f64> = (0..2)
                    .map(|k| {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        points[2 * i + k] as f64 + sigma * z
                    })
                    .collect();
                let tt = t as f64;
                let x0: Vec<f64> = (0..2)
                    .map(|k| (x[k] as f64 - tt * x1[k]) / (1.0 - tt))
                    .collect();
                let w = (-(x0[0] * x0[0] + x0[1] * x0[1]) / 2.0).exp();
                for k in 0..2 {
                    num[k] += w * (x1[k] - x0[k]);
                }
                den += w;
            }
            for k in 0..2 {
                let mc = num[k] / den;
                assert!(
                    (mc - exact[k] as f64).abs() < 0.03,
                    "t {t}: component {k}: exact {} vs Monte Carlo {mc}",
                    exact[k]
                );
            }
        }
    }

    /// Integrated, the exact field carries noise onto the points: with a small σ every sample
    /// ends near some point, and every point is reached.
    #[test]
    fn exact_samples_land_on_the_points() {
        let points = [-2.0f32, 0.0, 2.0, 0.0, 0.0, 2.0];
        let mut rng = StdRng::seed_from_u64(9);
        let x0: Vec<f32> = (0..600).map(|_| StandardNormal.sample(&mut rng)).collect();
        let out = sample_empirical(&points, 2, 0.02, &x0, 200);
        let mut hits = [0usize; 3];
        for s in out.chunks(2) {
            let (i, d) = points
                .chunks(2)
                .enumerate()
                .map(|(i, p)| (i, ((s[0] - p[0]).powi(2) + (s[1] - p[1]).powi(2)).sqrt()))
                .fold((0, f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            assert!(d < 0.1, "sample {s:?} is {d} from the nearest point");
            hits[i] += 1;
        }
        assert!(
            hits.iter().all(|&h| h > 50),
            "every point is reached: {hits:?}"
        );
    }

    #[test]
    fn empirical_targets_are_the_field_at_the_query() {
        let context = [0.5f32, 0.5, -0.5, -0.5];
        let target = FlowTarget::Empirical { sigma: 0.1 };
        let data = target.training_data(&context, &[0.0; 20], 2, &mut StdRng::seed_from_u64(1));
        assert_eq!(data.query_len(), 10);
        for (q, v) in data.query_input.chunks(3).zip(data.query_target.chunks(2)) {
            let want = empirical_field(&context, 2, 0.1, &q[..2], q[2]);
            assert_eq!(v, &want[..]);
        }
        assert!(FlowTarget::Empirical { sigma: 0.0 }.validate().is_err());
        assert!(FlowTarget::Empirical { sigma: f64::NAN }
            .validate()
            .is_err());
        assert!(target.validate().is_ok());
    }
}
