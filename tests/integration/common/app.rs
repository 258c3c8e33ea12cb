//! The app under egui_kittest, shared by the test files that drive it: options on a temporary
//! root with the real model, a harness that renders with wgpu as the window does, and waiting.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use cutout::{
    app::{AppOptions, CutoutApp, Settings, settings::Choice},
    engine::Precision,
};
use egui_kittest::Harness;

use crate::common;

pub const WAIT: Duration = Duration::from_secs(120);

pub fn options(root: &Path, paths: Vec<PathBuf>) -> AppOptions {
    let dirs = common::dirs_with_model(root);
    let export_dir = root.join("exports");
    std::fs::create_dir_all(&export_dir).unwrap();
    let settings = Settings {
        provider: Choice::Fixed(cutout::engine::ProviderKind::Cpu),
        precision: Choice::Fixed(Precision::Fp32),
        export_dir: Some(export_dir),
        ..Settings::default()
    };
    AppOptions {
        settings: Some(settings),
        persist: false,
        ..AppOptions::new(dirs, paths)
    }
}

/// The harness renders with wgpu, on a device set up as the window's is (full texture limit,
/// timestamp queries where the adapter has them).
pub fn harness(options: AppOptions) -> Harness<'static, CutoutApp> {
    let mut setup = egui_kittest::wgpu::default_wgpu_setup();
    if let egui_wgpu::WgpuSetup::CreateNew(create) = &mut setup {
        create.device_descriptor = Arc::new(cutout::render::window_device_descriptor);
    }
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu_setup(setup)
        .build_eframe(move |cc| CutoutApp::new(cc, options).expect("app starts"))
}

/// Steps frames (the worker wakes the UI) until `done` holds.
pub fn run_until(
    harness: &mut Harness<'_, CutoutApp>,
    what: &str,
    done: impl Fn(&CutoutApp) -> bool,
) {
    let started = Instant::now();
    while !done(harness.state()) {
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for {what}; messages: {:?}",
            harness.state().state().messages
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.step();
}

pub fn ready_with(app: &CutoutApp, precision: Precision) -> bool {
    app.state().current.as_ref().is_some_and(|c| {
        !c.busy && c.mask.is_some() && c.ran.is_some_and(|r| r.precision == precision)
    })
}
