//! Classification over precomputed embeddings (paper §9.3: ImageNet, CIFAR-10/100 through
//! DINOv2). The images and the DINOv2 weights are not reachable here, so the task reads
//! embedding files a user computed: a safetensors file with `features` (f32 `[n, d]`) and
//! `labels` (integer `[n]`), one for the training split (contexts) and one for the evaluation
//! split (queries). Each task picks `ways` classes present in both splits and relabels them
//! into `0..ways` at random, merging classes sometimes but never splitting one.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::seq::index::sample as sample_indices;
use rand::Rng;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{one_hot, LossKind, TaskData, TaskDims};

/// One split of an embedding dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Feature size d.
    pub dim: usize,
    /// `[n, d]` features.
    pub features: Vec<f32>,
    /// `[n]` class labels.
    pub labels: Vec<usize>,
}

impl Embeddings {
    /// Encodes as the safetensors file [`Embeddings::decode`] reads: `features` f32 `[n, d]`,
    /// `labels` i64 `[n]`.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let n = self.labels.len();
        if self.dim == 0 || self.features.len() != n * self.dim {
            return Err(format!(
                "{} features for {n} labels of dimension {}",
                self.features.len(),
                self.dim
            ));
        }
        let features: Vec<u8> = self.features.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Vec<u8> = self
            .labels
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect();
        use safetensors::tensor::TensorView;
        let tensors = [
            (
                "features",
                TensorView::new(Dtype::F32, vec![n, self.dim], &features)
                    .map_err(|e| e.to_string())?,
            ),
            (
                "labels",
                TensorView::new(Dtype::I64, vec![n], &labels).map_err(|e| e.to_string())?,
            ),
        ];
        safetensors::serialize(tensors, None).map_err(|e| e.to_string())
    }

    /// Decodes a safetensors file holding `features` (f32 or f64 `[n, d]`) and `labels`
    /// (u8, i32, i64 or u32 `[n]`, non-negative).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let f = st
            .tensor("features")
            .map_err(|_| "the file has no `features` tensor".to_string())?;
        let l = st
            .tensor("labels")
            .map_err(|_| "the file has no `labels` tensor".to_string())?;
        let (n, dim) = match f.shape() {
            [n, d] if *n > 0 && *d > 0 => (*n, *d),
            s => return Err(format!("`features` has shape {s:?}, expected [n, d]")),
        };
        if l.shape() != [n] {
            return Err(format!(
                "`labels` has shape {:?}, expected [{n}]",
                l.shape()
            ));
        }
        let data = f.data();
        let features: Vec<f32> = match f.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => {
                return Err(format!(
                    "`features` has dtype {other:?}, expected F32 or F64"
                ))
            }
        };
        if features.iter().any(|v| !v.is_finite()) {
            return Err("`features` holds a value that is not finite".into());
        }
        let raw = l.data();
        let labels: Vec<i64> = match l.dtype() {
            Dtype::U8 => raw.iter().map(|&v| v as i64).collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            Dtype::U32 => raw
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
            other => {
                return Err(format!(
                    "`labels` has dtype {other:?}, expected an integer type"
                ))
            }
        };
        if let Some(bad) = labels.iter().find(|&&v| !(0..1 << 24).contains(&v)) {
            return Err(format!("label {bad} is out of range"));
        }
        Ok(Self {
            dim,
            features,
            labels: labels.into_iter().map(|v| v as usize).collect(),
        })
    }

    /// Rows per class label.
    fn by_class(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut out: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &l) in self.labels.iter().enumerate() {
            out.entry(l).or_default().push(i);
        }
        out
    }
}

/// The training (context) and evaluation (query) splits, indexed by class once so that drawing a
/// task does not scan the splits.
#[derive(Debug, Clone)]
pub struct EmbeddingData {
    /// Contexts come from here.
    pub train: Arc<Embeddings>,
    /// Queries come from here.
    pub test: Arc<Embeddings>,
    train_rows: Arc<BTreeMap<usize, Vec<usize>>>,
    test_rows: Arc<BTreeMap<usize, Vec<usize>>>,
    /// Classes with rows in both splits.
    shared: Arc<Vec<usize>>,
}

impl EmbeddingData {
    /// Pairs the splits and indexes their rows by class.
    pub fn new(train: Arc<Embeddings>, test: Arc<Embeddings>) -> Self {
        let train_rows = train.by_class();
        let test_rows = test.by_class();
        let shared = train_rows
            .keys()
            .filter(|c| test_rows.contains_key(c))
            .copied()
            .collect();
        Self {
            train,
            test,
            train_rows: Arc::new(train_rows),
            test_rows: Arc::new(test_rows),
            shared: Arc::new(shared),
        }
    }
}

/// The embedding-classification task family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// The embedding set's name: the files are `<name>-train.safetensors` and
    /// `<name>-test.safetensors` (the caller decides where). Default "imagenet".
    pub name: String,
    /// Feature size d of the files. Default 768 (DINOv2 ViT-B/14).
    pub dim: usize,
    /// Classes per task (and the largest number of task labels). Default 10.
    pub ways: usize,
    /// Context examples per task. Default 64.
    pub context: usize,
    /// Query examples per task. Default 32.
    pub queries: usize,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            name: "imagenet".into(),
            dim: 768,
            ways: 10,
            context: 64,
            queries: 32,
        }
    }
}

impl EmbeddingConfig {
    /// Tokens `[features, one-hot]`, predictor input the features, `ways` logits.
    pub fn dims(&self) -> TaskDims {
        TaskDims {
            obs_dim: self.dim + self.ways,
            input_dim: self.dim,
            output_dim: self.ways,
            loss: LossKind::CrossEntropy,
        }
    }

    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "name must be letters, digits, '-' or '_', got {:?}",
                self.name
            ));
        }
        if self.dim == 0 || self.dim > 8192 {
            return Err(format!("dim must be in 1..=8192, got {}", self.dim));
        }
        if self.ways < 2 || self.ways > 1000 {
            return Err(format!("ways must be in 2..=1000, got {}", self.ways));
        }
        if self.context == 0 || self.queries == 0 {
            return Err("context and queries must be at least 1".into());
        }
        Ok(())
    }

    /// Checks that `data` fits: feature size, and at least `ways` classes in both splits.
    pub fn check_data(&self, data: &EmbeddingData) -> Result<(), String> {
        for (name, s) in [("training", &data.train), ("evaluation", &data.test)] {
            if s.dim != self.dim {
                return Err(format!(
                    "the {name} embeddings have {} features, the task expects {}",
                    s.dim, self.dim
                ));
            }
        }
        let shared = data.shared.len();
        if shared < self.ways {
            return Err(format!(
                "{shared} classes appear in both splits; a task needs {}",
                self.ways
            ));
        }
        Ok(())
    }

    /// One task: `ways` shared classes, relabelled; contexts from the training split, queries
    /// from the evaluation split, each drawn uniformly among the chosen classes' rows.
    pub fn sample<R: Rng + ?Sized>(&self, data: &EmbeddingData, rng: &mut R) -> TaskData {
        let shared = &data.shared;
        let chosen: Vec<usize> = sample_indices(rng, shared.len(), self.ways)
            .into_iter()
            .map(|i| shared[i])
            .collect();
        let relabel: Vec<usize> = (0..self.ways)
            .map(|_| rng.random_range(0..self.ways))
            .collect();
        let draw = |split: &Embeddings,
                    rows: &BTreeMap<usize, Vec<usize>>,
                    n: usize,
                    rng: &mut R|
         -> (Vec<f32>, Vec<usize>) {
            let mut x = Vec::with_capacity(n * self.dim);
            let mut y = Vec::with_capacity(n);
            for _ in 0..n {
                let slot = rng.random_range(0..self.ways);
                let class_rows = &rows[&chosen[slot]];
                let r = class_rows[rng.random_range(0..class_rows.len())];
                x.extend_from_slice(&split.features[r * self.dim..(r + 1) * self.dim]);
                y.push(relabel[slot]);
            }
            (x, y)
        };
        let (cx, cy) = draw(&data.train, &data.train_rows, self.context, rng);
        let (qx, qy) = draw(&data.test, &data.test_rows, self.queries, rng);
        let ct = one_hot(&cy, self.ways);
        let context_obs = cx
            .chunks(self.dim)
            .zip(ct.chunks(self.ways))
            .flat_map(|(x, y)| x.iter().chain(y).copied())
            .collect();
        TaskData {
            dims: self.dims(),
            context_obs,
            context_input: cx,
            context_target: ct,
            query_input: qx,
            query_target: one_hot(&qy, self.ways),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use safetensors::tensor::TensorView;

    /// What `encode` writes, `decode` reads back exactly; a length mismatch is refused.
    #[test]
    fn encode_round_trips_through_decode() {
        let e = Embeddings {
            dim: 3,
            features: (0..12).map(|i| i as f32 * 0.5 - 2.0).collect(),
            labels: vec![0, 9, 3, 3],
        };
        let back = Embeddings::decode(&e.encode().unwrap()).unwrap();
        assert_eq!(back, e);
        let bad = Embeddings {
            features: vec![0.0; 11],
            ..e
        };
        assert!(bad.encode().is_err());
    }

    /// A small generated embedding file: class c's features sit around c·e_0.
    fn file(n: usize, dim: usize, classes: usize, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        let labels: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
        let feats: Vec<f32> = labels
            .iter()
            .flat_map(|&l| {
                let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-0.1..0.1)).collect();
                v[0] += l as f32;
                v
            })
            .collect();
        let fb: Vec<u8> = feats.iter().flat_map(|v| v.to_le_bytes()).collect();
        let lb: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensors = vec![
            (
                "features",
                TensorView::new(Dtype::F32, vec![n, dim], &fb).unwrap(),
            ),
            ("labels", TensorView::new(Dtype::I64, vec![n], &lb).unwrap()),
        ];
        safetensors::serialize(tensors, None).unwrap()
    }

    #[test]
    fn embedding_files_decode_and_tasks_never_split_a_class() {
        let train = Embeddings::decode(&file(120, 4, 12, 1)).unwrap();
        let test = Embeddings::decode(&file(48, 4, 12, 2)).unwrap();
        assert_eq!((train.dim, train.labels.len()), (4, 120));
        let data = EmbeddingData::new(Arc::new(train), Arc::new(test));
        let cfg = EmbeddingConfig {
            name: "generated".into(),
            dim: 4,
            ways: 5,
            context: 40,
            queries: 20,
        };
        cfg.check_data(&data).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20 {
            let t = cfg.sample(&data, &mut rng);
            t.validate().unwrap();
            // The original class is round(feature 0); one class → one task label.
            let mut seen = std::collections::BTreeMap::new();
            for (x, y) in t.query_input.chunks(4).zip(t.query_target.chunks(5)) {
                let class = x[0].round() as i64;
                let label = y.iter().position(|&v| v == 1.0).unwrap();
                assert_eq!(
                    *seen.entry(class).or_insert(label),
                    label,
                    "class {class} split"
                );
            }
        }
        // Wrong sizes and damaged files are refused with a reason.
        let bad = EmbeddingConfig {
            dim: 5,
            ..cfg.clone()
        };
        assert!(bad.check_data(&data).unwrap_err().contains("features"));
        assert!(Embeddings::decode(b"garbage")
            .unwrap_err()
            .contains("safetensors"));
    }
}
