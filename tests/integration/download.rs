//! The pinned model download, against a real HTTP server on 127.0.0.1 serving the shared model
//! file and a corrupted copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{path::Path, thread};

use cutout::engine::fetch;
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
    let sha = fetch::fetch(
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
    let err = fetch::fetch(
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
    let err = fetch::fetch(
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
    let err = fetch::fetch(
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
    let first = fetch::resolve_in(&spec, &search, &models_dir, &mut models::no_progress())
        .expect("download");
    assert_eq!(first.origin, ModelOrigin::Downloaded);
    let second =
        fetch::resolve_in(&spec, &search, &models_dir, &mut models::no_progress()).expect("found");
    assert_eq!(second.origin, ModelOrigin::DataDir);
    assert_eq!(second.path, models_dir.join("u2netp.onnx"));
    // Tampered with after download: refused, not silently replaced.
    std::fs::write(models_dir.join("u2netp.onnx"), b"tampered").expect("write");
    let err = fetch::resolve_in(&spec, &search, &models_dir, &mut models::no_progress())
        .expect_err("tampered");
    assert!(matches!(err, ModelError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(
        std::fs::read(models_dir.join("u2netp.onnx")).expect("kept"),
        b"tampered"
    );
}

// ---- models that come inside an npm package, through the real npm client ---------------------

/// A package tarball in npm's layout (`package/dist/<sha256>` chunks and `resources.json`), with
/// chunk `damage` altered after its name was taken. Returns the spec of a model made of `chunks`.
fn npm_package(dir: &Path, chunks: &[&[u8]], damage: Option<usize>) -> models::ModelSpec {
    use sha2::Digest as _;
    let hex = |bytes: &[u8]| {
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let path = dir.join("cutout-test-model-1.0.0.tgz");
    let file = std::fs::File::create(&path).expect("create");
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let mut add = |name: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, format!("package/{name}"), bytes)
            .expect("append");
    };
    add(
        "package.json".to_owned(),
        br#"{"name":"cutout-test-model","version":"1.0.0"}"#,
    );
    let (mut listed, mut offset) = (Vec::new(), 0usize);
    for (i, chunk) in chunks.iter().enumerate() {
        let hash = hex(chunk);
        let mut bytes = chunk.to_vec();
        if damage == Some(i) {
            bytes[0] ^= 0xff;
        }
        add(format!("dist/{hash}"), &bytes);
        listed.push(serde_json::json!({"hash": hash, "offsets": [offset, offset + chunk.len()]}));
        offset += chunk.len();
    }
    let resources = serde_json::json!({"/models/test": {"chunks": listed, "size": offset}});
    add(
        "dist/resources.json".to_owned(),
        resources.to_string().as_bytes(),
    );
    archive
        .into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .sync_all()
        .expect("sync");
    let whole: Vec<u8> = chunks.concat();
    let mut spec = spec_at(String::new());
    spec.name = "test-model".to_owned();
    spec.file = "test-model.onnx".to_owned();
    spec.sha256 = vec![hex(&whole)];
    spec.source = models::ModelSource::Npm(models::NpmSource {
        // npm packs a local tarball as it would a registry package.
        npm: path.display().to_string(),
        integrity: cutout::engine::npm::integrity_of(&path).expect("integrity"),
        resource: "/models/test".to_owned(),
        package_bytes: std::fs::metadata(&path).expect("size").len(),
    });
    spec
}

#[test]
fn a_package_is_checked_chunk_by_chunk_and_joined_through_the_npm_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chunks: [&[u8]; 3] = [b"first chunk ", b"second chunk ", b"and the last"];
    let spec = npm_package(dir.path(), &chunks, None);
    let models_dir = dir.path().join("models");
    let mut stages = Vec::new();
    let sha = fetch::fetch(
        &spec,
        &models_dir.join(&spec.file),
        &mut |stage, done, total| {
            stages.push((stage, done, total));
            std::ops::ControlFlow::Continue(())
        },
    )
    .expect("fetched");
    assert_eq!(sha, spec.sha256[0]);
    assert_eq!(
        std::fs::read(models_dir.join(&spec.file)).expect("written"),
        chunks.concat()
    );
    assert!(
        stages
            .iter()
            .any(|(s, done, total)| *s == models::FetchStage::Verify && Some(*done) == *total),
        "{stages:?}"
    );
    assert_eq!(
        files_in(&models_dir),
        vec!["test-model.onnx"],
        "nothing else kept"
    );
}

#[test]
fn a_damaged_chunk_or_a_cancel_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chunks: [&[u8]; 3] = [b"first chunk ", b"second chunk ", b"and the last"];
    let spec = npm_package(dir.path(), &chunks, Some(1));
    let models_dir = dir.path().join("models");
    let dest = models_dir.join(&spec.file);
    let err = fetch::fetch(&spec, &dest, &mut models::no_progress()).expect_err("damaged");
    assert!(
        err.to_string().contains("is damaged") && err.to_string().contains("nothing was kept"),
        "{err}"
    );
    assert!(
        files_in(&models_dir).is_empty(),
        "{:?}",
        files_in(&models_dir)
    );

    let spec = npm_package(dir.path(), &chunks, None);
    let err = fetch::fetch(
        &spec,
        &dest,
        &mut |_, _, _| std::ops::ControlFlow::Break(()),
    )
    .expect_err("cancelled");
    assert!(matches!(err, ModelError::Cancelled { .. }), "{err}");
    assert!(
        files_in(&models_dir).is_empty(),
        "{:?}",
        files_in(&models_dir)
    );

    // A package that is not the pinned one is refused before it is opened.
    let mut spec = npm_package(dir.path(), &chunks, None);
    if let models::ModelSource::Npm(npm) = &mut spec.source {
        npm.integrity = "sha512-AAAA".to_owned();
    }
    let err = fetch::fetch(&spec, &dest, &mut models::no_progress()).expect_err("not pinned");
    assert!(err.to_string().contains("is not the pinned one"), "{err}");
    assert!(files_in(&models_dir).is_empty());
}

/// `cutout models fetch isnet` in a fresh data folder, with the environment changed.
fn fetch_isnet_with(env: &[(&str, &str)]) -> (std::process::Output, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cutout"));
    command
        .args(["models", "fetch", "isnet"])
        .env("CUTOUT_DATA_DIR", data.path())
        .env_remove("CUTOUT_MODELS_DIR");
    for (k, v) in env {
        command.env(k, v);
    }
    (command.output().expect("run cutout"), data)
}

#[test]
fn offline_or_without_npm_the_fetch_says_what_to_do_and_keeps_nothing() {
    // npm's own offline mode: nothing cached (cutout gives npm a fresh cache), no network.
    let (out, data) = fetch_isnet_with(&[("npm_config_offline", "true")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("npm pack @imgly/background-removal-data@1.4.5` failed")
            && stderr.contains("offline")
            && stderr.contains("put isnet-general-use-fp16.onnx (SHA-256 b6e8497b"),
        "{stderr}"
    );
    assert!(files_in(&data.path().join("models")).is_empty());

    let (out, data) = fetch_isnet_with(&[("CUTOUT_NPM", "/nonexistent/npm")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was not found. Install Node.js, which includes npm"),
        "{stderr}"
    );
    assert!(files_in(&data.path().join("models")).is_empty());
}

#[test]
fn the_cached_isnet_came_through_the_npm_client_and_is_genuine() {
    let model = common::isnet_model();
    assert_eq!(
        model.sha256,
        "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
    );
    assert_eq!(
        std::fs::metadata(&model.path).expect("file").len(),
        88_188_479
    );
    // Nothing of the fetch (tarball, npm cache, partial file) is left beside it.
    let dir = model.path.parent().expect("folder");
    let leftovers: Vec<_> = files_in(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
