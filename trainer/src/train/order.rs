//! The SCM order model's side of the meta-training loop (paper §9.4): its run configuration, a
//! meta-step's gradients of the greedy order loss, and its held-out order error.

use amortize::model::order::{greedy_order_loss, OrderAmortizer, OrderBatch, OrderModelConfig};
use amortize::refine::schedule;
use amortize::task::scm::{Mechanism, ScmConfig};
use amortize::weights::OrderHeader;
use amortize::RefineConfig;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{eval_line, held_out_seed, Learner, RunConfig};
use crate::eval::{eval_steps, ORDER_ERROR as METRIC};
use crate::order::{draw, error};
use crate::run::Budget;

/// Everything an SCM run depends on; a run is reproducible from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTrainConfig {
    /// Seed (of the SCM stream, the removed-node sets, the schedules and the initial weights),
    /// steps, SCMs per step, learning-rate schedule, evaluations, checkpoints.
    #[serde(flatten)]
    pub budget: Budget,
    /// The architecture.
    pub model: OrderModelConfig,
    /// The SCM family.
    pub task: ScmConfig,
    /// Refinement steps k and samples per mini-batch b.
    pub refine: RefineConfig,
}

impl RunConfig for OrderTrainConfig {
    fn budget(&self) -> &Budget {
        &self.budget
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.budget.validate()?;
        self.model.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.task
            .validate()
            .map_err(|e| anyhow::anyhow!("task: {e}"))?;
        self.refine.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(())
    }
}

/// Parses `--mechanism`.
pub fn mechanisms(name: &str) -> anyhow::Result<Vec<Mechanism>> {
    Ok(match name {
        "linear" => vec![Mechanism::Linear],
        "rff" => vec![Mechanism::Rff],
        "both" => vec![Mechanism::Linear, Mechanism::Rff],
        other => anyhow::bail!("--mechanism: unknown {other:?} (expected linear, rff or both)"),
    })
}

/// The order model's side of the loop: the configuration and the device (and its autodiff form,
/// made once).
pub struct OrderRun<'a> {
    cfg: &'a OrderTrainConfig,
    device: &'a Device,
    ad: Device,
}

impl<'a> OrderRun<'a> {
    /// A run of `cfg` on `device`.
    pub fn new(cfg: &'a OrderTrainConfig, device: &'a Device) -> Self {
        let ad = device.clone().autodiff();
        Self { cfg, device, ad }
    }
}

impl Learner for OrderRun<'_> {
    type Config = OrderTrainConfig;
    type Header = OrderHeader;

    fn config(&self) -> &OrderTrainConfig {
        self.cfg
    }

    fn device(&self) -> &Device {
        self.device
    }

    fn init(&self, ad: &Device) -> anyhow::Result<(OrderAmortizer, serde_json::Value)> {
        Ok((self.cfg.model.init(ad), serde_json::Value::Null))
    }

    fn grads(
        &self,
        model: &OrderAmortizer,
        _step: usize,
        rng: &mut StdRng,
    ) -> anyhow::Result<(GradientsParams, Vec<f64>)> {
        let cfg = self.cfg;
        let tasks: Vec<_> = (0..cfg.budget.tasks_per_step)
            .map(|_| cfg.task.sample(rng))
            .collect();
        let batch = OrderBatch::new(tasks, rng);
        let sched = schedule(
            cfg.task.samples,
            cfg.refine.batch_size,
            cfg.refine.steps,
            rng,
        );
        let (loss, per_step) = greedy_order_loss(model, &batch, &sched, &self.ad);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        let per_step = per_step
            .into_iter()
            .map(|l| l.into_scalar::<f32>() as f64)
            .collect();
        Ok((grads, per_step))
    }

    fn held_out(&self, model: &OrderAmortizer) -> anyhow::Result<(serde_json::Value, String)> {
        let cfg = self.cfg;
        let seed = held_out_seed(&cfg.budget);
        let scms = draw(&cfg.task, cfg.budget.eval_tasks, seed);
        let steps = eval_steps(cfg.refine.steps);
        let err = error(model, &scms, &cfg.refine, seed, &steps, self.device);
        let line = eval_line(METRIC, &err);
        Ok((serde_json::json!({ "metric": METRIC, "model": err }), line))
    }

    fn header(&self, provenance: serde_json::Value) -> OrderHeader {
        OrderHeader {
            model: self.cfg.model.clone(),
            task: self.cfg.task.clone(),
            refine: self.cfg.refine.clone(),
            provenance,
        }
    }

    fn card(
        &self,
        provenance: &mut serde_json::Value,
        _init: &serde_json::Value,
        last_eval: &serde_json::Value,
    ) {
        provenance["eval"] = last_eval.clone();
    }
}
