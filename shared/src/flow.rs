//! Conditional flow matching for generation in the implicit regime (paper §5, §9.5–9.6).
//!
//! The model predicts the vector field v(x_t, t | context) on the straight path
//! x_t = (1 − t)·x_0 + t·x_1 from noise x_0 ~ N(0, I) to a data point x_1, whose target is
//! x_1 − x_0. Each query token is (x_t, t) with its carried state, the current estimate of v;
//! k refinement steps over mini-batches of the context give the field. Sampling integrates
//! dx/dt = v from t = 0 to 1 with a fixed-step method, every field evaluation running the k steps.
//! The tasks' encoding (queries, targets, the exact empirical field) is in
//! [`crate::task::flow_matching`].
//!
//! The integrator is written on tensors rather than taken from an ODE crate: the crates step host
//! vectors through a synchronous callback, which on WebGPU would force a blocking device read per
//! evaluation (synchronous reads panic in the browser); here the whole trajectory stays on the
//! device.

use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::Amortizer;
use crate::refine::{refine, TaskBatch};

/// Fixed-step ODE methods.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Default,
    strum::Display,
    strum::VariantNames,
    strum::EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum OdeMethod {
    /// Forward Euler: one field evaluation per step, first order.
    #[default]
    Euler,
    /// Heun's method (explicit trapezoid): two evaluations per step, second order.
    Heun,
    /// The classical Runge–Kutta method: four evaluations per step, fourth order.
    Rk4,
}

crate::choice::from_name!(OdeMethod, "ODE method");

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
