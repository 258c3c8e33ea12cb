//! The queue of opened photos: thumbnail, name and status; click to show, × to remove.

use std::path::Path;

use crate::app::{AppState, Command, Entry, EntryStatus, Source};

/// Side of the thumbnail slot in points.
const THUMB_PT: f32 = 48.0;

/// The list of photos, with "Export all" and its progress.
pub(super) fn queue_ui(ui: &mut egui::Ui, state: &AppState, commands: &mut Vec<Command>) {
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
    let rows: Vec<(&str, Option<&Path>)> = state
        .entries
        .iter()
        .map(|e| match &e.source {
            Source::File(path) => (e.name.as_str(), Some(path.as_path())),
            Source::Pasted(_) => (e.name.as_str(), None),
        })
        .collect();
    let labels = row_labels(&rows);
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (entry, label) in state.entries.iter().zip(labels) {
            entry_row_ui(ui, entry, label, current == Some(entry.id), commands);
        }
    });
}

/// One photo: thumbnail, name (click to show), status and ×.
fn entry_row_ui(
    ui: &mut egui::Ui,
    entry: &Entry,
    label: String,
    selected: bool,
    commands: &mut Vec<Command>,
) {
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
            let name = ui
                .add(egui::Button::selectable(selected, label).truncate())
                .on_hover_text(match &entry.source {
                    Source::File(path) => path.display().to_string(),
                    Source::Pasted(_) => format!("{} (from the clipboard)", entry.name),
                });
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

fn status_ui(ui: &mut egui::Ui, status: &EntryStatus) {
    match status {
        EntryStatus::Pending => {
            ui.weak("pending");
        }
        EntryStatus::Done => {
            ui.label("done");
        }
        EntryStatus::Exported(path) => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            ui.add(egui::Label::new(format!("exported as {name}")).truncate())
                .on_hover_text(path.display().to_string());
        }
        EntryStatus::Failed(reason) => {
            ui.add(
                egui::Label::new(
                    egui::RichText::new(format!("failed: {reason}"))
                        .color(ui.visuals().error_fg_color),
                )
                .truncate(),
            )
            .on_hover_text(reason);
        }
    }
}

/// The queue's row labels: each photo's name, and where two share one, as many of their
/// folders' names as tell them apart (`car-1.jpg — a`, `car-1.jpg — b`).
fn row_labels(rows: &[(&str, Option<&Path>)]) -> Vec<String> {
    let folders = |path: Option<&Path>, depth: usize| -> String {
        let parts: Vec<String> = path
            .and_then(Path::parent)
            .map(|p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        parts[parts.len().saturating_sub(depth)..].join("/")
    };
    rows.iter()
        .map(|&(name, path)| {
            let twins: Vec<Option<&Path>> = rows
                .iter()
                .filter(|(n, p)| *n == name && *p != path)
                .map(|&(_, p)| p)
                .collect();
            if twins.is_empty() || path.is_none() {
                return name.to_owned();
            }
            let deepest = path.map_or(0, |p| p.components().count());
            let depth = (1..=deepest)
                .find(|&d| twins.iter().all(|&t| folders(t, d) != folders(path, d)))
                .unwrap_or(deepest);
            format!("{name} — {}", folders(path, depth))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_are_told_apart_by_their_folders() {
        let a = Path::new("/photos/2024/trip/car-1.jpg");
        let b = Path::new("/photos/2025/trip/car-1.jpg");
        let c = Path::new("/photos/other/car-1.jpg");
        let d = Path::new("/photos/other/horse.jpg");
        let rows = [
            ("car-1.jpg", Some(a)),
            ("car-1.jpg", Some(b)),
            ("car-1.jpg", Some(c)),
            ("horse.jpg", Some(d)),
            ("Pasted image 1", None),
        ];
        assert_eq!(
            row_labels(&rows),
            [
                "car-1.jpg — 2024/trip",
                "car-1.jpg — 2025/trip",
                "car-1.jpg — other",
                "horse.jpg",
                "Pasted image 1"
            ]
        );
    }
}
