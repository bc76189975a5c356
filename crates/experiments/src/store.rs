//! The result store every experiment kind uses: the folder's config (`experiment.toml`), one
//! `claim` with one meaning of `--force`, atomic writes, and results read back with every
//! unreadable file named.

use std::path::{Path, PathBuf};

use realbias_train::run_files::files::write_atomic;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ExperimentError;
use crate::lock::{self, Lock, Owner};
use crate::text::{MAX_TEXT_BYTES, read_text};

/// The resolved config an experiment folder belongs to.
pub(crate) const EXPERIMENT_FILE: &str = "experiment.toml";
/// Where the processes working in a folder leave their markers.
const SESSIONS: &str = ".sessions";

/// How a folder stands with a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// No experiment here yet.
    New,
    /// Made by this very config: resume.
    Same,
    /// Made by another config, taken over with `--force`: results the new config would not
    /// have produced are discarded.
    Replaced,
    /// Made by a smaller config whose every unit this one plans alike (more repetitions,
    /// widths, conditions or grid points): its results are kept, no `--force` needed.
    Extended,
}

/// How `dir` stands with `config_text`, without writing anything. A folder made by another
/// config is an error unless `force`.
/// `extends(recorded)` says whether this config plans every unit of the recorded one alike
/// (then the folder grows without `--force`). Taking over or growing a folder is refused while
/// another process works in it.
pub fn check_claim(
    dir: &Path,
    config_text: &str,
    force: bool,
    extends: &dyn Fn(&str) -> bool,
) -> Result<Claim, ExperimentError> {
    check_writable(dir)?;
    let path = dir.join(EXPERIMENT_FILE);
    let state = match std::fs::read_to_string(&path) {
        Ok(existing) if existing == config_text => Claim::Same,
        Ok(existing) if extends(&existing) => Claim::Extended,
        Ok(_) if force => Claim::Replaced,
        Ok(existing) => {
            let keys = toml_difference(&existing, config_text);
            return Err(ExperimentError::ConfigChanged { path, keys });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Claim::New,
        // An unreadable config is not a new folder: taking it for one would overwrite it.
        Err(source) => return Err(ExperimentError::Read { path, source }),
    };
    let others = other_sessions(dir);
    if matches!(state, Claim::Replaced | Claim::Extended) && !others.is_empty() {
        let holders: Vec<String> = others.iter().map(|o| o.to_string()).collect();
        return Err(ExperimentError::FolderInUse {
            dir: dir.to_path_buf(),
            holders: holders.join(", "),
        });
    }
    Ok(state)
}

/// The dotted keys in which two configs (TOML) differ, for an error message.
fn toml_difference(a: &str, b: &str) -> String {
    let tree = |text: &str| {
        toml::from_str::<toml::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok())
    };
    let (Some(a), Some(b)) = (tree(a), tree(b)) else {
        return "a form this version cannot read".into();
    };
    // A sweep records its shared run config under `base`; the user wrote those keys at the
    // top level of the file, so they are named as written.
    let keys: Vec<String> = realbias_train::config::differing_keys(&a, &b)
        .into_iter()
        .map(|k| k.strip_prefix("base.").map_or(k.clone(), str::to_string))
        .collect();
    match keys.is_empty() {
        true => "its formatting only".into(),
        false => keys.join(", "),
    }
}

/// Whether this process may write in `dir`, or in the nearest folder above it that exists
/// (where `dir` would be made), as the kernel decides (permissions, a read-only mount).
pub fn check_writable(dir: &Path) -> Result<(), ExperimentError> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let existing = absolute
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let not_writable = |source| ExperimentError::NotWritable {
        dir: existing.to_path_buf(),
        source,
    };
    if !existing.is_dir() {
        let message = format!("{} is a file, not a folder", existing.display());
        return Err(not_writable(std::io::Error::other(message)));
    }
    let access = rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
    rustix::fs::access(existing, access).map_err(|e| not_writable(e.into()))
}

/// The resolved config of experiment `name` as the TOML its folder records.
pub fn config_text<T: Serialize>(name: &str, config: &T) -> Result<String, ExperimentError> {
    toml::to_string(config).map_err(|e| ExperimentError::EncodeConfig {
        name: name.to_string(),
        message: e.to_string(),
    })
}

/// [`check_claim`], then records `config_text` as the folder's config.
pub fn claim(
    dir: &Path,
    config_text: &str,
    force: bool,
    extends: &dyn Fn(&str) -> bool,
) -> Result<Claim, ExperimentError> {
    let state = check_claim(dir, config_text, force, extends)?;
    if state == Claim::Replaced {
        clear_other_kind(dir, config_text)?;
    }
    if state != Claim::Same {
        write_atomic(&dir.join(EXPERIMENT_FILE), config_text.as_bytes())?;
    }
    Ok(state)
}

/// The `kind` key of a recorded config (`None`: a width sweep, or unreadable).
fn kind_of(config_text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(config_text).ok()?;
    Some(table.get("kind")?.as_str()?.to_string())
}

/// Taken over by another kind of experiment (`--force`), a folder keeps nothing of the old
/// kind: none of its results, tables or figures can belong to the new one.
fn clear_other_kind(dir: &Path, config_text: &str) -> Result<(), ExperimentError> {
    let (_, old) = folder_config(dir)?;
    if kind_of(&old) == kind_of(config_text) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ExperimentError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        if entry.file_name() != SESSIONS {
            realbias_train::run_files::files::remove(&entry.path())?;
        }
    }
    Ok(())
}

/// Marks this process as working in `dir` until the returned guard is dropped.
pub fn join(dir: &Path) -> Result<Lock, ExperimentError> {
    let me = Owner::me();
    let path = dir
        .join(SESSIONS)
        .join(format!("{}-{}.lock", me.host, me.pid));
    match lock::try_lock(&path)? {
        Ok(lock) => Ok(lock),
        // Our own pid's marker from an earlier run in this process: it is ours.
        Err(_) => {
            realbias_train::run_files::files::remove(&path)?;
            Ok(
                lock::try_lock(&path)?.map_err(|o| ExperimentError::FolderInUse {
                    dir: dir.to_path_buf(),
                    holders: o.to_string(),
                })?,
            )
        }
    }
}

/// How old a temporary file of an atomic write must be to count as left by a killed writer (a
/// live one renames it within seconds).
const TMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// What killed processes left in `dir` (recursively): temporary files of interrupted atomic
/// writes (`.NAME.PID-N.tmp`, older than 10 minutes) and the session markers of processes
/// that are gone.
pub fn litter(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let in_sessions = folder.file_name().is_some_and(|n| n == SESSIONS);
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() && !kind.is_symlink() {
                pending.push(path);
            } else if (kind.is_file() && is_old_tmp(&path, &name))
                || (in_sessions && name.ends_with(".lock") && lock::live_owner(&path).is_none())
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Whether `name` (at `path`) is an atomic write's temporary file older than [`TMP_AGE`]; only
/// such names are looked up on disk.
fn is_old_tmp(path: &Path, name: &str) -> bool {
    let age = || {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        modified.elapsed().ok()
    };
    name.starts_with('.') && name.ends_with(".tmp") && age().is_some_and(|a| a > TMP_AGE)
}

/// Removes [`litter`]; how many files it removed (best effort: one that cannot be removed is
/// left for `status` to show).
pub fn remove_litter(dir: &Path) -> usize {
    litter(dir)
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// The live processes other than this one working in `dir` (a stale marker, left by a process
/// that died or stopped refreshing it, does not count).
pub fn other_sessions(dir: &Path) -> Vec<Owner> {
    let me = Owner::me();
    let Ok(entries) = std::fs::read_dir(dir.join(SESSIONS)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| lock::live_owner(&e.ok()?.path()))
        .filter(|o| *o != me)
        .collect()
}

/// The text of an experiment folder's config.
pub fn folder_config(dir: &Path) -> Result<(PathBuf, String), ExperimentError> {
    let path = dir.join(EXPERIMENT_FILE);
    let text = match read_text(&path, MAX_TEXT_BYTES) {
        Ok(Some(text)) => text,
        Ok(None) => return Err(ExperimentError::NotAnExperiment(dir.to_path_buf())),
        Err(message) => {
            return Err(realbias_train::config::ConfigError::parse(&path, message).into());
        }
    };
    Ok((path, text))
}

/// A saved result: `Ok(None)` when the file is not there (not finished), an error naming the
/// file when it is there but cannot be read or parsed.
pub fn read_result<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let text = match read_text(path, MAX_TEXT_BYTES) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: not a valid result: {e}", path.display()))
}

/// A finished unit's saved result, if it is there and parses.
pub fn cached<T: DeserializeOwned>(path: &Path) -> Option<T> {
    read_result(path).ok().flatten()
}

/// The results saved at `paths` (`None`: not finished), and a line for each file that is
/// there but unreadable.
pub fn read_results<T: DeserializeOwned>(paths: &[PathBuf]) -> (Vec<Option<T>>, Vec<String>) {
    let mut broken = Vec::new();
    let results = paths
        .iter()
        .map(|p| {
            read_result(p).unwrap_or_else(|e| {
                broken.push(e);
                None
            })
        })
        .collect();
    (results, broken)
}

/// Writes `value` as pretty JSON, atomically.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), ExperimentError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExperimentError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes text files atomically, all of them or (on the first failure) the ones before it,
/// and returns their paths.
pub fn save_texts(files: Vec<(PathBuf, String)>) -> Result<Vec<PathBuf>, ExperimentError> {
    let mut written = Vec::new();
    for (path, text) in files {
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// `x` for a file name (`1e-3` → `0.001`).
pub fn tag(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &str) -> bool {
        false
    }

    #[test]
    fn a_config_that_extends_the_folders_claims_it_without_force() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), "a", false, &never).unwrap();
        let grows = |old: &str| old == "a";
        assert_eq!(
            check_claim(dir.path(), "a+", false, &grows).unwrap(),
            Claim::Extended
        );
        assert_eq!(
            claim(dir.path(), "a+", false, &grows).unwrap(),
            Claim::Extended
        );
        assert_eq!(folder_config(dir.path()).unwrap().1, "a+");
        // Not while another process works in the folder with the smaller plan.
        let other = dir.path().join(SESSIONS).join("elsewhere-1.lock");
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::write(&other, "node-z 1 1\n").unwrap();
        let grows = |old: &str| old == "a+";
        let err = check_claim(dir.path(), "a++", false, &grows).unwrap_err();
        assert!(matches!(err, ExperimentError::FolderInUse { .. }), "{err}");
    }

    #[test]
    fn claim_refuses_another_config_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(claim(dir.path(), "a", false, &never).unwrap(), Claim::New);
        assert_eq!(claim(dir.path(), "a", false, &never).unwrap(), Claim::Same);
        assert!(matches!(
            check_claim(dir.path(), "b", false, &never),
            Err(ExperimentError::ConfigChanged { .. })
        ));
        assert_eq!(
            check_claim(dir.path(), "b", true, &never).unwrap(),
            Claim::Replaced
        );
        // Checking writes nothing.
        assert_eq!(
            check_claim(dir.path(), "a", false, &never).unwrap(),
            Claim::Same
        );
        assert_eq!(
            claim(dir.path(), "b", true, &never).unwrap(),
            Claim::Replaced
        );
        assert_eq!(folder_config(dir.path()).unwrap().1, "b");
    }

    #[test]
    fn another_kind_taking_a_folder_over_leaves_nothing_of_the_old_kind() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = "name = \"x\"\n";
        let fit = "kind = \"matrix-factorization\"\nname = \"x\"\n";
        claim(dir.path(), sweep, false, &never).unwrap();
        std::fs::create_dir_all(dir.path().join("plain/h4/rep0")).unwrap();
        std::fs::write(dir.path().join("errors.svg"), "<svg/>").unwrap();
        // Another config of the same kind keeps what it may reuse.
        claim(dir.path(), "name = \"x\"\n# changed\n", true, &never).unwrap();
        assert!(dir.path().join("plain/h4/rep0").is_dir());
        assert!(dir.path().join("errors.svg").is_file());
        let _session = join(dir.path()).unwrap();
        assert_eq!(
            claim(dir.path(), fit, true, &never).unwrap(),
            Claim::Replaced
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [SESSIONS, EXPERIMENT_FILE]);
        assert_eq!(folder_config(dir.path()).unwrap().1, fit);
    }

    #[test]
    fn an_unreadable_config_is_an_error_naming_it_not_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where experiment.toml should be: it exists but cannot be read as text.
        std::fs::create_dir(dir.path().join(EXPERIMENT_FILE)).unwrap();
        let err = check_claim(dir.path(), "a", true, &never).unwrap_err();
        assert!(matches!(err, ExperimentError::Read { .. }), "{err}");
        assert!(err.to_string().contains(EXPERIMENT_FILE), "{err}");
        std::fs::remove_dir(dir.path().join(EXPERIMENT_FILE)).unwrap();
        // Not valid UTF-8.
        std::fs::write(dir.path().join(EXPERIMENT_FILE), [0xff, 0xfe, 0x00]).unwrap();
        assert!(check_claim(dir.path(), "a", true, &never).is_err());
    }

    #[test]
    fn unreadable_results_are_named_and_missing_ones_are_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        let bad = dir.path().join("bad.json");
        std::fs::write(&good, "[1.0]").unwrap();
        std::fs::write(&bad, "{ not json").unwrap();
        let missing = dir.path().join("missing.json");
        let (results, broken) = read_results::<Vec<f64>>(&[good, bad.clone(), missing]);
        assert_eq!(results, vec![Some(vec![1.0]), None, None]);
        assert_eq!(broken.len(), 1);
        assert!(broken[0].contains(&bad.display().to_string()), "{broken:?}");
    }
}
