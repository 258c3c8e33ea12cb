//! A photo's edit history: strokes and resets, for undo and redo.

use super::Stroke;

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

    /// How many strokes count now (those after the last reset).
    pub fn stroke_count(&self) -> usize {
        self.steps
            .iter()
            .rev()
            .take_while(|s| **s != Step::Reset)
            .count()
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
    use crate::image_ops::edits::{Brush, BrushMode};

    #[test]
    fn history_undoes_and_redoes_and_a_new_stroke_forgets_the_redo() {
        let s = |x: f32| Stroke {
            brush: Brush {
                mode: BrushMode::Keep,
                radius_px: 3.0,
                hardness: 1.0,
                edge_aware: false,
            },
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
        assert_eq!(h.stroke_count(), 2);
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
}
