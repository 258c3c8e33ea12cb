//! Pixels in and out: decoding with limits and EXIF orientation, rembg-compatible pre- and
//! post-processing, compositing the cutout, and atomic PNG export. No UI and no ONNX Runtime here.

pub mod band;
pub mod colour;
pub mod composite;
pub mod decode;
pub mod decoded;
pub mod edges;
pub mod edits;
pub mod export;
pub mod heif;
pub mod metrics;
pub mod postprocess;
pub mod preprocess;
pub mod refine;
pub mod resize;

use std::path::PathBuf;

pub use colour::Embedded;
pub use composite::{Background, CompositeSettings};
pub use decode::{decode_bytes, decode_file};
pub use decoded::{DecodeLimits, DecodedImage};
pub use export::{Origin, PngCompression, STDIO, Target, is_stdio, write_png, write_png_atomic};
pub use postprocess::{
    MaskDifference, cutout_rgba, mask_difference, mask_from_output, over_background,
};
pub use preprocess::{Normalization, Scale, to_model_input};

/// Why an image could not be read, processed or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or read.
    #[error("cannot read the file ({source}): {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Zero bytes.
    #[error("the file is empty: {}", .0.display())]
    Empty(PathBuf),
    /// Not a format cutout reads.
    #[error("not a supported image (JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF or GIF): {}", .0.display())]
    NotAnImage(PathBuf),
    /// A format this build cannot decode, with what to do instead.
    #[error("{reason}: {}", .path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// The header declares more pixels than allowed.
    #[error("the image is too large ({width}×{height} px; the limit is {max_side_px} px a side and {max_megapixels} megapixels): {}", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The side limit.
        max_side_px: u32,
        /// The area limit.
        max_megapixels: u32,
    },
    /// The data is corrupt or cut short.
    #[error("the image is damaged or incomplete ({reason}): {}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// Resizing failed (only on impossible sizes).
    #[error("cannot resize the image: {0}")]
    Resize(String),
    /// The output could not be written; nothing was left behind.
    #[error("cannot write the output ({reason}): {}", .path.display())]
    Write {
        /// The destination.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Converts a 0–1 value to 8 bits, rounding to nearest (as a GPU writes a unorm8 target).
pub fn to_u8(v: f32) -> u8 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    // Truncation is the floor here: the value is never negative.
    let q = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    q
}
