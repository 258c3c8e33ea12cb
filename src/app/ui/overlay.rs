//! The latency overlay: where the time of the last run went, min and median over recent runs,
//! UI frame time, what actually ran and why nothing faster, and FP32 against FP16.

use crate::{
    app::{AppState, EngineStatus, Settings, state::LatencyStats, stats::Samples},
    engine::Precision,
    finish::EdgeRunner,
};

/// The overlay's width; long reasons wrap.
const OVERLAY_WIDTH_PT: f32 = 330.0;

/// Draws the overlay in the canvas's top-left corner; a click folds it to one line (and
/// unfolds it), so that it never has to cover the subject.
pub(super) fn latency_overlay_ui(
    ui: &mut egui::Ui,
    canvas: egui::Rect,
    state: &AppState,
    settings: &mut Settings,
) {
    let shown = egui::Area::new(egui::Id::unique("latency overlay"))
        .fixed_pos(canvas.min + egui::vec2(8.0, 8.0))
        .order(egui::Order::Foreground)
        .sense(egui::Sense::click())
        .show(ui.ctx(), |ui| {
            egui::Frame::popup(ui.style())
                .fill(egui::Color32::from_black_alpha(190))
                .show(ui, |ui| {
                    ui.set_max_width(OVERLAY_WIDTH_PT);
                    ui.style_mut().override_text_style = Some(egui::TextStyle::Monospace);
                    ui.visuals_mut().override_text_color = Some(egui::Color32::from_gray(230));
                    if settings.overlay_folded {
                        ui.label(folded_line(state));
                    } else {
                        overlay_contents_ui(ui, state, settings);
                    }
                });
        });
    let response = shown.response.on_hover_text(if settings.overlay_folded {
        "Click to show the latency overlay"
    } else {
        "Click to fold the overlay to one line"
    });
    if response.clicked() {
        settings.overlay_folded = !settings.overlay_folded;
    }
}

/// The folded overlay: what ran and the median inference.
fn folded_line(state: &AppState) -> String {
    let what = match &state.engine {
        EngineStatus::Ready { model, report, .. } => {
            format!(
                "{model} · {} · {}",
                report.provider_name(),
                report.precision
            )
        }
        EngineStatus::Configuring { .. } => "loading…".to_owned(),
        EngineStatus::Failed(_) => "no model loaded".to_owned(),
    };
    match state.stats.infer.summary() {
        Some(s) => format!("{what} · {:.1} ms ▸", s.median),
        None => format!("{what} ▸"),
    }
}

fn overlay_contents_ui(ui: &mut egui::Ui, state: &AppState, settings: &Settings) {
    engine_lines_ui(ui, state);
    if settings.overlay_details {
        stage_table_ui(ui, state);
    } else {
        // Compact: the photo stays in view; View → "Every stage in the overlay" shows the table.
        compact_lines_ui(ui, &state.stats);
    }
    if let Some(line) = edges_line(state, settings) {
        ui.label(line);
    }
    if !settings.overlay_details
        && let Some(s) = state.stats.ui_frame.summary()
    {
        ui.label(format!("ui frame {:.2} ms, p99 {:.2}", s.median, s.p99));
    }
    precision_comparison_ui(ui, state, settings);
}

/// What ran on the photo on screen (model, provider, precision, input) and the start-up, or the
/// engine's state while it is not ready.
fn engine_lines_ui(ui: &mut egui::Ui, state: &AppState) {
    match &state.engine {
        EngineStatus::Ready {
            model,
            report,
            input_side_px,
            startup,
        } => {
            let ran = state.current.as_ref().and_then(|c| c.ran);
            let (provider, precision) = ran.map_or((report.provider, report.precision), |r| {
                (r.provider, r.precision)
            });
            let provider = if provider == report.provider {
                report.provider_name()
            } else {
                provider.to_string()
            };
            ui.label(format!(
                "{model} · {provider} · {precision} · {input_side_px}×{input_side_px} input"
            ));
            let mut line = format!(
                "start-up: prepare {:.0} ms, session {:.0} ms",
                startup.prepare_ms, startup.session_ms
            );
            if startup.first_run_ms >= 0.5 {
                line.push_str(&format!(", first run {:.0} ms", startup.first_run_ms));
            }
            ui.label(line);
        }
        EngineStatus::Configuring { what, fetch, .. } => {
            let done =
                fetch.map_or_else(String::new, |f| format!(" {:.0} %", f.fraction() * 100.0));
            let verb = if fetch.is_some() { "" } else { "loading " };
            ui.label(format!("{verb}{what}…{done}"));
        }
        EngineStatus::Failed(_) => {
            ui.label("no model loaded (the Engine panel says why)");
        }
    }
}

/// The medians of inference, pre- and postprocessing on one line.
fn compact_lines_ui(ui: &mut egui::Ui, stats: &LatencyStats) {
    let median = |s: &Samples| {
        s.summary()
            .map_or_else(|| "–".to_owned(), |s| format!("{:.1}", s.median))
    };
    ui.label(format!(
        "inference {} ms · pre {} · post {} (median)",
        median(&stats.infer),
        median(&stats.preprocess),
        median(&stats.postprocess)
    ));
}

/// Every stage's last, min and median time.
fn stage_table_ui(ui: &mut egui::Ui, state: &AppState) {
    let stats = &state.stats;
    egui::Grid::new("latency grid")
        .num_columns(4)
        .spacing([12.0, 2.0])
        .show(ui, |ui| {
            ui.label("stage ms");
            ui.label("last");
            ui.label("min");
            ui.label("median");
            ui.end_row();
            for (name, samples) in [
                ("decode", &stats.decode),
                ("preprocess", &stats.preprocess),
                ("upload", &stats.upload),
                ("inference", &stats.infer),
                ("postprocess", &stats.postprocess),
                ("textures", &stats.texture_upload),
            ] {
                row_ui(ui, name, samples);
            }
            let edges = match state.edges.runner {
                EdgeRunner::Cpu { .. } => "edges CPU",
                EdgeRunner::Gpu { .. } => "edges GPU",
            };
            row_ui(ui, edges, &stats.edges);
            if stats.composite_measurable {
                row_ui(ui, "composite GPU", &stats.composite_gpu);
            } else {
                ui.label("composite GPU");
                ui.label("–");
                ui.label("");
                ui.label("n/a").on_hover_text(
                    "this adapter has no timestamp queries inside render passes, so the GPU time of the composite draw cannot be measured",
                );
                ui.end_row();
            }
            ui.label("ui frame");
            match stats.ui_frame.summary() {
                Some(s) => {
                    ui.label(format!("{:.2}", s.last));
                    ui.label(format!("p99 {:.2}", s.p99));
                    ui.label(format!("{:.2}", s.median));
                }
                None => {
                    ui.label("–");
                }
            }
            ui.end_row();
        });
}

/// "edges: CPU, 2 threads · 212 ms": where the preview's edge passes run and the last run's time
/// (`None` when no edge pass is on).
fn edges_line(state: &AppState, settings: &Settings) -> Option<String> {
    let r = settings.composite.refine;
    if !r.guided && !r.foreground {
        return None;
    }
    let last = state
        .stats
        .edges
        .last()
        .map_or_else(String::new, |ms| format!(" · {ms:.0} ms"));
    Some(format!("edges: {}{last}", state.edges.runner))
}

fn row_ui(ui: &mut egui::Ui, name: &str, samples: &Samples) {
    ui.label(name);
    match samples.summary() {
        Some(s) => {
            ui.label(format!("{:.1}", s.last));
            ui.label(format!("{:.1}", s.min));
            ui.label(format!("{:.1}", s.median));
        }
        None => {
            ui.label("–");
            ui.label("");
            ui.label("");
        }
    }
    ui.end_row();
}

/// FP32 and FP16 side by side (median inference on the provider in use), the speed-up, and how
/// much the two masks of the photo on screen differ.
fn precision_comparison_ui(ui: &mut egui::Ui, state: &AppState, settings: &Settings) {
    let EngineStatus::Ready { report, .. } = &state.engine else {
        return;
    };
    let median = |p: Precision| {
        state
            .stats
            .infer_by_run
            .get(&(report.provider, p))
            .and_then(Samples::summary)
            .map(|s| s.median)
    };
    let (fp32, fp16) = (median(Precision::Fp32), median(Precision::Fp16));
    let show = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1} ms"));
    ui.separator();
    ui.label(format!(
        "inference on {}: FP32 {} | FP16 {}",
        report.provider_name(),
        show(fp32),
        show(fp16)
    ));
    match (fp32, fp16) {
        (Some(a), Some(b)) if b > 0.0 => {
            ui.label(format!("FP16 speed-up: {:.2}×", a / b));
        }
        _ => {
            let other = match settings.precision() {
                Precision::Fp16 => "FP32",
                Precision::Fp32 => "FP16",
            };
            ui.label(format!("switch to {other} to compare"));
        }
    }
    if let Some(d) = state.current.as_ref().and_then(|c| c.difference) {
        ui.label(format!(
            "masks differ: mean {:.2} levels, max {}, IoU {:.4}",
            d.mean_abs_levels, d.max_abs_levels, d.iou
        ));
    }
}
