//! Linear regression (paper §9.1, as in Garg et al.): y = w·x + ε with w ~ N(0, I_d),
//! x ~ N(0, I_d), ε ~ N(0, σ²).

use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{Episode, LossKind, TaskData, TaskDims};

/// The linear-regression task family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearRegressionConfig {
    /// Input dimension d (the predictor's state has this size). Default 20.
    pub dim: usize,
    /// Observation noise standard deviation σ. Default 0.1.
    pub noise_std: f64,
    /// Context points per task. Default 64.
    pub context: usize,
    /// Query points per task. Default 32.
    pub queries: usize,
}

impl Default for LinearRegressionConfig {
    fn default() -> Self {
        Self {
            dim: 20,
            noise_std: 0.1,
            context: 64,
            queries: 32,
        }
    }
}

/// A sampled task: its episode and the true weights.
#[derive(Debug, Clone)]
pub struct LinearTask {
    /// Context and query points; query targets are the noiseless w·x.
    pub episode: Episode,
    /// The weights w.
    pub weights: Vec<f32>,
}

/// Sampler of the linear-regression family.
#[derive(Debug, Clone)]
pub struct LinearRegression {
    /// The family's parameters.
    pub config: LinearRegressionConfig,
}

impl LinearRegression {
    /// The family with these parameters.
    pub fn new(config: LinearRegressionConfig) -> Self {
        Self { config }
    }

    /// Tokens `[x, y]`, predictor input x, one output, squared error.
    pub fn dims(&self) -> TaskDims {
        TaskDims {
            obs_dim: self.config.dim + 1,
            input_dim: self.config.dim,
            output_dim: 1,
            loss: LossKind::Mse,
        }
    }

    /// Draws w, then context (noisy y) and query (noiseless y) points.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> LinearTask {
        let c = &self.config;
        let d = c.dim;
        let weights: Vec<f32> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        let noise = Normal::new(0.0, c.noise_std as f32).expect("noise_std is finite and >= 0");
        let draw = |n: usize, noisy: bool, rng: &mut R| {
            let x: Vec<f32> = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
            let y: Vec<f32> = x
                .chunks(d)
                .map(|row| {
                    let clean: f32 = row.iter().zip(&weights).map(|(a, b)| a * b).sum();
                    if noisy {
                        clean + noise.sample(rng)
                    } else {
                        clean
                    }
                })
                .collect();
            (x, y)
        };
        let context = draw(c.context, true, rng);
        let query = draw(c.queries, false, rng);
        LinearTask {
            episode: Episode::scalar(d, context, query),
            weights,
        }
    }

    /// Encodes an episode.
    pub fn task_data(&self, e: &Episode) -> TaskData {
        let d = self.config.dim;
        let context_obs = e
            .context_x
            .chunks(d)
            .zip(&e.context_y)
            .flat_map(|(x, &y)| x.iter().copied().chain(std::iter::once(y)))
            .collect();
        TaskData {
            dims: self.dims(),
            context_obs,
            context_input: e.context_x.clone(),
            context_target: e.context_y.clone(),
            query_input: e.query_x.clone(),
            query_target: e.query_y.clone(),
        }
    }

    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.config;
        if c.dim == 0 || c.dim > 1024 {
            return Err(format!("dim must be in 1..=1024, got {}", c.dim));
        }
        super::check_regression(c.noise_std, c.context, c.queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn samples_follow_the_model() {
        let fam = LinearRegression::new(LinearRegressionConfig {
            dim: 3,
            noise_std: 0.5,
            context: 5000,
            queries: 10,
        });
        let t = fam.sample(&mut StdRng::seed_from_u64(4));
        let e = &t.episode;
        let resid: Vec<f32> = e
            .context_x
            .chunks(3)
            .zip(&e.context_y)
            .map(|(x, y)| y - x.iter().zip(&t.weights).map(|(a, b)| a * b).sum::<f32>())
            .collect();
        let var = resid.iter().map(|r| r * r).sum::<f32>() / resid.len() as f32;
        assert!((var.sqrt() - 0.5).abs() < 0.03, "noise std {}", var.sqrt());
        let xvar = e.context_x.iter().map(|x| x * x).sum::<f32>() / e.context_x.len() as f32;
        assert!((xvar - 1.0).abs() < 0.05, "x variance {xvar}");
        let data = fam.task_data(e);
        data.validate().unwrap();
        assert_eq!(data.context_len(), 5000);
        assert_eq!(
            &data.context_obs[..4],
            &[
                e.context_x[0],
                e.context_x[1],
                e.context_x[2],
                e.context_y[0]
            ]
        );
    }
}
