//! The edge passes on the CPU, fast: the guided filter and blur-fusion foreground colours of
//! [`super::refine`], computed only where their result can differ from the input, on all cores.
//!
//! - **Where.** The guided filter can change a mask pixel only within twice its radius of a place
//!   where the mask changes value (elsewhere every window is flat, its slope is exactly zero and
//!   the mask comes back unchanged); foreground colours are wanted only where alpha is strictly
//!   between 0 and 1. Each pass computes its per-window terms on that band grown by the radius
//!   ([`Band`]) and nothing else.
//! - **How.** Horizontal strips of rows run in parallel (rayon); inside a strip, running sums
//!   down the touched columns and along each run of band pixels ([`window_sums`]).
//! - **Exact sums.** The guided filter's thirteen window sums are sums of 8-bit products, kept in
//!   integers; so are the wide blur-fusion step's (alpha in 1/65535 steps, exact for the default
//!   edge ramp). Covariances are formed from the integer sums exactly, so the 3×3 solve (f64) never
//!   sees the cancellation that makes an f32 determinant unreliable for grey guides. The narrow
//!   step sums f32 values in f64.
//!
//! The result matches [`super::refine::refine`] (the plain reference) and the GPU passes within
//! one grey level; `tests/integration/compositor.rs` checks both on real photos.

use image::{GrayImage, RgbImage};
use rayon::prelude::*;

use super::{
    band::{Band, Columns, Lanes, Scratch, Window, window_sums},
    refine::{FOREGROUND_EPS, FOREGROUND_RADII_PX, RefineSettings, Refined},
    to_u8,
};

/// How many pixels each pass worked on (its band, grown by the radius), for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandSizes {
    /// Guided filter: pixels whose window terms were computed (0 when off).
    pub guided_px: usize,
    /// Foreground colours: pixels whose wide-step estimate was computed (0 when off).
    pub foreground_px: usize,
}

/// Threads the CPU edge passes use.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Rows per strip: several strips per thread so that uneven bands still spread over all cores,
/// but tall enough that the wide window's start-up (its radius in rows above and below) stays
/// a fraction of the strip's work.
fn strip_rows(height: usize) -> usize {
    height.div_ceil(4 * threads()).max(48)
}

/// The refinement `r` asks for (see [`super::refine::refine`]), on the CPU, with `alpha` the
/// composite's mapping from mask value to alpha (0–1): the refined mask, the subject's colours,
/// and how large each pass's band was.
pub fn refine(
    photo: &RgbImage,
    mask: &GrayImage,
    r: &RefineSettings,
    alpha: impl Fn(f32) -> f32,
) -> (Refined, BandSizes) {
    let r = r.clamped();
    let mut sizes = BandSizes::default();
    let mask = if r.guided {
        let (refined, px) = guided_filter(photo, mask, r.radius as usize, r.eps);
        sizes.guided_px = px;
        refined
    } else {
        mask.clone()
    };
    let foreground = r.foreground.then(|| {
        let (colours, px) = foreground(photo, &mask, alpha);
        sizes.foreground_px = px;
        colours
    });
    (Refined { mask, foreground }, sizes)
}

/// Where each row of a band starts in a compact per-strip array (one entry per band pixel, row
/// after row, for rows `first..`).
fn row_starts(band: &Band, rows: std::ops::Range<usize>, starts: &mut Vec<usize>) -> usize {
    starts.clear();
    let mut total = 0;
    for y in rows {
        starts.push(total);
        total += band.runs(y).map(|(s, e)| e - s).sum::<usize>();
    }
    total
}

/// Adds (or takes away) a strip's compact per-pixel values of row `y` into column sums.
fn add_sparse<L: Lanes, V: Copy>(
    band: &Band,
    y: usize,
    values: &[V],
    columns: &Columns,
    sums: &mut [L],
    add: bool,
    widen: impl Fn(V) -> L,
) {
    let mut k = 0;
    for (s, e) in band.runs(y) {
        let base = columns.index(s);
        for (sum, &v) in sums[base..base + e - s]
            .iter_mut()
            .zip(&values[k..k + e - s])
        {
            if add {
                sum.add(&widen(v));
            } else {
                sum.sub(&widen(v));
            }
        }
        k += e - s;
    }
}

/// Adds (or takes away) the per-pixel `terms` of the photo's and the mask's row `y` (`image`:
/// RGB bytes, mask bytes, width) into column sums laid out as `columns`.
#[inline(always)]
fn add_dense<L: Lanes>(
    (photo, mask, w): (&[u8], &[u8], usize),
    y: usize,
    columns: &Columns,
    sums: &mut [L],
    add: bool,
    terms: impl Fn(&[u8], u8) -> L,
) {
    for ((s, e), off) in columns.with_offsets() {
        let pixels = photo[(y * w + s) * 3..(y * w + e) * 3].chunks_exact(3);
        let sums = &mut sums[off..off + e - s];
        for ((sum, px), &mv) in sums.iter_mut().zip(pixels).zip(&mask[y * w + s..]) {
            let t = terms(px, mv);
            if add {
                sum.add(&t);
            } else {
                sum.sub(&t);
            }
        }
    }
}

/// Pixels with a 4-neighbour of another mask value.
fn mask_changes(mask: &GrayImage) -> Band {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let m = mask.as_raw();
    Band::from_rows(w, h, |y, mark| {
        let row = &m[y * w..(y + 1) * w];
        let above = (y > 0).then(|| &m[(y - 1) * w..y * w]);
        let below = (y + 1 < h).then(|| &m[(y + 1) * w..(y + 2) * w]);
        for x in 0..w {
            let v = row[x];
            if (x > 0 && row[x - 1] != v)
                || (x + 1 < w && row[x + 1] != v)
                || above.is_some_and(|a| a[x] != v)
                || below.is_some_and(|b| b[x] != v)
            {
                mark(x);
            }
        }
    })
}

/// Scratch memory of one thread for the guided filter.
#[derive(Default)]
struct GuidedScratch {
    terms: Scratch<[u32; 16]>,
    coeffs: Scratch<[f64; 4]>,
    starts: Vec<usize>,
    ab: Vec<[f32; 4]>,
}

/// The 13 per-pixel terms of the guided filter, in 8-bit units: I, p, I·p and the six I·I.
#[inline(always)]
fn guided_terms(px: &[u8], m: u8) -> [u32; 16] {
    let [r, g, b] = [px[0], px[1], px[2]].map(u32::from);
    let p = u32::from(m);
    [
        r,
        g,
        b,
        p,
        r * p,
        g * p,
        b * p,
        r * r,
        r * g,
        r * b,
        g * g,
        g * b,
        b * b,
        0,
        0,
        0,
    ]
}

/// One window's linear model `q = a·I + b` from its integer sums.
fn guided_coefficients(sum: &[u32; 16], count: u32, eps: f64) -> [f32; 4] {
    let n = i64::from(count);
    let s = sum.map(i64::from);
    // n²·255² times the covariance of x and y, exactly.
    let cov = |xy: usize, x: usize, y: usize| (n * s[xy] - s[x] * s[y]) as f64;
    #[allow(clippy::cast_precision_loss)]
    let scale = 1.0 / ((n * n) as f64 * 65025.0);
    let c = [cov(4, 0, 3), cov(5, 1, 3), cov(6, 2, 3)].map(|v| v * scale);
    let v = [
        cov(7, 0, 0) * scale + eps,
        cov(8, 0, 1) * scale,
        cov(9, 0, 2) * scale,
        cov(10, 1, 1) * scale + eps,
        cov(11, 1, 2) * scale,
        cov(12, 2, 2) * scale + eps,
    ];
    let a = super::refine::solve3_f64(v, c);
    #[allow(clippy::cast_precision_loss)]
    let mean = |k: usize| s[k] as f64 / (n as f64 * 255.0);
    let b = mean(3) - a[0] * mean(0) - a[1] * mean(1) - a[2] * mean(2);
    #[allow(clippy::cast_possible_truncation)]
    [a[0] as f32, a[1] as f32, a[2] as f32, b as f32]
}

/// The colour guided filter ([`super::refine::guided_filter`]) on the band where it can change
/// the mask. Returns the refined mask and how many pixels' window terms were computed.
pub fn guided_filter(
    photo: &RgbImage,
    mask: &GrayImage,
    radius: usize,
    eps: f32,
) -> (GrayImage, usize) {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    assert_eq!(
        photo.dimensions(),
        mask.dimensions(),
        "photo and mask sizes"
    );
    let changes = mask_changes(mask);
    let mut out = mask.clone();
    if changes.is_empty() {
        return (out, 0);
    }
    let changed = changes.dilate(2 * radius);
    let windows = changed.dilate(radius);
    let (p, m) = (photo.as_raw(), mask.as_raw());
    let eps = f64::from(eps);
    let strip = strip_rows(h);
    out.par_chunks_mut(strip * w).enumerate().for_each_init(
        GuidedScratch::default,
        |scratch, (i, out_rows)| {
            let (y0, y1) = (i * strip, ((i + 1) * strip).min(h));
            let (ya, yb) = (y0.saturating_sub(radius), (y1 + radius).min(h));
            // The linear model of every window whose mean the strip's pixels take.
            let total = row_starts(&windows, ya..yb, &mut scratch.starts);
            scratch.ab.clear();
            scratch.ab.resize(total, [0.0; 4]);
            let (starts, ab) = (&scratch.starts, &mut scratch.ab);
            window_sums(
                &windows,
                ya..yb,
                radius,
                &windows.columns(ya..yb, radius),
                &mut scratch.terms,
                |y, add, cols, sums| add_dense((p, m, w), y, cols, sums, add, guided_terms),
                |win: Window<'_, [u32; 16]>| {
                    ab[starts[win.y - ya] + win.nth] = guided_coefficients(win.sum, win.count, eps);
                },
            );
            // The mean model over each pixel's windows, applied to its colour.
            let (starts, ab) = (&scratch.starts, &scratch.ab);
            window_sums(
                &changed,
                y0..y1,
                radius,
                &windows.columns(ya..yb, 0),
                &mut scratch.coeffs,
                |y, add, cols, sums| {
                    let values = &ab[starts[y - ya]..];
                    add_sparse(&windows, y, values, cols, sums, add, |v| v.map(f64::from));
                },
                |win: Window<'_, [f64; 4]>| {
                    let n = f64::from(win.count);
                    let at = (win.y * w + win.x) * 3;
                    let q = (0..3)
                        .map(|c| win.sum[c] / n * f64::from(p[at + c]) / 255.0)
                        .sum::<f64>()
                        + win.sum[3] / n;
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        out_rows[(win.y - y0) * w + win.x] = to_u8(q as f32);
                    }
                },
            );
        },
    );
    (out, windows.len())
}

/// Scratch memory of one thread for the foreground colours.
#[derive(Default)]
struct ForegroundScratch {
    wide: Scratch<[u32; 8]>,
    narrow: Scratch<[f64; 8]>,
    starts: Vec<usize>,
    estimates: Vec<[f32; 8]>,
}

/// Alpha in 1/65535 steps, for exact integer window sums.
const ALPHA_ONE: u32 = 65535;

/// One blur-fusion estimate from the window means of F·α, α and B·(1−α): the subject's colour
/// and the background's, for a pixel of colour `photo` (0–1) and alpha `a`.
#[inline(always)]
fn fuse(fa: [f64; 3], ma: f64, bb: [f64; 3], photo: [f64; 3], a: f64) -> ([f64; 3], [f64; 3]) {
    let eps = f64::from(FOREGROUND_EPS);
    let mut f = [0.0; 3];
    let mut b = [0.0; 3];
    for c in 0..3 {
        let mf = fa[c] / (ma + eps);
        let mb = bb[c] / (1.0 - ma + eps);
        f[c] = (mf + a * (photo[c] - a * mf - (1.0 - a) * mb)).clamp(0.0, 1.0);
        b[c] = mb;
    }
    (f, b)
}

/// Blur-fusion foreground colours ([`super::refine::estimate_foreground`], the same two steps)
/// where alpha is strictly between 0 and 1; the photo's colours elsewhere. Returns the colours
/// and how many pixels the wide step estimated.
pub fn foreground(
    photo: &RgbImage,
    mask: &GrayImage,
    alpha: impl Fn(f32) -> f32,
) -> (RgbImage, usize) {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    assert_eq!(
        photo.dimensions(),
        mask.dimensions(),
        "photo and mask sizes"
    );
    let alpha: [f32; 256] = std::array::from_fn(|m| alpha(m as f32 / 255.0));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let alpha_q: [u32; 256] = alpha.map(|a| (f64::from(a) * f64::from(ALPHA_ONE)).round() as u32);
    let (p, m) = (photo.as_raw(), mask.as_raw());
    let soft = Band::from_rows(w, h, |y, mark| {
        for (x, &v) in m[y * w..(y + 1) * w].iter().enumerate() {
            if alpha[usize::from(v)] > 0.0 && alpha[usize::from(v)] < 1.0 {
                mark(x);
            }
        }
    });
    let mut out = photo.clone();
    if soft.is_empty() {
        return (out, 0);
    }
    let [wide, narrow] = FOREGROUND_RADII_PX.map(|r| r as usize);
    let estimated = soft.dilate(narrow);
    let fusion = Fusion {
        p,
        m,
        w,
        alpha: &alpha,
        alpha_q: &alpha_q,
        soft: &soft,
        estimated: &estimated,
        wide,
        narrow,
    };
    let strip = strip_rows(h);
    out.par_chunks_mut(strip * w * 3).enumerate().for_each_init(
        ForegroundScratch::default,
        |scratch, (i, out_rows)| {
            let (y0, y1) = (i * strip, ((i + 1) * strip).min(h));
            let ya = y0.saturating_sub(narrow);
            fusion.wide_step(scratch, ya..(y1 + narrow).min(h));
            fusion.narrow_step(scratch, y0..y1, ya, out_rows);
        },
    );
    (out, estimated.len())
}

/// What both steps of [`foreground`] read: the photo and mask bytes, the alpha tables and the
/// bands.
struct Fusion<'a> {
    p: &'a [u8],
    m: &'a [u8],
    w: usize,
    alpha: &'a [f32; 256],
    alpha_q: &'a [u32; 256],
    /// Where alpha is strictly between 0 and 1.
    soft: &'a Band,
    /// The soft band grown by the narrow radius: where the wide step estimates.
    estimated: &'a Band,
    wide: usize,
    narrow: usize,
}

impl Fusion<'_> {
    #[inline(always)]
    fn pixel(&self, at: usize) -> [f64; 3] {
        [self.p[at], self.p[at + 1], self.p[at + 2]].map(|c| f64::from(c) / 255.0)
    }

    /// Wide step, from the photo: F·α and B·(1−α) of the estimates it gives, per pixel of the
    /// grown band in `rows`, into `scratch.estimates`.
    fn wide_step(&self, scratch: &mut ForegroundScratch, rows: std::ops::Range<usize>) {
        let (w, m, ya) = (self.w, self.m, rows.start);
        let total = row_starts(self.estimated, rows.clone(), &mut scratch.starts);
        scratch.estimates.clear();
        scratch.estimates.resize(total, [0.0; 8]);
        let (starts, estimates) = (&scratch.starts, &mut scratch.estimates);
        window_sums(
            self.estimated,
            rows.clone(),
            self.wide,
            &self.estimated.columns(rows, self.wide),
            &mut scratch.wide,
            |y, add, cols, sums| {
                add_dense((self.p, m, w), y, cols, sums, add, |px, mv| {
                    let aq = self.alpha_q[usize::from(mv)];
                    let [r, g, b] = [px[0], px[1], px[2]].map(u32::from);
                    [aq * r, aq * g, aq * b, aq, r, g, b, 0]
                });
            },
            |win: Window<'_, [u64; 8]>| {
                #[allow(clippy::cast_precision_loss)]
                let s = win.sum.map(|v| v as f64);
                let n = f64::from(win.count) * f64::from(ALPHA_ONE);
                let ma = s[3] / n;
                let fa = [s[0], s[1], s[2]].map(|v| v / (n * 255.0));
                let bb = [4, 5, 6].map(|c| (f64::from(ALPHA_ONE) * s[c] - s[c - 4]) / (n * 255.0));
                let at = win.y * w + win.x;
                let a = f64::from(self.alpha[usize::from(m[at])]);
                let (f, b) = fuse(fa, ma, bb, self.pixel(at * 3), a);
                #[allow(clippy::cast_possible_truncation)]
                let e = [
                    (f[0] * a) as f32,
                    (f[1] * a) as f32,
                    (f[2] * a) as f32,
                    a as f32,
                    (b[0] * (1.0 - a)) as f32,
                    (b[1] * (1.0 - a)) as f32,
                    (b[2] * (1.0 - a)) as f32,
                    0.0,
                ];
                estimates[starts[win.y - ya] + win.nth] = e;
            },
        );
    }

    /// Narrow step, from the wide step's estimates (which start at row `ya`); only where alpha is
    /// soft. Writes the colours of `rows` into `out_rows`.
    fn narrow_step(
        &self,
        scratch: &mut ForegroundScratch,
        rows: std::ops::Range<usize>,
        ya: usize,
        out_rows: &mut [u8],
    ) {
        let (w, m, y0) = (self.w, self.m, rows.start);
        let (starts, estimates) = (&scratch.starts, &scratch.estimates);
        let yb = (rows.end + self.narrow).min(m.len() / w);
        window_sums(
            self.soft,
            rows,
            self.narrow,
            &self.estimated.columns(ya..yb, 0),
            &mut scratch.narrow,
            |y, add, cols, sums| {
                let values = &estimates[starts[y - ya]..];
                add_sparse(self.estimated, y, values, cols, sums, add, |v| {
                    v.map(f64::from)
                });
            },
            |win: Window<'_, [f64; 8]>| {
                let n = f64::from(win.count);
                let s = win.sum.map(|v| v / n);
                let at = win.y * w + win.x;
                let a = f64::from(self.alpha[usize::from(m[at])]);
                let (f, _) = fuse(
                    [s[0], s[1], s[2]],
                    s[3],
                    [s[4], s[5], s[6]],
                    self.pixel(at * 3),
                    a,
                );
                let o = ((win.y - y0) * w + win.x) * 3;
                #[allow(clippy::cast_possible_truncation)]
                for c in 0..3 {
                    out_rows[o + c] = to_u8(f[c] as f32);
                }
            },
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::image_ops::refine;

    /// A photo with texture and colour edges, and a mask with a soft, wobbly edge, hard regions,
    /// a flat mid-grey patch and noise, so that every case of the bands shows up.
    fn scene(w: u32, h: u32) -> (RgbImage, GrayImage) {
        let photo = RgbImage::from_fn(w, h, |x, y| {
            let stripe = if (x / 7 + y / 5) % 2 == 0 { 40 } else { 0 };
            if (x as f32 - 60.0).hypot(y as f32 - 45.0) < 30.0 {
                image::Rgb([200 - stripe, 60 + stripe, 50])
            } else {
                image::Rgb([30 + stripe, 150, (x * 2 % 256) as u8])
            }
        });
        let mask = GrayImage::from_fn(w, h, |x, y| {
            let d =
                (x as f32 - 60.0).hypot(y as f32 - 45.0) - 30.0 + ((y as f32) * 0.7).sin() * 3.0;
            let v = (0.5 - d / 6.0).clamp(0.0, 1.0) * 255.0;
            if x > 110 && y < 20 {
                image::Luma([128])
            } else if (x * 31 + y * 17) % 97 == 0 {
                image::Luma([3])
            } else {
                image::Luma([v.round() as u8])
            }
        });
        (photo, mask)
    }

    fn max_diff(a: &[u8], b: &[u8]) -> u8 {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn guided_filter_matches_the_reference_within_one_level() {
        let (photo, mask) = scene(130, 97);
        for (radius, eps) in [(2, 1e-4), (6, 1e-4), (9, 1e-2)] {
            let reference = refine::guided_filter(&photo, &mask, radius, eps);
            let (fast, px) = guided_filter(&photo, &mask, radius, eps);
            assert!(px > 0 && px <= 130 * 97);
            assert!(
                max_diff(reference.as_raw(), fast.as_raw()) <= 1,
                "r={radius}"
            );
        }
    }

    #[test]
    fn foreground_matches_the_reference_within_one_level() {
        let (photo, mask) = scene(260, 200);
        for (threshold, softness) in [(0.5, 1.0), (0.4, 0.3)] {
            // The composite's ramp (`CompositeSettings::alpha`).
            let (lo, hi) = (threshold - softness / 2.0, threshold + softness / 2.0);
            let ramp = |m: f32| ((m - lo) / (hi - lo).max(1e-4)).clamp(0.0, 1.0);
            let alpha: Vec<f32> = mask
                .as_raw()
                .iter()
                .map(|&v| ramp(f32::from(v) / 255.0))
                .collect();
            let reference = refine::estimate_foreground(&photo, &alpha);
            let (fast, px) = foreground(&photo, &mask, ramp);
            assert!(px > 0);
            let worst = max_diff(reference.as_raw(), fast.as_raw());
            assert!(worst <= 1, "threshold {threshold}: {worst} levels");
        }
    }

    #[test]
    fn hard_or_flat_masks_need_no_work_and_come_back_unchanged() {
        let photo = RgbImage::from_fn(50, 40, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 6) as u8, 30])
        });
        let hard = GrayImage::from_fn(50, 40, |x, _| image::Luma([if x < 25 { 0 } else { 255 }]));
        let (refined, sizes) = refine(&photo, &hard, &RefineSettings::default(), |m| m);
        assert_eq!(refined.foreground.unwrap().as_raw(), photo.as_raw());
        assert_eq!(sizes, BandSizes::default());
        let flat = GrayImage::from_pixel(50, 40, image::Luma([200]));
        let (refined, px) = guided_filter(&photo, &flat, 6, 1e-4);
        assert_eq!((refined.as_raw(), px), (flat.as_raw(), 0));
    }
}
