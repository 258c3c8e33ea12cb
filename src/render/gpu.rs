//! GPU objects: the pipeline (created once per target format) and the image textures.

use image::{GrayImage, RgbImage};

use super::{
    ImageView, PreviewOptions, RenderError,
    refine::{CUTOUT_FORMAT, RefineTargets, Refiner},
    texture_with_usage,
};
use crate::image_ops::{
    CompositeSettings,
    edits::{EditLayer, PixelRect},
};

/// The uniform block of `composite.wgsl` (80 bytes, same field order and padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Uniforms {
    view_min: [f32; 2],
    view_max: [f32; 2],
    color: [f32; 4],
    behind: [f32; 4],
    lo: f32,
    hi: f32,
    dim: f32,
    split: f32,
    mask_only: f32,
    checker_px: f32,
    pad: [f32; 2],
}

impl Uniforms {
    /// Uniforms for the on-screen preview.
    pub fn preview(
        settings: &CompositeSettings,
        view: ImageView,
        options: PreviewOptions,
        checker_px: f32,
    ) -> Self {
        let split = if options.photo_only {
            2.0
        } else {
            options.split.unwrap_or(-1.0)
        };
        Self {
            split,
            mask_only: if options.mask_only { 1.0 } else { 0.0 },
            checker_px: checker_px.max(1.0),
            ..Self::export(settings, view)
        }
    }

    /// Uniforms for the export: one pixel per photo pixel, straight alpha.
    pub fn export(settings: &CompositeSettings, view: ImageView) -> Self {
        let (lo, hi) = settings.ramp();
        let [r, g, b] = settings.color.map(|c| f32::from(c) / 255.0);
        let mut behind = [0.0; 4];
        behind[settings.background.shader_code() as usize] = 1.0;
        Self {
            view_min: view.min,
            view_max: view.max,
            color: [r, g, b, 1.0],
            behind,
            lo,
            hi,
            dim: settings.dim,
            split: -1.0,
            mask_only: 0.0,
            checker_px: 8.0,
            pad: [0.0; 2],
        }
    }
}

/// What a composite pipeline draws: fixed when it is built (a shader override constant, so that
/// the fragment stage never branches on uniforms alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The on-screen preview: opaque, checkerboard behind transparency.
    Preview,
    /// An export: one pixel per photo pixel, straight alpha over transparency.
    Export,
}

/// Pipeline, bind group layout, sampler and uniform buffer, and the refinement's compute
/// pipelines: created once.
pub struct Pipeline {
    pipeline: wgpu::RenderPipeline,
    pub(super) refiner: Refiner,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    uniforms: wgpu::Buffer,
}

/// The composite's bindings: the uniforms (0), the photo, mask and cutout textures (1, 2, 3),
/// the edit layer (5) and the sampler (4).
fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: true },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("cutout composite bind group layout"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<Uniforms>() as u64),
                },
                count: None,
            },
            texture_entry(1),
            texture_entry(2),
            texture_entry(3),
            texture_entry(5),
            wgpu::BindGroupLayoutEntry {
                binding: 4,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                count: None,
            },
        ],
    })
}

impl Pipeline {
    /// Builds the composite pipeline for a target format.
    pub fn new(device: &wgpu::Device, target: wgpu::TextureFormat, output: Output) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cutout composite shader"),
            source: wgpu::ShaderSource::Wgsl(include_str!("composite.wgsl").into()),
        });
        let layout = bind_group_layout(device);
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("cutout composite pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("cutout composite pipeline"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[
                        ("EXPORT", f64::from(u8::from(output == Output::Export))),
                        ("TARGET_SRGB", f64::from(u8::from(target.is_srgb()))),
                    ],
                    ..wgpu::PipelineCompilationOptions::default()
                },
                targets: &[Some(wgpu::ColorTargetState {
                    format: target,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("cutout composite sampler"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..wgpu::SamplerDescriptor::default()
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cutout composite uniforms"),
            size: std::mem::size_of::<Uniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            pipeline,
            refiner: Refiner::new(device),
            layout,
            sampler,
            uniforms,
        }
    }

    /// Binds the photo, the cutout, the backdrop and the edit layer (in that order) with the
    /// uniforms and the sampler.
    fn bind_group(&self, device: &wgpu::Device, textures: [&wgpu::Texture; 4]) -> wgpu::BindGroup {
        let [photo, cutout, backdrop, edits] =
            textures.map(|t| t.create_view(&wgpu::TextureViewDescriptor::default()));
        let view = |binding, view| wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::TextureView(view),
        };
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cutout composite bind group"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniforms.as_entire_binding(),
                },
                view(1, &photo),
                view(2, &cutout),
                view(3, &backdrop),
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
                view(5, &edits),
            ],
        })
    }

    /// Writes the uniforms for the next draw.
    pub fn write_uniforms(&self, queue: &wgpu::Queue, uniforms: Uniforms) {
        queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&uniforms));
    }

    /// Draws the composite into the current viewport of `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, images: &ImageTextures) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &images.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}

/// The photo, its mask, the refined cutout (subject colours + refined mask, written by the
/// refinement passes) and the blurred backdrop as textures, with their bind groups.
pub struct ImageTextures {
    mask: wgpu::Texture,
    /// The touch-up edits, `[strength, keep]` a pixel (see `image_ops::edits`); zero (no edits)
    /// when made.
    edits: wgpu::Texture,
    pub(super) cutout: wgpu::Texture,
    refine: RefineTargets,
    bind_group: wgpu::BindGroup,
    size: [u32; 2],
}

/// A 2D texture that shaders read and the queue writes.
fn texture(
    device: &wgpu::Device,
    label: &str,
    size: (u32, u32),
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    texture_with_usage(
        device,
        label,
        size,
        format,
        wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
    )
}

fn write(queue: &wgpu::Queue, texture: &wgpu::Texture, bytes: &[u8], bytes_per_pixel: u32) {
    let size = texture.size();
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(size.width * bytes_per_pixel),
            rows_per_image: Some(size.height),
        },
        size,
    );
}

/// RGB → RGBA with opaque alpha (GPUs have no 3-byte texture format).
pub(super) fn rgba_bytes(rgb: &RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.as_raw().len() / 3 * 4);
    for px in rgb.as_raw().chunks_exact(3) {
        out.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    out
}

/// The cutout texture's bytes computed on the CPU: the subject's colours (the photo's where
/// `foreground` is `None`) with the refined mask as alpha, as the refinement passes write it.
pub fn pack_cutout(photo: &RgbImage, mask: &GrayImage, foreground: Option<&RgbImage>) -> Vec<u8> {
    use rayon::prelude::*;
    let colours = foreground.unwrap_or(photo);
    let mut out = vec![0u8; mask.as_raw().len() * 4];
    out.par_chunks_mut(4 * 4096)
        .zip(colours.as_raw().par_chunks(3 * 4096))
        .zip(mask.as_raw().par_chunks(4096))
        .for_each(|((out, rgb), m)| {
            for ((o, c), &a) in out.chunks_exact_mut(4).zip(rgb.chunks_exact(3)).zip(m) {
                o.copy_from_slice(&[c[0], c[1], c[2], a]);
            }
        });
    out
}

impl ImageTextures {
    /// Uploads a photo (with its blurred backdrop) and an empty mask of the same size.
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        pipeline: &Pipeline,
        photo: &RgbImage,
        backdrop: &RgbImage,
    ) -> Result<Self, RenderError> {
        let (width, height) = photo.dimensions();
        let limit = device.limits().max_texture_dimension_2d;
        if width > limit || height > limit || width == 0 || height == 0 {
            return Err(RenderError::TooLarge {
                width,
                height,
                limit,
            });
        }
        // A photo of many megapixels needs gigabytes of intermediates (the refinement's float
        // planes): running out of GPU memory is an error for the user, not a panic.
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let images = Self::create(device, queue, pipeline, photo, backdrop);
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(RenderError::OutOfMemory {
                width,
                height,
                reason: e.to_string(),
            }),
            None => Ok(images),
        }
    }

    fn create(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        pipeline: &Pipeline,
        photo: &RgbImage,
        backdrop: &RgbImage,
    ) -> Self {
        let (width, height) = photo.dimensions();
        let photo_tex = texture(
            device,
            "cutout photo",
            (width, height),
            wgpu::TextureFormat::Rgba8Unorm,
        );
        write(queue, &photo_tex, &rgba_bytes(photo), 4);
        let backdrop_tex = texture(
            device,
            "cutout blurred backdrop",
            backdrop.dimensions(),
            wgpu::TextureFormat::Rgba8Unorm,
        );
        write(queue, &backdrop_tex, &rgba_bytes(backdrop), 4);
        let mask = texture(
            device,
            "cutout mask",
            (width, height),
            wgpu::TextureFormat::R8Unorm,
        );
        let cutout = texture_with_usage(
            device,
            "cutout refined",
            (width, height),
            CUTOUT_FORMAT,
            wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::COPY_DST,
        );
        let edits = texture(
            device,
            "cutout edits",
            (width, height),
            wgpu::TextureFormat::Rg8Unorm,
        );
        let refine = RefineTargets::new(device, &pipeline.refiner, &photo_tex, &mask, &cutout);
        let bind_group = pipeline.bind_group(device, [&photo_tex, &cutout, &backdrop_tex, &edits]);
        Self {
            mask,
            edits,
            cutout,
            refine,
            bind_group,
            size: [width, height],
        }
    }

    /// Replaces the mask (same size as the photo).
    pub fn write_mask(&self, queue: &wgpu::Queue, mask: &GrayImage) -> Result<(), RenderError> {
        if mask.dimensions() != (self.size[0], self.size[1]) {
            return Err(RenderError::Readback(format!(
                "mask is {}×{}, photo texture is {}×{}",
                mask.width(),
                mask.height(),
                self.size[0],
                self.size[1]
            )));
        }
        write(queue, &self.mask, mask.as_raw(), 1);
        Ok(())
    }

    /// Copies `rect` of the edit layer (same size as the photo) into the edit texture: the
    /// part a brush stroke changed, or all of it after an undo.
    pub fn write_edits(
        &self,
        queue: &wgpu::Queue,
        layer: &EditLayer,
        rect: PixelRect,
    ) -> Result<(), RenderError> {
        let (w, h) = layer.dimensions();
        if [w, h] != self.size
            || rect.x1 > w
            || rect.y1 > h
            || rect.width() == 0
            || rect.height() == 0
        {
            return Err(RenderError::Readback(format!(
                "edit layer {w}×{h} (region {rect:?}) does not fit the {}×{} photo texture",
                self.size[0], self.size[1]
            )));
        }
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.edits,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: rect.x0,
                    y: rect.y0,
                    z: 0,
                },
                aspect: wgpu::TextureAspect::All,
            },
            &layer.region(rect),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(rect.width() * 2),
                rows_per_image: Some(rect.height()),
            },
            wgpu::Extent3d {
                width: rect.width(),
                height: rect.height(),
                depth_or_array_layers: 1,
            },
        );
        Ok(())
    }

    /// Replaces the cutout texture with one computed on the CPU ([`pack_cutout`]).
    pub fn write_cutout(&self, queue: &wgpu::Queue, rgba: &[u8]) -> Result<(), RenderError> {
        let expected = self.size[0] as usize * self.size[1] as usize * 4;
        if rgba.len() != expected {
            return Err(RenderError::Readback(format!(
                "the cutout has {} bytes, the {}×{} texture takes {expected}",
                rgba.len(),
                self.size[0],
                self.size[1]
            )));
        }
        write(queue, &self.cutout, rgba, 4);
        Ok(())
    }

    /// Records the refinement passes (guided filter, foreground colours, as `settings` say) that
    /// turn the mask into the cutout texture the composite reads. Needed after every mask and
    /// after every change of the refinement or ramp settings.
    pub fn refine(
        &self,
        pipeline: &Pipeline,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        settings: &CompositeSettings,
    ) {
        let all = 0..self.refine_len(settings);
        self.refine_part(pipeline, queue, encoder, settings, all);
    }

    /// How many dispatches a refinement run for `settings` has.
    pub fn refine_len(&self, settings: &CompositeSettings) -> usize {
        self.refine.len(settings)
    }

    /// Records dispatches `part` of a refinement run (see [`RefineTargets::record_part`]).
    pub fn refine_part(
        &self,
        pipeline: &Pipeline,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        settings: &CompositeSettings,
        part: std::ops::Range<usize>,
    ) {
        self.refine
            .record_part(&pipeline.refiner, queue, encoder, settings, part);
    }

    /// Photo size in pixels.
    pub fn size(&self) -> [u32; 2] {
        self.size
    }
}
