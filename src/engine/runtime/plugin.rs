//! Plugin execution providers: providers shipped on PyPI apart from ONNX Runtime (TensorRT for
//! RTX, WebGPU), each a wheel holding one provider library and what it needs.
//!
//! `cutout setup` keeps a plugin's native libraries in a folder of its own beside the ONNX Runtime
//! library. When the runtime loads, the plugin's own dependencies are loaded first (a wheel keeps
//! versioned file names that the loader would not find by their sonames), then the plugin is
//! registered with the environment; its devices appear in `Environment::devices`. Plugins need no
//! GPU build of ONNX Runtime: the CPU build registers them too.

use std::path::{Path, PathBuf};

/// One plugin provider: where it comes from and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plugin {
    /// Its name for people (`WebGPU`).
    pub label: &'static str,
    /// Its `cutout doctor` section's title (`TensorRT for RTX`).
    pub title: &'static str,
    /// The PyPI package, pinned to the release cutout was tested with.
    pub package: &'static str,
    /// The execution provider's name, as its devices report it.
    pub ep_name: &'static str,
    /// The folder beside the ONNX Runtime library that holds the plugin.
    pub folder: &'static str,
    /// Where the libraries sit inside the wheel.
    pub wheel_prefix: &'static str,
    /// The provider library's file name on Linux, Windows and macOS.
    pub file_names: [&'static str; 3],
    /// Libraries the plugin needs before it can load, in load order, as file-name prefixes.
    pub dependencies: &'static [&'static str],
    /// Whether `cutout setup` fetches it for the CPU build too (else only with `--gpu`).
    pub every_machine: bool,
}

impl Plugin {
    /// The provider library's file name on this platform.
    pub fn file_name(&self) -> &'static str {
        let [linux, windows, macos] = self.file_names;
        if cfg!(windows) {
            windows
        } else if cfg!(target_os = "macos") {
            macos
        } else {
            linux
        }
    }

    /// The plugin folder that belongs to an ONNX Runtime core library.
    pub fn folder_beside(&self, core_library: &Path) -> PathBuf {
        core_library.with_file_name(self.folder)
    }

    /// Whether the plugin library is in its folder beside `core_library`.
    pub fn installed_beside(&self, core_library: &Path) -> bool {
        self.folder_beside(core_library)
            .join(self.file_name())
            .is_file()
    }

    /// The package name without its pinned version (`onnxruntime-ep-webgpu`).
    pub fn package_name(&self) -> &'static str {
        self.package
            .split_once("==")
            .map_or(self.package, |(name, _)| name)
    }

    /// The pinned version (`0.4.0`).
    pub fn version(&self) -> &'static str {
        self.package.split_once("==").map_or("", |(_, v)| v)
    }

    /// Loads the plugin's dependencies from its folder and registers it with `env`. Returns the
    /// state and the dependencies' load results (for `cutout doctor`).
    pub(super) fn register(
        &self,
        env: &ort::environment::Environment,
        core_library: &Path,
    ) -> (PluginState, Vec<super::Preloaded>) {
        let folder = self.folder_beside(core_library);
        let library = folder.join(self.file_name());
        if !library.is_file() {
            return (PluginState::NotInstalled { folder }, Vec::new());
        }
        let mut preloaded = Vec::new();
        for prefix in self.dependencies {
            let result = match find_library(&folder, prefix) {
                Some(path) => ort::util::preload_dylib(&path).map_err(|e| e.to_string()),
                None => Err(format!("{prefix} is missing from {}", folder.display())),
            };
            preloaded.push(((*prefix).to_owned(), result));
        }
        if let Some((name, Err(reason))) = preloaded.iter().find(|(_, r)| r.is_err()) {
            let reason = format!("{name} did not load: {reason}");
            return (PluginState::Failed { library, reason }, preloaded);
        }
        let state = match env.register_ep_library(self.ep_name, &library) {
            Ok(()) => PluginState::Registered { library },
            Err(e) => PluginState::Failed {
                library,
                reason: e.message().to_owned(),
            },
        };
        (state, preloaded)
    }

    /// The devices ONNX Runtime offers this registered plugin (none where it discovered no GPU).
    pub fn offered<'e>(
        &self,
        env: &'e ort::environment::Environment,
    ) -> Vec<ort::device::Device<'e>> {
        env.devices()
            .filter(|d| d.ep().is_ok_and(|name| name == self.ep_name))
            .collect()
    }
}

/// What became of a plugin when the runtime loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    /// No plugin in the folder beside the ONNX Runtime library.
    NotInstalled {
        /// Where it was looked for.
        folder: PathBuf,
    },
    /// Present, but the plugin or a library it needs did not load.
    Failed {
        /// The plugin library.
        library: PathBuf,
        /// What the loader or ONNX Runtime said.
        reason: String,
    },
    /// Registered with the environment.
    Registered {
        /// The plugin library.
        library: PathBuf,
    },
}

/// The file in `folder` whose name starts with `prefix` (the shortest: the soname itself when it
/// is there, else the versioned file).
pub fn find_library(folder: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort_by_key(|p| p.as_os_str().len());
    found.into_iter().next()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_matching_file_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libtensorrt_rtx.so.1.7.1",
            "libtensorrt_rtx.so.1",
            "other.so",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            find_library(dir.path(), "libtensorrt_rtx.so.1"),
            Some(dir.path().join("libtensorrt_rtx.so.1"))
        );
        std::fs::remove_file(dir.path().join("libtensorrt_rtx.so.1")).unwrap();
        assert_eq!(
            find_library(dir.path(), "libtensorrt_rtx.so.1"),
            Some(dir.path().join("libtensorrt_rtx.so.1.7.1"))
        );
        assert_eq!(find_library(dir.path(), "libcudart.so.13"), None);
    }

    #[test]
    fn each_plugin_has_its_folder_name_and_version() {
        let core = Path::new("/r/gpu-1.31.1/libonnxruntime.so.1.31.1");
        for (plugin, folder) in [
            (super::super::tensorrt_rtx::PLUGIN, "tensorrt-rtx"),
            (super::super::webgpu::PLUGIN, "webgpu"),
        ] {
            assert_eq!(
                plugin.folder_beside(core),
                Path::new("/r/gpu-1.31.1").join(folder)
            );
            assert!(!plugin.version().is_empty() && !plugin.package_name().contains('='));
        }
        assert_eq!(super::super::webgpu::PLUGIN.version(), "0.4.0");
        assert_eq!(
            super::super::webgpu::PLUGIN.package_name(),
            "onnxruntime-ep-webgpu"
        );
    }
}
