//! `cutoutw`: the same program as `cutout`, built for the Windows GUI subsystem so that starting
//! the app from the Start Menu, the desktop or "Open with" opens no console window (as `pythonw`
//! does for `python`). On other systems it is identical to `cutout`.
#![cfg_attr(windows, windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    cutout::cli::main()
}
