//! Batch background removal: file → decode → preprocess → infer → postprocess → PNG on disk.
//!
//! Three stages overlap on their own threads, joined by bounded channels: decoding and
//! preprocessing the next photo, running the network on the current one, and resizing the mask and
//! encoding the previous one. A photo that fails at any stage becomes an [`Outcome`] with the
//! reason; the rest of the batch goes on.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use image::{ExtendedColorType, GrayImage, RgbImage};

use crate::{
    engine::{EngineError, MaskPipeline, Segmenter},
    finish::{FinishError, Finisher},
    image_ops::{
        self, Background, CompositeSettings, DecodeLimits, ImageError, refine::RefineSettings,
    },
};

/// What to write for each photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// Transparent PNG: the photo's colours with the mask as alpha.
    #[default]
    Cutout,
    /// The mask alone, as an 8-bit grey PNG.
    MaskOnly,
    /// The subject over an opaque colour.
    OverColor([u8; 3]),
}

/// One photo and where its result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The photo.
    pub input: PathBuf,
    /// The PNG to write.
    pub output: PathBuf,
}

/// Milliseconds spent in each stage for one photo.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimings {
    /// Reading and decoding the file.
    pub decode_ms: f64,
    /// Resizing to the model size and normalising.
    pub preprocess_ms: f64,
    /// The network.
    pub infer_ms: f64,
    /// Mask back to full size and compositing.
    pub postprocess_ms: f64,
    /// PNG encoding and the atomic write.
    pub encode_ms: f64,
}

/// Why one photo failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading, decoding or writing.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The network.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Edge refinement or compositing.
    #[error(transparent)]
    Finish(#[from] FinishError),
}

/// What happened to one photo.
#[derive(Debug)]
pub struct Outcome {
    /// The job.
    pub job: Job,
    /// Timings, or why it failed.
    pub result: Result<StageTimings, JobError>,
}

/// Why the inputs could not be turned into jobs.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Several inputs but `-o` names a file.
    #[error("{count} inputs need an output folder, but -o names a file: {}", .output.display())]
    OutputNotAFolder {
        /// How many inputs.
        count: usize,
        /// The `-o` path.
        output: PathBuf,
    },
    /// A folder could not be listed or created.
    #[error("{action} ({source}): {}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Nothing to do.
    #[error("no images found in the given inputs")]
    Empty,
}

/// File extensions picked up when a folder is given.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"];

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Whether a file looks like one of cutout's own results (`NAME.cutout.png`, `NAME.mask.png`):
/// those are left out when a folder is read, so that running a command twice does not cut out
/// its own results.
fn is_own_output(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".cutout.png") || lower.ends_with(".mask.png")
}

/// A photo found in the inputs, and the sub-folder (relative to the folder it was found in)
/// whose layout its result keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The photo.
    pub path: PathBuf,
    /// Its folder below the input folder; empty for files given directly and top-level photos.
    pub sub_folder: PathBuf,
}

/// Expands folders and keeps files as given. A folder's image files are taken sorted; with
/// `recursive`, also those of its sub-folders (hidden ones, symbolic links to folders and
/// `skip` excepted), depth first in name order. cutout's own results are left out.
pub fn expand_inputs(
    inputs: &[PathBuf],
    recursive: bool,
    skip: Option<&Path>,
) -> Result<Vec<Found>, PlanError> {
    fn walk(
        dir: &Path,
        sub: &Path,
        recursive: bool,
        skip: Option<&Path>,
        found: &mut Vec<Found>,
    ) -> Result<(), PlanError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PlanError::Io {
            action: "cannot list the folder",
            path: dir.to_owned(),
            source,
        })?;
        let mut entries: Vec<std::fs::DirEntry> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                let skipped = skip.is_some_and(|s| same_place(s, &path));
                if recursive && !hidden && !skipped {
                    walk(&path, &sub.join(entry.file_name()), recursive, skip, found)?;
                }
            } else if path.is_file() && is_image_name(&path) && !is_own_output(&path) {
                found.push(Found {
                    path,
                    sub_folder: sub.to_owned(),
                });
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, Path::new(""), recursive, skip, &mut files)?;
        } else {
            files.push(Found {
                path: input.clone(),
                sub_folder: PathBuf::new(),
            });
        }
    }
    Ok(files)
}

/// Whether two paths name the same folder (compared after resolving links, when both exist).
fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// How the inputs become jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// What to write (decides the `.cutout`/`.mask` suffix).
    pub kind: OutputKind,
    /// Read folders' sub-folders too, keeping their layout in the output folder.
    pub recursive: bool,
}

/// Decides the output path of every input. With no `-o`, results go beside the photo as
/// `NAME.cutout.png`; with `-o FILE` (one input) exactly there; with `-o DIR` (a folder, an
/// existing one or a path ending in `/`) as `DIR/NAME.png`, or `DIR/SUB/NAME.png` for a photo
/// found in sub-folder `SUB` of a folder read recursively (the sub-folders are created). Names
/// are kept, clashes get the original extension added, and an input is never overwritten.
pub fn plan_jobs(
    inputs: &[PathBuf],
    output: Option<&Path>,
    options: PlanOptions,
) -> Result<Vec<Job>, PlanError> {
    let files = expand_inputs(inputs, options.recursive, output)?;
    if files.is_empty() {
        return Err(PlanError::Empty);
    }
    let suffix = if options.kind == OutputKind::MaskOnly {
        "mask"
    } else {
        "cutout"
    };
    let out_dir = match output {
        None => None,
        Some(out) => {
            let names_folder =
                out.is_dir() || out.as_os_str().to_string_lossy().ends_with(['/', '\\']);
            let several = files.len() > 1 || inputs.iter().any(|i| i.is_dir());
            if !names_folder && !several {
                return Ok(vec![Job {
                    input: files[0].path.clone(),
                    output: out.to_owned(),
                }]);
            }
            if !names_folder && out.exists() {
                return Err(PlanError::OutputNotAFolder {
                    count: files.len(),
                    output: out.to_owned(),
                });
            }
            Some(out.to_owned())
        }
    };
    // Inputs count as taken, so no output ever lands on a photo of the batch.
    let mut taken: HashSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let mut folders: HashSet<PathBuf> = HashSet::new();
    let mut jobs = Vec::with_capacity(files.len());
    for Found {
        path: input,
        sub_folder,
    } in files
    {
        let stem = input
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = input
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let candidates = match &out_dir {
            Some(dir) => {
                let dir = dir.join(&sub_folder);
                if folders.insert(dir.clone()) {
                    std::fs::create_dir_all(&dir).map_err(|source| PlanError::Io {
                        action: "cannot create the output folder",
                        path: dir.clone(),
                        source,
                    })?;
                }
                vec![
                    dir.join(format!("{stem}.png")),
                    dir.join(format!("{name}.png")),
                    dir.join(format!("{stem}.{suffix}.png")),
                ]
            }
            None => {
                let dir = input.parent().unwrap_or(Path::new(""));
                vec![
                    dir.join(format!("{stem}.{suffix}.png")),
                    dir.join(format!("{name}.{suffix}.png")),
                ]
            }
        };
        let output = candidates
            .into_iter()
            .find(|c| !taken.contains(c))
            .unwrap_or_else(|| input.with_extension(format!("{}.{suffix}.png", taken.len())));
        taken.insert(output.clone());
        jobs.push(Job { input, output });
    }
    Ok(jobs)
}

/// Settings for [`run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// What to write.
    pub kind: OutputKind,
    /// Edge refinement and foreground colours.
    pub refine: RefineSettings,
    /// Decoder limits.
    pub limits: DecodeLimits,
}

struct Prepared {
    job: Job,
    rgb: RgbImage,
    input: Vec<f32>,
    timings: StageTimings,
}

struct Inferred {
    job: Job,
    rgb: RgbImage,
    raw: Vec<f32>,
    timings: StageTimings,
}

fn failed(job: Job, error: JobError) -> Box<Outcome> {
    Box::new(Outcome {
        job,
        result: Err(error),
    })
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// A decoded photo, before the network's input is made.
struct Decoded {
    job: Job,
    rgb: RgbImage,
    decode_ms: f64,
}

/// Decodes one photo.
fn decode(job: Job, limits: DecodeLimits) -> Result<Decoded, Box<Outcome>> {
    let t = Instant::now();
    match image_ops::decode_file(&job.input, limits) {
        Ok(d) => Ok(Decoded {
            job,
            rgb: d.rgb,
            decode_ms: ms_since(t),
        }),
        Err(e) => Err(failed(job, e.into())),
    }
}

/// Makes the network's input from a decoded photo.
fn preprocess(decoded: Decoded, pipeline: MaskPipeline) -> Result<Prepared, Box<Outcome>> {
    let Decoded {
        job,
        rgb,
        decode_ms,
    } = decoded;
    let t = Instant::now();
    let input = match pipeline.preprocess(&rgb) {
        Ok(i) => i,
        Err(e) => return Err(failed(job, e.into())),
    };
    let timings = StageTimings {
        decode_ms,
        preprocess_ms: ms_since(t),
        ..StageTimings::default()
    };
    Ok(Prepared {
        job,
        rgb,
        input,
        timings,
    })
}

/// The 8-bit pixels to write for one photo and their layout: the refined mask, or the composite
/// (refined, with the subject's colours where foreground estimation is on).
pub fn render(
    finisher: &mut Finisher,
    rgb: &RgbImage,
    mask: &GrayImage,
    kind: OutputKind,
    refine: RefineSettings,
) -> Result<(Vec<u8>, ExtendedColorType), FinishError> {
    let settings = CompositeSettings {
        background: match kind {
            OutputKind::OverColor(_) => Background::Color,
            OutputKind::Cutout | OutputKind::MaskOnly => Background::Transparent,
        },
        color: match kind {
            OutputKind::OverColor(color) => color,
            OutputKind::Cutout | OutputKind::MaskOnly => [255; 3],
        },
        refine: RefineSettings {
            // The mask alone has no colours to estimate.
            foreground: refine.foreground && kind != OutputKind::MaskOnly,
            ..refine
        },
        ..CompositeSettings::default()
    };
    Ok(match kind {
        OutputKind::MaskOnly => (
            finisher.refine(rgb, mask, &settings)?.mask.into_raw(),
            ExtendedColorType::L8,
        ),
        OutputKind::Cutout => (
            finisher.composite(rgb, mask, &settings)?.into_raw(),
            ExtendedColorType::Rgba8,
        ),
        OutputKind::OverColor(_) => (
            finisher
                .composite(rgb, mask, &settings)?
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            ExtendedColorType::Rgb8,
        ),
    })
}

fn finish(
    item: Inferred,
    pipeline: MaskPipeline,
    options: BatchOptions,
    finisher: &mut Finisher,
) -> Outcome {
    let Inferred {
        job,
        rgb,
        raw,
        mut timings,
    } = item;
    let t = Instant::now();
    let mask = match pipeline.postprocess(&raw, rgb.width(), rgb.height()) {
        Ok(m) => m,
        Err(e) => {
            return Outcome {
                job,
                result: Err(e.into()),
            };
        }
    };
    let (pixels, color) = match render(finisher, &rgb, &mask, options.kind, options.refine) {
        Ok(rendered) => rendered,
        Err(e) => {
            return Outcome {
                job,
                result: Err(e.into()),
            };
        }
    };
    timings.postprocess_ms = ms_since(t);
    let t = Instant::now();
    let written =
        image_ops::write_png_atomic(&job.output, &pixels, rgb.width(), rgb.height(), color);
    timings.encode_ms = ms_since(t);
    Outcome {
        job,
        result: written.map(|()| timings).map_err(JobError::from),
    }
}

/// Runs every job through the overlapped pipeline; `on_done` sees each outcome as it completes
/// (in input order). Returns all outcomes.
pub fn run(
    segmenter: &mut Segmenter,
    jobs: Vec<Job>,
    options: BatchOptions,
    finisher: Finisher,
    on_done: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let opened = run_opening(
        || Ok::<_, std::convert::Infallible>(segmenter),
        jobs,
        options,
        finisher,
        &AtomicBool::new(false),
        on_done,
    );
    match opened {
        Ok(outcomes) => outcomes,
        Err(never) => match never {},
    }
}

/// [`run`], with the engine opened by `open` while the first photo is being decoded (start-up
/// and decoding overlap). When `open` fails nothing is written and its error is returned.
///
/// Once `stop` is set no further photo is started: a photo whose result is being written is
/// finished (every write is atomic), the rest have no outcome.
pub fn run_opening<S: std::borrow::BorrowMut<Segmenter>, E>(
    open: impl FnOnce() -> Result<S, E>,
    jobs: Vec<Job>,
    options: BatchOptions,
    mut finisher: Finisher,
    stop: &AtomicBool,
    mut on_done: impl FnMut(&Outcome),
) -> Result<Vec<Outcome>, E> {
    let stopped = || stop.load(Ordering::Relaxed);
    std::thread::scope(|scope| {
        // The stages of [`Segmenter::segment`], each on its own thread. The channels live in
        // this closure, so that an early return closes them before the scope waits.
        let (pipeline_tx, pipeline_rx) = crossbeam_channel::bounded::<MaskPipeline>(1);
        let (prep_tx, prep_rx) = crossbeam_channel::bounded::<Result<Prepared, Box<Outcome>>>(1);
        let (infer_tx, infer_rx) = crossbeam_channel::bounded::<Result<Inferred, Box<Outcome>>>(1);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Outcome>();
        let mut outcomes = Vec::new();
        let limits = options.limits;
        std::thread::Builder::new()
            .name("cutout-decode".into())
            .spawn_scoped(scope, move || {
                let mut pipeline = None;
                for job in jobs {
                    if stopped() {
                        break;
                    }
                    let decoded = decode(job, limits);
                    // The first photo is decoded while the engine opens; its input needs the
                    // engine's pipeline.
                    let pipeline = match pipeline {
                        Some(p) => p,
                        None => match pipeline_rx.recv() {
                            Ok(p) => *pipeline.insert(p),
                            Err(_) => break,
                        },
                    };
                    if prep_tx
                        .send(decoded.and_then(|d| preprocess(d, pipeline)))
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| tracing::error!("cannot start the decoding thread: {e}"))
            .ok();
        let mut opened = open()?;
        let segmenter = opened.borrow_mut();
        let pipeline = segmenter.pipeline();
        // The decoding thread may already be gone (no photos, or it could not start).
        pipeline_tx.send(pipeline).ok();
        std::thread::Builder::new()
            .name("cutout-encode".into())
            .spawn_scoped(scope, move || {
                for item in infer_rx {
                    if stopped() {
                        break;
                    }
                    let outcome = match item {
                        Ok(inferred) => finish(inferred, pipeline, options, &mut finisher),
                        Err(failed) => *failed,
                    };
                    if done_tx.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| tracing::error!("cannot start the encoding thread: {e}"))
            .ok();
        for prepared in prep_rx {
            if stopped() {
                break;
            }
            let next = prepared.and_then(|p| {
                let t = Instant::now();
                match segmenter.infer(&p.input) {
                    Ok(raw) => {
                        let mut timings = p.timings;
                        timings.infer_ms = ms_since(t);
                        Ok(Inferred {
                            job: p.job,
                            rgb: p.rgb,
                            raw,
                            timings,
                        })
                    }
                    Err(e) => Err(failed(p.job, e.into())),
                }
            });
            if infer_tx.send(next).is_err() {
                break;
            }
            for outcome in done_rx.try_iter() {
                on_done(&outcome);
                outcomes.push(outcome);
            }
        }
        drop(infer_tx);
        for outcome in &done_rx {
            on_done(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn plan(kind: OutputKind) -> PlanOptions {
        PlanOptions {
            kind,
            recursive: false,
        }
    }

    fn touch(path: &Path) {
        std::fs::write(path, b"x").expect("write");
    }

    #[test]
    fn default_outputs_go_beside_the_inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.jpg");
        touch(&a);
        let jobs =
            plan_jobs(std::slice::from_ref(&a), None, plan(OutputKind::Cutout)).expect("plan");
        assert_eq!(
            jobs,
            vec![Job {
                input: a,
                output: dir.path().join("a.cutout.png")
            }]
        );
    }

    #[test]
    fn one_input_and_a_file_name_writes_exactly_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.jpg");
        touch(&a);
        let out = dir.path().join("result.png");
        let jobs = plan_jobs(&[a], Some(&out), plan(OutputKind::Cutout)).expect("plan");
        assert_eq!(jobs[0].output, out);
    }

    #[test]
    fn folders_keep_names_and_resolve_clashes_without_overwriting_inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        for name in ["b.jpg", "b.png", "c.webp", "notes.txt"] {
            touch(&src.join(name));
        }
        let out = dir.path().join("out/");
        let jobs = plan_jobs(
            std::slice::from_ref(&src),
            Some(&out),
            plan(OutputKind::Cutout),
        )
        .expect("plan");
        let names: Vec<String> = jobs
            .iter()
            .map(|j| {
                j.output
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, vec!["b.png", "b.png.png", "c.png"]);
        // Writing into the input folder never targets any input file.
        let jobs = plan_jobs(
            std::slice::from_ref(&src),
            Some(&src),
            plan(OutputKind::MaskOnly),
        )
        .expect("plan");
        for job in &jobs {
            assert!(
                jobs.iter().all(|other| other.input != job.output),
                "{job:?}"
            );
        }
    }

    #[test]
    fn several_inputs_and_an_existing_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, out) = (
            dir.path().join("a.jpg"),
            dir.path().join("b.jpg"),
            dir.path().join("x.png"),
        );
        for p in [&a, &b, &out] {
            touch(p);
        }
        assert!(matches!(
            plan_jobs(&[a, b], Some(&out), plan(OutputKind::Cutout)),
            Err(PlanError::OutputNotAFolder { .. })
        ));
    }

    #[test]
    fn an_empty_folder_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            plan_jobs(&[dir.path().to_owned()], None, plan(OutputKind::Cutout)),
            Err(PlanError::Empty)
        ));
    }

    #[test]
    fn recursive_folders_keep_their_layout_and_skip_hidden_folders_outputs_and_the_output_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        for sub in ["", "a", "a/deep", ".hidden", "out"] {
            std::fs::create_dir_all(src.join(sub)).expect("mkdir");
        }
        for name in [
            "top.jpg",
            "top.cutout.png",
            "a/x.png",
            "a/deep/y.webp",
            ".hidden/h.jpg",
            "out/old.png",
        ] {
            touch(&src.join(name));
        }
        let out = src.join("out");
        let options = PlanOptions {
            kind: OutputKind::Cutout,
            recursive: true,
        };
        let jobs = plan_jobs(std::slice::from_ref(&src), Some(&out), options).expect("plan");
        let pairs: Vec<(PathBuf, PathBuf)> = jobs
            .into_iter()
            .map(|j| {
                (
                    j.input.strip_prefix(&src).expect("in src").to_owned(),
                    j.output.strip_prefix(&out).expect("in out").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(PathBuf, PathBuf)> = [
            ("a/deep/y.webp", "a/deep/y.png"),
            ("a/x.png", "a/x.png"),
            ("top.jpg", "top.png"),
        ]
        .iter()
        .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
        .collect();
        assert_eq!(pairs, expected);
        assert!(out.join("a/deep").is_dir(), "sub-folders are made");
        // Without -r only the top level is read; without -o results stay beside the photos.
        let jobs =
            plan_jobs(std::slice::from_ref(&src), None, plan(OutputKind::Cutout)).expect("plan");
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].output, src.join("top.cutout.png"));
    }
}
