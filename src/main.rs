//! The `cutout` executable: logging, then the command line.

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // ONNX Runtime's own warnings arrive through `ort`'s tracing events; show warnings and errors
    // by default, more with CUTOUT_LOG=info (or debug, trace).
    let filter = EnvFilter::try_from_env("CUTOUT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    cutout::cli::run(cutout::cli::Cli::parse())
}
