//! The photo canvas: the GPU composite through a paint callback, with zoom (wheel, keys) and pan
//! (drag). Moving a slider changes only the uniforms of the next frame.

use eframe::egui_wgpu;

use crate::{
    app::{AppState, Command, Settings, UiCommand, ViewState, compositor::CompositeCallback},
    render::{PreviewOptions, Uniforms},
};

/// Checkerboard square in points.
const CHECKER_PT: f32 = 10.0;

/// Draws the canvas; returns its rectangle.
pub fn canvas_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &Settings,
    view: &mut ViewState,
    commands: &mut Vec<Command>,
) -> egui::Rect {
    let (rect, response) =
        ui.allocate_exact_size(ui.available_size(), egui::Sense::click_and_drag());
    let current = state.current.as_ref();
    let Some((current, size)) = current.and_then(|c| Some((c, c.texture_size?))) else {
        let text = match current {
            Some(_) => "Loading the photo…".to_owned(),
            None => format!(
                "Drop photos here, paste one ({}), or open some ({})",
                UiCommand::Paste.shortcut_text(ui.ctx()).unwrap_or_default(),
                UiCommand::Open.shortcut_text(ui.ctx()).unwrap_or_default()
            ),
        };
        ui.painter().text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            text,
            egui::FontId::proportional(18.0),
            ui.visuals().weak_text_color(),
        );
        if response.double_clicked() {
            commands.push(Command::OpenDialog);
        }
        return rect;
    };

    if response.hovered() {
        let (scroll, pointer) = ui.input(|i| (i.smooth_scroll_delta.y, i.pointer.hover_pos()));
        if scroll != 0.0
            && let Some(pointer) = pointer
        {
            view.zoom_at(rect, size, pointer, (scroll / 200.0).exp());
        }
    }
    if response.dragged() {
        view.pan(rect, size, response.drag_delta());
    }
    if response.double_clicked() {
        *view = ViewState::default();
    }

    let options = PreviewOptions {
        mask_only: settings.mask_only,
        split: settings.split_enabled.then_some(settings.split),
        photo_only: current.mask.is_none(),
    };
    let uniforms = Uniforms::preview(
        &settings.composite,
        view.image_view(rect, size),
        options,
        CHECKER_PT * ui.ctx().pixels_per_point(),
    );
    let shown = current.mask.is_some().then(|| current.shown.clone());
    ui.painter().add(egui_wgpu::Callback::new_paint_callback(
        rect,
        CompositeCallback { uniforms, shown },
    ));

    if let Some(split) = options.split {
        let x = rect.left() + rect.width() * split;
        ui.painter().vline(
            x,
            rect.y_range(),
            egui::Stroke::new(2.0, egui::Color32::WHITE),
        );
        ui.painter().text(
            egui::pos2(x - 6.0, rect.top() + 6.0),
            egui::Align2::RIGHT_TOP,
            "before",
            egui::FontId::proportional(13.0),
            egui::Color32::WHITE,
        );
        ui.painter().text(
            egui::pos2(x + 6.0, rect.top() + 6.0),
            egui::Align2::LEFT_TOP,
            "after",
            egui::FontId::proportional(13.0),
            egui::Color32::WHITE,
        );
    }
    if current.busy && current.mask.is_none() {
        let spot = egui::Rect::from_center_size(rect.center(), egui::vec2(32.0, 32.0));
        ui.put(spot, egui::Spinner::new().size(32.0));
    }
    rect
}
