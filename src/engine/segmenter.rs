//! The Segmenter: owns one ONNX Runtime session and turns a preprocessed tensor into a mask.

use std::path::Path;

use ort::{
    ep::{self, ExecutionProvider as _},
    session::{Session, builder::GraphOptimizationLevel},
    value::{TensorElementType, TensorRef, ValueType},
};

use super::{
    EngineError,
    models::ResolvedModel,
    prepare::{self, PrepareKey},
    providers::{
        Precision, ProviderKind, ProviderReport, ProviderRequest, SkippedProvider, explain_failure,
    },
    runtime::Runtime,
};

/// How to build a [`Segmenter`].
#[derive(Debug, Clone, Default)]
pub struct SegmenterOptions {
    /// Which execution provider.
    pub provider: ProviderRequest,
    /// Network precision.
    pub precision: Precision,
    /// Square input side in pixels; the model's native size when `None`.
    pub input_side_px: Option<u32>,
    /// CPU threads for the CPU provider; ONNX Runtime's default (one per core) when `None`.
    pub intra_threads: Option<usize>,
}

/// A loaded model on one execution provider. Not shared between threads: one owner runs it.
pub struct Segmenter {
    session: Session,
    model: ResolvedModel,
    input_name: String,
    output_name: String,
    input_side_px: u32,
    report: ProviderReport,
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
    /// input size, mask output only, FP16 when asked), made once and kept in `cache_dir`.
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
        let key = PrepareKey {
            model_sha256: &model.sha256,
            side_px,
            precision: options.precision,
            output_index: model.spec.output,
        };
        let prepared = prepare::prepared_model(&model.path, key, cache_dir)?;
        let mut skipped = Vec::new();
        for provider in options.provider.candidates() {
            match build_session(runtime, &prepared, provider, options) {
                Ok(session) => {
                    let report = ProviderReport {
                        requested: options.provider,
                        provider,
                        precision: options.precision,
                        skipped,
                    };
                    return Self::from_session(session, model, options, report);
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
                            "the {provider} provider cannot run this model in FP16 ({reason}); use --precision fp32 or a GPU provider"
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
        model: &ResolvedModel,
        options: &SegmenterOptions,
        report: ProviderReport,
    ) -> Result<Self, EngineError> {
        let bad = |what: String| EngineError::UnsupportedModel {
            path: model.path.clone(),
            what,
        };
        let input = session
            .inputs()
            .first()
            .ok_or_else(|| bad("it has no inputs".to_owned()))?;
        let input_dims = float_tensor_dims(input.dtype())
            .ok_or_else(|| bad(format!("input `{}` is not a float32 tensor", input.name())))?;
        if input_dims.len() != 4 || !(input_dims[1] == 3 || input_dims[1] < 0) {
            return Err(bad(format!(
                "input `{}` has shape {input_dims:?}; expected [N, 3, H, W]",
                input.name()
            )));
        }
        let output = session.outputs().get(model.spec.output).ok_or_else(|| {
            bad(format!(
                "it has {} outputs; the manifest uses output #{}",
                session.outputs().len(),
                model.spec.output
            ))
        })?;
        let output_dims = float_tensor_dims(output.dtype()).ok_or_else(|| {
            bad(format!(
                "output `{}` is not a float32 tensor",
                output.name()
            ))
        })?;
        if !(output_dims.len() == 4 && (output_dims[1] == 1 || output_dims[1] < 0)
            || output_dims.len() == 3)
        {
            return Err(bad(format!(
                "output `{}` has shape {output_dims:?}; expected [N, 1, H, W]",
                output.name()
            )));
        }
        let side_px = options.input_side_px.unwrap_or(model.spec.input_size);
        if input_dims[2] != i64::from(side_px) || input_dims[3] != i64::from(side_px) {
            return Err(bad(format!(
                "its prepared input is {input_dims:?}, expected {side_px}×{side_px}"
            )));
        }
        Ok(Self {
            input_name: input.name().to_owned(),
            output_name: output.name().to_owned(),
            session,
            model: model.clone(),
            input_side_px: side_px,
            report,
        })
    }

    /// What runs, and why faster providers do not.
    pub fn report(&self) -> &ProviderReport {
        &self.report
    }

    /// The model this session runs.
    pub fn model(&self) -> &ResolvedModel {
        &self.model
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
        let side = self.input_side_px as usize;
        if input_nchw.len() != 3 * side * side {
            return Err(EngineError::BadInput {
                expected: 3 * side * side,
                got: input_nchw.len(),
            });
        }
        let tensor = TensorRef::from_array_view(([1usize, 3, side, side], input_nchw))
            .map_err(|e| EngineError::ort("wrap the input", &e))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
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
        Ok(data.to_vec())
    }
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

fn build_session(
    runtime: &Runtime,
    model_path: &Path,
    provider: ProviderKind,
    options: &SegmenterOptions,
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
            Some(ep::TensorRT::default().with_device_id(0).build())
        }
        ProviderKind::Cuda => {
            provider_available(ep::CUDA::is_available(), "CUDA")?;
            Some(ep::CUDA::default().with_device_id(0).build())
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
