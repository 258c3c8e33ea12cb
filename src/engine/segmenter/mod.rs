//! The Segmenter: owns one ONNX Runtime session and turns a preprocessed tensor into a mask.
//!
//! On a GPU provider the input and output tensors live on the device, allocated once and bound
//! with IO binding, so the network runs with fixed addresses (what CUDA graphs need) and the host
//! copies can be timed apart from the network, as PhotoRoom's benchmark method asks.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use ort::{
    session::{RunOptions, Session},
    value::{TensorRef, ValueType},
};

mod candidate;
mod device_copy;
mod device_io;
mod session;
mod tensorrt;

use candidate::{Candidate, graph_features, input_side, no_provider};
use device_io::{DeviceIo, check_io, run_bound};
use session::SessionFailure;

use super::{
    EngineError,
    models::ResolvedModel,
    prepare::{Fp16Source, PrepareKey},
    providers::{Precision, ProviderKind, ProviderReport, ProviderRequest, SkippedProvider},
    runtime::Runtime,
};
use crate::timing::ms_since;

/// How to build a [`Segmenter`].
#[derive(Debug, Clone)]
pub struct SegmenterOptions {
    /// Which execution provider.
    pub provider: ProviderRequest,
    /// Network precision.
    pub precision: Precision,
    /// Square input side in pixels; the model's native size when `None`.
    pub input_side_px: Option<u32>,
    /// CPU threads for the CPU provider; ONNX Runtime's default (one per core) when `None`.
    pub intra_threads: Option<usize>,
    /// Let the CPU provider's threads spin while they wait for work (ONNX Runtime's default):
    /// quicker for one photo, but in a batch the spinning takes cores that decoding and
    /// finishing need (about 8 % of the batch's CPU time on 2 cores).
    pub spin: bool,
    /// Capture the network in a CUDA graph on the CUDA provider (replays skip per-kernel launch
    /// costs). If capture fails the session is rebuilt without it and the report says why.
    pub cuda_graphs: bool,
    /// Cap on TensorRT's builder workspace, in bytes (the compositor shares the GPU).
    pub tensorrt_workspace_bytes: usize,
    /// How cuDNN picks convolution algorithms on the CUDA provider.
    pub conv_search: ConvSearch,
    /// Run convolutions channels-last (NHWC) on the CUDA provider, as tensor cores prefer.
    pub prefer_nhwc: bool,
    /// Let cuDNN fuse each convolution's bias into it on the CUDA provider (`fuse_conv_bias`)
    /// instead of a separate bias-add kernel.
    pub fuse_conv_bias: bool,
    /// Write the graph as ONNX Runtime optimised it for this provider to this file (to see what
    /// the provider runs: fusions, layout transposes). `None` in normal use.
    pub dump_optimized: Option<PathBuf>,
    /// For FP16 of a model stored in FP16: the file as stored or converted from its FP32 twin.
    pub fp16_source: Fp16Source,
    /// More WebGPU provider options (`storageBufferCacheMode` = `bucket`, …), for measuring them;
    /// empty in normal use.
    pub webgpu_options: Vec<(String, String)>,
}

/// How cuDNN picks convolution algorithms: a trade between the first run and every later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvSearch {
    /// Time every algorithm at the first run (an autotuner, as TensorRT's): slow start (1–3 s for
    /// u2netp on an H100), fastest runs. For long sessions: the app, batches, benchmarks.
    #[default]
    Exhaustive,
    /// cuDNN's heuristics: a shorter first run, slightly slower later ones. cuDNN 9 answers each
    /// query by building a descriptor for every engine it knows (about 4,500 for u2netp's 119
    /// convolutions), which still costs 0.5–1 s on an H200.
    Heuristic,
    /// One fixed algorithm (implicit precomputed GEMM) and no search at all: the shortest first
    /// run. For one or two photos.
    Fixed,
}

impl ConvSearch {
    /// Every way, in the order the CLI lists them.
    pub const ALL: [Self; 3] = [Self::Exhaustive, Self::Heuristic, Self::Fixed];

    /// The name the CLI uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exhaustive => "exhaustive",
            Self::Heuristic => "heuristic",
            Self::Fixed => "fixed",
        }
    }

    /// How a provider report says it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Exhaustive => "cuDNN exhaustive search",
            Self::Heuristic => "cuDNN heuristic search",
            Self::Fixed => "cuDNN fixed algorithm",
        }
    }
}

impl std::fmt::Display for ConvSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ConvSearch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown convolution search `{s}`; use exhaustive, heuristic or fixed")
            })
    }
}

impl Default for SegmenterOptions {
    fn default() -> Self {
        Self {
            provider: ProviderRequest::Auto,
            precision: Precision::Fp32,
            input_side_px: None,
            intra_threads: None,
            spin: true,
            cuda_graphs: true,
            tensorrt_workspace_bytes: 2 << 30,
            conv_search: ConvSearch::Exhaustive,
            prefer_nhwc: true,
            fuse_conv_bias: false,
            dump_optimized: None,
            fp16_source: Fp16Source::default(),
            webgpu_options: Vec::new(),
        }
    }
}

/// What starting the session cost, in milliseconds: the first-run cost, reported apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StartupTimings {
    /// Loading ONNX Runtime and the GPU libraries it needs (zero when already loaded in this
    /// process; set by [`crate::engine::open`]).
    pub runtime_ms: f64,
    /// Finding and checking the model file (set by [`crate::engine::open`]).
    pub model_ms: f64,
    /// Making or finding the prepared model.
    pub prepare_ms: f64,
    /// Creating the session (graph optimisation; TensorRT engine build or cache load).
    pub session_ms: f64,
    /// The first inference (cuDNN algorithm search, CUDA graph capture, lazy allocations).
    pub first_run_ms: f64,
}

/// Where one photo's time went, in milliseconds: the one timings type of the command line, the
/// batch, the app and the benchmark. A stage that did not run is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimings {
    /// Reading and decoding the file (0 when the caller had the pixels already).
    pub decode_ms: f64,
    /// Resize and normalisation to the network's input.
    pub preprocess_ms: f64,
    /// Copying the input to the device (0 on the CPU provider).
    pub upload_ms: f64,
    /// The network alone, synchronised.
    pub infer_ms: f64,
    /// Copying the output back from the device (0 on the CPU provider).
    pub download_ms: f64,
    /// Min-max scaling and resizing the mask to the photo; in a batch also the edge passes and
    /// compositing.
    pub postprocess_ms: f64,
    /// PNG encoding and the atomic write (0 where nothing was written).
    pub encode_ms: f64,
}

/// A loaded model on one execution provider. Not shared between threads: one owner runs it.
pub struct Segmenter {
    session: Session,
    device: Option<DeviceIo>,
    model: ResolvedModel,
    prepared_path: PathBuf,
    input_name: String,
    output_name: String,
    input_side_px: u32,
    report: ProviderReport,
    startup: StartupTimings,
    /// Every run goes with these options, so that another thread can stop it (see
    /// [`Segmenter::run_stopper`]).
    run_options: Arc<RunOptions>,
}

/// Stops the network run of its segmenter from another thread (ONNX Runtime's
/// `RunOptions::terminate`): the run under way ends early with an error, and so does every later
/// one until [`RunStopper::reset`].
#[derive(Clone)]
pub struct RunStopper(Arc<RunOptions>);

impl RunStopper {
    /// Asks the run under way (and later ones, until reset) to end.
    pub fn stop(&self) {
        if let Err(e) = self.0.terminate() {
            tracing::warn!("cannot stop the network run: {e}");
        }
    }

    /// Lets runs go to the end again.
    pub fn reset(&self) {
        if let Err(e) = self.0.unterminate() {
            tracing::warn!("cannot reset the run options: {e}");
        }
    }
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("model", &self.model.spec.name)
            .field("input_side_px", &self.input_side_px)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Segmenter {
    /// Loads `model` on the requested provider. With [`ProviderRequest::Auto`] it tries TensorRT,
    /// CUDA and CPU in turn and records why each faster one was passed over; with a single provider
    /// it fails with that reason instead. The session runs a prepared copy of the model (fixed
    /// input size, mask output only, FP16 when asked), made once and kept in `cache_dir`, and
    /// one warm-up inference is run so that its cost is known and never lands on a user's photo.
    pub fn new(
        runtime: &Runtime,
        model: &ResolvedModel,
        options: &SegmenterOptions,
        cache_dir: &Path,
    ) -> Result<Self, EngineError> {
        let side_px = input_side(model, options)?;
        let mut skipped = Vec::new();
        for provider in options.provider.candidates() {
            // TensorRT makes its own FP16 engine from the FP32 graph (its FP16 flag); the other
            // providers run the FP16 graph.
            let graph_precision = if provider == ProviderKind::TensorRt {
                Precision::Fp32
            } else {
                options.precision
            };
            let key = PrepareKey {
                model_sha256: &model.sha256,
                side_px,
                precision: graph_precision,
                fp16_source: options.fp16_source,
                output_index: model.spec.output,
                fp32_islands: &model.spec.fp32_islands,
                // The CUDA provider runs FP32 convolutions in TF32 (ONNX Runtime's default, as
                // PyTorch's and TensorRT's; turning it off also slows FP16 convolutions 3-17x).
                split_for_tf32: provider == ProviderKind::Cuda
                    && graph_precision == Precision::Fp32,
                // WebGPU has no bfloat16 cast (and computes FP32 convolutions in FP32).
                without_bf16: provider == ProviderKind::WebGpu,
            };
            let on = Candidate {
                runtime,
                model,
                options,
                cache_dir,
                provider,
            };
            match on.attempt(key)? {
                Ok(mut attempt) => {
                    attempt.features.extend(graph_features(model, options, key));
                    let nvidia_driver = skipped.is_empty()
                        || crate::engine::runtime::cuda_context::driver_present();
                    let (session, device, mut startup, device_name) = attempt.started;
                    startup.prepare_ms = attempt.prepare_ms;
                    let report = ProviderReport {
                        requested: options.provider,
                        provider,
                        device: device_name,
                        precision: options.precision,
                        skipped,
                        features: attempt.features,
                        nvidia_driver,
                    };
                    let mut segmenter = Self::from_session(
                        session,
                        device,
                        model,
                        attempt.prepared,
                        side_px,
                        report,
                    )?;
                    segmenter.startup = startup;
                    return Ok(segmenter);
                }
                Err(SessionFailure::Provider(reason)) => {
                    tracing::debug!(%provider, %reason, "execution provider not used");
                    skipped.push(SkippedProvider { provider, reason });
                }
                Err(SessionFailure::Model(EngineError::LoadModel { reason, .. }))
                    if options.precision == Precision::Fp16 =>
                {
                    return Err(EngineError::PrecisionUnavailable {
                        precision: Precision::Fp16,
                        reason: format!(
                            "the {provider} provider cannot run this model in FP16 ({reason}); use --precision fp32"
                        ),
                    });
                }
                Err(SessionFailure::Model(e)) => return Err(e),
            }
        }
        Err(no_provider(options.provider, skipped))
    }

    fn from_session(
        session: Session,
        device: Option<DeviceIo>,
        model: &ResolvedModel,
        prepared_path: PathBuf,
        side_px: u32,
        report: ProviderReport,
    ) -> Result<Self, EngineError> {
        let (input_name, output_name) = check_io(&session, &model.path, side_px)?;
        let run_options =
            Arc::new(RunOptions::new().map_err(|e| EngineError::ort("create run options", &e))?);
        Ok(Self {
            session,
            device,
            model: model.clone(),
            prepared_path,
            input_name,
            output_name,
            input_side_px: side_px,
            report,
            startup: StartupTimings::default(),
            run_options,
        })
    }

    /// A handle that stops this segmenter's run under way, from any thread.
    pub fn run_stopper(&self) -> RunStopper {
        RunStopper(Arc::clone(&self.run_options))
    }

    /// What runs, and why faster providers do not.
    pub fn report(&self) -> &ProviderReport {
        &self.report
    }

    /// What starting this session cost.
    pub fn startup(&self) -> StartupTimings {
        self.startup
    }

    /// Adds what came before the session: loading the runtime and the model file.
    pub(crate) fn note_load(&mut self, runtime_ms: f64, model_ms: f64) {
        self.startup.runtime_ms = runtime_ms;
        self.startup.model_ms = model_ms;
    }

    /// The model this session runs.
    pub fn model(&self) -> &ResolvedModel {
        &self.model
    }

    /// The prepared model file the session was built from.
    pub fn prepared_path(&self) -> &Path {
        &self.prepared_path
    }

    /// Side of the square input tensor, in pixels.
    pub fn input_side_px(&self) -> u32 {
        self.input_side_px
    }

    /// Input and output names and shapes, as the session reports them.
    pub fn describe_io(&self) -> String {
        let describe = |name: &str, dtype: &ValueType| format!("{name} {dtype}");
        let inputs: Vec<String> = self
            .session
            .inputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype()))
            .collect();
        let outputs: Vec<String> = self
            .session
            .outputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype()))
            .collect();
        format!(
            "inputs: {}; outputs: {} (mask from `{}`)",
            inputs.join(", "),
            outputs.join(", "),
            self.output_name
        )
    }

    /// Runs the network on one `[1, 3, side, side]` tensor and returns the raw `side × side` map.
    pub fn infer(&mut self, input_nchw: &[f32]) -> Result<Vec<f32>, EngineError> {
        self.infer_timed(input_nchw).map(|(mask, _)| mask)
    }

    /// [`Self::infer`], also returning the upload, network and download times.
    pub fn infer_timed(
        &mut self,
        input_nchw: &[f32],
    ) -> Result<(Vec<f32>, StageTimings), EngineError> {
        let side = self.input_side_px as usize;
        if input_nchw.len() != 3 * side * side {
            return Err(EngineError::BadInput {
                expected: 3 * side * side,
                got: input_nchw.len(),
            });
        }
        match &mut self.device {
            Some(device) => {
                let started = Instant::now();
                device.upload(input_nchw)?;
                let upload_ms = ms_since(started);
                let run_ms = run_bound(&mut self.session, device, &self.run_options)?;
                let started = Instant::now();
                let mask = device.download()?;
                Ok((
                    mask,
                    StageTimings {
                        upload_ms,
                        infer_ms: run_ms,
                        download_ms: ms_since(started),
                        ..StageTimings::default()
                    },
                ))
            }
            None => {
                let started = Instant::now();
                let tensor = TensorRef::from_array_view(([1usize, 3, side, side], input_nchw))
                    .map_err(|e| EngineError::ort("wrap the input", &e))?;
                let outputs = self
                    .session
                    .run_with_options(
                        ort::inputs![self.input_name.as_str() => tensor],
                        &self.run_options,
                    )
                    .map_err(|e| EngineError::ort("run the model", &e))?;
                let value = outputs.get(&self.output_name).ok_or_else(|| {
                    EngineError::BadOutput(format!("output `{}` missing", self.output_name))
                })?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| EngineError::ort("read the output", &e))?;
                if data.len() != side * side {
                    return Err(EngineError::BadOutput(format!(
                        "output `{}` has shape {shape:?}; expected {side}×{side}",
                        self.output_name
                    )));
                }
                let mask = data.to_vec();
                Ok((
                    mask,
                    StageTimings {
                        infer_ms: ms_since(started),
                        ..StageTimings::default()
                    },
                ))
            }
        }
    }

    /// Runs the network again on the input already on the device and returns the synchronised time
    /// of the network alone (the benchmark's inner loop). On the CPU provider this includes
    /// nothing but the run either, as there is no copy.
    pub fn run_resident(&mut self) -> Result<f64, EngineError> {
        match &mut self.device {
            Some(device) => run_bound(&mut self.session, device, &self.run_options),
            None => Err(EngineError::Setup(
                "run_resident needs a GPU provider; use infer_timed on the CPU".to_owned(),
            )),
        }
    }

    /// Whether input and output live on a GPU.
    pub fn is_device_resident(&self) -> bool {
        self.device.is_some()
    }
}
