//! Fetches the weights, picks the backend and runs refinement steps, asynchronously: on WebGPU
//! a synchronous read of a tensor panics, so every read here is `into_data_async`.

use amortize::model::StepInput;
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::regression::FunctionRegression;
use amortize::task::TaskConfig;
use amortize::weights::ModelBundle;
use amortize::{Amortizer, RefineConfig};
use burn::tensor::{Device, Tensor, TensorData};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::state::BackendChoice;

/// A loaded model on its device.
pub struct Engine {
    model: Amortizer,
    device: Device,
    /// The task family the model was trained on (feature map, encodings).
    pub task: FunctionRegression,
    /// Steps and mini-batch size it was trained with.
    pub refine: RefineConfig,
    /// The backend in use, in words.
    pub backend: String,
    /// The learned initial state θ(0).
    pub initial: Vec<f32>,
}

/// Downloads `url` as bytes.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("could not fetch {url}: {e:?}"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch gave no response")?;
    if !resp.ok() {
        return Err(format!("could not fetch {url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("reading {url}: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The device for `choice`, and a note when WebGPU was asked for but is not there.
pub(crate) async fn pick_device(choice: BackendChoice) -> (Device, String, Option<String>) {
    let cpu = || (Device::flex(), "CPU (WebAssembly)".to_string());
    if choice == BackendChoice::Cpu {
        let (d, n) = cpu();
        return (d, n, None);
    }
    let has_gpu = web_sys::window()
        .map(|w| js_sys::Reflect::has(&w.navigator(), &"gpu".into()).unwrap_or(false))
        .unwrap_or(false);
    if !has_gpu {
        let (d, n) = cpu();
        let note = (choice == BackendChoice::WebGpu)
            .then(|| "This browser has no WebGPU; running on the CPU.".to_string());
        return (d, n, note);
    }
    match Device::wgpu_options().init_async().await {
        Ok(device) => (device, "WebGPU".to_string(), None),
        Err(e) => {
            let (d, n) = cpu();
            (
                d,
                n,
                Some(format!("WebGPU could not start ({e}); running on the CPU.")),
            )
        }
    }
}

impl Engine {
    /// Decodes `bytes`, builds the model on the chosen backend and warms it up (shader
    /// compilation happens here, behind the loading screen).
    pub async fn load(
        bytes: &[u8],
        choice: BackendChoice,
    ) -> Result<(Self, Option<String>), String> {
        let bundle = ModelBundle::decode(bytes).map_err(|e| e.to_string())?;
        let h = &bundle.header;
        let TaskConfig::FunctionRegression(task) = &h.task else {
            return Err(format!(
                "this model was trained on {}; the regression demo needs a function-regression model",
                h.task.name()
            ));
        };
        if h.model.regime != Regime::Parametric
            || h.model.signal != Signal::Observations
            || h.model.history != 0
        {
            return Err(format!(
                "this model is {} with {} signals; the regression demo draws a parametric model reading observations",
                h.model.regime, h.model.signal
            ));
        }
        let task = FunctionRegression::new(task.clone());
        let (device, backend, note) = pick_device(choice).await;
        let model = bundle.model(&device).map_err(|e| e.to_string())?;
        let initial = read(model.initial_state(1)).await?;
        let engine = Engine {
            model,
            device,
            task,
            refine: bundle.header.refine.clone(),
            backend,
            initial,
        };
        // Warm-up: one full-size step on dummy points.
        let b = engine.refine.batch_size;
        let dummy: Vec<(f32, f32)> = (0..b).map(|i| (i as f32 / b as f32, 0.0)).collect();
        let idx: Vec<usize> = (0..b).collect();
        engine.step(&engine.initial, &dummy, &idx).await?;
        Ok((engine, note))
    }

    /// One refinement step: the state after reading `points[batch]`.
    pub async fn step(
        &self,
        state: &[f32],
        points: &[(f32, f32)],
        batch: &[usize],
    ) -> Result<Vec<f32>, String> {
        let xs: Vec<f32> = batch.iter().map(|&i| points[i].0).collect();
        let ys: Vec<f32> = batch.iter().map(|&i| points[i].1).collect();
        let encoded = self.task.encode_observations(&xs, &ys);
        let obs = Tensor::<3>::from_data(
            TensorData::new(encoded, [1, batch.len(), self.task.observation_dim()]),
            &self.device,
        );
        let s = Tensor::<3>::from_data(
            TensorData::new(state.to_vec(), [1, 1, state.len()]),
            &self.device,
        );
        let input = StepInput {
            obs: Some(obs),
            grads: None,
            history: Vec::new(),
            history_grads: Vec::new(),
        };
        // Causal attention: row j is the state after the first j points; the last row read
        // the whole mini-batch.
        let states = self.model.step_task(s, input);
        let [b, m, d] = states.dims();
        read(states.slice([0..b, m - 1..m, 0..d]).reshape([b, d])).await
    }
}

async fn read(t: Tensor<2>) -> Result<Vec<f32>, String> {
    t.into_data_async()
        .await
        .map_err(|e| format!("reading a result from the device: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))
}
