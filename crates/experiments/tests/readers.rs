//! Every file an experiment folder holds that the tool reads back (`result.json`,
//! `experiment.toml`, unit locks) is read as an error or a value for arbitrary bytes, a FIFO
//! or a huge sparse file: never a panic, a hang or a load of gigabytes.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use realbias_experiments::{lock, registry, store};
use realbias_train::RunResult;

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo is needed for this test"
    );
}

/// Reads the three kinds of file in `dir`, whatever they hold.
fn read_all(dir: &Path) {
    let _ = store::read_result::<RunResult>(&dir.join("result.json"));
    let _ = registry::load_folder(dir);
    let _ = lock::inspect(&dir.join("result.lock"));
    let _ = lock::live_owner(&dir.join("result.lock"));
}

#[test]
fn fifos_in_place_of_the_folders_files_are_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["result.json", "experiment.toml", "result.lock"] {
        mkfifo(&dir.path().join(name));
    }
    let started = Instant::now();
    let e = store::read_result::<RunResult>(&dir.path().join("result.json")).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
    let e = registry::load_folder(dir.path()).err().unwrap().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(lock::live_owner(&dir.path().join("result.lock")).is_none());
    read_all(dir.path());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_huge_sparse_result_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let started = Instant::now();
    let e = store::read_result::<RunResult>(&path).unwrap_err();
    assert!(e.contains("refused unread"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary bytes in any of the files never panic.
    #[test]
    fn arbitrary_bytes_in_a_folders_files_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        text in "[ -~\n]{0,400}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["result.json", "experiment.toml", "result.lock"] {
            std::fs::write(dir.path().join(name), &bytes).unwrap();
        }
        read_all(dir.path());
        for name in ["result.json", "experiment.toml", "result.lock"] {
            std::fs::write(dir.path().join(name), &text).unwrap();
        }
        read_all(dir.path());
    }
}
