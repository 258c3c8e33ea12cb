//! Which photos a batch reads and where each result goes: files and folders (sub-folders with
//! `-r`, keeping their layout), the output names, and clashes resolved without overwriting.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use super::{Job, OutputKind};
use crate::image_ops::export::{self, Origin, STDIO, Target, is_stdio};

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
    /// A photo from standard input has no name to give its result in a folder.
    #[error("a photo from standard input has no name to keep: give the file, as in `-o {}`", .0.join("cutout.png").display())]
    StdinNeedsAFileName(PathBuf),
    /// `-` (standard input or output) with more than one photo.
    #[error(
        "`-` (standard input or output) works with exactly one photo: `cutout remove - -o out.png`, `cutout remove photo.jpg -o -`, or `cat photo.jpg | cutout remove - > out.png`"
    )]
    StdioNeedsOne,
}

/// File extensions picked up when a folder is given.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "heic", "heif", "hif", "avif", "bmp", "tif", "tiff", "gif",
];

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

/// Where a result goes, for [`output_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Into an output folder: the photo's own name with `.png`.
    Folder,
    /// Beside the photo: `NAME.cutout.png` (or `.mask.png`), so that it is told apart.
    BesideInput,
}

/// cutout's one naming rule, for the command line and the app: the result for the photo
/// `input_name` (`car.jpg`) in `dir`. Into a folder `car.png`, beside the photo
/// `car.SUFFIX.png`; when `taken` says that name is taken (another result of the same run, or a
/// photo), `car (2).png`, `car (3).png`… ([`export::numbered`]). A name is never one that `taken`
/// holds, so no result of a run lands on a photo or on another result of the run. (Across runs,
/// the write itself keeps other photos' results: see [`export::Target`].)
pub fn output_name(
    dir: &Path,
    input_name: &str,
    suffix: &str,
    place: Place,
    taken: impl Fn(&Path) -> bool,
) -> PathBuf {
    let stem = Path::new(input_name).file_stem().map_or_else(
        || input_name.to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let first = match place {
        Place::Folder => dir.join(format!("{stem}.png")),
        Place::BesideInput => dir.join(format!("{stem}.{suffix}.png")),
    };
    std::iter::once(first.clone())
        .chain((2..u32::MAX).map(|n| export::numbered(&first, n)))
        .find(|c| !taken(c))
        .unwrap_or(first)
}

/// Whether `-o` names a folder: an existing one, or a path ending in a separator.
fn names_a_folder(path: &Path) -> bool {
    path.is_dir() || path.as_os_str().to_string_lossy().ends_with(['/', '\\'])
}

/// Decides the output path of every input. With no `-o`, results go beside the photo as
/// `NAME.cutout.png`; with `-o FILE` (one input) exactly there; with `-o DIR` (a folder, an
/// existing one or a path ending in `/`) as `DIR/NAME.png`, or `DIR/SUB/NAME.png` for a photo
/// found in sub-folder `SUB` of a folder read recursively (the sub-folders are created). Names
/// are kept, clashes within the run are numbered (`car (2).png`), and an input is never
/// overwritten. `-` reads standard input (then the PNG goes to standard output unless `-o` names
/// a file), and `-o -` writes one result to standard output.
pub fn plan_jobs(
    inputs: &[PathBuf],
    output: Option<&Path>,
    options: PlanOptions,
) -> Result<Vec<Job>, PlanError> {
    let reads_stdin = inputs.iter().any(|i| is_stdio(i));
    if reads_stdin || output.is_some_and(is_stdio) {
        return stdio_job(inputs, output, reads_stdin);
    }
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
            let names_folder = names_a_folder(out);
            let several = files.len() > 1 || inputs.iter().any(|i| i.is_dir());
            if !names_folder && !several {
                return Ok(vec![Job::file(
                    files[0].path.clone(),
                    Target::exact(out.to_owned(), Some(Origin::of_file(&files[0].path))),
                )]);
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
    name_outputs(files, out_dir.as_deref(), suffix)
}

/// The one job of a run that reads standard input or writes standard output.
fn stdio_job(
    inputs: &[PathBuf],
    output: Option<&Path>,
    reads_stdin: bool,
) -> Result<Vec<Job>, PlanError> {
    let single = inputs.len() == 1 && !inputs[0].is_dir();
    if !single {
        return Err(PlanError::StdioNeedsOne);
    }
    let input = inputs[0].clone();
    let origin = (!reads_stdin).then(|| Origin::of_file(&input));
    let output = output.map_or_else(|| PathBuf::from(STDIO), Path::to_owned);
    if reads_stdin && names_a_folder(&output) {
        return Err(PlanError::StdinNeedsAFileName(output));
    }
    Ok(vec![Job::file(input, Target::exact(output, origin))])
}

/// Each photo's output: in `out_dir` (its sub-folder made) or beside the photo, named after it,
/// numbered on a clash; inputs count as taken, so no output ever lands on a photo of the batch.
fn name_outputs(
    files: Vec<Found>,
    out_dir: Option<&Path>,
    suffix: &str,
) -> Result<Vec<Job>, PlanError> {
    let mut taken: HashSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let mut folders: HashSet<PathBuf> = HashSet::new();
    let mut jobs = Vec::with_capacity(files.len());
    for Found {
        path: input,
        sub_folder,
    } in files
    {
        let name = input
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let output = match out_dir {
            Some(dir) => {
                let dir = dir.join(&sub_folder);
                if folders.insert(dir.clone()) {
                    std::fs::create_dir_all(&dir).map_err(|source| PlanError::Io {
                        action: "cannot create the output folder",
                        path: dir.clone(),
                        source,
                    })?;
                }
                output_name(&dir, &name, suffix, Place::Folder, |p| taken.contains(p))
            }
            None => {
                let dir = input.parent().unwrap_or(Path::new(""));
                output_name(dir, &name, suffix, Place::BesideInput, |p| {
                    taken.contains(p)
                })
            }
        };
        taken.insert(output.clone());
        let origin = Origin::of_file(&input);
        jobs.push(Job::file(input, Target::keeping_others(output, origin)));
    }
    Ok(jobs)
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
            vec![Job::file(
                a.clone(),
                Target::keeping_others(dir.path().join("a.cutout.png"), Origin::of_file(&a))
            )]
        );
    }

    #[test]
    fn one_input_and_a_file_name_writes_exactly_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.jpg");
        touch(&a);
        let out = dir.path().join("result.png");
        let jobs = plan_jobs(&[a], Some(&out), plan(OutputKind::Cutout)).expect("plan");
        assert_eq!(jobs[0].output.path, out);
        assert!(
            jobs[0].output.replace_any,
            "a file the user named is replaced"
        );
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
                    .path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, vec!["b.png", "b (2).png", "c.png"]);
        // Writing into the input folder never targets any input file.
        let jobs = plan_jobs(
            std::slice::from_ref(&src),
            Some(&src),
            plan(OutputKind::MaskOnly),
        )
        .expect("plan");
        for job in &jobs {
            assert!(
                jobs.iter().all(|other| other.input != job.output.path),
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
                    j.output.path.strip_prefix(&out).expect("in out").to_owned(),
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
        assert_eq!(jobs[0].output.path, src.join("top.cutout.png"));
    }

    #[test]
    fn one_naming_rule_never_reuses_a_taken_name() {
        let dir = Path::new("out");
        let mut taken = HashSet::new();
        let mut names = Vec::new();
        for _ in 0..5 {
            let next = output_name(dir, "car.jpg", "cutout", Place::Folder, |p| {
                taken.contains(p)
            });
            taken.insert(next.clone());
            names.push(next.file_name().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(
            names,
            [
                "car.png",
                "car (2).png",
                "car (3).png",
                "car (4).png",
                "car (5).png"
            ]
        );
        let pasted = output_name(dir, "pasted-2", "cutout", Place::Folder, |_| false);
        assert_eq!(pasted, dir.join("pasted-2.png"));
        let beside = output_name(dir, "car.jpg", "mask", Place::BesideInput, |_| false);
        assert_eq!(beside, dir.join("car.mask.png"));
        let beside_taken = output_name(dir, "car.jpg", "cutout", Place::BesideInput, |p| {
            p == dir.join("car.cutout.png")
        });
        assert_eq!(beside_taken, dir.join("car (2).cutout.png"));
    }

    #[test]
    fn a_dash_reads_standard_input_and_writes_standard_output() {
        let stdin = PathBuf::from(STDIO);
        let jobs =
            plan_jobs(std::slice::from_ref(&stdin), None, plan(OutputKind::Cutout)).expect("plan");
        assert_eq!(jobs[0].input, stdin);
        assert!(is_stdio(&jobs[0].output.path));
        let to_file = plan_jobs(
            std::slice::from_ref(&stdin),
            Some(Path::new("out.png")),
            plan(OutputKind::Cutout),
        )
        .expect("plan");
        assert_eq!(to_file[0].output.path, Path::new("out.png"));
        assert!(matches!(
            plan_jobs(
                std::slice::from_ref(&stdin),
                Some(Path::new("results/")),
                plan(OutputKind::Cutout)
            ),
            Err(PlanError::StdinNeedsAFileName(_))
        ));
        let two = [stdin, PathBuf::from("b.jpg")];
        assert!(matches!(
            plan_jobs(&two, None, plan(OutputKind::Cutout)),
            Err(PlanError::StdioNeedsOne)
        ));
        assert!(matches!(
            plan_jobs(&two[1..], Some(Path::new(STDIO)), plan(OutputKind::Cutout)).map(|j| j.len()),
            Ok(1)
        ));
    }
}
