//! The Train tab: meta-trains a regression amortizer from scratch in the page with the library's
//! outer loop (`amortize::meta`, the code `amortize train` runs: the task sampler, the greedy
//! k-step loss, AdamW, the learning-rate schedule), and shows it learning to learn: the
//! meta-training loss, the error after 1, 5 and 10 refinement steps on fresh tasks beside least
//! squares and Bayes, and the visitor's own points refined by the model as it is now.
//!
//! The loop runs on the page's thread in slices of about `SLICE_MS` of work (a meta-step is
//! computed a few tasks at a time, `MetaLearner::work`), yielding to the browser between slices,
//! so that a click is answered within one slice. A Web Worker would need a second WebAssembly
//! bundle holding Burn again (about twice the download) and a copy of the weights on every
//! refresh of the view; the browser test measures the click latency this way gives.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use amortize::baseline::posterior_mean;
use amortize::meta::{MetaLearner, Probe, StepInProgress, PRESETS};
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::regression::{FunctionRegression, FunctionRegressionConfig};
use amortize::task::{Sampler, TaskConfig};
use amortize::{AmortizerConfig, RefineConfig};
use burn::tensor::Device;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rand::{rngs::StdRng, SeedableRng};

use crate::browser::{now, sleep};
use crate::engine::{build_fastest, read, refine_points, Engine};
use crate::plot::regression::{
    add_point, curve_x, erase_point, path, to_px, CURVE_POINTS, H, W, Y_MAX,
};
use crate::state::{BackendChoice, Settings, TrainSettings, MAX_LR, MAX_TASKS, TRAIN_REGIMES};
use crate::status::{Note, Status, StatusView};

/// Milliseconds of training between two yields to the browser.
const SLICE_MS: f64 = 30.0;
/// Milliseconds of training between two evaluations on fresh tasks.
const EVAL_EVERY_MS: f64 = 3000.0;
/// Fresh tasks of the evaluation, and the refinement steps it scores.
const PROBE_TASKS: usize = 32;
const PROBE_STEPS: [usize; 3] = [1, 5, 10];
/// Points of the visitor's starting function.
const START_POINTS: usize = 16;
/// Meta-steps/s is measured over this many milliseconds.
const RATE_WINDOW_MS: f64 = 3000.0;

/// A model being meta-trained on one device, with its evaluation.
struct Session {
    learner: MetaLearner,
    probe: Probe,
    /// The inference device (the learner's is its autodiff twin).
    device: Device,
    backend: String,
    task: FunctionRegression,
    /// The meta-step in progress, between slices.
    part: Option<StepInProgress>,
    /// Tasks per part, adapted so that a part takes well under a slice.
    part_tasks: usize,
    /// The loss of the meta-step in progress so far (each part's weighted by its share).
    partial: f64,
}

/// The function-regression family every shipped regression model and the regression tab use.
fn task() -> FunctionRegressionConfig {
    FunctionRegressionConfig::new()
}

/// The model, sampler and settings `train` describes, with `seed`.
fn learner(train: &TrainSettings, seed: u64, device: &Device) -> Result<MetaLearner, String> {
    let config = TaskConfig::FunctionRegression(task());
    let model = train.preset.model(AmortizerConfig::new(
        config.dims(),
        train.regime,
        Signal::Observations,
    ));
    let mut settings = train.preset.settings(seed, RefineConfig::new());
    settings.tasks_per_step = train.tasks_per_step();
    settings.lr = train.peak_lr();
    MetaLearner::new(&model, Sampler::new(config)?, settings, device)
}

/// A session on `device`, and the milliseconds a task's gradient took there (after a warm-up).
async fn build(
    train: TrainSettings,
    seed: u64,
    device: Device,
    backend: String,
) -> Result<(Session, f64), String> {
    let learner = learner(&train, seed, &device.clone().autodiff())?;
    let probe = Probe::new(
        &learner.sampler,
        &learner.settings.refine,
        PROBE_TASKS,
        seed ^ 0x5eed_e7a1,
        &PROBE_STEPS,
        &device,
    )?;
    let n = learner.settings.tasks_per_step.min(4);
    let mut per_task = f64::INFINITY;
    for _ in 0..2 {
        let mut part = learner.begin();
        let started = now();
        let loss = learner.work(&mut part, n)?;
        read(loss, "a result").await?;
        per_task = (now() - started) / n as f64;
    }
    let part_tasks = part_size(per_task, learner.settings.tasks_per_step);
    Ok((
        Session {
            learner,
            probe,
            device,
            backend,
            task: FunctionRegression::new(task()),
            part: None,
            part_tasks,
            partial: 0.0,
        },
        per_task,
    ))
}

/// Tasks per part so that a part takes about half a slice.
fn part_size(ms_per_task: f64, tasks: usize) -> usize {
    if !(ms_per_task.is_finite() && ms_per_task > 0.0) {
        return 1;
    }
    ((SLICE_MS * 0.5 / ms_per_task) as usize).clamp(1, tasks.max(1))
}

/// One evaluation: after which meta-step, and the model's mean query MSE after each of
/// `PROBE_STEPS` refinement steps.
#[derive(Clone, Debug, PartialEq)]
struct Eval {
    step: usize,
    seconds: f64,
    model: Vec<f64>,
}

/// Everything the tab reads and writes; all handles are `Copy`.
#[derive(Clone, Copy)]
struct Ctx {
    session: StoredValue<Option<Rc<RefCell<Session>>>, LocalStorage>,
    status: RwSignal<Status>,
    error: RwSignal<Option<String>>,
    note: RwSignal<Option<Note>>,
    running: RwSignal<bool>,
    /// Bumped by every reset, so that an older loop stops.
    epoch: StoredValue<u64>,
    /// Meta-steps done, training seconds, the last learning rate.
    steps: RwSignal<usize>,
    seconds: RwSignal<f64>,
    lr: RwSignal<f64>,
    /// Meta-steps/s over the last `RATE_WINDOW_MS` of training.
    rate: RwSignal<Option<f64>>,
    /// (meta-step, its loss), every step.
    losses: RwSignal<Vec<(usize, f64)>>,
    evals: RwSignal<Vec<Eval>>,
    /// Least squares and Bayes on the probe's tasks, per scored step.
    baselines: RwSignal<(Vec<f64>, Vec<f64>)>,
    backend: RwSignal<String>,
    train: RwSignal<TrainSettings>,
    seed: RwSignal<u64>,
    choice: BackendChoice,
    points: RwSignal<Vec<(f32, f32)>>,
    /// The current model's curve through the visitor's points after each step 0..=k.
    curves: RwSignal<Vec<Vec<f32>>>,
    /// The last download offered: (file name, object URL).
    offered: RwSignal<Option<(String, String)>>,
}

impl Ctx {
    /// A fresh model with the current settings (training stops).
    fn reset(self) {
        self.running.set(false);
        self.epoch.update_value(|e| *e += 1);
        let epoch = self.epoch.get_value();
        self.session.set_value(None);
        self.steps.set(0);
        self.seconds.set(0.0);
        self.rate.set(None);
        self.losses.set(Vec::new());
        self.evals.set(Vec::new());
        self.curves.set(Vec::new());
        self.status
            .set(Status::Loading("Preparing a fresh model…".to_string()));
        let (train, seed, choice) = (
            self.train.get_untracked(),
            self.seed.get_untracked(),
            self.choice,
        );
        spawn_local(async move {
            let made = build_fastest(choice, |device, name| {
                build(train.clone(), seed, device, name)
            })
            .await;
            if self.epoch.get_value() != epoch {
                return;
            }
            match made {
                Ok((session, note)) => {
                    self.backend.set(session.backend.clone());
                    self.baselines.set((
                        session.probe.least_squares.clone(),
                        session.probe.bayes.clone(),
                    ));
                    self.lr.set(session.learner.lr());
                    self.note.set(note);
                    self.session.set_value(Some(Rc::new(RefCell::new(session))));
                    if let Err(e) = self.evaluate().await {
                        return self.status.set(Status::Failed(e));
                    }
                    self.status.set(Status::Ready);
                }
                Err(e) => self
                    .status
                    .set(Status::Failed(format!("Could not prepare the model: {e}"))),
            }
        });
    }

    /// Starts or pauses training.
    fn toggle(self) {
        if self.status.get_untracked() != Status::Ready {
            return;
        }
        if self.running.get_untracked() {
            self.running.set(false);
            return;
        }
        self.running.set(true);
        // A loop paused a moment ago may not have seen it yet: this one replaces it.
        self.epoch.update_value(|e| *e += 1);
        let epoch = self.epoch.get_value();
        spawn_local(async move {
            if let Err(e) = self.train_loop(epoch).await {
                self.running.set(false);
                self.error.set(Some(format!("Training stopped: {e}")));
            }
        });
    }

    /// Trains in slices until paused, reset or at the end of the schedule.
    async fn train_loop(self, epoch: u64) -> Result<(), String> {
        let mut last_eval = now();
        let mut window: VecDeque<(f64, usize)> = VecDeque::new();
        while self.running.get_untracked() && self.epoch.get_value() == epoch {
            let Some(cell) = self.session.get_value() else {
                break;
            };
            let slice = now();
            while now() - slice < SLICE_MS {
                let started = now();
                let (loss, share, tasks, completes) = {
                    let mut s = cell.borrow_mut();
                    let s = &mut *s;
                    let mut part = s.part.take().unwrap_or_else(|| s.learner.begin());
                    let before = part.done();
                    let loss = s.learner.work(&mut part, s.part_tasks)?;
                    let tasks = part.done() - before;
                    let share = tasks as f64 / part.batch.data.len() as f64;
                    let complete = part.is_complete();
                    if complete {
                        let lr = s.learner.finish(part)?;
                        self.lr.set(lr);
                    } else {
                        s.part = Some(part);
                    }
                    (loss, share, tasks, complete.then_some(s.learner.step))
                };
                // On WebGPU the work runs while this read waits; on the CPU it is done already.
                let values = read(loss, "a result").await?;
                let ms = now() - started;
                let mean =
                    values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
                if !mean.is_finite() {
                    return Err(format!("the loss became {mean}; lower the learning rate"));
                }
                let mut s = cell.borrow_mut();
                s.partial += share * mean;
                s.part_tasks =
                    part_size(ms / tasks.max(1) as f64, s.learner.settings.tasks_per_step);
                if let Some(step) = completes {
                    let loss = std::mem::take(&mut s.partial);
                    self.losses.update(|l| l.push((step, loss)));
                    self.steps.set(step);
                    if step >= s.learner.settings.steps {
                        self.running.set(false);
                        break;
                    }
                }
            }
            let spent = now() - slice;
            self.seconds.update(|t| *t += spent / 1000.0);
            let t = now();
            window.push_back((t, self.steps.get_untracked()));
            while window.len() > 2 && t - window[0].0 > RATE_WINDOW_MS {
                window.pop_front();
            }
            if let (Some(a), Some(b)) = (window.front(), window.back()) {
                if b.0 - a.0 > 500.0 {
                    self.rate
                        .set(Some((b.1 - a.1) as f64 / ((b.0 - a.0) / 1000.0)));
                }
            }
            if t - last_eval >= EVAL_EVERY_MS {
                self.evaluate().await?;
                last_eval = now();
            }
            // Let the browser handle input and draw.
            sleep(0).await;
        }
        if self.epoch.get_value() == epoch {
            self.evaluate().await?;
        }
        Ok(())
    }

    /// Scores the model as it is now on the probe's fresh tasks, and refines the visitor's points
    /// with it.
    async fn evaluate(self) -> Result<(), String> {
        let Some(cell) = self.session.get_value() else {
            return Ok(());
        };
        let (losses, step) = {
            let s = cell.borrow();
            (s.probe.losses(&s.learner.current()), s.learner.step)
        };
        let model: Vec<f64> = read(losses, "a result")
            .await?
            .into_iter()
            .map(|v| v as f64)
            .collect();
        let seconds = self.seconds.get_untracked();
        self.evals.update(|e| {
            if e.last().map(|l| l.step) != Some(step) {
                e.push(Eval {
                    step,
                    seconds,
                    model,
                });
            }
        });
        self.refresh_curves().await
    }

    /// The visitor changed the points: refine the new ones with the model as it is now.
    fn points_changed(self) {
        spawn_local(async move {
            if let Err(e) = self.refresh_curves().await {
                self.error.set(Some(e));
            }
        });
    }

    /// The visitor's points refined by the model as it is now, every step.
    async fn refresh_curves(self) -> Result<(), String> {
        let Some(cell) = self.session.get_value() else {
            return Ok(());
        };
        let points = self.points.get_untracked();
        if points.is_empty() {
            self.curves.set(Vec::new());
            return Ok(());
        }
        let engine = {
            let s = cell.borrow();
            Engine::from_model(
                s.learner.current(),
                s.device.clone(),
                s.task.clone(),
                s.learner.settings.refine.clone(),
                s.backend.clone(),
            )
        };
        let shown = refine_points(&engine, &points, self.seed.get_untracked()).await?;
        if self.points.get_untracked() == points {
            self.curves
                .set(shown.into_iter().map(|s| s.curve).collect());
        }
        Ok(())
    }

    /// The model as it is now as a model file, and its card.
    fn export(self) -> Result<(Vec<u8>, String), String> {
        let cell = self.session.get_value().ok_or("no model yet")?;
        let s = cell.borrow();
        let train = self.train.get_untracked();
        let settings = &s.learner.settings;
        let cfg = s.learner.model.config();
        let last = self.evals.get_untracked().last().cloned();
        let (ls, bayes) = self.baselines.get_untracked();
        let seconds = self.seconds.get_untracked();
        let link = Settings {
            train: train.clone(),
            seed: self.seed.get_untracked(),
            ..Settings::from_query("?demo=train")
        }
        .view_query(&[], 0);
        let command = format!(
            "amortize train --task function-regression --regime {} --signal observations --context 32 --d-model {} --n-heads {} --n-layers {} --d-ff {} --tasks-per-step {} --lr {} --warmup {} --steps {} --k {} --batch-size {} --seed {} --device cpu",
            cfg.regime, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff, settings.tasks_per_step, settings.lr,
            settings.warmup, settings.steps, settings.refine.steps, settings.refine.batch_size, settings.seed
        );
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let mut card = format!(
            "# Model card: function-regression, {} regime, observations signal\n\n\
             Meta-trained in a web browser by the amortize web app's Train tab, from scratch: preset \
             `{}` (width {}, {} heads, {} layer(s), feed-forward {}), {} meta-steps of {} tasks, \
             peak learning rate {} (warm-up {}, cosine to a tenth at {}), k = {} steps of {} points, \
             seed {}, {:.1} s of training on {}.\n\n\
             The settings: `{link}` (the Train tab's link). The same model and draws natively: \
             `{command}` (stopped after {} steps).\n",
            cfg.regime, train.preset.name, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff, s.learner.step,
            settings.tasks_per_step, settings.lr, settings.warmup, settings.steps,
            settings.refine.steps, settings.refine.batch_size, settings.seed, seconds, s.backend,
            s.learner.step
        );
        if let Some(e) = &last {
            card += &format!(
                "\nQuery MSE on {PROBE_TASKS} fresh tasks after 1 / 5 / 10 steps, at meta-step {}: \
                 model {}, least squares on the points read {}, Bayes posterior mean {}.\n",
                e.step,
                fmt(&e.model),
                fmt(&ls),
                fmt(&bayes)
            );
        }
        let provenance = serde_json::json!({
            "made_by": "the amortize web app's Train tab",
            "card": card,
            "preset": train.preset.name,
            "meta_steps": s.learner.step,
            "tasks_per_step": settings.tasks_per_step,
            "lr": settings.lr,
            "warmup": settings.warmup,
            "schedule_steps": settings.steps,
            "seed": settings.seed,
            "train_seconds": seconds,
            "backend": s.backend,
            "settings_link": link,
            "command": command,
            "probe": last.map(|e| serde_json::json!({
                "tasks": PROBE_TASKS,
                "steps": PROBE_STEPS,
                "model": e.model,
                "least_squares": ls,
                "bayes": bayes,
            })),
        });
        let bytes = s
            .learner
            .bundle(provenance)
            .map_err(|e| e.to_string())?
            .encode();
        Ok((bytes, card))
    }
}

/// The Train tab.
#[component]
pub fn TrainDemo(settings: Settings) -> impl IntoView {
    let ctx = Ctx {
        session: StoredValue::new_local(None),
        status: RwSignal::new(Status::Loading("Preparing a fresh model…".to_string())),
        error: RwSignal::new(None),
        note: RwSignal::new(None),
        running: RwSignal::new(false),
        epoch: StoredValue::new(0),
        steps: RwSignal::new(0),
        seconds: RwSignal::new(0.0),
        lr: RwSignal::new(0.0),
        rate: RwSignal::new(None),
        losses: RwSignal::new(Vec::new()),
        evals: RwSignal::new(Vec::new()),
        baselines: RwSignal::new((Vec::new(), Vec::new())),
        backend: RwSignal::new("—".to_string()),
        train: RwSignal::new(settings.train.clone()),
        seed: RwSignal::new(settings.seed),
        choice: settings.backend,
        points: RwSignal::new(if settings.points.is_empty() {
            start_points(settings.seed)
        } else {
            settings.points.clone()
        }),
        curves: RwSignal::new(Vec::new()),
        offered: RwSignal::new(None),
    };
    ctx.reset();
    // The address bar holds the settings and the points (not the weights).
    {
        let settings = settings.clone();
        Effect::new(move |_| {
            let view = Settings {
                train: ctx.train.get(),
                seed: ctx.seed.get(),
                ..settings.clone()
            };
            crate::io::replace_query(&view.view_query(&ctx.points.get(), 0));
        });
    }
    view! {
        <StatusView status=ctx.status fetched=RwSignal::new(None) error=ctx.error note=ctx.note />
        <section class="demo train">
            <h2 data-testid="title">{move || format!("Meta-training · 1-D regression, {} regime", ctx.train.get().regime)}</h2>
            <TrainControls ctx=ctx />
            <TrainReadouts ctx=ctx />
            <div class="charts">
                <LossChart ctx=ctx />
                <EvalChart ctx=ctx />
            </div>
            <EvalTable ctx=ctx />
            <TrainPlot ctx=ctx />
            <Downloads ctx=ctx />
            <p class="help">
                "Each meta-step draws fresh regression tasks (random functions seen through 32 noisy points), lets the model refine each task's solution for k = 10 steps over mini-batches of 8 points, and nudges the model's weights (AdamW) so that every step's prediction on held-out points of the task gets better: the model learns how to learn. The first chart is that meta-training loss; the second and the table the error after 1, 5 and 10 refinement steps on 32 fresh tasks that training never sees, beside least squares and the Bayes-optimal fit on the points read by then. Below, your own points refined by the model as it is now (click to add a point, right-click to remove one). The file you download loads in the regression tab (\"Open a model file\"), in amortize eval and in amortize train --init."
            </p>
        </section>
    }
}

/// Points of a random function from the task's prior (the first view's), seeded.
fn start_points(seed: u64) -> Vec<(f32, f32)> {
    let family = FunctionRegression::new(task().with_context(START_POINTS));
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7a5c);
    let e = family.sample(&mut rng).episode;
    e.context_x
        .iter()
        .zip(&e.context_y)
        .filter(|(_, y)| (y.abs() as f64) < Y_MAX)
        .map(|(&x, &y)| (crate::io::quantize(x), crate::io::quantize(y)))
        .collect()
}

#[component]
fn TrainControls(ctx: Ctx) -> impl IntoView {
    let ready = move || ctx.status.get() == Status::Ready;
    let change = move |f: &dyn Fn(&mut TrainSettings)| {
        ctx.train.update(|t| f(t));
        ctx.reset();
    };
    let on_preset = move |ev: web_sys::Event| {
        if let Some(p) = amortize::meta::Preset::named(&event_target_value(&ev)) {
            change(&|t| {
                t.preset = p;
                t.tasks = None;
                t.lr = None;
            });
        }
    };
    let on_tasks = move |ev: web_sys::Event| match event_target_value(&ev).trim().parse::<usize>() {
        Ok(v) if (1..=MAX_TASKS).contains(&v) => change(&|t| t.tasks = Some(v)),
        _ => ctx.error.set(Some(format!(
            "Tasks per meta-step: a whole number in 1..={MAX_TASKS}."
        ))),
    };
    let on_lr = move |ev: web_sys::Event| match event_target_value(&ev).trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_LR => change(&|t| t.lr = Some(v)),
        _ => ctx
            .error
            .set(Some(format!("Learning rate: a number in (0, {MAX_LR}]."))),
    };
    let on_seed = move |ev: web_sys::Event| match event_target_value(&ev).trim().parse::<u64>() {
        Ok(v) => {
            ctx.seed.set(v);
            ctx.reset();
        }
        _ => ctx.error.set(Some("Seed: a whole number.".to_string())),
    };
    let on_regime = move |ev: web_sys::Event| {
        if let Ok(r) = event_target_value(&ev).parse::<Regime>() {
            if TRAIN_REGIMES.contains(&r) {
                change(&|t| t.regime = r);
            }
        }
    };
    let selected = ctx.train.get_untracked().preset.name;
    let regime_now = ctx.train.get_untracked().regime;
    view! {
        <div class="controls">
            <button data-testid="train-toggle" class="primary" on:click=move |_| ctx.toggle()
                disabled=move || !ready()>
                {move || if ctx.running.get() { "Pause" } else if ctx.steps.get() > 0 { "Resume" } else { "Start training" }}
            </button>
            <button data-testid="train-reset" on:click=move |_| { ctx.error.set(None); ctx.reset() }
                disabled=move || matches!(ctx.status.get(), Status::Loading(_))>"Reset"</button>
            <label>"Model "
                <select data-testid="preset-select" on:change=on_preset
                    aria-label="Model size and tasks per meta-step">
                    {PRESETS.iter().map(|p| view! {
                        <option value=p.name selected=p.name == selected>{p.label}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Regime "
                <select data-testid="train-regime" on:change=on_regime
                    aria-label="The regime trained: the state is θ (parametric) or the prediction at every x (implicit)">
                    {TRAIN_REGIMES.iter().map(|r| view! {
                        <option value=r.to_string() selected=*r == regime_now>{r.to_string()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Tasks per meta-step "
                <input type="number" data-testid="tasks-input" min="1" max=MAX_TASKS.to_string()
                    prop:value=move || ctx.train.get().tasks_per_step().to_string()
                    on:change=on_tasks />
            </label>
            <label>"Learning rate "
                <input type="number" data-testid="lr-input" step="any" min="0" max=MAX_LR.to_string()
                    prop:value=move || ctx.train.get().peak_lr().to_string()
                    on:change=on_lr />
            </label>
            <label>"Seed "
                <input type="number" data-testid="seed-input" min="0"
                    prop:value=move || ctx.seed.get().to_string()
                    on:change=on_seed />
            </label>
        </div>
    }
}

#[component]
fn TrainReadouts(ctx: Ctx) -> impl IntoView {
    let last_loss = move || ctx.losses.with(|l| l.last().map(|x| x.1));
    view! {
        <dl class="readouts">
            <div><dt>"Meta-step"</dt><dd data-testid="meta-step">{move || ctx.steps.get()}</dd></div>
            <div><dt>"Meta-steps/s"</dt><dd data-testid="steps-per-second">
                {move || ctx.rate.get().map_or("—".to_string(), |r| format!("{r:.1}"))}
            </dd></div>
            <div><dt>"Training time"</dt><dd data-testid="train-seconds">
                {move || format!("{:.0} s", ctx.seconds.get())}
            </dd></div>
            <div><dt>"Loss"</dt><dd data-testid="train-loss">
                {move || last_loss().map_or("—".to_string(), |l| format!("{l:.4}"))}
            </dd></div>
            <div><dt>"Learning rate"</dt><dd data-testid="train-lr">{move || format!("{:.2e}", ctx.lr.get())}</dd></div>
            <div><dt>"Backend"</dt><dd data-testid="backend">{move || ctx.backend.get()}</dd></div>
        </dl>
    }
}

/// Chart area in SVG units.
const CW: f64 = 360.0;
const CH: f64 = 200.0;

/// A polyline of (x, y) on a chart with x in [0, `x_max`] and log10 y in [`lo`, `hi`].
fn chart_path(points: &[(f64, f64)], x_max: f64, lo: f64, hi: f64) -> String {
    let mut d = String::new();
    for (i, &(x, y)) in points
        .iter()
        .filter(|p| p.1 > 0.0 && p.1.is_finite())
        .enumerate()
    {
        let px = x / x_max.max(1.0) * CW;
        let py = (hi - y.log10()) / (hi - lo).max(1e-9) * CH;
        d += &format!(
            "{}{px:.1},{:.1}",
            if i == 0 { "M" } else { "L" },
            py.clamp(0.0, CH)
        );
    }
    d
}

/// The log10 range covering `values`, widened to whole decades.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v.log10());
        hi = hi.max(v.log10());
    }
    if !lo.is_finite() {
        return (-2.0, 1.0);
    }
    (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
}

#[component]
fn LossChart(ctx: Ctx) -> impl IntoView {
    let drawn = move || {
        ctx.losses.with(|l| {
            // An exponential moving average, thinned to at most 400 vertices.
            let mut ema = None;
            let every = (l.len() / 400).max(1);
            let smooth: Vec<(f64, f64)> = l
                .iter()
                .filter_map(|&(s, v)| {
                    let e = ema.map_or(v, |e: f64| 0.95 * e + 0.05 * v);
                    ema = Some(e);
                    (s % every == 0).then_some((s as f64, e))
                })
                .collect();
            let (lo, hi) = decades(smooth.iter().map(|p| p.1));
            let x_max = l.last().map_or(1.0, |p| p.0 as f64);
            (chart_path(&smooth, x_max, lo, hi), lo, hi, x_max)
        })
    };
    view! {
        <Chart caption="Meta-training loss (greedy k-step query MSE, smoothed)" testid="loss-chart"
            label="Meta-training loss against meta-steps, log scale">
            <path class="curve current" d=move || drawn().0></path>
            <text x="4" y="12" class="tick">{move || format!("1e{}", drawn().2)}</text>
            <text x="4" y=(CH - 4.0).to_string() class="tick">{move || format!("1e{}", drawn().1)}</text>
            <text x=(CW - 4.0).to_string() y=(CH - 4.0).to_string() class="tick end">
                {move || format!("step {}", drawn().3)}
            </text>
        </Chart>
    }
}

#[component]
fn EvalChart(ctx: Ctx) -> impl IntoView {
    let drawn = move || {
        let evals = ctx.evals.get();
        let (ls, bayes) = ctx.baselines.get();
        let all = evals
            .iter()
            .flat_map(|e| e.model.clone())
            .chain(ls.last().copied())
            .chain(bayes.last().copied());
        let (lo, hi) = decades(all);
        let x_max = evals.last().map_or(1.0, |e| e.step as f64).max(1.0);
        let lines: Vec<String> = (0..PROBE_STEPS.len())
            .map(|j| {
                let pts: Vec<(f64, f64)> =
                    evals.iter().map(|e| (e.step as f64, e.model[j])).collect();
                chart_path(&pts, x_max, lo, hi)
            })
            .collect();
        let level =
            |v: Option<&f64>| v.map(|&v| chart_path(&[(0.0, v), (x_max, v)], x_max, lo, hi));
        (lines, level(ls.last()), level(bayes.last()), lo, hi)
    };
    view! {
        <Chart caption="Error on fresh tasks after 1, 5, 10 refinement steps (dashed: least squares and Bayes after 10)"
            testid="eval-chart"
            label="Query MSE on fresh tasks after 1, 5 and 10 refinement steps against meta-steps, log scale">
            <path class="level least-squares" d=move || drawn().1.unwrap_or_default()></path>
            <path class="level bayes" d=move || drawn().2.unwrap_or_default()></path>
            <path class="curve step-1" d=move || drawn().0[0].clone()></path>
            <path class="curve step-5" d=move || drawn().0[1].clone()></path>
            <path class="curve step-10" d=move || drawn().0[2].clone()></path>
            <text x="4" y="12" class="tick">{move || format!("1e{}", drawn().4)}</text>
            <text x="4" y=(CH - 4.0).to_string() class="tick">{move || format!("1e{}", drawn().3)}</text>
        </Chart>
    }
}

/// A chart of the tab: `caption` above a framed `CW × CH` plot (`testid`, described by
/// `label`) that holds `children`.
#[component]
fn Chart(
    caption: &'static str,
    testid: &'static str,
    label: &'static str,
    children: Children,
) -> impl IntoView {
    view! {
        <figure class="chart">
            <figcaption>{caption}</figcaption>
            <svg data-testid=testid viewBox=format!("0 0 {CW} {CH}") role="img" aria-label=label>
                <rect class="frame" x="0" y="0" width=CW.to_string() height=CH.to_string()></rect>
                {children()}
            </svg>
        </figure>
    }
}

#[component]
fn EvalTable(ctx: Ctx) -> impl IntoView {
    // Least squares on fewer points than the function has parameters is wild: name its size.
    let cell = |v: Option<f64>| match v {
        None => "—".to_string(),
        Some(v) if v.abs() >= 1e4 => format!("{v:.1e}"),
        Some(v) => format!("{v:.4}"),
    };
    let row = move |j: usize| {
        let k = PROBE_STEPS[j];
        view! {
            <tr>
                <th scope="row">{format!("after {k} step{}", if k == 1 { "" } else { "s" })}</th>
                <td data-testid=format!("eval-start-{k}")>
                    {move || cell(ctx.evals.with(|e| e.first().map(|e| e.model[j])))}
                </td>
                <td data-testid=format!("eval-now-{k}")>
                    {move || cell(ctx.evals.with(|e| e.last().map(|e| e.model[j])))}
                </td>
                <td data-testid=format!("eval-ls-{k}")>
                    {move || cell(ctx.baselines.with(|b| b.0.get(j).copied()))}
                </td>
                <td data-testid=format!("eval-bayes-{k}")>
                    {move || cell(ctx.baselines.with(|b| b.1.get(j).copied()))}
                </td>
            </tr>
        }
    };
    view! {
        <table class="eval" data-testid="eval-table">
            <caption>{format!("Query MSE on {PROBE_TASKS} fresh tasks (mini-batches of 8 of their 32 points)")}</caption>
            <thead><tr>
                <th></th><th>"model at start"</th>
                <th>{move || format!("model now (step {})", ctx.evals.with(|e| e.last().map_or(0, |e| e.step)))}</th>
                <th>"least squares"</th><th>"Bayes"</th>
            </tr></thead>
            <tbody>{(0..PROBE_STEPS.len()).map(row).collect_view()}</tbody>
        </table>
    }
}

/// A press on the plot: the left button adds a point, the right one removes the nearest.
fn press(ctx: Ctx, ev: &web_sys::PointerEvent) {
    if !ev.is_primary() {
        return;
    }
    let Some(at) = crate::plot::pointer_at(ev, W, H) else {
        return;
    };
    ev.prevent_default();
    let changed = if ev.button() == 2 {
        erase_point(ctx.points, at)
    } else {
        add_point(ctx.points, ctx.error, at)
    };
    if changed {
        ctx.points_changed();
    }
}

/// The Bayes-optimal curve through `points` (the posterior mean under the task's prior).
fn bayes_path(points: &[(f32, f32)]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let family = FunctionRegression::new(task());
    let design: Vec<f32> = points
        .iter()
        .flat_map(|&(x, _)| family.features(x))
        .collect();
    let ys: Vec<f32> = points.iter().map(|&(_, y)| y).collect();
    let theta = posterior_mean(&design, &ys, family.state_dim(), family.config.noise_std);
    let curve: Vec<f32> = (0..=CURVE_POINTS)
        .map(|i| family.eval(&theta, curve_x(i)))
        .collect();
    path(&curve)
}

#[component]
fn TrainPlot(ctx: Ctx) -> impl IntoView {
    let on_down = move |ev: web_sys::PointerEvent| press(ctx, &ev);
    let presets = StoredValue::new(0u64);
    let on_random = move |_| {
        presets.update_value(|n| *n += 1);
        ctx.points.set(start_points(
            ctx.seed.get_untracked() ^ presets.get_value().wrapping_mul(0x9e37_79b9),
        ));
        ctx.points_changed();
    };
    let on_clear = move |_| {
        ctx.points.set(Vec::new());
        ctx.points_changed();
    };
    let bayes = move || bayes_path(&ctx.points.get());
    let curves = move || {
        let c = ctx.curves.get();
        let last = c.len().saturating_sub(1);
        c.iter()
            .enumerate()
            .map(|(i, ys)| {
                let d = path(ys);
                if i == last {
                    view! { <path class="curve current" data-testid="curve" d=d></path> }.into_any()
                } else {
                    let opacity = format!("{:.2}", 0.1 + 0.4 * i as f64 / last.max(1) as f64);
                    view! { <path class="curve past" d=d opacity=opacity></path> }.into_any()
                }
            })
            .collect_view()
    };
    let dots = move || {
        ctx.points
            .get()
            .into_iter()
            .map(|(x, y)| {
                let (cx, cy) = to_px(x as f64, y as f64);
                view! { <circle class="point" cx=format!("{cx:.1}") cy=format!("{cy:.1}") r="6"></circle> }
            })
            .collect_view()
    };
    let (zl, zr) = (to_px(-1.0, 0.0), to_px(1.0, 0.0));
    view! {
        <figure class="panel">
            <figcaption>"Your points, refined by the model as it is now (10 steps; faint: earlier steps; dashed: Bayes)"</figcaption>
            <svg class="plot" data-testid="plot" viewBox=format!("0 0 {W} {H}") role="img"
                aria-label="Plot: click to add points, right-click to remove one; the curves are the current model's refinement of them"
                on:pointerdown=on_down
                on:contextmenu=|ev: web_sys::MouseEvent| ev.prevent_default()>
                <rect class="frame" x="0" y="0" width=W.to_string() height=H.to_string()></rect>
                <line class="axis" x1=zl.0.to_string() y1=zl.1.to_string() x2=zr.0.to_string() y2=zr.1.to_string()></line>
                <path class="curve bayes" d=bayes></path>
                {curves}
                {dots}
            </svg>
            <div class="controls">
                <button data-testid="preset-button" on:click=on_random>"Random function"</button>
                <button data-testid="clear-button" on:click=on_clear>"Clear points"</button>
                <span>"Points: "<span data-testid="points">{move || ctx.points.get().len()}</span></span>
            </div>
        </figure>
    }
}

#[component]
fn Downloads(ctx: Ctx) -> impl IntoView {
    let offer = move |name: String, mime: &str, bytes: &[u8]| {
        if let Err(e) = crate::io::offer(ctx.offered, name, mime, bytes) {
            ctx.error.set(Some(format!("Download failed: {e}")));
        }
    };
    let name = move |ext: &str| {
        format!(
            "amortize-trained-{}-{}-{}steps.{ext}",
            ctx.train.get_untracked().regime,
            ctx.train.get_untracked().preset.name,
            ctx.steps.get_untracked()
        )
    };
    let on_model = move |_| match ctx.export() {
        Ok((bytes, _)) => offer(name("amz"), "application/octet-stream", &bytes),
        Err(e) => ctx.error.set(Some(format!("Download failed: {e}"))),
    };
    let on_card = move |_| match ctx.export() {
        Ok((_, card)) => offer(name("md"), "text/markdown", card.as_bytes()),
        Err(e) => ctx.error.set(Some(format!("Download failed: {e}"))),
    };
    view! {
        <div class="io" role="group" aria-label="Download the model">
            <span class="io-label">"The model as it is now"</span>
            <button data-testid="model-download" on:click=on_model
                disabled=move || ctx.status.get() != Status::Ready>"Download (.amz)"</button>
            <button data-testid="card-download" on:click=on_card
                disabled=move || ctx.status.get() != Status::Ready>"Its card (.md)"</button>
            {move || ctx.offered.get().map(|(name, url)| view! {
                <a data-testid="model-link" href=url download=name.clone()>{format!("Download {name} again")}</a>
            })}
        </div>
    }
}
