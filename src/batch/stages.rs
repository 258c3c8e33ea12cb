//! One photo's steps, each a plain function of what the step before gave: [`prepare`] (read,
//! decode, the network's input) on a decoding thread, [`Segmenter::infer`] on the session's
//! thread, [`finish`] (the mask at full size, then [`Finisher::write`]) on a finishing thread.

use std::{path::Path, sync::Arc, time::Instant};

use image::{GrayImage, RgbImage};

use crossbeam_channel::Sender;

use super::{BatchOptions, Job, Outcome, Photo};
use crate::{
    engine::{EngineError, MaskPipeline, ProviderKind, StageTimings},
    finish::{Finisher, PhotoError},
    image_ops::{self, DecodeLimits, Embedded, ImageError, colour, edits::EditLayer},
    timing::ms_since,
};

/// A photo's place in memory, given back to the batch when dropped.
pub(super) struct Slot(pub(super) Sender<()>);

impl Drop for Slot {
    fn drop(&mut self) {
        // The batch may be over already; then nobody needs it back.
        self.0.send(()).ok();
    }
}

/// Where a photo's mask stands.
pub(super) enum Mask {
    /// The network's input, still to run.
    Input(Vec<f32>),
    /// The network's raw output, still to bring to the photo's size.
    Raw(Vec<f32>),
    /// Given with the job.
    Given(Arc<GrayImage>),
}

/// A photo between its steps. It holds one of the batch's [`Slot`]s until it is dropped, so that
/// at most so many photos are in memory at once.
pub(super) struct InFlight {
    /// Its place in the input order.
    pub index: usize,
    pub job: Job,
    pub rgb: Arc<RgbImage>,
    pub mask: Mask,
    pub provider: Option<ProviderKind>,
    pub timings: StageTimings,
    pub _slot: Slot,
}

impl InFlight {
    /// This photo's outcome: `error`, nothing written.
    pub(super) fn failed(self, error: PhotoError) -> Outcome {
        Outcome {
            index: self.index,
            job: self.job,
            provider: self.provider,
            result: Err(error),
            written: None,
        }
    }

    /// `error` from the network, naming the photo.
    pub(super) fn network_failed(self, error: EngineError) -> Outcome {
        let name = self.job.name();
        self.failed(PhotoError::Network { error, name })
    }
}

/// Reads and decodes a job's photo (or takes the pixels it came with), with the profile and
/// EXIF it carries (none for pixels in memory).
fn read(job: &Job, limits: DecodeLimits) -> Result<(Arc<RgbImage>, Embedded, f64), ImageError> {
    let started = Instant::now();
    let decoded = match &job.photo {
        Photo::Pixels(rgb) | Photo::Segmented { rgb, .. } => {
            return Ok((Arc::clone(rgb), Embedded::default(), 0.0));
        }
        Photo::Read if super::is_stdio(&job.input) => read_stdin()
            .and_then(|bytes| image_ops::decode_bytes(&bytes, Path::new("standard input"), limits)),
        Photo::Read => image_ops::decode_file(&job.input, limits),
    }?;
    Ok((Arc::new(decoded.rgb), decoded.embedded, ms_since(started)))
}

/// Reads a photo from standard input (`cutout remove -`).
fn read_stdin() -> Result<Vec<u8>, ImageError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|source| ImageError::Read {
            path: "standard input".into(),
            source,
        })?;
    Ok(bytes)
}

/// Decodes job `index` and makes the network's input. `pipeline` gives the engine's pipeline
/// (it waits for the engine to open on the first photo); `None` when the engine did not open.
pub(super) fn prepare(
    (index, job): (usize, Job),
    slot: Slot,
    options: &BatchOptions,
    pipeline: impl FnOnce() -> Option<MaskPipeline>,
) -> Option<Result<InFlight, Outcome>> {
    let read = read(&job, options.limits);
    let pipeline = pipeline()?;
    let (rgb, embedded, decode_ms) = match read {
        Ok(read) => read,
        Err(e) => {
            return Some(Err(Outcome {
                index,
                job,
                provider: None,
                result: Err(e.into()),
                written: None,
            }));
        }
    };
    let mut item = InFlight {
        index,
        rgb,
        mask: Mask::Input(Vec::new()),
        provider: None,
        timings: StageTimings {
            decode_ms,
            ..StageTimings::default()
        },
        _slot: slot,
        job,
    };
    if let Photo::Segmented { mask, .. } = &item.job.photo {
        item.mask = Mask::Given(Arc::clone(mask));
        return Some(Ok(item));
    }
    let started = Instant::now();
    // The network sees sRGB, as it was trained on; the cutout keeps the photo's own colours
    // and profile.
    let input = pipeline.preprocess(&colour::to_srgb(&item.rgb, &embedded));
    if matches!(item.job.photo, Photo::Read) {
        item.job.output.embedded = embedded.keeping_exif(options.keep_exif);
    }
    Some(match input {
        Ok(input) => {
            item.mask = Mask::Input(input);
            item.timings.preprocess_ms = ms_since(started);
            Ok(item)
        }
        Err(e) => Err(item.failed(e.into())),
    })
}

/// The mask at the photo's size, refinement, composite and PNG: the photo's outcome.
pub(super) fn finish(
    mut item: InFlight,
    pipeline: MaskPipeline,
    options: &BatchOptions,
    finisher: &Finisher,
) -> Outcome {
    let started = Instant::now();
    let mask = match std::mem::replace(&mut item.mask, Mask::Raw(Vec::new())) {
        Mask::Given(mask) => mask,
        Mask::Raw(raw) => match pipeline.postprocess(&raw, item.rgb.width(), item.rgb.height()) {
            Ok(mask) => Arc::new(mask),
            Err(e) => return item.network_failed(e.into()),
        },
        Mask::Input(_) => {
            let error = EngineError::BadOutput("the network did not run".to_owned());
            return item.network_failed(error);
        }
    };
    let edits =
        (!item.job.edits.is_empty()).then(|| EditLayer::from_strokes(&item.rgb, &item.job.edits));
    let resized_ms = ms_since(started);
    let written = finisher.write(
        (&item.rgb, &mask),
        &options.settings,
        options.product,
        edits.as_ref(),
        &item.job.output,
    );
    match written {
        Ok(written) => {
            item.timings.postprocess_ms += resized_ms + written.finish_ms;
            item.timings.encode_ms = written.encode_ms;
            Outcome {
                index: item.index,
                job: item.job,
                provider: item.provider,
                result: Ok(item.timings),
                written: Some(written.path),
            }
        }
        Err(e) => item.failed(e.into()),
    }
}
