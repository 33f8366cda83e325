//! The page's settings, read from the URL. Bad or unknown parameters give a visible warning and
//! the defaults, never a blank page.

/// Which backend the visitor asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU when the browser has it, else the CPU.
    Auto,
    /// WebGPU only (falls back to the CPU with a message when unavailable).
    WebGpu,
    /// The CPU backend (Burn flex, WebAssembly).
    Cpu,
}

/// Settings from the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Requested backend.
    pub backend: BackendChoice,
    /// Weights file, relative to the site root.
    pub weights: String,
    /// Seed of the mini-batch order.
    pub seed: u64,
    /// Problems found in the URL, shown to the visitor.
    pub warnings: Vec<String>,
}

/// The shipped model.
pub const DEFAULT_WEIGHTS: &str = "weights/regression-parametric.amz";

impl Settings {
    /// Parses a query string such as `?backend=cpu&seed=3`.
    pub fn from_query(query: &str) -> Self {
        let mut s = Settings {
            backend: BackendChoice::Auto,
            weights: DEFAULT_WEIGHTS.to_string(),
            seed: 0,
            warnings: Vec::new(),
        };
        let query = query.trim_start_matches('?');
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = js_sys::decode_uri_component(value)
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            match key {
                "backend" => match value.as_str() {
                    "auto" => s.backend = BackendChoice::Auto,
                    "webgpu" => s.backend = BackendChoice::WebGpu,
                    "cpu" => s.backend = BackendChoice::Cpu,
                    _ => s.warnings.push(format!(
                        "backend={value:?} is not one of auto, webgpu, cpu; using auto"
                    )),
                },
                "seed" => match value.parse::<u64>() {
                    Ok(v) => s.seed = v,
                    Err(_) => s
                        .warnings
                        .push(format!("seed={value:?} is not a whole number; using 0")),
                },
                "weights" => {
                    if is_safe_weights_path(&value) {
                        s.weights = value;
                    } else {
                        s.warnings.push(format!(
                            "weights={value:?} must be a .amz file under weights/; using the shipped model"
                        ));
                    }
                }
                _ => s
                    .warnings
                    .push(format!("unknown URL parameter {key:?} was ignored")),
            }
        }
        s
    }
}

/// Only files under `weights/` of this site: no scheme, no host, no climbing out.
fn is_safe_weights_path(p: &str) -> bool {
    p.starts_with("weights/")
        && p.ends_with(".amz")
        && p.len() < 200
        && !p.contains("..")
        && !p.contains("//")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}
