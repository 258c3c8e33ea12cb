//! What persists between runs: compositing choices, engine choices and folders, as TOML in the
//! config folder. A damaged file is reported and replaced by defaults, never a crash.

use super::AppError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    engine::{ModelChoice, Precision, ProviderKind, ProviderRequest, SegmenterOptions},
    image_ops::CompositeSettings,
};

/// Settings saved to `settings.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Threshold, softness and background.
    pub composite: CompositeSettings,
    /// Execution provider: `auto` (the fastest that runs), `tensorrt-rtx`, `tensorrt`, `cuda`,
    /// `webgpu` or `cpu`.
    pub provider: Choice<ProviderKind>,
    /// Network precision: `fp16`, `fp32`, or `auto` (FP16 on a GPU provider, FP32 on the CPU,
    /// where FP16 would run as FP32 anyway), decided when the first session runs.
    pub precision: Choice<Precision>,
    /// Model name from the manifest, or `auto` (isnet where a GPU provider runs, u2netp on the
    /// CPU), decided when the first session runs.
    pub model: Choice<String>,
    /// Median inference time per `model/provider` measured on this machine, in milliseconds
    /// (what the model picker says a model costs here).
    pub infer_ms: std::collections::BTreeMap<String, f64>,
    /// Where File → Open starts.
    pub open_dir: Option<PathBuf>,
    /// Folders photos were opened from lately, newest first (File → Open recent).
    pub recent_folders: Vec<PathBuf>,
    /// Where Export writes (asked for on first export).
    pub export_dir: Option<PathBuf>,
    /// Show the latency overlay.
    pub show_overlay: bool,
    /// Show every stage in the overlay (otherwise a compact summary that keeps the photo clear).
    pub overlay_details: bool,
    /// The overlay folded to one line (a click on it folds and unfolds it).
    pub overlay_folded: bool,
    /// Before/after split on.
    pub split_enabled: bool,
    /// Split position across the view, 0–1.
    pub split: f32,
    /// Show the mask instead of the composite.
    pub mask_only: bool,
    /// The touch-up brush.
    pub brush: BrushSettings,
    /// Exports keep the photo's EXIF (capture date, camera, any location), orientation upright.
    pub keep_exif: bool,
}

/// The touch-up brush's size, hardness and edge snapping (which brush is picked is not saved).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrushSettings {
    /// Radius on screen, in points: a stroke paints this much of what is shown, at any zoom.
    pub radius_pt: f32,
    /// The share of the radius painted at full strength (0 soft – 1 hard).
    pub hardness: f32,
    /// Strokes snap to the photo's edges.
    pub edge_aware: bool,
}

impl Default for BrushSettings {
    fn default() -> Self {
        Self {
            radius_pt: 24.0,
            hardness: 0.6,
            edge_aware: false,
        }
    }
}

impl BrushSettings {
    /// The smallest and largest radius, in points.
    pub const RADIUS_PT: std::ops::RangeInclusive<f32> = 2.0..=400.0;

    /// Grows (factor > 1) or shrinks the radius, within [`Self::RADIUS_PT`].
    pub fn resize(&mut self, factor: f32) {
        self.radius_pt =
            (self.radius_pt * factor).clamp(*Self::RADIUS_PT.start(), *Self::RADIUS_PT.end());
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            composite: CompositeSettings::default(),
            provider: Choice::Auto,
            precision: Choice::Auto,
            model: Choice::Auto,
            infer_ms: std::collections::BTreeMap::new(),
            open_dir: None,
            recent_folders: Vec::new(),
            export_dir: None,
            show_overlay: true,
            overlay_details: false,
            overlay_folded: false,
            split_enabled: false,
            split: 0.5,
            mask_only: false,
            brush: BrushSettings::default(),
            keep_exif: false,
        }
    }
}

/// A setting the user chose, or left to cutout; written `auto` or the choice's own word in the
/// settings file, as before it was typed. A word cutout does not know makes the file fail to load,
/// which is reported and the file kept aside (see [`Settings::load`]), never silently replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice<T> {
    /// cutout decides (for precision and model: once it knows which provider runs).
    #[default]
    Auto,
    /// This one.
    Fixed(T),
}

/// How a choice is written in the settings file.
pub trait Word: Sized {
    /// The word.
    fn word(&self) -> String;
    /// The choice a word names, or why it names none.
    fn from_word(word: &str) -> Result<Self, String>;
}

impl Word for Precision {
    fn word(&self) -> String {
        self.as_str().to_owned()
    }
    fn from_word(word: &str) -> Result<Self, String> {
        word.parse()
    }
}

impl Word for ProviderKind {
    fn word(&self) -> String {
        self.as_str().to_owned()
    }
    fn from_word(word: &str) -> Result<Self, String> {
        match word.parse()? {
            ProviderRequest::Only(kind) => Ok(kind),
            ProviderRequest::Auto => Err("`auto` is not one provider".to_owned()),
        }
    }
}

impl Word for String {
    fn word(&self) -> String {
        self.clone()
    }
    fn from_word(word: &str) -> Result<Self, String> {
        Ok(word.to_owned())
    }
}

/// The word for [`Choice::Auto`].
const AUTO: &str = "auto";

impl<T: Word> Choice<T> {
    /// The word in the settings file and the menus.
    pub fn word(&self) -> String {
        match self {
            Self::Auto => AUTO.to_owned(),
            Self::Fixed(choice) => choice.word(),
        }
    }
}

impl<T: Word> Serialize for Choice<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.word())
    }
}

impl<'de, T: Word> Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        if word == AUTO {
            return Ok(Self::Auto);
        }
        T::from_word(&word)
            .map(Self::Fixed)
            .map_err(serde::de::Error::custom)
    }
}

/// The model sessions start with while the choice is `auto`: small, and fast on any provider.
const AUTO_START_MODEL: &str = crate::engine::models::DEFAULT_MODEL;

/// The file name inside the config folder.
pub const FILE_NAME: &str = "settings.toml";
/// Where a settings file that could not be read is kept (the newest such file).
pub const DAMAGED_FILE_NAME: &str = "settings.damaged.toml";

/// How many folders File → Open recent lists.
pub const RECENT_FOLDERS: usize = 8;

impl Settings {
    /// Puts `folder` first in the recent folders (once), keeping [`RECENT_FOLDERS`].
    pub fn remember_folder(&mut self, folder: &std::path::Path) {
        let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_owned());
        self.recent_folders.retain(|f| *f != folder);
        self.recent_folders.insert(0, folder);
        self.recent_folders.truncate(RECENT_FOLDERS);
    }

    /// Reads the settings; a missing file gives defaults, a damaged one defaults and a warning.
    pub fn load(config_dir: &Path) -> (Self, Option<String>) {
        let path = config_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => match toml::from_str(&text) {
                Ok(settings) => (settings, None),
                Err(e) => {
                    // The next save writes defaults there: keep the user's file beside it.
                    let kept = config_dir.join(DAMAGED_FILE_NAME);
                    let where_kept = match std::fs::rename(&path, &kept) {
                        Ok(()) => format!("; the damaged file was kept as {}", kept.display()),
                        Err(e) => format!("; it could not be set aside ({e})"),
                    };
                    (
                        Self::default(),
                        Some(format!(
                            "the settings file could not be read, so defaults are used ({}): {}{where_kept}",
                            e.message(),
                            path.display()
                        )),
                    )
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Self::default(), None),
            Err(e) => (
                Self::default(),
                Some(format!(
                    "the settings file could not be read ({e}): {}",
                    path.display()
                )),
            ),
        }
    }

    /// Writes the settings atomically.
    pub fn save(&self, config_dir: &Path) -> Result<(), AppError> {
        let path = config_dir.join(FILE_NAME);
        let text = toml::to_string_pretty(self)?;
        let fail = |action, path: &Path| {
            let path = path.to_owned();
            move |source| AppError::Settings {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(config_dir).map_err(fail("cannot create", config_dir))?;
        let mut tmp = crate::paths::temp_file_builder(".settings-", ".toml.tmp")
            .tempfile_in(config_dir)
            .map_err(fail("cannot write in", config_dir))?;
        std::io::Write::write_all(tmp.as_file_mut(), text.as_bytes())
            .map_err(fail("cannot write", &path))?;
        tmp.persist(&path)
            .map_err(|e| fail("cannot write", &path)(e.error))?;
        Ok(())
    }

    /// The provider request.
    pub fn provider_request(&self) -> ProviderRequest {
        match self.provider {
            Choice::Auto => ProviderRequest::Auto,
            Choice::Fixed(kind) => ProviderRequest::Only(kind),
        }
    }

    /// The precision to run (`auto` runs FP32 until a session says which provider runs).
    pub fn precision(&self) -> Precision {
        match self.precision {
            Choice::Auto => Precision::Fp32,
            Choice::Fixed(precision) => precision,
        }
    }

    /// The user picks `precision`. Returns whether that changes what is asked for: picking
    /// FP32 while the choice is still `auto` does (it runs FP32 already, but a later
    /// [`Self::settle_auto`] would have moved it to FP16).
    pub fn set_precision(&mut self, precision: Precision) -> bool {
        let chosen = Choice::Fixed(precision);
        let changed = self.precision != chosen;
        self.precision = chosen;
        changed
    }

    /// The model to load.
    pub fn model_choice(&self) -> ModelChoice {
        ModelChoice::Named(self.model_name().to_owned())
    }

    /// The model's name (`auto` loads the small model until a session says which provider runs).
    pub fn model_name(&self) -> &str {
        match &self.model {
            Choice::Auto => AUTO_START_MODEL,
            Choice::Fixed(name) => name,
        }
    }

    /// Settles the `auto` choices once a session shows which provider runs: on a GPU the quality
    /// model in FP16 (FP32 on a WebGPU adapter without 16-bit float shaders, where FP16 cannot
    /// run), on the CPU the fast model in FP32 (FP16 would run as FP32 there anyway). Returns
    /// whether the model or precision to run changed.
    pub fn settle_auto(&mut self, provider: ProviderKind) -> bool {
        let shader_f16 = provider == ProviderKind::WebGpu
            && crate::engine::runtime::webgpu::adapters()
                .first()
                .is_some_and(|a| a.shader_f16);
        self.settle_auto_with(provider, shader_f16)
    }

    /// [`Self::settle_auto`], told whether WebGPU's adapter has 16-bit float shaders.
    fn settle_auto_with(&mut self, provider: ProviderKind, shader_f16: bool) -> bool {
        let before = (self.model_name().to_owned(), self.precision());
        let gpu = provider != ProviderKind::Cpu;
        let fp16 = gpu && (provider != ProviderKind::WebGpu || shader_f16);
        if self.model == Choice::Auto {
            self.model = Choice::Fixed(if gpu {
                crate::engine::Manifest::builtin().map_or_else(
                    |_| AUTO_START_MODEL.to_owned(),
                    |m| m.gpu_default().to_owned(),
                )
            } else {
                AUTO_START_MODEL.to_owned()
            });
        }
        if self.precision == Choice::Auto {
            self.precision = Choice::Fixed(if fp16 {
                Precision::Fp16
            } else {
                Precision::Fp32
            });
        }
        before != (self.model_name().to_owned(), self.precision())
    }

    /// The measured median inference time of `model` on `provider` here, if it ran before.
    pub fn measured_infer_ms(&self, model: &str, provider: ProviderKind) -> Option<f64> {
        self.infer_ms.get(&format!("{model}/{provider}")).copied()
    }

    /// Remembers `model`'s median inference time on `provider` (changes under 10 % are not
    /// worth a settings write).
    pub fn remember_infer_ms(&mut self, model: &str, provider: ProviderKind, median_ms: f64) {
        let key = format!("{model}/{provider}");
        let known = self.infer_ms.get(&key).copied();
        if known.is_none_or(|ms| (median_ms - ms).abs() > 0.1 * ms) {
            self.infer_ms.insert(key, (median_ms * 10.0).round() / 10.0);
        }
    }

    /// Session options for the app: the chosen provider and precision, and one core left for
    /// the UI so that frames stay smooth while the network runs.
    pub fn segmenter_options(&self) -> SegmenterOptions {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        SegmenterOptions {
            provider: self.provider_request(),
            precision: self.precision(),
            intra_threads: Some(cores.saturating_sub(1).max(1)),
            ..SegmenterOptions::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::image_ops::Background;

    #[test]
    fn settings_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (fresh, warning) = Settings::load(dir.path());
        assert_eq!(fresh, Settings::default());
        assert!(warning.is_none());

        let mut s = Settings::default();
        s.composite.background = Background::Blurred;
        s.composite.threshold = 0.7;
        s.set_precision(Precision::Fp32);
        s.export_dir = Some(dir.path().to_owned());
        s.save(dir.path()).unwrap();
        let (back, warning) = Settings::load(dir.path());
        assert_eq!(back, s);
        assert!(warning.is_none());
        assert_eq!(back.precision(), Precision::Fp32);

        // Settings written by an earlier version (no infer_ms, no auto) still load.
        std::fs::write(
            dir.path().join(FILE_NAME),
            "model = \"u2netp\"\nprecision = \"fp16\"\n",
        )
        .unwrap();
        let (old, warning) = Settings::load(dir.path());
        assert!(warning.is_none());
        assert_eq!(
            (old.model_name(), old.precision()),
            ("u2netp", Precision::Fp16)
        );

        std::fs::write(dir.path().join(FILE_NAME), "composite = 3").unwrap();
        let (fallback, warning) = Settings::load(dir.path());
        assert_eq!(fallback, Settings::default());
        let warning = warning.unwrap();
        assert!(
            warning.contains("defaults") && warning.contains(DAMAGED_FILE_NAME),
            "{warning}"
        );
        // Nothing the user had is lost: the damaged file is kept, and saving writes a fresh one.
        assert_eq!(
            std::fs::read_to_string(dir.path().join(DAMAGED_FILE_NAME)).unwrap(),
            "composite = 3"
        );
        fallback.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()), (Settings::default(), None));
    }

    #[test]
    fn auto_settles_on_the_quality_model_on_a_gpu_and_the_fast_one_on_the_cpu() {
        let fresh = Settings::default();
        assert_eq!(
            (fresh.model_name(), fresh.precision()),
            ("u2netp", Precision::Fp32)
        );

        let mut gpu = fresh.clone();
        assert!(
            gpu.settle_auto(ProviderKind::Cuda),
            "switches to the quality model"
        );
        assert_eq!(
            (gpu.model_name(), gpu.precision()),
            ("isnet", Precision::Fp16)
        );
        assert!(!gpu.settle_auto(ProviderKind::Cuda), "settled once");

        // WebGPU: the quality model, in FP16 only where shaders take 16-bit floats.
        let mut webgpu = fresh.clone();
        assert!(webgpu.settle_auto_with(ProviderKind::WebGpu, true));
        assert_eq!(
            (webgpu.model_name(), webgpu.precision()),
            ("isnet", Precision::Fp16)
        );
        let mut no_f16 = fresh.clone();
        assert!(no_f16.settle_auto_with(ProviderKind::WebGpu, false));
        assert_eq!(
            (no_f16.model_name(), no_f16.precision()),
            ("isnet", Precision::Fp32)
        );

        let mut cpu = fresh.clone();
        assert!(
            !cpu.settle_auto(ProviderKind::Cpu),
            "already running the right thing"
        );
        assert_eq!(
            (cpu.model_name(), cpu.precision()),
            ("u2netp", Precision::Fp32)
        );

        // A choice the user made is never overridden.
        let mut chosen = Settings {
            model: Choice::Fixed("isnet".to_owned()),
            ..fresh
        };
        chosen.set_precision(Precision::Fp16);
        assert!(!chosen.settle_auto(ProviderKind::Cpu));
        assert_eq!(
            (chosen.model_name(), chosen.precision()),
            ("isnet", Precision::Fp16)
        );
    }

    #[test]
    fn picking_fp32_while_precision_is_auto_is_kept_and_not_undone_by_auto() {
        let mut settings = Settings::default();
        assert_eq!(settings.precision, Choice::Auto);
        // It runs FP32 already; the pick still counts, and reloads with it.
        assert!(
            settings.set_precision(Precision::Fp32),
            "the pick changes the setting"
        );
        assert_eq!(settings.precision, Choice::Fixed(Precision::Fp32));
        assert!(
            !settings.set_precision(Precision::Fp32),
            "picked twice changes nothing"
        );
        // A GPU session later settles only what is still auto.
        settings.settle_auto_with(ProviderKind::Cuda, false);
        assert_eq!(settings.precision(), Precision::Fp32);
    }

    #[test]
    fn choices_are_written_as_before_and_an_unknown_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings {
            provider: Choice::Fixed(ProviderKind::TensorRtRtx),
            ..Settings::default()
        };
        s.set_precision(Precision::Fp16);
        s.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        for line in [
            "provider = \"tensorrt-rtx\"",
            "precision = \"fp16\"",
            "model = \"auto\"",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        std::fs::write(
            dir.path().join(FILE_NAME),
            "provider = \"cuda\"\nprecision = \"fp8\"\n",
        )
        .unwrap();
        let (loaded, warning) = Settings::load(dir.path());
        assert_eq!(loaded, Settings::default());
        let warning = warning.unwrap();
        assert!(
            warning.contains("fp8") && warning.contains("fp32 or fp16"),
            "{warning}"
        );
        assert!(
            dir.path().join(DAMAGED_FILE_NAME).exists(),
            "the file is kept"
        );
    }
}
