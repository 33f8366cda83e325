//! The method's promises, on the CPU backend with tiny configurations: every regime × signal
//! runs forward and backward, causal prefixes equal truncated contexts, detaching blocks
//! gradients, the gradient signal is the predictor's loss gradient, training lowers the loss,
//! weights round-trip.

use amortize::model::mask::Attention;
use amortize::model::{AmortizerConfig, StepInput};
use amortize::refine::{
    greedy_loss, greedy_loss_with, loss_per_task, predictions, refine, schedule, TaskBatch,
};
use amortize::regime::explicit::LatentReadout;
use amortize::regime::implicit::StateForm;
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::linear::LinearRegressionConfig;
use amortize::task::regression::FunctionRegressionConfig;
use amortize::task::{Sampler, TaskConfig, TaskData};
use amortize::weights::{BundleHeader, ModelBundle, WeightsError};
use amortize::RefineConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use rand::{rngs::StdRng, SeedableRng};

fn tiny(task: &TaskConfig, regime: Regime, signal: Signal) -> AmortizerConfig {
    AmortizerConfig {
        d_model: 16,
        n_heads: 2,
        n_layers: 2,
        d_ff: 32,
        latent_dim: 8,
        predictor_hidden: 16,
        ..AmortizerConfig::new(task.dims(), regime, signal)
    }
}

fn function_task() -> TaskConfig {
    TaskConfig::FunctionRegression(
        FunctionRegressionConfig::new()
            .with_features(4)
            .with_context(12)
            .with_queries(6),
    )
}

fn linear_task(dim: usize) -> TaskConfig {
    TaskConfig::LinearRegression(LinearRegressionConfig {
        dim,
        noise_std: 0.1,
        context: 16,
        queries: 8,
    })
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn sample(task: &TaskConfig, n: usize, seed: u64) -> Vec<TaskData> {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Sampler::new(task.clone()).unwrap();
    (0..n).map(|_| s.sample(&mut rng)).collect()
}

fn batch(data: &[TaskData], device: &Device) -> TaskBatch {
    let refs: Vec<_> = data.iter().collect();
    TaskBatch::new(&refs, device).unwrap()
}

/// Every (regime, signal, attention, history, state form) the paper defines for a regression task.
fn configurations(task: &TaskConfig) -> Vec<AmortizerConfig> {
    let mut out = Vec::new();
    for regime in Regime::ALL {
        for signal in Signal::EVERY {
            if regime == Regime::Implicit && signal.gradient_token() {
                continue;
            }
            for attention in [Attention::Causal, Attention::Full] {
                for history in [0, 2] {
                    let forms: &[StateForm] = if regime == Regime::Implicit {
                        &[StateForm::Logits, StateForm::PreMlp]
                    } else {
                        &[StateForm::Logits]
                    };
                    for &state_form in forms {
                        out.push(AmortizerConfig {
                            attention,
                            history,
                            state_form,
                            ..tiny(task, regime, signal)
                        });
                    }
                    if regime == Regime::Explicit {
                        out.push(AmortizerConfig {
                            attention,
                            history,
                            latent_readout: LatentReadout::Bilinear,
                            ..tiny(task, regime, signal)
                        });
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_regime_and_signal_runs_forward_and_backward() {
    let device = Device::flex().autodiff();
    for task in [function_task(), linear_task(3)] {
        let data = sample(&task, 3, 0);
        let b = batch(&data, &device);
        for cfg in configurations(&task) {
            cfg.validate().unwrap();
            let model = cfg.init(&device);
            let mut rng = StdRng::seed_from_u64(1);
            let sched = schedule(b.context_len(), 4, 3, &mut rng);
            let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
            assert_eq!(loss.per_step.len(), 3, "{cfg:?}");
            let total = loss.total.clone().into_scalar::<f32>();
            assert!(total.is_finite(), "{cfg:?}: loss {total}");
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            // The transformer's head always receives a gradient.
            assert!(grads.len() > 4, "{cfg:?}: only {} gradients", grads.len());
            // Inference on the same batch without autodiff.
            let plain = model.valid();
            let pb = batch(&data, &device.clone().without_autodiff());
            let states = refine(&plain, &pb, &sched, &device.clone().without_autodiff());
            assert_eq!(states.len(), 4);
            let pred = predictions(&plain, &states[3], &pb);
            assert_eq!(pred.dims(), [3, pb.query_len(), 1], "{cfg:?}");
            assert!(values(pred).iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn implicit_gradients_carry_context_states_and_softmax_needs_classes() {
    let task = linear_task(3);
    let grads = tiny(&task, Regime::Implicit, Signal::PointGradients);
    grads.validate().unwrap();
    // The paper's mini-batch gradient token needs task parameters: the implicit regime has none.
    for signal in [Signal::Gradients, Signal::Both] {
        let err = tiny(&task, Regime::Implicit, signal)
            .validate()
            .unwrap_err();
        assert!(err.contains("point-gradients"), "{err}");
    }
    assert!(grads.carries_context());
    // A point's input (3) beside the gradient of its prediction (1).
    assert_eq!(grads.gradient_dim(), 4);
    assert!(!tiny(&task, Regime::Implicit, Signal::Observations).carries_context());
    assert!(!tiny(&task, Regime::Parametric, Signal::Both).carries_context());
    let softmax_on_regression = AmortizerConfig {
        state_form: StateForm::Softmax,
        ..tiny(&task, Regime::Implicit, Signal::Observations)
    };
    assert!(softmax_on_regression.validate().is_err());
}

#[test]
fn causal_prefix_equals_truncated_context() {
    let device = Device::flex();
    let task = function_task();
    let data = sample(&task, 2, 3);
    let b = batch(&data, &device);
    let idx: Vec<usize> = (0..8).collect();
    for regime in Regime::ALL {
        for signal in [
            Signal::Observations,
            Signal::Gradients,
            Signal::Both,
            Signal::BothPointGradients,
        ] {
            if regime == Regime::Implicit && signal != Signal::Observations {
                continue;
            }
            let cfg = AmortizerConfig {
                history: 1,
                ..tiny(&task, regime, signal)
            };
            let model = cfg.init(&device);
            let start = model.initial(2, b.query_len());
            let input = |n: usize| {
                let mb = b.minibatch(&idx[..n], &device);
                let raw = signal.uses_gradients().then(|| {
                    model.point_gradients(
                        start.clone(),
                        mb.inputs.clone().unwrap(),
                        mb.targets.clone().unwrap(),
                    )
                });
                let grads = raw
                    .clone()
                    .filter(|_| signal.per_point())
                    .map(amortize::signal::preprocess_gradient);
                let grad_tokens = raw.filter(|_| signal.gradient_token()).map(|r| {
                    amortize::signal::preprocess_gradient(amortize::signal::prefix_mean_gradients(
                        r, true,
                    ))
                });
                StepInput {
                    obs: signal.uses_observations().then_some(mb.obs),
                    grads,
                    grad_tokens,
                    history: vec![start.clone()],
                    history_grads: if signal.uses_gradients() {
                        vec![start.clone().zeros_like()]
                    } else {
                        vec![]
                    },
                }
            };
            if regime.has_task_state() {
                let full = model.step_task(start.clone(), input(8)); // [2, 8, S]
                let s = full.dims()[2];
                for n in [1usize, 3, 8] {
                    let truncated = model.step_task(start.clone(), input(n));
                    let last = truncated.slice([0..2, n - 1..n, 0..s]);
                    let prefix = full.clone().slice([0..2, n - 1..n, 0..s]);
                    for (a, c) in values(prefix).iter().zip(values(last)) {
                        assert!(
                            (a - c).abs() < 1e-4,
                            "{regime} {signal} prefix {n}: {a} vs {c}"
                        );
                    }
                }
            } else {
                // Query i reads prefix r_i of 8 observations, or all of a truncated batch.
                let q = b.query_len();
                let prefixes: Vec<usize> = (0..2 * q).map(|i| 1 + i % 8).collect();
                let (mixed, _) =
                    model.step_queries(start.clone(), b.query_input.clone(), input(8), &prefixes);
                let mixed = values(mixed);
                for n in [1usize, 4, 8] {
                    let (alone, _) = model.step_queries(
                        start.clone(),
                        b.query_input.clone(),
                        input(n),
                        &vec![n; 2 * q],
                    );
                    let alone = values(alone);
                    for (i, &r) in prefixes.iter().enumerate() {
                        if r == n {
                            assert!(
                                (mixed[i] - alone[i]).abs() < 1e-4,
                                "implicit query {i} prefix {n}: {} vs {}",
                                mixed[i],
                                alone[i]
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A task with no context point yet (a fresh demo page) starts every configuration without a
/// panic, and its initial state predicts at every query: the implicit models that read
/// gradients carry the queries' rows alone.
#[test]
fn every_configuration_starts_without_context_points() {
    use amortize::refine::{predictions, RefineState};
    use amortize::task::Episode;
    use amortize::FunctionRegression;
    let device = Device::flex();
    let task = function_task();
    let TaskConfig::FunctionRegression(c) = &task else {
        unreachable!()
    };
    let family = FunctionRegression::new(c.clone());
    let episode = Episode {
        x_dim: 1,
        y_dim: 1,
        context_x: Vec::new(),
        context_y: Vec::new(),
        query_x: vec![-0.5, 0.0, 0.5],
        query_y: vec![0.0; 3],
    };
    let data = family.task_data(&episode);
    let b = batch(std::slice::from_ref(&data), &device);
    assert_eq!(b.context_len(), 0);
    for cfg in configurations(&task) {
        let model = cfg.init(&device);
        let mut rs = RefineState::start(&model, &b);
        rs.advance(&model, &b, &[], &device);
        let p = predictions(&model, &rs.state, &b);
        assert_eq!(p.dims(), [1, 3, 1], "{cfg:?}");
        assert!(values(p).iter().all(|v| v.is_finite()), "{cfg:?}");
    }
}

/// An implicit model reading gradients reads, for each observation of the mini-batch, the
/// loss gradient of the prediction held at that point: changing the held prediction at a
/// mini-batch point moves the queries' next predictions, changing it at any other point does
/// not, and the gradient is the squared error's 2(p − y).
#[test]
fn implicit_gradients_read_the_predictions_held_at_the_batch_points() {
    use amortize::refine::{step, RefineState};
    let device = Device::flex();
    let task = function_task();
    let data = sample(&task, 2, 5);
    let b = batch(&data, &device);
    let (q, n) = (b.query_len(), b.context_len());
    Device::seed(&device, 3);
    let model = tiny(&task, Regime::Implicit, Signal::PointGradients).init(&device);
    let rs = RefineState::start(&model, &b);
    assert_eq!(rs.state.dims(), [2, q + n, 1]);
    let indices = [1usize, 4, 7];
    let next = |rs: &RefineState| {
        let out = step(&model, rs, &b, &indices, None, &device);
        assert_eq!(out.next.dims(), [2, q + n, 1]);
        values(out.predictions)
    };
    let base = next(&rs);
    assert_eq!(base.len(), 2 * q);
    let shifted = |point: usize| {
        let mut moved = rs.clone();
        let mut v = values(rs.state.clone());
        for task in 0..2 {
            v[task * (q + n) + q + point] += 1.0;
        }
        moved.state = Tensor::from_data(burn::tensor::TensorData::new(v, [2, q + n, 1]), &device);
        next(&moved)
    };
    let moved = shifted(4);
    assert!(
        base.iter().zip(&moved).any(|(a, c)| (a - c).abs() > 1e-4),
        "the held prediction at a batch point is read"
    );
    let untouched = shifted(5);
    for (a, c) in base.iter().zip(&untouched) {
        assert!(
            (a - c).abs() < 1e-5,
            "a point outside the batch is not read: {a} vs {c}"
        );
    }
    // The gradient itself: 2(p - y) for a squared error on one output.
    let column = |v: Vec<f32>| {
        let n = v.len();
        Tensor::<3>::from_data(burn::tensor::TensorData::new(v, [1, n, 1]), &device)
    };
    let (p, y) = (column(vec![0.5, -1.0, 2.0]), column(vec![0.0, 1.0, 2.0]));
    let g = values(amortize::signal::prediction_gradients(
        p,
        y,
        amortize::task::LossKind::Mse,
    ));
    assert_eq!(g, vec![1.0, -4.0, 0.0]);
}

#[test]
fn detached_state_blocks_gradients_across_steps() {
    let device = Device::flex().autodiff();
    let task = function_task();
    let data = sample(&task, 1, 1);
    let b = batch(&data, &device);
    let model = tiny(&task, Regime::Parametric, Signal::Observations).init(&device);
    let input = |idx: &[usize]| StepInput {
        obs: Some(b.minibatch(idx, &device).obs),
        grads: None,
        grad_tokens: None,
        history: vec![],
        history_grads: vec![],
    };
    let last = |t: Tensor<3>| {
        let [bb, m, s] = t.dims();
        t.slice([0..bb, m - 1..m, 0..s])
    };
    // A leaf state; the first step's output, detached, feeds the second step.
    let s0 = model.initial(1, 1).detach().require_grad();
    let s1 = last(model.step_task(s0.clone(), input(&[0, 1, 2])));
    let s2 = model.step_task(s1.clone().detach(), input(&[3, 4, 5]));
    let grads = s2.sum().backward();
    assert!(
        s0.grad(&grads).is_none(),
        "no gradient flows through a detached state"
    );
    // Without the detach it does flow: the check above can fail.
    let s2 = model.step_task(s1, input(&[3, 4, 5]));
    let grads = s2.sum().backward();
    let g = values(s0.grad(&grads).expect("gradient reaches s0"));
    assert!(g.iter().any(|v| v.abs() > 0.0));
}

/// The gradient signal equals a central finite difference of the predictor's loss on each
/// observation, for the fixed linear predictor and for a learned MLP predictor.
#[test]
fn gradient_signal_matches_finite_differences() {
    let device = Device::flex();
    let task = linear_task(3);
    let data = sample(&task, 2, 5);
    let b = batch(&data, &device);
    let mb = b.minibatch(&[0, 1, 2, 3], &device);
    let (inputs, targets) = (mb.inputs.unwrap(), mb.targets.unwrap());
    for regime in [Regime::Parametric, Regime::Explicit] {
        let model = tiny(&task, regime, Signal::Gradients).init(&device);
        let s = model.config().state_dim();
        let state: Tensor<3> = Tensor::random(
            [2, 1, s],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let g = values(model.point_gradients(state.clone(), inputs.clone(), targets.clone()));
        let base = values(state.clone());
        let x = values(inputs.clone());
        let y = values(targets.clone());
        let d = 3;
        // The loss of point j of task t at a given state, through the model's own predictor.
        let loss_at = |st: &[f32], t: usize, j: usize| -> f64 {
            let st = Tensor::<3>::from_data(
                burn::tensor::TensorData::new(st.to_vec(), [1, 1, s]),
                &device,
            );
            let u = Tensor::<3>::from_data(
                burn::tensor::TensorData::new(
                    x[(t * 4 + j) * d..(t * 4 + j + 1) * d].to_vec(),
                    [1, 1, d],
                ),
                &device,
            );
            let p = values(model.predict(st, u))[0] as f64;
            (p - y[t * 4 + j] as f64).powi(2)
        };
        let h = 1e-2f32;
        for t in 0..2 {
            for j in 0..4 {
                for k in 0..s {
                    let mut plus = base[t * s..(t + 1) * s].to_vec();
                    let mut minus = plus.clone();
                    plus[k] += h;
                    minus[k] -= h;
                    let fd = (loss_at(&plus, t, j) - loss_at(&minus, t, j)) / (2.0 * h as f64);
                    let ad = g[(t * 4 + j) * s + k] as f64;
                    assert!(
                        (fd - ad).abs() < 2e-2 * (1.0 + fd.abs()),
                        "{regime} task {t} point {j} coord {k}: autodiff {ad} vs finite difference {fd}"
                    );
                }
            }
        }
    }
}

/// A short meta-training run per regime on linear regression: the greedy loss falls.
#[test]
fn short_training_lowers_the_loss_in_every_regime() {
    let device = Device::flex().autodiff();
    let task = linear_task(2);
    for (regime, signal) in [
        (Regime::Parametric, Signal::Observations),
        (Regime::Parametric, Signal::Gradients),
        (Regime::Explicit, Signal::Both),
        (Regime::Implicit, Signal::Observations),
        (Regime::Implicit, Signal::BothPointGradients),
    ] {
        let sampler = Sampler::new(task.clone()).unwrap();
        // Seeded initial weights: the run is the same every time.
        Device::seed(&device, 7);
        let mut model = tiny(&task, regime, signal).init(&device);
        let mut optim = AdamWConfig::new().init();
        let mut rng = StdRng::seed_from_u64(2);
        let mut losses = Vec::new();
        for _ in 0..200 {
            let data: Vec<_> = (0..16).map(|_| sampler.sample(&mut rng)).collect();
            let b = batch(&data, &device);
            let sched = schedule(16, 4, 3, &mut rng);
            let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
            losses.push(loss.total.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            model = optim.step(3e-3, model, grads);
        }
        let first: f32 = losses[..20].iter().sum::<f32>() / 20.0;
        let last: f32 = losses[losses.len() - 20..].iter().sum::<f32>() / 20.0;
        eprintln!("{regime} {signal}: greedy loss {first:.3} -> {last:.3}");
        assert!(
            last < 0.6 * first,
            "{regime} {signal}: loss {first} -> {last}"
        );
    }
}

#[test]
fn refinement_of_a_trained_parametric_model_improves_with_steps() {
    let device = Device::flex().autodiff();
    let task = TaskConfig::FunctionRegression(
        FunctionRegressionConfig::new()
            .with_features(3)
            .with_context(16)
            .with_queries(16),
    );
    let sampler = Sampler::new(task.clone()).unwrap();
    Device::seed(&device, 3);
    let mut model = tiny(&task, Regime::Parametric, Signal::Observations).init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..150 {
        let data: Vec<_> = (0..16).map(|_| sampler.sample(&mut rng)).collect();
        let b = batch(&data, &device);
        let sched = schedule(16, 4, 4, &mut rng);
        let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    let model = model.valid();
    let device = device.without_autodiff();
    let data: Vec<_> = (0..64).map(|_| sampler.sample(&mut rng)).collect();
    let b = batch(&data, &device);
    let states = refine(&model, &b, &schedule(16, 4, 4, &mut rng), &device);
    let err = |s: &Tensor<3>| {
        loss_per_task(
            task.dims().loss,
            predictions(&model, s, &b),
            b.query_target.clone(),
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

fn header(task: &TaskConfig, model: AmortizerConfig) -> BundleHeader {
    BundleHeader {
        model,
        task: task.clone(),
        refine: RefineConfig::new(),
        provenance: serde_json::json!({"note": "test"}),
    }
}

#[test]
fn weights_round_trip_exactly_and_reject_damage() {
    let device = Device::flex();
    let task = linear_task(3);
    let data = sample(&task, 1, 9);
    let b = batch(&data, &device);
    for regime in Regime::ALL {
        let cfg = AmortizerConfig {
            history: 1,
            ..tiny(&task, regime, Signal::Observations)
        };
        let model = cfg.init(&device);
        let sched = vec![vec![0, 1, 2], vec![3, 4, 5]];
        let run = |m: &amortize::Amortizer| {
            let states = refine(m, &b, &sched, &device);
            values(predictions(m, &states[2], &b))
        };
        let before = run(&model);
        let bytes = ModelBundle::from_model(header(&task, cfg.clone()), model)
            .unwrap()
            .encode();
        let back = ModelBundle::decode(&bytes).unwrap();
        assert_eq!(back.header, header(&task, cfg.clone()));
        let model = back.model(&device).unwrap();
        assert_eq!(before, run(&model), "{regime}");

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
        assert!(matches!(
            other.model(&device).unwrap_err(),
            WeightsError::Architecture(_)
        ));
    }
}

fn fake_images(n: usize, seed: u64) -> amortize::task::mnist::Images {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed);
    amortize::task::mnist::Images {
        pixels: (0..n * 784).map(|_| rng.random_range(0..=255u8)).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

/// Classification (linear softmax for the parametric regime, every implicit state form) and
/// generation (implicit, flow matching) run forward and backward too.
#[test]
fn classification_and_generation_run_in_every_regime_they_apply_to() {
    use amortize::task::gmm::GmmConfig;
    use amortize::task::mnist::{ImageData, ImageSet, ProjectionConfig};
    use std::sync::Arc;
    let device = Device::flex().autodiff();
    let images = ImageData {
        set: ImageSet::Mnist,
        train: Arc::new(fake_images(60, 1)),
        test: Arc::new(fake_images(20, 2)),
    };
    let projection = TaskConfig::Projection(ProjectionConfig {
        dim: 6,
        context: 12,
        queries: 5,
        ..Default::default()
    });
    let sampler = Sampler::with_images(projection.clone(), images).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let data: Vec<_> = (0..2).map(|_| sampler.sample(&mut rng)).collect();
    let b = batch(&data, &device);
    let mut cfgs = Vec::new();
    for regime in [Regime::Parametric, Regime::Explicit] {
        for signal in Signal::ALL {
            cfgs.push(tiny(&projection, regime, signal));
        }
    }
    for state_form in [StateForm::Logits, StateForm::Softmax, StateForm::PreMlp] {
        cfgs.push(AmortizerConfig {
            state_form,
            ..tiny(&projection, Regime::Implicit, Signal::Observations)
        });
    }
    for cfg in cfgs {
        cfg.validate().unwrap();
        let model = cfg.init(&device);
        let sched = schedule(12, 4, 2, &mut rng);
        let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
        let total = loss.total.clone().into_scalar::<f32>();
        // Cross-entropy over 10 classes starts near ln 10.
        assert!(
            total.is_finite() && total > 0.5 && total < 20.0,
            "{cfg:?}: {total}"
        );
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        assert!(grads.len() > 4);
        let states = refine(&model, &b, &sched, &device);
        let pred = predictions(&model, &states[2], &b);
        let err = values(amortize::metric::error_rate_per_task(
            pred.clone(),
            b.query_target.clone(),
        ));
        // Recomputed on the host: the share of each task's queries whose largest logit is not
        // the labelled class.
        let (logits, labels) = (values(pred), values(b.query_target.clone()));
        let (q, c) = (b.query_len(), b.dims().output_dim);
        let argmax = |row: &[f32]| {
            (0..row.len())
                .max_by(|&i, &j| row[i].total_cmp(&row[j]))
                .unwrap()
        };
        for (task, e) in err.iter().enumerate() {
            let wrong = (0..q)
                .filter(|&i| {
                    let at = (task * q + i) * c;
                    argmax(&logits[at..at + c]) != argmax(&labels[at..at + c])
                })
                .count();
            assert!(
                (e - wrong as f32 / q as f32).abs() < 1e-6,
                "task {task}: {e} vs {wrong}/{q}"
            );
        }
    }

    // Generation: a Gaussian mixture and a letter by flow matching, implicit regime.
    let letters = TaskConfig::Alphabet(amortize::task::alphabet::AlphabetConfig {
        context: 10,
        queries: 7,
        ..Default::default()
    });
    let data = sample(&letters, 2, 6);
    let b = batch(&data, &device);
    let model = tiny(&letters, Regime::Implicit, Signal::Observations).init(&device);
    let sched = schedule(10, 4, 2, &mut rng);
    let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
    assert!(loss.total.clone().into_scalar::<f32>().is_finite());
    let _ = loss.total.backward();
    let gmm = TaskConfig::Gmm(GmmConfig {
        context: 10,
        queries: 7,
        ..Default::default()
    });
    let data = sample(&gmm, 2, 5);
    assert!(data
        .iter()
        .all(|d| d.validate().is_ok() && d.query_input.len() == 7 * 3));
    let b = batch(&data, &device);
    let model = tiny(&gmm, Regime::Implicit, Signal::Observations).init(&device);
    let sched = schedule(10, 4, 2, &mut rng);
    let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
    assert!(loss.total.clone().into_scalar::<f32>().is_finite());
    let _ = loss.total.backward();
    let plain = model.valid();
    let device = device.without_autodiff();
    let b = batch(&data, &device);
    for method in [
        amortize::flow::OdeMethod::Euler,
        amortize::flow::OdeMethod::Heun,
        amortize::flow::OdeMethod::Rk4,
    ] {
        let x0 = amortize::flow::noise(2, 9, 2, &device);
        let path = amortize::flow::integrate(&plain, &b, x0, 4, method, &sched, &device);
        assert_eq!(path.len(), 5);
        assert_eq!(path[4].dims(), [2, 9, 2]);
        assert!(values(path[4].clone()).iter().all(|v| v.is_finite()));
    }
}

/// Many queries (a flow's samples) are run in chunks beside copies of the observations; a query
/// attends only to the observations and itself, so each sample's velocity is the same as when it
/// is alone with a few others (the unchunked path), padding included (150 is not a multiple of 32).
#[test]
fn chunked_queries_give_the_same_velocities_as_few_queries() {
    use amortize::task::gmm::GmmConfig;
    let device: Device = Default::default();
    let mut rng = StdRng::seed_from_u64(11);
    let gmm = TaskConfig::Gmm(GmmConfig {
        context: 12,
        queries: 5,
        ..Default::default()
    });
    let data = sample(&gmm, 2, 8);
    let b = batch(&data, &device);
    let model = tiny(&gmm, Regime::Implicit, Signal::Observations).init(&device);
    let sched = schedule(12, 4, 3, &mut rng);
    let n = 150;
    let x = amortize::flow::noise(2, n, 2, &device);
    let all = amortize::flow::velocity(&model, &b, x.clone(), 0.3, &sched, &device);
    assert_eq!(all.dims(), [2, n, 2]);
    for range in [0..10, 61..70, 140..150] {
        let part = x.clone().slice([0..2, range.clone(), 0..2]);
        let alone = amortize::flow::velocity(&model, &b, part, 0.3, &sched, &device);
        let want = values(alone);
        let got = values(all.clone().slice([0..2, range.clone(), 0..2]));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{range:?}: {g} vs {w}"
            );
        }
    }
}

/// Flow-matching queries lie on the straight path from noise to their data point, and the target
/// field carries them to it.
#[test]
fn flow_training_targets_follow_the_straight_path() {
    use amortize::task::flow_matching::FlowTarget;
    let mut rng = StdRng::seed_from_u64(3);
    let targets = [1.0f32, 2.0, -3.0, 0.5];
    let d = FlowTarget::Sample.training_data(&[0.0, 0.0], &targets, 2, &mut rng);
    for (i, x1) in targets.chunks(2).enumerate() {
        let input = &d.query_input[i * 3..(i + 1) * 3];
        let v = &d.query_target[i * 2..(i + 1) * 2];
        let t = input[2];
        assert!((0.0..1.0).contains(&t));
        // x_t = (1 - t) x0 + t x1 and v = x1 - x0 give x_t + (1 - t) v = x1.
        for k in 0..2 {
            assert!((input[k] + (1.0 - t) * v[k] - x1[k]).abs() < 1e-5);
        }
    }
    let back = amortize::task::flow_matching::data_points(&d);
    assert!(back.iter().zip(&targets).all(|(a, b)| (a - b).abs() < 1e-5));
}

/// Topological order: the sample × node attention model refines leaf logits over mini-batches
/// of samples, trains (loss falls), and its predicted orders are permutations scored by the
/// order accuracy.
#[test]
fn order_model_trains_and_predicts_permutations() {
    use amortize::model::order::{greedy_order_loss, predict_orders, OrderBatch, OrderModelConfig};
    use amortize::task::scm::{order_accuracy, ScmConfig};
    let device = Device::flex().autodiff();
    let scm = ScmConfig {
        nodes: 5,
        samples: 32,
        ..Default::default()
    };
    let cfg = OrderModelConfig {
        d_model: 16,
        n_heads: 2,
        n_layers: 1,
        d_ff: 32,
    };
    cfg.validate().unwrap();
    let mut model = cfg.init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut rng = StdRng::seed_from_u64(6);
    let mut losses = Vec::new();
    for _ in 0..60 {
        let tasks: Vec<_> = (0..8).map(|_| scm.sample(&mut rng)).collect();
        let batch = OrderBatch::new(tasks, &mut rng);
        let sched = schedule(32, 8, 2, &mut rng);
        let (loss, per_step) = greedy_order_loss(&model, &batch, &sched, &device);
        assert_eq!(per_step.len(), 2);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last < first, "leaf loss {first} -> {last}");
    let model = model.valid();
    let device = device.without_autodiff();
    let tasks: Vec<_> = (0..4).map(|_| scm.sample(&mut rng)).collect();
    let orders = predict_orders(&model, &tasks, 2, 8, &mut rng, &device);
    for (t, o) in tasks.iter().zip(&orders) {
        let mut sorted = o.clone();
        sorted.sort();
        assert_eq!(sorted, (0..5).collect::<Vec<_>>());
        // Recomputed pair by pair: an edge is oriented right when its source comes first.
        let (mut right, mut edges) = (0, 0);
        for (p, &a) in o.iter().enumerate() {
            for &b in &o[p + 1..] {
                right += usize::from(t.adj[a * 5 + b]);
                edges += usize::from(t.adj[a * 5 + b] || t.adj[b * 5 + a]);
            }
        }
        let want = if edges == 0 {
            1.0
        } else {
            right as f64 / edges as f64
        };
        assert!((order_accuracy(&t.adj, 5, o) - want).abs() < 1e-12);
    }
}

/// Classification over embedding files runs through the same regimes (a small generated set).
#[test]
fn embedding_classification_runs_forward_and_backward() {
    use amortize::task::embeddings::{EmbeddingConfig, EmbeddingData, Embeddings};
    use rand::Rng;
    use std::sync::Arc;
    let mut rng = StdRng::seed_from_u64(12);
    let mut split = |n: usize| Embeddings {
        dim: 8,
        features: (0..n * 8).map(|_| rng.random_range(-1.0..1.0)).collect(),
        labels: (0..n).map(|i| i % 6).collect(),
    };
    let train = Arc::new(split(60));
    let data = EmbeddingData::new(train, Arc::new(split(30)));
    let task = TaskConfig::Embeddings(EmbeddingConfig {
        name: "generated".into(),
        dim: 8,
        ways: 4,
        context: 12,
        queries: 6,
    });
    let sampler = Sampler::with_embeddings(task.clone(), data).unwrap();
    let device = Device::flex().autodiff();
    let tasks: Vec<_> = (0..2).map(|_| sampler.sample(&mut rng)).collect();
    let b = batch(&tasks, &device);
    for (regime, signal) in [
        (Regime::Parametric, Signal::Both),
        (Regime::Explicit, Signal::Gradients),
        (Regime::Implicit, Signal::Observations),
    ] {
        let model = tiny(&task, regime, signal).init(&device);
        let sched = schedule(12, 4, 2, &mut rng);
        let loss = greedy_loss(&model, &b, &sched, &mut rng, &device);
        let total = loss.total.clone().into_scalar::<f32>();
        assert!(
            total.is_finite() && total > 0.0,
            "{regime} {signal}: {total}"
        );
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        assert!(grads.len() > 4);
    }
}

/// Training queries that all read the whole mini-batch (`full_share` 1) are scored on what
/// inference computes: each step's training loss is the inference loss after that step, over the
/// same schedule. At share 0 the draw is the paper's, the same as `greedy_loss` from the same
/// stream; between, it is another draw.
#[test]
fn whole_mini_batch_queries_train_on_what_inference_scores() {
    let device: Device = Default::default();
    let task = function_task();
    let data = sample(&task, 3, 21);
    let b = batch(&data, &device);
    let model = tiny(&task, Regime::Implicit, Signal::BothPointGradients).init(&device);
    let sched = schedule(12, 6, 3, &mut StdRng::seed_from_u64(2));
    let states = refine(&model, &b, &sched, &device);
    let drawn = |share: f64| {
        let mut rng = StdRng::seed_from_u64(3);
        greedy_loss_with(&model, &b, &sched, &mut rng, &device, share)
    };
    let full = drawn(1.0);
    for (t, loss) in full.per_step.iter().enumerate() {
        let pred = predictions(&model, &states[t + 1], &b);
        let inference = values(loss_per_task(
            task.dims().loss,
            pred,
            b.query_target.clone(),
        ));
        let inference = inference.iter().sum::<f32>() / inference.len() as f32;
        let training = values(loss.clone())[0];
        assert!(
            (training - inference).abs() <= 1e-5 * inference.abs().max(1.0),
            "step {}: training {training} against inference {inference}",
            t + 1
        );
    }
    let loss = |share: f64| values(drawn(share).total)[0];
    let paper =
        values(greedy_loss(&model, &b, &sched, &mut StdRng::seed_from_u64(3), &device).total)[0];
    assert_eq!(loss(0.0), paper);
    assert_ne!(loss(0.5), paper);
    assert_ne!(loss(0.5), values(full.total)[0]);
}
