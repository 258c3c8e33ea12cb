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
pub(super) fn canvas_ui(
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
        empty_canvas_ui(ui, rect, &response, state, commands);
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
        split_line_ui(ui, rect, split, commands);
    }
    // The zoom, in the corner the overlay leaves free: screen pixels per photo pixel.
    let zoom_percent = view.scale(rect, size) * ui.ctx().pixels_per_point() * 100.0;
    chip_ui(
        ui,
        rect.right_bottom() + egui::vec2(-8.0, -8.0),
        egui::Align2::RIGHT_BOTTOM,
        &format!("{zoom_percent:.0} %"),
    );
    if !current.busy
        && current.mask.is_none()
        && matches!(state.engine, crate::app::EngineStatus::Failed(_))
    {
        // The photo is here but no network can run: say so over it, not nothing.
        waiting_note_ui(ui, rect);
    }
    if current.busy && current.mask.is_none() {
        let spot = egui::Rect::from_center_size(rect.center(), egui::vec2(32.0, 32.0));
        ui.put(spot, egui::Spinner::new().size(32.0));
    }
    rect
}

/// The canvas with no photo to show: why (it could not be opened, it waits for the model, it is
/// loading), or how to add one; a double click opens the dialog.
fn empty_canvas_ui(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    response: &egui::Response,
    state: &AppState,
    commands: &mut Vec<Command>,
) {
    let failed = state.current_entry().and_then(|e| match &e.status {
        crate::app::EntryStatus::Failed(reason) => Some(reason),
        _ => None,
    });
    if let Some(reason) = failed {
        canvas_message_ui(
            ui,
            rect,
            "This photo could not be opened",
            Some(reason),
            Some("Remove it from the list with ×, or open another copy of the photo."),
        );
        return;
    }
    let text = match &state.current {
        Some(c) if !c.busy && c.photo.is_none() => {
            "This photo waits for the model to load (see the Engine panel)".to_owned()
        }
        Some(_) => "Loading the photo…".to_owned(),
        None => format!(
            "Drop photos here, paste one ({}), or open some ({})",
            UiCommand::Paste.shortcut_text(ui.ctx()).unwrap_or_default(),
            UiCommand::Open.shortcut_text(ui.ctx()).unwrap_or_default()
        ),
    };
    canvas_message_ui(ui, rect, &text, None, None);
    if response.double_clicked() {
        commands.push(Command::OpenDialog);
    }
}

/// A note over the photo that it waits for the model.
fn waiting_note_ui(ui: &mut egui::Ui, rect: egui::Rect) {
    let note =
        egui::Rect::from_center_size(rect.center(), egui::vec2(rect.width().min(460.0), 64.0));
    let mut child = ui.new_child(egui::UiBuilder::new().max_rect(note));
    egui::Frame::popup(child.style())
        .fill(egui::Color32::from_black_alpha(200))
        .show(&mut child, |ui| {
            ui.visuals_mut().override_text_color = Some(egui::Color32::from_gray(235));
            ui.add(
                egui::Label::new("This photo waits for the model to load (see the Engine panel)")
                    .wrap(),
            );
        });
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

/// The before/after line: drag it (or the Split slider) to move it; its labels sit at the
/// bottom, clear of the latency overlay.
fn split_line_ui(ui: &mut egui::Ui, rect: egui::Rect, split: f32, commands: &mut Vec<Command>) {
    let x = rect.left() + rect.width() * split;
    let grip = egui::Rect::from_x_y_ranges(x - 6.0..=x + 6.0, rect.y_range());
    let response = ui.interact(grip, egui::Id::unique("split line"), egui::Sense::drag());
    if response.hovered() || response.dragged() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
    }
    if response.dragged()
        && let Some(pointer) = response.interact_pointer_pos()
    {
        let at = ((pointer.x - rect.left()) / rect.width().max(1.0)).clamp(0.0, 1.0);
        commands.push(Command::SetSplit(at));
    }
    let width = if response.hovered() || response.dragged() {
        3.0
    } else {
        2.0
    };
    ui.painter().vline(
        x,
        rect.y_range(),
        egui::Stroke::new(width, egui::Color32::WHITE),
    );
    let bottom = rect.bottom() - 8.0;
    chip_ui(
        ui,
        egui::pos2(x - 8.0, bottom),
        egui::Align2::RIGHT_BOTTOM,
        "before",
    );
    chip_ui(
        ui,
        egui::pos2(x + 8.0, bottom),
        egui::Align2::LEFT_BOTTOM,
        "after",
    );
}

/// A short white label on a dark pill, readable over any photo.
fn chip_ui(ui: &egui::Ui, at: egui::Pos2, align: egui::Align2, text: &str) {
    let painter = ui.painter();
    let galley = painter.layout_no_wrap(
        text.to_owned(),
        egui::FontId::proportional(13.0),
        egui::Color32::WHITE,
    );
    let rect = align
        .anchor_size(at, galley.size())
        .expand2(egui::vec2(6.0, 3.0));
    painter.rect_filled(rect, 4.0, egui::Color32::from_black_alpha(150));
    painter.galley(
        rect.shrink2(egui::vec2(6.0, 3.0)).min,
        galley,
        egui::Color32::WHITE,
    );
}

/// A message in the middle of the canvas (no photo yet, one loading, or one that failed: why,
/// and what to do), as labels that screen readers and tests can read.
fn canvas_message_ui(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    heading: &str,
    reason: Option<&str>,
    next: Option<&str>,
) {
    let inner = rect.shrink2(egui::vec2(rect.width() * 0.12, 0.0));
    let mut child =
        ui.new_child(egui::UiBuilder::new().max_rect(inner).layout(
            egui::Layout::top_down(egui::Align::Center).with_main_align(egui::Align::Center),
        ));
    let color = if reason.is_some() {
        child.visuals().error_fg_color
    } else {
        child.visuals().weak_text_color()
    };
    child.add_space((rect.height() / 2.0 - 40.0).max(0.0));
    child.label(egui::RichText::new(heading).size(18.0).color(color));
    if let Some(reason) = reason {
        child.add(egui::Label::new(reason).wrap());
    }
    if let Some(next) = next {
        child.weak(next);
    }
}
