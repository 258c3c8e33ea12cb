//! photo → tensor → network → mask: the one definition of how a model's input is made and its
//! output read back.
//!
//! A [`MaskPipeline`] is what a [`Segmenter`] knows about its model's pixels: the square input
//! side and the normalisation from the manifest. It is a small `Copy` value, so the batch can run
//! its stages on their own threads (preprocess beside decoding, postprocess beside encoding)
//! while the Segmenter alone runs the network; [`Segmenter::segment`] runs all three in a row for
//! the worker, the tests and the CLI. Nothing else turns a photo into a mask.

use std::time::Instant;

use image::{GrayImage, RgbImage};

use super::{EngineError, Segmenter, StageTimings, models::ModelSpec};
use crate::image_ops::{self, ImageError, Normalization};
use crate::timing::ms_since;

/// How one model's input tensor is made from a photo and how its output becomes a mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskPipeline {
    side_px: u32,
    norm: Normalization,
}

impl MaskPipeline {
    /// The pipeline for `spec` at a square input of `side_px`.
    pub fn new(spec: &ModelSpec, side_px: u32) -> Self {
        Self {
            side_px,
            norm: Normalization {
                mean: spec.mean,
                std: spec.std,
                scale: spec.scale,
            },
        }
    }

    /// Side of the square input tensor, in pixels.
    pub fn side_px(&self) -> u32 {
        self.side_px
    }

    /// Photo → `[1, 3, side, side]` input tensor (Lanczos3 to the square, the model's scaling and
    /// mean/std, planar).
    pub fn preprocess(&self, rgb: &RgbImage) -> Result<Vec<f32>, ImageError> {
        image_ops::to_model_input(rgb, self.side_px, self.norm)
    }

    /// The network's raw `side × side` map → 8-bit mask at `width × height` (min-max, truncation,
    /// Lanczos3 back to the photo's size).
    pub fn postprocess(
        &self,
        raw: &[f32],
        width: u32,
        height: u32,
    ) -> Result<GrayImage, ImageError> {
        image_ops::mask_from_output(raw, self.side_px, width, height)
    }
}

impl Segmenter {
    /// How this session's input is made and its output read back.
    pub fn pipeline(&self) -> MaskPipeline {
        MaskPipeline::new(&self.model().spec, self.input_side_px())
    }

    /// The whole path from pixels to a mask at the photo's size, with the time of each stage.
    pub fn segment(&mut self, rgb: &RgbImage) -> Result<(GrayImage, StageTimings), EngineError> {
        let pipeline = self.pipeline();
        let started = Instant::now();
        let input = pipeline.preprocess(rgb)?;
        let preprocess_ms = ms_since(started);
        let (raw, infer) = self.infer_timed(&input)?;
        let started = Instant::now();
        let mask = pipeline.postprocess(&raw, rgb.width(), rgb.height())?;
        Ok((
            mask,
            StageTimings {
                preprocess_ms,
                // The copy back belongs to reading the mask, as the app's overlay shows it.
                postprocess_ms: ms_since(started) + infer.download_ms,
                ..infer
            },
        ))
    }
}
