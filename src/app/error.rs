//! Why something in the app failed, as a value the app can match on; each is shown once, in the
//! status bar, in words the user can act on.

use std::path::PathBuf;

use crate::finish::FinishError;

/// An app-side failure (the worker's failures are [`crate::worker::PhotoError`] and
/// [`crate::engine::EngineError`]).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A helper thread (a dialog, the clipboard, the edge passes, the worker) could not start.
    #[error("cannot start a thread for the {what}: {source}")]
    Thread {
        /// What the thread is for.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The settings file could not be written.
    #[error("{action} ({source}): {}", .path.display())]
    Settings {
        /// What was being done.
        action: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The settings could not be encoded (a bug).
    #[error("cannot encode the settings: {0}")]
    EncodeSettings(#[from] toml::ser::Error),
    /// Compositing the cutout (for the clipboard) failed.
    #[error(transparent)]
    Finish(#[from] FinishError),
}
