//! Runtime state of the app (not persisted): the queue of photos, the photo on screen, the engine's
//! status, the latency statistics and the messages. The UI reads it; only `app` changes it.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};

use image::{GrayImage, RgbImage};

use super::stats::Samples;
use crate::{
    engine::{
        Manifest, ModelSpec, Precision, ProviderKind, ProviderReport,
        models::{self, FetchStage},
        segmenter::StartupTimings,
    },
    image_ops::{
        Embedded, MaskDifference, Origin,
        edits::{BrushMode, EditLayer, History, Painter, PixelRect},
    },
    paths::AppDirs,
    worker::{JobId, RunInfo, StageTimings},
};

/// Identifies a queue entry.
pub type EntryId = u64;

/// Where a photo came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// Pixels pasted from the clipboard.
    Pasted(Arc<RgbImage>),
}

/// Where a queued photo stands.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryStatus {
    /// Waiting for the worker.
    Pending,
    /// Its mask is known.
    Done,
    /// It failed; the reason, with the file named.
    Failed(String),
    /// Exported to this file.
    Exported(PathBuf),
}

/// One photo in the queue.
pub struct Entry {
    /// Its id.
    pub id: EntryId,
    /// File name (or "Pasted image N").
    pub name: String,
    /// Where it came from.
    pub source: Source,
    /// Where it stands.
    pub status: EntryStatus,
    /// Which photo this is, written into its exports so that an export never replaces another
    /// photo's cutout of the same name.
    pub origin: Origin,
    /// A small picture for the list.
    pub thumbnail: Option<egui::TextureHandle>,
    /// The touch-up strokes, kept with the photo (they outlive its turn on screen and re-runs
    /// of the network).
    pub edits: History,
}

/// The photo on screen.
pub struct Current {
    /// Its queue entry.
    pub entry: EntryId,
    /// The newest preview job for it.
    pub job: JobId,
    /// Whether that job is still running.
    pub busy: bool,
    /// The decoded photo in its own colours, once there: what exports start from.
    pub photo: Option<Arc<RgbImage>>,
    /// The same in sRGB (the same `Arc` when the photo is sRGB): what the screen, the clipboard
    /// and the network get.
    pub display: Option<Arc<RgbImage>>,
    /// The photo's colour profile and EXIF, carried into its exports.
    pub embedded: Embedded,
    /// The mask shown, once there.
    pub mask: Option<Arc<GrayImage>>,
    /// What produced [`Self::mask`].
    pub ran: Option<RunInfo>,
    /// The newest mask per precision, for the FP32/FP16 comparison.
    pub masks_by_precision: HashMap<Precision, Arc<GrayImage>>,
    /// How the FP32 and FP16 masks differ, once both exist.
    pub difference: Option<MaskDifference>,
    /// The photo's size on the GPU (smaller than the photo only beyond the texture limit).
    pub texture_size: Option<[u32; 2]>,
    /// Set by the paint callback when the composite with a mask was first drawn.
    pub shown: Arc<AtomicBool>,
    /// The mask on the GPU came from this run (skip re-uploading identical live masks).
    pub uploaded: Option<RunInfo>,
    /// The touch-up edits of the photo on screen.
    pub touchup: Touchup,
}

/// The photo on screen's edit layer (painted from the entry's strokes), the stroke being
/// painted, and the part of the layer the GPU texture does not have yet.
#[derive(Default)]
pub struct Touchup {
    /// The layer, at the photo's full resolution (made at the first stroke).
    pub layer: Option<EditLayer>,
    /// The stroke being painted.
    pub painter: Option<Painter>,
    /// What the edit texture is missing.
    pub upload: Option<PixelRect>,
}

impl Current {
    /// A photo about to be loaded by `job`.
    pub fn new(entry: EntryId, job: JobId) -> Self {
        Self {
            entry,
            job,
            busy: true,
            photo: None,
            display: None,
            embedded: Embedded::default(),
            mask: None,
            ran: None,
            masks_by_precision: HashMap::new(),
            difference: None,
            texture_size: None,
            shown: Arc::new(AtomicBool::new(false)),
            uploaded: None,
            touchup: Touchup::default(),
        }
    }
}

/// The session's status.
#[derive(Debug, Clone)]
pub enum EngineStatus {
    /// Loading a model or switching provider or precision.
    Configuring {
        /// What is loading.
        what: String,
        /// Since when.
        since: Instant,
        /// The model fetch in progress (first use), if any.
        fetch: Option<FetchStatus>,
    },
    /// Running.
    Ready {
        /// The model's name.
        model: String,
        /// What runs and why not something faster.
        report: ProviderReport,
        /// What starting cost.
        startup: StartupTimings,
        /// The network's input side.
        input_side_px: u32,
    },
    /// Could not start; the reason says what to do.
    Failed(String),
}

/// How far a model fetch has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStatus {
    /// Downloading or checking.
    pub stage: FetchStage,
    /// Bytes so far.
    pub done: u64,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}

impl FetchStatus {
    /// Done, from 0 to 1 (0 while the total is unknown).
    pub fn fraction(&self) -> f32 {
        #[allow(clippy::cast_precision_loss)]
        self.total.filter(|&t| t > 0).map_or(0.0, |t| {
            (self.done as f64 / t as f64).clamp(0.0, 1.0) as f32
        })
    }
}

/// Recent per-stage times for the overlay.
pub struct LatencyStats {
    /// Decoding (file jobs only).
    pub decode: Samples,
    /// Resize and normalise.
    pub preprocess: Samples,
    /// Host → device copy of the input.
    pub upload: Samples,
    /// The network.
    pub infer: Samples,
    /// Output copy, scaling, mask resize.
    pub postprocess: Samples,
    /// Photo and mask texture uploads on the UI thread.
    pub texture_upload: Samples,
    /// The composite draw on the GPU (timestamp queries), where the adapter can measure it.
    pub composite_gpu: Samples,
    /// The preview's edge passes (guided filter, foreground colours): on the GPU submission to
    /// completion, on the CPU path the run and the packing of its texture.
    pub edges: Samples,
    /// Whether the adapter can measure [`Self::composite_gpu`].
    pub composite_measurable: bool,
    /// UI frame time (egui pass and rendering, CPU side).
    pub ui_frame: Samples,
    /// Wall time between consecutive frames while a brush stroke is painted.
    pub paint_interval: Samples,
    /// egui's CPU time of the frames while a brush stroke is painted.
    pub paint_cpu: Samples,
    /// When the last frame's logic ran.
    pub last_frame: Option<Instant>,
    /// Inference per provider and precision, for the side-by-side comparison.
    pub infer_by_run: HashMap<(ProviderKind, Precision), Samples>,
    /// The newest per-stage times.
    pub last: Option<StageTimings>,
}

/// Samples kept per stage.
pub const STAGE_WINDOW: usize = 50;
/// Frames kept for the frame-time statistics.
pub const FRAME_WINDOW: usize = 1000;

impl Default for LatencyStats {
    fn default() -> Self {
        Self {
            decode: Samples::new(STAGE_WINDOW),
            preprocess: Samples::new(STAGE_WINDOW),
            upload: Samples::new(STAGE_WINDOW),
            infer: Samples::new(STAGE_WINDOW),
            postprocess: Samples::new(STAGE_WINDOW),
            texture_upload: Samples::new(STAGE_WINDOW),
            composite_gpu: Samples::new(STAGE_WINDOW),
            edges: Samples::new(STAGE_WINDOW),
            composite_measurable: false,
            ui_frame: Samples::new(FRAME_WINDOW),
            paint_interval: Samples::new(FRAME_WINDOW),
            paint_cpu: Samples::new(FRAME_WINDOW),
            last_frame: None,
            infer_by_run: HashMap::new(),
            last: None,
        }
    }
}

impl LatencyStats {
    /// Records one mask's stage times.
    pub fn record(&mut self, timings: &StageTimings, ran: RunInfo) {
        if timings.decode_ms > 0.0 {
            self.decode.push(timings.decode_ms);
        }
        self.preprocess.push(timings.preprocess_ms);
        self.upload.push(timings.upload_ms);
        self.infer.push(timings.infer_ms);
        self.postprocess.push(timings.postprocess_ms);
        self.infer_by_run
            .entry((ran.provider, ran.precision))
            .or_insert_with(|| Samples::new(STAGE_WINDOW))
            .push(timings.infer_ms);
        self.last = Some(*timings);
    }

    /// Forgets the per-stage samples (a new session: old numbers would mislead).
    pub fn reset_stages(&mut self) {
        for s in [
            &mut self.decode,
            &mut self.preprocess,
            &mut self.upload,
            &mut self.infer,
            &mut self.postprocess,
        ] {
            s.clear();
        }
        self.last = None;
    }
}

/// A line for the status bar.
#[derive(Debug, Clone)]
pub struct Message {
    /// The text, file paths last.
    pub text: String,
    /// An error (red) or information.
    pub is_error: bool,
    /// When it was posted.
    pub at: Instant,
    /// The photo it is about: shown only while that photo is on screen.
    pub entry: Option<EntryId>,
    /// What it is about beyond a photo, so that a newer state of the same thing (a model that
    /// loaded after all) takes it away.
    pub topic: Topic,
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Nothing in particular.
    General,
    /// Loading the model, fetching it, starting the session.
    Engine,
    /// Exports and copies.
    Export,
}

/// How long information stays in the status bar.
pub const INFO_SHOWN_FOR: std::time::Duration = std::time::Duration::from_secs(8);
/// How long an error stays in the status bar (the photo's own errors stay on its row).
pub const ERROR_SHOWN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Progress of "Export all".
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportProgress {
    /// Photos to export.
    pub total: usize,
    /// Written.
    pub done: usize,
    /// Failed.
    pub failed: usize,
}

/// Everything the UI shows that is not a setting.
pub struct AppState {
    /// The session.
    pub engine: EngineStatus,
    /// The queue, in the order photos were added.
    pub entries: Vec<Entry>,
    /// The photo on screen.
    pub current: Option<Current>,
    /// Re-run inference on the current photo continuously.
    pub live: bool,
    /// Latency statistics.
    pub stats: LatencyStats,
    /// Messages, oldest first.
    pub messages: Vec<Message>,
    /// Export-all progress, while one runs.
    pub export_progress: Option<ExportProgress>,
    /// The graphics adapter drawing the window.
    pub adapter: String,
    /// Whether a GPU compositor is available.
    pub gpu_ready: bool,
    /// Where the preview's edge passes run, and why.
    pub edges: crate::finish::EdgePath,
    /// The bands of the last CPU edge run.
    pub edge_bands: Option<crate::image_ops::edges::BandSizes>,
    /// The models of the manifest, for the picker.
    pub models: Vec<ModelEntry>,
    /// The touch-up brush in hand (`None`: the pointer pans).
    pub tool: Option<BrushMode>,
    /// Where exports go while no folder is chosen and no dialog can ask for one, and why there
    /// is no dialog (shown in the Export panel; the folder is not remembered as a choice).
    pub export_fallback: Option<(PathBuf, String)>,
    /// Whether the About window is open.
    pub show_about: bool,
}

/// A model the app offers.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// What the manifest says about it.
    pub spec: ModelSpec,
    /// Whether its file is in a models folder (checked by name; its checksum is checked when it
    /// is loaded).
    pub fetched: bool,
}

impl ModelEntry {
    /// Every model of the built-in manifest, and whether each is on this machine.
    pub fn all(dirs: &AppDirs) -> Vec<Self> {
        let search = models::search_dirs(dirs);
        Manifest::builtin()
            .map(|m| m.models)
            .unwrap_or_default()
            .into_iter()
            .map(|spec| Self {
                fetched: search.iter().any(|(d, _)| d.join(&spec.file).is_file()),
                spec,
            })
            .collect()
    }
}

impl AppState {
    /// The state at start-up: the engine starting, no photos, the window drawn by `adapter`.
    pub(super) fn starting(
        adapter: String,
        gpu_ready: bool,
        edges: crate::finish::EdgePath,
        dirs: &crate::paths::AppDirs,
    ) -> Self {
        Self {
            engine: EngineStatus::Configuring {
                what: "starting".to_owned(),
                since: Instant::now(),
                fetch: None,
            },
            entries: Vec::new(),
            current: None,
            live: false,
            stats: LatencyStats::default(),
            messages: Vec::new(),
            export_progress: None,
            adapter,
            gpu_ready,
            edges,
            edge_bands: None,
            models: ModelEntry::all(dirs),
            tool: None,
            export_fallback: super::tasks::file_dialog_missing()
                .map(|why| (dirs.default_export_dir.clone(), why)),
            show_about: false,
        }
    }

    /// The entry with this id.
    pub fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The entry with this id, mutable.
    pub fn entry_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    /// The entry on screen.
    pub fn current_entry(&self) -> Option<&Entry> {
        self.current.as_ref().and_then(|c| self.entry(c.entry))
    }

    /// Whether the photo on screen can be touched up: shown at full resolution (not shrunk to
    /// the GPU's texture limit) with its mask.
    pub fn can_touch_up(&self) -> bool {
        self.current.as_ref().is_some_and(|c| {
            c.mask.is_some()
                && c.photo
                    .as_ref()
                    .is_some_and(|p| c.texture_size == Some([p.width(), p.height()]))
        })
    }

    /// The edit history of the photo on screen.
    pub fn current_edits(&self) -> Option<&History> {
        self.current_entry().map(|e| &e.edits)
    }

    /// Whether the current photo shows a mask.
    pub fn has_cutout(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.photo.is_some() && c.mask.is_some())
    }

    /// Adds a message about nothing in particular (errors are also logged).
    pub fn post(&mut self, text: impl Into<String>, is_error: bool) {
        self.post_about(None, Topic::General, text, is_error);
    }

    /// Adds a message about one photo, or one topic (errors are also logged). A newer message
    /// on the same engine topic replaces the older ones.
    pub fn post_about(
        &mut self,
        entry: Option<EntryId>,
        topic: Topic,
        text: impl Into<String>,
        is_error: bool,
    ) {
        let text = text.into();
        if is_error {
            tracing::warn!("{text}");
        } else {
            tracing::info!("{text}");
        }
        if topic == Topic::Engine {
            self.forget(Topic::Engine);
        }
        // Only the recent past matters to the status bar.
        if self.messages.len() >= 200 {
            self.messages.drain(..100);
        }
        self.messages.push(Message {
            text,
            is_error,
            at: Instant::now(),
            entry,
            topic,
        });
    }

    /// Takes away the messages on `topic` (the thing they were about is settled).
    pub fn forget(&mut self, topic: Topic) {
        self.messages.retain(|m| m.topic != topic);
    }

    /// The message for the status bar now: the newest that is about the photo on screen or no
    /// photo, and not yet faded (information after [`INFO_SHOWN_FOR`], errors after
    /// [`ERROR_SHOWN_FOR`]); with how long until it fades.
    pub fn status_message(&self, now: Instant) -> Option<(&Message, std::time::Duration)> {
        let on_screen = self.current.as_ref().map(|c| c.entry);
        self.messages.iter().rev().find_map(|m| {
            if m.entry.is_some() && m.entry != on_screen {
                return None;
            }
            let shown_for = if m.is_error {
                ERROR_SHOWN_FOR
            } else {
                INFO_SHOWN_FOR
            };
            shown_for
                .checked_sub(now.saturating_duration_since(m.at))
                .filter(|left| !left.is_zero())
                .map(|left| (m, left))
        })
    }

    /// Counts of entries done and failed.
    pub fn counts(&self) -> (usize, usize) {
        let done = self
            .entries
            .iter()
            .filter(|e| matches!(e.status, EntryStatus::Done | EntryStatus::Exported(_)))
            .count();
        let failed = self
            .entries
            .iter()
            .filter(|e| matches!(e.status, EntryStatus::Failed(_)))
            .count();
        (done, failed)
    }
}

#[cfg(test)]
mod tests;
