//! The Segmenter: owns one ONNX Runtime session and turns a preprocessed tensor into a mask.
//!
//! On a GPU provider the input and output tensors live on the device, allocated once and bound
//! with IO binding, so the network runs with fixed addresses (what CUDA graphs need) and the host
//! copies can be timed apart from the network, as the seed's benchmark method asks.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use ort::{
    ep::{self, ExecutionProvider as _},
    memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType},
    session::{IoBinding, RunOptions, Session, builder::GraphOptimizationLevel},
    value::{Tensor, TensorElementType, TensorRef, ValueType},
};

use super::{
    EngineError,
    models::ResolvedModel,
    prepare::{self, Fp16Source, PrepareKey},
    providers::{
        Precision, ProviderKind, ProviderReport, ProviderRequest, SkippedProvider, explain_failure,
    },
    runtime::Runtime,
};

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
    /// Capture the network in a CUDA graph on the CUDA provider (replays skip per-kernel launch
    /// costs). If capture fails the session is rebuilt without it and the report says why.
    pub cuda_graphs: bool,
    /// Cap on TensorRT's builder workspace, in bytes (the compositor shares the GPU).
    pub tensorrt_workspace_bytes: usize,
    /// How cuDNN picks convolution algorithms on the CUDA provider.
    pub conv_search: ConvSearch,
    /// Run convolutions channels-last (NHWC) on the CUDA provider, as tensor cores prefer.
    pub prefer_nhwc: bool,
    /// For FP16 of a model stored in FP16: the file as stored or converted from its FP32 twin.
    pub fp16_source: Fp16Source,
}

/// How cuDNN picks convolution algorithms: a trade between the first run and every later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvSearch {
    /// Time every algorithm at the first run (the seed's autotuner): slow start (1–3 s for
    /// u2netp on an H100), fastest runs. For long sessions: the app, batches, benchmarks.
    #[default]
    Exhaustive,
    /// cuDNN's heuristics: fast start, slightly slower runs. For a handful of photos.
    Heuristic,
}

impl Default for SegmenterOptions {
    fn default() -> Self {
        Self {
            provider: ProviderRequest::Auto,
            precision: Precision::Fp32,
            input_side_px: None,
            intra_threads: None,
            cuda_graphs: true,
            tensorrt_workspace_bytes: 2 << 30,
            conv_search: ConvSearch::Exhaustive,
            prefer_nhwc: true,
            fp16_source: Fp16Source::default(),
        }
    }
}

/// What starting the session cost, in milliseconds: the seed's "first-run cost" reported apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StartupTimings {
    /// Making or finding the prepared model.
    pub prepare_ms: f64,
    /// Creating the session (graph optimisation; TensorRT engine build or cache load).
    pub session_ms: f64,
    /// The first inference (cuDNN algorithm search, CUDA graph capture, lazy allocations).
    pub first_run_ms: f64,
}

/// One inference, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct InferTimings {
    /// Host → device copy of the input (zero on the CPU provider).
    pub upload_ms: f64,
    /// The network alone, synchronised.
    pub run_ms: f64,
    /// Device → host copy of the mask (zero on the CPU provider).
    pub download_ms: f64,
}

/// Input and output tensors on the GPU, bound once.
struct DeviceIo {
    binding: IoBinding,
    device_input: Tensor<f32>,
    device_output: Tensor<f32>,
    host_input: Tensor<f32>,
    host_output: Tensor<f32>,
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
        let side_px = options.input_side_px.unwrap_or(model.spec.input_size);
        if !(32..=4096).contains(&side_px) {
            return Err(EngineError::InvalidInputSize(side_px));
        }
        if model.spec.fixed_input && side_px != model.spec.input_size {
            return Err(EngineError::FixedInputSize {
                model: model.spec.name.clone(),
                side_px,
                fixed_px: model.spec.input_size,
            });
        }
        let mut skipped = Vec::new();
        for provider in options.provider.candidates() {
            // TensorRT makes its own FP16 engine from the FP32 graph (its FP16 flag); the other
            // providers run the FP16 graph.
            let graph_precision = if provider == ProviderKind::TensorRt {
                Precision::Fp32
            } else {
                options.precision
            };
            let started = Instant::now();
            let key = PrepareKey {
                model_sha256: &model.sha256,
                side_px,
                precision: graph_precision,
                fp16_source: options.fp16_source,
                output_index: model.spec.output,
            };
            let (mut prepared, provenance) = prepare::prepared_model(&model.path, key, cache_dir)?;
            let mut prepare_ms = ms_since(started);
            let mut features = Vec::new();
            let start_on = |prepared: &Path, features: &mut Vec<_>| {
                start(
                    runtime, prepared, provider, options, cache_dir, model, features,
                )
            };
            let mut started_session = start_on(&prepared, &mut features);
            // A cached copy that no longer loads is damaged (the model itself was checked):
            // never trusted, it is made again once.
            if provenance == prepare::Provenance::Cached
                && let Err(SessionFailure::Model(EngineError::LoadModel { reason, .. })) =
                    &started_session
            {
                tracing::warn!(path = %prepared.display(), %reason, "the cached prepared model does not load; making it again");
                let started = Instant::now();
                prepare::discard(&prepared)?;
                prepared = prepare::prepared_model(&model.path, key, cache_dir)?.0;
                prepare_ms += ms_since(started);
                features.clear();
                started_session = start_on(&prepared, &mut features);
            }
            match started_session {
                Ok((session, device, mut startup)) => {
                    startup.prepare_ms = prepare_ms;
                    let report = ProviderReport {
                        requested: options.provider,
                        provider,
                        precision: options.precision,
                        skipped,
                        features,
                    };
                    let mut segmenter =
                        Self::from_session(session, device, model, prepared, side_px, report)?;
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
        match skipped.pop() {
            Some(last) if options.provider != ProviderRequest::Auto => {
                Err(EngineError::ProviderUnavailable {
                    provider: last.provider,
                    reason: last.reason,
                })
            }
            _ => Err(EngineError::NoProvider(
                skipped
                    .iter()
                    .map(|s| format!("{}: {}", s.provider, s.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
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
    ) -> Result<(Vec<f32>, InferTimings), EngineError> {
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
                    InferTimings {
                        upload_ms,
                        run_ms,
                        download_ms: ms_since(started),
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
                    InferTimings {
                        run_ms: ms_since(started),
                        ..InferTimings::default()
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

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn run_bound(
    session: &mut Session,
    device: &mut DeviceIo,
    options: &RunOptions,
) -> Result<f64, EngineError> {
    let started = Instant::now();
    session
        .run_binding_with_options(&device.binding, options)
        .map_err(|e| EngineError::ort("run the model", &e))?;
    device
        .binding
        .synchronize_outputs()
        .map_err(|e| EngineError::ort("wait for the GPU", &e))?;
    Ok(ms_since(started))
}

impl DeviceIo {
    fn new(
        session: &Session,
        input_name: &str,
        output_name: &str,
        side: usize,
    ) -> ort::Result<Self> {
        let info = MemoryInfo::new(
            AllocationDevice::CUDA,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        let allocator = Allocator::new(session, info)?;
        let device_input = Tensor::<f32>::new(&allocator, [1usize, 3, side, side])?;
        let mut device_output = Tensor::<f32>::new(&allocator, [1usize, 1, side, side])?;
        let host_input =
            Tensor::<f32>::from_array(([1usize, 3, side, side], vec![0f32; 3 * side * side]))?;
        let host_output =
            Tensor::<f32>::from_array(([1usize, 1, side, side], vec![0f32; side * side]))?;
        let mut binding = session.create_binding()?;
        binding.bind_input(input_name, &device_input)?;
        binding.bind_output(output_name, &mut device_output)?;
        Ok(Self {
            binding,
            device_input,
            device_output,
            host_input,
            host_output,
        })
    }

    fn upload(&mut self, input: &[f32]) -> Result<(), EngineError> {
        let (_, host) = self
            .host_input
            .try_extract_tensor_mut::<f32>()
            .map_err(|e| EngineError::ort("stage the input", &e))?;
        host.copy_from_slice(input);
        self.host_input
            .copy_into(&mut self.device_input)
            .map_err(|e| EngineError::ort("copy the input to the GPU", &e))
    }

    fn download(&mut self) -> Result<Vec<f32>, EngineError> {
        self.device_output
            .copy_into(&mut self.host_output)
            .map_err(|e| EngineError::ort("copy the mask from the GPU", &e))?;
        let (_, host) = self
            .host_output
            .try_extract_tensor::<f32>()
            .map_err(|e| EngineError::ort("read the mask", &e))?;
        Ok(host.to_vec())
    }
}

/// Checks that the session takes one `[1, 3, side, side]` float input and gives a one-channel
/// float map; returns the input and output names (never assumed, always read from the session).
fn check_io(
    session: &Session,
    model_path: &Path,
    side_px: u32,
) -> Result<(String, String), EngineError> {
    let bad = |what: String| EngineError::UnsupportedModel {
        path: model_path.to_owned(),
        what,
    };
    let input = session
        .inputs()
        .first()
        .ok_or_else(|| bad("it has no inputs".to_owned()))?;
    let input_dims = float_tensor_dims(input.dtype())
        .ok_or_else(|| bad(format!("input `{}` is not a float32 tensor", input.name())))?;
    let side = i64::from(side_px);
    if input_dims != [1, 3, side, side] {
        return Err(bad(format!(
            "input `{}` has shape {input_dims:?}; expected [N, 3, H, W]",
            input.name()
        )));
    }
    let output = session
        .outputs()
        .first()
        .ok_or_else(|| bad("it has no outputs".to_owned()))?;
    let output_dims = float_tensor_dims(output.dtype()).ok_or_else(|| {
        bad(format!(
            "output `{}` is not a float32 tensor",
            output.name()
        ))
    })?;
    if output_dims.iter().product::<i64>() != side * side {
        return Err(bad(format!(
            "output `{}` has shape {output_dims:?}; expected a {side}×{side} map",
            output.name()
        )));
    }
    Ok((input.name().to_owned(), output.name().to_owned()))
}

fn float_tensor_dims(dtype: &ValueType) -> Option<Vec<i64>> {
    match dtype {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.iter().copied().collect()),
        _ => None,
    }
}

enum SessionFailure {
    /// The provider could not run: try the next one.
    Provider(String),
    /// The model itself is unusable: no provider will help.
    Model(EngineError),
}

/// Builds the session for one provider, sets up device IO on a GPU and runs the first inference.
/// On the CUDA provider a failed CUDA-graph capture rebuilds the session without graphs, noted in
/// `features`.
fn start(
    runtime: &Runtime,
    prepared: &Path,
    provider: ProviderKind,
    options: &SegmenterOptions,
    cache_dir: &Path,
    model: &ResolvedModel,
    features: &mut Vec<String>,
) -> Result<(Session, Option<DeviceIo>, StartupTimings), SessionFailure> {
    let mut graphs = provider == ProviderKind::Cuda && options.cuda_graphs;
    loop {
        let started = Instant::now();
        let session = build_session(
            runtime, prepared, provider, options, cache_dir, model, graphs,
        )?;
        let session_ms = ms_since(started);
        let outcome = if provider == ProviderKind::Cpu {
            Ok((session, None, session_ms))
        } else {
            first_device_run(session, options, model).map(|(s, d)| (s, Some(d), session_ms))
        };
        match outcome {
            Ok((session, device, session_ms)) => {
                let first_run_ms = ms_since(started) - session_ms;
                features.extend(provider_features(provider, options, graphs));
                return Ok((
                    session,
                    device,
                    StartupTimings {
                        prepare_ms: 0.0,
                        session_ms,
                        first_run_ms,
                    },
                ));
            }
            Err(reason) if graphs => {
                tracing::warn!("CUDA graph capture failed, running without it: {reason}");
                features.push(format!("CUDA graphs off ({reason})"));
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
            let search = match options.conv_search {
                ConvSearch::Exhaustive => "cuDNN exhaustive search",
                ConvSearch::Heuristic => "cuDNN heuristic search",
            };
            let layout = if options.prefer_nhwc { "NHWC" } else { "NCHW" };
            out.extend([
                "IO binding".to_owned(),
                search.to_owned(),
                layout.to_owned(),
            ]);
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
        ProviderKind::Cpu => {}
    }
    out
}

/// Binds device tensors and runs once (for CUDA graphs, this is the capture).
fn first_device_run(
    mut session: Session,
    options: &SegmenterOptions,
    model: &ResolvedModel,
) -> Result<(Session, DeviceIo), String> {
    let side_px = options.input_side_px.unwrap_or(model.spec.input_size);
    let side = side_px as usize;
    let (input_name, output_name) =
        check_io(&session, &model.path, side_px).map_err(|e| e.to_string())?;
    let mut device = DeviceIo::new(&session, &input_name, &output_name, side)
        .map_err(|e| format!("cannot bind GPU buffers: {e}"))?;
    // A mid-grey image: realistic values, not zeros (which can take faster paths).
    let grey = vec![0.1f32; 3 * side * side];
    device.upload(&grey).map_err(|e| e.to_string())?;
    let run_options = RunOptions::new().map_err(|e| e.to_string())?;
    run_bound(&mut session, &mut device, &run_options).map_err(|e| e.to_string())?;
    Ok((session, device))
}

fn build_session(
    runtime: &Runtime,
    model_path: &Path,
    provider: ProviderKind,
    options: &SegmenterOptions,
    cache_dir: &Path,
    model: &ResolvedModel,
    cuda_graphs: bool,
) -> Result<Session, SessionFailure> {
    let setup =
        |e: &dyn std::fmt::Display| SessionFailure::Model(EngineError::Setup(e.to_string()));
    let mut builder = Session::builder(&runtime.env)
        .map_err(|e| setup(&e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| setup(&e))?;
    if let Some(threads) = options.intra_threads {
        builder = builder.with_intra_threads(threads).map_err(|e| setup(&e))?;
    }
    let provider_available = |available: ort::Result<bool>, name: &str| match available {
        Ok(true) => Ok(()),
        _ => Err(SessionFailure::Provider(format!(
            "this ONNX Runtime build has no {name} provider; run `cutout setup --gpu` to install onnxruntime-gpu"
        ))),
    };
    let dispatch = match provider {
        ProviderKind::TensorRt => {
            provider_available(ep::TensorRT::is_available(), "TensorRT")?;
            let cache = cache_dir.join("tensorrt");
            let _ = std::fs::create_dir_all(&cache);
            let side = options.input_side_px.unwrap_or(model.spec.input_size);
            // Engines are tied to model, precision, shape, TensorRT version and GPU: the prefix
            // carries the first three and ONNX Runtime's version; TensorRT adds its own
            // hardware and version checks and rebuilds on mismatch.
            let gpu = super::doctor::nvidia_gpu().unwrap_or_default();
            let gpu_tag: String = gpu
                .split(',')
                .next()
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            let prefix = format!(
                "{}_{side}px_{}_ort{}_{gpu_tag}",
                model.sha256.get(..16).unwrap_or(&model.sha256),
                options.precision.as_str(),
                runtime.version.replace('.', "_")
            );
            Some(
                ep::TensorRT::default()
                    .with_device_id(0)
                    .with_fp16(options.precision == Precision::Fp16)
                    .with_engine_cache(true)
                    .with_engine_cache_path(cache.display())
                    .with_engine_cache_prefix(prefix)
                    .with_timing_cache(true)
                    .with_timing_cache_path(cache.display())
                    .with_max_workspace_size(options.tensorrt_workspace_bytes)
                    .build(),
            )
        }
        ProviderKind::Cuda => {
            provider_available(ep::CUDA::is_available(), "CUDA")?;
            Some(
                ep::CUDA::default()
                    .with_device_id(0)
                    // One fixed shape: an exhaustive search runs once, at the first inference.
                    .with_conv_algorithm_search(match options.conv_search {
                        ConvSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
                        ConvSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
                    })
                    .with_prefer_nhwc(options.prefer_nhwc)
                    .with_cuda_graph(cuda_graphs)
                    .build(),
            )
        }
        ProviderKind::Cpu => None,
    };
    if let Some(dispatch) = dispatch {
        builder = builder
            .with_execution_providers([dispatch.error_on_failure()])
            .map_err(|e| SessionFailure::Provider(explain_failure(provider, e.message())))?;
    }
    builder.commit_from_file(model_path).map_err(|e| {
        let message = e.to_string();
        // A GPU provider that registered can still fail when the session starts (no device, a
        // library loaded lazily); the CPU provider failing means the model itself is bad.
        if provider == ProviderKind::Cpu {
            SessionFailure::Model(EngineError::LoadModel {
                path: model_path.to_owned(),
                reason: message,
            })
        } else {
            SessionFailure::Provider(explain_failure(provider, &message))
        }
    })
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
                "NCHW"
            ]
        );
        options.precision = Precision::Fp16;
        assert!(
            provider_features(ProviderKind::TensorRt, &options, false)
                .contains(&"TensorRT FP16".to_owned())
        );
        assert_eq!(
            provider_features(ProviderKind::Cpu, &options, false),
            ["fixed-shape prepared model"]
        );
    }
}
