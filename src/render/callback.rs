//! The on-screen path: the [`Compositor`] lives in egui-wgpu's `callback_resources`, and a
//! [`CompositeCallback`] per frame carries only the uniforms.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use image::{GrayImage, RgbImage};

use super::{ImageTextures, Pipeline, RenderError, Uniforms, timer::GpuTimer};

/// Everything the on-screen composite needs on the GPU, created once at start-up.
pub struct Compositor {
    pipeline: Pipeline,
    images: Option<ImageTextures>,
    timer: Option<GpuTimer>,
    warned_missing: AtomicBool,
}

impl Compositor {
    /// Creates the pipeline for egui's target format and stores it in the renderer's callback
    /// resources.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let compositor = Self {
            pipeline: Pipeline::new(&render_state.device, render_state.target_format),
            images: None,
            timer: GpuTimer::new(&render_state.device, &render_state.queue),
            warned_missing: AtomicBool::new(false),
        };
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(compositor);
    }

    /// Runs `f` on the installed compositor, if there is one.
    pub fn with<R>(
        render_state: &egui_wgpu::RenderState,
        f: impl FnOnce(&mut Self, &wgpu::Device, &wgpu::Queue) -> R,
    ) -> Option<R> {
        let mut renderer = render_state.renderer.write();
        let compositor = renderer.callback_resources.get_mut::<Self>()?;
        Some(f(compositor, &render_state.device, &render_state.queue))
    }

    /// Replaces the photo (and clears the mask).
    pub fn set_photo(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        photo: &RgbImage,
        backdrop: &RgbImage,
    ) -> Result<(), RenderError> {
        self.images = None;
        self.images = Some(ImageTextures::new(
            device,
            queue,
            &self.pipeline,
            photo,
            backdrop,
        )?);
        Ok(())
    }

    /// Replaces the mask of the current photo.
    pub fn set_mask(&mut self, queue: &wgpu::Queue, mask: &GrayImage) -> Result<(), RenderError> {
        match &self.images {
            Some(images) => images.write_mask(queue, mask),
            None => Ok(()),
        }
    }

    /// Whether the composite's GPU time is measured (the adapter has timestamp queries).
    pub fn measures_gpu_time(&self) -> bool {
        self.timer.is_some()
    }

    /// GPU times of the composite draw (milliseconds) measured since the last call.
    pub fn take_gpu_ms(&self) -> Vec<f64> {
        self.timer
            .as_ref()
            .map(GpuTimer::take_ms)
            .unwrap_or_default()
    }

    /// Forgets the photo (nothing is drawn).
    pub fn clear(&mut self) {
        self.images = None;
    }

    /// The GPU's largest texture side.
    pub fn max_texture_side_px(device: &wgpu::Device) -> u32 {
        device.limits().max_texture_dimension_2d
    }
}

/// One frame's composite: only the uniforms travel with it.
pub struct CompositeCallback {
    /// Settings, view and preview options, packed for the shader.
    pub uniforms: Uniforms,
    /// Set (and logged once) when a composite with a mask is drawn.
    pub shown: Option<Arc<AtomicBool>>,
}

impl CallbackTrait for CompositeCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &ScreenDescriptor,
        egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(compositor) = resources.get::<Compositor>() {
            compositor
                .pipeline
                .write_uniforms(queue, self.uniforms, false);
            if let Some(timer) = &compositor.timer {
                timer.prepare(egui_encoder);
            }
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        static WARNED_UNINSTALLED: AtomicBool = AtomicBool::new(false);
        let Some(compositor) = resources.get::<Compositor>() else {
            if !WARNED_UNINSTALLED.swap(true, Ordering::Relaxed) {
                tracing::warn!("composite callback before the compositor was installed");
            }
            return;
        };
        match &compositor.images {
            Some(images) => {
                if let Some(timer) = &compositor.timer {
                    timer.begin(pass);
                }
                compositor.pipeline.draw(pass, images);
                if let Some(timer) = &compositor.timer {
                    timer.end(pass);
                }
                if let Some(shown) = &self.shown
                    && !shown.swap(true, Ordering::Relaxed)
                {
                    tracing::info!(
                        "cutout shown ({}×{} px)",
                        images.size()[0],
                        images.size()[1]
                    );
                }
            }
            None => {
                if !compositor.warned_missing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("composite callback without a photo on the GPU; nothing drawn");
                }
            }
        }
    }
}
