//! The outer loop as the web app's Train tab runs it (`amortize::meta`), on the CPU backend: the
//! tiny preset learns to learn within a few hundred meta-steps, a meta-step computed in parts
//! equals the same step in one part, and the model file it writes reads back to the same model.

use amortize::meta::{MetaLearner, Preset, Probe, PRESETS};
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::regression::FunctionRegressionConfig;
use amortize::task::{Sampler, TaskConfig};
use amortize::weights::ModelBundle;
use amortize::{AmortizerConfig, RefineConfig};
use burn::tensor::{Device, Tensor};

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn learner(preset: &Preset, seed: u64, device: &Device) -> MetaLearner {
    let task = TaskConfig::FunctionRegression(FunctionRegressionConfig::new());
    let config = preset.model(AmortizerConfig::new(
        task.dims(),
        Regime::Parametric,
        Signal::Observations,
    ));
    let sampler = Sampler::new(task).unwrap();
    MetaLearner::new(
        &config,
        sampler,
        preset.settings(seed, RefineConfig::new()),
        device,
    )
    .unwrap()
}

fn train(l: &mut MetaLearner, steps: usize, part: usize) {
    for _ in 0..steps {
        let mut step = l.begin();
        while !step.is_complete() {
            l.work(&mut step, part).unwrap();
        }
        l.finish(step).unwrap();
    }
}

/// What the Train tab's browser test asks of the page in 60 s, here in 600 meta-steps of the tiny
/// preset: the 10-step error on fresh tasks falls below a third of where it started, and after
/// training, refining helps (10 steps beat 1).
#[test]
fn the_tiny_preset_learns_to_learn_in_a_few_hundred_steps() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let mut l = learner(&PRESETS[0], 7, &ad);
    let probe = Probe::new(&l.sampler, &l.settings.refine, 64, 99, &[1, 5, 10], &device).unwrap();
    assert_eq!(probe.bayes.len(), 3);
    assert!(
        probe.bayes[1] < probe.bayes[0] && probe.least_squares[1] < probe.least_squares[0],
        "the baselines improve with the points read: {:?} {:?}",
        probe.bayes,
        probe.least_squares
    );
    let before = values(probe.losses(&l.current()));
    train(&mut l, 600, 8);
    assert_eq!(l.step, 600);
    let after = values(probe.losses(&l.current()));
    assert!(
        after[2] < before[2] / 3.0,
        "10-step MSE {} → {} (not below a third)",
        before[2],
        after[2]
    );
    assert!(
        after[2] < after[0],
        "10 steps ({}) beat 1 ({})",
        after[2],
        after[0]
    );
}

/// The page computes a meta-step a few tasks at a time, yielding between parts: the gradient
/// summed over the parts is the whole step's, so the weights after it agree.
#[test]
fn a_meta_step_in_parts_equals_the_step_in_one_part() {
    let device = Device::flex().autodiff();
    let mut whole = learner(&PRESETS[0], 3, &device);
    let mut parts = learner(&PRESETS[0], 3, &device);
    train(&mut whole, 2, 8);
    train(&mut parts, 2, 3);
    let probe = Probe::new(
        &whole.sampler,
        &whole.settings.refine,
        16,
        4,
        &[0, 1, 10],
        &Device::flex(),
    )
    .unwrap();
    let a = values(probe.losses(&whole.current()));
    let b = values(probe.losses(&parts.current()));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
    let fresh = values(probe.losses(&learner(&PRESETS[0], 3, &device).current()));
    assert!(
        (fresh[2] - a[2]).abs() > 0.01 * fresh[2].abs(),
        "two steps changed the predictions: {fresh:?} vs {a:?}"
    );
}

/// The file the Train tab offers reads back to the same model (same predictions on the probe),
/// with its provenance.
#[test]
fn the_trained_model_round_trips_through_its_file() {
    let device = Device::flex();
    let mut l = learner(&PRESETS[0], 5, &device.clone().autodiff());
    train(&mut l, 5, 8);
    let card = serde_json::json!({"made_by": "test", "meta_steps": l.step});
    let bytes = l.bundle(card.clone()).unwrap().encode();
    let back = ModelBundle::decode(&bytes).unwrap();
    assert_eq!(back.header.provenance, card);
    assert_eq!(&back.header.model, l.model.config());
    let probe = Probe::new(&l.sampler, &l.settings.refine, 16, 1, &[0, 3], &device).unwrap();
    let here = values(probe.losses(&l.current()));
    let there = values(probe.losses(&back.model(&device).unwrap()));
    for (a, b) in here.iter().zip(&there) {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "{here:?} vs {there:?}"
        );
    }
}

#[test]
fn presets_are_named_and_bad_settings_refused() {
    assert_eq!(Preset::named("small").unwrap().d_model, 64);
    assert!(Preset::named("huge").is_none());
    let task = TaskConfig::FunctionRegression(FunctionRegressionConfig::new());
    let config = AmortizerConfig::new(task.dims(), Regime::Parametric, Signal::Observations);
    let mut settings = PRESETS[0].settings(0, RefineConfig::new());
    settings.lr = f64::NAN;
    let err = MetaLearner::new(
        &config,
        Sampler::new(task).unwrap(),
        settings,
        &Device::flex().autodiff(),
    )
    .err()
    .unwrap();
    assert!(err.contains("learning rate"), "{err}");
}
