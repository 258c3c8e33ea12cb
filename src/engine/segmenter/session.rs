//! Building the session for one provider: options per provider, the prepared model, device IO on
//! a GPU and the first inference (a failed CUDA-graph capture rebuilds without graphs).

use std::{path::Path, time::Instant};

use ort::{
    ep::{self, ExecutionProvider as _},
    memory::AllocationDevice,
    session::{
        RunOptions, Session,
        builder::{GraphOptimizationLevel, SessionBuilder},
    },
};

use super::device_io::{DeviceIo, check_io, run_bound};
use super::tensorrt::{CacheKey, TensorRtRtxSettings, TensorRtSettings};
use super::{ConvSearch, SegmenterOptions, StartupTimings, ms_since};
use crate::engine::{
    EngineError,
    models::ResolvedModel,
    providers::{Precision, ProviderKind, ProviderRequest, explain_failure},
    runtime::{Runtime, tensorrt_rtx, webgpu},
};

pub(super) enum SessionFailure {
    /// The provider could not run: try the next one.
    Provider(String),
    /// The model itself is unusable: no provider will help.
    Model(EngineError),
}

/// A started session: the session, its device IO on a GPU, what starting cost, and the device it
/// runs on where the provider alone does not say (WebGPU's adapter).
pub(super) type Started = (Session, Option<DeviceIo>, StartupTimings, Option<String>);

/// Builds the session for one provider, sets up device IO on a GPU and runs the first inference.
/// On the CUDA and WebGPU providers a failed graph capture rebuilds the session without graphs,
/// noted in `features`.
pub(super) fn start(
    runtime: &Runtime,
    prepared: &Path,
    provider: ProviderKind,
    options: &SegmenterOptions,
    cache_dir: &Path,
    model: &ResolvedModel,
    features: &mut Vec<String>,
) -> Result<Started, SessionFailure> {
    let mut graphs =
        matches!(provider, ProviderKind::Cuda | ProviderKind::WebGpu) && options.cuda_graphs;
    loop {
        let started = Instant::now();
        let (session, device_name) = build_session(
            runtime, prepared, provider, options, cache_dir, model, graphs,
        )?;
        let session_ms = ms_since(started);
        // TensorRT-RTX runs on host tensors (ONNX Runtime copies them): its device memory comes
        // from the plugin, not from the CUDA provider that device IO allocates through.
        let outcome = if matches!(provider, ProviderKind::Cpu | ProviderKind::TensorRtRtx) {
            Ok((session, None, session_ms))
        } else {
            first_device_run(runtime, session, provider, options, model)
                .map(|(s, d)| (s, Some(d), session_ms))
        };
        match outcome {
            Ok((session, device, session_ms)) => {
                let first_run_ms = ms_since(started) - session_ms;
                features.extend(provider_features(provider, options, graphs));
                return Ok((
                    session,
                    device,
                    StartupTimings {
                        session_ms,
                        first_run_ms,
                        ..StartupTimings::default()
                    },
                    device_name,
                ));
            }
            Err(reason) if graphs => {
                let what = if provider == ProviderKind::Cuda {
                    "CUDA graphs"
                } else {
                    "graph capture"
                };
                tracing::warn!("{what} failed, running without it: {reason}");
                features.push(format!("{what} off ({reason})"));
                graphs = false;
            }
            Err(reason) => {
                return Err(SessionFailure::Provider(explain_failure(provider, &reason)));
            }
        }
    }
}

fn provider_features(
    provider: ProviderKind,
    options: &SegmenterOptions,
    graphs: bool,
) -> Vec<String> {
    let mut out = vec!["fixed-shape prepared model".to_owned()];
    match provider {
        ProviderKind::Cuda => {
            let search = options.conv_search.label();
            let layout = if options.prefer_nhwc { "NHWC" } else { "NCHW" };
            out.extend([
                "IO binding".to_owned(),
                search.to_owned(),
                layout.to_owned(),
            ]);
            if options.fuse_conv_bias {
                out.push("cuDNN conv+bias fusion".to_owned());
            }
            if options.precision == Precision::Fp32 {
                // ONNX Runtime's default, as PyTorch's: FP32 convolutions on tensor cores.
                out.push("TF32 convolutions".to_owned());
            }
            if graphs {
                // ONNX Runtime captures a CUDA graph only when every node runs on CUDA.
                out.push("CUDA graphs (all nodes on the GPU)".to_owned());
            }
        }
        ProviderKind::TensorRt => {
            out.extend([
                "IO binding".to_owned(),
                "engine and timing cache".to_owned(),
            ]);
            if options.precision == Precision::Fp16 {
                out.push("TensorRT FP16".to_owned());
            }
        }
        ProviderKind::TensorRtRtx => {
            out.extend([
                "runtime cache".to_owned(),
                "CUDA graphs".to_owned(),
                "host IO".to_owned(),
            ]);
            if options.precision == Precision::Fp16 {
                out.push("strongly typed FP16 graph".to_owned());
            }
        }
        ProviderKind::WebGpu => {
            out.extend([
                "IO binding".to_owned(),
                if options.prefer_nhwc { "NHWC" } else { "NCHW" }.to_owned(),
                "every node on the GPU".to_owned(),
                "run time includes the mask's read-back".to_owned(),
            ]);
            if graphs {
                out.push("graph capture".to_owned());
            }
            out.extend(
                options
                    .webgpu_options
                    .iter()
                    .map(|(key, value)| format!("{key}={value}")),
            );
        }
        ProviderKind::Cpu => {}
    }
    out
}

/// Binds device tensors and runs once (with graphs, this is the capture).
fn first_device_run(
    runtime: &Runtime,
    mut session: Session,
    provider: ProviderKind,
    options: &SegmenterOptions,
    model: &ResolvedModel,
) -> Result<(Session, DeviceIo), String> {
    let side_px = options.input_side_px.unwrap_or(model.spec.input_size);
    let side = side_px as usize;
    let (input_name, output_name) =
        check_io(&session, &model.path, side_px).map_err(|e| e.to_string())?;
    let (memory, plugin_env) = if provider == ProviderKind::WebGpu {
        (AllocationDevice::WEBGPU_BUFFER, Some(runtime.env.clone()))
    } else {
        (AllocationDevice::CUDA, None)
    };
    let mut device = DeviceIo::new(
        &session,
        memory,
        plugin_env,
        &input_name,
        &output_name,
        side,
    )
    .map_err(|e| format!("cannot bind GPU buffers: {e}"))?;
    // A mid-grey image: realistic values, not zeros (which can take faster paths).
    let grey = vec![0.1f32; 3 * side * side];
    device.upload(&grey).map_err(|e| e.to_string())?;
    let run_options = RunOptions::new().map_err(|e| e.to_string())?;
    run_bound(&mut session, &mut device, &run_options).map_err(|e| e.to_string())?;
    Ok((session, device))
}

fn cache_key<'a>(
    runtime: &'a Runtime,
    options: &SegmenterOptions,
    model: &'a ResolvedModel,
    gpu: &'a str,
) -> CacheKey<'a> {
    CacheKey {
        model_sha256: &model.sha256,
        side_px: options.input_side_px.unwrap_or(model.spec.input_size),
        precision: options.precision,
        ort_version: &runtime.version,
        gpu,
    }
}

/// Appends TensorRT-RTX on the devices its plugin offers, or says why it cannot run here.
fn with_tensorrt_rtx(
    builder: SessionBuilder,
    runtime: &Runtime,
    options: &SegmenterOptions,
    cache_dir: &Path,
    model: &ResolvedModel,
) -> Result<SessionBuilder, SessionFailure> {
    let devices = tensorrt_rtx::devices(runtime, crate::engine::doctor::gpu_and_compute_capability)
        .map_err(SessionFailure::Provider)?;
    let gpu = crate::engine::doctor::nvidia_gpu().unwrap_or_default();
    let settings = TensorRtRtxSettings::new(
        cache_dir,
        cache_key(runtime, options, model, &gpu),
        options.tensorrt_workspace_bytes,
        options.cuda_graphs,
    );
    if let Err(e) = std::fs::create_dir_all(&settings.runtime_cache) {
        tracing::warn!(
            "cannot create the TensorRT-RTX runtime cache ({e}): {}",
            settings.runtime_cache.display()
        );
    }
    builder
        .with_devices(devices, Some(&settings.provider_options()))
        .map_err(|e| {
            SessionFailure::Provider(explain_failure(ProviderKind::TensorRtRtx, e.message()))
        })
}

/// Appends WebGPU on the device ONNX Runtime offers its plugin, with every node on the GPU (a node
/// WebGPU cannot run fails the session, never runs on the CPU unseen), or says why it cannot run
/// here. Returns the adapter it runs on.
fn with_webgpu(
    builder: SessionBuilder,
    runtime: &Runtime,
    options: &SegmenterOptions,
    graphs: bool,
) -> Result<(SessionBuilder, String), SessionFailure> {
    let forced = options.provider == ProviderRequest::Only(ProviderKind::WebGpu);
    let (devices, adapter) =
        webgpu::choose(runtime, options.precision, forced).map_err(SessionFailure::Provider)?;
    let provider_options = webgpu_options(options, graphs);
    let builder = builder
        .with_disable_cpu_fallback()
        .map_err(|e| SessionFailure::Provider(webgpu::explain_failure(e.message())))?
        .with_devices(devices, Some(&provider_options))
        .map_err(|e| SessionFailure::Provider(webgpu::explain_failure(e.message())))?;
    Ok((builder, adapter.describe()))
}

/// WebGPU's provider options, keyed as `SessionBuilder::with_devices` takes them.
fn webgpu_options(options: &SegmenterOptions, graphs: bool) -> Vec<(String, String)> {
    let layout = if options.prefer_nhwc { "NHWC" } else { "NCHW" };
    [
        ("preferredLayout".to_owned(), layout.to_owned()),
        (
            "enableGraphCapture".to_owned(),
            if graphs { "1" } else { "0" }.to_owned(),
        ),
        ("powerPreference".to_owned(), "high-performance".to_owned()),
    ]
    .into_iter()
    .chain(options.webgpu_options.iter().cloned())
    .map(|(k, v)| (format!("{}.{k}", webgpu::PLUGIN.ep_name), v))
    .collect()
}

fn build_session(
    runtime: &Runtime,
    model_path: &Path,
    provider: ProviderKind,
    options: &SegmenterOptions,
    cache_dir: &Path,
    model: &ResolvedModel,
    cuda_graphs: bool,
) -> Result<(Session, Option<String>), SessionFailure> {
    let mut device_name = None;
    let mut builder = base_builder(runtime, options)?;
    let dispatch = match provider {
        ProviderKind::TensorRt => Some(tensorrt_dispatch(runtime, options, cache_dir, model)?),
        ProviderKind::Cuda => Some(cuda_dispatch(options, cuda_graphs)?),
        ProviderKind::TensorRtRtx => {
            builder = with_tensorrt_rtx(builder, runtime, options, cache_dir, model)?;
            None
        }
        ProviderKind::WebGpu => {
            let (with, adapter) = with_webgpu(builder, runtime, options, cuda_graphs)?;
            builder = with;
            device_name = Some(adapter);
            None
        }
        ProviderKind::Cpu => None,
    };
    if let Some(dispatch) = dispatch {
        builder = builder
            .with_execution_providers([dispatch.error_on_failure()])
            .map_err(|e| SessionFailure::Provider(explain_failure(provider, e.message())))?;
    }
    let session = builder.commit_from_file(model_path).map_err(|e| {
        let message = e.to_string();
        // A GPU provider that registered can still fail when the session starts (no device, a
        // library loaded lazily); the CPU provider failing means the model itself is bad.
        if provider == ProviderKind::Cpu {
            SessionFailure::Model(EngineError::LoadModel {
                path: model_path.to_owned(),
                reason: message,
            })
        } else if provider == ProviderKind::WebGpu {
            SessionFailure::Provider(webgpu::explain_failure(&message))
        } else {
            SessionFailure::Provider(explain_failure(provider, &message))
        }
    })?;
    Ok((session, device_name))
}

fn setup_failure(e: &dyn std::fmt::Display) -> SessionFailure {
    SessionFailure::Model(EngineError::Setup(e.to_string()))
}

/// A session builder with what every provider shares: full graph optimisation, the thread count
/// and spinning asked for, and where to write the optimised graph when asked.
fn base_builder(
    runtime: &Runtime,
    options: &SegmenterOptions,
) -> Result<SessionBuilder, SessionFailure> {
    let mut builder = Session::builder(&runtime.env)
        .map_err(|e| setup_failure(&e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| setup_failure(&e))?;
    if let Some(path) = &options.dump_optimized {
        builder = builder
            .with_optimized_model_path(path)
            .map_err(|e| setup_failure(&e))?;
    }
    if let Some(threads) = options.intra_threads {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| setup_failure(&e))?;
    }
    if !options.spin {
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| setup_failure(&e))?;
    }
    Ok(builder)
}

/// Fails over to the next provider when this ONNX Runtime build lacks `name`.
fn provider_available(available: &ort::Result<bool>, name: &str) -> Result<(), SessionFailure> {
    match available {
        Ok(true) => Ok(()),
        _ => Err(SessionFailure::Provider(format!(
            "this ONNX Runtime build has no {name} provider; run `cutout setup --gpu` to install onnxruntime-gpu"
        ))),
    }
}

/// The TensorRT provider: FP16 engine, engine and timing caches in `cache_dir`.
fn tensorrt_dispatch(
    runtime: &Runtime,
    options: &SegmenterOptions,
    cache_dir: &Path,
    model: &ResolvedModel,
) -> Result<ep::ExecutionProviderDispatch, SessionFailure> {
    provider_available(&ep::TensorRT::is_available(), "TensorRT")?;
    let gpu = crate::engine::doctor::nvidia_gpu().unwrap_or_default();
    let trt = TensorRtSettings::new(
        cache_dir,
        cache_key(runtime, options, model, &gpu),
        options.tensorrt_workspace_bytes,
    );
    if let Err(e) = std::fs::create_dir_all(&trt.cache) {
        // TensorRT then builds its engine every time; the session still runs.
        tracing::warn!(
            "cannot create the TensorRT cache folder ({e}): {}",
            trt.cache.display()
        );
    }
    Ok(ep::TensorRT::default()
        .with_device_id(0)
        .with_fp16(trt.fp16)
        .with_engine_cache(true)
        .with_engine_cache_path(trt.cache.display())
        .with_engine_cache_prefix(&trt.prefix)
        .with_timing_cache(true)
        .with_timing_cache_path(trt.cache.display())
        .with_max_workspace_size(trt.workspace_bytes)
        .build())
}

/// The CUDA provider with the convolution search, layout and graph capture asked for.
fn cuda_dispatch(
    options: &SegmenterOptions,
    cuda_graphs: bool,
) -> Result<ep::ExecutionProviderDispatch, SessionFailure> {
    provider_available(&ep::CUDA::is_available(), "CUDA")?;
    Ok(ep::CUDA::default()
        .with_device_id(0)
        // One fixed shape: an exhaustive search runs once, at the first inference.
        .with_conv_algorithm_search(match options.conv_search {
            ConvSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
            ConvSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
            ConvSearch::Fixed => ep::cuda::ConvAlgorithmSearch::Default,
        })
        .with_prefer_nhwc(options.prefer_nhwc)
        .with_fuse_conv_bias(options.fuse_conv_bias)
        .with_cuda_graph(cuda_graphs)
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_what_is_really_switched_on() {
        let mut options = SegmenterOptions::default();
        let cuda = provider_features(ProviderKind::Cuda, &options, true);
        assert_eq!(
            cuda,
            [
                "fixed-shape prepared model",
                "IO binding",
                "cuDNN exhaustive search",
                "NHWC",
                "TF32 convolutions",
                "CUDA graphs (all nodes on the GPU)"
            ]
        );
        options.prefer_nhwc = false;
        options.conv_search = ConvSearch::Heuristic;
        let cuda = provider_features(ProviderKind::Cuda, &options, false);
        assert_eq!(
            cuda,
            [
                "fixed-shape prepared model",
                "IO binding",
                "cuDNN heuristic search",
                "NCHW",
                "TF32 convolutions"
            ]
        );
        options.precision = Precision::Fp16;
        assert!(
            !provider_features(ProviderKind::Cuda, &options, false)
                .contains(&"TF32 convolutions".to_owned()),
            "FP16 convolutions are not TF32"
        );
        assert!(
            provider_features(ProviderKind::TensorRt, &options, false)
                .contains(&"TensorRT FP16".to_owned())
        );
        assert_eq!(
            provider_features(ProviderKind::Cpu, &options, false),
            ["fixed-shape prepared model"]
        );
        assert!(
            provider_features(ProviderKind::TensorRtRtx, &options, false)
                .contains(&"strongly typed FP16 graph".to_owned())
        );
    }

    #[test]
    fn the_convolution_search_is_named_in_the_report_and_parsed_by_name() {
        for search in ConvSearch::ALL {
            let options = SegmenterOptions {
                conv_search: search,
                ..SegmenterOptions::default()
            };
            let features = provider_features(ProviderKind::Cuda, &options, false);
            assert!(
                features.contains(&search.label().to_owned()),
                "{features:?}"
            );
            assert_eq!(search.name().parse::<ConvSearch>(), Ok(search));
        }
        assert_eq!(
            ConvSearch::Fixed.label(),
            "cuDNN fixed algorithm",
            "the report names the one algorithm"
        );
        let err = "fastest".parse::<ConvSearch>().unwrap_err();
        assert!(err.contains("exhaustive, heuristic or fixed"), "{err}");
    }
}
