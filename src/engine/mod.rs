//! Everything between a preprocessed tensor and a raw mask: ONNX Runtime discovery and setup,
//! models, execution providers and the [`Segmenter`] that owns the session. Nothing here knows
//! about windows or widgets.

pub mod doctor;
pub mod fetch;
pub mod http;
pub mod models;
pub mod npm;
pub mod pipeline;
pub mod prepare;
pub mod providers;
pub mod runtime;
pub mod segmenter;

use std::path::PathBuf;

pub use models::{Manifest, ModelError, ModelSpec, ResolvedModel};
pub use pipeline::MaskPipeline;
pub use providers::{Precision, ProviderKind, ProviderReport, ProviderRequest};
pub use runtime::{Runtime, RuntimeError};
pub use segmenter::{
    ConvSearch, RunStopper, Segmenter, SegmenterOptions, StageTimings, StartupTimings,
};

use crate::paths::AppDirs;

/// Why the engine could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// ONNX Runtime is missing or broken.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model is missing, refused or could not be fetched.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The one provider the user asked for cannot run.
    #[error("the {provider} execution provider cannot run: {reason}")]
    ProviderUnavailable {
        /// The provider asked for.
        provider: ProviderKind,
        /// Why, with a next step.
        reason: String,
    },
    /// The fixed-size or FP16 copy of the model could not be made.
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
    /// Not even the CPU provider could start.
    #[error("no execution provider could run the model: {0}")]
    NoProvider(String),
    /// The precision asked for cannot run.
    #[error("{precision} is not available: {reason}")]
    PrecisionUnavailable {
        /// The precision asked for.
        precision: Precision,
        /// Why, with a next step.
        reason: String,
    },
    /// ONNX Runtime rejected the model file.
    #[error("ONNX Runtime could not load the model ({reason}): {}", .path.display())]
    LoadModel {
        /// The model file.
        path: PathBuf,
        /// What ONNX Runtime said.
        reason: String,
    },
    /// The model loads but is not an image-to-mask network cutout can drive.
    #[error("this model cannot be used because {what}: {}", .path.display())]
    UnsupportedModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The model's graph is fixed at one input size.
    #[error(
        "{model} takes only {fixed_px} px inputs (its graph is fixed at that size), not {side_px} px; leave out --size"
    )]
    FixedInputSize {
        /// Model name.
        model: String,
        /// What was asked for.
        side_px: u32,
        /// The one size it runs at.
        fixed_px: u32,
    },
    /// An input side outside what makes sense.
    #[error("input size {0} px is out of range; use 32 to 4096")]
    InvalidInputSize(u32),
    /// The tensor handed to the network has the wrong length.
    #[error("input tensor has {got} values; expected {expected}")]
    BadInput {
        /// Values expected.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// The network returned something unexpected.
    #[error("unexpected model output: {0}")]
    BadOutput(String),
    /// The photo could not be resized to the network's input, or the mask back to the photo.
    #[error(transparent)]
    Pixels(#[from] crate::image_ops::ImageError),
    /// Session options could not be set.
    #[error("could not configure ONNX Runtime: {0}")]
    Setup(String),
    /// An ONNX Runtime call failed.
    #[error("ONNX Runtime could not {action}: {message}")]
    Ort {
        /// What was being done.
        action: &'static str,
        /// What ONNX Runtime said.
        message: String,
    },
}

impl EngineError {
    pub(crate) fn ort(action: &'static str, e: &dyn std::fmt::Display) -> Self {
        Self::Ort {
            action,
            message: e.to_string(),
        }
    }
}

/// Which model to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// A model from the manifest, by name.
    Named(String),
    /// A user's own ONNX file, checked by its inputs and outputs.
    Custom(PathBuf),
}

impl Default for ModelChoice {
    fn default() -> Self {
        Self::Named(models::DEFAULT_MODEL.to_owned())
    }
}

/// Finds (or downloads) the model file for `choice`.
pub fn resolve_model(
    dirs: &AppDirs,
    choice: &ModelChoice,
    progress: models::FetchProgress<'_>,
) -> Result<ResolvedModel, EngineError> {
    Ok(match choice {
        ModelChoice::Named(name) => {
            let manifest = Manifest::builtin()?;
            fetch::resolve(manifest.get(name)?, dirs, progress)?
        }
        ModelChoice::Custom(path) => {
            let default_side = Manifest::builtin()?.get(models::DEFAULT_MODEL)?.input_size;
            models::custom(path, default_side)?
        }
    })
}

/// Loads ONNX Runtime, resolves the model and builds a [`Segmenter`]: the one call the CLI, the
/// worker thread and the tests use.
pub fn open(
    dirs: &AppDirs,
    choice: &ModelChoice,
    options: &SegmenterOptions,
    progress: models::FetchProgress<'_>,
) -> Result<Segmenter, EngineError> {
    let context = warm_up_gpu(dirs, options);
    let loaded = load(dirs, choice, progress)?;
    build(dirs, &loaded, options, context)
}

/// The session for `options` on what [`load`] gave; `context` (the CUDA context being made) is
/// held until the session has its own.
fn build(
    dirs: &AppDirs,
    (runtime, model, load): &Loaded,
    options: &SegmenterOptions,
    context: runtime::cuda_context::ContextWarmup,
) -> Result<Segmenter, EngineError> {
    let mut segmenter = Segmenter::new(runtime, model, options, &dirs.cache_dir)?;
    drop(context);
    segmenter.note_load(load.0, load.1);
    Ok(segmenter)
}

/// Whether `options` may end on a GPU provider: a GPU build of ONNX Runtime with the NVIDIA
/// driver installed, or the WebGPU plugin with a GPU it may find. Then the GPU's start-up (CUDA
/// context or WebGPU device, first inference: 0.6–1 s) is worth overlapping with other work.
pub fn gpu_may_run(dirs: &AppDirs, options: &SegmenterOptions) -> bool {
    let candidates = options.provider.candidates();
    let nvidia = candidates
        .iter()
        .any(|p| p.is_gpu() && *p != ProviderKind::WebGpu)
        && runtime::has_cuda_provider(dirs)
        && runtime::cuda_context::driver_present();
    let webgpu = candidates.contains(&ProviderKind::WebGpu)
        && runtime::locate(dirs).is_ok_and(|l| runtime::webgpu::may_run(&l.library));
    nvidia || webgpu
}

/// The CUDA context takes a few hundred milliseconds to make: where a GPU may run, start it now
/// so that it is ready when the session asks for it. Hold the result until the session is built.
fn warm_up_gpu(dirs: &AppDirs, options: &SegmenterOptions) -> runtime::cuda_context::ContextWarmup {
    if gpu_may_run(dirs, options) {
        runtime::cuda_context::ContextWarmup::start()
    } else {
        runtime::cuda_context::ContextWarmup::default()
    }
}

/// ONNX Runtime, the model, and what loading each took (ms).
type Loaded = (std::sync::Arc<Runtime>, ResolvedModel, (f64, f64));

/// Loads ONNX Runtime and resolves the model.
fn load(
    dirs: &AppDirs,
    choice: &ModelChoice,
    progress: models::FetchProgress<'_>,
) -> Result<Loaded, EngineError> {
    let started = std::time::Instant::now();
    let runtime = runtime::load(dirs)?;
    let runtime_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = std::time::Instant::now();
    let model = resolve_model(dirs, choice, progress)?;
    let model_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok((runtime, model, (runtime_ms, model_ms)))
}

/// Whether a TensorRT-class provider could build an engine here: the TensorRT-RTX plugin offers a
/// device, or TensorRT's library loads.
fn engine_build_possible(runtime: &Runtime) -> bool {
    // By name: the loader also finds a copy cutout preloaded from its own folder.
    runtime::tensorrt_rtx::devices(runtime, || None).is_ok_and(|d| !d.is_empty())
        || runtime::TENSORRT_LIBRARIES
            .first()
            .is_some_and(|lib| ort::util::preload_dylib(*lib).is_ok())
}

/// A GPU session starting on a thread of its own while the CPU provider already runs: see
/// [`open_handing_over`].
pub struct Starting {
    /// The GPU session once it has started (nothing is sent when no GPU provider could start).
    pub ready: crossbeam_channel::Receiver<Segmenter>,
    thread: std::thread::JoinHandle<Option<String>>,
}

impl Starting {
    /// Whether the thread is done: it sent its session, or found that no GPU provider can run.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread; says why no GPU provider ran, when none did.
    pub fn finish(self) -> Option<String> {
        self.thread.join().unwrap_or_else(|_| {
            Some("the thread starting the GPU provider stopped unexpectedly".to_owned())
        })
    }
}

/// [`open`] for a batch that should not wait for the GPU: the CPU provider's session, which starts
/// in a fraction of the GPU's time (on an H200: 0.2 s against 0.7–1.2 s for CUDA's context, session
/// and first inference), and the session `options` ask for, starting on a thread of its own.
/// The caller runs photos on the first until the second arrives (see
/// [`crate::batch::run_opening`]). Only worth it where a GPU provider may run
/// ([`gpu_may_run`]); elsewhere it is [`open`] with no second session.
pub fn open_handing_over(
    dirs: &AppDirs,
    choice: &ModelChoice,
    options: &SegmenterOptions,
    progress: models::FetchProgress<'_>,
) -> Result<(Segmenter, Option<Starting>), EngineError> {
    if !gpu_may_run(dirs, options) {
        return open(dirs, choice, options, progress).map(|s| (s, None));
    }
    let context = runtime::cuda_context::ContextWarmup::start();
    let loaded = load(dirs, choice, progress)?;
    if engine_build_possible(&loaded.0) {
        // A first TensorRT engine build takes minutes, and a batch that ended on the CPU would
        // leave it unfinished on every run: wait for it, as without a hand-over.
        return build(dirs, &loaded, options, context).map(|s| (s, None));
    }
    let (ready_tx, ready) = crossbeam_channel::bounded(1);
    let gpu_options = options.clone();
    let cache_dir = dirs.cache_dir.clone();
    let gpu_runtime = std::sync::Arc::clone(&loaded.0);
    let gpu_model = loaded.1.clone();
    let thread = std::thread::Builder::new()
        .name("gpu-session".to_owned())
        .spawn(move || {
            let opened = Segmenter::new(&gpu_runtime, &gpu_model, &gpu_options, &cache_dir);
            drop(context);
            match opened {
                Ok(segmenter) if segmenter.report().provider.is_gpu() => {
                    // The batch may be over already: then nobody is listening.
                    ready_tx.send(segmenter).ok();
                    None
                }
                Ok(segmenter) => Some(segmenter.report().summary()),
                Err(e) => Some(e.to_string()),
            }
        })
        .map_err(|e| {
            EngineError::Setup(format!("cannot start a thread for the GPU session: {e}"))
        })?;
    // Two cores stay free for the GPU's start: ONNX Runtime's CPU threads wait on each other at
    // every node, so one that the GPU thread holds up delays them all (on an H200's 16 cores the
    // CPU inference took 2-4x longer with all of them).
    let spare = std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(2));
    let cpu_options = SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        intra_threads: options.intra_threads.or(Some(spare.max(1))),
        ..options.clone()
    };
    let segmenter = build(
        dirs,
        &loaded,
        &cpu_options,
        runtime::cuda_context::ContextWarmup::default(),
    )?;
    Ok((segmenter, Some(Starting { ready, thread })))
}
