//! Batch background removal: file → decode → preprocess → infer → postprocess → PNG on disk.
//!
//! Three stages overlap on their own threads, joined by bounded channels: decoding and
//! preprocessing the next photo, running the network on the current one, and resizing the mask and
//! encoding the previous one. A photo that fails at any stage becomes an [`Outcome`] with the
//! reason; the rest of the batch goes on.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use image::{ExtendedColorType, GrayImage, RgbImage};

mod plan;

pub use plan::{
    Found, IMAGE_EXTENSIONS, Place, PlanError, PlanOptions, STDIO, expand_inputs, is_stdio,
    output_name, plan_jobs,
};

use crate::{
    engine::{EngineError, MaskPipeline, ProviderKind, Segmenter},
    finish::{FinishError, Finisher},
    image_ops::{
        self, Background, CompositeSettings, DecodeLimits, ImageError, refine::RefineSettings,
    },
};

/// What to write for each photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// Transparent PNG: the photo's colours with the mask as alpha.
    #[default]
    Cutout,
    /// The mask alone, as an 8-bit grey PNG.
    MaskOnly,
    /// The subject over an opaque colour.
    OverColor([u8; 3]),
}

/// One photo and where its result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The photo ([`STDIO`]: standard input).
    pub input: PathBuf,
    /// The PNG to write, and what it may replace ([`STDIO`]: standard output).
    pub output: image_ops::Target,
}

/// Milliseconds spent in each stage for one photo.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimings {
    /// Reading and decoding the file.
    pub decode_ms: f64,
    /// Resizing to the model size and normalising.
    pub preprocess_ms: f64,
    /// The network.
    pub infer_ms: f64,
    /// Mask back to full size and compositing.
    pub postprocess_ms: f64,
    /// PNG encoding and the atomic write.
    pub encode_ms: f64,
}

/// Why one photo failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading, decoding or writing.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The network.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Edge refinement or compositing.
    #[error(transparent)]
    Finish(#[from] FinishError),
}

/// What happened to one photo.
#[derive(Debug)]
pub struct Outcome {
    /// The job.
    pub job: Job,
    /// The provider that ran the network on it (`None` when it failed before).
    pub provider: Option<ProviderKind>,
    /// Timings, or why it failed.
    pub result: Result<StageTimings, JobError>,
    /// Where the result was written: the planned name, or a numbered one beside it when that
    /// held another photo's result.
    pub written: Option<PathBuf>,
}

/// Settings for [`run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// What to write.
    pub kind: OutputKind,
    /// Edge refinement and foreground colours.
    pub refine: RefineSettings,
    /// Decoder limits.
    pub limits: DecodeLimits,
}

struct Prepared {
    job: Job,
    rgb: RgbImage,
    input: Vec<f32>,
    timings: StageTimings,
}

struct Inferred {
    job: Job,
    rgb: RgbImage,
    raw: Vec<f32>,
    provider: ProviderKind,
    timings: StageTimings,
}

fn failed(job: Job, error: JobError) -> Box<Outcome> {
    Box::new(Outcome {
        job,
        provider: None,
        result: Err(error),
        written: None,
    })
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// A decoded photo, before the network's input is made.
struct Decoded {
    job: Job,
    rgb: RgbImage,
    decode_ms: f64,
}

/// Decodes one photo.
fn decode(job: Job, limits: DecodeLimits) -> Result<Decoded, Box<Outcome>> {
    let t = Instant::now();
    let decoded = if is_stdio(&job.input) {
        read_stdin().and_then(|bytes| {
            image_ops::decode_bytes(&bytes, std::path::Path::new("standard input"), limits)
        })
    } else {
        image_ops::decode_file(&job.input, limits)
    };
    match decoded {
        Ok(d) => Ok(Decoded {
            job,
            rgb: d.rgb,
            decode_ms: ms_since(t),
        }),
        Err(e) => Err(failed(job, e.into())),
    }
}

/// Reads a photo from standard input (`cutout remove -`).
fn read_stdin() -> Result<Vec<u8>, ImageError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|source| ImageError::Read {
            path: PathBuf::from("standard input"),
            source,
        })?;
    Ok(bytes)
}

/// Makes the network's input from a decoded photo.
fn preprocess(decoded: Decoded, pipeline: MaskPipeline) -> Result<Prepared, Box<Outcome>> {
    let Decoded {
        job,
        rgb,
        decode_ms,
    } = decoded;
    let t = Instant::now();
    let input = match pipeline.preprocess(&rgb) {
        Ok(i) => i,
        Err(e) => return Err(failed(job, e.into())),
    };
    let timings = StageTimings {
        decode_ms,
        preprocess_ms: ms_since(t),
        ..StageTimings::default()
    };
    Ok(Prepared {
        job,
        rgb,
        input,
        timings,
    })
}

/// The 8-bit pixels to write for one photo and their layout: the refined mask, or the composite
/// (refined, with the subject's colours where foreground estimation is on).
pub fn render(
    finisher: &mut Finisher,
    rgb: &RgbImage,
    mask: &GrayImage,
    kind: OutputKind,
    refine: RefineSettings,
) -> Result<(Vec<u8>, ExtendedColorType), FinishError> {
    let settings = CompositeSettings {
        background: match kind {
            OutputKind::OverColor(_) => Background::Color,
            OutputKind::Cutout | OutputKind::MaskOnly => Background::Transparent,
        },
        color: match kind {
            OutputKind::OverColor(color) => color,
            OutputKind::Cutout | OutputKind::MaskOnly => [255; 3],
        },
        refine: RefineSettings {
            // The mask alone has no colours to estimate.
            foreground: refine.foreground && kind != OutputKind::MaskOnly,
            ..refine
        },
        ..CompositeSettings::default()
    };
    Ok(match kind {
        OutputKind::MaskOnly => (
            finisher.refine(rgb, mask, &settings)?.mask.into_raw(),
            ExtendedColorType::L8,
        ),
        OutputKind::Cutout => (
            finisher.composite(rgb, mask, &settings, None)?.into_raw(),
            ExtendedColorType::Rgba8,
        ),
        OutputKind::OverColor(_) => (
            finisher
                .composite(rgb, mask, &settings, None)?
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            ExtendedColorType::Rgb8,
        ),
    })
}

fn finish(
    item: Inferred,
    pipeline: MaskPipeline,
    options: BatchOptions,
    finisher: &mut Finisher,
) -> Outcome {
    let Inferred {
        job,
        rgb,
        raw,
        provider,
        mut timings,
    } = item;
    let provider = Some(provider);
    let t = Instant::now();
    let mask = match pipeline.postprocess(&raw, rgb.width(), rgb.height()) {
        Ok(m) => m,
        Err(e) => {
            return Outcome {
                job,
                provider,
                result: Err(e.into()),
                written: None,
            };
        }
    };
    let (pixels, color) = match render(finisher, &rgb, &mask, options.kind, options.refine) {
        Ok(rendered) => rendered,
        Err(e) => {
            return Outcome {
                job,
                provider,
                result: Err(e.into()),
                written: None,
            };
        }
    };
    timings.postprocess_ms = ms_since(t);
    let t = Instant::now();
    let written = if is_stdio(&job.output.path) {
        let origin = job.output.origin.as_ref();
        image_ops::export::write_png_stdout(&pixels, rgb.width(), rgb.height(), color, origin)
            .map(|()| job.output.path.clone())
    } else {
        image_ops::write_png_atomic(&job.output, &pixels, rgb.width(), rgb.height(), color)
    };
    timings.encode_ms = ms_since(t);
    match written {
        Ok(path) => Outcome {
            job,
            provider,
            result: Ok(timings),
            written: Some(path),
        },
        Err(e) => Outcome {
            job,
            provider,
            result: Err(e.into()),
            written: None,
        },
    }
}

/// Runs every job through the overlapped pipeline; `on_done` sees each outcome as it completes
/// (in input order). Returns all outcomes.
pub fn run(
    segmenter: &mut Segmenter,
    jobs: Vec<Job>,
    options: BatchOptions,
    finisher: Finisher,
    on_done: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let opened = run_opening(
        || Ok::<_, std::convert::Infallible>((segmenter, None)),
        jobs,
        options,
        finisher,
        &AtomicBool::new(false),
        on_done,
        |_| {},
    );
    match opened {
        Ok(outcomes) => outcomes,
        Err(never) => match never {},
    }
}

/// The engine running the batch: the one it opened with, or the faster one that took over.
enum Current<S> {
    Opened(S),
    Successor(Box<Segmenter>),
}

impl<S: std::borrow::BorrowMut<Segmenter>> Current<S> {
    fn get(&mut self) -> &mut Segmenter {
        match self {
            Self::Opened(s) => s.borrow_mut(),
            Self::Successor(s) => s,
        }
    }
}

/// [`run`], with the engine opened by `open` while the first photo is being decoded (start-up
/// and decoding overlap). When `open` fails nothing is written and its error is returned.
///
/// `open` may also give a faster engine that is still starting (a GPU session; see
/// [`crate::engine::open_handing_over`]): photos run on the first engine until the second
/// arrives, then on it. A photo the first engine is running when the second arrives is stopped
/// and run again on the second, so no photo waits on the slower engine longer than it must.
/// `on_switch` sees the second engine when it takes over; each [`Outcome`] names its provider.
///
/// Once `stop` is set no further photo is started: a photo whose result is being written is
/// finished (every write is atomic), the rest have no outcome.
pub fn run_opening<S: std::borrow::BorrowMut<Segmenter>, E>(
    open: impl FnOnce() -> Result<(S, Option<crossbeam_channel::Receiver<Segmenter>>), E>,
    jobs: Vec<Job>,
    options: BatchOptions,
    mut finisher: Finisher,
    stop: &AtomicBool,
    mut on_done: impl FnMut(&Outcome),
    mut on_switch: impl FnMut(&Segmenter),
) -> Result<Vec<Outcome>, E> {
    let stopped = || stop.load(Ordering::Relaxed);
    let arrived = std::sync::Mutex::new(None::<Segmenter>);
    std::thread::scope(|scope| {
        // The stages of [`Segmenter::segment`], each on its own thread. The channels live in
        // this closure, so that an early return closes them before the scope waits.
        let (pipeline_tx, pipeline_rx) = crossbeam_channel::bounded::<MaskPipeline>(1);
        let (prep_tx, prep_rx) = crossbeam_channel::bounded::<Result<Prepared, Box<Outcome>>>(1);
        let (infer_tx, infer_rx) = crossbeam_channel::bounded::<Result<Inferred, Box<Outcome>>>(1);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Outcome>();
        let mut outcomes = Vec::new();
        let limits = options.limits;
        std::thread::Builder::new()
            .name("cutout-decode".into())
            .spawn_scoped(scope, move || {
                let mut pipeline = None;
                for job in jobs {
                    if stopped() {
                        break;
                    }
                    let decoded = decode(job, limits);
                    // The first photo is decoded while the engine opens; its input needs the
                    // engine's pipeline.
                    let pipeline = match pipeline {
                        Some(p) => p,
                        None => match pipeline_rx.recv() {
                            Ok(p) => *pipeline.insert(p),
                            Err(_) => break,
                        },
                    };
                    if prep_tx
                        .send(decoded.and_then(|d| preprocess(d, pipeline)))
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| tracing::error!("cannot start the decoding thread: {e}"))
            .ok();
        let (opened, successor) = open()?;
        let mut current = Current::Opened(opened);
        let pipeline = current.get().pipeline();
        // The faster engine, once it has started; the thread that waits for it stops the run under
        // way on the first engine, which is then run again on the second.
        let (over_tx, over_rx) = crossbeam_channel::bounded::<()>(0);
        if let Some(successor) = successor {
            let stopper = current.get().run_stopper();
            let arrived = &arrived;
            std::thread::Builder::new()
                .name("cutout-handover".into())
                .spawn_scoped(scope, move || {
                    crossbeam_channel::select! {
                        recv(successor) -> next => match next {
                            Ok(next) if next.pipeline() == pipeline => {
                                if let Ok(mut slot) = arrived.lock() {
                                    *slot = Some(next);
                                    stopper.stop();
                                }
                            }
                            Ok(_) => tracing::warn!(
                                "the second engine makes its input differently; not used"
                            ),
                            Err(_) => {}
                        },
                        recv(over_rx) -> _ => {}
                    }
                })
                .map_err(|e| tracing::error!("cannot start the hand-over thread: {e}"))
                .ok();
        }
        let mut take_over =
            |current: &mut Current<S>| match arrived.lock().ok().and_then(|mut slot| slot.take()) {
                Some(next) => {
                    on_switch(&next);
                    *current = Current::Successor(Box::new(next));
                    true
                }
                None => false,
            };
        // The decoding thread may already be gone (no photos, or it could not start).
        pipeline_tx.send(pipeline).ok();
        std::thread::Builder::new()
            .name("cutout-encode".into())
            .spawn_scoped(scope, move || {
                for item in infer_rx {
                    if stopped() {
                        break;
                    }
                    let outcome = match item {
                        Ok(inferred) => finish(inferred, pipeline, options, &mut finisher),
                        Err(failed) => *failed,
                    };
                    if done_tx.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| tracing::error!("cannot start the encoding thread: {e}"))
            .ok();
        for prepared in prep_rx {
            if stopped() {
                break;
            }
            take_over(&mut current);
            let next = prepared.and_then(|p| {
                let t = Instant::now();
                let mut ran = current.get().infer(&p.input);
                // Stopped because the faster engine arrived: run it there.
                if ran.is_err() && take_over(&mut current) {
                    tracing::debug!("stopped on the first engine; running it on the second");
                    ran = current.get().infer(&p.input);
                }
                match ran {
                    Ok(raw) => {
                        let mut timings = p.timings;
                        timings.infer_ms = ms_since(t);
                        Ok(Inferred {
                            job: p.job,
                            rgb: p.rgb,
                            raw,
                            provider: current.get().report().provider,
                            timings,
                        })
                    }
                    Err(e) => Err(failed(p.job, e.into())),
                }
            });
            if infer_tx.send(next).is_err() {
                break;
            }
            for outcome in done_rx.try_iter() {
                on_done(&outcome);
                outcomes.push(outcome);
            }
        }
        drop(infer_tx);
        drop(over_tx);
        for outcome in &done_rx {
            on_done(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    })
}
