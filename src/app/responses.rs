//! Talking to the worker: the outbox (its queue is bounded, and lanes are kept apart), the
//! session's configuration, and what each [`Response`] does to the state.

use std::{path::Path, sync::Arc, time::Instant};

use image::{GrayImage, RgbImage, RgbaImage};

use super::{CutoutApp, EngineStatus, EntryId, EntryStatus, Purpose, Topic, state};
use crate::{
    engine::{EngineError, Precision, ProviderReport, segmenter::StartupTimings},
    image_ops,
    worker::{JobId, PhotoError, Request, Response, RunInfo, SendError},
};

/// The worker has stopped: nothing more can be sent.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stopped;

/// Hands the requests of `outbox` to `send`, in order within each lane; a full lane does not hold
/// up the other (a click on a photo during "Export all" goes ahead of the exports). What a full
/// lane refused stays in the outbox, in order, for the next frame.
pub(super) fn flush(
    outbox: &mut std::collections::VecDeque<Request>,
    mut send: impl FnMut(Request) -> Result<(), SendError>,
) -> Result<(), Stopped> {
    let mut kept = std::collections::VecDeque::new();
    let mut full = [false; 2];
    while let Some(request) = outbox.pop_front() {
        let lane = request.lane() as usize;
        if full[lane] {
            kept.push_back(request);
            continue;
        }
        match send(request) {
            Ok(()) => {}
            Err(SendError::Busy(request)) => {
                full[lane] = true;
                kept.push_back(*request);
            }
            Err(SendError::Stopped) => {
                kept.extend(outbox.drain(..));
                *outbox = kept;
                return Err(Stopped);
            }
        }
    }
    *outbox = kept;
    Ok(())
}

impl CutoutApp {
    pub(super) fn send(&mut self, request: Request) {
        self.link.outbox.push_back(request);
        self.flush_outbox();
    }

    /// Hands queued requests to the worker ([`flush`]).
    pub(super) fn flush_outbox(&mut self) {
        let worker = &self.link.worker;
        if flush(&mut self.link.outbox, |r| worker.send(r)).is_err() {
            self.state
                .post("the worker thread has stopped; restart cutout", true);
        }
    }

    pub(super) fn configure(&mut self) {
        self.state.engine = EngineStatus::Configuring {
            what: format!(
                "{} on {}, {}",
                self.settings.model_name(),
                self.settings.provider_request(),
                self.settings.precision()
            ),
            since: Instant::now(),
            fetch: None,
        };
        self.send(Request::Configure {
            model: self.settings.model_choice(),
            options: self.settings.segmenter_options(),
        });
    }

    // ---- worker responses -------------------------------------------------------------------

    pub(super) fn handle_response(&mut self, response: Response) {
        match response {
            Response::Configuring { what } => {
                let since = match &self.state.engine {
                    EngineStatus::Configuring { since, .. } => *since,
                    _ => Instant::now(),
                };
                self.state.engine = EngineStatus::Configuring {
                    what,
                    since,
                    fetch: None,
                };
            }
            Response::Fetching {
                model,
                stage,
                done,
                total,
            } => {
                if let EngineStatus::Configuring { what, fetch, .. } = &mut self.state.engine {
                    *what = format!("{} {model}", stage.label());
                    *fetch = Some(state::FetchStatus { stage, done, total });
                }
            }
            Response::Ready {
                model,
                report,
                startup,
                input_side_px,
            } => self.on_ready(model, report, startup, input_side_px),
            Response::ConfigureFailed { error, cancelled } => {
                self.on_configure_failed(&error, cancelled);
            }
            Response::Decoded {
                id,
                rgb,
                display,
                embedded,
                thumbnail,
            } => self.on_decoded(
                id,
                Decoded {
                    rgb,
                    display,
                    embedded,
                },
                &thumbnail,
            ),
            Response::Mask {
                id,
                mask,
                timings,
                ran,
            } => self.on_mask(id, mask, &timings, ran),
            Response::Exported {
                id,
                path,
                instead_of,
                write_ms,
            } => self.on_exported(id, &path, instead_of.as_deref(), write_ms),
            Response::Copied { id, rgba } => self.on_copied(id, &rgba),
            Response::Failed { id, error } => self.on_failed(id, &error),
            Response::Panicked { message } => self.on_panicked(&message),
        }
    }

    /// The session is ready: settle `auto` choices, reset what belonged to another model, and
    /// give photos that waited for a model their turn.
    fn on_ready(
        &mut self,
        model: String,
        report: ProviderReport,
        startup: StartupTimings,
        input_side_px: u32,
    ) {
        // The first session shows which provider runs: settle the `auto` choices, and
        // load the model they pick before any photo runs.
        if self.settings.settle_auto(report.provider) {
            self.state.post(
                format!(
                    "{} runs here, so cutout uses {} in {}; change it in the Engine panel",
                    report.provider,
                    self.settings.model_name(),
                    self.settings.precision()
                ),
                false,
            );
            self.configure();
            return;
        }
        let model_changed = self.loaded_model.as_deref() != Some(model.as_str());
        if model_changed {
            // Timings and masks of another network would mislead the comparison.
            self.state.stats.infer_by_run.clear();
            if let Some(current) = &mut self.state.current {
                current.masks_by_precision.clear();
                current.difference = None;
            }
        }
        self.loaded_model = Some(model.clone());
        // An earlier failure (a download that could not start, say) is settled now.
        self.state
            .messages
            .retain(|m| !(m.topic == Topic::Engine && m.is_error));
        self.state.models = state::ModelEntry::all(&self.dirs);
        self.state.engine = EngineStatus::Ready {
            model,
            report,
            startup,
            input_side_px,
        };
        self.state.stats.reset_stages();
        // Photos that failed only because no model was loaded get another go.
        let retry: Vec<EntryId> = self
            .state
            .entries
            .iter()
            .filter(|e| e.status == EntryStatus::Pending)
            .map(|e| e.id)
            .filter(|id| !self.link.jobs.values().any(|(e, _)| e == id))
            .collect();
        for id in retry {
            if self.state.current.as_ref().is_some_and(|c| c.entry == id) {
                continue;
            }
            self.scan(id);
        }
        if self.state.current.is_some() {
            self.rerun_current();
        }
    }

    /// A configuration failed; a cancelled fetch goes back to the model before it.
    fn on_configure_failed(&mut self, error: &EngineError, cancelled: bool) {
        if cancelled
            && let Some(previous) = self.loaded_model.clone()
            && previous != self.settings.model_name()
        {
            self.state.post_about(
                None,
                Topic::Engine,
                format!("{error}; back to {previous}"),
                false,
            );
            self.settings.model = super::settings::Choice::Fixed(previous);
            self.configure();
            return;
        }
        let error = error.to_string();
        self.state.post_about(
            None,
            Topic::Engine,
            format!("the model could not be loaded: {error}"),
            true,
        );
        self.state.engine = EngineStatus::Failed(error);
        if let Some(current) = &mut self.state.current {
            current.busy = false;
        }
    }

    fn on_exported(&mut self, id: JobId, path: &Path, instead_of: Option<&Path>, write_ms: f64) {
        let Some((entry, _)) = self.link.jobs.remove(&id) else {
            return;
        };
        if let Some(e) = self.state.entry_mut(entry) {
            e.status = EntryStatus::Exported(path.to_owned());
        }
        self.bump_export(true);
        let mut text = format!("exported in {write_ms:.0} ms: {}", path.display());
        if let Some(wanted) = instead_of {
            let name = wanted.file_name().unwrap_or_default().to_string_lossy();
            text = format!(
                "{name} there holds another photo's cutout (or a file of yours), so it was kept and this one was {text}"
            );
        }
        if self.settings.export_dir.is_none()
            && let Some((_, why)) = &self.state.export_fallback
        {
            text = format!(
                "{text} ({why}, so cutout used its default folder; type another under Export → Folder)"
            );
        }
        self.state
            .post_about(Some(entry), Topic::Export, text, false);
    }

    fn on_copied(&mut self, id: JobId, rgba: &RgbaImage) {
        self.link.jobs.remove(&id);
        let size = [rgba.width() as usize, rgba.height() as usize];
        self.ctx
            .copy_image(egui::ColorImage::from_rgba_unmultiplied(
                size,
                rgba.as_raw(),
            ));
        self.state.post("cutout copied to the clipboard", false);
    }

    /// A job failed: the photo's status follows the cause (see [`PhotoError`]).
    fn on_failed(&mut self, id: JobId, error: &PhotoError) {
        let Some((entry, purpose)) = self.link.jobs.remove(&id) else {
            return;
        };
        let no_model = matches!(error, PhotoError::NoModel { .. });
        let message = error.to_string();
        if let Some(e) = self.state.entry_mut(entry) {
            // Without a model every job fails; that is not the photo's fault (it is
            // segmented once a model loads). Nor is a failed write (a full disk, a
            // read-only folder): the photo stays ready to export again elsewhere.
            e.status = match error {
                PhotoError::NoModel { .. } => EntryStatus::Pending,
                PhotoError::Write(_) if e.status != EntryStatus::Pending => e.status.clone(),
                _ => EntryStatus::Failed(message.clone()),
            };
        }
        if purpose == Purpose::Export {
            self.bump_export(false);
        }
        if let Some(current) = &mut self.state.current
            && current.job == id
        {
            current.busy = false;
            self.state.live = false;
        }
        if !no_model {
            let topic = if purpose == Purpose::Export {
                Topic::Export
            } else {
                Topic::General
            };
            self.state.post_about(Some(entry), topic, message, true);
        }
    }

    /// The worker panicked while handling a request: it dropped its session; load it again.
    fn on_panicked(&mut self, message: &str) {
        self.state.post(
            format!("the worker hit an internal error ({message}); reloading the model"),
            true,
        );
        self.state.live = false;
        self.link.jobs.clear();
        if let Some(current) = &mut self.state.current {
            current.busy = false;
        }
        self.configure();
    }

    /// Gives a queue row its picture (once).
    pub(super) fn set_thumbnail(&mut self, entry: EntryId, thumbnail: &RgbImage) {
        if let Some(e) = self.state.entry_mut(entry)
            && e.thumbnail.is_none()
        {
            let image = egui::ColorImage::from_rgb(
                [thumbnail.width() as usize, thumbnail.height() as usize],
                thumbnail.as_raw(),
            );
            e.thumbnail = Some(self.ctx.load_texture(
                format!("thumbnail-{entry}"),
                image,
                egui::TextureOptions::LINEAR,
            ));
        }
    }

    pub(super) fn on_decoded(&mut self, id: JobId, decoded: Decoded, thumbnail: &RgbImage) {
        let Some(&(entry, purpose)) = self.link.jobs.get(&id) else {
            return;
        };
        self.set_thumbnail(entry, thumbnail);
        let is_current = self.state.current.as_ref().is_some_and(|c| c.job == id);
        if purpose == Purpose::Preview && is_current {
            self.install_photo(&decoded.display);
            if let Some(current) = &mut self.state.current {
                current.photo = Some(decoded.rgb);
                current.display = Some(decoded.display);
                current.embedded = decoded.embedded;
            }
            if self.state.entry(entry).is_some_and(|e| e.edits.has_edits()) {
                self.paint_layer_again();
            }
        }
    }

    pub(super) fn on_mask(
        &mut self,
        id: JobId,
        mask: Arc<GrayImage>,
        timings: &crate::worker::StageTimings,
        ran: RunInfo,
    ) {
        let Some((entry, purpose)) = self.link.jobs.remove(&id) else {
            return;
        };
        if let Some(e) = self.state.entry_mut(entry)
            && !matches!(e.status, EntryStatus::Exported(_))
        {
            e.status = EntryStatus::Done;
        }
        if purpose == Purpose::Export {
            return;
        }
        let is_current = self.state.current.as_ref().is_some_and(|c| c.job == id);
        if !is_current {
            return;
        }
        self.state.stats.record(timings, ran);
        if let (Some(model), Some(median)) = (
            self.loaded_model.as_deref(),
            self.state.stats.infer.summary().map(|s| s.median),
        ) {
            self.settings.remember_infer_ms(model, ran.provider, median);
        }
        self.install_mask(&mask, ran);
        if let Some(current) = &mut self.state.current {
            // Live re-runs of the same precision give the same mask: compare only when the
            // precision changed (a 12 MP comparison costs ~10 ms on the UI thread).
            let precision_changed = current.ran.map(|r| r.precision) != Some(ran.precision);
            current.busy = false;
            current.ran = Some(ran);
            current
                .masks_by_precision
                .insert(ran.precision, Arc::clone(&mask));
            if let (Some(a), Some(b)) = (
                current.masks_by_precision.get(&Precision::Fp32),
                current.masks_by_precision.get(&Precision::Fp16),
            ) && (current.difference.is_none() || precision_changed)
            {
                current.difference = image_ops::mask_difference(a, b);
            }
            current.mask = Some(mask);
        }
        if self.state.live && matches!(self.state.engine, EngineStatus::Ready { .. }) {
            self.rerun_current();
        }
    }
}

#[cfg(test)]
mod tests;

/// A decoded photo as the worker sends it (see [`Response::Decoded`]).
pub(super) struct Decoded {
    rgb: Arc<RgbImage>,
    display: Arc<RgbImage>,
    embedded: crate::image_ops::Embedded,
}
