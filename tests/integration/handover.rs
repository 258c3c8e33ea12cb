//! A batch that starts on one engine and moves to a second one when it arrives
//! (`batch::run_opening` with a successor, what `cutout remove --ep auto` does with a GPU session
//! that is still starting): every photo is written once and right, whether the second engine
//! arrives between photos or stops one under way, which then runs again on it. Both engines are
//! real CPU sessions here; on a GPU machine the second one is the CUDA session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use cutout::{
    batch::{self, BatchOptions, Job, Outcome},
    engine::{ProviderKind, ProviderRequest, Segmenter, SegmenterOptions},
    finish::{EdgeDevice, Finisher},
};

fn jobs(out: &Path) -> Vec<Job> {
    std::fs::create_dir_all(out).unwrap();
    common::shared_photos()
        .into_iter()
        .take(6)
        .map(|input| {
            let output = out.join(input.file_name().unwrap()).with_extension("png");
            Job::file(input, cutout::image_ops::Target::exact(output, None))
        })
        .collect()
}

fn cpu_at(side_px: u32) -> Segmenter {
    common::segmenter(&SegmenterOptions {
        provider: ProviderRequest::Only(ProviderKind::Cpu),
        input_side_px: Some(side_px),
        ..SegmenterOptions::default()
    })
    .unwrap()
}

fn pixels(path: &PathBuf) -> Vec<u8> {
    image::open(path).unwrap().to_rgba8().into_raw()
}

/// Runs the batch on a first engine; `second` is sent `delay` after the first photo is done.
fn run_with_second(out: &Path, second: Segmenter, delay: Duration) -> (Vec<Outcome>, usize) {
    let (send, arrives) = crossbeam_channel::bounded(1);
    let mut second = Some(second);
    let switches = AtomicUsize::new(0);
    let mut outcomes = Vec::new();
    batch::run_opening(
        || Ok::<_, std::convert::Infallible>((cpu_at(320), Some(arrives))),
        jobs(out),
        BatchOptions::default(),
        &Finisher::with_edges(EdgeDevice::Cpu),
        &AtomicBool::new(false),
        |outcome| {
            outcomes.push(outcome);
            if let Some(next) = second.take() {
                let send = send.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    send.send(next).ok();
                });
            }
        },
        |_| {
            switches.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    (outcomes, switches.load(Ordering::SeqCst))
}

#[test]
fn a_second_engine_takes_over_mid_batch_and_every_photo_is_written_right() {
    let root = tempfile::tempdir().unwrap();
    let mut reference = Vec::new();
    batch::run(
        &mut cpu_at(320),
        jobs(&root.path().join("one-engine")),
        BatchOptions::default(),
        &Finisher::with_edges(EdgeDevice::Cpu),
        |outcome| reference.push(outcome),
    );
    assert!(reference.iter().all(|o| o.result.is_ok()));
    // Sent at once (it arrives between photos) and a little later (it stops the photo under
    // way, which runs again on it): both end the same.
    for (name, delay) in [
        ("between", Duration::ZERO),
        ("during", Duration::from_millis(40)),
    ] {
        let out = root.path().join(name);
        let (outcomes, switches) = run_with_second(&out, cpu_at(320), delay);
        assert_eq!(switches, 1, "{name}: the second engine took over once");
        assert_eq!(
            outcomes.len(),
            reference.len(),
            "{name}: one outcome per photo"
        );
        for (got, want) in outcomes.iter().zip(&reference) {
            assert!(got.result.is_ok(), "{name}: {:?}", got.result);
            assert_eq!(got.provider, Some(ProviderKind::Cpu));
            assert_eq!(
                pixels(&got.job.output.path),
                pixels(&want.job.output.path),
                "{name}: {} differs from the one-engine batch",
                got.job.input.display()
            );
        }
    }
}

#[test]
fn a_second_engine_that_makes_its_input_differently_is_not_used() {
    let root = tempfile::tempdir().unwrap();
    let (outcomes, switches) = run_with_second(root.path(), cpu_at(256), Duration::ZERO);
    assert_eq!(switches, 0);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
}
