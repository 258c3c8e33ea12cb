//! Sparse pixel sets and box sums over them: what the CPU edge passes ([`super::edges`]) use to
//! work only where a result can differ from the input.
//!
//! A [`Band`] is a bitmap of the pixels that matter (one bit per pixel, rows of 64-bit words),
//! grown with [`Band::dilate`] by a filter's radius. [`window_sums`] gives the sums over
//! (2r+1)² windows, clamped at the image's edges, for the band's pixels in a range of rows: one
//! running sum per column down the rows (only the columns some pixel's window touches), then a
//! running sum along each run of band pixels. Its work is proportional to the band and to the
//! columns it touches, not to the image.

use std::ops::Range;

use rayon::prelude::*;

/// Pixels of a `width`×`height` image, one bit each.
#[derive(Debug, Clone)]
pub struct Band {
    width: usize,
    height: usize,
    words: usize,
    bits: Vec<u64>,
}

/// A half-open range of columns `[start, end)`.
pub type Run = (usize, usize);

impl Band {
    /// The pixels for which `keep(x, y)` holds, decided row by row in parallel: `keep_row(y,
    /// mark)` calls `mark(x)` for each pixel of row `y` to include.
    pub fn from_rows(
        width: usize,
        height: usize,
        keep_row: impl Fn(usize, &mut dyn FnMut(usize)) + Sync,
    ) -> Self {
        let words = width.div_ceil(64).max(1);
        let mut bits = vec![0u64; words * height];
        bits.par_chunks_mut(words)
            .enumerate()
            .for_each(|(y, row)| keep_row(y, &mut |x| row[x / 64] |= 1 << (x % 64)));
        Self {
            width,
            height,
            words,
            bits,
        }
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// How many pixels are in the band.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether no pixel is in the band.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Whether pixel `(x, y)` is in the band.
    pub fn contains(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.height && self.row(y)[x / 64] >> (x % 64) & 1 == 1
    }

    fn row(&self, y: usize) -> &[u64] {
        &self.bits[y * self.words..(y + 1) * self.words]
    }

    /// The runs of row `y`, left to right.
    pub fn runs(&self, y: usize) -> Runs<'_> {
        Runs {
            words: self.row(y),
            width: self.width,
            x: 0,
        }
    }

    /// The band grown by `radius` in every direction (a (2r+1)² square around each pixel),
    /// clipped to the image.
    pub fn dilate(&self, radius: usize) -> Band {
        if radius == 0 {
            return self.clone();
        }
        // Along rows: each run widened by the radius.
        let mut wide = vec![0u64; self.bits.len()];
        wide.par_chunks_mut(self.words)
            .enumerate()
            .for_each(|(y, row)| {
                for (s, e) in self.runs(y) {
                    fill(row, s.saturating_sub(radius), (e + radius).min(self.width));
                }
            });
        // Down columns: each row is the union of the rows within the radius.
        let mut bits = vec![0u64; self.bits.len()];
        bits.par_chunks_mut(self.words)
            .enumerate()
            .for_each(|(y, row)| {
                let rows = y.saturating_sub(radius)..(y + radius + 1).min(self.height);
                for other in rows {
                    let src = &wide[other * self.words..(other + 1) * self.words];
                    for (d, s) in row.iter_mut().zip(src) {
                        *d |= s;
                    }
                }
            });
        Band { bits, ..*self }
    }

    /// The columns that the pixels of rows `rows` touch with windows of `radius`: the union of
    /// their runs, widened by the radius.
    pub fn columns(&self, rows: Range<usize>, radius: usize) -> Columns {
        let mut union = vec![0u64; self.words];
        for y in rows.start..rows.end.min(self.height) {
            for (u, w) in union.iter_mut().zip(self.row(y)) {
                *u |= w;
            }
        }
        let mut runs: Vec<Run> = Vec::new();
        let spans = Runs {
            words: &union,
            width: self.width,
            x: 0,
        };
        for (s, e) in spans {
            let (s, e) = (s.saturating_sub(radius), (e + radius).min(self.width));
            match runs.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => runs.push((s, e)),
            }
        }
        let mut offsets = Vec::with_capacity(runs.len());
        let mut len = 0;
        for &(s, e) in &runs {
            offsets.push(len);
            len += e - s;
        }
        Columns { runs, offsets, len }
    }
}

/// Sets bits `[start, end)` of a row.
fn fill(row: &mut [u64], start: usize, end: usize) {
    let mut x = start;
    while x < end {
        let (word, bit) = (x / 64, x % 64);
        let n = (64 - bit).min(end - x);
        let ones = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << bit
        };
        row[word] |= ones;
        x += n;
    }
}

/// The runs of one row of a [`Band`].
pub struct Runs<'a> {
    words: &'a [u64],
    width: usize,
    x: usize,
}

impl Runs<'_> {
    /// The first pixel at or after `self.x` whose bit is `set`, or the width.
    fn next_with(&self, set: bool) -> usize {
        let mut x = self.x;
        while x < self.width {
            let word = self.words[x / 64];
            let word = if set { word } else { !word };
            let rest = word >> (x % 64);
            if rest != 0 {
                return (x + rest.trailing_zeros() as usize).min(self.width);
            }
            x = (x / 64 + 1) * 64;
        }
        self.width
    }
}

impl Iterator for Runs<'_> {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        let start = self.next_with(true);
        if start >= self.width {
            self.x = self.width;
            return None;
        }
        self.x = start;
        let end = self.next_with(false);
        self.x = end;
        Some((start, end))
    }
}

/// Disjoint column runs laid out one after another: column `x` of run `j` is at
/// `offsets[j] + x - runs[j].0` in a compact array.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    runs: Vec<Run>,
    offsets: Vec<usize>,
    len: usize,
}

impl Columns {
    /// The runs, left to right.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Columns in all runs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where column `x` (which must lie in a run) sits in the compact array.
    pub fn index(&self, x: usize) -> usize {
        let j = self.runs.partition_point(|&(_, e)| e <= x);
        debug_assert!(
            j < self.runs.len() && self.runs[j].0 <= x,
            "column {x} in no run"
        );
        self.offsets[j] + x - self.runs[j].0
    }

    /// Each run with its offset in the compact array.
    pub fn with_offsets(&self) -> impl Iterator<Item = (Run, usize)> + '_ {
        self.runs.iter().copied().zip(self.offsets.iter().copied())
    }
}

/// A fixed number of values summed together per pixel, and the wider type their window sums
/// take (integer sums stay exact; float sums are kept in f64).
pub trait Lanes: Copy + Send + Sync {
    /// The sum over a whole window.
    type Wide: Copy;
    /// All zero.
    const ZERO: Self;
    /// All zero.
    const WIDE_ZERO: Self::Wide;
    /// `self += other`.
    fn add(&mut self, other: &Self);
    /// `self -= other`.
    fn sub(&mut self, other: &Self);
    /// `wide += column`.
    fn widen_add(wide: &mut Self::Wide, column: &Self);
    /// `wide -= column`.
    fn widen_sub(wide: &mut Self::Wide, column: &Self);
}

macro_rules! lanes {
    ($t:ty, $n:literal, $wide:ty) => {
        impl Lanes for [$t; $n] {
            type Wide = [$wide; $n];
            const ZERO: Self = [0 as $t; $n];
            const WIDE_ZERO: Self::Wide = [0 as $wide; $n];
            #[inline(always)]
            fn add(&mut self, other: &Self) {
                for (a, b) in self.iter_mut().zip(other) {
                    *a += *b;
                }
            }
            #[inline(always)]
            fn sub(&mut self, other: &Self) {
                for (a, b) in self.iter_mut().zip(other) {
                    *a -= *b;
                }
            }
            #[inline(always)]
            fn widen_add(wide: &mut Self::Wide, column: &Self) {
                for (a, b) in wide.iter_mut().zip(column) {
                    *a += <$wide>::from(*b);
                }
            }
            #[inline(always)]
            fn widen_sub(wide: &mut Self::Wide, column: &Self) {
                for (a, b) in wide.iter_mut().zip(column) {
                    *a -= <$wide>::from(*b);
                }
            }
        }
    };
}

lanes!(u32, 8, u64);
lanes!(u32, 16, u32);
lanes!(f64, 8, f64);
lanes!(f64, 4, f64);

/// One pixel's window sum, handed to [`window_sums`]'s `emit`.
pub struct Window<'a, W> {
    /// Column.
    pub x: usize,
    /// Row.
    pub y: usize,
    /// Its place among the band's pixels of row `y` (0 for the leftmost).
    pub nth: usize,
    /// The sums over the window's pixels inside the image.
    pub sum: &'a W,
    /// How many pixels that is.
    pub count: u32,
}

/// Scratch memory for [`window_sums`], kept between calls on one thread.
#[derive(Default)]
pub struct Scratch<L> {
    columns: Vec<L>,
}

/// Window sums of radius `radius` for the pixels of `band` in `rows`.
///
/// `update(y, sign, columns, sums)` adds (`sign` true) or takes away the values of row `y` into
/// `sums`, laid out as `columns` (which must hold every column within `radius` of the band's
/// pixels in `rows`, see [`Band::columns`]); `emit` receives each pixel's window sum.
pub fn window_sums<L: Lanes>(
    band: &Band,
    rows: Range<usize>,
    radius: usize,
    columns: &Columns,
    scratch: &mut Scratch<L>,
    mut update: impl FnMut(usize, bool, &Columns, &mut [L]),
    mut emit: impl FnMut(Window<'_, L::Wide>),
) {
    let (w, h) = (band.width, band.height);
    let rows = rows.start..rows.end.min(h);
    if rows.is_empty() || columns.is_empty() {
        return;
    }
    let sums = &mut scratch.columns;
    sums.clear();
    sums.resize(columns.len(), L::ZERO);
    for y in rows.start.saturating_sub(radius)..(rows.start + radius + 1).min(h) {
        update(y, true, columns, sums);
    }
    for y in rows.clone() {
        let ny = (y + radius).min(h - 1) - y.saturating_sub(radius) + 1;
        let mut nth = 0;
        for (s, e) in band.runs(y) {
            let base = columns.index(s);
            // Compact index of column x in this run: base + x - s.
            let at = |x: usize| &sums[base + x - s];
            let mut sum = L::WIDE_ZERO;
            for x in s.saturating_sub(radius)..(s + radius + 1).min(w) {
                L::widen_add(&mut sum, at(x));
            }
            for x in s..e {
                let nx = (x + radius).min(w - 1) - x.saturating_sub(radius) + 1;
                #[allow(clippy::cast_possible_truncation)]
                emit(Window {
                    x,
                    y,
                    nth,
                    sum: &sum,
                    count: (nx * ny) as u32,
                });
                nth += 1;
                if x + 1 == e {
                    break;
                }
                if x + radius + 1 < w {
                    L::widen_add(&mut sum, at(x + radius + 1));
                }
                if x >= radius {
                    L::widen_sub(&mut sum, at(x - radius));
                }
            }
        }
        if y + 1 < rows.end {
            if y + radius + 1 < h {
                update(y + radius + 1, true, columns, sums);
            }
            if y >= radius {
                update(y - radius, false, columns, sums);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn band_of(w: usize, h: usize, pixels: &[(usize, usize)]) -> Band {
        Band::from_rows(w, h, |y, mark| {
            for &(px, py) in pixels {
                if py == y {
                    mark(px);
                }
            }
        })
    }

    #[test]
    fn runs_cross_word_boundaries() {
        let band = Band::from_rows(200, 2, |y, mark| {
            if y == 1 {
                (10..20).chain(60..130).chain(199..200).for_each(&mut *mark);
            }
        });
        assert_eq!(band.runs(0).count(), 0);
        assert_eq!(
            band.runs(1).collect::<Vec<_>>(),
            vec![(10, 20), (60, 130), (199, 200)]
        );
        assert_eq!(band.len(), 10 + 70 + 1);
    }

    #[test]
    fn dilation_is_a_clipped_square_around_each_pixel() {
        let band = band_of(100, 50, &[(2, 3), (70, 40), (64, 49)]);
        let grown = band.dilate(5);
        for y in 0..50 {
            for x in 0..100 {
                let near = [(2, 3), (70, 40), (64, 49)]
                    .iter()
                    .any(|&(px, py): &(usize, usize)| px.abs_diff(x) <= 5 && py.abs_diff(y) <= 5);
                assert_eq!(grown.contains(x, y), near, "({x},{y})");
            }
        }
    }

    #[test]
    fn window_sums_match_direct_sums_at_band_pixels() {
        let (w, h, r) = (90, 40, 4);
        let value = |x: usize, y: usize| ((x * 7 + y * 13) % 17) as u32;
        let pixels: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| (x * x + y * 3) % 11 == 0 || x == 0 || x == w - 1)
            .collect();
        let band = band_of(w, h, &pixels);
        for rows in [0..h, 5..23, 30..40] {
            let columns = band.columns(rows.clone(), r);
            let mut seen = 0;
            window_sums::<[u32; 8]>(
                &band,
                rows.clone(),
                r,
                &columns,
                &mut Scratch::default(),
                |y, add, cols, sums| {
                    for ((s, e), off) in cols.with_offsets() {
                        for x in s..e {
                            let v = [value(x, y); 8];
                            if add {
                                sums[off + x - s].add(&v);
                            } else {
                                sums[off + x - s].sub(&v);
                            }
                        }
                    }
                },
                |win| {
                    let (mut sum, mut n) = (0u64, 0u32);
                    for yy in win.y.saturating_sub(r)..=(win.y + r).min(h - 1) {
                        for xx in win.x.saturating_sub(r)..=(win.x + r).min(w - 1) {
                            sum += u64::from(value(xx, yy));
                            n += 1;
                        }
                    }
                    assert!(band.contains(win.x, win.y));
                    assert!(rows.contains(&win.y));
                    assert_eq!((win.sum[0], win.count), (sum, n), "({},{})", win.x, win.y);
                    seen += 1;
                },
            );
            let expected = pixels.iter().filter(|p| rows.contains(&p.1)).count();
            assert_eq!(seen, expected);
        }
    }
}
