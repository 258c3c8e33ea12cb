//! The compositing definition shared by the preview and the export: how the mask becomes alpha
//! (threshold and edge softness) and what goes behind the subject.
//!
//! This is the CPU reference. The GPU compositor (`render/composite.wgsl`) implements the same
//! formulas; `tests/integration/compositor.rs` renders both and requires them to agree within one grey level.
//! With the default settings and no edge passes the result is exactly the plain formula of
//! [`super::cutout_rgba`] (a test checks it). Every writer (`cutout remove`, the app's Export,
//! Export all and Copy) goes through `finish::Finisher`, which composites with this definition.

use image::{GrayImage, Rgb, RgbImage, RgbaImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    ImageError,
    edits::{self, EditLayer},
    resize, to_u8,
};

/// What the subject is placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Background {
    /// Nothing: the export keeps an alpha channel; the preview shows a checkerboard.
    #[default]
    Transparent,
    /// A solid colour ([`CompositeSettings::color`]).
    Color,
    /// The original photo, darkened to [`CompositeSettings::dim`] of its brightness.
    Dimmed,
    /// A strongly blurred copy of the original photo.
    Blurred,
}

impl Background {
    /// Every background, in menu order.
    pub const ALL: [Self; 4] = [Self::Transparent, Self::Color, Self::Dimmed, Self::Blurred];

    /// A short name for menus.
    pub fn label(self) -> &'static str {
        match self {
            Self::Transparent => "Transparent",
            Self::Color => "Colour",
            Self::Dimmed => "Dimmed photo",
            Self::Blurred => "Blurred photo",
        }
    }

    /// The number the shader uses for this background.
    pub fn shader_code(self) -> u32 {
        match self {
            Self::Transparent => 0,
            Self::Color => 1,
            Self::Dimmed => 2,
            Self::Blurred => 3,
        }
    }
}

/// Everything that decides the composite, apart from the photo and the mask.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompositeSettings {
    /// What goes behind the subject.
    pub background: Background,
    /// The colour for [`Background::Color`], sRGB.
    pub color: [u8; 3],
    /// Brightness kept by [`Background::Dimmed`], 0–1.
    pub dim: f32,
    /// Mask value (0–1) at the middle of the edge ramp: above it a pixel belongs to the subject.
    pub threshold: f32,
    /// Width of the edge ramp in mask units (0 = hard edge, 1 = the network's own soft mask at
    /// threshold 0.5), narrowed where the threshold is near 0 or 1 so that the ramp stays
    /// within the mask's range (see [`CompositeSettings::ramp`]).
    pub softness: f32,
    /// Edge refinement and foreground colour estimation.
    pub refine: super::refine::RefineSettings,
}

impl Default for CompositeSettings {
    fn default() -> Self {
        Self {
            background: Background::Transparent,
            color: [255, 255, 255],
            dim: 0.3,
            threshold: 0.5,
            softness: 1.0,
            refine: super::refine::RefineSettings::default(),
        }
    }
}

/// The smallest ramp width; a softness of 0 becomes a step at the threshold.
pub const MIN_RAMP: f32 = 1e-4;

/// Longer side of the blurred backdrop in pixels. The backdrop is an area average of the photo at
/// this size, stretched back with bilinear filtering: a blur of about 1/48 of the photo.
pub const BACKDROP_LONG_SIDE_PX: u32 = 48;

impl CompositeSettings {
    /// The mask value where alpha starts to rise and where it reaches 1: centred on the
    /// threshold, `softness` wide, and never reaching past 0 or 1. So the most certain subject
    /// (mask 1) always stays opaque and the most certain background (mask 0) clear, whatever
    /// the threshold: moving it makes the cutout tighter or looser, never see-through.
    pub fn ramp(&self) -> (f32, f32) {
        let threshold = self.threshold.clamp(0.0, 1.0);
        let half = (self.softness.clamp(0.0, 1.0) / 2.0)
            .min(threshold)
            .min(1.0 - threshold);
        (threshold - half, threshold + half)
    }

    /// Alpha (0–1) for a mask value (0–1).
    pub fn alpha(&self, mask: f32) -> f32 {
        let (lo, hi) = self.ramp();
        ((mask - lo) / (hi - lo).max(MIN_RAMP)).clamp(0.0, 1.0)
    }

    /// Whether the result keeps an alpha channel (only over a transparent background).
    pub fn has_alpha(&self) -> bool {
        self.background == Background::Transparent
    }
}

/// The blurred backdrop for [`Background::Blurred`]: the photo averaged down to
/// [`BACKDROP_LONG_SIDE_PX`] on its longer side.
pub fn backdrop(photo: &RgbImage) -> Result<RgbImage, ImageError> {
    let (w, h) = photo.dimensions();
    let long = w.max(h).max(1);
    let scale = f64::from(BACKDROP_LONG_SIDE_PX) / f64::from(long);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let size = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, v.max(1));
    let (bw, bh) = (size(w), size(h));
    let data = resize::box_average(photo.as_raw(), w, h, 3, bw, bh)?;
    RgbImage::from_raw(bw, bh, data)
        .ok_or_else(|| ImageError::Resize("backdrop buffer has the wrong size".to_owned()))
}

/// Bilinear sample of `image` at normalised coordinates (texel centres at `(i + 0.5) / size`,
/// edges clamped), as a GPU sampler with linear filtering and clamp-to-edge does it.
pub fn sample_bilinear(image: &RgbImage, u: f32, v: f32) -> [f32; 3] {
    let (w, h) = image.dimensions();
    #[allow(clippy::cast_precision_loss)]
    let (x, y) = (u * w as f32 - 0.5, v * h as f32 - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let texel = |xi: f32, yi: f32| -> [f32; 3] {
        let cx = (xi as i64).clamp(0, i64::from(w) - 1);
        let cy = (yi as i64).clamp(0, i64::from(h) - 1);
        #[allow(clippy::cast_sign_loss)]
        let Rgb(p) = *image.get_pixel(cx as u32, cy as u32);
        p.map(|c| f32::from(c) / 255.0)
    };
    let (a, b) = (texel(x0, y0), texel(x0 + 1.0, y0));
    let (c, d) = (texel(x0, y0 + 1.0), texel(x0 + 1.0, y0 + 1.0));
    std::array::from_fn(|i| {
        let top = a[i] + (b[i] - a[i]) * fx;
        let bottom = c[i] + (d[i] - c[i]) * fx;
        top + (bottom - top) * fy
    })
}

/// The composite of one pixel, all values 0–1: `fg` the photo, `m` the mask, `behind` the
/// backdrop sample (used only by [`Background::Blurred`]). Returns RGBA, straight (not
/// premultiplied) alpha.
pub fn composite_pixel(
    settings: &CompositeSettings,
    fg: [f32; 3],
    photo: [f32; 3],
    m: f32,
    behind: [f32; 3],
) -> [f32; 4] {
    over_behind(settings, settings.alpha(m), fg, photo, behind)
}

/// [`composite_pixel`] with the touch-up edits applied: `edit` is the edit layer's
/// `[strength, keep]` at this pixel (see [`edits::apply`]).
pub fn composite_edited_pixel(
    settings: &CompositeSettings,
    fg: [f32; 3],
    photo: [f32; 3],
    m: f32,
    behind: [f32; 3],
    edit: [u8; 2],
) -> [f32; 4] {
    let (a, fg) = edits::apply(settings.alpha(m), fg, photo, edit);
    over_behind(settings, a, fg, photo, behind)
}

/// The subject with alpha `a` and colour `fg` over the background.
fn over_behind(
    settings: &CompositeSettings,
    a: f32,
    fg: [f32; 3],
    photo: [f32; 3],
    behind: [f32; 3],
) -> [f32; 4] {
    let over = |bg: [f32; 3]| -> [f32; 4] {
        [
            fg[0] * a + bg[0] * (1.0 - a),
            fg[1] * a + bg[1] * (1.0 - a),
            fg[2] * a + bg[2] * (1.0 - a),
            1.0,
        ]
    };
    match settings.background {
        // Fully transparent pixels are stored black, as `cutout remove` does (smaller files).
        Background::Transparent if a * 255.0 < 0.5 => [0.0; 4],
        Background::Transparent => [fg[0], fg[1], fg[2], a],
        Background::Color => over(settings.color.map(|c| f32::from(c) / 255.0)),
        Background::Dimmed => over(photo.map(|c| c * settings.dim)),
        Background::Blurred => over(behind),
    }
}

/// The full-resolution composite of a photo and its mask (same size), as exported, with the
/// touch-up edits when there are any.
pub fn composite(
    photo: &RgbImage,
    mask: &GrayImage,
    foreground: Option<&RgbImage>,
    settings: &CompositeSettings,
    edits: Option<&EditLayer>,
) -> Result<RgbaImage, ImageError> {
    let fg_image = foreground.unwrap_or(photo);
    if photo.dimensions() != mask.dimensions()
        || fg_image.dimensions() != photo.dimensions()
        || edits.is_some_and(|e| e.dimensions() != photo.dimensions())
    {
        return Err(ImageError::Resize(format!(
            "the mask is {}×{} but the photo is {}×{}",
            mask.width(),
            mask.height(),
            photo.width(),
            photo.height()
        )));
    }
    let behind = match settings.background {
        Background::Blurred => Some(backdrop(photo)?),
        _ => None,
    };
    let (w, h) = photo.dimensions();
    if settings.background == Background::Transparent {
        return Ok(transparent(photo, fg_image, mask, settings, edits));
    }
    let mut out = RgbaImage::new(w, h);
    let unit = |p: &[u8]| [p[0], p[1], p[2]].map(|c| f32::from(c) / 255.0);
    let row_len = w as usize;
    // Rows in parallel: every pixel is independent.
    #[allow(clippy::cast_precision_loss)]
    out.par_chunks_mut(row_len * 4)
        .enumerate()
        .for_each(|(y, row_out)| {
            let v = (y as f32 + 0.5) / h as f32;
            let at = y * row_len;
            let row_in = &photo.as_raw()[at * 3..(at + row_len) * 3];
            let row_fg = &fg_image.as_raw()[at * 3..(at + row_len) * 3];
            let row_mask = &mask.as_raw()[at..at + row_len];
            let row_edits = edits.map(|e| &e.as_raw()[at * 2..(at + row_len) * 2]);
            for (x, (px_out, ((px, px_fg), m))) in row_out
                .chunks_exact_mut(4)
                .zip(
                    row_in
                        .chunks_exact(3)
                        .zip(row_fg.chunks_exact(3))
                        .zip(row_mask),
                )
                .enumerate()
            {
                let b = behind.as_ref().map_or([0.0; 3], |img| {
                    sample_bilinear(img, (x as f32 + 0.5) / w as f32, v)
                });
                let edit = row_edits.map_or([0, 0], |e| [e[2 * x], e[2 * x + 1]]);
                let rgba = composite_edited_pixel(
                    settings,
                    unit(px_fg),
                    unit(px),
                    f32::from(*m) / 255.0,
                    b,
                    edit,
                );
                px_out.copy_from_slice(&rgba.map(to_u8));
            }
        });
    Ok(out)
}

/// [`composite`] over a transparent background: each unedited output pixel depends only on the
/// colour and the 8-bit mask value, so the alpha (and whether the pixel is cleared) comes from a
/// 256-entry table made with [`composite_pixel`] itself; edited pixels take the whole formula.
fn transparent(
    photo: &RgbImage,
    colours: &RgbImage,
    mask: &GrayImage,
    settings: &CompositeSettings,
    edits: Option<&EditLayer>,
) -> RgbaImage {
    #[allow(clippy::cast_precision_loss)]
    let alpha: [Option<u8>; 256] = std::array::from_fn(|m| {
        let px = composite_pixel(settings, [1.0; 3], [1.0; 3], m as f32 / 255.0, [0.0; 3]);
        (px[0] > 0.0).then(|| to_u8(px[3]))
    });
    let (w, h) = colours.dimensions();
    let mut out = vec![0u8; mask.as_raw().len() * 4];
    const CHUNK: usize = 16 * 1024;
    let unit = |p: &[u8]| [p[0], p[1], p[2]].map(|c| f32::from(c) / 255.0);
    out.par_chunks_mut(4 * CHUNK)
        .enumerate()
        .zip(colours.as_raw().par_chunks(3 * CHUNK))
        .zip(mask.as_raw().par_chunks(CHUNK))
        .for_each(|(((chunk, out), rgb), m)| {
            let at = chunk * CHUNK;
            let edits = edits.map(|e| &e.as_raw()[at * 2..(at + m.len()) * 2]);
            let photo = &photo.as_raw()[at * 3..(at + m.len()) * 3];
            for (i, ((o, c), &v)) in out
                .chunks_exact_mut(4)
                .zip(rgb.chunks_exact(3))
                .zip(m)
                .enumerate()
            {
                let edit = edits.map_or([0, 0], |e| [e[2 * i], e[2 * i + 1]]);
                if edit != [0, 0] {
                    let px = composite_edited_pixel(
                        settings,
                        unit(c),
                        unit(&photo[3 * i..3 * i + 3]),
                        f32::from(v) / 255.0,
                        [0.0; 3],
                        edit,
                    );
                    o.copy_from_slice(&px.map(to_u8));
                } else if let Some(a) = alpha[usize::from(v)] {
                    o.copy_from_slice(&[c[0], c[1], c[2], a]);
                }
            }
        });
    RgbaImage::from_raw(w, h, out).unwrap_or_else(|| RgbaImage::new(0, 0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn photo_and_mask() -> (RgbImage, GrayImage) {
        let photo = RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 200]));
        let mask = GrayImage::from_fn(64, 48, |x, _| image::Luma([(x * 4) as u8]));
        (photo, mask)
    }

    #[test]
    fn the_transparent_table_gives_what_the_pixel_formula_gives() {
        let (photo, mask) = photo_and_mask();
        for (threshold, softness) in [(0.5, 1.0), (0.3, 0.2), (0.7, 0.0), (0.5, 0.01)] {
            let settings = CompositeSettings {
                threshold,
                softness,
                ..CompositeSettings::default()
            };
            let fast = composite(&photo, &mask, None, &settings, None).unwrap();
            for ((px, out), m) in photo.pixels().zip(fast.pixels()).zip(mask.pixels()) {
                let unit = px.0.map(|c| f32::from(c) / 255.0);
                let want =
                    composite_pixel(&settings, unit, unit, f32::from(m.0[0]) / 255.0, [0.0; 3])
                        .map(to_u8);
                assert_eq!(out.0, want, "threshold {threshold}, softness {softness}");
            }
        }
    }

    #[test]
    fn default_settings_equal_the_command_line_cutout() {
        let (photo, mask) = photo_and_mask();
        let ours = composite(&photo, &mask, None, &CompositeSettings::default(), None).unwrap();
        assert_eq!(ours, super::super::cutout_rgba(&photo, &mask));
    }

    #[test]
    fn colour_background_matches_the_command_line_blend_within_one_level() {
        let (photo, mask) = photo_and_mask();
        let settings = CompositeSettings {
            background: Background::Color,
            color: [10, 200, 30],
            ..CompositeSettings::default()
        };
        let ours = composite(&photo, &mask, None, &settings, None).unwrap();
        let cli = super::super::over_background(&photo, &mask, [10, 200, 30]);
        for (a, b) in ours.pixels().zip(cli.pixels()) {
            assert_eq!(a.0[3], 255);
            for c in 0..3 {
                assert!(a.0[c].abs_diff(b.0[c]) <= 1, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn zero_softness_is_a_hard_threshold() {
        let s = CompositeSettings {
            threshold: 0.5,
            softness: 0.0,
            ..CompositeSettings::default()
        };
        assert_eq!(s.alpha(0.49), 0.0);
        assert_eq!(s.alpha(0.51), 1.0);
        let soft = CompositeSettings::default();
        assert_eq!(soft.alpha(0.25), 0.25);
        let narrow = CompositeSettings {
            threshold: 0.6,
            softness: 0.2,
            ..CompositeSettings::default()
        };
        assert!((narrow.alpha(0.6) - 0.5).abs() < 1e-6);
        assert_eq!(narrow.alpha(0.45), 0.0);
    }

    #[test]
    fn the_threshold_tightens_the_cutout_and_never_fades_the_subject() {
        for softness in [0.0, 0.3, 1.0] {
            for step in 1..100 {
                let threshold = step as f32 / 100.0;
                let s = CompositeSettings {
                    threshold,
                    softness,
                    ..CompositeSettings::default()
                };
                let what = format!("threshold {threshold}, softness {softness}");
                assert_eq!(s.alpha(1.0), 1.0, "the surest subject is opaque: {what}");
                assert_eq!(s.alpha(0.0), 0.0, "the surest background is clear: {what}");
                if softness > 0.0 {
                    assert!((s.alpha(threshold) - 0.5).abs() < 1e-3, "{what}");
                }
                let (lo, hi) = s.ramp();
                assert!(
                    0.0 <= lo && lo <= threshold && threshold <= hi && hi <= 1.0,
                    "{what}"
                );
            }
        }
        // The case: threshold 0.96 at the default softness used to give mask 1 an
        // alpha of 0.54 (the ramp ran to 1.46); a pixel the network is 99 % sure of stays
        // nearly opaque, and one at 0.9 is now outside the subject.
        let tight = CompositeSettings {
            threshold: 0.96,
            ..CompositeSettings::default()
        };
        assert!(tight.alpha(0.99) > 0.85, "{}", tight.alpha(0.99));
        assert_eq!(tight.alpha(0.9), 0.0);
    }

    #[test]
    fn dimmed_and_blurred_backgrounds_are_opaque_and_keep_the_subject() {
        let (photo, _) = photo_and_mask();
        let full = GrayImage::from_pixel(64, 48, image::Luma([255]));
        let none = GrayImage::from_pixel(64, 48, image::Luma([0]));
        for background in [Background::Dimmed, Background::Blurred] {
            let settings = CompositeSettings {
                background,
                ..CompositeSettings::default()
            };
            let kept = composite(&photo, &full, None, &settings, None).unwrap();
            for (a, b) in kept.pixels().zip(photo.pixels()) {
                assert_eq!(&a.0[..3], &b.0[..]);
                assert_eq!(a.0[3], 255);
            }
            let behind = composite(&photo, &none, None, &settings, None).unwrap();
            assert!(behind.pixels().all(|p| p.0[3] == 255));
        }
        let dimmed = composite(
            &photo,
            &none,
            None,
            &CompositeSettings {
                background: Background::Dimmed,
                dim: 0.5,
                ..CompositeSettings::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(dimmed.get_pixel(10, 10).0[2], 100);
    }

    #[test]
    fn backdrop_is_small_and_flat_for_a_flat_photo() {
        let photo = RgbImage::from_pixel(4000, 3000, Rgb([90, 120, 30]));
        let b = backdrop(&photo).unwrap();
        assert_eq!(b.dimensions(), (48, 36));
        assert!(b.pixels().all(|p| p.0 == [90, 120, 30]));
        let s = sample_bilinear(&b, 0.3, 0.9);
        assert!((s[0] - 90.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn edits_change_only_edited_pixels_with_the_pixel_formula_on_every_background() {
        use super::super::edits::{Brush, BrushMode, Stroke};
        let (photo, mask) = photo_and_mask();
        let stroke = |mode, x: f32| Stroke {
            brush: Brush {
                mode,
                radius_px: 6.0,
                hardness: 0.3,
                edge_aware: false,
            },
            points: vec![[x, 10.0], [x, 40.0]],
        };
        let layer = EditLayer::from_strokes(
            &photo,
            &[
                stroke(BrushMode::Keep, 12.0),
                stroke(BrushMode::Erase, 50.0),
            ],
        );
        for background in Background::ALL {
            let settings = CompositeSettings {
                background,
                color: [10, 200, 30],
                ..CompositeSettings::default()
            };
            let plain = composite(&photo, &mask, None, &settings, None).unwrap();
            let edited = composite(&photo, &mask, None, &settings, Some(&layer)).unwrap();
            let blank = EditLayer::new(64, 48);
            assert_eq!(
                composite(&photo, &mask, None, &settings, Some(&blank)).unwrap(),
                plain
            );
            for (x, y, px) in edited.enumerate_pixels() {
                let edit = layer.get(x, y);
                if edit == [0, 0] {
                    assert_eq!(px, plain.get_pixel(x, y), "{background:?} ({x}, {y})");
                }
            }
            if background == Background::Transparent {
                assert_eq!(edited.get_pixel(12, 25).0, {
                    let p = photo.get_pixel(12, 25).0;
                    [p[0], p[1], p[2], 255]
                });
                assert_eq!(edited.get_pixel(50, 25).0, [0; 4]);
            }
        }
    }

    #[test]
    fn mismatched_sizes_are_an_error() {
        let (photo, _) = photo_and_mask();
        let mask = GrayImage::new(3, 3);
        assert!(composite(&photo, &mask, None, &CompositeSettings::default(), None).is_err());
    }
}
