//! The WebGPU provider on this GPU-less machine: the real plugin (`cutout setup` fetched it from
//! PyPI) running on SwiftShader, a Vulkan driver that runs on the processor (Debian's `chromium`
//! package ships it; the README's test command installs it). ONNX Runtime discovers no GPU on this
//! VM, so the plugin is let in by its own switch, `ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1`; Dawn
//! then picks the adapter, as it would a GPU. SwiftShader takes seconds a run, so the network runs
//! at 64 px here; the lent GPU measures the real sizes (`.ci/device-webgpu.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::{Command, Output},
};

use crate::common;

const SWIFTSHADER_ICD: &str = "/usr/lib/chromium/vk_swiftshader_icd.json";

/// How the Vulkan loader is pointed at a driver, and whether the plugin may run without a
/// discovered GPU.
#[derive(Clone, Copy)]
enum Vulkan {
    /// SwiftShader, with the plugin's switch on.
    SwiftShader,
    /// The machine's own drivers (Mesa's lavapipe here), switch on.
    System,
    /// As a user's machine is by default: no switch (ONNX Runtime offers WebGPU nothing here).
    Default,
}

fn cutout(vulkan: Vulkan, args: &[&str]) -> Output {
    assert!(
        Path::new(SWIFTSHADER_ICD).is_file(),
        "SwiftShader is needed for the WebGPU tests: install Debian's chromium package (the \
         README's test command does)"
    );
    let runtime_dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutout"));
    command
        .args(args)
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .env("CUTOUT_CACHE_DIR", common::cache_dir())
        .env("XDG_RUNTIME_DIR", runtime_dir.path())
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("CUTOUT_LOG")
        .env_remove("VK_ICD_FILENAMES")
        .env_remove("ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER");
    match vulkan {
        Vulkan::SwiftShader => {
            command
                .env("VK_ICD_FILENAMES", SWIFTSHADER_ICD)
                .env("ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER", "1");
        }
        Vulkan::System => {
            command.env("ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER", "1");
        }
        Vulkan::Default => {}
    }
    command.output().expect("run cutout")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn photo() -> String {
    common::shared_dir()
        .join("testdata/rembg/fixtures/car-1.jpg")
        .to_str()
        .unwrap()
        .to_owned()
}

fn grey(path: &Path) -> image::GrayImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_luma8()
}

#[test]
fn webgpu_on_swiftshader_gives_the_cpu_providers_mask_within_one_grey_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gpu, cpu) = (dir.path().join("webgpu.png"), dir.path().join("cpu.png"));
    // A 64×64 photo at a 64 px network input: the mask is the network's own, unresized (Lanczos
    // upsampling could turn a one-level difference into two).
    let small = dir.path().join("car-64.png");
    image::open(photo())
        .expect("the shared photo")
        .resize_exact(64, 64, image::imageops::FilterType::Triangle)
        .save(&small)
        .expect("write the small photo");
    let mask = |vulkan, ep: &str, out: &Path| {
        cutout(
            vulkan,
            &[
                "remove",
                small.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--mask-only",
                "--size",
                "64",
                "--ep",
                ep,
                "-v",
            ],
        )
    };
    let ran = mask(Vulkan::SwiftShader, "webgpu", &gpu);
    assert!(ran.status.success(), "{}", text(&ran));
    let said = text(&ran);
    assert!(
        said.contains("WebGPU provider (Vulkan · SwiftShader")
            && said.contains("every node on the GPU"),
        "the report names the provider, its adapter and that nothing ran on the CPU: {said}"
    );
    let reference = mask(Vulkan::Default, "cpu", &cpu);
    assert!(reference.status.success(), "{}", text(&reference));
    let (a, b) = (grey(&gpu), grey(&cpu));
    assert_eq!(a.dimensions(), b.dimensions());
    let worst = a
        .pixels()
        .zip(b.pixels())
        .map(|(x, y)| x.0[0].abs_diff(y.0[0]))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "WebGPU's mask differs from the CPU's by {worst} grey levels"
    );

    // SwiftShader has no 16-bit float shaders: FP16 is refused with that reason, nothing written.
    let fp16 = dir.path().join("fp16.png");
    let refused = cutout(
        Vulkan::SwiftShader,
        &[
            "remove",
            &photo(),
            "-o",
            fp16.to_str().unwrap(),
            "--size",
            "64",
            "--ep",
            "webgpu",
            "--precision",
            "fp16",
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("shader-f16"), "{}", text(&refused));
    assert!(!fp16.exists());
}

#[test]
fn auto_passes_over_a_software_adapter_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("o.png");
    let args = [
        "remove",
        &photo(),
        "-o",
        out.to_str().unwrap(),
        "--size",
        "64",
    ];
    let short = cutout(Vulkan::SwiftShader, &args);
    assert!(short.status.success(), "{}", text(&short));
    let line = text(&short)
        .lines()
        .find(|l| l.starts_with("u2netp · "))
        .expect("a line saying what runs")
        .to_owned();
    assert!(
        line.contains("CPU provider") && line.contains("only a software renderer"),
        "{line}"
    );
    let verbose = cutout(Vulkan::SwiftShader, &[&args[..], &["-v"]].concat());
    let said = text(&verbose);
    assert!(
        said.contains("WebGPU: the only Vulkan adapter here is a software renderer (SwiftShader")
            && said.contains("`--ep webgpu` runs on it anyway"),
        "{said}"
    );
    let doctor = text(&cutout(Vulkan::SwiftShader, &["doctor"]));
    let usable = doctor
        .lines()
        .find(|l| l.trim_start().starts_with("WebGPU "))
        .expect("WebGPU among the providers");
    assert!(
        usable.contains("only with --ep webgpu") && usable.contains("SwiftShader"),
        "{usable}"
    );
    assert!(
        doctor.contains("SwiftShader") && doctor.contains("software renderer, vendor 0x1ae0"),
        "doctor lists the adapter: {doctor}"
    );
}

#[test]
fn forced_webgpu_without_an_adapter_says_why_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("o.png");
    let args = [
        "remove",
        &photo(),
        "-o",
        out.to_str().unwrap(),
        "--ep",
        "webgpu",
    ];
    // As a user's machine without a GPU is: ONNX Runtime offers WebGPU no device.
    let none = cutout(Vulkan::Default, &args);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    let said = text(&none);
    assert!(
        said.contains("the WebGPU execution provider cannot run")
            && said.contains("discovered no GPU")
            && said.contains("ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1"),
        "{said}"
    );
    // Let in, WebGPU finds only Mesa's lavapipe, which Dawn refuses.
    let refused = cutout(Vulkan::System, &args);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("found no Vulkan adapter it can run on"),
        "{said}"
    );
    assert!(!out.exists(), "nothing written when WebGPU cannot run");
}
