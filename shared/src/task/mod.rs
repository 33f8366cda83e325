//! Task samplers. A task samples an [`Episode`]: context observations, query observations, and
//! what the predictor is scored against on the queries.

pub mod regression;

/// One task's data, host-side and row-major.
///
/// Context points are what the amortizer reads, in mini-batches; query points are what its
/// prediction is scored on.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Dimension of one input x.
    pub x_dim: usize,
    /// Dimension of one output y.
    pub y_dim: usize,
    /// Context inputs, `[n, x_dim]`.
    pub context_x: Vec<f32>,
    /// Context outputs (noisy observations), `[n, y_dim]`.
    pub context_y: Vec<f32>,
    /// Query inputs, `[q, x_dim]`.
    pub query_x: Vec<f32>,
    /// Query targets, `[q, y_dim]`.
    pub query_y: Vec<f32>,
}

impl Episode {
    /// Number of context points.
    pub fn context_len(&self) -> usize {
        self.context_x.len() / self.x_dim
    }

    /// Number of query points.
    pub fn query_len(&self) -> usize {
        self.query_x.len() / self.x_dim
    }
}
