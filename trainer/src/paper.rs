//! The paper's own numbers (Mittal, Mahajan, Lajoie, Pezeshki, 2025: Tables 2–6), so that every
//! table `eval` prints can show them beside ours, cell by cell.
//!
//! The paper reports linear regression as query MSE, classification and topological order as
//! error (1 − accuracy; % for classification), generation as two Wasserstein distances per column
//! (its text does not say which sub-column is W1 and which W2). Under its numbers each table
//! prints [`settings_line`]: our model's size, budget and task settings, which its text does not
//! give.

use amortize::model::AmortizerConfig;
use amortize::regime::Regime;
use amortize::signal::Signal;
use amortize::task::mnist::ImageSet;
use amortize::task::TaskConfig;
use serde::Serialize;

/// The paper's numbers for one of our reports: where they come from and their value per step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PaperRef {
    /// "Table 2, parametric, Data, Lin Reg": the table, row and column.
    pub source: String,
    /// (steps, the paper's value as printed).
    pub values: Vec<(usize, String)>,
}

const STEPS: [usize; 3] = [1, 5, 10];

/// Table 2 (parametric) rows: Grad, Data, Grad + Data; columns: Lin Reg, MNIST, FMNIST (OoD of
/// MNIST), FMNIST, MNIST (OoD of FMNIST); each row 1, 5, 10 steps. (The ImageNet, CIFAR-10 and
/// CIFAR-100 columns need embeddings we do not have.)
const TABLE2: [[[&str; 5]; 3]; 3] = [
    [
        ["51.3", "76.2", "66.7", "63.8", "79.9"],
        ["4.1", "48.6", "51.8", "41.6", "49.5"],
        ["0.5", "39.7", "43.5", "38.1", "40.7"],
    ],
    [
        ["16.3", "43.9", "40.5", "35.9", "38.8"],
        ["0.5", "35.5", "34.3", "30.8", "31.3"],
        ["0.3", "36.6", "35.3", "29.8", "29.1"],
    ],
    [
        ["25.1", "52.3", "48.2", "37.7", "41.9"],
        ["0.6", "39.2", "37.5", "32.0", "33.4"],
        ["0.4", "32.0", "32.0", "30.5", "30.3"],
    ],
];

/// Table 3 (explicit), the same layout.
const TABLE3: [[[&str; 5]; 3]; 3] = [
    [
        ["55.5", "90.4", "90.8", "88.2", "89.3"],
        ["9.4", "86.9", "84.4", "70.8", "76.4"],
        ["2.9", "81.4", "78.9", "56.4", "65.7"],
    ],
    [
        ["19.7", "89.2", "90.0", "90.0", "90.3"],
        ["2.6", "88.7", "90.0", "90.0", "90.2"],
        ["2.4", "88.8", "90.0", "90.1", "90.2"],
    ],
    [
        ["24.4", "72.5", "62.9", "51.1", "61.2"],
        ["2.6", "67.1", "58.3", "47.5", "57.7"],
        ["2.1", "75.1", "69.5", "45.1", "54.4"],
    ],
];

/// Table 4 (implicit, observations), the same columns.
const TABLE4: [[&str; 5]; 3] = [
    ["14.8", "24.9", "31.9", "22.8", "29.1"],
    ["6.2", "12.4", "26.1", "18.8", "16.9"],
    ["4.7", "9.7", "24.2", "17.8", "15.7"],
];

/// Table 5 (topological order, error): 20 nodes LIN IN, RFF IN, LIN OUT, RFF OUT, then the same
/// model on 50 nodes in the same order.
const TABLE5: [[&str; 8]; 3] = [
    [
        "0.52", "0.43", "0.64", "0.51", "0.7", "0.66", "0.78", "0.69",
    ],
    [
        "0.52", "0.35", "0.68", "0.33", "0.66", "0.56", "0.74", "0.67",
    ],
    [
        "0.44", "0.37", "0.66", "0.61", "0.64", "0.52", "0.77", "0.73",
    ],
];

/// Table 6 (generation): alphabets ID, alphabets OoD, GMM 2-D, GMM 5-D; two distances each.
const TABLE6: [[(&str, &str); 4]; 3] = [
    [
        ("0.28", "0.20"),
        ("0.78", "0.64"),
        ("1.12", "0.58"),
        ("3.27", "1.82"),
    ],
    [
        ("0.31", "0.22"),
        ("0.72", "0.58"),
        ("0.90", "0.38"),
        ("2.50", "1.05"),
    ],
    [
        ("0.29", "0.21"),
        ("0.67", "0.54"),
        ("0.81", "0.32"),
        ("2.37", "0.95"),
    ],
];

const COLUMNS: [&str; 5] = [
    "Lin Reg",
    "MNIST",
    "FMNIST (OoD, trained on MNIST)",
    "FMNIST",
    "MNIST (OoD, trained on FMNIST)",
];

/// The paper's numbers for a model of `model`'s regime and signal on `task`, split `ood` (out of
/// distribution) or not. None where the paper has no such cell: another task, a signal it does
/// not define (the per-point gradient forms), or a regime its table lacks.
pub fn reference(task: &TaskConfig, ood: bool, model: &AmortizerConfig) -> Option<PaperRef> {
    let column = match task {
        TaskConfig::LinearRegression(_) if !ood => 0,
        TaskConfig::Projection(c) => match (c.dataset, ood) {
            (ImageSet::Mnist, false) => 1,
            (ImageSet::Mnist, true) => 2,
            (ImageSet::Fashion, false) => 3,
            (ImageSet::Fashion, true) => 4,
        },
        TaskConfig::Alphabet(_) | TaskConfig::Gmm(_) => return generation(task, ood),
        _ => return None,
    };
    let signal = match model.signal {
        Signal::Gradients => 0,
        Signal::Observations => 1,
        Signal::Both => 2,
        Signal::PointGradients | Signal::BothPointGradients => return None,
    };
    let signal_name = ["Grad", "Data", "Grad + Data"][signal];
    let (table, row, values): (&str, String, Vec<&str>) = match model.regime {
        Regime::Parametric => (
            "Table 2",
            format!("parametric, {signal_name}"),
            TABLE2[signal].iter().map(|r| r[column]).collect(),
        ),
        Regime::Explicit => (
            "Table 3",
            format!("explicit, {signal_name}"),
            TABLE3[signal].iter().map(|r| r[column]).collect(),
        ),
        Regime::Implicit if model.signal == Signal::Observations => (
            "Table 4",
            "implicit".to_string(),
            TABLE4.iter().map(|r| r[column]).collect(),
        ),
        Regime::Implicit => return None,
    };
    Some(PaperRef {
        source: format!("{table}, {row}, {}", COLUMNS[column]),
        values: STEPS
            .iter()
            .zip(values)
            .map(|(&s, v)| (s, v.to_string()))
            .collect(),
    })
}

fn generation(task: &TaskConfig, ood: bool) -> Option<PaperRef> {
    let (column, name) = match task {
        TaskConfig::Alphabet(_) if !ood => (0, "alphabets ID"),
        TaskConfig::Alphabet(_) => (1, "alphabets OoD"),
        TaskConfig::Gmm(c) if c.dim == 2 && !ood => (2, "GMM 2-dimensional"),
        TaskConfig::Gmm(c) if c.dim == 5 && !ood => (3, "GMM 5-dimensional"),
        _ => return None,
    };
    Some(PaperRef {
        source: format!("Table 6, {name} (two Wasserstein distances)"),
        values: STEPS
            .iter()
            .zip(TABLE6.iter().map(|r| r[column]))
            .map(|(&s, (a, b))| (s, format!("{a} / {b}")))
            .collect(),
    })
}

/// Table 5's numbers for a topological-order model evaluated on `nodes` variables with one
/// mechanism (`rff` or linear), in or out of distribution. The paper trains on 20 nodes and
/// tests that model on 50; other sizes have no cell.
pub fn scm_reference(nodes: usize, rff: bool, ood: bool) -> Option<PaperRef> {
    let base = match nodes {
        20 => 0,
        50 => 4,
        _ => return None,
    };
    let column = base + usize::from(rff) + 2 * usize::from(ood);
    let name = format!(
        "{nodes} nodes, {} {}",
        if rff { "RFF" } else { "LIN" },
        if ood { "OUT" } else { "IN" }
    );
    Some(PaperRef {
        source: format!("Table 5, {name}"),
        values: STEPS
            .iter()
            .zip(TABLE5.iter().map(|r| r[column]))
            .map(|(&s, v)| (s, v.to_string()))
            .collect(),
    })
}

/// The transformer's size, in the terms of a settings line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub parameters: usize,
}

/// The task's settings the paper's text leaves open, in words, and the names of what it leaves
/// open.
pub fn task_settings(task: &TaskConfig) -> (String, &'static str) {
    match task {
        TaskConfig::LinearRegression(c) => (
            format!("d = {} inputs, noise σ = {}", c.dim, c.noise_std),
            "input dimension or noise level",
        ),
        TaskConfig::Projection(c) => (
            format!(
                "{} projected features, {} context points per task in training",
                c.dim, c.context
            ),
            "number of context points",
        ),
        TaskConfig::Gmm(c) => (
            format!(
                "{}-D mixtures of up to {} components, {} context points per task",
                c.dim, c.max_components, c.context
            ),
            "numbers of context points and samples",
        ),
        TaskConfig::Alphabet(c) => (
            format!("{} context points per letter", c.context),
            "numbers of context points and samples",
        ),
        TaskConfig::FunctionRegression(c) => (
            format!("{} context points per task", c.context),
            "task settings",
        ),
        TaskConfig::Embeddings(c) => (
            format!("{} context points per task", c.context),
            "task settings",
        ),
    }
}

/// An SCM family's settings the paper's text leaves open (see [`task_settings`]).
pub fn scm_settings(task: &amortize::task::scm::ScmConfig) -> (String, &'static str) {
    (
        format!("{} nodes, {} samples per dataset", task.nodes, task.samples),
        "number of samples",
    )
}

/// The line printed under the paper's numbers: our model's size, its training budget as the
/// file's `provenance` records it (meta-steps, tasks per step, seconds), k and b, and the task's
/// settings; then what of these the paper's text does not give.
pub fn settings_line(
    size: Size,
    provenance: &serde_json::Value,
    steps: usize,
    batch: usize,
    task: (String, &str),
) -> String {
    let budget = match (
        provenance["meta_steps"].as_u64(),
        provenance["tasks_per_step"].as_u64(),
    ) {
        (Some(m), Some(t)) => {
            let time = provenance["train_seconds"]
                .as_f64()
                .map(|s| format!(" ({:.0} min)", s / 60.0))
                .unwrap_or_default();
            format!("trained {m} meta-steps of {t} tasks{time}")
        }
        _ => "its training budget not recorded in the file".to_string(),
    };
    format!(
        "Settings (the paper's differ or are not given): ours has width {}, {} layer{}, {} heads, \
         feed-forward {} ({} parameters), {budget}, k = {steps} steps of {batch}, {}; the paper's \
         text as we have it gives no values for its model size, training budget, mini-batch size, \
         {}.",
        size.d_model,
        size.n_layers,
        if size.n_layers == 1 { "" } else { "s" },
        size.n_heads,
        size.d_ff,
        size.parameters,
        task.0,
        task.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use amortize::task::linear::LinearRegressionConfig;
    use amortize::task::mnist::ProjectionConfig;

    fn model(regime: Regime, signal: Signal) -> AmortizerConfig {
        AmortizerConfig {
            regime,
            signal,
            ..Default::default()
        }
    }

    #[test]
    fn the_settings_line_names_our_model_budget_and_task() {
        let size = Size {
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            d_ff: 128,
            parameters: 79_400,
        };
        let lin = TaskConfig::LinearRegression(LinearRegressionConfig::default());
        let provenance = serde_json::json!({
            "meta_steps": 30000, "tasks_per_step": 32, "train_seconds": 7077.5
        });
        let line = settings_line(size, &provenance, 10, 8, task_settings(&lin));
        for part in [
            "width 64, 2 layers, 4 heads, feed-forward 128 (79400 parameters)",
            "trained 30000 meta-steps of 32 tasks (118 min)",
            "k = 10 steps of 8",
            "d = 20 inputs, noise σ = 0.1",
            "input dimension or noise level",
        ] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
        // A shipped file without a recorded budget says so instead of inventing one.
        let line = settings_line(size, &serde_json::Value::Null, 10, 8, task_settings(&lin));
        assert!(
            line.contains("its training budget not recorded in the file"),
            "{line}"
        );
    }

    #[test]
    fn cells_come_from_the_papers_tables() {
        let lin = TaskConfig::LinearRegression(LinearRegressionConfig::default());
        let r = reference(
            &lin,
            false,
            &model(Regime::Parametric, Signal::Observations),
        )
        .unwrap();
        assert_eq!(r.source, "Table 2, parametric, Data, Lin Reg");
        let v: Vec<&str> = r.values.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(v, ["16.3", "0.5", "0.3"]);
        let r = reference(&lin, false, &model(Regime::Explicit, Signal::Both)).unwrap();
        assert_eq!(r.values[2].1, "2.1");
        let mnist = TaskConfig::Projection(ProjectionConfig {
            dataset: ImageSet::Mnist,
            dim: 100,
            context: 80,
            queries: 32,
        });
        let r = reference(&mnist, true, &model(Regime::Implicit, Signal::Observations)).unwrap();
        assert_eq!(r.values[2].1, "24.2");
        // The per-point gradient forms are this project's: the paper has no such row.
        assert!(reference(
            &lin,
            false,
            &model(Regime::Parametric, Signal::PointGradients)
        )
        .is_none());
        let r = scm_reference(50, true, true).unwrap();
        assert_eq!(r.source, "Table 5, 50 nodes, RFF OUT");
        assert_eq!(r.values[0].1, "0.69");
        assert!(scm_reference(10, false, false).is_none());
    }
}
