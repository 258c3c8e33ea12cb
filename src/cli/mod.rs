//! The command line: `cutout remove`, `cutout setup`, `cutout doctor`.

use std::{ops::ControlFlow, process::ExitCode};

use clap::Parser as _;
use indicatif::{ProgressBar, ProgressStyle};

mod args;
mod quit;
mod remove;
mod setup;
mod startup;

pub use args::{
    BenchArgs, BenchRefineArgs, Cli, Command, EngineArgs, IArgs, ModelsAction, ModelsArgs,
    RefineArgs, RemoveArgs, RemoveOptions, SetupArgs, parse_hex_color,
};

use crate::{
    engine::{self, ModelChoice, SegmenterOptions, doctor, models::FetchStage},
    image_ops::DecodeLimits,
    paths::AppDirs,
};

/// The program's entry point: logging (ONNX Runtime's own warnings arrive through `ort`'s tracing
/// events; warnings and errors by default, more with `CUTOUT_LOG=info`, `debug` or `trace`), then
/// the command line.
pub fn main() -> ExitCode {
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOUT_LOG")
        // wgpu-hal logs each graphics API it cannot open while adapters are listed (no Direct3D
        // 12 under Wine, no Vulkan loader), and the allocator the buffers of a device that failed
        // at start: cutout reports what it found and chose in its own words.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,wgpu_hal=off,gpu_allocator=error")
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter)
                .with_filter(startup::ExpectedFallbacks),
        )
        .init();
    run(Cli::parse())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let dirs = AppDirs::from_env();
    match cli.command {
        None => match window_refusal(&cli.paths) {
            Some(why) => fail(&why),
            None => crate::app::run_native(crate::app::AppOptions::new(dirs, cli.paths)),
        },
        Some(Command::Remove(args)) => {
            remove::remove(&dirs, &args.inputs, args.output.as_deref(), &args.options)
        }
        Some(Command::I(args)) => remove::remove(
            &dirs,
            std::slice::from_ref(&args.input),
            Some(&args.output),
            &args.options,
        ),
        Some(Command::Setup(args)) => setup::setup(&dirs, &args),
        Some(Command::Bench(args)) => bench(&dirs, &args),
        Some(Command::BenchRefine(args)) => bench_refine(&dirs, &args),
        Some(Command::Models(args)) => match &args.action {
            None => list_models(&dirs),
            Some(ModelsAction::Fetch { names }) => fetch_models(&dirs, names),
        },
        Some(Command::Doctor) => {
            print!("{}", doctor::report(&dirs));
            ExitCode::SUCCESS
        }
    }
}

/// Why the window should not be opened for these arguments, in words: a word that is neither a
/// command nor a file, or no display to open it on.
fn window_refusal(paths: &[std::path::PathBuf]) -> Option<String> {
    // A bare word that names nothing is a command mistyped (or another tool's habit); a missing
    // photo's name opens the app, where it becomes a failed row (a desktop launcher has no
    // terminal to print to).
    let looks_like_a_command = |p: &std::path::PathBuf| {
        let text = p.to_string_lossy();
        !text.contains(['.', '/', '\\'])
    };
    if let Some(missing) = paths
        .first()
        .filter(|first| looks_like_a_command(first) && paths.iter().all(|p| !p.exists()))
    {
        return Some(format!(
            "no such photo, folder or command: {}. Commands: remove, i, setup, doctor, bench, \
             models (`cutout --help`)",
            missing.display()
        ));
    }
    let no_display = cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty())
        && std::env::var_os("WAYLAND_DISPLAY").is_none_or(|d| d.is_empty());
    no_display.then(|| {
        "there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set). \
         The command line works without one: `cutout remove PHOTO`"
            .to_owned()
    })
}

fn fail(message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// A progress bar per fetch stage, on stderr (first use of a model, or `cutout models fetch`).
fn fetch_progress() -> impl FnMut(FetchStage, u64, Option<u64>) -> ControlFlow<()> {
    let mut current: Option<(FetchStage, ProgressBar)> = None;
    move |stage, done, total| {
        if current.as_ref().is_none_or(|(s, _)| *s != stage) {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:12} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(stage.label());
            if stage == FetchStage::Download {
                bar.suspend(|| eprintln!("Fetching the model (first use only) …"));
            }
            current = Some((stage, bar));
        }
        if let Some((_, bar)) = &current {
            bar.set_position(done);
            if total == Some(done) {
                bar.finish_and_clear();
            }
        }
        ControlFlow::Continue(())
    }
}

fn bench_refine(dirs: &AppDirs, args: &BenchRefineArgs) -> ExitCode {
    let limits = DecodeLimits {
        max_megapixels: args.max_megapixels,
        ..DecodeLimits::default()
    };
    let photo = match crate::image_ops::decode_file(&args.photo, limits) {
        Ok(d) => d.rgb,
        Err(e) => return fail(&e),
    };
    let mask = match &args.mask {
        Some(path) => match image::open(path) {
            Ok(m) if m.width() == photo.width() && m.height() == photo.height() => m.to_luma8(),
            Ok(_) => return fail(&"the mask's size differs from the photo's"),
            Err(e) => return fail(&format!("{}: {e}", path.display())),
        },
        None => match network_mask(dirs, &photo) {
            Ok(m) => m,
            Err(e) => return fail(&e),
        },
    };
    eprintln!(
        "{}: {}×{} px ({:.1} MP)",
        args.photo.display(),
        photo.width(),
        photo.height(),
        f64::from(photo.width()) * f64::from(photo.height()) / 1e6
    );
    match crate::bench::refine(&photo, &mask, args.runs, args.warmup, args.cpu_runs) {
        Ok(bench) => {
            println!("| passes | device | runs | min ms | median ms | band |");
            println!("|---|---|---|---|---|---|");
            for r in bench.rows {
                println!(
                    "| {} | {} | {} | {:.2} | {:.2} | {} |",
                    r.what, r.device, r.runs, r.min_ms, r.median_ms, r.band
                );
            }
            if let Some(why) = bench.no_gpu {
                eprintln!("No GPU rows: {why}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The default model's mask of one photo.
fn network_mask(dirs: &AppDirs, photo: &image::RgbImage) -> Result<image::GrayImage, String> {
    let mut progress = fetch_progress();
    let mut segmenter = engine::open(
        dirs,
        &ModelChoice::Named(engine::models::DEFAULT_MODEL.to_owned()),
        &SegmenterOptions::default(),
        &mut progress,
    )
    .map_err(|e| e.to_string())?;
    segmenter
        .segment(photo)
        .map(|(mask, _)| mask)
        .map_err(|e| e.to_string())
}

fn bench(dirs: &AppDirs, args: &BenchArgs) -> ExitCode {
    let config = bench_config(args);
    let gpu = doctor::nvidia_gpu();
    eprintln!("GPU: {}", gpu.as_deref().unwrap_or("none found"));
    println!("{}", crate::bench::TABLE_HEADER);
    let rows = match crate::bench::run(dirs, &config, &mut |line| println!("{line}")) {
        Ok(rows) => rows,
        Err(e) => return fail(&e),
    };
    for row in rows.iter().filter(|r| r.error.is_none()) {
        eprintln!(
            "{} {} {} px: {}",
            row.provider, row.precision, row.size_px, row.report
        );
    }
    if let Err(e) = write_bench_files(dirs, args, &config, gpu.as_deref(), &rows) {
        return fail(&e);
    }
    if rows.iter().all(|r| r.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The sweep `cutout bench`'s flags ask for.
fn bench_config(args: &BenchArgs) -> crate::bench::BenchConfig {
    crate::bench::BenchConfig {
        sizes: args.sizes.clone(),
        precisions: args.precisions.clone(),
        providers: args.ep.clone(),
        runs: args.runs.max(1),
        warmup: args.warmup,
        photo: args.photo.clone(),
        model: args.custom_model.clone().map_or_else(
            || ModelChoice::Named(args.model.clone()),
            ModelChoice::Custom,
        ),
        nhwc: args.layouts.iter().map(|l| l == "nhwc").collect(),
        cuda_graphs: !args.no_cuda_graphs,
        webgpu_options: args.webgpu_options.clone(),
        fuse_conv_bias: args.fuse_conv_bias.iter().map(|v| v == "on").collect(),
        dump_optimized: args.dump_optimized.clone(),
        conv_search: args.conv_search.clone(),
        fp16_sources: args.fp16_source.clone(),
    }
}

/// Writes the rows as `--json`, `--csv` and `--chart` ask; says what could not be written.
fn write_bench_files(
    dirs: &AppDirs,
    args: &BenchArgs,
    config: &crate::bench::BenchConfig,
    gpu: Option<&str>,
    rows: &[crate::bench::BenchRow],
) -> Result<(), String> {
    let cannot_write =
        |path: &std::path::Path, e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(path) = &args.json {
        let runtime_version = engine::runtime::load(dirs)
            .map(|r| r.version.clone())
            .unwrap_or_default();
        let doc = serde_json::json!({
            "cutout": env!("CARGO_PKG_VERSION"),
            "onnxruntime": runtime_version,
            "gpu": gpu,
            "cpu_threads": std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1),
            "method": "prepared fixed-shape model; first run timed apart; warm-up runs; network alone \
                       synchronised with input resident on the device (IO binding); min and median over runs",
            "runs": config.runs,
            "warmup": config.warmup,
            "rows": rows,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| cannot_write(path, e))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, crate::bench::to_csv(rows)).map_err(|e| cannot_write(path, e))?;
    }
    if let Some(path) = &args.chart {
        // The anchors were measured on an H100 (../shared/CONTEXT.md): drawn only beside H100 rows.
        let model_name = match &config.model {
            ModelChoice::Named(name) => name.clone(),
            ModelChoice::Custom(path) => path.display().to_string(),
        };
        let anchors = if model_name == "u2netp" && gpu.is_some_and(|g| g.contains("H100")) {
            h100_anchors()
        } else {
            Vec::new()
        };
        let title = format!(
            "cutout {} · {model_name} · {}",
            env!("CARGO_PKG_VERSION"),
            gpu.unwrap_or("CPU").split(',').next().unwrap_or("CPU")
        );
        crate::chart::draw(rows, &anchors, &title, path)
            .map_err(|e| format!("cannot draw the chart: {e}"))?;
    }
    Ok(())
}

/// Published reference points on the lent H100 (u2netp, batch 1, input on the GPU, min ms).
fn h100_anchors() -> Vec<crate::chart::Anchor> {
    vec![
        crate::chart::Anchor {
            label: "torch.compile FP16, CUDA graphs (anchor)".to_owned(),
            points: vec![(160, 1.43), (320, 1.73), (1024, 4.99)],
        },
        crate::chart::Anchor {
            label: "PyTorch eager FP32 (anchor)".to_owned(),
            points: vec![(160, 9.37), (320, 9.44), (1024, 21.69)],
        },
    ]
}

fn list_models(dirs: &AppDirs) -> ExitCode {
    let manifest = match engine::Manifest::builtin() {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    println!(
        "{:<8} {:<8} {:<12} {:>8}  {:<36} source",
        "model", "use", "state", "size", "licence"
    );
    let mut notes = Vec::new();
    for spec in &manifest.models {
        let state = engine::models::state(spec, dirs);
        let transfer = spec.source.transfer_bytes(spec.size_bytes);
        let mut source = spec.source.describe();
        if transfer != spec.size_bytes {
            source.push_str(&format!(", {} MB to download", megabytes(transfer)));
        }
        println!(
            "{:<8} {:<8} {:<12} {:>5} MB  {:<36} {source}",
            spec.name,
            spec.label,
            state.label(),
            megabytes(spec.size_bytes),
            spec.licence,
        );
        match state {
            engine::models::ModelState::Ready { path, .. } => {
                notes.push(format!("{}: {}", spec.name, path.display()));
            }
            engine::models::ModelState::BadChecksum { path, found } => notes.push(format!(
                "{}: refused, SHA-256 {found} is no known release; delete it to fetch the real one: {}",
                spec.name,
                path.display()
            )),
            engine::models::ModelState::Unreadable { reason, .. } => {
                notes.push(format!("{}: {reason}", spec.name));
            }
            engine::models::ModelState::NotFetched => {}
        }
    }
    for note in notes {
        println!("{note}");
    }
    println!(
        "Models not fetched yet are fetched on first use, or now with `cutout models fetch NAME`."
    );
    ExitCode::SUCCESS
}

fn megabytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    format!("{mb:.1}")
}

fn fetch_models(dirs: &AppDirs, names: &[String]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for name in names {
        let mut progress = fetch_progress();
        match engine::resolve_model(dirs, &ModelChoice::Named(name.clone()), &mut progress) {
            Ok(model) => eprintln!("{name}: ready, {}", model.path.display()),
            Err(e) => status = fail(&e),
        }
    }
    status
}
