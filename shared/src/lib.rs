//! # amortize
//!
//! Iterative amortized inference (Mittal, Mahajan, Lajoie, Pezeshki, 2025): one transformer `h_φ`
//! that refines a task's solution step by step over mini-batches of the task's data, the way SGD
//! does, but with a learned update.
//!
//! The crate is the paper's method and its task samplers. It never picks a backend (callers pass a
//! Burn [`Device`](burn::tensor::Device)) and does no I/O: weights go in and out as bytes. Its
//! `flex` feature (on in the trainer and the web app) compiles in a fused GELU for Burn's flex CPU
//! backend, used whenever the caller's device is a flex one.
//!
//! Three independent choices meet in one refinement engine: a [`task`] family (what an episode
//! is and how predictions are scored), a [`regime`] (what the state is: parametric θ, explicit
//! latent z, implicit per-query prediction) and a [`signal`] (observations, gradients, both).
//! [`refine`] runs k greedy steps for any combination, for training and inference; [`flow`] adds
//! flow-matching generation on top; [`meta`] is the outer loop that meta-trains a model, one step
//! at a time; [`model::order`] is the sample × node model for SCM
//! topological orders. [`metric`] and [`baseline`] score the results, [`weights`] carries a
//! trained model as bytes, and [`points`] reads a user's point file (one set of rules for the web
//! app and the command line).

pub mod baseline;
pub mod choice;
pub mod flow;
pub mod meta;
pub mod metric;
pub mod model;
pub mod points;
pub mod refine;
pub mod regime;
pub mod signal;
pub mod task;
pub mod weights;

pub use model::{Amortizer, AmortizerConfig};
pub use refine::RefineConfig;
pub use task::regression::{FunctionRegression, FunctionRegressionConfig};
pub use task::{TaskConfig, TaskData, TaskDims};
pub use weights::{ModelBundle, WeightsError};
