//! `amortize`: meta-train, evaluate and export iterative amortized inference models.

/// mimalloc: Burn allocates and frees many short-lived tensor buffers per step; the system
/// allocator hands large ones back to the kernel each time (page faults on every reuse).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod baseline;
mod bench;
mod data;
mod device;
mod eval;
mod export;
mod order;
mod paper;
mod plot;
mod points;
mod run;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use amortize::model::mask::Attention;
use amortize::model::AmortizerConfig;
use amortize::refine::StepWeighting;
use amortize::regime::implicit::StateForm;
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::flow_matching::FlowTarget;
use amortize::task::linear::LinearRegressionConfig;
use amortize::task::regression::FunctionRegressionConfig;
use amortize::task::TaskConfig;
use amortize::weights::ModelBundle;
use amortize::RefineConfig;
use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use device::DeviceChoice;

/// Meta-train, evaluate and export iterative amortized inference models.
#[derive(Parser)]
#[command(name = "amortize", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Meta-train an amortizer (any regime and signal) on a regression task family.
    Train(TrainArgs),
    /// Query MSE after refinement steps on fresh tasks, beside Bayes and least squares.
    Eval(EvalArgs),
    /// Evaluate a trained model and write it, with its model card, for the web app.
    Export(ExportArgs),
    /// Check or download the MNIST / FashionMNIST files (md5-checked).
    #[command(subcommand)]
    Data(DataCommand),
    /// Time meta-training and refinement steps on the chosen backend (optionally beside PyTorch).
    Bench(BenchArgs),
    /// Draw a run's training curves and error per refinement step as SVG or PNG.
    Plot(plot::PlotArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// The configuration to time: every `train` setting (and --config) applies.
    #[command(flatten)]
    train: TrainArgs,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    warmup_iters: usize,
    /// Also time trainer/benches/pytorch_step.py with this Python (which has torch).
    #[arg(long)]
    pytorch: Option<String>,
    /// The PyTorch script.
    #[arg(long, default_value = "trainer/benches/pytorch_step.py")]
    pytorch_script: PathBuf,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Check the files under the data directory against their published md5 sums.
    Verify(DataArgs),
    /// Download missing or damaged files from the canonical mirrors, checking each md5.
    Download(DownloadArgs),
}

#[derive(Args)]
struct DataArgs {
    /// Data directory (holds mnist/ and fashion/); default $AMORTIZE_DATA or data/.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which dataset: mnist, fashion or all.
    #[arg(long, default_value = "all")]
    dataset: String,
}

#[derive(Args)]
struct DownloadArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Mirror base URL to use instead of the canonical ones (repeatable).
    #[arg(long)]
    mirror: Vec<String>,
}

#[derive(Args)]
struct DeviceArgs {
    /// Where to run: a hardware GPU if there is one (auto), the CPU, or a GPU only.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
}

/// `train`'s settings. A TOML file (`--config`) may set any of them under the flag's name
/// (`tasks-per-step = 64`); flags given on the command line override the file.
#[derive(Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TrainArgs {
    /// A TOML file of settings (keys are the flag names); flags override it.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML (usable as --config) and exit.
    #[arg(long)]
    #[serde(skip)]
    print_config: bool,
    /// Continue the run in --out from its last checkpoint, with the same random stream. Only
    /// --device, --data and --data-parallel may be given with it (a changed device count is
    /// recorded in config.json from the step after the checkpoint).
    #[arg(long)]
    #[serde(skip)]
    resume: bool,
    /// Fine-tune: start from the weights of a model written by `amortize train` (a model.amz, or
    /// a shipped one) instead of fresh ones. The architecture and task are the file's (their
    /// flags may not be given, except --n-layers to add layers, which start as the identity);
    /// k and the mini-batch size are the file's unless given.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Output directory: config.json, log.jsonl, checkpoint.bin and model.amz go here (model.amz
    /// also at every checkpoint, so a running model can be evaluated).
    #[arg(long, default_value = "runs/regression")]
    out: PathBuf,
    /// Seed of everything random in the run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Meta-training steps.
    #[arg(long, default_value_t = 20_000)]
    steps: usize,
    /// Tasks per meta-training step.
    #[arg(long, default_value_t = 64)]
    tasks_per_step: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Evaluate every N steps (0: at the end only).
    #[arg(long, default_value_t = 1000)]
    eval_every: usize,
    /// Tasks per periodic evaluation.
    #[arg(long, default_value_t = 500)]
    eval_tasks: usize,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 1000)]
    checkpoint_every: usize,
    /// Data directory for image tasks (holds mnist/ and fashion/); default $AMORTIZE_DATA or data/.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Image dataset of the projection task: mnist or fashion.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Task family: function-regression (1-D, Legendre features), linear-regression,
    /// projection (MNIST/FashionMNIST under random projections), gmm or alphabet (generation by
    /// flow matching, implicit regime), or scm (topological order of a causal graph from its
    /// samples; --context is the number of samples, --regime and --signal do not apply).
    #[arg(long, default_value = "function-regression")]
    task: String,
    /// Regime: parametric, explicit or implicit.
    #[arg(long, default_value = "parametric")]
    regime: Regime,
    /// Signal: observations, gradients or both (implicit: gradients with respect to its own predictions at the mini-batch points; not for generation).
    #[arg(long, default_value = "observations")]
    signal: Signal,
    /// Attention: causal (every context size per pass) or full (one size per iteration).
    #[arg(long, value_enum, default_value = "causal")]
    attention: AttentionArg,
    /// Previous states read beside the current one (0: Markovian).
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// How the training objective weighs the k steps: mean (the paper's: the mean of the step
    /// losses) or balanced (the mean of their logarithms, so late steps' small errors count).
    #[arg(long, default_value = "mean")]
    step_weighting: StepWeighting,
    /// Implicit regime: the share of training queries that read the whole mini-batch at a step;
    /// the others read a uniform random prefix of it. 0 (the paper's draw): every query a
    /// uniform prefix. Inference reads whole mini-batches, so a share above 0 trains more on
    /// what it scores.
    #[arg(long, default_value_t = 0.0)]
    full_context_share: f64,
    /// Devices to split each meta-step's tasks across (data parallel): GPUs 0..N of the kind
    /// --device finds (on the CPU, N replicas sharing its cores). 1: one device. With --resume,
    /// the run continues on N devices.
    #[arg(long, default_value_t = 1)]
    data_parallel: usize,
    /// Implicit regime: carried state form (logits, softmax or pre-mlp).
    #[arg(long, default_value = "logits")]
    state_form: StateForm,
    /// Explicit regime: latent size.
    #[arg(long, default_value_t = 32)]
    latent_dim: usize,
    /// Explicit regime: how the learned predictor reads the latent: concat (the paper's, input
    /// and latent summed in its first layer) or bilinear (also (A u) ⊙ (B z), so the latent
    /// scales the input's features).
    #[arg(long, default_value = "concat")]
    latent_readout: amortize::regime::explicit::LatentReadout,
    /// Legendre features p (function regression).
    #[arg(long, default_value_t = 8)]
    features: usize,
    /// Input dimension d (linear regression; default 20) or projected dimension (projection;
    /// default 100).
    #[arg(long)]
    dim: Option<usize>,
    /// SCM: variables per causal model.
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    /// SCM: mechanisms to train on: linear, rff (random Fourier features) or both.
    #[arg(long, default_value = "both")]
    mechanism: String,
    /// Observation noise σ.
    #[arg(long, default_value_t = 0.1)]
    noise_std: f64,
    /// Generation (gmm, alphabet): what the queries learn: sample (the paper's conditional flow
    /// matching, x_1 − x_0 for a fresh point x_1) or empirical (the exact field of the context's
    /// empirical distribution widened by --flow-sigma: no sampling noise, and its samples
    /// reproduce the context's shape).
    #[arg(long, value_enum, default_value = "sample")]
    flow_target: FlowTargetArg,
    /// Generation with --flow-target empirical: the widening σ (default 0.03 for letters, a
    /// three quarters of the letters' stroke jitter; 0.1 for mixtures, a third of a component's std).
    #[arg(long)]
    flow_sigma: Option<f64>,
    /// Gaussian mixtures: largest number of components (1 to 1000; the paper draws up to 100).
    #[arg(long, default_value_t = 5)]
    max_components: usize,
    /// Context points per task. Default: k × the mini-batch size (--horizon × it when given), so
    /// every refinement step reads a mini-batch of points not read before, as the paper's steps
    /// do. Fewer: the steps pass over the points in epochs, like SGD.
    #[arg(long)]
    context: Option<usize>,
    /// Query points per task.
    #[arg(long, default_value_t = 32)]
    queries: usize,
    /// Refinement steps k.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Longest refinement in training: each meta-step refines over a number of steps drawn
    /// uniformly from k to this (each on a fresh mini-batch), so the learned update stays stable
    /// past k. Default: k, every meta-step exactly k steps.
    #[arg(long)]
    horizon: Option<usize>,
    /// Mini-batch size b.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Transformer width.
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    n_heads: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = 3)]
    n_layers: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 256)]
    d_ff: usize,
    /// Where to run: a hardware GPU if there is one (auto), the CPU, or a GPU only.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
}

#[derive(Args)]
struct EvalArgs {
    /// Model files written by `amortize train` (model.amz); several make one paper-style table
    /// (rows: model × steps, columns: task × split).
    #[arg(long, required = true, num_args = 1..)]
    weights: Vec<PathBuf>,
    /// Fresh tasks to evaluate on.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Seed of the evaluation tasks.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Context points per task. Default: --steps × the mini-batch size (at least as trained), so
    /// every step reads points no earlier step read; fewer are read in epochs.
    #[arg(long)]
    context: Option<usize>,
    /// Largest number of refinement steps (default: as trained); 1, 5 and 10 are reported too.
    #[arg(long)]
    steps: Option<usize>,
    /// Points per mini-batch (default: as trained). The causal mask trains every prefix of a
    /// mini-batch, so any size up to the trained one is in distribution.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Topological-order models: variables per causal model (default: as trained; the paper
    /// also tests its 20-node model on 50 nodes).
    #[arg(long)]
    nodes: Option<usize>,
    /// Data directory for image tasks (default $AMORTIZE_DATA or data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also evaluate out of distribution where the task has a shifted version: image models on the
    /// other dataset, alphabets on the held-out letters.
    #[arg(long)]
    ood: bool,
    /// Only the out-of-distribution evaluation (implies --ood).
    #[arg(long)]
    ood_only: bool,
    /// Compare with Adam and SGD run at test time on the same tasks and mini-batches (parametric
    /// predictor; regression and classification tasks), for this many tasks.
    #[arg(long, default_value_t = 0)]
    test_time_tasks: usize,
    /// Generation: ODE method for sampling (euler, heun or rk4).
    #[arg(long, default_value = "heun")]
    ode: amortize::flow::OdeMethod,
    /// Generation: ODE steps from noise (t = 0) to data (t = 1).
    #[arg(long, default_value_t = 20)]
    ode_steps: usize,
    /// Generation: tasks whose samples are scored by exact W1/W2 (at most --tasks).
    #[arg(long, default_value_t = 64)]
    sample_tasks: usize,
    /// Generation: the tolerance δ of precision and recall (default: the task's, 3 × the jitter
    /// for letters, 2 × the component std for mixtures).
    #[arg(long)]
    delta: Option<f64>,
    /// Generation: samples generated per task for precision and recall (the web app draws 512;
    /// W1 and W2 compare the first --queries of them with as many held-out points).
    #[arg(long, default_value_t = 512)]
    samples: usize,
    /// Run the model on your own context points (CSV or .json; rows of numbers: x, y for
    /// function regression, x_1..x_d, y for linear regression, coordinates for generation) and
    /// print its predictions or samples after each reported number of steps as CSV.
    #[arg(long)]
    points: Option<PathBuf>,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    eval: EvalArgs,
    /// Name of the exported model: writes `<DIR>/<NAME>.amz` and `<DIR>/<NAME>.md`.
    #[arg(long, default_value = "regression-parametric")]
    name: String,
    /// Where to write (the web app serves `public/`).
    #[arg(long, default_value = "public/weights")]
    dir: PathBuf,
}

/// `--flow-target`.
#[derive(Clone, Copy, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FlowTargetArg {
    Sample,
    Empirical,
}

#[derive(Clone, Copy, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AttentionArg {
    Causal,
    Full,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(a) => matches
            .subcommand_matches("train")
            .ok_or_else(|| anyhow::anyhow!("no train arguments"))
            .and_then(|m| run_train(a, m)),
        Command::Eval(a) => run_eval(a).map(|_| ()),
        Command::Export(a) => run_export(a),
        Command::Data(DataCommand::Verify(a)) => run_data(a, None),
        Command::Data(DataCommand::Download(a)) => run_data(a.data, Some(a.mirror)),
        Command::Bench(a) => matches
            .subcommand_matches("bench")
            .ok_or_else(|| anyhow::anyhow!("no bench arguments"))
            .and_then(|m| run_bench(a, m)),
        Command::Plot(a) => plot::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut parts = vec!["amortize".to_string()];
    parts.extend(args.into_iter().skip(1));
    parts.join(" ")
}

/// Was `id` (a clap argument id, snake_case) given on the command line?
fn given(m: &ArgMatches, id: &str) -> bool {
    m.ids().any(|i| i.as_str() == id) && m.value_source(id) == Some(ValueSource::CommandLine)
}

/// The settings in effect: the defaults, then the `--config` file, then the flags given.
fn effective_train_args(a: TrainArgs, m: &ArgMatches) -> anyhow::Result<TrainArgs> {
    let Some(path) = a.config.clone() else {
        return Ok(a);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading --config {}", path.display()))?;
    let file: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1);
        anyhow::anyhow!(
            "{}: line {line}: {}",
            path.display(),
            e.message().trim().replace('\n', " ")
        )
    })?;
    let base = toml::Table::try_from(&a)?;
    let mut merged = base.clone();
    for (key, value) in file {
        if given(m, &key.replace('-', "_")) {
            continue; // the flag wins
        }
        // Check the key alone first, so an error names it.
        let mut single = base.clone();
        single.insert(key.clone(), value.clone());
        if let Err(e) = single.try_into::<TrainArgs>() {
            anyhow::bail!(
                "{}: `{key}`: {}",
                path.display(),
                e.message().trim().replace('\n', " ")
            );
        }
        merged.insert(key, value);
    }
    let mut out: TrainArgs = merged
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
    out.config = a.config;
    out.print_config = a.print_config;
    out.resume = a.resume;
    Ok(out)
}

fn run_train(a: TrainArgs, m: &ArgMatches) -> anyhow::Result<()> {
    if a.resume {
        let allowed = ["out", "resume", "device", "data", "data_parallel"];
        if let Some(id) = m
            .ids()
            .map(|i| i.as_str().to_string())
            // (clap's derive adds an argument group named after the struct: not a flag)
            .filter(|id| id.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .find(|id| !allowed.contains(&id.as_str()) && given(m, id))
        {
            anyhow::bail!(
                "--resume continues the run in --out with its saved configuration; drop --{} (or train into a new --out)",
                id.replace('_', "-")
            );
        }
        let files = run::RunFiles::new(&a.out);
        let text = std::fs::read_to_string(&files.config)
            .with_context(|| format!("reading {} to resume", files.config.display()))?;
        if serde_json::from_str::<order::OrderTrainConfig>(&text).is_ok() {
            anyhow::bail!(
                "{}: SCM runs do not resume; train again (the run is reproducible from its seed)",
                files.config.display()
            );
        }
        let mut cfg: train::TrainConfig = serde_json::from_str::<train::TrainConfig>(&text)
            .with_context(|| format!("{}: not a training configuration", files.config.display()))?
            .upgrade();
        if given(m, "data_parallel") {
            let before = cfg.clone();
            cfg = train::resumed_on(&cfg, &a.out, a.data_parallel)?;
            if let Some(c) = cfg.data_parallel_changes.last().filter(|_| cfg != before) {
                eprintln!(
                    "from step {} on: {} data-parallel devices (recorded in {}; the implicit regime's random prefixes are drawn per device)",
                    c.from_step,
                    c.data_parallel,
                    files.config.display()
                );
            }
        }
        return launch(&cfg, a.data.as_deref(), a.device, &a.out, true);
    }
    let a = effective_train_args(a, m)?;
    if a.print_config {
        print!("{}", toml::to_string(&a)?);
        return Ok(());
    }
    if a.task == "scm" {
        return launch_order(&a, m);
    }
    let mut cfg = train_config(&a)?;
    if let Some(path) = &a.init {
        start_from(&mut cfg, path, &set_explicitly(&a, m)?)?;
    }
    launch(&cfg, a.data.as_deref(), a.device, &a.out, false)
}

/// The settings given on the command line or in the `--config` file (flag ids, snake_case).
fn set_explicitly(a: &TrainArgs, m: &ArgMatches) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = m
        .ids()
        .map(|i| i.as_str().to_string())
        .filter(|id| given(m, id))
        .collect();
    if let Some(path) = &a.config {
        // Already read and checked by `effective_train_args`.
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --config {}", path.display()))?;
        let file: toml::Table = text
            .parse()
            .with_context(|| format!("parsing --config {}", path.display()))?;
        ids.extend(file.keys().map(|k| k.replace('-', "_")));
    }
    Ok(ids)
}

/// `train --init FILE`: the run starts from FILE's weights, so it takes FILE's architecture and
/// task, and its k and mini-batch size unless those were set. `--n-layers` may deepen the model:
/// the layers past FILE's start as the identity (see `Amortizer::deepen`).
fn start_from(
    cfg: &mut train::TrainConfig,
    path: &std::path::Path,
    explicit: &[String],
) -> anyhow::Result<()> {
    const FROM_FILE: [&str; 22] = [
        "task",
        "dataset",
        "regime",
        "signal",
        "attention",
        "history",
        "state_form",
        "latent_dim",
        "latent_readout",
        "features",
        "dim",
        "nodes",
        "mechanism",
        "noise_std",
        "flow_target",
        "flow_sigma",
        "max_components",
        "context",
        "queries",
        "d_model",
        "n_heads",
        "d_ff",
    ];
    if let Some(id) = FROM_FILE
        .iter()
        .find(|id| explicit.iter().any(|e| e == *id))
    {
        anyhow::bail!(
            "--init: the architecture and task come from {}; drop --{}",
            path.display(),
            id.replace('_', "-")
        );
    }
    let (init, bundle) = train::InitFrom::read(path)?;
    let n_layers = cfg.model.n_layers;
    cfg.model = bundle.header.model;
    cfg.task = bundle.header.task;
    if explicit.iter().any(|e| e == "n_layers") {
        anyhow::ensure!(
            n_layers >= cfg.model.n_layers,
            "--n-layers {n_layers}: {} has {} layers; --init can add layers, not remove them",
            path.display(),
            cfg.model.n_layers
        );
        cfg.model.n_layers = n_layers;
    }
    if !explicit.iter().any(|e| e == "k") {
        cfg.refine.steps = bundle.header.refine.steps;
    }
    if !explicit.iter().any(|e| e == "batch_size") {
        cfg.refine.batch_size = bundle.header.refine.batch_size;
    }
    // The file's tasks, with room for every step to read fresh points (k or --horizon steps).
    let fresh = cfg.horizon.unwrap_or(cfg.refine.steps) * cfg.refine.batch_size;
    cfg.task = cfg.task.with_context(cfg.task.context_len().max(fresh));
    cfg.init = Some(init);
    cfg.validate()
}

/// `train --task scm`: the topological-order model (paper §9.4).
fn launch_order(a: &TrainArgs, m: &ArgMatches) -> anyhow::Result<()> {
    for flag in [
        "regime",
        "signal",
        "attention",
        "history",
        "step_weighting",
        "full_context_share",
        "data_parallel",
        "state_form",
        "latent_dim",
        "latent_readout",
        "init",
        "horizon",
    ] {
        if given(m, flag) {
            anyhow::bail!(
                "--{}: does not apply to --task scm (the order model has its own architecture)",
                flag.replace('_', "-")
            );
        }
    }
    let cfg = order::OrderTrainConfig {
        seed: a.seed,
        steps: a.steps,
        tasks_per_step: a.tasks_per_step,
        lr: a.lr,
        warmup: a.warmup,
        eval_every: a.eval_every,
        eval_tasks: a.eval_tasks,
        model: amortize::model::order::OrderModelConfig {
            d_model: a.d_model,
            n_heads: a.n_heads,
            n_layers: a.n_layers,
            d_ff: a.d_ff,
        },
        task: amortize::task::scm::ScmConfig {
            nodes: a.nodes,
            samples: train_context(a)?,
            mechanisms: order::mechanisms(&a.mechanism)?,
            ..Default::default()
        },
        refine: RefineConfig::new()
            .with_steps(a.k)
            .with_batch_size(a.batch_size),
    };
    cfg.validate()?;
    let chosen = device::choose(a.device)?;
    eprintln!("device: {}", chosen.description);
    ctrlc::set_handler(|| {
        if run::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after this step (Ctrl-C again quits at once)");
    })
    .context("installing the Ctrl-C handler")?;
    let path = order::train(&cfg, &chosen.device, &a.out, &command_line())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn run_bench(b: BenchArgs, m: &ArgMatches) -> anyhow::Result<()> {
    if b.iters == 0 || b.iters > 10_000 || b.warmup_iters > 10_000 {
        anyhow::bail!("--iters must be in 1..=10000 and --warmup-iters in 0..=10000");
    }
    let a = effective_train_args(b.train, m)?;
    let mut cfg = train_config(&a)?;
    if let Some(path) = &a.init {
        // Times the file's architecture and task (speed does not depend on the weights).
        start_from(&mut cfg, path, &set_explicitly(&a, m)?)?;
    }
    cfg.validate()?;
    let sampler = data::sampler(&cfg.task, &data::data_dir(a.data.as_deref()), None)?;
    let chosen = device::choose_replicas(a.device, cfg.data_parallel)?;
    eprintln!("device: {}", chosen.description);
    let r = bench::bench(&cfg, &sampler, &chosen.replicas, b.warmup_iters, b.iters)?;
    let (k, bs) = (cfg.refine.steps, cfg.refine.batch_size);
    println!(
        "{} / {} on {}, {} tasks per step, k = {k}, b = {bs}, d_model {}, {} layers, {} parameters; {} threads; median of {} iterations\n",
        cfg.model.regime,
        cfg.model.signal,
        cfg.task.name(),
        cfg.tasks_per_step,
        cfg.model.d_model,
        cfg.model.n_layers,
        r.parameters,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        b.iters
    );
    println!("| measurement | {} |", chosen.description);
    println!("|---|---|");
    println!(
        "| meta-training step (sample, greedy k-step loss, backward, AdamW) | {:.1} ms |",
        r.train_step_ms
    );
    println!(
        "| one refinement step, all tasks, b = {bs} points (inference) | {:.2} ms |",
        r.refine_step_ms
    );
    println!(
        "| k = {k} refinement steps over {k} × {bs} points | {:.2} ms |",
        r.k_steps_ms
    );
    println!(
        "| 1 refinement step over all {} points | {:.2} ms |",
        (k * bs).min(cfg.task.context_len()),
        r.one_step_ms
    );
    if let Some(python) = &b.pytorch {
        let t = bench::pytorch(python, &b.pytorch_script, &cfg, b.warmup_iters, b.iters)?;
        println!(
            "\n| same model and step | this trainer | {} | ratio (ours / PyTorch) |\n|---|---|---|---|",
            t.framework
        );
        println!(
            "| meta-training step | {:.1} ms | {:.1} ms | {:.2}× |",
            r.train_step_ms,
            t.train_step_ms,
            r.train_step_ms / t.train_step_ms
        );
        println!(
            "| refinement step | {:.2} ms | {:.2} ms | {:.2}× |",
            r.refine_step_ms,
            t.refine_step_ms,
            r.refine_step_ms / t.refine_step_ms
        );
        if t.parameters != r.parameters {
            println!(
                "\nnote: parameter counts differ (ours {}, PyTorch {})",
                r.parameters, t.parameters
            );
        }
    }
    Ok(())
}

/// Trains (or resumes) with Ctrl-C writing a checkpoint before stopping.
fn launch(
    cfg: &train::TrainConfig,
    data: Option<&std::path::Path>,
    device: DeviceChoice,
    out: &std::path::Path,
    resume: bool,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let sampler = data::sampler(&cfg.task, &data::data_dir(data), None)?;
    let chosen = device::choose_replicas(device, cfg.max_data_parallel())?;
    eprintln!("device: {}", chosen.description);
    ctrlc::set_handler(|| {
        if run::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: writing a checkpoint after this step (Ctrl-C again quits at once)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    match train::train(
        cfg,
        &sampler,
        &chosen.replicas,
        out,
        &command_line(),
        resume,
    )? {
        train::Ended::Finished(path) => eprintln!("wrote {}", path.display()),
        train::Ended::Interrupted(step) => {
            eprintln!(
                "stopped after step {step}; checkpoint in {}; continue with: amortize train --out {} --resume",
                out.display(),
                out.display()
            );
            anyhow::bail!("interrupted");
        }
    }
    Ok(())
}

/// The generation target the settings describe (`default_sigma` when --flow-sigma is not given).
fn flow_target(a: &TrainArgs, default_sigma: f64) -> anyhow::Result<FlowTarget> {
    let target = match (a.flow_target, a.flow_sigma) {
        (FlowTargetArg::Sample, Some(_)) => {
            anyhow::bail!("--flow-sigma: applies to --flow-target empirical only")
        }
        (FlowTargetArg::Sample, None) => FlowTarget::Sample,
        (FlowTargetArg::Empirical, sigma) => FlowTarget::Empirical {
            sigma: sigma.unwrap_or(default_sigma),
        },
    };
    target
        .validate()
        .map_err(|e| anyhow::anyhow!("--flow-sigma: {e}"))?;
    Ok(target)
}

/// Checks --horizon against k: None when not given.
fn horizon(a: &TrainArgs) -> anyhow::Result<Option<usize>> {
    match a.horizon {
        Some(h) if h < a.k || h > 1000 => anyhow::bail!(
            "--horizon {h}: expected k ({}) to 1000 refinement steps",
            a.k
        ),
        h => Ok(h),
    }
}

/// Context points per task: --context, else one fresh mini-batch for every step of the longest
/// refinement trained (k or --horizon).
fn train_context(a: &TrainArgs) -> anyhow::Result<usize> {
    let steps = horizon(a)?.unwrap_or(a.k);
    Ok(a.context.unwrap_or(steps.saturating_mul(a.batch_size)))
}

/// The run configuration the settings describe.
fn train_config(a: &TrainArgs) -> anyhow::Result<train::TrainConfig> {
    let refine = RefineConfig::new()
        .with_steps(a.k)
        .with_batch_size(a.batch_size);
    refine.validate().map_err(|e| anyhow::anyhow!(e))?;
    let context = train_context(a)?;
    let task = match a.task.as_str() {
        "function-regression" => TaskConfig::FunctionRegression(
            FunctionRegressionConfig::new()
                .with_features(a.features)
                .with_noise_std(a.noise_std)
                .with_context(context)
                .with_queries(a.queries),
        ),
        "linear-regression" => TaskConfig::LinearRegression(LinearRegressionConfig {
            dim: a.dim.unwrap_or(20),
            noise_std: a.noise_std,
            context,
            queries: a.queries,
        }),
        "projection" => TaskConfig::Projection(amortize::task::mnist::ProjectionConfig {
            dataset: match a.dataset.as_str() {
                "mnist" => amortize::task::mnist::ImageSet::Mnist,
                "fashion" => amortize::task::mnist::ImageSet::Fashion,
                other => anyhow::bail!("--dataset: unknown {other:?} (expected mnist or fashion)"),
            },
            dim: a.dim.unwrap_or(100),
            context,
            queries: a.queries,
        }),
        "gmm" => TaskConfig::Gmm(amortize::task::gmm::GmmConfig {
            dim: a.dim.unwrap_or(2),
            max_components: a.max_components,
            context,
            queries: a.queries,
            field: flow_target(a, 0.1)?,
            ..Default::default()
        }),
        "alphabet" => TaskConfig::Alphabet(amortize::task::alphabet::AlphabetConfig {
            context,
            queries: a.queries,
            field: flow_target(a, 0.03)?,
            ..Default::default()
        }),
        "scm" => anyhow::bail!(
            "--task scm: only `amortize train` runs the topological-order model (not bench)"
        ),
        other => anyhow::bail!(
            "--task: unknown task {other:?} (expected function-regression, linear-regression, projection, gmm, alphabet or scm)"
        ),
    };
    task.validate().map_err(|e| anyhow::anyhow!("task: {e}"))?;
    let cfg = train::TrainConfig {
        seed: a.seed,
        steps: a.steps,
        tasks_per_step: a.tasks_per_step,
        lr: a.lr,
        warmup: a.warmup,
        eval_every: a.eval_every,
        eval_tasks: a.eval_tasks,
        checkpoint_every: a.checkpoint_every,
        model: AmortizerConfig {
            attention: match a.attention {
                AttentionArg::Causal => Attention::Causal,
                AttentionArg::Full => Attention::Full,
            },
            history: a.history,
            state_form: a.state_form,
            latent_dim: a.latent_dim,
            latent_readout: a.latent_readout,
            d_model: a.d_model,
            n_heads: a.n_heads,
            n_layers: a.n_layers,
            d_ff: a.d_ff,
            ..AmortizerConfig::new(task.dims(), a.regime, a.signal)
        },
        task,
        refine: RefineConfig::new()
            .with_steps(a.k)
            .with_batch_size(a.batch_size),
        signal_names: 2,
        horizon: horizon(a)?,
        step_weighting: a.step_weighting,
        full_context_share: a.full_context_share,
        data_parallel: a.data_parallel,
        data_parallel_changes: Vec::new(),
        init: None,
    };
    if a.init.is_none() {
        // With --init the architecture and task are the file's: `start_from` validates them.
        cfg.validate()?;
    }
    // What a resumed run reads back from config.json, so both runs use identical numbers.
    Ok(serde_json::from_str(&serde_json::to_string(&cfg)?)?)
}

fn run_data(a: DataArgs, download: Option<Vec<String>>) -> anyhow::Result<()> {
    use amortize::task::mnist::ImageSet;
    let sets = match a.dataset.as_str() {
        "mnist" => vec![ImageSet::Mnist],
        "fashion" => vec![ImageSet::Fashion],
        "all" => vec![ImageSet::Mnist, ImageSet::Fashion],
        other => anyhow::bail!("--dataset: unknown {other:?} (expected mnist, fashion or all)"),
    };
    let dir = data::data_dir(a.data.as_deref());
    for set in sets {
        let lines = match &download {
            None => data::verify(set, &dir)?,
            Some(custom) => {
                let mirrors: Vec<String> = if custom.is_empty() {
                    data::mirrors(set).iter().map(|m| m.to_string()).collect()
                } else {
                    custom.clone()
                };
                data::download(set, &dir, &mirrors)?
            }
        };
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}

fn run_export(a: ExportArgs) -> anyhow::Result<()> {
    let name = a.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!("--name: letters, digits, '-' and '_' only, got {name:?}");
    }
    if a.eval.weights.len() != 1 {
        anyhow::bail!(
            "--weights: export takes one model, got {}",
            a.eval.weights.len()
        );
    }
    let (bundle, report) = run_eval(a.eval)?;
    let Some(bundle) = bundle else {
        anyhow::bail!("export: topological-order (SCM) models have no web demo to export to");
    };
    export::export(bundle, &report, &command_line(), &a.dir, &name)?;
    eprintln!("exported {}/{name}.amz and {name}.md", a.dir.display());
    Ok(())
}

/// The task's out-of-distribution version, the image set to load instead, and what changed.
fn ood_variant(
    task: &TaskConfig,
) -> Option<(TaskConfig, Option<amortize::task::mnist::ImageSet>, String)> {
    use amortize::task::alphabet::LetterSet;
    match task {
        TaskConfig::Alphabet(c) if c.letters == LetterSet::Train => Some((
            TaskConfig::Alphabet(amortize::task::alphabet::AlphabetConfig {
                letters: LetterSet::HeldOut,
                ..c.clone()
            }),
            None,
            "OoD: held-out letters".to_string(),
        )),
        _ => task.needs_images().map(|set| {
            let other = set.other();
            (task.clone(), Some(other), format!("OoD: {other:?}"))
        }),
    }
}

fn run_eval(a: EvalArgs) -> anyhow::Result<(Option<ModelBundle>, eval::EvalReport)> {
    if a.tasks == 0 || a.tasks > 1_000_000 {
        anyhow::bail!("--tasks must be in 1..=1000000, got {}", a.tasks);
    }
    if a.ode_steps == 0 || a.ode_steps > 10_000 {
        anyhow::bail!("--ode-steps must be in 1..=10000, got {}", a.ode_steps);
    }
    if a.test_time_tasks > 10_000 {
        anyhow::bail!(
            "--test-time-tasks must be in 0..=10000, got {}",
            a.test_time_tasks
        );
    }
    let chosen = device::choose(a.device.device)?;
    eprintln!("device: {}", chosen.description);
    let mut reports = Vec::new();
    let mut first = None;
    let mut table_steps = Vec::new();
    for path in &a.weights {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if amortize::weights::is_order_model(&bytes) {
            if a.points.is_some()
                || a.test_time_tasks > 0
                || a.context.is_some()
                || a.batch_size.is_some()
            {
                anyhow::bail!(
                    "{}: a topological-order model takes neither --points, --test-time-tasks, --context nor --batch-size",
                    path.display()
                );
            }
            let bundle = amortize::weights::OrderBundle::decode(&bytes)
                .with_context(|| format!("loading {}", path.display()))?;
            let (r, s) = order::reports(
                &bundle,
                a.tasks,
                a.seed,
                a.nodes,
                a.steps,
                !a.ood_only,
                a.ood || a.ood_only,
                &chosen.device,
            )
            .with_context(|| format!("evaluating {}", path.display()))?;
            reports.extend(r);
            for s in s {
                if !table_steps.contains(&s) {
                    table_steps.push(s);
                }
            }
            continue;
        }
        if a.nodes.is_some() {
            anyhow::bail!(
                "--nodes: applies to topological-order models (--task scm); {} is not one",
                path.display()
            );
        }
        let bundle =
            ModelBundle::decode(&bytes).with_context(|| format!("loading {}", path.display()))?;
        let model = bundle
            .model(&chosen.device)
            .with_context(|| format!("loading {}", path.display()))?;
        let mut refine = bundle.header.refine.clone();
        if let Some(b) = a.batch_size {
            if b == 0 || b > 1024 {
                anyhow::bail!("--batch-size must be in 1..=1024, got {b}");
            }
            refine.batch_size = b;
        }
        let max_steps = a.steps.unwrap_or(bundle.header.refine.steps);
        if max_steps == 0 || max_steps > 10_000 {
            anyhow::bail!("--steps must be in 1..=10000, got {max_steps}");
        }
        // Every step reads a fresh mini-batch, unless --context asks for fewer points.
        let task = bundle.header.task.with_context(eval::fresh_context(
            a.context,
            bundle.header.task.context_len(),
            max_steps,
            refine.batch_size,
        )?);
        task.validate()
            .map_err(|e| anyhow::anyhow!("--context: {e}"))?;
        if refine.batch_size > task.context_len() {
            anyhow::bail!(
                "--batch-size must be in 1..={} (the context points), got {}",
                task.context_len(),
                refine.batch_size
            );
        }
        let mut steps = eval::report_steps(max_steps);
        steps.insert(0, 0);
        // The paper-style table keeps the paper's columns: 1, 5 and 10 steps (and the most).
        for s in eval::eval_steps(max_steps) {
            if !table_steps.contains(&s) {
                table_steps.push(s);
            }
        }
        if let Some(points) = &a.points {
            if a.weights.len() != 1 {
                anyhow::bail!("--points: give one --weights");
            }
            let rows = points::read(points)?;
            let steps = eval::eval_steps(max_steps);
            print!(
                "{}",
                points::run(
                    &model,
                    &task,
                    &refine,
                    &rows,
                    &steps,
                    a.seed,
                    (a.ode, a.ode_steps),
                    &chosen.device
                )?
            );
            let report = eval::EvalReport::for_points(&task, rows.len());
            return Ok((Some(bundle), report));
        }
        let mut splits: Vec<(TaskConfig, Option<amortize::task::mnist::ImageSet>, String)> =
            Vec::new();
        if !a.ood_only {
            splits.push((task.clone(), None, "ID".to_string()));
        }
        if a.ood || a.ood_only {
            match ood_variant(&task) {
                Some(v) => splits.push(v),
                None if a.weights.len() == 1 => anyhow::bail!(
                    "--ood: the {} task has no out-of-distribution version (image and alphabet tasks do)",
                    task.name()
                ),
                None => {}
            }
        }
        for (split_task, images, split) in splits {
            let sampler = data::sampler(&split_task, &data::data_dir(a.data.as_deref()), images)?;
            let mut report = eval::evaluate(
                &model,
                &sampler,
                &refine,
                a.tasks,
                a.seed,
                &steps,
                &chosen.device,
            )?;
            report.paper = paper::reference(&split_task, split != "ID", model.config());
            if bundle.header.refine.steps == 1 {
                // The paper's numbers are its iterative models'; its one-step baselines' are
                // not in the tables we quote.
                report.paper = None;
                // The paper's one-step baselines: a separately trained k = 1 model reading all
                // its points in one pass gets a row of its own.
                report.label += match model.config().regime {
                    Regime::Parametric => ", one step (hypernetwork)",
                    Regime::Explicit => ", one step (CNP)",
                    Regime::Implicit => ", one step (ICL)",
                };
            }
            report.split = split;
            if split_task.is_generative() {
                report.generation = Some(eval::generation(
                    &model,
                    &sampler,
                    &refine,
                    a.sample_tasks.clamp(1, a.tasks),
                    (a.samples, a.delta),
                    a.seed,
                    // Every field evaluation runs the steps: the paper's 1, 5, 10 (and the most).
                    &eval::eval_steps(max_steps),
                    (a.ode, a.ode_steps),
                    &chosen.device,
                )?);
            }
            if a.test_time_tasks > 0 {
                if model.config().regime != Regime::Parametric || split_task.is_generative() {
                    anyhow::bail!(
                        "--test-time-tasks: the comparison fits the parametric predictor; {} is a {} model",
                        path.display(),
                        model.config().regime
                    );
                }
                report.test_time = Some(eval::test_time(
                    &model,
                    &sampler,
                    &refine,
                    a.test_time_tasks,
                    a.seed,
                    &steps,
                    &chosen.device,
                )?);
            }
            reports.push(report);
        }
        if first.is_none() {
            first = Some(bundle);
        }
    }
    table_steps.sort();
    let table = eval::PaperTable::new(&reports, &table_steps);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "reports": reports,
                "table": table,
            }))?
        );
    } else {
        for r in &reports {
            println!("{}", r.markdown());
        }
        if reports.len() > 1 {
            println!("Paper-style table:\n\n{}", table.markdown());
        }
    }
    let report = reports.swap_remove(0);
    Ok((first, report))
}
