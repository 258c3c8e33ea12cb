//! The touch-up brush: strokes from the canvas paint the photo's edit layer as the pointer
//! moves, finished strokes go into the photo's history, and undo, redo and reset paint the
//! layer again from the history. The GPU's edit texture gets only the part that changed.

use std::sync::Arc;

use super::CutoutApp;
use crate::image_ops::edits::{Brush, BrushMode, EditLayer, Painter, Stroke, union};

/// What the pointer does with the brush on the canvas, in photo pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum PaintEvent {
    /// The button went down: a stroke starts with a brush of this radius (photo pixels: the
    /// on-screen radius at the current zoom).
    Begin {
        /// Where, in photo pixels.
        at: [f32; 2],
        /// The brush radius in photo pixels.
        radius_px: f32,
    },
    /// The pointer moved while the button is down.
    To(Vec<[f32; 2]>),
    /// The button went up.
    End,
}

/// Undo, redo or reset of the photo on screen's edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditStep {
    /// Take back the last stroke (or reset).
    Undo,
    /// Put back what was undone.
    Redo,
    /// Drop every stroke (itself undoable).
    Reset,
}

impl CutoutApp {
    /// Picks a brush (or, with the one in hand, puts it down so the pointer pans again).
    pub(super) fn pick_brush(&mut self, mode: Option<BrushMode>) {
        self.end_stroke();
        self.state.tool = if self.state.tool == mode { None } else { mode };
        if self.state.tool.is_some() && !self.state.can_touch_up() {
            let why = match &self.state.current {
                None => "open a photo first, then touch up its cutout",
                Some(c) if c.mask.is_none() => {
                    "the cutout is not ready yet; the brush paints once it is"
                }
                Some(_) => {
                    "this photo is larger than the GPU's largest texture, so it is shown shrunk and cannot be touched up; export it as it is"
                }
            };
            self.state.post(why, true);
        }
    }

    pub(super) fn paint(&mut self, event: PaintEvent) {
        let started = std::time::Instant::now();
        let what = match &event {
            PaintEvent::Begin { .. } => "begin",
            PaintEvent::To(_) => "to",
            PaintEvent::End => "end",
        };
        self.paint_event(event);
        tracing::trace!(what, ms = started.elapsed().as_secs_f64() * 1e3, "brush");
    }

    fn paint_event(&mut self, event: PaintEvent) {
        if matches!(event, PaintEvent::Begin { .. }) {
            // A stroke whose release was missed is finished first, so the history holds every
            // stroke the layer shows.
            self.end_stroke();
        }
        let Some(mode) = self.state.tool else {
            return;
        };
        if !self.state.can_touch_up() {
            return;
        }
        let brush = self.settings.brush;
        let Some(current) = &mut self.state.current else {
            return;
        };
        let Some(photo) = current.photo.clone() else {
            return;
        };
        let touchup = &mut current.touchup;
        let layer = touchup
            .layer
            .get_or_insert_with(|| EditLayer::new(photo.width(), photo.height()));
        let dirty = match event {
            PaintEvent::Begin { at, radius_px } => {
                let mut painter = Painter::new(Brush {
                    mode,
                    radius_px,
                    hardness: brush.hardness,
                    edge_aware: brush.edge_aware,
                });
                let dirty = painter.extend(layer, &photo, &[at]);
                touchup.painter = Some(painter);
                dirty
            }
            PaintEvent::To(points) => match &mut touchup.painter {
                Some(painter) => painter.extend(layer, &photo, &points),
                None => None,
            },
            PaintEvent::End => return self.end_stroke(),
        };
        touchup.upload = union(touchup.upload, dirty);
    }

    /// Finishes the stroke being painted, if any, into the photo's history.
    pub(super) fn end_stroke(&mut self) {
        let Some(current) = &mut self.state.current else {
            return;
        };
        let (Some(painter), Some(layer), Some(photo)) = (
            current.touchup.painter.take(),
            current.touchup.layer.as_mut(),
            current.photo.clone(),
        ) else {
            return;
        };
        let (stroke, dirty) = painter.finish(layer, &photo);
        current.touchup.upload = union(current.touchup.upload, dirty);
        let entry = current.entry;
        if let Some(entry) = self.state.entry_mut(entry) {
            entry.edits.push(stroke);
        }
    }

    pub(super) fn edit_step(&mut self, step: EditStep) {
        self.end_stroke();
        let Some(entry) = self.state.current.as_ref().map(|c| c.entry) else {
            return;
        };
        let Some(history) = self.state.entry_mut(entry).map(|e| &mut e.edits) else {
            return;
        };
        let changed = match step {
            EditStep::Undo => history.undo(),
            EditStep::Redo => history.redo(),
            EditStep::Reset => history.reset(),
        };
        if changed {
            self.paint_layer_again();
        } else {
            let what = match step {
                EditStep::Undo => "nothing to undo",
                EditStep::Redo => "nothing to redo",
                EditStep::Reset => "this photo has no edits to reset",
            };
            self.state.post(what, false);
        }
    }

    /// Paints the photo on screen's layer again from its history (after undo, redo or reset,
    /// and when the photo comes back on screen), and marks all of it for upload.
    pub(super) fn paint_layer_again(&mut self) {
        let Some(current) = &self.state.current else {
            return;
        };
        let strokes = self
            .state
            .entry(current.entry)
            .map(|e| e.edits.strokes())
            .unwrap_or_default();
        let Some(current) = &mut self.state.current else {
            return;
        };
        let Some(photo) = current.photo.as_ref().map(Arc::clone) else {
            return;
        };
        let layer = EditLayer::from_strokes(&photo, &strokes);
        current.touchup.upload = Some(layer.bounds());
        current.touchup.layer = Some(layer);
        current.touchup.painter = None;
    }

    /// Sends the part of the edit layer that changed to the GPU.
    pub(super) fn upload_edits(&mut self) {
        let Some(rs) = self.render_state.clone() else {
            return;
        };
        let Some(current) = &mut self.state.current else {
            return;
        };
        let Some(rect) = current.touchup.upload.take() else {
            return;
        };
        let Some(layer) = &current.touchup.layer else {
            return;
        };
        if current.texture_size != Some([layer.dimensions().0, layer.dimensions().1]) {
            return;
        }
        let started = std::time::Instant::now();
        let result = super::Compositor::with(&rs, |c, _, queue| c.write_edits(queue, layer, rect));
        tracing::trace!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            px = rect.width() * rect.height(),
            "edits uploaded"
        );
        if let Some(Err(e)) = result {
            self.state
                .post(format!("the edits cannot be shown: {e}"), true);
        }
    }

    /// The strokes of a photo, for an export or a copy (the stroke being painted is finished
    /// first, so what is exported is what is on screen).
    pub(super) fn edits_of(&mut self, entry: super::EntryId) -> Vec<Stroke> {
        if self
            .state
            .current
            .as_ref()
            .is_some_and(|c| c.entry == entry)
        {
            self.end_stroke();
        }
        self.state
            .entry(entry)
            .map(|e| e.edits.strokes())
            .unwrap_or_default()
    }
}
