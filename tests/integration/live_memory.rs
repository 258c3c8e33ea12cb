//! Memory over many frames of the app, drawn with wgpu (lavapipe without a GPU). The test runs
//! itself again in a child process of the test binary, so that the resident memory it measures
//! is its own alone, not that of other tests running beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, app};

use std::time::Instant;

use app::{harness, options, ready_with, run_until};
use cutout::{
    app::{Command, CutoutApp},
    engine::Precision,
};
use egui_kittest::Harness;

/// Resident memory of this process, bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Executable mappings of this process: JIT-compiled shader code on software Vulkan.
fn executable_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')))
        .count()
}

/// Live on a tall photo (cloth-1, fitted by its height), every frame drawn with wgpu. On lavapipe
/// a composite shader that branched on uniforms was compiled afresh at every draw and never
/// freed: ~0.9 MB and three new executable mappings per frame, ~5 MB/s in the window.
#[test]
fn live_frames_drawn_on_screen_do_not_grow_memory() {
    const CHILD: &str = "CUTOUT_TEST_OWN_PROCESS";
    if std::env::var_os(CHILD).is_none() {
        let name = "live_memory::live_frames_drawn_on_screen_do_not_grow_memory";
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .status()
            .expect("the test binary runs again");
        assert!(
            status.success(),
            "the measurement in its own process failed: {status}"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut h = harness(options(root.path(), vec![common::photo("cloth-1.jpg")]));
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    h.state_mut().command(Command::SetLive(true));
    let frames = |h: &mut Harness<'_, CutoutApp>, n: usize| {
        for _ in 0..n {
            h.step();
            h.render().unwrap();
        }
    };
    frames(&mut h, 20);
    let (memory, code) = (resident_bytes(), executable_mappings());
    let started = Instant::now();
    frames(&mut h, 150);
    let growth_mb = (resident_bytes() as f64 - memory as f64) / 1e6;
    let new_code = executable_mappings().saturating_sub(code);
    eprintln!(
        "150 Live frames in {:.1} s: {growth_mb:+.1} MB resident, {new_code} new executable mappings",
        started.elapsed().as_secs_f64()
    );
    assert!(h.state().state().live, "Live stayed on");
    assert!(
        growth_mb < 30.0 && new_code < 10,
        "memory grows with drawn frames: {growth_mb:+.1} MB, {new_code} new executable mappings"
    );
}
