//! `amortize export`: copies a trained model into the web app's `public/weights/` with a model
//! card beside it.

use std::fs;
use std::path::Path;

use amortize::weights::ModelBundle;
use anyhow::Context;

use crate::eval::EvalReport;
use crate::run::{write_atomic, FROM_STEP};

/// Writes `<dir>/<name>.amz` (the bundle, with the evaluation in its provenance) and
/// `<dir>/<name>.md` (the model card).
pub fn export(
    mut bundle: ModelBundle,
    report: &EvalReport,
    eval_command: &str,
    dir: &Path,
    name: &str,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    bundle.header.provenance["eval"] = serde_json::to_value(report)?;
    bundle.header.provenance["eval_command"] = eval_command.into();
    let bytes = bundle.encode();
    let weights_path = dir.join(format!("{name}.amz"));
    write_atomic(&weights_path, &bytes)?;
    let card = model_card(&bundle, report, eval_command, bytes.len());
    write_atomic(&dir.join(format!("{name}.md")), card.as_bytes())?;
    Ok(())
}

/// The card's note of a run's resumes: each with its command and first step.
fn resumed(provenance: &serde_json::Value) -> String {
    let Some(list) = provenance["resumed"].as_array().filter(|l| !l.is_empty()) else {
        return String::new();
    };
    let each: Vec<String> = list
        .iter()
        .filter_map(|c| c.as_str())
        .map(|c| match c.rsplit_once(FROM_STEP) {
            // The step stays outside the code span, so the command can be copied as it is.
            Some((command, step)) => format!("`{command}`{FROM_STEP}{step}"),
            None => format!("`{c}`"),
        })
        .collect();
    format!("; resumed with {}", each.join(", then "))
}

/// The card's note of the model a fine-tuning run started from (`train --init`), and how that one
/// was made, back to a fresh start; empty for a model trained from scratch.
fn started_from(provenance: &serde_json::Value) -> String {
    let init = &provenance["init"];
    let Some(path) = init["path"].as_str() else {
        return String::new();
    };
    let parent = &init["provenance"];
    let layers = match init["n_layers"].as_u64() {
        Some(n) if n > 0 => format!(", {n} layers"),
        _ => String::new(),
    };
    format!(
        "- Started from `{path}` (weights CRC-32 {crc:08x}{layers}), trained with `{cmd}`{resumed}: \
         {budget}.\n{earlier}",
        crc = init["weights_crc32"].as_u64().unwrap_or(0),
        cmd = parent["command"].as_str().unwrap_or("unknown"),
        resumed = resumed(parent),
        budget = budget(parent),
        earlier = started_from(parent),
    )
}

/// The card's note of layers a fine-tuning run added to the model it started from.
fn grown(provenance: &serde_json::Value, n_layers: usize) -> String {
    match provenance["init"]["n_layers"].as_u64() {
        Some(from) if from > 0 && (from as usize) < n_layers => format!(
            " (the last {} added to the starting model's {from} by `train --init`, starting as the identity)",
            n_layers - from as usize
        ),
        _ => String::new(),
    }
}

/// A run's budget from its provenance: meta-steps, tasks per step, seconds and seed.
fn budget(provenance: &serde_json::Value) -> String {
    format!(
        "{} meta-steps of {} tasks, {:.0} s, seed {}",
        provenance["meta_steps"],
        provenance["tasks_per_step"],
        provenance["train_seconds"].as_f64().unwrap_or(0.0),
        provenance["seed"],
    )
}

fn model_card(
    bundle: &ModelBundle,
    report: &EvalReport,
    eval_command: &str,
    size: usize,
) -> String {
    let h = &bundle.header;
    let p = &h.provenance;
    let m = &h.model;
    let state = match m.regime {
        amortize::regime::Regime::Parametric => "θ of the fixed linear predictor".to_string(),
        amortize::regime::Regime::Explicit => {
            format!(
                "a {}-dimensional latent z of a learned MLP predictor",
                m.latent_dim
            )
        }
        amortize::regime::Regime::Implicit => format!("per-query {:?} state", m.state_form),
    };
    format!(
        "# Model card: {task}, {regime} regime, {signal} signal\n\n\
         Regenerate: train with the command below, then `{eval_command}`.\n\n\
         - Architecture: pre-norm transformer, d_model {d}, {heads} heads, {layers} layers{grown}, \
         d_ff {ff}; state = {state}; {attention:?} attention, history {history}.\n\
         - Task: `{task_json}`; trained with k = {k} steps of b = {b} points, detached states \
         between steps (greedy).\n\
         - Training command: `{cmd}`{resumed}\n\
         - Budget: {budget}.\n\
         {init}\
         - File: {size} bytes.\n\n\
         ## Evaluation (`amortize eval`)\n\n{table}",
        task = h.task.name(),
        regime = m.regime,
        signal = m.signal,
        d = m.d_model,
        heads = m.n_heads,
        layers = m.n_layers,
        grown = grown(p, m.n_layers),
        ff = m.d_ff,
        attention = m.attention,
        history = m.history,
        task_json = serde_json::to_string(&h.task).unwrap_or_default(),
        k = h.refine.steps,
        b = h.refine.batch_size,
        cmd = p["command"].as_str().unwrap_or("unknown"),
        resumed = resumed(p),
        budget = budget(p),
        init = started_from(p),
        table = report.markdown(),
    )
}
