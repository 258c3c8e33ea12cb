//! Trying one provider: the network's input side, the prepared model for that provider (made
//! again once when a cached copy no longer loads), its session, and what the report says about
//! the graph; and why no provider ran when none did.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use super::{
    SegmenterOptions,
    session::{SessionFailure, Started, start},
};
use crate::{
    engine::{
        EngineError,
        models::ResolvedModel,
        prepare::{self, Fp16Source, PrepareKey},
        providers::{Precision, ProviderKind, ProviderRequest, SkippedProvider},
        runtime::Runtime,
    },
    timing::ms_since,
};

/// The network's input side: the model's own unless `options` asks for another the model takes.
pub(super) fn input_side(
    model: &ResolvedModel,
    options: &SegmenterOptions,
) -> Result<u32, EngineError> {
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
    Ok(side_px)
}

/// What the prepared graph changed that the report names: FP32 islands in an FP16 graph cutout
/// converted, or the convolutions kept exact under TF32.
pub(super) fn graph_features(
    model: &ResolvedModel,
    options: &SegmenterOptions,
    key: PrepareKey<'_>,
) -> Vec<String> {
    // cutout converts the graph (and makes the islands) unless it runs an FP16 file as stored.
    let converted =
        model.spec.precision == Precision::Fp32 || options.fp16_source == Fp16Source::Twin;
    if key.precision == Precision::Fp16 && converted {
        key.fp32_islands
            .iter()
            .map(|[first, last]| format!("FP32 island: convolutions {first}-{last}"))
            .collect()
    } else if key.split_for_tf32 {
        key.fp32_islands
            .iter()
            .map(|[_, last]| format!("TF32-exact input: convolution {last}"))
            .collect()
    } else {
        Vec::new()
    }
}

/// Why no provider ran: the one asked for and its reason, or with `auto` every reason.
pub(super) fn no_provider(
    requested: ProviderRequest,
    mut skipped: Vec<SkippedProvider>,
) -> EngineError {
    match skipped.pop() {
        Some(last) if requested != ProviderRequest::Auto => EngineError::ProviderUnavailable {
            provider: last.provider,
            reason: last.reason,
        },
        last => EngineError::NoProvider(
            skipped
                .iter()
                .chain(last.as_ref())
                .map(|s| format!("{}: {}", s.provider, s.reason))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// One provider to try a model on.
pub(super) struct Candidate<'a> {
    pub(super) runtime: &'a Runtime,
    pub(super) model: &'a ResolvedModel,
    pub(super) options: &'a SegmenterOptions,
    pub(super) cache_dir: &'a Path,
    pub(super) provider: ProviderKind,
}

/// A session that started, on which prepared file, and what preparing it took.
pub(super) struct Attempt {
    pub(super) started: Started,
    pub(super) prepared: PathBuf,
    pub(super) prepare_ms: f64,
    pub(super) features: Vec<String>,
}

impl Candidate<'_> {
    /// Prepares the model for `key` and starts a session on it. A cached prepared copy that no
    /// longer loads is damaged (the model itself was checked): never trusted, it is made again
    /// once. The outer error stops every provider; the inner one says whether the next may run.
    pub(super) fn attempt(
        &self,
        key: PrepareKey<'_>,
    ) -> Result<Result<Attempt, SessionFailure>, EngineError> {
        let started = Instant::now();
        let (mut prepared, provenance) =
            prepare::prepared_model(&self.model.path, key, self.cache_dir)?;
        let mut prepare_ms = ms_since(started);
        let mut features = Vec::new();
        let mut session = self.start(&prepared, &mut features);
        if provenance == prepare::Provenance::Cached
            && let Err(SessionFailure::Model(EngineError::LoadModel { reason, .. })) = &session
        {
            tracing::warn!(path = %prepared.display(), %reason, "the cached prepared model does not load; making it again");
            let started = Instant::now();
            prepare::discard(&prepared)?;
            prepared = prepare::prepared_model(&self.model.path, key, self.cache_dir)?.0;
            prepare_ms += ms_since(started);
            features.clear();
            session = self.start(&prepared, &mut features);
        }
        Ok(session.map(|started| Attempt {
            started,
            prepared,
            prepare_ms,
            features,
        }))
    }

    fn start(
        &self,
        prepared: &Path,
        features: &mut Vec<String>,
    ) -> Result<Started, SessionFailure> {
        start(
            self.runtime,
            prepared,
            self.provider,
            self.options,
            self.cache_dir,
            self.model,
            features,
        )
    }
}
