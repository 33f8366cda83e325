//! The command line: every command's arguments (clap), and `train`'s settings layered from their
//! defaults, a `--config` TOML file and the flags given.

use std::path::PathBuf;

use amortize::refine::StepWeighting;
use amortize::regime::implicit::StateForm;
use amortize::regime::Regime;
use amortize::signal::Signal;
use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::device::DeviceChoice;

/// Meta-train, evaluate and export iterative amortized inference models.
#[derive(Parser)]
#[command(name = "amortize", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    Plot(PlotArgs),
}

#[derive(Args)]
pub struct BenchArgs {
    /// The configuration to time: every `train` setting (and --config) applies.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    pub warmup_iters: usize,
    /// Also time trainer/benches/pytorch_step.py with this Python (which has torch).
    #[arg(long)]
    pub pytorch: Option<String>,
    /// The PyTorch script.
    #[arg(long, default_value = "trainer/benches/pytorch_step.py")]
    pub pytorch_script: PathBuf,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Check the files under the data directory against their published md5 sums.
    Verify(DataArgs),
    /// Download missing or damaged files from the canonical mirrors, checking each md5.
    Download(DownloadArgs),
    /// Write an embedding set for `--task embeddings` made from MNIST or FashionMNIST: each image
    /// through a fixed random projection (a stand-in for an image encoder such as DINOv2).
    Embed(EmbedArgs),
}

#[derive(Args)]
pub struct EmbedArgs {
    /// Data directory: reads <data>/mnist or fashion, writes <data>/embeddings/<name>-train and
    /// -test.safetensors; default $AMORTIZE_DATA or data/.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which images: mnist or fashion.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Feature size d (the projection's output).
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Seed of the projection.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The set's name (what `train --embeddings` reads); default <dataset>-proj<dim>.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Args)]
pub struct DataArgs {
    /// Data directory (holds mnist/ and fashion/); default $AMORTIZE_DATA or data/.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which dataset: mnist, fashion or all.
    #[arg(long, default_value = "all")]
    pub dataset: String,
}

#[derive(Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Mirror base URL to use instead of the canonical ones (repeatable).
    #[arg(long)]
    pub mirror: Vec<String>,
}

#[derive(Args)]
pub struct DeviceArgs {
    /// Where to run: a hardware GPU if there is one (auto), the CPU, or a GPU only.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
}

/// `train`'s settings. A TOML file (`--config`) may set any of them under the flag's name
/// (`tasks-per-step = 64`); flags given on the command line override the file.
#[derive(Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainArgs {
    /// A TOML file of settings (keys are the flag names); flags override it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML (usable as --config) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// Continue the run in --out from its last checkpoint, with the same random stream. Only
    /// --device, --data and --data-parallel may be given with it (a changed device count is
    /// recorded in config.json from the step after the checkpoint).
    #[arg(long)]
    #[serde(skip)]
    pub resume: bool,
    /// Fine-tune: start from the weights of a model written by `amortize train` (a model.amz, or
    /// a shipped one) instead of fresh ones. The architecture and task are the file's (their
    /// flags may not be given, except --n-layers to add layers, which start as the identity);
    /// k and the mini-batch size are the file's unless given.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Output directory: config.json, log.jsonl, checkpoint.bin and model.amz go here (model.amz
    /// also at every checkpoint, so a running model can be evaluated).
    #[arg(long, default_value = "runs/regression")]
    pub out: PathBuf,
    /// Seed of everything random in the run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Meta-training steps.
    #[arg(long, default_value_t = 20_000)]
    pub steps: usize,
    /// Tasks per meta-training step.
    #[arg(long, default_value_t = 64)]
    pub tasks_per_step: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Evaluate every N steps (0: at the end only).
    #[arg(long, default_value_t = 1000)]
    pub eval_every: usize,
    /// Tasks per periodic evaluation.
    #[arg(long, default_value_t = 500)]
    pub eval_tasks: usize,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    /// Data directory for image tasks (holds mnist/ and fashion/); default $AMORTIZE_DATA or data/.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Image dataset of the projection task: mnist or fashion.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Embedding set of the embeddings task (files <data>/embeddings/<name>-train.safetensors and
    /// -test.safetensors, e.g. from `amortize data embed`); default imagenet. Its feature size
    /// is --dim (default 768, DINOv2 ViT-B/14).
    #[arg(long)]
    pub embeddings: Option<String>,
    /// Task family: function-regression (1-D, Legendre features), linear-regression,
    /// projection (MNIST/FashionMNIST under random projections), embeddings (classification
    /// over precomputed image embeddings, --embeddings), gmm or alphabet (generation by
    /// flow matching, implicit regime), or scm (topological order of a causal graph from its
    /// samples; --context is the number of samples, --regime and --signal do not apply).
    #[arg(long, default_value = "function-regression")]
    pub task: String,
    /// Regime: parametric, explicit or implicit.
    #[arg(long, default_value = "parametric")]
    pub regime: Regime,
    /// Signal: observations, gradients or both (implicit: gradients with respect to its own predictions at the mini-batch points; not for generation).
    #[arg(long, default_value = "observations")]
    pub signal: Signal,
    /// Attention: causal (every context size per pass) or full (one size per iteration).
    #[arg(long, value_enum, default_value = "causal")]
    pub attention: AttentionArg,
    /// Previous states read beside the current one (0: Markovian).
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// How the training objective weighs the k steps: mean (the paper's: the mean of the step
    /// losses) or balanced (the mean of their logarithms, so late steps' small errors count).
    #[arg(long, default_value = "mean")]
    pub step_weighting: StepWeighting,
    /// Implicit regime: the share of training queries that read the whole mini-batch at a step;
    /// the others read a uniform random prefix of it. 0 (the paper's draw): every query a
    /// uniform prefix. Inference reads whole mini-batches, so a share above 0 trains more on
    /// what it scores.
    #[arg(long, default_value_t = 0.0)]
    pub full_context_share: f64,
    /// Devices to split each meta-step's tasks across (data parallel): GPUs 0..N of the kind
    /// --device finds (on the CPU, N replicas sharing its cores). 1: one device. With --resume,
    /// the run continues on N devices.
    #[arg(long, default_value_t = 1)]
    pub data_parallel: usize,
    /// The most tasks a device runs through the model at once: a device's share of a meta-step
    /// above it runs as near-equal micro-batches one after another, gradients summed (the same
    /// meta-step; the implicit regime's random prefixes are drawn per micro-batch). The CPU
    /// backend slows faster than linearly beyond about 40 tasks at once, so 32 suits it; 0: the
    /// whole share at once (on a GPU, where bigger batches cost little more).
    #[arg(long, default_value_t = 32)]
    pub micro_batch: usize,
    /// Implicit regime: carried state form (logits, softmax or pre-mlp).
    #[arg(long, default_value = "logits")]
    pub state_form: StateForm,
    /// Explicit regime: latent size.
    #[arg(long, default_value_t = 32)]
    pub latent_dim: usize,
    /// Explicit regime: how the learned predictor reads the latent: concat (the paper's, input
    /// and latent summed in its first layer) or bilinear (also (A u) ⊙ (B z), so the latent
    /// scales the input's features).
    #[arg(long, default_value = "concat")]
    pub latent_readout: amortize::regime::explicit::LatentReadout,
    /// Legendre features p (function regression).
    #[arg(long, default_value_t = 8)]
    pub features: usize,
    /// Input dimension d (linear regression; default 20), projected dimension (projection;
    /// default 100) or the mixture's dimension (gmm; default 2, the paper also uses 5).
    #[arg(long)]
    pub dim: Option<usize>,
    /// SCM: variables per causal model.
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// SCM: mechanisms to train on: linear, rff (random Fourier features) or both.
    #[arg(long, default_value = "both")]
    pub mechanism: String,
    /// Observation noise σ.
    #[arg(long, default_value_t = 0.1)]
    pub noise_std: f64,
    /// Generation (gmm, alphabet): what the queries learn: sample (the paper's conditional flow
    /// matching, x_1 − x_0 for a fresh point x_1) or empirical (the exact field of the context's
    /// empirical distribution widened by --flow-sigma: no sampling noise, and its samples
    /// reproduce the context's shape).
    #[arg(long, value_enum, default_value = "sample")]
    pub flow_target: FlowTargetArg,
    /// Generation with --flow-target empirical: the widening σ (default 0.03 for letters, a
    /// three quarters of the letters' stroke jitter; 0.1 for mixtures, a third of a component's std).
    #[arg(long)]
    pub flow_sigma: Option<f64>,
    /// Gaussian mixtures: largest number of components (1 to 1000; the paper draws up to 100).
    #[arg(long, default_value_t = 5)]
    pub max_components: usize,
    /// Context points per task. Default: k × the mini-batch size (--horizon × it when given), so
    /// every refinement step reads a mini-batch of points not read before, as the paper's steps
    /// do. Fewer: the steps pass over the points in epochs, like SGD.
    #[arg(long)]
    pub context: Option<usize>,
    /// Query points per task.
    #[arg(long, default_value_t = 32)]
    pub queries: usize,
    /// Refinement steps k.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Longest refinement in training: each meta-step refines over a number of steps drawn
    /// uniformly from k to this (each on a fresh mini-batch), so the learned update stays stable
    /// past k. Default: k, every meta-step exactly k steps.
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Mini-batch size b.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Transformer width.
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub n_heads: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = 3)]
    pub n_layers: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 256)]
    pub d_ff: usize,
    /// Where to run: a hardware GPU if there is one (auto), the CPU, or a GPU only.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Model files written by `amortize train` (model.amz); several make one paper-style table
    /// (rows: model × steps, columns: task × split).
    #[arg(long, required = true, num_args = 1..)]
    pub weights: Vec<PathBuf>,
    /// Fresh tasks to evaluate on.
    #[arg(long, default_value_t = 1000)]
    pub tasks: usize,
    /// Seed of the evaluation tasks.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Context points per task. Default: --steps × the mini-batch size (at least as trained), so
    /// every step reads points no earlier step read; fewer are read in epochs.
    #[arg(long)]
    pub context: Option<usize>,
    /// Largest number of refinement steps (default: as trained); 1, 5 and 10 are reported too.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Points per mini-batch (default: as trained). The causal mask trains every prefix of a
    /// mini-batch, so any size up to the trained one is in distribution.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Topological-order models: variables per causal model (default: as trained; the paper
    /// also tests its 20-node model on 50 nodes).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Data directory for image tasks (default $AMORTIZE_DATA or data/).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Also evaluate out of distribution where the task has a shifted version: image models on the
    /// other dataset, alphabets on the held-out letters.
    #[arg(long)]
    pub ood: bool,
    /// Only the out-of-distribution evaluation (implies --ood).
    #[arg(long)]
    pub ood_only: bool,
    /// Compare with Adam and SGD run at test time on the same tasks and mini-batches (parametric
    /// predictor; regression and classification tasks), for this many tasks.
    #[arg(long, default_value_t = 0)]
    pub test_time_tasks: usize,
    /// Generation: ODE method for sampling (euler, heun or rk4).
    #[arg(long, default_value = "heun")]
    pub ode: amortize::flow::OdeMethod,
    /// Generation: ODE steps from noise (t = 0) to data (t = 1).
    #[arg(long, default_value_t = 20)]
    pub ode_steps: usize,
    /// Generation: tasks whose samples are scored by exact W1/W2 (at most --tasks).
    #[arg(long, default_value_t = 64)]
    pub sample_tasks: usize,
    /// Generation: the tolerance δ of precision and recall (default: the task's, 3 × the jitter
    /// for letters, 2 × the component std for mixtures).
    #[arg(long)]
    pub delta: Option<f64>,
    /// Generation: samples generated per task for precision and recall (the web app draws 512;
    /// W1 and W2 compare the first --queries of them with as many held-out points).
    #[arg(long, default_value_t = 512)]
    pub samples: usize,
    /// Run the model on your own context points (CSV or .json; rows of numbers: x, y for
    /// function regression, x_1..x_d, y for linear regression, coordinates for generation) and
    /// print its predictions or samples after each reported number of steps as CSV.
    #[arg(long)]
    pub points: Option<PathBuf>,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Name of the exported model: writes `<DIR>/<NAME>.amz` and `<DIR>/<NAME>.md`.
    #[arg(long, default_value = "regression-parametric")]
    pub name: String,
    /// Where to write (the web app serves `public/`).
    #[arg(long, default_value = "public/weights")]
    pub dir: PathBuf,
}

/// `--flow-target`.
#[derive(Clone, Copy, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowTargetArg {
    Sample,
    Empirical,
}

#[derive(Clone, Copy, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionArg {
    Causal,
    Full,
}

pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut parts = vec!["amortize".to_string()];
    parts.extend(args.into_iter().skip(1));
    parts.join(" ")
}

/// Was `id` (a clap argument id, snake_case) given on the command line?
pub fn given(m: &ArgMatches, id: &str) -> bool {
    m.ids().any(|i| i.as_str() == id) && m.value_source(id) == Some(ValueSource::CommandLine)
}

/// The settings in effect: the defaults, then the `--config` file, then the flags given.
pub fn effective_train_args(a: TrainArgs, m: &ArgMatches) -> anyhow::Result<TrainArgs> {
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

/// `plot`'s arguments.
#[derive(Args)]
pub struct PlotArgs {
    /// A training run's directory (holds log.jsonl).
    #[arg(long)]
    pub run: PathBuf,
    /// Output image: .svg or .png.
    #[arg(long)]
    pub out: PathBuf,
    /// Image width in pixels (height is 40% of it).
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// `train`'s settings as the command line `args` (after `amortize train`) gives them.
    fn train_settings(args: &[&str]) -> anyhow::Result<TrainArgs> {
        let all: Vec<&str> = ["amortize", "train"].iter().chain(args).copied().collect();
        let matches = Cli::command().try_get_matches_from(all)?;
        let Command::Train(a) = Cli::from_arg_matches(&matches)?.command else {
            anyhow::bail!("not a train command");
        };
        let m = matches.subcommand_matches("train").expect("train");
        effective_train_args(a, m)
    }

    /// The defaults, then the file, then the flags: a flag given beats the file, the file beats
    /// a default, and what neither sets keeps its default.
    #[test]
    fn settings_layer_defaults_then_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        std::fs::write(&file, "tasks-per-step = 7\nlr = 0.5\nsteps = 123\n").unwrap();
        let path = file.to_str().unwrap();
        let default = train_settings(&[]).unwrap();
        let a = train_settings(&["--config", path, "--lr", "0.01"]).unwrap();
        assert_eq!(a.lr, 0.01, "the flag beats the file");
        assert_eq!(
            (a.tasks_per_step, a.steps),
            (7, 123),
            "the file beats the defaults"
        );
        assert_eq!(a.warmup, default.warmup, "unset keeps its default");
        assert_ne!(default.tasks_per_step, 7);
    }

    /// A key the settings do not have, or a value of the wrong type, is refused by name and
    /// line; so is a file that is not TOML.
    #[test]
    fn a_bad_config_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        let path = file.to_str().unwrap();
        for (text, names) in [
            ("steps = 10\nstepz = 3\n", "`stepz`"),
            ("lr = \"fast\"\n", "`lr`"),
            ("steps = \n", "line 1"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = train_settings(&["--config", path])
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(names), "{text:?}: {err}");
        }
    }
}
