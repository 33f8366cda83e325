//! 1-D function regression: f(x) = φ(x)·w on x ∈ [-1, 1], with φ the first `features` Legendre
//! polynomials and w ~ N(0, I); observations y = f(x) + ε, ε ~ N(0, σ²).

use burn::config::Config;
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};

use super::{Episode, LossKind, TaskData, TaskDims};

/// The 1-D function-regression task family.
#[derive(Config, Debug, PartialEq)]
pub struct FunctionRegressionConfig {
    /// Number of Legendre features p (the predictor's state has this size). Default 8.
    #[config(default = 8)]
    pub features: usize,
    /// Observation noise standard deviation σ. Default 0.1.
    #[config(default = 0.1)]
    pub noise_std: f64,
    /// Context points per task. Default 32.
    #[config(default = 32)]
    pub context: usize,
    /// Query points per task. Default 32.
    #[config(default = 32)]
    pub queries: usize,
}

/// A sampled regression task: its episode and the true weights it was drawn with.
#[derive(Debug, Clone)]
pub struct RegressionTask {
    /// Context and query points; query targets are the noiseless f(x).
    pub episode: Episode,
    /// The weights w of f(x) = φ(x)·w.
    pub weights: Vec<f32>,
}

/// Sampler and feature map of the function-regression family.
#[derive(Debug, Clone)]
pub struct FunctionRegression {
    /// The family's parameters.
    pub config: FunctionRegressionConfig,
}

impl FunctionRegression {
    /// The task family with these parameters.
    pub fn new(config: FunctionRegressionConfig) -> Self {
        Self { config }
    }

    /// The size of the predictor's state (the number of features).
    pub fn state_dim(&self) -> usize {
        self.config.features
    }

    /// Size of one observation token's input: x, φ(x) and y.
    pub fn observation_dim(&self) -> usize {
        self.config.features + 2
    }

    /// φ(x): Legendre polynomials P_0..P_{p-1} at x, by the three-term recurrence.
    pub fn features(&self, x: f32) -> Vec<f32> {
        legendre(x, self.config.features)
    }

    /// f(x) = φ(x)·w.
    pub fn eval(&self, weights: &[f32], x: f32) -> f32 {
        dot(&self.features(x), weights)
    }

    /// f at every x.
    pub fn eval_many(&self, weights: &[f32], xs: &[f32]) -> Vec<f32> {
        xs.iter().map(|&x| self.eval(weights, x)).collect()
    }

    /// Observation token inputs `[x, φ(x), y]` for each (x, y), row-major `[n, p + 2]`.
    pub fn encode_observations(&self, xs: &[f32], ys: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(xs.len() * self.observation_dim());
        for (&x, &y) in xs.iter().zip(ys) {
            out.push(x);
            out.extend(self.features(x));
            out.push(y);
        }
        out
    }

    /// The shapes this family gives the amortizer: tokens `[x, φ(x), y]`, predictor input φ(x),
    /// one output, squared error.
    pub fn dims(&self) -> TaskDims {
        TaskDims {
            obs_dim: self.observation_dim(),
            input_dim: self.config.features,
            output_dim: 1,
            loss: LossKind::Mse,
        }
    }

    /// Encodes an episode (any number of context and query points, e.g. clicked by a visitor).
    pub fn task_data(&self, e: &Episode) -> TaskData {
        TaskData {
            dims: self.dims(),
            context_obs: self.encode_observations(&e.context_x, &e.context_y),
            context_input: self.design(&e.context_x),
            context_target: e.context_y.clone(),
            query_input: self.design(&e.query_x),
            query_target: e.query_y.clone(),
        }
    }

    /// φ for every x, row-major `[n, p]`.
    pub fn design(&self, xs: &[f32]) -> Vec<f32> {
        xs.iter().flat_map(|&x| self.features(x)).collect()
    }

    /// Draws w ~ N(0, I), context x ~ U(-1, 1) with noisy y, and query x ~ U(-1, 1) with the
    /// noiseless f(x) as targets.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> RegressionTask {
        let c = &self.config;
        let weights: Vec<f32> = (0..c.features)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        let unit = Uniform::new_inclusive(-1.0f32, 1.0).expect("valid range");
        let noise = Normal::new(0.0, c.noise_std as f32).expect("noise_std is finite and >= 0");
        let context_x: Vec<f32> = (0..c.context).map(|_| unit.sample(rng)).collect();
        let context_y = context_x
            .iter()
            .map(|&x| self.eval(&weights, x) + noise.sample(rng))
            .collect();
        let query_x: Vec<f32> = (0..c.queries).map(|_| unit.sample(rng)).collect();
        let query_y = query_x.iter().map(|&x| self.eval(&weights, x)).collect();
        RegressionTask {
            episode: Episode::scalar(1, (context_x, context_y), (query_x, query_y)),
            weights,
        }
    }

    /// Checks the parameters a user may set.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.config;
        if c.features == 0 || c.features > 64 {
            return Err(format!("features must be in 1..=64, got {}", c.features));
        }
        super::check_regression(c.noise_std, c.context, c.queries)
    }
}

/// P_0..P_{p-1} at x: P_0 = 1, P_1 = x, (n+1) P_{n+1} = (2n+1) x P_n − n P_{n−1}.
pub fn legendre(x: f32, p: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(p);
    let (mut prev, mut cur) = (1.0f32, x);
    for n in 0..p {
        match n {
            0 => out.push(1.0),
            1 => out.push(x),
            _ => {
                let k = (n - 1) as f32;
                let next = ((2.0 * k + 1.0) * x * cur - k * prev) / (k + 1.0);
                prev = cur;
                cur = next;
                out.push(next);
            }
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn legendre_matches_closed_forms() {
        for &x in &[-1.0f32, -0.3, 0.0, 0.7, 1.0] {
            let p = legendre(x, 5);
            assert!((p[2] - 0.5 * (3.0 * x * x - 1.0)).abs() < 1e-5);
            assert!((p[3] - 0.5 * (5.0 * x.powi(3) - 3.0 * x)).abs() < 1e-5);
            assert!((p[4] - (35.0 * x.powi(4) - 30.0 * x * x + 3.0) / 8.0).abs() < 1e-5);
        }
    }

    #[test]
    fn sampler_is_seeded_and_noise_has_its_std() {
        let task = FunctionRegression::new(FunctionRegressionConfig::new().with_context(4000));
        let a = task.sample(&mut StdRng::seed_from_u64(3));
        let b = task.sample(&mut StdRng::seed_from_u64(3));
        assert_eq!(a.episode, b.episode);
        let e = &a.episode;
        let resid: Vec<f32> = e
            .context_x
            .iter()
            .zip(&e.context_y)
            .map(|(&x, &y)| y - task.eval(&a.weights, x))
            .collect();
        let var = resid.iter().map(|r| r * r).sum::<f32>() / resid.len() as f32;
        assert!((var.sqrt() - 0.1).abs() < 0.01, "noise std {}", var.sqrt());
        assert!(e.context_x.iter().all(|x| (-1.0..=1.0).contains(x)));
        // Query targets are the noiseless function.
        for (&x, &y) in e.query_x.iter().zip(&e.query_y) {
            assert!((task.eval(&a.weights, x) - y).abs() < 1e-6);
        }
    }
}
