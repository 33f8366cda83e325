//! Gaussian mixtures (paper §9.6): a task is a mixture of K components, K uniform in
//! 1..=`max_components`, means ~ N(0, 5² I), every component isotropic with std 0.3, equal
//! weights; the context and the query sets are samples of it. Generation tasks: see
//! [`crate::flow`].

use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};

use super::flow_matching::FlowTarget;

/// The Gaussian-mixture task family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GmmConfig {
    /// Dimension (2 and 5 in the paper). Default 2.
    pub dim: usize,
    /// Largest number of components. Default 5.
    pub max_components: usize,
    /// Standard deviation of the component means. Default 5.
    pub mean_std: f64,
    /// Standard deviation of every component. Default 0.3.
    pub component_std: f64,
    /// Context samples per task. Default 64.
    pub context: usize,
    /// Query samples per task (the flow-matching targets). Default 64.
    pub queries: usize,
    /// What the queries are trained to predict. Default: the paper's conditional target.
    #[serde(skip_serializing_if = "FlowTarget::is_sample")]
    pub field: FlowTarget,
}

impl Default for GmmConfig {
    fn default() -> Self {
        Self {
            dim: 2,
            max_components: 5,
            mean_std: 5.0,
            component_std: 0.3,
            context: 64,
            queries: 64,
            field: FlowTarget::Sample,
        }
    }
}

/// One sampled mixture and its samples.
#[derive(Debug, Clone)]
pub struct GmmTask {
    /// Component means, `[K, dim]`.
    pub means: Vec<f32>,
    /// Context samples, `[n, dim]`.
    pub context: Vec<f32>,
    /// Query samples, `[q, dim]`.
    pub queries: Vec<f32>,
    /// Which component drew each context sample.
    pub context_components: Vec<usize>,
}

impl GmmConfig {
    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        if self.dim == 0 || self.dim > 64 {
            return Err(format!("dim must be in 1..=64, got {}", self.dim));
        }
        if self.max_components == 0 || self.max_components > 1000 {
            return Err(format!(
                "max_components must be in 1..=1000, got {}",
                self.max_components
            ));
        }
        for (name, v) in [
            ("mean_std", self.mean_std),
            ("component_std", self.component_std),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be finite and >= 0, got {v}"));
            }
        }
        if self.context == 0 || self.queries == 0 {
            return Err("context and queries must be at least 1".into());
        }
        self.field.validate()
    }

    /// Draws the mixture, then its samples.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> GmmTask {
        let k = rng.random_range(1..=self.max_components);
        let means: Vec<f32> = (0..k * self.dim)
            .map(|_| {
                let z: f32 = StandardNormal.sample(rng);
                z * self.mean_std as f32
            })
            .collect();
        let noise = Normal::new(0.0f32, self.component_std as f32).expect("std is finite");
        let draw = |n: usize, rng: &mut R| {
            let mut pts = Vec::with_capacity(n * self.dim);
            let mut comps = Vec::with_capacity(n);
            for _ in 0..n {
                let c = rng.random_range(0..k);
                comps.push(c);
                for d in 0..self.dim {
                    pts.push(means[c * self.dim + d] + noise.sample(rng));
                }
            }
            (pts, comps)
        };
        let (context, context_components) = draw(self.context, rng);
        let (queries, _) = draw(self.queries, rng);
        GmmTask {
            means,
            context,
            queries,
            context_components,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn samples_match_the_mixture_parameters() {
        let cfg = GmmConfig {
            dim: 2,
            max_components: 4,
            context: 20_000,
            queries: 10,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(11);
        let mut counts = [0usize; 4];
        let mut mean_sq = 0.0f64;
        let mut n_means = 0usize;
        for _ in 0..200 {
            let t = cfg.sample(&mut rng);
            let k = t.means.len() / 2;
            counts[k - 1] += 1;
            mean_sq += t.means.iter().map(|m| (*m as f64).powi(2)).sum::<f64>();
            n_means += t.means.len();
        }
        // K uniform on 1..=4; means have std 5.
        assert!(counts.iter().all(|&c| c > 30), "{counts:?}");
        let std = (mean_sq / n_means as f64).sqrt();
        assert!((std - 5.0).abs() < 0.5, "mean std {std}");
        // Within a task each component's samples have std 0.3 around its mean, equal weights.
        let t = cfg.sample(&mut rng);
        let k = t.means.len() / 2;
        for c in 0..k {
            let (mut n, mut sq) = (0usize, 0.0f64);
            for (i, &comp) in t.context_components.iter().enumerate() {
                if comp == c {
                    n += 1;
                    for d in 0..2 {
                        sq += ((t.context[i * 2 + d] - t.means[c * 2 + d]) as f64).powi(2);
                    }
                }
            }
            let share = n as f64 / t.context_components.len() as f64;
            assert!(
                (share - 1.0 / k as f64).abs() < 0.03,
                "component {c} share {share}"
            );
            let std = (sq / (2 * n) as f64).sqrt();
            assert!((std - 0.3).abs() < 0.02, "component {c} std {std}");
        }
    }
}
