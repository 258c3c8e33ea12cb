//! GPU time of the composite draw, measured with timestamp queries written inside egui's render
//! pass (needs `TIMESTAMP_QUERY` and `TIMESTAMP_QUERY_INSIDE_PASSES`; where the adapter lacks them
//! the overlay says "not measurable").
//!
//! A three-frame pipeline, so nothing ever waits: frame N writes two timestamps around the draw;
//! frame N+1 resolves them and copies them to a free readback buffer; frame N+2 (after that copy
//! was submitted) maps the buffer; a later frame reads it and frees it.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU8, Ordering},
};

/// Features the timer needs.
pub(super) const FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

const FREE: u8 = 0;
const COPIED: u8 = 1;
const MAPPING: u8 = 2;
const READY: u8 = 3;

struct Slot {
    buffer: wgpu::Buffer,
    state: Arc<AtomicU8>,
}

/// Timestamp queries around the composite draw.
pub struct GpuTimer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    slots: Vec<Slot>,
    written: AtomicBool,
    period_ns: f32,
    results_ms: Mutex<Vec<f64>>,
}

impl GpuTimer {
    /// A timer, if the device has the features.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Option<Self> {
        if !device.features().contains(FEATURES) {
            return None;
        }
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("cutout composite timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cutout composite timestamp resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let slots = (0..3)
            .map(|_| Slot {
                buffer: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("cutout composite timestamp readback"),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                state: Arc::new(AtomicU8::new(FREE)),
            })
            .collect();
        Some(Self {
            queries,
            resolve,
            slots,
            written: AtomicBool::new(false),
            period_ns: queue.get_timestamp_period(),
            results_ms: Mutex::new(Vec::new()),
        })
    }

    /// Before this frame's pass: collect finished readings, map copies submitted last frame, and
    /// resolve last frame's timestamps into a free slot.
    pub fn prepare(&self, encoder: &mut wgpu::CommandEncoder) {
        for slot in &self.slots {
            match slot.state.load(Ordering::Acquire) {
                READY => {
                    if let Ok(view) = slot.buffer.slice(..).get_mapped_range() {
                        let t0 = u64::from_le_bytes(view[0..8].try_into().unwrap_or_default());
                        let t1 = u64::from_le_bytes(view[8..16].try_into().unwrap_or_default());
                        drop(view);
                        if t1 > t0 {
                            #[allow(clippy::cast_precision_loss)]
                            let ms = (t1 - t0) as f64 * f64::from(self.period_ns) / 1e6;
                            if let Ok(mut results) = self.results_ms.lock() {
                                results.push(ms);
                            }
                        }
                    }
                    slot.buffer.unmap();
                    slot.state.store(FREE, Ordering::Release);
                }
                COPIED => {
                    slot.state.store(MAPPING, Ordering::Release);
                    let state = Arc::clone(&slot.state);
                    slot.buffer
                        .slice(..)
                        .map_async(wgpu::MapMode::Read, move |result| {
                            state.store(
                                if result.is_ok() { READY } else { FREE },
                                Ordering::Release,
                            );
                        });
                }
                _ => {}
            }
        }
        if self.written.swap(false, Ordering::AcqRel)
            && let Some(slot) = self
                .slots
                .iter()
                .find(|s| s.state.load(Ordering::Acquire) == FREE)
        {
            encoder.resolve_query_set(&self.queries, 0..2, &self.resolve, 0);
            encoder.copy_buffer_to_buffer(&self.resolve, 0, &slot.buffer, 0, 16);
            slot.state.store(COPIED, Ordering::Release);
        }
    }

    /// Timestamp before the draw.
    pub fn begin(&self, pass: &mut wgpu::RenderPass<'_>) {
        pass.write_timestamp(&self.queries, 0);
    }

    /// Timestamp after the draw.
    pub fn end(&self, pass: &mut wgpu::RenderPass<'_>) {
        pass.write_timestamp(&self.queries, 1);
        self.written.store(true, Ordering::Release);
    }

    /// Readings (milliseconds) that arrived since the last call.
    pub fn take_ms(&self) -> Vec<f64> {
        self.results_ms
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

/// The device the window asks for: the adapter's own texture limit (so photos are shown at full
/// resolution up to what the GPU can hold, not egui's default 8192 px) and, where available, the
/// timestamp features for [`GpuTimer`].
pub fn window_device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    let base = if adapter.get_info().backend == wgpu::Backend::Gl {
        wgpu::Limits::downlevel_webgl2_defaults()
    } else {
        wgpu::Limits::default()
    };
    wgpu::DeviceDescriptor {
        label: Some("cutout window device"),
        required_features: adapter.features() & FEATURES,
        required_limits: wgpu::Limits {
            max_texture_dimension_2d: adapter.limits().max_texture_dimension_2d,
            ..base
        },
        ..wgpu::DeviceDescriptor::default()
    }
}
