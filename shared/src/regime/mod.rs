//! Regimes: what the state is and how a prediction is made from it.

pub mod parametric;

use serde::{Deserialize, Serialize};

/// The amortization regime of the paper's taxonomy (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// State = the weights θ of a fixed predictor f(x; θ).
    Parametric,
}

impl std::fmt::Display for Regime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Regime::Parametric => write!(f, "parametric"),
        }
    }
}
