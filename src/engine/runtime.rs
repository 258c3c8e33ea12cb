//! Finding, loading and installing the official ONNX Runtime build.
//!
//! cutout never links ONNX Runtime: it loads the shared library at run time (`ort`'s
//! `load-dynamic`), from `ORT_DYLIB_PATH` when set, else from a folder it manages under the user's
//! data directory. `cutout setup` fills that folder from the official PyPI wheels, keeping only
//! the native libraries, so running cutout needs no Python.

use std::{
    ffi::OsStr,
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, OnceLock},
};

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

/// A loaded ONNX Runtime: the process-wide environment every session is created in.
pub struct Runtime {
    /// The `ort` environment (one per process).
    pub env: ort::environment::Environment,
    /// Where the library came from.
    pub location: RuntimeLocation,
    /// Version as the library reports it (`1.31.1`).
    pub version: String,
    /// GPU libraries preloaded from the managed folder, and the ones that failed to load.
    pub preloaded: Vec<(String, Result<(), String>)>,
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
    let preloaded = match location.source {
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
    Ok(Runtime {
        env,
        location,
        version,
        preloaded,
    })
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

fn preload_gpu_libraries(dir: &Path) -> Vec<(String, Result<(), String>)> {
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

/// What `cutout setup` should fetch.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// CPU or GPU build.
    pub flavor: RuntimeFlavor,
    /// Also fetch the CUDA 13 / cuDNN 9 runtime wheels (and try TensorRT's) for the GPU build.
    pub cuda_libs: bool,
    /// Python interpreter with pip; found on PATH when `None`.
    pub python: Option<PathBuf>,
}

/// Downloads the official ONNX Runtime wheel with pip and keeps its native libraries in the managed
/// folder. Returns the installed core library. `log` receives one line per step.
pub fn install(
    dirs: &AppDirs,
    options: &SetupOptions,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, RuntimeError> {
    let setup_err =
        |what: &str, e: &dyn std::fmt::Display| RuntimeError::Setup(format!("{what}: {e}"));
    let python = match &options.python {
        Some(p) => p.clone(),
        None => find_python().ok_or_else(|| {
            RuntimeError::Setup(
                "no Python with pip found on PATH (tried python3, python); install Python 3 with \
                 pip, or download the onnxruntime wheel yourself and set ORT_DYLIB_PATH"
                    .to_owned(),
            )
        })?,
    };
    let runtime_dir = dirs.runtime_dir();
    fs::create_dir_all(&runtime_dir)
        .map_err(|e| setup_err(&format!("cannot create {}", runtime_dir.display()), &e))?;
    let work = tempfile::Builder::new()
        .prefix(".setup-")
        .tempdir_in(&runtime_dir)
        .map_err(|e| setup_err("cannot create a temporary folder", &e))?;
    let wheels = work.path().join("wheels");
    let staging = work.path().join("staging");
    fs::create_dir_all(&staging).map_err(|e| setup_err("cannot create a staging folder", &e))?;

    let package = format!("{}=={ORT_VERSION}", options.flavor.package());
    log(&format!(
        "Downloading {package} from PyPI with {} …",
        python.display()
    ));
    pip_download(&python, &[package.as_str()], &wheels)?;
    let wheel = find_file(&wheels, |name| {
        name.starts_with("onnxruntime") && name.ends_with(".whl")
    })
    .ok_or_else(|| {
        RuntimeError::Setup(format!(
            "pip reported success but left no onnxruntime wheel in {}",
            wheels.display()
        ))
    })?;
    let kept = extract_native_libraries(&wheel, "onnxruntime/capi/", &staging)?;
    log(&format!(
        "Kept {} native libraries: {}",
        kept.len(),
        kept.join(", ")
    ));
    if !staging.join(core_library_name()).is_file() {
        return Err(RuntimeError::Setup(format!(
            "the wheel {} holds no {}; is this platform supported by ONNX Runtime {ORT_VERSION}?",
            wheel.display(),
            core_library_name()
        )));
    }

    if options.flavor == RuntimeFlavor::Gpu && options.cuda_libs {
        fetch_cuda_libraries(&python, &wheel, work.path(), &staging.join("cuda"), log)?;
    }

    let target = managed_dir(dirs, options.flavor);
    if target.exists() {
        fs::remove_dir_all(&target)
            .map_err(|e| setup_err(&format!("cannot replace {}", target.display()), &e))?;
    }
    fs::rename(&staging, &target).map_err(|e| {
        setup_err(
            &format!("cannot move the runtime into {}", target.display()),
            &e,
        )
    })?;
    log(&format!(
        "ONNX Runtime {ORT_VERSION} ({}) installed in {}",
        options.flavor.package(),
        target.display()
    ));
    Ok(target.join(core_library_name()))
}

fn find_python() -> Option<PathBuf> {
    ["python3", "python", "py"]
        .into_iter()
        .map(PathBuf::from)
        .find(|candidate| {
            Command::new(candidate)
                .args(["-m", "pip", "--version"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
}

fn pip_download(python: &Path, requirements: &[&str], dest: &Path) -> Result<(), RuntimeError> {
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(dest)
        .args(requirements)
        .status()
        .map_err(|e| RuntimeError::Setup(format!("cannot run {}: {e}", python.display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Setup(format!(
            "pip could not download {} ({status}); check that this machine reaches PyPI, or set \
             ORT_DYLIB_PATH to an ONNX Runtime you already have",
            requirements.join(" ")
        )))
    }
}

fn find_file(dir: &Path, pred: impl Fn(&str) -> bool) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(OsStr::to_str).is_some_and(&pred))
}

/// Whether a file name inside a wheel is a native library cutout needs.
fn is_native_library(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    (lower.starts_with("lib") && (lower.contains(".so") || lower.ends_with(".dylib")))
        || lower.ends_with(".dll")
}

/// Copies the native libraries under `prefix` in a wheel (a zip file) flat into `dest`.
fn extract_native_libraries(
    wheel: &Path,
    prefix: &str,
    dest: &Path,
) -> Result<Vec<String>, RuntimeError> {
    let err = |e: &dyn std::fmt::Display| {
        RuntimeError::Setup(format!("cannot read {}: {e}", wheel.display()))
    };
    let file = fs::File::open(wheel).map_err(|e| err(&e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| err(&e))?;
    fs::create_dir_all(dest).map_err(|e| err(&e))?;
    let mut kept = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| err(&e))?;
        let name = entry.name().map_err(|e| err(&e))?.into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let file_name = rest.rsplit('/').next().unwrap_or(rest);
        if entry.is_dir() || !is_native_library(file_name) {
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(|e| err(&e))?;
        fs::write(dest.join(file_name), bytes).map_err(|e| err(&e))?;
        kept.push(file_name.to_owned());
    }
    Ok(kept)
}

/// The `Requires-Dist` entries of a wheel that belong to one of `extras`.
fn wheel_extras(wheel: &Path, extras: &[&str]) -> Result<Vec<String>, RuntimeError> {
    let err = |e: &dyn std::fmt::Display| {
        RuntimeError::Setup(format!("cannot read {}: {e}", wheel.display()))
    };
    let file = fs::File::open(wheel).map_err(|e| err(&e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| err(&e))?;
    let metadata_name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with(".dist-info/METADATA"))
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| err(&"no METADATA"))?;
    let mut text = String::new();
    archive
        .by_name(&metadata_name)
        .map_err(|e| err(&e))?
        .read_to_string(&mut text)
        .map_err(|e| err(&e))?;
    Ok(requirements_for_extras(&text, extras))
}

/// Parses `Requires-Dist: name (>=1); extra == "cuda"` lines of wheel metadata.
pub fn requirements_for_extras(metadata: &str, extras: &[&str]) -> Vec<String> {
    metadata
        .lines()
        .filter_map(|line| line.strip_prefix("Requires-Dist:"))
        .filter_map(|req| {
            let (spec, marker) = req.split_once(';')?;
            let wanted = extras.iter().any(|extra| {
                marker.contains(&format!("extra == \"{extra}\""))
                    || marker.contains(&format!("extra == '{extra}'"))
            });
            wanted.then(|| spec.trim().replace([' ', '(', ')'], ""))
        })
        .collect()
}

fn fetch_cuda_libraries(
    python: &Path,
    ort_wheel: &Path,
    work: &Path,
    dest: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), RuntimeError> {
    let mut requirements = wheel_extras(ort_wheel, &["cuda", "cudnn"])?;
    // cuBLAS is needed by the CUDA provider but reaches pip only as a dependency of the cuDNN
    // wheel, which `--no-deps` does not follow.
    if !requirements.is_empty() && !requirements.iter().any(|r| r.starts_with("nvidia-cublas")) {
        requirements.push("nvidia-cublas~=13.0".to_owned());
    }
    if requirements.is_empty() {
        log(
            "The onnxruntime-gpu wheel names no CUDA runtime wheels; use a system CUDA 13 and cuDNN 9.",
        );
        return Ok(());
    }
    let cuda_wheels = work.join("cuda-wheels");
    log(&format!(
        "Downloading the CUDA runtime wheels: {} …",
        requirements.join(" ")
    ));
    let refs: Vec<&str> = requirements.iter().map(String::as_str).collect();
    pip_download(python, &refs, &cuda_wheels)?;
    log("Trying TensorRT 10 (tensorrt-cu13-libs) …");
    if let Err(e) = pip_download(python, &["tensorrt-cu13-libs"], &cuda_wheels) {
        log(&format!(
            "TensorRT could not be fetched ({e}); the TensorRT provider will be unavailable until \
             TensorRT 10 is installed where the loader finds libnvinfer.so.10."
        ));
    }
    let entries = fs::read_dir(&cuda_wheels).map_err(|e| RuntimeError::Setup(e.to_string()))?;
    for wheel in entries.filter_map(Result::ok).map(|e| e.path()) {
        if wheel.extension().and_then(OsStr::to_str) == Some("whl") {
            let kept = extract_native_libraries(&wheel, "", dest)?;
            log(&format!(
                "  {}: {} libraries",
                wheel.file_name().unwrap_or_default().to_string_lossy(),
                kept.len()
            ));
        }
    }
    Ok(())
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
    fn native_libraries_are_recognised() {
        assert!(is_native_library("libonnxruntime.so.1.31.1"));
        assert!(is_native_library("libonnxruntime_providers_cuda.so"));
        assert!(is_native_library("onnxruntime.dll"));
        assert!(is_native_library("libonnxruntime.1.31.1.dylib"));
        assert!(!is_native_library(
            "onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so"
        ));
        assert!(!is_native_library("__init__.py"));
    }

    #[test]
    fn extras_are_read_from_wheel_metadata() {
        let metadata = "Name: onnxruntime-gpu\nRequires-Dist: numpy>=1.21\n\
            Requires-Dist: nvidia-cuda-runtime~=13.0; extra == \"cuda\"\n\
            Requires-Dist: nvidia-cudnn-cu13~=9.0; extra == \"cudnn\"\n\
            Requires-Dist: pytest; extra == \"test\"\n";
        assert_eq!(
            requirements_for_extras(metadata, &["cuda", "cudnn"]),
            vec![
                "nvidia-cuda-runtime~=13.0".to_owned(),
                "nvidia-cudnn-cu13~=9.0".to_owned()
            ]
        );
    }

    #[test]
    fn a_missing_env_path_is_reported_by_name() {
        let err = RuntimeError::EnvPathMissing(PathBuf::from("/nowhere/libonnxruntime.so"));
        assert!(err.to_string().contains("/nowhere/libonnxruntime.so"));
    }
}
