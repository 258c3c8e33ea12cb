//! The icon files in `assets/icons/` are rendered from their one source, `cutout.svg`, by
//! `cutout::app::icon`. This test fails when they drift apart; `CUTOUT_UPDATE_ICONS=1 cargo test
//! --release --test icons` rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cutout::app::icon::{ICO_SIZES, PNG_SIZES, render};
use image::{
    ExtendedColorType, ImageEncoder as _,
    codecs::{
        ico::{IcoEncoder, IcoFrame},
        png::PngEncoder,
    },
};

fn icons_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/icons")
}

fn png_bytes(image: &image::RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

fn ico_bytes() -> Vec<u8> {
    let frames: Vec<IcoFrame<'static>> = ICO_SIZES
        .iter()
        .map(|&size| {
            let image = render(size).unwrap();
            IcoFrame::with_encoded(png_bytes(&image), size, size, ExtendedColorType::Rgba8).unwrap()
        })
        .collect();
    let mut out = Vec::new();
    IcoEncoder::new(&mut out).encode_images(&frames).unwrap();
    out
}

/// Sizes listed in an ICO's directory (0 means 256).
fn ico_sizes(bytes: &[u8]) -> Vec<u32> {
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "ICO header");
    let count = usize::from(u16::from_le_bytes([bytes[4], bytes[5]]));
    (0..count)
        .map(|i| match bytes[6 + 16 * i] {
            0 => 256,
            w => u32::from(w),
        })
        .collect()
}

#[test]
fn icon_files_are_rendered_from_the_svg() {
    let update = std::env::var_os("CUTOUT_UPDATE_ICONS").is_some();
    let dir = icons_dir();
    for size in PNG_SIZES {
        let rendered = render(size).unwrap();
        let path = dir.join(format!("cutout-{size}.png"));
        if update {
            std::fs::write(&path, png_bytes(&rendered)).unwrap();
        }
        let committed = image::open(&path)
            .unwrap_or_else(|e| panic!("{} ({e}); run with CUTOUT_UPDATE_ICONS=1", path.display()))
            .to_rgba8();
        assert!(
            committed == rendered,
            "{} differs from cutout.svg; run with CUTOUT_UPDATE_ICONS=1",
            path.display()
        );
    }
    let ico = ico_bytes();
    let path = dir.join("cutout.ico");
    if update {
        std::fs::write(&path, &ico).unwrap();
    }
    let committed = std::fs::read(&path).unwrap();
    assert_eq!(ico_sizes(&committed), ICO_SIZES);
    assert!(
        committed == ico,
        "cutout.ico differs from cutout.svg; run with CUTOUT_UPDATE_ICONS=1"
    );
    // The largest frame decodes to the 256 px rendering.
    let decoded = image::load_from_memory_with_format(&committed, image::ImageFormat::Ico)
        .unwrap()
        .to_rgba8();
    assert_eq!(decoded, render(256).unwrap());
}
