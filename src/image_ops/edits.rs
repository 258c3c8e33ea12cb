//! Touch-up edits: brush strokes that keep or erase parts of the cutout, painted into a
//! full-resolution edit layer that the composite applies on top of the network's mask.
//!
//! The history is the strokes themselves (a brush and a polyline in photo pixels, a few bytes a
//! point), never copies of the layer: undo drops the last stroke and paints the others again, and
//! an export (in the worker, for any photo) paints them from scratch. Painting is deterministic,
//! so the layer painted live, a stroke at a time as the pointer moves, is byte for byte the layer
//! painted again from the list.
//!
//! Each layer pixel holds two bytes, `[strength, keep]`: how much the edits override the
//! network (0–1) and how much of that is "keep" (premultiplied, so `keep ≤ strength`). A stroke
//! with coverage `c` and target `t` (1 keep, 0 erase) is laid over what is there:
//! `strength' = c + strength·(1 − c)`, `keep' = t·c + keep·(1 − c)`. The composite then uses
//! `alpha' = alpha·(1 − strength) + keep` and takes the photo's own colour where the edits keep
//! (see [`apply`]); `render/composite.wgsl` does the same with the layer as a texture.

use std::collections::HashMap;

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use super::{edges, to_u8};

/// What a stroke does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BrushMode {
    /// Paints the subject back in (alpha towards 1, the photo's colours).
    #[default]
    Keep,
    /// Paints the subject out (alpha towards 0).
    Erase,
}

impl BrushMode {
    /// A short name for menus and messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Keep => "Keep",
            Self::Erase => "Erase",
        }
    }
}

/// The brush of one stroke, in photo pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Brush {
    /// Keep or erase.
    pub mode: BrushMode,
    /// Radius in photo pixels.
    pub radius_px: f32,
    /// The share of the radius painted at full strength (0 soft – 1 hard); the rest falls off
    /// smoothly to the rim.
    pub hardness: f32,
    /// Whether the stroke's footprint snaps to the photo's edges (a guided filter of the
    /// stroke's coverage, guided by the photo and kept inside the footprint).
    pub edge_aware: bool,
}

/// One stroke: a brush dragged along a polyline (photo pixels, pixel centres at `i + 0.5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stroke {
    /// The brush.
    pub brush: Brush,
    /// Where the pointer went.
    pub points: Vec<[f32; 2]>,
}

/// A rectangle of photo pixels, `x0..x1` × `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    /// Left column.
    pub x0: u32,
    /// Top row.
    pub y0: u32,
    /// One past the right column.
    pub x1: u32,
    /// One past the bottom row.
    pub y1: u32,
}

impl PixelRect {
    /// The smallest rectangle holding both.
    pub fn union(self, other: Self) -> Self {
        Self {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// Joins an optional rectangle with another.
pub fn union(a: Option<PixelRect>, b: Option<PixelRect>) -> Option<PixelRect> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b)),
        (a, b) => a.or(b),
    }
}

/// The edit layer of one photo: two bytes a pixel, `[strength, keep]` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditLayer {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

/// Bytes per pixel of the layer (and of its texture, `Rg8Unorm`).
pub const LAYER_BYTES_PER_PX: usize = 2;

impl EditLayer {
    /// A layer that changes nothing.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize * LAYER_BYTES_PER_PX],
        }
    }

    /// The layer of `strokes` painted in order on a photo.
    pub fn from_strokes(photo: &RgbImage, strokes: &[Stroke]) -> Self {
        let mut layer = Self::new(photo.width(), photo.height());
        for stroke in strokes {
            layer.paint(photo, stroke);
        }
        layer
    }

    /// Paints one whole stroke; returns the pixels that changed.
    pub fn paint(&mut self, photo: &RgbImage, stroke: &Stroke) -> Option<PixelRect> {
        let mut painter = Painter::new(stroke.brush);
        let live = painter.extend(self, photo, &stroke.points);
        union(live, painter.finish(self, photo).1)
    }

    /// Width and height in pixels.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// All of the layer, as a rectangle.
    pub fn bounds(&self) -> PixelRect {
        PixelRect {
            x0: 0,
            y0: 0,
            x1: self.width,
            y1: self.height,
        }
    }

    /// The raw bytes, row by row, [`LAYER_BYTES_PER_PX`] a pixel.
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// `[strength, keep]` at a pixel.
    pub fn get(&self, x: u32, y: u32) -> [u8; 2] {
        let i = self.index(x, y);
        [self.data[i], self.data[i + 1]]
    }

    /// The bytes of `rect`, row by row (for a texture upload of the part that changed).
    pub fn region(&self, rect: PixelRect) -> Vec<u8> {
        let mut out = Vec::with_capacity(rect.width() as usize * rect.height() as usize * 2);
        for y in rect.y0..rect.y1 {
            out.extend_from_slice(&self.data[self.index(rect.x0, y)..self.index(rect.x1, y)]);
        }
        out
    }

    /// Whether any pixel is edited.
    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&b| b == 0)
    }

    fn index(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * LAYER_BYTES_PER_PX
    }
}

/// Alpha and colour after the edits: `alpha` and `fg` from the network (0–1), `photo` the
/// photo's colour, `edit` the layer's `[strength, keep]` bytes. The GPU composite does the same.
pub fn apply(alpha: f32, fg: [f32; 3], photo: [f32; 3], edit: [u8; 2]) -> (f32, [f32; 3]) {
    if edit == [0, 0] {
        return (alpha, fg);
    }
    let strength = f32::from(edit[0]) / 255.0;
    let keep = f32::from(edit[1]) / 255.0;
    let a = alpha * (1.0 - strength) + keep;
    let colour = std::array::from_fn(|c| fg[c] + (photo[c] - fg[c]) * keep);
    (a, colour)
}

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
            self.ensure_tile(layer, key);
            let coverage = self.coverage.get_mut(&key).expect("the tile was just made");
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

    /// Makes the coverage tile `key` (and saves the layer's tile as it was) if it is new.
    fn ensure_tile(&mut self, layer: &EditLayer, key: (u32, u32)) {
        if !self.coverage.contains_key(&key) {
            self.before.insert(key, save_tile(layer, key));
            self.coverage
                .insert(key, vec![0; TILE_PX].into_boxed_slice());
        }
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
            for c in 0..3 {
                sum[c] += f32::from(p.0[c]);
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

/// One step of a photo's edit history.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A stroke.
    Stroke(Stroke),
    /// "Reset edits": the strokes before it no longer count (and come back on undo).
    Reset,
}

/// A photo's edit history: the steps in order, and the steps undone (for redo). Strokes, never
/// copies of the layer, so a long session of touch-ups holds kilobytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    steps: Vec<Step>,
    undone: Vec<Step>,
}

impl History {
    /// The strokes that make the layer now (those after the last reset), in order.
    pub fn strokes(&self) -> Vec<Stroke> {
        let start = self
            .steps
            .iter()
            .rposition(|s| *s == Step::Reset)
            .map_or(0, |i| i + 1);
        self.steps[start..]
            .iter()
            .filter_map(|s| match s {
                Step::Stroke(stroke) => Some(stroke.clone()),
                Step::Reset => None,
            })
            .collect()
    }

    /// Whether any stroke counts now.
    pub fn has_edits(&self) -> bool {
        matches!(self.steps.last(), Some(Step::Stroke(_)))
    }

    /// Adds a finished stroke (and forgets what was undone).
    pub fn push(&mut self, stroke: Stroke) {
        self.steps.push(Step::Stroke(stroke));
        self.undone.clear();
    }

    /// Resets the edits (undoable); whether there were any.
    pub fn reset(&mut self) -> bool {
        let had = self.has_edits();
        if had {
            self.steps.push(Step::Reset);
            self.undone.clear();
        }
        had
    }

    /// Takes back the last step; whether there was one.
    pub fn undo(&mut self) -> bool {
        self.steps.pop().map(|s| self.undone.push(s)).is_some()
    }

    /// Puts back the last step undone; whether there was one.
    pub fn redo(&mut self) -> bool {
        self.undone.pop().map(|s| self.steps.push(s)).is_some()
    }

    /// Whether there is a step to undo.
    pub fn can_undo(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Whether there is a step to redo.
    pub fn can_redo(&self) -> bool {
        !self.undone.is_empty()
    }

    /// Bytes held by the history (the points and the brushes).
    pub fn bytes(&self) -> usize {
        self.steps
            .iter()
            .chain(&self.undone)
            .map(|s| match s {
                Step::Stroke(s) => std::mem::size_of::<Step>() + s.points.len() * 8,
                Step::Reset => std::mem::size_of::<Step>(),
            })
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use image::Rgb;

    fn brush(mode: BrushMode, radius_px: f32, edge_aware: bool) -> Brush {
        Brush {
            mode,
            radius_px,
            hardness: 0.5,
            edge_aware,
        }
    }

    fn zigzag() -> Vec<[f32; 2]> {
        (0..40)
            .map(|i| [10.0 + i as f32 * 4.3, 50.0 + ((i % 7) as f32 - 3.0) * 6.1])
            .collect()
    }

    fn photo() -> RgbImage {
        // Left half dark, right half light: one strong vertical edge at x = 100.
        RgbImage::from_fn(200, 120, |x, y| {
            if x < 100 {
                Rgb([20, 30, (y % 9) as u8 * 3])
            } else {
                Rgb([230, 220, 210])
            }
        })
    }

    #[test]
    fn painting_live_in_pieces_equals_painting_the_stroke_again() {
        let photo = photo();
        for edge_aware in [false, true] {
            let mut first = EditLayer::new(200, 120);
            first.paint(
                &photo,
                &Stroke {
                    brush: brush(BrushMode::Keep, 9.0, false),
                    points: vec![[100.0, 60.0], [140.0, 70.0]],
                },
            );
            let mut live = first.clone();
            let mut painter = Painter::new(brush(BrushMode::Erase, 12.5, edge_aware));
            for piece in zigzag().chunks(3) {
                painter.extend(&mut live, &photo, piece);
            }
            let (stroke, _) = painter.finish(&mut live, &photo);
            let mut again = first.clone();
            again.paint(&photo, &stroke);
            assert_eq!(live, again, "edge-aware {edge_aware}");
            let all = EditLayer::from_strokes(
                &photo,
                &[
                    Stroke {
                        brush: brush(BrushMode::Keep, 9.0, false),
                        points: vec![[100.0, 60.0], [140.0, 70.0]],
                    },
                    stroke,
                ],
            );
            assert_eq!(live, all);
        }
    }

    #[test]
    fn a_stroke_changes_only_its_footprint() {
        let photo = photo();
        let mut layer = EditLayer::new(200, 120);
        let stroke = Stroke {
            brush: brush(BrushMode::Erase, 10.0, false),
            points: vec![[50.0, 50.0], [80.0, 50.0]],
        };
        let dirty = layer.paint(&photo, &stroke).unwrap();
        for y in 0..120 {
            for x in 0..200 {
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                let nearest_x = fx.clamp(50.0, 80.0);
                let d = (fx - nearest_x).hypot(fy - 50.0);
                let e = layer.get(x, y);
                if d >= 10.0 {
                    assert_eq!(e, [0, 0], "({x}, {y}) outside the footprint");
                } else if d <= 5.0 {
                    assert_eq!(e, [255, 0], "({x}, {y}) in the hard core");
                    assert!(x >= dirty.x0 && x < dirty.x1 && y >= dirty.y0 && y < dirty.y1);
                }
            }
        }
        // Erase, then keep on top: the keep wins where it is laid.
        layer.paint(
            &photo,
            &Stroke {
                brush: brush(BrushMode::Keep, 4.0, false),
                points: vec![[60.0, 50.0]],
            },
        );
        assert_eq!(layer.get(60, 50), [255, 255]);
        let (a, fg) = apply(0.2, [0.0; 3], [0.5; 3], layer.get(60, 50));
        assert!((a - 1.0).abs() < 1e-6 && (fg[0] - 0.5).abs() < 1e-6);
        let (a, _) = apply(0.9, [0.0; 3], [0.5; 3], layer.get(75, 50));
        assert!(a < 1e-6, "erased: {a}");
        assert_eq!(apply(0.3, [0.1; 3], [0.9; 3], [0, 0]), (0.3, [0.1; 3]));
    }

    #[test]
    fn an_edge_aware_stroke_follows_the_photo_edge_and_stays_in_its_footprint() {
        let photo = photo();
        // A stroke along the dark side of the edge, its disc spilling over to the light side.
        let points = vec![[94.0, 20.0], [94.0, 100.0]];
        let mut plain = EditLayer::new(200, 120);
        plain.paint(
            &photo,
            &Stroke {
                brush: brush(BrushMode::Keep, 14.0, false),
                points: points.clone(),
            },
        );
        let mut snapped = EditLayer::new(200, 120);
        snapped.paint(
            &photo,
            &Stroke {
                brush: brush(BrushMode::Keep, 14.0, true),
                points,
            },
        );
        let spill = |layer: &EditLayer| -> u32 {
            (30..90)
                .map(|y| {
                    (100..108)
                        .map(|x| u32::from(layer.get(x, y)[0]))
                        .sum::<u32>()
                })
                .sum()
        };
        let core = |layer: &EditLayer| -> u32 {
            (30..90)
                .map(|y| {
                    (86..100)
                        .map(|x| u32::from(layer.get(x, y)[0]))
                        .sum::<u32>()
                })
                .sum()
        };
        assert!(
            spill(&snapped) * 3 < spill(&plain),
            "{} vs {}",
            spill(&snapped),
            spill(&plain)
        );
        assert!(core(&snapped) * 10 > core(&plain) * 9);
        for y in 0..120 {
            for x in 0..200 {
                if plain.get(x, y)[0] == 0 {
                    assert_eq!(
                        snapped.get(x, y),
                        [0, 0],
                        "({x}, {y}) outside the footprint"
                    );
                }
            }
        }
    }

    #[test]
    fn history_undoes_and_redoes_and_a_new_stroke_forgets_the_redo() {
        let s = |x: f32| Stroke {
            brush: brush(BrushMode::Keep, 3.0, false),
            points: vec![[x, 1.0]],
        };
        let mut h = History::default();
        assert!(!h.undo());
        h.push(s(1.0));
        h.push(s(2.0));
        assert!(h.undo());
        assert_eq!(h.strokes(), vec![s(1.0)]);
        assert!(h.redo());
        assert_eq!(h.strokes().len(), 2);
        h.undo();
        h.push(s(3.0));
        assert!(!h.can_redo());
        assert_eq!(h.strokes(), vec![s(1.0), s(3.0)]);
        // Reset is a step: the strokes stop counting, and come back on undo.
        assert!(h.reset());
        assert!(h.strokes().is_empty() && !h.has_edits());
        assert!(!h.reset(), "nothing left to reset");
        h.push(s(4.0));
        assert_eq!(h.strokes(), vec![s(4.0)]);
        h.undo();
        h.undo();
        assert_eq!(h.strokes(), vec![s(1.0), s(3.0)]);
        assert!(h.bytes() < 1024);
    }

    #[test]
    fn strokes_off_the_photo_and_odd_points_change_nothing_and_do_not_panic() {
        let photo = photo();
        let mut layer = EditLayer::new(200, 120);
        let stroke = Stroke {
            brush: brush(BrushMode::Erase, 5.0, true),
            points: vec![[-50.0, -50.0], [f32::NAN, 3.0], [-30.0, -40.0], [-1e9, 1e9]],
        };
        layer.paint(&photo, &stroke);
        assert!(layer.is_empty());
    }
}
