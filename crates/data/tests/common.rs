//! Tiny IDX and CIFAR files made on the spot.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

pub fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [2051u32, count, rows, cols] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [2049u32, labels.len() as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(labels);
    b
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn noise_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a small MNIST-like folder: `train` and `test` images of 28x28, labels i % 10.
pub fn write_mnist(dir: &Path, train: u32, test: u32, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let pixels = noise_bytes((n * 28 * 28) as usize, n);
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let files = [
            (
                format!("{prefix}-images-idx3-ubyte"),
                idx_images(n, 28, 28, &pixels),
            ),
            (format!("{prefix}-labels-idx1-ubyte"), idx_labels(&labels)),
        ];
        for (name, bytes) in files {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

pub fn cifar_records(n: usize, seed: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let pix = noise_bytes(n * 3072, seed);
    for i in 0..n {
        b.push((i % 10) as u8);
        b.extend_from_slice(&pix[i * 3072..(i + 1) * 3072]);
    }
    b
}

/// The six CIFAR batch files (names and contents), `per_batch` records each.
pub fn cifar_batches(per_batch: usize) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|i| (format!("data_batch_{i}.bin"), cifar_records(per_batch, i)))
        .collect();
    v.push(("test_batch.bin".into(), cifar_records(per_batch, 99)));
    v
}

pub fn write_cifar_archive(path: &Path, batches: &[(String, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let meta = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    let mut entries: Vec<(String, &[u8])> =
        vec![("cifar-10-batches-bin/batches.meta.txt".into(), meta)];
    for (name, bytes) in batches {
        entries.push((format!("cifar-10-batches-bin/{name}"), bytes));
    }
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}
