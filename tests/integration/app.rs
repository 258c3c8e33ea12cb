//! The desktop app through egui_kittest, rendered with wgpu (lavapipe without a GPU): a real
//! photo, the real model on the CPU provider, real widgets clicked, real files written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, app};

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use app::{harness, options, ready_with, run_until};
use cutout::{
    app::{Command, CutoutApp, EngineStatus, EntryStatus},
    engine::Precision,
    image_ops::CompositeSettings,
};
use egui_kittest::kittest::Queryable as _;

fn exported(app: &CutoutApp) -> Option<PathBuf> {
    app.state().current_entry().and_then(|e| match &e.status {
        EntryStatus::Exported(p) => Some(p.clone()),
        _ => None,
    })
}

/// `cutout remove` on the CPU with `args` writes the same alpha as the app's export, within 1.
fn assert_export_matches_cli(gui_png: &Path, photo: &Path, args: &[&str], models_dir: &Path) {
    let cli_png = gui_png.with_extension("cli.png");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["remove", "--ep", "cpu"])
        .args(args)
        .arg("-o")
        .arg(&cli_png)
        .arg(photo)
        .env("CUTOUT_MODELS_DIR", models_dir)
        .env("CUTOUT_CACHE_DIR", common::cache_dir())
        .status()
        .unwrap();
    assert!(status.success());
    let (gui_alpha, cli_alpha) = (alpha(gui_png), alpha(&cli_png));
    std::fs::remove_file(&cli_png).unwrap();
    assert_eq!(gui_alpha.len(), cli_alpha.len());
    let worst = gui_alpha
        .iter()
        .zip(&cli_alpha)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "GUI export and `cutout remove {args:?}` differ by {worst} levels"
    );
}

fn alpha(path: &Path) -> Vec<u8> {
    image::open(path)
        .unwrap()
        .to_rgba8()
        .pixels()
        .map(|p| p.0[3])
        .collect()
}

#[test]
fn open_segment_compare_precisions_threshold_and_export() {
    let root = tempfile::tempdir().unwrap();
    let photo = common::photo("car-1.jpg");
    let mut h = harness(options(root.path(), vec![photo.clone()]));

    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    assert!(matches!(
        h.state().state().engine,
        EngineStatus::Ready { .. }
    ));
    // The composite is drawn by the wgpu paint callback: the canvas is not blank.
    let shot = h.render().expect("render");
    let canvas = h
        .state()
        .state()
        .current
        .as_ref()
        .unwrap()
        .texture_size
        .unwrap();
    assert_eq!(canvas, [480, 360], "full-resolution photo texture");
    let centre = shot.get_pixel(shot.width() / 2, shot.height() / 2).0;
    let corner = shot.get_pixel(shot.width() / 2, 60).0;
    assert_ne!(centre, corner, "the canvas shows a picture");
    assert!(
        h.state().cutout_shown(),
        "the paint callback drew the composite"
    );
    // The composite's GPU time arrives a few frames later, where the adapter can measure it.
    if h.state().state().stats.composite_measurable {
        for _ in 0..6 {
            h.render().expect("render");
            h.step();
        }
        let gpu = h.state().state().stats.composite_gpu.summary();
        assert!(
            gpu.is_some_and(|s| s.min > 0.0),
            "composite GPU time: {gpu:?}"
        );
        eprintln!("composite on the GPU: {gpu:?}");
    }

    // Export with the default settings: the same alpha as `cutout remove`.
    h.get_by_label("Export PNG").click();
    run_until(&mut h, "the first export", |app| exported(app).is_some());
    let gui_png = exported(h.state()).unwrap();
    let gui_alpha = alpha(&gui_png);
    assert_export_matches_cli(
        &gui_png,
        &photo,
        &["--precision", "fp32"],
        &common::models_dir(),
    );

    // Copy, from the File menu (the command table's entry): the worker composites it.
    h.get_by_label("File").click();
    for _ in 0..4 {
        h.step();
    }
    h.get_by_label_contains("Copy cutout").click();
    run_until(&mut h, "the copy", |app| {
        app.state()
            .messages
            .iter()
            .any(|m| m.text.contains("copied to the clipboard"))
    });

    // FP16: the worker reloads the session, the photo is re-run, both latencies and the mask
    // difference appear.
    h.get_by_label("FP16").click();
    run_until(&mut h, "the FP16 mask", |app| {
        ready_with(app, Precision::Fp16)
    });
    run_until(&mut h, "the mask comparison", |app| {
        app.state()
            .current
            .as_ref()
            .is_some_and(|c| c.difference.is_some())
    });
    h.get_by_label_contains("FP16 speed-up");
    h.get_by_label_contains("masks differ");

    // Move the threshold slider (through the widget, as assistive technology would).
    let sliders: Vec<_> = h.get_all_by_role(egui::accesskit::Role::Slider).collect();
    sliders[0].set_value_accesskit(0.7);
    h.run_steps(2);
    let settings = h.state().settings().composite;
    assert!((settings.threshold - 0.7).abs() < 1e-6, "{settings:?}");

    // Export again: the file follows the new threshold, with the preview's definition.
    std::fs::remove_file(&gui_png).unwrap();
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the second export", |app| {
        exported(app).is_some_and(|p| p.exists())
    });
    let current = h.state().state().current.as_ref().unwrap();
    let expected = cutout::finish::Finisher::new()
        .composite(
            current.photo.as_ref().unwrap(),
            current.mask.as_ref().unwrap(),
            &CompositeSettings {
                threshold: 0.7,
                ..settings
            },
            None,
        )
        .unwrap();
    let written = image::open(&gui_png).unwrap().to_rgba8();
    assert_eq!(written, expected);
    assert_ne!(
        alpha(&gui_png),
        gui_alpha,
        "the threshold changed the export"
    );
    let names: Vec<_> = std::fs::read_dir(gui_png.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary files are left: {names:?}");
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_corrupt_file_dropped_with_good_ones_fails_alone() {
    let root = tempfile::tempdir().unwrap();
    let mut h = harness(options(root.path(), Vec::new()));
    let broken = root.path().join("broken.jpg");
    let mut bytes = std::fs::read(common::photo("cloth-1.jpg")).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&broken, bytes).unwrap();
    let folder = root.path().join("more");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(common::photo("plants-1.jpg"), folder.join("plants-1.jpg")).unwrap();

    for path in [common::photo("car-1.jpg"), broken, folder] {
        h.input_mut()
            .dropped_files
            .push(Arc::new(Dropped(path)) as egui::DroppedFileHandle);
    }
    h.step();
    assert_eq!(h.state().state().entries.len(), 3);
    run_until(&mut h, "every photo processed", |app| {
        app.state()
            .entries
            .iter()
            .all(|e| e.status != EntryStatus::Pending)
            && app.state().current.as_ref().is_some_and(|c| !c.busy)
    });
    let app = h.state();
    let (done, failed) = app.counts();
    assert_eq!((done, failed), (2, 1));
    let errors: Vec<_> = app.state().messages.iter().filter(|m| m.is_error).collect();
    assert_eq!(errors.len(), 1, "one clear message: {errors:?}");
    assert!(
        errors[0].text.contains("damaged or incomplete") && errors[0].text.contains("broken.jpg"),
        "{}",
        errors[0].text
    );
    let failed_entry = app
        .state()
        .entries
        .iter()
        .find(|e| e.name == "broken.jpg")
        .unwrap();
    assert!(matches!(failed_entry.status, EntryStatus::Failed(_)));
    assert!(
        app.state()
            .entries
            .iter()
            .filter(|e| e.thumbnail.is_some())
            .count()
            == 2,
        "the good photos have thumbnails"
    );

    // Export all: the two good photos are written, the broken one is skipped.
    h.state_mut().command(Command::ExportAll);
    h.step();
    assert_eq!(h.state().state().export_progress.map(|p| p.total), Some(2));
    run_until(&mut h, "export all", |app| {
        app.state().export_progress.is_none()
    });
    let mut written: Vec<_> = std::fs::read_dir(root.path().join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["car-1.png", "plants-1.png"]);
}

fn running_model(app: &CutoutApp) -> Option<&str> {
    match &app.state().engine {
        EngineStatus::Ready { model, .. } => Some(model.as_str()),
        _ => None,
    }
}

fn fetching(app: &CutoutApp) -> bool {
    matches!(
        app.state().engine,
        EngineStatus::Configuring {
            fetch: Some(f),
            ..
        } if f.done > 0
    )
}

#[test]
fn pick_the_quality_model_fetch_cancel_fetch_again_and_export() {
    let root = tempfile::tempdir().unwrap();
    let photo = common::photo("car-1.jpg");
    let mut h = harness(options(root.path(), vec![photo.clone()]));
    run_until(&mut h, "the u2netp mask", |app| {
        ready_with(app, Precision::Fp32) && running_model(app) == Some("u2netp")
    });
    let models_dir = root.path().join("data/models");
    // This machine has not fetched isnet (a fresh data folder): the picker says what it costs.
    h.get_by_label_contains("per photo here on CPU (estimated from u2netp); not fetched yet");

    // Pick it, and cancel while npm downloads: back to u2netp, nothing kept.
    h.get_by_label("isnet · quality").click();
    run_until(&mut h, "fetch progress", fetching);
    h.get_by_label("Cancel").click();
    run_until(&mut h, "u2netp again", |app| {
        running_model(app) == Some("u2netp") && !app.state().current.as_ref().unwrap().busy
    });
    assert_eq!(h.state().settings().model_name(), "u2netp");
    let left: Vec<_> = std::fs::read_dir(&models_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["u2netp.onnx"],
        "a cancelled fetch leaves nothing behind"
    );

    // Pick it again and let the fetch finish: the photo is re-run at 1024 px.
    h.get_by_label("isnet · quality").click();
    run_until(&mut h, "the isnet mask", |app| {
        running_model(app) == Some("isnet")
            && app
                .state()
                .current
                .as_ref()
                .is_some_and(|c| !c.busy && c.ran.is_some_and(|r| r.input_side_px == 1024))
    });
    assert!(models_dir.join("isnet-general-use-fp16.onnx").is_file());
    h.get_by_label_contains("Running: isnet · CPU · FP32 · 1024 px");

    // The export equals `cutout remove --model isnet` on the same photo.
    h.get_by_label("Export PNG").click();
    run_until(&mut h, "the isnet export", |app| exported(app).is_some());
    let gui_png = exported(h.state()).unwrap();
    assert_export_matches_cli(&gui_png, &photo, &["--model", "isnet"], &models_dir);
}

/// Where the preview's edge passes run follows the window's adapter: on a software rasterizer
/// (lavapipe here) the CPU path in its own thread, whose result replaces the cutout texture; on a
/// hardware GPU the window's compute passes. Either way, each settings change gives one new run
/// and the overlay's "edges" row gets its time.
#[test]
fn edge_passes_run_where_the_adapter_calls_for_and_follow_the_settings() {
    let root = tempfile::tempdir().unwrap();
    let mut h = harness(options(root.path(), vec![common::photo("car-1.jpg")]));
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    let software = ["llvmpipe", "lavapipe", "swiftshader", "Cpu"]
        .iter()
        .any(|s| h.state().state().adapter.contains(s));
    let on_cpu = matches!(
        h.state().state().edges.runner,
        cutout::finish::EdgeRunner::Cpu { .. }
    );
    eprintln!(
        "window adapter {}; edges: {} ({})",
        h.state().state().adapter,
        h.state().state().edges.runner,
        h.state().state().edges.why
    );
    assert_eq!(
        on_cpu, software,
        "the CPU path exactly when the adapter is software"
    );
    // Colours are on by default: the first run comes without touching anything.
    run_until(&mut h, "the first edge run", |app| {
        !app.state().stats.edges.is_empty()
    });
    let runs = h.state().state().stats.edges.len();
    h.get_by_label("Refine edges (guided filter)").click();
    run_until(&mut h, "the guided filter's run", |app| {
        app.state().stats.edges.len() > runs
    });
    if on_cpu {
        let bands = h.state().state().edge_bands.expect("the CPU run's bands");
        assert!(bands.guided_px > 0 && bands.foreground_px > 0, "{bands:?}");
    }
    // Nothing changes: no new run.
    let runs = h.state().state().stats.edges.len();
    for _ in 0..10 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        h.state().state().stats.edges.len(),
        runs,
        "runs only on a change"
    );
    let shot = h.render().expect("render");
    let centre = shot.get_pixel(shot.width() / 2, shot.height() / 2).0;
    let top = shot.get_pixel(shot.width() / 2, 60).0;
    assert_ne!(centre, top, "the canvas shows the refined cutout");
}

/// Not a test but a measurement (`cargo test --release --test integration app::slider --
/// --ignored --nocapture`): a 12 MP photo with refinement and colours on; the radius slider is "dragged" (its
/// value changes every frame for a second, as a drag sends), then "released" (the last value);
/// prints the time from the release to the frame that shows the refined result for the last
/// value, several times. Set CUTOUT_SLIDER_PHOTO to use another photo.
#[test]
#[ignore = "a measurement; run it on purpose"]
fn slider_release_to_refined_preview() {
    let root = tempfile::tempdir().unwrap();
    let photo = std::env::var_os("CUTOUT_SLIDER_PHOTO").map_or_else(
        || {
            let path = root.path().join("photo-12mp.png");
            let small = image::open(common::photo("car-1.jpg")).unwrap();
            small
                .resize_exact(4000, 3000, image::imageops::FilterType::Triangle)
                .save(&path)
                .unwrap();
            path
        },
        PathBuf::from,
    );
    let mut opts = options(root.path(), vec![photo]);
    if let Some(s) = &mut opts.settings {
        s.composite.refine.guided = true;
    }
    let mut h = harness(opts);
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    run_until(&mut h, "the first edge run", |app| {
        !app.state().stats.edges.is_empty()
    });
    eprintln!(
        "edges: {} ({}); photo {:?}",
        h.state().state().edges.runner,
        h.state().state().edges.why,
        h.state()
            .state()
            .current
            .as_ref()
            .and_then(|c| c.texture_size)
    );
    let mut waits = Vec::new();
    for round in 0..5u32 {
        let drag_started = Instant::now();
        let mut radius = 4;
        while drag_started.elapsed() < Duration::from_secs(1) {
            radius = 4 + (radius + 1) % 20;
            h.state_mut().settings_mut().composite.refine.radius = radius;
            h.step();
        }
        let signal = |app: &CutoutApp| {
            (
                app.state().stats.edges.len(),
                app.state().stats.edges.last().map(f64::to_bits),
            )
        };
        let runs = signal(h.state());
        h.state_mut().settings_mut().composite.refine.radius = 30 + round;
        let released = Instant::now();
        // The result for the released value is the last run to arrive once no newer run is
        // owed: wait until runs stop arriving for the final settings.
        let mut last_arrival = None;
        let mut seen = runs;
        while released.elapsed() < Duration::from_secs(10) {
            h.step();
            let now = signal(h.state());
            if now != seen {
                seen = now;
                last_arrival = Some(released.elapsed());
            }
            if last_arrival.is_some_and(|t| released.elapsed() > t + Duration::from_millis(600)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let wait = last_arrival.expect("a run after the release");
        eprintln!(
            "round {round}: refined preview {:.0} ms after the release",
            wait.as_secs_f64() * 1e3
        );
        waits.push(wait.as_secs_f64() * 1e3);
    }
    waits.sort_by(f64::total_cmp);
    eprintln!(
        "slider release → refined 12 MP preview: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        waits[0],
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
}

fn last_message(app: &CutoutApp) -> String {
    app.state()
        .messages
        .last()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

/// Export faults, each with one clear message and nothing lost: the export folder deleted since
/// it was chosen (made again, the file written), a read-only folder (the reason, no file, the
/// photo still ready to export).
#[test]
fn export_faults_give_one_message_and_lose_nothing() {
    let root = tempfile::tempdir().unwrap();
    let opts = options(root.path(), vec![common::photo("car-1.jpg")]);
    let chosen = opts.settings.as_ref().unwrap().export_dir.clone().unwrap();
    let mut h = harness(opts);
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });

    std::fs::remove_dir_all(&chosen).unwrap();
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the export", |app| exported(app).is_some());
    assert!(exported(h.state()).unwrap().starts_with(&chosen));
    assert!(chosen.join("car-1.png").is_file());
    assert!(
        h.state()
            .state()
            .messages
            .iter()
            .any(|m| m.text.contains("was missing and was made again")),
        "{:?}",
        h.state().state().messages
    );

    let read_only = root.path().join("read-only");
    let _unmount = common::mount_tmpfs(&read_only, "ro,size=1m");
    h.state_mut()
        .command(Command::SetExportFolder(read_only.clone()));
    let before = h.state().state().messages.len();
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the failed export", |app| {
        app.state().messages[before..].iter().any(|m| m.is_error)
    });
    let error = last_message(h.state());
    assert!(error.contains("Read-only file system"), "{error}");
    assert_eq!(
        std::fs::read_dir(&read_only).unwrap().count(),
        0,
        "nothing written"
    );
    assert!(
        !matches!(
            h.state().state().current_entry().unwrap().status,
            EntryStatus::Failed(_)
        ),
        "a failed write is not the photo's fault"
    );
    let elsewhere = root.path().join("elsewhere");
    h.state_mut()
        .command(Command::SetExportFolder(elsewhere.clone()));
    h.state_mut().command(Command::ExportAll);
    run_until(&mut h, "the export elsewhere", |app| {
        exported(app).is_some_and(|p| p.starts_with(&elsewhere))
    });

    // No file dialog: `first_hour::without_a_file_dialog_export_says_where_and_remembers_nothing`.
}
