//! The photo canvas: the GPU composite through a paint callback, with zoom (wheel, keys) and pan
//! (drag). Moving a slider changes only the uniforms of the next frame.

use eframe::egui_wgpu;

use crate::{
    app::{
        AppState, Command, Current, PaintEvent, Settings, UiCommand, ViewState,
        compositor::CompositeCallback,
    },
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
    match state.tool.filter(|_| state.can_touch_up()) {
        Some(_) => brush_input_ui(ui, &response, rect, size, current, settings, view, commands),
        None => {
            if response.dragged() {
                view.pan(rect, size, response.drag_delta());
            }
            if response.double_clicked() {
                *view = ViewState::default();
            }
        }
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

/// With a brush in hand: the primary button paints (in photo pixels, the brush's on-screen
/// radius at this zoom), Space+drag or the middle button pans, and the cursor is the brush's
/// footprint.
#[allow(clippy::too_many_arguments)]
fn brush_input_ui(
    ui: &egui::Ui,
    response: &egui::Response,
    rect: egui::Rect,
    size: [u32; 2],
    current: &Current,
    settings: &Settings,
    view: &mut ViewState,
    commands: &mut Vec<Command>,
) {
    let space = ui.input(|i| i.key_down(egui::Key::Space));
    if response.dragged_by(egui::PointerButton::Middle)
        || (space && response.dragged_by(egui::PointerButton::Primary))
    {
        view.pan(rect, size, response.drag_delta());
    }
    let to_photo = |pos: egui::Pos2| {
        let p = view.image_from_screen(rect, size, pos);
        [p.x, p.y]
    };
    let (pressed, down, hover, moves) = ui.input(|i| {
        let moves: Vec<egui::Pos2> = i
            .events
            .iter()
            .filter_map(|e| match e {
                egui::Event::PointerMoved(pos) => Some(*pos),
                _ => None,
            })
            .collect();
        (
            i.pointer.primary_pressed(),
            i.pointer.primary_down(),
            i.pointer.hover_pos(),
            moves,
        )
    });
    let painting = current.touchup.painter.is_some();
    let inside = hover.is_some_and(|p| rect.contains(p)) && response.hovered();
    if !painting && pressed && inside && !space {
        if let Some(at) = hover {
            commands.push(Command::Paint(PaintEvent::Begin {
                at: to_photo(at),
                radius_px: settings.brush.radius_pt / view.scale(rect, size),
            }));
        }
    } else if painting {
        if !moves.is_empty() {
            commands.push(Command::Paint(PaintEvent::To(
                moves.into_iter().map(to_photo).collect(),
            )));
        }
        if !down {
            commands.push(Command::Paint(PaintEvent::End));
        }
    }
    if let Some(pos) = hover.filter(|_| inside) {
        if space {
            ui.ctx().set_cursor_icon(egui::CursorIcon::Grab);
        } else {
            ui.ctx().set_cursor_icon(egui::CursorIcon::None);
            let r = settings.brush.radius_pt;
            let painter = ui.painter_at(rect);
            painter.circle_stroke(
                pos,
                r,
                egui::Stroke::new(3.0, egui::Color32::from_black_alpha(160)),
            );
            painter.circle_stroke(pos, r, egui::Stroke::new(1.5, egui::Color32::WHITE));
            let hard = r * settings.brush.hardness;
            if hard > 2.0 && hard < r - 2.0 {
                painter.circle_stroke(
                    pos,
                    hard,
                    egui::Stroke::new(1.0, egui::Color32::from_white_alpha(110)),
                );
            }
            painter.circle_filled(pos, 1.5, egui::Color32::WHITE);
        }
    }
}
