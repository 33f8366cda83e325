//! `amortize eval`: models on fresh tasks (in and out of distribution), on a user's points, or
//! beside test-time optimisers; reports and the paper-style table.

use std::path::Path;

use amortize::model::Amortizer;
use amortize::regime::Regime;
use amortize::task::mnist::ImageSet;
use amortize::task::TaskConfig;
use amortize::weights::{ModelBundle, OrderBundle};
use amortize::RefineConfig;
use anyhow::Context;
use burn::tensor::Device;

use crate::cli::EvalArgs;
use crate::eval::{self, EvalReport, Setup};
use crate::{data, device, order, paper, points};
use burn::module::Module;

/// The task's out-of-distribution version, the image set to load instead, and what changed.
pub fn ood_variant(task: &TaskConfig) -> Option<(TaskConfig, Option<ImageSet>, String)> {
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

/// The checks on `eval`'s numbers that do not depend on the model.
fn check_limits(a: &EvalArgs) -> anyhow::Result<()> {
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
    Ok(())
}

/// Adds the steps of `more` that `steps` lacks.
fn merge_steps(steps: &mut Vec<usize>, more: impl IntoIterator<Item = usize>) {
    for s in more {
        if !steps.contains(&s) {
            steps.push(s);
        }
    }
}

/// Evaluates every `--weights` file and prints the reports (and the paper-style table when there
/// are several); returns the first amortizer's bundle (for `export`) and the first report.
pub fn run(a: EvalArgs) -> anyhow::Result<(Option<ModelBundle>, EvalReport)> {
    check_limits(&a)?;
    let chosen = device::choose(a.device.device)?;
    eprintln!("device: {}", chosen.description);
    let mut reports = Vec::new();
    let mut first = None;
    let mut table_steps = Vec::new();
    for path in &a.weights {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if amortize::weights::is_order_model(&bytes) {
            let (r, s) = order_reports(&a, path, &bytes, &chosen.device)?;
            reports.extend(r);
            merge_steps(&mut table_steps, s);
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
        let one = ModelEval::new(&a, path, &bundle, &chosen.device)?;
        // The paper-style table keeps the paper's columns: 1, 5 and 10 steps (and the most).
        merge_steps(&mut table_steps, eval::eval_steps(one.max_steps));
        if let Some(points) = &a.points {
            if a.weights.len() != 1 {
                anyhow::bail!("--points: give one --weights");
            }
            let report = one.on_points(points)?;
            return Ok((Some(bundle), report));
        }
        for (task, images, split) in one.splits()? {
            reports.push(one.report(&task, images, split)?);
        }
        if first.is_none() {
            first = Some(bundle);
        }
    }
    table_steps.sort();
    print(&a, &reports, &table_steps)?;
    let report = reports.swap_remove(0);
    Ok((first, report))
}

/// The reports as JSON (with the table) or Markdown.
fn print(a: &EvalArgs, reports: &[EvalReport], table_steps: &[usize]) -> anyhow::Result<()> {
    let table = eval::PaperTable::new(reports, table_steps);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "reports": reports,
                "table": table,
            }))?
        );
    } else {
        for r in reports {
            println!("{}", r.markdown());
        }
        if reports.len() > 1 {
            println!("Paper-style table:\n\n{}", table.markdown());
        }
    }
    Ok(())
}

/// A topological-order (SCM) model's reports and the steps of its table.
fn order_reports(
    a: &EvalArgs,
    path: &Path,
    bytes: &[u8],
    device: &Device,
) -> anyhow::Result<(Vec<EvalReport>, Vec<usize>)> {
    if a.points.is_some() || a.test_time_tasks > 0 || a.context.is_some() || a.batch_size.is_some()
    {
        anyhow::bail!(
            "{}: a topological-order model takes neither --points, --test-time-tasks, --context nor --batch-size",
            path.display()
        );
    }
    let bundle =
        OrderBundle::decode(bytes).with_context(|| format!("loading {}", path.display()))?;
    let which = order::OrderEval {
        tasks: a.tasks,
        seed: a.seed,
        nodes: a.nodes,
        max_steps: a.steps,
        in_dist: !a.ood_only,
        out_dist: a.ood || a.ood_only,
    };
    order::reports(&bundle, &which, device)
        .with_context(|| format!("evaluating {}", path.display()))
}

/// One amortizer under `eval`: the model, the refinement and task it is evaluated with (every
/// step reads a fresh mini-batch unless `--context` asks for fewer points), and the steps.
struct ModelEval<'a> {
    a: &'a EvalArgs,
    path: &'a Path,
    bundle: &'a ModelBundle,
    model: Amortizer,
    refine: RefineConfig,
    task: TaskConfig,
    max_steps: usize,
    device: &'a Device,
}

impl<'a> ModelEval<'a> {
    fn new(
        a: &'a EvalArgs,
        path: &'a Path,
        bundle: &'a ModelBundle,
        device: &'a Device,
    ) -> anyhow::Result<Self> {
        let model = bundle
            .model(device)
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
        Ok(Self {
            a,
            path,
            bundle,
            model,
            refine,
            task,
            max_steps,
            device,
        })
    }

    fn setup(&self) -> Setup<'_> {
        Setup {
            model: &self.model,
            refine: &self.refine,
            seed: self.a.seed,
            device: self.device,
        }
    }

    /// `--points FILE`: the model on the user's points, printed as CSV.
    fn on_points(&self, file: &Path) -> anyhow::Result<EvalReport> {
        let rows = points::read(file)?;
        let steps = eval::eval_steps(self.max_steps);
        print!(
            "{}",
            points::run(
                self.setup(),
                &self.task,
                &rows,
                &steps,
                (self.a.ode, self.a.ode_steps)
            )?
        );
        Ok(EvalReport::for_points(&self.task, rows.len()))
    }

    /// The task in distribution and/or its out-of-distribution version, as asked.
    fn splits(&self) -> anyhow::Result<Vec<(TaskConfig, Option<ImageSet>, String)>> {
        let a = self.a;
        let mut splits = Vec::new();
        if !a.ood_only {
            splits.push((self.task.clone(), None, "ID".to_string()));
        }
        if a.ood || a.ood_only {
            match ood_variant(&self.task) {
                Some(v) => splits.push(v),
                None if a.weights.len() == 1 => anyhow::bail!(
                    "--ood: the {} task has no out-of-distribution version (image and alphabet tasks do)",
                    self.task.name()
                ),
                None => {}
            }
        }
        Ok(splits)
    }

    /// The report on one split: the query loss per step, the paper's numbers, and where they
    /// apply the generated samples' scores and the test-time optimisers.
    fn report(
        &self,
        task: &TaskConfig,
        images: Option<ImageSet>,
        split: String,
    ) -> anyhow::Result<EvalReport> {
        let a = self.a;
        let model = &self.model;
        let sampler = data::sampler(task, &data::data_dir(a.data.as_deref()), images)?;
        let mut steps = eval::report_steps(self.max_steps);
        steps.insert(0, 0);
        let mut report = eval::evaluate(self.setup(), &sampler, a.tasks, &steps)?;
        report.paper = paper::reference(task, split != "ID", model.config());
        if self.bundle.header.refine.steps == 1 {
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
        // Under the paper's numbers (a one-step model has none): our size, budget and settings.
        let c = model.config();
        let header = &self.bundle.header;
        report.settings = report.paper.as_ref().map(|_| {
            paper::settings_line(
                paper::Size {
                    d_model: c.d_model,
                    n_layers: c.n_layers,
                    n_heads: c.n_heads,
                    d_ff: c.d_ff,
                    parameters: model.num_params(),
                },
                &header.provenance,
                header.refine.steps,
                header.refine.batch_size,
                paper::task_settings(&header.task),
            )
        });
        report.split = split;
        if task.is_generative() {
            report.generation = Some(eval::generation(
                self.setup(),
                &sampler,
                a.sample_tasks.clamp(1, a.tasks),
                (a.samples, a.delta),
                // Every field evaluation runs the steps: the paper's 1, 5, 10 (and the most).
                &eval::eval_steps(self.max_steps),
                (a.ode, a.ode_steps),
            )?);
        }
        if a.test_time_tasks > 0 {
            if model.config().regime != Regime::Parametric || task.is_generative() {
                anyhow::bail!(
                    "--test-time-tasks: the comparison fits the parametric predictor; {} is a {} model",
                    self.path.display(),
                    model.config().regime
                );
            }
            report.test_time = Some(eval::test_time(
                self.setup(),
                &sampler,
                a.test_time_tasks,
                &steps,
            )?);
        }
        Ok(report)
    }
}
