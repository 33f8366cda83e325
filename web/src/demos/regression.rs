//! The regression demo: the visitor draws points, and one model (or every shipped regime side
//! by side, on the same points and mini-batches) refines its fit to them step by step, beside
//! the Bayes-optimal fit.

use std::cell::RefCell;
use std::rc::Rc;

use amortize::baseline::posterior_mean;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rand::{rngs::StdRng, SeedableRng};

use crate::animation::Frames;
use crate::browser::{chosen_file, file_bytes, now, sleep};
use crate::engine::{Engine, Run, Shown};
use crate::player::{readout, Controls, Player, StepReadout, Timeline};
use crate::plot::regression::{
    add_point, curve_x, erase_point, path as curve_path, to_px, CURVE_POINTS, FRAME, H, W, Y_MAX,
};
use crate::state::{on_refine_change, set_refine_in_use, BackendChoice, Demo, Settings};
use crate::status::{ModelState, Status, StatusView};
use crate::toolbar::{checkbox, PointsIo, RefineControls};

/// Plot units between two points a drag adds.
const DRAG_GAP: f64 = 24.0;
/// Points of a preset (a random function from the prior).
const PRESET_POINTS: usize = 24;
/// Milliseconds between two steps while playing.
const PLAY_MS: u32 = 350;

/// Where a pointer event falls on the plot, in plot units.
fn plot_point(ev: &web_sys::PointerEvent) -> Option<(f64, f64)> {
    crate::plot::pointer_at(ev, W, H)
}

/// Everything the demo reads and writes; all handles are `Copy`.
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
    /// The page's settings; k, the mini-batch size and the seed change in place.
    settings: RwSignal<Settings>,
    /// Where the model stands, and its backend.
    model: ModelState,
    /// (k, mini-batch size) in use; (0, 0) until the model loads.
    refine: RwSignal<(usize, usize)>,
    /// The models' names, in panel order (once loaded): (regime, label).
    labels: RwSignal<Vec<(String, String)>>,
    /// The name of the visitor's model file on screen, if one is.
    from_file: RwSignal<Option<String>>,
    show_bayes: RwSignal<bool>,
    /// Presets drawn so far (each draws another function).
    presets: StoredValue<u64>,
}

impl Ctx {
    /// The demo's state for `settings`, before any model is loaded.
    fn new(settings: RwSignal<Settings>) -> Self {
        let (points, bayes) = settings.with_untracked(|s| (s.points.clone(), s.bayes));
        Self {
            engines: StoredValue::new_local(Vec::new()),
            runs: StoredValue::new_local(Rc::new(RefCell::new(Vec::new()))),
            points: RwSignal::new(points),
            shown: RwSignal::new(Vec::new()),
            batches: RwSignal::new(Vec::new()),
            busy: RwSignal::new(false),
            max_steps: RwSignal::new(0),
            playing: RwSignal::new(false),
            error: RwSignal::new(None),
            latency: RwSignal::new(None),
            epoch: StoredValue::new(0),
            settings,
            model: ModelState::fetching(),
            refine: RwSignal::new((0, 0)),
            labels: RwSignal::new(Vec::new()),
            from_file: RwSignal::new(None),
            show_bayes: RwSignal::new(bayes),
            presets: StoredValue::new(0),
        }
    }

    /// The seed of the mini-batch order and of the presets.
    fn seed(self) -> u64 {
        self.settings.with_untracked(|s| s.seed)
    }

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
        if engines.is_empty() {
            return false;
        }
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
        let refine = self.refine.get_untracked();
        if points.is_empty() || done >= refine.0 {
            return false;
        }
        let plan = crate::engine::plan(points.len(), refine, self.seed());
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

    /// The step on screen (tracked).
    fn current(self) -> usize {
        self.shown.get().len().saturating_sub(1)
    }

    /// Step, play, back and the timeline over this demo's steps.
    fn player(self) -> Player {
        Player::new(
            self.model.status,
            self.playing,
            PLAY_MS,
            move || Box::pin(self.step()),
            move || {
                self.back();
            },
        )
    }

    /// The refinement as the animation export walks through it.
    fn frames(self) -> Frames {
        Frames {
            last: self.max_steps,
            current: Rc::new(move || self.shown.get_untracked().len().saturating_sub(1)),
            show: Rc::new(move |s| {
                Box::pin(async move {
                    self.go(s).await;
                    self.shown.get_untracked().len() == s + 1
                })
            }),
        }
    }

    /// The models on screen from now on: their names, k and mini-batch size, a fresh refinement.
    async fn install(self, engines: Vec<Rc<Engine>>) {
        if engines.is_empty() {
            return;
        }
        self.labels.set(
            engines
                .iter()
                .map(|e| (e.regime.to_string(), e.label.clone()))
                .collect(),
        );
        self.engines.set_value(engines);
        self.use_refine();
        self.restart().await;
    }

    /// k and the mini-batch size of the settings over the first model's trained ones, from now
    /// on (the timeline ends at k).
    fn use_refine(self) {
        let Some(lead) = self.engines.get_value().first().cloned() else {
            return;
        };
        set_refine_in_use(self.settings, &lead.refine, self.refine, self.max_steps);
    }

    /// Loads the models `settings` names (one, or every shipped regime), then replays a shared
    /// link's steps; the demo is ready after that.
    async fn load(self, settings: Settings) {
        let files = settings.models();
        let mut engines = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let of = if files.len() > 1 {
                format!(" ({} of {})", i + 1, files.len())
            } else {
                String::new()
            };
            let Some(bytes) = self.model.fetch(file, &of).await else {
                return;
            };
            match Engine::load(&bytes, settings.backend).await {
                Ok((engine, n)) => {
                    if i == 0 {
                        self.model.backend.set(engine.backend.clone());
                        self.model.note.set(n);
                    }
                    engines.push(Rc::new(engine));
                }
                Err(e) => {
                    return self.model.status.set(Status::Failed(format!(
                        "Could not load the model {file}: {e}"
                    )))
                }
            }
        }
        self.install(engines).await;
        // A shared link's step: replay the refinement up to it.
        for _ in 0..settings.step {
            if !self.step().await {
                break;
            }
        }
        self.model.status.set(Status::Ready);
    }

    /// A model file of the visitor's (one written by `amortize train`, or by the Train tab),
    /// chosen in the input `ev` comes from, replaces the models on screen; when it cannot be
    /// opened, the model on screen stays.
    fn open_model_file(self, ev: &web_sys::Event, choice: BackendChoice) {
        let Some(file) = chosen_file(ev) else {
            return;
        };
        let status = self.model.status;
        spawn_local(async move {
            let name = file.name();
            let bytes = match file_bytes(&file).await {
                Ok(b) => b,
                Err(e) => return self.error.set(Some(format!("Could not read {name}: {e}"))),
            };
            status.set(Status::Loading(format!(
                "Preparing the model in {name} ({} kB)…",
                bytes.len() / 1024
            )));
            match Engine::load(&bytes, choice).await {
                Ok((engine, n)) => {
                    self.model.backend.set(engine.backend.clone());
                    self.model.note.set(n);
                    self.error.set(None);
                    self.from_file.set(Some(name));
                    self.install(vec![Rc::new(engine)]).await;
                }
                // The model on screen stays: the page keeps working.
                Err(e) => self.error.set(Some(format!("Could not open {name}: {e}"))),
            }
            status.set(Status::Ready);
        });
    }

    /// A random function from the prior the models were trained on, seen through 24 noisy
    /// points (the task sampler's own draw; those outside the plot are left out).
    fn random_function(self) {
        let engines = self.engines.get_value();
        let Some(engine) = engines.first() else {
            return;
        };
        self.presets.update_value(|n| *n += 1);
        let mut rng = StdRng::seed_from_u64(
            self.seed() ^ self.presets.get_value().wrapping_mul(0x9e37_79b9_7f4a_7c15),
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
        self.points.set(points);
        self.error.set(None);
        self.reset();
    }

    /// No points.
    fn clear(self) {
        self.points.set(Vec::new());
        self.error.set(None);
        self.reset();
    }

    /// The address bar always holds a link to this view (replaced, never reloaded).
    fn keep_url(self) {
        Effect::new(move |_| {
            let points = self.points.get();
            let step = self.shown.get().len().saturating_sub(1);
            if self.model.status.get() == Status::Ready {
                let mut view = self.settings.get();
                view.bayes = self.show_bayes.get();
                // The link names the k and mini-batch size in use, so that it reopens the same
                // refinement in every regime's view (they were trained with different sizes)
                // and after the shipped models change.
                let (k, b) = self.refine.get_untracked();
                if k > 0 {
                    view.steps.get_or_insert(k);
                    view.batch.get_or_insert(b);
                }
                crate::io::replace_query(&view.view_query(&points, step));
            }
        });
    }

    /// MSE of model m's current predictions to the points.
    fn mse(self, m: usize) -> Option<f64> {
        let pts = self.points.get();
        let shown = self.shown.get();
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
    }

    /// The Bayes-optimal predictor on the visitor's points: the posterior mean of θ under the
    /// task's prior θ ~ N(0, I) and noise, the best any learner can do with these points. One
    /// solve per change of the points, shared by the curve and the readout.
    fn bayes_fit(self) -> Memo<Option<Vec<f32>>> {
        Memo::new(move |_| -> Option<Vec<f32>> {
            let _ready = self.model.status.get();
            let pts = self.points.get();
            let engines = self.engines.get_value();
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
        })
    }

    /// MSE of the Bayes-optimal fit `theta` to the points.
    fn bayes_mse(self, theta: Option<Vec<f32>>) -> Option<f64> {
        let theta = theta?;
        let engines = self.engines.get_value();
        let engine = engines.first()?;
        let pts = self.points.get();
        let sum: f64 = pts
            .iter()
            .map(|&(x, y)| (engine.task.eval(&theta, x) as f64 - y as f64).powi(2))
            .sum();
        Some(sum / pts.len() as f64)
    }

    /// The page's title: the demo, and the model or the file on screen.
    fn title(self) -> String {
        let l = self.labels.get();
        match l.as_slice() {
            [] => "1-D regression".to_string(),
            [(_, one)] => match self.from_file.get() {
                Some(f) => format!("1-D regression · {one} · {f}"),
                None => format!("1-D regression · {one}"),
            },
            _ => "1-D regression · the regimes side by side".to_string(),
        }
    }
}

/// Drawing on the plot, by pointer events: a mouse, a finger or a pen alike (the plot has
/// `touch-action: none`, so a drag does not scroll the page). A press adds a point and a drag
/// keeps adding one every DRAG_GAP; with the eraser on, or with the right button, a press or a
/// drag removes the points it passes over.
#[derive(Clone, Copy)]
struct Pen {
    ctx: Ctx,
    eraser: RwSignal<bool>,
    /// The last point a drag added (plot units), or None when no drag is adding points.
    drawing: StoredValue<Option<(f64, f64)>>,
    erasing: StoredValue<bool>,
}

impl Pen {
    fn new(ctx: Ctx) -> Self {
        Self {
            ctx,
            eraser: RwSignal::new(false),
            drawing: StoredValue::new(None),
            erasing: StoredValue::new(false),
        }
    }

    fn add_at(self, at: (f64, f64)) {
        if add_point(self.ctx.points, self.ctx.error, at) {
            self.ctx.reset();
        }
    }

    fn erase_at(self, at: (f64, f64)) {
        if erase_point(self.ctx.points, at) {
            self.ctx.error.set(None);
            self.ctx.reset();
        }
    }

    fn down(self, ev: web_sys::PointerEvent) {
        if self.ctx.model.status.get_untracked() != Status::Ready || !ev.is_primary() {
            return;
        }
        let Some(at) = plot_point(&ev) else {
            return;
        };
        crate::plot::capture(&ev);
        if self.eraser.get_untracked() || ev.button() == 2 {
            self.erasing.set_value(true);
            self.erase_at(at);
        } else {
            self.drawing.set_value(Some(at));
            self.add_at(at);
        }
    }

    fn moved(self, ev: web_sys::PointerEvent) {
        if !ev.is_primary() || ev.buttons() == 0 {
            return;
        }
        let Some(at) = plot_point(&ev) else {
            return;
        };
        if self.erasing.get_value() {
            self.erase_at(at);
        } else if let Some((x, y)) = self.drawing.get_value() {
            if (at.0 - x).hypot(at.1 - y) >= DRAG_GAP {
                self.drawing.set_value(Some(at));
                self.add_at(at);
            }
        }
    }

    fn up(self) {
        self.drawing.set_value(None);
        self.erasing.set_value(false);
    }
}

/// The regression demo: one model, or every shipped regime side by side on the same points. A
/// change of k, the mini-batch size or the seed in `settings` refines the points again.
#[component]
pub fn RegressionDemo(settings: RwSignal<Settings>) -> impl IntoView {
    let (embed, compare) = settings.with_untracked(|s| (s.embed, s.compare));
    let ctx = Ctx::new(settings);
    spawn_local(ctx.load(settings.get_untracked()));
    let pen = Pen::new(ctx);
    ctx.keep_url();
    on_refine_change(settings, move || {
        ctx.use_refine();
        ctx.reset();
    });
    let player = ctx.player();
    player.keys();
    let bayes = ctx.bayes_fit();
    let model = ctx.model;

    view! {
            <StatusView status=model.status fetched=model.fetched error=ctx.error note=model.note />
            <section class="demo">
                <h2 data-testid="title">{move || ctx.title()}</h2>
                <div class=if compare { "panels compare" } else { "panels" }>
                    {move || ctx.labels.get().into_iter().enumerate()
                        .map(|(m, (regime, label))| view! {
                            <Panel ctx=ctx pen=pen bayes=bayes m=m regime=regime label=label compare=compare />
                        })
                        .collect_view()}
                </div>
                <Controls player=player on_reset=Callback::new(move |_| ctx.reset())>
                    {(!embed).then(|| view! { <DrawingButtons pen=pen /> })}
                </Controls>
                <Timeline player=player last=ctx.max_steps points=ctx.points
                    current=Signal::derive(move || ctx.current())
                    seek=Callback::new(move |v| spawn_local(async move { ctx.go(v).await })) />
                <Readouts ctx=ctx bayes=bayes compare=compare />
                <Options ctx=ctx />
                {(!embed).then(|| view! {
                    <PointsIo points=ctx.points demo=Demo::Regression error=ctx.error
                        reset=Callback::new(move |_| ctx.reset())
                        frames=ctx.frames() />
                    <p class="help">{HELP}</p>
                })}
            </section>
    }
}

/// What the help paragraph under the demo says.
const HELP: &str = "Click or drag in the plot to add points (mouse, finger or pen); right-click a point, or turn on the eraser and tap or drag over points, to remove them; \"Random function\" draws points from a function of the prior the models were trained on. Each step reads one mini-batch of them (highlighted) and refines the model's state: in the parametric regime the weights θ of the predictor f(x) = φ(x)·θ; in the explicit regime a latent that a learned network decodes; in the implicit regime the prediction at every x itself, which the model revises from the mini-batch and from its own errors on those points. Step 0 is the learned initial state. \"Side by side\" runs every shipped regime on the same points and mini-batches. The dashed curve is the Bayes-optimal fit to all your points (the posterior mean under the prior the models were trained on). The timeline goes to any step. Keys: space plays or pauses, → steps, ← goes back.";

/// One model's plot: its curve after every step so far (the current one on top), the
/// Bayes-optimal curve, the points (the last step's mini-batch highlighted). Clicking any
/// panel adds the point to all.
#[component]
fn Panel(
    ctx: Ctx,
    pen: Pen,
    bayes: Memo<Option<Vec<f32>>>,
    /// The model's index, in panel order.
    m: usize,
    regime: String,
    label: String,
    /// Every shipped regime side by side: each panel with its caption and MSE.
    compare: bool,
) -> impl IntoView {
    let bayes_curve = move || {
        if !ctx.show_bayes.get() {
            return None;
        }
        let theta = bayes.get()?;
        let engines = ctx.engines.get_value();
        let engine = engines.first()?;
        let ys: Vec<f32> = (0..=CURVE_POINTS)
            .map(|i| engine.task.eval(&theta, curve_x(i)))
            .collect();
        let d = curve_path(&ys);
        Some(view! { <path class="curve bayes" data-testid="bayes-curve" d=d></path> })
    };
    let (zero_left, zero_right) = (to_px(-1.0, 0.0), to_px(1.0, 0.0));
    view! {
        <figure class="panel" data-regime=regime.clone()>
            {compare.then(|| view! { <figcaption>{label.clone()}</figcaption> })}
            <svg
                class="plot"
                data-testid="plot"
                viewBox=FRAME.view_box()
                role="img"
                aria-label=format!("Plot ({label}): click or drag to add points, right-click or use the eraser to remove them; the curve is the model's fit at the current step")
                class:erasing=move || pen.eraser.get()
                on:pointerdown=move |ev| pen.down(ev)
                on:pointermove=move |ev| pen.moved(ev)
                on:pointerup=move |_| pen.up()
                on:pointercancel=move |_| pen.up()
                on:contextmenu=|ev: web_sys::MouseEvent| ev.prevent_default()
            >
                <rect class="frame" x="0" y="0" width=W.to_string() height=H.to_string()></rect>
                <line class="axis" x1=zero_left.0.to_string() y1=zero_left.1.to_string()
                    x2=zero_right.0.to_string() y2=zero_right.1.to_string()></line>
                {bayes_curve}
                {move || curves(ctx, m)}
                {move || dots(ctx)}
            </svg>
            {compare.then(|| view! {
                <p class="panel-mse">"MSE to the points: "
                    <span data-testid=format!("mse-{regime}")>
                        {move || ctx.mse(m).map_or("—".to_string(), |v| format!("{v:.4}"))}
                    </span>
                </p>
            })}
        </figure>
    }
}

/// Model m's curve after every step so far, the current one on top.
fn curves(ctx: Ctx, m: usize) -> impl IntoView {
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
}

/// The points, those of the last step's mini-batch highlighted.
fn dots(ctx: Ctx) -> impl IntoView {
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
}

/// The buttons that edit the points (not in an embed): a random function, the eraser, clear.
#[component]
fn DrawingButtons(pen: Pen) -> impl IntoView {
    let ctx = pen.ctx;
    let ready = move || ctx.model.status.get() == Status::Ready;
    view! {
        <button data-testid="preset-button" on:click=move |_| ctx.random_function()
            title="Points from a random function of the prior the models were trained on"
            disabled=move || !ready()>"Random function"</button>
        <button data-testid="eraser-toggle"
            on:click=move |_| pen.eraser.update(|e| *e = !*e)
            aria-pressed=move || pen.eraser.get().to_string()
            disabled=move || !ready()>"Eraser"</button>
        <button data-testid="clear-button" on:click=move |_| ctx.clear()
            disabled=move || !ready()>"Clear points"</button>
    }
}

/// The readouts: step, MSE of the first model and of the Bayes-optimal fit, points, step
/// latency, backend.
#[component]
fn Readouts(ctx: Ctx, bayes: Memo<Option<Vec<f32>>>, compare: bool) -> impl IntoView {
    view! {
        <dl class="readouts">
            <StepReadout current=Signal::derive(move || ctx.current()) last=ctx.max_steps />
            <div><dt>{move || if compare { "MSE to the points (first panel)" } else { "MSE to the points" }}</dt><dd data-testid="mse">
                {move || ctx.mse(0).map_or("—".to_string(), |m| format!("{m:.4}"))}
            </dd></div>
            {readout("Bayes-optimal MSE", "bayes-mse",
                move || ctx.bayes_mse(bayes.get()).map_or("—".to_string(), |m| format!("{m:.4}")))}
            {readout("Points", "points", move || ctx.points.get().len().to_string())}
            {readout("Step latency", "latency",
                move || ctx.latency.get().map_or("—".to_string(), |ms| format!("{ms:.1} ms")))}
            {readout("Backend", "backend", move || ctx.model.backend.get())}
        </dl>
    }
}

/// The options: the regime (or all side by side), the Bayes-optimal curve, k, mini-batch and
/// seed, and a model file of the visitor's.
#[component]
fn Options(ctx: Ctx) -> impl IntoView {
    let (embed, choice) = ctx.settings.with_untracked(|s| (s.embed, s.backend));
    let status = ctx.model.status;
    view! {
        <div class="options">
            <RegimeSelect ctx=ctx />
            {checkbox("bayes-toggle", ctx.show_bayes, " Bayes-optimal curve")}
            <RefineControls settings=ctx.settings refine=ctx.refine />
            {(!embed).then(|| view! {
                <label class="import">
                    "Open a model file (.amz) "
                    <input type="file" accept=".amz" data-testid="model-file"
                        disabled=move || status.get() != Status::Ready
                        on:change=move |ev| ctx.open_model_file(&ev, choice) />
                </label>
            })}
        </div>
    }
}

/// The regime shown, or every shipped one side by side: a change reloads the view with it (it
/// loads other models), keeping the points, the seed, and k and the mini-batch size where the
/// link or the controls set them.
#[component]
fn RegimeSelect(ctx: Ctx) -> impl IntoView {
    let settings = ctx.settings.get_untracked();
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
    let options = Demo::Regression
        .shipped()
        .iter()
        .map(|(r, _)| {
            let r = r.to_string();
            let sel = r == selected;
            view! { <option value=r.clone() selected=sel>{r.clone()}</option> }
        })
        .collect_view();
    let compare = settings.compare;
    let on_change = move |ev: web_sys::Event| {
        let value = event_target_value(&ev);
        let mut next = ctx.settings.get_untracked();
        next.bayes = ctx.show_bayes.get_untracked();
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
    };
    view! {
        <label>
            "Regime "
            <select data-testid="regime" on:change=on_change
                aria-label="Regime of the model shown, or all shipped regimes side by side">
                {options}
                <option value="compare" selected=compare>"side by side"</option>
            </select>
        </label>
    }
}
