//! The exported model format: everything needed to rebuild a trained amortizer anywhere, as bytes.
//!
//! Layout (little endian):
//! `b"AMORTIZE"` · u32 format version · u32 header length · header (JSON: [`BundleHeader`]) ·
//! u64 weights length · weights (Burn's burnpack bytes) · u32 CRC-32 of everything before it.
//! The checksum catches a corrupt or truncated file before anything is decoded.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::model::order::{OrderAmortizer, OrderModelConfig};
use crate::model::{Amortizer, AmortizerConfig};
use crate::refine::RefineConfig;
use crate::regime::Regime;
use crate::signal::Signal;
use crate::task::regression::{FunctionRegression, FunctionRegressionConfig};
use crate::task::scm::ScmConfig;
use crate::task::TaskConfig;

const MAGIC: &[u8; 8] = b"AMORTIZE";
/// The format version this build writes. It also reads version 1 (parametric function
/// regression with observations, the first shipped models) and version 2, whose signal names
/// `gradients` and `both` meant the per-point forms ([`crate::signal::legacy`]).
pub const FORMAT_VERSION: u32 = 3;
/// Largest header accepted (a header is a few hundred bytes; this bounds hostile input).
const MAX_HEADER: usize = 1 << 20;

/// Why a weights file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Not a file of this format.
    #[error("not an amortize weights file (the first bytes are not \"AMORTIZE\")")]
    BadMagic,
    /// A version this build does not read.
    #[error("weights format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version {
        /// The version found in the file.
        found: u32,
    },
    /// The file ends early.
    #[error("the weights file is truncated: {0}")]
    Truncated(String),
    /// The checksum does not match: the bytes were altered.
    #[error("the weights file is corrupt: checksum {found:08x} does not match the expected {expected:08x}")]
    Checksum {
        /// CRC-32 stored in the file.
        expected: u32,
        /// CRC-32 of the bytes read.
        found: u32,
    },
    /// The header is not valid JSON of the expected shape.
    #[error("the weights file's header is invalid: {0}")]
    Header(String),
    /// The weights do not fit the architecture the header describes.
    #[error("the weights do not fit the model described in the file: {0}")]
    Architecture(String),
}

/// What a bundle says about the model: enough to rebuild it, and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// The architecture, with its regime and signal.
    pub model: AmortizerConfig,
    /// The task family it was trained on.
    pub task: TaskConfig,
    /// Steps and mini-batch size it was trained with.
    pub refine: RefineConfig,
    /// Free-form provenance: training command, budget, evaluation numbers.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// What a header says about its kind of model: the magic and versions of its files, how a
/// header of each version reads, and how the model it describes is built.
pub trait Header: Serialize + Sized {
    /// The model the header describes.
    type Model: Module;
    /// The first bytes of its files.
    const MAGIC: &'static [u8; 8];
    /// The format version this build writes.
    const VERSION: u32;
    /// Every format version this build reads.
    const READS: &'static [u32];
    /// What the model is, for messages ("an amortizer").
    const KIND: &'static str;
    /// Parses (and checks) the JSON header of a file of format `version`.
    fn parse(version: u32, json: &[u8]) -> Result<Self, WeightsError>;
    /// The architecture the header describes, checked, with fresh weights on `device`.
    fn init(&self, device: &Device) -> Result<Self::Model, WeightsError>;
}

/// One format for every model: a header of its kind ([`Header`]) and its weights.
#[derive(Debug, Clone)]
pub struct Bundle<H> {
    /// Config and provenance.
    pub header: H,
    /// Burnpack bytes of the module's record.
    pub weights: Vec<u8>,
}

/// An amortizer and its header (magic `AMORTIZE`).
pub type ModelBundle = Bundle<BundleHeader>;

/// A topological-order model (paper §9.4) and its header (magic `AMZORDER`).
pub type OrderBundle = Bundle<OrderHeader>;

impl<H: Header> Bundle<H> {
    /// Captures a trained model.
    pub fn from_model(header: H, model: H::Model) -> Result<Self, WeightsError> {
        let bytes = model
            .into_record()
            .into_bytes()
            .map_err(|e| WeightsError::Architecture(e.to_string()))?;
        Ok(Self {
            header,
            weights: bytes.to_vec(),
        })
    }

    /// Rebuilds the model on `device`.
    pub fn model(&self, device: &Device) -> Result<H::Model, WeightsError> {
        let model = self.header.init(device)?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.weights.clone()))
            .map_err(|e| WeightsError::Architecture(e.to_string()))?;
        model
            .try_load_record(record)
            .map_err(|e| WeightsError::Architecture(e.to_string()))
    }

    /// Serialises to the file format.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("the header serialises");
        frame(H::MAGIC, H::VERSION, &header, &self.weights)
    }

    /// Parses the file format, checking magic, version, lengths and checksum.
    pub fn decode(bytes: &[u8]) -> Result<Self, WeightsError> {
        if let Some((_, kind)) = KINDS
            .iter()
            .find(|(magic, _)| *magic != H::MAGIC && bytes.starts_with(*magic))
        {
            return Err(WeightsError::Header(format!(
                "this is {kind}, not {}",
                H::KIND
            )));
        }
        let (version, header, weights) = unframe(bytes, H::MAGIC, H::READS)?;
        Ok(Self {
            header: H::parse(version, header)?,
            weights: weights.to_vec(),
        })
    }
}

impl Header for BundleHeader {
    type Model = Amortizer;
    const MAGIC: &'static [u8; 8] = MAGIC;
    const VERSION: u32 = FORMAT_VERSION;
    const READS: &'static [u32] = &[1, 2, FORMAT_VERSION];
    const KIND: &'static str = AMORTIZER;

    fn parse(version: u32, json: &[u8]) -> Result<Self, WeightsError> {
        let header: BundleHeader = if version == 1 {
            serde_json::from_slice::<HeaderV1>(json)
                .map_err(|e| WeightsError::Header(e.to_string()))?
                .upgrade()?
        } else {
            let mut h: BundleHeader =
                serde_json::from_slice(json).map_err(|e| WeightsError::Header(e.to_string()))?;
            if version == 2 {
                h.model.signal = crate::signal::legacy(h.model.signal);
            }
            h
        };
        if header.model.task != header.task.dims() {
            return Err(WeightsError::Header(format!(
                "the model's task shapes {:?} do not match the task {:?}",
                header.model.task,
                header.task.name()
            )));
        }
        Ok(header)
    }

    fn init(&self, device: &Device) -> Result<Amortizer, WeightsError> {
        self.model.validate().map_err(WeightsError::Header)?;
        Ok(self.model.init(device))
    }
}

/// Version 1 header: a parametric amortizer reading observations of 1-D function regression.
#[derive(Deserialize)]
struct HeaderV1 {
    regime: Regime,
    signal: Signal,
    model: ModelV1,
    task: FunctionRegressionConfig,
    refine: RefineConfig,
    #[serde(default)]
    provenance: serde_json::Value,
}

#[derive(Deserialize)]
struct ModelV1 {
    obs_dim: usize,
    state_dim: usize,
    d_model: usize,
    n_heads: usize,
    n_layers: usize,
    d_ff: usize,
}

impl HeaderV1 {
    fn upgrade(self) -> Result<BundleHeader, WeightsError> {
        let task = FunctionRegression::new(self.task.clone());
        let dims = task.dims();
        if self.model.obs_dim != dims.obs_dim || self.model.state_dim != task.state_dim() {
            return Err(WeightsError::Header(
                "version-1 header: model and task sizes disagree".into(),
            ));
        }
        Ok(BundleHeader {
            model: AmortizerConfig {
                d_model: self.model.d_model,
                n_heads: self.model.n_heads,
                n_layers: self.model.n_layers,
                d_ff: self.model.d_ff,
                ..AmortizerConfig::new(dims, self.regime, self.signal)
            },
            task: TaskConfig::FunctionRegression(self.task),
            refine: self.refine,
            provenance: self.provenance,
        })
    }
}

/// Magic of topological-order model files.
const ORDER_MAGIC: &[u8; 8] = b"AMZORDER";
/// The order-model format version this build writes and reads.
pub const ORDER_FORMAT_VERSION: u32 = 1;

const AMORTIZER: &str = "an amortizer";
const ORDER_MODEL: &str = "a topological-order model (SCM task)";
/// Every kind of model file: its magic and what it holds.
const KINDS: [(&[u8; 8], &str); 2] = [(MAGIC, AMORTIZER), (ORDER_MAGIC, ORDER_MODEL)];

/// Whether `bytes` start like a topological-order model file.
pub fn is_order_model(bytes: &[u8]) -> bool {
    bytes.starts_with(ORDER_MAGIC)
}

/// What an order-model file says about its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderHeader {
    /// The architecture.
    pub model: OrderModelConfig,
    /// The SCM family it was trained on.
    pub task: ScmConfig,
    /// Steps and mini-batch size (of samples) it was trained with.
    pub refine: RefineConfig,
    /// Free-form provenance: training command, budget, evaluation numbers.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

impl Header for OrderHeader {
    type Model = OrderAmortizer;
    const MAGIC: &'static [u8; 8] = ORDER_MAGIC;
    const VERSION: u32 = ORDER_FORMAT_VERSION;
    const READS: &'static [u32] = &[ORDER_FORMAT_VERSION];
    const KIND: &'static str = ORDER_MODEL;

    fn parse(_version: u32, json: &[u8]) -> Result<Self, WeightsError> {
        serde_json::from_slice(json).map_err(|e| WeightsError::Header(e.to_string()))
    }

    fn init(&self, device: &Device) -> Result<OrderAmortizer, WeightsError> {
        self.model.validate().map_err(WeightsError::Header)?;
        self.task.validate().map_err(WeightsError::Header)?;
        Ok(self.model.init(device))
    }
}

/// magic · u32 version · u32 header length · header · u64 weights length · weights · u32 CRC-32.
fn frame(magic: &[u8; 8], version: u32, header: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + header.len() + weights.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(weights);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a [`frame`]: magic, an accepted version, lengths and checksum; returns
/// (version, header bytes, weight bytes).
fn unframe<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    versions: &[u32],
) -> Result<(u32, &'a [u8], &'a [u8]), WeightsError> {
    if bytes.len() < magic.len() || &bytes[..magic.len()] != magic {
        return Err(WeightsError::BadMagic);
    }
    let mut r = Reader {
        bytes,
        at: magic.len(),
    };
    let version = u32::from_le_bytes(r.take::<4>("version")?);
    if !versions.contains(&version) {
        return Err(WeightsError::Version { found: version });
    }
    let header_len = u32::from_le_bytes(r.take::<4>("header length")?) as usize;
    if header_len > MAX_HEADER {
        return Err(WeightsError::Header(format!(
            "header length {header_len} exceeds {MAX_HEADER} bytes"
        )));
    }
    let header = r.slice(header_len, "header")?;
    let weights_len = u64::from_le_bytes(r.take::<8>("weights length")?);
    let weights_len = usize::try_from(weights_len)
        .map_err(|_| WeightsError::Truncated("weights length does not fit in memory".into()))?;
    let weights = r.slice(weights_len, "weights")?;
    let body_end = r.at;
    let expected = u32::from_le_bytes(r.take::<4>("checksum")?);
    if r.at != bytes.len() {
        return Err(WeightsError::Truncated(format!(
            "{} unexpected bytes after the checksum",
            bytes.len() - r.at
        )));
    }
    let found = crc32fast::hash(&bytes[..body_end]);
    if found != expected {
        return Err(WeightsError::Checksum { expected, found });
    }
    Ok((version, header, weights))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn slice(&mut self, len: usize, what: &str) -> Result<&'a [u8], WeightsError> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(WeightsError::Truncated(format!(
                "the file ends before its {what} ({} bytes expected at offset {}, {} bytes left)",
                len,
                self.at,
                self.bytes.len() - self.at
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], WeightsError> {
        let s = self.slice(N, what)?;
        Ok(s.try_into().expect("slice has length N"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regime::Regime;
    use crate::task::linear::LinearRegressionConfig;
    use burn::tensor::Device;

    /// A format-2 file's `gradients` and `both` were the per-point forms: they decode as such,
    /// so an old model is never run on the paper's gradient token it was not trained on.
    #[test]
    fn format_two_signal_names_mean_the_per_point_forms() {
        let device = Device::flex();
        let task = TaskConfig::LinearRegression(LinearRegressionConfig {
            dim: 3,
            ..Default::default()
        });
        for (old, now) in [
            (Signal::Gradients, Signal::PointGradients),
            (Signal::Both, Signal::BothPointGradients),
            (Signal::Observations, Signal::Observations),
        ] {
            let model = AmortizerConfig {
                d_model: 16,
                n_heads: 2,
                n_layers: 1,
                d_ff: 32,
                ..AmortizerConfig::new(task.dims(), Regime::Parametric, old)
            };
            let header = BundleHeader {
                model: model.clone(),
                task: task.clone(),
                refine: RefineConfig::new(),
                provenance: serde_json::Value::Null,
            };
            let bundle = ModelBundle::from_model(header, model.init(&device)).unwrap();
            // Written today (format 3): the name means what it says.
            let bytes = bundle.encode();
            assert_eq!(
                ModelBundle::decode(&bytes).unwrap().header.model.signal,
                old
            );
            // The same header in a format-2 frame: the old meaning.
            let json = serde_json::to_vec(&bundle.header).unwrap();
            let v2 = frame(MAGIC, 2, &json, &bundle.weights);
            let back = ModelBundle::decode(&v2).unwrap();
            assert_eq!(back.header.model.signal, now, "{old}");
            back.model(&device).unwrap();
        }
    }

    /// Each kind of model file, read as another kind, is refused with a message naming both
    /// (not "not an amortize weights file"); a file of no kind is refused by its magic.
    #[test]
    fn a_file_of_another_kind_is_named() {
        let order = frame(ORDER_MAGIC, ORDER_FORMAT_VERSION, b"{}", b"");
        let err = ModelBundle::decode(&order).unwrap_err().to_string();
        assert!(
            err.contains("a topological-order model (SCM task), not an amortizer"),
            "{err}"
        );
        let amortizer = frame(MAGIC, FORMAT_VERSION, b"{}", b"");
        let err = OrderBundle::decode(&amortizer).unwrap_err().to_string();
        assert!(
            err.contains("an amortizer, not a topological-order model"),
            "{err}"
        );
        for bytes in [&b"<html>not found</html>"[..], b""] {
            assert!(matches!(
                OrderBundle::decode(bytes),
                Err(WeightsError::BadMagic)
            ));
        }
    }
}
