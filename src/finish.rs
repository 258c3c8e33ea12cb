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

use image::{GrayImage, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::{
    image_ops::{
        self, CompositeSettings, ImageError,
        edges::{self, BandSizes},
        edits::EditLayer,
        refine::{RefineSettings, Refined},
    },
    render::{self, Offscreen, RenderError},
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

/// Finishes photos; opens a headless GPU device the first time the edge passes go there and
/// keeps it.
#[derive(Default)]
pub struct Finisher {
    asked: EdgeDevice,
    /// The default adapter, once looked for (`Err`: why there is none).
    adapter: Option<Result<wgpu::Adapter, String>>,
    gpu: Option<Offscreen>,
    /// Where the last edge passes ran, and their bands on the CPU.
    last: Option<(EdgePath, Option<BandSizes>)>,
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

    fn adapter_info(&mut self) -> Result<wgpu::AdapterInfo, String> {
        if let Some(gpu) = &self.gpu {
            return Ok(gpu.adapter_info().clone());
        }
        self.adapter
            .get_or_insert_with(|| Offscreen::default_adapter().map_err(|e| e.to_string()))
            .as_ref()
            .map(wgpu::Adapter::get_info)
            .map_err(Clone::clone)
    }

    /// Where the edge passes of `settings` run (`None`: none is on); opens the GPU device when
    /// they go there.
    pub fn edge_path(
        &mut self,
        settings: &RefineSettings,
    ) -> Result<Option<EdgePath>, FinishError> {
        let asked = self.asked;
        let path = EdgePath::choose(asked, settings, || self.adapter_info())
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
    pub fn last_edges(&self) -> Option<&(EdgePath, Option<BandSizes>)> {
        self.last.as_ref()
    }

    /// The headless GPU device, opened on first use.
    pub fn gpu(&mut self) -> Result<&Offscreen, RenderError> {
        if self.gpu.is_none() {
            let adapter = match self.adapter.take() {
                Some(Ok(adapter)) => adapter,
                Some(Err(e)) => {
                    self.adapter = Some(Err(e.clone()));
                    return Err(RenderError::NoAdapter(e));
                }
                None => Offscreen::default_adapter()?,
            };
            self.gpu = Some(Offscreen::on(&adapter)?);
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
        self.last = Some((path, sizes));
        Ok(refined)
    }

    /// The full-resolution composite (straight alpha) after refinement, with the touch-up
    /// edits when there are any.
    pub fn composite(
        &mut self,
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

    /// Composites and writes the PNG atomically: RGBA over a transparent background, RGB
    /// otherwise. Returns the path written (a numbered name when `output`'s holds another
    /// photo's result; see [`image_ops::Target`]).
    pub fn write(
        &mut self,
        photo: &RgbImage,
        mask: &GrayImage,
        settings: &CompositeSettings,
        edits: Option<&EditLayer>,
        output: &image_ops::Target,
    ) -> Result<std::path::PathBuf, FinishError> {
        let rgba = self.composite(photo, mask, settings, edits)?;
        let (w, h) = rgba.dimensions();
        let written = if settings.has_alpha() {
            image_ops::write_png_atomic(
                output,
                rgba.as_raw(),
                w,
                h,
                image::ExtendedColorType::Rgba8,
            )?
        } else {
            let rgb: Vec<u8> = rgba
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            image_ops::write_png_atomic(output, &rgb, w, h, image::ExtendedColorType::Rgb8)?
        };
        Ok(written)
    }
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
