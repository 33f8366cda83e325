//! Datasets on disk: the MNIST / FashionMNIST IDX files, checked against their published md5
//! sums before use. The directory comes from `--data` or `AMORTIZE_DATA` and holds `mnist/` and
//! `fashion/` with the original `.gz` files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use amortize::task::embeddings::{EmbeddingData, Embeddings};
use amortize::task::mnist::{decode_idx, files, ImageData, ImageSet, Images};
use amortize::task::{Sampler, TaskConfig};
use anyhow::Context;

/// The environment variable naming the data directory.
pub const DATA_ENV: &str = "AMORTIZE_DATA";

/// The data directory: the flag, else `AMORTIZE_DATA`, else `data/`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(DATA_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// Reads and checks the four files of `set` under `dir`.
pub fn load_images(set: ImageSet, dir: &Path) -> anyhow::Result<ImageData> {
    let sub = dir.join(set.dir());
    let mut arrays = Vec::with_capacity(4);
    for (name, md5) in files(set) {
        let path = sub.join(name);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (give the data directory with --data or {DATA_ENV}; it holds mnist/ and fashion/ with the original IDX .gz files)",
                path.display()
            )
        })?;
        arrays.push(decode_idx(&path.display().to_string(), &bytes, Some(md5))?);
    }
    let mut it = arrays.into_iter();
    let (ti, tl, vi, vl) = (
        it.next().expect("4 files"),
        it.next().expect("4 files"),
        it.next().expect("4 files"),
        it.next().expect("4 files"),
    );
    let train = Images::from_idx(ti, tl).map_err(|e| anyhow::anyhow!("{}: {e}", sub.display()))?;
    let test = Images::from_idx(vi, vl).map_err(|e| anyhow::anyhow!("{}: {e}", sub.display()))?;
    Ok(ImageData {
        set,
        train: Arc::new(train),
        test: Arc::new(test),
    })
}

/// Reads `<dir>/embeddings/<name>-train.safetensors` and `-test.safetensors`.
pub fn load_embeddings(name: &str, dir: &Path) -> anyhow::Result<EmbeddingData> {
    let read = |split: &str| -> anyhow::Result<Arc<Embeddings>> {
        let path = dir
            .join("embeddings")
            .join(format!("{name}-{split}.safetensors"));
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (embedding files: a safetensors file with `features` [n, d] and `labels` [n] per split)",
                path.display()
            )
        })?;
        let e =
            Embeddings::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Arc::new(e))
    };
    Ok(EmbeddingData {
        train: read("train")?,
        test: read("test")?,
    })
}

/// A sampler for `task`, loading its dataset (or `images_override`, e.g. the other dataset for
/// an out-of-distribution evaluation) from `dir` when it needs one.
pub fn sampler(
    task: &TaskConfig,
    dir: &Path,
    images_override: Option<ImageSet>,
) -> anyhow::Result<Sampler> {
    if let TaskConfig::Embeddings(c) = task {
        let data = load_embeddings(&c.name, dir)?;
        return Sampler::with_embeddings(task.clone(), data)
            .map_err(|e| anyhow::anyhow!("task: {e}"));
    }
    match task.needs_images() {
        Some(set) => {
            let images = load_images(images_override.unwrap_or(set), dir)?;
            Sampler::with_images(task.clone(), images).map_err(|e| anyhow::anyhow!("task: {e}"))
        }
        None => Sampler::new(task.clone()).map_err(|e| anyhow::anyhow!("task: {e}")),
    }
}
