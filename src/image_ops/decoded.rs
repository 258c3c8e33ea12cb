//! What decoding gives, and the size limits every decoder checks against the header before any
//! pixel is allocated: shared by the decoders (`decode` for the `image` crate's formats, `heif`
//! for HEIC and AVIF).

use std::path::Path;

use image::RgbImage;

use super::{ImageError, colour::Embedded};

/// Limits on what a decoder may allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest allowed side, in pixels.
    pub max_side_px: u32,
    /// Largest allowed area, in megapixels.
    pub max_megapixels: u32,
}

impl Default for DecodeLimits {
    /// 30 000 px a side and 200 MP: well beyond any camera, far below what would exhaust memory.
    fn default() -> Self {
        Self {
            max_side_px: 30_000,
            max_megapixels: 200,
        }
    }
}

/// A decoded photo, upright.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels, EXIF orientation applied, as 8-bit RGB (alpha, if any, dropped as rembg does).
    pub rgb: RgbImage,
    /// Whether the file had an alpha channel.
    pub had_alpha: bool,
    /// The colour profile (pixels are kept in it, not converted) and EXIF block it came with.
    pub embedded: Embedded,
}

/// Refuses a declared size of zero or beyond `limits`.
pub(crate) fn check_size(
    width: u32,
    height: u32,
    path: &Path,
    limits: DecodeLimits,
) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            path: path.to_owned(),
            reason: format!("it declares {width}×{height} pixels"),
        });
    }
    let area = u64::from(width) * u64::from(height);
    if width > limits.max_side_px
        || height > limits.max_side_px
        || area > u64::from(limits.max_megapixels) * 1_000_000
    {
        return Err(ImageError::TooLarge {
            path: path.to_owned(),
            width,
            height,
            max_side_px: limits.max_side_px,
            max_megapixels: limits.max_megapixels,
        });
    }
    Ok(())
}
