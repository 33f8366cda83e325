//! # amortize
//!
//! Iterative amortized inference (Mittal, Mahajan, Lajoie, Pezeshki, 2025): one transformer `h_φ`
//! that refines a task's solution step by step over mini-batches of the task's data, the way SGD
//! does, but with a learned update.
//!
//! The crate is the paper's method and its task samplers. It never picks a backend (callers pass a
//! Burn [`Device`](burn::tensor::Device)) and does no I/O: weights go in and out as bytes.
//!
//! Floors, bottom up: [`task`] and [`model`]; [`regime`]; [`signal`]; [`refine`]. Nothing lower
//! imports anything higher.

pub mod baseline;
pub mod metric;
pub mod model;
pub mod refine;
pub mod regime;
pub mod signal;
pub mod task;
pub mod weights;

pub use model::{Amortizer, AmortizerConfig};
pub use refine::RefineConfig;
pub use task::regression::{FunctionRegression, FunctionRegressionConfig};
pub use weights::{ModelBundle, WeightsError};
