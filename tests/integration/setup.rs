//! `cutout setup` when the download goes wrong, against a local PEP 691 index (`CUTOUT_INDEX_URL`)
//! that serves the real onnxruntime wheel (fetched once from PyPI by cutout's own client) over
//! a plain HTTP server written here, so that it can cut a download off mid-way or corrupt a byte:
//! - a connection closed half-way fails the set-up with a message, installs nothing, leaves no
//!   staging folder, and keeps the bytes that arrived as a `.part`; the next `cutout setup` asks
//!   for the rest only (an HTTP range request) and installs;
//! - a wheel whose SHA-256 is not the index's is refused and nothing of it is kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Arc, Mutex},
};

use cutout::engine::runtime::{ORT_VERSION, pypi};

/// How the server sends the wheel.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    /// Half of it, then the connection closes.
    CutOff,
    /// All of it, or the part a range request asks for.
    Whole,
    /// All of it with one byte changed.
    Corrupt,
}

struct Index {
    url: String,
    mode: Arc<Mutex<Serve>>,
    /// `GET path [range]` per request.
    requests: Arc<Mutex<Vec<String>>>,
    wheel_len: usize,
}

/// The real onnxruntime wheel for this platform, downloaded once per test run.
fn real_wheel() -> (pypi::Wheel, Vec<u8>) {
    static WHEEL: std::sync::OnceLock<(pypi::Wheel, Vec<u8>)> = std::sync::OnceLock::new();
    WHEEL.get_or_init(download_real_wheel).clone()
}

fn download_real_wheel() -> (pypi::Wheel, Vec<u8>) {
    let requirement = pypi::Requirement::parse(&format!("onnxruntime=={ORT_VERSION}")).unwrap();
    let platform = pypi::Platform::current().expect("a platform ONNX Runtime publishes for");
    let wheel = pypi::find(&pypi::index_url(), &requirement, platform).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("setup-wheels");
    let path = pypi::download(
        &wheel,
        &dir,
        &mut |_, _| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    (wheel, std::fs::read(path).unwrap())
}

fn serve() -> Index {
    let (wheel, bytes) = real_wheel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(Serve::CutOff));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let page = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "onnxruntime",
        "files": [{
            "filename": wheel.file_name,
            "url": format!("{base}/files/{}", wheel.file_name),
            "hashes": {"sha256": wheel.sha256},
            "size": bytes.len(),
        }],
    })
    .to_string();
    let (thread_mode, log) = (Arc::clone(&mode), Arc::clone(&requests));
    let wheel_len = bytes.len();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut range_from = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("range: bytes=") {
                    range_from = value.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            log.lock()
                .unwrap()
                .push(format!("GET {path} {range_from:?}"));
            let mode = *thread_mode.lock().unwrap();
            let respond = |stream: &mut std::net::TcpStream, status: &str, body: &[u8], len| {
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            };
            if path == "/simple/onnxruntime/" {
                respond(&mut stream, "200 OK", page.as_bytes(), page.len());
            } else if path.starts_with("/files/") {
                match (mode, range_from) {
                    (Serve::CutOff, _) => {
                        respond(
                            &mut stream,
                            "200 OK",
                            &bytes[..bytes.len() / 2],
                            bytes.len(),
                        );
                    }
                    (Serve::Whole, Some(from)) => {
                        let rest = &bytes[from..];
                        respond(&mut stream, "206 Partial Content", rest, rest.len());
                    }
                    (Serve::Whole, None) => respond(&mut stream, "200 OK", &bytes, bytes.len()),
                    (Serve::Corrupt, _) => {
                        let mut changed = bytes.clone();
                        changed[1000] ^= 0xff;
                        respond(&mut stream, "200 OK", &changed, changed.len());
                    }
                }
            } else {
                respond(&mut stream, "404 Not Found", b"", 0);
            }
        }
    });
    Index {
        url: format!("{base}/simple/"),
        mode,
        requests,
        wheel_len,
    }
}

fn setup(index: &Index, root: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["setup", "--cpu"])
        .env("CUTOUT_INDEX_URL", &index.url)
        .env("CUTOUT_DATA_DIR", root.join("data"))
        .env("CUTOUT_CACHE_DIR", root.join("cache"))
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map_or_else(|_| Vec::new(), |d| d.map(|e| e.unwrap().path()).collect())
}

#[test]
fn a_cut_off_download_installs_nothing_and_the_next_setup_resumes_it() {
    let index = serve();
    let root = tempfile::tempdir().unwrap();
    let runtime = root.path().join("data/runtime");
    let downloads = root.path().join("cache/downloads");

    let first = setup(&index, root.path());
    let said = text(&first);
    assert_eq!(first.status.code(), Some(2), "{said}");
    assert!(said.contains("cannot download"), "{said}");
    assert!(
        entries(&runtime).is_empty(),
        "nothing installed, no staging folder left: {:?}",
        entries(&runtime)
    );
    let parts = entries(&downloads);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(parts[0].to_string_lossy().ends_with(".whl.part"));
    let kept = std::fs::metadata(&parts[0]).unwrap().len();
    assert_eq!(
        kept as usize,
        index.wheel_len / 2,
        "the bytes that arrived are kept"
    );

    *index.mode.lock().unwrap() = Serve::Whole;
    let second = setup(&index, root.path());
    assert!(second.status.success(), "{}", text(&second));
    let last = index
        .requests
        .lock()
        .unwrap()
        .iter()
        .rfind(|r| r.starts_with("GET /files/"))
        .cloned()
        .unwrap();
    assert!(
        last.ends_with(&format!("Some({kept})")),
        "the second set-up asked only for the rest: {last}"
    );
    let library = runtime
        .join(format!("cpu-{ORT_VERSION}"))
        .join(cutout::engine::runtime::core_library_name());
    assert!(library.is_file(), "installed: {}", text(&second));
    assert!(
        entries(&downloads).is_empty(),
        "the wheel is deleted once kept"
    );
}

#[test]
fn a_wheel_that_does_not_match_the_index_is_refused_and_not_kept() {
    let index = serve();
    *index.mode.lock().unwrap() = Serve::Corrupt;
    let root = tempfile::tempdir().unwrap();
    let out = setup(&index, root.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("arrived with SHA-256"), "{said}");
    assert!(entries(&root.path().join("data/runtime")).is_empty());
    assert!(entries(&root.path().join("cache/downloads")).is_empty());
}
