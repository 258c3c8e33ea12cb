//! The desktop app: an eframe [`App`](eframe::App) that turns input into commands, sends work to
//! the [`Worker`], drains its responses each frame without waiting, and keeps the GPU compositor's
//! textures in step with the photo on screen.
//!
//! Flow: input and `ui/` widgets → [`Command`] → [`Request`] (via a small outbox, because the
//! worker's queue is bounded) → worker → [`Response`] → [`AppState`] → `ui/` and `render/`.

mod compositor;
mod edges;
pub mod icon;
pub mod settings;
pub mod state;
pub mod stats;
pub mod tasks;
pub mod ui;
pub mod view;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use eframe::egui_wgpu;
use image::{GrayImage, RgbImage};

use compositor::Compositor;
pub use settings::Settings;
pub use state::{AppState, Current, EngineStatus, Entry, EntryId, EntryStatus, Source};
pub use tasks::file_dialog_missing;
use tasks::{AfterFolder, TaskResult, Tasks};
pub use view::ViewState;

use crate::{
    engine::Precision,
    image_ops::{self, DecodeLimits, composite},
    paths::AppDirs,
    worker::{ExportSource, JobId, JobKind, Request, Response, RunInfo, SendError, Worker},
};

/// What the UI asks for (anything that is more than a redraw).
#[derive(Debug, Clone)]
pub enum Command {
    /// Show the open dialog.
    OpenDialog,
    /// Add files and folders to the queue.
    Add(Vec<PathBuf>),
    /// Put a photo on screen.
    Select(EntryId),
    /// Remove a photo from the queue.
    Remove(EntryId),
    /// Export the photo on screen into the export folder.
    Export,
    /// Export the photo on screen under a name chosen in a dialog.
    ExportAs,
    /// Export every photo of the queue into the export folder.
    ExportAll,
    /// Choose the export folder.
    ChooseExportFolder,
    /// Use this export folder (typed in the Export panel); made when missing.
    SetExportFolder(PathBuf),
    /// Copy the cutout to the clipboard.
    Copy,
    /// Paste an image (or file paths) from the clipboard.
    Paste,
    /// Switch precision (reloads the session on the worker).
    SetPrecision(Precision),
    /// Switch provider (`auto`, `tensorrt`, `cuda`, `cpu`).
    SetProvider(String),
    /// Switch model (a manifest name; fetched on first use, with progress).
    SetModel(String),
    /// Stop the model fetch in progress and go back to the model before it.
    CancelFetch,
    /// Turn continuous re-inference on or off.
    SetLive(bool),
    /// Zoom in around the canvas centre.
    ZoomIn,
    /// Zoom out around the canvas centre.
    ZoomOut,
    /// Fit the photo in the canvas.
    ZoomFit,
    /// One photo pixel per screen pixel.
    ZoomActual,
    /// Close the window.
    Quit,
}

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Data, cache and config folders.
    pub dirs: AppDirs,
    /// Photos (or folders) to open at once.
    pub paths: Vec<PathBuf>,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Settings to start with instead of the saved ones (tests).
    pub settings: Option<Settings>,
    /// Whether to write settings back to the config folder.
    pub persist: bool,
}

impl AppOptions {
    /// Options for a normal start on `paths`.
    pub fn new(dirs: AppDirs, paths: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            paths,
            limits: DecodeLimits::default(),
            settings: None,
            persist: true,
        }
    }
}

/// What a job sent to the worker was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The photo on screen.
    Preview,
    /// A queued photo: thumbnail and status.
    Scan,
    /// A PNG export.
    Export,
}

/// The app.
pub struct CutoutApp {
    /// Persisted settings (the UI edits them directly for things that only cost a redraw).
    pub settings: Settings,
    /// Runtime state, read by the UI.
    pub state: AppState,
    /// Zoom and pan.
    pub view: ViewState,
    saved: Settings,
    persist: bool,
    last_save: Instant,
    dirs: AppDirs,
    worker: Worker,
    outbox: VecDeque<Request>,
    jobs: HashMap<JobId, (EntryId, Purpose)>,
    next_entry: EntryId,
    pasted: usize,
    tasks: Tasks,
    render_state: Option<egui_wgpu::RenderState>,
    /// `CUTOUT_STATS_LOG`: a line of memory, frame and GPU figures every few seconds.
    stats_log: Option<stats::StatsLog>,
    commands: Vec<Command>,
    canvas_rect: egui::Rect,
    ctx: egui::Context,
    started: Instant,
    /// The window title last set (sent again only when it changes).
    title: String,
    /// The model of the running session (where a cancelled fetch goes back to).
    loaded_model: Option<String>,
    /// Where the preview's edge passes run; on the CPU path, its thread.
    edges: edges::EdgePreview,
}

/// How often changed settings are written at most.
const SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// Refinement runs that took longer than this (a CPU adapter on a large photo, say) would stall
/// every frame queued behind them, so on such an adapter a new run waits while the pointer is
/// held down (a slider being dragged) and starts when it is released, and goes one dispatch per
/// frame; faster runs follow the slider live, in one submission.
const SLOW_REFINE_MS: f64 = 50.0;

/// How the preview's refinement goes this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefinePace {
    /// Fast adapter (or no run yet to go by): the whole run in one submission.
    Whole,
    /// Slow adapter: one dispatch per frame.
    InParts,
    /// Slow adapter and the pointer is down: nothing new until it is released (the release is
    /// an input event, so it brings the next frame).
    Hold,
}

/// The pace for the last run's time and the pointer.
fn refine_pace(last_refine_ms: Option<f64>, pointer_down: bool) -> RefinePace {
    let slow = last_refine_ms.is_some_and(|ms| ms > SLOW_REFINE_MS);
    match (slow, pointer_down) {
        (false, _) => RefinePace::Whole,
        (true, false) => RefinePace::InParts,
        (true, true) => RefinePace::Hold,
    }
}

impl CutoutApp {
    /// Creates the app: starts the worker, loads the model, installs the GPU compositor, and
    /// queues the photos given on the command line.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> anyhow::Result<Self> {
        let ctx = cc.egui_ctx.clone();
        let (settings, settings_warning) = match options.settings {
            Some(s) => (s, None),
            None => Settings::load(&options.dirs.config_dir),
        };
        let wake = ctx.clone();
        let worker = Worker::spawn(options.dirs.clone(), options.limits, move || {
            wake.request_repaint();
        })?;
        let render_state = cc.wgpu_render_state.clone();
        let wake = ctx.clone();
        let edges = edges::EdgePreview::new(
            render_state
                .as_ref()
                .map(|rs| rs.adapter.get_info())
                .as_ref(),
            move || wake.request_repaint(),
        )
        .map_err(anyhow::Error::msg)?;
        let (adapter, gpu_ready) = match &render_state {
            Some(rs) => {
                Compositor::install(rs);
                let info = rs.adapter.get_info();
                (
                    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
                    true,
                )
            }
            None => ("no wgpu renderer".to_owned(), false),
        };
        let mut app = Self {
            saved: settings.clone(),
            settings,
            state: AppState {
                engine: EngineStatus::Configuring {
                    what: "starting".to_owned(),
                    since: Instant::now(),
                    fetch: None,
                },
                entries: Vec::new(),
                current: None,
                live: false,
                stats: state::LatencyStats::default(),
                messages: Vec::new(),
                export_progress: None,
                adapter,
                gpu_ready,
                edges: edges.path().clone(),
                edge_bands: None,
                models: state::ModelEntry::all(&options.dirs),
            },
            view: ViewState::default(),
            persist: options.persist,
            last_save: Instant::now(),
            dirs: options.dirs,
            worker,
            stats_log: stats::StatsLog::from_env(),
            outbox: VecDeque::new(),
            jobs: HashMap::new(),
            next_entry: 0,
            pasted: 0,
            tasks: Tasks::default(),
            render_state,
            commands: Vec::new(),
            canvas_rect: egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(800.0, 600.0)),
            ctx,
            started: Instant::now(),
            title: "cutout".to_owned(),
            loaded_model: None,
            edges,
        };
        if let Some(rs) = &app.render_state {
            app.state.stats.composite_measurable =
                Compositor::with(rs, |c, _, _| c.measures_gpu_time()).unwrap_or(false);
        }
        if let Some(warning) = settings_warning {
            app.state.post(warning, true);
        }
        if !app.state.gpu_ready {
            app.state.post(
                "the window has no wgpu renderer, so photos cannot be composited on the GPU",
                true,
            );
        }
        app.configure();
        app.add_paths(&options.paths);
        Ok(app)
    }

    /// Queues a command (the UI calls this; tests may too).
    pub fn command(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Entries that finished (done or exported) and failed.
    pub fn counts(&self) -> (usize, usize) {
        self.state.counts()
    }

    fn send(&mut self, request: Request) {
        self.outbox.push_back(request);
        self.flush_outbox();
    }

    /// Hands queued requests to the worker, in order within each lane; a full lane does not hold
    /// up the other (a click on a photo during "Export all" goes ahead of the exports).
    fn flush_outbox(&mut self) {
        let mut kept = std::collections::VecDeque::new();
        let mut full = [false; 2];
        while let Some(request) = self.outbox.pop_front() {
            let lane = request.lane() as usize;
            if full[lane] {
                kept.push_back(request);
                continue;
            }
            match self.worker.send(request) {
                Ok(()) => {}
                Err(SendError::Busy(request)) => {
                    full[lane] = true;
                    kept.push_back(request);
                }
                Err(SendError::Stopped) => {
                    self.state
                        .post("the worker thread has stopped; restart cutout", true);
                    return;
                }
            }
        }
        self.outbox = kept;
    }

    fn configure(&mut self) {
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

    // ---- queue ------------------------------------------------------------------------------

    fn add_paths(&mut self, paths: &[PathBuf]) {
        let mut added = Vec::new();
        for path in paths {
            match crate::batch::expand_inputs(std::slice::from_ref(path), false, None) {
                Ok(files) if files.is_empty() && path.is_dir() => self.state.post(
                    format!("no photos in that folder: {}", path.display()),
                    true,
                ),
                Ok(files) => {
                    for crate::batch::Found { path: file, .. } in files {
                        let name = file.file_name().map_or_else(
                            || file.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        added.push(self.push_entry(name, Source::File(file)));
                    }
                }
                Err(e) => self.state.post(e.to_string(), true),
            }
        }
        if let Some(dir) = paths.first().and_then(|p| {
            if p.is_dir() {
                Some(p.clone())
            } else {
                p.parent().map(Path::to_path_buf)
            }
        }) {
            self.settings.open_dir = Some(dir);
        }
        self.after_adding(&added);
    }

    fn push_entry(&mut self, name: String, source: Source) -> EntryId {
        self.next_entry += 1;
        let id = self.next_entry;
        self.state.entries.push(Entry {
            id,
            name,
            source,
            status: EntryStatus::Pending,
            thumbnail: None,
        });
        id
    }

    /// The first new photo goes on screen (when nothing is); the others are scanned.
    fn after_adding(&mut self, added: &[EntryId]) {
        let Some(&first) = added.first() else {
            return;
        };
        let show = if self.state.current.is_none() {
            Some(first)
        } else {
            None
        };
        for &id in added {
            if Some(id) == show {
                self.select(id);
            } else {
                self.scan(id);
            }
        }
    }

    fn scan(&mut self, entry: EntryId) {
        let Some(e) = self.state.entry(entry) else {
            return;
        };
        let source = e.source.clone();
        let name = e.name.clone();
        let id = self.worker.next_id(JobKind::Queue);
        self.jobs.insert(id, (entry, Purpose::Scan));
        self.send(match source {
            Source::File(path) => Request::SegmentFile {
                id,
                kind: JobKind::Queue,
                path,
            },
            Source::Pasted(rgb) => Request::SegmentImage {
                id,
                kind: JobKind::Queue,
                name,
                rgb,
            },
        });
    }

    fn select(&mut self, entry: EntryId) {
        let Some(e) = self.state.entry(entry) else {
            return;
        };
        let source = e.source.clone();
        let name = e.name.clone();
        // Older preview jobs are superseded: forget them.
        self.jobs.retain(|_, (_, p)| *p != Purpose::Preview);
        let id = self.worker.next_id(JobKind::Preview);
        self.jobs.insert(id, (entry, Purpose::Preview));
        self.state.current = Some(Current::new(entry, id));
        self.view = ViewState::default();
        if let Some(rs) = &self.render_state {
            Compositor::with(rs, |c, _, _| c.clear());
        }
        self.edges.clear();
        let request = match source {
            Source::File(path) => Request::SegmentFile {
                id,
                kind: JobKind::Preview,
                path,
            },
            Source::Pasted(rgb) => {
                self.install_photo(&rgb);
                if let Some(current) = &mut self.state.current {
                    current.photo = Some(Arc::clone(&rgb));
                }
                Request::SegmentImage {
                    id,
                    kind: JobKind::Preview,
                    name,
                    rgb,
                }
            }
        };
        self.send(request);
    }

    /// Runs the network again on the photo on screen (Live mode, or after a precision switch).
    fn rerun_current(&mut self) {
        let Some(current) = &self.state.current else {
            return;
        };
        let entry = current.entry;
        let Some(photo) = current.photo.clone() else {
            // Not decoded yet (or it failed): start over from the source.
            self.select(entry);
            return;
        };
        let name = self
            .state
            .entry(entry)
            .map(|e| e.name.clone())
            .unwrap_or_default();
        self.jobs.retain(|_, (_, p)| *p != Purpose::Preview);
        let id = self.worker.next_id(JobKind::Preview);
        self.jobs.insert(id, (entry, Purpose::Preview));
        if let Some(current) = &mut self.state.current {
            current.job = id;
            current.busy = true;
        }
        self.send(Request::SegmentImage {
            id,
            kind: JobKind::Preview,
            name,
            rgb: photo,
        });
    }

    fn remove(&mut self, entry: EntryId) {
        self.state.entries.retain(|e| e.id != entry);
        self.jobs
            .retain(|_, (e, p)| *e != entry || *p == Purpose::Export);
        if self
            .state
            .current
            .as_ref()
            .is_some_and(|c| c.entry == entry)
        {
            self.state.current = None;
            if let Some(rs) = &self.render_state {
                Compositor::with(rs, |c, _, _| c.clear());
            }
            self.edges.clear();
            if let Some(next) = self.state.entries.first().map(|e| e.id) {
                self.select(next);
            }
        }
    }

    fn paste_image(&mut self, image: &egui::ColorImage) {
        let [w, h] = image.size;
        #[allow(clippy::cast_possible_truncation)]
        let rgb: Vec<u8> = image
            .pixels
            .iter()
            .flat_map(|c| {
                // Transparent clipboard pixels are shown over white.
                let [r, g, b, a] = c.to_srgba_unmultiplied();
                let over = |v: u8| {
                    ((u32::from(v) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8
                };
                [over(r), over(g), over(b)]
            })
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        let Some(rgb) = RgbImage::from_raw(w as u32, h as u32, rgb) else {
            self.state
                .post("the clipboard image has an impossible size", true);
            return;
        };
        self.pasted += 1;
        let id = self.push_entry(
            format!("Pasted image {}", self.pasted),
            Source::Pasted(Arc::new(rgb)),
        );
        self.select(id);
    }

    fn paste_text(&mut self, text: &str) {
        let paths: Vec<PathBuf> = text
            .lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(|l| PathBuf::from(l.strip_prefix("file://").unwrap_or(l)))
            .filter(|p| p.exists())
            .collect();
        if paths.is_empty() {
            self.state.post(
                "the clipboard holds text, not an image or photo files; copy an image and paste again",
                true,
            );
        } else {
            self.add_paths(&paths);
        }
    }

    // ---- GPU textures -----------------------------------------------------------------------

    /// Uploads a photo (downscaled only beyond the GPU's texture limit) and its backdrop.
    fn install_photo(&mut self, photo: &Arc<RgbImage>) {
        let Some(rs) = self.render_state.clone() else {
            return;
        };
        let started = Instant::now();
        let limit = Compositor::max_texture_side_px(&rs.device);
        let shown = if photo.width() > limit || photo.height() > limit {
            match image_ops::resize::shrink_to_fit(photo, limit) {
                Ok(small) => Arc::new(small),
                Err(e) => return self.state.post(e.to_string(), true),
            }
        } else {
            Arc::clone(photo)
        };
        let result = composite::backdrop(&shown)
            .map_err(|e| e.to_string())
            .and_then(|backdrop| {
                Compositor::with(&rs, |c, device, queue| {
                    c.set_photo(device, queue, &shown, &backdrop)
                })
                .unwrap_or(Ok(()))
                .map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => {
                if let Some(current) = &mut self.state.current {
                    current.texture_size = Some([shown.width(), shown.height()]);
                    current.uploaded = None;
                }
                self.edges.set_photo(shown);
                self.state
                    .stats
                    .texture_upload
                    .push(started.elapsed().as_secs_f64() * 1e3);
            }
            Err(e) => self.state.post(e, true),
        }
    }

    fn install_mask(&mut self, mask: &Arc<GrayImage>, ran: RunInfo) {
        let Some(rs) = self.render_state.clone() else {
            return;
        };
        let Some(current) = &self.state.current else {
            return;
        };
        if current.uploaded == Some(ran) {
            // Live mode re-runs the same network on the same photo: the mask is the same.
            return;
        }
        let Some([tw, th]) = current.texture_size else {
            return;
        };
        let started = Instant::now();
        let fitted = if mask.dimensions() == (tw, th) {
            Arc::clone(mask)
        } else {
            match image_ops::resize::box_average(
                mask.as_raw(),
                mask.width(),
                mask.height(),
                1,
                tw,
                th,
            )
            .ok()
            .and_then(|v| GrayImage::from_raw(tw, th, v))
            {
                Some(m) => Arc::new(m),
                None => return,
            }
        };
        let result = Compositor::with(&rs, |c, _, queue| c.set_mask(queue, &fitted));
        if let Some(Err(e)) = result {
            return self.state.post(e.to_string(), true);
        }
        // On the CPU edge path: the unrefined cutout at once, the refined one when it is ready.
        if let Some(rgba) = self.edges.set_mask(fitted)
            && let Some(Err(e)) = Compositor::with(&rs, |c, _, queue| c.write_cutout(queue, &rgba))
        {
            return self.state.post(e.to_string(), true);
        }
        if let Some(current) = &mut self.state.current {
            current.uploaded = Some(ran);
        }
        self.state
            .stats
            .texture_upload
            .push(started.elapsed().as_secs_f64() * 1e3);
    }

    // ---- worker responses -------------------------------------------------------------------

    fn handle_response(&mut self, response: Response) {
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
            } => {
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
                    .filter(|id| !self.jobs.values().any(|(e, _)| e == id))
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
            Response::ConfigureFailed { error, cancelled } => {
                if cancelled
                    && let Some(previous) = self.loaded_model.clone()
                    && previous != self.settings.model_name()
                {
                    self.state
                        .post(format!("{error}; back to {previous}"), false);
                    self.settings.model = previous;
                    self.configure();
                    return;
                }
                self.state
                    .post(format!("the model could not be loaded: {error}"), true);
                self.state.engine = EngineStatus::Failed(error);
                if let Some(current) = &mut self.state.current {
                    current.busy = false;
                }
            }
            Response::Decoded { id, rgb, thumbnail } => self.on_decoded(id, &rgb, &thumbnail),
            Response::Mask {
                id,
                mask,
                timings,
                ran,
            } => self.on_mask(id, mask, &timings, ran),
            Response::Exported { id, path, write_ms } => {
                let Some((entry, _)) = self.jobs.remove(&id) else {
                    return;
                };
                if let Some(e) = self.state.entry_mut(entry) {
                    e.status = EntryStatus::Exported(path.clone());
                }
                self.bump_export(true);
                self.state.post(
                    format!("exported in {write_ms:.0} ms: {}", path.display()),
                    false,
                );
            }
            Response::Failed { id, error } => {
                let Some((entry, purpose)) = self.jobs.remove(&id) else {
                    return;
                };
                let engine_ready = matches!(self.state.engine, EngineStatus::Ready { .. });
                if let Some(e) = self.state.entry_mut(entry) {
                    // Without a model every job fails; that is not the photo's fault. Nor is a
                    // failed write (a full disk, a read-only folder): the photo stays ready to
                    // export again elsewhere.
                    e.status = if !engine_ready {
                        EntryStatus::Pending
                    } else if purpose == Purpose::Export && e.status != EntryStatus::Pending {
                        e.status.clone()
                    } else {
                        EntryStatus::Failed(error.clone())
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
                if engine_ready {
                    self.state.post(error, true);
                }
            }
            Response::Panicked { message } => {
                self.state.post(
                    format!("the worker hit an internal error ({message}); reloading the model"),
                    true,
                );
                self.state.live = false;
                self.jobs.clear();
                if let Some(current) = &mut self.state.current {
                    current.busy = false;
                }
                self.configure();
            }
        }
    }

    fn on_decoded(&mut self, id: JobId, rgb: &Arc<RgbImage>, thumbnail: &RgbImage) {
        let Some(&(entry, purpose)) = self.jobs.get(&id) else {
            return;
        };
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
        let is_current = self.state.current.as_ref().is_some_and(|c| c.job == id);
        if purpose == Purpose::Preview && is_current {
            self.install_photo(rgb);
            if let Some(current) = &mut self.state.current {
                current.photo = Some(Arc::clone(rgb));
            }
        }
    }

    fn on_mask(
        &mut self,
        id: JobId,
        mask: Arc<GrayImage>,
        timings: &crate::worker::MaskTimings,
        ran: RunInfo,
    ) {
        let Some((entry, purpose)) = self.jobs.remove(&id) else {
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

    fn bump_export(&mut self, ok: bool) {
        if let Some(p) = &mut self.state.export_progress {
            if ok {
                p.done += 1;
            } else {
                p.failed += 1;
            }
            if p.done + p.failed >= p.total {
                let (done, failed) = (p.done, p.failed);
                self.state.export_progress = None;
                self.state.post(
                    format!("export all finished: {done} written, {failed} failed"),
                    failed > 0,
                );
            }
        }
    }

    // ---- export -----------------------------------------------------------------------------

    /// The PNG name for an entry in `dir`, never the photo itself and not one in `taken`.
    fn export_path(dir: &Path, entry: &Entry, taken: &HashSet<PathBuf>) -> PathBuf {
        let stem = match &entry.source {
            Source::File(path) => path
                .file_stem()
                .map_or_else(|| "photo".to_owned(), |s| s.to_string_lossy().into_owned()),
            Source::Pasted(_) => entry.name.to_lowercase().replace(' ', "-"),
        };
        let input = match &entry.source {
            Source::File(path) => Some(path.as_path()),
            Source::Pasted(_) => None,
        };
        let mut candidate = dir.join(format!("{stem}.png"));
        let mut n = 1;
        while Some(candidate.as_path()) == input || taken.contains(&candidate) {
            candidate = dir.join(if n == 1 {
                format!("{stem}.cutout.png")
            } else {
                format!("{stem}.cutout-{n}.png")
            });
            n += 1;
        }
        candidate
    }

    fn export_current_to(&mut self, output: PathBuf) {
        let Some(current) = &self.state.current else {
            return self.state.post("open a photo first, then export it", true);
        };
        let (Some(rgb), Some(mask)) = (current.photo.clone(), current.mask.clone()) else {
            return self.state.post(
                "the cutout is not ready yet; export again in a moment",
                true,
            );
        };
        let entry = current.entry;
        let id = self.worker.next_id(JobKind::Queue);
        self.jobs.insert(id, (entry, Purpose::Export));
        self.send(Request::Export {
            id,
            source: ExportSource::Segmented { rgb, mask },
            settings: self.settings.composite,
            output,
        });
    }

    /// The export folder, made again when it was deleted since it was chosen; `None` (with a
    /// message) when it cannot be made.
    fn export_dir_ready(&mut self) -> Option<PathBuf> {
        let dir = self.settings.export_dir.clone()?;
        if dir.is_dir() {
            return Some(dir);
        }
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                self.state.post(
                    format!(
                        "the export folder was missing and was made again: {}",
                        dir.display()
                    ),
                    false,
                );
                Some(dir)
            }
            Err(e) => {
                self.state.post(
                    format!(
                        "cannot make the export folder ({e}): {}; choose another with Folder… or type one",
                        dir.display()
                    ),
                    true,
                );
                None
            }
        }
    }

    fn export_current(&mut self) {
        if self.settings.export_dir.is_none() {
            return self.ask_export_folder(AfterFolder::ExportCurrent);
        }
        let Some(dir) = self.export_dir_ready() else {
            return;
        };
        let Some(entry) = self.state.current_entry() else {
            return self.state.post("open a photo first, then export it", true);
        };
        let output = Self::export_path(&dir, entry, &HashSet::new());
        self.export_current_to(output);
    }

    fn export_all(&mut self) {
        if self.settings.export_dir.is_none() {
            return self.ask_export_folder(AfterFolder::ExportAll);
        }
        let Some(dir) = self.export_dir_ready() else {
            return;
        };
        let mut taken = HashSet::new();
        let mut requests = Vec::new();
        for entry in &self.state.entries {
            if matches!(entry.status, EntryStatus::Failed(_)) {
                continue;
            }
            let output = Self::export_path(&dir, entry, &taken);
            taken.insert(output.clone());
            let current = self.state.current.as_ref().filter(|c| c.entry == entry.id);
            let source = match (
                current.and_then(|c| c.photo.clone()),
                current.and_then(|c| c.mask.clone()),
            ) {
                (Some(rgb), Some(mask)) => ExportSource::Segmented { rgb, mask },
                _ => match &entry.source {
                    Source::File(path) => ExportSource::File(path.clone()),
                    Source::Pasted(rgb) => ExportSource::Pixels {
                        name: entry.name.clone(),
                        rgb: Arc::clone(rgb),
                    },
                },
            };
            requests.push((entry.id, source, output));
        }
        if requests.is_empty() {
            return self.state.post("there is nothing to export yet", true);
        }
        self.state.export_progress = Some(state::ExportProgress {
            total: requests.len(),
            ..state::ExportProgress::default()
        });
        for (entry, source, output) in requests {
            let id = self.worker.next_id(JobKind::Queue);
            self.jobs.insert(id, (entry, Purpose::Export));
            self.send(Request::Export {
                id,
                source,
                settings: self.settings.composite,
                output,
            });
        }
    }

    fn ask_export_folder(&mut self, then: AfterFolder) {
        if let Some(why) = tasks::file_dialog_missing() {
            return self.export_without_dialog(&why, then);
        }
        let start = self
            .settings
            .export_dir
            .clone()
            .or_else(|| self.settings.open_dir.clone());
        if let Err(e) = self.tasks.pick_export_folder(&self.ctx, start, then) {
            self.state.post(e, true);
        }
    }

    /// No dialog can ask for a folder: keep the one there is, or use the default one, and say
    /// where the files go and how to choose another.
    fn export_without_dialog(&mut self, why: &str, then: AfterFolder) {
        let dir = self
            .settings
            .export_dir
            .clone()
            .unwrap_or_else(|| self.dirs.default_export_dir.clone());
        self.settings.export_dir = Some(dir.clone());
        self.state.post(
            format!(
                "{why}; exports go to {}. To use another folder, type it under Export → Folder",
                dir.display()
            ),
            then == AfterFolder::Remember,
        );
        match then {
            AfterFolder::ExportCurrent => self.export_current(),
            AfterFolder::ExportAll => self.export_all(),
            AfterFolder::Remember => {}
        }
    }

    fn handle_task(&mut self, result: TaskResult) {
        match result {
            TaskResult::Opened(files) => self.add_paths(&files),
            TaskResult::ExportFolder(Some(folder), then) => {
                self.settings.export_dir = Some(folder);
                match then {
                    AfterFolder::ExportCurrent => self.export_current(),
                    AfterFolder::ExportAll => self.export_all(),
                    AfterFolder::Remember => {}
                }
            }
            TaskResult::ExportFolder(None, _) | TaskResult::ExportFile(None) => {}
            TaskResult::ExportFile(Some(path)) => {
                if let Some(dir) = path.parent() {
                    self.settings.export_dir = Some(dir.to_owned());
                }
                self.export_current_to(path);
            }
            TaskResult::Clipboard(Ok(image)) => {
                self.ctx.copy_image(image);
                self.state.post("cutout copied to the clipboard", false);
            }
            TaskResult::Clipboard(Err(e)) => {
                self.state
                    .post(format!("could not copy the cutout: {e}"), true);
            }
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    fn apply(&mut self, command: Command) {
        match command {
            Command::OpenDialog => {
                if let Some(why) = tasks::file_dialog_missing() {
                    return self.state.post(
                        format!("{why}; drop photos onto the window, paste one (Ctrl+V) or name them on the command line"),
                        true,
                    );
                }
                if let Err(e) = self
                    .tasks
                    .open_files(&self.ctx, self.settings.open_dir.clone())
                {
                    self.state.post(e, true);
                }
            }
            Command::Add(paths) => self.add_paths(&paths),
            Command::Select(entry) => {
                if self.state.current.as_ref().map(|c| c.entry) != Some(entry) {
                    self.select(entry);
                }
            }
            Command::Remove(entry) => self.remove(entry),
            Command::Export => self.export_current(),
            Command::ExportAs => {
                let Some(entry) = self.state.current_entry() else {
                    return self.state.post("open a photo first, then export it", true);
                };
                if let Some(why) = tasks::file_dialog_missing() {
                    return self.export_without_dialog(&why, AfterFolder::ExportCurrent);
                }
                let name = Self::export_path(Path::new(""), entry, &HashSet::new());
                let start = self.settings.export_dir.clone();
                if let Err(e) =
                    self.tasks
                        .save_file(&self.ctx, start, name.to_string_lossy().into_owned())
                {
                    self.state.post(e, true);
                }
            }
            Command::ExportAll => self.export_all(),
            Command::ChooseExportFolder => self.ask_export_folder(AfterFolder::Remember),
            Command::SetExportFolder(dir) => match std::fs::create_dir_all(&dir) {
                Ok(()) => {
                    self.state
                        .post(format!("exports go to {}", dir.display()), false);
                    self.settings.export_dir = Some(dir);
                }
                Err(e) => self.state.post(
                    format!("cannot use that folder ({e}): {}", dir.display()),
                    true,
                ),
            },
            Command::Copy => {
                let ready = self
                    .state
                    .current
                    .as_ref()
                    .and_then(|c| Some((c.photo.clone()?, c.mask.clone()?)));
                match ready {
                    Some((photo, mask)) => {
                        if let Err(e) = self.tasks.prepare_clipboard(
                            &self.ctx,
                            photo,
                            mask,
                            self.settings.composite,
                        ) {
                            self.state.post(e, true);
                        }
                    }
                    None => self.state.post("there is no cutout to copy yet", true),
                }
            }
            Command::Paste => {
                self.ctx
                    .send_viewport_cmd(egui::ViewportCommand::RequestPaste);
            }
            Command::SetPrecision(precision) => {
                if self.settings.precision() != precision {
                    self.settings.set_precision(precision);
                    self.configure();
                }
            }
            Command::SetProvider(provider) => {
                if self.settings.provider != provider {
                    self.settings.provider = provider;
                    self.configure();
                }
            }
            Command::SetModel(model) => {
                if self.settings.model_name() != model {
                    self.settings.model = model;
                    self.configure();
                }
            }
            Command::CancelFetch => self.worker.cancel_configure(),
            Command::SetLive(live) => {
                self.state.live = live;
                let idle = self.state.current.as_ref().is_some_and(|c| !c.busy);
                if live && idle && matches!(self.state.engine, EngineStatus::Ready { .. }) {
                    self.rerun_current();
                }
            }
            Command::ZoomIn | Command::ZoomOut | Command::ZoomFit | Command::ZoomActual => {
                self.zoom(&command);
            }
            Command::Quit => self.ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }

    fn zoom(&mut self, command: &Command) {
        let Some(size) = self.state.current.as_ref().and_then(|c| c.texture_size) else {
            return;
        };
        let canvas = self.canvas_rect;
        match command {
            Command::ZoomIn => self.view.zoom_at(canvas, size, canvas.center(), 1.25),
            Command::ZoomOut => self.view.zoom_at(canvas, size, canvas.center(), 0.8),
            Command::ZoomFit => self.view = ViewState::default(),
            _ => self.view.actual_size(size, self.ctx.pixels_per_point()),
        }
    }

    /// Keyboard shortcuts, dropped files and clipboard events.
    fn handle_input(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let shortcuts = [
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::O),
                Command::OpenDialog,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::S),
                Command::ExportAs,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::S),
                Command::Export,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::E),
                Command::ExportAll,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Q),
                Command::Quit,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::L),
                Command::SetLive(!self.state.live),
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Plus),
                Command::ZoomIn,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Equals),
                Command::ZoomIn,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Minus),
                Command::ZoomOut,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Num0),
                Command::ZoomFit,
            ),
            (
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Num1),
                Command::ZoomActual,
            ),
        ];
        let mut commands = Vec::new();
        ctx.input_mut(|i| {
            for (shortcut, command) in &shortcuts {
                if i.consume_shortcut(shortcut) {
                    commands.push(command.clone());
                }
            }
        });
        let (dropped, events) = ctx.input(|i| (i.raw.dropped_files.clone(), i.events.clone()));
        let paths: Vec<PathBuf> = dropped
            .iter()
            .map(|f| f.path().to_path_buf())
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            commands.push(Command::Add(paths));
        }
        for event in events {
            match event {
                egui::Event::Copy => commands.push(Command::Copy),
                egui::Event::PasteImage(image) => self.paste_image(&image),
                egui::Event::Paste(text) => self.paste_text(&text),
                _ => {}
            }
        }
        self.commands.extend(commands);
    }

    fn save_settings_if_changed(&mut self, force: bool) {
        if !self.persist || self.settings == self.saved {
            return;
        }
        if !force && self.last_save.elapsed() < SAVE_INTERVAL {
            return;
        }
        self.last_save = Instant::now();
        match self.settings.save(&self.dirs.config_dir) {
            Ok(()) => self.saved = self.settings.clone(),
            Err(e) => {
                // Say it once; keep running with the settings in memory.
                self.saved = self.settings.clone();
                self.state
                    .post(format!("settings were not saved: {e}"), true);
            }
        }
    }

    /// The per-frame logic: drain the worker and the tasks, apply commands. Never waits.
    fn update_logic(&mut self, ctx: &egui::Context, frame: &eframe::Frame) {
        if let Some(cpu_s) = frame.info().cpu_usage {
            self.state.stats.ui_frame.push(f64::from(cpu_s) * 1e3);
        }
        if let Some(log) = &mut self.stats_log {
            let device = self.render_state.as_ref().map(|rs| &rs.device);
            log.tick(&self.state.stats.ui_frame, device);
            ctx.request_repaint_after(stats::StatsLog::EVERY);
        }
        // One line per frame with CUTOUT_LOG=cutout=trace: its timestamps give frame intervals.
        tracing::trace!(cpu_ms = frame.info().cpu_usage.map(|s| s * 1e3), "frame");
        if let Some(rs) = &self.render_state
            && let Some((times, refine_times)) =
                Compositor::with(rs, |c, _, _| (c.take_gpu_ms(), c.take_refine_ms()))
        {
            for ms in times {
                self.state.stats.composite_gpu.push(ms);
            }
            for ms in refine_times {
                tracing::trace!(ms, "refinement finished");
                self.state.stats.edges.push(ms);
            }
        }
        self.upload_cpu_edges();
        let responses: Vec<Response> = self.worker.try_iter().collect();
        for response in responses {
            self.handle_response(response);
        }
        let results: Vec<TaskResult> = self.tasks.try_iter().collect();
        for result in results {
            self.handle_task(result);
        }
        self.handle_input(ctx);
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
        self.flush_outbox();
        if !self.outbox.is_empty() || matches!(self.state.engine, EngineStatus::Configuring { .. })
        {
            // Waiting for room in the worker's queue, or animating the progress line.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        self.refine_preview(ctx);
        self.save_settings_if_changed(false);
    }

    /// Keeps the preview's refined mask and foreground colours in step with the settings: the
    /// refinement passes run on the GPU, one run at a time, without re-running the network.
    fn refine_preview(&mut self, ctx: &egui::Context) {
        let Some(rs) = &self.render_state else {
            return;
        };
        if self.edges.on_cpu() {
            self.edges.request(&self.settings.composite);
            return;
        }
        let pointer_down = ctx.input(|i| i.pointer.any_down());
        let pace = refine_pace(self.state.stats.edges.last(), pointer_down);
        if pace == RefinePace::Hold {
            tracing::trace!("refinement deferred while the pointer is down");
            return;
        }
        let settings = self.settings.composite;
        let in_parts = pace == RefinePace::InParts;
        let pending = Compositor::with(rs, |c, device, queue| {
            c.refine(device, queue, &settings, in_parts)
        })
        .unwrap_or(false);
        if pending {
            ctx.request_repaint_after(Duration::from_millis(5));
        }
    }

    /// Uploads the CPU edge path's finished runs into the cutout texture.
    fn upload_cpu_edges(&mut self) {
        let Some(rs) = &self.render_state else {
            return;
        };
        for done in self.edges.take_done() {
            let ms = done.took.as_secs_f64() * 1e3;
            tracing::trace!(ms, "CPU edge passes finished");
            if let Some(Err(e)) =
                Compositor::with(rs, |c, _, queue| c.write_cutout(queue, &done.rgba))
            {
                self.state.post(e.to_string(), true);
                continue;
            }
            self.state.stats.edges.push(ms);
            self.state.edge_bands = Some(done.sizes);
        }
    }

    /// Whether the composite with a mask has been drawn (set by the paint callback).
    pub fn cutout_shown(&self) -> bool {
        self.state
            .current
            .as_ref()
            .is_some_and(|c| c.shown.load(Ordering::Relaxed))
    }

    /// A line with the UI frame-time statistics, for the log at exit.
    pub fn frame_time_line(&self) -> Option<String> {
        let s = self.state.stats.ui_frame.summary()?;
        Some(format!(
            "ui frame time over {} frames: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (running {:.0} s)",
            s.count,
            s.median,
            s.p99,
            s.max,
            self.started.elapsed().as_secs_f64()
        ))
    }
}

impl eframe::App for CutoutApp {
    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        self.update_logic(ctx, frame);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let mut commands = Vec::new();
        self.canvas_rect = ui::app_ui(
            ui,
            &self.state,
            &mut self.settings,
            &mut self.view,
            &mut commands,
        );
        let title = match self.state.current_entry() {
            Some(e) => format!("cutout — {}", e.name),
            None => "cutout".to_owned(),
        };
        if title != self.title {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        self.commands.extend(commands);
        if !self.commands.is_empty() {
            ui.ctx().request_repaint();
        }
    }

    fn on_exit(&mut self) {
        self.save_settings_if_changed(true);
        if let Some(line) = self.frame_time_line() {
            tracing::info!("{line}");
        }
    }
}

/// The application id: Wayland app id, X11 class, desktop entry and AppStream id.
pub const APP_ID: &str = "org.cutout.cutout";

/// Opens the window and runs the app until it is closed.
pub fn run_native(options: AppOptions) -> ExitCode {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("cutout")
        // Matches the desktop entry (assets/linux/org.cutout.cutout.desktop).
        .with_app_id(APP_ID)
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size([640.0, 400.0])
        .with_drag_and_drop(true);
    match icon::window_icon() {
        Ok(icon) => viewport = viewport.with_icon(Arc::new(icon)),
        Err(e) => tracing::warn!("no window icon: {e}"),
    }
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(crate::render::window_device_descriptor);
    let native = eframe::NativeOptions {
        viewport,
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: egui_wgpu::WgpuSetup::CreateNew(setup),
            ..egui_wgpu::WgpuConfiguration::default()
        },
        renderer: eframe::Renderer::Wgpu,
        ..eframe::NativeOptions::default()
    };
    let result = eframe::run_native(
        "cutout",
        native,
        Box::new(move |cc| {
            let app = CutoutApp::new(cc, options).map_err(|e| e.to_string())?;
            Ok(Box::new(app) as Box<dyn eframe::App>)
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: the window could not be opened ({e}). The command line works without one: `cutout remove PHOTO`"
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RefinePace, SLOW_REFINE_MS, refine_pace};

    #[test]
    fn slow_refinement_waits_for_the_pointer_then_goes_in_parts_and_fast_follows_it() {
        let slow = Some(SLOW_REFINE_MS * 40.0);
        let fast = Some(SLOW_REFINE_MS / 10.0);
        assert_eq!(refine_pace(slow, true), RefinePace::Hold);
        assert_eq!(refine_pace(slow, false), RefinePace::InParts);
        assert_eq!(refine_pace(fast, true), RefinePace::Whole);
        assert_eq!(refine_pace(fast, false), RefinePace::Whole);
        // Before the first run there is nothing to go by: the whole run at once.
        assert_eq!(refine_pace(None, true), RefinePace::Whole);
    }
}
