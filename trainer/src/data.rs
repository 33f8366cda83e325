//! Datasets on disk: the MNIST / FashionMNIST IDX files, checked against their published md5
//! sums before use. The directory comes from `--data` or `AMORTIZE_DATA` and holds `mnist/` and
//! `fashion/` with the original `.gz` files; `amortize data download` fetches them from the
//! canonical mirrors (md5-checked before anything is written).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use amortize::task::embeddings::{EmbeddingData, Embeddings};
use amortize::task::mnist::{decode_idx, files, md5_hex, ImageData, ImageSet, Images};
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
    Ok(EmbeddingData::new(read("train")?, read("test")?))
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

/// Canonical mirrors of the IDX files, tried in order.
pub fn mirrors(set: ImageSet) -> &'static [&'static str] {
    match set {
        ImageSet::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        ImageSet::Fashion => &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ],
    }
}

/// Largest file accepted from a mirror (the biggest IDX file is 26 MB).
const MAX_DOWNLOAD: u64 = 64 << 20;

/// Checks the four files of `set` under `dir` against their published md5 sums: one line per
/// file, `Err` naming the first that is missing or damaged.
pub fn verify(set: ImageSet, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for (name, md5) in files(set) {
        let path = dir.join(set.dir()).join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let found = md5_hex(&bytes);
        anyhow::ensure!(
            found == md5,
            "{}: md5 {found} does not match the published {md5}",
            path.display()
        );
        lines.push(format!("ok  {md5}  {}", path.display()));
    }
    Ok(lines)
}

/// Downloads the files of `set` that are missing or damaged under `dir`, from `mirrors` in
/// order, checking each file's md5 before it is moved into place (atomically): a bad download
/// leaves nothing behind.
pub fn download(set: ImageSet, dir: &Path, mirrors: &[String]) -> anyhow::Result<Vec<String>> {
    let sub = dir.join(set.dir());
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    let mut lines = Vec::new();
    for (name, md5) in files(set) {
        let path = sub.join(name);
        if std::fs::read(&path).is_ok_and(|b| md5_hex(&b) == md5) {
            lines.push(format!("present  {}", path.display()));
            continue;
        }
        let mut errors = Vec::new();
        let mut done = false;
        for base in mirrors {
            let url = format!("{}/{name}", base.trim_end_matches('/'));
            match fetch(&url) {
                Ok(bytes) if md5_hex(&bytes) == md5 => {
                    crate::run::write_atomic(&path, &bytes)?;
                    lines.push(format!("downloaded  {url}"));
                    done = true;
                    break;
                }
                Ok(bytes) => errors.push(format!(
                    "{url}: md5 {} does not match the published {md5}",
                    md5_hex(&bytes)
                )),
                Err(e) => errors.push(format!("{url}: {e:#}")),
            }
        }
        anyhow::ensure!(
            done,
            "could not download {name}:\n  {}",
            errors.join("\n  ")
        );
    }
    Ok(lines)
}

fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    let response = ureq::get(url).call()?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_DOWNLOAD)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
