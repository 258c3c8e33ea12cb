//! The last step before a file or the clipboard: refinement of the network's mask (guided
//! filter, on the GPU through [`render::Offscreen`]), the subject's colours (blur fusion) and
//! the composite. Shared by the command line ([`crate::batch`]) and the app's [`crate::worker`].
//!
//! Where each part runs is fixed, never a silent fallback: the guided filter runs only on the
//! GPU pipeline (with foreground colours in the same passes); foreground colours alone run on the
//! CPU reference, so exports work on machines without any graphics adapter.

use image::{GrayImage, RgbImage, RgbaImage};

use crate::{
    image_ops::{self, CompositeSettings, ImageError, refine::Refined},
    render::{Offscreen, RenderError},
};

/// Why finishing a photo failed.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The GPU refinement could not run.
    #[error("edge refinement needs the GPU pipeline: {0}")]
    Gpu(#[from] RenderError),
    /// Compositing or writing.
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Finishes photos; opens a headless GPU device the first time edge refinement is asked for and
/// keeps it.
#[derive(Default)]
pub struct Finisher {
    gpu: Option<Offscreen>,
}

impl Finisher {
    /// A finisher that has not opened the GPU yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The headless GPU device, opened on first use.
    pub fn gpu(&mut self) -> Result<&Offscreen, RenderError> {
        if self.gpu.is_none() {
            self.gpu = Some(Offscreen::new()?);
        }
        self.gpu
            .as_ref()
            .ok_or_else(|| RenderError::NoAdapter("not opened".to_owned()))
    }

    /// The mask after refinement and the subject's colours, as `settings.refine` asks.
    pub fn refine(
        &mut self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
    ) -> Result<Refined, FinishError> {
        if settings.refine.guided {
            Ok(self.gpu()?.refine(photo, mask, settings)?)
        } else {
            Ok(image_ops::refine::refine(photo, mask, settings))
        }
    }

    /// The full-resolution composite (straight alpha) after refinement.
    pub fn composite(
        &mut self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
    ) -> Result<RgbaImage, FinishError> {
        let refined = self.refine(photo, mask, settings)?;
        Ok(image_ops::composite::composite(
            photo,
            &refined.mask,
            refined.foreground.as_ref(),
            settings,
        )?)
    }

    /// Composites and writes the PNG atomically: RGBA over a transparent background, RGB
    /// otherwise.
    pub fn write(
        &mut self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
        output: &std::path::Path,
    ) -> Result<(), FinishError> {
        let rgba = self.composite(photo, mask, settings)?;
        let (w, h) = rgba.dimensions();
        if settings.has_alpha() {
            image_ops::write_png_atomic(
                output,
                rgba.as_raw(),
                w,
                h,
                image::ExtendedColorType::Rgba8,
            )?;
        } else {
            let rgb: Vec<u8> = rgba
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            image_ops::write_png_atomic(output, &rgb, w, h, image::ExtendedColorType::Rgb8)?;
        }
        Ok(())
    }
}
