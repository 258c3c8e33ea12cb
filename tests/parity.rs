//! The real model on the CPU provider: rembg parity and quality on ground truth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cutout::image_ops::{self, DecodeLimits};
use image::GrayImage;

fn mask_for(segmenter: &mut cutout::engine::Segmenter, path: &std::path::Path) -> GrayImage {
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

#[test]
fn masks_match_rembg_within_one_grey_level() {
    let mut segmenter = common::cpu_segmenter();
    let root = common::shared_dir().join("testdata/rembg");
    let mut worst: f64 = 0.0;
    for name in ["anime-girl-1", "car-1", "cloth-1", "plants-1"] {
        let mask = mask_for(&mut segmenter, &root.join(format!("fixtures/{name}.jpg")));
        let expected = image::open(root.join(format!("expected_u2netp/{name}.u2netp.png")))
            .expect("expected mask")
            .into_rgba8();
        assert_eq!(
            mask.dimensions(),
            expected.dimensions(),
            "{name}: mask must be at the photo's size"
        );
        let expected_alpha: Vec<u8> = expected.pixels().map(|p| p.0[3]).collect();
        let diff = mean_abs_diff(mask.as_raw(), &expected_alpha);
        println!("{name:<14} mean |alpha - rembg| = {diff:.3} grey levels");
        assert!(
            diff <= 1.0,
            "{name}: mean difference {diff:.3} exceeds 1.0 grey level"
        );
        worst = worst.max(diff);
    }
    println!("worst {worst:.3}");
}

#[test]
fn quality_on_ecssd_ground_truth() {
    let mut segmenter = common::cpu_segmenter();
    let root = common::shared_dir().join("testdata/ecssd");
    let mut names: Vec<String> = std::fs::read_dir(root.join("images"))
        .expect("ecssd images")
        .map(|e| {
            e.expect("entry")
                .path()
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let (mut iou_sum, mut mae_sum) = (0.0, 0.0);
    println!("{:<12} {:>6} {:>7}", "image", "IoU", "MAE");
    for name in &names {
        let mask = mask_for(&mut segmenter, &root.join(format!("images/{name}.jpg")));
        let truth = image::open(root.join(format!("masks/{name}.png")))
            .expect("truth")
            .into_luma8();
        assert_eq!(mask.dimensions(), truth.dimensions());
        let (mut inter, mut union, mut abs) = (0u64, 0u64, 0.0f64);
        for (&m, &t) in mask.as_raw().iter().zip(truth.as_raw()) {
            let (pm, pt) = (m >= 128, t >= 128);
            inter += u64::from(pm && pt);
            union += u64::from(pm || pt);
            abs += (f64::from(m) - f64::from(t)).abs() / 255.0;
        }
        let iou = inter as f64 / union.max(1) as f64;
        let mae = abs / mask.as_raw().len() as f64;
        println!("{name:<12} {iou:>6.3} {mae:>7.4}");
        iou_sum += iou;
        mae_sum += mae;
    }
    let n = names.len() as f64;
    let (iou, mae) = (iou_sum / n, mae_sum / n);
    println!(
        "{:<12} {iou:>6.3} {mae:>7.4}   (rembg with the same weights: IoU 0.978, MAE 0.0129)",
        "mean"
    );
    // Same weights and preprocessing as rembg, so the same quality within rounding.
    assert!(
        iou >= 0.97,
        "mean IoU {iou:.3} is below rembg's 0.978 by more than rounding"
    );
    assert!(
        mae <= 0.015,
        "mean MAE {mae:.4} is above rembg's 0.0129 by more than rounding"
    );
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
fn fp16_masks_agree_with_fp32_on_the_shared_photos() {
    use cutout::engine::{Precision, ProviderKind, ProviderRequest, SegmenterOptions};
    let options = |precision| SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        precision,
        ..SegmenterOptions::default()
    };
    let mut fp32 = common::segmenter(&options(Precision::Fp32)).expect("fp32");
    let mut fp16 = common::segmenter(&options(Precision::Fp16)).expect("fp16");
    assert_eq!(fp16.report().precision, Precision::Fp16);
    let root = common::shared_dir().join("testdata");
    let mut photos: Vec<std::path::PathBuf> = ["rembg/fixtures", "u2net/images", "ecssd/images"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .expect("photos")
                .map(|e| e.expect("entry").path())
        })
        .collect();
    photos.sort();
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
            "{:<20} FP16 vs FP32: mean diff {diff:.3}, IoU {iou:.4}",
            photo.file_name().expect("name").to_string_lossy()
        );
        worst_diff = worst_diff.max(diff);
        worst_iou = worst_iou.min(iou);
    }
    println!(
        "{} photos: worst mean diff {worst_diff:.3} grey levels, worst IoU {worst_iou:.4}",
        photos.len()
    );
    assert!(
        worst_diff <= 0.5,
        "FP16 differs from FP32 by {worst_diff:.3} grey levels"
    );
    assert!(
        worst_iou >= 0.99,
        "FP16 IoU against FP32 fell to {worst_iou:.4}"
    );
}
