//! TensorRT for RTX: NVIDIA's TensorRT for GeForce/RTX GPUs, shipped on PyPI as an ONNX Runtime
//! plugin execution provider (`onnxruntime-ep-nv-tensorrt-rtx-cu13`).
//!
//! `cutout setup --gpu` keeps the wheel's native libraries in a `tensorrt-rtx` folder beside the
//! ONNX Runtime library. When the runtime loads, the plugin's own dependencies are loaded first
//! (the wheel keeps versioned file names that the loader would not find by their sonames), then
//! the plugin is registered with the environment; its devices appear in `Environment::devices`.
//! Plugins need no GPU build of ONNX Runtime: the CPU build registers them too.

use std::path::{Path, PathBuf};

/// The PyPI package, pinned to the release cutout was tested with.
pub const PACKAGE: &str = "onnxruntime-ep-nv-tensorrt-rtx-cu13==0.5.0";

/// The execution provider's name, as its devices report it.
pub const EP_NAME: &str = "NvTensorRTRTXExecutionProvider";

/// The folder beside the ONNX Runtime library that holds the plugin.
pub const FOLDER: &str = "tensorrt-rtx";

/// Where the libraries sit inside the wheel.
pub const WHEEL_PREFIX: &str = "onnxruntime_ep_nv_tensorrt_rtx/";

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

/// The plugin library's file name on this platform.
pub fn plugin_file_name() -> &'static str {
    if cfg!(windows) {
        "onnxruntime_providers_nv_tensorrt_rtx.dll"
    } else {
        "libonnxruntime_providers_nv_tensorrt_rtx.so"
    }
}

/// The plugin folder that belongs to an ONNX Runtime core library.
pub fn folder_beside(core_library: &Path) -> PathBuf {
    core_library.with_file_name(FOLDER)
}

/// What became of the plugin when the runtime loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    /// No plugin in the folder beside the ONNX Runtime library.
    NotInstalled {
        /// Where it was looked for.
        folder: PathBuf,
    },
    /// Present, but the plugin or a library it needs did not load.
    Failed {
        /// The plugin library.
        library: PathBuf,
        /// What the loader or ONNX Runtime said.
        reason: String,
    },
    /// Registered with the environment.
    Registered {
        /// The plugin library.
        library: PathBuf,
    },
}

/// The file in `folder` whose name starts with `prefix` (the shortest: the soname itself when it
/// is there, else the versioned file).
pub fn find_library(folder: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort_by_key(|p| p.as_os_str().len());
    found.into_iter().next()
}

/// Loads the plugin's dependencies from its folder and registers it with `env`. Returns the state
/// and the dependencies' load results (for `cutout doctor`).
pub(super) fn register(
    env: &ort::environment::Environment,
    core_library: &Path,
) -> (PluginState, Vec<super::Preloaded>) {
    let folder = folder_beside(core_library);
    let library = folder.join(plugin_file_name());
    if !library.is_file() {
        return (PluginState::NotInstalled { folder }, Vec::new());
    }
    let mut preloaded = Vec::new();
    for prefix in DEPENDENCIES {
        let result = match find_library(&folder, prefix) {
            Some(path) => ort::util::preload_dylib(&path).map_err(|e| e.to_string()),
            None => Err(format!("{prefix} is missing from {}", folder.display())),
        };
        preloaded.push(((*prefix).to_owned(), result));
    }
    if let Some((name, Err(reason))) = preloaded.iter().find(|(_, r)| r.is_err()) {
        let reason = format!("{name} did not load: {reason}");
        return (PluginState::Failed { library, reason }, preloaded);
    }
    let state = match env.register_ep_library(EP_NAME, &library) {
        Ok(()) => PluginState::Registered { library },
        Err(e) => PluginState::Failed {
            library,
            reason: e.message().to_owned(),
        },
    };
    (state, preloaded)
}

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
            let devices: Vec<_> = runtime
                .env
                .devices()
                .filter(|d| d.ep().is_ok_and(|name| name == EP_NAME))
                .collect();
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

    #[test]
    fn the_shortest_matching_file_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libtensorrt_rtx.so.1.7.1",
            "libtensorrt_rtx.so.1",
            "other.so",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            find_library(dir.path(), "libtensorrt_rtx.so.1"),
            Some(dir.path().join("libtensorrt_rtx.so.1"))
        );
        std::fs::remove_file(dir.path().join("libtensorrt_rtx.so.1")).unwrap();
        assert_eq!(
            find_library(dir.path(), "libtensorrt_rtx.so.1"),
            Some(dir.path().join("libtensorrt_rtx.so.1.7.1"))
        );
        assert_eq!(find_library(dir.path(), "libcudart.so.13"), None);
        assert_eq!(
            folder_beside(Path::new("/r/gpu-1.31.1/libonnxruntime.so.1.31.1")),
            Path::new("/r/gpu-1.31.1/tensorrt-rtx")
        );
    }
}
