//! The command line's arguments (clap derive): every subcommand and flag, with its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    engine::{
        self, ModelChoice, Precision, ProviderRequest, SegmenterOptions, prepare::Fp16Source,
    },
    finish::EdgeDevice,
    image_ops::{
        DecodeLimits, PngCompression,
        refine::{self, RefineSettings},
    },
};

/// Removes photo backgrounds with a segmentation network on the GPU (or CPU), and says which ran.
#[derive(Debug, Parser)]
#[command(
    name = "cutout",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "With no subcommand, cutout opens the desktop app on the photos and folders given."
)]
pub struct Cli {
    /// What to do; none opens the desktop app.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Photos or folders to open in the app.
    #[arg(value_name = "PHOTO")]
    pub paths: Vec<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cut out the subject of photos and write transparent PNGs.
    Remove(RemoveArgs),
    /// One photo in, one PNG out, as rembg's `i` (`-` for standard input or output).
    I(IArgs),
    /// Fetch the official ONNX Runtime build from PyPI (needs Python's pip once; not to run).
    Setup(SetupArgs),
    /// Report ONNX Runtime, execution providers, GPU, libraries, models and folders.
    Doctor,
    /// Measure the network: warm-up, synchronised runs, min and median (PhotoRoom's method).
    Bench(Box<BenchArgs>),
    /// Time edge refinement and foreground colours on a photo (CPU path, GPU passes, CPU reference).
    BenchRefine(BenchRefineArgs),
    /// List the models (state, size, licence, source), or fetch one ahead of time.
    Models(ModelsArgs),
}

/// `cutout models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// What to do; none lists the models.
    #[command(subcommand)]
    pub action: Option<ModelsAction>,
}

/// `cutout models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Fetch models now, checked, into the user models folder (otherwise fetched on first use).
    Fetch {
        /// Model names from `cutout models`.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// `cutout bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Input sides in pixels (default: 160,320,512,1024, or the one size of a fixed-input model).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<u32>>,
    /// Precisions.
    #[arg(long, value_delimiter = ',', default_value = "fp32,fp16")]
    pub precisions: Vec<Precision>,
    /// Execution providers, each measured in turn (auto measures what auto picks).
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    pub ep: Vec<ProviderRequest>,
    /// Timed runs per row.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Untimed warm-up runs per row, after the first run.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// A photo for pre/post-processing times and the whole path to a PNG on disk.
    #[arg(long, value_name = "FILE")]
    pub photo: Option<PathBuf>,
    /// Write the rows as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the rows as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Convolution layouts to measure on the CUDA and WebGPU providers (nhwc = channels-last).
    #[arg(long, value_delimiter = ',', default_value = "nhwc", value_parser = ["nhwc", "nchw"])]
    pub layouts: Vec<String>,
    /// Measure without graphs: CUDA graphs on the CUDA provider, graph capture on WebGPU.
    #[arg(long)]
    pub no_cuda_graphs: bool,
    /// A WebGPU provider option for every row, as KEY=VALUE (repeat the flag for more), e.g.
    /// `storageBufferCacheMode=bucket` or `validationMode=disabled`.
    #[arg(long = "webgpu-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub webgpu_options: Vec<(String, String)>,
    /// cuDNN conv+bias fusion on the CUDA provider: off, on, or both (`off,on`).
    #[arg(long, value_delimiter = ',', default_value = "off", value_parser = ["off", "on"])]
    pub fuse_conv_bias: Vec<String>,
    /// How cuDNN picks convolution algorithms on the CUDA provider, one row each: exhaustive
    /// (timed at the first run), heuristic (cuDNN's guess) or fixed (one algorithm, no search).
    #[arg(long, value_delimiter = ',', default_value = "exhaustive")]
    pub conv_search: Vec<engine::ConvSearch>,
    /// Write each row's graph, as ONNX Runtime optimised it for the provider, into this folder.
    #[arg(long, value_name = "DIR")]
    pub dump_optimized: Option<PathBuf>,
    /// For FP16 of a model stored in FP16: the file as stored (its FP32 islands kept) or converted
    /// from its FP32 twin (every node in FP16).
    #[arg(long, value_delimiter = ',', default_value = "twin")]
    pub fp16_source: Vec<Fp16Source>,
    /// Draw latency and FP16 speed-up per size as a PNG chart.
    #[arg(long, value_name = "FILE.png")]
    pub chart: Option<PathBuf>,

    /// Model from the manifest.
    #[arg(long, default_value = engine::models::DEFAULT_MODEL)]
    pub model: String,
    /// Your own ONNX segmentation model.
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub custom_model: Option<PathBuf>,
}

/// `cutout remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Photos or folders of photos; `-` reads one photo from standard input.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Output file (one input; `-` for standard output) or folder (ends in `/` or exists).
    /// Default: NAME.cutout.png beside each photo (standard output for `-`).
    #[arg(short, long, value_name = "FILE|DIR")]
    pub output: Option<PathBuf>,
    /// How to cut out and what to print.
    #[command(flatten)]
    pub options: RemoveOptions,
}

/// `cutout i IN OUT`, as rembg's `i`.
#[derive(Debug, Args)]
pub struct IArgs {
    /// The photo; `-` reads it from standard input.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The PNG to write; `-` writes it to standard output.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// How to cut out and what to print.
    #[command(flatten)]
    pub options: RemoveOptions,
}

/// What `remove` and `i` share.
#[derive(Debug, Args)]
pub struct RemoveOptions {
    /// Write the mask as a grey PNG instead of the cutout.
    #[arg(long, conflicts_with = "bg")]
    pub mask_only: bool,
    /// Put the subject on an opaque colour, e.g. '#ffffff'.
    #[arg(long, value_name = "#RRGGBB", value_parser = parse_hex_color)]
    pub bg: Option<[u8; 3]>,
    /// Model and execution settings.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// How cuDNN picks convolution algorithms on the CUDA provider: exhaustive, heuristic or
    /// fixed (default: by the number of photos, trading the first run against later ones).
    #[arg(long, value_name = "exhaustive|heuristic|fixed")]
    pub conv_search: Option<engine::ConvSearch>,
    /// Refuse images larger than this many megapixels (decompression-bomb guard).
    #[arg(long, default_value_t = DecodeLimits::default().max_megapixels, value_name = "MP")]
    pub max_megapixels: u32,
    /// Print per-stage timings for every photo, and why faster providers are not used.
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print nothing but errors (no line per photo written).
    #[arg(short, long)]
    pub quiet: bool,
    /// Read folders' sub-folders too; with -o DIR the results keep the sub-folder layout.
    #[arg(short, long)]
    pub recursive: bool,
    /// Leave photos whose result already exists alone (to finish an interrupted batch).
    #[arg(long)]
    pub skip_existing: bool,
    /// Do only share K of N (0 ≤ K < N) of the photos, sorted by path: N copies of the same
    /// command, one per machine or job, do every photo once (e.g. --shard
    /// $JOB_COMPLETION_INDEX/8 in a Kubernetes Indexed Job).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::batch::Shard>,
    /// PNG compression: fast (the default), fastest (about a fifth larger), small or smallest
    /// (zlib levels 6 and 9: a quarter smaller, many times slower).
    #[arg(long, value_enum, default_value_t = PngCompression::Fast, value_name = "LEVEL")]
    pub png_compression: PngCompression,
    /// Keep the photo's EXIF (capture date, camera, and any location) in the cutout, with the
    /// orientation set upright. Off by default; the colour profile is always kept.
    #[arg(long)]
    pub keep_exif: bool,
    /// Threads for decoding and for finishing, each (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub workers: usize,
    /// Edge refinement and foreground colours.
    #[command(flatten)]
    pub refine: RefineArgs,
}

/// Edge refinement and foreground colour settings.
#[derive(Debug, Args, Clone)]
pub struct RefineArgs {
    /// Snap the mask to the photo's edges (guided filter).
    #[arg(long)]
    pub refine: bool,
    /// Guided filter window radius in pixels.
    #[arg(long, value_name = "PX", default_value_t = refine::DEFAULT_RADIUS_PX,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(refine::MAX_RADIUS_PX)))]
    pub refine_radius: u32,
    /// Guided filter regularisation (smaller follows the photo's edges more closely).
    #[arg(long, value_name = "EPS", default_value_t = refine::DEFAULT_EPS)]
    pub refine_eps: f32,
    /// Keep the photo's colours in semi-transparent edge pixels (no foreground colour estimation).
    #[arg(long)]
    pub no_foreground: bool,
    /// Where the edge passes run: auto (a hardware GPU for the guided filter, all CPU cores
    /// otherwise), cpu, or gpu (the wgpu passes on whatever adapter there is; fails without one).
    #[arg(long, value_enum, default_value_t = EdgeDevice::Auto)]
    pub edges: EdgeDevice,
}

impl RefineArgs {
    /// The settings these flags ask for.
    pub fn settings(&self) -> RefineSettings {
        RefineSettings {
            guided: self.refine,
            radius: self.refine_radius,
            eps: self.refine_eps,
            foreground: !self.no_foreground,
        }
        .clamped()
    }
}

/// `cutout bench-refine`.
#[derive(Debug, Args)]
pub struct BenchRefineArgs {
    /// The photo.
    #[arg(value_name = "PHOTO")]
    pub photo: PathBuf,
    /// Its mask as a grey PNG (`cutout remove --mask-only`); default: run the network for it.
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Timed runs per row (CPU path and GPU passes).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Untimed warm-up runs per row.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Timed runs of the CPU reference (0 = skip).
    #[arg(long, default_value_t = 3)]
    pub cpu_runs: usize,
    /// Refuse images larger than this many megapixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_megapixels, value_name = "MP")]
    pub max_megapixels: u32,
}

/// Model and execution settings shared by the commands that run the network.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Model from the manifest.
    #[arg(long, default_value = engine::models::DEFAULT_MODEL)]
    pub model: String,
    /// Your own ONNX segmentation model (input [N,3,H,W], mask output); its checksum is not checked.
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub custom_model: Option<PathBuf>,
    /// Side of the square model input in pixels (default: the model's native size).
    #[arg(long, value_name = "N")]
    pub size: Option<u32>,
    /// Network precision.
    #[arg(long, default_value = "fp32", value_name = "fp32|fp16")]
    pub precision: Precision,
    /// Execution provider: auto tries TensorRT-RTX, TensorRT, CUDA, WebGPU (any GPU through
    /// Vulkan, Direct3D 12 or Metal; never a software renderer), then the CPU, and says why it
    /// passed each over.
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|tensorrt-rtx|tensorrt|cuda|webgpu|cpu"
    )]
    pub ep: ProviderRequest,
    /// CPU threads for the CPU provider (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// For FP16 of a model stored in FP16 (isnet): converted from its FP32 twin with every node
    /// in FP16 (faster on CUDA, same masks), or the file as stored, its FP32 islands kept.
    #[arg(long, default_value = "twin", value_name = "stored|twin")]
    pub fp16_source: Fp16Source,
}

impl EngineArgs {
    /// The model to load.
    pub fn model_choice(&self) -> ModelChoice {
        self.custom_model.clone().map_or_else(
            || ModelChoice::Named(self.model.clone()),
            ModelChoice::Custom,
        )
    }

    /// Session settings.
    pub fn segmenter_options(&self) -> SegmenterOptions {
        SegmenterOptions {
            provider: self.ep,
            precision: self.precision,
            input_side_px: self.size,
            intra_threads: self.threads,
            fp16_source: self.fp16_source,
            ..SegmenterOptions::default()
        }
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// `cutout setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Install onnxruntime-gpu (CUDA and TensorRT providers), the CUDA runtime libraries and the
    /// TensorRT-RTX plugin. Default when an NVIDIA GPU is present.
    #[arg(long, conflicts_with = "cpu")]
    pub gpu: bool,
    /// Install the CPU-only onnxruntime.
    #[arg(long)]
    pub cpu: bool,
    /// With --gpu: do not fetch NVIDIA's CUDA 13, cuBLAS, cuFFT, cuRAND and cuDNN 9 wheels (about
    /// 1.3 GB); use a CUDA 13 and cuDNN 9 already installed on this machine.
    #[arg(long)]
    pub no_cuda_libs: bool,
    /// Install again even if this version is already there.
    #[arg(long)]
    pub force: bool,
    /// Also fetch these models now (e.g. `--model isnet`), so the first photo does not wait.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub model: Vec<String>,
}

/// Parses `#RRGGBB` or `RRGGBB`.
pub fn parse_hex_color(text: &str) -> Result<[u8; 3], String> {
    let hex = text.trim().trim_start_matches('#');
    let bad = || format!("`{text}` is not a colour; use #RRGGBB, e.g. #ffffff");
    if hex.len() != 6 || !hex.is_ascii() {
        return Err(bad());
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
    Ok([channel(0)?, channel(2)?, channel(4)?])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse() {
        assert_eq!(parse_hex_color("#ff8000"), Ok([255, 128, 0]));
        assert_eq!(parse_hex_color("00FF7f"), Ok([0, 255, 127]));
        assert!(parse_hex_color("#fff").is_err());
        assert!(parse_hex_color("#gg0000").is_err());
        assert!(parse_hex_color("#ééé").is_err());
    }

    #[test]
    fn command_line_parses() {
        let cli = Cli::try_parse_from([
            "cutout",
            "remove",
            "a.jpg",
            "-o",
            "out/",
            "--ep",
            "cpu",
            "--precision",
            "fp16",
            "--size",
            "512",
        ])
        .expect("parses");
        let Some(Command::Remove(args)) = cli.command else {
            panic!("remove expected")
        };
        assert_eq!(
            args.options.engine.ep,
            ProviderRequest::Only(engine::ProviderKind::Cpu)
        );
        assert_eq!(args.options.engine.precision, Precision::Fp16);
        assert_eq!(args.options.engine.size, Some(512));
        assert!(Cli::try_parse_from(["cutout", "remove", "a.jpg", "--ep", "gpu"]).is_err());
        // No subcommand: photos for the desktop app.
        let app = Cli::try_parse_from(["cutout", "a.jpg", "photos/"]).expect("parses");
        assert!(app.command.is_none());
        assert_eq!(
            app.paths,
            [PathBuf::from("a.jpg"), PathBuf::from("photos/")]
        );
        assert!(
            Cli::try_parse_from(["cutout"])
                .expect("parses")
                .paths
                .is_empty()
        );
        assert!(
            Cli::try_parse_from([
                "cutout",
                "remove",
                "a.jpg",
                "--mask-only",
                "--bg",
                "#000000"
            ])
            .is_err()
        );
    }
}
