//! The paper's "downsampled to 100 pixels": exact area averaging to 10x10.
//!
//! Output pixel `j` of a line of `from` input pixels resized to `to` covers the interval
//! `[j·from/to, (j+1)·from/to)` of the input; each input pixel contributes in proportion to the
//! length of its overlap with that interval. Because 28 and 32 are not multiples of 10, an input
//! pixel may be shared between two outputs. The filter is separable, so a 2-D resize applies the
//! 1-D weights along rows, then along columns. Every output is a convex combination of inputs
//! (weights sum to 1), and every input pixel carries the same total weight `to/from`, so a
//! constant image stays constant and the mean intensity is preserved exactly.

/// ITU-R BT.601 luma weights for (R, G, B).
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// The `to x from` matrix of 1-D area-averaging weights, row-major.
pub fn area_weights(from: usize, to: usize) -> Vec<f64> {
    assert!(from > 0 && to > 0, "resize sizes must be positive");
    let scale = from as f64 / to as f64;
    let mut weights = vec![0.0; to * from];
    for j in 0..to {
        let (start, end) = (j as f64 * scale, (j + 1) as f64 * scale);
        let first = start.floor() as usize;
        let last = (end.ceil() as usize).min(from);
        for i in first..last {
            let overlap = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
            weights[j * from + i] = overlap / scale;
        }
    }
    weights
}

/// Resizes one `h x w` plane to `out_h x out_w` by exact area averaging.
pub fn resize_area(plane: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    assert_eq!(plane.len(), h * w, "plane size does not match {h}x{w}");
    Resizer::new(h, w, out_h, out_w).apply(plane)
}

/// Precomputed weights for resizing many planes of one size.
#[derive(Debug, Clone)]
pub struct Resizer {
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
    rows: Vec<f64>,
    cols: Vec<f64>,
}

impl Resizer {
    pub fn new(h: usize, w: usize, out_h: usize, out_w: usize) -> Self {
        Resizer {
            h,
            w,
            out_h,
            out_w,
            rows: area_weights(h, out_h),
            cols: area_weights(w, out_w),
        }
    }

    pub fn apply(&self, plane: &[f32]) -> Vec<f32> {
        let (h, w, out_h, out_w) = (self.h, self.w, self.out_h, self.out_w);
        // Columns first: h x w -> h x out_w.
        let mut narrow = vec![0.0f64; h * out_w];
        for r in 0..h {
            let row = &plane[r * w..(r + 1) * w];
            for c in 0..out_w {
                let weights = &self.cols[c * w..(c + 1) * w];
                narrow[r * out_w + c] = row
                    .iter()
                    .zip(weights)
                    .map(|(&p, &k)| p as f64 * k)
                    .sum::<f64>();
            }
        }
        // Then rows: h x out_w -> out_h x out_w.
        let mut out = vec![0.0f32; out_h * out_w];
        for r in 0..out_h {
            let weights = &self.rows[r * h..(r + 1) * h];
            for c in 0..out_w {
                let v: f64 = (0..h).map(|i| narrow[i * out_w + c] * weights[i]).sum();
                out[r * out_w + c] = v as f32;
            }
        }
        out
    }
}

/// Converts a planar RGB image (bytes) to one luma plane in [0, 1].
pub fn rgb_to_gray(rgb: &[u8], plane_len: usize) -> Vec<f32> {
    assert_eq!(rgb.len(), 3 * plane_len);
    (0..plane_len)
        .map(|i| {
            let [r, g, b] = [rgb[i], rgb[plane_len + i], rgb[2 * plane_len + i]];
            (LUMA[0] * r as f32 + LUMA[1] * g as f32 + LUMA[2] * b as f32) / 255.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_rows_sum_to_one_and_columns_to_ratio() {
        for (from, to) in [(28, 10), (32, 10), (3, 2), (10, 10), (7, 3)] {
            let w = area_weights(from, to);
            for j in 0..to {
                let s: f64 = w[j * from..(j + 1) * from].iter().sum();
                assert!((s - 1.0).abs() < 1e-12, "{from}->{to} row {j} sums to {s}");
            }
            for i in 0..from {
                let s: f64 = (0..to).map(|j| w[j * from + i]).sum();
                let ratio = to as f64 / from as f64;
                assert!(
                    (s - ratio).abs() < 1e-12,
                    "{from}->{to} column {i} sums to {s}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let plane = vec![0.37f32; 28 * 28];
        for v in resize_area(&plane, 28, 28, 10, 10) {
            assert!((v - 0.37).abs() < 1e-6);
        }
    }

    #[test]
    fn hand_computed_3x3_to_2x2() {
        // Each output covers 1.5 x 1.5 input pixels: a full corner pixel (weight 1), two half
        // edge pixels (0.5 each) and a quarter of the centre (0.25), over an area of 2.25.
        let plane = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let out = resize_area(&plane, 3, 3, 2, 2);
        let top_left = (1.0 + 0.5 * 2.0 + 0.5 * 4.0 + 0.25 * 5.0) / 2.25;
        let top_right = (3.0 + 0.5 * 2.0 + 0.5 * 6.0 + 0.25 * 5.0) / 2.25;
        let bottom_left = (7.0 + 0.5 * 4.0 + 0.5 * 8.0 + 0.25 * 5.0) / 2.25;
        let bottom_right = (9.0 + 0.5 * 6.0 + 0.5 * 8.0 + 0.25 * 5.0) / 2.25;
        for (got, want) in out
            .iter()
            .zip([top_left, top_right, bottom_left, bottom_right])
        {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn known_28x28_image_to_10x10() {
        // A white square on rows/columns 14..28 (the bottom-right quadrant). Output pixel 5
        // covers input [14, 16.8): entirely inside, so rows/columns 5..10 are 1 and 0..5 are 0
        // (output pixel 4 covers [11.2, 14), entirely outside).
        let mut plane = vec![0.0f32; 28 * 28];
        for r in 14..28 {
            for c in 14..28 {
                plane[r * 28 + c] = 1.0;
            }
        }
        let out = resize_area(&plane, 28, 28, 10, 10);
        for r in 0..10 {
            for c in 0..10 {
                let want = if r >= 5 && c >= 5 { 1.0 } else { 0.0 };
                assert!(
                    (out[r * 10 + c] - want).abs() < 1e-6,
                    "({r},{c}) = {}",
                    out[r * 10 + c]
                );
            }
        }
        // A single bright column at input column 3 ([3, 4) lies inside output column 1's
        // [2.8, 5.6)) lands in output column 1 with weight 1/2.8 per row.
        let mut plane = vec![0.0f32; 28 * 28];
        for r in 0..28 {
            plane[r * 28 + 3] = 1.0;
        }
        let out = resize_area(&plane, 28, 28, 10, 10);
        for r in 0..10 {
            for c in 0..10 {
                let want = if c == 1 { 1.0 / 2.8 } else { 0.0 };
                assert!(
                    (out[r * 10 + c] - want).abs() < 1e-6,
                    "({r},{c}) = {}",
                    out[r * 10 + c]
                );
            }
        }
    }

    #[test]
    fn gray_of_pure_colours_is_luma() {
        let mut rgb = vec![0u8; 3 * 4];
        rgb[0] = 255; // red pixel 0
        rgb[4 + 1] = 255; // green pixel 1
        rgb[8 + 2] = 255; // blue pixel 2
        rgb[3] = 255;
        rgb[4 + 3] = 255;
        rgb[8 + 3] = 255; // white pixel 3
        let g = rgb_to_gray(&rgb, 4);
        assert!((g[0] - 0.299).abs() < 1e-6);
        assert!((g[1] - 0.587).abs() < 1e-6);
        assert!((g[2] - 0.114).abs() < 1e-6);
        assert!((g[3] - 1.0).abs() < 1e-6);
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mean_is_preserved(
            (h, w, pixels) in (1usize..40, 1usize..40).prop_flat_map(|(h, w)|
                (Just(h), Just(w), proptest::collection::vec(0.0f32..1.0, h * w))),
            out_h in 1usize..12,
            out_w in 1usize..12,
        ) {
            let out = resize_area(&pixels, h, w, out_h, out_w);
            let mean_in = pixels.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64;
            let mean_out = out.iter().map(|&v| v as f64).sum::<f64>() / (out_h * out_w) as f64;
            prop_assert!((mean_in - mean_out).abs() < 1e-5);
            prop_assert!(out.iter().all(|&v| (-1e-6..=1.0 + 1e-6).contains(&v)));
        }
    }
}
