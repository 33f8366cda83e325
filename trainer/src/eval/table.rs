//! The reports as Markdown: one evaluation's tables, and the paper's layout across evaluations.

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Style;

use super::{EvalReport, SampleScore, ORDER_ERROR};

/// A Markdown table (`tabled`): `header`, then `rows`, each as many cells as the header.
pub fn markdown_table<R, C>(header: R, rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator<Item = C>,
    C: Into<String>,
{
    let mut b = Builder::default();
    b.push_record(header);
    for row in rows {
        b.push_record(row);
    }
    let mut table = b.build();
    table.with(Style::markdown());
    format!("{table}\n")
}

/// The paper's table layout: rows (model, steps), columns (task, split).
#[derive(Debug, Clone, Serialize)]
pub struct PaperTable {
    /// Column headings: "task (split)".
    pub columns: Vec<String>,
    /// Rows: model label, steps, one cell per column (absent where that model was not run).
    pub rows: Vec<(String, usize, Vec<Option<f64>>)>,
    /// What each column measures.
    pub measures: Vec<String>,
    /// The paper's number for each cell of `rows` (same shape), where its tables have one.
    pub paper: Vec<Vec<Option<String>>>,
}

impl PaperTable {
    /// Lays out `reports` for `steps`.
    pub fn new(reports: &[EvalReport], steps: &[usize]) -> Self {
        let mut columns: Vec<String> = Vec::new();
        let mut measures = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        for r in reports {
            let c = format!("{} ({})", r.task, r.split);
            if !columns.contains(&c) {
                columns.push(c);
                measures.push(r.headline_name().to_string());
            }
            if !labels.contains(&r.label) {
                labels.push(r.label.clone());
            }
        }
        let mut rows = Vec::new();
        let mut paper = Vec::new();
        for label in &labels {
            for &step in steps {
                let found: Vec<Option<&EvalReport>> = columns
                    .iter()
                    .map(|c| {
                        reports.iter().find(|r| {
                            &r.label == label && &format!("{} ({})", r.task, r.split) == c
                        })
                    })
                    .collect();
                rows.push((
                    label.clone(),
                    step,
                    found
                        .iter()
                        .map(|r| r.and_then(|r| r.headline(step)))
                        .collect(),
                ));
                paper.push(
                    found
                        .iter()
                        .map(|r| {
                            let p = (*r)?.paper.as_ref()?;
                            p.values.iter().find(|v| v.0 == step).map(|v| v.1.clone())
                        })
                        .collect(),
                );
            }
        }
        Self {
            columns,
            rows,
            measures,
            paper,
        }
    }

    /// As Markdown.
    pub fn markdown(&self) -> String {
        let header = ["model".to_string(), "steps".into()]
            .into_iter()
            .chain(self.columns.iter().cloned())
            .collect::<Vec<_>>();
        let measures = ["".to_string(), "".into()]
            .into_iter()
            .chain(self.measures.iter().map(|m| format!("*{m}*")));
        let rows = self
            .rows
            .iter()
            .zip(&self.paper)
            .map(|((label, step, cells), paper)| {
                let cells = cells.iter().zip(paper).map(|(c, p)| {
                    let ours = c.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
                    match p {
                        Some(p) => format!("{ours} (paper {p})"),
                        None => ours,
                    }
                });
                [label.clone(), step.to_string()]
                    .into_iter()
                    .chain(cells)
                    .collect::<Vec<_>>()
            });
        markdown_table(header, std::iter::once(measures.collect()).chain(rows))
    }
}

impl EvalReport {
    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "{} ({}), {}: {} fresh tasks, {} context points, mini-batches of {}, seed {}\n\n",
            self.task, self.split, self.label, self.tasks, self.context, self.batch_size, self.seed
        );
        s += &match (
            &self.bayes_read,
            &self.least_squares_read,
            &self.error_rate,
            &self.nearest_mean_read,
            &self.nearest_neighbour_read,
        ) {
            (Some(bayes), Some(ls), ..) => self.regression_rows(bayes, ls),
            (_, _, Some(err), Some(mean), Some(nn)) => self.classification_rows(err, mean, nn),
            _ => self.step_rows(),
        };
        if let Some(g) = &self.generation {
            s += &generation_rows(g);
        }
        if let Some(p) = &self.paper {
            s += &format!(
                "\nThe paper's numbers ({}): {}.\n",
                p.source,
                p.values
                    .iter()
                    .map(|(k, v)| format!("{k} step{} {v}", if *k == 1 { "" } else { "s" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(line) = &self.settings {
                s += &format!("{line}\n");
            }
        }
        if let Some(t) = &self.test_time {
            s += &self.test_time_rows(t);
        }
        s
    }

    /// Regression: each step beside the best use of the points read by then.
    fn regression_rows(&self, bayes: &[(usize, f64)], ls: &[(usize, f64)]) -> String {
        let header = [
            "steps",
            "points read",
            "amortizer (query MSE)",
            "Bayes posterior mean on the points read",
            "least squares on them",
            "amortizer ÷ Bayes",
        ]
        .map(String::from);
        let rows = self.model.iter().enumerate().map(|(i, (step, v))| {
            [
                step.to_string(),
                self.points_read_at(*step),
                format!("{v:.4}"),
                format!("{:.4}", bayes[i].1),
                format!("{:.4}", ls[i].1),
                format!("{:.2}×", v / bayes[i].1),
            ]
        });
        let mut s = markdown_table(header, rows);
        if let (Some(b), Some(l)) = (self.bayes, self.least_squares) {
            s += &format!(
                "\nOn all {} context points: Bayes posterior mean {b:.4}, least squares {l:.4}.\n",
                self.context
            );
        }
        s
    }

    /// The points read by `step`, as a table cell ("–" where not recorded).
    fn points_read_at(&self, step: usize) -> String {
        self.points_read
            .iter()
            .find(|x| x.0 == step)
            .map_or("–".to_string(), |x| x.1.to_string())
    }

    /// Classification: each step's error beside the classical classifiers on the points read by
    /// then.
    fn classification_rows(
        &self,
        err: &[(usize, f64)],
        mean: &[(usize, f64)],
        nn: &[(usize, f64)],
    ) -> String {
        let header = [
            "steps",
            "points read",
            "amortizer (query cross-entropy)",
            "amortizer error %",
            "nearest class mean on the points read, error %",
            "nearest neighbour on them, error %",
        ]
        .map(String::from);
        let at = |v: &[(usize, f64)], step: usize| {
            v.iter()
                .find(|x| x.0 == step)
                .map_or("–".to_string(), |x| format!("{:.1}", x.1))
        };
        let rows = self.model.iter().map(|(step, v)| {
            [
                step.to_string(),
                self.points_read_at(*step),
                format!("{v:.4}"),
                at(err, *step),
                at(mean, *step),
                at(nn, *step),
            ]
        });
        markdown_table(header, rows)
    }

    /// The query loss (and error rate) after each step, then the baselines without steps.
    fn step_rows(&self) -> String {
        let has_err = self.error_rate.is_some();
        let metric = if self.metric == ORDER_ERROR {
            self.metric.clone()
        } else {
            format!("query {}", self.metric)
        };
        let mut header = vec!["predictor".to_string(), metric];
        if has_err {
            header.push("error %".into());
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (i, (step, v)) in self.model.iter().enumerate() {
            let plural = if *step == 1 { "" } else { "s" };
            let mut row = vec![format!("amortizer, {step} step{plural}"), format!("{v:.4}")];
            if let Some(e) = &self.error_rate {
                row.push(format!("{:.1}", e[i].1));
            }
            rows.push(row);
        }
        for (name, v) in &self.baselines {
            let mut row = vec![name.clone(), format!("{v:.4}")];
            if has_err {
                row.push("–".into());
            }
            rows.push(row);
        }
        markdown_table(header, rows)
    }

    /// The amortizer beside the test-time optimisers, step by step.
    fn test_time_rows(&self, t: &super::TestTimeReport) -> String {
        let steps: Vec<usize> = t.amortizer.iter().map(|x| x.0).collect();
        let header = std::iter::once("method".to_string())
            .chain(steps.iter().map(|k| format!("{k} steps")))
            .chain(["seconds".to_string()])
            .collect::<Vec<_>>();
        let row = |name: String, v: &[(usize, f64)], seconds: f64| {
            let cells = steps.iter().map(|k| {
                v.iter()
                    .find(|x| x.0 == *k)
                    .map(|x| format!("{:.4}", x.1))
                    .unwrap_or_else(|| "–".into())
            });
            std::iter::once(name)
                .chain(cells)
                .chain([format!("{seconds:.3}")])
                .collect::<Vec<_>>()
        };
        let mut rows = vec![row(
            format!("amortizer ({})", self.label),
            &t.amortizer,
            t.amortizer_seconds,
        )];
        for r in &t.runs {
            let name = if r.init == crate::baseline::Init::Maml {
                format!(
                    "MAML-style: Sgd from a learned θ₀ (first-order, {} × {} tasks, {:.1} s), lr {}",
                    t.maml_iters, t.maml_tasks, t.maml_meta_seconds, r.lr
                )
            } else {
                format!("{:?} from {:?}, lr {}", r.optimizer, r.init, r.lr)
            };
            rows.push(row(name, &r.loss, r.seconds));
        }
        format!(
            "\nTest-time optimisation on the first {} tasks, same mini-batches (query {}; learning rate: best of the grid by final loss):\n\n{}",
            t.tasks,
            self.metric,
            markdown_table(header, rows)
        )
    }
}

/// The generated samples' scores, step by step, beside the noise, the floor and the optimum.
fn generation_rows(g: &super::GenerationReport) -> String {
    let mut s = format!(
        "\nGenerated samples ({} tasks, {} samples each, {}): W1 and W2 of the first {} to as many held-out points of the task; \
         precision (samples within δ = {} of a context point) and recall (context points with a sample within δ) of all:\n\n",
        g.tasks, g.samples, g.ode, g.compared, g.delta
    );
    let row = |name: String, v: &SampleScore| {
        vec![
            name,
            format!("{:.4}", v.w1),
            format!("{:.4}", v.w2),
            format!("{:.3}", v.precision),
            format!("{:.3}", v.recall),
        ]
    };
    let mut rows: Vec<Vec<String>> = g
        .steps
        .iter()
        .map(|(k, v)| {
            let plural = if *k == 1 { "" } else { "s" };
            row(format!("amortizer, {k} step{plural}"), v)
        })
        .collect();
    rows.push(row("no information: N(0, I) samples".into(), &g.none));
    if let Some(f) = &g.floor {
        rows.push(row("sampling floor: a second sample of the task".into(), f));
    }
    rows.push(row(
        format!(
            "optimal: exact field of the context, σ = {}",
            g.optimal_sigma
        ),
        &g.optimal,
    ));
    let header = ["samples", "W1", "W2", "precision", "recall"].map(String::from);
    s += &markdown_table(header.to_vec(), rows);
    if let Some(r) = g.w2_over_floor() {
        s += &format!("\nW2 after the most steps is {r:.2}× the sampling floor's.\n");
    }
    s
}
