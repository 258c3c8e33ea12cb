//! Helpers shared by the integration tests: where ../shared is, and a CPU segmenter on the real model.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

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
