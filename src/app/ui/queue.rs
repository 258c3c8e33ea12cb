//! The queue of opened photos: thumbnail, name and status; click to show, × to remove.

use crate::app::{AppState, Command, EntryStatus};

/// Side of the thumbnail slot in points.
const THUMB_PT: f32 = 48.0;

/// The list of photos, with "Export all" and its progress.
pub fn queue_ui(ui: &mut egui::Ui, state: &AppState, commands: &mut Vec<Command>) {
    ui.heading("Photos");
    let (done, failed) = state.counts();
    ui.label(format!(
        "{} photos · {done} done · {failed} failed",
        state.entries.len()
    ));
    ui.horizontal(|ui| {
        if ui.button("Open…").clicked() {
            commands.push(Command::OpenDialog);
        }
        if ui
            .add_enabled(!state.entries.is_empty(), egui::Button::new("Export all"))
            .clicked()
        {
            commands.push(Command::ExportAll);
        }
    });
    if let Some(p) = state.export_progress {
        #[allow(clippy::cast_precision_loss)]
        let fraction = (p.done + p.failed) as f32 / p.total.max(1) as f32;
        ui.add(egui::ProgressBar::new(fraction).text(format!(
            "Exporting {} of {}",
            p.done + p.failed,
            p.total
        )));
    }
    ui.separator();
    if state.entries.is_empty() {
        ui.weak("Drop photos or folders anywhere on the window, paste an image, or use Open.");
        return;
    }
    let current = state.current.as_ref().map(|c| c.entry);
    egui::ScrollArea::vertical().show(ui, |ui| {
        for entry in &state.entries {
            let selected = current == Some(entry.id);
            let row = ui.horizontal(|ui| {
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(THUMB_PT, THUMB_PT), egui::Sense::hover());
                match &entry.thumbnail {
                    Some(t) => {
                        let size = t.size_vec2();
                        let scale = (THUMB_PT / size.x.max(size.y)).min(1.0);
                        let shown = egui::Rect::from_center_size(rect.center(), size * scale);
                        ui.painter().image(
                            t.id(),
                            shown,
                            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                            egui::Color32::WHITE,
                        );
                    }
                    None => {
                        ui.painter()
                            .rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
                    }
                }
                ui.vertical(|ui| {
                    let name = ui.add(egui::Button::selectable(selected, &entry.name).truncate());
                    if name.clicked() {
                        commands.push(Command::Select(entry.id));
                    }
                    status_ui(ui, &entry.status);
                });
                if ui
                    .small_button("×")
                    .on_hover_text("Remove from the list")
                    .clicked()
                {
                    commands.push(Command::Remove(entry.id));
                }
            });
            if row.response.interact(egui::Sense::click()).clicked() {
                commands.push(Command::Select(entry.id));
            }
        }
    });
}

fn status_ui(ui: &mut egui::Ui, status: &EntryStatus) {
    match status {
        EntryStatus::Pending => {
            ui.weak("pending");
        }
        EntryStatus::Done => {
            ui.label("done");
        }
        EntryStatus::Exported(path) => {
            ui.label("exported")
                .on_hover_text(path.display().to_string());
        }
        EntryStatus::Failed(reason) => {
            ui.colored_label(ui.visuals().error_fg_color, "failed")
                .on_hover_text(reason);
        }
    }
}
