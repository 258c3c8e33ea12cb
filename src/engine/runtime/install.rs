//! `cutout setup`: fetching the official ONNX Runtime build (and, with `--gpu`, the CUDA and cuDNN
//! libraries it needs) straight from PyPI, and keeping only the native libraries in cutout's data
//! folder. No Python is involved: [`super::pypi`] reads the index and downloads the wheels.

use std::{
    fs,
    io::Read,
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use super::{
    ORT_VERSION, RuntimeError, RuntimeFlavor, core_library_name, managed_dir,
    plugin::Plugin,
    plugins,
    pypi::{self, Platform, Requirement},
};
use crate::paths::AppDirs;

/// What `cutout setup` should fetch.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// CPU or GPU build.
    pub flavor: RuntimeFlavor,
    /// With the GPU build, also fetch NVIDIA's CUDA 13 runtime, cuBLAS, cuFFT, cuRAND, NVRTC and
    /// cuDNN 9 wheels (so that only the NVIDIA driver is needed).
    pub cuda_libs: bool,
}

/// Where `cutout setup` reports what it does.
pub trait SetupReport {
    /// One line per step.
    fn line(&mut self, text: &str);
    /// Bytes of `file` downloaded so far, and its size when known. `Break` cancels the set-up
    /// (the part downloaded stays in the download folder, and the next set-up resumes it).
    fn bytes(&mut self, file: &str, done: u64, total: Option<u64>) -> ControlFlow<()>;
}

/// Wheels for this platform from the index, downloaded into the cache and deleted again once the
/// set-up has kept what it needs.
struct Fetcher<'r> {
    index: String,
    platform: Platform,
    downloads: PathBuf,
    fetched: Vec<PathBuf>,
    report: &'r mut dyn SetupReport,
}

impl<'r> Fetcher<'r> {
    fn new(dirs: &AppDirs, report: &'r mut dyn SetupReport) -> Result<Self, RuntimeError> {
        let platform = Platform::current().ok_or_else(|| {
            RuntimeError::Setup(format!(
                "ONNX Runtime publishes no build for {} on {}; set ORT_DYLIB_PATH to one built \
                 for this machine",
                std::env::consts::OS,
                std::env::consts::ARCH
            ))
        })?;
        Ok(Self {
            index: pypi::index_url(),
            platform,
            downloads: dirs.cache_dir.join("downloads"),
            fetched: Vec::new(),
            report,
        })
    }

    /// Finds and downloads the wheel for `requirement`.
    fn wheel(&mut self, requirement: &str) -> Result<PathBuf, RuntimeError> {
        let req = Requirement::parse(requirement)?;
        let wheel = pypi::find(&self.index, &req, self.platform)?;
        let size = wheel
            .size
            .map(|b| format!(", {:.1} MB", b as f64 / 1e6))
            .unwrap_or_default();
        self.report
            .line(&format!("Downloading {}{size} …", wheel.file_name));
        let report = &mut *self.report;
        let path = pypi::download(&wheel, &self.downloads, &mut |done, total| {
            report.bytes(&wheel.file_name, done, total)
        })?;
        self.fetched.push(path.clone());
        Ok(path)
    }

    /// Deletes the wheels downloaded (their libraries are kept).
    fn clean_up(&mut self) {
        for path in self.fetched.drain(..) {
            let _ = fs::remove_file(path);
        }
    }
}

/// Downloads the official ONNX Runtime wheel and keeps its native libraries in the managed folder.
/// Returns the installed core library.
pub fn install(
    dirs: &AppDirs,
    options: &SetupOptions,
    report: &mut dyn SetupReport,
) -> Result<PathBuf, RuntimeError> {
    let setup_err =
        |what: &str, e: &dyn std::fmt::Display| RuntimeError::Setup(format!("{what}: {e}"));
    let work = work_dir(dirs)?;
    let staging = work.path().join("staging");
    fs::create_dir_all(&staging).map_err(|e| setup_err("cannot create a staging folder", &e))?;
    let mut fetcher = Fetcher::new(dirs, report)?;

    let package = format!("{}=={ORT_VERSION}", options.flavor.package());
    let wheel = fetcher.wheel(&package)?;
    let kept = extract_native_libraries(&wheel, "onnxruntime/capi/", &staging)?;
    fetcher.report.line(&format!(
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
        fetch_cuda_libraries(&mut fetcher, &wheel, &staging.join("cuda"))?;
    }
    for plugin in plugins(options.flavor) {
        fetch_plugin(&mut fetcher, plugin, &staging.join(plugin.folder));
    }

    let target = managed_dir(dirs, options.flavor);
    replace_with(&staging, &target)?;
    fetcher.clean_up();
    fetcher.report.line(&format!(
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
    report: &mut dyn SetupReport,
) -> Result<PathBuf, RuntimeError> {
    let work = work_dir(dirs)?;
    let staging = work.path().join(plugin.folder);
    let mut fetcher = Fetcher::new(dirs, report)?;
    if !fetch_plugin(&mut fetcher, plugin, &staging) {
        return Err(RuntimeError::Setup(format!(
            "the {} plugin could not be fetched (see above)",
            plugin.label
        )));
    }
    let target = managed_dir(dirs, options.flavor).join(plugin.folder);
    replace_with(&staging, &target)?;
    fetcher.clean_up();
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

/// A temporary folder inside the runtimes folder (so that the final move is a rename). Folders
/// left by a set-up that was killed are removed first.
fn work_dir(dirs: &AppDirs) -> Result<tempfile::TempDir, RuntimeError> {
    let runtime_dir = dirs.runtime_dir();
    fs::create_dir_all(&runtime_dir).map_err(|e| {
        RuntimeError::Setup(format!("cannot create {}: {e}", runtime_dir.display()))
    })?;
    if let Ok(entries) = fs::read_dir(&runtime_dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with(".setup-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(".setup-")
        .tempdir_in(&runtime_dir)
        .map_err(|e| RuntimeError::Setup(format!("cannot create a temporary folder: {e}")))
}

/// Fetches a plugin's wheel and keeps its native libraries in `dest`. Not having it is no failure
/// of the runtime (the other providers work without it): the reason is logged and `false`
/// returned. Cancelling is the exception: it stops the set-up.
fn fetch_plugin(fetcher: &mut Fetcher<'_>, plugin: &Plugin, dest: &Path) -> bool {
    let label = plugin.label;
    fetcher
        .report
        .line(&format!("{label} ({}):", plugin.package));
    let kept = fetcher
        .wheel(plugin.package)
        .and_then(|wheel| extract_native_libraries(&wheel, plugin.wheel_prefix, dest));
    match kept {
        Ok(kept) if dest.join(plugin.file_name()).is_file() => {
            fetcher.report.line(&format!(
                "Kept {} {label} libraries: {}",
                kept.len(),
                kept.join(", ")
            ));
            true
        }
        Ok(_) => {
            fetcher.report.line(&format!(
                "The {label} wheel holds no {} for this platform; the {label} provider will be \
                 unavailable.",
                plugin.file_name()
            ));
            false
        }
        Err(e) => {
            fetcher.report.line(&format!(
                "{label} could not be fetched ({e}); the {label} provider will be unavailable. \
                 Run `cutout setup --force` to try again."
            ));
            false
        }
    }
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
        // Streamed: cuDNN's and cuBLAS's largest libraries are half a gigabyte each.
        let mut out = fs::File::create(dest.join(file_name)).map_err(|e| err(&e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| err(&e))?;
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
    fetcher: &mut Fetcher<'_>,
    ort_wheel: &Path,
    dest: &Path,
) -> Result<(), RuntimeError> {
    let mut requirements = wheel_extras(ort_wheel, &["cuda", "cudnn"])?;
    // cuBLAS is needed by the CUDA provider but is named only as a dependency of the cuDNN wheel.
    if !requirements.is_empty() && !requirements.iter().any(|r| r.starts_with("nvidia-cublas")) {
        requirements.push("nvidia-cublas~=13.0".to_owned());
    }
    if requirements.is_empty() {
        fetcher.report.line(
            "The onnxruntime-gpu wheel names no CUDA runtime wheels; use a system CUDA 13 and cuDNN 9.",
        );
        return Ok(());
    }
    fetcher.report.line(&format!(
        "The CUDA runtime for the CUDA provider: {}",
        requirements.join(" ")
    ));
    for requirement in &requirements {
        let wheel = fetcher.wheel(requirement)?;
        let kept = extract_native_libraries(&wheel, "", dest)?;
        fetcher.report.line(&format!("  kept {}", kept.join(", ")));
        // Each wheel is deleted as soon as its libraries are out: `--gpu` needs the space twice
        // otherwise (about 1.3 GB of wheels).
        fetcher.clean_up();
    }
    // TensorRT 10 (which ONNX Runtime's TensorRT provider loads) has no wheel on PyPI: NVIDIA's
    // `tensorrt-cu13-libs` there is a source package that downloads from NVIDIA's own index.
    fetcher.report.line(
        "TensorRT 10 has no wheel on PyPI; the TensorRT provider needs it installed where the \
         loader finds it (TensorRT for RTX, below, needs nothing more).",
    );
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
