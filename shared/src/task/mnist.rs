//! MNIST and FashionMNIST projection tasks (paper §9.2): each task draws a random projection of
//! the 784 pixels to `dim` features (entries N(0, 1), scaled by 1/√784) and a random relabelling
//! of the 10 classes that may merge classes but never splits one; the context comes from the
//! training split, the queries from the test split.
//!
//! This module decodes the original IDX files from bytes (gzip, checked against the published
//! md5 sums); reading them from disk or downloading them is the caller's business.

use std::io::Read;
use std::sync::Arc;

use md5::{Digest, Md5};
use rand::seq::index::sample as sample_indices;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{one_hot, LossKind, TaskData, TaskDims};

/// Pixels per image.
pub const PIXELS: usize = 28 * 28;
/// Classes of both datasets.
pub const CLASSES: usize = 10;

/// Which image dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageSet {
    /// Handwritten digits.
    #[default]
    Mnist,
    /// Zalando's clothing images.
    Fashion,
}

impl ImageSet {
    /// The directory name under the data root (`mnist/`, `fashion/`).
    pub fn dir(self) -> &'static str {
        match self {
            ImageSet::Mnist => "mnist",
            ImageSet::Fashion => "fashion",
        }
    }

    /// The other dataset: the out-of-distribution evaluation of a model trained on this one.
    pub fn other(self) -> Self {
        match self {
            ImageSet::Mnist => ImageSet::Fashion,
            ImageSet::Fashion => ImageSet::Mnist,
        }
    }
}

/// The four files of a dataset, with their published md5 sums (of the `.gz` files).
pub fn files(set: ImageSet) -> [(&'static str, &'static str); 4] {
    match set {
        ImageSet::Mnist => [
            (
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        ],
        ImageSet::Fashion => [
            (
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ],
    }
}

/// Why an IDX file could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IdxError {
    /// The bytes are not the published file.
    #[error("{file}: md5 {found} does not match the published {expected}: the file is damaged or not the original")]
    Checksum {
        /// The file's name.
        file: String,
        /// The published sum.
        expected: String,
        /// The sum of the bytes given.
        found: String,
    },
    /// Not gzip, or the stream ends early.
    #[error("{file}: not a readable gzip stream: {reason}")]
    Gzip {
        /// The file's name.
        file: String,
        /// What the decompressor said.
        reason: String,
    },
    /// The IDX header is wrong.
    #[error("{file}: invalid IDX header: {reason}")]
    Header {
        /// The file's name.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// An unsigned-byte IDX array: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<u8>,
}

/// md5 of `bytes`, as lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes a gzipped IDX file of unsigned bytes, after checking its md5 against `expected`
/// (when given). `file` names it in errors.
pub fn decode_idx(file: &str, gz: &[u8], expected: Option<&str>) -> Result<IdxArray, IdxError> {
    if let Some(expected) = expected {
        let found = md5_hex(gz);
        if found != expected {
            return Err(IdxError::Checksum {
                file: file.into(),
                expected: expected.into(),
                found,
            });
        }
    }
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .map_err(|e| IdxError::Gzip {
            file: file.into(),
            reason: e.to_string(),
        })?;
    parse_idx(file, &raw)
}

/// Parses raw (decompressed) IDX bytes: `0 0 0x08 ndim`, `ndim` big-endian u32 sizes, the data.
pub fn parse_idx(file: &str, raw: &[u8]) -> Result<IdxArray, IdxError> {
    let bad = |reason: String| IdxError::Header {
        file: file.into(),
        reason,
    };
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 {
        return Err(bad(
            "the magic number does not start with two zero bytes".into()
        ));
    }
    if raw[2] != 0x08 {
        return Err(bad(format!(
            "element type 0x{:02x}, expected 0x08 (unsigned byte)",
            raw[2]
        )));
    }
    let ndim = raw[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(bad(format!("{ndim} dimensions, expected 1 to 4")));
    }
    let header = 4 + 4 * ndim;
    if raw.len() < header {
        return Err(bad("the file ends inside the header".into()));
    }
    let shape: Vec<usize> = (0..ndim)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize
        })
        .collect();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("the sizes overflow".into()))?;
    if raw.len() - header != count {
        return Err(bad(format!(
            "the header promises {count} values ({shape:?}) but {} follow",
            raw.len() - header
        )));
    }
    Ok(IdxArray {
        shape,
        data: raw[header..].to_vec(),
    })
}

/// One split of an image dataset: 28×28 images and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// `[n, 784]` pixel values 0..=255.
    pub pixels: Vec<u8>,
    /// `[n]` labels 0..=9.
    pub labels: Vec<u8>,
}

impl Images {
    /// Pairs an images file with a labels file, checking shapes and label range.
    pub fn from_idx(images: IdxArray, labels: IdxArray) -> Result<Self, String> {
        if images.shape.len() != 3 || images.shape[1] * images.shape[2] != PIXELS {
            return Err(format!(
                "images have shape {:?}, expected [n, 28, 28]",
                images.shape
            ));
        }
        if labels.shape.len() != 1 || labels.shape[0] != images.shape[0] {
            return Err(format!(
                "{} labels for {} images",
                labels.shape.first().copied().unwrap_or(0),
                images.shape[0]
            ));
        }
        if let Some(&l) = labels.data.iter().find(|&&l| l as usize >= CLASSES) {
            return Err(format!("label {l} is not a class 0..=9"));
        }
        Ok(Self {
            pixels: images.data,
            labels: labels.data,
        })
    }

    /// Images in the split.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The training and test splits of one dataset.
#[derive(Debug, Clone)]
pub struct ImageData {
    /// Which dataset.
    pub set: ImageSet,
    /// Context images come from here.
    pub train: Arc<Images>,
    /// Query images come from here.
    pub test: Arc<Images>,
}

/// The projection-classification task family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionConfig {
    /// The dataset trained on. Default MNIST.
    pub dataset: ImageSet,
    /// Projected dimension. Default 100.
    pub dim: usize,
    /// Context images per task (from the training split). Default 64.
    pub context: usize,
    /// Query images per task (from the test split). Default 32.
    pub queries: usize,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            dataset: ImageSet::Mnist,
            dim: 100,
            context: 64,
            queries: 32,
        }
    }
}

impl ProjectionConfig {
    /// Tokens `[P x, one-hot label]`, predictor input P x, 10 logits, cross-entropy.
    pub fn dims(&self) -> TaskDims {
        TaskDims {
            obs_dim: self.dim + CLASSES,
            input_dim: self.dim,
            output_dim: CLASSES,
            loss: LossKind::CrossEntropy,
        }
    }

    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        if self.dim == 0 || self.dim > PIXELS {
            return Err(format!("dim must be in 1..={PIXELS}, got {}", self.dim));
        }
        if self.context == 0 || self.queries == 0 || self.context > 60_000 || self.queries > 10_000
        {
            return Err("context must be in 1..=60000 and queries in 1..=10000".into());
        }
        Ok(())
    }

    /// Samples one task from `data` (which may be the other dataset, for out-of-distribution
    /// evaluation).
    pub fn sample<R: Rng + ?Sized>(&self, data: &ImageData, rng: &mut R) -> ProjectionTask {
        let scale = 1.0 / (PIXELS as f32).sqrt();
        let projection: Vec<f32> = (0..PIXELS * self.dim)
            .map(|_| StandardNormal.sample(rng))
            .map(|v: f32| v * scale)
            .collect();
        let relabel: Vec<usize> = (0..CLASSES).map(|_| rng.random_range(0..CLASSES)).collect();
        let pick = |split: &Images, n: usize, rng: &mut R| -> Vec<usize> {
            if n <= split.len() {
                sample_indices(rng, split.len(), n).into_vec()
            } else {
                (0..n).map(|_| rng.random_range(0..split.len())).collect()
            }
        };
        let ctx = pick(&data.train, self.context, rng);
        let qry = pick(&data.test, self.queries, rng);
        let project = |split: &Images, idx: &[usize]| -> (Vec<f32>, Vec<usize>) {
            let mut x = vec![0.0f32; idx.len() * self.dim];
            for (row, &i) in idx.iter().enumerate() {
                let img = &split.pixels[i * PIXELS..(i + 1) * PIXELS];
                let out = &mut x[row * self.dim..(row + 1) * self.dim];
                for (p, &v) in img.iter().enumerate() {
                    if v == 0 {
                        continue;
                    }
                    let v = v as f32 / 255.0;
                    let w = &projection[p * self.dim..(p + 1) * self.dim];
                    for (o, &wk) in out.iter_mut().zip(w) {
                        *o += v * wk;
                    }
                }
            }
            let y = idx
                .iter()
                .map(|&i| relabel[split.labels[i] as usize])
                .collect();
            (x, y)
        };
        let (cx, cy) = project(&data.train, &ctx);
        let (qx, qy) = project(&data.test, &qry);
        let ctarget = one_hot(&cy, CLASSES);
        let context_obs = cx
            .chunks(self.dim)
            .zip(ctarget.chunks(CLASSES))
            .flat_map(|(x, y)| x.iter().chain(y).copied())
            .collect();
        ProjectionTask {
            data: TaskData {
                dims: self.dims(),
                context_obs,
                context_input: cx,
                context_target: ctarget,
                query_input: qx,
                query_target: one_hot(&qy, CLASSES),
            },
            relabel,
            context_labels: cy,
            query_labels: qy,
            context_indices: ctx,
            query_indices: qry,
        }
    }
}

/// A sampled projection task.
#[derive(Debug, Clone)]
pub struct ProjectionTask {
    /// Encoded for the amortizer.
    pub data: TaskData,
    /// The relabelling: original class → task label.
    pub relabel: Vec<usize>,
    /// Task labels of the context images.
    pub context_labels: Vec<usize>,
    /// Task labels of the query images.
    pub query_labels: Vec<usize>,
    /// Which training images form the context.
    pub context_indices: Vec<usize>,
    /// Which test images form the queries.
    pub query_indices: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use std::io::Write;

    fn gz(raw: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(raw).unwrap();
        e.finish().unwrap()
    }

    fn idx(shape: &[u32], data: &[u8]) -> Vec<u8> {
        let mut raw = vec![0, 0, 8, shape.len() as u8];
        for d in shape {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw.extend_from_slice(data);
        raw
    }

    #[test]
    fn idx_reader_checks_sum_and_header() {
        let good = gz(&idx(&[3], &[1, 2, 3]));
        let sum = md5_hex(&good);
        let a = decode_idx("l", &good, Some(&sum)).unwrap();
        assert_eq!(a.shape, vec![3]);
        assert_eq!(a.data, vec![1, 2, 3]);
        // Wrong checksum: named, with both sums.
        let e = decode_idx("l", &good, Some("00000000000000000000000000000000")).unwrap_err();
        assert!(matches!(e, IdxError::Checksum { .. }));
        assert!(e.to_string().contains("does not match"));
        // Header promising more than follows, wrong type byte, not gzip.
        let short = gz(&idx(&[4], &[1, 2, 3]));
        assert!(matches!(
            decode_idx("l", &short, None).unwrap_err(),
            IdxError::Header { .. }
        ));
        let mut wrong_type = idx(&[3], &[1, 2, 3]);
        wrong_type[2] = 0x0D;
        assert!(decode_idx("l", &gz(&wrong_type), None)
            .unwrap_err()
            .to_string()
            .contains("element type"));
        assert!(matches!(
            decode_idx("l", b"plain bytes", None).unwrap_err(),
            IdxError::Gzip { .. }
        ));
    }

    fn fake_images(n: usize, seed: u64) -> Images {
        let mut rng = StdRng::seed_from_u64(seed);
        Images {
            pixels: (0..n * PIXELS)
                .map(|_| rng.random_range(0..=255u8))
                .collect(),
            labels: (0..n).map(|i| (i % CLASSES) as u8).collect(),
        }
    }

    #[test]
    fn relabelling_never_splits_a_class() {
        let data = ImageData {
            set: ImageSet::Mnist,
            train: Arc::new(fake_images(200, 1)),
            test: Arc::new(fake_images(50, 2)),
        };
        let cfg = ProjectionConfig {
            dim: 8,
            context: 100,
            queries: 40,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut merged = false;
        for _ in 0..50 {
            let t = cfg.sample(&data, &mut rng);
            t.data.validate().unwrap();
            // Images of one original class all carry one task label (in context and queries
            // alike): a class is never split.
            let mut seen = [None; CLASSES];
            for (labels, idx, split) in [
                (&t.context_labels, &t.context_indices, &data.train),
                (&t.query_labels, &t.query_indices, &data.test),
            ] {
                for (&l, &i) in labels.iter().zip(idx.iter()) {
                    let original = split.labels[i] as usize;
                    assert!(
                        seen[original].is_none_or(|s| s == l),
                        "class {original} split"
                    );
                    seen[original] = Some(l);
                }
            }
            let distinct: std::collections::BTreeSet<_> = t.relabel.iter().collect();
            merged |= distinct.len() < CLASSES;
            // One-hot targets agree with the labels.
            for (row, &l) in t.data.query_target.chunks(CLASSES).zip(&t.query_labels) {
                assert_eq!(row[l], 1.0);
                assert_eq!(row.iter().sum::<f32>(), 1.0);
            }
        }
        assert!(merged, "a random relabelling merges classes sometimes");
    }
}
