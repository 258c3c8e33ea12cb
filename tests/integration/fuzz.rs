//! Hostile input, fuzzed: seeded mutations of real photos (bit flips, truncations, overwritten
//! bytes, edited headers with huge and zero sizes) through the real batch pipeline, decode →
//! network → cutout → PNG. Every case must end as a written, readable PNG or as an error with
//! nothing written; no panic, no hang (a watchdog aborts a case that takes too long), no
//! temporary file left behind.
//!
//! CI runs 600 cases; `CUTOUT_FUZZ_CASES=5000 cargo test --release --test integration fuzz:: -- --nocapture`
//! runs more (`CUTOUT_FUZZ_SEED` picks another seed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use cutout::{
    batch::{self, BatchOptions, Job},
    finish::Finisher,
};

/// A case still running after this long counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// splitmix64: a small seeded generator, so that every case can be made again from its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The seeds: real photos as stored (JPEG, PNG) and small re-encodings in the other formats.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    for name in ["car-1.jpg", "anime-girl-1.jpg"] {
        seeds.push(("jpg", std::fs::read(common::photo(name)).unwrap()));
    }
    let images = common::shared_dir().join("testdata/u2net/images");
    seeds.push(("png", std::fs::read(images.join("girl.png")).unwrap()));
    let small = image::open(common::photo("cloth-1.jpg")).unwrap().resize(
        160,
        160,
        image::imageops::FilterType::Triangle,
    );
    for (ext, format) in [
        ("png", image::ImageFormat::Png),
        ("webp", image::ImageFormat::WebP),
        ("bmp", image::ImageFormat::Bmp),
        ("gif", image::ImageFormat::Gif),
        ("tif", image::ImageFormat::Tiff),
        ("jpg", image::ImageFormat::Jpeg),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let picture = if format == image::ImageFormat::Jpeg || format == image::ImageFormat::Gif {
            image::DynamicImage::ImageRgb8(small.to_rgb8())
        } else {
            small.clone()
        };
        picture.write_to(&mut bytes, format).unwrap();
        seeds.push((ext, bytes.into_inner()));
    }
    // HEIC and AVIF, made with the real encoders (the README's test command installs them).
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("small.png");
    small.to_rgb8().save(&png).unwrap();
    for (ext, encoder, args) in [
        ("heic", "heif-enc", &["-q", "80", "-o"][..]),
        ("avif", "avifenc", &["-o"][..]),
    ] {
        let out = dir.path().join(format!("small.{ext}"));
        let status = std::process::Command::new(encoder)
            .args(args)
            .arg(&out)
            .arg(&png)
            .status()
            .unwrap_or_else(|e| panic!("{encoder} did not start: {e}"));
        assert!(status.success(), "{encoder}");
        seeds.push((ext, std::fs::read(&out).unwrap()));
    }
    seeds
}

fn put_u32_be(bytes: &mut [u8], at: usize, value: u32) {
    if at + 4 <= bytes.len() {
        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16, big_endian: bool) {
    let v = if big_endian {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    };
    if at + 2 <= bytes.len() {
        bytes[at..at + 2].copy_from_slice(&v);
    }
}

/// A size worth declaring: zero, one, ordinary, at a limit, or far beyond any.
fn odd_size(rng: &mut Rng) -> u32 {
    [
        0,
        1,
        2,
        320,
        65_535,
        65_536,
        100_000,
        u32::MAX / 2,
        u32::MAX,
    ][rng.below(9)]
}

/// Edits the width and height a header declares (fixing the PNG chunk's checksum, so that the
/// decoder believes it).
fn edit_header(bytes: &mut [u8], rng: &mut Rng) -> &'static str {
    let (w, h) = (odd_size(rng), odd_size(rng));
    if bytes.starts_with(b"\x89PNG") && bytes.len() > 33 {
        put_u32_be(bytes, 16, w);
        put_u32_be(bytes, 20, h);
        let crc = crc32fast::hash(&bytes[12..29]);
        put_u32_be(bytes, 29, crc);
        "png size"
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        // The first start-of-frame segment: FF C0..C2, length, precision, height, width.
        let at = bytes
            .windows(2)
            .position(|p| p[0] == 0xFF && (0xC0..=0xC2).contains(&p[1]));
        if let Some(at) = at {
            put_u16(bytes, at + 5, h as u16, true);
            put_u16(bytes, at + 7, w as u16, true);
        }
        "jpeg size"
    } else if bytes.starts_with(b"BM") {
        bytes
            .get_mut(18..26)
            .map(|b| {
                b[..4].copy_from_slice(&w.to_le_bytes());
                b[4..].copy_from_slice(&(h as i32).wrapping_neg().to_le_bytes());
            })
            .unwrap_or(());
        "bmp size"
    } else if bytes.starts_with(b"GIF8") {
        put_u16(bytes, 6, w as u16, false);
        put_u16(bytes, 8, h as u16, false);
        "gif size"
    } else if bytes.get(4..8) == Some(b"ftyp") {
        // HEIF: the image's `ispe` property (version and flags, then width and height).
        if let Some(at) = bytes.windows(4).position(|b| b == b"ispe") {
            put_u32_be(bytes, at + 8, w);
            put_u32_be(bytes, at + 12, h);
        }
        "heif size"
    } else if bytes.starts_with(b"RIFF") {
        // VP8L: 14-bit width-1 and height-1 after the signature byte at 21.
        let packed = (w.wrapping_sub(1) & 0x3FFF) | ((h.wrapping_sub(1) & 0x3FFF) << 14);
        if bytes.len() > 25 {
            bytes[21..25].copy_from_slice(&packed.to_le_bytes());
        }
        "webp size"
    } else {
        let at = rng.below(bytes.len().min(64));
        if let Some(b) = bytes.get_mut(at) {
            *b = 0xFF;
        }
        "header byte"
    }
}

/// One mutated file, and what was done to it.
fn mutate(seed: &[u8], rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let mut bytes = seed.to_vec();
    let what = match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(16) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            "bit flips"
        }
        1 => {
            // Flips near the start, where the headers are.
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len().min(512));
                bytes[at] ^= 1 << rng.below(8);
            }
            "header bit flips"
        }
        2 => {
            bytes.truncate(rng.below(bytes.len()));
            "truncated"
        }
        3 => {
            let at = rng.below(bytes.len());
            let len = (1 + rng.below(256)).min(bytes.len() - at);
            for b in &mut bytes[at..at + len] {
                *b = rng.next() as u8;
            }
            "overwritten run"
        }
        4 => edit_header(&mut bytes, rng),
        _ => {
            // A run of the file repeated in place (duplicated chunks and segments).
            let at = rng.below(bytes.len());
            let len = (1 + rng.below(4096)).min(bytes.len() - at);
            let run = bytes[at..at + len].to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, run);
            "duplicated run"
        }
    };
    (bytes, what)
}

#[test]
fn mutated_photos_give_a_cutout_or_a_clean_error_never_a_panic_hang_or_leftover() {
    let cases: usize = std::env::var("CUTOUT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("CUTOUT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0C07_0002);
    let seeds = seeds();
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut rng = Rng(seed);
    let mut jobs = Vec::with_capacity(cases);
    let mut kinds = Vec::with_capacity(cases);
    for case in 0..cases {
        let (ext, original) = &seeds[rng.below(seeds.len())];
        let (bytes, what) = mutate(original, &mut rng);
        let path = input.join(format!("case{case:05}.{ext}"));
        std::fs::write(&path, bytes).unwrap();
        let output = out.join(format!("case{case:05}.png"));
        jobs.push(Job::file(
            path,
            cutout::image_ops::Target::exact(output, None),
        ));
        kinds.push(what);
    }

    // The watchdog: the batch must finish a case at least every CASE_LIMIT.
    let done = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let worst = Arc::new(Mutex::new((Duration::ZERO, 0usize)));
    {
        let (done, last) = (Arc::clone(&done), Arc::clone(&last));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let n = done.load(Ordering::SeqCst);
                if n >= cases {
                    return;
                }
                if last.lock().unwrap().elapsed() > CASE_LIMIT {
                    eprintln!("hang: case {n} ran past {CASE_LIMIT:?} (seed {seed})");
                    std::process::abort();
                }
            }
        });
    }

    let mut segmenter = common::cpu_segmenter();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    batch::run(
        &mut segmenter,
        jobs,
        BatchOptions::default(),
        &Finisher::with_edges(cutout::finish::EdgeDevice::Cpu),
        |outcome| {
            outcomes.push(outcome);
            let mut last = last.lock().unwrap();
            let mut worst = worst.lock().unwrap();
            let took = last.elapsed();
            let n = done.fetch_add(1, Ordering::SeqCst);
            if took > worst.0 {
                *worst = (took, n);
            }
            *last = Instant::now();
        },
    );
    assert_eq!(outcomes.len(), cases, "every case has an outcome");
    let (mut written, mut refused) = (0, 0);
    let mut by_kind: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (outcome, kind) in outcomes.iter().zip(&kinds) {
        let entry = by_kind.entry(kind).or_default();
        match &outcome.result {
            Ok(_) => {
                let png = image::open(&outcome.job.output.path).unwrap_or_else(|e| {
                    panic!(
                        "{} was written but is not readable: {e}",
                        outcome.job.output.path.display()
                    )
                });
                assert!(png.width() > 0 && png.height() > 0);
                written += 1;
                entry.0 += 1;
            }
            Err(e) => {
                assert!(
                    !outcome.job.output.path.exists(),
                    "{} failed ({e}) but left a file",
                    outcome.job.input.display()
                );
                let message = e.to_string();
                assert!(
                    !message.is_empty() && message.len() < 400 && !message.contains('\n'),
                    "one clear line: {message:?}"
                );
                refused += 1;
                entry.1 += 1;
            }
        }
    }
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_none_or(|e| e != "png")
                || p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    let (worst, worst_case) = *worst.lock().unwrap();
    eprintln!(
        "fuzz (seed {seed}): {cases} cases in {:.0} s, {written} written, {refused} refused with \
         a reason, 0 panics, 0 hangs, 0 files left behind; longest wait for a case {:.2} s (case \
         {worst_case}; the first one includes the network's warm-up)",
        started.elapsed().as_secs_f64(),
        worst.as_secs_f64(),
    );
    for (kind, (ok, err)) in by_kind {
        eprintln!("  {kind:<18} {ok:>5} written {err:>5} refused");
    }
}
