//! Copies between host and device tensors through ONNX Runtime's own `CopyTensors`, which uses the
//! data transfer a plugin provider registers with the environment (WebGPU's). `ort` copies only
//! to the devices it knows by name (CUDA and a few others), through a throw-away session per
//! device; this is the way for the rest.
//!
//! This module may use `unsafe`: it makes one call into ONNX Runtime's C API, which `ort` exposes
//! but does not wrap, with pointers to tensors that live for the whole call, and reads and
//! releases the status it returns.
#![allow(unsafe_code)]

use ort::{AsPointer as _, environment::Environment, value::Tensor};

/// Copies `src` into `dst` (same shape and type, any devices the environment can copy between),
/// synchronously.
pub(super) fn copy(
    env: &Environment,
    src: &Tensor<f32>,
    dst: &mut Tensor<f32>,
) -> Result<(), String> {
    if src.shape() != dst.shape() {
        return Err(format!(
            "cannot copy a {:?} tensor into a {:?} one",
            src.shape(),
            dst.shape()
        ));
    }
    let api = ort::api();
    let sources = [src.ptr()];
    let mut destinations = [dst.ptr_mut().cast_const()];
    // SAFETY: the environment, both tensors and both one-element arrays outlive the call, which
    // is synchronous (no stream); the shapes were checked equal and the element type is the
    // same by the tensors' types. `CopyTensors` (ONNX Runtime 1.23+) reads the sources and
    // writes into the destinations' existing buffers only.
    let status = unsafe {
        (api.CopyTensors)(
            env.ptr().cast_mut(),
            sources.as_ptr(),
            destinations.as_mut_ptr(),
            std::ptr::null_mut(),
            1,
        )
    };
    if status.0.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null status is a live `OrtStatus` that this caller owns: its message is a
    // NUL-terminated string valid until the status is released, which happens once, here.
    let message = unsafe {
        let text = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
            .to_string_lossy()
            .into_owned();
        (api.ReleaseStatus)(status.0);
        text
    };
    Err(message)
}
