//! The GPU compositor (the WGSL shader, rendered offscreen through wgpu) against the CPU
//! reference in `image_ops::composite`, on a real photo with a real soft mask, for every
//! background and a range of thresholds and softness. Runs on lavapipe where there is no GPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use cutout::{
    image_ops::{
        Background, CompositeSettings, DecodeLimits, composite, decode_file, edges,
        edits::{Brush, BrushMode, EditLayer, Stroke},
        refine::{self, RefineSettings},
    },
    render::Offscreen,
};
use image::GrayImage;

fn photo_and_mask() -> (image::RgbImage, GrayImage) {
    photo_and_rembg_mask("car-1", "u2netp")
}

/// A shared photo and the soft mask rembg's `model` gives it (the alpha of rembg's expected
/// cutout for u2netp, the expected mask for isnet).
fn photo_and_rembg_mask(name: &str, model: &str) -> (image::RgbImage, GrayImage) {
    let dir = common::shared_dir().join("testdata/rembg");
    let photo = decode_file(
        &dir.join(format!("fixtures/{name}.jpg")),
        DecodeLimits::default(),
    )
    .expect("photo")
    .rgb;
    let expected = image::open(dir.join(format!("expected_{model}/{name}.{model}.png")))
        .expect("expected mask");
    let mask = match expected {
        image::DynamicImage::ImageRgba8(rgba) => {
            GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
                image::Luma([rgba.get_pixel(x, y).0[3]])
            })
        }
        other => other.to_luma8(),
    };
    assert_eq!(photo.dimensions(), mask.dimensions());
    (photo, mask)
}

#[test]
fn cpu_edge_path_matches_the_gpu_passes_within_one_level() {
    let gpu = Offscreen::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    eprintln!("GPU passes on {}", gpu.adapter_name());
    let with = |guided, foreground, threshold, softness, radius, eps| CompositeSettings {
        threshold,
        softness,
        refine: RefineSettings {
            guided,
            foreground,
            radius,
            eps,
        },
        ..CompositeSettings::default()
    };
    let cases = [
        (
            "colours (the default)",
            with(false, true, 0.5, 1.0, 6, 1e-4),
        ),
        ("guided filter", with(true, false, 0.5, 1.0, 6, 1e-4)),
        ("both", with(true, true, 0.5, 1.0, 6, 1e-4)),
        (
            "both, r 12, eps 1e-3, ramp 0.4 ± 0.15",
            with(true, true, 0.4, 0.3, 12, 1e-3),
        ),
    ];
    for (name, model) in [
        ("car-1", "u2netp"),
        ("plants-1", "u2netp"),
        ("cloth-1", "isnet"),
    ] {
        let (photo, mask) = photo_and_rembg_mask(name, model);
        for (what, settings) in &cases {
            let (cpu, sizes) =
                edges::refine(&photo, &mask, &settings.refine, |m| settings.alpha(m));
            let gpu_out = gpu.refine(&photo, &mask, settings).unwrap();
            let mask_worst = cpu
                .mask
                .as_raw()
                .iter()
                .zip(gpu_out.mask.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            // Colours are compared where the two refined masks agree (a one-level difference in
            // alpha moves the colour estimate too).
            let colour_worst = match (&cpu.foreground, &gpu_out.foreground) {
                (Some(c), Some(g)) => c
                    .as_raw()
                    .chunks_exact(3)
                    .zip(g.as_raw().chunks_exact(3))
                    .zip(cpu.mask.as_raw().iter().zip(gpu_out.mask.as_raw()))
                    .filter(|(_, (a, b))| a == b)
                    .flat_map(|((c, g), _)| c.iter().zip(g).map(|(a, b)| a.abs_diff(*b)))
                    .max()
                    .unwrap_or(0),
                (None, None) => 0,
                _ => panic!("{what}: one path estimated colours, the other not"),
            };
            eprintln!(
                "{name} ({model}), {what}: mask within {mask_worst}, colours within {colour_worst}; bands {sizes:?}"
            );
            assert!(
                mask_worst <= 1 && colour_worst <= 1,
                "{name}, {what}: CPU path and GPU passes differ by {mask_worst} (mask), {colour_worst} (colours)"
            );
        }
    }
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
    // Touch-up edits on part of the photo: a keep stroke over the background, an erase stroke
    // across the subject, an edge-aware erase along its outline, and a soft keep over an erase.
    let (w, h) = (photo.width() as f32, photo.height() as f32);
    let stroke = |mode, radius_px, hardness, edge_aware, points: Vec<[f32; 2]>| Stroke {
        brush: Brush {
            mode,
            radius_px,
            hardness,
            edge_aware,
        },
        points,
    };
    let layer = EditLayer::from_strokes(
        &photo,
        &[
            stroke(
                BrushMode::Keep,
                14.0,
                0.5,
                false,
                vec![[w * 0.05, h * 0.1], [w * 0.3, h * 0.15]],
            ),
            stroke(
                BrushMode::Erase,
                20.0,
                0.2,
                false,
                vec![[w * 0.4, h * 0.3], [w * 0.6, h * 0.7]],
            ),
            stroke(
                BrushMode::Erase,
                12.0,
                0.6,
                true,
                vec![[w * 0.2, h * 0.5], [w * 0.8, h * 0.55]],
            ),
            stroke(BrushMode::Keep, 25.0, 0.0, false, vec![[w * 0.5, h * 0.5]]),
        ],
    );
    let edited = layer.as_raw().chunks_exact(2).filter(|e| e[0] > 0).count();
    assert!(edited > 5000, "the edits must cover something: {edited} px");
    for (settings, edits) in cases.iter().flat_map(|s| [(*s, None), (*s, Some(&layer))]) {
        // The CPU reference of the whole path: refinement (foreground colours by default), then
        // the composite and the edits.
        let refined = refine::refine(&photo, &mask, &settings.refine, |a| settings.alpha(a));
        let cpu = composite::composite(
            &photo,
            &refined.mask,
            refined.foreground.as_ref(),
            &settings,
            edits,
        )
        .unwrap();
        let gpu_out = gpu.composite(&photo, &mask, &settings, edits).unwrap();
        assert_eq!(cpu.dimensions(), gpu_out.dimensions());
        let mut worst = 0u8;
        let mut off = 0usize;
        for (a, b) in cpu.as_raw().iter().zip(gpu_out.as_raw()) {
            let d = a.abs_diff(*b);
            worst = worst.max(d);
            off += usize::from(d > 0);
        }
        eprintln!(
            "{:?} threshold {} softness {}, edits {}: max difference {worst}, {off} channel values differ",
            settings.background,
            settings.threshold,
            settings.softness,
            edits.is_some()
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
    let ours = gpu.composite(&photo, &mask, &plain, None).unwrap();
    let cli = cutout::image_ops::cutout_rgba(&photo, &mask);
    assert_eq!(
        ours, cli,
        "without refinement the GPU must give exactly what `cutout remove --no-foreground` writes"
    );
}
