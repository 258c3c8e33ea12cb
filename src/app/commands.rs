//! Applying a [`Command`] to the app, and turning keys, drops and clipboard events into
//! commands (the table of named commands is `command_table.rs`).

use std::path::PathBuf;

use super::{
    CutoutApp, EngineStatus, ViewState,
    command_table::{Command, shortcuts_most_specific_first},
    settings::Choice,
    tasks::AfterFolder,
};
impl CutoutApp {
    // ---- commands ---------------------------------------------------------------------------

    pub(super) fn apply(&mut self, command: Command) {
        match command {
            Command::OpenDialog => self.open_dialog(false),
            Command::OpenFolderDialog => self.open_dialog(true),
            Command::Add(paths) => self.add_paths(&paths),
            Command::Select(entry) => {
                if self.state.current.as_ref().map(|c| c.entry) != Some(entry) {
                    self.select(entry);
                }
            }
            Command::Remove(entry) => self.remove(entry),
            Command::Export => self.export_current(),
            Command::ExportAs => self.export_as(),
            Command::ExportAll => self.export_all(),
            Command::ChooseExportFolder => self.ask_export_folder(AfterFolder::Remember),
            Command::SetExportFolder(dir) => self.set_export_folder(dir),
            Command::Copy => self.copy_current(),
            Command::Paste => {
                self.ctx
                    .send_viewport_cmd(egui::ViewportCommand::RequestPaste);
            }
            Command::SetPrecision(precision) => {
                if self.settings.set_precision(precision) {
                    self.configure();
                }
            }
            Command::SetProvider(provider) => {
                if self.settings.provider != provider {
                    self.settings.provider = provider;
                    self.configure();
                }
            }
            Command::SetModel(model) => {
                if self.settings.model_name() != model {
                    self.settings.model = Choice::Fixed(model);
                    self.configure();
                }
            }
            Command::CancelFetch => self.link.worker.cancel_configure(),
            Command::RetryEngine => self.configure(),
            Command::SetSplit(at) => self.settings.split = at.clamp(0.0, 1.0),
            Command::ShowAbout(shown) => self.state.show_about = shown,
            Command::SetLive(live) => {
                self.state.live = live;
                let idle = self.state.current.as_ref().is_some_and(|c| !c.busy);
                if live && idle && matches!(self.state.engine, EngineStatus::Ready { .. }) {
                    self.rerun_current();
                }
            }
            Command::ZoomIn | Command::ZoomOut | Command::ZoomFit | Command::ZoomActual => {
                self.zoom(&command);
            }
            Command::PickBrush(mode) => self.pick_brush(mode),
            Command::ResizeBrush(factor) => self.settings.brush.resize(factor),
            Command::Paint(event) => self.paint(event),
            Command::Edit(step) => self.edit_step(step),
            Command::Quit => self.ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }

    pub(super) fn zoom(&mut self, command: &Command) {
        let Some(size) = self.state.current.as_ref().and_then(|c| c.texture_size) else {
            return;
        };
        let canvas = self.canvas_rect;
        match command {
            Command::ZoomIn => self.view.zoom_at(canvas, size, canvas.center(), 1.25),
            Command::ZoomOut => self.view.zoom_at(canvas, size, canvas.center(), 0.8),
            Command::ZoomFit => self.view = ViewState::default(),
            _ => self.view.actual_size(size, self.ctx.pixels_per_point()),
        }
    }

    /// Keyboard shortcuts, dropped files and clipboard events.
    pub(super) fn handle_input(&mut self, ctx: &egui::Context) {
        let mut commands = Vec::new();
        // A plain key (B, E, [, ]) is text while a text field has the keyboard.
        let typing = ctx.egui_wants_keyboard_input();
        ctx.input_mut(|i| {
            for (command, shortcut) in shortcuts_most_specific_first() {
                if typing && shortcut.modifiers.is_none() {
                    continue;
                }
                if i.consume_shortcut(&shortcut) {
                    commands.push(command.command(&self.state));
                }
            }
        });
        let (dropped, events) = ctx.input(|i| (i.raw.dropped_files.clone(), i.events.clone()));
        let paths: Vec<PathBuf> = dropped
            .iter()
            .map(|f| f.path().to_path_buf())
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            commands.push(Command::Add(paths));
        }
        for event in events {
            match event {
                egui::Event::Copy => commands.push(Command::Copy),
                egui::Event::PasteImage(image) => self.paste_image(&image),
                egui::Event::Paste(text) => self.paste_text(&text),
                _ => {}
            }
        }
        self.commands.extend(commands);
    }
}
