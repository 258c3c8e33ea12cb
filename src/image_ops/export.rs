//! Writing PNGs atomically: encode into a temporary file beside the destination, then rename, so
//! a failure (full disk, bad folder, crash) never leaves a partial file under the user's name.

use std::{io::Write as _, path::Path};

use image::{
    ExtendedColorType, ImageEncoder,
    codecs::png::{CompressionType, FilterType, PngEncoder},
};

use super::ImageError;

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
    let mut tmp = crate::paths::temp_file_builder(".cutout-", ".png.tmp")
        .tempfile_in(dir)
        .map_err(|e| fail(format!("cannot create a file in that folder: {e}")))?;
    {
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        // fdeflate ("Fast") with adaptive row filters: several times faster than zlib's default
        // level on photos, files within a few percent of it.
        PngEncoder::new_with_quality(&mut writer, CompressionType::Fast, FilterType::Adaptive)
            .write_image(pixels, width, height, color)
            .map_err(|e| fail(e.to_string()))?;
        writer.flush().map_err(|e| fail(e.to_string()))?;
    }
    tmp.as_file().sync_data().map_err(|e| fail(e.to_string()))?;
    tmp.persist(path).map_err(|e| fail(e.error.to_string()))?;
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
