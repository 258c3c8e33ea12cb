//! The Windows build, run as a Windows user would run it, under Wine (Debian's `wine64`, in a
//! Wine prefix of its own made for this test run):
//! - `cutout.exe setup` fetches the win_amd64 wheels from the real PyPI, with no Python anywhere
//!   in Wine's PATH, into `%LOCALAPPDATA%`; `doctor` names Windows libraries and reads the version
//!   from the DLL; `-v` reports the process's own peak memory;
//! - `cutout.exe remove` of the 20 shared photos, from and into folders whose names have spaces
//!   and non-ASCII letters, matches the Linux build's cutouts to one grey level; a batch folder
//!   with a broken file and a HEIC (which the Windows build does not decode) does the rest and says
//!   which files failed and why;
//! - the MSI installs with `msiexec /i … /qn`, the installed `cutout.exe` runs from its folder
//!   with the ONNX Runtime the MSI put beside it, and `msiexec /x … /qn` leaves no files;
//! - the window opens under Xvfb: Wine's Direct3D 12 cannot compile shaders, so the app says so
//!   and draws with Vulkan (lavapipe through winevulkan); the screenshot shows the cutout, and
//!   Ctrl+Q closes it.
//!
//! Needs `wine` (Debian's `wine64`), `gcc-mingw-w64-x86-64`, the cross-built executables (see
//! `packaging`), and for the window `xvfb`, `xdotool` and `imagemagick`; fails, never skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use crate::{
    common,
    window::{
        KillOnDrop, focus_app_window, quit_with_ctrl_q, screenshot_shows_a_cutout, start_xvfb,
        tool, wait_for_line,
    },
};

/// Rust's standard library imports `ProcessPrng` from `bcryptprimitives.dll` (Windows 10 and
/// later have it); Wine 8.0, Debian 12's, does not. This stands in for that one missing
/// operating-system function, in the prefix's `system32` as Windows has it: it fills the buffer
/// from `RtlGenRandom` (`SystemFunction036`), which Wine has. It is a gap of that Wine, not of
/// cutout; newer Wine releases ship `ProcessPrng` themselves.
const PROCESS_PRNG_SHIM: &str = r"#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
";

/// The Wine prefix for this test run, with ONNX Runtime set up in it by `cutout.exe setup`.
struct Prefix {
    dir: PathBuf,
    setup: String,
}

fn exe(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-pc-windows-gnu/dist")
        .join(name);
    assert!(
        exe.is_file(),
        "{} is missing: cargo build --profile dist --target x86_64-pc-windows-gnu --bins",
        exe.display()
    );
    exe
}

/// `Z:\…`: how a Windows program under Wine names a file of the Linux file system.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A Wine command in the test prefix, without a display.
fn wine(prefix: &Path) -> Command {
    let mut command = Command::new("wine");
    command
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko installers: cutout needs neither.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("CUTOUT_DATA_DIR")
        .env_remove("CUTOUT_CACHE_DIR")
        .env_remove("CUTOUT_LOG")
        .env("CUTOUT_MODELS_DIR", windows_path(&common::models_dir()));
    command
}

/// The prefix the command-line tests share.
fn prefix() -> &'static Prefix {
    static PREFIX: OnceLock<Prefix> = OnceLock::new();
    PREFIX.get_or_init(|| make_prefix("wine-prefix"))
}

/// The window's own prefix: Wine's desktop process belongs to a prefix's first program, and one
/// started without a display (the command-line tests) would leave the window nowhere to appear.
fn window_prefix() -> &'static Prefix {
    static PREFIX: OnceLock<Prefix> = OnceLock::new();
    PREFIX.get_or_init(|| make_prefix("wine-prefix-window"))
}

/// A new Wine prefix under `CARGO_TARGET_TMPDIR/name`, with the `ProcessPrng` shim and ONNX
/// Runtime set up by `cutout.exe setup`.
fn make_prefix(name: &str) -> Prefix {
    {
        tool("wine");
        tool("x86_64-w64-mingw32-gcc");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let boot = wine(&dir).args(["wineboot", "--init"]).output().unwrap();
        assert!(boot.status.success(), "wineboot: {}", text(&boot));
        let _ = Command::new("wineserver")
            .arg("-w")
            .env("WINEPREFIX", &dir)
            .status();
        let shim_dir = dir.join("shim-source");
        std::fs::create_dir_all(&shim_dir).unwrap();
        std::fs::write(shim_dir.join("process_prng.c"), PROCESS_PRNG_SHIM).unwrap();
        let gcc = Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(dir.join("drive_c/windows/system32/bcryptprimitives.dll"))
            .arg(shim_dir.join("process_prng.c"))
            .arg("-ladvapi32")
            .output()
            .unwrap();
        assert!(gcc.status.success(), "shim: {}", text(&gcc));

        // Wine's PATH is Windows': no Python there (the Linux one is not visible to it).
        let python = wine(&dir)
            .args(["cmd", "/c", "python --version"])
            .output()
            .unwrap();
        assert!(
            !text(&python).contains("Python 3"),
            "this test needs a Wine prefix without Python: {}",
            text(&python)
        );
        let started = Instant::now();
        let setup = wine(&dir)
            .arg(exe("cutout.exe"))
            .arg("setup")
            .output()
            .unwrap();
        let said = text(&setup);
        eprintln!(
            "cutout.exe setup under Wine: {:.1} s\n{said}",
            started.elapsed().as_secs_f64()
        );
        assert!(setup.status.success(), "{said}");
        // Until this prefix's Wine server has ended, a program started in it joins the processes
        // started without a display; the window must start a server of its own with one.
        let _ = Command::new("wineserver")
            .arg("-w")
            .env("WINEPREFIX", &dir)
            .status();
        Prefix { dir, setup: said }
    }
}

/// Runs the cross-built `cutout.exe` with `args` in the test prefix.
fn cutout_exe(args: &[&str]) -> Output {
    let prefix = prefix();
    wine(&prefix.dir)
        .arg(exe("cutout.exe"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn setup_doctor_and_version_speak_windows() {
    let _machine = common::heavy_lock();
    let prefix = prefix();
    let version = cutout_exe(&["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert!(text(&version).starts_with("cutout "), "{}", text(&version));

    assert!(
        prefix
            .setup
            .contains("onnxruntime-1.31.1-cp311-cp311-win_amd64.whl")
            && prefix
                .setup
                .contains("onnxruntime_ep_webgpu-0.4.0-py3-none-win_amd64.whl"),
        "{}",
        prefix.setup
    );
    let users = prefix.dir.join("drive_c/users");
    let installed: Vec<PathBuf> = std::fs::read_dir(&users)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .join("AppData/Local/cutout/cutout/data/runtime/cpu-1.31.1")
        })
        .filter(|d| d.join("onnxruntime.dll").is_file())
        .collect();
    assert_eq!(installed.len(), 1, "ONNX Runtime in %LOCALAPPDATA%");
    assert!(
        installed[0]
            .join("webgpu/onnxruntime_providers_webgpu.dll")
            .is_file()
    );

    let doctor = cutout_exe(&["doctor"]);
    let report = text(&doctor);
    assert!(doctor.status.success(), "{report}");
    assert!(
        report.contains("version   1.31.1 (cutout expects 1.31.1)"),
        "{report}"
    );
    assert!(report.contains("AppData\\Local\\cutout"), "{report}");
    for name in ["cudart64_13.dll", "cudnn64_9.dll", "nvinfer_10.dll"] {
        assert!(report.contains(name), "doctor lists {name}:\n{report}");
    }
    assert!(
        !report.contains(".so"),
        "no Linux library names on Windows:\n{report}"
    );
    assert!(!report.contains("ERROR"), "no log noise:\n{report}");

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wine-verbose.png");
    let verbose = cutout_exe(&[
        "remove",
        &windows_path(&common::photo("car-1.jpg")),
        "-o",
        &windows_path(&out),
        "--ep",
        "cpu",
        "-v",
    ]);
    let said = text(&verbose);
    assert!(verbose.status.success(), "{said}");
    let peak = said
        .lines()
        .find_map(|l| l.strip_prefix("Peak resident memory "))
        .unwrap_or_else(|| panic!("a peak memory line:\n{said}"));
    let mb: f64 = peak.trim_end_matches(" MB").parse().unwrap();
    assert!(mb > 50.0, "the process's own peak working set: {peak}");
    let startup = said
        .lines()
        .find(|l| l.starts_with("Start-up"))
        .unwrap_or_else(|| panic!("a start-up line:\n{said}"));
    assert!(
        !startup.contains("CUDA") && startup.contains("session (graph optimisation)"),
        "{startup}"
    );
}

/// Every pixel of two RGBA images, as the largest difference of any channel.
fn largest_difference(a: &Path, b: &Path) -> u8 {
    let (a, b) = (
        image::open(a).unwrap().into_rgba8(),
        image::open(b).unwrap().into_rgba8(),
    );
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn the_shared_photos_come_out_as_the_linux_build_cuts_them() {
    let _machine = common::heavy_lock();
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("Fotos mit Leerzeichen – Ünïcødé");
    std::fs::create_dir(&inputs).unwrap();
    let photos = common::shared_photos();
    for photo in &photos {
        let name = format!("Bild ö {}", photo.file_name().unwrap().to_string_lossy());
        std::fs::copy(photo, inputs.join(name)).unwrap();
    }
    let windows_out = work.path().join("Ausgabe für Windows");
    let linux_out = work.path().join("linux");
    let started = Instant::now();
    let windows = cutout_exe(&[
        "remove",
        &windows_path(&inputs),
        "-o",
        &format!("{}\\", windows_path(&windows_out)),
        "--ep",
        "cpu",
    ]);
    eprintln!(
        "cutout.exe remove, {} photos under Wine: {:.1} s",
        photos.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(windows.status.success(), "{}", text(&windows));
    let linux = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .arg("remove")
        .arg(&inputs)
        .arg("-o")
        .arg(format!("{}/", linux_out.display()))
        .args(["--ep", "cpu"])
        .env("CUTOUT_MODELS_DIR", common::models_dir())
        .env("CUTOUT_CACHE_DIR", common::cache_dir())
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    assert!(linux.status.success(), "{}", text(&linux));
    let mut worst = 0;
    for entry in std::fs::read_dir(&linux_out).unwrap() {
        let linux_png = entry.unwrap().path();
        let name = linux_png.file_name().unwrap();
        let windows_png = windows_out.join(name);
        assert!(windows_png.is_file(), "{name:?} from the Windows build");
        worst = worst.max(largest_difference(&linux_png, &windows_png));
    }
    eprintln!("largest difference between the builds: {worst} grey level(s)");
    assert_eq!(
        std::fs::read_dir(&windows_out).unwrap().count(),
        photos.len()
    );
    assert!(worst <= 1, "{worst} grey levels apart");
}

#[test]
fn broken_and_heic_files_in_a_batch_are_named_and_the_rest_are_done() {
    let _machine = common::heavy_lock();
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(common::photo("car-1.jpg"), inputs.join("a-car.jpg")).unwrap();
    std::fs::write(inputs.join("b-broken.jpg"), b"\xFF\xD8\xFF\xE0 not really").unwrap();
    std::fs::copy(common::photo("cloth-1.jpg"), inputs.join("c-cloth.jpg")).unwrap();
    // A phone photo: the Windows build has no HEIF decoder, and says so in one line.
    let png = work.path().join("phone.png");
    image::open(common::photo("anime-girl-1.jpg"))
        .unwrap()
        .to_rgb8()
        .save(&png)
        .unwrap();
    let heic = inputs.join("d-phone.heic");
    let encoded = std::process::Command::new("heif-enc")
        .args(["-q", "80", "-o"])
        .arg(&heic)
        .arg(&png)
        .status()
        .unwrap();
    assert!(encoded.success());
    let out = work.path().join("out");
    let result = cutout_exe(&[
        "remove",
        &windows_path(&inputs),
        "-o",
        &format!("{}\\", windows_path(&out)),
        "--ep",
        "cpu",
    ]);
    let said = text(&result);
    assert_eq!(result.status.code(), Some(1), "{said}");
    assert!(
        said.contains("b-broken.jpg") && said.contains("2 done, 2 failed"),
        "{said}"
    );
    assert!(
        said.lines().any(|l| l.contains("d-phone.heic")
            && l.contains("the Windows build of cutout does not read HEIC photos yet")),
        "{said}"
    );
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["a-car.png", "c-cloth.png"]);
}

#[test]
fn the_msi_installs_runs_and_uninstalls() {
    let _machine = common::heavy_lock();
    let prefix = prefix();
    let msi = crate::packaging::msi();
    let install = wine(&prefix.dir)
        .args(["msiexec", "/i", &windows_path(&msi.path), "/qn"])
        .output()
        .unwrap();
    assert!(install.status.success(), "msiexec /i: {}", text(&install));
    let folder = prefix.dir.join("drive_c/Program Files/cutout");
    let installed = folder.join("bin/cutout.exe");
    assert!(installed.is_file(), "installed in {}", folder.display());
    assert!(folder.join("bin/onnxruntime.dll").is_file());

    // From its own folder, with no runtime of its own set up: the ONNX Runtime beside it runs.
    let empty = tempfile::tempdir().unwrap();
    let run_installed = |args: &[&str]| {
        wine(&prefix.dir)
            .arg("C:\\Program Files\\cutout\\bin\\cutout.exe")
            .args(args)
            .current_dir(folder.join("bin"))
            .env("CUTOUT_DATA_DIR", windows_path(empty.path()))
            .output()
            .unwrap()
    };
    let doctor = run_installed(&["doctor"]);
    let report = text(&doctor);
    assert!(doctor.status.success(), "{report}");
    assert!(
        report.contains("installed beside cutout") && report.contains("version   1.31.1"),
        "{report}"
    );
    let out = empty.path().join("out.png");
    let remove = run_installed(&[
        "remove",
        &windows_path(&common::photo("car-1.jpg")),
        "-o",
        &windows_path(&out),
    ]);
    assert!(remove.status.success(), "{}", text(&remove));
    assert!(out.is_file());

    let uninstall = wine(&prefix.dir)
        .args(["msiexec", "/x", &windows_path(&msi.path), "/qn"])
        .output()
        .unwrap();
    assert!(
        uninstall.status.success(),
        "msiexec /x: {}",
        text(&uninstall)
    );
    let left: Vec<PathBuf> = walk(&folder);
    assert!(left.is_empty(), "files left after uninstalling: {left:?}");
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .flat_map(|p| if p.is_dir() { walk(&p) } else { vec![p] })
        .collect()
}

#[test]
fn the_window_passes_over_direct3d_12_and_draws_with_vulkan() {
    let _machine = common::heavy_lock();
    let prefix = window_prefix();
    for name in ["Xvfb", "xdotool", "import"] {
        tool(name);
    }
    let (_xvfb, display) = start_xvfb();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("settings.toml"), "provider = \"cpu\"\n").unwrap();
    let mut app = KillOnDrop(
        wine(&prefix.dir)
            .arg(exe("cutout.exe"))
            .arg(windows_path(&common::photo("car-1.jpg")))
            .env("DISPLAY", &display)
            .env("CUTOUT_CONFIG_DIR", windows_path(config.path()))
            .env("CUTOUT_LOG", "warn,cutout=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = app.0.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("app: {line}");
            all.push(line.clone());
            let _ = tx.send(line);
        }
        all
    });
    wait_for_line(&lines, "cutout shown", Duration::from_secs(300));
    focus_app_window(&display);
    screenshot_shows_a_cutout(&display, "wine-window.png");
    let status = quit_with_ctrl_q(&display, &mut app.0);
    let all = reader.join().unwrap();
    assert!(status.success(), "the app exited with {status}");
    assert!(
        all.iter()
            .any(|l| l.contains("The window cannot draw with Direct3D 12")),
        "the app says why it passed over Direct3D 12: {all:?}"
    );
    assert!(
        all.iter()
            .any(|l| l.contains("The window draws with Vulkan")),
        "the app says what it draws with: {all:?}"
    );
}
