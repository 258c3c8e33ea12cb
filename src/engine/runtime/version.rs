//! Which ONNX Runtime release a library is, for reports: from its build string where that names
//! the release branch (Linux builds), else from the version resource of a Windows DLL (whose
//! build string says only `git-branch=HEAD`), else from a file name such as
//! `libonnxruntime.so.1.31.1`.

use std::{
    fs,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

/// The release of the library at `path`, whose build string is `info`; `unknown (…)` with the
/// build string when nothing says.
pub fn of_library(path: &Path, info: &str) -> String {
    parse_build_version(info)
        .or_else(|| from_version_resource(path))
        .or_else(|| {
            fs::canonicalize(path)
                .ok()
                .as_deref()
                .and_then(version_from_file_name)
        })
        .unwrap_or_else(|| format!("unknown ({info})"))
}

/// Pulls the release version out of ONNX Runtime's build string
/// (`ORT Build Info: git-branch=rel-1.31.1, git-commit-id=…`).
pub fn parse_build_version(info: &str) -> Option<String> {
    let start = info.find("git-branch=rel-")? + "git-branch=rel-".len();
    let rest = &info[start..];
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// Reads `1.31.1` out of `libonnxruntime.so.1.31.1` or `libonnxruntime.1.31.1.dylib`.
pub fn version_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let parts: Vec<&str> = name.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts
        .windows(3)
        .find(|w| w.iter().all(|p| numeric(p)))
        .map(|w| w.join("."))
}

/// The file version (`major.minor.patch`) in a PE file's version resource: the
/// `VS_FIXEDFILEINFO` block in its `.rsrc` section. Only that section is read (under 100 KB of an
/// 18 MB DLL), so this costs nothing at start-up.
pub fn from_version_resource(path: &Path) -> Option<String> {
    let mut file = fs::File::open(path).ok()?;
    let mut head = vec![0u8; 4096];
    file.read_exact(&mut head).ok()?;
    let u16_at =
        |b: &[u8], at: usize| Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let u32_at =
        |b: &[u8], at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
    if head.get(..2)? != b"MZ" {
        return None;
    }
    let pe = usize::try_from(u32_at(&head, 0x3c)?).ok()?;
    if head.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let sections = usize::from(u16_at(&head, pe + 6)?);
    let table = pe + 24 + usize::from(u16_at(&head, pe + 20)?);
    let (offset, size) = (0..sections).find_map(|i| {
        let header = table + i * 40;
        (head.get(header..header + 8)? == b".rsrc\0\0\0")
            .then(|| Some((u32_at(&head, header + 20)?, u32_at(&head, header + 16)?)))?
    })?;
    let mut rsrc = vec![0u8; usize::try_from(size).ok()?.min(16 << 20)];
    file.seek(SeekFrom::Start(u64::from(offset))).ok()?;
    file.read_exact(&mut rsrc).ok()?;
    fixed_file_version(&rsrc)
}

/// `major.minor.patch` from the first `VS_FIXEDFILEINFO` (signature `0xFEEF04BD`) in `bytes`.
fn fixed_file_version(bytes: &[u8]) -> Option<String> {
    let at = bytes
        .windows(4)
        .position(|w| w == 0xFEEF_04BD_u32.to_le_bytes())?;
    let word = |i: usize| {
        bytes
            .get(at + i..at + i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let (ms, ls) = (word(8)?, word(12)?);
    Some(format!("{}.{}.{}", ms >> 16, ms & 0xffff, ls >> 16))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn build_version_is_read_from_the_build_string() {
        let info = "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release";
        assert_eq!(parse_build_version(info).as_deref(), Some("1.31.1"));
        assert_eq!(
            parse_build_version("ORT Build Info: git-branch=HEAD, git-commit-id=6af1a93"),
            None
        );
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so.1.31.1")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(
            version_from_file_name(Path::new("libonnxruntime.1.31.1.dylib")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(version_from_file_name(Path::new("onnxruntime.dll")), None);
    }

    #[test]
    fn the_fixed_file_version_is_read_from_resource_bytes() {
        // VS_FIXEDFILEINFO: signature, struct version, file version MS/LS, product version MS/LS.
        let mut bytes = vec![0u8; 7];
        for word in [
            0xFEEF_04BD_u32,
            0x1_0000,
            (1 << 16) | 31,
            (1 << 16) | 1023,
            0,
            0,
        ] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        assert_eq!(fixed_file_version(&bytes).as_deref(), Some("1.31.1"));
        assert_eq!(fixed_file_version(&[0u8; 64]), None);
    }
}
