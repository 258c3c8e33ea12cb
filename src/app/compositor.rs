//! The on-screen path: the [`Compositor`] lives in egui-wgpu's `callback_resources`, and a
//! [`CompositeCallback`] per frame carries only the uniforms.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use image::{GrayImage, RgbImage};

use crate::{
    image_ops::{
        CompositeSettings,
        edits::{EditLayer, PixelRect},
    },
    render::{GpuTimer, ImageTextures, Output, Pipeline, RenderError, Uniforms},
};

/// What the last refinement run was for, so that it runs again only when needed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RefineKey {
    mask: u64,
    settings: CompositeSettings,
}

/// The refinement passes in flight: at most one submission at a time, so that moving a slider
/// on a slow GPU never queues up work behind the frames.
#[derive(Default)]
struct RefineRuns {
    done: Option<RefineKey>,
    /// A run submitted a part at a time: what it is for, the next dispatch, and when it began.
    partial: Option<(RefineKey, usize, Instant)>,
    in_flight: Arc<AtomicBool>,
    /// Milliseconds from submission to completion of finished runs, not yet taken.
    finished_ms: Arc<Mutex<Vec<f64>>>,
}

/// Everything the on-screen composite needs on the GPU, created once at start-up.
pub(super) struct Compositor {
    pipeline: Pipeline,
    images: Option<ImageTextures>,
    /// Counts mask uploads, to tell masks apart.
    mask_generation: u64,
    refine: RefineRuns,
    timer: Option<GpuTimer>,
    warned_missing: AtomicBool,
}

impl Compositor {
    /// Creates the pipeline for egui's target format and stores it in the renderer's callback
    /// resources.
    pub(super) fn install(render_state: &egui_wgpu::RenderState) {
        let compositor = Self {
            pipeline: Pipeline::new(
                &render_state.device,
                render_state.target_format,
                Output::Preview,
            ),
            images: None,
            mask_generation: 0,
            refine: RefineRuns::default(),
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
    pub(super) fn with<R>(
        render_state: &egui_wgpu::RenderState,
        f: impl FnOnce(&mut Self, &wgpu::Device, &wgpu::Queue) -> R,
    ) -> Option<R> {
        let mut renderer = render_state.renderer.write();
        let compositor = renderer.callback_resources.get_mut::<Self>()?;
        Some(f(compositor, &render_state.device, &render_state.queue))
    }

    /// Replaces the photo (and clears the mask).
    pub(super) fn set_photo(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        photo: &RgbImage,
        backdrop: &RgbImage,
    ) -> Result<(), RenderError> {
        self.images = None;
        self.refine.done = None;
        self.refine.partial = None;
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
    pub(super) fn set_mask(
        &mut self,
        queue: &wgpu::Queue,
        mask: &GrayImage,
    ) -> Result<(), RenderError> {
        self.mask_generation += 1;
        match &self.images {
            Some(images) => images.write_mask(queue, mask),
            None => Ok(()),
        }
    }

    /// Copies `rect` of the edit layer into the edit texture.
    pub(super) fn write_edits(
        &self,
        queue: &wgpu::Queue,
        layer: &EditLayer,
        rect: PixelRect,
    ) -> Result<(), RenderError> {
        match &self.images {
            Some(images) => images.write_edits(queue, layer, rect),
            None => Ok(()),
        }
    }

    /// Replaces the cutout texture with one computed on the CPU (see [`super::pack_cutout`]);
    /// the refinement passes are then not run for it.
    pub(super) fn write_cutout(
        &mut self,
        queue: &wgpu::Queue,
        rgba: &[u8],
    ) -> Result<(), RenderError> {
        match &self.images {
            Some(images) => images.write_cutout(queue, rgba),
            None => Ok(()),
        }
    }

    /// Brings the cutout texture up to date with the current mask and `settings` (refinement,
    /// foreground colours, ramp): submits the refinement passes when something changed and no
    /// earlier submission is still on the GPU. With `in_parts` (a slow adapter) a run goes one
    /// dispatch per call, so that frames are drawn between its parts instead of waiting for all
    /// of it; a run in parts is finished before a newer one starts. Returns whether work is still
    /// owed or in flight (the caller should draw again soon).
    pub(super) fn refine(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        settings: &CompositeSettings,
        in_parts: bool,
    ) -> bool {
        let Some(images) = &self.images else {
            return false;
        };
        if self.refine.in_flight.load(Ordering::Acquire) {
            return true;
        }
        let wanted = RefineKey {
            mask: self.mask_generation,
            settings: *settings,
        };
        let (key, first, started) = match self.refine.partial {
            Some(partial) => partial,
            None if self.refine.done == Some(wanted) => return false,
            None => (wanted, 0, Instant::now()),
        };
        let len = images.refine_len(&key.settings);
        let end = if in_parts { (first + 1).min(len) } else { len };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("cutout live refine"),
        });
        images.refine_part(
            &self.pipeline,
            queue,
            &mut encoder,
            &key.settings,
            first..end,
        );
        let last = end == len;
        self.refine.in_flight.store(true, Ordering::Release);
        let (in_flight, finished) = (
            Arc::clone(&self.refine.in_flight),
            Arc::clone(&self.refine.finished_ms),
        );
        queue.submit([encoder.finish()]);
        queue.on_submitted_work_done(move || {
            if last && let Ok(mut ms) = finished.lock() {
                ms.push(started.elapsed().as_secs_f64() * 1e3);
            }
            in_flight.store(false, Ordering::Release);
        });
        if last {
            self.refine.partial = None;
            self.refine.done = Some(key);
        } else {
            self.refine.partial = Some((key, end, started));
        }
        true
    }

    /// Times (milliseconds) from the first submission to the completion of refinement runs
    /// finished since the last call.
    pub(super) fn take_refine_ms(&self) -> Vec<f64> {
        self.refine
            .finished_ms
            .lock()
            .map(|mut ms| std::mem::take(&mut *ms))
            .unwrap_or_default()
    }

    /// Whether the composite's GPU time is measured (the adapter has timestamp queries).
    pub(super) fn measures_gpu_time(&self) -> bool {
        self.timer.is_some()
    }

    /// GPU times of the composite draw (milliseconds) measured since the last call.
    pub(super) fn take_gpu_ms(&self) -> Vec<f64> {
        self.timer
            .as_ref()
            .map(GpuTimer::take_ms)
            .unwrap_or_default()
    }

    /// Forgets the photo (nothing is drawn).
    pub(super) fn clear(&mut self) {
        self.images = None;
        self.refine.partial = None;
    }

    /// The GPU's largest texture side.
    pub(super) fn max_texture_side_px(device: &wgpu::Device) -> u32 {
        device.limits().max_texture_dimension_2d
    }
}

/// One frame's composite: only the uniforms travel with it.
pub(super) struct CompositeCallback {
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
            compositor.pipeline.write_uniforms(queue, self.uniforms);
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
