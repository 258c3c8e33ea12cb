//! `cutout bench`: PhotoRoom's benchmark method.
//!
//! Fixed input size per row; a prepared (fixed-shape) model; the first inference (cuDNN algorithm
//! search, CUDA graph capture, TensorRT engine build) timed apart; warm-up runs; then many runs of
//! the network alone, synchronised, with the input already on the device; min and median. Host
//! copies and pre/post-processing are timed separately, and `--photo` adds the whole path from
//! file to PNG on disk.

use std::{path::PathBuf, time::Instant};

use image::RgbImage;

mod refine;

pub use refine::{RefineBench, RefineRow, refine};

use crate::timing::ms_since;
use crate::{
    batch::{self, OutputKind},
    engine::{
        self, ModelChoice, Precision, ProviderRequest, SegmenterOptions, prepare::Fp16Source,
    },
    image_ops::{self, DecodeLimits, refine::RefineSettings},
    paths::AppDirs,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Square input sides (`None`: 160, 320, 512 and 1024 px, or the one size of a fixed-input
    /// model).
    pub sizes: Option<Vec<u32>>,
    /// Precisions.
    pub precisions: Vec<Precision>,
    /// Providers (each row says what actually ran).
    pub providers: Vec<ProviderRequest>,
    /// Timed runs per row.
    pub runs: usize,
    /// Untimed runs after the first.
    pub warmup: usize,
    /// A real photo for pre/post-processing and the end-to-end time.
    pub photo: Option<PathBuf>,
    /// Model.
    pub model: ModelChoice,
    /// Channels-last variants to measure on the CUDA provider (`true` = NHWC).
    pub nhwc: Vec<bool>,
    /// Capture graphs on the CUDA and WebGPU providers.
    pub cuda_graphs: bool,
    /// More WebGPU provider options, for every row.
    pub webgpu_options: Vec<(String, String)>,
    /// cuDNN conv+bias fusion variants to measure on the CUDA provider.
    pub fuse_conv_bias: Vec<bool>,
    /// How cuDNN picks algorithms on the CUDA provider: one row per way.
    pub conv_search: Vec<engine::ConvSearch>,
    /// A folder to write each row's graph to, as ONNX Runtime optimised it for the provider.
    pub dump_optimized: Option<PathBuf>,
    /// FP16 graphs to measure for a model stored in FP16 (as stored, from its FP32 twin).
    pub fp16_sources: Vec<Fp16Source>,
}

/// Sizes measured when none are given.
pub const DEFAULT_SIZES_PX: [u32; 4] = [160, 320, 512, 1024];

/// One row: one provider, precision and size.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchRow {
    /// Provider asked for.
    pub requested: String,
    /// Provider that ran (empty when none could).
    pub provider: String,
    /// Precision.
    pub precision: String,
    /// For FP16 of a model stored in FP16: `stored` or `twin` (empty otherwise).
    pub fp16_source: String,
    /// Input side in pixels.
    pub size_px: u32,
    /// Convolution layout asked for on the CUDA provider (`nhwc` or `nchw`).
    pub layout: String,
    /// cuDNN conv+bias fusion asked for on the CUDA provider.
    pub fuse_conv_bias: bool,
    /// How cuDNN picked convolution algorithms on the CUDA provider.
    pub conv_search: String,
    /// Timed runs.
    pub runs: usize,
    /// Network alone: fastest run, ms.
    pub min_ms: f64,
    /// Network alone: median run, ms.
    pub median_ms: f64,
    /// Making or loading the prepared model, ms.
    pub prepare_ms: f64,
    /// Session creation, ms.
    pub session_ms: f64,
    /// First inference (algorithm search, graph capture), ms.
    pub first_run_ms: f64,
    /// Host → device copy of the input, median ms (0 on the CPU).
    pub upload_ms: f64,
    /// Device → host copy of the mask, median ms (0 on the CPU).
    pub download_ms: f64,
    /// Photo → input tensor (resize, normalise), median ms.
    pub preprocess_ms: f64,
    /// Raw map → full-size mask, median ms.
    pub postprocess_ms: f64,
    /// File → decoded → mask → PNG on disk, median ms (with `--photo`).
    pub end_to_end_ms: Option<f64>,
    /// What ran, with features and reasons.
    pub report: String,
    /// Why the row could not be measured.
    pub error: Option<String>,
}

/// Minimum and median of a sample.
pub fn min_median(samples: &[f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    } else {
        sorted[mid]
    };
    (sorted[0], median)
}

/// A photo-like test image (smooth gradients and texture) for when no `--photo` is given.
pub fn synthetic_photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let blob = (-((fx - 0.5).powi(2) + (fy - 0.55).powi(2)) * 12.0).exp();
        let texture = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 23) as f32;
        let r = 40.0 + 180.0 * blob + texture;
        let g = 90.0 + 60.0 * fx + texture;
        let b = 160.0 - 100.0 * fy + 120.0 * blob;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        image::Rgb([
            r.min(255.0) as u8,
            g.min(255.0) as u8,
            b.clamp(0.0, 255.0) as u8,
        ])
    })
}

/// Runs every row; `log` receives a line as each row finishes.
pub fn run(
    dirs: &AppDirs,
    config: &BenchConfig,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<BenchRow>, engine::EngineError> {
    let runtime = engine::runtime::load(dirs)?;
    let model = engine::resolve_model(dirs, &config.model, &mut engine::models::no_progress())?;
    let photo = match &config.photo {
        Some(path) => {
            image_ops::decode_file(path, DecodeLimits::default())
                .map_err(|e| engine::EngineError::Setup(e.to_string()))?
                .rgb
        }
        None => synthetic_photo(1600, 1200),
    };
    let sizes = config.sizes.clone().unwrap_or_else(|| {
        if model.spec.fixed_input {
            vec![model.spec.input_size]
        } else {
            DEFAULT_SIZES_PX.to_vec()
        }
    });
    // The FP16 source matters only for a model stored in FP16; others get one FP16 row.
    let fp16_sources = if model.spec.precision == Precision::Fp16 && !config.fp16_sources.is_empty()
    {
        config.fp16_sources.clone()
    } else {
        vec![Fp16Source::default()]
    };
    let default_source = [Fp16Source::default()];
    let mut rows = Vec::new();
    for &requested in &config.providers {
        for &precision in &config.precisions {
            let sources = match precision {
                Precision::Fp16 => fp16_sources.as_slice(),
                Precision::Fp32 => &default_source[..],
            };
            for variant in variants(config, &sizes, sources) {
                let options = variant.options(config, &model, requested, precision);
                let mut row = variant.row(&model, requested, precision);
                match engine::Segmenter::new(&runtime, &model, &options, &dirs.cache_dir) {
                    Ok(mut segmenter) => {
                        if let Err(e) = measure(&mut segmenter, &photo, config, &mut row) {
                            row.error = Some(e.to_string());
                        }
                    }
                    Err(e) => row.error = Some(e.to_string()),
                }
                log(&format_row(&row));
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// One combination of the swept session options.
#[derive(Clone, Copy)]
struct Variant {
    size_px: u32,
    nhwc: bool,
    fuse_conv_bias: bool,
    conv_search: engine::ConvSearch,
    fp16_source: Fp16Source,
}

/// Every combination of sizes, layouts, bias fusion, convolution searches and FP16 sources.
fn variants(config: &BenchConfig, sizes: &[u32], sources: &[Fp16Source]) -> Vec<Variant> {
    let mut out = Vec::new();
    for &size_px in sizes {
        for &nhwc in &config.nhwc {
            for &fuse_conv_bias in &config.fuse_conv_bias {
                for &conv_search in &config.conv_search {
                    for &fp16_source in sources {
                        out.push(Variant {
                            size_px,
                            nhwc,
                            fuse_conv_bias,
                            conv_search,
                            fp16_source,
                        });
                    }
                }
            }
        }
    }
    out
}

impl Variant {
    fn layout(self) -> &'static str {
        if self.nhwc { "nhwc" } else { "nchw" }
    }

    /// The session options of this combination.
    fn options(
        self,
        config: &BenchConfig,
        model: &engine::models::ResolvedModel,
        requested: ProviderRequest,
        precision: Precision,
    ) -> SegmenterOptions {
        SegmenterOptions {
            provider: requested,
            precision,
            input_side_px: Some(self.size_px),
            prefer_nhwc: self.nhwc,
            fuse_conv_bias: self.fuse_conv_bias,
            conv_search: self.conv_search,
            dump_optimized: config.dump_optimized.as_ref().map(|dir| {
                dir.join(format!(
                    "{}-{}px-{}-{}{}-{}.onnx",
                    model.spec.name,
                    self.size_px,
                    precision.as_str(),
                    self.layout(),
                    if self.fuse_conv_bias { "-bias" } else { "" },
                    self.conv_search
                ))
            }),
            cuda_graphs: config.cuda_graphs,
            webgpu_options: config.webgpu_options.clone(),
            fp16_source: self.fp16_source,
            ..SegmenterOptions::default()
        }
    }

    /// The row's columns that say what was asked for.
    fn row(
        self,
        model: &engine::models::ResolvedModel,
        requested: ProviderRequest,
        precision: Precision,
    ) -> BenchRow {
        BenchRow {
            requested: requested.to_string(),
            precision: precision.as_str().to_owned(),
            fp16_source: if precision == Precision::Fp16 && model.spec.precision == Precision::Fp16
            {
                self.fp16_source.as_str().to_owned()
            } else {
                String::new()
            },
            size_px: self.size_px,
            layout: self.layout().to_owned(),
            fuse_conv_bias: self.fuse_conv_bias,
            conv_search: self.conv_search.name().to_owned(),
            ..BenchRow::default()
        }
    }
}

fn measure(
    segmenter: &mut engine::Segmenter,
    photo: &RgbImage,
    config: &BenchConfig,
    row: &mut BenchRow,
) -> Result<(), engine::EngineError> {
    let pipeline = segmenter.pipeline();
    let startup = segmenter.startup();
    row.provider = segmenter.report().provider.as_str().to_owned();
    row.report = segmenter.report().summary();
    row.prepare_ms = startup.prepare_ms;
    row.session_ms = startup.session_ms;
    row.first_run_ms = startup.first_run_ms;
    row.runs = config.runs;

    let setup_err = |e: image_ops::ImageError| engine::EngineError::Setup(e.to_string());
    let mut pre = Vec::new();
    let mut input = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        input = pipeline.preprocess(photo).map_err(setup_err)?;
        pre.push(ms_since(t));
    }
    row.preprocess_ms = min_median(&pre).1;

    let raw = time_network(segmenter, &input, config, row)?;
    let mut post = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let _mask = pipeline
            .postprocess(&raw, photo.width(), photo.height())
            .map_err(setup_err)?;
        post.push(ms_since(t));
    }
    row.postprocess_ms = min_median(&post).1;

    if let Some(path) = &config.photo {
        row.end_to_end_ms = Some(time_end_to_end(segmenter, path)?);
    }
    Ok(())
}

/// The network alone: warm-up, then `config.runs` runs, on the device when the session keeps its
/// input and output there (and then the host copies apart). Returns the network's output.
fn time_network(
    segmenter: &mut engine::Segmenter,
    input: &[f32],
    config: &BenchConfig,
    row: &mut BenchRow,
) -> Result<Vec<f32>, engine::EngineError> {
    // On the CPU the first inference has not happened yet: time it as the first-run cost.
    let (raw, first) = segmenter.infer_timed(input)?;
    if !segmenter.is_device_resident() {
        row.first_run_ms = first.infer_ms;
    }
    let mut copies = (Vec::new(), Vec::new());
    let mut network = Vec::with_capacity(config.runs);
    if segmenter.is_device_resident() {
        for _ in 0..config.warmup {
            segmenter.run_resident()?;
        }
        for _ in 0..config.runs {
            network.push(segmenter.run_resident()?);
        }
        for _ in 0..config.runs.clamp(1, 20) {
            let (_, t) = segmenter.infer_timed(input)?;
            copies.0.push(t.upload_ms);
            copies.1.push(t.download_ms);
        }
    } else {
        for _ in 0..config.warmup {
            segmenter.infer_timed(input)?;
        }
        for _ in 0..config.runs {
            network.push(segmenter.infer_timed(input)?.1.infer_ms);
        }
    }
    (row.min_ms, row.median_ms) = min_median(&network);
    row.upload_ms = min_median(&copies.0).1.max(0.0);
    row.download_ms = min_median(&copies.1).1.max(0.0);
    if row.upload_ms.is_nan() {
        row.upload_ms = 0.0;
        row.download_ms = 0.0;
    }
    Ok(raw)
}

/// The photo file to its PNG through the batch pipeline, as `cutout remove` does it: median of
/// three, in ms.
fn time_end_to_end(
    segmenter: &mut engine::Segmenter,
    path: &std::path::Path,
) -> Result<f64, engine::EngineError> {
    let dir = tempfile::tempdir().map_err(|e| engine::EngineError::Setup(e.to_string()))?;
    let mut whole = Vec::new();
    let finisher = crate::finish::Finisher::new();
    let options = batch::BatchOptions::for_output(
        OutputKind::Cutout,
        RefineSettings::default(),
        DecodeLimits::default(),
    );
    for i in 0..3 {
        let output = dir.path().join(format!("bench-{i}.png"));
        let job = batch::Job::file(
            path.to_owned(),
            crate::image_ops::Target::exact(output, None),
        );
        let t = Instant::now();
        let mut failed = None;
        batch::run(segmenter, vec![job], options, &finisher, |o| {
            failed = o.result.err();
        });
        if let Some(e) = failed {
            return Err(engine::EngineError::Setup(e.to_string()));
        }
        whole.push(ms_since(t));
    }
    Ok(min_median(&whole).1)
}

/// `fp16`, or `fp16/stored` and `fp16/twin` for a model stored in FP16.
fn precision_label(row: &BenchRow) -> String {
    if row.fp16_source.is_empty() {
        row.precision.clone()
    } else {
        format!("{}/{}", row.precision, row.fp16_source)
    }
}

/// The table header matching [`format_row`].
pub const TABLE_HEADER: &str = "provider     prec        layout     size  runs    min ms  median ms  first-run ms  upload ms  download ms  pre ms  post ms  photo→PNG ms";

/// The layout column: layout, `+bias` when cuDNN fused the bias, and the convolution search
/// when it is not the exhaustive one.
fn variant_label(row: &BenchRow) -> String {
    let mut out = row.layout.clone();
    if row.fuse_conv_bias {
        out.push_str("+bias");
    }
    if !row.conv_search.is_empty() && row.conv_search != engine::ConvSearch::Exhaustive.name() {
        out.push('/');
        out.push_str(&row.conv_search);
    }
    out
}

/// One table line.
pub fn format_row(row: &BenchRow) -> String {
    match &row.error {
        Some(e) => format!(
            "{:<12} {:<11} {:>4}  unavailable: {e}",
            row.requested,
            precision_label(row),
            row.size_px
        ),
        None => format!(
            "{:<12} {:<11} {:<9} {:>5}  {:>4}  {:>8.3}  {:>9.3}  {:>12.1}  {:>9.3}  {:>11.3}  {:>6.2}  {:>7.2}  {:>12}",
            row.provider,
            precision_label(row),
            variant_label(row),
            row.size_px,
            row.runs,
            row.min_ms,
            row.median_ms,
            row.session_ms + row.first_run_ms,
            row.upload_ms,
            row.download_ms,
            row.preprocess_ms,
            row.postprocess_ms,
            row.end_to_end_ms
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
        ),
    }
}

/// CSV with a header line.
pub fn to_csv(rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "requested,provider,precision,layout,size_px,runs,min_ms,median_ms,prepare_ms,session_ms,first_run_ms,upload_ms,download_ms,preprocess_ms,postprocess_ms,end_to_end_ms,error\n",
    );
    for r in rows {
        let error = r.error.as_deref().unwrap_or("").replace('"', "'");
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.4},{:.4},{:.2},{:.2},{:.2},{:.4},{:.4},{:.3},{:.3},{},\"{error}\"\n",
            r.requested,
            r.provider,
            precision_label(r),
            r.layout,
            r.size_px,
            r.runs,
            r.min_ms,
            r.median_ms,
            r.prepare_ms,
            r.session_ms,
            r.first_run_ms,
            r.upload_ms,
            r.download_ms,
            r.preprocess_ms,
            r.postprocess_ms,
            r.end_to_end_ms
                .map_or_else(String::new, |v| format!("{v:.2}"))
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn min_and_median() {
        assert_eq!(min_median(&[3.0, 1.0, 2.0]), (1.0, 2.0));
        assert_eq!(min_median(&[4.0, 1.0, 3.0, 2.0]), (1.0, 2.5));
        assert!(min_median(&[]).0.is_nan());
    }

    #[test]
    fn csv_has_a_line_per_row_and_quotes_errors() {
        let rows = vec![
            BenchRow {
                requested: "cpu".into(),
                provider: "cpu".into(),
                precision: "fp32".into(),
                size_px: 160,
                runs: 3,
                ..BenchRow::default()
            },
            BenchRow {
                requested: "tensorrt".into(),
                error: Some("libnvinfer.so.10 missing, \"really\"".into()),
                ..BenchRow::default()
            },
        ];
        let csv = to_csv(&rows);
        assert_eq!(csv.lines().count(), 3);
        assert!(
            csv.lines()
                .nth(2)
                .expect("row")
                .ends_with("\"libnvinfer.so.10 missing, 'really'\"")
        );
    }

    #[test]
    fn synthetic_photo_is_not_flat() {
        let img = synthetic_photo(64, 48);
        let first = img.get_pixel(0, 0);
        assert!(img.pixels().any(|p| p != first));
    }
}
