//! The implicit regime's query attention: every query token, with its carried state, reads the
//! mini-batch's observation tokens (each query its own prefix of them), through the encoder
//! under a mask or computed directly, in chunks of queries.

use burn::tensor::Tensor;

use super::encoder::feed_forward;
use super::mask::{self, Attention};
use super::Amortizer;

/// Queries per chunk when a step has many queries (see `Amortizer::attend_queries`).
const QUERY_CHUNK: usize = 32;

impl Amortizer {
    /// Runs the transformer over `[o_1..o_m, q_1..q_Q]` per task and returns the query rows
    /// `[B, Q, d]`. A query attends only to its prefix of the observations and to itself, so
    /// queries are independent of each other. Computed directly
    /// ([`attend_direct`](Self::attend_direct)); the masked encoder
    /// ([`attend_masked`](Self::attend_masked)) is the fallback for layers the direct path does
    /// not reproduce.
    pub(super) fn attend_queries(
        &self,
        obs: Tensor<3>,
        queries: Tensor<3>,
        prefixes: &[usize],
    ) -> Tensor<3> {
        if obs.dims()[1] > 0 && self.plain_attention() {
            return self.attend_direct(obs, queries, prefixes);
        }
        self.attend_masked(obs, queries, prefixes)
    }

    /// [`attend_queries`](Self::attend_queries) through the encoder under the `(m + Q)²` mask.
    /// When there are many queries (a flow's samples), they are cut into chunks of
    /// `QUERY_CHUNK`, each run beside its own copy of the observations as a task of the batch:
    /// the attention cost falls from (m + Q)² to (m + c)² per chunk.
    pub(super) fn attend_masked(
        &self,
        obs: Tensor<3>,
        queries: Tensor<3>,
        prefixes: &[usize],
    ) -> Tensor<3> {
        let [batch, q, d] = queries.dims();
        let m = obs.dims()[1];
        let device = queries.device();
        let c = QUERY_CHUNK;
        if q <= 2 * c {
            let t = m + q;
            let tokens = Tensor::cat(vec![obs, queries], 1);
            let mask = mask::batch_mask(
                mask::query_mask(m, q, prefixes, self.config.attention),
                batch,
                t,
                &device,
            );
            let h = self.run(tokens, mask);
            return h.slice([0..batch, m..t, 0..d]);
        }
        let chunks = q.div_ceil(c);
        let padded = chunks * c;
        let (queries, prefixes) = if padded > q {
            let pad = Tensor::zeros([batch, padded - q, d], &device);
            let mut p = Vec::with_capacity(batch * padded);
            for task in 0..batch {
                p.extend_from_slice(&prefixes[task * q..(task + 1) * q]);
                p.extend(std::iter::repeat_n(m.max(1), padded - q));
            }
            (Tensor::cat(vec![queries, pad], 1), p)
        } else {
            (queries, prefixes.to_vec())
        };
        let rows = batch * chunks;
        let queries = queries.reshape([rows, c, d]);
        let obs = obs
            .unsqueeze_dim::<4>(1)
            .expand([batch, chunks, m, d])
            .reshape([rows, m, d]);
        let t = m + c;
        let tokens = Tensor::cat(vec![obs, queries], 1);
        let mask = mask::batch_mask(
            mask::query_mask(m, c, &prefixes, self.config.attention),
            rows,
            t,
            &device,
        );
        let h = self.run(tokens, mask);
        h.slice([0..rows, m..t, 0..d])
            .reshape([batch, padded, d])
            .slice([0..batch, 0..q, 0..d])
    }

    /// Whether every layer is the plain pre-norm one `attend_direct` reproduces (always, for a
    /// model built by [`AmortizerConfig::init`]; a guard against Burn's other options).
    pub(super) fn plain_attention(&self) -> bool {
        self.encoder
            .layers
            .iter()
            .all(|l| l.norm_first && !l.mha.quiet_softmax)
    }

    /// [`attend_queries`](Self::attend_queries) computed directly: the same transformer, without
    /// the `(m + Q)²` mask. The observations run through the layers once per task; each query
    /// attends to the keys of its prefix of them and to its own, `m + 1` scores (the prefix
    /// masks the others, `[B, Q, m]`, only when some query reads less than all m), and no copy
    /// of the observations is made per chunk of queries.
    pub(super) fn attend_direct(
        &self,
        obs: Tensor<3>,
        queries: Tensor<3>,
        prefixes: &[usize],
    ) -> Tensor<3> {
        let [batch, q, d] = queries.dims();
        let m = obs.dims()[1];
        let device = queries.device();
        let prefix_mask = prefixes.iter().any(|&p| p < m).then(|| {
            let hidden: Vec<bool> = prefixes
                .iter()
                .flat_map(|&p| (0..m).map(move |col| col >= p))
                .collect();
            Tensor::<3, burn::tensor::Bool>::from_data(
                burn::tensor::TensorData::new(hidden, [batch, q, m]),
                &device,
            )
            .unsqueeze_dim::<4>(1)
        });
        let heads = |t: Tensor<3>, h: usize| {
            let [b, n, _] = t.dims();
            t.reshape([b, n, h, d / h]).swap_dims(1, 2)
        };
        let merge = |t: Tensor<4>| {
            let [b, _, n, _] = t.dims();
            t.swap_dims(1, 2).reshape([b, n, d])
        };
        let obs_mask = (self.config.attention == Attention::Causal).then(|| {
            mask::shared_mask(
                mask::task_state_mask(0, m, Attention::Causal),
                batch,
                m,
                &device,
            )
            .unsqueeze_dim::<4>(1)
        });
        let (mut ho, mut hq) = (obs, queries);
        let last = self.encoder.layers.len().saturating_sub(1);
        for (i, layer) in self.encoder.layers.iter().enumerate() {
            let mha = &layer.mha;
            let (h, scale) = (mha.n_heads, 1.0 / (mha.d_k as f32).sqrt());
            let feed_forward =
                |x: Tensor<3>| x.clone() + feed_forward(&layer.pwff, layer.norm_1.forward(x));
            let xo = layer.norm_2.forward(ho.clone());
            let xq = layer.norm_2.forward(hq.clone());
            let ko = heads(mha.key.forward(xo.clone()), h);
            let vo = heads(mha.value.forward(xo.clone()), h);
            let qq = heads(mha.query.forward(xq.clone()), h);
            let kq = heads(mha.key.forward(xq.clone()), h);
            let vq = heads(mha.value.forward(xq), h);
            // Each query: softmax over [its m observation scores, its own score].
            let mut to_obs = qq.clone().matmul(ko.clone().transpose()) * scale;
            if let Some(mask) = &prefix_mask {
                to_obs = to_obs.mask_fill(mask.clone(), mha.min_float);
            }
            let to_self = (qq * kq).sum_dim(3) * scale;
            let weights =
                burn::tensor::activation::softmax(Tensor::cat(vec![to_obs, to_self], 3), 3);
            let [b, nh, nq, _] = weights.dims();
            let w_obs = weights.clone().slice([0..b, 0..nh, 0..nq, 0..m]);
            let w_self = weights.slice([0..b, 0..nh, 0..nq, m..m + 1]);
            let context = w_obs.matmul(vo.clone()) + vq * w_self;
            hq = feed_forward(hq + mha.output.forward(merge(context)));
            // The observations' own pass (they never read queries); the last layer's output
            // at the observations is never read.
            if i < last {
                let qo = heads(mha.query.forward(xo), h);
                let mut scores = qo.matmul(ko.transpose()) * scale;
                if let Some(mask) = &obs_mask {
                    scores = scores.mask_fill(mask.clone(), mha.min_float);
                }
                let weights = burn::tensor::activation::softmax(scores, 3);
                ho = feed_forward(ho + mha.output.forward(merge(weights.matmul(vo))));
            }
        }
        self.norm.forward(hq)
    }
}
