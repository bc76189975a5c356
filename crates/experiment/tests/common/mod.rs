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

/// Writes an MNIST-named IDX folder of 8x8 images, labels `i % 4`, pixels from `pixels(i)`.
fn write_idx(dir: &Path, train: u32, test: u32, mut pixels: impl FnMut(usize, u8) -> [u8; 64]) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        let body: Vec<u8> = labels
            .iter()
            .enumerate()
            .flat_map(|(i, &l)| pixels(i, l))
            .collect();
        idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            2051,
            &[n, 8, 8],
            &body,
        );
        idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            2049,
            &[n],
            &labels,
        );
    }
}

/// An IDX folder of 8x8 images: class c is a bright square in quadrant c.
pub fn write_tiny_idx(dir: &Path, train: u32, test: u32) {
    write_idx(dir, train, test, |i, l| {
        let mut img = [0u8; 64];
        let (r0, c0) = (4 * (l as usize / 2), 4 * (l as usize % 2));
        for r in r0..r0 + 4 {
            for c in c0..c0 + 4 {
                img[r * 8 + c] = 200 + (i % 50) as u8;
            }
        }
        img
    });
}

/// An IDX folder of random 8x8 images with labels i % 4: nothing to learn but memorization.
pub fn write_noise_idx(dir: &Path, train: u32, test: u32) {
    let mut x: u32 = 12345;
    write_idx(dir, train, test, |_, _| {
        std::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
    });
}
