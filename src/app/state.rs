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
        MaskDifference,
        edits::{BrushMode, EditLayer, History, Painter, PixelRect},
    },
    paths::AppDirs,
    worker::{JobId, MaskTimings, RunInfo},
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
    /// The decoded photo, once there.
    pub photo: Option<Arc<RgbImage>>,
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
    pub last: Option<MaskTimings>,
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
    pub fn record(&mut self, timings: &MaskTimings, ran: RunInfo) {
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

/// A line for the status bar and the message log.
#[derive(Debug, Clone)]
pub struct Message {
    /// The text, file paths last.
    pub text: String,
    /// An error (red) or information.
    pub is_error: bool,
    /// When it was posted.
    pub at: Instant,
}

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

    /// Adds a message (errors are also logged).
    pub fn post(&mut self, text: impl Into<String>, is_error: bool) {
        let text = text.into();
        if is_error {
            tracing::warn!("{text}");
        } else {
            tracing::info!("{text}");
        }
        self.messages.push(Message {
            text,
            is_error,
            at: Instant::now(),
        });
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
