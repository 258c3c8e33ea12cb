//! Finding, loading and installing the official ONNX Runtime build.
//!
//! cutout never links ONNX Runtime: it loads the shared library at run time (`ort`'s
//! `load-dynamic`), from `ORT_DYLIB_PATH` when set, else from a folder it manages under the user's
//! data directory. `cutout setup` fills that folder from the official PyPI wheels, keeping only
//! the native libraries, so running cutout needs no Python.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

pub mod cuda_context;
mod install;
pub mod plugin;
pub mod tensorrt_rtx;
pub mod webgpu;

pub use install::{SetupOptions, install, install_plugin, requirements_for_extras};

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
         PyPI with pip), or set ORT_DYLIB_PATH to an existing libonnxruntime {ORT_VERSION}"
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
    let name = if cfg!(windows) {
        "onnxruntime_providers_cuda.dll"
    } else {
        "libonnxruntime_providers_cuda.so"
    };
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
    // CUDA libraries that `cutout setup --cuda-libs` placed beside a managed GPU build are loaded
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
    let version = parse_build_version(ort::info())
        .or_else(|| {
            fs::canonicalize(&location.library)
                .ok()
                .as_deref()
                .and_then(version_from_file_name)
        })
        .unwrap_or_else(|| format!("unknown ({})", ort::info()));
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

/// Pulls the release version out of ONNX Runtime's build string
/// (`ORT Build Info: git-branch=rel-1.31.1, git-commit-id=…`).
pub fn parse_build_version(info: &str) -> Option<String> {
    let start = info.find("git-branch=rel-")? + "git-branch=rel-".len();
    let rest = &info[start..];
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// Reads `1.31.1` out of `libonnxruntime.so.1.31.1` or `libonnxruntime.1.31.1.dylib`.
pub fn version_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let parts: Vec<&str> = name.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts
        .windows(3)
        .find(|w| w.iter().all(|p| numeric(p)))
        .map(|w| w.join("."))
}

/// Libraries the CUDA provider needs, in load order (dependencies first).
pub const CUDA_LIBRARIES: &[&str] = &[
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
];

/// Libraries the TensorRT provider needs beyond CUDA's.
pub const TENSORRT_LIBRARIES: &[&str] = &[
    "libnvinfer.so.10",
    "libnvinfer_plugin.so.10",
    "libnvonnxparser.so.10",
];

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
    fn build_version_is_read_from_the_build_string() {
        let info = "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release";
        assert_eq!(parse_build_version(info).as_deref(), Some("1.31.1"));
        assert_eq!(
            parse_build_version("ORT Build Info: git-branch=HEAD, git-commit-id=6af1a93"),
            None
        );
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so.1.31.1")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(
            version_from_file_name(Path::new("libonnxruntime.1.31.1.dylib")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(version_from_file_name(Path::new("onnxruntime.dll")), None);
    }

    #[test]
    fn a_missing_env_path_is_reported_by_name() {
        let err = RuntimeError::EnvPathMissing(PathBuf::from("/nowhere/libonnxruntime.so"));
        assert!(err.to_string().contains("/nowhere/libonnxruntime.so"));
    }
}
