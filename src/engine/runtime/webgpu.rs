//! WebGPU: ONNX Runtime's WebGPU execution provider, a plugin built on Dawn that runs the network
//! on any desktop GPU through Vulkan (Linux, Windows), Direct3D 12 (Windows) or Metal (macOS).
//! `cutout setup` fetches it on every machine (it is small), as every plugin is loaded (see
//! [`super::plugin`]).
//!
//! The plugin does not say which adapter Dawn chose. cutout asks the same native API through
//! wgpu for the adapters it offers and ranks them as Dawn does for a high-performance request
//! (discrete, then integrated, then virtual, software last), so that the report can name the GPU,
//! FP16 is offered only where shaders take 16-bit floats, and `auto` never runs the network on a
//! software renderer (SwiftShader, lavapipe, WARP), which is slower than the CPU provider.

use std::sync::OnceLock;

use super::plugin::{Plugin, PluginState};
use crate::engine::providers::Precision;

/// The plugin: Microsoft's wheel, pinned to the release cutout was tested with.
pub const PLUGIN: Plugin = Plugin {
    label: "WebGPU",
    title: "WebGPU",
    package: "onnxruntime-ep-webgpu==0.4.0",
    ep_name: "WebGpuExecutionProvider",
    folder: "webgpu",
    wheel_prefix: "onnxruntime_ep_webgpu/",
    file_names: [
        "libonnxruntime_providers_webgpu.so",
        "onnxruntime_providers_webgpu.dll",
        "libonnxruntime_providers_webgpu.dylib",
    ],
    dependencies: &[],
    every_machine: true,
};

/// The plugin's own switch: offer WebGPU even where ONNX Runtime discovered no GPU (Linux
/// containers and VMs that hide `/sys/class/drm`); Dawn still picks the adapter itself.
pub const ALLOW_ANY_ADAPTER_VAR: &str = "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER";

/// PCI vendors whose Linux DRM devices only drive a display (server BMCs, virtual machines'
/// display adapters): ONNX Runtime offers WebGPU such a device, but no GPU stands behind it.
const DISPLAY_ONLY_VENDORS: [&str; 6] = [
    "0x1a03", // ASPEED (server BMCs)
    "0x102b", // Matrox
    "0x1af4", // virtio-gpu
    "0x15ad", // VMware SVGA
    "0x1b36", // QEMU / Red Hat QXL
    "0x1013", // Cirrus Logic
];

/// Whether WebGPU may run on a GPU here, without loading ONNX Runtime: the plugin is installed
/// beside `core_library`; on Linux a DRM device that is not a mere display controller exists, or
/// the plugin's switch is set; and the best adapter is no software renderer (asked only when the
/// rest holds; the answer is kept for the session). Decides whether a batch starts on the CPU
/// while WebGPU starts.
pub fn may_run(core_library: &std::path::Path) -> bool {
    PLUGIN.installed_beside(core_library)
        && (!cfg!(target_os = "linux")
            || std::env::var_os(ALLOW_ANY_ADAPTER_VAR).is_some()
            || gpu_listed(std::path::Path::new("/sys/class/drm")))
        && adapters()
            .first()
            .is_some_and(|a| a.kind != AdapterKind::Software)
}

/// Whether Linux's DRM folder lists a device that is not a mere display controller.
fn gpu_listed(drm: &std::path::Path) -> bool {
    let Ok(cards) = std::fs::read_dir(drm) else {
        return false;
    };
    cards.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("card")
            && !name.contains('-')
            && std::fs::read_to_string(entry.path().join("device/vendor"))
                .is_ok_and(|v| !DISPLAY_ONLY_VENDORS.contains(&v.trim()))
    })
}

/// The native API Dawn runs on by default on this platform, for wgpu and for people.
pub fn native_api() -> (wgpu::Backends, &'static str) {
    if cfg!(windows) {
        (wgpu::Backends::DX12, "Direct3D 12")
    } else if cfg!(target_os = "macos") {
        (wgpu::Backends::METAL, "Metal")
    } else {
        (wgpu::Backends::VULKAN, "Vulkan")
    }
}

/// What kind of device an adapter is, in the order Dawn prefers for high performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// A GPU with memory of its own.
    Discrete,
    /// A GPU sharing the processor's memory.
    Integrated,
    /// A virtual machine's GPU.
    Virtual,
    /// Something the driver does not classify.
    Other,
    /// A renderer running on the processor (SwiftShader, lavapipe/llvmpipe, WARP).
    Software,
}

impl AdapterKind {
    fn label(self) -> &'static str {
        match self {
            Self::Discrete => "discrete GPU",
            Self::Integrated => "integrated GPU",
            Self::Virtual => "virtual GPU",
            Self::Other => "GPU",
            Self::Software => "software renderer",
        }
    }
}

/// One adapter the native API offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Adapter {
    /// As the driver names it (`NVIDIA H100 80GB HBM3`, `SwiftShader Device (Subzero)`).
    pub name: String,
    /// PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x1ae0 Google/SwiftShader).
    pub vendor: u32,
    /// The native API (`Vulkan`).
    pub api: &'static str,
    /// Discrete, integrated, … or software.
    pub kind: AdapterKind,
    /// Whether shaders take 16-bit floats (`shader-f16`): what FP16 needs.
    pub shader_f16: bool,
    /// The driver and its version, as reported.
    pub driver: String,
}

impl Adapter {
    /// `Vulkan · NVIDIA H100 80GB HBM3`.
    pub fn describe(&self) -> String {
        format!("{} · {}", self.api, self.name)
    }

    /// One line for `cutout doctor`.
    pub fn details(&self) -> String {
        let driver = if self.driver.trim().is_empty() {
            String::new()
        } else {
            format!(", driver {}", self.driver.trim())
        };
        format!(
            "{} ({}, vendor {:#06x}, shader-f16 {}{driver})",
            self.describe(),
            self.kind.label(),
            self.vendor,
            if self.shader_f16 { "yes" } else { "no" }
        )
    }

    fn from_info(info: &wgpu::AdapterInfo, features: wgpu::Features, api: &'static str) -> Self {
        let name_says_software = ["swiftshader", "llvmpipe", "lavapipe", "basic render driver"]
            .iter()
            .any(|s| info.name.to_ascii_lowercase().contains(s));
        let kind = match info.device_type {
            _ if name_says_software => AdapterKind::Software,
            wgpu::DeviceType::Cpu => AdapterKind::Software,
            wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
            wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
            wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
            wgpu::DeviceType::Other => AdapterKind::Other,
        };
        Self {
            name: info.name.clone(),
            vendor: info.vendor,
            api,
            kind,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            driver: format!("{} {}", info.driver, info.driver_info),
        }
    }
}

/// The adapters this platform's native API offers, best first, asked once per process (asking
/// loads the GPU driver: 20–200 ms).
pub fn adapters() -> &'static [Adapter] {
    static ADAPTERS: OnceLock<Vec<Adapter>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let (backends, api) = native_api();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let mut found: Vec<Adapter> = pollster::block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(|a| Adapter::from_info(&a.get_info(), a.features(), api))
            .collect();
        found.sort_by_key(|a| a.kind);
        found
    })
}

/// The adapter WebGPU runs on, and the devices ONNX Runtime offers the plugin; or why it cannot
/// run here, in words a user can act on. `forced` is an explicit `--ep webgpu`: it may run on a
/// software renderer, which `auto` passes over.
pub fn choose<'e>(
    runtime: &'e super::Runtime,
    precision: Precision,
    forced: bool,
) -> Result<(Vec<ort::device::Device<'e>>, Adapter), String> {
    let devices = match &runtime.webgpu {
        PluginState::NotInstalled { folder } => {
            return Err(format!(
                "the WebGPU plugin is not installed (looked in {}); run `cutout setup` to fetch \
                 {} {} from PyPI",
                folder.display(),
                PLUGIN.package_name(),
                PLUGIN.version()
            ));
        }
        PluginState::Failed { reason, .. } => return Err(explain_failure(reason)),
        PluginState::Registered { .. } => PLUGIN.offered(&runtime.env),
    };
    if devices.is_empty() {
        // Asked before the adapters: on a machine without a GPU this costs nothing.
        return Err(NOT_DISCOVERED.to_owned());
    }
    let adapter = pick(adapters(), precision, forced)?;
    Ok((devices, adapter))
}

/// Why WebGPU cannot run where ONNX Runtime offers it no device.
pub const NOT_DISCOVERED: &str = if cfg!(windows) {
    "ONNX Runtime discovered no GPU to run WebGPU on (Windows listed no hardware display adapter; \
     Wine and some remote sessions list none); set ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1 to let \
     WebGPU pick an adapter itself"
} else {
    "ONNX Runtime discovered no GPU to run WebGPU on (on Linux it looks in /sys/class/drm, which \
     containers and some VMs hide); set ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1 to let WebGPU pick \
     an adapter itself"
};

/// [`choose`] once ONNX Runtime offers the plugin a device: the best adapter, if the network may
/// run on it.
pub fn pick(adapters: &[Adapter], precision: Precision, forced: bool) -> Result<Adapter, String> {
    let (_, api) = native_api();
    let Some(best) = adapters.first() else {
        return Err(format!(
            "no {api} adapter answered: install the GPU's {api} driver (Mesa's radv or anv for \
             AMD and Intel, the NVIDIA driver for NVIDIA){}",
            if cfg!(target_os = "linux") {
                " and the Vulkan loader (libvulkan1)"
            } else {
                ""
            }
        ));
    };
    if best.kind == AdapterKind::Software && !forced {
        return Err(format!(
            "the only {api} adapter here is a software renderer ({}), slower than the CPU \
             provider; `--ep webgpu` runs on it anyway",
            best.name
        ));
    }
    if precision == Precision::Fp16 && !best.shader_f16 {
        return Err(format!(
            "{} has no 16-bit float shaders (shader-f16), so WebGPU cannot run the network in \
             FP16 there; use FP32",
            best.name
        ));
    }
    Ok(best.clone())
}

/// Turns the plugin's load, registration or session error into a reason with a next step.
pub fn explain_failure(reason: &str) -> String {
    let (_, api) = native_api();
    // ONNX Runtime's messages lead with source paths and signatures; the cause is at the end.
    let cause = reason
        .rsplit(" was false. ")
        .next()
        .unwrap_or(reason)
        .trim();
    if reason.contains("No supported adapters") || reason.contains("Failed to get a WebGPU adapter")
    {
        format!(
            "WebGPU (Dawn) found no {api} adapter it can run on: software renderers such as \
             lavapipe lack features it needs, and a GPU needs its {api} driver ({cause})"
        )
    } else if reason.contains("libvulkan") {
        format!(
            "the Vulkan loader (libvulkan.so.1) is missing; install your distribution's \
             libvulkan1 package ({reason})"
        )
    } else if reason.contains("minimum required version") {
        format!(
            "this ONNX Runtime is too old for the WebGPU plugin; run `cutout setup --force` ({reason})"
        )
    } else {
        format!("WebGPU failed: {cause}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn adapter(name: &str, kind: AdapterKind, shader_f16: bool) -> Adapter {
        Adapter {
            name: name.to_owned(),
            vendor: 0x10de,
            api: native_api().1,
            kind,
            shader_f16,
            driver: String::new(),
        }
    }

    #[test]
    fn auto_never_picks_a_software_renderer_and_fp16_needs_shader_f16() {
        let swiftshader = adapter("SwiftShader Device (Subzero)", AdapterKind::Software, false);
        let gpu = adapter("NVIDIA H100 80GB HBM3", AdapterKind::Discrete, true);
        let no_f16 = adapter("Old GPU", AdapterKind::Integrated, false);
        let auto = pick(std::slice::from_ref(&swiftshader), Precision::Fp32, false).unwrap_err();
        assert!(
            auto.contains("software renderer (SwiftShader") && auto.contains("--ep webgpu"),
            "{auto}"
        );
        assert_eq!(
            pick(std::slice::from_ref(&swiftshader), Precision::Fp32, true),
            Ok(swiftshader)
        );
        assert_eq!(
            pick(std::slice::from_ref(&gpu), Precision::Fp16, false),
            Ok(gpu.clone())
        );
        let fp16 = pick(&[no_f16], Precision::Fp16, true).unwrap_err();
        assert!(
            fp16.contains("shader-f16") && fp16.contains("use FP32"),
            "{fp16}"
        );
        assert!(
            (NOT_DISCOVERED.contains("/sys/class/drm") || cfg!(windows))
                && NOT_DISCOVERED.contains(ALLOW_ANY_ADAPTER_VAR)
        );
        assert!(
            pick(&[], Precision::Fp32, true)
                .unwrap_err()
                .contains("driver")
        );
    }

    #[test]
    fn a_server_bmc_or_a_vm_display_is_no_gpu() {
        let drm = tempfile::tempdir().unwrap();
        assert!(!gpu_listed(&drm.path().join("missing")));
        let card = |name: &str, vendor: &str| {
            let device = drm.path().join(name).join("device");
            std::fs::create_dir_all(&device).unwrap();
            std::fs::write(device.join("vendor"), format!("{vendor}\n")).unwrap();
        };
        card("card0", "0x1a03");
        card("card0-VGA-1", "0x1002");
        assert!(
            !gpu_listed(drm.path()),
            "an ASPEED BMC (its connector aside) is no GPU"
        );
        card("card1", "0x1002");
        assert!(gpu_listed(drm.path()), "an AMD card is");
    }

    #[test]
    fn adapters_are_ranked_as_dawn_ranks_them_and_software_is_known_by_name() {
        let mut kinds = vec![
            AdapterKind::Software,
            AdapterKind::Integrated,
            AdapterKind::Discrete,
        ];
        kinds.sort();
        assert_eq!(
            kinds,
            [
                AdapterKind::Discrete,
                AdapterKind::Integrated,
                AdapterKind::Software
            ]
        );
        let info = wgpu::AdapterInfo {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".to_owned(),
            device_type: wgpu::DeviceType::Other,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
        };
        let a = Adapter::from_info(&info, wgpu::Features::empty(), "Vulkan");
        assert_eq!(a.kind, AdapterKind::Software);
        assert!(a.details().contains("software renderer"), "{}", a.details());
        assert!(
            explain_failure("libvulkan.so.1: cannot open shared object file")
                .contains("libvulkan1")
        );
    }
}
