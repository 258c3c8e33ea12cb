//! Desktop integration and the Windows installer, checked on Linux:
//! - the desktop entry passes `desktop-file-validate` and the AppStream metadata passes
//!   `appstreamcli validate`, with the same application id as the window;
//! - an MSI is built with Debian's `wixl` from a variant generated out of `wix/main.wxs` (the one
//!   source), holding the real Windows executables (cross-built with
//!   `cargo build --profile dist --target x86_64-pc-windows-gnu --bins`) and the real ONNX Runtime DLLs
//!   from the official onnxruntime-gpu win_amd64 wheel; its File, Shortcut, Registry, Upgrade and
//!   Feature tables are read back with `msiinfo` and checked.
//!
//! Needs `desktop-file-utils`, `appstream`, `wixl`, `msitools`, and the Windows build; it
//! fails (never skips) without them, saying what to install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::Command,
};

use cutout::{app::APP_ID, engine::runtime::pypi};

const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";
const ORT_VERSION: &str = cutout::engine::runtime::ORT_VERSION;
const ORT_DLLS: [&str; 4] = [
    "onnxruntime.dll",
    "onnxruntime_providers_shared.dll",
    "onnxruntime_providers_cuda.dll",
    "onnxruntime_providers_tensorrt.dll",
];
/// The WebGPU plugin and the DirectX shader compiler it ships, from its win_amd64 wheel, installed
/// in `webgpu\` beside onnxruntime.dll.
const WEBGPU_DLLS: [&str; 3] = [
    "onnxruntime_providers_webgpu.dll",
    "dxcompiler.dll",
    "dxil.dll",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`{program}` is needed for this test ({e})"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn desktop_entry_and_appstream_metadata_validate() {
    let linux = root().join("assets/linux");
    let desktop = format!("{APP_ID}.desktop");
    let metainfo = format!("{APP_ID}.metainfo.xml");
    run("desktop-file-validate", &[&desktop], &linux);
    run("appstreamcli", &["validate", "--no-net", &metainfo], &linux);
    let entry = std::fs::read_to_string(linux.join(&desktop)).unwrap();
    assert!(entry.contains(&format!("Icon={APP_ID}\n")));
    assert!(entry.contains(&format!("StartupWMClass={APP_ID}\n")));
    assert!(entry.contains("Exec=cutout %F\n"));
    let meta = std::fs::read_to_string(linux.join(&metainfo)).unwrap();
    assert!(meta.contains(&format!("<id>{APP_ID}</id>")));
    assert!(meta.contains(&format!(
        "<launchable type=\"desktop-id\">{desktop}</launchable>"
    )));
}

/// Removes the parts of a WiX 3 source that wixl does not support (the BUILDARCH switch, UI
/// dialogs, `<Environment>`, `<SetProperty>`, `<WixVariable>`) and marks components 64-bit.
fn wixl_variant(source: &str) -> String {
    let mut s = source.to_owned();
    let start = s.find("<?if $(sys.BUILDARCH)").expect("BUILDARCH switch");
    let end = start + s[start..].find("<?endif ?>").expect("endif") + "<?endif ?>".len();
    s.replace_range(
        start..end,
        r#"<?define PlatformProgramFilesFolder = "ProgramFiles64Folder" ?>"#,
    );
    while let Some(a) = s.find("<UI>") {
        let b = a + s[a..].find("</UI>").expect("</UI>") + "</UI>".len();
        s.replace_range(a..b, "");
    }
    for tag in ["<Environment", "<SetProperty", "<WixVariable", "<UIRef"] {
        while let Some(a) = s.find(tag) {
            let b = a + s[a..].find("/>").expect("self-closing") + 2;
            s.replace_range(a..b, "");
        }
    }
    s = s.replace("<Component ", "<Component Win64='yes' ");
    // Project-relative sources, as seen from target/wix where wixl runs (it writes an `Icon/`
    // folder into its working directory).
    for attr in ["Source='", "SourceFile='"] {
        s = s
            .replace(attr, &format!("{attr}../../"))
            .replace(&format!("{attr}../../$(var."), &format!("{attr}$(var."));
    }
    s
}

/// The ONNX Runtime DLLs from the official onnxruntime-gpu win_amd64 wheel and the WebGPU plugin's
/// from its wheel (fetched from PyPI once, then kept under target/).
fn ort_dlls(dir: &Path) {
    let webgpu = dir.join("webgpu");
    windows_wheel_files(
        &format!("onnxruntime-gpu=={ORT_VERSION}"),
        "onnxruntime/capi/",
        &ORT_DLLS,
        dir,
    );
    windows_wheel_files(
        cutout::engine::runtime::webgpu::PLUGIN.package,
        "onnxruntime_ep_webgpu/",
        &WEBGPU_DLLS,
        &webgpu,
    );
}

/// `names` from the win_amd64 wheel of `spec`, under `prefix` in it, into `dir`.
fn windows_wheel_files(spec: &str, prefix: &str, names: &[&str], dir: &Path) {
    if names.iter().all(|d| dir.join(d).is_file()) {
        return;
    }
    // cutout's own PyPI client (what `cutout setup` uses), asked for the Windows wheel.
    let requirement = pypi::Requirement::parse(spec).unwrap();
    let wheel = pypi::find(&pypi::index_url(), &requirement, pypi::Platform::WindowsX64)
        .unwrap_or_else(|e| panic!("{spec} for win_amd64: {e}"));
    let wheel = pypi::download(&wheel, &dir.join("wheels"), &mut |_, _| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("{spec}: {e}"));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    for name in names {
        let mut entry = zip
            .by_name(&format!("{prefix}{name}"))
            .unwrap_or_else(|e| panic!("{name} in the wheel: {e}"));
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The MSI built from `wix/main.wxs` with wixl, with the cross-built executables and the official
/// ONNX Runtime DLLs; built once per test run (the Wine tests install it).
pub(crate) struct Msi {
    /// The MSI file.
    pub path: PathBuf,
    /// The folder of the cross-built `cutout.exe` and `cutoutw.exe`.
    pub bin: PathBuf,
    /// The folder of the ONNX Runtime DLLs it holds.
    pub ort: PathBuf,
}

pub(crate) fn msi() -> Msi {
    static MSI: std::sync::OnceLock<(PathBuf, PathBuf, PathBuf)> = std::sync::OnceLock::new();
    let (path, bin, ort) = MSI.get_or_init(build_msi).clone();
    Msi { path, bin, ort }
}

fn build_msi() -> (PathBuf, PathBuf, PathBuf) {
    let root = root();
    let source = std::fs::read_to_string(root.join("wix/main.wxs")).unwrap();
    let bin_rel = format!("target/{WINDOWS_TARGET}/dist");
    let bin = root.join(&bin_rel);
    for exe in ["cutout.exe", "cutoutw.exe"] {
        assert!(
            bin.join(exe).is_file(),
            "{exe} is missing: build it first with `rustup target add {WINDOWS_TARGET} && cargo build --profile dist --target {WINDOWS_TARGET} --bins` (Debian: gcc-mingw-w64-x86-64)"
        );
    }
    assert_eq!(
        pe_subsystem(&bin.join("cutout.exe")),
        3,
        "cutout.exe is a console program"
    );
    assert_eq!(
        pe_subsystem(&bin.join("cutoutw.exe")),
        2,
        "cutoutw.exe opens no console"
    );

    // wixl resolves Source paths against its working directory and refuses absolute ones.
    let work = root.join("target/wix");
    let ort_rel = format!("ort-{ORT_VERSION}");
    std::fs::create_dir_all(work.join(&ort_rel)).unwrap();
    ort_dlls(&work.join(&ort_rel));
    std::fs::write(work.join("main-wixl.wxs"), wixl_variant(&source)).unwrap();
    let msi_name = format!("cutout-{}-x86_64.msi", env!("CARGO_PKG_VERSION"));
    let _ = std::fs::remove_file(work.join(&msi_name));
    run(
        "wixl",
        &[
            "-a",
            "x64",
            "-D",
            &format!("Version={}", env!("CARGO_PKG_VERSION")),
            "-D",
            &format!("CargoTargetBinDir=../../{bin_rel}"),
            "-D",
            &format!("OrtDir={ort_rel}"),
            "-o",
            &msi_name,
            "main-wixl.wxs",
        ],
        &work,
    );
    let msi_path = work.join(&msi_name);
    let size = std::fs::metadata(&msi_path).unwrap().len();
    eprintln!("built {}: {:.1} MB", msi_path.display(), size as f64 / 1e6);
    (msi_path, bin, work.join(&ort_rel))
}

/// The PE subsystem of a Windows executable: 2 = GUI (no console), 3 = console.
fn pe_subsystem(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..2],
        b"MZ",
        "{} is a Windows executable",
        path.display()
    );
    let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&bytes[pe..pe + 4], b"PE\0\0");
    let optional = pe + 24;
    u16::from_le_bytes(bytes[optional + 68..optional + 70].try_into().unwrap())
}

/// Rows of an MSI table, tab-separated, without the three header lines. (msiinfo writes binary
/// columns, such as the Icon table's, into its working directory: target/wix.)
fn table(msi: &str, name: &str) -> Vec<Vec<String>> {
    let work = root().join("target/wix");
    run("msiinfo", &["export", msi, name], &work)
        .lines()
        .skip(3)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
fn msi_from_the_wix_source_holds_the_app_runtime_shortcuts_and_associations() {
    let root = root();
    let source = std::fs::read_to_string(root.join("wix/main.wxs")).unwrap();
    // cargo-wix's conventions are in the source itself.
    for needle in [
        "$(var.Version)",
        "$(var.CargoTargetBinDir)",
        "<UIRef Id='WixUI_FeatureTree'/>",
        "<Environment",
        "<MajorUpgrade",
    ] {
        assert!(source.contains(needle), "main.wxs lacks {needle}");
    }
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let guid = cargo
        .lines()
        .find_map(|l| l.strip_prefix("upgrade-guid = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("[package.metadata.wix] upgrade-guid");
    assert!(
        source.contains(&format!("UpgradeCode='{guid}'")),
        "Cargo.toml and main.wxs must carry the same upgrade code"
    );
    let rtf = std::fs::read_to_string(root.join("wix/License.rtf")).unwrap();
    assert!(rtf.starts_with("{\\rtf1") && rtf.contains("Apache License"));

    let Msi {
        path: msi_path,
        bin,
        ort: ort_dir,
    } = msi();
    // The version cutout reports for a Windows ONNX Runtime comes from the DLL's version resource
    // (its build string names no release).
    assert_eq!(
        cutout::engine::runtime::version::from_version_resource(&ort_dir.join("onnxruntime.dll"))
            .as_deref(),
        Some(ORT_VERSION)
    );
    let msi = msi_path.to_string_lossy().into_owned();

    let files = table(&msi, "File");
    let file = |name: &str| {
        files
            .iter()
            .find(|r| r[2] == name)
            .unwrap_or_else(|| panic!("File table lacks {name}: {files:?}"))
            .clone()
    };
    for exe in ["cutout.exe", "cutoutw.exe"] {
        let row = file(exe);
        let real = std::fs::metadata(bin.join(exe)).unwrap().len();
        assert_eq!(
            row[3],
            real.to_string(),
            "{exe} is the cross-built executable"
        );
    }
    for dll in ORT_DLLS {
        let row = file(dll);
        let real = std::fs::metadata(ort_dir.join(dll)).unwrap().len();
        assert_eq!(
            row[3],
            real.to_string(),
            "{dll} comes from the official wheel"
        );
    }
    for dll in WEBGPU_DLLS {
        let row = file(dll);
        let real = std::fs::metadata(ort_dir.join("webgpu").join(dll))
            .unwrap()
            .len();
        assert_eq!(
            row[3],
            real.to_string(),
            "{dll} comes from the official WebGPU plugin wheel"
        );
    }
    let directories = table(&msi, "Directory");
    let plugin_dir = directories
        .iter()
        .find(|r| r[0] == "WebGpuDir")
        .expect("a webgpu folder");
    assert_eq!(
        (plugin_dir[1].as_str(), plugin_dir[2].as_str()),
        ("Bin", "webgpu"),
        "the plugin sits in webgpu\\ beside onnxruntime.dll, where cutout looks"
    );
    file("manifest.toml");
    file("LICENSE.txt");

    let shortcuts = table(&msi, "Shortcut");
    let start_menu = shortcuts
        .iter()
        .find(|r| r[1] == "ProgramMenuFolder")
        .expect("a Start Menu shortcut");
    assert_eq!(start_menu[2], "cutout");
    assert_eq!(
        start_menu[4], "[#exe1]",
        "the shortcut starts cutoutw.exe (no console)"
    );
    assert_eq!(start_menu[8], "CutoutIcon");
    assert!(
        shortcuts.iter().any(|r| r[1] == "DesktopFolder"),
        "the optional desktop shortcut"
    );
    let icons = table(&msi, "Icon");
    assert!(icons.iter().any(|r| r[0] == "CutoutIcon"));

    let registry = table(&msi, "Registry");
    let has = |key: &str, name: &str, value: &str| {
        registry
            .iter()
            .any(|r| r[1] == "2" && r[2] == key && r[3] == name && r[4] == value)
    };
    for ext in ["jpg", "jpeg", "png", "webp"] {
        assert!(
            has(
                &format!("Software\\Classes\\.{ext}\\OpenWithProgids"),
                "cutout.Photo",
                ""
            ),
            ".{ext} lists cutout under Open with: {registry:?}"
        );
        assert!(has(
            "Software\\Classes\\Applications\\cutoutw.exe\\SupportedTypes",
            &format!(".{ext}"),
            ""
        ));
    }
    assert!(has(
        "Software\\Classes\\cutout.Photo\\shell\\open\\command",
        "",
        "\"[#exe1]\" \"%1\""
    ));
    assert!(has(
        "Software\\Classes\\Applications\\cutoutw.exe\\shell\\open\\command",
        "",
        "\"[#exe1]\" \"%1\""
    ));

    let upgrade = table(&msi, "Upgrade");
    let code = format!("{{{guid}}}");
    assert!(
        upgrade
            .iter()
            .any(|r| r[0] == code && r[6] == "WIX_UPGRADE_DETECTED"),
        "major upgrade of earlier versions: {upgrade:?}"
    );
    assert!(
        upgrade
            .iter()
            .any(|r| r[0] == code && r[6] == "WIX_DOWNGRADE_DETECTED")
    );
    let properties = table(&msi, "Property");
    assert!(
        properties
            .iter()
            .any(|r| r[0] == "UpgradeCode" && r[1] == code)
    );
    assert!(
        properties
            .iter()
            .any(|r| r[0] == "ARPPRODUCTICON" && r[1] == "CutoutIcon")
    );

    let features = table(&msi, "Feature");
    let level = |id: &str| {
        features
            .iter()
            .find(|r| r[0] == id)
            .map(|r| r[5].clone())
            .unwrap_or_else(|| panic!("feature {id}"))
    };
    assert_eq!(level("Binaries"), "1");
    assert_eq!(
        level("Desktop"),
        "2",
        "the desktop shortcut is offered, not installed by default"
    );
}
