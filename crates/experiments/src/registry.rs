//! The one place that names every experiment kind: a config's `kind` (none: a width sweep)
//! picks the [`Experiment`] that runs it. A new kind is a folder beside `sweep/` plus one line
//! in [`KINDS`].

use std::path::Path;

use realbias_train::config::{ConfigError, folder_name_problem, parse_table, read_config};

use crate::ExperimentError;
use crate::convex_nn::{self, ConvexNn, ConvexNnConfig};
use crate::experiment::Experiment;
use crate::factorization::{self, Factorization, FactorizationConfig};
use crate::store::folder_config;
use crate::sweep::{ExperimentConfig, Sweep};

/// Builds a kind's experiment from its config table (`path` names the file in errors).
type Build = fn(toml::Table, &Path) -> Result<Box<dyn Experiment>, ConfigError>;

/// Every kind with a `kind = "..."` key, and how to build it.
const KINDS: [(&str, Build); 2] = [
    (factorization::KIND, |t, p| {
        Ok(Box::new(Factorization::new(FactorizationConfig::parse(
            t, p,
        )?)))
    }),
    (convex_nn::KIND, |t, p| {
        Ok(Box::new(ConvexNn::new(ConvexNnConfig::parse(t, p)?)))
    }),
];

/// Reads an experiment config (with `--set` overrides) and builds its experiment.
pub fn load(path: &Path, sets: &[String]) -> Result<Box<dyn Experiment>, ConfigError> {
    let text = read_config(path)?;
    realbias_train::config::blaming_sets(path, sets, |sets| parse(&text, path, sets))
}

/// [`load`] from the config's text.
pub fn parse(text: &str, path: &Path, sets: &[String]) -> Result<Box<dyn Experiment>, ConfigError> {
    let table = parse_table(text, path, sets)?;
    let named =
        table.contains_key("name") || table.get("base").is_some_and(|b| b.get("name").is_some());
    let exp = build(table, text, path, sets)?;
    // The name is the folder under --out: one component, or files land outside it.
    let key = if named {
        "name"
    } else {
        "the config file's name (no `name` key)"
    };
    match folder_name_problem(key, exp.name()) {
        None => Ok(exp),
        Some(problem) => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: vec![problem],
        }),
    }
}

/// The experiment of a parsed config table, by its kind.
fn build(
    table: toml::Table,
    text: &str,
    path: &Path,
    sets: &[String],
) -> Result<Box<dyn Experiment>, ConfigError> {
    let Some(kind) = table.get("kind") else {
        let config = ExperimentConfig::parse(text, path, sets)?;
        return Ok(Box::new(Sweep::new(config)));
    };
    let known: Vec<String> = KINDS.iter().map(|(k, _)| format!("\"{k}\"")).collect();
    let unknown = |what: String| {
        ConfigError::parse(
            path,
            format!(
                "unknown kind {what}: use {}, or leave kind out for a width sweep",
                known.join(" or ")
            ),
        )
    };
    let name = kind.as_str().ok_or_else(|| unknown(kind.to_string()))?;
    let (_, make) = KINDS
        .iter()
        .find(|(k, _)| *k == name)
        .ok_or_else(|| unknown(format!("\"{name}\"")))?;
    make(table, path)
}

/// The config `text` (read from `path`) with every `--set` applied, as one file that runs
/// `exp`, the experiment parsed from them, without them: what a Slurm chain runs, so that
/// edits to the config after it was submitted cannot reach queued jobs. The name is written
/// out (it may come from the file's name).
pub fn snapshot(
    text: &str,
    path: &Path,
    sets: &[String],
    exp: &dyn Experiment,
) -> Result<String, ExperimentError> {
    let mut table = parse_table(text, path, sets)?;
    table.insert("name".into(), exp.name().into());
    let body = toml::to_string(&table).map_err(|e| ConfigError::parse(path, e))?;
    let mut header = format!("# {} as resolved by realbias", path.display());
    for set in sets {
        header.push_str(&format!(" --set {set:?}"));
    }
    let snapshot = format!("{header}\n{body}");
    // The copy must plan the very experiment of the original, or its jobs would be refused.
    let copy = parse(&snapshot, path, &[])?;
    if copy.config_toml()? != exp.config_toml()? {
        let message = "the resolved copy of this config does not read back the same";
        return Err(ConfigError::parse(path, message).into());
    }
    Ok(snapshot)
}

/// The width sweep of a folder `realbias run` made (an error for the other kinds).
pub fn load_sweep(dir: &Path) -> Result<Sweep, ExperimentError> {
    let (path, text) = folder_config(dir)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::parse(&path, e))?;
    if let Some(kind) = table.get("kind") {
        let message = format!("a {kind} experiment, not a width sweep: it has no network measures");
        return Err(ConfigError::parse(&path, message).into());
    }
    Ok(Sweep::new(ExperimentConfig::from_recorded(&text, &path)?))
}

/// The experiment of a folder `realbias run` made, from its recorded config.
pub fn load_folder(dir: &Path) -> Result<Box<dyn Experiment>, ExperimentError> {
    let (path, text) = folder_config(dir)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::parse(&path, e))?;
    if table.contains_key("kind") {
        return Ok(parse(&text, &path, &[])?);
    }
    // Sweep folders record the resolved sweep config, whose layout is the serialized struct.
    Ok(Box::new(load_sweep(dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kind_is_named_plainly() {
        let e = parse("kind = \"bogus\"\n", Path::new("x.toml"), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown kind \"bogus\""), "{e}");
        assert!(!e.contains("Some("), "{e}");
        assert!(
            e.contains("\"matrix-factorization\" or \"convex-nn\""),
            "{e}"
        );
        let e = parse("kind = 3\n", Path::new("x.toml"), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown kind 3"), "{e}");
    }
}
