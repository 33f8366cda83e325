//! Fetches the weights, picks the backend and runs refinement steps, asynchronously: on WebGPU
//! a synchronous read of a tensor panics, so every read here is `into_data_async`.

use amortize::refine::{predictions, RefineState, TaskBatch};
use amortize::regime::Regime;
use amortize::task::regression::FunctionRegression;
use amortize::task::{Episode, TaskConfig};
use amortize::weights::ModelBundle;
use amortize::{Amortizer, RefineConfig};
use burn::tensor::{Device, Tensor};

use crate::plot::regression::{curve_x, CURVE_POINTS};
use crate::state::BackendChoice;
use crate::status::Note;

/// A loaded regression model on its device, of any regime and signal.
pub struct Engine {
    model: Amortizer,
    device: Device,
    /// The task family the model was trained on (feature map, encodings).
    pub task: FunctionRegression,
    /// Steps and mini-batch size it was trained with.
    pub refine: RefineConfig,
    /// The backend in use, in words.
    pub backend: String,
    /// The model's regime and signal, in words ("parametric · observations + gradients").
    pub label: String,
    /// The regime, in words (URL value).
    pub regime: Regime,
}

/// A refinement of the visitor's points in progress: the context and queries on the device,
/// and the carried state after each step so far (the first is the learned initial state).
pub struct Run {
    batch: TaskBatch,
    states: Vec<RefineState>,
    points: usize,
}

/// What one step shows: the prediction on the curve's x and at every point.
#[derive(Clone, Debug, PartialEq)]
pub struct Shown {
    /// Predictions at `curve_x(0..=CURVE_POINTS)`.
    pub curve: Vec<f32>,
    /// Predictions at the visitor's points, in order.
    pub at_points: Vec<f32>,
}

/// The device for `choice`, and a note when WebGPU was asked for but is not there.
pub(crate) async fn pick_device(choice: BackendChoice) -> (Device, String, Option<Note>) {
    let cpu = || (Device::flex(), CPU_NAME.to_string());
    if choice == BackendChoice::Cpu {
        let (d, n) = cpu();
        return (d, n, None);
    }
    let has_gpu = web_sys::window()
        .map(|w| js_sys::Reflect::has(&w.navigator(), &"gpu".into()).unwrap_or(false))
        .unwrap_or(false);
    if !has_gpu {
        let (d, n) = cpu();
        let note = (choice == BackendChoice::WebGpu).then(|| Note {
            text: NO_WEBGPU.to_string(),
            detail: Some("navigator.gpu is not defined in this browser.".to_string()),
        });
        return (d, n, note);
    }
    match Device::wgpu_options().init_async().await {
        Ok(device) => (device, "WebGPU".to_string(), None),
        Err(e) => {
            let (d, n) = cpu();
            (
                d,
                n,
                Some(Note {
                    text: NO_WEBGPU.to_string(),
                    detail: Some(format!("WebGPU could not start: {e}")),
                }),
            )
        }
    }
}

/// What a visitor reads when WebGPU cannot run the model.
pub(crate) const NO_WEBGPU: &str =
    "WebGPU is not available in this browser; running on the CPU (WebAssembly).";

/// Name of the CPU backend, as shown.
pub(crate) const CPU_NAME: &str = "CPU (WebAssembly)";

/// Builds an engine on the backend `choice` asks for. `build` makes one on a device, warms it
/// up and returns it with the time of one timed probe (a step or a generation) in ms. With
/// `auto` and WebGPU present, both backends are built and probed and the faster one is kept
/// (WebGPU is not always faster for small models; software WebGPU rarely is): the returned
/// note says what was measured.
pub(crate) async fn build_fastest<E, F, Fut>(
    choice: BackendChoice,
    build: F,
) -> Result<(E, Option<Note>), String>
where
    F: Fn(Device, String) -> Fut,
    Fut: std::future::Future<Output = Result<(E, f64), String>>,
{
    let (device, name, note) = pick_device(choice).await;
    let on_gpu = name != CPU_NAME;
    let (engine, ms) = build(device, name).await?;
    if choice != BackendChoice::Auto || !on_gpu {
        return Ok((engine, note));
    }
    let Ok((cpu, cpu_ms)) = build(Device::flex(), CPU_NAME.to_string()).await else {
        return Ok((engine, note));
    };
    if cpu_ms < ms {
        Ok((
            cpu,
            Some(Note::plain(format!(
                "auto: on this machine the CPU took {cpu_ms:.1} ms and WebGPU {ms:.1} ms for the same work, so the CPU runs the model (backend=webgpu forces WebGPU)."
            ))),
        ))
    } else {
        Ok((
            engine,
            Some(Note::plain(format!(
                "auto: on this machine WebGPU took {ms:.1} ms and the CPU {cpu_ms:.1} ms for the same work, so WebGPU runs the model (backend=cpu forces the CPU)."
            ))),
        ))
    }
}

impl Engine {
    /// Decodes `bytes`, builds the model on the chosen backend and warms it up (shader
    /// compilation happens here, behind the loading screen).
    pub async fn load(bytes: &[u8], choice: BackendChoice) -> Result<(Self, Option<Note>), String> {
        let bundle = ModelBundle::decode(bytes).map_err(|e| e.to_string())?;
        let h = &bundle.header;
        let TaskConfig::FunctionRegression(task) = &h.task else {
            return Err(format!(
                "this model was trained on {}; the regression demo needs a function-regression model",
                h.task.name()
            ));
        };
        let regime = h.model.regime;
        let label = describe(&h.model);
        let task = FunctionRegression::new(task.clone());
        let bundle = &bundle;
        build_fastest(choice, |device: Device, backend: String| {
            let task = task.clone();
            let label = label.clone();
            async move {
                let model = bundle.model(&device).map_err(|e| e.to_string())?;
                let engine = Engine {
                    model,
                    device,
                    task,
                    refine: bundle.header.refine.clone(),
                    backend,
                    label,
                    regime,
                };
                // Warm-up (shader compilation on WebGPU), then one timed full-size step, on
                // dummy points.
                let b = engine.refine.batch_size;
                let dummy: Vec<(f32, f32)> = (0..b).map(|i| (i as f32 / b as f32, 0.0)).collect();
                let idx: Vec<usize> = (0..b).collect();
                let mut run = engine.start(&dummy)?;
                engine.step(&mut run, &idx).await?;
                let started = crate::browser::now();
                engine.step(&mut run, &idx).await?;
                let ms = crate::browser::now() - started;
                Ok((engine, ms))
            }
        })
        .await
    }

    /// An engine around a model in memory on `device` (the Train tab's model as it is now).
    pub fn from_model(
        model: Amortizer,
        device: Device,
        task: FunctionRegression,
        refine: RefineConfig,
        backend: String,
    ) -> Self {
        let label = describe(model.config());
        let regime = model.config().regime;
        Self {
            model,
            device,
            task,
            refine,
            backend,
            label,
            regime,
        }
    }

    /// A refinement of `points` at its initial state: the points are the context, and the
    /// queries are the curve's x followed by the points' x (the implicit regime carries one
    /// state per query, so they are fixed here).
    pub fn start(&self, points: &[(f32, f32)]) -> Result<Run, String> {
        let xs: Vec<f32> = points.iter().map(|p| p.0).collect();
        let ys: Vec<f32> = points.iter().map(|p| p.1).collect();
        let mut query_x: Vec<f32> = (0..=CURVE_POINTS).map(curve_x).collect();
        query_x.extend_from_slice(&xs);
        let episode = Episode {
            x_dim: 1,
            y_dim: 1,
            context_x: xs,
            context_y: ys,
            query_y: vec![0.0; query_x.len()],
            query_x,
        };
        let batch = TaskBatch::new(&[&self.task.task_data(&episode)], &self.device)?;
        let initial = RefineState::start(&self.model, &batch);
        Ok(Run {
            batch,
            states: vec![initial],
            points: points.len(),
        })
    }

    /// What the state after `step` steps of `run` predicts.
    pub async fn shown(&self, run: &Run, step: usize) -> Result<Shown, String> {
        let rs = run.states.get(step).ok_or("no such step")?;
        let p = predictions(&self.model, &rs.state, &run.batch);
        let [b, q, o] = p.dims();
        let all = read(p.reshape([b, q * o]), "a result").await?;
        let (curve, at_points) = all.split_at(CURVE_POINTS + 1);
        debug_assert_eq!(at_points.len(), run.points);
        Ok(Shown {
            curve: curve.to_vec(),
            at_points: at_points.to_vec(),
        })
    }

    /// One refinement step of `run` over the points `batch` (indices into the points), and
    /// what the new state predicts.
    pub async fn step(&self, run: &mut Run, batch: &[usize]) -> Result<Shown, String> {
        if batch.iter().any(|&i| i >= run.points) {
            return Err("a mini-batch index is past the points".to_string());
        }
        let mut next = run.states.last().ok_or("no state")?.clone();
        next.advance(&self.model, &run.batch, batch, &self.device);
        run.states.push(next);
        self.shown(run, run.states.len() - 1).await
    }
}

/// The mini-batches of a refinement of `n` points, `(k, b)`: k steps of b points. They depend
/// only on the number of points, k, b and the seed, so a view (and a shared link) is
/// reproducible.
pub fn plan(n: usize, (k, b): (usize, usize), seed: u64) -> Vec<Vec<usize>> {
    use rand::{rngs::StdRng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9e37_79b9));
    amortize::refine::schedule(n, b, k, &mut rng)
}

/// What `engine` shows for `points` before any step and after each of its k steps, over the
/// mini-batches of [`plan`].
pub async fn refine_points(
    engine: &Engine,
    points: &[(f32, f32)],
    seed: u64,
) -> Result<Vec<Shown>, String> {
    let mut run = engine.start(points)?;
    let mut shown = vec![engine.shown(&run, 0).await?];
    let refine = (engine.refine.steps, engine.refine.batch_size);
    for batch in plan(points.len(), refine, seed) {
        shown.push(engine.step(&mut run, &batch).await?);
    }
    Ok(shown)
}

/// A model's regime and signal, in words ("parametric regime · observations and gradients").
pub fn describe(config: &amortize::AmortizerConfig) -> String {
    use amortize::signal::Signal;
    let regime = config.regime;
    if regime == Regime::Implicit && !config.signal.uses_gradients() {
        return format!("{regime} regime");
    }
    let signal = match config.signal {
        Signal::Both => "observations and the mini-batch gradient".to_string(),
        Signal::Gradients => "the mini-batch gradient".to_string(),
        Signal::BothPointGradients => "observations and gradients".to_string(),
        Signal::PointGradients => "gradients".to_string(),
        s => s.to_string(),
    };
    format!("{regime} regime · {signal}")
}

impl Run {
    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.states.len() - 1
    }

    /// Back to the state before the last step.
    pub fn back(&mut self) {
        if self.states.len() > 1 {
            self.states.pop();
        }
    }
}

/// The values of `t`, read from its device asynchronously (a synchronous read panics on
/// WebGPU); `what` names them in the error.
pub async fn read<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>, String> {
    t.into_data_async()
        .await
        .map_err(|e| format!("reading {what} from the device: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))
}
