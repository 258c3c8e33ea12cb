//! Colour profiles: what a photo says about its colours, carried into the cutout unchanged, and
//! the conversion to sRGB for the network (trained on sRGB photos) and for the screen. The
//! colour science is moxcms's; this module only decides when a conversion is needed.

use std::{borrow::Cow, sync::Arc};

use image::RgbImage;
use moxcms::{
    CicpColorPrimaries, CicpProfile, ColorProfile, DataColorSpace, Layout, MatrixCoefficients,
    TransferCharacteristics, TransformOptions,
};
use rayon::prelude::*;

/// What a photo file carries besides its pixels that a cutout keeps: its colour profile, and its
/// EXIF block (written only when asked, see [`Embedded::without_exif`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Embedded {
    /// The ICC profile of the pixels (an RGB profile; `None`: sRGB, as every viewer assumes).
    pub icc: Option<Arc<[u8]>>,
    /// The EXIF block, from its TIFF header on, orientation already set to "upright" (the pixels
    /// are turned at decoding).
    pub exif: Option<Arc<[u8]>>,
}

impl Embedded {
    /// The same, without EXIF (the default for exports: EXIF can hold a location).
    #[must_use]
    pub fn without_exif(self) -> Self {
        Self { exif: None, ..self }
    }

    /// The same, keeping EXIF only when `keep_exif`.
    #[must_use]
    pub fn keeping_exif(self, keep_exif: bool) -> Self {
        if keep_exif { self } else { self.without_exif() }
    }
}

/// Checks an embedded ICC profile before it is carried: it must parse and describe RGB pixels
/// (a CMYK or grey profile does not describe the RGB pixels cutout decodes, and PNG forbids it
/// there). Returns why not, for a log line.
pub fn usable_rgb_profile(icc: &[u8]) -> Result<(), String> {
    let profile =
        ColorProfile::new_from_slice(icc).map_err(|e| format!("unreadable ICC profile: {e}"))?;
    match profile.color_space {
        DataColorSpace::Rgb => Ok(()),
        other => Err(format!("an ICC profile for {other:?} pixels, not RGB")),
    }
}

/// An ICC profile equivalent to a HEIF/AVIF `nclx` colour description (CICP code points, ITU-T
/// H.273), or `None` when it describes sRGB (or says nothing), where no profile is needed.
pub fn icc_from_cicp(primaries: u8, transfer: u8) -> Option<Vec<u8>> {
    // 1: BT.709 primaries (those of sRGB); 2: unspecified. Transfer 13 is sRGB's; 1, 6, 14 and 15
    // (BT.709 / BT.601 / BT.2020 camera curves) are shown as sRGB by every browser and OS viewer.
    let srgb_primaries = matches!(primaries, 1 | 2);
    let srgb_transfer = matches!(transfer, 1 | 2 | 6 | 13 | 14 | 15);
    if srgb_primaries && srgb_transfer {
        return None;
    }
    let cicp = CicpProfile {
        color_primaries: CicpColorPrimaries::try_from(primaries).ok()?,
        transfer_characteristics: if srgb_transfer {
            TransferCharacteristics::Srgb
        } else {
            TransferCharacteristics::try_from(transfer).ok()?
        },
        matrix_coefficients: MatrixCoefficients::Identity,
        full_range: true,
    };
    let profile = ColorProfile::new_from_cicp(cicp);
    profile.red_trc.as_ref()?;
    encode_icc(&profile)
}

/// `profile` as ICC bytes as libpng accepts them: moxcms writes the header's illuminant as its
/// own D50 and leaves the length unpadded, where the ICC specification asks for exactly
/// (0.9642, 1.0, 0.8249) and a multiple of 4 bytes (libpng warns "PCS illuminant is not D50"
/// and refuses "invalid length").
pub fn encode_icc(profile: &ColorProfile) -> Option<Vec<u8>> {
    /// The header's illuminant (bytes 68–79), D50 in s15Fixed16 as the specification gives it.
    const D50: [u8; 12] = [0, 0, 0xF6, 0xD6, 0, 1, 0, 0, 0, 0, 0xD3, 0x2D];
    let mut icc = profile.encode().ok()?;
    icc.resize(icc.len().next_multiple_of(4), 0);
    let size = u32::try_from(icc.len()).ok()?;
    icc.get_mut(..4)?.copy_from_slice(&size.to_be_bytes());
    icc.get_mut(68..80)?.copy_from_slice(&D50);
    Some(icc)
}

/// A conversion from a photo's profile to sRGB, made once per photo.
pub struct ToSrgb(Arc<moxcms::Transform8BitExecutor>);

impl ToSrgb {
    /// The conversion for `icc`, or `None` when the profile's colours are sRGB's (every colour of
    /// a 17-step grid comes out within one level of itself), so that sRGB-tagged photos keep
    /// exactly the pixels they would have without the tag. Unreadable profiles give `None` too:
    /// [`usable_rgb_profile`] has dropped those at decoding.
    pub fn for_profile(icc: &[u8]) -> Option<Self> {
        let source = ColorProfile::new_from_slice(icc).ok()?;
        // Floating point: moxcms's fixed-point path is 2 levels from lcms2 on a few samples.
        let options = TransformOptions {
            prefer_fixed_point: false,
            ..TransformOptions::default()
        };
        let transform = source
            .create_transform_8bit(Layout::Rgb, &ColorProfile::new_srgb(), Layout::Rgb, options)
            .ok()?;
        let grid: Vec<u8> = (0..17u16 * 17 * 17)
            .flat_map(|i| {
                let level = |v: u16| u8::try_from((v % 17) * 255 / 16).unwrap_or(u8::MAX);
                [level(i / 289), level(i / 17), level(i)]
            })
            .collect();
        let mut out = vec![0; grid.len()];
        transform.transform(&grid, &mut out).ok()?;
        let identity = grid.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1);
        (!identity).then_some(Self(transform))
    }

    /// `rgb` converted, rows in parallel.
    pub fn apply(&self, rgb: &RgbImage) -> RgbImage {
        let mut out = RgbImage::new(rgb.width(), rgb.height());
        let row_bytes = rgb.width() as usize * 3;
        if row_bytes == 0 {
            return out;
        }
        // Bands of rows, so that each task is large enough to be worth a thread.
        let band = row_bytes * 64;
        out.par_chunks_mut(band)
            .zip(rgb.as_raw().par_chunks(band))
            .for_each(|(dst, src)| {
                // The executor only fails on mismatched lengths, which these chunks cannot have.
                let _ = self.0.transform(src, dst);
            });
        out
    }
}

/// `rgb` as sRGB: itself when it has no profile or an sRGB one, else converted through its
/// profile. The network's input and the preview are made from this; exports keep `rgb` and the
/// profile.
pub fn to_srgb<'a>(rgb: &'a RgbImage, embedded: &Embedded) -> Cow<'a, RgbImage> {
    match embedded.icc.as_deref().and_then(ToSrgb::for_profile) {
        Some(transform) => Cow::Owned(transform.apply(rgb)),
        None => Cow::Borrowed(rgb),
    }
}

/// [`to_srgb`] for a shared photo: the same `Arc` when no conversion is needed.
pub fn shared_srgb(rgb: &Arc<RgbImage>, embedded: &Embedded) -> Arc<RgbImage> {
    match to_srgb(rgb, embedded) {
        Cow::Owned(srgb) => Arc::new(srgb),
        Cow::Borrowed(_) => Arc::clone(rgb),
    }
}

/// Sets the EXIF orientation tag (0x0112) of IFD0 to 1 ("upright") in a block that starts at its
/// TIFF header, in place. Returns `false`, changing nothing, when the block is not a readable
/// TIFF structure.
pub fn set_exif_upright(exif: &mut [u8]) -> bool {
    let big_endian = match exif.get(..4) {
        Some([b'M', b'M', 0, 42]) => true,
        Some([b'I', b'I', 42, 0]) => false,
        _ => return false,
    };
    let u16_at = |b: &[u8], at: usize| -> Option<u16> {
        let v: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    };
    let Some(ifd) = exif
        .get(4..8)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(|v| {
            if big_endian {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        })
        .and_then(|v| usize::try_from(v).ok())
    else {
        return false;
    };
    let Some(count) = u16_at(exif, ifd) else {
        return false;
    };
    for entry in 0..usize::from(count) {
        let at = ifd + 2 + entry * 12;
        let (Some(tag), Some(kind)) = (u16_at(exif, at), u16_at(exif, at + 2)) else {
            return false;
        };
        // Orientation is one SHORT (type 3), stored in the first two bytes of the value field.
        if tag == 0x0112 && kind == 3 {
            let one = if big_endian { [0, 1] } else { [1, 0] };
            return match exif.get_mut(at + 8..at + 10) {
                Some(value) => {
                    value.copy_from_slice(&one);
                    true
                }
                None => false,
            };
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn srgb_profiles_need_no_conversion_and_p3_does() {
        let srgb = ColorProfile::new_srgb().encode().expect("encode");
        assert!(ToSrgb::for_profile(&srgb).is_none());
        let p3 = ColorProfile::new_display_p3().encode().expect("encode");
        let to_srgb = ToSrgb::for_profile(&p3).expect("P3 is not sRGB");
        // P3's pure red lies outside sRGB: clipped to sRGB red; grey stays grey.
        let px = RgbImage::from_raw(2, 1, vec![255, 0, 0, 128, 128, 128]).expect("pixels");
        let out = to_srgb.apply(&px);
        assert_eq!(&out.as_raw()[..3], &[255, 0, 0]);
        for v in &out.as_raw()[3..] {
            assert!(v.abs_diff(128) <= 1, "{out:?}");
        }
        // A muted P3 colour inside sRGB's gamut gets more saturated in sRGB numbers.
        let muted = RgbImage::from_raw(1, 1, vec![200, 100, 80]).expect("pixel");
        let out = to_srgb.apply(&muted);
        assert!(out.as_raw()[0] > 200 && out.as_raw()[2] < 80, "{out:?}");
    }

    #[test]
    fn cicp_srgb_needs_no_profile_and_p3_gets_one() {
        assert!(icc_from_cicp(1, 13).is_none());
        assert!(icc_from_cicp(2, 2).is_none());
        let p3 = icc_from_cicp(12, 13).expect("Display P3");
        usable_rgb_profile(&p3).expect("an RGB profile");
        assert_eq!(p3.len() % 4, 0, "padded as libpng requires");
        assert!(ToSrgb::for_profile(&p3).is_some());
    }

    #[test]
    fn non_rgb_or_broken_profiles_are_refused() {
        assert!(usable_rgb_profile(b"not a profile").is_err());
        let grey = ColorProfile::new_gray_with_gamma(2.2)
            .encode()
            .expect("encode");
        assert!(usable_rgb_profile(&grey).is_err());
    }

    #[test]
    fn exif_orientation_is_set_upright() {
        // Little-endian TIFF header, IFD0 at 8 with two entries: Make (ASCII) and Orientation 6.
        let mut exif = vec![b'I', b'I', 42, 0, 8, 0, 0, 0, 2, 0];
        exif.extend([0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'A', b'B', b'C', 0]);
        exif.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        exif.extend([0, 0, 0, 0]);
        assert!(set_exif_upright(&mut exif));
        assert_eq!(&exif[30..32], &[1, 0]);
        assert_eq!(&exif[18..21], b"ABC");
        assert!(!set_exif_upright(&mut b"nonsense".to_vec()));
        // Cut short inside the entries: refused, not a panic.
        assert!(!set_exif_upright(&mut exif[..20].to_vec()));
    }
}
