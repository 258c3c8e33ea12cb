//! TensorRT for RTX: NVIDIA's TensorRT for GeForce/RTX GPUs, shipped on PyPI as an ONNX Runtime
//! plugin execution provider (`onnxruntime-ep-nv-tensorrt-rtx-cu13`), fetched by
//! `cutout setup --gpu` and loaded as every plugin is (see [`super::plugin`]).

pub use super::plugin::{PluginState, find_library};

/// The plugin: NVIDIA's wheel, pinned to the release cutout was tested with.
pub const PLUGIN: super::plugin::Plugin = super::plugin::Plugin {
    label: "TensorRT-RTX",
    title: "TensorRT for RTX",
    package: PACKAGE,
    ep_name: EP_NAME,
    folder: "tensorrt-rtx",
    wheel_prefix: "onnxruntime_ep_nv_tensorrt_rtx/",
    file_names: [
        "libonnxruntime_providers_nv_tensorrt_rtx.so",
        "onnxruntime_providers_nv_tensorrt_rtx.dll",
        "libonnxruntime_providers_nv_tensorrt_rtx.dylib",
    ],
    dependencies: DEPENDENCIES,
    every_machine: false,
};

/// The PyPI package, pinned to the release cutout was tested with.
pub const PACKAGE: &str = "onnxruntime-ep-nv-tensorrt-rtx-cu13==0.5.0";

/// The execution provider's name, as its devices report it.
pub const EP_NAME: &str = "NvTensorRTRTXExecutionProvider";

/// Libraries the plugin needs before it can load, in load order, as file-name prefixes (the wheel
/// holds `libtensorrt_rtx.so.1.7.1`, found by the loader only as `libtensorrt_rtx.so.1`). On
/// Windows the loader searches the plugin's own folder, so nothing is loaded ahead.
pub const DEPENDENCIES: &[&str] = if cfg!(windows) {
    &[]
} else {
    &[
        "libcudart.so.13",
        "libtensorrt_rtx.so.1",
        "libtensorrt_onnxparser_rtx.so.1",
    ]
};

/// The devices the registered plugin offers, or why it cannot run here, in words a user can act
/// on. `gpu` gives the GPU's name and compute capability as `nvidia-smi` does; it is asked only
/// when the plugin offers no device.
pub fn devices<'e>(
    runtime: &'e super::Runtime,
    gpu: impl FnOnce() -> Option<(String, String)>,
) -> Result<Vec<ort::device::Device<'e>>, String> {
    match &runtime.tensorrt_rtx {
        PluginState::NotInstalled { folder } => Err(format!(
            "the TensorRT-RTX plugin is not installed (looked in {}); run `cutout setup --gpu` \
             to fetch {PACKAGE} from PyPI",
            folder.display()
        )),
        PluginState::Failed { reason, .. } => Err(crate::engine::providers::explain_failure(
            crate::engine::providers::ProviderKind::TensorRtRtx,
            reason,
        )),
        PluginState::Registered { .. } => {
            let devices = PLUGIN.offered(&runtime.env);
            if devices.is_empty() {
                let gpu = gpu();
                Err(no_device_reason(
                    gpu.as_ref().map(|(n, c)| (n.as_str(), c.as_str())),
                ))
            } else {
                Ok(devices)
            }
        }
    }
}

/// Whether TensorRT-RTX takes a GPU of this compute capability: the plugin names 8.6 (Ampere
/// GeForce/RTX A-series), 8.9 (Ada) and 12.0 or newer (Blackwell RTX); data-centre parts such as
/// 8.0 (A100), 9.0 (H100/H200) and 10.0 (B200) are not among them.
pub fn supports_compute_capability(major: u32, minor: u32) -> bool {
    matches!((major, minor), (8, 6) | (8, 9)) || major >= 12
}

/// Parses `nvidia-smi`'s `compute_cap` field (`9.0`).
pub fn parse_compute_capability(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once('.')?;
    Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

/// Why the registered plugin offers no device, from what the machine has: `gpu` is the GPU's name
/// and compute capability as `nvidia-smi` gives them, `None` when no NVIDIA GPU answered.
pub fn no_device_reason(gpu: Option<(&str, &str)>) -> String {
    match gpu {
        None => {
            "TensorRT-RTX found no GPU: no NVIDIA GPU or driver answered on this machine".to_owned()
        }
        Some((name, cc)) => match parse_compute_capability(cc) {
            Some((major, minor)) if supports_compute_capability(major, minor) => format!(
                "TensorRT-RTX lists no device although this machine's {name} (compute \
                 capability {major}.{minor}) is a GPU it supports; ONNX Runtime did not discover \
                 the GPU (on Linux it reads /sys/class/drm, which containers and some VMs hide). \
                 The next provider runs instead"
            ),
            Some((major, minor)) => format!(
                "TensorRT-RTX runs only on RTX-class GPUs (compute capability 8.6, 8.9, or 12.0 \
                 and newer: GeForce RTX 30/40/50 and RTX workstation cards); this machine's \
                 {name} has compute capability {major}.{minor}. The next provider (TensorRT or \
                 CUDA) runs instead"
            ),
            None => format!(
                "TensorRT-RTX lists no device for this machine's {name} (its compute capability \
                 is unknown); it runs only on RTX-class GPUs (compute capability 8.6, 8.9, or \
                 12.0 and newer)"
            ),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn compute_capabilities_are_sorted_into_rtx_and_not() {
        for (cc, rtx) in [
            ("8.6", true),
            ("8.9", true),
            ("12.0", true),
            ("12.1", true),
            ("8.0", false),
            ("9.0", false),
            ("10.0", false),
            ("7.5", false),
        ] {
            let (major, minor) = parse_compute_capability(cc).unwrap();
            assert_eq!(supports_compute_capability(major, minor), rtx, "{cc}");
        }
        assert_eq!(parse_compute_capability(" 9.0\n"), Some((9, 0)));
        assert_eq!(parse_compute_capability("[N/A]"), None);
    }

    #[test]
    fn the_no_device_reason_names_the_gpu_and_what_runs_instead() {
        let hopper = no_device_reason(Some(("NVIDIA H200", "9.0")));
        assert!(
            hopper.contains("NVIDIA H200")
                && hopper.contains("compute capability 9.0")
                && hopper.contains("8.6, 8.9, or 12.0")
                && hopper.contains("runs instead"),
            "{hopper}"
        );
        let ada = no_device_reason(Some(("NVIDIA GeForce RTX 4090", "8.9")));
        assert!(
            ada.contains("is a GPU it supports") && ada.contains("/sys/class/drm"),
            "{ada}"
        );
        assert!(no_device_reason(None).contains("no NVIDIA GPU or driver"));
        assert!(no_device_reason(Some(("Odd GPU", "?"))).contains("unknown"));
    }
}
