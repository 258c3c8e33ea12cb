//! Mask quality against ground truth: IoU and MAE, and the boundary F-measure (how many edge
//! pixels of each mask lie within a tolerance of the other's edge), the measure of edge quality.

use image::GrayImage;

/// Quality of one mask against ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskQuality {
    /// Intersection over union, both cut at 128.
    pub iou: f64,
    /// Mean absolute error, 0–1.
    pub mae: f64,
    /// Boundary F-measure, boundaries of the masks cut at 128, matched within the tolerance.
    pub boundary_f: f64,
}

/// Foreground pixels with a 4-neighbour outside (or on the image border).
fn boundary(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let at = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && mask[y as usize * w + x as usize]
    };
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let (xi, yi) = (x as isize, y as isize);
            out[y * w + x] = mask[y * w + x]
                && !(at(xi - 1, yi) && at(xi + 1, yi) && at(xi, yi - 1) && at(xi, yi + 1));
        }
    }
    out
}

/// Share of `from`'s boundary pixels with a boundary pixel of `to` within `tol_px` (Euclidean).
fn matched(from: &[bool], to: &[bool], w: usize, h: usize, tol_px: usize) -> Option<f64> {
    let t = tol_px as isize;
    let (mut hits, mut total) = (0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            if !from[y * w + x] {
                continue;
            }
            total += 1;
            let near = (-t..=t).any(|dy| {
                (-t..=t).any(|dx| {
                    let (xx, yy) = (x as isize + dx, y as isize + dy);
                    dx * dx + dy * dy <= t * t
                        && xx >= 0
                        && yy >= 0
                        && (xx as usize) < w
                        && (yy as usize) < h
                        && to[yy as usize * w + xx as usize]
                })
            });
            hits += usize::from(near);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    (total > 0).then(|| hits as f64 / total as f64)
}

/// IoU, MAE and boundary F (tolerance `tol_px`) of `mask` against `truth` (same size).
pub fn mask_quality(mask: &GrayImage, truth: &GrayImage, tol_px: usize) -> Option<MaskQuality> {
    if mask.dimensions() != truth.dimensions() || mask.as_raw().is_empty() {
        return None;
    }
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let fg = |img: &GrayImage| -> Vec<bool> { img.as_raw().iter().map(|&v| v >= 128).collect() };
    let (m, t) = (fg(mask), fg(truth));
    let inter = m.iter().zip(&t).filter(|(a, b)| **a && **b).count();
    let union = m.iter().zip(&t).filter(|(a, b)| **a || **b).count();
    let abs: u64 = mask
        .as_raw()
        .iter()
        .zip(truth.as_raw())
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let (bm, bt) = (boundary(&m, w, h), boundary(&t, w, h));
    let precision = matched(&bm, &bt, w, h, tol_px).unwrap_or(0.0);
    let recall = matched(&bt, &bm, w, h, tol_px).unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss)]
    Some(MaskQuality {
        iou: if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        },
        mae: abs as f64 / 255.0 / (w * h) as f64,
        boundary_f: if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn square(offset: u32) -> GrayImage {
        GrayImage::from_fn(40, 40, |x, y| {
            let inside = (10 + offset..30 + offset).contains(&x) && (10..30).contains(&y);
            image::Luma([if inside { 255 } else { 0 }])
        })
    }

    #[test]
    fn identical_masks_score_perfectly() {
        let q = mask_quality(&square(0), &square(0), 2).unwrap();
        assert_eq!((q.iou, q.mae, q.boundary_f), (1.0, 0.0, 1.0));
    }

    #[test]
    fn a_shift_within_the_tolerance_keeps_the_boundary_score() {
        let q2 = mask_quality(&square(2), &square(0), 2).unwrap();
        assert!((q2.iou - 360.0 / 440.0).abs() < 1e-9);
        assert!((q2.mae - 80.0 / 1600.0).abs() < 1e-9);
        assert_eq!(
            q2.boundary_f, 1.0,
            "every edge pixel is within 2 px of the other edge"
        );
        let q3 = mask_quality(&square(3), &square(0), 2).unwrap();
        assert!(
            q3.boundary_f < 0.8,
            "the vertical edges are 3 px apart: {}",
            q3.boundary_f
        );
        assert!(mask_quality(&square(0), &GrayImage::new(3, 3), 2).is_none());
    }
}
