//! `cutout bench-refine`: the edge passes (guided filter, clean colours) on a 12 MP photo, on the
//! CPU path and on the GPU when there is one, timed the same way as the network.

use std::time::Instant;

use super::{min_median, ms_since};

/// The window size of the refinement benchmark's slider frames.
const FRAME_SIZE: [u32; 2] = [1920, 1080];

/// One row of the refinement benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefineRow {
    /// Which passes ran.
    pub what: &'static str,
    /// Where: "CPU path, 2 threads", the wgpu adapter, or "CPU reference".
    pub device: String,
    /// Timed runs.
    pub runs: usize,
    /// Fastest run, milliseconds.
    pub min_ms: f64,
    /// Median run, milliseconds.
    pub median_ms: f64,
    /// The pixels the CPU path worked on (its bands), empty elsewhere.
    pub band: String,
}

/// The refinement benchmark's rows, and why the GPU rows are missing when they are.
pub struct RefineBench {
    /// Rows in order: CPU path, GPU passes, CPU reference.
    pub rows: Vec<RefineRow>,
    /// Why no GPU rows were measured (no adapter, say).
    pub no_gpu: Option<String>,
}

/// "3.1 MP (26 %)": a band's size against the photo's.
fn band_share(px: usize, total: usize) -> String {
    #[allow(clippy::cast_precision_loss)]
    let (mp, share) = (px as f64 / 1e6, 100.0 * px as f64 / total.max(1) as f64);
    format!("{mp:.2} MP ({share:.0} %)")
}

/// Times the edge passes on a photo and its mask the benchmark's way: `warmup` untimed runs, then
/// `runs` timed runs, min and median, for
/// - the CPU path ([`crate::image_ops::edges`]), whole call, with the size of its bands;
/// - the GPU passes: textures uploaded once, each run waited for on the GPU (submission to
///   completion), and slider frames (both passes + a window-sized composite);
/// - the plain CPU reference, over `cpu_runs` runs.
pub fn refine(
    photo: &image::RgbImage,
    mask: &image::GrayImage,
    runs: usize,
    warmup: usize,
    cpu_runs: usize,
) -> Result<RefineBench, crate::render::RenderError> {
    use crate::image_ops::{CompositeSettings, edges, refine::RefineSettings};
    let with = |guided, foreground| CompositeSettings {
        refine: RefineSettings {
            guided,
            foreground,
            ..RefineSettings::default()
        },
        ..CompositeSettings::default()
    };
    let both = with(true, true);
    let cases = [
        ("guided filter", with(true, false), false),
        ("foreground colours", with(false, true), false),
        ("guided filter + foreground colours", both, false),
        (
            "both, one dispatch per submission (the app on a slow adapter)",
            both,
            true,
        ),
    ];
    let mut rows = Vec::new();
    let total = photo.width() as usize * photo.height() as usize;
    for (what, settings, _) in &cases[..3] {
        let mut sizes = edges::BandSizes::default();
        let mut time = || {
            let t = Instant::now();
            let (refined, s) = edges::refine(photo, mask, &settings.refine, |m| settings.alpha(m));
            std::hint::black_box(refined);
            sizes = s;
            ms_since(t)
        };
        for _ in 0..warmup {
            time();
        }
        let times: Vec<f64> = (0..runs.max(1)).map(|_| time()).collect();
        let (min_ms, median_ms) = min_median(&times);
        let band = [
            ("guided", sizes.guided_px),
            ("colours", sizes.foreground_px),
        ]
        .iter()
        .filter(|(_, px)| *px > 0)
        .map(|(name, px)| format!("{name} {}", band_share(*px, total)))
        .collect::<Vec<_>>()
        .join(", ");
        rows.push(RefineRow {
            what,
            device: format!("CPU path, {} threads", edges::threads()),
            runs: times.len(),
            min_ms,
            median_ms,
            band,
        });
    }
    let reference = |rows: &mut Vec<RefineRow>| {
        if cpu_runs == 0 {
            return;
        }
        let (what, settings, _) = cases[2];
        let times: Vec<f64> = (0..cpu_runs)
            .map(|_| {
                let t = Instant::now();
                let refined =
                    crate::image_ops::refine::refine(photo, mask, &settings.refine, |a| {
                        settings.alpha(a)
                    });
                std::hint::black_box(refined);
                ms_since(t)
            })
            .collect();
        let (min_ms, median_ms) = min_median(&times);
        rows.push(RefineRow {
            what,
            device: "CPU reference (one thread)".to_owned(),
            runs: times.len(),
            min_ms,
            median_ms,
            band: String::new(),
        });
    };
    let gpu = match crate::render::Offscreen::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            reference(&mut rows);
            return Ok(RefineBench {
                rows,
                no_gpu: Some(e.to_string()),
            });
        }
    };
    let images = gpu.upload(photo, mask)?;
    for (what, settings, in_parts) in cases {
        for _ in 0..warmup {
            gpu.refine_images(&images, &settings, in_parts)?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            let took = gpu.refine_images(&images, &settings, in_parts)?;
            times.push(took.as_secs_f64() * 1e3);
        }
        let (min_ms, median_ms) = min_median(&times);
        rows.push(RefineRow {
            what,
            device: gpu.adapter_name(),
            runs: times.len(),
            min_ms,
            median_ms,
            band: String::new(),
        });
    }
    // A slider being dragged: every frame has new settings, so the preview refines the whole
    // photo again and draws it into a window-sized target.
    let target = gpu.target(FRAME_SIZE[0], FRAME_SIZE[1]);
    let step = |i: usize| {
        let mut settings = cases[2].1;
        settings.refine.radius = 4 + (i % 8) as u32;
        settings.refine.eps = 1e-4 * (1.0 + (i % 5) as f32);
        settings
    };
    for i in 0..warmup {
        gpu.frame(&images, &step(i), &target)?;
    }
    let times = (0..runs.max(1))
        .map(|i| Ok(gpu.frame(&images, &step(i), &target)?.as_secs_f64() * 1e3))
        .collect::<Result<Vec<f64>, crate::render::RenderError>>()?;
    let (min_ms, median_ms) = min_median(&times);
    rows.push(RefineRow {
        what: "slider frame: both passes + 1920×1080 composite",
        device: gpu.adapter_name(),
        runs: times.len(),
        min_ms,
        median_ms,
        band: String::new(),
    });
    reference(&mut rows);
    Ok(RefineBench { rows, no_gpu: None })
}
