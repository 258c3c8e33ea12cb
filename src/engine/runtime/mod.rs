//! Finding, loading and installing the official ONNX Runtime build.
//!
//! cutout never links ONNX Runtime: it loads the shared library at run time (`ort`'s
//! `load-dynamic`), from `ORT_DYLIB_PATH` when set, else from a folder it manages under the user's
//! data directory. `cutout setup` fills that folder from the official PyPI wheels, keeping only
//! the native libraries, so running cutout needs no Python.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

pub mod cuda_context;
mod install;
pub mod plugin;
pub mod pypi;
pub mod tensorrt_rtx;
pub mod version;
pub mod webgpu;

pub use install::{SetupOptions, SetupReport, install, install_plugin, requirements_for_extras};

use crate::paths::AppDirs;

/// The ONNX Runtime release cutout is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

/// Which official build of ONNX Runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFlavor {
    /// `onnxruntime`: CPU provider only.
    Cpu,
    /// `onnxruntime-gpu`: CPU, CUDA and TensorRT providers (CUDA 13). Runs on machines without
    /// NVIDIA too, so it is preferred when both are installed.
    Gpu,
}

impl RuntimeFlavor {
    /// The PyPI package that holds this build.
    pub fn package(self) -> &'static str {
        match self {
            Self::Cpu => "onnxruntime",
            Self::Gpu => "onnxruntime-gpu",
        }
    }

    fn folder(self) -> String {
        match self {
            Self::Cpu => format!("cpu-{ORT_VERSION}"),
            Self::Gpu => format!("gpu-{ORT_VERSION}"),
        }
    }
}

/// Where the loaded library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The folder `cutout setup` manages.
    Managed(RuntimeFlavor),
    /// Beside the executable (installed copies: the Windows MSI puts `onnxruntime.dll` there).
    BesideExecutable,
}

/// A located ONNX Runtime core library.
#[derive(Debug, Clone)]
pub struct RuntimeLocation {
    /// The core shared library (`libonnxruntime.so.1.31.1`, `onnxruntime.dll`, …).
    pub library: PathBuf,
    /// How it was found.
    pub source: RuntimeSource,
}

/// Why ONNX Runtime could not be found, loaded or installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// `ORT_DYLIB_PATH` names a file that does not exist.
    #[error(
        "ORT_DYLIB_PATH is set but no file is there; point it at an ONNX Runtime {ORT_VERSION} \
         library or unset it: {}", .0.display()
    )]
    EnvPathMissing(PathBuf),
    /// Nothing installed yet.
    #[error(
        "ONNX Runtime is not installed. Run `cutout setup` (it fetches the official build from \
         PyPI), or set ORT_DYLIB_PATH to an existing ONNX Runtime {ORT_VERSION} library"
    )]
    NotInstalled,
    /// The library exists but could not be loaded or initialised.
    #[error("could not load ONNX Runtime ({reason}); run `cutout setup` again or check ORT_DYLIB_PATH: {}", .path.display())]
    Load {
        /// The library that failed.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// `cutout setup` failed.
    #[error("ONNX Runtime setup failed: {0}")]
    Setup(String),
    /// `cutout setup` was cancelled (Ctrl+C): nothing was installed.
    #[error(
        "setup cancelled; nothing was installed (`cutout setup` resumes the download where it \
         stopped)"
    )]
    Cancelled,
}

/// A library loaded ahead of ONNX Runtime's providers (its name), or why it did not load.
pub type Preloaded = (String, Result<(), String>);

/// A loaded ONNX Runtime: the process-wide environment every session is created in.
pub struct Runtime {
    /// The `ort` environment (one per process).
    pub env: ort::environment::Environment,
    /// Where the library came from.
    pub location: RuntimeLocation,
    /// Version as the library reports it (`1.31.1`).
    pub version: String,
    /// GPU libraries preloaded from the managed folder, and the ones that failed to load.
    pub preloaded: Vec<Preloaded>,
    /// The TensorRT-RTX plugin provider: not installed, failed to load (why), or registered.
    pub tensorrt_rtx: plugin::PluginState,
    /// The WebGPU plugin provider: not installed, failed to load (why), or registered.
    pub webgpu: plugin::PluginState,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("location", &self.location)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The library file name of the core runtime on this platform.
pub fn core_library_name() -> String {
    if cfg!(windows) {
        "onnxruntime.dll".to_owned()
    } else if cfg!(target_os = "macos") {
        format!("libonnxruntime.{ORT_VERSION}.dylib")
    } else {
        format!("libonnxruntime.so.{ORT_VERSION}")
    }
}

/// A library's file name on this platform: `onnxruntime_providers_cuda.dll`,
/// `libonnxruntime_providers_cuda.so` or `.dylib`.
pub fn shared_library_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The folder a managed build of `flavor` lives in.
pub fn managed_dir(dirs: &AppDirs, flavor: RuntimeFlavor) -> PathBuf {
    dirs.runtime_dir().join(flavor.folder())
}

/// Finds the ONNX Runtime library: `ORT_DYLIB_PATH` first, then the managed GPU build, then the
/// managed CPU build.
pub fn locate(dirs: &AppDirs) -> Result<RuntimeLocation, RuntimeError> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(RuntimeLocation {
                library: path,
                source: RuntimeSource::EnvVar,
            })
        } else {
            Err(RuntimeError::EnvPathMissing(path))
        };
    }
    for flavor in [RuntimeFlavor::Gpu, RuntimeFlavor::Cpu] {
        let library = managed_dir(dirs, flavor).join(core_library_name());
        if library.is_file() {
            return Ok(RuntimeLocation {
                library,
                source: RuntimeSource::Managed(flavor),
            });
        }
    }
    if let Some(library) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(core_library_name())))
        .filter(|lib| lib.is_file())
    {
        return Ok(RuntimeLocation {
            library,
            source: RuntimeSource::BesideExecutable,
        });
    }
    Err(RuntimeError::NotInstalled)
}

/// Whether the ONNX Runtime that [`load`] would pick has the CUDA provider beside it (the GPU
/// build), without loading anything.
pub fn has_cuda_provider(dirs: &AppDirs) -> bool {
    let name = shared_library_name("onnxruntime_providers_cuda");
    locate(dirs).is_ok_and(|location| location.library.with_file_name(name).is_file())
}

/// The plugin providers `cutout setup` fetches for a build: WebGPU everywhere, TensorRT-RTX
/// with the GPU build.
pub fn plugins(flavor: RuntimeFlavor) -> Vec<&'static plugin::Plugin> {
    [&tensorrt_rtx::PLUGIN, &webgpu::PLUGIN]
        .into_iter()
        .filter(|p| p.every_machine || flavor == RuntimeFlavor::Gpu)
        .collect()
}

static RUNTIME: OnceLock<Result<Arc<Runtime>, RuntimeError>> = OnceLock::new();

/// Loads ONNX Runtime once per process (the library is process-global) and returns it.
///
/// The first call decides which library is used; later calls return the same runtime.
pub fn load(dirs: &AppDirs) -> Result<Arc<Runtime>, RuntimeError> {
    RUNTIME
        .get_or_init(|| load_uncached(dirs).map(Arc::new))
        .clone()
}

fn load_uncached(dirs: &AppDirs) -> Result<Runtime, RuntimeError> {
    let location = locate(dirs)?;
    let load_error = |reason: String| RuntimeError::Load {
        path: location.library.clone(),
        reason,
    };
    // CUDA libraries that `cutout setup --gpu` placed beside a managed GPU build are loaded
    // first, so that the CUDA provider finds them without LD_LIBRARY_PATH.
    let mut preloaded = match location.source {
        RuntimeSource::Managed(RuntimeFlavor::Gpu) => {
            preload_gpu_libraries(&location.library.with_file_name("cuda"))
        }
        _ => Vec::new(),
    };
    let env = ort::init_from(&location.library)
        .map_err(|e| load_error(e.to_string()))?
        .with_name("cutout")
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    let version = version::of_library(&location.library, ort::info());
    let (tensorrt_rtx, plugin_libraries) = tensorrt_rtx::PLUGIN.register(&env, &location.library);
    preloaded.extend(plugin_libraries);
    let (webgpu, plugin_libraries) = webgpu::PLUGIN.register(&env, &location.library);
    preloaded.extend(plugin_libraries);
    Ok(Runtime {
        env,
        location,
        version,
        preloaded,
        tensorrt_rtx,
        webgpu,
    })
}

/// The version of the ONNX Runtime this process has loaded, once it has (`None` before, or when
/// loading failed).
pub fn loaded_version() -> Option<String> {
    RUNTIME
        .get()
        .and_then(|r| r.as_ref().ok())
        .map(|r| r.version.clone())
}

/// Libraries the CUDA provider needs, in load order (dependencies first), by this platform's
/// file names: loading them from `cuda/` ahead of the provider is what lets it find them there
/// (on Windows too: a DLL already loaded is matched by name).
pub const CUDA_LIBRARIES: &[&str] = if cfg!(windows) {
    &[
        "cudart64_13.dll",
        "cublasLt64_13.dll",
        "cublas64_13.dll",
        "curand64_10.dll",
        "cufft64_12.dll",
        "nvrtc64_130_0.dll",
        "cudnn_graph64_9.dll",
        "cudnn_ops64_9.dll",
        "cudnn_heuristic64_9.dll",
        "cudnn_engines_precompiled64_9.dll",
        "cudnn_engines_runtime_compiled64_9.dll",
        "cudnn_cnn64_9.dll",
        "cudnn_adv64_9.dll",
        "cudnn64_9.dll",
    ]
} else {
    &[
        "libcudart.so.13",
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcufft.so.12",
        "libcudnn_graph.so.9",
        "libcudnn_ops.so.9",
        "libcudnn_heuristic.so.9",
        "libcudnn_engines_precompiled.so.9",
        "libcudnn_engines_runtime_compiled.so.9",
        "libcudnn_cnn.so.9",
        "libcudnn_adv.so.9",
        "libcudnn.so.9",
    ]
};

/// Libraries the TensorRT provider needs beyond CUDA's.
pub const TENSORRT_LIBRARIES: &[&str] = if cfg!(windows) {
    &[
        "nvinfer_10.dll",
        "nvinfer_plugin_10.dll",
        "nvonnxparser_10.dll",
    ]
} else {
    &[
        "libnvinfer.so.10",
        "libnvinfer_plugin.so.10",
        "libnvonnxparser.so.10",
    ]
};

fn preload_gpu_libraries(dir: &Path) -> Vec<Preloaded> {
    if !dir.is_dir() {
        return Vec::new();
    }
    CUDA_LIBRARIES
        .iter()
        .chain(TENSORRT_LIBRARIES)
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (
                name,
                ort::util::preload_dylib(&path).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_env_path_is_reported_by_name() {
        let err = RuntimeError::EnvPathMissing(PathBuf::from("/nowhere/libonnxruntime.so"));
        assert!(err.to_string().contains("/nowhere/libonnxruntime.so"));
    }
}
