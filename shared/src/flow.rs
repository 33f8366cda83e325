//! Conditional flow matching for generation in the implicit regime (paper §5, §9.5–9.6).
//!
//! The model predicts the vector field v(x_t, t | context) on the straight path
//! x_t = (1 − t)·x_0 + t·x_1 from noise x_0 ~ N(0, I) to a data point x_1, whose target is
//! x_1 − x_0. Each query token is (x_t, t) with its carried state, the current estimate of v;
//! k refinement steps over mini-batches of the context give the field. Sampling integrates
//! dx/dt = v from t = 0 to 1 with a fixed-step method, every field evaluation running the k steps.
//!
//! The integrator is written on tensors rather than taken from an ODE crate: the crates step host
//! vectors through a synchronous callback, which on WebGPU would force a blocking device read per
//! evaluation (synchronous reads panic in the browser); here the whole trajectory stays on the
//! device.

use burn::tensor::{Device, Distribution, Tensor};
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::model::Amortizer;
use crate::refine::{refine, TaskBatch};
use crate::task::{LossKind, TaskData, TaskDims};

/// The shapes of a generation task over `dim`-dimensional points.
pub fn dims(dim: usize) -> TaskDims {
    TaskDims {
        obs_dim: dim,
        input_dim: dim + 1,
        output_dim: dim,
        loss: LossKind::Mse,
    }
}

/// A flow-matching training task: context points (what the amortizer reads) and, for every
/// target point x_1, a query (x_t, t) with target x_1 − x_0 for fresh x_0 ~ N(0, I),
/// t ~ U(0, 1). `context`, `targets`: row-major `[n, dim]`, `[q, dim]`.
pub fn training_data<R: Rng + ?Sized>(
    context: &[f32],
    targets: &[f32],
    dim: usize,
    rng: &mut R,
) -> TaskData {
    let q = targets.len() / dim;
    let mut input = Vec::with_capacity(q * (dim + 1));
    let mut field = Vec::with_capacity(q * dim);
    for x1 in targets.chunks(dim) {
        let t: f32 = rng.random_range(0.0..1.0);
        let x0: Vec<f32> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
        for (a, b) in x0.iter().zip(x1) {
            input.push((1.0 - t) * a + t * b);
        }
        input.push(t);
        field.extend(x0.iter().zip(x1).map(|(a, b)| b - a));
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

/// The data points x_1 behind a flow-matching task's queries, `[q, dim]`: every query lies on
/// the straight path, so x_1 = x_t + (1 − t)·v.
pub fn data_points(task: &TaskData) -> Vec<f32> {
    let d = task.dims.output_dim;
    task.query_input
        .chunks(d + 1)
        .zip(task.query_target.chunks(d))
        .flat_map(|(x, v)| (0..d).map(move |k| x[k] + (1.0 - x[d]) * v[k]))
        .collect()
}

/// Fixed-step ODE methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OdeMethod {
    /// Forward Euler: one field evaluation per step, first order.
    #[default]
    Euler,
    /// Heun's method (explicit trapezoid): two evaluations per step, second order.
    Heun,
    /// The classical Runge–Kutta method: four evaluations per step, fourth order.
    Rk4,
}

impl std::str::FromStr for OdeMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "euler" => Ok(OdeMethod::Euler),
            "heun" => Ok(OdeMethod::Heun),
            "rk4" => Ok(OdeMethod::Rk4),
            _ => Err(format!(
                "unknown ODE method {s:?} (expected euler, heun or rk4)"
            )),
        }
    }
}

/// The field at points `x` `[B, N, D]` and time `t`, given the context of `context`'s tasks:
/// k refinement steps over `schedule`, from the learned initial field.
pub fn velocity(
    model: &Amortizer,
    context: &TaskBatch,
    x: Tensor<3>,
    t: f32,
    schedule: &[Vec<usize>],
    device: &Device,
) -> Tensor<3> {
    let [b, n, _] = x.dims();
    let time = Tensor::<3>::full([b, n, 1], t, device);
    let batch = context.with_queries(Tensor::cat(vec![x, time], 2));
    let states = refine(model, &batch, schedule, device);
    model.decode_queries(
        states
            .last()
            .expect("refine returns the initial state")
            .clone(),
    )
}

/// Integrates dx/dt = v(x, t | context) from `x0` `[B, N, D]` at t = 0 to t = 1 in `steps`
/// steps of `method`. Returns the points at every step, `steps + 1` tensors.
pub fn integrate(
    model: &Amortizer,
    context: &TaskBatch,
    x0: Tensor<3>,
    steps: usize,
    method: OdeMethod,
    schedule: &[Vec<usize>],
    device: &Device,
) -> Vec<Tensor<3>> {
    let h = 1.0 / steps.max(1) as f32;
    let f = |x: Tensor<3>, t: f32| velocity(model, context, x, t, schedule, device);
    let mut path = vec![x0];
    for i in 0..steps {
        let t = i as f32 * h;
        let x = path.last().expect("starts with x0").clone();
        let next = match method {
            OdeMethod::Euler => x.clone() + f(x, t) * h,
            OdeMethod::Heun => {
                let k1 = f(x.clone(), t);
                let k2 = f(x.clone() + k1.clone() * h, t + h);
                x + (k1 + k2) * (h / 2.0)
            }
            OdeMethod::Rk4 => {
                let k1 = f(x.clone(), t);
                let k2 = f(x.clone() + k1.clone() * (h / 2.0), t + h / 2.0);
                let k3 = f(x.clone() + k2.clone() * (h / 2.0), t + h / 2.0);
                let k4 = f(x.clone() + k3.clone() * h, t + h);
                x + (k1 + (k2 + k3) * 2.0 + k4) * (h / 6.0)
            }
        };
        path.push(next);
    }
    path
}

/// Standard-normal starting points `[B, N, D]` on `device` (seed the device for repeatability).
pub fn noise(batch: usize, n: usize, dim: usize, device: &Device) -> Tensor<3> {
    Tensor::random([batch, n, dim], Distribution::Normal(0.0, 1.0), device)
}
