//! The wgpu compositor: the photo and its mask as textures, composited by `composite.wgsl`
//! (threshold, edge softness, background, mask view, before/after split) on screen through an
//! egui-wgpu paint callback, or offscreen at full resolution.
//!
//! GPU objects are created once ([`Pipeline`]); textures are replaced only when the photo or the
//! mask changes ([`ImageTextures`]); per frame only the 80-byte [`Uniforms`] are written.
//! The formulas are those of [`crate::image_ops::composite`], the CPU reference.

mod gpu;
mod offscreen;
mod refine;
mod timer;

pub use gpu::{ImageTextures, Output, Pipeline, Uniforms, pack_cutout};
pub use offscreen::Offscreen;
pub use timer::{GpuTimer, window_device_descriptor};

/// Whether an adapter draws in software on the CPU (Mesa's llvmpipe/lavapipe, SwiftShader,
/// Windows' WARP): compute passes there are slower than native CPU code.
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || [
            "llvmpipe",
            "lavapipe",
            "softpipe",
            "swiftshader",
            "basic render",
        ]
        .iter()
        .any(|s| name.contains(s))
}

/// An adapter in a few words: "NVIDIA H200 (Vulkan)".
pub fn adapter_label(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?})", info.name, info.backend)
}

/// Why the GPU compositor could not run.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No wgpu adapter (no GPU, no Vulkan/GL driver, no lavapipe).
    #[error(
        "no graphics adapter is available ({0}); install a Vulkan driver (on Linux without a GPU: mesa-vulkan-drivers)"
    )]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("the graphics device could not be opened: {0}")]
    Device(String),
    /// The image is larger than the GPU's texture limit.
    #[error(
        "the image ({width}×{height} px) is larger than this GPU's texture limit of {limit} px"
    )]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `max_texture_dimension_2d`.
        limit: u32,
    },
    /// The GPU ran out of memory for the photo's textures.
    #[error(
        "the GPU has not enough free memory for a {width}×{height} px photo ({reason}); close other programs that use the GPU or use a smaller photo"
    )]
    OutOfMemory {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// What wgpu said.
        reason: String,
    },
    /// Reading the result back failed.
    #[error("reading the composite back from the GPU failed: {0}")]
    Readback(String),
}

/// Which part of the image the viewport shows, in image coordinates (0–1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageView {
    /// Image coordinates at the viewport's top-left corner.
    pub min: [f32; 2],
    /// Image coordinates at the viewport's bottom-right corner.
    pub max: [f32; 2],
}

impl ImageView {
    /// The whole image, edge to edge.
    pub const FULL: Self = Self {
        min: [0.0, 0.0],
        max: [1.0, 1.0],
    };
}

/// What the preview shows besides the composite.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PreviewOptions {
    /// Show the mask (after threshold and softness) as grey instead of the composite.
    pub mask_only: bool,
    /// Viewport fraction (0–1) left of which the original photo shows; `None` = no split.
    pub split: Option<f32>,
    /// The mask is not there yet: show the photo alone.
    pub photo_only: bool,
}

/// A 2D texture with one mip level and the given usage.
fn texture_with_usage(
    device: &wgpu::Device,
    label: &str,
    (width, height): (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}
