//! Raw labelled images as their publishers store them: `u8` pixels, planar channels.

/// A set of labelled images of one shape, pixels stored image after image, each as
/// `channels` planes of `height x width` bytes (row-major), as in IDX and CIFAR-10 binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawImages {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl RawImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image (all channels).
    pub fn image_size(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The pixels of image `i`, all channels.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.image_size();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// The two sets one after the other (same shape required by the caller's data).
    pub(crate) fn concat(mut self, other: RawImages) -> RawImages {
        debug_assert_eq!(
            (self.height, self.width, self.channels),
            (other.height, other.width, other.channels)
        );
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
        self
    }
}

/// A dataset's two published parts: the training file(s) and the test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDataset {
    pub name: String,
    pub classes: usize,
    pub train: RawImages,
    pub test: RawImages,
}
