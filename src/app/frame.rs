//! The per-frame logic: drain the worker and the tasks, apply commands, keep the preview's edge
//! passes in step, save changed settings. Never waits.

use std::time::{Duration, Instant};

use super::{CutoutApp, EngineStatus, compositor::Compositor, stats, tasks::TaskResult};
use crate::worker::Response;

/// How often changed settings are written at most.
const SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// Refinement runs that took longer than this (a CPU adapter on a large photo, say) would stall
/// every frame queued behind them, so on such an adapter a new run waits while the pointer is
/// held down (a slider being dragged) and starts when it is released, and goes one dispatch per
/// frame; faster runs follow the slider live, in one submission.
const SLOW_REFINE_MS: f64 = 50.0;

/// How the preview's refinement goes this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefinePace {
    /// Fast adapter (or no run yet to go by): the whole run in one submission.
    Whole,
    /// Slow adapter: one dispatch per frame.
    InParts,
    /// Slow adapter and the pointer is down: nothing new until it is released (the release is
    /// an input event, so it brings the next frame).
    Hold,
}

/// The pace for the last run's time and the pointer.
fn refine_pace(last_refine_ms: Option<f64>, pointer_down: bool) -> RefinePace {
    let slow = last_refine_ms.is_some_and(|ms| ms > SLOW_REFINE_MS);
    match (slow, pointer_down) {
        (false, _) => RefinePace::Whole,
        (true, false) => RefinePace::InParts,
        (true, true) => RefinePace::Hold,
    }
}

impl CutoutApp {
    pub(super) fn save_settings_if_changed(&mut self, force: bool) {
        if !self.store.persist || self.settings == self.store.saved {
            return;
        }
        if !force && self.store.last_save.elapsed() < SAVE_INTERVAL {
            return;
        }
        self.store.last_save = Instant::now();
        match self.settings.save(&self.dirs.config_dir) {
            Ok(()) => self.store.saved = self.settings.clone(),
            Err(e) => {
                // Say it once; keep running with the settings in memory.
                self.store.saved = self.settings.clone();
                self.state
                    .post(format!("settings were not saved: {e}"), true);
            }
        }
    }

    /// The per-frame logic: drain the worker and the tasks, apply commands. Never waits.
    pub(super) fn update_logic(&mut self, ctx: &egui::Context, frame: &eframe::Frame) {
        let painting = self
            .state
            .current
            .as_ref()
            .is_some_and(|c| c.touchup.painter.is_some());
        let stats = &mut self.state.stats;
        if let Some(cpu_s) = frame.info().cpu_usage {
            stats.ui_frame.push(f64::from(cpu_s) * 1e3);
            if painting {
                stats.paint_cpu.push(f64::from(cpu_s) * 1e3);
            }
        }
        let now = Instant::now();
        if painting && let Some(last) = stats.last_frame {
            stats.paint_interval.push((now - last).as_secs_f64() * 1e3);
        }
        stats.last_frame = Some(now);
        if let Some(log) = &mut self.stats_log {
            let device = self.render_state.as_ref().map(|rs| &rs.device);
            log.tick(&self.state.stats.ui_frame, device);
            ctx.request_repaint_after(stats::StatsLog::EVERY);
        }
        // One line per frame with CUTOUT_LOG=cutout=trace: its timestamps give frame intervals.
        tracing::trace!(cpu_ms = frame.info().cpu_usage.map(|s| s * 1e3), "frame");
        if let Some(rs) = &self.render_state
            && let Some((times, refine_times)) =
                Compositor::with(rs, |c, _, _| (c.take_gpu_ms(), c.take_refine_ms()))
        {
            for ms in times {
                self.state.stats.composite_gpu.push(ms);
            }
            for ms in refine_times {
                tracing::trace!(ms, "refinement finished");
                self.state.stats.edges.push(ms);
            }
        }
        self.upload_cpu_edges();
        let responses: Vec<Response> = self.link.worker.try_iter().collect();
        for response in responses {
            self.handle_response(response);
        }
        let results: Vec<TaskResult> = self.tasks.try_iter().collect();
        for result in results {
            self.handle_task(result);
        }
        self.handle_input(ctx);
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
        self.upload_edits();
        self.flush_outbox();
        if !self.link.outbox.is_empty()
            || matches!(self.state.engine, EngineStatus::Configuring { .. })
        {
            // Waiting for room in the worker's queue, or animating the progress line.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        self.refine_preview(ctx);
        self.save_settings_if_changed(false);
    }

    /// Keeps the preview's refined mask and foreground colours in step with the settings: the
    /// refinement passes run on the GPU, one run at a time, without re-running the network.
    pub(super) fn refine_preview(&mut self, ctx: &egui::Context) {
        let Some(rs) = &self.render_state else {
            return;
        };
        if self.edges.on_cpu() {
            self.edges.request(&self.settings.composite);
            return;
        }
        let pointer_down = ctx.input(|i| i.pointer.any_down());
        let pace = refine_pace(self.state.stats.edges.last(), pointer_down);
        if pace == RefinePace::Hold {
            tracing::trace!("refinement deferred while the pointer is down");
            return;
        }
        let settings = self.settings.composite;
        let in_parts = pace == RefinePace::InParts;
        let pending = Compositor::with(rs, |c, device, queue| {
            c.refine(device, queue, &settings, in_parts)
        })
        .unwrap_or(false);
        if pending {
            ctx.request_repaint_after(Duration::from_millis(5));
        }
    }

    /// Uploads the CPU edge path's finished runs into the cutout texture.
    pub(super) fn upload_cpu_edges(&mut self) {
        let Some(rs) = &self.render_state else {
            return;
        };
        for done in self.edges.take_done() {
            let ms = done.took.as_secs_f64() * 1e3;
            tracing::trace!(ms, "CPU edge passes finished");
            if let Some(Err(e)) =
                Compositor::with(rs, |c, _, queue| c.write_cutout(queue, &done.rgba))
            {
                self.state.post(e.to_string(), true);
                continue;
            }
            self.state.stats.edges.push(ms);
            self.state.edge_bands = Some(done.sizes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RefinePace, SLOW_REFINE_MS, refine_pace};

    #[test]
    fn slow_refinement_waits_for_the_pointer_then_goes_in_parts_and_fast_follows_it() {
        let slow = Some(SLOW_REFINE_MS * 40.0);
        let fast = Some(SLOW_REFINE_MS / 10.0);
        assert_eq!(refine_pace(slow, true), RefinePace::Hold);
        assert_eq!(refine_pace(slow, false), RefinePace::InParts);
        assert_eq!(refine_pace(fast, true), RefinePace::Whole);
        assert_eq!(refine_pace(fast, false), RefinePace::Whole);
        // Before the first run there is nothing to go by: the whole run at once.
        assert_eq!(refine_pace(None, true), RefinePace::Whole);
    }
}
