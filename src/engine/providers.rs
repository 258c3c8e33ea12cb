//! Execution providers: what the user asks for, what actually runs, and why the faster ones did not.
//!
//! ONNX Runtime silently falls back to the CPU when a GPU provider cannot load. cutout registers
//! one provider at a time with `error_on_failure`, so it always knows which one was accepted, and
//! keeps the reason for every provider it had to pass over.

use std::{fmt, str::FromStr};

/// An ONNX Runtime execution provider cutout can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// NVIDIA TensorRT for RTX (a plugin provider for GeForce/RTX GPUs: runtime cache, strongly
    /// typed, so it runs the graph in the precision it is given).
    #[serde(rename = "tensorrt-rtx")]
    TensorRtRtx,
    /// NVIDIA TensorRT (builds an optimised engine per model, shape and precision).
    TensorRt,
    /// NVIDIA CUDA with cuDNN.
    Cuda,
    /// WebGPU (a plugin provider built on Dawn): any desktop GPU through Vulkan, Direct3D 12 or
    /// Metal.
    #[serde(rename = "webgpu")]
    WebGpu,
    /// ONNX Runtime's own CPU kernels.
    Cpu,
}

impl ProviderKind {
    /// Fastest first: the order `auto` tries them in.
    pub const PREFERENCE: [Self; 5] = [
        Self::TensorRtRtx,
        Self::TensorRt,
        Self::Cuda,
        Self::WebGpu,
        Self::Cpu,
    ];

    /// Whether it runs on a GPU.
    pub fn is_gpu(self) -> bool {
        self != Self::Cpu
    }

    /// Short lower-case name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TensorRtRtx => "tensorrt-rtx",
            Self::TensorRt => "tensorrt",
            Self::Cuda => "cuda",
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }

    /// What starting a session and its first inference do on this provider, for the start-up
    /// line: `(session, first inference)`.
    pub fn startup_steps(self) -> (&'static str, &'static str) {
        match self {
            Self::TensorRtRtx => (
                "graph optimisation, engine build or runtime cache",
                "CUDA graph capture",
            ),
            Self::TensorRt => (
                "CUDA context, graph optimisation, engine build or cache",
                "first run",
            ),
            Self::Cuda => (
                "CUDA context, graph optimisation",
                "cuDNN algorithm choice, CUDA graph capture",
            ),
            Self::WebGpu => (
                "GPU device, graph optimisation",
                "shader compilation, graph capture",
            ),
            Self::Cpu => ("graph optimisation", "first run"),
        }
    }

    /// Name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::TensorRtRtx => "TensorRT-RTX",
            Self::TensorRt => "TensorRT",
            Self::Cuda => "CUDA",
            Self::WebGpu => "WebGPU",
            Self::Cpu => "CPU",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which provider the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderRequest {
    /// The fastest that works, falling back in order and saying why.
    #[default]
    Auto,
    /// Exactly this one, or an error that says why not.
    Only(ProviderKind),
}

impl FromStr for ProviderRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "tensorrt-rtx" | "tensorrt_rtx" | "trt-rtx" | "nvtensorrtrtx" => {
                Ok(Self::Only(ProviderKind::TensorRtRtx))
            }
            "tensorrt" | "trt" => Ok(Self::Only(ProviderKind::TensorRt)),
            "cuda" => Ok(Self::Only(ProviderKind::Cuda)),
            "webgpu" => Ok(Self::Only(ProviderKind::WebGpu)),
            "cpu" => Ok(Self::Only(ProviderKind::Cpu)),
            other => Err(format!(
                "unknown execution provider `{other}`; use auto, tensorrt-rtx, tensorrt, cuda, \
                 webgpu or cpu"
            )),
        }
    }
}

impl fmt::Display for ProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Only(kind) => f.write_str(kind.as_str()),
        }
    }
}

impl ProviderRequest {
    /// The providers to try, in order.
    pub fn candidates(self) -> Vec<ProviderKind> {
        match self {
            Self::Auto => ProviderKind::PREFERENCE.to_vec(),
            Self::Only(kind) => vec![kind],
        }
    }
}

/// Numeric precision of the network.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout (the model as published).
    #[default]
    Fp32,
    /// 16-bit floats inside the network, 32-bit inputs and outputs.
    Fp16,
}

impl Precision {
    /// Lower-case name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fp32 => "FP32",
            Self::Fp16 => "FP16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" => Ok(Self::Fp32),
            "fp16" | "float16" | "half" => Ok(Self::Fp16),
            other => Err(format!("unknown precision `{other}`; use fp32 or fp16")),
        }
    }
}

/// A provider that was tried and not used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedProvider {
    /// Which one.
    pub provider: ProviderKind,
    /// Why, in words the user can act on.
    pub reason: String,
}

/// What actually ran, and why the faster providers did not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderReport {
    /// What the user asked for.
    #[serde(serialize_with = "serialize_display")]
    pub requested: ProviderRequest,
    /// The provider the session runs on.
    pub provider: ProviderKind,
    /// The device it runs on where the provider name alone does not say
    /// (WebGPU: `Vulkan · NVIDIA H100 80GB HBM3`).
    pub device: Option<String>,
    /// The precision the network runs in.
    pub precision: Precision,
    /// Faster providers that were passed over, with reasons.
    pub skipped: Vec<SkippedProvider>,
    /// What is switched on for speed (IO binding, CUDA graphs, …), and anything that had to be
    /// switched off, with the reason.
    pub features: Vec<String>,
    /// Whether the NVIDIA driver loads here (every faster provider needs it); only asked when a
    /// faster provider was passed over.
    pub nvidia_driver: bool,
}

fn serialize_display<S: serde::Serializer, T: fmt::Display>(
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

impl ProviderReport {
    /// One line: `CPU provider, FP32 — TensorRT: …; CUDA: …`.
    pub fn summary(&self) -> String {
        let mut line = format!("{}, {}", self.runs_on(), self.precision);
        if let Some(note) = self.note() {
            line.push_str(&format!(" ({note})"));
        }
        if !self.features.is_empty() {
            line.push_str(&format!(" [{}]", self.features.join(", ")));
        }
        if !self.skipped.is_empty() {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.provider, s.reason))
                .collect();
            line.push_str(" — not used: ");
            line.push_str(&reasons.join("; "));
        }
        line
    }
}

/// Short causes for the headline, by what [`explain_failure`] and the session's checks say,
/// most telling first.
const SHORT_CAUSES: &[(&str, &str)] = &[
    ("NVIDIA driver is not installed", NO_NVIDIA_GPU),
    ("no usable NVIDIA GPU", NO_NVIDIA_GPU),
    ("no NVIDIA GPU", NO_NVIDIA_GPU),
    ("has no such provider", NO_GPU_BUILD),
    ("has no CUDA provider", NO_GPU_BUILD),
    ("has no TensorRT provider", NO_GPU_BUILD),
    ("cuDNN 9 is not installed", "cuDNN 9 not installed"),
    (
        "CUDA 13 runtime libraries are missing",
        "CUDA 13 not installed",
    ),
    ("TensorRT 10 is not installed", "TensorRT 10 not installed"),
];

const NO_NVIDIA_GPU: &str = "no NVIDIA GPU found";
const NO_GPU: &str = "no GPU found";
const NO_GPU_BUILD: &str = "the GPU build of ONNX Runtime is not installed (`cutout setup --gpu`)";

impl ProviderReport {
    /// One short line for people: what runs, and in a few words why nothing faster does, e.g.
    /// `CPU provider, FP32 — no NVIDIA GPU found; `cutout doctor` lists the options`. The
    /// reasons in full are [`Self::summary`] and the app's details.
    pub fn headline(&self) -> String {
        let mut line = format!("{}, {}", self.runs_on(), self.precision);
        if let Some(note) = self.note() {
            line.push_str(&format!(" ({note})"));
        }
        if let Some(why) = self.why_not_faster() {
            line.push_str(&format!(" — {why}; `cutout doctor` lists the options"));
        }
        line
    }

    /// `WebGPU · Vulkan · NVIDIA H100`, `CUDA`: the provider and, where it says more, its device.
    pub fn provider_name(&self) -> String {
        match &self.device {
            Some(device) => format!("{} · {device}", self.provider),
            None => self.provider.to_string(),
        }
    }

    /// `WebGPU provider (Vulkan · NVIDIA H100)`, `CPU provider`.
    pub fn runs_on(&self) -> String {
        match &self.device {
            Some(device) => format!("{} provider ({device})", self.provider),
            None => format!("{} provider", self.provider),
        }
    }

    /// In a few words, why no faster provider runs (`None` when none was passed over, or when
    /// WebGPU runs on a machine without NVIDIA's driver, where nothing faster can).
    pub fn why_not_faster(&self) -> Option<String> {
        let first = self.skipped.first()?;
        if !self.nvidia_driver {
            if self.provider == ProviderKind::WebGpu {
                return None;
            }
            let webgpu = self
                .skipped
                .iter()
                .find(|s| s.provider == ProviderKind::WebGpu);
            return Some(match webgpu {
                None => NO_NVIDIA_GPU.to_owned(),
                Some(s) if s.reason.contains("plugin is not installed") => {
                    "no NVIDIA GPU found, and the WebGPU plugin is not installed (`cutout setup`)"
                        .to_owned()
                }
                Some(s) if s.reason.contains("software renderer") => {
                    "no GPU found, only a software renderer".to_owned()
                }
                Some(s)
                    if s.reason.contains("discovered no GPU")
                        || s.reason.contains("adapter answered") =>
                {
                    NO_GPU.to_owned()
                }
                Some(_) => format!(
                    "no NVIDIA GPU found, and {} could not start",
                    ProviderKind::WebGpu
                ),
            });
        }
        let cause = SHORT_CAUSES.iter().find_map(|(needle, short)| {
            self.skipped
                .iter()
                .any(|s| s.reason.contains(needle))
                .then_some(*short)
        });
        Some(cause.map_or_else(
            || format!("{} could not start", first.provider),
            str::to_owned,
        ))
    }

    /// What the precision label alone would hide.
    pub fn note(&self) -> Option<&'static str> {
        (self.provider == ProviderKind::Cpu && self.precision == Precision::Fp16)
            .then_some("FP16 model; the CPU provider computes it in FP32, so expect FP32 speed")
    }
}

/// Turns ONNX Runtime's registration error into a reason with a next step.
pub fn explain_failure(provider: ProviderKind, message: &str) -> String {
    let missing = |lib: &str| message.contains(lib);
    let (nvinfer, driver, search_path) = if cfg!(windows) {
        ("nvinfer_10.dll", "nvcuda.dll", "PATH")
    } else {
        ("libnvinfer.so.10", "libcuda.so.1", "LD_LIBRARY_PATH")
    };
    let hint = if missing("libnvinfer") || missing("nvinfer") {
        format!(
            "TensorRT 10 is not installed ({nvinfer} not found); install TensorRT 10 for CUDA 13 \
             and make it visible to the loader ({search_path})"
        )
    } else if missing("libcuda.so")
        || missing("nvcuda.dll")
        || missing("nvml.dll")
        || missing("libnvidia-ml.so")
    {
        format!(
            "the NVIDIA driver is not installed ({driver} not found): this machine has no usable \
             NVIDIA GPU, or needs the NVIDIA driver (580 or newer for CUDA 13)"
        )
    } else if missing("libcudnn") || missing("cudnn") {
        "cuDNN 9 is not installed; run `cutout setup --gpu --force` or install cuDNN 9 for CUDA 13"
            .to_owned()
    } else if [
        "libcudart",
        "libcublas",
        "libcurand",
        "libcufft",
        "cudart64",
        "cublas64",
        "curand64",
        "cufft64",
    ]
    .iter()
    .any(|lib| missing(lib))
    {
        "the CUDA 13 runtime libraries are missing; run `cutout setup --gpu --force` or install \
         the CUDA 13 toolkit"
            .to_owned()
    } else if missing("CUDA driver")
        || missing("no CUDA-capable device")
        // cudaErrorNotSupported from the first CUDA call: a CUDA stub without a GPU behind it
        // (Wine's nvcuda.dll on a host without the NVIDIA driver).
        || missing("CUDA failure 801")
        || missing("cudaErrorNoDevice")
        || missing("cudaErrorInsufficientDriver")
    {
        "no usable NVIDIA GPU or driver was found".to_owned()
    } else if missing("not enabled")
        || missing("Unknown Provider")
        || missing("not available")
        || missing("not supported in this build")
    {
        "this ONNX Runtime build has no such provider; run `cutout setup --gpu` to install \
         onnxruntime-gpu"
            .to_owned()
    } else {
        String::new()
    };
    let message = message.trim();
    if hint.is_empty() {
        format!("{provider} failed: {message}")
    } else {
        format!("{hint} ({message})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print() {
        assert_eq!("auto".parse::<ProviderRequest>(), Ok(ProviderRequest::Auto));
        assert_eq!(
            "CUDA".parse::<ProviderRequest>(),
            Ok(ProviderRequest::Only(ProviderKind::Cuda))
        );
        assert_eq!(
            "trt".parse::<ProviderRequest>(),
            Ok(ProviderRequest::Only(ProviderKind::TensorRt))
        );
        assert!("gpu".parse::<ProviderRequest>().is_err());
        assert_eq!(
            "tensorrt-rtx".parse::<ProviderRequest>(),
            Ok(ProviderRequest::Only(ProviderKind::TensorRtRtx))
        );
        assert_eq!(ProviderKind::TensorRtRtx.to_string(), "TensorRT-RTX");
        assert_eq!(
            ProviderRequest::Only(ProviderKind::TensorRt).to_string(),
            "tensorrt"
        );
        assert_eq!("fp16".parse::<Precision>(), Ok(Precision::Fp16));
        assert!("int8".parse::<Precision>().is_err());
    }

    #[test]
    fn auto_tries_fastest_first() {
        assert_eq!(
            ProviderRequest::Auto.candidates(),
            vec![
                ProviderKind::TensorRtRtx,
                ProviderKind::TensorRt,
                ProviderKind::Cuda,
                ProviderKind::WebGpu,
                ProviderKind::Cpu
            ]
        );
        assert_eq!(
            ProviderRequest::Only(ProviderKind::Cuda).candidates(),
            vec![ProviderKind::Cuda]
        );
    }

    #[test]
    fn failures_name_the_missing_library() {
        let msg = "Failed to load library libonnxruntime_providers_tensorrt.so with error: libnvinfer.so.10: cannot open shared object file";
        let reason = explain_failure(ProviderKind::TensorRt, msg);
        assert!(reason.contains("TensorRT 10 is not installed"), "{reason}");
        assert!(reason.contains("libnvinfer.so.10"), "{reason}");
        let reason = explain_failure(
            ProviderKind::Cuda,
            "Failed to load library libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file",
        );
        assert!(
            reason.starts_with("the NVIDIA driver is not installed"),
            "{reason}"
        );
        let reason = explain_failure(
            ProviderKind::Cuda,
            "libcudart.so.13: cannot open shared object file",
        );
        assert!(reason.contains("CUDA 13 runtime"), "{reason}");
        let reason = explain_failure(
            ProviderKind::Cuda,
            "libcudnn.so.9: cannot open shared object file",
        );
        assert!(reason.contains("cuDNN 9"), "{reason}");
        let reason = explain_failure(ProviderKind::Cuda, "something odd");
        assert_eq!(reason, "CUDA failed: something odd");
        // What the Windows build met under Wine with the GPU build set up and no NVIDIA driver.
        let reason = explain_failure(
            ProviderKind::TensorRtRtx,
            "Error loading \"onnxruntime_providers_nv_tensorrt_rtx.dll\" which depends on \
             \"nvml.dll\" which is missing. (Error 126: \"Module not found.\")",
        );
        assert!(
            reason.starts_with("the NVIDIA driver is not installed"),
            "{reason}"
        );
        let reason = explain_failure(
            ProviderKind::Cuda,
            "CUDA failure 801: (null) ; GPU=-1 ; expr=cudaGetDeviceCount(&num_devices);",
        );
        assert!(
            reason.starts_with("no usable NVIDIA GPU or driver"),
            "{reason}"
        );
    }

    #[test]
    fn summary_names_what_ran_and_why_not_the_others() {
        let report = ProviderReport {
            requested: ProviderRequest::Auto,
            provider: ProviderKind::Cpu,
            device: None,
            precision: Precision::Fp32,
            skipped: vec![SkippedProvider {
                provider: ProviderKind::Cuda,
                reason: "no GPU".into(),
            }],
            features: Vec::new(),
            nvidia_driver: true,
        };
        assert_eq!(
            report.summary(),
            "CPU provider, FP32 — not used: CUDA: no GPU"
        );
        assert_eq!(
            report.headline(),
            "CPU provider, FP32 — CUDA could not start; `cutout doctor` lists the options"
        );
        let no_driver = ProviderReport {
            skipped: vec![SkippedProvider {
                provider: ProviderKind::Cuda,
                reason: explain_failure(
                    ProviderKind::Cuda,
                    "libcuda.so.1: cannot open shared object file",
                ),
            }],
            ..report.clone()
        };
        assert_eq!(
            no_driver.headline(),
            "CPU provider, FP32 — no NVIDIA GPU found; `cutout doctor` lists the options"
        );
        let no_gpu_build = ProviderReport {
            skipped: vec![SkippedProvider {
                provider: ProviderKind::Cuda,
                reason: explain_failure(
                    ProviderKind::Cuda,
                    "CUDA execution provider is not enabled in this build",
                ),
            }],
            ..report
        };
        assert_eq!(no_gpu_build.why_not_faster().as_deref(), Some(NO_GPU_BUILD));
        let machine_without_driver = ProviderReport {
            nvidia_driver: false,
            ..no_gpu_build
        };
        assert_eq!(
            machine_without_driver.why_not_faster().as_deref(),
            Some(NO_NVIDIA_GPU)
        );
        let software_only = ProviderReport {
            skipped: vec![SkippedProvider {
                provider: ProviderKind::WebGpu,
                reason: "the only Vulkan adapter here is a software renderer (SwiftShader)".into(),
            }],
            ..machine_without_driver.clone()
        };
        assert_eq!(
            software_only.why_not_faster().as_deref(),
            Some("no GPU found, only a software renderer")
        );
        let on_webgpu = ProviderReport {
            provider: ProviderKind::WebGpu,
            device: Some("Vulkan · AMD Radeon RX 7900 XTX".into()),
            skipped: vec![SkippedProvider {
                provider: ProviderKind::Cuda,
                reason: "no NVIDIA GPU".into(),
            }],
            ..machine_without_driver
        };
        assert_eq!(
            on_webgpu.headline(),
            "WebGPU provider (Vulkan · AMD Radeon RX 7900 XTX), FP32",
            "on a machine without NVIDIA's driver nothing is faster than WebGPU"
        );
    }
}
