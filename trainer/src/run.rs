//! What every training run shares, whichever model it trains: the files in its output directory
//! and their atomic writes, and Ctrl-C (the learning-rate schedule and the per-step random
//! streams are `amortize::meta`'s, shared with the web app's Train tab).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What a resume's command is followed by in the recorded commands, before the first step it ran
/// and a closing parenthesis (the model card splits it off again).
pub const FROM_STEP: &str = " (from step ";

/// Where a run's files live inside its output directory.
pub struct RunFiles {
    /// The effective configuration (JSON).
    pub config: PathBuf,
    /// One JSON record per meta-training step.
    pub log: PathBuf,
    /// The trained model in the web format.
    pub model: PathBuf,
    /// The resumable state: weights, optimiser moments, step.
    pub checkpoint: PathBuf,
}

impl RunFiles {
    /// The files of the run in `out`.
    pub fn new(out: &Path) -> Self {
        Self {
            config: out.join("config.json"),
            log: out.join("log.jsonl"),
            model: out.join("model.amz"),
            checkpoint: out.join("checkpoint.bin"),
        }
    }
}

/// The outer loop's budget and schedule, shared by every kind of run (written flat into its
/// `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Seed of the task stream, the mini-batch schedules and the initial weights.
    pub seed: u64,
    /// Meta-training steps (optimiser steps).
    pub steps: usize,
    /// Tasks per meta-training step.
    pub tasks_per_step: usize,
    /// Peak learning rate (AdamW), after a linear warm-up, decayed by a cosine to 10%.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Evaluate on fresh tasks every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Tasks per periodic evaluation.
    pub eval_tasks: usize,
    /// Write a checkpoint every this many steps (0: only at the end; configurations of SCM runs
    /// written before those runs resumed have none).
    #[serde(default)]
    pub checkpoint_every: usize,
}

impl Budget {
    /// Checks the numbers, naming the flag at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.steps == 0 || self.steps > 10_000_000 {
            anyhow::bail!("--steps must be in 1..=10000000, got {}", self.steps);
        }
        if self.tasks_per_step == 0 || self.tasks_per_step > 4096 {
            anyhow::bail!(
                "--tasks-per-step must be in 1..=4096, got {}",
                self.tasks_per_step
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            anyhow::bail!("--lr must be in (0, 1], got {}", self.lr);
        }
        if self.eval_tasks == 0 || self.eval_tasks > 100_000 {
            anyhow::bail!(
                "--eval-tasks must be in 1..=100000, got {}",
                self.eval_tasks
            );
        }
        Ok(())
    }

    /// The learning rate at `step` (1-based): linear warm-up, then a cosine decay to 10%.
    pub fn lr_at(&self, step: usize) -> f64 {
        amortize::meta::lr_at(self.lr, self.warmup, self.steps, step)
    }
}

/// One meta-step's line of `log.jsonl` (fields in the order the files have always had).
#[derive(Debug, Serialize)]
pub struct StepRecord {
    /// The held-out evaluation, on the steps that ran one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<serde_json::Value>,
    /// The greedy objective: the mean over the refinement steps of their query losses.
    pub loss: f64,
    /// The query loss after the first refinement step.
    pub loss_first_step: f64,
    /// The query loss after the last refinement step.
    pub loss_last_step: f64,
    /// The learning rate of this step.
    pub lr: f64,
    /// Training seconds so far.
    pub seconds: f64,
    /// The meta-step (1-based).
    pub step: usize,
}

impl StepRecord {
    /// The record of `step` from its per-refinement-step losses; a loss that is not finite stops
    /// the run with advice.
    pub fn new(step: usize, per_step: &[f64], lr: f64, seconds: f64) -> anyhow::Result<Self> {
        let loss = per_step.iter().sum::<f64>() / per_step.len() as f64;
        if !loss.is_finite() {
            anyhow::bail!("the loss became {loss} at step {step}; lower --lr");
        }
        Ok(Self {
            eval: None,
            loss,
            loss_first_step: per_step[0],
            loss_last_step: per_step[per_step.len() - 1],
            lr,
            seconds,
            step,
        })
    }

    /// The loss smoothed over steps for the progress bar (`ema` carries it from step to step).
    pub fn smoothed(&self, ema: &mut Option<f64>) -> f64 {
        let s = ema.map_or(self.loss, |e| 0.98 * e + 0.02 * self.loss);
        *ema = Some(s);
        s
    }
}

/// Set by Ctrl-C: the loop writes a checkpoint after the current step and stops.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file, even if training is killed mid-write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's record carries the mean loss and the first and last steps' losses, writes the
    /// same keys as the logs always had, and refuses a loss that is not finite.
    #[test]
    fn step_records_average_and_refuse_non_finite_losses() {
        let r = StepRecord::new(4, &[3.0, 2.0, 1.0], 1e-3, 2.5).unwrap();
        assert_eq!(
            (r.loss, r.loss_first_step, r.loss_last_step),
            (2.0, 3.0, 1.0)
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "loss",
                "loss_first_step",
                "loss_last_step",
                "lr",
                "seconds",
                "step"
            ]
        );
        let mut ema = None;
        assert_eq!(r.smoothed(&mut ema), 2.0);
        let next = StepRecord::new(5, &[1.0], 1e-3, 3.0).unwrap();
        assert!((next.smoothed(&mut ema) - (0.98 * 2.0 + 0.02 * 1.0)).abs() < 1e-12);
        let err = StepRecord::new(6, &[1.0, f64::NAN], 1e-3, 3.5)
            .err()
            .unwrap();
        assert!(err.to_string().contains("at step 6"), "{err}");
    }

    /// The budget's checks name the flag at fault.
    #[test]
    fn budgets_are_checked_by_flag() {
        let ok = Budget {
            seed: 0,
            steps: 10,
            tasks_per_step: 4,
            lr: 1e-3,
            warmup: 2,
            eval_every: 0,
            eval_tasks: 8,
            checkpoint_every: 0,
        };
        ok.validate().unwrap();
        for (bad, flag) in [
            (
                Budget {
                    steps: 0,
                    ..ok.clone()
                },
                "--steps",
            ),
            (
                Budget {
                    tasks_per_step: 0,
                    ..ok.clone()
                },
                "--tasks-per-step",
            ),
            (
                Budget {
                    lr: f64::NAN,
                    ..ok.clone()
                },
                "--lr",
            ),
            (
                Budget {
                    eval_tasks: 0,
                    ..ok.clone()
                },
                "--eval-tasks",
            ),
        ] {
            let err = bad.validate().err().unwrap().to_string();
            assert!(err.contains(flag), "{err}");
        }
        assert!(
            (ok.lr_at(10) - 1e-4).abs() < 1e-12,
            "the schedule ends at a tenth"
        );
    }
}
