//! Wheels from PyPI without Python: the JSON simple API (PEP 691) names every file of a project
//! with its SHA-256; cutout picks the newest release that satisfies a requirement and has a wheel
//! for this platform, and downloads it with the hash checked while the bytes arrive.
//!
//! Downloads resume: the bytes of an interrupted download stay in `<file>.part` in the download
//! folder and the next attempt asks the server for the rest (an HTTP range request). A file
//! appears under its own name only once complete and verified. Proxies are taken from
//! `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` (by `ureq`); another index that speaks
//! PEP 691 can be named with `CUTOUT_INDEX_URL`.

use std::{
    cmp::Ordering,
    fs,
    io::{Read, Write},
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::RuntimeError;

/// The index `cutout setup` asks unless `CUTOUT_INDEX_URL` names another.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple/";

/// Bytes so far and the total when known; `Break` cancels the download (its part file is kept).
pub type ByteProgress<'a> = &'a mut dyn FnMut(u64, Option<u64>) -> ControlFlow<()>;

/// A release number: `13.0.96` as `[13, 0, 96]`. Pre-, post- and development releases are not
/// represented (cutout never picks them).
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

impl Version {
    /// Parses a final release (`1.31.1`); `None` for `9.28.0.42.dev7`, `13.7.0.10rc1` and others.
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Option<Vec<u64>> = text.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty()).map(Self)
    }

    fn segment(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| self.segment(i).cmp(&other.segment(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One clause of a version specifier (PEP 440), the forms wheel metadata uses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Clause {
    Exact(Version),
    Compatible(Version),
    AtLeast(Version),
    Above(Version),
    Below(Version),
    AtMost(Version),
    Not(Version),
}

impl Clause {
    fn allows(&self, v: &Version) -> bool {
        match self {
            Self::Exact(x) => v == x,
            Self::Not(x) => v != x,
            Self::AtLeast(x) => v >= x,
            Self::Above(x) => v > x,
            Self::Below(x) => v < x,
            Self::AtMost(x) => v <= x,
            // `~=13.0` is `>=13.0, ==13.*`; `~=9.1.2` is `>=9.1.2, ==9.1.*`.
            Self::Compatible(x) => {
                let fixed = x.0.len().saturating_sub(1).max(1);
                v >= x && (0..fixed).all(|i| v.segment(i) == x.segment(i))
            }
        }
    }
}

/// A requirement: a project name and the versions it accepts (`nvidia-cudnn-cu13~=9.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The project's normalised name (PEP 503: lower case, runs of `-_.` as `-`).
    pub name: String,
    clauses: Vec<Clause>,
}

impl Requirement {
    /// Parses `name`, `name==1.2`, `name~=13.0` or `name>=1,<2`.
    pub fn parse(text: &str) -> Result<Self, RuntimeError> {
        let bad = || RuntimeError::Setup(format!("cannot read the requirement `{text}`"));
        let text = text.trim();
        let split = text.find(['=', '~', '>', '<', '!']).unwrap_or(text.len());
        let (name, specs) = text.split_at(split);
        if name.is_empty() {
            return Err(bad());
        }
        let mut clauses = Vec::new();
        for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let op_len = spec.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
            let version = Version::parse(spec[op_len..].trim()).ok_or_else(bad)?;
            clauses.push(match spec[..op_len].trim() {
                "==" => Clause::Exact(version),
                "~=" => Clause::Compatible(version),
                ">=" => Clause::AtLeast(version),
                ">" => Clause::Above(version),
                "<" => Clause::Below(version),
                "<=" => Clause::AtMost(version),
                "!=" => Clause::Not(version),
                _ => return Err(bad()),
            });
        }
        Ok(Self {
            name: normalise(name),
            clauses,
        })
    }

    /// Whether `version` satisfies every clause.
    pub fn allows(&self, version: &Version) -> bool {
        self.clauses.iter().all(|c| c.allows(version))
    }
}

/// PEP 503's normalised project name.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The platforms ONNX Runtime publishes wheels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// `manylinux…_x86_64`.
    LinuxX64,
    /// `manylinux…_aarch64`.
    LinuxArm64,
    /// `win_amd64`.
    WindowsX64,
    /// `win_arm64`.
    WindowsArm64,
    /// `macosx_…_arm64` (or `universal2`).
    MacArm64,
}

impl Platform {
    /// The platform this program was built for, if ONNX Runtime has wheels for it.
    pub fn current() -> Option<Self> {
        match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => Some(Self::LinuxX64),
            ("linux", "aarch64") => Some(Self::LinuxArm64),
            ("windows", "x86_64") => Some(Self::WindowsX64),
            ("windows", "aarch64") => Some(Self::WindowsArm64),
            ("macos", "aarch64") => Some(Self::MacArm64),
            _ => None,
        }
    }

    /// Its name in messages (`win_amd64`).
    pub fn label(self) -> &'static str {
        match self {
            Self::LinuxX64 => "manylinux x86_64",
            Self::LinuxArm64 => "manylinux aarch64",
            Self::WindowsX64 => "win_amd64",
            Self::WindowsArm64 => "win_arm64",
            Self::MacArm64 => "macOS arm64",
        }
    }

    /// Whether a wheel's platform tag (one of its `.`-separated tags) runs here.
    fn accepts(self, tag: &str) -> bool {
        match self {
            Self::LinuxX64 => tag.starts_with("manylinux") && tag.ends_with("_x86_64"),
            Self::LinuxArm64 => tag.starts_with("manylinux") && tag.ends_with("_aarch64"),
            Self::WindowsX64 => tag == "win_amd64",
            Self::WindowsArm64 => tag == "win_arm64",
            Self::MacArm64 => {
                tag.starts_with("macosx_")
                    && (tag.ends_with("_arm64") || tag.ends_with("_universal2"))
            }
        }
    }
}

/// A wheel file the index offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    /// `onnxruntime-1.31.1-cp311-cp311-win_amd64.whl`.
    pub file_name: String,
    /// Where to download it.
    pub url: String,
    /// Its SHA-256 as the index lists it (lower-case hex).
    pub sha256: String,
    /// Its size in bytes, when the index says.
    pub size: Option<u64>,
    /// Its release.
    pub version: String,
}

/// How well a wheel's interpreter tags suit cutout (which only keeps its native libraries):
/// Python-independent wheels first, then the oldest CPython (the build most tested), never a
/// free-threaded one. `None`: not usable.
fn interpreter_rank(python: &str, abi: &str) -> Option<u32> {
    let free_threaded = abi
        .split('.')
        .any(|a| a.starts_with("cp") && a.ends_with('t'));
    if free_threaded {
        return None;
    }
    python
        .split('.')
        .filter_map(|tag| match tag {
            "py3" | "py2" => Some(0),
            cp => cp
                .strip_prefix("cp3")
                .and_then(|minor| minor.parse::<u32>().ok())
                .map(|minor| 1 + minor),
        })
        .min()
}

/// The newest final release allowed by `req` with a wheel for `platform`, from a PEP 691 JSON
/// project page.
pub fn choose(page: &serde_json::Value, req: &Requirement, platform: Platform) -> Option<Wheel> {
    let files = page.get("files")?.as_array()?;
    let mut best: Option<(Version, u32, Wheel)> = None;
    for file in files {
        let name = file.get("filename").and_then(|v| v.as_str()).unwrap_or("");
        let Some(stem) = name.strip_suffix(".whl") else {
            continue;
        };
        let yanked = file
            .get("yanked")
            .is_some_and(|y| y.as_bool() != Some(false));
        let parts: Vec<&str> = stem.split('-').collect();
        let (Some(version_text), [python, abi, plat]) =
            (parts.get(1), &parts[parts.len().saturating_sub(3)..])
        else {
            continue;
        };
        let (Some(version), Some(rank)) =
            (Version::parse(version_text), interpreter_rank(python, abi))
        else {
            continue;
        };
        let sha256 = file
            .get("hashes")
            .and_then(|h| h.get("sha256"))
            .and_then(|h| h.as_str());
        let url = file.get("url").and_then(|u| u.as_str());
        let (Some(sha256), Some(url)) = (sha256, url) else {
            continue;
        };
        if yanked || parts.len() < 5 || !req.allows(&version) {
            continue;
        }
        if !plat.split('.').any(|tag| platform.accepts(tag)) {
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|(v, r, _)| version.cmp(v).then(r.cmp(&rank)) == Ordering::Greater);
        if better {
            let wheel = Wheel {
                file_name: name.to_owned(),
                url: url.to_owned(),
                sha256: sha256.to_ascii_lowercase(),
                size: file.get("size").and_then(serde_json::Value::as_u64),
                version: (*version_text).to_owned(),
            };
            best = Some((version, rank, wheel));
        }
    }
    best.map(|(_, _, wheel)| wheel)
}

/// The index's base URL: `CUTOUT_INDEX_URL` or PyPI.
pub fn index_url() -> String {
    let url = std::env::var("CUTOUT_INDEX_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_INDEX.to_owned());
    if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    }
}

/// Asks the index for `req`'s project and picks its wheel for `platform`.
pub fn find(index: &str, req: &Requirement, platform: Platform) -> Result<Wheel, RuntimeError> {
    let url = format!("{index}{}/", req.name);
    let unreachable = |e: &dyn std::fmt::Display| {
        RuntimeError::Setup(format!(
            "cannot read {url} ({e}); check that this machine reaches the index (set HTTPS_PROXY \
             if it goes through a proxy), or set ORT_DYLIB_PATH to an ONNX Runtime you already have"
        ))
    };
    let mut response = crate::engine::http::agent()
        .get(&url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| unreachable(&e))?;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| unreachable(&e))?;
    let page: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| unreachable(&e))?;
    let mut wheel = choose(&page, req, platform).ok_or_else(|| {
        RuntimeError::Setup(format!(
            "{url} has no wheel of {} for {}",
            describe(req),
            platform.label()
        ))
    })?;
    if !wheel.url.contains("://") {
        wheel.url = format!("{url}{}", wheel.url);
    }
    Ok(wheel)
}

fn describe(req: &Requirement) -> String {
    if req.clauses.is_empty() {
        req.name.clone()
    } else {
        format!("{} in the versions asked for", req.name)
    }
}

/// Downloads `wheel` into `dir` (resuming a `.part` left by an earlier attempt) and checks its
/// SHA-256. Returns the file; a wheel already there and intact is not downloaded again.
pub fn download(
    wheel: &Wheel,
    dir: &Path,
    progress: ByteProgress<'_>,
) -> Result<PathBuf, RuntimeError> {
    let io = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        RuntimeError::Setup(format!("{what} {}: {e}", path.display()))
    };
    fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, &e))?;
    let done_path = dir.join(&wheel.file_name);
    if done_path.is_file() && sha256_of(&done_path).is_ok_and(|h| h == wheel.sha256) {
        let size = fs::metadata(&done_path).map(|m| m.len()).unwrap_or(0);
        let _ = progress(size, Some(size));
        return Ok(done_path);
    }
    let part_path = dir.join(format!("{}.part", wheel.file_name));
    let mut hasher = Sha256::new();
    let mut have = 0u64;
    if let Ok(mut part) = fs::File::open(&part_path) {
        have = copy_into_hasher(&mut part, &mut hasher).unwrap_or(0);
        if wheel.size.is_some_and(|size| have >= size) {
            have = 0;
        }
    }
    let request = crate::engine::http::agent().get(&wheel.url);
    let request = if have > 0 {
        request.header("Range", format!("bytes={have}-"))
    } else {
        request
    };
    let fail = |e: &dyn std::fmt::Display| {
        RuntimeError::Setup(format!("cannot download {} ({e})", wheel.url))
    };
    let mut response = request.call().map_err(|e| fail(&e))?;
    if have > 0 && response.status() != 206 {
        // The server sent the whole file: start over.
        have = 0;
        hasher = Sha256::new();
    }
    let mut part = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(have > 0)
        .truncate(have == 0)
        .open(&part_path)
        .map_err(|e| io("cannot write", &part_path, &e))?;
    let total = wheel
        .size
        .or_else(|| response.body().content_length().map(|rest| rest + have));
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = have;
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(&e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        part.write_all(&buf[..n])
            .map_err(|e| io("cannot write", &part_path, &e))?;
        done += n as u64;
        if progress(done, total).is_break() {
            return Err(RuntimeError::Cancelled);
        }
    }
    part.sync_all()
        .map_err(|e| io("cannot write", &part_path, &e))?;
    drop(part);
    if let Some(total) = total.filter(|&t| done < t) {
        // Kept as it is: the next attempt asks for the rest.
        return Err(fail(&format!(
            "the connection closed after {done} of {total} bytes; run `cutout setup` again to \
             resume"
        )));
    }
    let found = super::super::models::hex(&hasher.finalize());
    if found != wheel.sha256 {
        let _ = fs::remove_file(&part_path);
        return Err(RuntimeError::Setup(format!(
            "{} arrived with SHA-256 {found}, but the index lists {}; nothing was kept, run \
             `cutout setup` again",
            wheel.file_name, wheel.sha256
        )));
    }
    fs::rename(&part_path, &done_path).map_err(|e| io("cannot move into place", &done_path, &e))?;
    Ok(done_path)
}

fn copy_into_hasher(reader: &mut impl Read, hasher: &mut Sha256) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    copy_into_hasher(&mut fs::File::open(path)?, &mut hasher)?;
    Ok(super::super::models::hex(&hasher.finalize()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn specifiers_follow_pep_440() {
        let cudnn = Requirement::parse("nvidia-cudnn-cu13~=9.0").unwrap();
        assert_eq!(cudnn.name, "nvidia-cudnn-cu13");
        assert!(cudnn.allows(&v("9.28.1.4")));
        assert!(cudnn.allows(&v("9.0")));
        assert!(!cudnn.allows(&v("10.0.0")));
        assert!(!cudnn.allows(&v("8.9.7")));
        let patch = Requirement::parse("x~=9.1.2").unwrap();
        assert!(patch.allows(&v("9.1.7")) && !patch.allows(&v("9.2.0")));
        let pinned = Requirement::parse("onnxruntime_GPU==1.31.1").unwrap();
        assert_eq!(pinned.name, "onnxruntime-gpu");
        assert!(pinned.allows(&v("1.31.1")) && !pinned.allows(&v("1.31.0")));
        let range = Requirement::parse("a >=1.2, <2").unwrap();
        assert!(range.allows(&v("1.10")) && !range.allows(&v("2.0")) && !range.allows(&v("1.1")));
        assert!(Requirement::parse("==1").is_err());
        assert!(Requirement::parse("a=>1").is_err());
        assert!(Version::parse("9.28.0.42.dev76646929").is_none());
        assert!(v("13.10.0.20") > v("13.8.2.12"));
        assert_eq!(v("1.0"), v("1.0.0"));
    }

    fn page(files: &[(&str, bool)]) -> serde_json::Value {
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|(name, yanked)| {
                serde_json::json!({
                    "filename": name,
                    "url": format!("https://files.example/{name}"),
                    "hashes": {"sha256": "AB"},
                    "size": 10,
                    "yanked": yanked,
                })
            })
            .collect();
        serde_json::json!({ "files": files })
    }

    #[test]
    fn the_newest_release_with_a_wheel_for_the_platform_is_chosen() {
        let page = page(&[
            ("nvidia_cublas-13.10.0.20-py3-none-win_amd64.whl", false),
            (
                "nvidia_cublas-13.8.2.12-py3-none-manylinux_2_27_x86_64.whl",
                false,
            ),
            (
                "nvidia_cublas-13.9.0.1-py3-none-manylinux_2_27_x86_64.whl",
                true,
            ),
            (
                "nvidia_cublas-13.7.0.10rc1-py3-none-manylinux_2_27_x86_64.whl",
                false,
            ),
            (
                "nvidia_cublas-14.0.0.1-py3-none-manylinux_2_27_x86_64.whl",
                false,
            ),
            ("nvidia_cublas-13.0.0.1.tar.gz", false),
        ]);
        let req = Requirement::parse("nvidia-cublas~=13.0").unwrap();
        let linux = choose(&page, &req, Platform::LinuxX64).unwrap();
        assert_eq!(linux.version, "13.8.2.12");
        assert_eq!(linux.sha256, "ab");
        assert_eq!(linux.size, Some(10));
        let windows = choose(&page, &req, Platform::WindowsX64).unwrap();
        assert_eq!(windows.version, "13.10.0.20");
        assert!(choose(&page, &req, Platform::MacArm64).is_none());
    }

    #[test]
    fn the_oldest_cpython_build_is_chosen_and_free_threaded_ones_never() {
        let page = page(&[
            (
                "onnxruntime-1.31.1-cp314-cp314t-manylinux_2_28_x86_64.whl",
                false,
            ),
            (
                "onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl",
                false,
            ),
            (
                "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
                false,
            ),
            (
                "onnxruntime-1.31.1-cp311-cp311-macosx_14_0_arm64.whl",
                false,
            ),
            (
                "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_aarch64.whl",
                false,
            ),
        ]);
        let req = Requirement::parse("onnxruntime==1.31.1").unwrap();
        let wheel = choose(&page, &req, Platform::LinuxX64).unwrap();
        assert_eq!(
            wheel.file_name,
            "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"
        );
        assert!(choose(&page, &req, Platform::MacArm64).is_some());
        assert!(choose(&page, &req, Platform::WindowsX64).is_none());
    }
}
