//! The amortizer h_φ: token encoders, a pre-norm transformer and the state decoder, for every
//! regime and signal.
//!
//! Tokens (paper §11.1): each observation (x, y) through an observation encoder, each gradient
//! through a gradient encoder, the task-level state (parametric θ, explicit z) through a state
//! encoder; in the implicit regime each query with its carried state through a query encoder.
//! Optional history (Fig. 3): the previous states as extra tokens (task-level state) or as extra
//! inputs of each query token (implicit).
//!
//! The paper's implicit models read observations only: they have no task parameters to
//! differentiate. Here an implicit model may also read gradients, with respect to its own
//! predictions: it then carries a state at every context point as well, and a gradient token
//! holds a point's input with ∇ ℓ(prediction there, y), its residual for a squared error. This
//! gives the update what an optimiser reads, how wrong the current solution is on the batch,
//! which observations alone cannot tell a query that sees only its own state.

mod amortizer;
mod attention;
mod config;
mod encoder;
pub(crate) mod gelu;
mod grow;
pub mod mask;
pub mod order;

pub use amortizer::{Amortizer, StepInput};
pub use config::AmortizerConfig;

#[cfg(test)]
mod tests {
    use super::mask::Attention;
    use super::*;
    use crate::regime::Regime;
    use crate::signal::Signal;
    use crate::task::{LossKind, TaskDims};
    use burn::module::{Module, Param};
    use burn::tensor::{Device, Tensor};

    /// A small implicit model (d_model 16) of `n_layers` layers.
    fn small(n_layers: usize, attention: Attention) -> AmortizerConfig {
        let dims = TaskDims {
            obs_dim: 2,
            input_dim: 3,
            output_dim: 2,
            loss: LossKind::Mse,
        };
        AmortizerConfig {
            attention,
            n_layers,
            d_ff: 32,
            d_model: 16,
            ..AmortizerConfig::new(dims, Regime::Implicit, Signal::Observations)
        }
    }

    /// A deepened model has the extra layers and computes what the original computes, on both
    /// attention paths; its extra layers are not inert: their projections are at zero, not
    /// missing, and the other weights are drawn.
    #[test]
    fn deepening_preserves_the_function() {
        let device = Device::flex();
        device.seed(5);
        let model = small(2, Attention::Causal).init(&device);
        let dist = burn::tensor::Distribution::Normal(0.0, 1.0);
        let obs = Tensor::<3>::random([2, 5, 16], dist, &device);
        let queries = Tensor::<3>::random([2, 4, 16], dist, &device);
        let prefixes: Vec<usize> = (0..8).map(|i| 1 + i % 5).collect();
        let before = model.attend_direct(obs.clone(), queries.clone(), &prefixes);
        let deeper = model.deepen(2, &device);
        assert_eq!(deeper.config().n_layers, 4);
        assert_eq!(deeper.encoder.layers.len(), 4);
        for path in [
            deeper.attend_direct(obs.clone(), queries.clone(), &prefixes),
            deeper.attend_masked(obs.clone(), queries.clone(), &prefixes),
        ] {
            let gap = (path - before.clone()).abs().max().into_scalar::<f32>();
            assert!(gap < 1e-5, "the deepened model differs by {gap}");
        }
        let added = &deeper.encoder.layers[3];
        let peak = |w: &Param<Tensor<2>>| w.val().abs().max().into_scalar::<f32>();
        assert_eq!(peak(&added.mha.output.weight), 0.0);
        assert_eq!(peak(&added.pwff.linear_outer.weight), 0.0);
        assert!(peak(&added.pwff.linear_inner.weight) > 0.0);
        // The record round-trips through the config's architecture, as a saved file does.
        let record = deeper.clone().into_record();
        let loaded = deeper.config().init(&device).load_record(record);
        let again = loaded.attend_direct(obs, queries, &prefixes);
        let gap = (again - before).abs().max().into_scalar::<f32>();
        assert!(gap < 1e-5, "the reloaded deepened model differs by {gap}");
    }

    /// The direct path computes what the masked encoder computes, with and without chunking of
    /// many queries, under causal and full attention, for whole mini-batches (inference) and
    /// random prefixes (training).
    #[test]
    fn direct_attention_matches_the_masked_encoder() {
        let device = Device::flex();
        device.seed(11);
        for attention in [Attention::Causal, Attention::Full] {
            let model = small(3, attention).init(&device);
            for q in [7, 70] {
                let dist = burn::tensor::Distribution::Normal(0.0, 1.0);
                let obs = Tensor::<3>::random([2, 5, 16], dist, &device);
                let queries = Tensor::<3>::random([2, q, 16], dist, &device);
                let drawn: Vec<usize> = (0..2 * q).map(|i| 1 + (i * 7 + i / 3) % 5).collect();
                for prefixes in [vec![5; 2 * q], drawn] {
                    let direct = model.attend_direct(obs.clone(), queries.clone(), &prefixes);
                    let masked = model.attend_masked(obs.clone(), queries.clone(), &prefixes);
                    assert_eq!(direct.dims(), [2, q, 16]);
                    let gap = (direct - masked).abs().max().into_scalar::<f32>();
                    assert!(gap < 1e-4, "{attention:?}, {q} queries: differs by {gap}");
                }
            }
        }
    }
}
