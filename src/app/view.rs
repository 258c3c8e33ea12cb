//! Zoom and pan: which part of the photo the canvas shows. Pure geometry, tested on its own.

use egui::{Pos2, Rect, Vec2};

use crate::render::ImageView;

/// Zoom limits, in screen points per photo pixel.
pub const MIN_ZOOM: f32 = 0.01;
/// See [`MIN_ZOOM`].
pub const MAX_ZOOM: f32 = 64.0;

/// The canvas's zoom and pan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewState {
    /// Screen points per photo pixel; `None` = fit the photo in the canvas.
    pub zoom: Option<f32>,
    /// The photo pixel at the canvas centre (ignored while fitting).
    pub center_px: [f32; 2],
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            zoom: None,
            center_px: [0.0, 0.0],
        }
    }
}

impl ViewState {
    /// The scale that fits a photo of `size_px` in `canvas`.
    pub fn fit_scale(canvas: Rect, size_px: [u32; 2]) -> f32 {
        #[allow(clippy::cast_precision_loss)]
        let (w, h) = (size_px[0].max(1) as f32, size_px[1].max(1) as f32);
        (canvas.width() / w).min(canvas.height() / h).max(MIN_ZOOM)
    }

    /// Screen points per photo pixel now.
    pub fn scale(&self, canvas: Rect, size_px: [u32; 2]) -> f32 {
        self.zoom
            .unwrap_or_else(|| Self::fit_scale(canvas, size_px))
    }

    fn center(&self, size_px: [u32; 2]) -> Vec2 {
        match self.zoom {
            #[allow(clippy::cast_precision_loss)]
            None => Vec2::new(size_px[0] as f32 / 2.0, size_px[1] as f32 / 2.0),
            Some(_) => Vec2::new(self.center_px[0], self.center_px[1]),
        }
    }

    /// The photo pixel under a screen position.
    pub fn image_from_screen(&self, canvas: Rect, size_px: [u32; 2], pos: Pos2) -> Vec2 {
        self.center(size_px) + (pos - canvas.center()) / self.scale(canvas, size_px)
    }

    /// The photo's rectangle on screen.
    pub fn screen_rect(&self, canvas: Rect, size_px: [u32; 2]) -> Rect {
        let scale = self.scale(canvas, size_px);
        let c = self.center(size_px);
        #[allow(clippy::cast_precision_loss)]
        let size = Vec2::new(size_px[0] as f32, size_px[1] as f32);
        let min = canvas.center() - c * scale;
        Rect::from_min_size(min, size * scale)
    }

    /// What the shader needs: photo coordinates (0–1) at the canvas corners.
    pub fn image_view(&self, canvas: Rect, size_px: [u32; 2]) -> ImageView {
        #[allow(clippy::cast_precision_loss)]
        let size = Vec2::new(size_px[0].max(1) as f32, size_px[1].max(1) as f32);
        let min = self.image_from_screen(canvas, size_px, canvas.min) / size;
        let max = self.image_from_screen(canvas, size_px, canvas.max) / size;
        ImageView {
            min: [min.x, min.y],
            max: [max.x, max.y],
        }
    }

    /// Zooms by `factor`, keeping the photo pixel under `anchor` where it is.
    pub fn zoom_at(&mut self, canvas: Rect, size_px: [u32; 2], anchor: Pos2, factor: f32) {
        let before = self.image_from_screen(canvas, size_px, anchor);
        let scale = (self.scale(canvas, size_px) * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        // Keep `before` under `anchor`: centre = before − (anchor − canvas centre) / scale.
        let center = before - (anchor - canvas.center()) / scale;
        self.zoom = Some(scale);
        self.center_px = [center.x, center.y];
    }

    /// Moves the photo by a screen delta.
    pub fn pan(&mut self, canvas: Rect, size_px: [u32; 2], delta: Vec2) {
        let scale = self.scale(canvas, size_px);
        let center = self.center(size_px) - delta / scale;
        self.zoom = Some(scale);
        self.center_px = [center.x, center.y];
    }

    /// One photo pixel per physical pixel, centred where the view is now.
    pub fn actual_size(&mut self, size_px: [u32; 2], pixels_per_point: f32) {
        let c = self.center(size_px);
        self.zoom = Some((1.0 / pixels_per_point).clamp(MIN_ZOOM, MAX_ZOOM));
        self.center_px = [c.x, c.y];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn canvas() -> Rect {
        Rect::from_min_size(Pos2::new(100.0, 50.0), Vec2::new(800.0, 600.0))
    }

    #[test]
    fn fit_shows_the_whole_photo_centred() {
        let v = ViewState::default();
        let r = v.screen_rect(canvas(), [4000, 3000]);
        assert!((r.width() - 800.0).abs() < 1e-3 && (r.height() - 600.0).abs() < 1e-3);
        let iv = v.image_view(canvas(), [4000, 3000]);
        assert!(iv.min[0].abs() < 1e-5 && (iv.max[1] - 1.0).abs() < 1e-5);
        // A tall photo: pillarboxed, so the view extends beyond the photo left and right.
        let tall = v.image_view(canvas(), [1000, 3000]);
        assert!(tall.min[0] < 0.0 && tall.max[0] > 1.0);
        assert!(tall.min[1].abs() < 1e-5);
    }

    #[test]
    fn zoom_keeps_the_anchor_still_and_pan_moves_it() {
        let mut v = ViewState::default();
        let anchor = Pos2::new(300.0, 200.0);
        let before = v.image_from_screen(canvas(), [4000, 3000], anchor);
        v.zoom_at(canvas(), [4000, 3000], anchor, 4.0);
        let after = v.image_from_screen(canvas(), [4000, 3000], anchor);
        assert!((before - after).length() < 1e-2, "{before:?} {after:?}");
        assert!((v.zoom.unwrap() - 0.8).abs() < 1e-5);
        v.pan(canvas(), [4000, 3000], Vec2::new(80.0, 0.0));
        let moved = v.image_from_screen(canvas(), [4000, 3000], anchor);
        assert!((before.x - moved.x - 100.0).abs() < 1e-2);
        v.actual_size([4000, 3000], 2.0);
        assert_eq!(v.zoom, Some(0.5));
    }
}
