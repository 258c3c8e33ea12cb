//! Batch background removal: file → decode → preprocess → infer → postprocess → PNG on disk.
//!
//! The stages run at the speed of the machine: decoding and preprocessing on one thread per
//! core, the network on the caller's thread (one session), and finishing (mask to full size,
//! edge passes, composite, PNG, atomic write) on one thread per core again ([`flow`]). At most a
//! fixed number of photos are in flight, so memory stays bounded whatever the folder's size, and
//! the outcomes come back in input order. A photo that fails at any stage becomes an [`Outcome`]
//! with the reason; the rest of the batch goes on.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
};

use image::{GrayImage, RgbImage};

mod flow;
mod plan;
mod shard;
mod stages;

pub use plan::{
    Found, IMAGE_EXTENSIONS, Place, PlanError, PlanOptions, expand_inputs, output_name, plan_jobs,
};
pub use shard::Shard;

pub use crate::image_ops::{STDIO, is_stdio};
use crate::{
    engine::{ProviderKind, Segmenter, StageTimings},
    finish::{Finisher, PhotoError, Product},
    image_ops::{
        self, Background, CompositeSettings, DecodeLimits, edits::Stroke, refine::RefineSettings,
    },
};

/// What to write for each photo (the command line's choice).
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

/// Where a job's pixels come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Photo {
    /// Read and decode [`Job::input`] ([`STDIO`]: standard input).
    #[default]
    Read,
    /// Pixels already in memory (a pasted image), to segment.
    Pixels(Arc<RgbImage>),
    /// A photo whose mask is known: only finishing runs.
    Segmented {
        /// The photo.
        rgb: Arc<RgbImage>,
        /// Its mask, same size.
        mask: Arc<GrayImage>,
    },
}

/// One photo and where its result goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The photo ([`STDIO`]: standard input); for pixels in memory, the name messages use.
    pub input: PathBuf,
    /// The PNG to write, and what it may replace ([`STDIO`]: standard output).
    pub output: image_ops::Target,
    /// Where the pixels come from.
    pub photo: Photo,
    /// Touch-up strokes painted on before compositing (empty: none).
    pub edits: Vec<Stroke>,
}

impl Job {
    /// The photo in the file `input`, written to `output`.
    pub fn file(input: PathBuf, output: image_ops::Target) -> Self {
        Self {
            input,
            output,
            photo: Photo::Read,
            edits: Vec::new(),
        }
    }

    /// The photo's name in messages.
    pub fn name(&self) -> String {
        if is_stdio(&self.input) {
            "standard input".to_owned()
        } else {
            self.input.display().to_string()
        }
    }
}

/// What happened to one photo.
#[derive(Debug)]
pub struct Outcome {
    /// The job's place in the input order, from 0.
    pub index: usize,
    /// The job.
    pub job: Job,
    /// The provider that ran the network on it (`None` when it failed before, or when its mask
    /// was given).
    pub provider: Option<ProviderKind>,
    /// Timings, or why it failed.
    pub result: Result<StageTimings, PhotoError>,
    /// Where the result was written: the planned name, or a numbered one beside it when that
    /// held another photo's result.
    pub written: Option<PathBuf>,
}

/// Settings for [`run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// Threshold, background, edge passes: as in the app's preview.
    pub settings: CompositeSettings,
    /// What each file holds.
    pub product: Product,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Threads for decoding and for finishing (each); 0: one per core.
    pub workers: usize,
    /// Whether cutouts keep the photo's EXIF block (capture date, camera; also any location),
    /// orientation set upright. Off by default.
    pub keep_exif: bool,
}

impl BatchOptions {
    /// The command line's options: `kind` with `refine`'s edge passes.
    pub fn for_output(kind: OutputKind, refine: RefineSettings, limits: DecodeLimits) -> Self {
        let (background, color, product) = match kind {
            OutputKind::Cutout => (Background::Transparent, [255; 3], Product::Composite),
            OutputKind::MaskOnly => (Background::Transparent, [255; 3], Product::Mask),
            OutputKind::OverColor(color) => (Background::Color, color, Product::Composite),
        };
        let settings = CompositeSettings {
            background,
            color,
            refine,
            ..CompositeSettings::default()
        };
        Self {
            settings: product.settings(&settings),
            product,
            limits,
            workers: 0,
            keep_exif: false,
        }
    }
}

/// Runs every job through the pipeline on `segmenter`; `on_done` gets each outcome in input
/// order as soon as it and every earlier one are done.
pub fn run(
    segmenter: &mut Segmenter,
    jobs: Vec<Job>,
    options: BatchOptions,
    finisher: &Finisher,
    on_done: impl FnMut(Outcome),
) {
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
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// [`run`], with the engine opened by `open` while the first photos are being decoded (start-up
/// and decoding overlap). When `open` fails nothing is written and its error is returned.
///
/// `open` may also give a faster engine that is still starting (a GPU session; see
/// [`crate::engine::open_handing_over`]): photos run on the first engine until the second
/// arrives, then on it. A photo the first engine is running when the second arrives is stopped
/// and run again on the second, so no photo waits on the slower engine longer than it must.
/// `on_switch` sees the second engine when it takes over; each [`Outcome`] names its provider.
///
/// Once `stop` is set no further photo is started: a photo whose result is being written is
/// finished (every write is atomic), the rest have no outcome. Outcomes after such a gap still
/// come in input order.
pub fn run_opening<S: std::borrow::BorrowMut<Segmenter>, E>(
    open: impl FnOnce() -> Result<(S, Option<crossbeam_channel::Receiver<Segmenter>>), E>,
    jobs: Vec<Job>,
    options: BatchOptions,
    finisher: &Finisher,
    stop: &AtomicBool,
    on_done: impl FnMut(Outcome),
    on_switch: impl FnMut(&Segmenter),
) -> Result<(), E> {
    flow::Flow {
        options,
        finisher,
        stop,
    }
    .run(open, jobs, on_done, on_switch)
}
