//! The desktop app: an eframe [`App`](eframe::App) that turns input into commands, sends work to
//! the [`Worker`], drains its responses each frame without waiting, and keeps the GPU compositor's
//! textures in step with the photo on screen.
//!
//! Flow: input and `ui/` widgets → [`Command`] → [`Request`] (via a small outbox, because the
//! worker's queue is bounded) → worker → [`Response`] → [`AppState`] → `ui/` and `render/`.

mod backend;
mod brush;
mod command_table;
mod commands;
mod compositor;
mod edges;
mod error;
mod export;
mod frame;
pub mod icon;
mod photos;
mod responses;
pub mod settings;
pub mod state;
pub mod stats;
pub mod tasks;
pub mod ui;
pub mod view;

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use eframe::egui_wgpu;

pub use brush::{EditStep, PaintEvent};
pub use command_table::{Command, UiCommand};
use compositor::Compositor;
pub use error::AppError;
pub use settings::Settings;
pub use state::{AppState, Current, EngineStatus, Entry, EntryId, EntryStatus, Source, Topic};
use tasks::Tasks;
pub use tasks::file_dialog_missing;
pub use view::ViewState;

use crate::{
    image_ops::DecodeLimits,
    paths::AppDirs,
    worker::{JobId, JobKind, Request, Worker},
};

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
    /// Graphics backends the window tried before the one it draws with, and why they could not.
    pub backends_passed_over: Vec<String>,
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
            backends_passed_over: Vec::new(),
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
    /// The cutout for the clipboard.
    Copy,
}

impl Purpose {
    /// The worker's kind of job: only the photo on screen is a preview (superseded by newer ones).
    fn kind(self) -> JobKind {
        if self == Self::Preview {
            JobKind::Preview
        } else {
            JobKind::Queue
        }
    }
}

impl WorkerLink {
    /// A new job for `entry`, remembered with what it is for. A new preview makes the older ones
    /// superseded, so they are forgotten.
    fn new_job(&mut self, entry: EntryId, purpose: Purpose) -> JobId {
        if purpose == Purpose::Preview {
            self.jobs.retain(|_, (_, p)| *p != Purpose::Preview);
        }
        let id = self.worker.next_id(purpose.kind());
        self.jobs.insert(id, (entry, purpose));
        id
    }
}

/// The settings as last written, and whether and when to write them.
struct SettingsStore {
    saved: Settings,
    /// Whether to write settings back to the config folder at all.
    persist: bool,
    last_save: Instant,
}

/// The worker, the requests waiting for room in its bounded queue, and what each job sent to it
/// was for.
struct WorkerLink {
    worker: Worker,
    outbox: VecDeque<Request>,
    jobs: HashMap<JobId, (EntryId, Purpose)>,
}

/// The app.
pub struct CutoutApp {
    /// Persisted settings (the UI edits them directly for things that only cost a redraw).
    settings: Settings,
    /// Runtime state, read by the UI.
    state: AppState,
    /// Zoom and pan.
    view: ViewState,
    /// Writing changed settings back.
    store: SettingsStore,
    dirs: AppDirs,
    /// The worker and what was sent to it.
    link: WorkerLink,
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

/// egui's fonts, with Hack behind Ubuntu for the proportional text: Ubuntu has no arrows
/// (`→` in "Export → Folder"), and the emoji fonts draw the colour picker's copy button.
fn install_fonts(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    if let Some(proportional) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
        proportional.insert(1.min(proportional.len()), "Hack".to_owned());
    }
    ctx.set_fonts(fonts);
}

/// What draws the window (the wgpu adapter, and the backends that could not), and whether the
/// GPU compositor can run.
fn renderer_line(
    render_state: Option<&egui_wgpu::RenderState>,
    passed_over: &[String],
) -> (String, bool) {
    let Some(rs) = render_state else {
        return ("no wgpu renderer".to_owned(), false);
    };
    Compositor::install(rs);
    let info = rs.adapter.get_info();
    let mut adapter = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
    if !passed_over.is_empty() {
        adapter.push_str(&format!("; could not draw with {}", passed_over.join("; ")));
    }
    (adapter, true)
}

impl CutoutApp {
    /// Creates the app: starts the worker, loads the model, installs the GPU compositor, and
    /// queues the photos given on the command line.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Result<Self, AppError> {
        Self::start(cc.egui_ctx.clone(), cc.wgpu_render_state.clone(), options)
    }

    /// [`Self::new`] from its parts: the egui context and, when the window draws with wgpu, its
    /// render state. Without one (unit tests) photos are not composited on the GPU.
    fn start(
        ctx: egui::Context,
        render_state: Option<egui_wgpu::RenderState>,
        options: AppOptions,
    ) -> Result<Self, AppError> {
        install_fonts(&ctx);
        let (settings, settings_warning) = match options.settings {
            Some(s) => (s, None),
            None => Settings::load(&options.dirs.config_dir),
        };
        let wake = ctx.clone();
        let worker = Worker::spawn(options.dirs.clone(), options.limits, move || {
            wake.request_repaint();
        })
        .map_err(|source| AppError::Thread {
            what: "worker".to_owned(),
            source,
        })?;
        let wake = ctx.clone();
        let edges = edges::EdgePreview::new(
            render_state
                .as_ref()
                .map(|rs| rs.adapter.get_info())
                .as_ref(),
            move || wake.request_repaint(),
        )?;
        let (adapter, gpu_ready) =
            renderer_line(render_state.as_ref(), &options.backends_passed_over);
        let mut app = Self {
            store: SettingsStore {
                saved: settings.clone(),
                persist: options.persist,
                last_save: Instant::now(),
            },
            settings,
            state: AppState::starting(adapter, gpu_ready, edges.path().clone(), &options.dirs),
            view: ViewState::default(),
            dirs: options.dirs,
            link: WorkerLink {
                worker,
                outbox: VecDeque::new(),
                jobs: HashMap::new(),
            },
            stats_log: stats::StatsLog::from_env(),
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

    /// What the app knows: the engine, the photos, the messages, the statistics.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The settings (saved when they change).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The settings, for a change that only costs a redraw (as the panel's sliders make it);
    /// anything that needs the worker goes through [`Self::command`].
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Zoom and pan.
    pub fn view(&self) -> &ViewState {
        &self.view
    }

    /// Queues a command (the UI calls this; tests may too).
    pub fn command(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Where the canvas was drawn last frame (screen points).
    pub fn canvas(&self) -> egui::Rect {
        self.canvas_rect
    }

    /// Entries that finished (done or exported) and failed.
    pub fn counts(&self) -> (usize, usize) {
        self.state.counts()
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
        let stats = &self.state.stats;
        let s = stats.ui_frame.summary()?;
        let mut line = format!(
            "ui frame time over {} frames: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (running {:.0} s)",
            s.count,
            s.median,
            s.p99,
            s.max,
            self.started.elapsed().as_secs_f64()
        );
        if let (Some(wall), Some(cpu)) = (stats.paint_interval.summary(), stats.paint_cpu.summary())
        {
            line.push_str(&format!(
                "; while painting, {} frames: interval median {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU median {:.1} ms, p99 {:.1} ms",
                wall.count, wall.median, wall.p99, wall.max, cpu.median, cpu.p99
            ));
        }
        Some(line)
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
        // What the UI asked for is applied in the next `logic()`, one frame later: `ui()` only
        // reads the state, so a click never changes what the rest of this frame draws. The
        // repaint makes that next frame come at once rather than at the next input.
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
    let backend = backend::choose();
    for why in &backend.passed_over {
        eprintln!("The window cannot draw with {why}; trying the next graphics backend.");
    }
    if let (false, Some(with)) = (backend.passed_over.is_empty(), &backend.drawing_with) {
        eprintln!("The window draws with {with}.");
    }
    let mut options = options;
    options.backends_passed_over = backend.passed_over;
    let native = eframe::NativeOptions {
        viewport,
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: backend.setup,
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
                "error: the window could not be opened ({}). The command line works without one: `cutout remove PHOTO`",
                without_source_location(&e.to_string())
            );
            ExitCode::from(2)
        }
    }
}

/// A library's error text without the source file and line it names (winit's "os error at
/// /home/…/.cargo/registry/…/mod.rs:788: Failed to open connection to X server"): the user
/// needs the reason, not where it was written.
fn without_source_location(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" at ") {
        let after = &rest[at + 4..];
        // A path ending in `.rs:LINE` followed by ": ".
        let end = after.find(": ").filter(|&e| {
            let location = &after[..e];
            location.rsplit_once(':').is_some_and(|(file, line)| {
                file.ends_with(".rs")
                    && !line.is_empty()
                    && line.bytes().all(|b| b.is_ascii_digit())
            })
        });
        match end {
            Some(e) => {
                out.push_str(&rest[..at]);
                rest = &after[e..];
            }
            None => {
                out.push_str(&rest[..at + 4]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn source_locations_are_left_out_of_library_errors() {
        assert_eq!(
            super::without_source_location(
                "winit EventLoopError: os error at /root/.cargo/registry/src/index/winit-0.30.13/src/platform_impl/linux/mod.rs:788: Failed to open connection to X server"
            ),
            "winit EventLoopError: os error: Failed to open connection to X server"
        );
        assert_eq!(
            super::without_source_location("look at this: nothing to strip"),
            "look at this: nothing to strip"
        );
    }
}
