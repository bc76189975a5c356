//! Hostile tensor files (checkpoints, saved networks) are refused before anything is
//! allocated for them, quickly, and never hang or panic: a FIFO, a sparse file of gigabytes,
//! a header that declares more than the file holds, arbitrary bytes and truncations.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{config, rewrite_unsealed};
use proptest::prelude::*;
use realbias_train::CheckpointSlot;
use realbias_train::run_files::networks::{config_digest, read_networks};
use realbias_train::run_files::state::CHECKPOINT_FILE;
use realbias_train::run_files::tensor_file::{NamedMatrix, TensorFile, write};

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

/// No single flipped bit of a sealed file, in its length, header or tensor data, reads as a
/// sealed file: the integrity digest covers the metadata and every tensor's name, type, shape
/// and bytes, and whatever it does not cover cannot be changed without breaking the parse. A
/// flip in the digest's own key name leaves a file without a digest, which the readers of
/// checkpoints and networks refuse for their sealed formats (tested with them).
#[test]
fn every_single_bit_flip_of_a_sealed_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_file(dir.path());
    let path = dir.path().join("flipped.safetensors");
    let mut accepted = Vec::new();
    for at in 0..valid.len() {
        for bit in 0..8 {
            let mut damaged = valid.clone();
            damaged[at] ^= 1 << bit;
            std::fs::write(&path, &damaged).unwrap();
            if let Ok(Some(file)) = TensorFile::read(&path, 1 << 20)
                && file.is_sealed()
            {
                accepted.push((at, bit));
            }
        }
    }
    assert!(accepted.is_empty(), "flips read as valid: {accepted:?}");
    std::fs::write(&path, &valid).unwrap();
    assert!(
        TensorFile::read(&path, 1 << 20)
            .unwrap()
            .unwrap()
            .is_sealed()
    );
}

/// Writes a networks file for a `6 x 8 x 3` run of `config`, with `metadata` overriding
/// what the run's own would hold, and tensors filled with `fill`.
fn network_file(path: &Path, run: &str, overrides: &[(&str, &str)], fill: f32) {
    let c = config(run);
    let (u, v) = (vec![fill; 6 * 8], vec![fill; 8 * 3]);
    let names = ["initial", "final", "early_stop"].map(|n| (format!("{n}.u"), format!("{n}.v")));
    let mut matrices = Vec::new();
    for (nu, nv) in &names {
        matrices.push(NamedMatrix {
            name: nu,
            shape: [6, 8],
            values: &u,
        });
        matrices.push(NamedMatrix {
            name: nv,
            shape: [8, 3],
            values: &v,
        });
    }
    let mut metadata: std::collections::HashMap<String, String> = [
        ("format", "realbias-networks-2".to_string()),
        ("seed", c.train.seed.to_string()),
        ("hidden", "8".into()),
        ("config_digest", config_digest(&c).unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in overrides {
        metadata.insert(k.to_string(), v.to_string());
    }
    write(path, &matrices, metadata).unwrap();
}

/// A networks file is bound to its run: another seed, another config or another H under the
/// same file name is refused, and so is another file's tensor data under this one's header.
#[test]
fn networks_of_another_run_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("network.safetensors");
    let c = config(RUN);
    network_file(&path, RUN, &[], 0.5);
    let read = read_networks(&path, &c, (6, 8, 3)).unwrap();
    assert!(read.digest_checked);
    assert_eq!(read.final_.u, vec![0.5; 48]);
    let other_seed = config(&format!("{RUN}[train]\nseed = 7\n"));
    let e = read_networks(&path, &other_seed, (6, 8, 3)).err().unwrap();
    assert!(e.to_string().contains("another run"), "{e}");
    network_file(&path, RUN, &[("seed", "7")], 0.5);
    let e = read_networks(&path, &c, (6, 8, 3)).err().unwrap();
    assert!(e.to_string().contains("\"seed\""), "{e}");
    // Another run's tensor data (same shapes) spliced under this file's header.
    network_file(&path, RUN, &[], 0.5);
    let mine = std::fs::read(&path).unwrap();
    let theirs_path = dir.path().join("theirs.safetensors");
    network_file(&theirs_path, RUN, &[], 0.25);
    let theirs = std::fs::read(&theirs_path).unwrap();
    let n = 8 + u64::from_le_bytes(mine[..8].try_into().unwrap()) as usize;
    let m = 8 + u64::from_le_bytes(theirs[..8].try_into().unwrap()) as usize;
    let spliced = [&mine[..n], &theirs[m..]].concat();
    std::fs::write(&path, spliced).unwrap();
    let e = read_networks(&path, &c, (6, 8, 3)).err().unwrap();
    assert!(e.to_string().contains("sha256"), "{e}");
}

/// A networks file of format 1, written before digests, is a finished run's only copy: it is
/// read, and the reader is told that it was not checked. A format 2 file without its digest
/// is refused.
#[test]
fn networks_from_before_digests_are_read_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("network.safetensors");
    let c = config(RUN);
    network_file(&path, RUN, &[], 0.5);
    rewrite_unsealed(&path, "realbias-networks-1");
    let read = read_networks(&path, &c, (6, 8, 3)).unwrap();
    assert!(!read.digest_checked);
    rewrite_unsealed(&path, "realbias-networks-2");
    let e = read_networks(&path, &c, (6, 8, 3)).err().unwrap();
    assert!(e.to_string().contains("no integrity digest"), "{e}");
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
