//! The command line: `cutout remove`, `cutout setup`, `cutout doctor`.

use std::{
    io::IsTerminal as _,
    ops::ControlFlow,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser as _;
use indicatif::{ProgressBar, ProgressStyle};

mod args;
mod startup;

pub use args::{
    BenchArgs, BenchRefineArgs, Cli, Command, EngineArgs, ModelsAction, ModelsArgs, RefineArgs,
    RemoveArgs, SetupArgs, parse_hex_color,
};

use crate::{
    batch::{self, BatchOptions, OutputKind},
    engine::{self, ModelChoice, SegmenterOptions, doctor, models::FetchStage, runtime},
    finish::Finisher,
    image_ops::DecodeLimits,
    paths::AppDirs,
};

/// The program's entry point: logging (ONNX Runtime's own warnings arrive through `ort`'s tracing
/// events; warnings and errors by default, more with `CUTOUT_LOG=info`, `debug` or `trace`), then
/// the command line.
pub fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    run(Cli::parse())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let dirs = AppDirs::from_env();
    match cli.command {
        None => crate::app::run_native(crate::app::AppOptions::new(dirs, cli.paths)),
        Some(Command::Remove(args)) => remove(&dirs, &args),
        Some(Command::Setup(args)) => setup(&dirs, &args),
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

/// A flag set by the first Ctrl+C (or termination signal): the batch starts no further photo and
/// finishes the one being written. A second one removes the temporary files of writes under way
/// and exits at once (status 130).
fn stop_on_interrupt() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handler = move || {
        if flag.swap(true, Ordering::SeqCst) {
            crate::image_ops::export::remove_unfinished();
            eprintln!("\nStopped at once; results already written are complete.");
            std::process::exit(130);
        }
        eprintln!("\nStopping after the photo being written (Ctrl+C again to stop at once)…");
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        tracing::warn!("Ctrl+C will stop cutout without finishing the photo being written: {e}");
    }
    stop
}

fn remove(dirs: &AppDirs, args: &RemoveArgs) -> ExitCode {
    let kind = match (args.mask_only, args.bg) {
        (true, _) => OutputKind::MaskOnly,
        (false, Some(color)) => OutputKind::OverColor(color),
        (false, None) => OutputKind::Cutout,
    };
    let plan = batch::PlanOptions {
        kind,
        recursive: args.recursive,
    };
    let mut jobs = match batch::plan_jobs(&args.inputs, args.output.as_deref(), plan) {
        Ok(jobs) => jobs,
        Err(e) => return fail(&e),
    };
    if args.skip_existing {
        let planned = jobs.len();
        jobs.retain(|job| !job.output.exists());
        let skipped = planned - jobs.len();
        if skipped > 0 {
            eprintln!("Skipping {skipped} photos whose result already exists");
        }
        if jobs.is_empty() {
            eprintln!("Nothing left to do");
            return ExitCode::SUCCESS;
        }
    }
    let stop = stop_on_interrupt();
    let started = Instant::now();
    let mut progress = fetch_progress();
    let mut options = args.engine.segmenter_options();
    startup::tune_for_batch(&mut options, jobs.len(), args.conv_search);
    let total = jobs.len();
    let bar = if total > 1 && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed} < {eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut finisher = Finisher::with_edges(args.refine.edges);
    let mut edge_settings = args.refine.settings();
    // The mask alone has no colours to estimate.
    edge_settings.foreground &= kind != OutputKind::MaskOnly;
    let edges = match finisher.edge_path(&edge_settings) {
        Ok(path) => path,
        Err(e) => return fail(&e),
    };
    let verbose = args.verbose;
    let mut load_ms = 0.0;
    let mut startup = engine::StartupTimings::default();
    // The engine opens while the first photo is being decoded.
    let open = || {
        // Only where an engine build can happen: a TensorRT-class provider (the ticker also
        // needs an NVIDIA GPU, asked off this thread when a reminder is due).
        let builds = options.provider.candidates().iter().any(|p| {
            matches!(
                p,
                engine::ProviderKind::TensorRt | engine::ProviderKind::TensorRtRtx
            )
        });
        let ticker = builds.then(|| startup::StartupTicker::start(started));
        let segmenter = engine::open(dirs, &args.engine.model_choice(), &options, &mut progress)?;
        drop(ticker);
        eprintln!(
            "Running {} at {} px on the {}",
            segmenter.model().spec.name,
            segmenter.input_side_px(),
            segmenter.report().summary()
        );
        if segmenter.model().origin == engine::models::ModelOrigin::Custom {
            eprintln!(
                "Custom model (checksum not checked): {}",
                segmenter.describe_io()
            );
        }
        if let Some(path) = &edges {
            eprintln!("Edges: {path}");
        }
        load_ms = started.elapsed().as_secs_f64() * 1e3;
        startup = segmenter.startup();
        // Ticks only once the model's own fetch progress (first use) is done.
        bar.enable_steady_tick(Duration::from_millis(200));
        Ok::<_, engine::EngineError>(segmenter)
    };
    let batch_options = BatchOptions {
        kind,
        refine: args.refine.settings(),
        limits: DecodeLimits {
            max_megapixels: args.max_megapixels,
            ..DecodeLimits::default()
        },
    };
    let opened = batch::run_opening(open, jobs, batch_options, finisher, &stop, |outcome| {
        bar.inc(1);
        match &outcome.result {
            Ok(t) if verbose => bar.suspend(|| eprintln!(
                "{} → {}  decode {:.0} ms, preprocess {:.0} ms, infer {:.0} ms, postprocess {:.0} ms, encode {:.0} ms",
                outcome.job.input.display(),
                outcome.job.output.display(),
                t.decode_ms,
                t.preprocess_ms,
                t.infer_ms,
                t.postprocess_ms,
                t.encode_ms
            )),
            Ok(_) => bar.set_message(outcome.job.input.file_name().unwrap_or_default().to_string_lossy().into_owned()),
            Err(e) => bar.suspend(|| eprintln!("error: {e}")),
        }
    });
    bar.finish_and_clear();
    let outcomes = match opened {
        Ok(outcomes) => outcomes,
        Err(e) => return fail(&e),
    };
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if stop.load(Ordering::SeqCst) {
        let written = outcomes.len() - failed;
        let left = total - outcomes.len();
        eprintln!(
            "Interrupted: {written} written, {failed} failed, {left} not started. Every result \
             written is complete. To finish, run the same command with --skip-existing."
        );
        return ExitCode::from(130);
    }
    // Every photo must come back as done or failed; anything else is reported, never hidden.
    let missing = total.saturating_sub(outcomes.len());
    if missing > 0 {
        eprintln!(
            "error: {missing} photos were not processed because a pipeline thread could not start"
        );
    }
    let failed = failed + missing;
    let elapsed = started.elapsed().as_secs_f64();
    if verbose {
        let s = startup;
        eprintln!(
            "Start-up {load_ms:.0} ms: ONNX Runtime and GPU libraries {:.0}, model file {:.0}, \
             prepared model {:.0}, session (CUDA context, graph optimisation, engine build) {:.0}, \
             first inference (algorithm choice, CUDA graph capture) {:.0}",
            s.runtime_ms, s.model_ms, s.prepare_ms, s.session_ms, s.first_run_ms
        );
        if let Some(peak) = crate::paths::peak_resident_bytes() {
            eprintln!("Peak resident memory {:.0} MB", peak as f64 / 1e6);
        }
    }
    if failed == 0 {
        if total > 1 || verbose {
            eprintln!("{total} done in {elapsed:.1} s");
        }
        ExitCode::SUCCESS
    } else {
        if total > 1 {
            eprintln!(
                "{} done, {failed} failed (listed above) in {elapsed:.1} s",
                total - failed
            );
        }
        ExitCode::from(1)
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
    let config = crate::bench::BenchConfig {
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
        fuse_conv_bias: args.fuse_conv_bias.iter().map(|v| v == "on").collect(),
        dump_optimized: args.dump_optimized.clone(),
        conv_search: args.conv_search.clone(),
        fp16_sources: args.fp16_source.clone(),
    };
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
    let runtime_version = engine::runtime::load(dirs)
        .map(|r| r.version.clone())
        .unwrap_or_default();
    if let Some(path) = &args.json {
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
        if let Err(e) = std::fs::write(path, text) {
            return fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
    if let Some(path) = &args.csv
        && let Err(e) = std::fs::write(path, crate::bench::to_csv(&rows))
    {
        return fail(&format!("cannot write {}: {e}", path.display()));
    }
    if let Some(path) = &args.chart {
        // The anchors were measured on an H100 (../shared/CONTEXT.md): drawn only beside H100 rows.
        let model_name = match &config.model {
            ModelChoice::Named(name) => name.clone(),
            ModelChoice::Custom(path) => path.display().to_string(),
        };
        let anchors =
            if model_name == "u2netp" && gpu.as_deref().is_some_and(|g| g.contains("H100")) {
                h100_anchors()
            } else {
                Vec::new()
            };
        let title = format!(
            "cutout {} · {model_name} · {}",
            env!("CARGO_PKG_VERSION"),
            gpu.as_deref()
                .unwrap_or("CPU")
                .split(',')
                .next()
                .unwrap_or("CPU")
        );
        if let Err(e) = crate::chart::draw(&rows, &anchors, &title, path) {
            return fail(&format!("cannot draw the chart: {e}"));
        }
    }
    if rows.iter().all(|r| r.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
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

fn setup(dirs: &AppDirs, args: &SetupArgs) -> ExitCode {
    let gpu_present = doctor::nvidia_gpu();
    let flavor = if args.gpu || (!args.cpu && gpu_present.is_some()) {
        runtime::RuntimeFlavor::Gpu
    } else {
        runtime::RuntimeFlavor::Cpu
    };
    match &gpu_present {
        Some(gpu) => eprintln!("NVIDIA GPU: {gpu}"),
        None => eprintln!("No NVIDIA GPU found."),
    }
    let existing = runtime::managed_dir(dirs, flavor).join(runtime::core_library_name());
    let models = |status: ExitCode| {
        if args.model.is_empty() || status != ExitCode::SUCCESS {
            status
        } else {
            fetch_models(dirs, &args.model)
        }
    };
    let options = runtime::SetupOptions {
        flavor,
        cuda_libs: args.cuda_libs,
        python: args.python.clone(),
    };
    if existing.is_file() && !args.force {
        eprintln!(
            "ONNX Runtime {} ({}) is already installed: {}",
            runtime::ORT_VERSION,
            flavor.package(),
            existing.display()
        );
        let plugin = runtime::tensorrt_rtx::folder_beside(&existing)
            .join(runtime::tensorrt_rtx::plugin_file_name());
        if flavor == runtime::RuntimeFlavor::Gpu && !plugin.is_file() {
            // Installed before cutout fetched TensorRT-RTX: add it beside the runtime.
            let log = &mut |line: &str| eprintln!("{line}");
            if let Err(e) = runtime::install_tensorrt_rtx(dirs, &options, log) {
                eprintln!("warning: {e}");
            }
        }
        return models(ExitCode::SUCCESS);
    }
    match runtime::install(dirs, &options, &mut |line| eprintln!("{line}")) {
        Ok(_) => models(ExitCode::SUCCESS),
        Err(e) => fail(&e),
    }
}
