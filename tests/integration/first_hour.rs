//! A new user's first hour (issue 33), through the real app under egui_kittest: two photos of
//! one name, a tight threshold, a broken photo, messages that belong to a photo, no file dialog,
//! an offline first start. Each test failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, app};

use std::{path::PathBuf, time::Instant};

use app::{harness, options, ready_with, run_until};
use cutout::{
    app::{Command, CutoutApp, EngineStatus, EntryId, EntryStatus},
    engine::Precision,
};
use egui_kittest::kittest::Queryable as _;

fn exported(app: &CutoutApp, entry: EntryId) -> Option<PathBuf> {
    app.state().entry(entry).and_then(|e| match &e.status {
        EntryStatus::Exported(p) => Some(p.clone()),
        _ => None,
    })
}

fn entry_named(app: &CutoutApp, folder: &str) -> EntryId {
    app.state()
        .entries
        .iter()
        .find(|e| matches!(&e.source, cutout::app::Source::File(p) if p.parent().unwrap().ends_with(folder)))
        .unwrap()
        .id
}

fn status_text(app: &CutoutApp) -> String {
    app.state()
        .status_message(Instant::now())
        .map(|(m, _)| m.text.clone())
        .unwrap_or_default()
}

/// Item 1: two different photos both named `car-1.jpg` are told apart in the queue, and the
/// second one's export does not replace the first one's cutout: it becomes `car-1 (2).png`, and
/// the message says so. Exporting either again replaces only its own file.
#[test]
fn an_export_never_replaces_another_photos_cutout() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("trip/a"), root.path().join("trip/b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::copy(common::photo("car-1.jpg"), a.join("car-1.jpg")).unwrap();
    std::fs::copy(common::photo("plants-1.jpg"), b.join("car-1.jpg")).unwrap();
    let opts = options(root.path(), vec![a.join("car-1.jpg"), b.join("car-1.jpg")]);
    let exports = opts.settings.as_ref().unwrap().export_dir.clone().unwrap();
    let mut h = harness(opts);
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    // The rows say which folder each photo is in.
    h.get_by_label("car-1.jpg — a");
    h.get_by_label("car-1.jpg — b");

    let first = entry_named(h.state(), "a");
    let second = entry_named(h.state(), "b");
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the first photo's export", |app| {
        exported(app, first).is_some()
    });
    let first_png = exports.join("car-1.png");
    assert_eq!(exported(h.state(), first).unwrap(), first_png);
    let first_bytes = std::fs::read(&first_png).unwrap();

    h.get_by_label("car-1.jpg — b").click();
    run_until(&mut h, "the second photo's mask", |app| {
        app.state()
            .current
            .as_ref()
            .is_some_and(|c| c.entry == second)
            && ready_with(app, Precision::Fp32)
    });
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the second photo's export", |app| {
        exported(app, second).is_some()
    });
    let second_png = exports.join("car-1 (2).png");
    assert_eq!(exported(h.state(), second).unwrap(), second_png);
    assert_eq!(
        std::fs::read(&first_png).unwrap(),
        first_bytes,
        "the first photo's cutout is untouched"
    );
    let said = status_text(h.state());
    assert!(
        said.contains("car-1.png there holds another photo's cutout")
            && said.contains("car-1 (2).png"),
        "{said}"
    );
    let (w1, w2) = (
        image::image_dimensions(&first_png).unwrap(),
        image::image_dimensions(&second_png).unwrap(),
    );
    assert_ne!(w1, w2, "two different photos' cutouts");

    // The second photo again: its own file is replaced, nothing new appears.
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the second photo's export again", |app| {
        app.state()
            .messages
            .iter()
            .filter(|m| m.text.contains("car-1 (2).png"))
            .count()
            == 2
    });
    let mut names: Vec<String> = std::fs::read_dir(&exports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["car-1 (2).png", "car-1.png"]);
}

/// Item 2: a threshold near 1 tightens the cutout; it does not make the subject see-through.
/// (With the ramp centred on 0.96 and 1.0 wide, mask 1 used to get alpha 0.54.)
#[test]
fn a_high_threshold_keeps_the_subject_opaque() {
    let root = tempfile::tempdir().unwrap();
    let opts = options(root.path(), vec![common::photo("car-1.jpg")]);
    let exports = opts.settings.as_ref().unwrap().export_dir.clone().unwrap();
    let mut h = harness(opts);
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    let sliders: Vec<_> = h.get_all_by_role(egui::accesskit::Role::Slider).collect();
    sliders[0].set_value_accesskit(0.96);
    h.run_steps(2);
    assert!((h.state().settings().composite.threshold - 0.96).abs() < 1e-6);
    let mask = h
        .state()
        .state()
        .current
        .as_ref()
        .unwrap()
        .mask
        .clone()
        .unwrap();
    h.state_mut().command(Command::Export);
    let entry = h.state().state().current.as_ref().unwrap().entry;
    run_until(&mut h, "the export", |app| exported(app, entry).is_some());
    let png = image::open(exports.join("car-1.png")).unwrap().to_rgba8();
    let sure: Vec<u8> = png
        .pixels()
        .zip(mask.pixels())
        .filter(|(_, m)| m.0[0] >= 253)
        .map(|(p, _)| p.0[3])
        .collect();
    assert!(sure.len() > 10_000, "the car is there: {}", sure.len());
    let faintest = *sure.iter().min().unwrap();
    assert!(
        faintest >= 230,
        "pixels the network is sure of stay opaque at threshold 0.96; faintest alpha {faintest}"
    );
}

/// Items 3 and 4: a photo that cannot be opened shows why on the canvas and on its row (not
/// "Loading the photo…" for ever), and a message about one photo is not shown while another is
/// on screen.
#[test]
fn a_failed_photo_shows_its_reason_and_messages_stay_with_their_photo() {
    let root = tempfile::tempdir().unwrap();
    let broken = root.path().join("broken.jpg");
    let mut bytes = std::fs::read(common::photo("cloth-1.jpg")).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&broken, bytes).unwrap();
    let mut h = harness(options(
        root.path(),
        vec![common::photo("car-1.jpg"), broken],
    ));
    run_until(&mut h, "both photos processed", |app| {
        ready_with(app, Precision::Fp32)
            && app
                .state()
                .entries
                .iter()
                .all(|e| e.status != EntryStatus::Pending)
    });
    let good = h.state().state().entries[0].id;
    h.state_mut().command(Command::Export);
    run_until(&mut h, "the export", |app| exported(app, good).is_some());
    assert!(status_text(h.state()).contains("exported"));

    h.get_by_label("broken.jpg").click();
    run_until(&mut h, "the broken photo on screen", |app| {
        app.state()
            .current
            .as_ref()
            .is_some_and(|c| c.entry != good && !c.busy)
    });
    h.run_steps(2);
    h.get_by_label("This photo could not be opened");
    // The reason on the canvas, on the photo's row and in the status bar.
    assert_eq!(
        h.get_all_by_label_contains("damaged or incomplete").count(),
        3
    );
    h.get_by_label_contains("failed: the image is damaged");
    let said = status_text(h.state());
    assert!(
        !said.contains("exported"),
        "the other photo's export message is not shown over this one: {said}"
    );
    assert!(said.contains("broken.jpg"), "{said}");

    // Back to the good photo: the broken one's error is not shown over it.
    h.get_by_label("car-1.jpg").click();
    run_until(&mut h, "the good photo again", |app| {
        ready_with(app, Precision::Fp32)
    });
    let said = status_text(h.state());
    assert!(!said.contains("broken.jpg"), "{said}");
}

/// Item 5: with no file dialog on the desktop, Export writes to the default folder, says so
/// where it stays visible (the Export panel), and does not remember that folder as a choice.
#[test]
fn without_a_file_dialog_export_says_where_and_remembers_nothing() {
    let Some(why) = cutout::app::file_dialog_missing() else {
        eprintln!("this desktop has a file dialog; the no-dialog case cannot be shown here");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let mut opts = options(root.path(), vec![common::photo("car-1.jpg")]);
    opts.settings.as_mut().unwrap().export_dir = None;
    let default = opts.dirs.default_export_dir.clone();
    let mut h = harness(opts);
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    h.get_by_label_contains("until you type a folder above");
    h.state_mut().command(Command::Export);
    let entry = h.state().state().current.as_ref().unwrap().entry;
    run_until(&mut h, "the export", |app| exported(app, entry).is_some());
    assert!(default.join("car-1.png").is_file());
    assert_eq!(
        h.state().settings().export_dir,
        None,
        "a folder the user did not choose is not remembered"
    );
    let said = status_text(h.state());
    assert!(
        said.contains(&why) && said.contains(&default.display().to_string()),
        "{said}"
    );
    h.get_by_label_contains("until you type a folder above");
}

/// Item 7: an offline first start whose default model cannot be fetched is not a dead end: the
/// Engine panel offers the model already on the machine, and once it runs, the download error
/// is gone from the status bar.
#[test]
fn an_offline_first_start_offers_the_model_on_disk() {
    let isnet = common::isnet_model().path;
    let root = tempfile::tempdir().unwrap();
    let mut opts = options(root.path(), vec![common::photo("car-1.jpg")]);
    // A models folder with IS-Net only: u2netp (the CPU default) must be downloaded, and this
    // machine reaches no download host but the package registries.
    let models = opts.dirs.models_dir();
    std::fs::remove_file(models.join("u2netp.onnx")).unwrap();
    std::os::unix::fs::symlink(&isnet, models.join(isnet.file_name().unwrap())).unwrap();
    opts.settings.as_mut().unwrap().model =
        cutout::app::settings::Choice::Fixed("u2netp".to_owned());
    let mut h = harness(opts);
    run_until(&mut h, "the failed start", |app| {
        matches!(app.state().engine, EngineStatus::Failed(_))
    });
    assert!(status_text(h.state()).contains("could not"));
    h.run_steps(2);
    h.get_by_label_contains("This photo waits for the model");
    h.get_by_label("Try again");
    h.get_by_label("Use isnet (on this machine)").click();
    run_until(
        &mut h,
        "IS-Net running",
        |app| matches!(&app.state().engine, EngineStatus::Ready { model, .. } if model == "isnet"),
    );
    let said = status_text(h.state());
    assert!(!said.contains("could not"), "{said}");
    h.run_steps(2);
    assert!(
        h.query_by_label_contains(": ; not fetched").is_none(),
        "the other model's line reads cleanly"
    );
    h.get_by_label_contains("u2netp: not fetched yet");
}

/// Item 8: while the session reloads (a precision switch), the Engine panel keeps its place;
/// before, its long progress line widened it past the window's edge and the canvas took its
/// place for 0.5–1 s.
#[test]
fn the_canvas_keeps_its_place_while_the_session_reloads() {
    let root = tempfile::tempdir().unwrap();
    let mut h = harness(options(root.path(), vec![common::photo("car-1.jpg")]));
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    let before = h.state().canvas();
    // Step through the reload frame by frame and compare the canvas each time.
    h.get_by_label("FP16").click();
    let mut reloading_frames = 0;
    let started = Instant::now();
    loop {
        h.step();
        let app = h.state();
        if matches!(app.state().engine, EngineStatus::Configuring { .. }) {
            reloading_frames += 1;
            assert_eq!(
                app.canvas(),
                before,
                "the canvas moved while the session reloaded"
            );
        }
        if ready_with(app, Precision::Fp16) {
            break;
        }
        assert!(started.elapsed() < app::WAIT, "the FP16 session never came");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(reloading_frames > 0, "a reload was seen");
}

/// Item 10, the smaller things: the colour picker draws every glyph it shows (egui_kittest
/// refuses a missing one; the copy button's was), Help → About names the version, and a pasted
/// image gets its queue picture at once.
#[test]
fn the_colour_picker_about_and_a_pasted_thumbnail() {
    let root = tempfile::tempdir().unwrap();
    let mut h = harness(options(root.path(), Vec::new()));
    run_until(&mut h, "the engine", |app| {
        matches!(app.state().engine, EngineStatus::Ready { .. })
    });
    h.state_mut().settings_mut().composite.background = cutout::image_ops::Background::Color;
    h.run_steps(2);
    h.get_by_role(egui::accesskit::Role::ColorWell).click();
    h.run_steps(3);
    h.render().expect("the picker renders");

    h.get_by_label("Help").click();
    h.run_steps(2);
    h.get_by_label("About cutout").click();
    h.run_steps(4);
    assert!(h.state().state().show_about, "the About window is open");
    h.get_by_label(&format!("cutout {}", env!("CARGO_PKG_VERSION")));
    h.get_by_label_contains("ONNX Runtime: 1.");

    let pixels = vec![egui::Color32::from_rgb(200, 40, 40); 64 * 48];
    let image = egui::ColorImage::new([64, 48], pixels);
    h.input_mut()
        .events
        .push(egui::Event::PasteImage(std::sync::Arc::new(image)));
    h.run_steps(2);
    let pasted = h.state().state().entries.last().unwrap();
    assert_eq!(pasted.name, "Pasted image 1");
    assert!(
        pasted.thumbnail.is_some(),
        "the pasted image has its picture"
    );
}
