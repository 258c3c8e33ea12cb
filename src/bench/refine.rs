//! `cutout bench-refine`: the edge passes (guided filter, clean colours) on a 12 MP photo, on the
//! CPU path and on the GPU when there is one, timed the same way as the network.

use std::time::Instant;

use super::{min_median, ms_since};
use crate::image_ops::{CompositeSettings, edges, refine::RefineSettings};

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
    let timing = Timing { runs, warmup };
    let mut rows: Vec<RefineRow> = cases[..3]
        .iter()
        .map(|&(what, settings, _)| cpu_path_row(photo, mask, what, &settings, timing))
        .collect();
    let no_gpu = match crate::render::Offscreen::new() {
        Ok(gpu) => {
            rows.extend(gpu_rows(&gpu, photo, mask, &cases, timing)?);
            None
        }
        Err(e) => Some(e.to_string()),
    };
    if cpu_runs > 0 {
        let (what, settings, _) = cases[2];
        rows.push(reference_row(photo, mask, what, &settings, cpu_runs));
    }
    Ok(RefineBench { rows, no_gpu })
}

/// How many untimed and timed runs each row has.
#[derive(Clone, Copy)]
struct Timing {
    runs: usize,
    warmup: usize,
}

impl Timing {
    /// `warmup` untimed runs of `run`, then the times (ms) of at least one timed run.
    fn times<E>(self, mut run: impl FnMut(usize) -> Result<f64, E>) -> Result<Vec<f64>, E> {
        for i in 0..self.warmup {
            run(i)?;
        }
        (0..self.runs.max(1)).map(run).collect()
    }
}

impl RefineRow {
    fn new(what: &'static str, device: String, times: &[f64], band: String) -> Self {
        let (min_ms, median_ms) = min_median(times);
        Self {
            what,
            device,
            runs: times.len(),
            min_ms,
            median_ms,
            band,
        }
    }
}

/// The CPU path's whole call, with the size of its bands.
fn cpu_path_row(
    photo: &image::RgbImage,
    mask: &image::GrayImage,
    what: &'static str,
    settings: &CompositeSettings,
    timing: Timing,
) -> RefineRow {
    let mut sizes = edges::BandSizes::default();
    let Ok(times) = timing.times(|_| {
        let t = Instant::now();
        let (refined, s) = edges::refine(photo, mask, &settings.refine, |m| settings.alpha(m));
        std::hint::black_box(refined);
        sizes = s;
        Ok::<_, std::convert::Infallible>(ms_since(t))
    });
    let total = photo.width() as usize * photo.height() as usize;
    let band = [
        ("guided", sizes.guided_px),
        ("colours", sizes.foreground_px),
    ]
    .iter()
    .filter(|(_, px)| *px > 0)
    .map(|(name, px)| format!("{name} {}", band_share(*px, total)))
    .collect::<Vec<_>>()
    .join(", ");
    let device = format!("CPU path, {} threads", edges::threads());
    RefineRow::new(what, device, &times, band)
}

/// The plain CPU reference on one thread, `cpu_runs` times.
fn reference_row(
    photo: &image::RgbImage,
    mask: &image::GrayImage,
    what: &'static str,
    settings: &CompositeSettings,
    cpu_runs: usize,
) -> RefineRow {
    let times: Vec<f64> = (0..cpu_runs)
        .map(|_| {
            let t = Instant::now();
            let refined = crate::image_ops::refine::refine(photo, mask, &settings.refine, |a| {
                settings.alpha(a)
            });
            std::hint::black_box(refined);
            ms_since(t)
        })
        .collect();
    let device = "CPU reference (one thread)".to_owned();
    RefineRow::new(what, device, &times, String::new())
}

/// The GPU passes (textures uploaded once, each run waited for on the GPU), then slider frames.
fn gpu_rows(
    gpu: &crate::render::Offscreen,
    photo: &image::RgbImage,
    mask: &image::GrayImage,
    cases: &[(&'static str, CompositeSettings, bool)],
    timing: Timing,
) -> Result<Vec<RefineRow>, crate::render::RenderError> {
    let images = gpu.upload(photo, mask)?;
    let mut rows = Vec::new();
    for &(what, settings, in_parts) in cases {
        let times = timing.times(|_| {
            let took = gpu.refine_images(&images, &settings, in_parts)?;
            Ok::<_, crate::render::RenderError>(took.as_secs_f64() * 1e3)
        })?;
        rows.push(RefineRow::new(
            what,
            gpu.adapter_name(),
            &times,
            String::new(),
        ));
    }
    // A slider being dragged: every frame has new settings, so the preview refines the whole
    // photo again and draws it into a window-sized target.
    let target = gpu.target(FRAME_SIZE[0], FRAME_SIZE[1]);
    let both = cases[2].1;
    let times = timing.times(|i| {
        let mut settings = both;
        settings.refine.radius = 4 + (i % 8) as u32;
        settings.refine.eps = 1e-4 * (1.0 + (i % 5) as f32);
        Ok::<_, crate::render::RenderError>(
            gpu.frame(&images, &settings, &target)?.as_secs_f64() * 1e3,
        )
    })?;
    rows.push(RefineRow::new(
        "slider frame: both passes + 1920×1080 composite",
        gpu.adapter_name(),
        &times,
        String::new(),
    ));
    Ok(rows)
}
