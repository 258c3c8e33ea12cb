//! The worker thread's side: the state it owns (runtime, session, settings) and what it does
//! for each [`Request`].

use std::{
    collections::VecDeque,
    ops::ControlFlow,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

use crossbeam_channel::Receiver;
use image::{GrayImage, RgbImage};

use crate::{
    batch,
    engine::{self, ModelChoice, Segmenter, SegmenterOptions, models::FetchStage},
    finish::{FinishError, Finisher, Product},
    image_ops::{
        self, CompositeSettings, DecodeLimits, ImageError,
        edits::{EditLayer, Stroke},
    },
    paths::AppDirs,
    timing::ms_since,
};

use super::{
    ExportSource, FETCH_PROGRESS_INTERVAL, JobId, JobKind, PhotoError, Request, Response, RunInfo,
    Running, StageTimings, THUMBNAIL_SIDE_PX,
};

pub(super) struct State {
    dirs: AppDirs,
    limits: DecodeLimits,
    segmenter: Option<Segmenter>,
    latest_preview: Arc<AtomicU64>,
    running: Arc<Mutex<Running>>,
    /// Set by [`Worker::cancel_configure`]; cleared when a configuration starts.
    cancel: Arc<AtomicBool>,
    /// Sessions started so far.
    sessions: u64,
    /// Refinement and compositing for exports (opens a headless GPU device when asked).
    finisher: Finisher,
}

impl State {
    /// The state of a new worker: no session yet.
    pub(super) fn new(
        dirs: AppDirs,
        limits: DecodeLimits,
        latest_preview: Arc<AtomicU64>,
        running: Arc<Mutex<Running>>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Self {
            dirs,
            limits,
            segmenter: None,
            latest_preview,
            running,
            cancel,
            sessions: 0,
            finisher: Finisher::new(),
        }
    }

    /// Drops the session (after a panic, it may be in any state).
    pub(super) fn drop_session(&mut self) {
        self.segmenter = None;
    }

    pub(super) fn superseded(&self, id: JobId, kind: JobKind) -> bool {
        kind == JobKind::Preview && id < self.latest_preview.load(Ordering::SeqCst)
    }

    /// Does `work`; `interrupted` says that something more urgent waits (a preview, or the
    /// worker closing). Exports not started by then come back, to be done afterwards.
    pub(super) fn handle_work(
        &mut self,
        work: Work,
        interrupted: &dyn Fn() -> bool,
        send: &mut dyn FnMut(Response),
    ) -> Vec<Export> {
        match work {
            Work::One(request) => match Export::from_request(request) {
                Ok(export) => self.export(vec![export], interrupted, send),
                Err(request) => {
                    self.handle(*request, send);
                    Vec::new()
                }
            },
            Work::Exports(exports) => self.export(exports, interrupted, send),
        }
    }

    fn handle(&mut self, request: Request, send: &mut dyn FnMut(Response)) {
        let (id, done) = match request {
            Request::Configure { model, options } => {
                return self.configure(&model, &options, send);
            }
            Request::Copy {
                id,
                photo,
                mask,
                settings,
                edits,
            } => {
                let copied = self
                    .finisher
                    .composite(
                        &photo,
                        &mask,
                        &settings,
                        edit_layer(&photo, &edits).as_ref(),
                    )
                    .map(|rgba| send(Response::Copied { id, rgba }));
                (id, copied.map_err(PhotoError::from))
            }
            Request::Panic => panic!("a panic asked for by Request::Panic"),
            Request::SegmentFile { id, kind, path } => {
                (id, self.decode_and_segment(id, kind, &path, send))
            }
            Request::SegmentImage {
                id,
                kind,
                name,
                rgb,
            } => {
                let segmented = self.segment(id, kind, &name, &rgb).map(|mask| {
                    if let Some((mask, timings, ran)) = mask {
                        send(Response::Mask {
                            id,
                            mask: Arc::new(mask),
                            timings,
                            ran,
                        });
                    }
                });
                (id, segmented)
            }
            // [`Self::handle_work`] takes exports itself (to return the ones not started); one
            // arriving here is written all the same.
            export @ Request::Export { .. } => {
                if let Ok(export) = Export::from_request(export) {
                    self.export(vec![export], &|| false, send);
                }
                return;
            }
        };
        if let Err(error) = done {
            send(fail(id, error));
        }
    }

    /// Decodes the photo at `path` (sending it and its thumbnail as soon as it is decoded), then
    /// segments it and sends the mask.
    fn decode_and_segment(
        &mut self,
        id: JobId,
        kind: JobKind,
        path: &std::path::Path,
        send: &mut dyn FnMut(Response),
    ) -> Result<(), PhotoError> {
        if self.superseded(id, kind) {
            return Ok(());
        }
        let started = Instant::now();
        let decoded = image_ops::decode_file(path, self.limits)?;
        let decode_ms = ms_since(started);
        let rgb = Arc::new(decoded.rgb);
        // The screen and the network see sRGB; exports keep the photo's colours and profile.
        let display = image_ops::colour::shared_srgb(&rgb, &decoded.embedded);
        let thumbnail = image_ops::resize::shrink_to_fit(&display, THUMBNAIL_SIDE_PX)?;
        send(Response::Decoded {
            id,
            rgb,
            display: Arc::clone(&display),
            embedded: decoded.embedded,
            thumbnail,
        });
        let name = path.display().to_string();
        if let Some((mask, timings, ran)) = self.segment(id, kind, &name, &display)? {
            send(Response::Mask {
                id,
                mask: Arc::new(mask),
                timings: StageTimings {
                    decode_ms,
                    ..timings
                },
                ran,
            });
        }
        Ok(())
    }

    /// Loads ONNX Runtime, fetches the model if needed (with progress, cancellable), then
    /// prepares it and starts the session, saying which step it is on.
    pub(super) fn configure(
        &mut self,
        model: &ModelChoice,
        options: &SegmenterOptions,
        send: &mut dyn FnMut(Response),
    ) {
        self.cancel.store(false, Ordering::SeqCst);
        let name = model_name(model);
        send(Response::Configuring {
            what: format!("{name} on {}, {}", options.provider, options.precision),
        });
        self.segmenter = None;
        let failed = |error: engine::EngineError, cancelled: bool| Response::ConfigureFailed {
            error,
            cancelled,
        };
        let runtime = match engine::runtime::load(&self.dirs) {
            Ok(r) => r,
            Err(e) => return send(failed(e.into(), false)),
        };
        let mut last_sent: Option<Instant> = None;
        let cancel = Arc::clone(&self.cancel);
        let mut progress = |stage: FetchStage, done: u64, total: Option<u64>| {
            let finished = total == Some(done);
            if finished || last_sent.is_none_or(|t| t.elapsed() >= FETCH_PROGRESS_INTERVAL) {
                last_sent = Some(Instant::now());
                send(Response::Fetching {
                    model: name.clone(),
                    stage,
                    done,
                    total,
                });
            }
            if cancel.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let resolved = engine::resolve_model(&self.dirs, model, &mut progress);
        let resolved = match resolved {
            Ok(m) => m,
            Err(e) => {
                let cancelled = matches!(
                    e,
                    engine::EngineError::Model(engine::ModelError::Cancelled { .. })
                );
                return send(failed(e, cancelled));
            }
        };
        send(Response::Configuring {
            what: format!(
                "{name}: preparing the {} model and starting the {} session",
                options.precision, options.provider
            ),
        });
        match Segmenter::new(&runtime, &resolved, options, &self.dirs.cache_dir) {
            Ok(segmenter) => {
                self.sessions += 1;
                send(Response::Ready {
                    model: name,
                    report: segmenter.report().clone(),
                    startup: segmenter.startup(),
                    input_side_px: segmenter.input_side_px(),
                });
                self.segmenter = Some(segmenter);
            }
            Err(e) => send(failed(e, false)),
        }
    }

    /// Writes a group of exports (one "Export all" sends many) through the batch's pipeline,
    /// which decodes, runs the network and finishes them on all cores; they all have the
    /// first one's settings ([`Work::Exports`] groups them so). Once `interrupted`, no further
    /// export is started and those not started are returned. Without a session only those whose
    /// mask is known can be written; the others say that no model is loaded.
    pub(super) fn export(
        &mut self,
        exports: Vec<Export>,
        interrupted: &dyn Fn() -> bool,
        send: &mut dyn FnMut(Response),
    ) -> Vec<Export> {
        let Some((settings, keep_exif)) = exports.first().map(|e| (e.settings, e.keep_exif)) else {
            return Vec::new();
        };
        let jobs: Vec<batch::Job> = exports.iter().cloned().map(Export::into_job).collect();
        let options = batch::BatchOptions {
            settings,
            limits: self.limits,
            keep_exif,
            ..batch::BatchOptions::default()
        };
        let Some(segmenter) = self.segmenter.as_mut() else {
            for (export, job) in exports.iter().zip(jobs) {
                send(exported(
                    export.id,
                    self.finish_without_session(job, &options),
                ));
            }
            return Vec::new();
        };
        let stop = AtomicBool::new(false);
        let mut done = vec![false; exports.len()];
        let report = |outcome: batch::Outcome| {
            done[outcome.index] = true;
            send(exported(exports[outcome.index].id, outcome));
            if interrupted() {
                stop.store(true, Ordering::SeqCst);
            }
        };
        let ran = batch::run_opening(
            || Ok::<_, std::convert::Infallible>((segmenter, None)),
            jobs,
            options,
            &self.finisher,
            &stop,
            report,
            |_| {},
        );
        if let Err(never) = ran {
            match never {}
        }
        exports
            .into_iter()
            .zip(done)
            .filter_map(|(export, done)| (!done).then_some(export))
            .collect()
    }

    /// An export while no session is loaded: only a photo whose mask is known can be written.
    fn finish_without_session(
        &self,
        job: batch::Job,
        options: &batch::BatchOptions,
    ) -> batch::Outcome {
        let batch::Photo::Segmented { rgb, mask } = &job.photo else {
            let name = job.name();
            return batch::Outcome {
                index: 0,
                job,
                provider: None,
                result: Err(PhotoError::NoModel { name }),
                written: None,
            };
        };
        let layer = edit_layer(rgb, &job.edits);
        let written = self.finisher.write(
            (rgb, mask),
            &options.settings,
            Product::Composite,
            layer.as_ref(),
            &job.output,
        );
        let (result, written) = match written {
            Ok(w) => (
                Ok(StageTimings {
                    postprocess_ms: w.finish_ms,
                    encode_ms: w.encode_ms,
                    ..StageTimings::default()
                }),
                Some(w.path),
            ),
            Err(e) => (Err(e.into()), None),
        };
        batch::Outcome {
            index: 0,
            job,
            provider: None,
            result,
            written,
        }
    }

    /// Preprocess, infer and postprocess one photo; `None` when a newer preview superseded it.
    pub(super) fn segment(
        &mut self,
        id: JobId,
        kind: JobKind,
        name: &str,
        rgb: &RgbImage,
    ) -> Result<Option<(GrayImage, StageTimings, RunInfo)>, PhotoError> {
        if self.superseded(id, kind) {
            return Ok(None);
        }
        let Some(segmenter) = self.segmenter.as_mut() else {
            return Err(PhotoError::NoModel {
                name: name.to_owned(),
            });
        };
        let stopper = segmenter.run_stopper();
        if let Ok(mut running) = self.running.lock() {
            // Under the lock, so that a stop meant for an earlier run cannot reach this one.
            stopper.reset();
            running.preview = (kind == JobKind::Preview).then_some(id);
            running.stopper = Some(stopper);
        }
        let result = segmenter.segment(rgb);
        if let Ok(mut running) = self.running.lock() {
            running.preview = None;
        }
        let (mask, timings) = match result {
            Ok(out) => out,
            // Stopped for a newer preview: nobody waits for this one.
            Err(_) if self.superseded(id, kind) => return Ok(None),
            Err(error) => {
                return Err(PhotoError::Network {
                    error,
                    name: name.to_owned(),
                });
            }
        };
        let report = segmenter.report();
        let ran = RunInfo {
            session: self.sessions,
            provider: report.provider,
            precision: report.precision,
            input_side_px: segmenter.input_side_px(),
        };
        Ok(Some((mask, timings, ran)))
    }
}

/// What the worker does next: one request, or exports queued together (same settings).
pub(super) enum Work {
    One(Request),
    Exports(Vec<Export>),
}

/// `request`, and when it is an export, the exports queued behind it with the same settings (up
/// to a queue's worth), while no preview waits. A request met on the way goes to `pending`.
pub(super) fn gather(
    request: Request,
    queue: &Receiver<Request>,
    now: &Receiver<Request>,
    pending: &mut VecDeque<Work>,
) -> Work {
    let first = match Export::from_request(request) {
        Ok(export) => export,
        Err(request) => return Work::One(*request),
    };
    let mut group = vec![first];
    while group.len() < super::QUEUE_DEPTH && now.is_empty() {
        let Ok(request) = queue.try_recv() else { break };
        match Export::from_request(request) {
            Ok(export)
                if export.settings == group[0].settings
                    && export.keep_exif == group[0].keep_exif =>
            {
                group.push(export);
            }
            Ok(export) => {
                pending.push_back(Work::Exports(vec![export]));
                break;
            }
            Err(other) => {
                pending.push_back(Work::One(*other));
                break;
            }
        }
    }
    Work::Exports(group)
}

/// One export, as the app asked for it.
#[derive(Clone)]
pub(super) struct Export {
    pub id: JobId,
    pub source: ExportSource,
    pub settings: CompositeSettings,
    pub edits: Vec<Stroke>,
    pub output: image_ops::Target,
    pub keep_exif: bool,
}

impl Export {
    /// The export a request asks for; other requests come back.
    pub(super) fn from_request(request: Request) -> Result<Self, Box<Request>> {
        match request {
            Request::Export {
                id,
                source,
                settings,
                edits,
                output,
                keep_exif,
            } => Ok(Self {
                id,
                source,
                settings,
                edits,
                output,
                keep_exif,
            }),
            other => Err(Box::new(other)),
        }
    }

    fn into_job(self) -> batch::Job {
        let (input, photo) = match self.source {
            ExportSource::Segmented { rgb, mask } => (
                self.output.path.clone(),
                batch::Photo::Segmented { rgb, mask },
            ),
            ExportSource::File(path) => (path, batch::Photo::Read),
            ExportSource::Pixels { name, rgb } => (name.into(), batch::Photo::Pixels(rgb)),
        };
        batch::Job {
            input,
            output: self.output,
            photo,
            edits: self.edits,
        }
    }
}

/// The response for an export's outcome.
fn exported(id: JobId, outcome: batch::Outcome) -> Response {
    match (outcome.result, outcome.written) {
        (Ok(t), Some(path)) => Response::Exported {
            id,
            instead_of: (path != outcome.job.output.path).then_some(outcome.job.output.path),
            path,
            write_ms: t.postprocess_ms + t.encode_ms,
        },
        (Err(error), _) => fail(id, error),
        (Ok(_), None) => fail(
            id,
            PhotoError::Write(FinishError::Image(ImageError::Write {
                path: outcome.job.output.path,
                reason: "nothing was written".to_owned(),
            })),
        ),
    }
}

fn model_name(model: &ModelChoice) -> String {
    match model {
        ModelChoice::Named(name) => name.clone(),
        ModelChoice::Custom(path) => path.display().to_string(),
    }
}

/// The edit layer of `strokes` on `photo`, if there are any.
fn edit_layer(photo: &RgbImage, strokes: &[Stroke]) -> Option<EditLayer> {
    (!strokes.is_empty()).then(|| EditLayer::from_strokes(photo, strokes))
}

/// A job that failed, with why.
fn fail(id: JobId, error: impl Into<PhotoError>) -> Response {
    Response::Failed {
        id,
        error: error.into(),
    }
}
