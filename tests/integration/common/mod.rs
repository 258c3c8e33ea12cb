//! Helpers shared by the integration tests: where ../shared is, and a CPU segmenter on the real model.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod app;

use std::path::{Path, PathBuf};

use cutout::{
    engine::{self, ProviderKind, ProviderRequest, Segmenter, SegmenterOptions},
    paths::AppDirs,
};

/// `../shared` beside the repository (or `CUTOUT_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CUTOUT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// The folder holding the real u2netp model.
pub fn models_dir() -> PathBuf {
    shared_dir().join("models")
}

/// Prepared models made by the tests (kept apart from the user's cache).
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("cutout-test-cache")
}

/// The real u2netp from ../shared, checked against the manifest.
pub fn shared_model() -> engine::ResolvedModel {
    let manifest = engine::Manifest::builtin().expect("manifest");
    let spec = manifest.get("u2netp").expect("u2netp in manifest");
    let path = models_dir().join(&spec.file);
    let sha256 = engine::models::verify(spec, &path)
        .unwrap_or_else(|e| panic!("the shared model must be present and genuine: {e}"));
    engine::ResolvedModel {
        spec: spec.clone(),
        path,
        sha256,
        origin: engine::models::ModelOrigin::EnvDir,
    }
}

/// The real IS-Net, fetched the way the app fetches it (the npm client, every chunk and the
/// whole file checked) into the user models folder, outside the clone: the first test run on a
/// machine fetches it, later runs (and CI on the same machine) find it there.
pub fn isnet_model() -> engine::ResolvedModel {
    static MODEL: std::sync::OnceLock<engine::ResolvedModel> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            engine::resolve_model(
                &AppDirs::from_env(),
                &engine::ModelChoice::Named("isnet".to_owned()),
                &mut engine::models::no_progress(),
            )
            .unwrap_or_else(|e| panic!("IS-Net is needed for this test: {e}"))
        })
        .clone()
}

/// A real model by name: u2netp from ../shared, isnet through the project's fetch.
pub fn model(name: &str) -> engine::ResolvedModel {
    match name {
        "u2netp" => shared_model(),
        "isnet" => isnet_model(),
        other => panic!("no test model `{other}`"),
    }
}

/// A CPU-provider segmenter on the named real model at the given precision.
pub fn cpu_segmenter_for(name: &str, precision: engine::Precision) -> Segmenter {
    let runtime = engine::runtime::load(&AppDirs::from_env()).unwrap_or_else(|e| {
        panic!("ONNX Runtime is needed for this test ({e}); run `cargo run --release -- setup`")
    });
    let options = SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        precision,
        ..SegmenterOptions::default()
    };
    Segmenter::new(&runtime, &model(name), &options, &cache_dir())
        .unwrap_or_else(|e| panic!("{name} {precision} on the CPU: {e}"))
}

/// The shared photos: rembg's fixtures, U-2-Net's samples and the ECSSD photos (20 in all).
pub fn shared_photos() -> Vec<PathBuf> {
    let root = shared_dir().join("testdata");
    let mut photos: Vec<PathBuf> = ["rembg/fixtures", "u2net/images", "ecssd/images"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .expect("photos")
                .map(|e| e.expect("entry").path())
        })
        .collect();
    photos.sort();
    photos
}

/// A segmenter on the real model with the given options. Fails loudly when ONNX Runtime is not
/// installed: these tests never skip.
pub fn segmenter(options: &SegmenterOptions) -> Result<Segmenter, engine::EngineError> {
    let runtime = engine::runtime::load(&AppDirs::from_env()).unwrap_or_else(|e| {
        panic!("ONNX Runtime is needed for this test ({e}); run `cargo run --release -- setup`")
    });
    Segmenter::new(&runtime, &shared_model(), options, &cache_dir())
}

/// A CPU-provider segmenter on the real model.
pub fn cpu_segmenter() -> Segmenter {
    let options = SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        ..SegmenterOptions::default()
    };
    segmenter(&options).expect("segmenter on CPU")
}

/// Folders under `root` whose models folder holds a copy of the real model, with ONNX Runtime
/// already loaded from the user's runtime folder (once per process).
pub fn dirs_with_model(root: &std::path::Path) -> AppDirs {
    engine::runtime::load(&AppDirs::from_env()).unwrap_or_else(|e| {
        panic!("ONNX Runtime is needed ({e}); run `cargo run --release -- setup`")
    });
    let dirs = AppDirs {
        data_dir: root.join("data"),
        cache_dir: cache_dir(),
        config_dir: root.join("config"),
        default_export_dir: root.join("default-exports"),
    };
    std::fs::create_dir_all(dirs.models_dir()).expect("mkdir");
    std::fs::copy(
        models_dir().join("u2netp.onnx"),
        dirs.models_dir().join("u2netp.onnx"),
    )
    .expect("copy model");
    dirs
}

/// A real photo from ../shared/testdata.
pub fn photo(name: &str) -> PathBuf {
    shared_dir().join("testdata/rembg/fixtures").join(name)
}

/// The network's full-size mask of one photo.
pub fn segment(segmenter: &mut Segmenter, photo: &image::RgbImage) -> image::GrayImage {
    segmenter.segment(photo).expect("segment").0
}

/// Tests that time one run against another hold this exclusively; tests that keep every core busy
/// for a long while in other processes (the Windows build under Wine) hold it shared. So a
/// measurement is never taken while the machine is suddenly twice as loaded as a moment before.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The machine to this test alone, for a comparison of timings.
pub fn timing_lock() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A share of the machine for a test that loads every core from other processes.
pub fn heavy_lock() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Mounts a small tmpfs at `at` (`ro`, or a `size`), unmounted when the guard drops. These tests
/// need root (CI runs as root) and fail, never skip, without it.
pub fn mount_tmpfs(at: &Path, options: &str) -> Unmount {
    std::fs::create_dir_all(at).expect("mount point");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(at)
        .status();
    assert!(
        status.as_ref().is_ok_and(std::process::ExitStatus::success),
        "this test mounts a tmpfs ({options}) and needs root for it, as CI has: {status:?}"
    );
    Unmount(at.to_owned())
}

/// Unmounts its folder when dropped.
pub struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .ok();
    }
}
