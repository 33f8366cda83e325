//! The weights shipped in `public/weights/` decode into the current architecture and still
//! refine. Regenerate them with the commands in README.md (and in the model card beside them).

use amortize::refine::{loss_per_task, predictions, refine, schedule, TaskBatch};
use amortize::task::Sampler;
use amortize::ModelBundle;
use burn::tensor::Device;
use rand::{rngs::StdRng, SeedableRng};

/// The manifest directory at run time (cargo sets it): a test binary reused from a build in
/// another checkout must not read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// The shipped model `public/weights/<name>.amz`, decoded.
fn shipped(name: &str) -> ModelBundle {
    let path = manifest_dir().join(format!("../public/weights/{name}.amz"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ModelBundle::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shipped regression models.
const REGRESSION: [&str; 2] = ["regression-parametric", "regression-implicit"];

/// A shipped regression model measured now, as the demo uses it: `tasks` fresh tasks (seeded)
/// with the trained number of context points (the demo's user reads a fixed set, in epochs when
/// the steps ask for more), the trained k and mini-batch size. Returns the mean query MSE after
/// 0, 1, 5 and k steps.
fn measure_regression(name: &str, tasks: usize) -> Vec<(usize, f64)> {
    let bundle = shipped(name);
    let device = Device::flex();
    let model = bundle
        .model(&device)
        .expect("fits the current architecture");
    let task = &bundle.header.task;
    let sampler = Sampler::new(task.clone()).unwrap();
    let mut rng = StdRng::seed_from_u64(99);
    let data: Vec<_> = (0..tasks).map(|_| sampler.sample(&mut rng)).collect();
    let refs: Vec<_> = data.iter().collect();
    let batch = TaskBatch::new(&refs, &device).unwrap();
    let k = bundle.header.refine.steps;
    let sched = schedule(
        task.context_len(),
        bundle.header.refine.batch_size,
        k,
        &mut rng,
    );
    let states = refine(&model, &batch, &sched, &device);
    let err = |i: usize| {
        loss_per_task(
            task.dims().loss,
            predictions(&model, &states[i], &batch),
            batch.query_target.clone(),
        )
        .mean()
        .into_scalar::<f32>() as f64
    };
    [0, 1, 5, k].into_iter().map(|s| (s, err(s))).collect()
}

#[test]
fn shipped_regression_models_decode_into_the_current_architecture_and_refine() {
    for name in REGRESSION {
        check_regression_model(name);
    }
}

/// The web issue's bar for regression: after 10 steps within 1.5× of the Bayes-optimal MSE,
/// measured now by `amortize eval` on 10,000 fresh tasks (its seeded stream) with the trained
/// number of context points, k and mini-batch size, the way the demo runs the model. The ratio
/// moves by a few hundredths between samples of 2,000 tasks (the implicit model: 1.46× on this
/// stream, 1.51× on another), so the bar is checked on the large sample.
#[test]
fn shipped_regression_models_are_within_one_and_a_half_of_bayes() {
    for name in REGRESSION {
        let bundle = shipped(name);
        let path = manifest_dir().join(format!("../public/weights/{name}.amz"));
        let context = bundle.header.task.context_len().to_string();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_amortize"))
            .args(["eval", "--weights"])
            .arg(&path)
            .args(["--context", &context, "--tasks", "10000", "--device", "cpu"])
            .args(["--json"])
            .output()
            .expect("the binary runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let r = &v["reports"][0];
        let bayes = r["bayes"].as_f64().unwrap();
        let ten = r["model"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x[0] == 10)
            .and_then(|x| x[1].as_f64())
            .expect("10 steps reported");
        assert!(
            ten <= 1.5 * bayes,
            "{name}: 10 steps {ten} against Bayes {bayes} ({:.2}×)",
            ten / bayes
        );
    }
}

/// The shipped model `name` decodes and, measured on fresh tasks, its error falls from 1 to 5
/// steps and holds there by 10.
fn check_regression_model(name: &str) {
    let errors = measure_regression(name, 500);
    let at = |step: usize| errors.iter().find(|e| e.0 == step).unwrap().1;
    // 5 < 1 steps, and steps 6 to 10 lose at most 1 % of what 5 reached (the implicit model
    // levels off after 5 steps).
    assert!(
        at(10) <= 1.01 * at(5) && at(5) < at(1),
        "{name}: {errors:?}"
    );
    // The refinement does real work after the first step: 10 steps at most 3/4 of 1 step's error
    // (the implicit model reads the whole context at every step, so its first step is already
    // close), and the first step at most a tenth of the learned initial state's.
    assert!(at(10) <= 0.75 * at(1), "{name}: {errors:?}");
    assert!(at(1) <= at(0) / 10.0, "{name}: {errors:?}");
}

/// `amortize eval --json` of a shipped generation model on a small fixed set of tasks (seeded):
/// Euler with 10 steps and 512 samples per task, as the web app draws them.
fn generation_eval(name: &str, ood: bool) -> serde_json::Value {
    let path = manifest_dir().join(format!("../public/weights/{name}.amz"));
    let mut args = vec![
        "eval".to_string(),
        "--weights".into(),
        path.to_string_lossy().into_owned(),
        "--tasks".into(),
        "24".into(),
        "--sample-tasks".into(),
        "24".into(),
        "--samples".into(),
        "512".into(),
        "--ode".into(),
        "euler".into(),
        "--ode-steps".into(),
        "10".into(),
        "--seed".into(),
        "7".into(),
        "--device".into(),
        "cpu".into(),
        "--json".into(),
    ];
    if ood {
        args.push("--ood-only".into());
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_amortize"))
        .args(&args)
        .output()
        .expect("the binary runs");
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    v["reports"][0]["generation"].clone()
}

/// One score of a generation report's step row (`[[k, {w1, w2, precision, recall}], …]`).
fn at_step(g: &serde_json::Value, step: u64, what: &str) -> f64 {
    g["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|r| r[0].as_u64() == Some(step))
        .and_then(|r| r[1][what].as_f64())
        .unwrap_or_else(|| panic!("{what} after {step} steps: {g}"))
}

/// The generation issue's bars, recomputed on 24 seeded tasks per split (not read from the
/// card): after 10 steps the alphabet model's samples lie on the letter (precision: share of
/// samples within δ = 0.12 of a drawn point, 3 × the jitter) and cover it (recall: share of drawn points with a
/// sample within δ), held-in letters at 0.8 / 0.85 and held-out ones at 0.7 / 0.8, with W2 within
/// 1.25× of a second sample of the letter; 10 steps beat 1. The mixture model: 0.9 / 0.9.
#[test]
fn shipped_generation_models_reproduce_the_drawn_shape() {
    for (name, ood, precision, recall, w2_bar) in [
        ("alphabet-implicit", false, 0.8, 0.85, Some(1.25)),
        ("alphabet-implicit", true, 0.7, 0.8, Some(1.25)),
        ("gmm-implicit", false, 0.9, 0.9, None),
    ] {
        let g = generation_eval(name, ood);
        let (p, r) = (at_step(&g, 10, "precision"), at_step(&g, 10, "recall"));
        assert!(
            p >= precision && r >= recall,
            "{name} (ood {ood}): precision {p} (bar {precision}), recall {r} (bar {recall}): {g}"
        );
        assert!(
            p > at_step(&g, 1, "precision") && at_step(&g, 10, "w2") < at_step(&g, 1, "w2"),
            "{name} (ood {ood}): 10 steps beat 1: {g}"
        );
        if let Some(bar) = w2_bar {
            let floor = g["floor"]["w2"].as_f64().expect("the floor's W2");
            let w2 = at_step(&g, 10, "w2");
            assert!(
                w2 <= bar * floor,
                "{name} (ood {ood}): W2 {w2} against the floor's {floor}"
            );
        }
    }
}
