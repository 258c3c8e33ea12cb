//! Decoding photos: format sniffing, decompression-bomb limits checked against the header before
//! any pixel is allocated, and EXIF orientation applied.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, metadata::Orientation};

use super::{
    ImageError,
    colour::{self, Embedded},
    decoded::{DecodeLimits, DecodedImage, check_size},
    heif,
};

/// Compressed files larger than this are refused before reading (no photo format needs 1 GiB).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Reads and decodes an image file within `limits`.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<DecodedImage, ImageError> {
    let read_err = |source| ImageError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(ImageError::Corrupt {
            path: path.to_owned(),
            reason: format!("the file is {} MB, beyond any photo", len >> 20),
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    decode_bytes(&bytes, path, limits)
}

/// Decodes an image held in memory (files, clipboard, drag-and-drop payloads); `name` is used in
/// messages. The format is taken from the content, never from the file name.
pub fn decode_bytes(
    bytes: &[u8],
    name: &Path,
    limits: DecodeLimits,
) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty(name.to_owned()));
    }
    if let Some(kind) = heif::sniff(bytes) {
        return heif::decode(bytes, kind, name, limits);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::NotAnImage(name.to_owned()))?;
    if format == image::ImageFormat::Jpeg {
        check_jpeg_structure(bytes).map_err(|reason| ImageError::Corrupt {
            path: name.to_owned(),
            reason,
        })?;
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes));
    reader.set_format(format);
    decode_reader(reader, name, limits)
}

/// Walks a JPEG's markers to the end-of-image marker. JPEG decoders fill missing data with grey
/// and carry on, so a truncated or damaged file would otherwise become a plausible-looking but
/// wrong cutout. Entropy-coded data may only contain `FF 00` (stuffing) and `FF D0`–`FF D7`
/// (restart markers); any other marker there must be one that may follow a scan.
pub fn check_jpeg_structure(bytes: &[u8]) -> Result<(), String> {
    const TRUNCATED: &str = "the file ends before the end-of-image marker (truncated)";
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err("missing start-of-image marker".to_owned());
    }
    let mut pos = 2;
    loop {
        // Between segments: fill bytes (FF FF …) then a marker code.
        while pos < bytes.len() && bytes[pos] == 0xFF && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if pos + 1 >= bytes.len() {
            return Err(TRUNCATED.to_owned());
        }
        if bytes[pos] != 0xFF {
            return Err(format!(
                "expected a marker at byte {pos}, found 0x{:02X}",
                bytes[pos]
            ));
        }
        let marker = bytes[pos + 1];
        pos += 2;
        match marker {
            0xD9 => return Ok(()),
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return Err(TRUNCATED.to_owned());
        };
        if len < 2 {
            return Err(format!(
                "marker 0x{marker:02X} has an impossible length {len}"
            ));
        }
        pos += len;
        if pos > bytes.len() {
            return Err(TRUNCATED.to_owned());
        }
        if marker == 0xDA {
            // Entropy-coded scan data up to the next real marker.
            loop {
                let Some(offset) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
                    return Err(TRUNCATED.to_owned());
                };
                pos += offset;
                match bytes.get(pos + 1) {
                    None => return Err(TRUNCATED.to_owned()),
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => pos += 1,
                    Some(
                        0xC4
                        | 0xCC
                        | 0xD9
                        | 0xDA
                        | 0xDB
                        | 0xDC
                        | 0xDD
                        | 0xDE
                        | 0xDF
                        | 0xE0..=0xEF
                        | 0xFE,
                    ) => break,
                    Some(other) => {
                        return Err(format!(
                            "damaged scan data (marker 0x{other:02X} at byte {pos})"
                        ));
                    }
                }
            }
        }
    }
}

fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    mut reader: ImageReader<R>,
    path: &Path,
    limits: DecodeLimits,
) -> Result<DecodedImage, ImageError> {
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
    let embedded = embedded(&mut decoder, path);
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    let had_alpha = image.color().has_alpha();
    Ok(DecodedImage {
        rgb: image.into_rgb8(),
        had_alpha,
        embedded,
    })
}

/// The decoder's ICC profile (JPEG APP2, PNG iCCP, WebP ICCP, TIFF) when it describes RGB
/// pixels, and its EXIF block with the orientation set upright (the pixels are turned here).
/// A profile that cannot be used is dropped with a log line: the pixels are then taken as sRGB,
/// as every viewer would.
fn embedded(decoder: &mut impl ImageDecoder, path: &Path) -> Embedded {
    let icc =
        decoder.icc_profile().ok().flatten().and_then(|icc| {
            match colour::usable_rgb_profile(&icc) {
                Ok(()) => Some(icc.into()),
                Err(why) => {
                    tracing::warn!("{why}; its colours are taken as sRGB: {}", path.display());
                    None
                }
            }
        });
    let exif = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .and_then(|mut exif| colour::set_exif_upright(&mut exif).then(|| exif.into()));
    Embedded { icc, exif }
}

fn classify(e: image::ImageError, path: &Path, limits: DecodeLimits) -> ImageError {
    match e {
        image::ImageError::Limits(limit) => ImageError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "it needs more memory than the {} MP limit allows ({limit})",
                limits.max_megapixels
            ),
        },
        image::ImageError::Unsupported(u) => ImageError::Corrupt {
            path: path.to_owned(),
            reason: format!("unsupported variant: {u}"),
        },
        image::ImageError::IoError(io) => ImageError::Corrupt {
            path: path.to_owned(),
            reason: format!("data ends early or cannot be read: {io}"),
        },
        other => ImageError::Corrupt {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, 90])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .expect("encode");
        out
    }

    #[test]
    fn whole_jpegs_pass_the_structure_check() {
        assert_eq!(check_jpeg_structure(&jpeg(64, 48)), Ok(()));
    }

    #[test]
    fn truncated_jpegs_are_caught() {
        let full = jpeg(64, 48);
        for cut in [20, full.len() / 2, full.len() - 2] {
            let err = check_jpeg_structure(&full[..cut]).expect_err("truncated");
            assert!(err.contains("truncated"), "cut at {cut}: {err}");
        }
        assert!(check_jpeg_structure(&full[..1]).is_err());
    }

    #[test]
    fn damaged_scan_data_is_caught() {
        let mut bytes = jpeg(64, 48);
        let n = bytes.len();
        bytes[n - 40] = 0xFF;
        bytes[n - 39] = 0xC0;
        assert!(
            check_jpeg_structure(&bytes)
                .expect_err("damaged")
                .contains("damaged")
        );
    }

    #[test]
    fn content_decides_the_format_not_the_name() {
        let err = decode_bytes(
            b"hello, not an image",
            Path::new("photo.jpg"),
            DecodeLimits::default(),
        )
        .expect_err("not an image");
        assert!(matches!(err, ImageError::NotAnImage(_)), "{err}");
        let ok = decode_bytes(&jpeg(8, 6), Path::new("photo.png"), DecodeLimits::default())
            .expect("a JPEG named .png decodes");
        assert_eq!(ok.rgb.dimensions(), (8, 6));
    }

    #[test]
    fn declared_size_is_checked_before_decoding() {
        let limits = DecodeLimits {
            max_side_px: 100,
            max_megapixels: 1,
        };
        let err =
            decode_bytes(&jpeg(120, 10), Path::new("wide.jpg"), limits).expect_err("too wide");
        assert!(
            matches!(
                err,
                ImageError::TooLarge {
                    width: 120,
                    height: 10,
                    ..
                }
            ),
            "{err}"
        );
    }
}
