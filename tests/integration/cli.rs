//! The `cutout` binary on real and broken files: one clear line per failure, a non-zero exit, no
//! output file, the rest of a batch still processed, and honest provider reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn cutout(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(args)
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .env_remove("CUTOUT_LOG")
        .output()
        .expect("run cutout")
}

fn run(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    cutout(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_owned)
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn photo() -> PathBuf {
    common::shared_dir().join("testdata/rembg/fixtures/car-1.jpg")
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A valid PNG header declaring 100 000 × 100 000 pixels (a decompression bomb's calling card).
fn huge_png() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// Every kind of bad input: named file and its bytes.
fn bad_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let png = encoded(image::ImageFormat::Png);
    let jpeg = encoded(image::ImageFormat::Jpeg);
    let mut corrupt_png = png.clone();
    for b in &mut corrupt_png[60..90] {
        *b ^= 0x5a;
    }
    let mut corrupt_jpeg = jpeg.clone();
    let n = corrupt_jpeg.len();
    corrupt_jpeg[n - 50] = 0xFF;
    corrupt_jpeg[n - 49] = 0x12;
    vec![
        ("zero-byte.jpg", Vec::new()),
        (
            "not-an-image.jpg",
            b"Dear diary, today I was not a photo.\n".to_vec(),
        ),
        ("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("corrupt.png", corrupt_png),
        ("corrupt.jpg", corrupt_jpeg),
        ("huge-declared.png", huge_png()),
    ]
}

#[test]
fn every_bad_input_gets_one_reason_a_failing_exit_and_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in bad_inputs() {
        let input = dir.path().join(name);
        std::fs::write(&input, &bytes).expect("write input");
        let out_dir = dir.path().join(format!("out-{name}"));
        std::fs::create_dir(&out_dir).expect("mkdir");
        let output = out_dir.join("result.png");
        let result = run(&[
            "remove",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ]);
        let err = stderr(&result);
        assert!(!result.status.success(), "{name}: must fail\n{err}");
        assert!(!err.contains("panicked"), "{name}: panicked\n{err}");
        let lines = error_lines(&result);
        assert_eq!(
            lines.len(),
            1,
            "{name}: exactly one error line expected\n{err}"
        );
        assert!(
            lines[0].contains(name),
            "{name}: the message names the file: {}",
            lines[0]
        );
        assert!(
            files_in(&out_dir).is_empty(),
            "{name}: nothing may be written, found {:?}",
            files_in(&out_dir)
        );
        println!("{name:<20} {}", lines[0]);
    }
}

#[test]
fn the_reasons_say_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expectations = [
        ("zero-byte.jpg", "empty"),
        ("not-an-image.jpg", "not a supported image"),
        ("truncated.jpg", "truncated"),
        ("huge-declared.png", "too large (100000×100000 px"),
    ];
    let inputs = bad_inputs();
    for (name, needle) in expectations {
        let bytes = &inputs
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known input")
            .1;
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).expect("write");
        let result = run(&[
            "remove",
            input.to_str().unwrap(),
            "-o",
            dir.path().join("x.png").to_str().unwrap(),
        ]);
        assert!(
            stderr(&result).contains(needle),
            "{name}: expected `{needle}` in\n{}",
            stderr(&result)
        );
    }
}

#[test]
fn an_unwritable_destination_is_reported_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/folder/out.png");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let lines = error_lines(&result);
    assert_eq!(lines.len(), 1, "{}", stderr(&result));
    assert!(
        lines[0].contains("cannot write the output") && lines[0].contains("out.png"),
        "{}",
        lines[0]
    );
    assert!(!missing.exists());

    // A destination whose "folder" is a file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        file.join("out.png").to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    assert_eq!(error_lines(&result).len(), 1, "{}", stderr(&result));
    assert_eq!(files_in(dir.path()), vec!["plain-file"]);
}

#[test]
fn a_bad_file_in_a_batch_is_skipped_and_the_rest_are_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    std::fs::copy(photo(), inputs.join("a-car.jpg")).expect("copy");
    std::fs::write(inputs.join("b-broken.jpg"), b"\xFF\xD8\xFF\xE0 not really").expect("write");
    std::fs::copy(
        common::shared_dir().join("testdata/rembg/fixtures/cloth-1.jpg"),
        inputs.join("c-cloth.jpg"),
    )
    .expect("copy");
    let out = dir.path().join("out");
    let result = run(&[
        "remove",
        inputs.to_str().unwrap(),
        "-o",
        &format!("{}/", out.display()),
    ]);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert_eq!(error_lines(&result).len(), 1, "{err}");
    assert!(err.contains("2 done, 1 failed"), "{err}");
    assert_eq!(files_in(&out), vec!["a-car.png", "c-cloth.png"]);
    let cutout = image::open(out.join("a-car.png"))
        .expect("readable PNG")
        .into_rgba8();
    assert_eq!(cutout.dimensions(), (480, 360), "original resolution kept");
    // Transparent corners, opaque car, and the photo's own colours in the opaque part (foreground
    // colour estimation moves nearly opaque pixels by a level or two, fully opaque ones not at all).
    assert!(cutout.get_pixel(2, 2).0[3] < 30);
    assert!(cutout.get_pixel(240, 200).0[3] > 225);
    let source = image::open(photo()).expect("photo").into_rgb8();
    let (ours, theirs) = (cutout.get_pixel(240, 200).0, source.get_pixel(240, 200).0);
    assert!(
        (0..3).all(|c| ours[c].abs_diff(theirs[c]) <= 2),
        "{ours:?} vs {theirs:?}"
    );
    let opaque: Vec<u8> = cutout
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[3] == 255)
        .flat_map(|(x, y, p)| {
            let s = source.get_pixel(x, y).0;
            [0, 1, 2].map(|c| p.0[c].abs_diff(s[c]))
        })
        .collect();
    let worst = opaque.iter().max().copied().unwrap_or(0);
    assert!(
        opaque.len() > 300 && worst <= 2,
        "{} values, worst {worst}",
        opaque.len()
    );
}

#[test]
fn mask_only_and_background_colour_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mask = dir.path().join("mask.png");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        mask.to_str().unwrap(),
        "--mask-only",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let mask_img = image::open(&mask).expect("mask");
    assert_eq!(mask_img.color(), image::ColorType::L8);

    let white = dir.path().join("white.png");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        white.to_str().unwrap(),
        "--bg",
        "#ffffff",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let white_img = image::open(&white).expect("composite").into_rgb8();
    assert_eq!(
        white_img.get_pixel(1, 1).0,
        [255, 255, 255],
        "background replaced by white"
    );

    let result = run(&["remove", photo().to_str().unwrap(), "--bg", "white"]);
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("#RRGGBB"), "{}", stderr(&result));
}

#[test]
fn auto_says_the_cpu_ran_and_why_not_the_gpu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        dir.path().join("o.png").to_str().unwrap(),
        "--ep",
        "auto",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    // One short line: what runs and, in a few words, why nothing faster.
    let line = err
        .lines()
        .find(|l| l.starts_with("u2netp · "))
        .expect("a line saying what runs");
    assert!(line.contains("CPU provider, FP32"), "{line}");
    assert!(line.contains("`cutout doctor` lists the options"), "{line}");
    assert!(line.chars().count() < 160, "short: {line}");
    if !cutout::engine::runtime::cuda_context::driver_present() {
        // No NVIDIA driver, and no GPU for WebGPU either (or only a software renderer).
        assert!(
            line.contains("no GPU found") || line.contains("no NVIDIA GPU found"),
            "{line}"
        );
    }
    // With -v, every faster provider and why it was not used.
    let verbose = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        dir.path().join("o.png").to_str().unwrap(),
        "--ep",
        "auto",
        "-v",
    ]);
    let err = stderr(&verbose);
    let line = err
        .lines()
        .find(|l| l.starts_with("u2netp · "))
        .expect("a line saying what runs");
    assert!(
        line.contains("TensorRT-RTX:") && line.contains("TensorRT:") && line.contains("CUDA:"),
        "the faster providers and why they were not used: {line}"
    );
}

/// Item 9 of issue 33: one line per photo written (nothing with -q), `-` for standard input and
/// output, and rembg's `cutout i IN OUT`. Before, one photo printed nothing on success, `-` was
/// "cannot read the file", and `cutout i` tried to open a window.
#[test]
fn one_line_per_photo_quiet_stdin_stdout_and_rembg_i() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("car-1.jpg");
    std::fs::copy(photo(), &input).unwrap();
    let result = run(&["remove", input.to_str().unwrap()]);
    assert!(result.status.success(), "{}", stderr(&result));
    let written = dir.path().join("car-1.cutout.png");
    let line = format!("{} → {}", input.display(), written.display());
    assert!(
        stderr(&result).lines().any(|l| l == line),
        "{}",
        stderr(&result)
    );
    let quiet = run(&["remove", "-q", input.to_str().unwrap()]);
    assert!(quiet.status.success());
    assert_eq!(stderr(&quiet), "", "nothing but errors with -q");
    let reference = std::fs::read(&written).unwrap();

    // Standard input to standard output.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["remove", "-q", "-"])
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&std::fs::read(photo()).unwrap()).unwrap();
    }
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    let from_pipe = image::load_from_memory(&piped.stdout).unwrap().to_rgba8();
    assert_eq!(
        from_pipe,
        image::load_from_memory(&reference).unwrap().to_rgba8(),
        "the same cutout through pipes"
    );
    // A file to standard output, and the `-` rule's limits.
    let to_stdout = run(&["remove", "-q", input.to_str().unwrap(), "-o", "-"]);
    assert!(to_stdout.status.success());
    assert!(to_stdout.stdout.starts_with(b"\x89PNG"));
    let two = run(&["remove", "-", input.to_str().unwrap()]);
    assert!(!two.status.success());
    assert!(
        stderr(&two).contains("works with exactly one photo"),
        "{}",
        stderr(&two)
    );

    // rembg's habit: `i IN OUT`.
    let out = dir.path().join("by-i.png");
    let rembg_way = run(&["i", input.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(rembg_way.status.success(), "{}", stderr(&rembg_way));
    assert_eq!(
        image::open(&out).unwrap().to_rgba8(),
        image::load_from_memory(&reference).unwrap().to_rgba8()
    );
}

/// Item 1 of issue 33 on the command line: a second photo of the same name into the same
/// folder gets `NAME (2).png` and leaves the first one's cutout alone (before: within one run
/// `car-1.jpg.png`, and across runs the first was replaced); each photo run again replaces
/// only its own result.
#[test]
fn a_folder_output_never_replaces_another_photos_cutout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, out) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("out"),
    );
    for d in [&a, &b, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(photo(), a.join("car-1.jpg")).unwrap();
    std::fs::copy(
        common::shared_dir().join("testdata/rembg/fixtures/plants-1.jpg"),
        b.join("car-1.jpg"),
    )
    .unwrap();
    let into_out = |input: &Path| {
        let result = run(&[
            "remove",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(result.status.success(), "{}", stderr(&result));
        stderr(&result)
    };
    into_out(&a.join("car-1.jpg"));
    let first = std::fs::read(out.join("car-1.png")).unwrap();
    let said = into_out(&b.join("car-1.jpg"));
    assert!(
        said.contains("car-1 (2).png") && said.contains("so it was kept"),
        "{said}"
    );
    assert_eq!(std::fs::read(out.join("car-1.png")).unwrap(), first);
    into_out(&a.join("car-1.jpg"));
    into_out(&b.join("car-1.jpg"));
    assert_eq!(files_in(&out), ["car-1 (2).png", "car-1.png"]);
    // Both in one run: numbered the same way.
    let both = dir.path().join("both");
    let result = run(&[
        "remove",
        a.join("car-1.jpg").to_str().unwrap(),
        b.join("car-1.jpg").to_str().unwrap(),
        "-o",
        &format!("{}/", both.display()),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(files_in(&both), ["car-1 (2).png", "car-1.png"]);
}

#[test]
fn forcing_a_gpu_provider_that_cannot_run_fails_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("o.png");
    for (ep, label) in [
        ("cuda", "CUDA"),
        ("tensorrt", "TensorRT"),
        ("tensorrt-rtx", "TensorRT-RTX"),
    ] {
        let result = run(&[
            "remove",
            photo().to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--ep",
            ep,
        ]);
        assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
        let lines = error_lines(&result);
        assert_eq!(lines.len(), 1, "{}", stderr(&result));
        assert!(
            lines[0].contains(&format!("the {label} execution provider cannot run")),
            "{}",
            lines[0]
        );
        assert!(!output.exists());
    }
}

#[test]
fn a_model_file_with_the_wrong_checksum_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("mkdir");
    std::fs::write(models.join("u2netp.onnx"), b"not the real weights").expect("write");
    let result = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args([
            "remove",
            photo().to_str().unwrap(),
            "-o",
            dir.path().join("o.png").to_str().unwrap(),
        ])
        .env("CUTOUT_MODELS_DIR", &models)
        .output()
        .expect("run");
    assert_eq!(result.status.code(), Some(2));
    let err = stderr(&result);
    assert!(
        err.contains("refusing u2netp") && err.contains("--custom-model"),
        "{err}"
    );
    assert!(!dir.path().join("o.png").exists());
}

#[test]
fn a_custom_model_is_checked_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = common::models_dir().join("u2netp.onnx");
    let output = dir.path().join("o.png");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--custom-model",
        model.to_str().unwrap(),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    assert!(
        err.contains("Custom model") && err.contains("inputs: input") && err.contains("d0"),
        "{err}"
    );
    assert!(output.exists());

    let not_a_model = dir.path().join("fake.onnx");
    std::fs::write(&not_a_model, b"definitely not protobuf").expect("write");
    let result = run(&[
        "remove",
        photo().to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--custom-model",
        not_a_model.to_str().unwrap(),
    ]);
    assert_eq!(result.status.code(), Some(2));
    let err = stderr(&result);
    assert!(
        err.contains("not a readable ONNX model") && err.contains("fake.onnx"),
        "{err}"
    );
}

#[test]
fn doctor_reports_runtime_providers_and_folders() {
    let result = run(&["doctor"]);
    assert!(result.status.success());
    let text = String::from_utf8_lossy(&result.stdout);
    for needle in [
        "ONNX Runtime",
        "version   1.31.1",
        "CPU          compiled in: yes  usable: yes",
        "TensorRT for RTX",
        "WebGPU plugin (onnxruntime-ep-webgpu==0.4.0)",
        "libonnxruntime_providers_webgpu.so           found",
        "plugin    registered with ONNX Runtime",
        "libnvinfer.so.10",
        "u2netp    ok",
        "runtimes",
    ] {
        assert!(
            text.contains(needle),
            "doctor output lacks `{needle}`:\n{text}"
        );
    }
}

#[test]
fn bench_on_the_cpu_writes_json_rows_with_the_seed_method_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let csv = dir.path().join("bench.csv");
    let result = run(&[
        "bench",
        "--ep",
        "cpu",
        "--sizes",
        "160",
        "--runs",
        "3",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "fp32 and fp16 by default");
    for row in rows {
        assert_eq!(row["provider"], "cpu");
        assert_eq!(row["size_px"], 160);
        assert_eq!(row["runs"], 3);
        for field in ["min_ms", "median_ms", "first_run_ms", "session_ms"] {
            let v = row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} missing in {row}"));
            assert!(v > 0.0, "{field} = {v}");
        }
        assert!(row["min_ms"].as_f64() <= row["median_ms"].as_f64());
    }
    let precisions: Vec<&str> = rows
        .iter()
        .map(|r| r["precision"].as_str().expect("precision"))
        .collect();
    assert_eq!(precisions, vec!["fp32", "fp16"]);
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv").lines().count(),
        3
    );
}

#[test]
fn remove_names_the_edge_path_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edges_line = |extra: &[&str]| {
        let output = dir.path().join("o.png");
        let input = photo();
        let mut args = vec![
            "remove",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "-v",
        ];
        args.extend_from_slice(extra);
        let result = run(&args);
        assert!(result.status.success(), "{}", stderr(&result));
        assert!(output.exists());
        stderr(&result)
            .lines()
            .find(|l| l.starts_with("Edges: "))
            .map(str::to_owned)
    };
    // The default: clean colours, on the CPU path without opening a GPU device.
    let line = edges_line(&[]).expect("an Edges line");
    assert!(
        line.starts_with("Edges: CPU, ") && line.contains("colours only"),
        "{line}"
    );
    // The guided filter: the CPU path on a software rasterizer (this machine's lavapipe), the
    // GPU on a hardware one.
    let line = edges_line(&["--refine"]).expect("an Edges line");
    assert!(
        (line.starts_with("Edges: CPU, ") && line.contains("software rasterizer"))
            || line.contains("a hardware GPU"),
        "{line}"
    );
    // Forced onto the GPU passes: whatever adapter there is, named.
    let line = edges_line(&["--refine", "--edges", "gpu"]).expect("an Edges line");
    assert!(
        line.starts_with("Edges: GPU, ") && line.contains("asked for"),
        "{line}"
    );
    // No edge pass at all: nothing to say.
    assert_eq!(edges_line(&["--no-foreground"]), None);
}

/// Waits for `child`, or kills it after `limit`.
fn wait_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            panic!("cutout did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Ctrl+C in the middle of a recursive batch: exit status 130, no temporary or partial file,
/// every result written complete; the same command with --skip-existing does only the rest and
/// leaves the finished results untouched.
#[test]
fn ctrl_c_leaves_complete_results_and_skip_existing_finishes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(input.join("sub")).unwrap();
    for i in 0..40 {
        let folder = if i % 3 == 0 {
            input.join("sub")
        } else {
            input.clone()
        };
        std::fs::copy(photo(), folder.join(format!("p{i:02}.jpg"))).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["remove", "-r", "--ep", "cpu"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pngs = |dir: &Path| -> Vec<PathBuf> {
        let mut found = Vec::new();
        for sub in [dir.to_owned(), dir.join("sub")] {
            if let Ok(entries) = std::fs::read_dir(&sub) {
                found.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        found.sort();
        found
    };
    let started = std::time::Instant::now();
    while pngs(&out)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .count()
        < 3
    {
        assert!(started.elapsed().as_secs() < 120, "no results appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_within(&mut child, std::time::Duration::from_secs(30));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(
        log.contains("Interrupted:") && log.contains("--skip-existing"),
        "{log}"
    );
    let first = pngs(&out);
    let written: Vec<&PathBuf> = first.iter().filter(|p| p.is_file()).collect();
    assert!(
        written.len() < 40,
        "interrupted before the end: {}",
        written.len()
    );
    let mut stamps = Vec::new();
    for path in &written {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            name.ends_with(".png") && !name.starts_with('.'),
            "left behind: {name}"
        );
        let image = image::open(path).unwrap_or_else(|e| panic!("{name} is not complete: {e}"));
        assert_eq!(image.width(), 480);
        stamps.push((
            (*path).clone(),
            std::fs::metadata(path).unwrap().modified().unwrap(),
        ));
    }

    let again = run(&[
        "remove",
        "-r",
        "--ep",
        "cpu",
        "--skip-existing",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(&format!("Skipping {} photos", written.len())),
        "{}",
        stderr(&again)
    );
    let all = pngs(&out);
    assert_eq!(all.iter().filter(|p| p.is_file()).count(), 40, "{all:?}");
    assert_eq!(
        files_in(&out.join("sub")).len(),
        14,
        "the sub-folder layout is kept"
    );
    for (path, stamp) in stamps {
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            stamp,
            "{path:?} was redone"
        );
    }
}

/// A disk that fills up during the write (a 256 KiB tmpfs, most of it taken): one error line with
/// the reason, a failing exit, and nothing left on that disk but what was there.
#[test]
fn a_full_disk_is_reported_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let unmount = common::mount_tmpfs(&disk, "size=256k");
    let filler = disk.join("filler");
    std::fs::write(&filler, vec![7u8; 200 * 1024]).unwrap();
    let out = run(&[
        "remove",
        "--ep",
        "cpu",
        photo().to_str().unwrap(),
        "-o",
        disk.join("car.png").to_str().unwrap(),
    ]);
    let names = files_in(&disk);
    drop(unmount);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", stderr(&out));
    assert!(
        errors[0].contains("No space left on device"),
        "{}",
        errors[0]
    );
    assert_eq!(
        names,
        vec!["filler".to_owned()],
        "no partial or temporary file"
    );
}

/// ONNX Runtime missing, or a library that is not ONNX Runtime where it should be: one error line
/// saying what to do, a failing exit, no output.
#[test]
fn a_missing_or_wrong_onnx_runtime_library_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let not_ort = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&not_ort, b"\x7fELF not really a library").unwrap();
    for (library, expected) in [
        (dir.path().join("missing.so"), "no file is there"),
        (not_ort, "could not load ONNX Runtime"),
    ] {
        let output = dir.path().join("car.png");
        let out = Command::new(env!("CARGO_BIN_EXE_cutout"))
            .args(["remove", "--ep", "cpu"])
            .arg(photo())
            .arg("-o")
            .arg(&output)
            .env("CUTOUT_MODELS_DIR", common::models_dir())
            .env("ORT_DYLIB_PATH", &library)
            .output()
            .unwrap();
        let errors = error_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_eq!(errors.len(), 1, "{}", stderr(&out));
        assert!(
            errors[0].contains(expected) && errors[0].contains("ORT_DYLIB_PATH"),
            "{}",
            errors[0]
        );
        assert!(!output.exists());
    }
}

/// Item 9 of issue 33: a name that is neither a command nor a file, and no display, are said in
/// words at once (before, a window was tried and winit's error named a cargo registry path).
#[test]
fn a_typo_or_no_display_is_said_without_trying_a_window() {
    let typo = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .arg("remvoe")
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(2));
    let said = stderr(&typo);
    assert!(
        said.contains("no such photo, folder or command: remvoe"),
        "{said}"
    );
    assert!(!said.contains(".cargo"), "{said}");
    let headless = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .arg(photo())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(headless.status.code(), Some(2));
    let said = stderr(&headless);
    assert!(
        said.contains("no display") && said.contains("cutout remove PHOTO"),
        "{said}"
    );
    assert!(!said.contains(".cargo"), "{said}");
}
