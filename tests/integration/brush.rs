//! The touch-up brush through egui_kittest with the real renderer: a stroke dragged with the
//! pointer changes the export only inside its footprint, undo gives back the export byte for
//! byte, and the preview shows the edit. Also the painting frame-time measurement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, app};

use std::{path::PathBuf, time::Instant};

use app::{harness, options, ready_with, run_until};
use cutout::{
    app::{Command, CutoutApp, EntryStatus},
    engine::Precision,
    image_ops::edits::{BrushMode, Stroke},
};
use egui_kittest::Harness;

/// Exports the photo on screen and returns the written file's bytes (the file is removed, so the
/// next export takes the same name).
fn export_bytes(h: &mut Harness<'static, CutoutApp>, what: &str) -> Vec<u8> {
    h.state_mut().command(Command::Export);
    let exported = |app: &CutoutApp| -> Option<PathBuf> {
        app.state().current_entry().and_then(|e| match &e.status {
            EntryStatus::Exported(p) if p.exists() => Some(p.clone()),
            _ => None,
        })
    };
    run_until(h, what, |app| exported(app).is_some());
    let path = exported(h.state()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn rgba(png: &[u8]) -> image::RgbaImage {
    image::load_from_memory(png).unwrap().to_rgba8()
}

/// Screen position of a photo pixel on the canvas.
fn on_screen(app: &CutoutApp, x: f32, y: f32) -> egui::Pos2 {
    let size = app.state().current.as_ref().unwrap().texture_size.unwrap();
    let photo = app.view().screen_rect(app.canvas(), size);
    photo.min + egui::vec2(x, y) * (photo.width() / size[0] as f32)
}

/// Drags the primary button through `points` (screen), a frame per point.
fn drag(h: &mut Harness<'static, CutoutApp>, points: &[egui::Pos2]) {
    h.hover_at(points[0]);
    h.step();
    h.drag_at(points[0]);
    h.step();
    for p in &points[1..] {
        h.hover_at(*p);
        h.step();
    }
    h.drop_at(*points.last().unwrap());
    h.run_steps(3);
}

/// Distance from a pixel centre to the stroke's polyline.
fn distance_to(stroke: &Stroke, x: u32, y: u32) -> f32 {
    let p = [x as f32 + 0.5, y as f32 + 0.5];
    let segment = |a: [f32; 2], b: [f32; 2]| {
        let d = [b[0] - a[0], b[1] - a[1]];
        let len2 = d[0] * d[0] + d[1] * d[1];
        let t = if len2 > 0.0 {
            (((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1]) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (p[0] - a[0] - t * d[0]).hypot(p[1] - a[1] - t * d[1])
    };
    let points = &stroke.points;
    std::iter::once(segment(points[0], points[0]))
        .chain(points.windows(2).map(|w| segment(w[0], w[1])))
        .fold(f32::MAX, f32::min)
}

fn screen_pixel(h: &mut Harness<'static, CutoutApp>, at: egui::Pos2) -> [u8; 4] {
    let shot = h.render().expect("render");
    let ppp = h.ctx.pixels_per_point();
    shot.get_pixel((at.x * ppp) as u32, (at.y * ppp) as u32).0
}

#[test]
fn a_dragged_stroke_changes_the_export_only_in_its_footprint_and_undo_restores_it() {
    let root = tempfile::tempdir().unwrap();
    let photo = common::photo("car-1.jpg");
    let mut h = harness(options(root.path(), vec![photo]));
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    let before = export_bytes(&mut h, "the export before the stroke");
    let plain = rgba(&before);
    let (w, ht) = plain.dimensions();
    assert!(plain.get_pixel(w / 2, ht / 2).0[3] > 200, "the car is kept");

    // E takes the Erase brush; the canvas paints with it.
    h.state_mut().settings_mut().brush.radius_pt = 12.0;
    h.key_press(egui::Key::E);
    h.run_steps(2);
    assert_eq!(h.state().state().tool, Some(BrushMode::Erase));
    let path: Vec<egui::Pos2> = (0..=8)
        .map(|i| {
            on_screen(
                h.state(),
                w as f32 * (0.35 + 0.03 * i as f32),
                ht as f32 * 0.5,
            )
        })
        .collect();
    let shown_before = screen_pixel(&mut h, path[4]);
    drag(&mut h, &path);
    let strokes = h.state().state().current_edits().unwrap().strokes();
    assert_eq!(strokes.len(), 1, "one stroke in the history");
    let stroke = strokes[0].clone();
    assert_eq!(stroke.brush.mode, BrushMode::Erase);
    eprintln!(
        "stroke: {} points, radius {:.1} px",
        stroke.points.len(),
        stroke.brush.radius_px
    );

    // The preview shows it (the composite shader applies the edit layer).
    let shown_after = screen_pixel(&mut h, path[4]);
    assert_ne!(
        shown_before, shown_after,
        "the preview shows the erased car"
    );

    // The export: erased inside the footprint, byte for byte the same outside it.
    let edited = rgba(&export_bytes(&mut h, "the export after the stroke"));
    let mut changed = 0;
    for (x, y, px) in edited.enumerate_pixels() {
        let d = distance_to(&stroke, x, y);
        if d >= stroke.brush.radius_px + 0.5 {
            assert_eq!(
                px,
                plain.get_pixel(x, y),
                "({x}, {y}) is outside the footprint"
            );
        } else if px != plain.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(changed > 500, "the stroke erased {changed} px only");
    let mid = stroke.points[stroke.points.len() / 2];
    assert_eq!(edited.get_pixel(mid[0] as u32, mid[1] as u32).0[3], 0);

    // Ctrl+Z: the export is the one before the stroke, byte for byte; the preview too.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(3);
    assert!(
        h.state()
            .state()
            .current_edits()
            .unwrap()
            .strokes()
            .is_empty()
    );
    assert_eq!(
        export_bytes(&mut h, "the export after undo"),
        before,
        "undo restores the export byte for byte"
    );
    assert_eq!(screen_pixel(&mut h, path[4]), shown_before);

    // Ctrl+Shift+Z puts it back; Reset edits drops it, Undo brings it back.
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.run_steps(3);
    assert_eq!(rgba(&export_bytes(&mut h, "the export after redo")), edited);
    h.state_mut()
        .command(Command::Edit(cutout::app::EditStep::Reset));
    h.run_steps(2);
    assert_eq!(export_bytes(&mut h, "the export after reset"), before);
    h.state_mut()
        .command(Command::Edit(cutout::app::EditStep::Undo));
    h.run_steps(2);
    assert_eq!(
        rgba(&export_bytes(&mut h, "the export after undoing the reset")),
        edited
    );

    // Edits are a layer of their own: they survive a re-run of the network (FP16 here).
    h.state_mut()
        .command(Command::SetPrecision(Precision::Fp16));
    run_until(&mut h, "the FP16 mask", |app| {
        ready_with(app, Precision::Fp16)
    });
    assert_eq!(
        h.state().state().current_edits().unwrap().strokes(),
        vec![stroke]
    );
    let fp16 = rgba(&export_bytes(&mut h, "the FP16 export"));
    assert_eq!(fp16.get_pixel(mid[0] as u32, mid[1] as u32).0[3], 0);
}

/// Frame times while painting on a 12 MP photo: the app in egui_kittest with the real renderer
/// (lavapipe here), the Keep brush dragged back and forth across the photo for 300 frames, each
/// frame timed as a whole (input, painting the layer, uploading the changed part, the composite).
/// Prints min, median, p99 and max.
#[test]
#[ignore = "a measurement; run it on purpose"]
fn painting_frame_times_on_a_12_mp_photo() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("photo-12mp.png");
    image::open(common::photo("car-1.jpg"))
        .unwrap()
        .resize_exact(4000, 3000, image::imageops::FilterType::Triangle)
        .save(&path)
        .unwrap();
    let mut h = harness(options(root.path(), vec![path]));
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    // The same frames without a brush (the pointer only hovers), for comparison.
    let mut idle = Vec::new();
    for i in 0..100 {
        h.hover_at(on_screen(h.state(), 400.0 + i as f32 * 30.0, 1500.0));
        let started = Instant::now();
        h.step();
        h.render().expect("render");
        idle.push(started.elapsed().as_secs_f64() * 1e3);
    }
    idle.sort_by(f64::total_cmp);
    eprintln!(
        "no brush, 12 MP: median {:.1} ms, p99 {:.1} ms",
        idle[50], idle[98]
    );
    for edge_aware in [false, true] {
        h.state_mut().settings_mut().brush.edge_aware = edge_aware;
        h.state_mut()
            .command(Command::PickBrush(Some(BrushMode::Keep)));
        h.run_steps(3);
        let start = on_screen(h.state(), 400.0, 600.0);
        h.hover_at(start);
        h.step();
        h.drag_at(start);
        h.step();
        let mut frames = Vec::new();
        for i in 0..300 {
            let t = i as f32 / 300.0;
            let x = 400.0 + 3200.0 * (t * std::f32::consts::TAU * 2.0).sin().abs();
            let y = 600.0 + 1800.0 * t;
            h.hover_at(on_screen(h.state(), x, y));
            let started = Instant::now();
            h.step();
            h.render().expect("render");
            frames.push(started.elapsed().as_secs_f64() * 1e3);
        }
        h.drop_at(on_screen(h.state(), 400.0, 2400.0));
        let released = Instant::now();
        h.step();
        let finish_ms = released.elapsed().as_secs_f64() * 1e3;
        h.run_steps(2);
        frames.sort_by(f64::total_cmp);
        let at = |q: f64| frames[((frames.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "painting on 12 MP, edge-aware {edge_aware}: {} frames, min {:.1} ms, median {:.1} ms, p99 {:.1} ms, max {:.1} ms; release {:.0} ms; history {} B",
            frames.len(),
            at(0.0),
            at(0.5),
            at(0.99),
            at(1.0),
            finish_ms,
            h.state().state().current_edits().unwrap().bytes()
        );
        h.state_mut().command(Command::PickBrush(None));
        h.run_steps(2);
    }
}

/// The README's before/after picture, made through the app: CUTOUT_BRUSH_PHOTO (scikit-image's
/// astronaut) on a blue background, an Erase stroke dragged down the left edge where u2netp kept
/// a strip of the flag, and the two exports written to CUTOUT_BRUSH_OUT.
#[test]
#[ignore = "makes the README picture; run it on purpose"]
fn readme_before_and_after_picture() {
    let (Some(photo), Some(out)) = (
        std::env::var_os("CUTOUT_BRUSH_PHOTO"),
        std::env::var_os("CUTOUT_BRUSH_OUT"),
    ) else {
        panic!("set CUTOUT_BRUSH_PHOTO and CUTOUT_BRUSH_OUT");
    };
    let root = tempfile::tempdir().unwrap();
    let mut opts = options(root.path(), vec![PathBuf::from(photo)]);
    if let Some(s) = &mut opts.settings {
        s.composite.background = cutout::image_ops::Background::Color;
        s.composite.color = [16, 64, 255];
        s.brush.hardness = 0.6;
    }
    let mut h = harness(opts);
    run_until(&mut h, "the first mask", |app| {
        ready_with(app, Precision::Fp32)
    });
    let out = PathBuf::from(out);
    std::fs::write(out.join("brush-before.png"), export_bytes(&mut h, "before")).unwrap();
    let size = h
        .state()
        .state()
        .current
        .as_ref()
        .unwrap()
        .texture_size
        .unwrap();
    let scale = h.state().view().scale(h.state().canvas(), size);
    h.state_mut()
        .command(Command::PickBrush(Some(BrushMode::Erase)));
    h.run_steps(2);
    // Down the photo's left edge, a smaller stroke where the flag meets the arm, and two
    // edge-aware ones along the arm, which erase the flag's colours and leave the orange sleeve.
    for (radius, edge_aware, points) in [
        (15.0, false, vec![[5.0, 200.0], [5.0, 360.0], [5.0, 511.0]]),
        (
            11.0,
            false,
            vec![[27.0, 188.0], [24.0, 220.0], [16.0, 262.0]],
        ),
        (9.0, true, vec![[19.0, 245.0], [19.0, 290.0]]),
        (9.0, true, vec![[18.0, 375.0], [19.0, 440.0], [20.0, 511.0]]),
    ] {
        h.state_mut().settings_mut().brush.radius_pt = radius * scale;
        h.state_mut().settings_mut().brush.edge_aware = edge_aware;
        let path: Vec<egui::Pos2> = points
            .iter()
            .map(|p: &[f32; 2]| on_screen(h.state(), p[0], p[1]))
            .collect();
        drag(&mut h, &path);
    }
    std::fs::write(out.join("brush-after.png"), export_bytes(&mut h, "after")).unwrap();
}
