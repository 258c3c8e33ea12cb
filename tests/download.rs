//! The pinned model download, against a real HTTP server on 127.0.0.1 serving the shared model
//! file and a corrupted copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::Path, thread};

use cutout::engine::models::{self, Manifest, ModelError, ModelOrigin};

/// Serves `routes` (path → body) until dropped; returns the base URL.
struct Server {
    base: String,
    server: std::sync::Arc<tiny_http::Server>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(routes: Vec<(&'static str, Vec<u8>)>) -> Self {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let base = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let worker = server.clone();
        let handle = thread::spawn(move || {
            for request in worker.incoming_requests() {
                let body = routes
                    .iter()
                    .find(|(path, _)| *path == request.url())
                    .map(|(_, b)| b.clone());
                let _ = match body {
                    Some(bytes) => request.respond(tiny_http::Response::from_data(bytes)),
                    None => request.respond(tiny_http::Response::empty(404)),
                };
            }
        });
        Self {
            base,
            server,
            handle: Some(handle),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn spec_at(url: String) -> models::ModelSpec {
    let mut spec = Manifest::builtin()
        .expect("manifest")
        .get("u2netp")
        .expect("u2netp")
        .clone();
    spec.source = models::ModelSource::Url { url };
    spec
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn the_real_file_downloads_with_progress_and_checksum() {
    let real = std::fs::read(common::models_dir().join("u2netp.onnx")).expect("shared model");
    let server = Server::start(vec![("/u2netp.onnx", real.clone())]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("models/u2netp.onnx");
    let mut last = (0, None);
    let sha = models::fetch(
        &spec_at(format!("{}/u2netp.onnx", server.base)),
        &dest,
        &mut |_, done, total| {
            last = (done, total);
            std::ops::ControlFlow::Continue(())
        },
    )
    .expect("download succeeds");
    assert_eq!(
        sha,
        "c491fbd91b4e6bf7e32480732f93474a71ed09bccbb9127273a5de60a45fe588"
    );
    assert_eq!(std::fs::read(&dest).expect("written"), real);
    // Progress reaches the size; the total is known only when the server sends a length (this
    // test server sends large bodies chunked).
    assert_eq!(last.0, real.len() as u64, "progress reached the end");
    assert!(last.1.is_none_or(|t| t == real.len() as u64), "{last:?}");
    assert_eq!(
        files_in(&dir.path().join("models")),
        vec!["u2netp.onnx"],
        "no temporary file left"
    );
}

#[test]
fn a_corrupted_download_is_refused_and_nothing_is_kept() {
    let mut corrupt =
        std::fs::read(common::models_dir().join("u2netp.onnx")).expect("shared model");
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x01;
    let server = Server::start(vec![("/u2netp.onnx", corrupt)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("u2netp.onnx");
    let err = models::fetch(
        &spec_at(format!("{}/u2netp.onnx", server.base)),
        &dest,
        &mut models::no_progress(),
    )
    .expect_err("corrupt");
    assert!(matches!(err, ModelError::DownloadMismatch { .. }), "{err}");
    assert!(err.to_string().contains("nothing was kept"), "{err}");
    assert!(
        files_in(dir.path()).is_empty(),
        "left behind: {:?}",
        files_in(dir.path())
    );
}

#[test]
fn a_missing_file_and_an_offline_server_say_what_to_do() {
    let server = Server::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("u2netp.onnx");
    let err = models::fetch(
        &spec_at(format!("{}/u2netp.onnx", server.base)),
        &dest,
        &mut models::no_progress(),
    )
    .expect_err("404");
    assert!(err.to_string().contains("CUTOUT_MODELS_DIR"), "{err}");

    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let err = models::fetch(
        &spec_at(format!("http://127.0.0.1:{port}/u2netp.onnx")),
        &dest,
        &mut models::no_progress(),
    )
    .expect_err("offline");
    assert!(matches!(err, ModelError::Download { .. }), "{err}");
    assert!(err.to_string().contains("offline"), "{err}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn resolve_downloads_once_then_finds_the_file_and_refuses_a_tampered_one() {
    let real = std::fs::read(common::models_dir().join("u2netp.onnx")).expect("shared model");
    let server = Server::start(vec![("/m.onnx", real)]);
    let root = tempfile::tempdir().expect("tempdir");
    let models_dir = root.path().join("models");
    let search = [(models_dir.clone(), ModelOrigin::DataDir)];
    let spec = spec_at(format!("{}/m.onnx", server.base));
    let first = models::resolve_in(&spec, &search, &models_dir, &mut models::no_progress())
        .expect("download");
    assert_eq!(first.origin, ModelOrigin::Downloaded);
    let second =
        models::resolve_in(&spec, &search, &models_dir, &mut models::no_progress()).expect("found");
    assert_eq!(second.origin, ModelOrigin::DataDir);
    assert_eq!(second.path, models_dir.join("u2netp.onnx"));
    // Tampered with after download: refused, not silently replaced.
    std::fs::write(models_dir.join("u2netp.onnx"), b"tampered").expect("write");
    let err = models::resolve_in(&spec, &search, &models_dir, &mut models::no_progress())
        .expect_err("tampered");
    assert!(matches!(err, ModelError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(
        std::fs::read(models_dir.join("u2netp.onnx")).expect("kept"),
        b"tampered"
    );
}
