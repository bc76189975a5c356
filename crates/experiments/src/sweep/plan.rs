//! The runs a sweep config expands into, and where each lives.

use std::path::{Path, PathBuf};

use realbias_train::config::TrainConfig;

use super::config::{Condition, ExperimentConfig};

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub condition: Condition,
    pub hidden: usize,
    pub rep: usize,
    pub weight_decay: Option<f64>,
    pub dir: PathBuf,
    pub config: TrainConfig,
}

impl PlannedRun {
    /// Relative cost: examples x hidden units x epoch cap.
    pub fn cost(&self, train_examples: usize) -> f64 {
        (train_examples * self.hidden * self.config.train.max_epochs) as f64
    }

    pub fn label(&self) -> String {
        let wd = self
            .weight_decay
            .map_or(String::new(), |l| format!(" λ={l:e}"));
        format!(
            "{} H={} rep {}{wd}",
            self.condition.name(),
            self.hidden,
            self.rep
        )
    }
}

impl ExperimentConfig {
    /// Every run of the experiment, in plan order (condition, then H, repetition, λ).
    pub fn plan(&self, experiment_dir: &Path) -> Vec<PlannedRun> {
        let mut runs = Vec::new();
        for &condition in &self.sweep.conditions {
            for &hidden in &self.sweep.hidden {
                for rep in 0..self.sweep.repetitions {
                    let mut config = self.base.clone();
                    config.model.hidden = hidden;
                    config.train.seed = self.base.train.seed + rep as u64;
                    config.name = Some(format!("{}/{}", self.name, condition.name()));
                    let dir = experiment_dir
                        .join(condition.name())
                        .join(format!("h{hidden}"))
                        .join(format!("rep{rep}"));
                    let lambdas: Vec<Option<f64>> = match condition {
                        Condition::WeightDecay => self
                            .sweep
                            .weight_decay_grid
                            .iter()
                            .map(|&l| Some(l))
                            .collect(),
                        _ => vec![None],
                    };
                    for lambda in lambdas {
                        let mut config = config.clone();
                        let mut dir = dir.clone();
                        if let Some(l) = lambda {
                            config.optim.weight_decay = l;
                            dir = dir.join(format!("wd{l:e}"));
                        }
                        if condition == Condition::CensoredNoise {
                            config.data.label_noise = self.sweep.censor_noise;
                        }
                        runs.push(PlannedRun {
                            condition,
                            hidden,
                            rep,
                            weight_decay: lambda,
                            dir,
                            config,
                        });
                    }
                }
            }
        }
        runs
    }
}
