//! The GPU compositor (the WGSL shader, rendered offscreen through wgpu) against the CPU
//! reference in `image_ops::composite`, on a real photo with a real soft mask, for every
//! background and a range of thresholds and softness. Runs on lavapipe where there is no GPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cutout::{
    image_ops::{
        Background, CompositeSettings, DecodeLimits, composite, decode_file,
        refine::{self, RefineSettings},
    },
    render::Offscreen,
};
use image::GrayImage;

fn photo_and_mask() -> (image::RgbImage, GrayImage) {
    let dir = common::shared_dir().join("testdata/rembg");
    let photo = decode_file(&dir.join("fixtures/car-1.jpg"), DecodeLimits::default())
        .expect("photo")
        .rgb;
    // rembg's expected cutout: its alpha channel is u2netp's soft mask.
    let expected = image::open(dir.join("expected_u2netp/car-1.u2netp.png"))
        .expect("expected cutout")
        .to_rgba8();
    let mask = GrayImage::from_fn(expected.width(), expected.height(), |x, y| {
        image::Luma([expected.get_pixel(x, y).0[3]])
    });
    assert_eq!(photo.dimensions(), mask.dimensions());
    (photo, mask)
}

#[test]
fn gpu_composite_matches_the_cpu_reference_within_one_level() {
    let gpu = Offscreen::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    eprintln!("compositing on {}", gpu.adapter_name());
    let (photo, mask) = photo_and_mask();
    let soft_pixels = mask.as_raw().iter().filter(|&&m| m > 0 && m < 255).count();
    assert!(soft_pixels > 1000, "the mask must have soft edges to test");
    let cases = [
        CompositeSettings::default(),
        CompositeSettings {
            threshold: 0.6,
            softness: 0.3,
            ..CompositeSettings::default()
        },
        CompositeSettings {
            threshold: 0.5,
            softness: 0.0,
            ..CompositeSettings::default()
        },
        CompositeSettings {
            background: Background::Color,
            color: [20, 180, 250],
            threshold: 0.4,
            softness: 0.5,
            ..CompositeSettings::default()
        },
        CompositeSettings {
            background: Background::Dimmed,
            dim: 0.25,
            ..CompositeSettings::default()
        },
        CompositeSettings {
            background: Background::Blurred,
            ..CompositeSettings::default()
        },
        CompositeSettings {
            refine: RefineSettings {
                foreground: false,
                ..RefineSettings::default()
            },
            ..CompositeSettings::default()
        },
        CompositeSettings {
            background: Background::Color,
            color: [20, 200, 40],
            refine: RefineSettings {
                guided: true,
                ..RefineSettings::default()
            },
            ..CompositeSettings::default()
        },
    ];
    for settings in cases {
        // The CPU reference of the whole path: refinement (foreground colours by default), then
        // the composite.
        let refined = refine::refine(&photo, &mask, &settings);
        let cpu = composite::composite(
            &photo,
            &refined.mask,
            refined.foreground.as_ref(),
            &settings,
        )
        .unwrap();
        let gpu_out = gpu.composite(&photo, &mask, &settings).unwrap();
        assert_eq!(cpu.dimensions(), gpu_out.dimensions());
        let mut worst = 0u8;
        let mut off = 0usize;
        for (a, b) in cpu.as_raw().iter().zip(gpu_out.as_raw()) {
            let d = a.abs_diff(*b);
            worst = worst.max(d);
            off += usize::from(d > 0);
        }
        eprintln!(
            "{:?} threshold {} softness {}: max difference {worst}, {off} channel values differ",
            settings.background, settings.threshold, settings.softness
        );
        // With the guided filter the refined masks may differ by their one level, which moves
        // a blend over a colour by up to one more.
        let allowed = if settings.refine.guided { 2 } else { 1 };
        assert!(
            worst <= allowed,
            "{settings:?}: GPU and CPU differ by {worst} levels"
        );
    }
}

#[test]
fn gpu_export_without_foreground_colours_is_the_plain_cutout() {
    let gpu = Offscreen::new().expect("wgpu adapter");
    let (photo, mask) = photo_and_mask();
    let plain = CompositeSettings {
        refine: RefineSettings {
            foreground: false,
            ..RefineSettings::default()
        },
        ..CompositeSettings::default()
    };
    let ours = gpu.composite(&photo, &mask, &plain).unwrap();
    let cli = cutout::image_ops::cutout_rgba(&photo, &mask);
    assert_eq!(
        ours, cli,
        "without refinement the GPU must give exactly what `cutout remove --no-foreground` writes"
    );
}
