//! What persists between runs: compositing choices, engine choices and folders, as TOML in the
//! config folder. A damaged file is reported and replaced by defaults, never a crash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    engine::{ModelChoice, Precision, ProviderRequest, SegmenterOptions},
    image_ops::CompositeSettings,
};

/// Settings saved to `settings.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Threshold, softness and background.
    pub composite: CompositeSettings,
    /// Execution provider: `auto`, `tensorrt`, `cuda` or `cpu`.
    pub provider: String,
    /// Network precision: `fp16` or `fp32`.
    pub precision: String,
    /// Model name from the manifest.
    pub model: String,
    /// Where File → Open starts.
    pub open_dir: Option<PathBuf>,
    /// Where Export writes (asked for on first export).
    pub export_dir: Option<PathBuf>,
    /// Show the latency overlay.
    pub show_overlay: bool,
    /// Before/after split on.
    pub split_enabled: bool,
    /// Split position across the view, 0–1.
    pub split: f32,
    /// Show the mask instead of the composite.
    pub mask_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            composite: CompositeSettings::default(),
            provider: "auto".to_owned(),
            precision: "fp16".to_owned(),
            model: crate::engine::models::DEFAULT_MODEL.to_owned(),
            open_dir: None,
            export_dir: None,
            show_overlay: true,
            split_enabled: false,
            split: 0.5,
            mask_only: false,
        }
    }
}

/// The file name inside the config folder.
pub const FILE_NAME: &str = "settings.toml";

impl Settings {
    /// Reads the settings; a missing file gives defaults, a damaged one defaults and a warning.
    pub fn load(config_dir: &Path) -> (Self, Option<String>) {
        let path = config_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => match toml::from_str(&text) {
                Ok(settings) => (settings, None),
                Err(e) => (
                    Self::default(),
                    Some(format!(
                        "the settings file could not be read, so defaults are used ({}): {}",
                        e.message(),
                        path.display()
                    )),
                ),
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
    pub fn save(&self, config_dir: &Path) -> Result<(), String> {
        let path = config_dir.join(FILE_NAME);
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(config_dir)
            .map_err(|e| format!("cannot create {}: {e}", config_dir.display()))?;
        let mut tmp = crate::paths::temp_file_builder(".settings-", ".toml.tmp")
            .tempfile_in(config_dir)
            .map_err(|e| format!("cannot write in {}: {e}", config_dir.display()))?;
        std::io::Write::write_all(tmp.as_file_mut(), text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tmp.persist(&path)
            .map_err(|e| format!("cannot write {}: {}", path.display(), e.error))?;
        Ok(())
    }

    /// The provider request (unknown text falls back to `auto`).
    pub fn provider_request(&self) -> ProviderRequest {
        self.provider.parse().unwrap_or_default()
    }

    /// The precision (unknown text falls back to FP16).
    pub fn precision(&self) -> Precision {
        self.precision.parse().unwrap_or(Precision::Fp16)
    }

    /// Sets the precision.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision.as_str().to_owned();
    }

    /// The model to load.
    pub fn model_choice(&self) -> ModelChoice {
        ModelChoice::Named(self.model.clone())
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

        std::fs::write(dir.path().join(FILE_NAME), "composite = 3").unwrap();
        let (fallback, warning) = Settings::load(dir.path());
        assert_eq!(fallback, Settings::default());
        assert!(warning.unwrap().contains("defaults"));
    }
}
