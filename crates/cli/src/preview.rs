//! `realbias data preview`: originals beside what the network sees.

use image::{Rgb, RgbImage};
use realbias_data::{FeatureOptions, RawImages, features_of};

/// A grid of `count` examples, in pairs (original | downsampled), each cell `cell x cell` pixels.
pub fn preview_grid(
    images: &RawImages,
    features: &FeatureOptions,
    count: usize,
    columns: usize,
) -> RgbImage {
    let count = count.min(images.len()).max(1);
    let columns = columns.clamp(1, count);
    let rows = count.div_ceil(columns);
    let cell = 64u32;
    let gap = 4u32;
    let width = columns as u32 * (2 * cell + 3 * gap);
    let height = rows as u32 * (cell + gap) + gap;
    let mut img = RgbImage::from_pixel(width, height, Rgb([40, 40, 48]));
    let subset = RawImages {
        height: images.height,
        width: images.width,
        channels: images.channels,
        pixels: images.pixels[..count * images.image_size()].to_vec(),
        labels: images.labels[..count].to_vec(),
    };
    let small = features_of(&subset, features);
    let side = features.side;
    for i in 0..count {
        let (gx, gy) = (
            (i % columns) as u32 * (2 * cell + 3 * gap) + gap,
            (i / columns) as u32 * (cell + gap) + gap,
        );
        let raw = subset.image(i);
        let plane = images.height * images.width;
        for y in 0..cell {
            for x in 0..cell {
                let (sy, sx) = (
                    y as usize * images.height / cell as usize,
                    x as usize * images.width / cell as usize,
                );
                let at = sy * images.width + sx;
                let px = if images.channels >= 3 {
                    Rgb([raw[at], raw[plane + at], raw[2 * plane + at]])
                } else {
                    Rgb([raw[at]; 3])
                };
                img.put_pixel(gx + x, gy + y, px);
                let (ty, tx) = (
                    y as usize * side / cell as usize,
                    x as usize * side / cell as usize,
                );
                let row = small.row(i);
                let px = if small.dim == 3 * side * side {
                    let c = |k: usize| {
                        (row[k * side * side + ty * side + tx].clamp(0.0, 1.0) * 255.0).round()
                            as u8
                    };
                    Rgb([c(0), c(1), c(2)])
                } else {
                    Rgb([(row[ty * side + tx].clamp(0.0, 1.0) * 255.0).round() as u8; 3])
                };
                img.put_pixel(gx + cell + gap + x, gy + y, px);
            }
        }
    }
    img
}
