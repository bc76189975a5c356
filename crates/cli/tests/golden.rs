//! The golden check: every committed experiment folder, re-finalized by the current code
//! (`realbias plot` on a copy), gives back its committed tables byte for byte. A change of
//! schema, formula or formatting then fails here until the experiments are deliberately
//! re-exported (`scripts/export-experiment.sh` or `realbias plot` on the folder).

use std::path::{Path, PathBuf};
use std::process::Command;

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The tables a finalize writes at the top of a folder: every `.csv` and `.md` but the
/// hand-written README.
fn tables(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".csv") || n.ends_with(".md")) && n != "README.md")
        .collect();
    names.sort();
    names
}

#[test]
fn every_committed_experiment_refinalizes_to_its_committed_tables() {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(experiments_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("experiment.toml").is_file())
        .collect();
    folders.sort();
    assert!(folders.len() >= 8, "committed experiments: {folders:?}");
    let tmp = tempfile::tempdir().unwrap();
    let mut drift = Vec::new();
    for committed in &folders {
        let name = committed.file_name().unwrap();
        let copy = tmp.path().join(name);
        copy_tree(committed, &copy);
        let expected = tables(committed);
        assert!(!expected.is_empty(), "{}: no tables", committed.display());
        // Removed first, so a table finalize no longer writes is caught too.
        for table in &expected {
            std::fs::remove_file(copy.join(table)).unwrap();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_realbias"))
            .arg("plot")
            .arg(&copy)
            .arg("--partial")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "realbias plot {}: {}",
            committed.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for table in &expected {
            let want = std::fs::read(committed.join(table)).unwrap();
            match std::fs::read(copy.join(table)) {
                Ok(got) if got == want => {}
                Ok(_) => drift.push(format!("{}/{table}: differs", name.to_string_lossy())),
                Err(_) => drift.push(format!("{}/{table}: not written", name.to_string_lossy())),
            }
        }
    }
    assert!(
        drift.is_empty(),
        "re-finalized tables differ from the committed ones (re-export the experiments \
         deliberately if the change is intended):\n  {}",
        drift.join("\n  ")
    );
}
