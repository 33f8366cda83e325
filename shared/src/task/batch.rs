//! Tasks on their way into the amortizer: a batch of tasks of one shape, its context rows kept on
//! the host and cut into mini-batches step by step, its queries on the device.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use super::{TaskData, TaskDims};

/// A batch of tasks ready for the amortizer: context rows on the host (mini-batches are cut from
/// them step by step; shared, so a batch with other queries costs no copy), query inputs and
/// targets on the device.
#[derive(Clone)]
pub struct TaskBatch {
    dims: TaskDims,
    context: usize,
    obs: Arc<[f32]>,
    inputs: Arc<[f32]>,
    targets: Arc<[f32]>,
    /// Query inputs, `[B, q, in]`.
    pub query_input: Tensor<3>,
    /// Query targets, `[B, q, out]`.
    pub query_target: Tensor<3>,
    tasks: usize,
    queries: usize,
}

/// One mini-batch of every task, on the device.
pub struct MiniBatch {
    /// Observation token inputs `[B, m, obs_dim]`.
    pub obs: Tensor<3>,
    /// The predictor's inputs `[B, m, in]` (absent when the tasks carry none).
    pub inputs: Option<Tensor<3>>,
    /// The predictor's targets `[B, m, out]` (same).
    pub targets: Option<Tensor<3>>,
}

impl TaskBatch {
    /// Prepares `tasks` on `device`. All tasks must have the same shapes, context size and
    /// number of queries, and finite values.
    pub fn new(tasks: &[&TaskData], device: &Device) -> Result<Self, String> {
        let first = tasks.first().ok_or("a batch needs at least one task")?;
        let dims = first.dims;
        let (n, q) = (first.context_len(), first.query_len());
        let with_targets = first.has_context_targets();
        let mut obs = Vec::with_capacity(tasks.len() * n * dims.obs_dim);
        let (mut inputs, mut targets) = (Vec::new(), Vec::new());
        let mut qi = Vec::with_capacity(tasks.len() * q * dims.input_dim);
        let mut qt = Vec::with_capacity(tasks.len() * q * dims.output_dim);
        for (i, t) in tasks.iter().enumerate() {
            t.validate().map_err(|e| format!("task {i}: {e}"))?;
            if t.dims != dims || t.context_len() != n || t.query_len() != q {
                return Err(format!(
                    "task {i} differs in shape from task 0 (every task in a batch has the same dims, context size and query count)"
                ));
            }
            if t.has_context_targets() != with_targets {
                return Err(format!(
                    "task {i}: context targets present in some tasks only"
                ));
            }
            obs.extend_from_slice(&t.context_obs);
            inputs.extend_from_slice(&t.context_input);
            targets.extend_from_slice(&t.context_target);
            qi.extend_from_slice(&t.query_input);
            qt.extend_from_slice(&t.query_target);
        }
        let bs = tasks.len();
        Ok(Self {
            dims,
            context: n,
            obs: obs.into(),
            inputs: inputs.into(),
            targets: targets.into(),
            query_input: Tensor::from_data(TensorData::new(qi, [bs, q, dims.input_dim]), device),
            query_target: Tensor::from_data(TensorData::new(qt, [bs, q, dims.output_dim]), device),
            tasks: bs,
            queries: q,
        })
    }

    /// The same contexts with other queries, `[B, q', in]` (targets zero): e.g. the points
    /// where a generative model's field is wanted.
    pub fn with_queries(&self, query_input: Tensor<3>) -> Self {
        let [b, q, _] = query_input.dims();
        assert_eq!(b, self.tasks, "one query set per task");
        let target = Tensor::zeros([b, q, self.dims.output_dim], &query_input.device());
        Self {
            queries: q,
            query_input,
            query_target: target,
            ..self.clone()
        }
    }

    /// Tasks in the batch.
    pub fn len(&self) -> usize {
        self.tasks
    }

    /// Whether the batch holds no task (never true for a constructed batch).
    pub fn is_empty(&self) -> bool {
        self.tasks == 0
    }

    /// Context observations per task.
    pub fn context_len(&self) -> usize {
        self.context
    }

    /// Queries per task.
    pub fn query_len(&self) -> usize {
        self.queries
    }

    /// The tasks' shapes.
    pub fn dims(&self) -> TaskDims {
        self.dims
    }

    fn gather(&self, rows: &[f32], width: usize, indices: &[usize], device: &Device) -> Tensor<3> {
        let m = indices.len();
        let mut data = Vec::with_capacity(self.tasks * m * width);
        for t in 0..self.tasks {
            for &i in indices {
                let at = (t * self.context + i) * width;
                data.extend_from_slice(&rows[at..at + width]);
            }
        }
        Tensor::from_data(TensorData::new(data, [self.tasks, m, width]), device)
    }

    /// Every task's context inputs `[B, n, in]`, or `None` when the tasks carry none.
    pub fn context_inputs(&self, device: &Device) -> Option<Tensor<3>> {
        let all: Vec<usize> = (0..self.context).collect();
        (!self.inputs.is_empty())
            .then(|| self.gather(&self.inputs, self.dims.input_dim, &all, device))
    }

    /// The same context indices of every task, `m = indices.len()`.
    pub fn minibatch(&self, indices: &[usize], device: &Device) -> MiniBatch {
        assert!(
            indices.iter().all(|&i| i < self.context),
            "mini-batch index out of range"
        );
        let d = self.dims;
        let with_targets = !self.inputs.is_empty();
        MiniBatch {
            obs: self.gather(&self.obs, d.obs_dim, indices, device),
            inputs: with_targets.then(|| self.gather(&self.inputs, d.input_dim, indices, device)),
            targets: with_targets
                .then(|| self.gather(&self.targets, d.output_dim, indices, device)),
        }
    }
}
