//! Panels and widgets. Each `*_ui` function draws from the app state and turns input into
//! [`Command`]s; settings that only cost a redraw (threshold, background…) are edited in place.

mod canvas;
mod controls;
mod overlay;
mod queue;

use crate::app::{AppState, Command, EngineStatus, Settings, ViewState};

/// Draws the whole window; returns the canvas rectangle (for zoom commands).
pub fn app_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &mut Settings,
    view: &mut ViewState,
    commands: &mut Vec<Command>,
) -> egui::Rect {
    egui::Panel::top("menu").show(ui, |ui| menu_bar_ui(ui, state, settings, commands));
    egui::Panel::bottom("status").show(ui, |ui| status_bar_ui(ui, state));
    egui::Panel::left("queue")
        .resizable(true)
        .default_size(220.0)
        .show(ui, |ui| queue::queue_ui(ui, state, commands));
    egui::Panel::right("controls")
        .resizable(false)
        .exact_size(280.0)
        .show(ui, |ui| {
            controls::controls_ui(ui, state, settings, commands);
        });
    let canvas = egui::CentralPanel::default()
        .frame(egui::Frame::NONE.fill(ui.visuals().extreme_bg_color))
        .show(ui, |ui| {
            let rect = canvas::canvas_ui(ui, state, settings, view, commands);
            if settings.show_overlay {
                overlay::latency_overlay_ui(ui, rect, state, settings);
            }
            rect
        })
        .inner;
    drop_overlay_ui(ui);
    canvas
}

fn menu_bar_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &mut Settings,
    commands: &mut Vec<Command>,
) {
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            if ui.button("Open photos…  (Ctrl+O)").clicked() {
                commands.push(Command::OpenDialog);
            }
            if ui.button("Paste image  (Ctrl+V)").clicked() {
                commands.push(Command::Paste);
            }
            ui.separator();
            let ready = state.has_cutout();
            if ui
                .add_enabled(ready, egui::Button::new("Export PNG  (Ctrl+S)"))
                .clicked()
            {
                commands.push(Command::Export);
            }
            if ui
                .add_enabled(ready, egui::Button::new("Export as…  (Ctrl+Shift+S)"))
                .clicked()
            {
                commands.push(Command::ExportAs);
            }
            if ui
                .add_enabled(
                    !state.entries.is_empty(),
                    egui::Button::new("Export all  (Ctrl+E)"),
                )
                .clicked()
            {
                commands.push(Command::ExportAll);
            }
            if ui.button("Choose export folder…").clicked() {
                commands.push(Command::ChooseExportFolder);
            }
            if ui
                .add_enabled(ready, egui::Button::new("Copy cutout  (Ctrl+C)"))
                .clicked()
            {
                commands.push(Command::Copy);
            }
            ui.separator();
            if ui.button("Quit  (Ctrl+Q)").clicked() {
                commands.push(Command::Quit);
            }
        });
        ui.menu_button("View", |ui| {
            if ui.button("Zoom in  (Ctrl++)").clicked() {
                commands.push(Command::ZoomIn);
            }
            if ui.button("Zoom out  (Ctrl+-)").clicked() {
                commands.push(Command::ZoomOut);
            }
            if ui.button("Fit  (Ctrl+0)").clicked() {
                commands.push(Command::ZoomFit);
            }
            if ui.button("Actual pixels  (Ctrl+1)").clicked() {
                commands.push(Command::ZoomActual);
            }
            ui.separator();
            ui.checkbox(&mut settings.show_overlay, "Latency overlay");
            ui.add_enabled(
                settings.show_overlay,
                egui::Checkbox::new(&mut settings.overlay_details, "Every stage in the overlay"),
            );
        });
    });
}

fn status_bar_ui(ui: &mut egui::Ui, state: &AppState) {
    ui.horizontal(|ui| {
        match &state.engine {
            EngineStatus::Configuring { what, since, fetch } => {
                ui.spinner();
                let step = fetch.map_or_else(
                    || "a TensorRT engine build can take minutes".to_owned(),
                    |f| format!("{:.0} %", f.fraction() * 100.0),
                );
                let verb = if fetch.is_some() { "" } else { "Loading " };
                ui.label(format!(
                    "{verb}{what}… {:.0} s ({step})",
                    since.elapsed().as_secs_f64()
                ));
            }
            EngineStatus::Ready { model, report, .. } => {
                ui.label(
                    egui::RichText::new(format!(
                        "{model} · {} · {}",
                        report.provider, report.precision
                    ))
                    .strong(),
                )
                .on_hover_text("the Engine panel says why faster providers are not used");
            }
            EngineStatus::Failed(error) => {
                ui.colored_label(ui.visuals().error_fg_color, "Model not loaded")
                    .on_hover_text(error);
            }
        }
        ui.separator();
        if let Some(message) = state.messages.last() {
            let color = if message.is_error {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.add(egui::Label::new(egui::RichText::new(&message.text).color(color)).truncate())
                .on_hover_text(&message.text);
        }
    });
}

/// A visible target while files are dragged over the window.
fn drop_overlay_ui(ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    let hovering = ctx.input(|i| i.raw.hovered_files.len());
    if hovering == 0 {
        return;
    }
    let screen = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop overlay"),
    ));
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(180));
    painter.rect_stroke(
        screen.shrink(12.0),
        12.0,
        egui::Stroke::new(3.0, ui.visuals().selection.bg_fill),
        egui::StrokeKind::Inside,
    );
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        format!(
            "Drop {} to add {} to the queue",
            if hovering == 1 { "it" } else { "them" },
            if hovering == 1 {
                "a photo or folder".to_owned()
            } else {
                format!("{hovering} items")
            }
        ),
        egui::FontId::proportional(24.0),
        egui::Color32::WHITE,
    );
}
