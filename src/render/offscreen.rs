//! The offscreen path: the same pipeline and shader, rendered at the photo's full resolution into
//! a texture and read back. Used to check the GPU against the CPU reference, and by front ends
//! that have no window.

use std::time::{Duration, Instant};

use image::{GrayImage, RgbImage, RgbaImage};

use super::{ImageTextures, ImageView, Output, Pipeline, RenderError, Uniforms};
use crate::image_ops::{CompositeSettings, composite, edits::EditLayer, refine::Refined};

/// A headless wgpu device with the composite pipeline.
pub struct Offscreen {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: Pipeline,
    adapter: wgpu::AdapterInfo,
}

const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

impl Offscreen {
    /// Opens the default adapter without a window (a GPU, or lavapipe on machines without one).
    pub fn new() -> Result<Self, RenderError> {
        Self::on(&Self::default_adapter()?)
    }

    /// The adapter [`Offscreen::new`] would open, without opening a device on it (to see what
    /// kind of adapter it is first).
    pub fn default_adapter() -> Result<wgpu::Adapter, RenderError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..wgpu::RequestAdapterOptions::default()
        }))
        .map_err(|e| RenderError::NoAdapter(e.to_string()))
    }

    /// Opens a device on `adapter`.
    pub fn on(adapter: &wgpu::Adapter) -> Result<Self, RenderError> {
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("cutout offscreen device"),
            required_limits: adapter.limits(),
            ..wgpu::DeviceDescriptor::default()
        }))
        .map_err(|e| RenderError::Device(e.to_string()))?;
        let pipeline = Pipeline::new(&device, FORMAT, Output::Export);
        Ok(Self {
            adapter: adapter.get_info(),
            device,
            queue,
            pipeline,
        })
    }

    /// Which adapter runs the composite ("llvmpipe (Vulkan, Cpu)", say).
    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.adapter.name, self.adapter.backend, self.adapter.device_type
        )
    }

    /// The adapter's description.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter
    }

    /// Uploads a photo and its mask (their textures can then be refined and composited many
    /// times).
    pub fn upload(&self, photo: &RgbImage, mask: &GrayImage) -> Result<ImageTextures, RenderError> {
        let backdrop =
            composite::backdrop(photo).map_err(|e| RenderError::Readback(e.to_string()))?;
        let images =
            ImageTextures::new(&self.device, &self.queue, &self.pipeline, photo, &backdrop)?;
        images.write_mask(&self.queue, mask)?;
        Ok(images)
    }

    /// Runs the refinement passes on uploaded textures and waits for the GPU; returns the
    /// wall time from the first submission to completion (the GPU work, synchronised). With
    /// `in_parts`, each dispatch is submitted and waited for on its own, as the app does on a
    /// slow adapter.
    pub fn refine_images(
        &self,
        images: &ImageTextures,
        settings: &CompositeSettings,
        in_parts: bool,
    ) -> Result<Duration, RenderError> {
        let len = images.refine_len(settings);
        let per_part = if in_parts { 1 } else { len.max(1) };
        let started = Instant::now();
        for first in (0..len).step_by(per_part) {
            let part = first..(first + per_part).min(len);
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("cutout refine encoder"),
                });
            images.refine_part(&self.pipeline, &self.queue, &mut encoder, settings, part);
            self.queue.submit([encoder.finish()]);
            self.wait()?;
        }
        Ok(started.elapsed())
    }

    fn wait(&self) -> Result<(), RenderError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(Duration::from_secs(120)),
            })
            .map(|_| ())
            .map_err(|e| RenderError::Readback(e.to_string()))
    }

    /// The refined mask and (if foreground estimation is on) the subject's colours of a photo,
    /// computed by the refinement passes and read back.
    pub fn refine(
        &self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
    ) -> Result<Refined, RenderError> {
        let images = self.upload(photo, mask)?;
        self.refine_images(&images, settings, false)?;
        self.read_refined(&images, settings)
    }

    /// Reads back the refined mask and (with foreground estimation on) the subject's colours
    /// that the last refinement run on `images` left in their cutout texture.
    pub fn read_refined(
        &self,
        images: &ImageTextures,
        settings: &CompositeSettings,
    ) -> Result<Refined, RenderError> {
        let rgba = self.read_rgba(&images.cutout, None)?;
        let [width, height] = images.size();
        let mut fg = Vec::with_capacity(rgba.len() / 4 * 3);
        let mut refined = Vec::with_capacity(rgba.len() / 4);
        for px in rgba.chunks_exact(4) {
            fg.extend_from_slice(&px[..3]);
            refined.push(px[3]);
        }
        let too_small = || RenderError::Readback("wrong buffer size".to_owned());
        Ok(Refined {
            mask: GrayImage::from_raw(width, height, refined).ok_or_else(too_small)?,
            foreground: if settings.refine.foreground {
                Some(RgbImage::from_raw(width, height, fg).ok_or_else(too_small)?)
            } else {
                None
            },
        })
    }

    /// The export composite of a photo and its mask, at full resolution (refined as
    /// `settings` say), with the touch-up edits when there are any.
    pub fn composite(
        &self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
        edits: Option<&EditLayer>,
    ) -> Result<RgbaImage, RenderError> {
        let images = self.upload(photo, mask)?;
        if let Some(layer) = edits {
            images.write_edits(&self.queue, layer, layer.bounds())?;
        }
        let (width, height) = photo.dimensions();
        let target = self.target(width, height);
        let encoder = self.refine_and_draw(&images, settings, &target);
        let pixels = self.read_rgba(&target, Some(encoder))?;
        RgbaImage::from_raw(width, height, pixels)
            .ok_or_else(|| RenderError::Readback("wrong buffer size".to_owned()))
    }

    /// A render target of the composite's format, `width` × `height` (a window's size, say).
    pub fn target(&self, width: u32, height: u32) -> wgpu::Texture {
        super::texture_with_usage(
            &self.device,
            "cutout offscreen target",
            (width, height),
            FORMAT,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        )
    }

    /// One frame of the preview while a refinement slider moves: the refinement passes for
    /// `settings`, then the whole photo composited into `target` (a window-sized texture from
    /// [`Self::target`]), in one submission; waits for the GPU and returns the wall time from
    /// submission to completion.
    pub fn frame(
        &self,
        images: &ImageTextures,
        settings: &CompositeSettings,
        target: &wgpu::Texture,
    ) -> Result<Duration, RenderError> {
        let encoder = self.refine_and_draw(images, settings, target);
        let started = Instant::now();
        self.queue.submit([encoder.finish()]);
        self.wait()?;
        Ok(started.elapsed())
    }

    /// Records the refinement passes and the composite of the whole photo into `target`.
    fn refine_and_draw(
        &self,
        images: &ImageTextures,
        settings: &CompositeSettings,
        target: &wgpu::Texture,
    ) -> wgpu::CommandEncoder {
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        self.pipeline
            .write_uniforms(&self.queue, Uniforms::export(settings, ImageView::FULL));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("cutout offscreen encoder"),
            });
        images.refine(&self.pipeline, &self.queue, &mut encoder, settings);
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("cutout offscreen pass"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Store,
                    },
                    depth_slice: None,
                })],
                ..wgpu::RenderPassDescriptor::default()
            });
            self.pipeline.draw(&mut pass, images);
        }
        encoder
    }

    /// Copies an RGBA8 texture back to memory, after the work already in `encoder`.
    fn read_rgba(
        &self,
        texture: &wgpu::Texture,
        encoder: Option<wgpu::CommandEncoder>,
    ) -> Result<Vec<u8>, RenderError> {
        let (width, height) = (texture.width(), texture.height());
        let row_bytes = width * 4;
        let padded_row_bytes = row_bytes.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cutout offscreen readback"),
            size: u64::from(padded_row_bytes) * u64::from(height),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = encoder.unwrap_or_else(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("cutout readback encoder"),
                })
        });
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded_row_bytes),
                    rows_per_image: Some(height),
                },
            },
            texture.size(),
        );
        self.queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        let (tx, rx) = crossbeam_channel::bounded(1);
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| RenderError::Readback(e.to_string()))?
            .map_err(|e| RenderError::Readback(e.to_string()))?;
        let mapped = slice
            .get_mapped_range()
            .map_err(|e| RenderError::Readback(e.to_string()))?;
        let mut pixels = Vec::with_capacity((row_bytes * height) as usize);
        for row in mapped.chunks_exact(padded_row_bytes as usize) {
            pixels.extend_from_slice(&row[..row_bytes as usize]);
        }
        drop(mapped);
        readback.unmap();
        Ok(pixels)
    }
}
