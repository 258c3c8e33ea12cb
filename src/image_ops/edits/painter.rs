//! A stroke being painted: dabs along the pointer's path into tiles of coverage, laid over the
//! layer as it was before the stroke; edge snapping when the stroke ends.

use std::collections::HashMap;

use image::{GrayImage, RgbImage};

use super::{Brush, BrushMode, EditLayer, LAYER_BYTES_PER_PX, PixelRect, Stroke, union};
use crate::image_ops::{edges, to_u8};

/// Side of the square tiles in which a stroke keeps its coverage and the layer as it was.
const TILE: u32 = 64;
const TILE_PX: usize = (TILE * TILE) as usize;

/// A stroke being painted: dabs along the pointer's path, the stroke's coverage (the largest of
/// its dabs, so that overlapping dabs do not build up) and the layer as it was before the stroke,
/// both kept only for the tiles the stroke touched.
pub struct Painter {
    brush: Brush,
    points: Vec<[f32; 2]>,
    /// Distance along the path to the next dab.
    to_next: f32,
    coverage: HashMap<(u32, u32), Box<[u8]>>,
    before: HashMap<(u32, u32), Box<[u8]>>,
}

impl Painter {
    /// Starts a stroke with `brush`.
    pub fn new(brush: Brush) -> Self {
        Self {
            brush: Brush {
                radius_px: brush.radius_px.max(0.5),
                hardness: brush.hardness.clamp(0.0, 1.0),
                ..brush
            },
            points: Vec::new(),
            to_next: 0.0,
            coverage: HashMap::new(),
            before: HashMap::new(),
        }
    }

    /// The brush.
    pub fn brush(&self) -> Brush {
        self.brush
    }

    /// Distance between dabs: a fifth of the radius, so the stroke's rim stays smooth.
    fn spacing(&self) -> f32 {
        (self.brush.radius_px * 0.2).max(0.5)
    }

    /// The stretch of the segment `from` → `to` (distances along it) that passes within a
    /// radius of the photo, if any.
    fn span(
        &self,
        from: [f32; 2],
        to: [f32; 2],
        (width, height): (u32, u32),
    ) -> Option<(f32, f32)> {
        let r = self.brush.radius_px + 1.0;
        #[allow(clippy::cast_precision_loss)]
        let (lo, hi) = ([-r, -r], [width as f32 + r, height as f32 + r]);
        let d = [to[0] - from[0], to[1] - from[1]];
        let length = d[0].hypot(d[1]);
        let (mut enter, mut leave) = (0.0f32, 1.0f32);
        for axis in 0..2 {
            if d[axis].abs() < f32::EPSILON {
                if from[axis] < lo[axis] || from[axis] > hi[axis] {
                    return None;
                }
                continue;
            }
            let a = (lo[axis] - from[axis]) / d[axis];
            let b = (hi[axis] - from[axis]) / d[axis];
            enter = enter.max(a.min(b));
            leave = leave.min(a.max(b));
        }
        (enter <= leave).then_some((enter * length, leave * length))
    }

    /// Follows the pointer to `points` (photo pixels), painting into `layer`; returns the pixels
    /// that changed.
    pub fn extend(
        &mut self,
        layer: &mut EditLayer,
        photo: &RgbImage,
        points: &[[f32; 2]],
    ) -> Option<PixelRect> {
        let mut dirty = None;
        for &p in points {
            if !(p[0].is_finite() && p[1].is_finite()) {
                continue;
            }
            match self.points.last().copied() {
                None => dirty = union(dirty, self.dab(layer, photo, p)),
                Some(from) => {
                    let (dx, dy) = (p[0] - from[0], p[1] - from[1]);
                    let length = dx.hypot(dy);
                    let spacing = self.spacing();
                    // Dab k sits at to_next + k·spacing along the segment; only those within a
                    // radius of the photo are painted (a pointer far off the photo costs nothing).
                    if let Some((enter, leave)) = self.span(from, p, layer.dimensions()) {
                        let first = ((enter - self.to_next) / spacing).ceil().max(0.0);
                        let mut k = first;
                        loop {
                            let at = self.to_next + k * spacing;
                            if at > leave.min(length) {
                                break;
                            }
                            let t = if length > 0.0 { at / length } else { 0.0 };
                            dirty = union(
                                dirty,
                                self.dab(layer, photo, [from[0] + dx * t, from[1] + dy * t]),
                            );
                            k += 1.0;
                        }
                    }
                    self.to_next = if length < self.to_next {
                        self.to_next - length
                    } else {
                        let steps = ((length - self.to_next) / spacing).floor() + 1.0;
                        self.to_next + steps * spacing - length
                    };
                }
            }
            if self.points.is_empty() {
                self.to_next = self.spacing();
            }
            self.points.push(p);
        }
        // Laid once over everything the new dabs touched (dabs overlap several times over).
        if let Some(rect) = dirty {
            self.lay(layer, rect);
        }
        dirty
    }

    /// One dab at `centre`: raises the stroke's coverage in the dab's square (laid over the
    /// layer by [`Self::extend`]).
    fn dab(
        &mut self,
        layer: &mut EditLayer,
        photo: &RgbImage,
        centre: [f32; 2],
    ) -> Option<PixelRect> {
        let r = self.brush.radius_px;
        let rect = clip(
            [centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r],
            layer.dimensions(),
        )?;
        let hard = r * self.brush.hardness;
        // Edge-aware: each pixel counts as much as its colour is like the colour under the
        // dab's centre, so the dab stops at an edge of the photo.
        let like = (self.brush.edge_aware && photo.dimensions() == layer.dimensions())
            .then(|| mean_colour(photo, centre));
        let (r2, hard2) = (r * r, hard * hard);
        for (key, part) in tiles(rect) {
            self.before
                .entry(key)
                .or_insert_with(|| save_tile(layer, key));
            let coverage = self
                .coverage
                .entry(key)
                .or_insert_with(|| vec![0; TILE_PX].into_boxed_slice());
            for y in part.y0..part.y1 {
                #[allow(clippy::cast_precision_loss)]
                let dy = y as f32 + 0.5 - centre[1];
                let row = ((y % TILE) * TILE) as usize;
                for x in part.x0..part.x1 {
                    #[allow(clippy::cast_precision_loss)]
                    let dx = x as f32 + 0.5 - centre[0];
                    let d2 = dx * dx + dy * dy;
                    if d2 >= r2 {
                        continue;
                    }
                    let c = if d2 <= hard2 {
                        1.0
                    } else {
                        let t = (r - d2.sqrt()) / (r - hard);
                        t * t * (3.0 - 2.0 * t)
                    };
                    let c = match like {
                        Some(seed) => c * similarity(photo.get_pixel(x, y).0, seed),
                        None => c,
                    };
                    let c = to_u8(c);
                    let slot = &mut coverage[row + (x % TILE) as usize];
                    if c > *slot {
                        *slot = c;
                    }
                }
            }
        }
        Some(rect)
    }

    /// The layer in `rect` = the stroke laid over the layer as it was.
    fn lay(&self, layer: &mut EditLayer, rect: PixelRect) {
        let target = match self.brush.mode {
            BrushMode::Keep => 1.0,
            BrushMode::Erase => 0.0,
        };
        for (key, part) in tiles(rect) {
            let (Some(coverage), Some(before)) = (self.coverage.get(&key), self.before.get(&key))
            else {
                continue;
            };
            for y in part.y0..part.y1 {
                let row = ((y % TILE) * TILE) as usize;
                for x in part.x0..part.x1 {
                    let i = row + (x % TILE) as usize;
                    let c = f32::from(coverage[i]) / 255.0;
                    let (s, k) = (
                        f32::from(before[2 * i]) / 255.0,
                        f32::from(before[2 * i + 1]) / 255.0,
                    );
                    let at = layer.index(x, y);
                    layer.data[at] = to_u8(c + s * (1.0 - c));
                    layer.data[at + 1] = to_u8(target * c + k * (1.0 - c));
                }
            }
        }
    }

    /// Ends the stroke. An edge-aware stroke's coverage is now snapped to the photo's edges (a
    /// guided filter over the stroke's box, guided by the photo, kept inside the footprint) and
    /// laid again. Returns the stroke, for the history, and the pixels that changed.
    pub fn finish(
        mut self,
        layer: &mut EditLayer,
        photo: &RgbImage,
    ) -> (Stroke, Option<PixelRect>) {
        let mut dirty = None;
        if self.brush.edge_aware
            && photo.dimensions() == layer.dimensions()
            && let Some(rect) = self.bounds(layer.dimensions())
        {
            self.snap_to_edges(photo, rect);
            self.lay(layer, rect);
            dirty = Some(rect);
        }
        (
            Stroke {
                brush: self.brush,
                points: self.points,
            },
            dirty,
        )
    }

    /// The pixels of the tiles the stroke touched.
    fn bounds(&self, (width, height): (u32, u32)) -> Option<PixelRect> {
        let mut rect: Option<PixelRect> = None;
        for &(tx, ty) in self.coverage.keys() {
            let tile = PixelRect {
                x0: tx * TILE,
                y0: ty * TILE,
                x1: ((tx + 1) * TILE).min(width),
                y1: ((ty + 1) * TILE).min(height),
            };
            rect = union(rect, Some(tile));
        }
        rect
    }

    /// Replaces the coverage in `rect` by its guided filter with the photo as guide (radius a
    /// quarter of the brush's), zero outside the footprint. The filter is the CPU edge path's
    /// (`edges::guided_filter`: only where the coverage changes, on all cores).
    fn snap_to_edges(&mut self, photo: &RgbImage, rect: PixelRect) {
        let guide = image::imageops::crop_imm(photo, rect.x0, rect.y0, rect.width(), rect.height())
            .to_image();
        let coverage = GrayImage::from_fn(rect.width(), rect.height(), |x, y| {
            image::Luma([self.coverage_at(rect.x0 + x, rect.y0 + y)])
        });
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let radius = ((self.brush.radius_px / 4.0).round() as usize).clamp(1, 32);
        let (snapped, _) = edges::guided_filter(&guide, &coverage, radius, EDGE_EPS);
        for (x, y, v) in snapped.enumerate_pixels() {
            let (px, py) = (rect.x0 + x, rect.y0 + y);
            let key = (px / TILE, py / TILE);
            if let Some(tile) = self.coverage.get_mut(&key) {
                let i = ((py % TILE) * TILE + px % TILE) as usize;
                if tile[i] > 0 {
                    tile[i] = v.0[0].max(1);
                }
            }
        }
    }

    fn coverage_at(&self, x: u32, y: u32) -> u8 {
        self.coverage
            .get(&(x / TILE, y / TILE))
            .map_or(0, |t| t[((y % TILE) * TILE + x % TILE) as usize])
    }
}

/// The mean colour (0–255) of the 5 × 5 pixels around `centre`, clamped to the photo.
fn mean_colour(photo: &RgbImage, centre: [f32; 2]) -> [f32; 3] {
    let (w, h) = photo.dimensions();
    #[allow(clippy::cast_possible_truncation)]
    let (cx, cy) = (centre[0].floor() as i64, centre[1].floor() as i64);
    let mut sum = [0f32; 3];
    for y in cy - 2..=cy + 2 {
        for x in cx - 2..=cx + 2 {
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            let p = photo.get_pixel(
                x.clamp(0, i64::from(w) - 1) as u32,
                y.clamp(0, i64::from(h) - 1) as u32,
            );
            for (total, &v) in sum.iter_mut().zip(&p.0) {
                *total += f32::from(v);
            }
        }
    }
    sum.map(|v| v / 25.0)
}

/// How alike two colours are (1 the same, falling to 0 by about [`EDGE_COLOUR_SIGMA`] × 3).
fn similarity(px: [u8; 3], seed: [f32; 3]) -> f32 {
    let d2: f32 = (0..3)
        .map(|c| (f32::from(px[c]) - seed[c]).powi(2))
        .sum::<f32>()
        / (255.0 * 255.0);
    (-d2 / (2.0 * EDGE_COLOUR_SIGMA * EDGE_COLOUR_SIGMA)).exp()
}

/// The colour distance (0–1 units, Euclidean over RGB) at which an edge-aware dab paints at
/// about 60 % strength.
const EDGE_COLOUR_SIGMA: f32 = 0.12;

/// The guided filter's regularisation for edge-aware strokes (squared 0–1 colour units): small,
/// so the footprint's rim follows the photo's edges closely.
const EDGE_EPS: f32 = 1e-3;

/// The tiles that `rect` touches, each with the part of `rect` inside it.
fn tiles(rect: PixelRect) -> impl Iterator<Item = ((u32, u32), PixelRect)> {
    let (tx0, tx1) = (rect.x0 / TILE, (rect.x1 - 1) / TILE);
    let (ty0, ty1) = (rect.y0 / TILE, (rect.y1 - 1) / TILE);
    (ty0..=ty1).flat_map(move |ty| {
        (tx0..=tx1).map(move |tx| {
            let part = PixelRect {
                x0: rect.x0.max(tx * TILE),
                y0: rect.y0.max(ty * TILE),
                x1: rect.x1.min((tx + 1) * TILE),
                y1: rect.y1.min((ty + 1) * TILE),
            };
            ((tx, ty), part)
        })
    })
}

/// The layer's bytes of one tile, padded to a full tile.
fn save_tile(layer: &EditLayer, (tx, ty): (u32, u32)) -> Box<[u8]> {
    let mut out = vec![0u8; TILE_PX * LAYER_BYTES_PER_PX];
    let (w, h) = layer.dimensions();
    for y in ty * TILE..((ty + 1) * TILE).min(h) {
        let x0 = tx * TILE;
        let x1 = ((tx + 1) * TILE).min(w);
        let row = &layer.data[layer.index(x0, y)..layer.index(x1, y)];
        let at = ((y % TILE) * TILE) as usize * LAYER_BYTES_PER_PX;
        out[at..at + row.len()].copy_from_slice(row);
    }
    out.into_boxed_slice()
}

/// The pixels whose centres may lie in `[x0, y0, x1, y1]`, inside a `width` × `height` image.
fn clip(bounds: [f32; 4], (width, height): (u32, u32)) -> Option<PixelRect> {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let at = |v: f32, limit: u32| (v.max(0.0) as u32).min(limit);
    #[allow(clippy::cast_precision_loss)]
    let rect = PixelRect {
        x0: at(bounds[0].floor(), width),
        y0: at(bounds[1].floor(), height),
        x1: at(bounds[2].ceil() + 1.0, width),
        y1: at(bounds[3].ceil() + 1.0, height),
    };
    (rect.x0 < rect.x1 && rect.y0 < rect.y1).then_some(rect)
}
