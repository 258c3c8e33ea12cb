//! A real window: `cutout PHOTO` under Xvfb (Mesa's lavapipe draws it), waits until the cutout
//! is on screen, turns Live on for a while, takes a screenshot of the X screen with ImageMagick's
//! `import`, checks that the picture is neither blank nor uniform, and closes the app with Ctrl+Q,
//! which must end the process cleanly; it also checks the window's icon and class with `xprop`.
//! Needs `xvfb`, `xdotool`, `imagemagick` and `x11-utils` (CI installs
//! them); it fails rather than skips when they are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{name}` is needed for the window test (apt-get install xvfb xdotool imagemagick x11-utils)"
    );
}

pub(crate) fn start_xvfb() -> (KillOnDrop, String) {
    for n in 90..140 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let guard = KillOnDrop(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                return (guard, display);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("no free X display for Xvfb");
}

pub(crate) fn xdotool(display: &str, args: &[&str]) {
    let status = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .status()
        .unwrap();
    assert!(status.success(), "xdotool {args:?}");
}

pub(crate) fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
) -> String {
    let started = Instant::now();
    loop {
        let left = timeout
            .checked_sub(started.elapsed())
            .unwrap_or_else(|| panic!("timed out waiting for `{needle}` from the app"));
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("waiting for `{needle}`: {e}"),
        }
    }
}

/// Finds the cutout window and gives it the keyboard focus (there is no window manager).
pub(crate) fn focus_app_window(display: &str) -> String {
    let found = Command::new("xdotool")
        .args(["search", "--name", "^cutout"])
        .env("DISPLAY", display)
        .output()
        .unwrap();
    let window = String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .expect("the cutout window exists")
        .to_owned();
    xdotool(display, &["windowfocus", "--sync", &window]);
    window
}

/// Ctrl+Q to the focused window, then the app's exit status (it must exit within 30 s).
pub(crate) fn quit_with_ctrl_q(display: &str, app: &mut Child) -> std::process::ExitStatus {
    xdotool(display, &["key", "ctrl+q"]);
    let started = Instant::now();
    loop {
        if let Some(status) = app.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the app did not close on Ctrl+Q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The app running in a real window under its own Xvfb, with its log lines.
struct Running {
    app: KillOnDrop,
    lines: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    window: String,
    display: String,
    _xvfb: KillOnDrop,
    _home: tempfile::TempDir,
}

/// Starts `cutout PHOTO` on the CPU provider under a new Xvfb, waits until the cutout is shown
/// and gives the window the keyboard focus (there is no window manager).
fn launch(photo: &Path) -> Running {
    for name in ["Xvfb", "xdotool", "import", "xprop"] {
        tool(name);
    }
    let (xvfb, display) = start_xvfb();
    let home = tempfile::tempdir().unwrap();
    let runtime_dir = home.path().join("xdg");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    std::fs::set_permissions(
        &runtime_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let config = home.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("settings.toml"), "provider = \"cpu\"\n").unwrap();

    let mut app = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_cutout"))
            .arg(photo)
            .env("DISPLAY", &display)
            .env_remove("WAYLAND_DISPLAY")
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env("CUTOUT_CONFIG_DIR", &config)
            .env("CUTOUT_MODELS_DIR", common::models_dir())
            .env("CUTOUT_CACHE_DIR", common::cache_dir())
            .env("CUTOUT_LOG", "warn,cutout=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cutout starts"),
    );
    let stderr = app.0.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("app: {line}");
            let _ = tx.send(line);
        }
    });

    wait_for_line(&lines, "cutout shown", Duration::from_secs(300));
    let window = focus_app_window(&display);
    Running {
        app,
        lines,
        reader,
        window,
        display,
        _xvfb: xvfb,
        _home: home,
    }
}

impl Running {
    /// Ctrl+Q, then waits for a clean exit; returns the log lines after the ones read so far.
    fn quit(mut self) -> Vec<String> {
        let status = quit_with_ctrl_q(&self.display, &mut self.app.0);
        self.reader.join().unwrap();
        assert!(status.success(), "the app exited with {status}");
        self.lines.try_iter().collect()
    }
}

/// Takes screenshots of the X screen into `CARGO_TARGET_TMPDIR/name` until one shows a cutout
/// (at most a minute: the first cutout may still be on its way): many colours (the photo), not
/// uniform, and the preview's checkerboard (grey 0.6 and 0.8, as a linear or an sRGB surface
/// stores them) where the background was removed.
pub(crate) fn screenshot_shows_a_cutout(display: &str, name: &str) {
    let shot_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let started = Instant::now();
    loop {
        let status = Command::new("import")
            .args(["-window", "root"])
            .arg(&shot_path)
            .env("DISPLAY", display)
            .status()
            .unwrap();
        assert!(status.success(), "screenshot");
        let (colours, std_dev, checker) = picture_stats(&shot_path);
        if checker > 0.02 || started.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "screenshot {}: {colours} colours, standard deviation {std_dev:.1}, \
                 checkerboard {:.1} % of the screen per grey",
                shot_path.display(),
                checker * 100.0
            );
            assert!(colours > 500, "the window looks blank: {colours} colours");
            assert!(
                std_dev > 10.0,
                "the window looks uniform (σ = {std_dev:.1})"
            );
            assert!(
                checker > 0.02,
                "no checkerboard where the background was removed ({:.2} %)",
                checker * 100.0
            );
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Colours, standard deviation of the brightness, and the checkerboard's share of the screen.
fn picture_stats(path: &Path) -> (usize, f64, f64) {
    let shot = image::open(path).unwrap().to_rgb8();
    let mut colours = std::collections::HashMap::<[u8; 3], u32>::new();
    let (mut sum, mut sum_sq, n) = (0f64, 0f64, f64::from(shot.width() * shot.height()));
    for p in shot.pixels() {
        *colours.entry(p.0).or_default() += 1;
        let v = f64::from(p.0[0]) + f64::from(p.0[1]) + f64::from(p.0[2]);
        sum += v;
        sum_sq += v * v;
    }
    let std_dev = (sum_sq / n - (sum / n).powi(2)).sqrt();
    let share = |grey: u8| f64::from(colours.get(&[grey; 3]).copied().unwrap_or(0)) / n;
    let checker = [(153, 204), (203, 231)]
        .iter()
        .map(|&(dark, light)| share(dark).min(share(light)))
        .fold(0.0, f64::max);
    (colours.len(), std_dev, checker)
}

#[test]
fn real_window_shows_the_cutout_and_closes_cleanly() {
    let running = launch(&common::photo("car-1.jpg"));
    let (display, window) = (running.display.clone(), running.window.clone());
    // The window carries the app icon and the desktop entry's class.
    let xprop = |args: &[&str]| {
        let out = Command::new("xprop")
            .args(["-id", &window])
            .args(args)
            .env("DISPLAY", &display)
            .output()
            .expect("xprop (x11-utils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // `-len` keeps xprop from printing the icon's pixels; it reports the icon's size.
    let icon = xprop(&["-len", "8", "_NET_WM_ICON"]);
    let class = xprop(&["WM_CLASS"]);
    assert!(icon.contains("Icon (256 x 256)"), "no window icon: {icon}");
    assert!(class.contains("\"org.cutout.cutout\""), "{class}");
    // Live on: inference re-runs continuously while frames are measured.
    xdotool(&display, &["key", "ctrl+l"]);
    std::thread::sleep(Duration::from_secs(10));

    screenshot_shows_a_cutout(&display, "window.png");

    xdotool(&display, &["key", "ctrl+l"]);
    let frame_line: Vec<String> = running
        .quit()
        .into_iter()
        .filter(|l| l.contains("ui frame time"))
        .collect();
    eprintln!("{frame_line:?}");
    assert_eq!(
        frame_line.len(),
        1,
        "the app reports its frame times at exit"
    );
}

/// Frame times while painting on a 12 MP photo in a real window (Xvfb, lavapipe): B takes the
/// Keep brush, xdotool drags it back and forth over the photo for about 6 s, and the app logs
/// at exit the wall time between frames while a stroke was being painted, and egui's CPU time
/// of those frames. Set CUTOUT_PAINT_PHOTO to use another photo.
#[test]
#[ignore = "a measurement; run it on purpose"]
fn painting_frame_times_in_a_real_window() {
    let root = tempfile::tempdir().unwrap();
    let photo = std::env::var_os("CUTOUT_PAINT_PHOTO").map_or_else(
        || {
            let path = root.path().join("photo-12mp.png");
            image::open(common::photo("car-1.jpg"))
                .unwrap()
                .resize_exact(4000, 3000, image::imageops::FilterType::Triangle)
                .save(&path)
                .unwrap();
            path
        },
        std::path::PathBuf::from,
    );
    let running = launch(&photo);
    let display = running.display.clone();
    std::thread::sleep(Duration::from_secs(2));
    xdotool(&display, &["key", "b"]);
    // The canvas lies between the queue (left) and the controls (right).
    let (x0, x1, y0) = (420, 860, 300);
    xdotool(&display, &["mousemove", &x0.to_string(), &y0.to_string()]);
    xdotool(&display, &["mousedown", "1"]);
    for i in 0..600 {
        let t = f64::from(i) / 600.0;
        let x = x0 + ((f64::from(x1 - x0)) * (t * std::f64::consts::TAU * 3.0).sin().abs()) as i32;
        let y = y0 + (200.0 * t) as i32;
        xdotool(&display, &["mousemove", &x.to_string(), &y.to_string()]);
        std::thread::sleep(Duration::from_millis(8));
    }
    xdotool(&display, &["mouseup", "1"]);
    std::thread::sleep(Duration::from_secs(1));
    let lines: Vec<String> = running
        .quit()
        .into_iter()
        .filter(|l| l.contains("frame time"))
        .collect();
    for line in &lines {
        eprintln!("{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("while painting")),
        "the app reports its painting frame times: {lines:?}"
    );
}
