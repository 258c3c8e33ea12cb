//! Network output → mask at the photo's size, and the cutout composites.
//!
//! rembg's u2net post-processing: min-max normalise `d0`, scale to 0–255 truncating (numpy's
//! `astype(uint8)`), Lanczos3 back to the original size.

use image::{GrayImage, RgbImage, RgbaImage};

use super::{ImageError, resize::lanczos3};

/// Turns the raw `side × side` map into an 8-bit mask of `width × height`.
pub fn mask_from_output(
    raw: &[f32],
    side_px: u32,
    width: u32,
    height: u32,
) -> Result<GrayImage, ImageError> {
    let small = quantize_min_max(raw);
    let full = lanczos3(&small, side_px, side_px, 1, width, height)?;
    GrayImage::from_raw(width, height, full)
        .ok_or_else(|| ImageError::Resize("mask buffer has the wrong size".to_owned()))
}

/// Min-max normalises to [0, 1] and maps to 0–255 by truncation. A constant map becomes all zero.
pub fn quantize_min_max(raw: &[f32]) -> Vec<u8> {
    let (lo, hi) = raw
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        return vec![0; raw.len()];
    }
    // Same operation order as rembg: ((v - min) / (max - min)) * 255, then truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    raw.iter()
        .map(|&v| (((v - lo) / range) * 255.0) as u8)
        .collect()
}

/// The cutout: the photo's own colours, the mask as alpha (straight, not premultiplied). The
/// plain formula the tests hold [`super::composite`] and the GPU compositor to; writers go
/// through `finish::Finisher`.
/// Fully transparent pixels get black colour: invisible, and it keeps the old background's
/// detail out of the file (a 12 MP cutout shrinks several-fold).
pub fn cutout_rgba(rgb: &RgbImage, mask: &GrayImage) -> RgbaImage {
    debug_assert_eq!(rgb.dimensions(), mask.dimensions());
    let mut out = Vec::with_capacity(rgb.as_raw().len() / 3 * 4);
    for (px, &a) in rgb.as_raw().chunks_exact(3).zip(mask.as_raw()) {
        if a == 0 {
            out.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            out.extend_from_slice(&[px[0], px[1], px[2], a]);
        }
    }
    RgbaImage::from_raw(rgb.width(), rgb.height(), out).unwrap_or_else(|| RgbaImage::new(0, 0))
}

/// The photo over a solid colour: `photo × α + colour × (1 − α)`, rounded. Like
/// [`cutout_rgba`], a reference for the tests.
pub fn over_background(rgb: &RgbImage, mask: &GrayImage, background: [u8; 3]) -> RgbImage {
    let mut out = Vec::with_capacity(rgb.as_raw().len());
    for (px, &a) in rgb.as_raw().chunks_exact(3).zip(mask.as_raw()) {
        for c in 0..3 {
            out.push(blend(px[c], background[c], a));
        }
    }
    RgbImage::from_raw(rgb.width(), rgb.height(), out).unwrap_or_else(|| RgbImage::new(0, 0))
}

/// `(fg × a + bg × (255 − a)) / 255`, rounded to nearest.
fn blend(fg: u8, bg: u8, a: u8) -> u8 {
    let v = u32::from(fg) * u32::from(a) + u32::from(bg) * (255 - u32::from(a));
    #[allow(clippy::cast_possible_truncation)]
    let rounded = ((v + 127) / 255) as u8;
    rounded
}

/// How much two masks of the same photo differ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskDifference {
    /// Mean absolute difference in grey levels (0–255).
    pub mean_abs_levels: f64,
    /// Largest absolute difference in grey levels.
    pub max_abs_levels: u8,
    /// Intersection over union of the two masks cut at 128.
    pub iou: f64,
}

/// Compares two masks of the same size; `None` when the sizes differ or they are empty.
pub fn mask_difference(a: &GrayImage, b: &GrayImage) -> Option<MaskDifference> {
    if a.dimensions() != b.dimensions() || a.as_raw().is_empty() {
        return None;
    }
    let (mut sum, mut max, mut inter, mut union) = (0u64, 0u8, 0u64, 0u64);
    for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(y);
        sum += u64::from(d);
        max = max.max(d);
        let (fx, fy) = (x >= 128, y >= 128);
        inter += u64::from(fx && fy);
        union += u64::from(fx || fy);
    }
    #[allow(clippy::cast_precision_loss)]
    Some(MaskDifference {
        mean_abs_levels: sum as f64 / a.as_raw().len() as f64,
        max_abs_levels: max,
        iou: if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn mask_difference_counts_levels_and_overlap() {
        let a = GrayImage::from_raw(4, 1, vec![0, 100, 200, 255]).unwrap();
        let b = GrayImage::from_raw(4, 1, vec![0, 104, 120, 255]).unwrap();
        let d = mask_difference(&a, &b).unwrap();
        assert!((d.mean_abs_levels - 21.0).abs() < 1e-9);
        assert_eq!(d.max_abs_levels, 80);
        assert!((d.iou - 0.5).abs() < 1e-9);
        assert_eq!(mask_difference(&a, &a).unwrap().iou, 1.0);
        assert!(mask_difference(&a, &GrayImage::new(2, 2)).is_none());
    }

    #[test]
    fn min_max_truncates_like_numpy() {
        // (0.5 - 0) / 1 * 255 = 127.5 → 127, not 128.
        assert_eq!(quantize_min_max(&[0.0, 0.5, 1.0]), vec![0, 127, 255]);
        assert_eq!(quantize_min_max(&[2.0, 3.0, 4.0]), vec![0, 127, 255]);
        assert_eq!(quantize_min_max(&[0.3; 4]), vec![0; 4]);
        assert_eq!(quantize_min_max(&[0.0, f32::NAN]), vec![0, 0]);
    }

    #[test]
    fn mask_is_resized_to_the_photo() {
        // Left half background, right half subject, on a 16 × 16 map.
        let raw: Vec<f32> = (0..256)
            .map(|i| if i % 16 < 8 { 0.0 } else { 1.0 })
            .collect();
        let mask = mask_from_output(&raw, 16, 64, 48).expect("mask");
        assert_eq!(mask.dimensions(), (64, 48));
        assert_eq!(mask.get_pixel(0, 20).0[0], 0);
        assert_eq!(mask.get_pixel(63, 20).0[0], 255);
        assert!(mask.get_pixel(30, 20).0[0] < 60 && mask.get_pixel(33, 20).0[0] > 195);
    }

    #[test]
    fn cutout_keeps_colour_and_uses_mask_as_alpha() {
        let rgb = RgbImage::from_raw(3, 1, vec![10, 20, 30, 40, 50, 60, 70, 80, 90]).expect("rgb");
        let mask = GrayImage::from_raw(3, 1, vec![0, 1, 200]).expect("mask");
        // Invisible pixels carry no colour; every visible one keeps the photo's.
        assert_eq!(
            cutout_rgba(&rgb, &mask).into_raw(),
            vec![0, 0, 0, 0, 40, 50, 60, 1, 70, 80, 90, 200]
        );
    }

    #[test]
    fn background_blend_rounds() {
        assert_eq!(blend(255, 0, 255), 255);
        assert_eq!(blend(255, 0, 0), 0);
        assert_eq!(blend(255, 0, 128), 128);
        assert_eq!(blend(0, 255, 128), 127);
        let rgb = RgbImage::from_raw(1, 1, vec![200, 100, 0]).expect("rgb");
        let mask = GrayImage::from_raw(1, 1, vec![255]).expect("mask");
        assert_eq!(
            over_background(&rgb, &mask, [0, 255, 0]).into_raw(),
            vec![200, 100, 0]
        );
    }
}
