//! The page: loading screen, error panel, the regression demo.

use std::cell::RefCell;
use std::rc::Rc;

use amortize::baseline::posterior_mean;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rand::{rngs::StdRng, SeedableRng};

use crate::animation::Frames;
use crate::browser::{chosen_file, file_bytes, keyboard, now, sleep};
use crate::engine::{fetch_bytes, Engine, Run, Shown};
use crate::gmm::{GenDemo, GenKind};
use crate::plot::regression::{
    curve_x, from_px, path as curve_path, to_px, CURVE_POINTS, H, W, Y_MAX,
};
use crate::state::{Demo, Settings, MAX_POINTS};
use crate::status::{Status, StatusView};
use crate::toolbar::{PointsIo, RefineControls};
use crate::train::TrainDemo;

/// Plot units between two points a drag adds.
const DRAG_GAP: f64 = 24.0;
/// Plot units within which the eraser removes a point.
const ERASE_RADIUS: f64 = 16.0;
/// Points of a preset (a random function from the prior).
const PRESET_POINTS: usize = 24;

/// Where a pointer event falls on the plot, in plot units.
fn plot_point(ev: &web_sys::PointerEvent) -> Option<(f64, f64)> {
    crate::plot::pointer_at(ev, W, H)
}

/// Everything a refinement step reads and writes; all handles are `Copy`.
#[derive(Clone, Copy)]
struct Ctx {
    /// The models on screen: one, or every shipped regime side by side (`compare=1`). All
    /// read the same points in the same mini-batches.
    engines: StoredValue<Vec<Rc<Engine>>, LocalStorage>,
    /// One refinement of the current points per engine (taken out while a step runs).
    runs: StoredValue<Rc<RefCell<Vec<Run>>>, LocalStorage>,
    points: RwSignal<Vec<(f32, f32)>>,
    /// shown[i][m]: what model m predicts after step i (shown[0]: its initial state); empty
    /// while a reset is being prepared.
    shown: RwSignal<Vec<Vec<Shown>>>,
    /// batches[i - 1] holds the indices of the points step i read.
    batches: RwSignal<Vec<Vec<usize>>>,
    busy: RwSignal<bool>,
    /// Steps the model was trained with (0 until it loads).
    max_steps: RwSignal<usize>,
    playing: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    /// Milliseconds the last refinement step took (all models together).
    latency: RwSignal<Option<f64>>,
    /// Bumped by every reset, so that work for older points is dropped.
    epoch: StoredValue<u64>,
    seed: u64,
}

impl Ctx {
    /// Back to the initial state, e.g. after the points changed.
    fn reset(&self) {
        let ctx = *self;
        spawn_local(async move { ctx.restart().await });
    }

    /// Back to the initial state: starts a refinement of the current points on every model
    /// and shows their initial predictions.
    async fn restart(self) {
        self.playing.set(false);
        self.epoch.update_value(|e| *e += 1);
        let epoch = self.epoch.get_value();
        self.shown.set(Vec::new());
        self.batches.set(Vec::new());
        let engines = self.engines.get_value();
        if engines.is_empty() {
            return;
        }
        let points = self.points.get_untracked();
        let mut runs = Vec::with_capacity(engines.len());
        let mut first = Vec::with_capacity(engines.len());
        for engine in &engines {
            let run = match engine.start(&points) {
                Ok(r) => r,
                Err(e) => return self.error.set(Some(e)),
            };
            match engine.shown(&run, 0).await {
                Ok(v) => first.push(v),
                Err(e) => return self.error.set(Some(e)),
            }
            runs.push(run);
        }
        if self.epoch.get_value() == epoch {
            *self.runs.get_value().borrow_mut() = runs;
            self.shown.set(vec![first]);
        }
    }

    /// Back one step (the state before the last one); false at step 0.
    fn back(&self) -> bool {
        if self.busy.get_untracked() || self.shown.get_untracked().len() <= 1 {
            return false;
        }
        self.playing.set(false);
        for run in self.runs.get_value().borrow_mut().iter_mut() {
            run.back();
        }
        self.shown.update(|s| {
            s.pop();
        });
        self.batches.update(|b| {
            b.pop();
        });
        true
    }

    /// Shows step `s`: back to it, or steps forward to it (each step needs the one before).
    async fn go(self, s: usize) {
        self.playing.set(false);
        while self.shown.get_untracked().len() > s + 1 {
            if !self.back() {
                break;
            }
        }
        while self.shown.get_untracked().len() < s + 1 {
            if !self.step().await {
                break;
            }
        }
    }

    /// Runs the next refinement step of every model; false when there is nothing to do.
    async fn step(self) -> bool {
        let engines = self.engines.get_value();
        let Some(lead) = engines.first() else {
            return false;
        };
        // A reset may still be preparing the initial predictions: wait for it (a few ms).
        for _ in 0..500 {
            if !self.shown.get_untracked().is_empty() {
                break;
            }
            sleep(10).await;
        }
        let points = self.points.get_untracked();
        let shown = self.shown.get_untracked();
        if shown.is_empty() || self.busy.get_untracked() {
            return false;
        }
        let done = shown.len() - 1;
        if points.is_empty() || done >= lead.refine.steps {
            return false;
        }
        let plan = crate::engine::plan(points.len(), &lead.refine, self.seed);
        let batch = plan[done].clone();
        let epoch = self.epoch.get_value();
        let cell = self.runs.get_value();
        let mut runs = std::mem::take(&mut *cell.borrow_mut());
        if runs.len() != engines.len() || runs.iter().any(|r| r.steps() != done) {
            *cell.borrow_mut() = runs;
            return false;
        }
        self.busy.set(true);
        let started = now();
        let mut next = Vec::with_capacity(engines.len());
        let mut failed = None;
        for (engine, run) in engines.iter().zip(runs.iter_mut()) {
            match engine.step(run, &batch).await {
                Ok(v) => next.push(v),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.latency.set(Some(now() - started));
        self.busy.set(false);
        // The visitor may have changed the points meanwhile: only keep a current result.
        if self.epoch.get_value() != epoch {
            return false;
        }
        if let Some(e) = failed {
            for run in runs.iter_mut().filter(|r| r.steps() > done) {
                run.back();
            }
            *cell.borrow_mut() = runs;
            self.error.set(Some(e));
            return false;
        }
        *cell.borrow_mut() = runs;
        self.shown.update(|s| s.push(next));
        self.batches.update(|b| b.push(batch));
        true
    }
}

/// The app: header, demo tabs (each its own URL), URL warnings, the chosen demo.
#[component]
pub fn App() -> impl IntoView {
    let query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let settings = Settings::from_query(&query);
    let tab = |demo: Demo, label: &'static str| {
        let selected = settings.demo == demo;
        view! {
            <a class="tab" role="tab" href=settings.tab_query(demo)
                aria-selected=selected.to_string()
                data-testid=format!("tab-{}", demo.key())>{label}</a>
        }
    };
    let warnings = settings.warnings.clone();
    let embed = settings.embed;
    if embed {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            body.set_class_name("embed");
        }
    }
    view! {
        <header hidden=embed>
            <h1>"amortize"</h1>
            <p class="tagline">
                "A transformer that learns to learn: it refines a solution step by step over mini-batches of your points, like SGD with a learned update."
            </p>
            <nav class="tabs" role="tablist" aria-label="Demos">
                {tab(Demo::Regression, "Regression")}
                {tab(Demo::Gmm, "Gaussian mixture")}
                {tab(Demo::Alphabet, "Alphabet")}
                {tab(Demo::Train, "Train")}
            </nav>
        </header>
        <main>
            {(!warnings.is_empty()).then(|| view! {
                <div class="warning" data-testid="warning" role="status">
                    {warnings.join(" · ")}
                </div>
            })}
            {match settings.demo {
                Demo::Regression => view! { <RegressionDemo settings=settings.clone() /> }.into_any(),
                Demo::Gmm => view! { <GenDemo settings=settings.clone() kind=GenKind::Gmm /> }.into_any(),
                Demo::Alphabet => view! { <GenDemo settings=settings.clone() kind=GenKind::Alphabet /> }.into_any(),
                Demo::Train => view! { <TrainDemo settings=settings.clone() /> }.into_any(),
            }}
        </main>
    }
}

/// The regression demo: one model, or every shipped regime side by side on the same points.
#[component]
fn RegressionDemo(settings: Settings) -> impl IntoView {
    let embed = settings.embed;
    let status = RwSignal::new(Status::Loading("Fetching the model…".to_string()));
    let backend = RwSignal::new(String::from("—"));
    let note = RwSignal::new(None::<crate::status::Note>);
    // Bytes of the weights downloaded so far, and the total when known.
    let fetched = RwSignal::new(None::<(usize, Option<usize>)>);
    let refine = RwSignal::new((0usize, 0usize));
    let show_bayes = RwSignal::new(settings.bayes);
    // The models' names, in panel order (once loaded).
    let labels = RwSignal::new(Vec::<(String, String)>::new());
    let ctx = Ctx {
        engines: StoredValue::new_local(Vec::new()),
        runs: StoredValue::new_local(Rc::new(RefCell::new(Vec::new()))),
        points: RwSignal::new(settings.points.clone()),
        shown: RwSignal::new(Vec::new()),
        batches: RwSignal::new(Vec::new()),
        busy: RwSignal::new(false),
        max_steps: RwSignal::new(0),
        playing: RwSignal::new(false),
        error: RwSignal::new(None),
        latency: RwSignal::new(None),
        epoch: StoredValue::new(0),
        seed: settings.seed,
    };

    // The models on screen from now on: their names, k and mini-batch size, a fresh refinement.
    let install = move |engines: Vec<Rc<Engine>>| async move {
        let Some(lead) = engines.first() else {
            return;
        };
        ctx.max_steps.set(lead.refine.steps);
        refine.set((lead.refine.steps, lead.refine.batch_size));
        labels.set(
            engines
                .iter()
                .map(|e| (e.regime.to_string(), e.label.clone()))
                .collect(),
        );
        ctx.engines.set_value(engines);
        ctx.restart().await;
    };
    // A model file of the visitor's (one written by `amortize train`, or by the Train tab).
    let from_file = RwSignal::new(None::<String>);
    let on_model_file = {
        let choice = settings.backend;
        move |ev: web_sys::Event| {
            let Some(file) = chosen_file(&ev) else {
                return;
            };
            spawn_local(async move {
                let name = file.name();
                let bytes = match file_bytes(&file).await {
                    Ok(b) => b,
                    Err(e) => return ctx.error.set(Some(format!("Could not read {name}: {e}"))),
                };
                status.set(Status::Loading(format!(
                    "Preparing the model in {name} ({} kB)…",
                    bytes.len() / 1024
                )));
                match Engine::load(&bytes, choice).await {
                    Ok((engine, n)) => {
                        backend.set(engine.backend.clone());
                        note.set(n);
                        ctx.error.set(None);
                        from_file.set(Some(name));
                        install(vec![Rc::new(engine)]).await;
                    }
                    // The model on screen stays: the page keeps working.
                    Err(e) => ctx.error.set(Some(format!("Could not open {name}: {e}"))),
                }
                status.set(Status::Ready);
            });
        }
    };
    {
        let settings = settings.clone();
        spawn_local(async move {
            let files = settings.models();
            let mut engines = Vec::with_capacity(files.len());
            for (i, file) in files.iter().enumerate() {
                let of = if files.len() > 1 {
                    format!(" ({} of {})", i + 1, files.len())
                } else {
                    String::new()
                };
                let bytes = match fetch_bytes(file, |got, total| {
                    fetched.set(Some((got, total)));
                    status.set(Status::Loading(format!(
                        "{}{of}",
                        crate::engine::progress_text(got, total)
                    )));
                })
                .await
                {
                    Ok(b) => b,
                    Err(e) => return status.set(Status::Failed(e)),
                };
                status.set(Status::Loading(format!(
                    "Preparing the model{of} ({} kB)…",
                    bytes.len() / 1024
                )));
                match Engine::load(&bytes, settings.backend).await {
                    Ok((mut engine, n)) => {
                        settings.apply_refine(&mut engine.refine);
                        if i == 0 {
                            backend.set(engine.backend.clone());
                            note.set(n);
                        }
                        engines.push(Rc::new(engine));
                    }
                    Err(e) => {
                        return status.set(Status::Failed(format!(
                            "Could not load the model {file}: {e}"
                        )))
                    }
                }
            }
            install(engines).await;
            // A shared link's step: replay the refinement up to it.
            for _ in 0..settings.step {
                if !ctx.step().await {
                    break;
                }
            }
            status.set(Status::Ready);
        });
    }

    // Drawing on the plot, by pointer events: a mouse, a finger or a pen alike (the plot has
    // `touch-action: none`, so a drag does not scroll the page). A press adds a point and a drag
    // keeps adding one every DRAG_GAP; with the eraser on, or with the right button, a press or
    // a drag removes the points it passes over.
    let eraser = RwSignal::new(false);
    // The last point a drag added (plot units), or None when no drag is adding points.
    let drawing: StoredValue<Option<(f64, f64)>> = StoredValue::new(None);
    let erasing = StoredValue::new(false);
    let add_at = move |(px, py): (f64, f64)| {
        let (x, y) = from_px(px, py);
        if !(x.is_finite() && y.is_finite() && (-1.0..=1.0).contains(&x)) {
            return;
        }
        if ctx.points.get_untracked().len() >= MAX_POINTS {
            ctx.error.set(Some(format!("At most {MAX_POINTS} points.")));
            return;
        }
        ctx.points
            .update(|p| p.push((crate::io::quantize(x as f32), crate::io::quantize(y as f32))));
        ctx.reset();
    };
    let erase_at = move |(px, py): (f64, f64)| {
        let near = ctx.points.with_untracked(|pts| {
            pts.iter()
                .enumerate()
                .map(|(i, &(x, y))| {
                    let (qx, qy) = to_px(x as f64, y as f64);
                    (i, (qx - px).hypot(qy - py))
                })
                .filter(|&(_, d)| d <= ERASE_RADIUS)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        });
        if let Some(i) = near {
            ctx.points.update(|p| {
                p.remove(i);
            });
            ctx.error.set(None);
            ctx.reset();
        }
    };
    let on_down = move |ev: web_sys::PointerEvent| {
        if status.get_untracked() != Status::Ready || !ev.is_primary() {
            return;
        }
        let Some(at) = plot_point(&ev) else {
            return;
        };
        crate::plot::capture(&ev);
        if eraser.get_untracked() || ev.button() == 2 {
            erasing.set_value(true);
            erase_at(at);
        } else {
            drawing.set_value(Some(at));
            add_at(at);
        }
    };
    let on_move = move |ev: web_sys::PointerEvent| {
        if !ev.is_primary() || ev.buttons() == 0 {
            return;
        }
        let Some(at) = plot_point(&ev) else {
            return;
        };
        if erasing.get_value() {
            erase_at(at);
        } else if let Some((x, y)) = drawing.get_value() {
            if (at.0 - x).hypot(at.1 - y) >= DRAG_GAP {
                drawing.set_value(Some(at));
                add_at(at);
            }
        }
    };
    let on_up = move |_: web_sys::PointerEvent| {
        drawing.set_value(None);
        erasing.set_value(false);
    };
    // A random function from the prior the models were trained on, seen through 24 noisy points
    // (the task sampler's own draw; those outside the plot are left out).
    let presets = StoredValue::new(0u64);
    let on_preset = move |_| {
        let engines = ctx.engines.get_value();
        let Some(engine) = engines.first() else {
            return;
        };
        presets.update_value(|n| *n += 1);
        let mut rng = StdRng::seed_from_u64(
            ctx.seed ^ presets.get_value().wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let task = amortize::task::regression::FunctionRegression::new(
            engine.task.config.clone().with_context(PRESET_POINTS),
        );
        let e = task.sample(&mut rng).episode;
        let points: Vec<(f32, f32)> = e
            .context_x
            .iter()
            .zip(&e.context_y)
            .filter(|(_, y)| (y.abs() as f64) < Y_MAX)
            .map(|(&x, &y)| (crate::io::quantize(x), crate::io::quantize(y)))
            .collect();
        ctx.points.set(points);
        ctx.error.set(None);
        ctx.reset();
    };

    // The address bar always holds a link to this view.
    {
        let settings = settings.clone();
        Effect::new(move |_| {
            let points = ctx.points.get();
            let step = ctx.shown.get().len().saturating_sub(1);
            if status.get() == Status::Ready {
                let mut view = settings.clone();
                view.bayes = show_bayes.get();
                // The link names the k and mini-batch size in use, so that it reopens the same
                // refinement in every regime's view (they were trained with different sizes)
                // and after the shipped models change.
                let (k, b) = refine.get_untracked();
                if k > 0 {
                    view.steps.get_or_insert(k);
                    view.batch.get_or_insert(b);
                }
                crate::io::replace_query(&view.view_query(&points, step));
            }
        });
    }
    let step_once = move || {
        ctx.playing.set(false);
        spawn_local(async move {
            ctx.step().await;
        });
    };
    let on_step = move |_| step_once();
    let play = move || {
        if ctx.playing.get_untracked() {
            ctx.playing.set(false);
            return;
        }
        ctx.playing.set(true);
        spawn_local(async move {
            while ctx.playing.get_untracked() && ctx.step().await {
                sleep(350).await;
            }
            ctx.playing.set(false);
        });
    };
    let on_play = move |_| play();
    keyboard(
        move || status.get_untracked() == Status::Ready,
        play,
        step_once,
        move || {
            ctx.back();
        },
    );
    let on_reset = move |_| ctx.reset();
    let on_clear = move |_| {
        ctx.points.set(Vec::new());
        ctx.error.set(None);
        ctx.reset();
    };

    let current = move || ctx.shown.get().len().saturating_sub(1);
    // MSE of model m's current predictions to the points.
    let mse = move |m: usize| -> Option<f64> {
        let pts = ctx.points.get();
        let shown = ctx.shown.get();
        let at = &shown.last()?.get(m)?.at_points;
        if pts.is_empty() || at.len() != pts.len() {
            return None;
        }
        let sum: f64 = pts
            .iter()
            .zip(at)
            .map(|(&(_, y), &p)| (p as f64 - y as f64).powi(2))
            .sum();
        Some(sum / pts.len() as f64)
    };
    // The Bayes-optimal predictor on the visitor's points: the posterior mean of θ under the
    // task's prior θ ~ N(0, I) and noise, the best any learner can do with these points. One
    // solve per change of the points, shared by the curve and the readout.
    let bayes_theta = Memo::new(move |_| -> Option<Vec<f32>> {
        let _ready = status.get();
        let pts = ctx.points.get();
        let engines = ctx.engines.get_value();
        let engine = engines.first()?;
        if pts.is_empty() {
            return None;
        }
        let design: Vec<f32> = pts
            .iter()
            .flat_map(|&(x, _)| engine.task.features(x))
            .collect();
        let ys: Vec<f32> = pts.iter().map(|&(_, y)| y).collect();
        Some(posterior_mean(
            &design,
            &ys,
            engine.task.state_dim(),
            engine.task.config.noise_std,
        ))
    });
    let bayes_mse = move || {
        let theta = bayes_theta.get()?;
        let engines = ctx.engines.get_value();
        let engine = engines.first()?;
        let pts = ctx.points.get();
        let sum: f64 = pts
            .iter()
            .map(|&(x, y)| (engine.task.eval(&theta, x) as f64 - y as f64).powi(2))
            .sum();
        Some(sum / pts.len() as f64)
    };
    let bayes_curve = move || {
        if !show_bayes.get() {
            return None;
        }
        let theta = bayes_theta.get()?;
        let engines = ctx.engines.get_value();
        let engine = engines.first()?;
        let ys: Vec<f32> = (0..=CURVE_POINTS)
            .map(|i| engine.task.eval(&theta, curve_x(i)))
            .collect();
        let d = curve_path(&ys);
        Some(view! { <path class="curve bayes" data-testid="bayes-curve" d=d></path> })
    };
    // Model m's curve after every step so far, the current one on top.
    let curves = move |m: usize| {
        let shown = ctx.shown.get();
        let last = shown.len().saturating_sub(1);
        shown
            .iter()
            .enumerate()
            .filter_map(|(i, per_model)| {
                let d = curve_path(&per_model.get(m)?.curve);
                Some(if i == last {
                    view! { <path class="curve current" data-testid="curve" d=d></path> }.into_any()
                } else {
                    let opacity = format!("{:.2}", 0.15 + 0.5 * i as f64 / last.max(1) as f64);
                    view! { <path class="curve past" d=d opacity=opacity></path> }.into_any()
                })
            })
            .collect_view()
    };
    let dots = move || {
        let batch = ctx.batches.get().last().cloned().unwrap_or_default();
        ctx.points
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, (x, y))| {
                let (cx, cy) = to_px(x as f64, y as f64);
                let class = if batch.contains(&i) { "point in-batch" } else { "point" };
                view! { <circle class=class cx=format!("{cx:.1}") cy=format!("{cy:.1}") r="6"></circle> }
            })
            .collect_view()
    };
    let (zero_left, zero_right) = (to_px(-1.0, 0.0), to_px(1.0, 0.0));
    let compare = settings.compare;
    // One plot per model; clicking any of them adds the point to all.
    let panel = move |m: usize, regime: String, label: String| {
        view! {
            <figure class="panel" data-regime=regime.clone()>
                {compare.then(|| view! { <figcaption>{label.clone()}</figcaption> })}
                <svg
                    class="plot"
                    data-testid="plot"
                    viewBox=format!("0 0 {W} {H}")
                    role="img"
                    aria-label=format!("Plot ({label}): click or drag to add points, right-click or use the eraser to remove them; the curve is the model's fit at the current step")
                    class:erasing=move || eraser.get()
                    on:pointerdown=on_down
                    on:pointermove=on_move
                    on:pointerup=on_up
                    on:pointercancel=on_up
                    on:contextmenu=|ev: web_sys::MouseEvent| ev.prevent_default()
                >
                    <rect class="frame" x="0" y="0" width=W.to_string() height=H.to_string()></rect>
                    <line class="axis" x1=zero_left.0.to_string() y1=zero_left.1.to_string()
                        x2=zero_right.0.to_string() y2=zero_right.1.to_string()></line>
                    {bayes_curve}
                    {move || curves(m)}
                    {dots}
                </svg>
                {compare.then(|| view! {
                    <p class="panel-mse">"MSE to the points: "
                        <span data-testid=format!("mse-{regime}")>
                            {move || mse(m).map_or("—".to_string(), |v| format!("{v:.4}"))}
                        </span>
                    </p>
                })}
            </figure>
        }
    };
    let title = move || {
        let l = labels.get();
        match l.as_slice() {
            [] => "1-D regression".to_string(),
            [(_, one)] => match from_file.get() {
                Some(f) => format!("1-D regression · {one} · {f}"),
                None => format!("1-D regression · {one}"),
            },
            _ => "1-D regression · the regimes side by side".to_string(),
        }
    };
    let regime_choice = {
        let settings = settings.clone();
        move |ev: web_sys::Event| {
            let value = event_target_value(&ev);
            let mut next = settings.clone();
            next.bayes = show_bayes.get_untracked();
            if value == "compare" {
                next.compare = true;
            } else if let Some(file) = Demo::Regression.shipped_file(&value) {
                next.compare = false;
                next.weights = file.to_string();
            } else {
                return;
            }
            let query = next.view_query(&ctx.points.get_untracked(), 0);
            if let Some(w) = web_sys::window() {
                let _ = w.location().set_search(&query);
            }
        }
    };
    let selected = if settings.compare {
        "compare".to_string()
    } else {
        Demo::Regression
            .shipped()
            .iter()
            .find(|(_, f)| *f == settings.weights)
            .map(|(r, _)| r.to_string())
            .unwrap_or_default()
    };
    let regime_options = Demo::Regression
        .shipped()
        .iter()
        .map(|(r, _)| {
            let r = r.to_string();
            let sel = r == selected;
            view! { <option value=r.clone() selected=sel>{r.clone()}</option> }
        })
        .collect_view();

    view! {
            <StatusView status=status fetched=fetched error=ctx.error note=note />
            <section class="demo">
                <h2 data-testid="title">{title}</h2>
                <div class=if compare { "panels compare" } else { "panels" }>
                    {move || labels.get().into_iter().enumerate()
                        .map(|(m, (regime, label))| panel(m, regime, label))
                        .collect_view()}
                </div>
                <div class="controls">
                    <button data-testid="step-button" on:click=on_step
                        disabled=move || status.get() != Status::Ready>"Step"</button>
                    <button data-testid="play-button" on:click=on_play
                        disabled=move || status.get() != Status::Ready>
                        {move || if ctx.playing.get() { "Pause" } else { "Play" }}
                    </button>
                    <button data-testid="reset-button" on:click=on_reset
                        disabled=move || status.get() != Status::Ready>"Reset"</button>
                    {(!embed).then(|| view! {
                        <button data-testid="preset-button" on:click=on_preset
                            title="Points from a random function of the prior the models were trained on"
                            disabled=move || status.get() != Status::Ready>"Random function"</button>
                        <button data-testid="eraser-toggle"
                            on:click=move |_| eraser.update(|e| *e = !*e)
                            aria-pressed=move || eraser.get().to_string()
                            disabled=move || status.get() != Status::Ready>"Eraser"</button>
                        <button data-testid="clear-button" on:click=on_clear
                            disabled=move || status.get() != Status::Ready>"Clear points"</button>
                    })}
                </div>
                <label class="timeline">
                    <span>"Timeline"</span>
                    <input type="range" data-testid="timeline" min="0"
                        max=move || ctx.max_steps.get().to_string()
                        prop:value=move || current().to_string()
                        disabled=move || status.get() != Status::Ready || ctx.points.get().is_empty()
                        aria-label="Refinement step shown"
                        on:change=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse::<usize>() {
                                spawn_local(async move { ctx.go(v).await });
                            }
                        } />
                </label>
                <dl class="readouts">
                    <div><dt>"Step"</dt><dd>
                        <span data-testid="step">{current}</span>" / "
                        {move || ctx.max_steps.get()}
                    </dd></div>
                    <div><dt>{move || if compare { "MSE to the points (first panel)" } else { "MSE to the points" }}</dt><dd data-testid="mse">
                        {move || mse(0).map_or("—".to_string(), |m| format!("{m:.4}"))}
                    </dd></div>
                    <div><dt>"Bayes-optimal MSE"</dt><dd data-testid="bayes-mse">
                        {move || bayes_mse().map_or("—".to_string(), |m| format!("{m:.4}"))}
                    </dd></div>
                    <div><dt>"Points"</dt><dd data-testid="points">{move || ctx.points.get().len()}</dd></div>
                    <div><dt>"Step latency"</dt><dd data-testid="latency">
                        {move || ctx.latency.get().map_or("—".to_string(), |ms| format!("{ms:.1} ms"))}
                    </dd></div>
                    <div><dt>"Backend"</dt><dd data-testid="backend">{move || backend.get()}</dd></div>
                </dl>
                <div class="options">
                    <label>
                        "Regime "
                        <select data-testid="regime" on:change=regime_choice
                            aria-label="Regime of the model shown, or all shipped regimes side by side">
                            {regime_options}
                            <option value="compare" selected=settings.compare>"side by side"</option>
                        </select>
                    </label>
                    <label>
                        <input type="checkbox" data-testid="bayes-toggle"
                            prop:checked=move || show_bayes.get()
                            on:change=move |ev| show_bayes.set(event_target_checked(&ev)) />
                        " Bayes-optimal curve"
                    </label>
                    <RefineControls settings=settings.clone() points=ctx.points refine=refine />
                    {(!embed).then(|| view! {
                        <label class="import">
                            "Open a model file (.amz) "
                            <input type="file" accept=".amz" data-testid="model-file"
                                disabled=move || status.get() != Status::Ready
                                on:change=on_model_file />
                        </label>
                    })}
                </div>
                {(!embed).then(|| view! {
                    <PointsIo points=ctx.points demo=Demo::Regression error=ctx.error
                        reset=Callback::new(move |_| ctx.reset())
                        frames=Frames {
                            last: ctx.max_steps,
                            current: Rc::new(move || ctx.shown.get_untracked().len().saturating_sub(1)),
                            show: Rc::new(move |s| Box::pin(async move {
                                ctx.go(s).await;
                                ctx.shown.get_untracked().len() == s + 1
                            })),
                        } />
                    <p class="help">
                        "Click or drag in the plot to add points (mouse, finger or pen); right-click a point, or turn on the eraser and tap or drag over points, to remove them; \"Random function\" draws points from a function of the prior the models were trained on. Each step reads one mini-batch of them (highlighted) and refines the model's state: in the parametric regime the weights θ of the predictor f(x) = φ(x)·θ; in the explicit regime a latent that a learned network decodes; in the implicit regime the prediction at every x itself, which the model revises from the mini-batch and from its own errors on those points. Step 0 is the learned initial state. \"Side by side\" runs every shipped regime on the same points and mini-batches. The dashed curve is the Bayes-optimal fit to all your points (the posterior mean under the prior the models were trained on). The timeline goes to any step. Keys: space plays or pauses, → steps, ← goes back."
                    </p>
                })}
            </section>
    }
}
