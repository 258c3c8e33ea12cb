//! The GPU build on a machine without an NVIDIA GPU: `cutout setup --gpu`, with no Python reachable,
//! fetches onnxruntime-gpu, NVIDIA's CUDA 13 runtime, cuBLAS, cuFFT, cuRAND, NVRTC and cuDNN 9
//! wheels and the TensorRT for RTX plugin from PyPI; `cutout doctor` loads their libraries; and the
//! provider chain says why TensorRT-RTX cannot run here (forced: an error; auto: the CPU runs and
//! the reason is shown).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use crate::common;

fn cutout(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(args)
        .env("CUTOUT_DATA_DIR", data)
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("CUTOUT_LOG")
        .output()
        .expect("run cutout")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn setup_gpu_fetches_the_plugin_doctor_loads_it_and_the_chain_says_why_it_cannot_run() {
    let data = tempfile::tempdir().expect("tempdir");
    // No Python anywhere on PATH (nor anything else): set-up needs none.
    let empty = tempfile::tempdir().expect("tempdir");
    let setup = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["setup", "--gpu"])
        .env("CUTOUT_DATA_DIR", data.path())
        .env("CUTOUT_CACHE_DIR", data.path().join("cache"))
        .env("PATH", empty.path())
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("run cutout");
    assert!(setup.status.success(), "{}", text(&setup));
    let cuda = data.path().join("runtime/gpu-1.31.1/cuda");
    for name in cutout::engine::runtime::CUDA_LIBRARIES {
        assert!(cuda.join(name).is_file(), "setup --gpu kept {name}");
    }
    let downloads = data.path().join("cache/downloads");
    assert_eq!(
        std::fs::read_dir(&downloads).map_or(0, Iterator::count),
        0,
        "the wheels are deleted once their libraries are kept"
    );
    assert!(
        text(&setup).contains("TensorRT-RTX libraries"),
        "{}",
        text(&setup)
    );
    let folder = data.path().join("runtime/gpu-1.31.1/tensorrt-rtx");
    for name in [
        "libonnxruntime_providers_nv_tensorrt_rtx.so",
        "libtensorrt_rtx.so.1.7.1",
        "libtensorrt_onnxparser_rtx.so.1.7.1",
    ] {
        assert!(folder.join(name).is_file(), "setup kept {name}");
    }

    // Doctor loads each library (not just looks for it). Without an NVIDIA driver the plugin itself
    // cannot load: it needs libcuda.so.1 and libnvidia-ml.so.1, which only the driver provides.
    let driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
    let doctor = cutout(data.path(), &["doctor"]);
    assert!(doctor.status.success(), "{}", text(&doctor));
    let report = text(&doctor);
    let section = &report[report
        .find("TensorRT for RTX")
        .expect("a TensorRT for RTX section")..];
    let line = |prefix: &str| {
        section
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("doctor has no `{prefix}` line:\n{report}"))
            .to_owned()
    };
    let gpu_libraries = &report[report.find("GPU libraries").expect("GPU libraries")..];
    for name in ["libcudart.so.13", "libcudnn.so.9", "libcublas.so.13"] {
        let l = gpu_libraries
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("doctor lists {name}"));
        assert!(l.contains(cuda.to_str().unwrap()), "{l}");
    }
    for dependency in [
        "libcudart.so.13",
        "libtensorrt_rtx.so.1",
        "libtensorrt_onnxparser_rtx.so.1",
    ] {
        let l = line(dependency);
        assert!(
            l.contains("found") && l.contains(folder.to_str().unwrap()),
            "{l}"
        );
    }
    let plugin = line("plugin ");
    if driver {
        assert!(plugin.contains("registered with ONNX Runtime"), "{plugin}");
    } else {
        assert!(
            plugin.contains("not registered") && plugin.contains("NVIDIA driver"),
            "{plugin}"
        );
        let probe = line("libonnxruntime_providers_nv_tensorrt_rtx.so");
        assert!(probe.contains("does not load"), "{probe}");
    }
    let usable = report
        .lines()
        .find(|l| l.trim_start().starts_with("TensorRT-RTX"))
        .expect("TensorRT-RTX among the providers");
    assert!(usable.contains("usable: no"), "{usable}");

    let out = data.path().join("o.png");
    let photo = common::shared_dir().join("testdata/rembg/fixtures/car-1.jpg");
    let photo = photo.to_str().unwrap();
    let forced = cutout(
        data.path(),
        &[
            "remove",
            photo,
            "-o",
            out.to_str().unwrap(),
            "--ep",
            "tensorrt-rtx",
        ],
    );
    assert_eq!(forced.status.code(), Some(2), "{}", text(&forced));
    let error = text(&forced);
    assert!(
        error.contains("the TensorRT-RTX execution provider cannot run"),
        "{error}"
    );
    if !driver {
        assert!(error.contains("NVIDIA driver is not installed"), "{error}");
    }
    assert!(
        !out.exists(),
        "nothing written when the forced provider cannot run"
    );

    let auto = cutout(
        data.path(),
        &["remove", photo, "-o", out.to_str().unwrap(), "-v"],
    );
    assert!(auto.status.success(), "{}", text(&auto));
    let said = text(&auto);
    let running = said
        .lines()
        .find(|l| l.contains(" px · ") && l.contains("provider"))
        .expect("a line saying what runs");
    assert!(
        running.contains("TensorRT-RTX: ") && running.contains("TensorRT: "),
        "{running}"
    );
    if !driver {
        assert!(running.contains("CPU provider"), "{running}");
    }
    assert!(out.is_file());
}
