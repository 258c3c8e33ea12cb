//! The `cutout` executable: the command line, or the desktop app when no subcommand is given.
//! A console program on Windows; `cutoutw` is the windowed twin.

fn main() -> std::process::ExitCode {
    cutout::cli::main()
}
