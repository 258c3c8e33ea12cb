//! Guided refinement of a mask with the full-resolution photo as the guide (He, Sun and Tang,
//! "Guided Image Filtering", colour-guide form): locally, alpha is modelled as a linear function
//! of the photo's colour, fitted to the network's mask in a (2r+1)² window with regularisation
//! `eps`, so that the mask's edges follow the photo's edges.
//!
//! Foreground colour estimation (Forte and Pitié, "Approximate Fast Foreground Colour
//! Estimation", ICIP 2021, "blur fusion"): in semi-transparent pixels the photo is a mix of the
//! subject and the old background; local means of the subject's and the background's colours,
//! weighted by alpha, give the subject's colour so that it can be put on a new background
//! without a fringe of the old one.
//!
//! This is the plain CPU reference (f32 planes, edge-normalised box means); `render::refine`
//! runs the same steps as wgpu compute passes, within one grey level of this.

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// How the network's mask is refined before compositing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefineSettings {
    /// Snap the mask to the photo's edges with the guided filter.
    pub guided: bool,
    /// Guided filter window radius in photo pixels.
    pub radius: u32,
    /// Guided filter regularisation (squared 0–1 colour units): smaller follows the photo's
    /// edges more closely, larger stays closer to the network's mask.
    pub eps: f32,
    /// Estimate the subject's colour in semi-transparent pixels (blur fusion).
    pub foreground: bool,
}

impl Default for RefineSettings {
    fn default() -> Self {
        Self {
            guided: false,
            radius: DEFAULT_RADIUS_PX,
            eps: DEFAULT_EPS,
            foreground: true,
        }
    }
}

/// Default guided filter radius (best boundary F on the ECSSD photos among 2–16 px).
pub const DEFAULT_RADIUS_PX: u32 = 6;
/// Default guided filter regularisation.
pub const DEFAULT_EPS: f32 = 1e-4;
/// Largest radius the settings accept.
pub const MAX_RADIUS_PX: u32 = 64;
/// Radii of the two blur-fusion passes: a wide one, then a narrow one (the paper's values).
pub const FOREGROUND_RADII_PX: [u32; 2] = [90, 6];
/// Keeps the blur-fusion means finite where a window holds no subject (or no background).
pub const FOREGROUND_EPS: f32 = 1e-5;

impl RefineSettings {
    /// The settings with the radius and regularisation brought into their valid ranges.
    pub fn clamped(self) -> Self {
        Self {
            radius: self.radius.clamp(1, MAX_RADIUS_PX),
            eps: if self.eps.is_finite() {
                self.eps.clamp(1e-7, 1.0)
            } else {
                DEFAULT_EPS
            },
            ..self
        }
    }
}

/// Mean over a (2r+1)×(2r+1) window, clamped at the image edges (the mean is over the pixels
/// inside the image only). Two passes of running sums: O(1) per pixel whatever the radius.
pub fn box_mean(plane: &[f32], width: usize, height: usize, radius: usize) -> Vec<f32> {
    debug_assert_eq!(plane.len(), width * height);
    let mut rows = vec![0f32; plane.len()];
    for y in 0..height {
        let row = &plane[y * width..(y + 1) * width];
        let out = &mut rows[y * width..(y + 1) * width];
        let mut sum: f64 = row[..radius.min(width - 1) + 1]
            .iter()
            .map(|&v| f64::from(v))
            .sum();
        for x in 0..width {
            let lo = x.saturating_sub(radius);
            let hi = (x + radius).min(width - 1);
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            {
                out[x] = (sum / (hi - lo + 1) as f64) as f32;
            }
            if x + radius + 1 < width {
                sum += f64::from(row[x + radius + 1]);
            }
            if x >= radius {
                sum -= f64::from(row[x - radius]);
            }
        }
    }
    let mut out = vec![0f32; plane.len()];
    let mut sums = vec![0f64; width];
    for y in 0..=radius.min(height - 1) {
        for (s, &v) in sums.iter_mut().zip(&rows[y * width..(y + 1) * width]) {
            *s += f64::from(v);
        }
    }
    for y in 0..height {
        let lo = y.saturating_sub(radius);
        let hi = (y + radius).min(height - 1);
        #[allow(clippy::cast_precision_loss)]
        let n = (hi - lo + 1) as f64;
        for (o, &s) in out[y * width..(y + 1) * width].iter_mut().zip(&sums) {
            #[allow(clippy::cast_possible_truncation)]
            {
                *o = (s / n) as f32;
            }
        }
        if y + radius + 1 < height {
            let add = &rows[(y + radius + 1) * width..(y + radius + 2) * width];
            for (s, &v) in sums.iter_mut().zip(add) {
                *s += f64::from(v);
            }
        }
        if y >= radius {
            let sub = &rows[(y - radius) * width..(y - radius + 1) * width];
            for (s, &v) in sums.iter_mut().zip(sub) {
                *s -= f64::from(v);
            }
        }
    }
    out
}

/// Solves the symmetric 3×3 system `S a = c` for one pixel (S given by its six unique entries
/// `[rr, rg, rb, gg, gb, bb]`) with Cramer's rule, in f64: with `eps` on the diagonal S is
/// positive definite, but for a guide whose channels move together the determinant is tiny.
fn solve3(s: [f32; 6], c: [f32; 3]) -> [f32; 3] {
    #[allow(clippy::cast_possible_truncation)]
    solve3_f64(s.map(f64::from), c.map(f64::from)).map(|v| v as f32)
}

/// [`solve3`] in f64 throughout; zero where the system is singular.
pub(super) fn solve3_f64(s: [f64; 6], c: [f64; 3]) -> [f64; 3] {
    let [rr, rg, rb, gg, gb, bb] = s;
    let inv = [
        gg * bb - gb * gb,
        rb * gb - rg * bb,
        rg * gb - rb * gg,
        rr * bb - rb * rb,
        rg * rb - rr * gb,
        rr * gg - rg * rg,
    ];
    let det = rr * inv[0] + rg * inv[1] + rb * inv[2];
    if det == 0.0 || !det.is_finite() {
        return [0.0; 3];
    }
    [
        (inv[0] * c[0] + inv[1] * c[1] + inv[2] * c[2]) / det,
        (inv[1] * c[0] + inv[3] * c[1] + inv[4] * c[2]) / det,
        (inv[2] * c[0] + inv[4] * c[1] + inv[5] * c[2]) / det,
    ]
}

/// The colour guided filter of `mask` with `guide` (same size): window radius in pixels and
/// regularisation `eps` (in squared 0–1 colour units; smaller follows the photo's edges more
/// closely). Returns the refined mask.
pub fn guided_filter(guide: &RgbImage, mask: &GrayImage, radius: usize, eps: f32) -> GrayImage {
    let (w, h) = (guide.width() as usize, guide.height() as usize);
    assert_eq!(
        guide.dimensions(),
        mask.dimensions(),
        "guide and mask sizes"
    );
    let n = w * h;
    let channel = |c: usize| -> Vec<f32> {
        guide
            .as_raw()
            .chunks_exact(3)
            .map(|p| f32::from(p[c]) / 255.0)
            .collect()
    };
    let i = [channel(0), channel(1), channel(2)];
    let p: Vec<f32> = mask
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect();
    let mean = |v: &[f32]| box_mean(v, w, h, radius);
    let product =
        |a: &[f32], b: &[f32]| -> Vec<f32> { a.iter().zip(b).map(|(x, y)| x * y).collect() };
    let mean_i = [mean(&i[0]), mean(&i[1]), mean(&i[2])];
    let mean_p = mean(&p);
    let mean_ip = [
        mean(&product(&i[0], &p)),
        mean(&product(&i[1], &p)),
        mean(&product(&i[2], &p)),
    ];
    let pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];
    let mean_ii: Vec<Vec<f32>> = pairs
        .iter()
        .map(|&(a, b)| mean(&product(&i[a], &i[b])))
        .collect();
    let mut a = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let mut b = vec![0f32; n];
    for k in 0..n {
        let mi = [mean_i[0][k], mean_i[1][k], mean_i[2][k]];
        let cov = [
            mean_ip[0][k] - mi[0] * mean_p[k],
            mean_ip[1][k] - mi[1] * mean_p[k],
            mean_ip[2][k] - mi[2] * mean_p[k],
        ];
        let mut s = [0f32; 6];
        for (slot, (&(x, y), m)) in s.iter_mut().zip(pairs.iter().zip(&mean_ii)) {
            *slot = m[k] - mi[x] * mi[y] + if x == y { eps } else { 0.0 };
        }
        let ak = solve3(s, cov);
        for c in 0..3 {
            a[c][k] = ak[c];
        }
        b[k] = mean_p[k] - ak[0] * mi[0] - ak[1] * mi[1] - ak[2] * mi[2];
    }
    let mean_a = [mean(&a[0]), mean(&a[1]), mean(&a[2])];
    let mean_b = mean(&b);
    let out: Vec<u8> = (0..n)
        .map(|k| {
            let q = mean_a[0][k] * i[0][k]
                + mean_a[1][k] * i[1][k]
                + mean_a[2][k] * i[2][k]
                + mean_b[k];
            super::to_u8(q)
        })
        .collect();
    GrayImage::from_raw(guide.width(), guide.height(), out).unwrap_or_else(|| GrayImage::new(0, 0))
}

/// The photo's channels as 0–1 planes.
fn planes(photo: &RgbImage) -> [Vec<f32>; 3] {
    std::array::from_fn(|c| {
        photo
            .as_raw()
            .chunks_exact(3)
            .map(|p| f32::from(p[c]) / 255.0)
            .collect()
    })
}

/// One blur-fusion step: with the current foreground `f` and background `b` estimates, local
/// alpha-weighted means of each give the subject's colour; returns the new foreground and the
/// blurred background.
fn blur_fusion_step(
    image: &[Vec<f32>; 3],
    f: &[Vec<f32>; 3],
    b: &[Vec<f32>; 3],
    alpha: &[f32],
    (w, h): (usize, usize),
    radius: usize,
) -> ([Vec<f32>; 3], [Vec<f32>; 3]) {
    let mean_a = box_mean(alpha, w, h, radius);
    let weighted = |plane: &[f32], weight: &dyn Fn(f32) -> f32| -> Vec<f32> {
        let product: Vec<f32> = plane
            .iter()
            .zip(alpha)
            .map(|(v, &a)| v * weight(a))
            .collect();
        box_mean(&product, w, h, radius)
    };
    let mut new_f: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0f32; alpha.len()]);
    let mut blur_b: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0f32; alpha.len()]);
    for c in 0..3 {
        let fa = weighted(&f[c], &|a| a);
        let bb = weighted(&b[c], &|a| 1.0 - a);
        for k in 0..alpha.len() {
            let (a, ma) = (alpha[k], mean_a[k]);
            let mf = fa[k] / (ma + FOREGROUND_EPS);
            let mb = bb[k] / (1.0 - ma + FOREGROUND_EPS);
            new_f[c][k] = (mf + a * (image[c][k] - a * mf - (1.0 - a) * mb)).clamp(0.0, 1.0);
            blur_b[c][k] = mb;
        }
    }
    (new_f, blur_b)
}

/// The subject's colour in every pixel, given the photo and alpha (0–1, one per pixel): two
/// blur-fusion steps, [`FOREGROUND_RADII_PX`]. Where alpha is 0 the photo's colour is kept.
pub fn estimate_foreground(photo: &RgbImage, alpha: &[f32]) -> RgbImage {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    assert_eq!(alpha.len(), w * h, "alpha and photo sizes");
    let image = planes(photo);
    let (mut f, mut b) = (image.clone(), image.clone());
    for radius in FOREGROUND_RADII_PX {
        (f, b) = blur_fusion_step(&image, &f, &b, alpha, (w, h), radius as usize);
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for (k, px) in photo.as_raw().chunks_exact(3).enumerate() {
        // No subject here (nothing of it shows, and the estimate is 0/0), or only the subject:
        // keep the photo.
        if alpha[k] <= 0.0 || alpha[k] >= 1.0 {
            out.extend_from_slice(px);
        } else {
            out.extend([f[0][k], f[1][k], f[2][k]].map(super::to_u8));
        }
    }
    RgbImage::from_raw(photo.width(), photo.height(), out).unwrap_or_else(|| RgbImage::new(0, 0))
}

/// The refined mask, and the subject's colours where foreground estimation is on.
#[derive(Debug, Clone)]
pub struct Refined {
    /// The mask after the guided filter (the network's mask when it is off).
    pub mask: GrayImage,
    /// The subject's colours, or `None` when foreground estimation is off.
    pub foreground: Option<RgbImage>,
}

/// The CPU reference of the whole refinement: guided filter (if on), then foreground estimation
/// (if on) with the alpha that `alpha` gives the refined mask (the compositor's threshold and
/// softness, `CompositeSettings::alpha`).
pub fn refine(
    photo: &RgbImage,
    mask: &GrayImage,
    settings: &RefineSettings,
    alpha: impl Fn(f32) -> f32,
) -> Refined {
    let r = settings.clamped();
    let mask = if r.guided {
        guided_filter(photo, mask, r.radius as usize, r.eps)
    } else {
        mask.clone()
    };
    let foreground = r.foreground.then(|| {
        let alpha: Vec<f32> = mask
            .as_raw()
            .iter()
            .map(|&m| alpha(f32::from(m) / 255.0))
            .collect();
        estimate_foreground(photo, &alpha)
    });
    Refined { mask, foreground }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn foreground_estimation_removes_the_old_background_from_the_edge() {
        // A red subject on a green background, with a soft 8 px edge: the photo's edge pixels
        // are red–green mixes; the estimate must bring them back to red.
        let (w, h) = (64u32, 8u32);
        let alpha_at = |x: u32| ((x as f32 - 28.0) / 8.0).clamp(0.0, 1.0);
        let photo = RgbImage::from_fn(w, h, |x, _| {
            let a = alpha_at(x);
            image::Rgb([
                (220.0 * a + 20.0 * (1.0 - a)) as u8,
                (30.0 * a + 200.0 * (1.0 - a)) as u8,
                40,
            ])
        });
        let alpha: Vec<f32> = (0..w * h).map(|k| alpha_at(k % w)).collect();
        let f = estimate_foreground(&photo, &alpha);
        for x in 29..36 {
            let px = f.get_pixel(x, 4).0;
            let before = photo.get_pixel(x, 4).0;
            assert!(
                px[0].abs_diff(220) <= 12 && px[1].abs_diff(30) <= 12,
                "x={x}: {px:?} (photo {before:?})"
            );
        }
        // Inside the subject the photo's colour is kept.
        assert_eq!(f.get_pixel(60, 4).0, photo.get_pixel(60, 4).0);
    }

    #[test]
    fn box_mean_matches_a_direct_sum_with_edge_normalisation() {
        let (w, h, r) = (7, 5, 2);
        let plane: Vec<f32> = (0..w * h).map(|v| (v * 37 % 11) as f32).collect();
        let fast = box_mean(&plane, w, h, r);
        for y in 0..h {
            for x in 0..w {
                let (mut sum, mut n) = (0.0, 0.0);
                for yy in y.saturating_sub(r)..=(y + r).min(h - 1) {
                    for xx in x.saturating_sub(r)..=(x + r).min(w - 1) {
                        sum += plane[yy * w + xx];
                        n += 1.0;
                    }
                }
                assert!((fast[y * w + x] - sum / n).abs() < 1e-4, "({x},{y})");
            }
        }
        // A radius larger than the image is the global mean.
        let all = box_mean(&plane, w, h, 50);
        let mean = plane.iter().sum::<f32>() / plane.len() as f32;
        assert!(all.iter().all(|v| (v - mean).abs() < 1e-4));
    }

    #[test]
    fn a_blurred_mask_edge_snaps_to_the_photo_edge() {
        // The photo has a sharp vertical edge at x = 20; the mask is a soft ramp around it.
        let (w, h) = (40u32, 16u32);
        let guide = RgbImage::from_fn(w, h, |x, _| {
            if x < 20 {
                image::Rgb([30, 60, 200])
            } else {
                image::Rgb([220, 180, 40])
            }
        });
        let mask = GrayImage::from_fn(w, h, |x, _| {
            image::Luma([((f32::from(x as u8) - 16.0) / 8.0 * 255.0).clamp(0.0, 255.0) as u8])
        });
        let refined = guided_filter(&guide, &mask, 4, 1e-4);
        let at = |img: &GrayImage, x: u32| i32::from(img.get_pixel(x, 8).0[0]);
        // The soft 8 px ramp becomes a step at the photo's edge (between x = 19 and 20).
        assert!(at(&mask, 20) - at(&mask, 19) < 40, "the input was soft");
        assert!(at(&refined, 20) - at(&refined, 19) > 100);
        assert!(at(&refined, 19) < 128 && at(&refined, 20) > 128);
        assert_eq!((at(&refined, 2), at(&refined, 37)), (0, 255));
    }

    #[test]
    fn a_flat_mask_stays_flat() {
        let guide = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 8) as u8, 90])
        });
        let mask = GrayImage::from_pixel(32, 32, image::Luma([200]));
        let refined = guided_filter(&guide, &mask, 3, 1e-3);
        assert!(refined.pixels().all(|p| p.0[0].abs_diff(200) <= 1));
    }
}
