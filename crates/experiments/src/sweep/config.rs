//! A sweep's config: a training config plus a `[sweep]` section (widths, repetitions, the
//! conditions of Figure 2, the weight-decay grid, the censoring network), validated whole.

use std::path::Path;

use realbias_train::config::{ConfigError, TrainConfig, parse_table, read_config};
use realbias_train::optim::Method;
use serde::{Deserialize, Serialize};

use super::settings::first_repeat;
pub use super::settings::{Condition, MAX_REPETITIONS, MAX_RUNS, SweepConfig};
use super::vary::{
    Axes, Design, Variant, axis_problems, drop_unread_optim_keys, keep_own_method_settings,
    method_axis_keys, set_key,
};

/// A whole experiment: the base run and how it is swept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub name: String,
    pub base: TrainConfig,
    pub sweep: SweepConfig,
    /// The points of `[sweep.vary]`'s grid, each resolved (empty without one).
    #[serde(skip)]
    pub variants: Vec<Variant>,
}

impl ExperimentConfig {
    /// Reads a config with a `[sweep]` section; `--set` overrides reach both parts
    /// (`sweep.hidden=[4, 8]`, `optim.lr=0.05`).
    pub fn load(path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        Self::parse(&read_config(path)?, path, sets)
    }

    pub fn parse(text: &str, path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        let table = parse_table(text, path, sets)?;
        let mut config = Self::resolve(table.clone(), path)?;
        if !config.sweep.vary.is_empty() {
            config.check_axes_used(path)?;
            let axes = (&config.sweep.vary, config.sweep.vary_design);
            config.variants = Self::variants(&table, axes, path)?;
            let problems = config.point_problems();
            if !problems.is_empty() {
                let path = path.to_path_buf();
                return Err(ConfigError::Invalid { path, problems });
            }
        }
        Ok(config)
    }

    /// An axis on a key the sweep sets itself, reads once for all points, or that no listed
    /// condition uses, is an error: its points would claim to differ while their runs do not.
    fn check_axes_used(&self, path: &Path) -> Result<(), ConfigError> {
        let conditions = &self.sweep.conditions;
        let censored = conditions.iter().any(|c| c.is_censored());
        let noisy = conditions.contains(&Condition::CensoredNoise);
        let decayed = conditions.contains(&Condition::WeightDecay);
        let unused = "which no condition in sweep.conditions uses";
        let problems: Vec<String> = self
            .sweep
            .vary
            .keys()
            .filter_map(|key| {
                let why = match key.as_str() {
                    "model.hidden" => "is set for every run from sweep.hidden: list widths there",
                    "sweep.ensemble" => {
                        "is read once for the whole sweep, not per point: set it in [sweep]"
                    }
                    "optim.weight_decay" if decayed => {
                        "is replaced by sweep.weight_decay_grid under the weight-decay condition"
                    }
                    "sweep.weight_decay_grid" if !decayed => unused,
                    "sweep.censor_noise" if !noisy => unused,
                    k if k.starts_with("sweep.censor") && !censored => unused,
                    _ => return None,
                };
                Some(format!("sweep.vary: \"{key}\" {why}"))
            })
            .collect();
        match problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            }),
        }
    }

    /// The config a sweep folder recorded (`experiment.toml`, the serialized struct), its
    /// `[sweep.vary]` grid resolved again.
    pub fn from_recorded(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let err = |e: &dyn std::fmt::Display| ConfigError::parse(path, e);
        let mut config: ExperimentConfig = toml::from_str(text).map_err(|e| err(&e))?;
        if config.sweep.vary.is_empty() {
            return Ok(config);
        }
        let mut table = toml::Table::try_from(&config.base).map_err(|e| err(&e))?;
        let sweep = toml::Table::try_from(&config.sweep).map_err(|e| err(&e))?;
        table.insert("name".into(), config.name.clone().into());
        table.insert("sweep".into(), sweep.into());
        drop_unread_optim_keys(&mut table, &config.sweep.vary);
        let axes = (&config.sweep.vary, config.sweep.vary_design);
        config.variants = Self::variants(&table, axes, path)?;
        Ok(config)
    }

    /// Every point of the `[sweep.vary]` grid resolved and validated like a config of its own;
    /// a problem names the point.
    fn variants(
        table: &toml::Table,
        (axes, design): (&Axes, Design),
        path: &Path,
    ) -> Result<Vec<Variant>, ConfigError> {
        let problems = axis_problems(axes);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        let mut variants = Vec::new();
        let points = design.points(axes);
        let baseline = points.first().cloned().unwrap_or_default();
        for values in points {
            let named = design.named(&values, &baseline);
            let mut point = table.clone();
            for (key, value) in &values {
                set_key(&mut point, key, value.clone(), path)?;
            }
            keep_own_method_settings(&mut point, axes);
            let at = |e: ConfigError| {
                let what = values
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = match e {
                    ConfigError::Parse { message, .. } => message,
                    ConfigError::Invalid { problems, .. } => problems.join("; "),
                    other => other.to_string(),
                };
                ConfigError::parse(path, format!("[sweep.vary] with {what}: {message}"))
            };
            let mut resolved = Self::resolve(point, path).map_err(at)?;
            resolved.sweep.vary.clear();
            variants.push(Variant {
                values,
                named,
                base: resolved.base,
                sweep: resolved.sweep,
            });
        }
        Ok(variants)
    }

    /// A config table without a grid of variants: parsed and validated.
    fn resolve(mut table: toml::Table, path: &Path) -> Result<Self, ConfigError> {
        let sweep = table.remove("sweep").ok_or_else(|| {
            ConfigError::parse(
                path,
                "no [sweep] section: use `realbias train` for a single run",
            )
        })?;
        let written_optim = table.get("optim").and_then(|o| o.as_table()).cloned();
        let sweep: SweepConfig = sweep
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::parse(path, format!("in [sweep]: {e}")))?;
        let base: TrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError::parse(path, e))?;
        let name = base.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or("experiment".into(), |s| s.to_string_lossy().into_owned())
        });
        let mut config = ExperimentConfig {
            name,
            base,
            sweep,
            variants: Vec::new(),
        };
        let shared = method_axis_keys(&config.sweep.vary);
        let mut problems = config.base.problems_allowing(&shared);
        let written = written_optim.map_or(Vec::new(), |o| {
            config.base.optim.foreign_keys_written(&o, &shared)
        });
        problems.extend(
            written
                .into_iter()
                .filter(|p| !problems.contains(p))
                .collect::<Vec<_>>(),
        );
        config.base.optim.fill_method_table();
        problems.extend(config.sweep_problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    fn sweep_problems(&self) -> Vec<String> {
        let s = &self.sweep;
        let mut p = Vec::new();
        if s.hidden.is_empty() || s.hidden.contains(&0) {
            p.push("sweep.hidden must list at least one width, each >= 1".into());
        }
        // A repeated value would train the same runs twice and count them as repetitions.
        if let Some(h) = first_repeat(&s.hidden) {
            p.push(format!("sweep.hidden lists {h} twice"));
        }
        if let Some(c) = first_repeat(&s.conditions) {
            p.push(format!("sweep.conditions lists {} twice", c.name()));
        }
        if s.conditions.contains(&Condition::WeightDecay)
            && let Some(l) = first_repeat(&s.weight_decay_grid)
        {
            p.push(format!("sweep.weight_decay_grid lists {l} twice"));
        }
        if s.repetitions == 0 {
            p.push("sweep.repetitions must be at least 1".into());
        }
        // Bounds before anything is allocated: a plan is a vector of runs, and ten million
        // repetitions aborted the process on an 8.7 GB allocation.
        if s.repetitions > MAX_REPETITIONS {
            p.push(format!(
                "sweep.repetitions = {} is more than {MAX_REPETITIONS} (the paper uses 5)",
                s.repetitions
            ));
        } else if let Some(runs) = s.planned_runs().filter(|&n| n > MAX_RUNS) {
            p.push(format!(
                "the sweep plans {runs} runs (widths x repetitions x conditions and weight decays), more than {MAX_RUNS}: use fewer widths, repetitions or conditions"
            ));
        }
        if s.conditions.is_empty() {
            p.push("sweep.conditions must name at least one condition".into());
        }
        if s.conditions.contains(&Condition::WeightDecay)
            && (s.weight_decay_grid.is_empty()
                || s.weight_decay_grid
                    .iter()
                    .any(|&l| !(l > 0.0 && l.is_finite())))
        {
            p.push(
                "sweep.weight_decay_grid must list positive values for the weight-decay condition"
                    .into(),
            );
        }
        if s.conditions.iter().any(|c| c.is_censored()) && s.censor_hidden.is_none_or(|h| h == 0) {
            p.push("sweep.censor_hidden (H0 >= 1) is needed for the censored conditions".into());
        }
        if !(0.0..1.0).contains(&s.censor_noise) {
            p.push(format!(
                "sweep.censor_noise = {} must be in [0, 1)",
                s.censor_noise
            ));
        }
        if s.censor_max_epochs == Some(0) {
            p.push("sweep.censor_max_epochs must be at least 1".into());
        }
        p
    }

    /// The censoring network's training config: the base protocol with H0 hidden units.
    pub fn censor_config(&self) -> Option<TrainConfig> {
        censor_config(&self.name, &self.base, &self.sweep)
    }

    /// The (base, sweep) of every variant, or the config's own when it has no grid.
    pub fn points(&self) -> Vec<(&TrainConfig, &SweepConfig)> {
        if self.variants.is_empty() {
            vec![(&self.base, &self.sweep)]
        } else {
            self.variants.iter().map(|v| (&v.base, &v.sweep)).collect()
        }
    }

    /// The censoring network's config of each of [`points`](Self::points).
    pub fn censor_configs(&self) -> Vec<Option<TrainConfig>> {
        self.points()
            .into_iter()
            .map(|(base, sweep)| censor_config(&self.name, base, sweep))
            .collect()
    }
}

/// The censoring network's training config: `base`'s protocol with H0 hidden units on every
/// example, normalized by their own statistics, from the default initialization scale and by
/// the paper's SGD (so the students' choices of statistics, scale and optimizer do not change
/// the labels).
pub(super) fn censor_config(
    name: &str,
    base: &TrainConfig,
    sweep: &SweepConfig,
) -> Option<TrainConfig> {
    let h0 = sweep.censor_hidden?;
    let mut c = base.clone();
    c.model.hidden = h0;
    c.optim.weight_decay = 0.0;
    c.data.label_noise = 0.0;
    c.data.subset = None;
    c.data.normalization_statistics = Default::default();
    c.model.init_scale = 1.0;
    c.optim.method = Method::Sgd;
    (c.optim.cg, c.optim.lbfgs, c.optim.adam) = (None, None, None);
    if let Some(e) = sweep.censor_max_epochs {
        c.train.max_epochs = e;
    }
    c.name = Some(format!("{name}/censor"));
    Some(c)
}
