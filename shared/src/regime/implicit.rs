//! Implicit regime: no task parameters; every query carries a state (its current prediction)
//! with its token, refined step by step (paper §4, eq. 8). The form of the carried state is a
//! choice (Fig. 4): the raw prediction (logits for classification, the value for regression, the
//! vector field for generation), its softmax, or the transformer's hidden vector before the
//! output layer ("pre-MLP").

use burn::tensor::activation::softmax;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// What an implicit model carries from one step to the next, per query.
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
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum StateForm {
    /// The prediction itself: logits, a value, a vector field. Updated residually.
    #[default]
    Logits,
    /// The softmax of the logits (classification); updated residually in log space.
    Softmax,
    /// The hidden vector the output layer reads (size d_model).
    PreMlp,
}

crate::choice::from_name!(StateForm, "state form");

/// Smallest probability whose logarithm is taken.
const FLOOR: f32 = 1e-6;

/// Logits from a carried state of form Logits or Softmax.
pub fn logits_of<const D: usize>(state: Tensor<D>, form: StateForm) -> Tensor<D> {
    match form {
        StateForm::Softmax => state.clamp_min(FLOOR).log(),
        _ => state,
    }
}

/// The carried state for `logits`, for forms Logits and Softmax.
pub fn state_of<const D: usize>(logits: Tensor<D>, form: StateForm) -> Tensor<D> {
    match form {
        StateForm::Softmax => softmax(logits, D - 1),
        _ => logits,
    }
}
