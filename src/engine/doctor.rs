//! `cutout doctor`: what ONNX Runtime, providers, GPU and libraries this machine really has.

use std::{fmt::Write as _, path::Path, process::Command};

use ort::ep::{self, ExecutionProvider as _};

use super::{
    models::{self, Manifest},
    providers::Precision,
    providers::{ProviderKind, explain_failure},
    runtime::{
        self, CUDA_LIBRARIES, RuntimeSource, TENSORRT_LIBRARIES,
        plugin::{Plugin, PluginState, find_library},
        tensorrt_rtx, webgpu,
    },
};
use crate::paths::AppDirs;

/// The NVIDIA GPU and driver, if any: `nvidia-smi`'s answer, else the kernel driver's version line.
/// Asked once per process (the TensorRT engine cache key reads it at every session build).
pub fn nvidia_gpu() -> Option<String> {
    static GPU: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    GPU.get_or_init(ask_nvidia_gpu).clone()
}

/// The first NVIDIA GPU's compute capability as `nvidia-smi` gives it (`9.0`), asked once.
pub fn nvidia_compute_capability() -> Option<String> {
    static CC: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CC.get_or_init(|| {
        Command::new("nvidia-smi")
            .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .map(|l| l.trim().to_owned())
            })
            .filter(|s| !s.is_empty())
    })
    .clone()
}

/// The GPU's name and compute capability, for TensorRT-RTX's reasons.
pub fn gpu_and_compute_capability() -> Option<(String, String)> {
    let name = nvidia_gpu()?.split(',').next()?.trim().to_owned();
    Some((name, nvidia_compute_capability()?))
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
    let loaded = runtime::load(dirs);
    runtime_section(&mut out, &loaded);
    providers_section(&mut out, loaded.as_deref().ok());
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
    if let Ok(rt) = &loaded {
        plugin_section(
            &mut out,
            rt,
            &tensorrt_rtx::PLUGIN,
            &rt.tensorrt_rtx,
            "`cutout setup --gpu`",
        );
        tensorrt_rtx_gpu(&mut out);
        plugin_section(&mut out, rt, &webgpu::PLUGIN, &rt.webgpu, "`cutout setup`");
        webgpu_adapters(&mut out);
        discovered_devices(&mut out, rt);
    }
    models_section(&mut out, dirs);
    folders_section(&mut out, dirs);
    out
}

/// Which ONNX Runtime loaded, from where, and the libraries it preloaded.
fn runtime_section(
    out: &mut String,
    loaded: &Result<std::sync::Arc<runtime::Runtime>, runtime::RuntimeError>,
) {
    let _ = writeln!(out, "\nONNX Runtime");
    let rt = match loaded {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(out, "  not loaded: {e}");
            return;
        }
    };
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

/// One line per execution provider: compiled in (or a plugin), and usable here or why not.
fn providers_section(out: &mut String, loaded: Option<&runtime::Runtime>) {
    let _ = writeln!(out, "\nExecution providers (compiled in / usable here)");
    let Some(rt) = loaded else {
        let _ = writeln!(out, "  unknown until ONNX Runtime loads");
        return;
    };
    for kind in ProviderKind::PREFERENCE {
        if let Some(usable) = plugin_usable(rt, kind) {
            let _ = writeln!(out, "  {:<12} plugin       usable: {usable}", kind.label());
            continue;
        }
        let compiled = match kind {
            ProviderKind::TensorRt => ep::TensorRT::is_available(),
            ProviderKind::Cuda => ep::CUDA::is_available(),
            _ => ep::CPU::is_available(),
        }
        .unwrap_or(false);
        let usable = if !compiled {
            "no: not in this build (run `cutout setup --gpu` for onnxruntime-gpu)".to_owned()
        } else {
            match register(rt, kind) {
                // Windows' CUDA provider links the driver lazily, so it registers without one
                // (under Wine, on a stub): only a GPU that answers makes it usable.
                Ok(()) if kind.is_gpu() && nvidia_gpu().is_none() => {
                    "no: it loads, but no NVIDIA GPU or \
                     driver answered (nvidia-smi found none); sessions on it would fail"
                        .to_owned()
                }
                Ok(()) => "yes".to_owned(),
                Err(reason) => format!("no: {reason}"),
            }
        };
        let _ = writeln!(
            out,
            "  {:<12} compiled in: {:<3}  usable: {usable}",
            kind.label(),
            if compiled { "yes" } else { "no" }
        );
    }
}

/// Whether a plugin provider (TensorRT-RTX, WebGPU) is usable here; `None` for the built-in ones.
fn plugin_usable(rt: &runtime::Runtime, kind: ProviderKind) -> Option<String> {
    match kind {
        ProviderKind::TensorRtRtx => Some(match tensorrt_rtx_devices(rt) {
            Ok(n) => format!("yes ({n} device(s))"),
            Err(reason) => format!("no: {reason}"),
        }),
        ProviderKind::WebGpu => Some(match webgpu::choose(rt, Precision::Fp32, true) {
            Ok((_, adapter)) if adapter.kind == webgpu::AdapterKind::Software => format!(
                "only with --ep webgpu, on a software renderer ({}); auto passes it over",
                adapter.describe()
            ),
            Ok((_, adapter)) => format!("yes ({})", adapter.describe()),
            Err(reason) => format!("no: {reason}"),
        }),
        _ => None,
    }
}

/// Each model of the manifest: ready (and where), not fetched yet, or refused and why.
fn models_section(out: &mut String, dirs: &AppDirs) {
    let _ = writeln!(out, "\nModels");
    let manifest = match Manifest::builtin() {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            return;
        }
    };
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

/// The folders cutout reads and writes.
fn folders_section(out: &mut String, dirs: &AppDirs) {
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
}

fn tensorrt_rtx_devices(rt: &runtime::Runtime) -> Result<usize, String> {
    tensorrt_rtx::devices(rt, gpu_and_compute_capability).map(|devices| devices.len())
}

/// A plugin's folder, its libraries (loaded, not just looked for) and what ONNX Runtime made of
/// it.
fn plugin_section(
    out: &mut String,
    rt: &runtime::Runtime,
    plugin: &Plugin,
    state: &PluginState,
    setup: &str,
) {
    let folder = plugin.folder_beside(&rt.location.library);
    let _ = writeln!(out, "\n{} plugin ({})", plugin.title, plugin.package);
    let _ = writeln!(out, "  folder    {}", folder.display());
    let names = plugin
        .dependencies
        .iter()
        .copied()
        .chain([plugin.file_name()]);
    for prefix in names {
        let state = match find_library(&folder, prefix) {
            Some(path) => probe_library(
                &path.file_name().unwrap_or_default().to_string_lossy(),
                Some(&folder),
            ),
            None => "missing".to_owned(),
        };
        let _ = writeln!(out, "  {prefix:<44} {state}");
    }
    let state = match state {
        PluginState::NotInstalled { .. } => format!("not installed ({setup} fetches it)"),
        PluginState::Failed { reason, .. } if plugin == &webgpu::PLUGIN => {
            format!("not registered: {}", webgpu::explain_failure(reason))
        }
        PluginState::Failed { reason, .. } => format!(
            "not registered: {}",
            explain_failure(ProviderKind::TensorRtRtx, reason)
        ),
        PluginState::Registered { .. } => "registered with ONNX Runtime".to_owned(),
    };
    let _ = writeln!(out, "  plugin    {state}");
}

/// The NVIDIA GPU TensorRT-RTX would run on.
fn tensorrt_rtx_gpu(out: &mut String) {
    let gpu = gpu_and_compute_capability();
    let _ = writeln!(
        out,
        "  GPU       {}",
        gpu.as_ref().map_or_else(
            || "no NVIDIA GPU answered".to_owned(),
            |(name, cc)| format!("{name}, compute capability {cc}")
        )
    );
}

/// Every adapter the native API offers WebGPU, best first.
fn webgpu_adapters(out: &mut String) {
    let (_, api) = webgpu::native_api();
    let adapters = webgpu::adapters();
    if adapters.is_empty() {
        let _ = writeln!(out, "  adapters  none: no {api} adapter answered");
    }
    for (i, adapter) in adapters.iter().enumerate() {
        let role = if i == 0 { "adapter  " } else { "also     " };
        let _ = writeln!(out, "  {role} {}", adapter.details());
    }
}

/// Every device ONNX Runtime discovered, for whichever provider.
fn discovered_devices(out: &mut String, rt: &runtime::Runtime) {
    let _ = writeln!(out, "\nDevices ONNX Runtime discovered, by provider");
    for device in rt.env.devices() {
        let hardware = device.hardware_device();
        let _ = writeln!(
            out,
            "  {:<32} {:?} {} (device id {})",
            device.ep().unwrap_or("?"),
            hardware.ty(),
            hardware.vendor().unwrap_or("?"),
            hardware.id(),
        );
    }
}

/// Registers one provider on a throw-away session builder: loads its library and dependencies
/// without needing a model.
fn register(rt: &runtime::Runtime, kind: ProviderKind) -> Result<(), String> {
    let dispatch = match kind {
        ProviderKind::TensorRt => ep::TensorRT::default().build(),
        ProviderKind::Cuda => ep::CUDA::default().build(),
        _ => ep::CPU::default().build(),
    };
    let builder = ort::session::Session::builder(&rt.env).map_err(|e| e.to_string())?;
    builder
        .with_execution_providers([dispatch.error_on_failure()])
        .map(|_| ())
        .map_err(|e| explain_failure(kind, e.message()))
}
