//! The CUDA context, made on a thread of its own while ONNX Runtime loads.
//!
//! Making a process's CUDA context takes 250–350 ms on an H200 (`cuInit` and the primary context,
//! measured with `.ci/startup-probe.py`), and ONNX Runtime does it only when the CUDA provider is
//! registered, after its own library and the model have loaded. Started here first, the context
//! is ready (or nearly) by then: ONNX Runtime's CUDA runtime takes the same primary context
//! instead of making one. This is the only module that may use `unsafe`: it calls four CUDA
//! driver functions by hand (no crate in the tree wraps them), each with plain integer or
//! out-pointer arguments and its result checked.
#![allow(unsafe_code)]

use std::thread::JoinHandle;

use libloading::{Library, Symbol};

/// The CUDA driver library.
const DRIVER: &str = if cfg!(windows) {
    "nvcuda.dll"
} else {
    "libcuda.so.1"
};

type CuInit = unsafe extern "C" fn(flags: u32) -> i32;
type CuDeviceGet = unsafe extern "C" fn(device: *mut i32, ordinal: i32) -> i32;
type CuPrimaryCtxRetain =
    unsafe extern "C" fn(context: *mut *mut std::ffi::c_void, device: i32) -> i32;
type CuPrimaryCtxRelease = unsafe extern "C" fn(device: i32) -> i32;

/// A primary context this process holds, released on drop.
struct Held {
    driver: Library,
    device: i32,
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: the symbol has the driver's documented signature; `device` came from
        // cuDeviceGet and this context was retained once in `retain`, so one release balances it.
        // ONNX Runtime, if it uses the GPU, holds its own reference by now.
        unsafe {
            if let Ok(release) = self
                .driver
                .get::<CuPrimaryCtxRelease>(b"cuDevicePrimaryCtxRelease_v2\0")
            {
                release(self.device);
            }
        }
    }
}

/// Whether the NVIDIA driver library loads on this machine (without initialising CUDA).
pub fn driver_present() -> bool {
    // SAFETY: as in `retain`: the driver's initialisers are meant to run in any process.
    unsafe { Library::new(DRIVER) }.is_ok()
}

/// Retains GPU 0's primary context, or says nothing: a missing driver or GPU only means ONNX
/// Runtime will find the same and report it in words.
fn retain() -> Option<Held> {
    // SAFETY: loading the NVIDIA driver runs its initialisers, which are meant to be loaded
    // into any process.
    let driver = unsafe { Library::new(DRIVER) }.ok()?;
    // SAFETY: each symbol is looked up by its exported, versioned name and called with the
    // signature the CUDA driver API documents; out-pointers point at live locals.
    let device = unsafe {
        let init: Symbol<CuInit> = driver.get(b"cuInit\0").ok()?;
        if init(0) != 0 {
            return None;
        }
        let device_get: Symbol<CuDeviceGet> = driver.get(b"cuDeviceGet\0").ok()?;
        let mut device = 0;
        if device_get(&raw mut device, 0) != 0 {
            return None;
        }
        let retain: Symbol<CuPrimaryCtxRetain> = driver.get(b"cuDevicePrimaryCtxRetain\0").ok()?;
        let mut context = std::ptr::null_mut();
        if retain(&raw mut context, device) != 0 {
            return None;
        }
        device
    };
    Some(Held { driver, device })
}

/// The context being made in the background; drop it once the session is built.
#[derive(Default)]
pub struct ContextWarmup {
    thread: Option<JoinHandle<Option<Held>>>,
}

impl ContextWarmup {
    /// Starts making GPU 0's primary context on a thread of its own.
    pub fn start() -> Self {
        Self {
            thread: std::thread::Builder::new()
                .name("cuda-context".to_owned())
                .spawn(retain)
                .ok(),
        }
    }
}

impl Drop for ContextWarmup {
    fn drop(&mut self) {
        // Waits for the thread (it is done by the time a session is built) and lets go of the
        // context: the session holds its own.
        if let Some(thread) = self.thread.take() {
            drop(thread.join());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_warm_up_ends_without_blocking() {
        // On a machine without the NVIDIA driver (CI) the thread finds no library and ends at
        // once; on one with a GPU it makes a context (under a second on an H100), holds it and
        // releases it when dropped. Neither panics nor blocks.
        let started = std::time::Instant::now();
        drop(ContextWarmup::start());
        let limit = if driver_present() { 30 } else { 1 };
        assert!(
            started.elapsed() < std::time::Duration::from_secs(limit),
            "the warm-up took {:?} (driver present: {})",
            started.elapsed(),
            driver_present()
        );
    }
}
