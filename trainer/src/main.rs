//! `amortize`: meta-train, evaluate and export iterative amortized inference models.

mod data;
mod device;
mod eval;
mod export;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use amortize::model::mask::Attention;
use amortize::model::AmortizerConfig;
use amortize::regime::implicit::StateForm;
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::linear::LinearRegressionConfig;
use amortize::task::regression::FunctionRegressionConfig;
use amortize::task::TaskConfig;
use amortize::weights::ModelBundle;
use amortize::RefineConfig;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

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

#[derive(Args)]
struct TrainArgs {
    /// Output directory: config.json, log.jsonl and model.amz go here.
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
    /// flow matching, implicit regime).
    #[arg(long, default_value = "function-regression")]
    task: String,
    /// Regime: parametric, explicit or implicit.
    #[arg(long, default_value = "parametric")]
    regime: Regime,
    /// Signal: observations, gradients or both (implicit: observations only).
    #[arg(long, default_value = "observations")]
    signal: Signal,
    /// Attention: causal (every context size per pass) or full (one size per iteration).
    #[arg(long, value_enum, default_value = "causal")]
    attention: AttentionArg,
    /// Previous states read beside the current one (0: Markovian).
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Implicit regime: carried state form (logits, softmax or pre-mlp).
    #[arg(long, default_value = "logits")]
    state_form: StateForm,
    /// Explicit regime: latent size.
    #[arg(long, default_value_t = 32)]
    latent_dim: usize,
    /// Legendre features p (function regression).
    #[arg(long, default_value_t = 8)]
    features: usize,
    /// Input dimension d (linear regression; default 20) or projected dimension (projection;
    /// default 100).
    #[arg(long)]
    dim: Option<usize>,
    /// Observation noise σ.
    #[arg(long, default_value_t = 0.1)]
    noise_std: f64,
    /// Context points per task.
    #[arg(long, default_value_t = 32)]
    context: usize,
    /// Query points per task.
    #[arg(long, default_value_t = 32)]
    queries: usize,
    /// Refinement steps k.
    #[arg(long, default_value_t = 10)]
    k: usize,
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
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// A model file written by `amortize train` (model.amz).
    #[arg(long)]
    weights: PathBuf,
    /// Fresh tasks to evaluate on.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Seed of the evaluation tasks.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Context points per task (default: as trained).
    #[arg(long)]
    context: Option<usize>,
    /// Largest number of refinement steps (default: as trained); 1, 5 and 10 are reported too.
    #[arg(long)]
    steps: Option<usize>,
    /// Data directory for image tasks (default $AMORTIZE_DATA or data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Evaluate an image model on the other dataset (out of distribution).
    #[arg(long)]
    ood: bool,
    /// Generation: ODE method for sampling (euler, heun or rk4).
    #[arg(long, default_value = "heun")]
    ode: amortize::flow::OdeMethod,
    /// Generation: ODE steps from noise (t = 0) to data (t = 1).
    #[arg(long, default_value_t = 20)]
    ode_steps: usize,
    /// Generation: tasks whose samples are scored by exact W1/W2 (at most --tasks).
    #[arg(long, default_value_t = 64)]
    sample_tasks: usize,
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum AttentionArg {
    Causal,
    Full,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => run_train(a),
        Command::Eval(a) => run_eval(a).map(|_| ()),
        Command::Export(a) => run_export(a),
        Command::Data(DataCommand::Verify(a)) => run_data(a, None),
        Command::Data(DataCommand::Download(a)) => run_data(a.data, Some(a.mirror)),
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

fn run_train(a: TrainArgs) -> anyhow::Result<()> {
    let task = match a.task.as_str() {
        "function-regression" => TaskConfig::FunctionRegression(
            FunctionRegressionConfig::new()
                .with_features(a.features)
                .with_noise_std(a.noise_std)
                .with_context(a.context)
                .with_queries(a.queries),
        ),
        "linear-regression" => TaskConfig::LinearRegression(LinearRegressionConfig {
            dim: a.dim.unwrap_or(20),
            noise_std: a.noise_std,
            context: a.context,
            queries: a.queries,
        }),
        "projection" => TaskConfig::Projection(amortize::task::mnist::ProjectionConfig {
            dataset: match a.dataset.as_str() {
                "mnist" => amortize::task::mnist::ImageSet::Mnist,
                "fashion" => amortize::task::mnist::ImageSet::Fashion,
                other => anyhow::bail!("--dataset: unknown {other:?} (expected mnist or fashion)"),
            },
            dim: a.dim.unwrap_or(100),
            context: a.context,
            queries: a.queries,
        }),
        "gmm" => TaskConfig::Gmm(amortize::task::gmm::GmmConfig {
            dim: a.dim.unwrap_or(2),
            context: a.context,
            queries: a.queries,
            ..Default::default()
        }),
        "alphabet" => TaskConfig::Alphabet(amortize::task::alphabet::AlphabetConfig {
            context: a.context,
            queries: a.queries,
            ..Default::default()
        }),
        other => anyhow::bail!(
            "--task: unknown task {other:?} (expected function-regression, linear-regression, projection, gmm or alphabet)"
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
    };
    cfg.validate()?;
    let sampler = data::sampler(&cfg.task, &data::data_dir(a.data.as_deref()), None)?;
    let chosen = device::choose(a.device.device)?;
    eprintln!("device: {}", chosen.description);
    let path = train::train(&cfg, &sampler, &chosen.device, &a.out, &command_line())?;
    eprintln!("wrote {}", path.display());
    Ok(())
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
    let (bundle, report) = run_eval(a.eval)?;
    export::export(bundle, &report, &command_line(), &a.dir, &name)?;
    eprintln!("exported {}/{name}.amz and {name}.md", a.dir.display());
    Ok(())
}

fn run_eval(a: EvalArgs) -> anyhow::Result<(ModelBundle, eval::EvalReport)> {
    let bytes =
        std::fs::read(&a.weights).with_context(|| format!("reading {}", a.weights.display()))?;
    let bundle =
        ModelBundle::decode(&bytes).with_context(|| format!("loading {}", a.weights.display()))?;
    let chosen = device::choose(a.device.device)?;
    eprintln!("device: {}", chosen.description);
    let model = bundle
        .model(&chosen.device)
        .with_context(|| format!("loading {}", a.weights.display()))?;
    let mut task = bundle.header.task.clone();
    if let Some(c) = a.context {
        task = task.with_context(c);
    }
    task.validate()
        .map_err(|e| anyhow::anyhow!("--context: {e}"))?;
    let ood = match (a.ood, task.needs_images()) {
        (false, _) => None,
        (true, Some(set)) => Some(set.other()),
        (true, None) => anyhow::bail!("--ood applies to image tasks only"),
    };
    let sampler = data::sampler(&task, &data::data_dir(a.data.as_deref()), ood)?;
    if a.tasks == 0 || a.tasks > 1_000_000 {
        anyhow::bail!("--tasks must be in 1..=1000000, got {}", a.tasks);
    }
    let max_steps = a.steps.unwrap_or(bundle.header.refine.steps);
    if max_steps == 0 || max_steps > 10_000 {
        anyhow::bail!("--steps must be in 1..=10000, got {max_steps}");
    }
    let mut steps = train::eval_steps(max_steps);
    steps.insert(0, 0);
    if a.ode_steps == 0 || a.ode_steps > 10_000 {
        anyhow::bail!("--ode-steps must be in 1..=10000, got {}", a.ode_steps);
    }
    let mut report = eval::evaluate(
        &model,
        &sampler,
        &bundle.header.refine,
        a.tasks,
        a.seed,
        &steps,
        &chosen.device,
    )?;
    if task.is_generative() {
        report.generation = Some(eval::generation(
            &model,
            &sampler,
            &bundle.header.refine,
            a.sample_tasks.clamp(1, a.tasks),
            a.seed,
            &steps,
            (a.ode, a.ode_steps),
            &chosen.device,
        )?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.markdown());
    }
    Ok((bundle, report))
}
