//! Regimes (paper §3): what the state is and how a prediction is made from it.
//!
//! - [`parametric`]: the state is the weights θ of a fixed predictor f(x; θ);
//! - [`explicit`]: the state is a latent z read by a learned predictor f_γ(x, z);
//! - [`implicit`]: no task parameters; each query carries its own state, the current prediction.

pub mod explicit;
pub mod implicit;
pub mod parametric;

use serde::{Deserialize, Serialize};

/// The amortization regime of the paper's taxonomy (§3).
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
pub enum Regime {
    /// State = the weights θ of a fixed predictor f(x; θ).
    #[default]
    Parametric,
    /// State = a latent z of a learned predictor f_γ(x, z), trained jointly with h_φ.
    Explicit,
    /// State = one prediction per query, carried with its query token (in-context learning).
    Implicit,
}

impl Regime {
    /// Whether the state belongs to the task (one per task) rather than to each query.
    pub fn has_task_state(self) -> bool {
        !matches!(self, Regime::Implicit)
    }

    /// Every regime, in the paper's order.
    pub const ALL: [Regime; 3] = [Regime::Parametric, Regime::Explicit, Regime::Implicit];
}

crate::choice::from_name!(Regime, "regime");
