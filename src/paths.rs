//! Where cutout keeps what it downloads and derives: the user's data, cache and config folders.
//!
//! Every folder can be moved with an environment variable, which is also how tests keep their
//! files apart from the user's.

use std::path::{Path, PathBuf};

/// The folders cutout reads and writes outside the files the user names.
#[derive(Debug, Clone)]
pub struct AppDirs {
    /// Long-lived downloads: ONNX Runtime (`runtime/`) and models (`models/`).
    pub data_dir: PathBuf,
    /// Things that can be rebuilt at any time: prepared models, TensorRT engines.
    pub cache_dir: PathBuf,
    /// Settings that persist between runs.
    pub config_dir: PathBuf,
    /// Where the app exports when no folder was chosen and no file dialog can ask for one.
    pub default_export_dir: PathBuf,
}

impl AppDirs {
    /// The platform's folders (`~/.local/share/cutout`, `~/.cache/cutout`, `~/.config/cutout` on
    /// Linux; `%LOCALAPPDATA%\cutout\cutout\{data,cache}` and `%APPDATA%\cutout\cutout\config` on
    /// Windows), each replaced by `CUTOUT_DATA_DIR`, `CUTOUT_CACHE_DIR` or `CUTOUT_CONFIG_DIR` when set.
    pub fn from_env() -> Self {
        let project = directories::ProjectDirs::from("org", "cutout", "cutout");
        let fallback = std::env::temp_dir().join("cutout");
        let pick = |var: &str, default: Option<&Path>, leaf: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| default.map(Path::to_path_buf))
                .unwrap_or_else(|| fallback.join(leaf))
        };
        Self {
            data_dir: pick(
                "CUTOUT_DATA_DIR",
                // Local, not roaming, on Windows (`%LOCALAPPDATA%`): ONNX Runtime and the models
                // are large and belong to this machine. The same folder elsewhere.
                project.as_ref().map(|p| p.data_local_dir()),
                "data",
            ),
            cache_dir: pick(
                "CUTOUT_CACHE_DIR",
                project.as_ref().map(|p| p.cache_dir()),
                "cache",
            ),
            config_dir: pick(
                "CUTOUT_CONFIG_DIR",
                project.as_ref().map(|p| p.config_dir()),
                "config",
            ),
            default_export_dir: pick("CUTOUT_EXPORT_DIR", pictures_folder().as_deref(), "exports"),
        }
    }

    /// Folders under one root, for tests and portable installs.
    pub fn under(root: &Path) -> Self {
        Self {
            data_dir: root.join("data"),
            cache_dir: root.join("cache"),
            config_dir: root.join("config"),
            default_export_dir: root.join("exports"),
        }
    }

    /// Where managed ONNX Runtime builds live.
    pub fn runtime_dir(&self) -> PathBuf {
        self.data_dir.join("runtime")
    }

    /// Where downloaded models live.
    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }
}

/// `cutout` in the user's pictures folder (the XDG one on Linux), else in the home folder.
fn pictures_folder() -> Option<PathBuf> {
    let user = directories::UserDirs::new()?;
    Some(
        user.picture_dir()
            .map_or_else(|| user.home_dir().join("cutout"), |p| p.join("cutout")),
    )
}

/// A builder for temporary files that become user files by rename: created with the mode a new
/// file normally gets (0666 less the umask), not tempfile's private 0600.
pub fn temp_file_builder<'a>(prefix: &'a str, suffix: &'a str) -> tempfile::Builder<'a, 'a> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}
