//! Criterion benches of the core loops on Burn's flex CPU backend: one refinement step
//! (inference) and one greedy k-step loss with its backward pass, for each regime on linear
//! regression (d = 20, context 64, b = 8, k = 10, 16 tasks, d_model 64, 3 layers).
//! Run: `cargo bench --bench core` (the CLI's `amortize bench` times whole meta-training steps).

use amortize::model::AmortizerConfig;
use amortize::refine::{greedy_loss, refine, schedule, TaskBatch};
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::linear::LinearRegressionConfig;
use amortize::task::{Sampler, TaskConfig};
use burn::tensor::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{rngs::StdRng, SeedableRng};

fn setup(regime: Regime, signal: Signal) -> (AmortizerConfig, Vec<amortize::task::TaskData>) {
    let task = TaskConfig::LinearRegression(LinearRegressionConfig::default());
    let sampler = Sampler::new(task.clone()).expect("valid task");
    let mut rng = StdRng::seed_from_u64(0);
    let data = (0..16).map(|_| sampler.sample(&mut rng)).collect();
    (AmortizerConfig::new(task.dims(), regime, signal), data)
}

fn core(c: &mut Criterion) {
    let device = Device::flex();
    for (regime, signal) in [
        (Regime::Parametric, Signal::Observations),
        (Regime::Parametric, Signal::Gradients),
        (Regime::Explicit, Signal::Observations),
        (Regime::Implicit, Signal::Observations),
    ] {
        let (cfg, data) = setup(regime, signal);
        let refs: Vec<_> = data.iter().collect();
        let mut rng = StdRng::seed_from_u64(1);
        let name = format!("{regime}-{signal}").to_lowercase();

        device.seed(0);
        let model = cfg.init(&device);
        let batch = TaskBatch::new(&refs, &device).expect("valid tasks");
        c.bench_function(&format!("refine_step/{name}"), |b| {
            b.iter(|| {
                let sched = schedule(64, 8, 1, &mut rng);
                let states = refine(&model, &batch, &sched, &device);
                states[1].clone().sum().into_scalar::<f32>()
            })
        });

        let ad = device.clone().autodiff();
        ad.seed(0);
        let model = cfg.init(&ad);
        let batch = TaskBatch::new(&refs, &ad).expect("valid tasks");
        c.bench_function(&format!("greedy_loss_backward/{name}"), |b| {
            b.iter(|| {
                let sched = schedule(64, 8, 10, &mut rng);
                let loss = greedy_loss(&model, &batch, &sched, &mut rng, &ad);
                loss.total.backward()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = core
}
criterion_main!(benches);
