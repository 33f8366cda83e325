//! What every training run shares, whichever model it trains: the files in its output directory
//! and their atomic writes, and Ctrl-C (the learning-rate schedule and the per-step random
//! streams are `amortize::meta`'s, shared with the web app's Train tab).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;

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
