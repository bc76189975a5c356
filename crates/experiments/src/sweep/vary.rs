//! `[sweep.vary]`: sweeps over any config key. Each axis is a dotted key with a list of
//! values; the grid is their product, and every point (a [`Variant`]) is the whole sweep with
//! those values set, resolved and validated like a config of its own before anything runs.
//!
//! ```toml
//! [sweep.vary]
//! "model.init_scale" = [0.01, 0.1, 1.0]
//! "sweep.censor_max_epochs" = [100, 500]
//! ```
//!
//! `sweep.vary_design = "one-at-a-time"` makes an ablation instead of the product: the first
//! value of every axis is the baseline, and each other value is tried alone.

use std::path::Path;

use realbias_train::config::{ConfigError, TrainConfig, set_dotted};
use serde::{Deserialize, Serialize};

use realbias_train::optim::Method;

use super::settings::{SweepConfig, first_repeat};

pub use super::design::{Axes, Design};

/// Keys that define the grid of every variant, so they cannot vary themselves.
const FIXED: [&str; 6] = [
    "name",
    "sweep.hidden",
    "sweep.repetitions",
    "sweep.conditions",
    "sweep.vary",
    "sweep.vary_design",
];

/// Keys that decide the full splits all points are drawn from (loaded once).
const SHARED_DATA: [&str; 3] = ["data.dataset", "data.features", "data.validation"];

/// One point of the grid: its values and the configs they resolve to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// `(key, value)` per axis, in axis order.
    pub values: Vec<(String, toml::Value)>,
    /// Which values name the point: all in a grid, those off the baseline in an ablation.
    pub named: Vec<bool>,
    pub base: TrainConfig,
    pub sweep: SweepConfig,
}

/// A value as short text: numbers and booleans as TOML writes them, strings bare.
pub fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The last segment of a dotted key (`model.init_scale` -> `init_scale`).
fn short_key(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

impl Variant {
    /// The naming values as `(short key, text)`.
    fn naming(&self) -> impl Iterator<Item = (&str, String)> {
        self.values
            .iter()
            .zip(&self.named)
            .filter(|(_, n)| **n)
            .map(|((k, v), _)| (short_key(k), value_text(v)))
    }

    /// `init_scale=0.1, censor_max_epochs=500` (`baseline` for an ablation's baseline).
    pub fn label(&self) -> String {
        let parts: Vec<String> = self.naming().map(|(k, v)| format!("{k}={v}")).collect();
        match parts.is_empty() {
            true => "baseline".into(),
            false => parts.join(", "),
        }
    }

    /// The point's folder: `init_scale-0.1_censor_max_epochs-500` (characters outside
    /// `[A-Za-z0-9._-]` become `-`).
    pub fn dir_name(&self) -> String {
        let parts: Vec<String> = self.naming().map(|(k, v)| format!("{k}-{v}")).collect();
        let name = match parts.is_empty() {
            true => "baseline".into(),
            false => parts.join("_"),
        };
        name.chars()
            .map(|c| match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '-',
            })
            .collect()
    }

    /// The axis values as text, in axis order (the summary's columns).
    pub fn value_texts(&self) -> Vec<String> {
        self.values.iter().map(|(_, v)| value_text(v)).collect()
    }
}

/// Problems with the axes themselves (before any value is tried).
pub fn axis_problems(axes: &Axes) -> Vec<String> {
    let mut p = Vec::new();
    for (key, values) in axes {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() < 2 || parts.iter().any(|s| s.is_empty()) {
            p.push(format!(
                "sweep.vary: \"{key}\" is not a dotted config key (e.g. \"model.init_scale\")"
            ));
        }
        if SHARED_DATA
            .iter()
            .any(|d| key == d || key.starts_with(&format!("{d}.")))
        {
            p.push(format!(
                "sweep.vary: \"{key}\" changes the dataset every point shares; run separate experiments"
            ));
        }
        if FIXED.contains(&key.as_str()) {
            p.push(format!(
                "sweep.vary: \"{key}\" defines the grid itself and cannot vary"
            ));
        }
        if values.is_empty() {
            p.push(format!("sweep.vary: \"{key}\" lists no values"));
        }
        if let Some(v) = first_repeat(values) {
            p.push(format!("sweep.vary: \"{key}\" lists {v} twice"));
        }
    }
    let mut dirs: Vec<String> = axes.keys().map(|k| short_key(k).to_string()).collect();
    dirs.sort();
    if let Some(w) = dirs.windows(2).find(|w| w[0] == w[1]) {
        p.push(format!(
            "sweep.vary: two axes end in \"{}\"; their folders would clash",
            w[0]
        ));
    }
    p
}

/// The `[optim]` keys of the methods an `optim.method` axis lists (none without one): the
/// shared config may hold them all.
pub fn method_axis_keys(axes: &Axes) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = axis_methods(axes)
        .into_iter()
        .flat_map(|m| m.own_keys().iter().copied())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn axis_methods(axes: &Axes) -> Vec<Method> {
    let values = axes.get("optim.method").map_or(&[][..], |v| v.as_slice());
    values
        .iter()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

/// A config's `[optim]` table and the method it names (SGD when it names none); `None`
/// without the table, or for an unknown method, which is left for the config's own error.
fn optim_and_method(table: &mut toml::Table) -> Option<(&mut toml::Table, Method)> {
    let optim = table.get_mut("optim")?.as_table_mut()?;
    let method = optim
        .get("method")
        .and_then(|v| v.as_str())
        .unwrap_or("sgd");
    let method = method.parse::<Method>().ok()?;
    Some((optim, method))
}

/// With an `optim.method` axis, the shared config holds the settings of every method on it:
/// a point's `table` keeps only those its own method reads (a setting of another method is
/// an error in a run's config).
pub fn keep_own_method_settings(table: &mut toml::Table, axes: &Axes) {
    let others = method_axis_keys(axes);
    let Some((optim, method)) = optim_and_method(table) else {
        return;
    };
    for key in others {
        if !method.own_keys().contains(&key) {
            optim.remove(key);
        }
    }
}

/// A recorded config (`experiment.toml`) serializes every `[optim]` key, SGD's defaults under
/// `optim.method = "cg"` too; before its points are resolved again, `table` drops the keys
/// that neither its method nor a method of the axes reads, which no config wrote.
pub fn drop_unread_optim_keys(table: &mut toml::Table, axes: &Axes) {
    let read_by_axis = method_axis_keys(axes);
    let Some((optim, method)) = optim_and_method(table) else {
        return;
    };
    let of_some_method = |key: &str| Method::ALL.iter().any(|m| m.own_keys().contains(&key));
    let unread: Vec<String> = optim
        .keys()
        .filter(|k| of_some_method(k) && !method.own_keys().contains(&k.as_ref()))
        .filter(|k| !read_by_axis.contains(&k.as_ref()))
        .cloned()
        .collect();
    for key in unread {
        optim.remove(&key);
    }
}

/// Sets the dotted `key` of `table` to `value`, creating tables on the way; a key that runs
/// through a non-table value is an error naming it.
pub fn set_key(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
    path: &Path,
) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    set_dotted(table, &parts, value).map_err(|part| {
        ConfigError::parse(
            path,
            format!("sweep.vary: \"{key}\": \"{part}\" is not a table"),
        )
    })
}
