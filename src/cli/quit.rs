//! Ending the process at once, for `remove` once every result is written: returning from `main`
//! would run the C++ static destructors of ONNX Runtime and CUDA, which costs 170 ms after a CUDA
//! session on an H200 and is unsafe while a GPU session is still starting on another thread (they
//! would run under it). The one place besides `engine/runtime/cuda_context.rs` allowed `unsafe`:
//! one call to `_exit`, after flushing what was printed.
#![allow(unsafe_code)]

use std::io::Write as _;

/// Flushes standard output and error, then ends the process with `code` without running exit
/// handlers or destructors. Every result file is complete by then (each write is atomic).
#[cfg(unix)]
pub(super) fn now(code: u8) -> ! {
    std::io::stdout().flush().ok();
    std::io::stderr().flush().ok();
    // SAFETY: `_exit` takes any status and does not return; nothing in this process needs its
    // exit handlers (outputs are renamed into place already and the GPU thread's work is
    // abandoned on purpose; the operating system releases its memory and the GPU's).
    unsafe { libc::_exit(i32::from(code)) }
}

/// Elsewhere the process ends through the C runtime's `exit`, which stops other threads first.
#[cfg(not(unix))]
pub(super) fn now(code: u8) -> ! {
    std::io::stdout().flush().ok();
    std::io::stderr().flush().ok();
    std::process::exit(i32::from(code))
}
