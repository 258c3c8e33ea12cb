//! Writing PNGs atomically: encode into a temporary file beside the destination, then rename, so
//! a failure (full disk, bad folder, crash) never leaves a partial file under the user's name.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use image::{
    ExtendedColorType, ImageEncoder,
    codecs::png::{CompressionType, FilterType, PngEncoder},
};

use super::ImageError;

/// Temporary files being written now, so that a process told to stop at once (a second Ctrl+C)
/// can remove them before it exits; `closed` once it has, so that no new one starts.
static UNFINISHED: Mutex<Unfinished> = Mutex::new(Unfinished {
    paths: Vec::new(),
    closed: false,
});

struct Unfinished {
    paths: Vec<PathBuf>,
    closed: bool,
}

/// Removes the temporary files of writes under way and refuses new ones; for a process about to
/// exit without waiting for them. A write already renamed into place is complete and stays.
pub fn remove_unfinished() {
    let mut unfinished = UNFINISHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    unfinished.closed = true;
    for path in unfinished.paths.drain(..) {
        std::fs::remove_file(path).ok();
    }
}

/// A temporary file beside the destination, listed in [`UNFINISHED`] while it lives.
struct TempPng {
    file: tempfile::NamedTempFile,
    _listed: Listed,
}

/// Takes a temporary file off [`UNFINISHED`] when dropped (after its rename or removal).
struct Listed(PathBuf);

impl Drop for Listed {
    fn drop(&mut self) {
        let mut unfinished = UNFINISHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        unfinished.paths.retain(|p| *p != self.0);
    }
}

impl TempPng {
    fn create(dir: &Path) -> Result<Self, String> {
        let mut unfinished = UNFINISHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if unfinished.closed {
            return Err("cutout is stopping".to_owned());
        }
        let file = crate::paths::temp_file_builder(".cutout-", ".png.tmp")
            .tempfile_in(dir)
            .map_err(|e| format!("cannot create a file in that folder: {e}"))?;
        unfinished.paths.push(file.path().to_owned());
        let listed = Listed(file.path().to_owned());
        Ok(Self {
            file,
            _listed: listed,
        })
    }
}

/// Encodes 8-bit pixels (`color` says which layout) as PNG at `path`, atomically.
pub fn write_png_atomic(
    path: &Path,
    pixels: &[u8],
    width: u32,
    height: u32,
    color: ExtendedColorType,
) -> Result<(), ImageError> {
    let fail = |reason: String| ImageError::Write {
        path: path.to_owned(),
        reason,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail("the folder does not exist".to_owned()));
    }
    let mut tmp = TempPng::create(dir).map_err(fail)?;
    {
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, tmp.file.as_file_mut());
        // fdeflate ("Fast") with adaptive row filters: several times faster than zlib's default
        // level on photos, files within a few percent of it.
        PngEncoder::new_with_quality(&mut writer, CompressionType::Fast, FilterType::Adaptive)
            .write_image(pixels, width, height, color)
            .map_err(|e| fail(e.to_string()))?;
        writer.flush().map_err(|e| fail(e.to_string()))?;
    }
    tmp.file
        .as_file()
        .sync_data()
        .map_err(|e| fail(e.to_string()))?;
    tmp.file
        .persist(path)
        .map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_readable_png_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.png");
        write_png_atomic(
            &path,
            &[1, 2, 3, 4, 5, 6, 7, 8],
            2,
            1,
            ExtendedColorType::Rgba8,
        )
        .expect("write");
        let back = image::open(&path).expect("read back").into_rgba8();
        assert_eq!(back.into_raw(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.png")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_ne!(
                mode & 0o044,
                0,
                "readable by others as the umask allows, not 0600: {mode:o}"
            );
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let err = write_png_atomic(
            Path::new("/definitely/not/here/out.png"),
            &[0; 4],
            1,
            1,
            ExtendedColorType::Rgba8,
        )
        .expect_err("must fail");
        assert!(
            err.to_string().contains("/definitely/not/here/out.png"),
            "{err}"
        );
    }
}
