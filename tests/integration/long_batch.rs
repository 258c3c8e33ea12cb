//! Long batches through the `cutout` binary: a generated folder of photos from 0.3 to 24 MP, some
//! broken, processed to the end; every good photo written, every broken one named with its
//! reason, and peak memory that does not grow with the number of photos.
//!
//! CI runs 60 photos against 10; the 1000-photo run is a measurement to start on purpose:
//! `cargo test --release --test integration long_batch:: -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Instant,
};

/// Sizes (width, height) of the photos, repeated in this order: every run of ten consecutive
/// photos, and so the 10-photo batch, holds the same mix, two 24 MP ones among them.
const SIZES: [(u32, u32); 10] = [
    (6000, 4000),
    (640, 480),
    (1600, 1200),
    (4000, 3000),
    (4000, 6000),
    (3000, 2000),
    (1280, 800),
    (4928, 3264),
    (800, 600),
    (3264, 2448),
];

/// A broken file every this many photos.
const BROKEN_EVERY: usize = 25;

/// One JPEG (one PNG) per size, made once from a shared photo.
fn base_photos() -> &'static Vec<PathBuf> {
    static BASES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    BASES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("long-batch-bases");
        std::fs::create_dir_all(&dir).unwrap();
        let source =
            image::open(common::shared_dir().join("testdata/u2net/images/horse.jpg")).unwrap();
        SIZES
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| {
                let ext = if i == 6 { "png" } else { "jpg" };
                let path = dir.join(format!("{w}x{h}.{ext}"));
                if !path.exists() {
                    let tmp = path.with_extension("part");
                    source
                        .resize_exact(w, h, image::imageops::FilterType::Triangle)
                        .to_rgb8()
                        .save_with_format(
                            &tmp,
                            if ext == "png" {
                                image::ImageFormat::Png
                            } else {
                                image::ImageFormat::Jpeg
                            },
                        )
                        .unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                }
                path
            })
            .collect()
    })
}

/// Broken files of several kinds, each with the words its reason must contain.
fn broken(i: usize, good_jpeg: &[u8]) -> (&'static str, Vec<u8>) {
    match (i / BROKEN_EVERY) % 4 {
        0 => ("jpg", Vec::new()),
        1 => ("jpg", good_jpeg[..good_jpeg.len() / 3].to_vec()),
        2 => ("png", b"this is a text file, not a picture\n".repeat(10)),
        _ => (
            "jpg",
            (0..5000u32)
                .map(|x| (x.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
    }
}

/// Fills `dir` with `count` photos (hard links to the bases) and a broken file every
/// [`BROKEN_EVERY`]; returns the good ones and the broken ones.
fn make_folder(dir: &Path, count: usize) -> (Vec<PathBuf>, Vec<PathBuf>) {
    std::fs::create_dir_all(dir).unwrap();
    let bases = base_photos();
    let small_jpeg = std::fs::read(&bases[1]).unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for i in 0..count {
        let base = &bases[i % SIZES.len()];
        let ext = base.extension().unwrap().to_str().unwrap();
        let path = dir.join(format!("p{i:04}.{ext}"));
        std::fs::hard_link(base, &path)
            .or_else(|_| std::fs::copy(base, &path).map(drop))
            .unwrap();
        good.push(path);
        if i % BROKEN_EVERY == BROKEN_EVERY - 1 {
            let (ext, bytes) = broken(i, &small_jpeg);
            let path = dir.join(format!("p{i:04}-broken.{ext}"));
            std::fs::write(&path, bytes).unwrap();
            bad.push(path);
        }
    }
    (good, bad)
}

struct BatchRun {
    peak_mb: f64,
    seconds: f64,
}

/// Runs `cutout remove -v` on the folder into `out`, checks that every good photo was written
/// and every broken one named, and returns the peak memory the binary reported.
fn run_batch(root: &Path, name: &str, count: usize) -> BatchRun {
    let (input, out) = (root.join(name), root.join(format!("{name}-out")));
    let (good, bad) = make_folder(&input, count);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["remove", "-v", "--ep", "cpu"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .env("CUTOUT_CACHE_DIR", common::cache_dir())
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr);
    let expected_code = if bad.is_empty() { 0 } else { 1 };
    assert_eq!(output.status.code(), Some(expected_code), "{log}");
    for photo in &good {
        let result = out.join(photo.file_stem().unwrap()).with_extension("png");
        assert!(
            result.is_file(),
            "{} was not written\n{log}",
            photo.display()
        );
    }
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        bad.len(),
        "one error line per broken file:\n{log}"
    );
    for photo in &bad {
        let name = photo.file_name().unwrap().to_string_lossy();
        assert!(
            errors.iter().any(|e| e.contains(name.as_ref())),
            "{name} is not named\n{log}"
        );
        let stem = photo.file_stem().unwrap();
        assert!(!out.join(stem).with_extension("png").exists());
    }
    let written = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(
        written,
        good.len(),
        "nothing else is left in the output folder"
    );
    let peak_mb = log
        .lines()
        .find_map(|l| l.strip_prefix("Peak resident memory "))
        .and_then(|l| l.trim_end_matches(" MB").parse().ok())
        .expect("the peak memory line");
    eprintln!(
        "{count} photos + {} broken: {seconds:.1} s, peak resident memory {peak_mb:.0} MB",
        bad.len()
    );
    // Inputs are links to the same few files, outputs are many: free the space now.
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&input).ok();
    BatchRun { peak_mb, seconds }
}

fn peak_does_not_grow(count: usize) {
    let root = tempfile::tempdir().unwrap();
    let short = run_batch(root.path(), "short", 10);
    let long = run_batch(root.path(), "long", count);
    let ratio = long.peak_mb / short.peak_mb;
    eprintln!(
        "peak memory {count} vs 10 photos: {:.0} / {:.0} MB = {ratio:.2}; {:.2} s per photo",
        long.peak_mb,
        short.peak_mb,
        long.seconds / count as f64
    );
    assert!(
        ratio <= 1.5,
        "peak memory grows with the batch: ×{ratio:.2}"
    );
}

#[test]
fn sixty_photos_peak_like_ten_and_every_broken_one_is_named() {
    peak_does_not_grow(60);
}

#[test]
#[ignore = "a measurement of several minutes; run it on purpose"]
fn a_thousand_photos_peak_like_ten() {
    peak_does_not_grow(1000);
}
