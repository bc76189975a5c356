//! The runs a sweep config expands into, and where each lives.

use std::path::{Path, PathBuf};

use realbias_train::config::{MAX_FOLDER_NAME, TrainConfig};

use super::config::{Condition, ExperimentConfig, SweepConfig, censor_config};
use super::vary::Variant;

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub condition: Condition,
    pub hidden: usize,
    pub rep: usize,
    pub weight_decay: Option<f64>,
    /// Its point of the `[sweep.vary]` grid (0 without one) and that point's `(key, value)`
    /// pairs as text.
    pub variant: usize,
    pub axes: Vec<(String, String)>,
    /// The point's name (`init_scale=0.1`; empty without a grid).
    pub point: String,
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
            "{}{} H={} rep {}{wd}",
            self.variant_label(" · "),
            self.condition.name(),
            self.hidden,
            self.rep
        )
    }

    /// The grid point's name followed by `separator` (empty without a grid).
    pub fn variant_label(&self, separator: &str) -> String {
        match self.point.is_empty() {
            true => String::new(),
            false => format!("{}{separator}", self.point),
        }
    }
}

impl ExperimentConfig {
    /// Every run of the experiment, in plan order (variant, condition, H, repetition, λ);
    /// each variant of `[sweep.vary]` in its own folder.
    pub fn plan(&self, experiment_dir: &Path) -> Vec<PlannedRun> {
        if self.variants.is_empty() {
            let point = (0, Vec::new(), String::new());
            return self.plan_point(&self.base, &self.sweep, experiment_dir, point);
        }
        let mut runs = Vec::new();
        for (i, v) in self.variants.iter().enumerate() {
            let axes = v
                .values
                .iter()
                .map(|(k, _)| k.clone())
                .zip(v.value_texts())
                .collect();
            let dir = experiment_dir.join(v.dir_name());
            runs.extend(self.plan_point(&v.base, &v.sweep, &dir, (i, axes, v.label())));
        }
        runs
    }

    /// The runs of one point of the grid, under `dir`.
    fn plan_point(
        &self,
        base: &TrainConfig,
        sweep: &SweepConfig,
        dir: &Path,
        (variant, axes, point): (usize, Vec<(String, String)>, String),
    ) -> Vec<PlannedRun> {
        let mut runs = Vec::new();
        let lambdas: Vec<Option<f64>> = sweep.weight_decay_grid.iter().map(|&l| Some(l)).collect();
        for &condition in &sweep.conditions {
            let lambdas = match condition {
                Condition::WeightDecay => lambdas.clone(),
                _ => vec![None],
            };
            let name = match dir.file_name().filter(|_| !axes.is_empty()) {
                Some(v) => format!("{}/{}/{}", self.name, v.to_string_lossy(), condition.name()),
                None => format!("{}/{}", self.name, condition.name()),
            };
            for &hidden in &sweep.hidden {
                for rep in 0..sweep.repetitions {
                    for &lambda in &lambdas {
                        let mut config = base.clone();
                        config.model.hidden = hidden;
                        config.train.seed = base.train.seed + rep as u64;
                        config.name = Some(name.clone());
                        let mut run_dir = dir
                            .join(condition.name())
                            .join(format!("h{hidden}"))
                            .join(format!("rep{rep}"));
                        if let Some(l) = lambda {
                            config.optim.weight_decay = l;
                            run_dir = run_dir.join(format!("wd{l:e}"));
                        }
                        if condition == Condition::CensoredNoise {
                            config.data.label_noise = sweep.censor_noise;
                        }
                        runs.push(PlannedRun {
                            condition,
                            hidden,
                            rep,
                            weight_decay: lambda,
                            variant,
                            axes: axes.clone(),
                            point: point.clone(),
                            dir: run_dir,
                            config,
                        });
                    }
                }
            }
        }
        runs
    }

    /// Problems of grid points that would not be different points (two whose runs and
    /// censoring network are the same but for their names, or whose folders clash) or whose
    /// folder cannot be made.
    pub(super) fn point_problems(&self) -> Vec<String> {
        let runs: Vec<Vec<TrainConfig>> = self.variants.iter().map(|v| self.trained(v)).collect();
        let mut problems = Vec::new();
        for (j, later) in self.variants.iter().enumerate() {
            let dir = later.dir_name();
            if dir.len() > MAX_FOLDER_NAME {
                problems.push(format!(
                    "sweep.vary: the folder of the point {} would be {} bytes long, more than the {MAX_FOLDER_NAME} a file system takes: use shorter values or fewer axes",
                    later.label(),
                    dir.len()
                ));
            }
            for (i, earlier) in self.variants[..j].iter().enumerate() {
                let why = if runs[i] == runs[j] {
                    "train identical runs (their values are equal once read, or no run uses them)"
                        .to_string()
                } else if earlier.dir_name() == later.dir_name() {
                    format!("share the folder {}", later.dir_name())
                } else {
                    continue;
                };
                problems.push(format!(
                    "sweep.vary: the points {} and {} {why}",
                    earlier.label(),
                    later.label()
                ));
                break;
            }
        }
        problems
    }

    /// Every config a point trains (its runs, its censoring network), names left out.
    fn trained(&self, variant: &Variant) -> Vec<TrainConfig> {
        let point = (0, Vec::new(), String::new());
        let (base, sweep) = (&variant.base, &variant.sweep);
        let mut configs: Vec<TrainConfig> = self
            .plan_point(base, sweep, Path::new(""), point)
            .into_iter()
            .map(|r| r.config)
            .collect();
        if sweep.conditions.iter().any(|c| c.is_censored()) {
            configs.extend(censor_config(&self.name, base, sweep));
        }
        configs.iter_mut().for_each(|c| c.name = None);
        configs
    }
}
