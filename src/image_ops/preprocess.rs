//! Photo → network input, exactly as rembg prepares u2net-family models: Lanczos3 to the model's
//! square size (aspect not kept), divide by the image's own maximum, ImageNet mean/std, NCHW.

use image::RgbImage;

use super::{ImageError, resize::lanczos3};
use serde::Deserialize;

/// How pixel values are scaled to [0, 1] before mean/std normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Scale {
    /// Divide by the image's own maximum value (rembg's u2net family).
    #[serde(rename = "image_max")]
    ImageMax,
    /// Divide by 255.
    #[serde(rename = "255")]
    Unit,
}

/// Per-model normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// Scaling to [0, 1].
    pub scale: Scale,
}

/// Resizes `rgb` to `side × side` and returns the `[1, 3, side, side]` float tensor, row-major.
pub fn to_model_input(
    rgb: &RgbImage,
    side_px: u32,
    norm: Normalization,
) -> Result<Vec<f32>, ImageError> {
    let small = lanczos3(rgb.as_raw(), rgb.width(), rgb.height(), 3, side_px, side_px)?;
    Ok(normalize_nchw(&small, norm))
}

/// Interleaved RGB bytes → normalised planar floats.
pub fn normalize_nchw(rgb: &[u8], norm: Normalization) -> Vec<f32> {
    let plane = rgb.len() / 3;
    let divisor = match norm.scale {
        // rembg: im / max(np.max(im), 1e-6)
        Scale::ImageMax => f32::from(rgb.iter().copied().max().unwrap_or(0)).max(1e-6),
        Scale::Unit => 255.0,
    };
    let mut out = vec![0f32; plane * 3];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        r[i] = (f32::from(px[0]) / divisor - norm.mean[0]) / norm.std[0];
        g[i] = (f32::from(px[1]) / divisor - norm.mean[1]) / norm.std[1];
        b[i] = (f32::from(px[2]) / divisor - norm.mean[2]) / norm.std[2];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        scale: Scale::ImageMax,
    };

    #[test]
    fn divides_by_the_image_maximum_then_mean_std() {
        // Two pixels; the maximum is 200, so 200 → 1.0 and 100 → 0.5.
        let out = normalize_nchw(&[200, 100, 0, 100, 200, 50], IMAGENET);
        let expect = |v: f32, c: usize| (v - IMAGENET.mean[c]) / IMAGENET.std[c];
        let want = [
            expect(1.0, 0),
            expect(0.5, 0),
            expect(0.5, 1),
            expect(1.0, 1),
            expect(0.0, 2),
            expect(0.25, 2),
        ];
        for (got, want) in out.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn unit_scale_divides_by_255() {
        let norm = Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
            scale: Scale::Unit,
        };
        let out = normalize_nchw(&[255, 0, 51], norm);
        assert_eq!(out, vec![1.0, 0.0, 0.2]);
    }

    #[test]
    fn black_image_does_not_divide_by_zero() {
        let out = normalize_nchw(&[0, 0, 0], IMAGENET);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn output_is_planar_at_the_model_size() {
        let img = RgbImage::from_pixel(50, 20, image::Rgb([10, 20, 30]));
        let out = to_model_input(&img, 8, IMAGENET).expect("preprocess");
        assert_eq!(out.len(), 3 * 8 * 8);
        // Flat image: every value in a plane is the same, and max-scaling makes blue 1.0.
        assert!(out[..64].iter().all(|&v| (v - out[0]).abs() < 1e-6));
        assert!((out[128] - (1.0 - 0.406) / 0.225).abs() < 1e-5);
    }
}
