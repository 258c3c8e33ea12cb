//! The worker thread with the real model on the CPU provider: requests in, responses out, stale
//! previews skipped, failures reported and survived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{path::PathBuf, sync::Arc, time::Duration};

use cutout::{
    engine::{ModelChoice, ProviderKind, ProviderRequest, SegmenterOptions},
    image_ops::DecodeLimits,
    image_ops::{Background, CompositeSettings, Target},
    paths::AppDirs,
    worker::{ExportSource, JobKind, PhotoError, Request, Response, Worker},
};

const WAIT: Duration = Duration::from_secs(60);

/// A worker whose data folder holds a copy of the real model (ONNX Runtime itself comes from the
/// user's runtime folder, loaded once per process).
fn worker() -> (Worker, tempfile::TempDir) {
    cutout::engine::runtime::load(&AppDirs::from_env()).unwrap_or_else(|e| {
        panic!("ONNX Runtime is needed ({e}); run `cargo run --release -- setup`")
    });
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = AppDirs {
        data_dir: root.path().join("data"),
        cache_dir: common::cache_dir(),
        config_dir: root.path().join("config"),
        default_export_dir: root.path().join("default-exports"),
    };
    std::fs::create_dir_all(dirs.models_dir()).expect("mkdir");
    std::fs::copy(
        common::models_dir().join("u2netp.onnx"),
        dirs.models_dir().join("u2netp.onnx"),
    )
    .expect("copy model");
    let worker = Worker::spawn(dirs, DecodeLimits::default(), || {}).expect("spawn");
    (worker, root)
}

/// The response that ends a configuration (after its progress lines).
fn settled(worker: &Worker) -> Option<Response> {
    loop {
        match worker.recv_timeout(WAIT) {
            Some(Response::Configuring { .. } | Response::Fetching { .. }) => {}
            other => return other,
        }
    }
}

fn configure_cpu(worker: &Worker) {
    let options = SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        ..SegmenterOptions::default()
    };
    worker
        .send(Request::Configure {
            model: ModelChoice::default(),
            options,
        })
        .expect("send");
    assert!(matches!(
        worker.recv_timeout(WAIT),
        Some(Response::Configuring { .. })
    ));
    match settled(worker) {
        Some(Response::Ready {
            report,
            input_side_px,
            ..
        }) => {
            assert_eq!(report.provider, ProviderKind::Cpu);
            assert_eq!(input_side_px, 320);
        }
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn photo(name: &str) -> PathBuf {
    common::shared_dir()
        .join("testdata/rembg/fixtures")
        .join(name)
}

#[test]
fn a_photo_is_decoded_then_masked() {
    let (worker, _root) = worker();
    configure_cpu(&worker);
    let id = worker.next_id(JobKind::Preview);
    worker
        .send(Request::SegmentFile {
            id,
            kind: JobKind::Preview,
            path: photo("car-1.jpg"),
        })
        .expect("send");
    match worker.recv_timeout(WAIT) {
        Some(Response::Decoded {
            id: got,
            rgb,
            thumbnail,
            ..
        }) => {
            assert_eq!(got, id);
            assert_eq!(rgb.dimensions(), (480, 360));
            assert_eq!(thumbnail.dimensions(), (96, 72));
        }
        other => panic!("expected Decoded, got {other:?}"),
    }
    match worker.recv_timeout(WAIT) {
        Some(Response::Mask {
            id: got,
            mask,
            timings,
            ran,
        }) => {
            assert_eq!(got, id);
            assert_eq!(ran.provider, ProviderKind::Cpu);
            assert_eq!(ran.input_side_px, 320);
            assert_eq!(mask.dimensions(), (480, 360));
            assert!(mask.get_pixel(240, 200).0[0] > 200 && mask.get_pixel(2, 2).0[0] < 50);
            assert!(timings.infer_ms > 0.0 && timings.decode_ms > 0.0);
        }
        other => panic!("expected Mask, got {other:?}"),
    }
}

#[test]
fn a_bad_file_in_the_queue_fails_alone() {
    let (worker, root) = worker();
    configure_cpu(&worker);
    let broken = root.path().join("broken.jpg");
    std::fs::write(&broken, b"\xFF\xD8\xFF\xE0 truncated").expect("write");
    let paths = [photo("car-1.jpg"), broken, photo("cloth-1.jpg")];
    let ids: Vec<u64> = paths
        .iter()
        .map(|_| worker.next_id(JobKind::Queue))
        .collect();
    for (id, path) in ids.iter().zip(&paths) {
        worker
            .send(Request::SegmentFile {
                id: *id,
                kind: JobKind::Queue,
                path: path.clone(),
            })
            .expect("send");
    }
    let (mut masks, mut failures) = (Vec::new(), Vec::new());
    while masks.len() + failures.len() < 3 {
        match worker.recv_timeout(WAIT).expect("a response") {
            Response::Mask { id, .. } => masks.push(id),
            Response::Failed { id, error } => failures.push((id, error)),
            Response::Decoded { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(masks, vec![ids[0], ids[2]], "queue jobs are never skipped");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, ids[1]);
    assert!(
        matches!(failures[0].1, PhotoError::Photo(_)),
        "a broken photo is the photo's fault: {:?}",
        failures[0].1
    );
    let message = failures[0].1.to_string();
    assert!(message.contains("broken.jpg"), "{message}");
}

#[test]
fn superseded_previews_are_skipped() {
    let (worker, _root) = worker();
    configure_cpu(&worker);
    let rgb = Arc::new(image::open(photo("car-1.jpg")).expect("photo").into_rgb8());
    // Ids are handed out before any job is sent, so the first two are stale when they run.
    let ids: Vec<u64> = (0..3).map(|_| worker.next_id(JobKind::Preview)).collect();
    assert_eq!(worker.current_preview(), ids[2]);
    for &id in &ids {
        worker
            .send(Request::SegmentImage {
                id,
                kind: JobKind::Preview,
                name: "clipboard".into(),
                rgb: Arc::clone(&rgb),
            })
            .expect("send");
    }
    match worker.recv_timeout(WAIT) {
        Some(Response::Mask { id, .. }) => assert_eq!(id, ids[2], "only the newest preview runs"),
        other => panic!("expected the newest mask, got {other:?}"),
    }
    assert!(
        worker.recv_timeout(Duration::from_millis(500)).is_none(),
        "nothing else arrives"
    );
}

#[test]
fn work_before_a_model_and_a_bad_model_are_reported() {
    let (worker, root) = worker();
    let id = worker.next_id(JobKind::Queue);
    worker
        .send(Request::SegmentFile {
            id,
            kind: JobKind::Queue,
            path: photo("car-1.jpg"),
        })
        .expect("send");
    assert!(matches!(
        worker.recv_timeout(WAIT),
        Some(Response::Decoded { .. })
    ));
    match worker.recv_timeout(WAIT) {
        Some(Response::Failed {
            error: error @ PhotoError::NoModel { .. },
            ..
        }) => {
            assert!(error.to_string().contains("no model is loaded"), "{error}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let fake = root.path().join("fake.onnx");
    std::fs::write(&fake, b"not a model").expect("write");
    worker
        .send(Request::Configure {
            model: ModelChoice::Custom(fake),
            options: SegmenterOptions::default(),
        })
        .expect("send");
    assert!(matches!(
        worker.recv_timeout(WAIT),
        Some(Response::Configuring { .. })
    ));
    match settled(&worker) {
        Some(Response::ConfigureFailed { error, .. }) => {
            let error = error.to_string();
            assert!(error.contains("not a readable ONNX model"), "{error}");
        }
        other => panic!("expected ConfigureFailed, got {other:?}"),
    }
    // Still serving: a good configuration afterwards works.
    configure_cpu(&worker);
}

#[test]
fn an_export_of_a_file_paints_its_touch_up_strokes_on_it() {
    use cutout::image_ops::edits::{Brush, BrushMode, Stroke};
    let (worker, root) = worker();
    configure_cpu(&worker);
    let export = |name: &str, edits: Vec<Stroke>| {
        let out = root.path().join(name);
        let id = worker.next_id(JobKind::Queue);
        worker
            .send(Request::Export {
                id,
                source: ExportSource::File(photo("car-1.jpg")),
                settings: CompositeSettings::default(),
                edits,
                output: Target::exact(out.clone(), None),
                keep_exif: false,
            })
            .expect("send");
        match worker.recv_timeout(WAIT) {
            Some(Response::Exported { id: got, .. }) => assert_eq!(got, id),
            other => panic!("expected Exported, got {other:?}"),
        }
        image::open(&out).expect("png").to_rgba8()
    };
    let plain = export("plain.png", Vec::new());
    let (w, h) = plain.dimensions();
    let centre = [w as f32 / 2.0, h as f32 / 2.0];
    assert!(plain.get_pixel(w / 2, h / 2).0[3] > 200, "the car is kept");
    assert_eq!(plain.get_pixel(3, 3).0[3], 0, "the corner is background");
    let brush = |mode| Brush {
        mode,
        radius_px: 10.0,
        hardness: 1.0,
        edge_aware: false,
    };
    let edited = export(
        "edited.png",
        vec![
            Stroke {
                brush: brush(BrushMode::Erase),
                points: vec![centre],
            },
            Stroke {
                brush: brush(BrushMode::Keep),
                points: vec![[3.5, 3.5]],
            },
        ],
    );
    assert_eq!(edited.get_pixel(w / 2, h / 2).0, [0; 4], "erased");
    let decoded = cutout::image_ops::decode_file(&photo("car-1.jpg"), Default::default())
        .unwrap()
        .rgb;
    let corner = decoded.get_pixel(3, 3).0;
    assert_eq!(
        edited.get_pixel(3, 3).0,
        [corner[0], corner[1], corner[2], 255],
        "kept"
    );
    for (x, y, px) in edited.enumerate_pixels() {
        let near = |c: [f32; 2]| (x as f32 + 0.5 - c[0]).hypot(y as f32 + 0.5 - c[1]) < 11.0;
        if !near(centre) && !near([3.5, 3.5]) {
            assert_eq!(
                px,
                plain.get_pixel(x, y),
                "({x}, {y}) is outside both strokes"
            );
        }
    }
}

#[test]
fn exports_are_written_atomically_and_bad_destinations_fail_cleanly() {
    let (worker, root) = worker();
    configure_cpu(&worker);
    let out = root.path().join("car.png");
    let id = worker.next_id(JobKind::Queue);
    worker
        .send(Request::Export {
            id,
            source: ExportSource::File(photo("car-1.jpg")),
            settings: CompositeSettings {
                background: Background::Color,
                color: [0, 255, 0],
                ..CompositeSettings::default()
            },
            edits: Vec::new(),
            output: Target::exact(out.clone(), None),
            keep_exif: false,
        })
        .expect("send");
    match worker.recv_timeout(WAIT) {
        Some(Response::Exported { id: got, path, .. }) => {
            assert_eq!((got, path), (id, out.clone()));
        }
        other => panic!("expected Exported, got {other:?}"),
    }
    let written = image::open(&out).expect("png");
    assert_eq!(
        written.color(),
        image::ColorType::Rgb8,
        "opaque background: no alpha channel"
    );
    assert_eq!(written.to_rgb8().get_pixel(2, 2).0, [0, 255, 0]);

    let missing = root.path().join("no/such/folder/car.png");
    let id = worker.next_id(JobKind::Queue);
    worker
        .send(Request::Export {
            id,
            source: ExportSource::File(photo("car-1.jpg")),
            settings: CompositeSettings::default(),
            edits: Vec::new(),
            output: Target::exact(missing.clone(), None),
            keep_exif: false,
        })
        .expect("send");
    match worker.recv_timeout(WAIT) {
        Some(Response::Failed { id: got, error }) => {
            assert_eq!(got, id);
            assert!(matches!(error, PhotoError::Write(_)), "{error:?}");
            assert!(error.to_string().contains("does not exist"), "{error}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(!missing.exists());
}

/// Resident memory of this process, bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Live mode: the same photo re-run again and again, each mask answered before the next request
/// (as the app does). Memory must settle after the first runs, not grow with every run.
#[test]
fn live_reruns_do_not_grow_memory() {
    let (worker, _root) = worker();
    configure_cpu(&worker);
    let rgb = Arc::new(image::open(photo("cloth-1.jpg")).expect("photo").to_rgb8());
    let run = |n: usize| {
        for _ in 0..n {
            let id = worker.next_id(JobKind::Preview);
            worker
                .send(Request::SegmentImage {
                    id,
                    kind: JobKind::Preview,
                    name: "live".to_owned(),
                    rgb: Arc::clone(&rgb),
                })
                .expect("send");
            match worker.recv_timeout(WAIT) {
                Some(Response::Mask { id: got, .. }) => assert_eq!(got, id),
                other => panic!("expected Mask, got {other:?}"),
            }
        }
    };
    run(20);
    let before = resident_bytes();
    run(150);
    let after = resident_bytes();
    let growth_mb = (after.saturating_sub(before)) as f64 / 1e6;
    eprintln!(
        "resident memory: {:.1} MB after 20 runs, {:.1} MB after 150 more ({growth_mb:.1} MB growth)",
        before as f64 / 1e6,
        after as f64 / 1e6
    );
    assert!(
        growth_mb < 30.0,
        "Live re-runs grew memory by {growth_mb:.1} MB"
    );
}

/// A prepared model in the cache that was damaged after it was made (cut short here) is not
/// trusted: the session that cannot load it makes it again and runs.
#[test]
fn a_damaged_prepared_model_in_the_cache_is_made_again() {
    let runtime = cutout::engine::runtime::load(&AppDirs::from_env()).expect("ONNX Runtime");
    let cache = tempfile::tempdir().expect("tempdir");
    let options = SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        ..SegmenterOptions::default()
    };
    let model = common::shared_model();
    let open = || cutout::engine::Segmenter::new(&runtime, &model, &options, cache.path());
    drop(open().expect("first session"));
    let prepared: Vec<PathBuf> = std::fs::read_dir(cache.path().join("prepared"))
        .expect("the prepared models folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(prepared.len(), 1, "{prepared:?}");
    let full = std::fs::metadata(&prepared[0]).expect("size").len();
    let bytes = std::fs::read(&prepared[0]).expect("read");
    std::fs::write(&prepared[0], &bytes[..bytes.len() / 3]).expect("truncate");
    let mut segmenter = open().expect("a session despite the damaged cache entry");
    assert_eq!(std::fs::metadata(&prepared[0]).expect("size").len(), full);
    let rgb = image::open(photo("car-1.jpg")).expect("photo").to_rgb8();
    let (mask, _) = segmenter.segment(&rgb).expect("segment");
    assert_eq!(mask.dimensions(), rgb.dimensions());
}

/// Previews have a lane of their own: with the queue lane full of 12 MP exports, a preview is
/// answered after at most the export in hand and the next. Dropping the worker then returns
/// after the request in hand instead of working through the queue, and leaves no partial file.
#[test]
fn a_preview_goes_ahead_of_queued_exports_and_closing_leaves_the_queue() {
    let (worker, root) = worker();
    configure_cpu(&worker);
    let big = Arc::new(
        image::open(common::photo("cloth-1.jpg"))
            .unwrap()
            .resize_exact(3000, 4000, image::imageops::FilterType::Triangle)
            .to_rgb8(),
    );
    let out = root.path().join("exports");
    std::fs::create_dir_all(&out).unwrap();
    let exports = 16;
    for i in 0..exports {
        let id = worker.next_id(JobKind::Queue);
        worker
            .send(Request::Export {
                id,
                source: ExportSource::Pixels {
                    name: format!("big {i}"),
                    rgb: Arc::clone(&big),
                },
                settings: CompositeSettings::default(),
                edits: Vec::new(),
                output: Target::exact(out.join(format!("big{i:02}.png")), None),
                keep_exif: false,
            })
            .expect("the queue lane holds 16");
    }
    let preview = worker.next_id(JobKind::Preview);
    worker
        .send(Request::SegmentFile {
            id: preview,
            kind: JobKind::Preview,
            path: common::photo("car-1.jpg"),
        })
        .expect("the preview lane is free");
    let mut exported_before = 0;
    loop {
        match worker.recv_timeout(WAIT) {
            Some(Response::Exported { .. }) => exported_before += 1,
            Some(Response::Mask { id, .. }) if id == preview => break,
            Some(Response::Failed { error, .. }) => panic!("{error}"),
            Some(_) => {}
            None => panic!("no preview mask"),
        }
    }
    eprintln!("preview answered after {exported_before} of {exports} queued exports");
    assert!(
        exported_before <= 2,
        "the preview waited for {exported_before} exports"
    );

    let started = std::time::Instant::now();
    drop(worker);
    let closing = started.elapsed();
    let written = std::fs::read_dir(&out).unwrap().count();
    eprintln!(
        "closed in {:.2} s with {written} of {exports} exports written",
        closing.as_secs_f64()
    );
    assert!(
        written < exports - 4,
        "the queue was worked through: {written} written"
    );
    assert!(closing < Duration::from_secs(5), "closing took {closing:?}");
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            image::open(&path).is_ok(),
            "{} is not complete",
            path.display()
        );
    }
}

/// A newer preview stops the older one's network run (ONNX Runtime's terminate) instead of
/// waiting for it: the older mask never comes, and the newer one arrives about one inference
/// after it was asked for. IS-Net at 1024 px, seconds a run on the CPU, so the stop lands mid-run.
#[test]
fn a_superseded_preview_run_is_stopped_not_finished() {
    let _machine = common::timing_lock();
    let (worker, root) = worker();
    let isnet = common::isnet_model();
    let models = root.path().join("data/models");
    let linked = models.join(isnet.path.file_name().unwrap());
    std::fs::hard_link(&isnet.path, &linked)
        .or_else(|_| std::fs::copy(&isnet.path, &linked).map(drop))
        .unwrap();
    worker
        .send(Request::Configure {
            model: ModelChoice::Named("isnet".to_owned()),
            options: SegmenterOptions {
                provider: ProviderRequest::Only(ProviderKind::Cpu),
                ..SegmenterOptions::default()
            },
        })
        .unwrap();
    assert!(matches!(settled(&worker), Some(Response::Ready { .. })));
    let preview = |path: PathBuf| {
        let id = worker.next_id(JobKind::Preview);
        worker
            .send(Request::SegmentFile {
                id,
                kind: JobKind::Preview,
                path,
            })
            .unwrap();
        id
    };
    let mask_of = |wanted: u64, stale: Option<u64>| -> std::time::Instant {
        loop {
            match worker.recv_timeout(WAIT) {
                Some(Response::Mask { id, .. }) if id == wanted => {
                    return std::time::Instant::now();
                }
                Some(Response::Mask { id, .. }) if Some(id) == stale => {
                    panic!("the superseded preview ran to the end")
                }
                Some(Response::Failed { error, .. }) => panic!("{error}"),
                Some(_) => {}
                None => panic!("no mask"),
            }
        }
    };
    // One whole run, for scale.
    let started = std::time::Instant::now();
    let alone = preview(photo("car-1.jpg"));
    let one_run = mask_of(alone, None) - started;

    let first = preview(photo("cloth-1.jpg"));
    loop {
        match worker.recv_timeout(WAIT) {
            Some(Response::Decoded { id, .. }) if id == first => break,
            Some(_) => {}
            None => panic!("not decoded"),
        }
    }
    std::thread::sleep(one_run / 5);
    let asked = std::time::Instant::now();
    let second = preview(photo("plants-1.jpg"));
    let waited = mask_of(second, Some(first)) - asked;
    eprintln!(
        "one run {:.2} s; the newer preview's mask {:.2} s after it was asked for",
        one_run.as_secs_f64(),
        waited.as_secs_f64()
    );
    assert!(
        waited < one_run.mul_f64(1.6),
        "waited {waited:?} for one run of {one_run:?}"
    );
}

/// A panic inside the worker: reported as `Panicked`, the session dropped (a photo then fails
/// with "no model is loaded"), and the worker goes on: configured again, it segments.
#[test]
fn a_panic_inside_the_worker_is_reported_and_the_worker_goes_on() {
    let (worker, _root) = worker();
    configure_cpu(&worker);
    worker.send(Request::Panic).unwrap();
    match worker.recv_timeout(WAIT) {
        Some(Response::Panicked { message }) => assert!(message.contains("Request::Panic")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let segment = |worker: &Worker| {
        let id = worker.next_id(JobKind::Preview);
        worker
            .send(Request::SegmentFile {
                id,
                kind: JobKind::Preview,
                path: photo("car-1.jpg"),
            })
            .unwrap();
        loop {
            match worker.recv_timeout(WAIT) {
                Some(Response::Decoded { .. }) => {}
                other => return other,
            }
        }
    };
    match segment(&worker) {
        Some(Response::Failed {
            error: PhotoError::NoModel { .. },
            ..
        }) => {}
        other => panic!("expected Failed, got {other:?}"),
    }
    configure_cpu(&worker);
    assert!(matches!(segment(&worker), Some(Response::Mask { .. })));
}
