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

use image::RgbImage;
use serde::{Deserialize, Serialize};

mod history;
mod painter;

pub use history::{History, Step};
pub use painter::Painter;

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
