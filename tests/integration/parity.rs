//! Both real models on the CPU provider: rembg parity, quality on ground truth, and FP16 against
//! FP32. u2netp comes from ../shared; IS-Net through the project's own npm fetch (see
//! `common::isnet_model`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use crate::common;

use cutout::{
    engine::{Precision, Segmenter},
    image_ops::{self, DecodeLimits, metrics::mask_quality},
};
use image::GrayImage;

/// The models, each with the reference figures rembg's own pipeline gives on the 8 ECSSD photos
/// (IoU at 0.5, MAE, boundary F at 2 px; `../shared/models/SOURCES.md`).
const MODELS: [(&str, [f64; 3]); 2] = [
    ("u2netp", [0.978, 0.0129, 0.921]),
    ("isnet", [0.9768, 0.0138, 0.8993]),
];

fn mask_for(segmenter: &mut Segmenter, path: &std::path::Path) -> GrayImage {
    let decoded = image_ops::decode_file(path, DecodeLimits::default()).expect("decode");
    segmenter.segment(&decoded.rgb).expect("segment").0
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / a.len() as f64
}

fn masks_match_rembg(model: &str) {
    let mut segmenter = common::cpu_segmenter_for(model, Precision::Fp32);
    let root = common::shared_dir().join("testdata/rembg");
    let mut worst: f64 = 0.0;
    for name in ["anime-girl-1", "car-1", "cloth-1", "plants-1"] {
        let mask = mask_for(&mut segmenter, &root.join(format!("fixtures/{name}.jpg")));
        let expected = image::open(root.join(format!("expected_{model}/{name}.{model}.png")))
            .expect("expected mask");
        // rembg's expected files are the cutout (alpha = mask) or the mask itself.
        let expected_alpha: Vec<u8> = match expected {
            image::DynamicImage::ImageRgba8(rgba) => rgba.pixels().map(|p| p.0[3]).collect(),
            other => other.into_luma8().into_raw(),
        };
        assert_eq!(
            mask.as_raw().len(),
            expected_alpha.len(),
            "{model} {name}: mask must be at the photo's size"
        );
        let diff = mean_abs_diff(mask.as_raw(), &expected_alpha);
        println!("{model:<7} {name:<14} mean |alpha - rembg| = {diff:.3} grey levels");
        assert!(
            diff <= 1.0,
            "{model} {name}: mean difference {diff:.3} exceeds 1.0 grey level"
        );
        worst = worst.max(diff);
    }
    println!("{model}: worst {worst:.3}");
}

#[test]
fn u2netp_masks_match_rembg_within_one_grey_level() {
    masks_match_rembg("u2netp");
}

#[test]
fn isnet_masks_match_rembg_within_one_grey_level() {
    masks_match_rembg("isnet");
}

/// Mean IoU, MAE and boundary F (2 px) of `model` over the ECSSD photos.
fn ecssd_quality(model: &str) -> [f64; 3] {
    let mut segmenter = common::cpu_segmenter_for(model, Precision::Fp32);
    let root = common::shared_dir().join("testdata/ecssd");
    let mut names: Vec<String> = std::fs::read_dir(root.join("images"))
        .expect("ecssd images")
        .map(|e| {
            let path = e.expect("entry").path();
            path.file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut sum = [0.0; 3];
    println!(
        "{:<7} {:<12} {:>6} {:>7} {:>6}",
        "model", "image", "IoU", "MAE", "F"
    );
    for name in &names {
        let mask = mask_for(&mut segmenter, &root.join(format!("images/{name}.jpg")));
        let truth = image::open(root.join(format!("masks/{name}.png")))
            .expect("truth")
            .into_luma8();
        let q = mask_quality(&mask, &truth, 2).expect("same size");
        println!(
            "{model:<7} {name:<12} {:>6.4} {:>7.4} {:>6.4}",
            q.iou, q.mae, q.boundary_f
        );
        sum[0] += q.iou;
        sum[1] += q.mae;
        sum[2] += q.boundary_f;
    }
    sum.map(|v| v / names.len() as f64)
}

fn quality_matches_the_reference(model: &str) {
    let reference = MODELS
        .iter()
        .find(|(m, _)| *m == model)
        .expect("reference")
        .1;
    let [iou, mae, f] = ecssd_quality(model);
    println!(
        "{model:<7} {:<12} {iou:>6.4} {mae:>7.4} {f:>6.4}   (rembg's pipeline, same weights: {:.4} / {:.4} / {:.4})",
        "mean", reference[0], reference[1], reference[2]
    );
    // Same weights and preprocessing as rembg: the same figures within rounding.
    for (what, ours, theirs) in [
        ("IoU", iou, reference[0]),
        ("MAE", mae, reference[1]),
        ("boundary F", f, reference[2]),
    ] {
        assert!(
            (ours - theirs).abs() <= 0.005,
            "{model}: mean {what} {ours:.4} is not within 0.005 of rembg's {theirs:.4}"
        );
    }
}

#[test]
fn u2netp_quality_on_ecssd_matches_the_reference() {
    quality_matches_the_reference("u2netp");
}

#[test]
fn isnet_quality_on_ecssd_matches_the_reference() {
    quality_matches_the_reference("isnet");
}

#[test]
fn larger_input_sizes_run_on_the_dynamic_model() {
    let options = cutout::engine::SegmenterOptions {
        provider: cutout::engine::ProviderRequest::Only(cutout::engine::ProviderKind::Cpu),
        input_side_px: Some(160),
        ..Default::default()
    };
    let mut segmenter = common::segmenter(&options).expect("segmenter at 160 px");
    assert_eq!(segmenter.input_side_px(), 160);
    let mask = mask_for(
        &mut segmenter,
        &common::shared_dir().join("testdata/rembg/fixtures/car-1.jpg"),
    );
    assert_eq!(mask.dimensions(), (480, 360));
    // The car fills the middle of the photo: the centre is foreground, the top-left corner is not.
    assert!(mask.get_pixel(240, 200).0[0] > 200);
    assert!(mask.get_pixel(2, 2).0[0] < 50);
}

#[test]
fn a_fixed_input_model_refuses_other_sizes_in_words() {
    let runtime =
        cutout::engine::runtime::load(&cutout::paths::AppDirs::from_env()).expect("ONNX Runtime");
    let options = cutout::engine::SegmenterOptions {
        provider: cutout::engine::ProviderRequest::Only(cutout::engine::ProviderKind::Cpu),
        input_side_px: Some(512),
        ..Default::default()
    };
    let err = Segmenter::new(
        &runtime,
        &common::isnet_model(),
        &options,
        &common::cache_dir(),
    )
    .expect_err("isnet is fixed at 1024 px");
    assert!(
        err.to_string()
            .contains("takes only 1024 px inputs (its graph is fixed at that size)"),
        "{err}"
    );
}

fn fp16_agrees_with_fp32(model: &str) {
    let mut fp32 = common::cpu_segmenter_for(model, Precision::Fp32);
    let mut fp16 = common::cpu_segmenter_for(model, Precision::Fp16);
    assert_eq!(fp16.report().precision, Precision::Fp16);
    let photos = common::shared_photos();
    let (mut worst_diff, mut worst_iou) = (0.0f64, 1.0f64);
    for photo in &photos {
        let a = mask_for(&mut fp32, photo);
        let b = mask_for(&mut fp16, photo);
        let diff = mean_abs_diff(a.as_raw(), b.as_raw());
        let (mut inter, mut union) = (0u64, 0u64);
        for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
            inter += u64::from(x >= 128 && y >= 128);
            union += u64::from(x >= 128 || y >= 128);
        }
        let iou = inter as f64 / union.max(1) as f64;
        println!(
            "{model:<7} {:<20} FP16 vs FP32: mean diff {diff:.3}, IoU {iou:.4}",
            photo.file_name().expect("name").to_string_lossy()
        );
        worst_diff = worst_diff.max(diff);
        worst_iou = worst_iou.min(iou);
    }
    println!(
        "{model}: {} photos, worst mean diff {worst_diff:.3} grey levels, worst IoU {worst_iou:.4}",
        photos.len()
    );
    assert!(
        worst_diff <= 0.5,
        "{model}: FP16 differs from FP32 by {worst_diff:.3} grey levels"
    );
    assert!(
        worst_iou >= 0.99,
        "{model}: FP16 IoU against FP32 fell to {worst_iou:.4}"
    );
}

#[test]
fn u2netp_fp16_masks_agree_with_fp32_on_the_shared_photos() {
    fp16_agrees_with_fp32("u2netp");
}

#[test]
fn isnet_fp16_masks_agree_with_fp32_on_the_shared_photos() {
    fp16_agrees_with_fp32("isnet");
}

/// The split that keeps a TF32 convolution's input exact (what the CUDA provider's FP32 graph of
/// u2netp gets) changes nothing where convolutions are exact: the CPU provider, real model, real
/// photos.
#[test]
fn the_tf32_input_split_computes_the_same_masks_on_the_cpu() {
    use cutout::engine::prepare::{Fp16Source, Target, transform_with_stats};
    let model = common::shared_model();
    assert_eq!(model.spec.fp32_islands, vec![[96, 97]]);
    let bytes = std::fs::read(&model.path).expect("model");
    let target = |split_for_tf32| Target {
        side_px: 320,
        precision: Precision::Fp32,
        fp16_source: Fp16Source::default(),
        output_index: 0,
        fp32_islands: &model.spec.fp32_islands,
        split_for_tf32,
        without_bf16: false,
    };
    let (_, plain) = transform_with_stats(&bytes, target(false)).expect("plain");
    let (split, stats) = transform_with_stats(&bytes, target(true)).expect("split");
    // Round to bfloat16, widen, subtract, a second convolution and the sum, for one.
    assert_eq!(stats.nodes_after, plain.nodes_after + 5);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("u2netp-split.onnx");
    std::fs::write(&path, split).expect("write");
    let runtime =
        cutout::engine::runtime::load(&cutout::paths::AppDirs::from_env()).expect("ONNX Runtime");
    let options = cutout::engine::SegmenterOptions {
        provider: cutout::engine::ProviderRequest::Only(cutout::engine::ProviderKind::Cpu),
        ..Default::default()
    };
    let custom = cutout::engine::models::custom(&path, 320).expect("custom model");
    let mut with_split =
        Segmenter::new(&runtime, &custom, &options, &common::cache_dir()).expect("session");
    let mut without = common::cpu_segmenter_for("u2netp", Precision::Fp32);
    for photo in common::shared_photos().iter().step_by(4) {
        let diff = mean_abs_diff(
            mask_for(&mut with_split, photo).as_raw(),
            mask_for(&mut without, photo).as_raw(),
        );
        assert!(diff < 0.05, "{}: {diff:.3} grey levels", photo.display());
    }
}
