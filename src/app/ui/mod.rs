//! Panels and widgets. Each `*_ui` function draws from the app state and turns input into
//! [`Command`]s; settings that only cost a redraw (threshold, background…) are edited in place.

mod canvas;
mod controls;
mod overlay;
mod queue;

use crate::app::{
    AppState, Command, EngineStatus, Settings, UiCommand, ViewState, command_table::Menu,
};

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
    if state.show_about {
        about_ui(ui.ctx(), state, commands);
    }
    canvas
}

fn menu_bar_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &mut Settings,
    commands: &mut Vec<Command>,
) {
    egui::MenuBar::new().ui(ui, |ui| {
        for menu in Menu::ALL {
            ui.menu_button(menu.title(), |ui| {
                for command in menu.commands() {
                    if command.starts_group() {
                        ui.separator();
                    }
                    command_button_ui(ui, state, command, commands);
                    if command == UiCommand::OpenFolder {
                        recent_folders_ui(ui, settings, commands);
                    }
                }
                if menu == Menu::View {
                    ui.separator();
                    ui.checkbox(&mut settings.show_overlay, "Latency overlay");
                    ui.add_enabled(
                        settings.show_overlay,
                        egui::Checkbox::new(
                            &mut settings.overlay_details,
                            "Every stage in the overlay",
                        ),
                    );
                }
            });
        }
        ui.menu_button("Help", |ui| {
            shortcuts_help_ui(ui);
            ui.separator();
            if ui.button("About cutout").clicked() {
                commands.push(Command::ShowAbout(true));
            }
        });
    });
}

/// File → Open recent: the folders photos came from lately.
fn recent_folders_ui(ui: &mut egui::Ui, settings: &Settings, commands: &mut Vec<Command>) {
    ui.add_enabled_ui(!settings.recent_folders.is_empty(), |ui| {
        ui.menu_button("Open recent", |ui| {
            for folder in &settings.recent_folders {
                let name = folder.file_name().map_or_else(
                    || folder.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                if ui
                    .button(name)
                    .on_hover_text(folder.display().to_string())
                    .clicked()
                {
                    commands.push(Command::Add(vec![folder.clone()]));
                }
            }
        });
    });
}

/// Help → About: the version, the licence, and what runs underneath.
fn about_ui(ctx: &egui::Context, state: &AppState, commands: &mut Vec<Command>) {
    let mut open = true;
    egui::Window::new("About cutout")
        .open(&mut open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            ui.heading(format!("cutout {}", env!("CARGO_PKG_VERSION")));
            ui.label(env!("CARGO_PKG_DESCRIPTION"));
            ui.label(format!("Licence: {}", env!("CARGO_PKG_LICENSE")));
            ui.label(format!(
                "ONNX Runtime: {}",
                crate::engine::runtime::loaded_version()
                    .unwrap_or_else(|| "not loaded yet".to_owned())
            ));
            ui.label(format!("Drawing with: {}", state.adapter));
            ui.weak("`cutout doctor` lists providers, libraries, models and folders.");
        });
    if !open {
        commands.push(Command::ShowAbout(false));
    }
}

/// A menu entry for a command from the table: its label, its shortcut, enabled when it can run.
fn command_button_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    command: UiCommand,
    commands: &mut Vec<Command>,
) {
    let mut button = match command.selected(state) {
        Some(selected) => egui::Button::selectable(selected, command.label()),
        None => egui::Button::new(command.label()),
    };
    if let Some(keys) = command.shortcut_text(ui.ctx()) {
        button = button.shortcut_text(keys);
    }
    if ui
        .add_enabled(command.enabled(state), button)
        .on_hover_text(command.help())
        .clicked()
    {
        commands.push(command.command(state));
    }
}

/// Every command with its shortcut and what it does, from the command table.
fn shortcuts_help_ui(ui: &mut egui::Ui) {
    ui.strong("Keyboard shortcuts");
    egui::Grid::new("shortcuts")
        .num_columns(3)
        .striped(true)
        .show(ui, |ui| {
            for command in UiCommand::ALL {
                ui.label(command.label());
                ui.label(command.shortcut_text(ui.ctx()).unwrap_or_default());
                ui.weak(command.help());
                ui.end_row();
            }
        });
}

fn status_bar_ui(ui: &mut egui::Ui, state: &AppState) {
    ui.horizontal(|ui| {
        match &state.engine {
            EngineStatus::Configuring { what, since, fetch } => {
                ui.spinner();
                let step = fetch.map_or_else(
                    || "a TensorRT or TensorRT-RTX engine build can take minutes".to_owned(),
                    |f| format!("{:.0} %", f.fraction() * 100.0),
                );
                let verb = if fetch.is_some() { "" } else { "Loading " };
                let text = format!(
                    "{verb}{what}… {:.0} s ({step})",
                    since.elapsed().as_secs_f64()
                );
                ui.add(egui::Label::new(&text).truncate())
                    .on_hover_text(text);
            }
            EngineStatus::Ready { model, report, .. } => {
                ui.label(
                    egui::RichText::new(format!(
                        "{model} · {} · {}",
                        report.provider_name(),
                        report.precision
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
        // Messages belong to the photo on screen (or to none) and fade; a photo's failure
        // stays on its row and on the canvas.
        if let Some((message, left)) = state.status_message(std::time::Instant::now()) {
            let color = if message.is_error {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.add(egui::Label::new(egui::RichText::new(&message.text).color(color)).truncate())
                .on_hover_text(&message.text);
            ui.ctx().request_repaint_after(left);
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
