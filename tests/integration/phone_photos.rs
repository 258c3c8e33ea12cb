//! Phone photos as they come: HEIC (8 and 10 bit, alpha), AVIF (rotated and mirrored by `irot`
//! and `imir`, colour given by `nclx`), and photos with a Display P3 profile. The files are made
//! here from the shared photos with the real encoders (libheif's `heif-enc`, libavif's
//! `avifenc`) and ImageMagick, whose colour conversions (lcms2) are the reference for cutout's
//! (moxcms). Decoding is checked against ImageMagick's own decoder (Debian's libheif), masks
//! against the same photo as PNG, and exports for their profile, EXIF and pixels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use cutout::image_ops::{self, DecodeLimits, colour};
use image::RgbImage;

use crate::common;

/// Runs an encoder or converter, which must succeed.
fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} did not start ({e}); the README's test command installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cutout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["remove", "--ep", "cpu"])
        .args(args)
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .env("CUTOUT_CACHE_DIR", common::cache_dir())
        .output()
        .unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The shared photo as an 8-bit PNG without a profile: what the other files are made from.
fn source_png(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.png"));
    image::open(common::photo(name))
        .unwrap()
        .to_rgb8()
        .save(&path)
        .unwrap();
    path
}

fn decode(path: &Path) -> image_ops::DecodedImage {
    image_ops::decode_file(path, DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Pixels as stored, whatever profile the file has (the reference files are sRGB).
fn stored_rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

/// The largest difference of two images, and the share of samples that differ by more than 1.
fn difference(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut worst, mut over) = (0u8, 0usize);
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        worst = worst.max(d);
        over += usize::from(d > 1);
    }
    (worst, over as f64 / a.as_raw().len() as f64)
}

/// The ICC profile a file carries, as the `image` crate reads it.
fn icc_of(path: &Path) -> Option<Vec<u8>> {
    use image::ImageDecoder as _;
    let mut decoder = image::ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    decoder.icc_profile().unwrap()
}

/// A written PNG's `iCCP` and `eXIf` payloads.
fn png_chunks(path: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (
        info.icc_profile.as_ref().map(|p| p.to_vec()),
        info.exif_metadata.as_ref().map(|p| p.to_vec()),
    )
}

/// The mask cutout writes for `photo` (`--mask-only`, on the CPU).
fn mask_of(photo: &Path, dir: &Path) -> image::GrayImage {
    let out = dir.join(format!(
        "{}.mask.png",
        photo.file_name().unwrap().to_str().unwrap()
    ));
    let run = cutout(&["--mask-only", "-o", s(&out), s(photo)]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    image::open(&out).unwrap().to_luma8()
}

/// Masks of the same photo from two files: every pixel within `levels` grey levels.
fn assert_masks_agree(a: &image::GrayImage, b: &image::GrayImage, levels: u8, what: &str) {
    assert_eq!(a.dimensions(), b.dimensions(), "{what}");
    let worst = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap();
    assert!(
        worst <= levels,
        "{what}: masks differ by up to {worst} levels"
    );
}

#[test]
fn heic_and_avif_decode_as_a_reference_decoder_does_and_segment_like_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = source_png(d, "car-1.jpg");
    let png48 = d.join("car-16bit.png");
    tool(
        "convert",
        &[s(&png), "-depth", "16", &format!("PNG48:{}", s(&png48))],
    );
    let files = [
        (
            "heic-8",
            vec!["-L", "-p", "chroma=444", "-o"],
            &png,
            "heif-enc",
        ),
        (
            "heic-10",
            vec!["-L", "-p", "chroma=444", "-b", "10", "-o"],
            &png48,
            "heif-enc",
        ),
        ("heic-lossy", vec!["-q", "90", "-o"], &png, "heif-enc"),
        ("avif-8", vec!["-l", "-o"], &png, "avifenc"),
        ("avif-10", vec!["-l", "-d", "10", "-o"], &png48, "avifenc"),
    ];
    let original = stored_rgb(&png);
    let original_mask = mask_of(&png, d);
    for (name, mut args, input, encoder) in files {
        let ext = if encoder == "avifenc" { "avif" } else { "heic" };
        let path = d.join(format!("{name}.{ext}"));
        args.push(s(&path));
        args.push(s(input));
        tool(encoder, &args);
        let decoded = decode(&path);
        assert_eq!(decoded.rgb.dimensions(), original.dimensions(), "{name}");
        assert!(!decoded.had_alpha, "{name}");
        assert_eq!(
            decoded.embedded,
            image_ops::Embedded::default(),
            "{name}: sRGB, no EXIF"
        );
        if name.ends_with("lossy") {
            // ImageMagick decodes with Debian's libheif 1.15 (cutout's is 1.23). Not for the
            // lossless files: 1.15 reads their identity matrix wrongly (20 levels off). The two
            // upsample 4:2:0 chroma differently, which moves colour edges by up to 10 levels.
            let reference = d.join(format!("{name}.reference.png"));
            tool("convert", &[s(&path), s(&reference)]);
            let (worst, over) = difference(&decoded.rgb, &stored_rgb(&reference));
            assert!(
                worst <= 16 && over < 0.03,
                "{name}: {worst} levels from ImageMagick's decoding ({:.2} % beyond 1)",
                over * 100.0
            );
        } else {
            let (worst, over) = difference(&decoded.rgb, &original);
            assert!(
                worst <= 1,
                "{name} (lossless): {worst} levels from the PNG ({:.2} % beyond 1)",
                over * 100.0
            );
            // The same pixels as a PNG give exactly this mask; against the original photo the
            // decoder's rounding (one level; 10 bits back to 8) moves some edge pixels more
            // (0.2 % of them for the 10-bit file).
            let mask = mask_of(&path, d);
            let as_png = d.join(format!("{name}.decoded.png"));
            decoded.rgb.save(&as_png).unwrap();
            assert_masks_agree(&mask, &mask_of(&as_png, d), 0, name);
            let beyond_one = mask
                .as_raw()
                .iter()
                .zip(original_mask.as_raw())
                .filter(|(a, b)| a.abs_diff(**b) > 1)
                .count();
            assert!(
                beyond_one * 100 < mask.as_raw().len(),
                "{name}: {beyond_one} mask pixels more than 1 level from the PNG's"
            );
        }
    }
}

#[test]
fn irot_imir_and_alpha_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = source_png(d, "car-1.jpg");
    let original = stored_rgb(&png);
    // irot 1: 90° anticlockwise; imir 1: mirrored left to right.
    let turned = d.join("turned.avif");
    tool("avifenc", &["-l", "--irot", "1", s(&png), s(&turned)]);
    let decoded = decode(&turned);
    let (worst, _) = difference(&decoded.rgb, &image::imageops::rotate270(&original));
    assert!(
        worst <= 1,
        "irot: {worst} levels from the photo turned anticlockwise"
    );
    let mirrored = d.join("mirrored.avif");
    tool("avifenc", &["-l", "--imir", "1", s(&png), s(&mirrored)]);
    let (worst, _) = difference(
        &decode(&mirrored).rgb,
        &image::imageops::flip_horizontal(&original),
    );
    assert!(worst <= 1, "imir: {worst} levels from the photo mirrored");

    // With alpha: decoded, the alpha dropped as for a PNG (the network never saw alpha).
    let rgba = d.join("alpha.png");
    let mut with_alpha = image::DynamicImage::ImageRgb8(original.clone()).to_rgba8();
    for (x, _, px) in with_alpha.enumerate_pixels_mut() {
        px[3] = if x < 240 { 255 } else { 40 };
    }
    with_alpha.save(&rgba).unwrap();
    for (encoder, path, args) in [
        (
            "heif-enc",
            d.join("alpha.heic"),
            vec!["-L", "-p", "chroma=444", "-o"],
        ),
        ("avifenc", d.join("alpha.avif"), vec!["-l", "-o"]),
    ] {
        let mut args = args;
        args.extend([s(&path), s(&rgba)]);
        tool(encoder, &args);
        let decoded = decode(&path);
        assert!(decoded.had_alpha, "{encoder}");
        let (worst, _) = difference(&decoded.rgb, &original);
        assert!(worst <= 3, "{encoder} with alpha: {worst} levels");
        let out = d.join(format!("{encoder}.cutout.png"));
        let run = cutout(&["-o", s(&out), s(&path)]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

/// A Display P3 photo made by ImageMagick (lcms2) from an sRGB one: the profile written by
/// moxcms, the conversion done and embedded by ImageMagick.
struct P3 {
    srgb_icc: PathBuf,
    png: PathBuf,
    jpeg: PathBuf,
    /// The profile as embedded in the P3 files.
    icc: Vec<u8>,
    /// The P3 pixels converted back to sRGB by ImageMagick.
    back_to_srgb: RgbImage,
}

fn p3_photo(d: &Path, name: &str) -> P3 {
    let png = source_png(d, name);
    let srgb_icc = d.join("srgb.icc");
    let p3_icc = d.join("p3.icc");
    let encode = |profile| colour::encode_icc(&profile).unwrap();
    std::fs::write(&srgb_icc, encode(moxcms::ColorProfile::new_srgb())).unwrap();
    std::fs::write(&p3_icc, encode(moxcms::ColorProfile::new_display_p3())).unwrap();
    let p3_png = d.join("p3.png");
    tool(
        "convert",
        &[
            s(&png),
            "-profile",
            s(&srgb_icc),
            "-profile",
            s(&p3_icc),
            s(&p3_png),
        ],
    );
    let jpeg = d.join("p3.jpg");
    tool("convert", &[s(&p3_png), "-quality", "95", s(&jpeg)]);
    let back = d.join("back.png");
    tool(
        "convert",
        &[s(&p3_png), "-profile", s(&srgb_icc), "-strip", s(&back)],
    );
    let icc = icc_of(&p3_png).expect("ImageMagick embedded the P3 profile");
    assert_eq!(
        icc_of(&jpeg).as_deref(),
        Some(&icc[..]),
        "the same profile in the JPEG"
    );
    P3 {
        srgb_icc,
        png: p3_png,
        jpeg,
        icc,
        back_to_srgb: stored_rgb(&back),
    }
}

#[test]
fn a_p3_photo_keeps_its_profile_and_colours_and_the_network_sees_srgb() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p3 = p3_photo(d, "car-1.jpg");
    let decoded = decode(&p3.png);
    assert_eq!(decoded.embedded.icc.as_deref(), Some(&p3.icc[..]));
    // The network's input: the photo in sRGB, as lcms2 converts it, within one level.
    let srgb = colour::to_srgb(&decoded.rgb, &decoded.embedded);
    let (worst, over) = difference(&srgb, &p3.back_to_srgb);
    assert!(
        worst <= 1,
        "moxcms and lcms2 differ by {worst} levels ({:.3} % beyond 1)",
        over * 100.0
    );
    // The network sees exactly those sRGB pixels: the mask is the mask of them as a PNG.
    let converted = d.join("converted.png");
    srgb.save(&converted).unwrap();
    let mask = mask_of(&p3.png, d);
    assert_masks_agree(
        &mask,
        &mask_of(&converted, d),
        0,
        "P3 against its sRGB conversion",
    );
    // And close to the mask of lcms2's conversion (the network moves a few edge pixels more than
    // the one level between the two conversions).
    let back = d.join("back-srgb.png");
    p3.back_to_srgb.save(&back).unwrap();
    let lcms_mask = mask_of(&back, d);
    let beyond_one = mask
        .as_raw()
        .iter()
        .zip(lcms_mask.as_raw())
        .filter(|(a, b)| a.abs_diff(**b) > 1)
        .count();
    assert!(
        beyond_one * 100 < mask.as_raw().len(),
        "{beyond_one} pixels"
    );

    for photo in [&p3.png, &p3.jpeg] {
        let out = d.join("out.png");
        // Without clean colours every visible pixel keeps the photo's colour, so all can be
        // compared.
        let run = cutout(&["--no-foreground", "-o", s(&out), s(photo)]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (icc, exif) = png_chunks(&out);
        assert_eq!(
            icc.as_deref(),
            Some(&p3.icc[..]),
            "iCCP carries the source profile"
        );
        assert_eq!(exif, None, "EXIF only when asked");
        // The cutout's pixels are the photo's own (P3) pixels.
        let source = decode(photo).rgb;
        let cut = image::open(&out).unwrap().to_rgba8();
        let inside: Vec<_> = cut
            .enumerate_pixels()
            .filter(|(_, _, p)| p[3] > 0)
            .map(|(x, y, p)| (p, source.get_pixel(x, y)))
            .collect();
        assert!(
            inside.len() > 10_000,
            "a subject was found: {} opaque pixels",
            inside.len()
        );
        assert!(
            inside.iter().all(|(c, s)| c.0[..3] == s.0[..]),
            "visible pixels are the photo's"
        );
    }
}

#[test]
fn heic_with_a_profile_and_avif_with_nclx_carry_their_colours() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p3 = p3_photo(d, "car-1.jpg");
    // heif-enc copies the PNG's profile into the HEIC (`colr` of type `prof`).
    let heic = d.join("p3.heic");
    tool(
        "heif-enc",
        &["-L", "-p", "chroma=444", "-o", s(&heic), s(&p3.png)],
    );
    let decoded = decode(&heic);
    assert_eq!(decoded.embedded.icc.as_deref(), Some(&p3.icc[..]));
    let out = d.join("heic.png");
    let run = cutout(&["-o", s(&out), s(&heic)]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(png_chunks(&out).0.as_deref(), Some(&p3.icc[..]));

    // AVIF saying "Display P3" by code points only (primaries 12, sRGB transfer 13): cutout
    // makes an equivalent profile, and its sRGB view matches lcms2's conversion.
    let avif = d.join("p3.avif");
    tool(
        "avifenc",
        &[
            "-l",
            "--ignore-icc",
            "--cicp",
            "12/13/0",
            s(&p3.png),
            s(&avif),
        ],
    );
    let decoded = decode(&avif);
    let icc = decoded
        .embedded
        .icc
        .clone()
        .expect("a profile made from nclx");
    colour::usable_rgb_profile(&icc).unwrap();
    let (worst, _) = difference(
        &colour::to_srgb(&decoded.rgb, &decoded.embedded),
        &p3.back_to_srgb,
    );
    assert!(worst <= 2, "nclx P3 to sRGB: {worst} levels from lcms2");
    let _ = &p3.srgb_icc;
}

#[test]
fn exif_is_kept_only_when_asked_and_set_upright() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // cloth-1.jpg has EXIF; ImageMagick marks it as stored turned (orientation 6, "right-top").
    let turned = d.join("turned.jpg");
    tool(
        "convert",
        &[
            s(&common::photo("cloth-1.jpg")),
            "-orient",
            "RightTop",
            s(&turned),
        ],
    );
    let stored = stored_rgb(&turned);
    let decoded = decode(&turned);
    assert_eq!(
        decoded.rgb.dimensions(),
        (stored.height(), stored.width()),
        "turned upright at decoding"
    );
    let kept = d.join("kept.png");
    let run = cutout(&["--keep-exif", "-o", s(&kept), s(&turned)]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let exif = png_chunks(&kept).1.expect("eXIf written with --keep-exif");
    let orientation = exif_orientation(&exif);
    assert_eq!(
        orientation,
        Some(1),
        "the pixels are upright, and the tag says so"
    );
    assert_eq!(image::open(&kept).unwrap().width(), decoded.rgb.width());

    let plain = d.join("plain.png");
    let run = cutout(&["-o", s(&plain), s(&turned)]);
    assert!(run.status.success());
    assert_eq!(
        png_chunks(&plain),
        (None, None),
        "no profile, no EXIF: as before"
    );
}

/// The orientation tag of an EXIF block's first directory.
fn exif_orientation(exif: &[u8]) -> Option<u16> {
    let big = exif.starts_with(b"MM");
    let u16_at = |at: usize| {
        let b = [exif[at], exif[at + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize| {
        let b = [exif[at], exif[at + 1], exif[at + 2], exif[at + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let ifd = u32_at(4) as usize;
    (0..usize::from(u16_at(ifd)))
        .map(|i| ifd + 2 + i * 12)
        .find(|&at| u16_at(at) == 0x0112)
        .map(|at| u16_at(at + 8))
}

#[test]
fn broken_heic_and_avif_files_fail_alone_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = source_png(d, "car-1.jpg");
    let heic = d.join("good.heic");
    tool("heif-enc", &["-q", "80", "-o", s(&heic), s(&png)]);
    let avif = d.join("good.avif");
    tool("avifenc", &[s(&png), s(&avif)]);
    let folder = d.join("in");
    std::fs::create_dir_all(&folder).unwrap();
    let good = std::fs::read(&heic).unwrap();
    std::fs::write(folder.join("a-good.heic"), &good).unwrap();
    std::fs::write(folder.join("b-truncated.heic"), &good[..good.len() / 2]).unwrap();
    let avif_bytes = std::fs::read(&avif).unwrap();
    std::fs::write(
        folder.join("c-truncated.avif"),
        &avif_bytes[..avif_bytes.len() / 3],
    )
    .unwrap();
    // The `ispe` box declares 100 000 × 100 000 pixels: refused before any pixel is decoded.
    let mut huge = good.clone();
    let at = huge.windows(4).position(|w| w == b"ispe").unwrap() + 8;
    huge[at..at + 4].copy_from_slice(&100_000u32.to_be_bytes());
    huge[at + 4..at + 8].copy_from_slice(&100_000u32.to_be_bytes());
    std::fs::write(folder.join("d-huge.heic"), huge).unwrap();
    // The coded image data overwritten: the HEVC decoder meets garbage.
    let mut garbage = good;
    let n = garbage.len();
    for b in &mut garbage[n / 2..n - 16] {
        *b = 0xA5;
    }
    std::fs::write(folder.join("e-garbage.heic"), garbage).unwrap();

    let out = d.join("out");
    let run = cutout(&["-o", s(&out), s(&folder)]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    for name in ["b-truncated.heic", "c-truncated.avif", "d-huge.heic"] {
        assert_eq!(
            errors.iter().filter(|l| l.contains(name)).count(),
            1,
            "one line for {name}: {stderr}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|l| l.contains("d-huge.heic") && l.contains("too large")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert!(written.contains(&"a-good.png".to_owned()), "{written:?}");
    for name in ["b-truncated.png", "c-truncated.png", "d-huge.png"] {
        assert!(
            !written.contains(&name.to_owned()),
            "nothing partial: {written:?}"
        );
    }
}

#[test]
fn the_app_shows_a_p3_photo_in_srgb_and_exports_it_with_its_profile() {
    use crate::common::app::{harness, options, ready_with, run_until};
    use cutout::{
        app::{Command, EntryStatus},
        engine::Precision,
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p3 = p3_photo(d, "car-1.jpg");
    let root = d.join("app");
    let mut h = harness(options(&root, vec![p3.png.clone()]));
    run_until(&mut h, "the P3 photo segmented", |app| {
        ready_with(app, Precision::Fp32)
    });
    let current = h.state().state().current.as_ref().unwrap();
    // The screen gets sRGB pixels: lcms2's conversion within one level.
    let shown = current.display.as_ref().unwrap();
    let (worst, _) = difference(shown, &p3.back_to_srgb);
    assert!(
        worst <= 1,
        "the preview is {worst} levels from lcms2's sRGB"
    );
    // Exports start from the photo's own pixels.
    assert_eq!(
        current.photo.as_ref().unwrap().as_raw(),
        decode(&p3.png).rgb.as_raw()
    );

    h.state_mut().command(Command::Export);
    run_until(&mut h, "the export", |app| {
        app.state()
            .current_entry()
            .is_some_and(|e| matches!(e.status, EntryStatus::Exported(_)))
    });
    let Some(EntryStatus::Exported(path)) =
        h.state().state().current_entry().map(|e| e.status.clone())
    else {
        unreachable!()
    };
    assert_eq!(
        png_chunks(&path).0.as_deref(),
        Some(&p3.icc[..]),
        "{}",
        path.display()
    );
}
