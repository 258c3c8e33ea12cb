//! Everything between a preprocessed tensor and a raw mask: ONNX Runtime discovery and setup,
//! models, execution providers and the [`Segmenter`] that owns the session. Nothing here knows
//! about windows or widgets.

pub mod doctor;
pub mod fetch;
pub mod models;
pub mod npm;
pub mod pipeline;
pub mod prepare;
pub mod providers;
pub mod runtime;
pub mod segmenter;

use std::path::PathBuf;

pub use models::{Manifest, ModelError, ModelSpec, ResolvedModel};
pub use pipeline::{MaskPipeline, MaskTimings, SegmentError};
pub use providers::{Precision, ProviderKind, ProviderReport, ProviderRequest};
pub use runtime::{Runtime, RuntimeError};
pub use segmenter::{ConvSearch, RunStopper, Segmenter, SegmenterOptions, StartupTimings};

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
    // The CUDA context takes a few hundred milliseconds to make: on a GPU build, start it now so
    // that it is ready when the session asks for it. Held until the session is built.
    let gpu_wanted = options.provider.candidates().iter().any(|p| {
        matches!(
            p,
            ProviderKind::TensorRtRtx | ProviderKind::TensorRt | ProviderKind::Cuda
        )
    });
    let context = if gpu_wanted && runtime::has_cuda_provider(dirs) {
        runtime::cuda_context::ContextWarmup::start()
    } else {
        runtime::cuda_context::ContextWarmup::default()
    };
    let started = std::time::Instant::now();
    let runtime = runtime::load(dirs)?;
    let runtime_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = std::time::Instant::now();
    let model = resolve_model(dirs, choice, progress)?;
    let model_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut segmenter = Segmenter::new(&runtime, &model, options, &dirs.cache_dir)?;
    drop(context);
    segmenter.note_load(runtime_ms, model_ms);
    Ok(segmenter)
}
