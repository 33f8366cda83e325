//! The page: loading screen, error panel, the regression demo.

use std::rc::Rc;

use amortize::baseline::posterior_mean;
use amortize::refine::schedule;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rand::{rngs::StdRng, SeedableRng};
use wasm_bindgen::JsCast;

use crate::engine::{fetch_bytes, Engine};
use crate::gmm::{GenDemo, GenKind};
use crate::state::{Demo, Settings};
use crate::toolbar::{PointsIo, RefineControls};

/// Plot area in SVG units.
const W: f64 = 600.0;
const H: f64 = 360.0;
/// Visible y range.
const Y_MAX: f64 = 3.5;
/// Most points a visitor can place (enforced here, not only in the UI).
pub const MAX_POINTS: usize = 256;

fn to_px(x: f64, y: f64) -> (f64, f64) {
    ((x + 1.0) / 2.0 * W, (Y_MAX - y) / (2.0 * Y_MAX) * H)
}

fn from_px(px: f64, py: f64) -> (f64, f64) {
    (px / W * 2.0 - 1.0, Y_MAX - py / H * 2.0 * Y_MAX)
}

/// Shows a message in the page even when the app itself has died (used by the panic hook).
pub fn show_fatal(message: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(el) = doc.get_element_by_id("fatal") {
        el.set_text_content(Some(&format!("The app stopped with an error: {message}")));
        let _ = el.remove_attribute("hidden");
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Loading(String),
    Ready,
    Failed(String),
}

/// Everything a refinement step reads and writes; all handles are `Copy`.
#[derive(Clone, Copy)]
struct Ctx {
    engine: StoredValue<Option<Rc<Engine>>, LocalStorage>,
    points: RwSignal<Vec<(f32, f32)>>,
    /// states[0] is θ(0); states[i] the state after step i.
    states: RwSignal<Vec<Vec<f32>>>,
    /// batches[i - 1] holds the indices of the points step i read.
    batches: RwSignal<Vec<Vec<usize>>>,
    busy: RwSignal<bool>,
    /// Steps the model was trained with (0 until it loads).
    max_steps: RwSignal<usize>,
    playing: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    /// Milliseconds the last refinement step took.
    latency: RwSignal<Option<f64>>,
    seed: u64,
}

impl Ctx {
    /// Back to θ(0), e.g. after the points changed.
    fn reset(&self) {
        self.playing.set(false);
        if let Some(e) = self.engine.get_value() {
            self.states.set(vec![e.initial.clone()]);
        }
        self.batches.set(Vec::new());
    }

    /// Back one step (the state before the last one); false at step 0.
    fn back(&self) -> bool {
        if self.busy.get_untracked() || self.states.get_untracked().len() <= 1 {
            return false;
        }
        self.playing.set(false);
        self.states.update(|s| {
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
        while self.states.get_untracked().len() > s + 1 {
            if !self.back() {
                break;
            }
        }
        while self.states.get_untracked().len() < s + 1 {
            if !self.step().await {
                break;
            }
        }
    }

    /// Runs the next refinement step; false when there is nothing to do.
    async fn step(self) -> bool {
        let Some(engine) = self.engine.get_value() else {
            return false;
        };
        let points = self.points.get_untracked();
        let states = self.states.get_untracked();
        let done = states.len() - 1;
        if points.is_empty() || done >= engine.refine.steps || self.busy.get_untracked() {
            return false;
        }
        // The mini-batch order depends only on the number of points and the seed, so a view is
        // reproducible.
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (points.len() as u64).wrapping_mul(0x9e37_79b9));
        let plan = schedule(
            points.len(),
            engine.refine.batch_size,
            engine.refine.steps,
            &mut rng,
        );
        let batch = plan[done].clone();
        self.busy.set(true);
        let started = crate::gmm::now();
        let result = engine.step(&states[done], &points, &batch).await;
        self.latency.set(Some(crate::gmm::now() - started));
        self.busy.set(false);
        match result {
            Ok(next) => {
                // The visitor may have changed the points meanwhile: only keep a current result.
                if self.points.get_untracked() == points
                    && self.states.get_untracked().len() == done + 1
                {
                    self.states.update(|s| s.push(next));
                    self.batches.update(|b| b.push(batch));
                    true
                } else {
                    false
                }
            }
            Err(e) => {
                self.error.set(Some(e));
                false
            }
        }
    }
}

pub(crate) async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
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
            }}
        </main>
    }
}

/// Space plays or pauses, → steps, ← goes back one step (not while typing in a field).
pub(crate) fn keyboard(
    ready: impl Fn() -> bool + 'static,
    play: impl Fn() + 'static,
    step: impl Fn() + 'static,
    back: impl Fn() + 'static,
) {
    let handle = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        let key = ev.key();
        // Fields keep their keys; a checkbox keeps Space (it toggles) but not the arrows.
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|e| match e.tag_name().as_str() {
                "TEXTAREA" | "SELECT" => true,
                "INPUT" => !(e.get_attribute("type").as_deref() == Some("checkbox") && key != " "),
                _ => false,
            })
            .unwrap_or(false);
        if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() || !ready() {
            return;
        }
        match key.as_str() {
            " " => {
                ev.prevent_default();
                play();
            }
            "ArrowRight" => {
                ev.prevent_default();
                step();
            }
            "ArrowLeft" => {
                ev.prevent_default();
                back();
            }
            _ => {}
        }
    });
    // The demo lives as long as the page.
    std::mem::forget(handle);
}

/// The regression demo.
#[component]
fn RegressionDemo(settings: Settings) -> impl IntoView {
    let embed = settings.embed;
    let status = RwSignal::new(Status::Loading("Fetching the model…".to_string()));
    let backend = RwSignal::new(String::from("—"));
    let note = RwSignal::new(None::<String>);
    // Bytes of the weights downloaded so far, and the total when known.
    let fetched = RwSignal::new(None::<(usize, Option<usize>)>);
    let refine = RwSignal::new((0usize, 0usize));
    let show_bayes = RwSignal::new(settings.bayes);
    let ctx = Ctx {
        engine: StoredValue::new_local(None),
        points: RwSignal::new(settings.points.clone()),
        states: RwSignal::new(Vec::new()),
        batches: RwSignal::new(Vec::new()),
        busy: RwSignal::new(false),
        max_steps: RwSignal::new(0),
        playing: RwSignal::new(false),
        error: RwSignal::new(None),
        latency: RwSignal::new(None),
        seed: settings.seed,
    };

    {
        let settings = settings.clone();
        spawn_local(async move {
            let bytes = match fetch_bytes(&settings.weights, |got, total| {
                fetched.set(Some((got, total)));
                status.set(Status::Loading(crate::engine::progress_text(got, total)));
            })
            .await
            {
                Ok(b) => b,
                Err(e) => return status.set(Status::Failed(e)),
            };
            status.set(Status::Loading(format!(
                "Preparing the model ({} kB)…",
                bytes.len() / 1024
            )));
            match Engine::load(&bytes, settings.backend).await {
                Ok((mut engine, n)) => {
                    settings.apply_refine(&mut engine.refine);
                    backend.set(engine.backend.clone());
                    note.set(n);
                    ctx.max_steps.set(engine.refine.steps);
                    refine.set((engine.refine.steps, engine.refine.batch_size));
                    ctx.engine.set_value(Some(Rc::new(engine)));
                    ctx.reset();
                    // A shared link's step: replay the refinement up to it.
                    for _ in 0..settings.step {
                        if !ctx.step().await {
                            break;
                        }
                    }
                    status.set(Status::Ready);
                }
                Err(e) => status.set(Status::Failed(format!(
                    "Could not load the model {}: {e}",
                    settings.weights
                ))),
            }
        });
    }

    let on_click = move |ev: web_sys::MouseEvent| {
        if status.get_untracked() != Status::Ready {
            return;
        }
        let Some(target) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        let rect = target.get_bounding_client_rect();
        if rect.width() <= 0.0 || rect.height() <= 0.0 {
            return;
        }
        let px = (ev.client_x() as f64 - rect.left()) / rect.width() * W;
        let py = (ev.client_y() as f64 - rect.top()) / rect.height() * H;
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

    // The address bar always holds a link to this view.
    {
        let settings = settings.clone();
        Effect::new(move |_| {
            let points = ctx.points.get();
            let step = ctx.states.get().len().saturating_sub(1);
            if status.get() == Status::Ready {
                let mut view = settings.clone();
                view.bayes = show_bayes.get();
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

    let current = move || ctx.states.get().len().saturating_sub(1);
    let mse = move || {
        let pts = ctx.points.get();
        let states = ctx.states.get();
        let engine = ctx.engine.get_value()?;
        let theta = states.last()?;
        if pts.is_empty() {
            return None;
        }
        let sum: f64 = pts
            .iter()
            .map(|&(x, y)| (engine.task.eval(theta, x) as f64 - y as f64).powi(2))
            .sum();
        Some(sum / pts.len() as f64)
    };
    let curve_path = move |theta: &[f32], engine: &Engine| -> String {
        let mut d = String::new();
        for i in 0..=200 {
            let x = -1.0 + 2.0 * i as f64 / 200.0;
            let y = (engine.task.eval(theta, x as f32) as f64).clamp(-2.0 * Y_MAX, 2.0 * Y_MAX);
            let (px, py) = to_px(x, y);
            d += &format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" });
        }
        d
    };
    // The Bayes-optimal predictor on the visitor's points: the posterior mean of θ under the
    // task's prior θ ~ N(0, I) and noise, the best any learner can do with these points.
    let bayes_theta = move || -> Option<Vec<f32>> {
        let _ready = status.get();
        let pts = ctx.points.get();
        let engine = ctx.engine.get_value()?;
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
    };
    let bayes_mse = move || {
        let theta = bayes_theta()?;
        let engine = ctx.engine.get_value()?;
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
        let theta = bayes_theta()?;
        let engine = ctx.engine.get_value()?;
        let d = curve_path(&theta, &engine);
        Some(view! { <path class="curve bayes" data-testid="bayes-curve" d=d></path> })
    };
    let curves = move || {
        let states = ctx.states.get();
        let Some(engine) = ctx.engine.get_value() else {
            return Vec::new();
        };
        let last = states.len().saturating_sub(1);
        states
            .iter()
            .enumerate()
            .map(|(i, theta)| {
                let d = curve_path(theta, &engine);
                if i == last {
                    view! { <path class="curve current" data-testid="curve" d=d></path> }.into_any()
                } else {
                    let opacity = format!("{:.2}", 0.15 + 0.5 * i as f64 / last.max(1) as f64);
                    view! { <path class="curve past" d=d opacity=opacity></path> }.into_any()
                }
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

    view! {
            {move || match status.get() {
                Status::Loading(msg) => view! {
                    <div class="loading" data-testid="loading" role="status">
                        <div class="spinner"></div>{msg}
                        {move || fetched.get().map(|(got, total)| view! {
                            <progress data-testid="progress" max=total.unwrap_or(got).max(1).to_string()
                                value=got.to_string()></progress>
                        })}
                    </div>
                }.into_any(),
                Status::Failed(msg) => view! {
                    <div class="error" data-testid="error" role="alert">{msg}</div>
                }.into_any(),
                Status::Ready => view! { <span data-testid="ready" hidden=true></span> }.into_any(),
            }}
            {move || ctx.error.get().map(|e| view! {
                <div class="error" data-testid="error" role="alert">{e}</div>
            })}
            {move || note.get().map(|n| view! { <div class="warning" data-testid="note" role="status">{n}</div> })}
            <section class="demo">
                <h2>"1-D regression · parametric regime · observations"</h2>
                <svg
                    class="plot"
                    data-testid="plot"
                    viewBox=format!("0 0 {W} {H}")
                    role="img"
                    aria-label="Plot: click to add points; the curve is the model's fit at the current step"
                    on:click=on_click
                >
                    <rect class="frame" x="0" y="0" width=W.to_string() height=H.to_string()></rect>
                    <line class="axis" x1=zero_left.0.to_string() y1=zero_left.1.to_string()
                        x2=zero_right.0.to_string() y2=zero_right.1.to_string()></line>
                    {bayes_curve}
                    {curves}
                    {dots}
                </svg>
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
                    <div><dt>"MSE to the points"</dt><dd data-testid="mse">
                        {move || mse().map_or("—".to_string(), |m| format!("{m:.4}"))}
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
                        <input type="checkbox" data-testid="bayes-toggle"
                            prop:checked=move || show_bayes.get()
                            on:change=move |ev| show_bayes.set(event_target_checked(&ev)) />
                        " Bayes-optimal curve"
                    </label>
                    <RefineControls settings=settings.clone() points=ctx.points refine=refine />
                </div>
                {(!embed).then(|| view! {
                    <PointsIo points=ctx.points demo=Demo::Regression error=ctx.error
                        reset=Callback::new(move |_| ctx.reset()) />
                    <p class="help">
                        "Click in the plot to add points. Each step reads one mini-batch of them (highlighted) and refines the weights θ of the predictor f(x) = φ(x)·θ. Step 0 is the learned initial θ(0). The dashed curve is the Bayes-optimal fit to all your points (the posterior mean under the prior the model was trained on). The timeline goes to any step. Keys: space plays or pauses, → steps, ← goes back."
                    </p>
                })}
            </section>
    }
}
