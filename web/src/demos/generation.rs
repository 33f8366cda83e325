//! The Gaussian-mixture demo: the visitor clicks points (or paints clusters); the implicit
//! flow-matching model generates samples from noise given those points, with k refinement steps
//! over mini-batches of them at every field evaluation; W2 between generated and drawn points per
//! step.

use std::collections::BTreeMap;
use std::rc::Rc;

use amortize::flow::{self, OdeMethod};
use amortize::metric::{precision_recall, wasserstein};
use amortize::refine::TaskBatch;
use amortize::regime::Regime;
use amortize::task::alphabet::{AlphabetConfig, HELD_OUT};
use amortize::task::flow_matching::{sample_empirical, FlowTarget};
use amortize::task::TaskConfig;
use amortize::weights::ModelBundle;
use amortize::{Amortizer, RefineConfig};
use burn::tensor::{Device, Tensor};
use leptos::prelude::*;
use leptos::task::spawn_local;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::animation::Frames;
use crate::browser::now;
use crate::engine::{build_fastest, plan, read};
use crate::io::quantize;
use crate::player::{readout, Controls, Player, StepReadout, Timeline};
use crate::plot::Frame;
use crate::state::{on_refine_change, set_refine_in_use, Demo, Settings, MAX_POINTS};
use crate::status::{ModelState, Status, StatusView};
use crate::toolbar::{checkbox, PointsIo, RefineControls};

/// Plot side in SVG units (square).
const S: f64 = 480.0;
/// Euler steps of the flow ODE per generation.
pub const ODE_STEPS: usize = 10;
/// Points a brush stroke adds around the cursor (mixture demo).
const BRUSH: usize = 8;
/// Distance between the points of a drawn stroke, in data units (alphabet demo).
const STROKE_GAP: f64 = 0.06;
/// Milliseconds between two steps while playing.
const PLAY_MS: u32 = 200;

/// The two generation demos: one component, configured here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenKind {
    /// 2-D Gaussian mixtures: click or paint clusters with a brush.
    Gmm,
    /// Letters: draw strokes.
    Alphabet,
}

impl GenKind {
    /// Visible half-width in data units (mixture means are N(0, 5² I); letters have height 2
    /// at scale up to 1.3, rotated up to 30°).
    pub const fn half_width(self) -> f64 {
        self.demo().half_width()
    }

    const fn demo(self) -> Demo {
        match self {
            GenKind::Gmm => Demo::Gmm,
            GenKind::Alphabet => Demo::Alphabet,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            GenKind::Gmm => "mixture",
            GenKind::Alphabet => "alphabet",
        }
    }

    /// The plot's frame: [-r, r]² on a square `S` units wide, r the half-width.
    fn frame(self) -> Frame {
        Frame::square(S, self.half_width())
    }
}

/// A loaded generative model on its device.
pub struct GmmEngine {
    model: Amortizer,
    device: Device,
    /// Steps and mini-batch size it was trained with.
    pub refine: RefineConfig,
    /// The backend in use, in words.
    pub backend: String,
    /// The task's shape tolerance δ: a sample within δ of a drawn point reproduces it.
    pub delta: f64,
    /// The widening σ of the optimal answer (the exact field of the drawn points).
    pub sigma: f64,
    /// Context points per task in training (a preset letter has as many).
    pub context: usize,
}

impl GmmEngine {
    /// Decodes `bytes` (a 2-D Gaussian-mixture or alphabet model, as `kind` needs), builds it
    /// on the chosen backend and warms it up behind the loading screen.
    pub async fn load(
        bytes: &[u8],
        kind: GenKind,
        choice: crate::state::BackendChoice,
    ) -> Result<(Self, Option<crate::status::Note>), String> {
        let bundle = ModelBundle::decode(bytes).map_err(|e| e.to_string())?;
        let h = &bundle.header;
        let fits = match (&h.task, kind) {
            (TaskConfig::Gmm(c), GenKind::Gmm) => c.dim == 2,
            (TaskConfig::Alphabet(_), GenKind::Alphabet) => true,
            _ => false,
        };
        if !fits {
            return Err(format!(
                "this model was trained on {}; the {} demo needs a 2-D {} model",
                h.task.name(),
                kind.noun(),
                kind.demo().key()
            ));
        }
        if h.model.regime != Regime::Implicit {
            return Err(format!(
                "this model is {}; the {} demo needs an implicit model",
                h.model.regime,
                kind.noun()
            ));
        }
        let refine = h.refine.clone();
        // Both demos' tasks are generative (checked above), so these are the task's own.
        let delta = h.task.shape_tolerance().unwrap_or(0.12);
        let sigma = h.task.optimal_sigma().unwrap_or(delta / 3.0);
        let context = h.task.context_len();
        let bundle = &bundle;
        build_fastest(choice, |device: Device, backend: String| {
            let refine = refine.clone();
            async move {
                let model = bundle.model(&device).map_err(|e| e.to_string())?;
                let engine = GmmEngine {
                    model,
                    device,
                    refine,
                    backend,
                    delta,
                    sigma,
                    context,
                };
                // Warm-up (shader compilation on WebGPU), then one timed small generation (one
                // refinement step).
                let dummy: Vec<(f32, f32)> = (0..8).map(|i| (i as f32, -(i as f32))).collect();
                let one = plan(dummy.len(), (1, engine.refine.batch_size), 0);
                engine.generate(&dummy, &one, 0, 16).await?;
                let started = now();
                engine.generate(&dummy, &one, 0, 16).await?;
                let ms = now() - started;
                Ok((engine, ms))
            }
        })
        .await
    }

    /// The visitor's points as the task's context (a function of the points and the seed, so
    /// a view is reproducible).
    fn context(&self, points: &[(f32, f32)], seed: u64) -> Result<TaskBatch, String> {
        let flat: Vec<f32> = points.iter().flat_map(|&(x, y)| [x, y]).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let data = FlowTarget::Sample.training_data(&flat, &[0.0, 0.0], 2, &mut rng);
        TaskBatch::new(&[&data], &self.device)
    }

    /// `samples` points generated from noise given `points`, every field evaluation running one
    /// refinement step per mini-batch of `steps` (the first k of the refinement's [`plan`]);
    /// the noise comes from `seed`.
    pub async fn generate(
        &self,
        points: &[(f32, f32)],
        steps: &[Vec<usize>],
        seed: u64,
        samples: usize,
    ) -> Result<Vec<f32>, String> {
        let batch = self.context(points, seed)?;
        let x0 = Tensor::from_data(
            burn::tensor::TensorData::new(noise(samples, seed), [1, samples, 2]),
            &self.device,
        );
        let path = flow::integrate(
            &self.model,
            &batch,
            x0,
            ODE_STEPS,
            OdeMethod::Euler,
            steps,
            &self.device,
        );
        let last = path.last().expect("integrate returns the start").clone();
        read(last, "samples").await
    }
}

/// Arrows per side of the field grid.
const FIELD_GRID: usize = 12;

impl GmmEngine {
    /// The learned velocity field at `grid` and flow time `t`, given `points`, after one
    /// refinement step per mini-batch of `steps` (those a generation with as many steps
    /// reads); `[vx, vy]` per grid point.
    pub async fn field(
        &self,
        points: &[(f32, f32)],
        steps: &[Vec<usize>],
        seed: u64,
        grid: &[(f32, f32)],
        t: f32,
    ) -> Result<Vec<f32>, String> {
        let batch = self.context(points, seed)?;
        let g: Vec<f32> = grid.iter().flat_map(|&(x, y)| [x, y]).collect();
        let x = Tensor::<3>::from_data(
            burn::tensor::TensorData::new(g, [1, grid.len(), 2]),
            &self.device,
        );
        let v = flow::velocity(&self.model, &batch, x, t, steps, &self.device);
        read(v, "the field").await
    }
}

/// The centres of a FIELD_GRID × FIELD_GRID grid over [-r, r]².
fn field_grid(r: f64) -> Vec<(f32, f32)> {
    let cell = 2.0 * r / FIELD_GRID as f64;
    (0..FIELD_GRID * FIELD_GRID)
        .map(|i| {
            let (ix, iy) = (i % FIELD_GRID, i / FIELD_GRID);
            (
                (-r + cell * (ix as f64 + 0.5)) as f32,
                (-r + cell * (iy as f64 + 0.5)) as f32,
            )
        })
        .collect()
}

/// SVG path of an arrow from (x1, y1) to (x2, y2), in pixels, with a small head.
fn arrow_path(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let (dx, dy) = (x2 - x1, y2 - y1);
    let len = dx.hypot(dy);
    if len < 0.5 {
        return format!("M{x1:.1},{y1:.1}L{x2:.1},{y2:.1}");
    }
    let (ux, uy) = (dx / len, dy / len);
    let head = (0.35 * len).min(7.0);
    let (hx, hy) = (x2 - ux * head, y2 - uy * head);
    let (px, py) = (-uy * head * 0.5, ux * head * 0.5);
    format!(
        "M{x1:.1},{y1:.1}L{x2:.1},{y2:.1}M{:.1},{:.1}L{x2:.1},{y2:.1}L{:.1},{:.1}",
        hx + px,
        hy + py,
        hx - px,
        hy - py
    )
}

/// Standard-normal starting points from `seed`, `[n, 2]` (on the host, so both backends and the
/// optimal answer start alike).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    use rand_distr_shim::standard_normal;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_015e);
    (0..n * 2).map(|_| standard_normal(&mut rng)).collect()
}

/// The optimal answer for `points`: `samples` points carried from the same noise as the model's
/// by the exact field of the points' empirical distribution widened by `sigma`, in the same
/// number of Euler steps.
fn optimal(points: &[(f32, f32)], sigma: f64, seed: u64, samples: usize) -> Vec<f32> {
    let flat: Vec<f32> = points.iter().flat_map(|&(x, y)| [x, y]).collect();
    sample_empirical(&flat, 2, sigma, &noise(samples, seed), ODE_STEPS)
}

/// Box–Muller, so the web crate needs no distribution crate of its own.
mod rand_distr_shim {
    use rand::Rng;
    pub fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
        let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// W2 between the generated samples and the n drawn points: the samples are split into
/// groups of n (as many whole groups as there are), each group is matched exactly to the points,
/// and the W2 of the groups are averaged (one group of n is a noisy estimate when n is small).
fn w2(samples: &[f32], points: &[(f32, f32)]) -> Option<f64> {
    let n = points.len();
    let groups = samples.len() / (2 * n.max(1));
    if n == 0 || groups == 0 {
        return None;
    }
    let flat: Vec<f32> = points.iter().flat_map(|&(x, y)| [x, y]).collect();
    let mut total = 0.0;
    for g in 0..groups {
        total += wasserstein(&samples[2 * n * g..2 * n * (g + 1)], &flat, 2, 2).ok()?;
    }
    Some(total / groups as f64)
}

/// A preset letter of `n` points (the model's context), at a random scale and rotation.
fn letter_points(c: char, n: usize, seed: u64) -> Vec<(f32, f32)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0a1f_abe7);
    let cfg = AlphabetConfig {
        context: n.clamp(1, MAX_POINTS),
        queries: 1,
        ..Default::default()
    };
    cfg.sample_letter(c, &mut rng)
        .context
        .chunks(2)
        .map(|p| (quantize(p[0]), quantize(p[1])))
        .collect()
}

/// A preset: a random mixture of 2–4 clusters from `seed`, 24 points each.
fn preset(seed: u64) -> Vec<(f32, f32)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e5e7);
    let k = rng.random_range(2..=4);
    let mut pts = Vec::new();
    for _ in 0..k {
        let (mx, my) = (rng.random_range(-8.0..8.0), rng.random_range(-8.0..8.0));
        for _ in 0..24 {
            pts.push((
                quantize(mx + 0.6 * rand_distr_shim::standard_normal(&mut rng)),
                quantize(my + 0.6 * rand_distr_shim::standard_normal(&mut rng)),
            ));
        }
    }
    pts
}

/// Generated points `[n, 2]` as SVG dots of `class` on the plot `frame`.
fn sample_dots(frame: Frame, samples: &[f32], class: &'static str, radius: f64) -> impl IntoView {
    samples
        .chunks(2)
        .map(|p| {
            let (cx, cy) = frame.pixel(p[0] as f64, p[1] as f64);
            view! { <circle class=class cx=format!("{cx:.1}") cy=format!("{cy:.1}") r=radius.to_string()></circle> }
        })
        .collect_view()
}

/// A set of samples and how it scores against the drawn points.
#[derive(Clone, Debug, PartialEq)]
struct Generation {
    samples: Vec<f32>,
    w2: Option<f64>,
    /// Share of samples within δ of a drawn point.
    precision: f64,
    /// Share of drawn points with a sample within δ.
    recall: f64,
}

impl Generation {
    fn score(samples: Vec<f32>, points: &[(f32, f32)], delta: f64) -> Self {
        let flat: Vec<f32> = points.iter().flat_map(|&(x, y)| [x, y]).collect();
        let (precision, recall) = precision_recall(&samples, &flat, 2, delta);
        Self {
            w2: w2(&samples, points),
            samples,
            precision,
            recall,
        }
    }
}

/// Everything a generation demo reads and writes; all handles are `Copy`.
#[derive(Clone, Copy)]
struct Gen {
    kind: GenKind,
    /// The page's settings; k, the mini-batch size and the seed change in place.
    settings: RwSignal<Settings>,
    /// Samples per generation.
    n_samples: usize,
    /// Where the model stands, and its backend.
    model: ModelState,
    engine: StoredValue<Option<Rc<GmmEngine>>, LocalStorage>,
    points: RwSignal<Vec<(f32, f32)>>,
    /// The generations computed so far, by refinement steps per field evaluation (each one is
    /// generated from the same noise, independently of the others, so any step can be shown
    /// first); `shown` is the step on screen (0: no samples yet).
    cache: RwSignal<BTreeMap<usize, Generation>>,
    shown: RwSignal<usize>,
    latency: RwSignal<Option<f64>>,
    max_steps: RwSignal<usize>,
    /// (k, mini-batch size) in use; (0, 0) until the model loads.
    refine: RwSignal<(usize, usize)>,
    /// Field arrows: the flow time they are drawn at (None: off), and (x, y, vx, vy) per arrow.
    field_t: RwSignal<Option<f32>>,
    arrows: RwSignal<Vec<(f32, f32, f32, f32)>>,
    field_ticket: StoredValue<u64>,
    busy: RwSignal<bool>,
    playing: RwSignal<bool>,
    brush: RwSignal<bool>,
    /// The preset letter on the plot (alphabet), for the held-out marker.
    letter: RwSignal<Option<char>>,
    painting: RwSignal<bool>,
    /// The last point of the stroke being drawn (alphabet): a new one every STROKE_GAP.
    last: StoredValue<Option<(f64, f64)>>,
    error: RwSignal<Option<String>>,
    /// Steps to replay once the model is loaded (a shared link's step); then Ready.
    replay: RwSignal<Option<usize>>,
    show_optimal: RwSignal<bool>,
    /// Bumped by every reset, so that a generation for older points or settings is dropped.
    epoch: StoredValue<u64>,
}

impl Gen {
    /// The demo's state for `settings`, before the model is loaded.
    fn new(settings: RwSignal<Settings>, kind: GenKind) -> Self {
        let s = settings.get_untracked();
        Self {
            kind,
            settings,
            n_samples: s.samples,
            model: ModelState::fetching(),
            engine: StoredValue::new_local(None),
            points: RwSignal::new(s.points.clone()),
            cache: RwSignal::new(BTreeMap::new()),
            shown: RwSignal::new(0),
            latency: RwSignal::new(None),
            max_steps: RwSignal::new(0),
            refine: RwSignal::new((0, 0)),
            field_t: RwSignal::new(s.field),
            arrows: RwSignal::new(Vec::new()),
            field_ticket: StoredValue::new(0),
            busy: RwSignal::new(false),
            playing: RwSignal::new(false),
            brush: RwSignal::new(false),
            letter: RwSignal::new(None),
            painting: RwSignal::new(false),
            last: StoredValue::new(None),
            error: RwSignal::new(None),
            replay: RwSignal::new(None),
            show_optimal: RwSignal::new(s.optimal),
            epoch: StoredValue::new(0),
        }
    }

    /// The seed of the mini-batch order, the noise and the presets.
    fn seed(self) -> u64 {
        self.settings.with_untracked(|s| s.seed)
    }

    /// The first `s` mini-batches of the refinement of the points on screen (k and the
    /// mini-batch size in use, the seed).
    fn steps(self, s: usize) -> Vec<Vec<usize>> {
        let n = self.points.with_untracked(|p| p.len());
        let mut plan = plan(n, self.refine.get_untracked(), self.seed());
        plan.truncate(s);
        plan
    }

    /// k and the mini-batch size of the settings over the model's trained ones, from now on
    /// (the timeline ends at k).
    fn use_refine(self) {
        let Some(e) = self.engine.get_value() else {
            return;
        };
        set_refine_in_use(self.settings, &e.refine, self.refine, self.max_steps);
    }

    /// Loads the model `settings` names; the step of a shared link is replayed after that.
    async fn load(self, settings: Settings) {
        let Some(bytes) = self.model.fetch(&settings.weights, "").await else {
            return;
        };
        match GmmEngine::load(&bytes, self.kind, settings.backend).await {
            Ok((e, n)) => {
                self.model.backend.set(e.backend.clone());
                self.model.note.set(n);
                self.engine.set_value(Some(Rc::new(e)));
                self.use_refine();
                self.replay.set(Some(settings.step));
            }
            Err(e) => self.model.status.set(Status::Failed(format!(
                "Could not load the model {}: {e}",
                settings.weights
            ))),
        }
    }

    /// Once the model is loaded: shows the step of a shared link, then the demo is ready.
    fn replay_when_loaded(self) {
        Effect::new(move |_| {
            if let Some(n) = self.replay.get() {
                self.replay.update_untracked(|r| *r = None);
                spawn_local(async move {
                    let k = self.max_steps.get_untracked();
                    self.go(n.min(k)).await;
                    self.model.status.set(Status::Ready);
                });
            }
        });
    }

    /// The address bar always holds a link to this view (replaced, never reloaded).
    fn keep_url(self) {
        Effect::new(move |_| {
            let pts = self.points.get();
            let s = self.shown.get();
            let mut view = self.settings.get();
            view.field = self.field_t.get();
            view.optimal = self.show_optimal.get();
            if self.model.status.get() == Status::Ready {
                crate::io::replace_query(&view.view_query(&pts, s));
            }
        });
    }

    /// Back to step 0, no samples (e.g. after the points, k or the seed changed).
    fn reset(self) {
        self.playing.set(false);
        self.epoch.update_value(|e| *e += 1);
        self.cache.set(BTreeMap::new());
        self.shown.set(0);
    }

    /// Shows step `s` (generating it first unless it is cached); false when it cannot.
    async fn go(self, s: usize) -> bool {
        let Some(e) = self.engine.get_value() else {
            return false;
        };
        let pts = self.points.get_untracked();
        if s > self.refine.get_untracked().0 || (s > 0 && pts.is_empty()) {
            return false;
        }
        if s == 0 || self.cache.with_untracked(|c| c.contains_key(&s)) {
            self.shown.set(s);
            return true;
        }
        if self.busy.get_untracked() {
            return false;
        }
        self.busy.set(true);
        let epoch = self.epoch.get_value();
        let started = now();
        let result = e
            .generate(&pts, &self.steps(s), self.seed(), self.n_samples)
            .await;
        let ms = now() - started;
        self.busy.set(false);
        match result {
            Ok(samples) => {
                if self.epoch.get_value() != epoch {
                    return false;
                }
                self.latency.set(Some(ms));
                let g = Generation::score(samples, &pts, e.delta);
                self.cache.update(|c| {
                    c.insert(s, g);
                });
                self.shown.set(s);
                true
            }
            Err(err) => {
                self.error.set(Some(err));
                false
            }
        }
    }

    /// Back one step (nothing at step 0 or while a step is generated).
    fn back(self) {
        let s = self.shown.get_untracked();
        if self.busy.get_untracked() || s == 0 {
            return;
        }
        self.playing.set(false);
        spawn_local(async move {
            self.go(s - 1).await;
        });
    }

    /// Shows step `s` (the timeline); play stops.
    fn scrub(self, s: usize) {
        self.playing.set(false);
        spawn_local(async move {
            self.go(s).await;
        });
    }

    /// Step, play, back and the timeline over this demo's steps.
    fn player(self) -> Player {
        Player::new(
            self.model.status,
            self.playing,
            PLAY_MS,
            move || Box::pin(async move { self.go(self.shown.get_untracked() + 1).await }),
            move || self.back(),
        )
    }

    /// The refinement as the animation export walks through it.
    fn frames(self) -> Frames {
        Frames {
            last: self.max_steps,
            current: Rc::new(move || self.shown.get_untracked()),
            show: Rc::new(move |s| {
                self.playing.set(false);
                Box::pin(self.go(s))
            }),
        }
    }

    /// The field at the shown step (k = 0: the learned initial field), recomputed when the
    /// step, the points, t, k, the mini-batch size or the seed change; a stale answer is
    /// dropped.
    fn follow_field(self) {
        let r = self.kind.half_width();
        Effect::new(move |_| {
            let t = self.field_t.get();
            let s = self.shown.get();
            let pts = self.points.get();
            self.refine.track();
            self.settings.track();
            let ready = self.model.status.get() == Status::Ready;
            let ticket = self.field_ticket.get_value() + 1;
            self.field_ticket.set_value(ticket);
            let (Some(t), Some(e), true) = (t, self.engine.get_value(), ready && !pts.is_empty())
            else {
                self.arrows.set(Vec::new());
                return;
            };
            let (steps, seed) = (self.steps(s), self.seed());
            spawn_local(async move {
                let grid = field_grid(r);
                match e.field(&pts, &steps, seed, &grid, t).await {
                    Ok(v) if self.field_ticket.get_value() == ticket => self.arrows.set(
                        grid.iter()
                            .zip(v.chunks(2))
                            .map(|(&(x, y), v)| (x, y, v[0], v[1]))
                            .collect(),
                    ),
                    Ok(_) => {}
                    Err(err) => self.error.set(Some(err)),
                }
            });
        });
    }

    /// The data coordinates under the pointer, when inside the plot.
    fn locate(self, ev: &web_sys::MouseEvent) -> Option<(f64, f64)> {
        let r = self.kind.half_width();
        let (px, py) = crate::plot::pointer_at(ev, S, S)?;
        let (x, y) = self.kind.frame().data(px, py);
        (x.is_finite() && y.is_finite() && x.abs() <= r && y.abs() <= r).then_some((x, y))
    }

    /// Adds a point at (x, y), or a brush's worth around it.
    fn add_at(self, (x, y): (f64, f64), spread: bool) {
        let n = self.points.get_untracked().len();
        let want = if spread { BRUSH } else { 1 };
        if n + want > MAX_POINTS {
            self.error
                .set(Some(format!("At most {MAX_POINTS} points.")));
            return;
        }
        let mut rng = StdRng::seed_from_u64(self.seed() ^ (n as u64 + 1).wrapping_mul(0x2545_f491));
        let r = self.kind.half_width() as f32;
        self.points.update(|p| {
            for i in 0..want {
                let (dx, dy) = if i == 0 && !spread {
                    (0.0, 0.0)
                } else {
                    (
                        0.5 * rand_distr_shim::standard_normal(&mut rng),
                        0.5 * rand_distr_shim::standard_normal(&mut rng),
                    )
                };
                p.push((
                    quantize((x as f32 + dx).clamp(-r, r)),
                    quantize((y as f32 + dy).clamp(-r, r)),
                ));
            }
        });
        self.reset();
    }

    /// A press on the plot (pointer events: a mouse, a finger or a pen draws alike; the plot
    /// has `touch-action: none`, so a drag on it does not scroll the page, and it captures the
    /// pointer while it is down).
    fn down(self, ev: web_sys::PointerEvent) {
        if self.model.status.get_untracked() != Status::Ready || !ev.is_primary() {
            return;
        }
        let Some(at) = self.locate(&ev) else {
            return;
        };
        crate::plot::capture(&ev);
        self.painting.set(true);
        self.last.set_value(Some(at));
        self.add_at(at, self.kind == GenKind::Gmm && self.brush.get_untracked());
    }

    /// A drag: the brush paints (mixture), a stroke adds a point every STROKE_GAP (alphabet).
    fn moved(self, ev: web_sys::PointerEvent) {
        if !self.painting.get_untracked() || !ev.is_primary() || ev.buttons() & 1 != 1 {
            return;
        }
        let Some(at) = self.locate(&ev) else {
            return;
        };
        match self.kind {
            GenKind::Gmm if self.brush.get_untracked() => self.add_at(at, true),
            GenKind::Gmm => {}
            GenKind::Alphabet => {
                let far = self
                    .last
                    .get_value()
                    .is_none_or(|(x, y)| (at.0 - x).hypot(at.1 - y) >= STROKE_GAP);
                if far {
                    self.last.set_value(Some(at));
                    self.add_at(at, false);
                }
            }
        }
    }

    /// No points.
    fn clear(self) {
        self.points.set(Vec::new());
        self.letter.set(None);
        self.error.set(None);
        self.reset();
    }

    /// A random mixture.
    fn preset(self) {
        let n = self.points.get_untracked().len() as u64;
        self.points.set(preset(self.seed().wrapping_add(n)));
        self.error.set(None);
        self.reset();
    }

    /// The letter `c` at a random scale and rotation, as many points as the model's context.
    fn pick_letter(self, c: char) {
        let n = self.points.get_untracked().len() as u64;
        let size = self.engine.get_value().map_or(80, |e| e.context);
        self.points
            .set(letter_points(c, size, self.seed().wrapping_add(n)));
        self.letter.set(Some(c));
        self.error.set(None);
        self.reset();
    }

    /// A random letter.
    fn random_letter(self) {
        let n = self.points.get_untracked().len() as u64;
        let mut rng = StdRng::seed_from_u64(self.seed().wrapping_add(n) ^ 0x1e77e5);
        self.pick_letter((b'A' + rng.random_range(0..26u8)) as char);
    }

    /// `pick` of the generation on screen, with `digits` decimals ("—" without one).
    fn shown_text(self, pick: fn(&Generation) -> Option<f64>, digits: usize) -> String {
        let s = self.shown.get();
        self.cache
            .with(|c| c.get(&s).and_then(pick))
            .map_or("—".to_string(), |v| format!("{v:.digits$}"))
    }

    /// The optimal answer (toggle): the exact field of the drawn points, from the same noise;
    /// recomputed when the points or the seed change (it does not depend on the step).
    fn optimal_answer(self) -> Memo<Option<Generation>> {
        Memo::new(move |_| {
            if !self.show_optimal.get() || self.model.status.get() != Status::Ready {
                return None;
            }
            let pts = self.points.get();
            let seed = self.settings.with(|s| s.seed);
            let e = self.engine.get_value()?;
            (!pts.is_empty()).then(|| {
                let samples = optimal(&pts, e.sigma, seed, self.n_samples);
                Generation::score(samples, &pts, e.delta)
            })
        })
    }
}

/// A generation demo: the Gaussian mixture or the alphabet (`kind`). A change of k, the
/// mini-batch size or the seed in `settings` generates again from step 0.
#[component]
pub fn GenDemo(settings: RwSignal<Settings>, kind: GenKind) -> impl IntoView {
    let embed = settings.with_untracked(|s| s.embed);
    let g = Gen::new(settings, kind);
    spawn_local(g.load(settings.get_untracked()));
    g.replay_when_loaded();
    g.keep_url();
    on_refine_change(settings, move || {
        g.use_refine();
        g.reset();
    });
    let player = g.player();
    player.keys();
    let optimal = g.optimal_answer();
    g.follow_field();
    let model = g.model;

    view! {
        <StatusView status=model.status fetched=model.fetched error=g.error note=model.note />
        <section class="demo">
            <h2>{match kind {
                GenKind::Gmm => "Gaussian mixture · implicit regime · flow matching",
                GenKind::Alphabet => "Alphabet · implicit regime · flow matching",
            }}</h2>
            <GenPlot g=g optimal=optimal />
            <Controls player=player on_reset=Callback::new(move |_| g.reset())>
                {(!embed).then(|| view! { <PointButtons g=g /> })}
            </Controls>
            <Timeline player=player last=g.max_steps points=g.points
                current=Signal::derive(move || g.shown.get())
                seek=Callback::new(move |v| g.scrub(v)) />
            <GenOptions g=g />
            <GenReadouts g=g optimal=optimal />
            {(!embed).then(|| view! {
                <PointsIo points=g.points demo=kind.demo() error=g.error
                    reset=Callback::new(move |_| g.reset())
                    frames=g.frames() />
            })}
            <p class="help" hidden=embed>
                {match kind {
                    GenKind::Gmm => "Click to add points, or turn on the brush and drag to paint clusters. ",
                    GenKind::Alphabet => "Drag to draw a letter's strokes (a point every few pixels), or pick a letter: A–Z at a random scale and rotation; the letters marked held out were never seen in training. ",
                }}
                "Step s generates "
                {g.n_samples}" samples from noise by integrating the learned velocity field ("{ODE_STEPS}
                " Euler steps); every evaluation of the field runs s refinement steps over mini-batches of your points (the mini-batch of step s is highlighted). W2 matches the samples, in groups as large as your set of points, to your points and averages over the groups. Precision is the share of samples within δ of one of your points (a blob around your shape scores low), recall the share of your points with a sample within δ (δ = 0.12 for letters, 3 × the jitter of the letters the model learned from; 0.6 for mixtures). The optimal answer (green, toggle) carries the same noise with the exact field of your points' empirical distribution, slightly widened: what a perfect amortizer would draw. Drag the timeline to jump to any step. Keys: space plays or pauses, → steps, ← goes back."
            </p>
        </section>
    }
}

/// The plot: the field arrows, the generated samples, the optimal answer and the points (the
/// shown step's mini-batch highlighted).
#[component]
fn GenPlot(g: Gen, optimal: Memo<Option<Generation>>) -> impl IntoView {
    let kind = g.kind;
    let (frame, r) = (kind.frame(), kind.half_width());
    let generated = move || {
        let s = g.shown.get();
        g.cache.with(|c| {
            c.get(&s)
                .map(|gen| sample_dots(frame, &gen.samples, "sample", 2.5))
        })
    };
    let optimal_view = move || {
        optimal
            .get()
            .map(|o| sample_dots(frame, &o.samples, "optimal", 2.0))
    };
    let (ax0, ax1) = (frame.pixel(-r, 0.0), frame.pixel(r, 0.0));
    let (ay0, ay1) = (frame.pixel(0.0, -r), frame.pixel(0.0, r));
    view! {
        <svg
            class="plot square"
            data-testid="plot"
            viewBox=frame.view_box()
            role="img"
            aria-label=match kind {
                GenKind::Gmm => "Plot: click to add points or paint with the brush; small blue dots are samples the model generates from noise given your points",
                GenKind::Alphabet => "Plot: drag to draw a letter's strokes; small blue dots are samples the model generates from noise given your points",
            }
            on:pointerdown=move |ev| g.down(ev)
            on:pointermove=move |ev| g.moved(ev)
            on:pointerup=move |_| g.painting.set(false)
            on:pointercancel=move |_| g.painting.set(false)
        >
            <rect class="frame" x="0" y="0" width=S.to_string() height=S.to_string()></rect>
            <line class="axis" x1=ax0.0.to_string() y1=ax0.1.to_string() x2=ax1.0.to_string() y2=ax1.1.to_string()></line>
            <line class="axis" x1=ay0.0.to_string() y1=ay0.1.to_string() x2=ay1.0.to_string() y2=ay1.1.to_string()></line>
            {move || arrows(g)}
            {generated}
            {optimal_view}
            {move || dots(g)}
        </svg>
    }
}

/// The field arrows: each the displacement over a tenth of the flow (one Euler step), capped
/// at a grid cell.
fn arrows(g: Gen) -> impl IntoView {
    let (frame, r) = (g.kind.frame(), g.kind.half_width());
    let cap = 0.9 * 2.0 * r / FIELD_GRID as f64;
    g.arrows
        .get()
        .into_iter()
        .map(|(x, y, vx, vy)| {
            let (mut dx, mut dy) = (0.1 * vx as f64, 0.1 * vy as f64);
            let len = dx.hypot(dy);
            if len > cap {
                dx *= cap / len;
                dy *= cap / len;
            }
            let (x1, y1) = frame.pixel(x as f64, y as f64);
            let (x2, y2) = frame.pixel(x as f64 + dx, y as f64 + dy);
            view! { <path class="arrow" d=arrow_path(x1, y1, x2, y2)></path> }
        })
        .collect_view()
}

/// The drawn points, those of the shown step's mini-batch highlighted.
fn dots(g: Gen) -> impl IntoView {
    let frame = g.kind.frame();
    let s = g.shown.get();
    // The mini-batches follow k, the mini-batch size and the seed (the points are read below).
    g.refine.track();
    g.settings.track();
    let batch = g.steps(s).pop().unwrap_or_default();
    g.points
        .get()
        .into_iter()
        .enumerate()
        .map(|(i, (x, y))| {
            let (cx, cy) = frame.pixel(x as f64, y as f64);
            let class = if batch.contains(&i) { "point in-batch" } else { "point" };
            view! { <circle class=class cx=format!("{cx:.1}") cy=format!("{cy:.1}") r="4"></circle> }
        })
        .collect_view()
}

/// The buttons that edit the points (not in an embed): clear, then a random mixture and the
/// brush, or a random letter and the letter picker.
#[component]
fn PointButtons(g: Gen) -> impl IntoView {
    let ready = move || g.model.status.get() == Status::Ready;
    view! {
        <button data-testid="clear-button" on:click=move |_| g.clear()
            disabled=move || !ready()>"Clear points"</button>
        {(g.kind == GenKind::Gmm).then(|| view! {
            <button data-testid="preset-button" on:click=move |_| g.preset()
                disabled=move || !ready()>"Random mixture"</button>
            <label class="toggle">
                <input type="checkbox" data-testid="brush-toggle"
                    prop:checked=move || g.brush.get()
                    on:change=move |ev| g.brush.set(event_target_checked(&ev)) />
                "Brush (paint clusters)"
            </label>
        })}
        {(g.kind == GenKind::Alphabet).then(|| view! {
            <button data-testid="preset-button" on:click=move |_| g.random_letter()
                disabled=move || !ready()>"Random letter"</button>
            <label class="toggle">
                "Letter "
                <select data-testid="letter-select"
                    disabled=move || !ready()
                    on:change=move |ev| {
                        if let Some(c) = event_target_value(&ev).chars().next() {
                            g.pick_letter(c);
                        }
                    }>
                    <option value="" selected=true disabled=true>"A–Z…"</option>
                    {('A'..='Z').map(|c| {
                        let label = if HELD_OUT.contains(&c) {
                            format!("{c} (held out)")
                        } else {
                            c.to_string()
                        };
                        view! { <option value=c.to_string()>{label}</option> }
                    }).collect_view()}
                </select>
            </label>
        })}
    }
}

/// The options: the field arrows and their flow time, the optimal answer, k, mini-batch and
/// seed.
#[component]
fn GenOptions(g: Gen) -> impl IntoView {
    let field_t = g.field_t;
    view! {
        <div class="options">
            <label>
                <input type="checkbox" data-testid="field-toggle"
                    prop:checked=move || field_t.get().is_some()
                    on:change=move |ev| {
                        field_t.set(event_target_checked(&ev).then_some(0.5));
                    } />
                " Field arrows at t = "
                <span data-testid="field-t-value">
                    {move || field_t.get().map_or("—".to_string(), |t| format!("{t:.1}"))}
                </span>
            </label>
            <input type="range" data-testid="field-t" min="0" max="1" step="0.1"
                aria-label="Flow time t of the field arrows"
                prop:value=move || format!("{:.1}", field_t.get().unwrap_or(0.5))
                disabled=move || field_t.get().is_none()
                on:input=move |ev| {
                    if let Ok(t) = event_target_value(&ev).parse::<f32>() {
                        if (0.0..=1.0).contains(&t) {
                            field_t.set(Some(t));
                        }
                    }
                } />
            {checkbox("optimal-toggle", g.show_optimal, " Optimal answer (exact field of your points)")}
            <RefineControls settings=g.settings refine=g.refine />
        </div>
    }
}

/// The readouts: step, W2, precision and recall of the samples on screen and of the optimal
/// answer, the letter (alphabet), points, samples, step latency, backend.
#[component]
fn GenReadouts(g: Gen, optimal: Memo<Option<Generation>>) -> impl IntoView {
    let optimal_text = move |pick: fn(&Generation) -> Option<f64>| {
        move || {
            optimal
                .get()
                .and_then(|o| pick(&o))
                .map_or("—".to_string(), |v| format!("{v:.3}"))
        }
    };
    view! {
        <dl class="readouts">
            <StepReadout current=Signal::derive(move || g.shown.get()) last=g.max_steps />
            {readout("W2 to your points", "w2", move || g.shown_text(|o| o.w2, 4))}
            <div><dt>"Precision"</dt><dd data-testid="precision"
                title="Share of samples within δ of one of your points">{move || g.shown_text(|o| Some(o.precision), 3)}</dd></div>
            <div><dt>"Recall"</dt><dd data-testid="recall"
                title="Share of your points with a sample within δ">{move || g.shown_text(|o| Some(o.recall), 3)}</dd></div>
            <div><dt>"Optimal: W2 · precision · recall"</dt><dd>
                <span data-testid="optimal-w2">{optimal_text(|o| o.w2)}</span>" · "
                <span data-testid="optimal-precision">{optimal_text(|o| Some(o.precision))}</span>" · "
                <span data-testid="optimal-recall">{optimal_text(|o| Some(o.recall))}</span>
            </dd></div>
            {(g.kind == GenKind::Alphabet).then(|| view! {
                <div><dt>"Letter"</dt><dd data-testid="letter">{move || match g.letter.get() {
                    Some(c) if HELD_OUT.contains(&c) => format!("{c} · held out (out of distribution)"),
                    Some(c) => format!("{c} · seen in training"),
                    None => "drawn".to_string(),
                }}</dd></div>
            })}
            {readout("Points", "points", move || g.points.get().len().to_string())}
            <div><dt>"Samples"</dt><dd data-testid="samples">{g.n_samples}</dd></div>
            {readout("Step latency", "latency",
                move || g.latency.get().map_or("—".to_string(), |ms| format!("{ms:.0} ms")))}
            {readout("Backend", "backend", move || g.model.backend.get())}
        </dl>
    }
}
