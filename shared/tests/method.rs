//! The method's promises, on the CPU backend with tiny configurations.

use amortize::model::AmortizerConfig;
use amortize::refine::{greedy_loss, refine, schedule, RegressionBatch};
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::regression::{FunctionRegression, FunctionRegressionConfig};
use amortize::weights::{BundleHeader, ModelBundle, WeightsError};
use amortize::RefineConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{rngs::StdRng, SeedableRng};

fn tiny(task: &FunctionRegression) -> AmortizerConfig {
    AmortizerConfig::new(task.observation_dim(), task.state_dim())
        .with_d_model(16)
        .with_n_heads(2)
        .with_n_layers(2)
        .with_d_ff(32)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn causal_prefix_equals_truncated_context() {
    let device = Device::flex();
    let task = FunctionRegression::new(FunctionRegressionConfig::new().with_features(4));
    let model = tiny(&task).init(&device);
    let mut rng = StdRng::seed_from_u64(0);
    let eps: Vec<_> = (0..3).map(|_| task.sample(&mut rng).episode).collect();
    let refs: Vec<_> = eps.iter().collect();
    let batch = RegressionBatch::new(&task, &refs, &device);
    let idx: Vec<usize> = (0..8).collect();
    let full = model.step_prefixes(model.initial_state(3), batch.tokens(&idx, &device));
    for n in [1usize, 3, 8] {
        let truncated = model.step(model.initial_state(3), batch.tokens(&idx[..n], &device));
        let prefix = full.clone().slice([0..3, n - 1..n, 0..4]).reshape([3, 4]);
        for (a, b) in values(prefix).iter().zip(values(truncated)) {
            assert!((a - b).abs() < 1e-5, "prefix {n}: {a} vs {b}");
        }
    }
}

#[test]
fn detached_state_blocks_gradients_across_steps() {
    let device = Device::flex().autodiff();
    let task = FunctionRegression::new(FunctionRegressionConfig::new().with_features(4));
    let model = tiny(&task).init(&device);
    let mut rng = StdRng::seed_from_u64(1);
    let ep = task.sample(&mut rng).episode;
    let batch = RegressionBatch::new(&task, &[&ep], &device);
    // A leaf state; the first step's output, detached, feeds the second step.
    let s0 = model.initial_state(1).detach().require_grad();
    let s1 = model.step(s0.clone(), batch.tokens(&[0, 1, 2], &device));
    let s2 = model.step(s1.clone().detach(), batch.tokens(&[3, 4, 5], &device));
    let grads = s2.sum().backward();
    assert!(
        s0.grad(&grads).is_none(),
        "no gradient flows through a detached state"
    );
    // Without the detach it does flow: the check above can fail.
    let s2 = model.step(s1, batch.tokens(&[3, 4, 5], &device));
    let grads = s2.sum().backward();
    let g = values(s0.grad(&grads).expect("gradient reaches s0"));
    assert!(g.iter().any(|v| v.abs() > 0.0));
}

#[test]
fn short_training_makes_the_loss_fall_and_refinement_help() {
    let device = Device::flex().autodiff();
    let task = FunctionRegression::new(
        FunctionRegressionConfig::new()
            .with_features(3)
            .with_context(16)
            .with_queries(16),
    );
    let mut model = tiny(&task).init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut rng = StdRng::seed_from_u64(2);
    let mut losses = Vec::new();
    for _ in 0..150 {
        let eps: Vec<_> = (0..16).map(|_| task.sample(&mut rng).episode).collect();
        let refs: Vec<_> = eps.iter().collect();
        let batch = RegressionBatch::new(&task, &refs, &device);
        let sched = schedule(16, 4, 4, &mut rng);
        let loss = greedy_loss(&model, &batch, &sched, &device);
        losses.push(loss.total.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    let first: f32 = losses[..20].iter().sum::<f32>() / 20.0;
    let last: f32 = losses[losses.len() - 20..].iter().sum::<f32>() / 20.0;
    assert!(last < 0.6 * first, "loss {first} -> {last}");

    // The trained model refines: the query error after 4 steps is below the one after 1.
    let model = model.valid();
    let device = device.without_autodiff();
    let eps: Vec<_> = (0..64).map(|_| task.sample(&mut rng).episode).collect();
    let refs: Vec<_> = eps.iter().collect();
    let batch = RegressionBatch::new(&task, &refs, &device);
    let states = refine(&model, &batch, &schedule(16, 4, 4, &mut rng), &device);
    let err = |s: &Tensor<2>| {
        amortize::regime::parametric::mse_per_task(
            s.clone(),
            batch.query_features.clone(),
            batch.targets.clone(),
        )
        .mean()
        .into_scalar::<f32>()
    };
    assert!(
        err(&states[4]) < err(&states[1]),
        "{} vs {}",
        err(&states[4]),
        err(&states[1])
    );
}

fn header(task: &FunctionRegression) -> BundleHeader {
    BundleHeader {
        regime: Regime::Parametric,
        signal: Signal::Observations,
        model: tiny(task),
        task: task.config.clone(),
        refine: RefineConfig::new(),
        provenance: serde_json::json!({"note": "test"}),
    }
}

#[test]
fn weights_round_trip_exactly_and_reject_damage() {
    let device = Device::flex();
    let task = FunctionRegression::new(FunctionRegressionConfig::new().with_features(4));
    let model = tiny(&task).init(&device);
    let obs = Tensor::<3>::from_data(
        TensorData::new(
            (0..30).map(|i| i as f32 / 30.0).collect::<Vec<_>>(),
            [1, 5, 6],
        ),
        &device,
    );
    let before = values(model.step(model.initial_state(1), obs.clone()));
    let bytes = ModelBundle::from_model(header(&task), model)
        .unwrap()
        .encode();
    let back = ModelBundle::decode(&bytes).unwrap();
    assert_eq!(back.header, header(&task));
    let model = back.model(&device).unwrap();
    assert_eq!(before, values(model.step(model.initial_state(1), obs)));

    // Truncated, flipped, foreign: each a clear error, never a panic.
    for cut in [0, 4, 12, 40, bytes.len() / 2, bytes.len() - 1] {
        let err = ModelBundle::decode(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, WeightsError::Truncated(_) | WeightsError::BadMagic),
            "cut {cut}: {err}"
        );
    }
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(matches!(
        ModelBundle::decode(&flipped).unwrap_err(),
        WeightsError::Checksum { .. }
    ));
    assert!(matches!(
        ModelBundle::decode(b"<html>not found</html>").unwrap_err(),
        WeightsError::BadMagic
    ));
    // Weights of another architecture are refused when loading.
    let mut other = ModelBundle::decode(&bytes).unwrap();
    other.header.model.d_model = 32;
    other.header.model.n_heads = 2;
    assert!(matches!(
        other.model(&device).unwrap_err(),
        WeightsError::Architecture(_)
    ));
}
