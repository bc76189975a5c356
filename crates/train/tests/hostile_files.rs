//! Hostile tensor files (checkpoints, saved networks) are refused before anything is
//! allocated for them, quickly, and never hang or panic: a FIFO, a sparse file of gigabytes,
//! a header that declares more than the file holds, arbitrary bytes and truncations.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::config;
use proptest::prelude::*;
use realbias_train::CheckpointSlot;
use realbias_train::networks::read_networks;
use realbias_train::state::CHECKPOINT_FILE;
use realbias_train::tensor_file::{NamedMatrix, TensorFile, write};

const RUN: &str = "[data]\ndataset = { kind = \"mnist\" }\n[model]\nhidden = 8\n";

fn slot(dir: &Path, discard: bool) -> CheckpointSlot {
    CheckpointSlot {
        dir: dir.to_path_buf(),
        discard_mismatched: discard,
    }
}

/// A FIFO at the checkpoint's path used to block `open` for ever (a SIGTERM could not stop
/// it): it is refused at once, and `--force` removes it.
#[test]
fn a_fifo_at_the_checkpoint_path_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join(CHECKPOINT_FILE);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        panic!("mkfifo is needed for this test");
    }
    let c = config(RUN);
    let t = Instant::now();
    let e = slot(dir.path(), false).load(&c, (6, 8, 3)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(
        slot(dir.path(), true)
            .load(&c, (6, 8, 3))
            .unwrap()
            .is_none()
    );
    assert!(!fifo.exists(), "--force removes what cannot resume the run");
}

/// A 3 GiB sparse file (a few KB on disk) was read whole (3.2 GB RSS, 12.7 s) before it
/// was rejected: its length is checked against what the run's networks can take first.
#[test]
fn a_huge_sparse_network_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("network.safetensors");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(3 << 30).unwrap();
    let t = Instant::now();
    let e = read_networks(&path, &config(RUN), (6, 8, 3)).err().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(e.to_string().contains("refused unread"), "{e}");
}

#[test]
fn a_header_longer_than_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, &bytes).unwrap();
    let e = TensorFile::read(&path, 1 << 20).err().unwrap();
    assert!(e.to_string().contains("header declares"), "{e}");
}

/// A real tensor file, for the fuzzing below to truncate and corrupt.
fn valid_file(dir: &Path) -> Vec<u8> {
    let path = dir.join("valid.safetensors");
    let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let m = NamedMatrix {
        name: "w",
        shape: [3, 4],
        values: &values,
    };
    write(&path, &[m], [("k".to_string(), "v".to_string())].into()).unwrap();
    std::fs::read(path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary bytes, and every truncation or byte flip of a valid file, read as an error
    /// or a file: never a panic, never more than the file's length allocated.
    #[test]
    fn arbitrary_bytes_and_damaged_files_never_panic(
        junk in proptest::collection::vec(any::<u8>(), 0..256),
        cut in 0usize..400,
        flip in 0usize..400,
        bit in 0u8..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, &junk).unwrap();
        let _ = TensorFile::read(&path, 1 << 20);
        let valid = valid_file(dir.path());
        let mut damaged = valid[..cut.min(valid.len())].to_vec();
        std::fs::write(&path, &damaged).unwrap();
        let _ = TensorFile::read(&path, 1 << 20).map(|f| f.map(|f| f.matrix("w", [3, 4])));
        damaged = valid.clone();
        let at = flip % damaged.len();
        damaged[at] ^= 1 << bit;
        std::fs::write(&path, &damaged).unwrap();
        let _ = TensorFile::read(&path, 1 << 20).map(|f| f.map(|f| f.matrix("w", [3, 4])));
    }
}
