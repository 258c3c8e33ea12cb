//! The window's graphics backend: the platform's first choice, and the next one when it cannot
//! draw. A driver can fail late: under Wine, Direct3D 12 creates a device but has no shader
//! compiler, so the first pipeline fails and the device is lost; a broken Windows driver ends the
//! same way. Each backend is therefore tried as far as building the window's own composite
//! pipeline; the first that gets there is handed to eframe as it is (no second device is made),
//! and the ones passed over are reported with their reasons.
//!
//! `WGPU_BACKEND` (wgpu's own variable) still picks one backend and skips the trial.

use std::sync::{Arc, Mutex};

use crate::render::{Output, Pipeline, window_device_descriptor};

/// The backends tried, in order, on this platform.
fn candidates() -> Vec<wgpu::Backends> {
    if cfg!(windows) {
        vec![
            wgpu::Backends::DX12,
            wgpu::Backends::VULKAN,
            wgpu::Backends::GL,
        ]
    } else if cfg!(target_os = "macos") {
        vec![wgpu::Backends::METAL]
    } else {
        vec![wgpu::Backends::VULKAN, wgpu::Backends::GL]
    }
}

/// A backend's name for people.
pub(super) fn name(backends: wgpu::Backends) -> &'static str {
    match backends {
        wgpu::Backends::DX12 => "Direct3D 12",
        wgpu::Backends::VULKAN => "Vulkan",
        wgpu::Backends::METAL => "Metal",
        wgpu::Backends::GL => "OpenGL",
        _ => "the default backends",
    }
}

/// How the window gets its GPU objects, and the backends passed over on the way (with why).
pub(super) struct Choice {
    /// For eframe.
    pub setup: egui_wgpu::WgpuSetup,
    /// `Direct3D 12: Parent device is lost`, one per backend that could not draw.
    pub passed_over: Vec<String>,
    /// `Vulkan: llvmpipe (LLVM 15.0.6, 256 bits)`, when the trial chose it.
    pub drawing_with: Option<String>,
}

/// Tries the backends in order. OpenGL, the last resort, is left to eframe (it needs the
/// window's display connection to start), as is everything when `WGPU_BACKEND` is set.
pub(super) fn choose() -> Choice {
    let create_new = |backends: wgpu::Backends| {
        let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
        setup.instance_descriptor.backends = backends;
        setup.device_descriptor = Arc::new(window_device_descriptor);
        egui_wgpu::WgpuSetup::CreateNew(setup)
    };
    let mut passed_over = Vec::new();
    if let Some(forced) = wgpu::Backends::from_env() {
        return Choice {
            setup: create_new(forced),
            passed_over,
            drawing_with: None,
        };
    }
    for backends in candidates() {
        if backends == wgpu::Backends::GL {
            return Choice {
                setup: create_new(backends),
                passed_over,
                drawing_with: Some(name(backends).to_owned()),
            };
        }
        match trial(backends) {
            Ok(existing) => {
                let adapter = existing.adapter.get_info().name;
                return Choice {
                    setup: egui_wgpu::WgpuSetup::Existing(existing),
                    passed_over,
                    drawing_with: Some(format!("{}: {adapter}", name(backends))),
                };
            }
            Err(why) => passed_over.push(format!("{}: {why}", name(backends))),
        }
    }
    Choice {
        setup: create_new(wgpu::Backends::all()),
        passed_over,
        drawing_with: None,
    }
}

/// Opens `backends`' best adapter and a device on it, and builds the composite pipeline there.
fn trial(backends: wgpu::Backends) -> Result<egui_wgpu::WgpuSetupExisting, String> {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends;
    let instance = wgpu::Instance::new(descriptor);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference:
            wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
        ..wgpu::RequestAdapterOptions::default()
    }))
    .map_err(|e| format!("no adapter ({e})"))?;
    let (device, queue) =
        pollster::block_on(adapter.request_device(&window_device_descriptor(&adapter)))
            .map_err(|e| format!("no device ({e})"))?;
    let lost: Arc<Mutex<Option<String>>> = Arc::default();
    let sink = Arc::clone(&lost);
    device.set_device_lost_callback(move |_, message| {
        if let Ok(mut slot) = sink.lock() {
            *slot = Some(message);
        }
    });
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let pipeline = Pipeline::new(&device, wgpu::TextureFormat::Bgra8Unorm, Output::Preview);
    let internal_error = pollster::block_on(internal.pop());
    let validation_error = pollster::block_on(scope.pop());
    drop(pipeline);
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    if let Some(message) = lost.lock().ok().and_then(|slot| slot.clone()) {
        return Err(format!("the device was lost ({message})"));
    }
    if let Some(e) = internal_error.or(validation_error) {
        return Err(first_line(&e.to_string()));
    }
    Ok(egui_wgpu::WgpuSetupExisting {
        instance,
        adapter,
        device,
        queue,
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(text)
        .to_owned()
}
