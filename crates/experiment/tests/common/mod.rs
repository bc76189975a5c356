//! Tiny generated datasets for the experiment tests.
#![allow(dead_code)]

use std::path::Path;

fn idx(path: &Path, magic: u32, dims: &[u32], body: &[u8]) {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(body);
    std::fs::write(path, b).unwrap();
}

/// An IDX folder of 8x8 images: class c is a bright square at position c.
pub fn write_tiny_idx(dir: &Path, train: u32, test: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut pixels = vec![0u8; (n * 64) as usize];
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        for (i, &l) in labels.iter().enumerate() {
            let (r0, c0) = (4 * (l as usize / 2), 4 * (l as usize % 2));
            for r in r0..r0 + 4 {
                for c in c0..c0 + 4 {
                    pixels[i * 64 + r * 8 + c] = 200 + (i % 50) as u8;
                }
            }
        }
        idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            2051,
            &[n, 8, 8],
            &pixels,
        );
        idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            2049,
            &[n],
            &labels,
        );
    }
}

/// An IDX folder of random 8x8 images with labels i % 4: nothing to learn but memorization.
pub fn write_noise_idx(dir: &Path, train: u32, test: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x: u32 = 12345;
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let pixels: Vec<u8> = (0..n * 64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            2051,
            &[n, 8, 8],
            &pixels,
        );
        idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            2049,
            &[n],
            &labels,
        );
    }
}
