//! A resumable state: the run's step, configuration and card, the model's weights and the
//! optimiser's state in one file, written atomically and checksummed.

use std::fs;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::RunConfig;
use crate::run::write_atomic;

/// What a checkpoint says besides the tensors.
#[derive(Serialize, Deserialize)]
#[serde(bound = "C: RunConfig")]
pub(super) struct CheckpointState<C> {
    pub step: usize,
    pub ema: Option<f64>,
    pub seconds: f64,
    pub config: C,
    /// The command that started the run, then each resume's with the step it resumed from
    /// (empty in checkpoints written before commands were recorded).
    #[serde(default)]
    pub commands: Vec<String>,
    /// The provenance of the model the run started from (`--init`), for its model card.
    #[serde(default)]
    pub init_provenance: serde_json::Value,
    /// The last held-out evaluation, for the card of a model saved after a resume.
    #[serde(default)]
    pub last_eval: serde_json::Value,
}

/// The state and the Burnpack bytes of the model's record (parameter ids included, which key
/// the optimiser) and of the optimiser's state.
pub(super) struct Checkpoint<C> {
    pub state: CheckpointState<C>,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"AMZCKPT1";

impl<C: RunConfig> Checkpoint<C> {
    /// magic · (u64 length · bytes) for the state, the model and the optimiser · u32 CRC-32.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let state = serde_json::to_vec(&self.state)?;
        let mut out = CHECKPOINT_MAGIC.to_vec();
        for part in [&state, &self.model, &self.optimizer] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        write_atomic(path, &out)
    }

    /// Reads and checks a checkpoint; its configuration in today's terms.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = fs::read(path).with_context(|| {
            format!(
                "reading {} (no checkpoint to resume from; start without --resume)",
                path.display()
            )
        })?;
        let bad = || anyhow::anyhow!("{} is not a valid checkpoint", path.display());
        if bytes.len() < 12 || &bytes[..8] != CHECKPOINT_MAGIC {
            return Err(bad());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(anyhow::anyhow!(
                "{} is damaged (checksum mismatch)",
                path.display()
            ));
        }
        let mut rest = &body[8..];
        let mut parts = Vec::new();
        for _ in 0..3 {
            if rest.len() < 8 {
                return Err(bad());
            }
            let n = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            rest = &rest[8..];
            if rest.len() < n {
                return Err(bad());
            }
            parts.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let optimizer = parts.pop().expect("three parts");
        let model = parts.pop().expect("three parts");
        let mut state: CheckpointState<C> = serde_json::from_slice(&parts[0])
            .with_context(|| format!("{}: bad state record", path.display()))?;
        state.config = state.config.upgrade();
        Ok(Self {
            state,
            model,
            optimizer,
        })
    }
}
