//! What every training run shares, whichever model it trains: the files in its output directory
//! and their atomic writes, the learning-rate schedule, the per-step random streams, and Ctrl-C.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;

/// What a resume's command is followed by in the recorded commands, before the first step it ran
/// and a closing parenthesis (the model card splits it off again).
pub const FROM_STEP: &str = " (from step ";

/// Linear warm-up to `lr` over `warmup` steps, then cosine decay to a tenth of it at `steps`.
pub fn lr_at(lr: f64, warmup: usize, steps: usize, step: usize) -> f64 {
    if step <= warmup {
        return lr * step as f64 / warmup.max(1) as f64;
    }
    let span = (steps.saturating_sub(warmup)).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

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

/// The random stream of meta-training step `step`: a function of the seed and the step only, so a
/// resumed run draws exactly the tasks and mini-batches an uninterrupted one would.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    // SplitMix64 finaliser of (seed, step): distinct, well-mixed seeds per step.
    let mut z = seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
