//! `cutout remove`: photos in, cutouts out, through the overlapped batch pipeline.
//!
//! With `--ep auto` on a machine where a GPU provider may run, the photos start on the CPU
//! provider while the GPU session starts on a thread of its own, and move to the GPU once it is
//! ready ([`engine::open_handing_over`]): a single photo on an H200 is done before CUDA's context,
//! session and first inference would be (0.7–1.2 s). Each photo's provider is reported.

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crossbeam_channel::Receiver;
use indicatif::{ProgressBar, ProgressStyle};

use super::{RemoveOptions, fail, fetch_progress, startup};
use crate::{
    batch::{self, BatchOptions, OutputKind},
    engine::{self, ProviderRequest},
    finish::Finisher,
    image_ops::DecodeLimits,
    paths::AppDirs,
};

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
            super::quit::now(130);
        }
        eprintln!("\nStopping after the photo being written (Ctrl+C again to stop at once)…");
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        tracing::warn!("Ctrl+C will stop cutout without finishing the photo being written: {e}");
    }
    stop
}

/// Runs `cutout remove` (and `cutout i`): plans the jobs, opens the engine while the first photos
/// decode, runs the batch and reports how it ended.
pub(super) fn remove(
    dirs: &AppDirs,
    inputs: &[PathBuf],
    output: Option<&Path>,
    args: &RemoveOptions,
) -> ExitCode {
    let kind = output_kind(args);
    let jobs = match select_jobs(inputs, output, kind, args) {
        Ok(Some(jobs)) => jobs,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return fail(&e),
    };
    let stop = stop_on_interrupt();
    let started = Instant::now();
    let mut options = args.engine.segmenter_options();
    startup::tune_for_batch(&mut options, jobs.len(), args.conv_search);
    let total = jobs.len();
    let batch_options = batch_options(kind, args);
    let finisher = Finisher::with_edges(args.refine.edges).with_png(args.png_compression);
    let edges = match finisher.edge_path(&batch_options.settings.refine) {
        Ok(path) => path,
        Err(e) => return fail(&e),
    };
    let bar = progress_bar(total);
    let mut opening = Opening::new(started);
    let mut tally = Tally::new(&bar, args);
    let mut took_over = None;
    let opened = batch::run_opening(
        || opening.open(dirs, args, &options, edges.as_ref(), &bar),
        jobs,
        batch_options,
        &finisher,
        &stop,
        |outcome| tally.record(&outcome),
        |gpu| took_over = Some(switched(started, gpu, &bar)),
    );
    bar.finish_and_clear();
    if let Err(e) = opened {
        return fail(&e);
    }
    let (done, failed) = (tally.done, tally.failed);
    if stop.load(Ordering::SeqCst) {
        let written = done - failed;
        let left = total - done;
        eprintln!(
            "Interrupted: {written} written, {failed} failed, {left} not started. Every result \
             written is complete. To finish, run the same command with --skip-existing."
        );
        return leave(130, opening.starting, args.verbose);
    }
    // Every photo must come back as done or failed; anything else is reported, never hidden.
    let missing = total.saturating_sub(done);
    if missing > 0 {
        eprintln!(
            "error: {missing} photos were not processed because a pipeline thread could not start"
        );
    }
    if args.verbose {
        opening.report_verbose(took_over);
    }
    conclude(total, failed + missing, started, opening.starting, args)
}

/// What the flags ask to write: a cutout, the cutout over a colour, or the mask alone.
fn output_kind(args: &RemoveOptions) -> OutputKind {
    match (args.mask_only, args.bg) {
        (true, _) => OutputKind::MaskOnly,
        (false, Some(color)) => OutputKind::OverColor(color),
        (false, None) => OutputKind::Cutout,
    }
}

/// The jobs this run does: planned from the inputs, narrowed to `--shard`'s share, and without
/// the ones `--skip-existing` finds done. `None` when nothing is left to do.
fn select_jobs(
    inputs: &[PathBuf],
    output: Option<&Path>,
    kind: OutputKind,
    args: &RemoveOptions,
) -> Result<Option<Vec<batch::Job>>, batch::PlanError> {
    let plan = batch::PlanOptions {
        kind,
        recursive: args.recursive,
    };
    let mut jobs = batch::plan_jobs(inputs, output, plan)?;
    if let Some(shard) = args.shard {
        let planned = jobs.len();
        jobs = shard.select(jobs);
        if !args.quiet {
            eprintln!("Shard {shard}: {} of {planned} photos", jobs.len());
        }
    }
    if args.skip_existing {
        let planned = jobs.len();
        jobs.retain(|job| batch::is_stdio(&job.output.path) || !job.output.path.exists());
        let skipped = planned - jobs.len();
        if skipped > 0 {
            eprintln!("Skipping {skipped} photos whose result already exists");
        }
        if jobs.is_empty() {
            eprintln!("Nothing left to do");
            return Ok(None);
        }
    }
    Ok(Some(jobs))
}

/// The batch's settings from the flags.
fn batch_options(kind: OutputKind, args: &RemoveOptions) -> BatchOptions {
    BatchOptions {
        workers: args.workers,
        keep_exif: args.keep_exif,
        ..BatchOptions::for_output(
            kind,
            args.refine.settings(),
            DecodeLimits {
                max_megapixels: args.max_megapixels,
                ..DecodeLimits::default()
            },
        )
    }
}

/// A bar on a terminal for more than one photo; hidden otherwise.
fn progress_bar(total: usize) -> ProgressBar {
    if total > 1 && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed} < {eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// The engine's opening, done once while the first photos decode, and what it left to report.
struct Opening {
    started: Instant,
    load_ms: f64,
    startup: engine::StartupTimings,
    ran_on: engine::ProviderKind,
    /// The GPU session still starting beside the CPU one (`--ep auto`).
    starting: Option<engine::Starting>,
}

impl Opening {
    fn new(started: Instant) -> Self {
        Self {
            started,
            load_ms: 0.0,
            startup: engine::StartupTimings::default(),
            ran_on: engine::ProviderKind::Cpu,
            starting: None,
        }
    }

    /// Opens the engine (with `auto`, photos start on the CPU while a GPU session starts beside
    /// it) and says in one line what runs.
    fn open(
        &mut self,
        dirs: &AppDirs,
        args: &RemoveOptions,
        options: &engine::SegmenterOptions,
        edges: Option<&crate::finish::EdgePath>,
        bar: &ProgressBar,
    ) -> Result<(engine::Segmenter, Option<Receiver<engine::Segmenter>>), engine::EngineError> {
        // Only where an engine build can happen: a TensorRT-class provider (the ticker also
        // needs an NVIDIA GPU, asked off this thread when a reminder is due).
        let builds = options.provider.candidates().iter().any(|p| {
            matches!(
                p,
                engine::ProviderKind::TensorRt | engine::ProviderKind::TensorRtRtx
            )
        });
        let ticker = builds.then(|| startup::StartupTicker::start(self.started));
        let model = args.engine.model_choice();
        let mut progress = fetch_progress();
        let (segmenter, gpu) = if options.provider == ProviderRequest::Auto {
            engine::open_handing_over(dirs, &model, options, &mut progress)?
        } else {
            (engine::open(dirs, &model, options, &mut progress)?, None)
        };
        drop(ticker);
        announce(&segmenter, gpu.is_some(), edges, args);
        self.load_ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.startup = segmenter.startup();
        self.ran_on = segmenter.report().provider;
        // Ticks only once the model's own fetch progress (first use) is done.
        bar.enable_steady_tick(Duration::from_millis(200));
        let ready = gpu.as_ref().map(|g| g.ready.clone());
        self.starting = gpu;
        Ok((segmenter, ready))
    }

    /// With `-v`: where the start-up time went, peak memory, and when the GPU took over.
    fn report_verbose(&self, took_over: Option<(f64, engine::StartupTimings)>) {
        let s = &self.startup;
        let (session, first_run) = self.ran_on.startup_steps();
        eprintln!(
            "Start-up {:.0} ms: ONNX Runtime and GPU libraries {:.0}, model file {:.0}, \
             prepared model {:.0}, session ({session}) {:.0}, first inference ({first_run}) {:.0}",
            self.load_ms, s.runtime_ms, s.model_ms, s.prepare_ms, s.session_ms, s.first_run_ms
        );
        if let Some(peak) = crate::memory::peak_resident_bytes() {
            eprintln!("Peak resident memory {:.0} MB", peak as f64 / 1e6);
        }
        if let Some((after, gpu)) = took_over {
            eprintln!(
                "GPU session ready after {after:.1} s: session {:.0} ms, first inference {:.0} ms",
                gpu.session_ms, gpu.first_run_ms
            );
        }
    }
}

/// One short line on what runs (the reasons in full with -v, and in `cutout doctor`); a custom
/// model's inputs and outputs; with -v, the edge path.
fn announce(
    segmenter: &engine::Segmenter,
    handing_over: bool,
    edges: Option<&crate::finish::EdgePath>,
    args: &RemoveOptions,
) {
    let verbose = args.verbose;
    if !args.quiet {
        let report = segmenter.report();
        let edges_on = match (edges, verbose) {
            (Some(path), false) => match path.runner {
                crate::finish::EdgeRunner::Cpu { .. } => " · edges on the CPU",
                crate::finish::EdgeRunner::Gpu { .. } => " · edges on the GPU",
            },
            _ => "",
        };
        eprintln!(
            "{} · {} px{edges_on} · {}{}",
            segmenter.model().spec.name,
            segmenter.input_side_px(),
            if verbose {
                report.summary()
            } else {
                report.headline()
            },
            if handing_over {
                "; photos move to the GPU once its session has started"
            } else {
                ""
            }
        );
    }
    if segmenter.model().origin == engine::models::ModelOrigin::Custom {
        eprintln!(
            "Custom model (checksum not checked): {}",
            segmenter.describe_io()
        );
    }
    if let Some(path) = edges.filter(|_| verbose) {
        eprintln!("Edges: {path}");
    }
}

/// Says that the GPU session took over; returns when, and its start-up timings.
fn switched(
    started: Instant,
    gpu: &engine::Segmenter,
    bar: &ProgressBar,
) -> (f64, engine::StartupTimings) {
    let after = started.elapsed().as_secs_f64();
    bar.suspend(|| {
        eprintln!(
            "The GPU session started after {after:.1} s; the next photos run on the {}",
            gpu.report().summary()
        );
    });
    (after, gpu.startup())
}

/// Counts the photos as they come back, in input order, and prints a line for each.
struct Tally<'a> {
    bar: &'a ProgressBar,
    quiet: bool,
    verbose: bool,
    done: usize,
    failed: usize,
}

impl<'a> Tally<'a> {
    fn new(bar: &'a ProgressBar, args: &RemoveOptions) -> Self {
        Self {
            bar,
            quiet: args.quiet,
            verbose: args.verbose,
            done: 0,
            failed: 0,
        }
    }

    fn record(&mut self, outcome: &batch::Outcome) {
        self.bar.inc(1);
        self.done += 1;
        let t = match &outcome.result {
            Ok(t) => t,
            Err(e) => {
                self.failed += 1;
                self.bar.suspend(|| eprintln!("error: {e}"));
                return;
            }
        };
        let input = &outcome.job.input;
        self.bar.set_message(
            input
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        let Some(written) = outcome.written.as_ref().filter(|w| !batch::is_stdio(w)) else {
            return;
        };
        if self.quiet {
            return;
        }
        let mut line = format!("{} → {}", shown(input), written.display());
        if written != &outcome.job.output.path {
            line.push_str(&format!(
                " ({} holds another photo's cutout or a file of yours, so it was kept)",
                outcome
                    .job
                    .output
                    .path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            ));
        }
        if self.verbose {
            line.push_str(&format!(
                "  decode {:.0} ms, preprocess {:.0} ms, infer {:.0} ms ({}), postprocess {:.0} ms, encode {:.0} ms",
                t.decode_ms,
                t.preprocess_ms,
                t.infer_ms,
                outcome.provider.map_or("-", engine::ProviderKind::label),
                t.postprocess_ms,
                t.encode_ms
            ));
        }
        self.bar.suspend(|| eprintln!("{line}"));
    }
}

/// The closing line and exit code of a batch that ran to its end.
fn conclude(
    total: usize,
    failed: usize,
    started: Instant,
    starting: Option<engine::Starting>,
    args: &RemoveOptions,
) -> ExitCode {
    let elapsed = started.elapsed().as_secs_f64();
    if failed == 0 {
        if (total > 1 || args.verbose) && !args.quiet {
            eprintln!("{total} done in {elapsed:.1} s");
        }
        leave(0, starting, args.verbose)
    } else {
        if total > 1 {
            eprintln!(
                "{} done, {failed} failed (listed above) in {elapsed:.1} s",
                total - failed
            );
        }
        leave(1, starting, args.verbose)
    }
}

/// A photo's path as the user gave it, `-` as "standard input".
fn shown(input: &Path) -> String {
    if batch::is_stdio(input) {
        "standard input".to_owned()
    } else {
        input.display().to_string()
    }
}

/// Ends `remove` with `code`. A GPU session that never took over is reported when it could not
/// start; one still starting is left behind: the process ends at once rather than waiting for
/// CUDA and ONNX Runtime to finish starting only to tear them down.
///
/// Either way the process ends without running exit handlers: every result is complete and on
/// disk by now, and tearing down ONNX Runtime and a CUDA context took 170 ms on an H200.
fn leave(code: u8, starting: Option<engine::Starting>, verbose: bool) -> ExitCode {
    match starting {
        Some(starting) if starting.is_finished() => {
            if let Some(why) = starting.finish() {
                eprintln!("No GPU provider took over: {why}");
            }
        }
        Some(_) if verbose => {
            eprintln!("The GPU session was still starting when the last photo was done");
        }
        _ => {}
    }
    super::quit::now(code)
}
