//! Recent timings for the latency overlay: last value, min, median and 99th percentile over a
//! sliding window.

use std::{collections::VecDeque, io::Write as _};

/// The last `capacity` samples of one quantity, in milliseconds.
#[derive(Debug, Clone)]
pub struct Samples {
    values: VecDeque<f64>,
    capacity: usize,
}

/// A summary of [`Samples`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The newest sample.
    pub last: f64,
    /// The smallest.
    pub min: f64,
    /// The median.
    pub median: f64,
    /// The 99th percentile (nearest rank).
    pub p99: f64,
    /// The largest.
    pub max: f64,
    /// How many samples.
    pub count: usize,
}

impl Samples {
    /// An empty window of `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        Self {
            values: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Adds a sample, dropping the oldest when full.
    pub fn push(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(ms);
    }

    /// The newest sample.
    pub fn last(&self) -> Option<f64> {
        self.values.back().copied()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.values.clear();
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Last, min, median, p99 and max; `None` when empty.
    pub fn summary(&self) -> Option<Summary> {
        let last = *self.values.back()?;
        let mut sorted: Vec<f64> = self.values.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        // Nearest-rank percentile: the smallest value with at least 99 % of samples at or below.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((0.99 * n as f64).ceil() as usize).clamp(1, n);
        Some(Summary {
            last,
            min: sorted[0],
            median,
            p99: sorted[rank - 1],
            max: sorted[n - 1],
            count: n,
        })
    }
}

/// For soak runs: with `CUTOUT_STATS_LOG=FILE` the app appends one JSON line to FILE every
/// [`StatsLog::EVERY`]: seconds since start, resident memory, UI frame times (median and p99 of
/// the last frames) and the GPU objects and memory wgpu holds.
pub struct StatsLog {
    file: std::fs::File,
    started: std::time::Instant,
    last: std::time::Instant,
}

impl StatsLog {
    /// How often a line is written.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// The log asked for by `CUTOUT_STATS_LOG`, if any (a file that cannot be opened is logged
    /// and skipped).
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("CUTOUT_STATS_LOG").filter(|p| !p.is_empty())?;
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => Some(Self {
                file,
                started: std::time::Instant::now(),
                last: std::time::Instant::now(),
            }),
            Err(e) => {
                tracing::warn!("CUTOUT_STATS_LOG: cannot open {}: {e}", path.display());
                None
            }
        }
    }

    /// Writes a line when one is due.
    pub fn tick(&mut self, frames: &Samples, device: Option<&wgpu::Device>) {
        if self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = std::time::Instant::now();
        let frame = frames.summary();
        let gpu = device.map(|d| {
            let hal = d.get_internal_counters().hal;
            serde_json::json!({
                "buffers": hal.buffers.read(),
                "textures": hal.textures.read(),
                "texture_views": hal.texture_views.read(),
                "bind_groups": hal.bind_groups.read(),
                "render_pipelines": hal.render_pipelines.read(),
                "compute_pipelines": hal.compute_pipelines.read(),
                "buffer_memory_mb": hal.buffer_memory.read() as f64 / 1e6,
                "texture_memory_mb": hal.texture_memory.read() as f64 / 1e6,
                "memory_allocations": hal.memory_allocations.read(),
            })
        });
        let line = serde_json::json!({
            "t_s": self.started.elapsed().as_secs_f64(),
            "resident_mb": crate::memory::resident_bytes().map(|b| b as f64 / 1e6),
            "frame_ms_median": frame.map(|f| f.median),
            "frame_ms_p99": frame.map(|f| f.p99),
            "frames": frame.map(|f| f.count),
            "gpu": gpu,
        });
        if let Err(e) = writeln!(self.file, "{line}") {
            tracing::warn!("CUTOUT_STATS_LOG: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_window() {
        let mut s = Samples::new(100);
        assert!(s.summary().is_none());
        for v in 1..=100 {
            s.push(f64::from(v));
        }
        let sum = s.summary().unwrap();
        assert_eq!(sum.min, 1.0);
        assert_eq!(sum.max, 100.0);
        assert_eq!(sum.median, 50.5);
        assert_eq!(sum.p99, 99.0);
        assert_eq!(sum.last, 100.0);
        s.push(1000.0);
        let sum = s.summary().unwrap();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.min, 2.0, "the oldest sample is dropped");
        assert_eq!(sum.max, 1000.0);
        s.push(f64::NAN);
        assert_eq!(s.len(), 100);
    }
}
