//! `amortize train`: the settings turned into a run's configuration (or an SCM order model's),
//! `--init` and `--resume`, and the run launched with Ctrl-C writing a checkpoint.

use amortize::model::mask::Attention;
use amortize::model::AmortizerConfig;
use amortize::task::flow_matching::FlowTarget;
use amortize::task::linear::LinearRegressionConfig;
use amortize::task::regression::FunctionRegressionConfig;
use amortize::task::TaskConfig;
use amortize::RefineConfig;
use anyhow::Context;
use clap::ArgMatches;
use std::path::Path;

use crate::cli::*;
use crate::device::{self, DeviceChoice};
use crate::train::{Learner, RunConfig};
use crate::{data, run, train};

pub fn run(a: TrainArgs, m: &ArgMatches) -> anyhow::Result<()> {
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
        if let Ok(cfg) = serde_json::from_str::<train::OrderTrainConfig>(&text) {
            anyhow::ensure!(
                !given(m, "data_parallel"),
                "--data-parallel: does not apply to --task scm (the order model trains on one device)"
            );
            return launch_order(&cfg, a.device, &a.out, true);
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
        return launch_amortizer(&cfg, a.data.as_deref(), a.device, &a.out, true);
    }
    let a = effective_train_args(a, m)?;
    if a.print_config {
        print!("{}", toml::to_string(&a)?);
        return Ok(());
    }
    if a.task == "scm" {
        return launch_order(&order_config(&a, m)?, a.device, &a.out, false);
    }
    let mut cfg = train_config(&a)?;
    if let Some(path) = &a.init {
        start_from(&mut cfg, path, &set_explicitly(&a, m)?)?;
    }
    launch_amortizer(&cfg, a.data.as_deref(), a.device, &a.out, false)
}

/// The settings given on the command line or in the `--config` file (flag ids, snake_case).
pub fn set_explicitly(a: &TrainArgs, m: &ArgMatches) -> anyhow::Result<Vec<String>> {
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
pub fn start_from(
    cfg: &mut train::TrainConfig,
    path: &Path,
    explicit: &[String],
) -> anyhow::Result<()> {
    const FROM_FILE: [&str; 23] = [
        "task",
        "dataset",
        "embeddings",
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

/// The outer loop's budget the settings describe.
fn budget(a: &TrainArgs) -> run::Budget {
    run::Budget {
        seed: a.seed,
        steps: a.steps,
        tasks_per_step: a.tasks_per_step,
        lr: a.lr,
        warmup: a.warmup,
        eval_every: a.eval_every,
        eval_tasks: a.eval_tasks,
        checkpoint_every: a.checkpoint_every,
    }
}

/// `train --task scm`: the run configuration of the topological-order model (paper §9.4).
fn order_config(a: &TrainArgs, m: &ArgMatches) -> anyhow::Result<train::OrderTrainConfig> {
    for flag in [
        "regime",
        "signal",
        "attention",
        "history",
        "step_weighting",
        "full_context_share",
        "data_parallel",
        "micro_batch",
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
    let cfg = train::OrderTrainConfig {
        budget: budget(a),
        model: amortize::model::order::OrderModelConfig {
            d_model: a.d_model,
            n_heads: a.n_heads,
            n_layers: a.n_layers,
            d_ff: a.d_ff,
        },
        task: amortize::task::scm::ScmConfig {
            nodes: a.nodes,
            samples: train_context(a)?,
            mechanisms: train::mechanisms(&a.mechanism)?,
            ..Default::default()
        },
        refine: RefineConfig::new()
            .with_steps(a.k)
            .with_batch_size(a.batch_size),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Trains (or resumes) the order model on one device.
fn launch_order(
    cfg: &train::OrderTrainConfig,
    device: DeviceChoice,
    out: &Path,
    resume: bool,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let chosen = device::choose(device)?;
    eprintln!("device: {}", chosen.description);
    launch(&train::OrderRun::new(cfg, &chosen.device), out, resume)
}

/// Trains (or resumes) the amortizer on the devices its configuration asks for.
pub fn launch_amortizer(
    cfg: &train::TrainConfig,
    data: Option<&Path>,
    device: DeviceChoice,
    out: &Path,
    resume: bool,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let sampler = data::sampler(&cfg.task, &data::data_dir(data), None)?;
    let chosen = device::choose_replicas(device, cfg.max_data_parallel())?;
    eprintln!("device: {}", chosen.description);
    launch(
        &train::AmortizerRun::new(cfg, &sampler, &chosen.replicas)?,
        out,
        resume,
    )
}

/// Runs the loop, with Ctrl-C writing a checkpoint before stopping.
fn launch<L: Learner>(learner: &L, out: &Path, resume: bool) -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        if run::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: writing a checkpoint after this step (Ctrl-C again quits at once)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    match train::train(learner, out, &command_line(), resume)? {
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
pub fn flow_target(a: &TrainArgs, default_sigma: f64) -> anyhow::Result<FlowTarget> {
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
pub fn horizon(a: &TrainArgs) -> anyhow::Result<Option<usize>> {
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
pub fn train_context(a: &TrainArgs) -> anyhow::Result<usize> {
    let steps = horizon(a)?.unwrap_or(a.k);
    Ok(a.context.unwrap_or(steps.saturating_mul(a.batch_size)))
}

/// The run configuration the settings describe.
pub fn train_config(a: &TrainArgs) -> anyhow::Result<train::TrainConfig> {
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
        "embeddings" => TaskConfig::Embeddings(amortize::task::embeddings::EmbeddingConfig {
            name: a.embeddings.clone().unwrap_or_else(|| "imagenet".into()),
            dim: a.dim.unwrap_or(768),
            context,
            queries: a.queries,
            ..Default::default()
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
            "--task: unknown task {other:?} (expected function-regression, linear-regression, projection, embeddings, gmm, alphabet or scm)"
        ),
    };
    task.validate().map_err(|e| anyhow::anyhow!("task: {e}"))?;
    let cfg = train::TrainConfig {
        budget: budget(a),
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
        micro_batch: a.micro_batch,
        init: None,
    };
    if a.init.is_none() {
        // With --init the architecture and task are the file's: `start_from` validates them.
        cfg.validate()?;
    }
    // What a resumed run reads back from config.json, so both runs use identical numbers.
    Ok(serde_json::from_str(&serde_json::to_string(&cfg)?)?)
}
