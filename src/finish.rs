//! The last step before a file or the clipboard: refinement of the network's mask (guided
//! filter), the subject's colours (blur fusion) and the composite. Shared by the command line
//! ([`crate::batch`]) and the app's [`crate::worker`].
//!
//! The edge passes run on one of two paths that give the same result within one grey level: the
//! CPU path ([`image_ops::edges`], all cores, only the band of pixels that can change) or the GPU
//! passes ([`render::Offscreen`]). Which one ran is always said ([`EdgePath`]), never a silent
//! fallback: `Auto` uses a hardware GPU for the guided filter and the CPU otherwise (colours
//! alone, a software rasterizer such as lavapipe, or no adapter); `Gpu` fails with the reason
//! when there is no GPU to use.

use std::{
    sync::{Mutex, OnceLock},
    time::Instant,
};

use image::{ExtendedColorType, GrayImage, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::{
    image_ops::{
        self, CompositeSettings, ImageError, PngCompression,
        edges::{self, BandSizes},
        edits::EditLayer,
        refine::{RefineSettings, Refined},
    },
    render::{self, Offscreen, RenderError},
    timing::ms_since,
};

/// Why finishing a photo failed.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The GPU refinement could not run.
    #[error("the edge passes cannot run on the GPU: {0}")]
    Gpu(#[from] RenderError),
    /// Compositing or writing.
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Why one photo has no result: the one per-photo error of the command line, the batch and the
/// app, so that each can tell the photo's fault from the machine's.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The photo cannot be read or decoded: the photo's fault.
    #[error(transparent)]
    Photo(#[from] ImageError),
    /// No session is loaded (none configured yet, or it failed): not the photo's fault.
    #[error("no model is loaded yet, so {name} cannot be processed")]
    NoModel {
        /// The photo.
        name: String,
    },
    /// The network failed on this photo.
    #[error("{error}: {name}")]
    Network {
        /// What failed.
        error: crate::engine::EngineError,
        /// The photo.
        name: String,
    },
    /// Compositing or writing the result failed (a full disk, a read-only folder, the GPU): the
    /// photo itself is fine and can be written elsewhere.
    #[error(transparent)]
    Write(#[from] FinishError),
}

/// Where the edge passes should run (`--edges`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EdgeDevice {
    /// The GPU for the guided filter when it is a hardware GPU; the CPU otherwise.
    #[default]
    Auto,
    /// Native code on all CPU cores.
    Cpu,
    /// The wgpu compute passes, on whatever adapter there is (lavapipe included).
    Gpu,
}

/// What ran the edge passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeRunner {
    /// The CPU path.
    Cpu {
        /// Threads it uses.
        threads: usize,
    },
    /// The GPU passes.
    Gpu {
        /// The adapter, "NVIDIA H200 (Vulkan)" say.
        adapter: String,
    },
}

impl std::fmt::Display for EdgeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu { threads: 1 } => write!(f, "CPU, 1 thread"),
            Self::Cpu { threads } => write!(f, "CPU, {threads} threads"),
            Self::Gpu { adapter } => write!(f, "GPU, {adapter}"),
        }
    }
}

/// Where the edge passes run and why there: "CPU, 2 threads (llvmpipe (Vulkan) is a software
/// rasterizer)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgePath {
    /// What runs them.
    pub runner: EdgeRunner,
    /// Why, in the user's words.
    pub why: String,
}

impl std::fmt::Display for EdgePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.runner, self.why)
    }
}

impl EdgePath {
    /// The CPU path, for this reason.
    pub fn cpu(why: impl Into<String>) -> Self {
        Self {
            runner: EdgeRunner::Cpu {
                threads: edges::threads(),
            },
            why: why.into(),
        }
    }

    /// Where `asked` puts the edge passes of `settings` on a machine whose graphics adapter is
    /// `adapter` (`Err`: why there is none). `None`: no edge pass is on. A GPU asked for that
    /// is not there is an error, not the CPU.
    pub fn choose(
        asked: EdgeDevice,
        settings: &RefineSettings,
        adapter: impl FnOnce() -> Result<wgpu::AdapterInfo, String>,
    ) -> Result<Option<Self>, String> {
        if !settings.guided && !settings.foreground {
            return Ok(None);
        }
        let gpu = |why: &str, info: &wgpu::AdapterInfo| Self {
            runner: EdgeRunner::Gpu {
                adapter: render::adapter_label(info),
            },
            why: why.to_owned(),
        };
        Ok(Some(match asked {
            EdgeDevice::Cpu => Self::cpu("asked for"),
            EdgeDevice::Gpu => gpu("asked for", &adapter()?),
            EdgeDevice::Auto if !settings.guided => {
                Self::cpu("colours only, which need no GPU device")
            }
            EdgeDevice::Auto => match adapter() {
                Ok(info) if render::is_software(&info) => {
                    Self::cpu(format!("{} is a software rasterizer", info.name))
                }
                Ok(info) => gpu("a hardware GPU", &info),
                Err(e) => Self::cpu(format!("no graphics adapter: {e}")),
            },
        }))
    }
}

/// What a written file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Product {
    /// The composite: RGBA over a transparent background, RGB over an opaque one.
    #[default]
    Composite,
    /// The refined mask alone, 8-bit grey.
    Mask,
}

impl Product {
    /// `settings` as this product needs them: the mask alone has no colours to estimate.
    pub fn settings(self, settings: &CompositeSettings) -> CompositeSettings {
        let mut settings = *settings;
        settings.refine.foreground &= self != Self::Mask;
        settings
    }
}

/// A file written by [`Finisher::write`], and where its time went.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The path written: the one asked for, or a numbered one beside it (see
    /// [`image_ops::Target`]).
    pub path: std::path::PathBuf,
    /// Edge passes and compositing, in milliseconds.
    pub finish_ms: f64,
    /// PNG encoding and the atomic write, in milliseconds.
    pub encode_ms: f64,
}

/// Finishes photos; opens a headless GPU device the first time the edge passes go there and
/// keeps it. Shared by reference: the batch's finishing threads all use one.
#[derive(Default)]
pub struct Finisher {
    asked: EdgeDevice,
    png: PngCompression,
    /// The default adapter, once looked for (`Err`: why there is none). Held while the GPU
    /// device opens, so that only one is opened.
    adapter: Mutex<Option<Result<wgpu::Adapter, String>>>,
    gpu: OnceLock<Offscreen>,
    /// Where the last edge passes ran, and their bands on the CPU.
    last: Mutex<Option<(EdgePath, Option<BandSizes>)>>,
}

impl Finisher {
    /// A finisher that chooses the edge path itself ([`EdgeDevice::Auto`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A finisher that runs the edge passes where `asked` says.
    pub fn with_edges(asked: EdgeDevice) -> Self {
        Self {
            asked,
            ..Self::default()
        }
    }

    /// The same, writing PNGs with `png` compression.
    pub fn with_png(self, png: PngCompression) -> Self {
        Self { png, ..self }
    }

    fn adapter_info(&self) -> Result<wgpu::AdapterInfo, String> {
        if let Some(gpu) = self.gpu.get() {
            return Ok(gpu.adapter_info().clone());
        }
        lock(&self.adapter)
            .get_or_insert_with(|| Offscreen::default_adapter().map_err(|e| e.to_string()))
            .as_ref()
            .map(wgpu::Adapter::get_info)
            .map_err(Clone::clone)
    }

    /// Where the edge passes of `settings` run (`None`: none is on); opens the GPU device when
    /// they go there.
    pub fn edge_path(&self, settings: &RefineSettings) -> Result<Option<EdgePath>, FinishError> {
        let path = EdgePath::choose(self.asked, settings, || self.adapter_info())
            .map_err(|e| FinishError::Gpu(RenderError::NoAdapter(e)))?;
        if let Some(EdgePath {
            runner: EdgeRunner::Gpu { .. },
            ..
        }) = &path
        {
            self.gpu()?;
        }
        Ok(path)
    }

    /// Where the last edge passes ran, and (on the CPU) how large their bands were.
    pub fn last_edges(&self) -> Option<(EdgePath, Option<BandSizes>)> {
        lock(&self.last).clone()
    }

    /// The headless GPU device, opened on first use.
    pub fn gpu(&self) -> Result<&Offscreen, RenderError> {
        if let Some(gpu) = self.gpu.get() {
            return Ok(gpu);
        }
        let mut adapter = lock(&self.adapter);
        if let Some(gpu) = self.gpu.get() {
            return Ok(gpu);
        }
        let opened = match adapter.take() {
            Some(Ok(found)) => Offscreen::on(&found),
            Some(Err(e)) => {
                *adapter = Some(Err(e.clone()));
                Err(RenderError::NoAdapter(e))
            }
            None => Offscreen::default_adapter().and_then(|found| Offscreen::on(&found)),
        }?;
        Ok(self.gpu.get_or_init(|| opened))
    }

    /// The mask after refinement and the subject's colours, as `settings.refine` asks.
    pub fn refine(
        &self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
    ) -> Result<Refined, FinishError> {
        let Some(path) = self.edge_path(&settings.refine)? else {
            return Ok(Refined {
                mask: mask.clone(),
                foreground: None,
            });
        };
        let (refined, sizes) = match path.runner {
            EdgeRunner::Gpu { .. } => (self.gpu()?.refine(photo, mask, settings)?, None),
            EdgeRunner::Cpu { .. } => {
                let (refined, sizes) =
                    edges::refine(photo, mask, &settings.refine, |m| settings.alpha(m));
                (refined, Some(sizes))
            }
        };
        *lock(&self.last) = Some((path, sizes));
        Ok(refined)
    }

    /// The full-resolution composite (straight alpha) after refinement, with the touch-up
    /// edits when there are any.
    pub fn composite(
        &self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
        edits: Option<&EditLayer>,
    ) -> Result<RgbaImage, FinishError> {
        let refined = self.refine(photo, mask, settings)?;
        Ok(image_ops::composite::composite(
            photo,
            &refined.mask,
            refined.foreground.as_ref(),
            settings,
            edits,
        )?)
    }

    /// The one way a result reaches a file (the command line, the app's Export and Export all):
    /// refines, composites and writes the PNG, atomically or onto standard output (see
    /// [`image_ops::write_png`]).
    pub fn write(
        &self,
        (photo, mask): (&RgbImage, &GrayImage),
        settings: &CompositeSettings,
        product: Product,
        edits: Option<&EditLayer>,
        output: &image_ops::Target,
    ) -> Result<Written, FinishError> {
        let started = Instant::now();
        let settings = product.settings(settings);
        let (w, h) = photo.dimensions();
        let (pixels, color) = match product {
            Product::Mask => (
                self.refine(photo, mask, &settings)?.mask.into_raw(),
                ExtendedColorType::L8,
            ),
            Product::Composite if settings.has_alpha() => (
                self.composite(photo, mask, &settings, edits)?.into_raw(),
                ExtendedColorType::Rgba8,
            ),
            Product::Composite => (
                strip_alpha(&self.composite(photo, mask, &settings, edits)?),
                ExtendedColorType::Rgb8,
            ),
        };
        let finish_ms = ms_since(started);
        let started = Instant::now();
        let path = image_ops::write_png(output, (&pixels, w, h, color), self.png)?;
        Ok(Written {
            path,
            finish_ms,
            encode_ms: ms_since(started),
        })
    }
}

/// The RGB bytes of an opaque composite.
fn strip_alpha(rgba: &RgbaImage) -> Vec<u8> {
    rgba.as_raw()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// The value behind `mutex`, also after a panic elsewhere (what it guards stays consistent:
/// each write is one assignment).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn adapter(name: &str, device_type: wgpu::DeviceType) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.to_owned(),
            vendor: 0,
            device: 0,
            device_type,
            device_pci_bus_id: String::new(),
            driver: String::new(),
            driver_info: String::new(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: 0,
            subgroup_max_size: 0,
            transient_saves_memory: Some(false),
            limit_bucket: None,
        }
    }

    fn settings(guided: bool, foreground: bool) -> RefineSettings {
        RefineSettings {
            guided,
            foreground,
            ..RefineSettings::default()
        }
    }

    #[test]
    fn auto_puts_the_guided_filter_on_a_hardware_gpu_and_everything_else_on_the_cpu() {
        let gpu = || Ok(adapter("NVIDIA H200", wgpu::DeviceType::DiscreteGpu));
        let lavapipe = || {
            Ok(adapter(
                "llvmpipe (LLVM 15.0.6, 256 bits)",
                wgpu::DeviceType::Cpu,
            ))
        };
        let none = || Err("no Vulkan driver".to_owned());
        let auto = EdgeDevice::Auto;
        let path = EdgePath::choose(auto, &settings(true, true), gpu)
            .unwrap()
            .unwrap();
        assert_eq!(
            path.to_string(),
            "GPU, NVIDIA H200 (Vulkan) (a hardware GPU)"
        );
        // Colours alone never open a device, whatever the adapter.
        let path = EdgePath::choose(auto, &settings(false, true), || -> Result<_, String> {
            panic!("no adapter is looked for")
        })
        .unwrap()
        .unwrap();
        assert!(matches!(path.runner, EdgeRunner::Cpu { .. }), "{path}");
        let path = EdgePath::choose(auto, &settings(true, false), lavapipe)
            .unwrap()
            .unwrap();
        assert!(matches!(path.runner, EdgeRunner::Cpu { .. }));
        assert!(
            path.why.contains("llvmpipe") && path.why.contains("software"),
            "{path}"
        );
        let path = EdgePath::choose(auto, &settings(true, true), none)
            .unwrap()
            .unwrap();
        assert!(
            path.why.contains("no graphics adapter: no Vulkan driver"),
            "{path}"
        );
        assert_eq!(
            EdgePath::choose(auto, &settings(false, false), gpu).unwrap(),
            None
        );
    }

    #[test]
    fn a_forced_path_runs_there_or_says_why_not() {
        let lavapipe = || Ok(adapter("llvmpipe", wgpu::DeviceType::Cpu));
        let path = EdgePath::choose(EdgeDevice::Gpu, &settings(false, true), lavapipe)
            .unwrap()
            .unwrap();
        assert!(matches!(path.runner, EdgeRunner::Gpu { .. }), "{path}");
        let err = EdgePath::choose(EdgeDevice::Gpu, &settings(true, true), || {
            Err("no Vulkan driver".to_owned())
        })
        .unwrap_err();
        assert_eq!(err, "no Vulkan driver");
        let gpu = || Ok(adapter("NVIDIA H200", wgpu::DeviceType::DiscreteGpu));
        let path = EdgePath::choose(EdgeDevice::Cpu, &settings(true, true), gpu)
            .unwrap()
            .unwrap();
        assert_eq!(
            path.runner,
            EdgeRunner::Cpu {
                threads: edges::threads()
            }
        );
    }
}
