//! Decoding photos: format sniffing, decompression-bomb limits checked against the header before
//! any pixel is allocated, and EXIF orientation applied.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, metadata::Orientation};

use super::ImageError;

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
        Self { max_side_px: 30_000, max_megapixels: 200 }
    }
}

/// A decoded photo, upright.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels, EXIF orientation applied, as 8-bit RGB (alpha, if any, dropped as rembg does).
    pub rgb: RgbImage,
    /// Whether the file had an alpha channel.
    pub had_alpha: bool,
}

/// Reads and decodes an image file within `limits`.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<DecodedImage, ImageError> {
    let read_err = |source| ImageError::Read { path: path.to_owned(), source };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len == 0 {
        return Err(ImageError::Empty(path.to_owned()));
    }
    let reader = ImageReader::open(path).map_err(read_err)?.with_guessed_format().map_err(read_err)?;
    decode_reader(reader, path, limits)
}

/// Decodes an image held in memory (clipboard, drag-and-drop payloads); `name` is used in messages.
pub fn decode_bytes(bytes: &[u8], name: &Path, limits: DecodeLimits) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty(name.to_owned()));
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageError::Read { path: name.to_owned(), source })?;
    decode_reader(reader, name, limits)
}

fn decode_reader<R: std::io::BufRead + std::io::Seek>(mut reader: ImageReader<R>, path: &Path, limits: DecodeLimits) -> Result<DecodedImage, ImageError> {
    if reader.format().is_none() {
        return Err(ImageError::NotAnImage(path.to_owned()));
    }
    let mut decoder_limits = Limits::default();
    // Sides and area are checked below against the header, with a message naming both; the
    // allocation cap is the backstop for decoders that allocate while reading headers.
    // RGBA at 16 bits per channel is the largest buffer a decoder makes, plus working room.
    decoder_limits.max_alloc = Some(u64::from(limits.max_megapixels) * 1_000_000 * 8 + (64 << 20));
    reader.limits(decoder_limits);
    let corrupt = |e: image::ImageError| classify(e, path, limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, path, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    let had_alpha = image.color().has_alpha();
    Ok(DecodedImage { rgb: image.into_rgb8(), had_alpha })
}

fn check_size(width: u32, height: u32, path: &Path, limits: DecodeLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt { path: path.to_owned(), reason: format!("it declares {width}×{height} pixels") });
    }
    let area = u64::from(width) * u64::from(height);
    if width > limits.max_side_px || height > limits.max_side_px || area > u64::from(limits.max_megapixels) * 1_000_000 {
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

fn classify(e: image::ImageError, path: &Path, limits: DecodeLimits) -> ImageError {
    match e {
        image::ImageError::Limits(limit) => ImageError::Corrupt {
            path: path.to_owned(),
            reason: format!("it needs more memory than the {} MP limit allows ({limit})", limits.max_megapixels),
        },
        image::ImageError::Unsupported(u) => ImageError::Corrupt { path: path.to_owned(), reason: format!("unsupported variant: {u}") },
        image::ImageError::IoError(io) => ImageError::Corrupt { path: path.to_owned(), reason: format!("data ends early or cannot be read: {io}") },
        other => ImageError::Corrupt { path: path.to_owned(), reason: other.to_string() },
    }
}
