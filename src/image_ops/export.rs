//! Writing PNGs atomically: encode into a temporary file beside the destination, then rename, so
//! a failure (full disk, bad folder, crash) never leaves a partial file under the user's name.

use std::{
    borrow::Cow,
    io::Write as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use image::ExtendedColorType;

use super::{Embedded, ImageError};

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

/// Which photo a result came from, kept in the PNG (a `tEXt` chunk, [`ORIGIN_KEY`]) so that a
/// later write knows whether a file at its name is its own earlier result or another photo's.
/// It is a short hash, so no folder name leaves the machine inside a shared cutout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

/// The PNG text keyword that holds a result's [`Origin`].
pub const ORIGIN_KEY: &str = "cutout:origin";

impl Origin {
    /// A photo on disk, known by its absolute path (links resolved where it exists).
    pub fn of_file(path: &Path) -> Self {
        let absolute = path
            .canonicalize()
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_owned());
        Self::of_bytes(b"file:", absolute.as_os_str().as_encoded_bytes())
    }

    /// Anything else (pasted pixels, standard input), known by what the caller says identifies it.
    pub fn of_bytes(kind: &[u8], bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(kind)
            .chain_update(bytes)
            .finalize();
        Self(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The origin written in the PNG at `path`, if it is a PNG with one.
    pub fn read_from(path: &Path) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_ignore_text_chunk(false);
        let reader = decoder.read_info().ok()?;
        reader
            .info()
            .uncompressed_latin1_text
            .iter()
            .find(|chunk| chunk.keyword == ORIGIN_KEY)
            .map(|chunk| Self(chunk.text.clone()))
    }

    /// The hash as written in the PNG.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a PNG goes, and what it may replace there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The file name wanted.
    pub path: PathBuf,
    /// The photo the result came from (written into the file).
    pub origin: Option<Origin>,
    /// Whether a file already at `path` is replaced whatever it holds: the user named this
    /// file. Otherwise it is replaced only when it is an earlier result of the same photo, and
    /// the first free `NAME (2).png`, `NAME (3).png`… is used instead.
    pub replace_any: bool,
    /// The photo's colour profile (written as `iCCP` into colour PNGs, so that viewers show the
    /// cutout's colours as the photo's) and, when kept, its EXIF block (`eXIf`).
    pub embedded: Embedded,
}

impl Target {
    /// Exactly `path`, replacing what is there (a save dialog, `-o FILE`).
    pub fn exact(path: PathBuf, origin: Option<Origin>) -> Self {
        Self {
            path,
            origin,
            replace_any: true,
            embedded: Embedded::default(),
        }
    }

    /// `path`, or the first free numbered name beside it when `path` holds something other
    /// than an earlier result of `origin`.
    pub fn keeping_others(path: PathBuf, origin: Origin) -> Self {
        Self {
            path,
            origin: Some(origin),
            replace_any: false,
            embedded: Embedded::default(),
        }
    }

    /// The same, carrying `embedded` into the PNG.
    #[must_use]
    pub fn with_embedded(self, embedded: Embedded) -> Self {
        Self { embedded, ..self }
    }

    /// Whether the file at `candidate` may be replaced by this write.
    fn may_replace(&self, candidate: &Path) -> bool {
        self.replace_any && candidate == self.path
            || self
                .origin
                .as_ref()
                .is_some_and(|o| Origin::read_from(candidate).as_ref() == Some(o))
    }
}

/// Result suffixes kept at the end when a name is numbered: `car.cutout.png` becomes
/// `car (2).cutout.png`, so that it is still recognised as a result.
const RESULT_SUFFIXES: &[&str] = &[".cutout.png", ".mask.png"];

/// The `n`th name for `path` (`n` ≥ 2): `car.png` → `car (2).png`,
/// `car.cutout.png` → `car (2).cutout.png`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let split = RESULT_SUFFIXES
        .iter()
        .find(|s| lower.ends_with(*s) && lower.len() > s.len())
        .map(|s| name.len() - s.len())
        .or_else(|| name.rfind('.').filter(|&i| i > 0))
        .unwrap_or(name.len());
    let (stem, ext) = name.split_at(split);
    path.with_file_name(format!("{stem} ({n}){ext}"))
}

/// How hard the PNG encoder works (`--png-compression`). Measured on 12 MP cutouts (see
/// docs/performance.md): every level writes the same pixels; they differ in time and size.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum PngCompression {
    /// fdeflate with the Up filter: the quickest, files about a fifth larger.
    Fastest,
    /// fdeflate with the Paeth filter: as small as trying every filter per row, and quicker.
    #[default]
    Fast,
    /// zlib level 6 with adaptive filters: about a quarter smaller, some twenty times slower.
    Small,
    /// zlib level 9 with adaptive filters: the smallest file, the slowest by far.
    Smallest,
}

impl PngCompression {
    fn apply<W: std::io::Write>(self, encoder: &mut png::Encoder<'_, W>) {
        let (deflate, filter) = match self {
            Self::Fastest => (png::DeflateCompression::FdeflateUltraFast, png::Filter::Up),
            Self::Fast => (
                png::DeflateCompression::FdeflateUltraFast,
                png::Filter::Paeth,
            ),
            Self::Small => (png::DeflateCompression::Level(6), png::Filter::Adaptive),
            Self::Smallest => (png::DeflateCompression::Level(9), png::Filter::Adaptive),
        };
        encoder.set_deflate_compression(deflate);
        encoder.set_filter(filter);
    }
}

/// The name of standard input or output on the command line (`cutout remove - -o -`).
pub const STDIO: &str = "-";

/// Whether `path` is [`STDIO`].
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == STDIO
}

/// Encodes 8-bit pixels as PNG into `writer`, naming cutout and the photo's [`Origin`] in text
/// chunks; colour pixels carry the photo's profile and, when kept, its EXIF.
fn encode_png(
    writer: impl std::io::Write,
    (pixels, width, height, color): Pixels<'_>,
    target: &Target,
    compression: PngCompression,
) -> Result<(), String> {
    let (png_color, depth) = match color {
        ExtendedColorType::Rgba8 => (png::ColorType::Rgba, png::BitDepth::Eight),
        ExtendedColorType::Rgb8 => (png::ColorType::Rgb, png::BitDepth::Eight),
        ExtendedColorType::La8 => (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight),
        ExtendedColorType::L8 => (png::ColorType::Grayscale, png::BitDepth::Eight),
        other => return Err(format!("cutout does not write {other:?} pixels")),
    };
    let text = |e: png::EncodingError| e.to_string();
    let mut info = png::Info::with_size(width, height);
    // An RGB profile describes colour pixels only (PNG forbids it on grey ones, such as masks).
    if matches!(png_color, png::ColorType::Rgb | png::ColorType::Rgba) {
        info.icc_profile = target.embedded.icc.as_deref().map(Cow::Borrowed);
        info.exif_metadata = target.embedded.exif.as_deref().map(Cow::Borrowed);
    }
    let mut encoder = png::Encoder::with_info(writer, info).map_err(text)?;
    encoder.set_color(png_color);
    encoder.set_depth(depth);
    compression.apply(&mut encoder);
    encoder
        .add_text_chunk(
            "Software".to_owned(),
            format!("cutout {}", env!("CARGO_PKG_VERSION")),
        )
        .map_err(text)?;
    if let Some(origin) = &target.origin {
        encoder
            .add_text_chunk(ORIGIN_KEY.to_owned(), origin.0.clone())
            .map_err(text)?;
    }
    let mut png = encoder.write_header().map_err(text)?;
    png.write_image_data(pixels).map_err(text)?;
    png.finish().map_err(text)
}

/// 8-bit pixels to write: the bytes, width, height and their layout.
pub type Pixels<'a> = (&'a [u8], u32, u32, ExtendedColorType);

/// Encodes 8-bit pixels as PNG onto standard output (`cutout remove … -o -`).
fn write_png_stdout(
    pixels: Pixels<'_>,
    target: &Target,
    compression: PngCompression,
) -> Result<(), ImageError> {
    let fail = |reason: String| ImageError::Write {
        path: PathBuf::from("standard output"),
        reason,
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    encode_png(&mut out, pixels, target, compression).map_err(fail)?;
    out.flush().map_err(|e| fail(e.to_string()))
}

/// Writes the PNG for `target`: onto standard output when its path is [`STDIO`], otherwise
/// atomically ([`write_png_atomic`]). Returns the path written.
pub fn write_png(
    target: &Target,
    pixels: Pixels<'_>,
    compression: PngCompression,
) -> Result<PathBuf, ImageError> {
    if is_stdio(&target.path) {
        write_png_stdout(pixels, target, compression)?;
        Ok(target.path.clone())
    } else {
        write_png_atomic(target, pixels, compression)
    }
}

/// How many numbered names a write tries before giving up.
const MAX_NUMBERED: u32 = 10_000;

/// Encodes 8-bit pixels (`color` says which layout) as PNG for `target`, atomically, and returns
/// the path written: `target.path`, or a numbered name beside it when that holds another photo's
/// result or any file not written for this photo (see [`Target`]). Two writers never take the
/// same new name.
pub fn write_png_atomic(
    target: &Target,
    pixels: Pixels<'_>,
    compression: PngCompression,
) -> Result<PathBuf, ImageError> {
    let path = &target.path;
    let fail = |reason: String| ImageError::Write {
        path: path.clone(),
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
        encode_png(&mut writer, pixels, target, compression).map_err(fail)?;
        writer.flush().map_err(|e| fail(e.to_string()))?;
    }
    tmp.file
        .as_file()
        .sync_data()
        .map_err(|e| fail(e.to_string()))?;
    let candidates =
        std::iter::once(path.clone()).chain((2..=MAX_NUMBERED).map(|n| numbered(path, n)));
    let mut file = tmp.file;
    for candidate in candidates {
        if candidate.exists() {
            if !target.may_replace(&candidate) {
                continue;
            }
            return match file.persist(&candidate) {
                Ok(_) => Ok(candidate),
                Err(e) => Err(fail(e.error.to_string())),
            };
        }
        match file.persist_noclobber(&candidate) {
            Ok(_) => return Ok(candidate),
            // Another writer took the name between the check and the rename: try the next.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => file = e.file,
            Err(e) => return Err(fail(e.error.to_string())),
        }
    }
    Err(fail(format!(
        "{MAX_NUMBERED} files of that name are there already; choose another folder"
    )))
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
            &Target::exact(path.clone(), None),
            (&[1, 2, 3, 4, 5, 6, 7, 8], 2, 1, ExtendedColorType::Rgba8),
            PngCompression::default(),
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
    fn every_compression_level_writes_the_same_pixels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pixels: Vec<u8> = (0..64 * 48 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let mut sizes = Vec::new();
        for level in [
            PngCompression::Fastest,
            PngCompression::Fast,
            PngCompression::Small,
            PngCompression::Smallest,
        ] {
            let path = dir.path().join(format!("{level:?}.png"));
            let target = Target::exact(path.clone(), None);
            write_png_atomic(&target, (&pixels, 64, 48, ExtendedColorType::Rgba8), level)
                .expect("write");
            let back = image::open(&path).expect("read back").into_rgba8();
            assert_eq!(back.into_raw(), pixels, "{level:?}");
            sizes.push(std::fs::metadata(&path).expect("stat").len());
        }
        assert!(
            sizes[3] <= sizes[1],
            "level 9 is no larger than fdeflate: {sizes:?}"
        );
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let err = write_png_atomic(
            &Target::exact(PathBuf::from("/definitely/not/here/out.png"), None),
            (&[0; 4], 1, 1, ExtendedColorType::Rgba8),
            PngCompression::default(),
        )
        .expect_err("must fail");
        assert!(
            err.to_string().contains("/definitely/not/here/out.png"),
            "{err}"
        );
    }

    fn write(target: &Target, value: u8) -> PathBuf {
        let pixels = (&[value; 4][..], 1, 1, ExtendedColorType::Rgba8);
        write_png_atomic(target, pixels, PngCompression::default()).expect("write")
    }

    fn value_at(path: &Path) -> u8 {
        image::open(path).expect("read").into_rgba8().into_raw()[0]
    }

    #[test]
    fn numbered_names_keep_the_result_suffix() {
        let n = |p: &str| numbered(Path::new(p), 2);
        assert_eq!(n("/o/car-1.png"), Path::new("/o/car-1 (2).png"));
        assert_eq!(
            n("/o/car-1.cutout.png"),
            Path::new("/o/car-1 (2).cutout.png")
        );
        assert_eq!(n("/o/car-1.MASK.png"), Path::new("/o/car-1 (2).MASK.png"));
        assert_eq!(n("/o/my.photo.png"), Path::new("/o/my.photo (2).png"));
        assert_eq!(n("/o/.png"), Path::new("/o/.png (2)"));
        assert_eq!(numbered(Path::new("x.png"), 11), Path::new("x (11).png"));
    }

    #[test]
    fn another_photos_result_is_never_replaced_and_its_own_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wanted = dir.path().join("car-1.png");
        let a = Origin::of_file(Path::new("/photos/a/car-1.jpg"));
        let b = Origin::of_file(Path::new("/photos/b/car-1.jpg"));
        assert_ne!(a, b);
        assert_eq!(
            write(&Target::keeping_others(wanted.clone(), a.clone()), 10),
            wanted
        );
        let second = write(&Target::keeping_others(wanted.clone(), b.clone()), 20);
        assert_eq!(second, dir.path().join("car-1 (2).png"));
        assert_eq!((value_at(&wanted), value_at(&second)), (10, 20));
        assert_eq!(Origin::read_from(&second), Some(b.clone()));
        // Each photo exported again replaces its own earlier result, and only that.
        assert_eq!(
            write(&Target::keeping_others(wanted.clone(), b), 21),
            second
        );
        assert_eq!(
            write(&Target::keeping_others(wanted.clone(), a), 11),
            wanted
        );
        assert_eq!((value_at(&wanted), value_at(&second)), (11, 21));
    }

    #[test]
    fn a_file_of_unknown_origin_is_kept_unless_the_user_named_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wanted = dir.path().join("portrait.png");
        std::fs::write(&wanted, b"the user's own file").expect("write");
        let origin = Origin::of_bytes(b"pasted:", b"1");
        let written = write(&Target::keeping_others(wanted.clone(), origin.clone()), 5);
        assert_eq!(written, dir.path().join("portrait (2).png"));
        assert_eq!(
            std::fs::read(&wanted).expect("read"),
            b"the user's own file"
        );
        assert_eq!(
            write(&Target::exact(wanted.clone(), Some(origin)), 6),
            wanted
        );
        assert_eq!(value_at(&wanted), 6);
    }
}
