//! `cutout doctor`: what ONNX Runtime, providers, GPU and libraries this machine really has.

use std::{fmt::Write as _, path::Path, process::Command};

use ort::ep::{self, ExecutionProvider as _};

use super::{
    models::{self, Manifest},
    providers::{ProviderKind, explain_failure},
    runtime::{self, CUDA_LIBRARIES, RuntimeSource, TENSORRT_LIBRARIES},
};
use crate::paths::AppDirs;

/// The NVIDIA GPU and driver, if any: `nvidia-smi`'s answer, else the kernel driver's version line.
/// Asked once per process (the TensorRT engine cache key reads it at every session build).
pub fn nvidia_gpu() -> Option<String> {
    static GPU: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    GPU.get_or_init(ask_nvidia_gpu).clone()
}

fn ask_nvidia_gpu() -> Option<String> {
    let smi = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty());
    smi.or_else(|| {
        std::fs::read_to_string("/proc/driver/nvidia/version")
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned))
    })
}

/// Whether a shared library can be loaded: from `dir` when it is there, else through the system
/// loader's search path. Loading is the only honest test of "found".
fn probe_library(name: &str, dir: Option<&Path>) -> String {
    if let Some(path) = dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        return match ort::util::preload_dylib(&path) {
            Ok(()) => format!("found {}", path.display()),
            Err(e) => format!("present but does not load: {e}"),
        };
    }
    match ort::util::preload_dylib(name) {
        Ok(()) => "found (system loader)".to_owned(),
        Err(_) => "missing".to_owned(),
    }
}

/// Builds the full report as text.
pub fn report(dirs: &AppDirs) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cutout {}", env!("CARGO_PKG_VERSION"));

    let _ = writeln!(out, "\nONNX Runtime");
    let loaded = runtime::load(dirs);
    match &loaded {
        Ok(rt) => {
            let source = match rt.location.source {
                RuntimeSource::EnvVar => "from ORT_DYLIB_PATH".to_owned(),
                RuntimeSource::BesideExecutable => "installed beside cutout".to_owned(),
                RuntimeSource::Managed(flavor) => {
                    format!("managed by cutout, PyPI {}", flavor.package())
                }
            };
            let _ = writeln!(
                out,
                "  version   {} (cutout expects {})",
                rt.version,
                runtime::ORT_VERSION
            );
            let _ = writeln!(
                out,
                "  library   {} ({source})",
                rt.location.library.display()
            );
            for (name, result) in &rt.preloaded {
                let _ = writeln!(
                    out,
                    "  preloaded {name}: {}",
                    result
                        .as_ref()
                        .map_or_else(|e| e.clone(), |()| "ok".to_owned())
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  not loaded: {e}");
        }
    }

    let _ = writeln!(out, "\nExecution providers (compiled in / usable here)");
    if let Ok(rt) = &loaded {
        for kind in ProviderKind::PREFERENCE {
            let compiled = match kind {
                ProviderKind::TensorRt => ep::TensorRT::is_available(),
                ProviderKind::Cuda => ep::CUDA::is_available(),
                ProviderKind::Cpu => ep::CPU::is_available(),
            }
            .unwrap_or(false);
            let usable = if !compiled {
                "no: not in this build (run `cutout setup --gpu` for onnxruntime-gpu)".to_owned()
            } else {
                match register(rt, kind) {
                    Ok(()) => "yes".to_owned(),
                    Err(reason) => format!("no: {reason}"),
                }
            };
            let _ = writeln!(
                out,
                "  {:<9} compiled in: {:<3}  usable: {usable}",
                kind.label(),
                if compiled { "yes" } else { "no" }
            );
        }
    } else {
        let _ = writeln!(out, "  unknown until ONNX Runtime loads");
    }

    let _ = writeln!(out, "\nGPU");
    let _ = writeln!(
        out,
        "  {}",
        nvidia_gpu().unwrap_or_else(|| "no NVIDIA GPU or driver found".to_owned())
    );

    let _ = writeln!(out, "\nGPU libraries (CUDA 13, cuDNN 9, TensorRT 10)");
    let managed_cuda = runtime::managed_dir(dirs, runtime::RuntimeFlavor::Gpu).join("cuda");
    for name in CUDA_LIBRARIES.iter().chain(TENSORRT_LIBRARIES) {
        let _ = writeln!(
            out,
            "  {name:<40} {}",
            probe_library(name, Some(&managed_cuda))
        );
    }

    let _ = writeln!(out, "\nModels");
    match Manifest::builtin() {
        Ok(manifest) => {
            for spec in &manifest.models {
                let state = match models::state(spec, dirs) {
                    models::ModelState::Ready { path, .. } => format!("ok {}", path.display()),
                    models::ModelState::NotFetched => format!(
                        "not fetched yet (fetched on first use from {})",
                        spec.source.describe()
                    ),
                    models::ModelState::BadChecksum { path, found } => format!(
                        "refused: SHA-256 {found} is no known release of this model: {}",
                        path.display()
                    ),
                    models::ModelState::Unreadable { reason, .. } => reason,
                };
                let _ = writeln!(out, "  {:<9} {state}", spec.name);
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  {e}");
        }
    }

    let _ = writeln!(out, "\nFolders");
    let _ = writeln!(out, "  runtimes  {}", dirs.runtime_dir().display());
    let _ = writeln!(out, "  models    {}", dirs.models_dir().display());
    if let Some(env) = std::env::var_os("CUTOUT_MODELS_DIR") {
        let _ = writeln!(
            out,
            "  models    {} (CUTOUT_MODELS_DIR, searched first)",
            Path::new(&env).display()
        );
    }
    let _ = writeln!(out, "  cache     {}", dirs.cache_dir.display());
    let _ = writeln!(out, "  settings  {}", dirs.config_dir.display());
    out
}

/// Registers one provider on a throw-away session builder: loads its library and dependencies
/// without needing a model.
fn register(rt: &runtime::Runtime, kind: ProviderKind) -> Result<(), String> {
    let dispatch = match kind {
        ProviderKind::TensorRt => ep::TensorRT::default().build(),
        ProviderKind::Cuda => ep::CUDA::default().build(),
        ProviderKind::Cpu => ep::CPU::default().build(),
    };
    let builder = ort::session::Session::builder(&rt.env).map_err(|e| e.to_string())?;
    builder
        .with_execution_providers([dispatch.error_on_failure()])
        .map(|_| ())
        .map_err(|e| explain_failure(kind, e.message()))
}
