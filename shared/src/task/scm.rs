//! Structural causal models for topological-order prediction (paper §9.4), an AVICI-style
//! simulator written here.
//!
//! A task is an SCM over `nodes` variables: a DAG, a mechanism per node (linear, or random
//! Fourier features of its parents) and independent noise; the data are `samples` draws, each
//! variable standardised. The target is the DAG's topological order; the model predicts the
//! leaves (nodes without children), removes them and repeats (Scetbon et al.).
//!
//! In distribution: Erdős–Rényi or scale-free graphs, Gaussian noise. Out of distribution:
//! Watts–Strogatz or stochastic-block-model graphs, Laplace noise, and mechanism parameters
//! drawn from ranges disjoint from the in-distribution ones.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};

/// Graph families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphKind {
    /// Erdős–Rényi: every pair linked independently (in distribution).
    ErdosRenyi,
    /// Barabási–Albert preferential attachment (in distribution).
    ScaleFree,
    /// Watts–Strogatz small world (out of distribution).
    WattsStrogatz,
    /// Stochastic block model (out of distribution).
    StochasticBlock,
}

/// Mechanism families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// x_j = Σ w_ij x_i + b + ε.
    Linear,
    /// x_j = c · Σ_m a_m √(2/M) cos(ω_m · x_pa + φ_m) + b + ε (random Fourier features).
    Rff,
}

/// Which side of the distribution shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Shift {
    /// ER / scale-free, Gaussian noise, in-distribution parameter ranges.
    #[default]
    In,
    /// Watts–Strogatz / SBM, Laplace noise, disjoint parameter ranges.
    Out,
}

/// The SCM task family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScmConfig {
    /// Variables per SCM. Default 10.
    pub nodes: usize,
    /// Samples per dataset. Default 200.
    pub samples: usize,
    /// In or out of distribution.
    pub shift: Shift,
    /// Mechanisms to draw from (each SCM uses one). Default both.
    pub mechanisms: Vec<Mechanism>,
    /// Expected parents per node. Default 2.
    pub edges_per_node: f64,
}

impl Default for ScmConfig {
    fn default() -> Self {
        Self {
            nodes: 10,
            samples: 200,
            shift: Shift::In,
            mechanisms: vec![Mechanism::Linear, Mechanism::Rff],
            edges_per_node: 2.0,
        }
    }
}

/// A sampled SCM and its data.
#[derive(Debug, Clone)]
pub struct ScmTask {
    /// Number of variables n.
    pub nodes: usize,
    /// The graph: `adj[i * n + j]` when i → j.
    pub adj: Vec<bool>,
    /// Standardised samples `[samples, n]`.
    pub data: Vec<f32>,
    /// Each variable's variance before standardising: what var-sortability reads (the raw
    /// scale grows along the causal order in many simulators; standardising hides it).
    pub raw_variance: Vec<f64>,
    /// A topological order of the DAG (parents before children).
    pub order: Vec<usize>,
    /// The graph family drawn.
    pub graph: GraphKind,
    /// The mechanism family drawn.
    pub mechanism: Mechanism,
}

impl ScmConfig {
    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 || self.nodes > 200 {
            return Err(format!("nodes must be in 2..=200, got {}", self.nodes));
        }
        if self.samples < 2 || self.samples > 100_000 {
            return Err(format!(
                "samples must be in 2..=100000, got {}",
                self.samples
            ));
        }
        if self.mechanisms.is_empty() {
            return Err("mechanisms must name at least one of linear, rff".into());
        }
        if !(self.edges_per_node.is_finite() && self.edges_per_node >= 0.0) {
            return Err("edges_per_node must be finite and >= 0".into());
        }
        Ok(())
    }

    /// Draws an SCM and `samples` observations of it.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> ScmTask {
        let n = self.nodes;
        let kinds = match self.shift {
            Shift::In => [GraphKind::ErdosRenyi, GraphKind::ScaleFree],
            Shift::Out => [GraphKind::WattsStrogatz, GraphKind::StochasticBlock],
        };
        let graph = kinds[rng.random_range(0..2)];
        let mechanism = self.mechanisms[rng.random_range(0..self.mechanisms.len())];
        // Undirected skeleton over a hidden causal order; edges point along the order.
        let mut rank: Vec<usize> = (0..n).collect();
        rank.shuffle(rng);
        let pairs = skeleton(graph, n, self.edges_per_node, rng);
        let mut adj = vec![false; n * n];
        for (a, b) in pairs {
            let (from, to) = if rank[a] < rank[b] { (a, b) } else { (b, a) };
            adj[from * n + to] = true;
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| rank[i]);

        let ranges = Ranges::for_shift(self.shift);
        let params: Vec<NodeParams> = (0..n)
            .map(|j| NodeParams::draw(mechanism, &ranges, parents(&adj, n, j).len(), rng))
            .collect();
        let mut data = vec![0.0f64; self.samples * n];
        for s in 0..self.samples {
            for &j in &order {
                let pa = parents(&adj, n, j);
                let xs: Vec<f64> = pa.iter().map(|&i| data[s * n + i]).collect();
                let noise = match self.shift {
                    Shift::In => {
                        let z: f64 = StandardNormal.sample(rng);
                        params[j].noise_scale * z
                    }
                    Shift::Out => params[j].noise_scale * laplace(rng),
                };
                data[s * n + j] = params[j].eval(&xs) + noise;
            }
        }
        let raw_variance = standardise(&mut data, self.samples, n);
        ScmTask {
            nodes: n,
            adj,
            data: data.into_iter().map(|v| v as f32).collect(),
            raw_variance,
            order,
            graph,
            mechanism,
        }
    }
}

/// The parents of node j.
pub fn parents(adj: &[bool], n: usize, j: usize) -> Vec<usize> {
    (0..n).filter(|&i| adj[i * n + j]).collect()
}

/// Whether `order` lists every node once with each edge's source before its target.
pub fn is_topological_order(adj: &[bool], n: usize, order: &[usize]) -> bool {
    let mut pos = vec![usize::MAX; n];
    for (p, &v) in order.iter().enumerate() {
        if v >= n || pos[v] != usize::MAX {
            return false;
        }
        pos[v] = p;
    }
    order.len() == n && (0..n * n).all(|k| !adj[k] || pos[k / n] < pos[k % n])
}

/// The paper's metric for a predicted order (Table 5; §10: error = 1 − accuracy): the share of
/// the graph's edges it orients wrongly. 0 for any valid topological order, about 0.5 for a
/// random one, lower is better.
pub fn order_error(adj: &[bool], n: usize, order: &[usize]) -> f64 {
    1.0 - order_accuracy(adj, n, order)
}

/// Accuracy of a predicted order: the fraction of the graph's edges it orients correctly
/// (1 for any valid topological order; 1 also for a graph without edges).
pub fn order_accuracy(adj: &[bool], n: usize, order: &[usize]) -> f64 {
    let mut pos = vec![0usize; n];
    for (p, &v) in order.iter().enumerate() {
        pos[v] = p;
    }
    let edges: Vec<usize> = (0..n * n).filter(|&k| adj[k]).collect();
    if edges.is_empty() {
        return 1.0;
    }
    let right = edges.iter().filter(|&&k| pos[k / n] < pos[k % n]).count();
    right as f64 / edges.len() as f64
}

/// The leaves (nodes without children) among `remaining` nodes of the graph restricted to them.
pub fn leaves(adj: &[bool], n: usize, remaining: &[bool]) -> Vec<bool> {
    (0..n)
        .map(|i| remaining[i] && (0..n).all(|j| !remaining[j] || !adj[i * n + j]))
        .collect()
}

fn laplace<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // Inverse CDF of the standard Laplace distribution (rand_distr has none).
    let u: f64 = rng.random_range(-0.5..0.5);
    -u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln()
}

fn skeleton<R: Rng + ?Sized>(
    kind: GraphKind,
    n: usize,
    per_node: f64,
    rng: &mut R,
) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    match kind {
        GraphKind::ErdosRenyi => {
            let p = (2.0 * per_node / (n - 1) as f64).min(1.0);
            for a in 0..n {
                for b in a + 1..n {
                    if rng.random_bool(p) {
                        edges.push((a, b));
                    }
                }
            }
        }
        GraphKind::ScaleFree => {
            let m = (per_node.round() as usize).max(1);
            let mut degree = vec![0usize; n];
            for v in 1..n {
                let mut chosen: Vec<usize> = Vec::new();
                let k = m.min(v);
                while chosen.len() < k {
                    let total: usize = (0..v).map(|u| degree[u] + 1).sum();
                    let mut r = rng.random_range(0..total);
                    let mut u = 0;
                    while r > degree[u] {
                        r -= degree[u] + 1;
                        u += 1;
                    }
                    if !chosen.contains(&u) {
                        chosen.push(u);
                    }
                }
                for u in chosen {
                    degree[u] += 1;
                    degree[v] += 1;
                    edges.push((u, v));
                }
            }
        }
        GraphKind::WattsStrogatz => {
            let k = ((per_node.round() as usize).max(1)).min((n - 1) / 2).max(1);
            let mut set = std::collections::BTreeSet::new();
            for a in 0..n {
                for j in 1..=k {
                    let mut b = (a + j) % n;
                    if rng.random_bool(0.3) {
                        b = rng.random_range(0..n);
                    }
                    if a != b {
                        set.insert((a.min(b), a.max(b)));
                    }
                }
            }
            edges.extend(set);
        }
        GraphKind::StochasticBlock => {
            let blocks = rng.random_range(2..=3).min(n);
            let block: Vec<usize> = (0..n).map(|_| rng.random_range(0..blocks)).collect();
            let p_in = (3.0 * per_node / (n - 1) as f64).min(1.0);
            let p_out = p_in / 6.0;
            for a in 0..n {
                for b in a + 1..n {
                    let p = if block[a] == block[b] { p_in } else { p_out };
                    if rng.random_bool(p) {
                        edges.push((a, b));
                    }
                }
            }
        }
    }
    edges
}

/// Parameter ranges; the out-of-distribution ones are disjoint from the in-distribution ones.
struct Ranges {
    /// |w| of linear mechanisms.
    weight: (f64, f64),
    /// RFF length scale.
    length_scale: (f64, f64),
    /// RFF output scale.
    output_scale: (f64, f64),
    /// Bias.
    bias: (f64, f64),
    /// Noise scale.
    noise: (f64, f64),
}

impl Ranges {
    fn for_shift(shift: Shift) -> Self {
        match shift {
            Shift::In => Ranges {
                weight: (1.0, 3.0),
                length_scale: (7.0, 10.0),
                output_scale: (10.0, 20.0),
                bias: (-3.0, 3.0),
                noise: (0.2, 2.0),
            },
            Shift::Out => Ranges {
                weight: (0.5, 1.0),
                length_scale: (10.0, 20.0),
                output_scale: (20.0, 30.0),
                bias: (-3.0, 3.0),
                noise: (0.2, 2.0),
            },
        }
    }
}

const RFF_FEATURES: usize = 32;

struct NodeParams {
    mechanism: Mechanism,
    weights: Vec<f64>,
    omega: Vec<f64>,
    phase: Vec<f64>,
    amplitude: Vec<f64>,
    output_scale: f64,
    bias: f64,
    noise_scale: f64,
}

impl NodeParams {
    fn draw<R: Rng + ?Sized>(
        mechanism: Mechanism,
        r: &Ranges,
        parents: usize,
        rng: &mut R,
    ) -> Self {
        let mut u = |(lo, hi): (f64, f64)| rng.random_range(lo..hi);
        let bias = u(r.bias);
        let noise_scale = u(r.noise);
        let output_scale = u(r.output_scale);
        let length = u(r.length_scale);
        let weights = (0..parents)
            .map(|_| {
                let w = rng.random_range(r.weight.0..r.weight.1);
                if rng.random_bool(0.5) {
                    w
                } else {
                    -w
                }
            })
            .collect();
        let normal = Normal::new(0.0, 1.0 / length).expect("finite");
        let omega = (0..RFF_FEATURES * parents)
            .map(|_| normal.sample(rng))
            .collect();
        let phase = (0..RFF_FEATURES)
            .map(|_| rng.random_range(0.0..std::f64::consts::TAU))
            .collect();
        let amplitude = (0..RFF_FEATURES)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        Self {
            mechanism,
            weights,
            omega,
            phase,
            amplitude,
            output_scale,
            bias,
            noise_scale,
        }
    }

    fn eval(&self, xs: &[f64]) -> f64 {
        if xs.is_empty() {
            return self.bias;
        }
        match self.mechanism {
            Mechanism::Linear => {
                self.bias
                    + xs.iter()
                        .zip(&self.weights)
                        .map(|(x, w)| x * w)
                        .sum::<f64>()
            }
            Mechanism::Rff => {
                let p = xs.len();
                let norm = (2.0 / RFF_FEATURES as f64).sqrt();
                let f: f64 = (0..RFF_FEATURES)
                    .map(|m| {
                        let dot: f64 = (0..p).map(|i| self.omega[m * p + i] * xs[i]).sum();
                        self.amplitude[m] * norm * (dot + self.phase[m]).cos()
                    })
                    .sum();
                self.bias + self.output_scale * f
            }
        }
    }
}

/// Standardises each variable in place; returns their variances before.
fn standardise(data: &mut [f64], samples: usize, n: usize) -> Vec<f64> {
    let mut variances = Vec::with_capacity(n);
    for j in 0..n {
        let mean = (0..samples).map(|s| data[s * n + j]).sum::<f64>() / samples as f64;
        let var = (0..samples)
            .map(|s| (data[s * n + j] - mean).powi(2))
            .sum::<f64>()
            / samples as f64;
        let sd = var.sqrt().max(1e-8);
        for s in 0..samples {
            data[s * n + j] = (data[s * n + j] - mean) / sd;
        }
        variances.push(var);
    }
    variances
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn graphs_are_acyclic_and_the_target_is_a_topological_order() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut kinds = std::collections::BTreeSet::new();
        for shift in [Shift::In, Shift::Out] {
            let cfg = ScmConfig {
                nodes: 8,
                samples: 100,
                shift,
                ..Default::default()
            };
            for _ in 0..60 {
                let t = cfg.sample(&mut rng);
                kinds.insert(format!("{:?}", t.graph));
                assert!(is_topological_order(&t.adj, 8, &t.order));
                assert_eq!(order_accuracy(&t.adj, 8, &t.order), 1.0);
                // Acyclic: peeling leaves removes every node.
                let mut remaining = vec![true; 8];
                for _ in 0..8 {
                    let l = leaves(&t.adj, 8, &remaining);
                    assert!(l.iter().any(|&x| x), "a cycle: no leaf left");
                    for (r, x) in remaining.iter_mut().zip(l) {
                        if x {
                            *r = false;
                        }
                    }
                    if remaining.iter().all(|r| !r) {
                        break;
                    }
                }
                assert!(remaining.iter().all(|r| !r));
                // Standardised variables.
                for j in 0..8 {
                    let m: f32 = (0..100).map(|s| t.data[s * 8 + j]).sum::<f32>() / 100.0;
                    let v: f32 = (0..100)
                        .map(|s| (t.data[s * 8 + j] - m).powi(2))
                        .sum::<f32>()
                        / 100.0;
                    assert!(
                        m.abs() < 1e-3 && (v - 1.0).abs() < 1e-2,
                        "node {j}: mean {m} var {v}"
                    );
                }
                // A reversed order violates every edge.
                if t.adj.iter().any(|&e| e) {
                    let rev: Vec<usize> = t.order.iter().rev().copied().collect();
                    assert!(!is_topological_order(&t.adj, 8, &rev));
                    assert_eq!(order_accuracy(&t.adj, 8, &rev), 0.0);
                    assert_eq!(order_error(&t.adj, 8, &rev), 1.0);
                    assert_eq!(order_error(&t.adj, 8, &t.order), 0.0);
                }
                // The raw variances are kept: positive, one per node.
                assert!(t.raw_variance.len() == 8 && t.raw_variance.iter().all(|&v| v > 0.0));
            }
        }
        assert_eq!(kinds.len(), 4, "all four graph families appear: {kinds:?}");
    }
}
