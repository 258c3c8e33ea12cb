//! Short-lived background tasks that must not block the UI thread: native file dialogs (rfd with
//! the xdg-portal backend). Each runs on its own named thread and reports through one bounded
//! channel, then wakes the UI. (The clipboard's cutout is made by the worker: `Request::Copy`.)

use super::AppError;
use std::{path::PathBuf, thread::JoinHandle};

use crossbeam_channel::{Receiver, Sender};

/// What to do once the export folder is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFolder {
    /// Export the photo on screen.
    ExportCurrent,
    /// Export every photo in the queue.
    ExportAll,
    /// Only remember the folder.
    Remember,
}

/// A finished task.
pub enum TaskResult {
    /// Files chosen in the open dialog (empty when cancelled).
    Opened(Vec<PathBuf>),
    /// A folder chosen for exports (`None` when cancelled).
    ExportFolder(Option<PathBuf>, AfterFolder),
    /// A file chosen in the "Export as" dialog (`None` when cancelled).
    ExportFile(Option<PathBuf>),
}

/// Runs tasks and collects their results.
pub struct Tasks {
    tx: Sender<TaskResult>,
    rx: Receiver<TaskResult>,
    running: Vec<JoinHandle<()>>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(16);
        Self {
            tx,
            rx,
            running: Vec::new(),
        }
    }
}

/// Why no native file dialog can be shown here, if none can. On Linux rfd asks the XDG desktop
/// portal (on the session bus) and falls back to zenity; with neither, its dialogs return at
/// once as if cancelled, so cutout checks first.
pub fn file_dialog_missing() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let on_path = |program: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
    };
    let session_bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| PathBuf::from(d).join("bus").exists());
    let data_dirs =
        std::env::var_os("XDG_DATA_DIRS").unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    let portal = session_bus
        && std::env::split_paths(&data_dirs).any(|d| {
            d.join("dbus-1/services/org.freedesktop.portal.Desktop.service")
                .is_file()
        });
    (!portal && !on_path("zenity")).then(|| {
        "this desktop has no file dialog (neither xdg-desktop-portal nor zenity is installed)"
            .to_owned()
    })
}

impl Tasks {
    fn spawn(
        &mut self,
        name: &str,
        ctx: &egui::Context,
        work: impl FnOnce() -> TaskResult + Send + 'static,
    ) -> Result<(), AppError> {
        self.running.retain(|h| !h.is_finished());
        let tx = self.tx.clone();
        let ctx = ctx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("cutout-{name}"))
            .spawn(move || {
                let _ = tx.send(work());
                ctx.request_repaint();
            })
            .map_err(|source| AppError::Thread {
                what: name.to_owned(),
                source,
            })?;
        self.running.push(handle);
        Ok(())
    }

    /// Results that have arrived, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = TaskResult> + '_ {
        self.rx.try_iter()
    }

    /// File → Open: several photos at once.
    pub fn open_files(
        &mut self,
        ctx: &egui::Context,
        start: Option<PathBuf>,
    ) -> Result<(), AppError> {
        self.spawn("open-dialog", ctx, move || {
            let mut dialog = rfd::AsyncFileDialog::new()
                .set_title("Open photos")
                .add_filter("Images", crate::batch::IMAGE_EXTENSIONS);
            if let Some(dir) = start {
                dialog = dialog.set_directory(dir);
            }
            let files = pollster::block_on(dialog.pick_files()).unwrap_or_default();
            TaskResult::Opened(files.iter().map(|f| f.path().to_owned()).collect())
        })
    }

    /// Shows the folder dialog to add a folder of photos.
    pub fn open_folder(
        &mut self,
        ctx: &egui::Context,
        start: Option<PathBuf>,
    ) -> Result<(), AppError> {
        self.spawn("open-folder-dialog", ctx, move || {
            let mut dialog = rfd::AsyncFileDialog::new().set_title("Open a folder of photos");
            if let Some(dir) = start {
                dialog = dialog.set_directory(dir);
            }
            let folder = pollster::block_on(dialog.pick_folder());
            TaskResult::Opened(folder.iter().map(|f| f.path().to_owned()).collect())
        })
    }

    /// Asks where exports go.
    pub fn pick_export_folder(
        &mut self,
        ctx: &egui::Context,
        start: Option<PathBuf>,
        then: AfterFolder,
    ) -> Result<(), AppError> {
        self.spawn("folder-dialog", ctx, move || {
            let mut dialog = rfd::AsyncFileDialog::new().set_title("Export cutouts to");
            if let Some(dir) = start {
                dialog = dialog.set_directory(dir);
            }
            let folder = pollster::block_on(dialog.pick_folder()).map(|f| f.path().to_owned());
            TaskResult::ExportFolder(folder, then)
        })
    }

    /// "Export as…": one PNG, named by the user.
    pub fn save_file(
        &mut self,
        ctx: &egui::Context,
        start: Option<PathBuf>,
        file_name: String,
    ) -> Result<(), AppError> {
        self.spawn("save-dialog", ctx, move || {
            let mut dialog = rfd::AsyncFileDialog::new()
                .set_title("Export cutout as")
                .add_filter("PNG", &["png"])
                .set_file_name(file_name);
            if let Some(dir) = start {
                dialog = dialog.set_directory(dir);
            }
            TaskResult::ExportFile(
                pollster::block_on(dialog.save_file()).map(|f| f.path().to_owned()),
            )
        })
    }
}
