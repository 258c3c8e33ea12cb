//! Lanczos3 resizing through fast_image_resize (SIMD, multi-threaded), matching Pillow's
//! `Image.resize(…, LANCZOS)`: a convolution whose support widens when shrinking (antialiasing).

use fast_image_resize::{
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image, images::ImageRef,
};

use super::ImageError;

/// Resizes an 8-bit image with `channels` interleaved channels (1, 3 or 4) to `dst_w × dst_h`.
pub fn lanczos3(
    src: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    dst_w: u32,
    dst_h: u32,
) -> Result<Vec<u8>, ImageError> {
    resize(
        src,
        (width, height),
        channels,
        (dst_w, dst_h),
        FilterType::Lanczos3,
    )
}

/// Shrinks with a box filter: each output pixel is the area average of the input pixels it
/// covers (a cheap, exact blur when the factor is large).
pub fn box_average(
    src: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    dst_w: u32,
    dst_h: u32,
) -> Result<Vec<u8>, ImageError> {
    resize(
        src,
        (width, height),
        channels,
        (dst_w, dst_h),
        FilterType::Box,
    )
}

/// A copy whose longer side is at most `max_side_px` (area-averaged), for thumbnails.
pub fn shrink_to_fit(
    rgb: &image::RgbImage,
    max_side_px: u32,
) -> Result<image::RgbImage, ImageError> {
    let (w, h) = rgb.dimensions();
    let long = w.max(h).max(1);
    if long <= max_side_px {
        return Ok(rgb.clone());
    }
    let scale = f64::from(max_side_px) / f64::from(long);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let size = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    let (tw, th) = (size(w), size(h));
    let data = box_average(rgb.as_raw(), w, h, 3, tw, th)?;
    image::RgbImage::from_raw(tw, th, data)
        .ok_or_else(|| ImageError::Resize("thumbnail buffer has the wrong size".to_owned()))
}

fn resize(
    src: &[u8],
    (width, height): (u32, u32),
    channels: u8,
    (dst_w, dst_h): (u32, u32),
    filter: FilterType,
) -> Result<Vec<u8>, ImageError> {
    let pixel_type = match channels {
        1 => PixelType::U8,
        3 => PixelType::U8x3,
        4 => PixelType::U8x4,
        other => {
            return Err(ImageError::Resize(format!(
                "{other} channels are not supported"
            )));
        }
    };
    if width == dst_w && height == dst_h {
        return Ok(src.to_vec());
    }
    let src_image = ImageRef::new(width, height, src, pixel_type)
        .map_err(|e| ImageError::Resize(e.to_string()))?;
    let mut dst_image = Image::new(dst_w, dst_h, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new()
        .resize(&src_image, &mut dst_image, &options)
        .map_err(|e| ImageError::Resize(e.to_string()))?;
    Ok(dst_image.into_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_image_stays_flat() {
        let src = vec![77u8; 40 * 30 * 3];
        let out = lanczos3(&src, 40, 30, 3, 13, 7).expect("resize");
        assert_eq!(out.len(), 13 * 7 * 3);
        assert!(out.iter().all(|&v| v == 77));
    }

    #[test]
    fn upscaling_a_step_keeps_its_ends_and_rings_a_little() {
        // A 0→255 step, upscaled 4×: ends exact, monotone-ish middle (Lanczos may overshoot, clamped).
        let src: Vec<u8> = (0..16).map(|x| if x < 8 { 0 } else { 255 }).collect();
        let out = lanczos3(&src, 16, 1, 1, 64, 1).expect("resize");
        assert_eq!(out[0], 0);
        assert_eq!(out[63], 255);
        assert!(out[30] < 128 && out[33] > 128, "{out:?}");
    }
}
