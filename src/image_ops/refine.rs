//! Guided refinement of a mask with the full-resolution photo as the guide (He, Sun and Tang,
//! "Guided Image Filtering", colour-guide form): locally, alpha is modelled as a linear function
//! of the photo's colour, fitted to the network's mask in a (2r+1)² window with regularisation
//! `eps`, so that the mask's edges follow the photo's edges.
//!
//! This is the plain CPU reference (f32, edge-normalised box means).

use image::{GrayImage, RgbImage};

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
    let [rr, rg, rb, gg, gb, bb] = s.map(f64::from);
    let c = c.map(f64::from);
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
    #[allow(clippy::cast_possible_truncation)]
    [
        ((inv[0] * c[0] + inv[1] * c[1] + inv[2] * c[2]) / det) as f32,
        ((inv[1] * c[0] + inv[3] * c[1] + inv[4] * c[2]) / det) as f32,
        ((inv[2] * c[0] + inv[4] * c[1] + inv[5] * c[2]) / det) as f32,
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
            super::composite::to_u8(q)
        })
        .collect();
    GrayImage::from_raw(guide.width(), guide.height(), out).unwrap_or_else(|| GrayImage::new(0, 0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
