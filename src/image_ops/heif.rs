//! HEIF stills (HEIC from phones, AVIF): recognised by their `ftyp` box on every platform, and
//! decoded through libheif (with libde265 for HEVC and dav1d for AV1) where the build has it.
//! The primary image is decoded, upright (libheif applies `irot`/`imir`; in HEIF these, not the
//! EXIF orientation, say how to turn the image), at 8 bits, its alpha dropped as for other
//! formats; depth maps and thumbnails are left alone.

use std::path::Path;

use super::{ImageError, decoded::DecodeLimits};

/// The two HEIF families cutout reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeifKind {
    /// HEVC-coded HEIF (`.heic`, `.heif`): iPhones and many Android phones.
    Heic,
    /// AV1-coded HEIF (`.avif`).
    Avif,
}

impl HeifKind {
    /// The name users know the format by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Heic => "HEIC",
            Self::Avif => "AVIF",
        }
    }
}

/// Which HEIF family `bytes` start as, from the `ftyp` box's major and compatible brands; `None`
/// when they are not a HEIF still.
pub fn sniff(bytes: &[u8]) -> Option<HeifKind> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let size = usize::try_from(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?)).ok()?;
    let end = size.clamp(16, 4096).min(bytes.len());
    // The major brand at 8, the minor version at 12, then compatible brands.
    let brands = std::iter::once(8)
        .chain((16..end).step_by(4))
        .filter_map(|at| bytes.get(at..at + 4));
    let mut kind = None;
    for brand in brands {
        match brand {
            b"avif" | b"avis" => return Some(HeifKind::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => {
                kind = Some(HeifKind::Heic);
            }
            // The generic HEIF brands: the codec is found when decoding.
            b"mif1" | b"msf1" => kind = kind.or(Some(HeifKind::Heic)),
            _ => {}
        }
    }
    kind
}

#[cfg(not(windows))]
mod decoder {
    use std::{path::Path, sync::Arc};

    use image::RgbImage;
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

    use super::{super::colour, HeifKind};
    use crate::image_ops::{
        ImageError,
        colour::Embedded,
        decoded::{DecodeLimits, DecodedImage, check_size},
    };

    /// Decodes the primary image of a HEIF file held in memory.
    pub(crate) fn decode(
        bytes: &[u8],
        kind: HeifKind,
        name: &Path,
        limits: DecodeLimits,
    ) -> Result<DecodedImage, ImageError> {
        let corrupt = |e: libheif_rs::HeifError| ImageError::Corrupt {
            path: name.to_owned(),
            reason: format!("{} {}", kind.name(), one_line(&e.message)),
        };
        let context = HeifContext::read_from_bytes(bytes).map_err(corrupt)?;
        let handle = context.primary_image_handle().map_err(corrupt)?;
        check_size(handle.width(), handle.height(), name, limits)?;
        let had_alpha = handle.has_alpha_channel();
        let embedded = Embedded {
            icc: profile(&handle, name),
            exif: exif(&handle),
        };
        let image = LibHeif::new()
            .decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None)
            .map_err(corrupt)?;
        let plane = image
            .planes()
            .interleaved
            .ok_or_else(|| ImageError::Corrupt {
                path: name.to_owned(),
                reason: format!("the {} decoder returned no RGB pixels", kind.name()),
            })?;
        let (width, height) = (plane.width, plane.height);
        let row_bytes = width as usize * 3;
        let mut rgb = Vec::with_capacity(row_bytes * height as usize);
        for row in plane.data.chunks(plane.stride).take(height as usize) {
            rgb.extend_from_slice(row.get(..row_bytes).unwrap_or(row));
        }
        let rgb = RgbImage::from_raw(width, height, rgb).ok_or_else(|| ImageError::Corrupt {
            path: name.to_owned(),
            reason: format!("the {} decoder returned too few pixels", kind.name()),
        })?;
        Ok(DecodedImage {
            rgb,
            had_alpha,
            embedded,
        })
    }

    /// libheif's message on one line (some end in a newline).
    fn one_line(message: &str) -> String {
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The image's colour: its ICC profile (`prof`/`rICC`), else one made from its `nclx` box
    /// where that is not sRGB.
    fn profile(handle: &libheif_rs::ImageHandle, name: &Path) -> Option<Arc<[u8]>> {
        if let Some(raw) = handle.color_profile_raw() {
            match colour::usable_rgb_profile(&raw.data) {
                Ok(()) => return Some(raw.data.into()),
                Err(why) => {
                    tracing::warn!("{why}; its colours are taken as sRGB: {}", name.display());
                }
            }
        }
        let nclx = handle.color_profile_nclx()?;
        colour::icc_from_cicp(
            nclx.color_primaries() as u8,
            nclx.transfer_characteristics() as u8,
        )
        .map(Into::into)
    }

    /// The EXIF block, from its TIFF header (HEIF stores a 4-byte offset to it first), with its
    /// orientation set upright: libheif has turned the pixels already.
    fn exif(handle: &libheif_rs::ImageHandle) -> Option<Arc<[u8]>> {
        let mut ids = [0; 1];
        if handle.metadata_block_ids(&mut ids, b"Exif") == 0 {
            return None;
        }
        let block = handle.metadata(ids[0]).ok()?;
        let offset = usize::try_from(u32::from_be_bytes(block.get(..4)?.try_into().ok()?)).ok()?;
        let mut tiff = block.get(4 + offset..)?.to_vec();
        colour::set_exif_upright(&mut tiff).then(|| tiff.into())
    }
}

/// Decodes a HEIF still (see [`sniff`]).
#[cfg(not(windows))]
pub(crate) fn decode(
    bytes: &[u8],
    kind: HeifKind,
    name: &Path,
    limits: DecodeLimits,
) -> Result<super::decoded::DecodedImage, ImageError> {
    decoder::decode(bytes, kind, name, limits)
}

/// The Windows build has no HEIF decoder (libheif's codecs are not cross-built for it): one
/// sentence that says so, and what to do.
#[cfg(windows)]
pub(crate) fn decode(
    _bytes: &[u8],
    kind: HeifKind,
    name: &Path,
    _limits: DecodeLimits,
) -> Result<super::decoded::DecodedImage, ImageError> {
    Err(ImageError::Unsupported {
        path: name.to_owned(),
        reason: format!(
            "the Windows build of cutout does not read {} photos yet; export them as JPEG \
             (the Photos app: Save as; iPhone: Settings → Camera → Formats → Most Compatible) \
             or use the Linux build",
            kind.name()
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = u32::try_from(16 + 4 * compatible.len()).expect("small");
        let mut out = size.to_be_bytes().to_vec();
        out.extend(b"ftyp");
        out.extend(major);
        out.extend([0, 0, 0, 0]);
        for brand in compatible {
            out.extend(*brand);
        }
        out.extend([0; 16]);
        out
    }

    #[test]
    fn brands_name_the_family() {
        assert_eq!(
            sniff(&ftyp(b"heic", &[b"mif1", b"heic"])),
            Some(HeifKind::Heic)
        );
        assert_eq!(sniff(&ftyp(b"mif1", &[b"heic"])), Some(HeifKind::Heic));
        assert_eq!(
            sniff(&ftyp(b"avif", &[b"mif1", b"miaf"])),
            Some(HeifKind::Avif)
        );
        assert_eq!(sniff(&ftyp(b"mif1", &[b"avif"])), Some(HeifKind::Avif));
        assert_eq!(sniff(&ftyp(b"isom", &[b"mp41"])), None, "an MP4 video");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(sniff(&[0, 0, 0, 24, b'f', b't']), None, "cut short");
    }
}
