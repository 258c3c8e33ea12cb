//! `cutout setup`: fetching the official ONNX Runtime build (and, with `--gpu`, the CUDA and cuDNN
//! libraries it needs) with pip, and keeping only the native libraries in cutout's data folder.

use std::{
    ffi::OsStr,
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    ORT_VERSION, RuntimeError, RuntimeFlavor, core_library_name, managed_dir, plugin::Plugin,
    plugins,
};
use crate::paths::AppDirs;

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
    let python = python(options)?;
    let work = work_dir(dirs)?;
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
    for plugin in plugins(options.flavor) {
        fetch_plugin(
            &python,
            plugin,
            work.path(),
            &staging.join(plugin.folder),
            log,
        );
    }

    let target = managed_dir(dirs, options.flavor);
    replace_with(&staging, &target)?;
    log(&format!(
        "ONNX Runtime {ORT_VERSION} ({}) installed in {}",
        options.flavor.package(),
        target.display()
    ));
    Ok(target.join(core_library_name()))
}

/// Adds a plugin beside an installed runtime (for runtimes installed before cutout fetched it).
/// Returns the plugin folder; a plugin that could not be fetched is an error.
pub fn install_plugin(
    dirs: &AppDirs,
    options: &SetupOptions,
    plugin: &Plugin,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, RuntimeError> {
    let python = python(options)?;
    let work = work_dir(dirs)?;
    let staging = work.path().join(plugin.folder);
    if !fetch_plugin(&python, plugin, work.path(), &staging, log) {
        return Err(RuntimeError::Setup(format!(
            "the {} plugin could not be fetched (see above)",
            plugin.label
        )));
    }
    let target = managed_dir(dirs, options.flavor).join(plugin.folder);
    replace_with(&staging, &target)?;
    Ok(target)
}

/// Moves a finished `staging` folder to `target`, replacing what was there.
fn replace_with(staging: &Path, target: &Path) -> Result<(), RuntimeError> {
    if target.exists() {
        fs::remove_dir_all(target).map_err(|e| {
            RuntimeError::Setup(format!("cannot replace {}: {e}", target.display()))
        })?;
    }
    fs::rename(staging, target).map_err(|e| {
        RuntimeError::Setup(format!("cannot move files into {}: {e}", target.display()))
    })
}

fn python(options: &SetupOptions) -> Result<PathBuf, RuntimeError> {
    match &options.python {
        Some(p) => Ok(p.clone()),
        None => find_python().ok_or_else(|| {
            RuntimeError::Setup(
                "no Python with pip found on PATH (tried python3, python); install Python 3 with \
                 pip, or download the onnxruntime wheel yourself and set ORT_DYLIB_PATH"
                    .to_owned(),
            )
        }),
    }
}

/// A temporary folder inside the runtimes folder (so that the final move is a rename).
fn work_dir(dirs: &AppDirs) -> Result<tempfile::TempDir, RuntimeError> {
    let runtime_dir = dirs.runtime_dir();
    fs::create_dir_all(&runtime_dir).map_err(|e| {
        RuntimeError::Setup(format!("cannot create {}: {e}", runtime_dir.display()))
    })?;
    tempfile::Builder::new()
        .prefix(".setup-")
        .tempdir_in(&runtime_dir)
        .map_err(|e| RuntimeError::Setup(format!("cannot create a temporary folder: {e}")))
}

/// Fetches a plugin's wheel with pip and keeps its native libraries in `dest`. Not having it is
/// no failure of the runtime (the other providers work without it): the reason is logged and
/// `false` returned.
fn fetch_plugin(
    python: &Path,
    plugin: &Plugin,
    work: &Path,
    dest: &Path,
    log: &mut dyn FnMut(&str),
) -> bool {
    let label = plugin.label;
    log(&format!(
        "Downloading {label} ({}) from PyPI …",
        plugin.package
    ));
    let wheels = work.join(format!("{}-wheel", plugin.folder));
    let kept = pip_download(python, &[plugin.package], &wheels)
        .and_then(|()| {
            find_file(&wheels, |n| n.ends_with(".whl")).ok_or_else(|| {
                RuntimeError::Setup(format!("pip left no wheel in {}", wheels.display()))
            })
        })
        .and_then(|wheel| extract_native_libraries(&wheel, plugin.wheel_prefix, dest));
    match kept {
        Ok(kept) if dest.join(plugin.file_name()).is_file() => {
            log(&format!(
                "Kept {} {label} libraries: {}",
                kept.len(),
                kept.join(", ")
            ));
            true
        }
        Ok(_) => {
            log(&format!(
                "The {label} wheel holds no {} for this platform; the {label} provider will be \
                 unavailable.",
                plugin.file_name()
            ));
            false
        }
        Err(e) => {
            log(&format!(
                "{label} could not be fetched ({e}); the {label} provider will be unavailable. \
                 Run `cutout setup --force` to try again."
            ));
            false
        }
    }
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
}
