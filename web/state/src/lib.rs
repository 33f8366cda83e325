//! The web app's settings and their URL form: [`Settings::from_query`] reads a link (bad or
//! unknown parameters give a warning naming them and the defaults, never a blank page), and
//! [`Settings::view_query`] writes one back. Pure (no browser, no Burn backend), so that it is
//! tested natively; the web crate re-exports it from `state.rs`.

pub mod points;

#[cfg(test)]
mod tests;

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

/// Which demo the page shows (`?demo=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// 1-D function regression (parametric regime).
    Regression,
    /// 2-D Gaussian mixtures (implicit regime, flow matching).
    Gmm,
    /// Letters as 2-D point clouds (implicit regime, flow matching).
    Alphabet,
    /// Meta-training a regression amortizer live in the page.
    Train,
}

impl Demo {
    /// The URL value.
    pub fn key(self) -> &'static str {
        match self {
            Demo::Regression => "regression",
            Demo::Gmm => "gmm",
            Demo::Alphabet => "alphabet",
            Demo::Train => "train",
        }
    }

    /// Most points and the plot's extent.
    pub fn limits(self) -> (usize, crate::points::Bounds) {
        let (x, y) = match self {
            Demo::Regression | Demo::Train => ((-1.0, 1.0), (-3.5, 3.5)),
            Demo::Gmm | Demo::Alphabet => {
                let r = self.half_width() as f32;
                ((-r, r), (-r, r))
            }
        };
        (MAX_POINTS, crate::points::Bounds { x, y })
    }

    /// Half-width of the plot in data units: square for the generation demos (mixture means are
    /// N(0, 5² I); letters have height 2 at scale up to 1.3, rotated up to 30°).
    pub const fn half_width(self) -> f64 {
        match self {
            Demo::Gmm => 12.0,
            Demo::Alphabet => 2.0,
            // The regression plot is not square; its x range is [-1, 1].
            Demo::Regression | Demo::Train => 1.0,
        }
    }

    /// The shipped model of the demo ("" for the Train tab, which starts from scratch).
    pub fn default_weights(self) -> &'static str {
        self.shipped().first().map_or("", |s| s.1)
    }

    /// The demo's shipped models: (regime, file), the default first.
    pub fn shipped(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Demo::Regression => &[
                ("parametric", DEFAULT_WEIGHTS),
                ("implicit", "weights/regression-implicit.amz"),
            ],
            Demo::Gmm => &[("implicit", "weights/gmm-implicit.amz")],
            Demo::Alphabet => &[("implicit", "weights/alphabet-implicit.amz")],
            Demo::Train => &[],
        }
    }

    /// The shipped file of `regime`, if there is one for this demo.
    pub fn shipped_file(self, regime: &str) -> Option<&'static str> {
        self.shipped()
            .iter()
            .find(|(r, _)| *r == regime)
            .map(|(_, f)| *f)
    }
}

/// Settings from the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The demo shown.
    pub demo: Demo,
    /// Requested backend.
    pub backend: BackendChoice,
    /// Weights file, relative to the site root.
    pub weights: String,
    /// Seed of the mini-batch order.
    pub seed: u64,
    /// Points given in the URL (`pts=x,y;x,y`), checked against the demo's plot.
    pub points: Vec<(f32, f32)>,
    /// Refinement step to show once the model is loaded (`step=`).
    pub step: usize,
    /// Embed mode (`embed=1`): only the plot and minimal controls, fitting an iframe.
    pub embed: bool,
    /// Samples a generation demo draws per view (`samples=`, `SAMPLES_RANGE`).
    pub samples: usize,
    /// Refinement steps k (`k=`, 1..=`MAX_STEP`); the model's trained k when absent.
    pub steps: Option<usize>,
    /// Points per mini-batch (`batch=`, 1..=`MAX_BATCH`); the model's trained size when absent.
    pub batch: Option<usize>,
    /// Regression: the Bayes-optimal curve overlaid (`bayes=0` hides it).
    pub bayes: bool,
    /// Generation demos: the velocity field drawn as arrows at this flow time (`field=t`,
    /// t in [0, 1]); no arrows when absent.
    pub field: Option<f32>,
    /// Generation demos: the optimal answer overlaid (`optimal=1`).
    pub optimal: bool,
    /// Every shipped regime of the demo side by side on the same points (`compare=1`).
    pub compare: bool,
    /// The Train tab's settings (`preset=`, `tasks=`, `lr=`).
    pub train: TrainSettings,
    /// Problems found in the URL, shown to the visitor.
    pub warnings: Vec<String>,
}

/// What the Train tab trains: a preset's model and meta-batch, optionally another number of tasks
/// per meta-step or peak learning rate.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// The preset (`amortize::meta::PRESETS`).
    pub preset: amortize::meta::Preset,
    /// Tasks per meta-step over the preset's (1..=`MAX_TASKS`).
    pub tasks: Option<usize>,
    /// Peak learning rate over the preset's (in (0, `MAX_LR`]).
    pub lr: Option<f64>,
    /// The regime trained (`regime=`): parametric (the default) or implicit.
    pub regime: amortize::regime::Regime,
}

/// The regimes the Train tab trains (the explicit regime needs far longer to leave its prior).
pub const TRAIN_REGIMES: [amortize::regime::Regime; 2] = [
    amortize::regime::Regime::Parametric,
    amortize::regime::Regime::Implicit,
];

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            preset: amortize::meta::PRESETS[0],
            tasks: None,
            lr: None,
            regime: amortize::regime::Regime::Parametric,
        }
    }
}

impl TrainSettings {
    /// The URL's part for these settings (empty for the defaults).
    pub fn query(&self) -> String {
        let mut q = String::new();
        if self.preset != amortize::meta::PRESETS[0] {
            q += &format!("&preset={}", self.preset.name);
        }
        if let Some(t) = self.tasks {
            q += &format!("&tasks={t}");
        }
        if let Some(lr) = self.lr {
            q += &format!("&lr={lr}");
        }
        if self.regime != TRAIN_REGIMES[0] {
            q += &format!("&regime={}", self.regime);
        }
        q
    }

    /// Tasks per meta-step in use.
    pub fn tasks_per_step(&self) -> usize {
        self.tasks.unwrap_or(self.preset.tasks_per_step)
    }

    /// Peak learning rate in use.
    pub fn peak_lr(&self) -> f64 {
        self.lr.unwrap_or(self.preset.lr)
    }
}

/// Most tasks per meta-step the Train tab takes.
pub const MAX_TASKS: usize = 256;
/// Largest peak learning rate the Train tab takes.
pub const MAX_LR: f64 = 0.1;

/// Most refinement steps a URL may ask for (the models are trained with k ≤ this).
pub const MAX_STEP: usize = 100;
/// Most points a visitor can place in any demo (enforced in the code, not only in the UI).
pub const MAX_POINTS: usize = 256;

/// Samples a generation demo may draw per view, and the default.
pub const SAMPLES_RANGE: std::ops::RangeInclusive<usize> = 16..=2048;
pub const DEFAULT_SAMPLES: usize = 512;

/// Largest mini-batch a URL may ask for (no demo holds more points).
pub const MAX_BATCH: usize = 256;

/// The shipped model.
pub const DEFAULT_WEIGHTS: &str = "weights/regression-parametric.amz";

impl Settings {
    /// Parses a query string such as `?backend=cpu&seed=3`.
    pub fn from_query(query: &str) -> Self {
        let mut s = Settings::defaults();
        let mut raw_points: Option<String> = None;
        let mut regime: Option<String> = None;
        let query = query.trim_start_matches('?');
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let (key, value) = (key.as_ref(), value.into_owned());
            match key {
                "pts" => raw_points = Some(value),
                "regime" => regime = Some(value),
                "backend" | "demo" | "seed" | "weights" => s.read_source(key, value),
                "preset" | "tasks" | "lr" => s.read_train(key, &value),
                "step" | "samples" | "k" | "batch" | "field" => s.read_view(key, &value),
                "embed" | "bayes" | "optimal" | "compare" => s.read_flag(key, &value),
                _ => s
                    .warnings
                    .push(format!("unknown URL parameter {key:?} was ignored")),
            }
        }
        if s.demo == Demo::Train {
            s.train_rules(&mut regime);
        }
        if let Some(r) = regime {
            s.choose_regime(&r);
        }
        if s.weights.is_empty() {
            s.weights = s.demo.default_weights().to_string();
        }
        if s.compare && s.demo.shipped().len() < 2 {
            s.compare = false;
            s.warnings.push(format!(
                "compare=1: the {} demo ships one regime only",
                s.demo.key()
            ));
        }
        if let Some(raw) = raw_points {
            let (max, bounds) = s.demo.limits();
            match crate::points::decode_points(&raw, max, bounds) {
                Ok(p) => s.points = p,
                Err(e) => s
                    .warnings
                    .push(format!("pts: {e}; starting without points")),
            }
        }
        s
    }

    /// The settings of a URL without parameters.
    fn defaults() -> Self {
        Settings {
            demo: Demo::Regression,
            backend: BackendChoice::Auto,
            weights: String::new(),
            seed: 0,
            points: Vec::new(),
            step: 0,
            embed: false,
            samples: DEFAULT_SAMPLES,
            steps: None,
            batch: None,
            bayes: true,
            field: None,
            optimal: false,
            compare: false,
            train: TrainSettings::default(),
            warnings: Vec::new(),
        }
    }

    /// `value` as a `T` that `ok` accepts; otherwise None and the warning "`key`=`value` is not
    /// `what`; `instead`".
    fn parsed<T: std::str::FromStr>(
        &mut self,
        key: &str,
        value: &str,
        ok: impl Fn(&T) -> bool,
        what: &str,
        instead: &str,
    ) -> Option<T> {
        match value.parse::<T>() {
            Ok(v) if ok(&v) => Some(v),
            _ => {
                self.warnings
                    .push(format!("{key}={value:?} is not {what}; {instead}"));
                None
            }
        }
    }

    /// `value` as a whole number in `range`; otherwise None and a warning that says so and
    /// what is done `instead`.
    fn whole(
        &mut self,
        key: &str,
        value: &str,
        range: std::ops::RangeInclusive<usize>,
        instead: &str,
    ) -> Option<usize> {
        let what = format!("a whole number in {}..={}", range.start(), range.end());
        self.parsed(key, value, |v| range.contains(v), &what, instead)
    }

    /// `backend=`, `demo=`, `seed=` and `weights=`: what runs, and on what.
    fn read_source(&mut self, key: &str, value: String) {
        match key {
            "backend" => match value.as_str() {
                "auto" => self.backend = BackendChoice::Auto,
                "webgpu" => self.backend = BackendChoice::WebGpu,
                "cpu" => self.backend = BackendChoice::Cpu,
                _ => self.warnings.push(format!(
                    "backend={value:?} is not one of auto, webgpu, cpu; using auto"
                )),
            },
            "demo" => match value.as_str() {
                "regression" => self.demo = Demo::Regression,
                "gmm" => self.demo = Demo::Gmm,
                "alphabet" => self.demo = Demo::Alphabet,
                "train" => self.demo = Demo::Train,
                _ => self.warnings.push(format!(
                    "demo={value:?} is not one of regression, gmm, alphabet, train; showing regression"
                )),
            },
            "seed" => {
                if let Some(v) = self.parsed(key, &value, |_| true, "a whole number", "using 0") {
                    self.seed = v;
                }
            }
            _ => {
                if is_safe_weights_path(&value) {
                    self.weights = value;
                } else {
                    self.warnings.push(format!(
                        "weights={value:?} must be a .amz file under weights/; using the shipped model"
                    ));
                }
            }
        }
    }

    /// `preset=`, `tasks=` and `lr=`: what the Train tab trains.
    fn read_train(&mut self, key: &str, value: &str) {
        match key {
            "preset" => match amortize::meta::Preset::named(value) {
                Some(p) => self.train.preset = p,
                None => self.warnings.push(format!(
                    "preset={value:?} is not one of {}; using {}",
                    amortize::meta::PRESETS.map(|p| p.name).join(", "),
                    amortize::meta::PRESETS[0].name
                )),
            },
            "tasks" => {
                if let Some(v) = self.whole(key, value, 1..=MAX_TASKS, "using the preset's") {
                    self.train.tasks = Some(v);
                }
            }
            _ => {
                let what = format!("a learning rate in (0, {MAX_LR}]");
                let ok = |v: &f64| *v > 0.0 && *v <= MAX_LR;
                if let Some(v) = self.parsed(key, value, ok, &what, "using the preset's") {
                    self.train.lr = Some(v);
                }
            }
        }
    }

    /// `step=`, `samples=`, `k=`, `batch=` and `field=`: the numbers of the view.
    fn read_view(&mut self, key: &str, value: &str) {
        match key {
            "step" => {
                if let Some(v) = self.whole(key, value, 0..=MAX_STEP, "showing step 0") {
                    self.step = v;
                }
            }
            "samples" => {
                let instead = format!("using {DEFAULT_SAMPLES}");
                if let Some(v) = self.whole(key, value, SAMPLES_RANGE, &instead) {
                    self.samples = v;
                }
            }
            "k" => {
                if let Some(v) = self.whole(key, value, 1..=MAX_STEP, "using the model's k") {
                    self.steps = Some(v);
                }
            }
            "batch" => {
                let instead = "using the model's mini-batch size";
                if let Some(v) = self.whole(key, value, 1..=MAX_BATCH, instead) {
                    self.batch = Some(v);
                }
            }
            _ => {
                let (what, instead) = ("a flow time in [0, 1]", "no field arrows");
                if let Some(t) = self.parsed(key, value, |t| (0.0..=1.0).contains(t), what, instead)
                {
                    self.field = Some(t);
                }
            }
        }
    }

    /// `embed=`, `bayes=`, `optimal=` and `compare=`: the view's switches.
    fn read_flag(&mut self, key: &str, value: &str) {
        let Some(on) = flag(key, value, &mut self.warnings) else {
            return;
        };
        match key {
            "embed" => self.embed = on,
            "bayes" => self.bayes = on,
            "optimal" => self.optimal = on,
            _ => self.compare = on,
        }
    }

    /// The Train tab trains its own model: `regime=` picks the regime it trains (and is taken
    /// out of `regime`), and the shipped models' parameters do not apply.
    fn train_rules(&mut self, regime: &mut Option<String>) {
        if let Some(r) = regime.take() {
            match r.parse::<amortize::regime::Regime>() {
                Ok(r) if TRAIN_REGIMES.contains(&r) => self.train.regime = r,
                _ => self.warnings.push(format!(
                    "regime={r:?}: the Train tab trains parametric or implicit; training parametric"
                )),
            }
        }
        let given: Vec<&str> = [
            (self.compare, "compare="),
            (!self.weights.is_empty(), "weights="),
        ]
        .into_iter()
        .filter_map(|(on, key)| on.then_some(key))
        .collect();
        if !given.is_empty() {
            self.warnings.push(format!(
                "{} ignored: the Train tab trains a model of its own",
                given.join(", ")
            ));
        }
        self.compare = false;
        self.weights.clear();
    }

    /// `regime=r`: the demo's shipped model of that regime, unless `weights=` named one.
    fn choose_regime(&mut self, r: &str) {
        match self.demo.shipped_file(r) {
            Some(_) if !self.weights.is_empty() => self.warnings.push(format!(
                "regime={r:?} and weights= both given; using the weights"
            )),
            Some(file) => self.weights = file.to_string(),
            None => self.warnings.push(format!(
                "regime={r:?} has no shipped model for this demo (shipped: {}); using {}",
                self.demo
                    .shipped()
                    .iter()
                    .map(|(r, _)| *r)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.demo.shipped().first().map_or("none", |s| s.0)
            )),
        }
    }

    /// The query string of this view: demo, settings, points and step (a shareable link).
    pub fn view_query(&self, points: &[(f32, f32)], step: usize) -> String {
        let mut q = self.tab_query(self.demo);
        if self.demo == Demo::Train {
            q += &self.train.query();
        }
        if self.weights != self.demo.default_weights() {
            match self.demo.shipped().iter().find(|(_, f)| *f == self.weights) {
                Some((r, _)) => q += &format!("&regime={r}"),
                None => q += &format!("&weights={}", self.weights),
            }
        }
        if self.compare {
            q += "&compare=1";
        }
        if self.embed {
            q += "&embed=1";
        }
        if self.samples != DEFAULT_SAMPLES {
            q += &format!("&samples={}", self.samples);
        }
        if let Some(k) = self.steps {
            q += &format!("&k={k}");
        }
        if let Some(b) = self.batch {
            q += &format!("&batch={b}");
        }
        if !self.bayes {
            q += "&bayes=0";
        }
        if let Some(t) = self.field {
            q += &format!("&field={t:.1}");
        }
        if self.optimal {
            q += "&optimal=1";
        }
        if !points.is_empty() {
            q += &format!("&pts={}", crate::points::encode_points(points));
        }
        if step > 0 {
            q += &format!("&step={step}");
        }
        q
    }

    /// The weights files to load, in panel order: the chosen model, then with `compare` the
    /// demo's other shipped regimes.
    pub fn models(&self) -> Vec<String> {
        let mut files = vec![self.weights.clone()];
        if self.compare {
            for (_, f) in self.demo.shipped() {
                if *f != self.weights {
                    files.push(f.to_string());
                }
            }
        }
        files
    }

    /// The URL's k and mini-batch size over the model's trained ones.
    pub fn apply_refine(&self, refine: &mut amortize::refine::RefineConfig) {
        if let Some(k) = self.steps {
            refine.steps = k;
        }
        if let Some(b) = self.batch {
            refine.batch_size = b;
        }
    }

    /// A refinement control's new value, clamped into the URL's limits (k in 1..=`MAX_STEP`,
    /// the mini-batch size in 1..=`MAX_BATCH`); returns the value now set, as the control
    /// shows it.
    pub fn set(&mut self, control: Control) -> String {
        match control {
            Control::Steps(k) => {
                let k = k.clamp(1, MAX_STEP);
                self.steps = Some(k);
                k.to_string()
            }
            Control::Batch(b) => {
                let b = b.clamp(1, MAX_BATCH);
                self.batch = Some(b);
                b.to_string()
            }
            Control::Seed(seed) => {
                self.seed = seed;
                seed.to_string()
            }
        }
    }

    /// The query string of this view with another demo (backend and seed kept).
    pub fn tab_query(&self, demo: Demo) -> String {
        let backend = match self.backend {
            BackendChoice::Auto => None,
            BackendChoice::WebGpu => Some("webgpu"),
            BackendChoice::Cpu => Some("cpu"),
        };
        let mut q = format!("?demo={}", demo.key());
        if let Some(b) = backend {
            q += &format!("&backend={b}");
        }
        if self.seed != 0 {
            q += &format!("&seed={}", self.seed);
        }
        q
    }
}

/// What the refinement controls change, in place (the view keeps its model and points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Refinement steps k (`k=`).
    Steps(usize),
    /// Points per mini-batch (`batch=`).
    Batch(usize),
    /// Seed of the mini-batch order and of the generation noise (`seed=`).
    Seed(u64),
}

/// A 0/1 URL switch; anything else is named in a warning and leaves the default.
fn flag(key: &str, value: &str, warnings: &mut Vec<String>) -> Option<bool> {
    match value {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => {
            warnings.push(format!("{key}={value:?} is not 0 or 1; ignored"));
            None
        }
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
