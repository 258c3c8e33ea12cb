//! Export and Copy: names and folders, Export all, and the file dialogs' results.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    CutoutApp, Entry, EntryStatus, Purpose, Source, Topic, state,
    tasks::{self, AfterFolder, TaskResult},
};
use crate::{
    batch,
    image_ops::Target,
    worker::{ExportSource, Request},
};

impl CutoutApp {
    pub(super) fn bump_export(&mut self, ok: bool) {
        if let Some(p) = &mut self.state.export_progress {
            if ok {
                p.done += 1;
            } else {
                p.failed += 1;
            }
            if p.done + p.failed >= p.total {
                let (done, failed) = (p.done, p.failed);
                self.state.export_progress = None;
                self.state.post(
                    format!("export all finished: {done} written, {failed} failed"),
                    failed > 0,
                );
            }
        }
    }

    // ---- export -----------------------------------------------------------------------------

    /// Where an entry's PNG goes in `dir`, by the command line's naming rule
    /// ([`batch::output_name`]): never the photo itself; and, since the write keeps files that
    /// are not this photo's earlier cutout, never over another photo's cutout of the same name
    /// (that one gets `NAME (2).png`).
    pub(super) fn export_target(dir: &Path, entry: &Entry) -> Target {
        let (name, input) = match &entry.source {
            Source::File(path) => (
                path.file_name()
                    .map_or_else(|| "photo".to_owned(), |s| s.to_string_lossy().into_owned()),
                Some(path.clone()),
            ),
            Source::Pasted(_) => (entry.name.to_lowercase().replace(' ', "-"), None),
        };
        let path = batch::output_name(dir, &name, "cutout", batch::Place::Folder, |p| {
            input.as_deref() == Some(p)
        });
        Target::keeping_others(path, entry.origin.clone())
    }

    pub(super) fn export_current_to(&mut self, output: Target) {
        let Some(current) = &self.state.current else {
            return self.state.post("open a photo first, then export it", true);
        };
        let entry = current.entry;
        let output = output.with_embedded(
            current
                .embedded
                .clone()
                .keeping_exif(self.settings.keep_exif),
        );
        let (Some(rgb), Some(mask)) = (current.photo.clone(), current.mask.clone()) else {
            return self.state.post_about(
                Some(entry),
                Topic::Export,
                "the cutout is not ready yet; export again in a moment",
                true,
            );
        };
        let edits = self.edits_of(entry);
        let id = self.link.new_job(entry, Purpose::Export);
        self.send(Request::Export {
            id,
            source: ExportSource::Segmented { rgb, mask },
            settings: self.settings.composite,
            edits,
            output,
            keep_exif: self.settings.keep_exif,
        });
    }

    /// The folder exports go to now, made again when it was deleted since it was chosen; with
    /// none chosen, the default folder where no dialog can ask (not remembered as a choice),
    /// else `None` after asking with the folder dialog (`then` runs once one is picked).
    fn export_dir_now(&mut self, then: AfterFolder) -> Option<PathBuf> {
        let (dir, chosen) = match (&self.settings.export_dir, &self.state.export_fallback) {
            (Some(dir), _) => (dir.clone(), true),
            (None, Some((fallback, _))) => (fallback.clone(), false),
            (None, None) => {
                self.ask_export_folder(then);
                return None;
            }
        };
        if dir.is_dir() {
            return Some(dir);
        }
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                if chosen {
                    self.state.post_about(
                        None,
                        Topic::Export,
                        format!(
                            "the export folder was missing and was made again: {}",
                            dir.display()
                        ),
                        false,
                    );
                }
                Some(dir)
            }
            Err(e) => {
                self.state.post_about(
                    None,
                    Topic::Export,
                    format!(
                        "cannot make the export folder ({e}): {}; type another under Export → Folder",
                        dir.display()
                    ),
                    true,
                );
                None
            }
        }
    }

    pub(super) fn export_current(&mut self) {
        let Some(entry) = self.state.current_entry() else {
            return self.state.post("open a photo first, then export it", true);
        };
        let entry_id = entry.id;
        let Some(dir) = self.export_dir_now(AfterFolder::ExportCurrent) else {
            return;
        };
        let Some(entry) = self.state.entry(entry_id) else {
            return;
        };
        let output = Self::export_target(&dir, entry);
        self.export_current_to(output);
    }

    pub(super) fn export_all(&mut self) {
        let Some(dir) = self.export_dir_now(AfterFolder::ExportAll) else {
            return;
        };
        let mut requests = Vec::new();
        for entry in &self.state.entries {
            if matches!(entry.status, EntryStatus::Failed(_)) {
                continue;
            }
            let mut output = Self::export_target(&dir, entry);
            let current = self.state.current.as_ref().filter(|c| c.entry == entry.id);
            if let Some(current) = current {
                output = output.with_embedded(
                    current
                        .embedded
                        .clone()
                        .keeping_exif(self.settings.keep_exif),
                );
            }
            let source = match (
                current.and_then(|c| c.photo.clone()),
                current.and_then(|c| c.mask.clone()),
            ) {
                (Some(rgb), Some(mask)) => ExportSource::Segmented { rgb, mask },
                _ => match &entry.source {
                    Source::File(path) => ExportSource::File(path.clone()),
                    Source::Pasted(rgb) => ExportSource::Pixels {
                        name: entry.name.clone(),
                        rgb: Arc::clone(rgb),
                    },
                },
            };
            requests.push((entry.id, source, entry.edits.strokes(), output));
        }
        if requests.is_empty() {
            return self.state.post("there is nothing to export yet", true);
        }
        self.state.export_progress = Some(state::ExportProgress {
            total: requests.len(),
            ..state::ExportProgress::default()
        });
        for (entry, source, edits, output) in requests {
            let id = self.link.new_job(entry, Purpose::Export);
            self.send(Request::Export {
                id,
                source,
                settings: self.settings.composite,
                edits,
                output,
                keep_exif: self.settings.keep_exif,
            });
        }
    }

    /// Asks for the export folder with the folder dialog; where there is none, says how to
    /// choose one instead.
    pub(super) fn ask_export_folder(&mut self, then: AfterFolder) {
        if let Some(why) = tasks::file_dialog_missing() {
            return self.state.post_about(
                None,
                Topic::Export,
                format!("{why}; type the export folder under Export → Folder"),
                then == AfterFolder::Remember,
            );
        }
        let start = self
            .settings
            .export_dir
            .clone()
            .or_else(|| self.settings.open_dir.clone());
        if let Err(e) = self.tasks.pick_export_folder(&self.ctx, start, then) {
            self.state.post(e.to_string(), true);
        }
    }

    pub(super) fn handle_task(&mut self, result: TaskResult) {
        match result {
            TaskResult::Opened(files) => self.add_paths(&files),
            TaskResult::ExportFolder(Some(folder), then) => {
                self.settings.export_dir = Some(folder);
                match then {
                    AfterFolder::ExportCurrent => self.export_current(),
                    AfterFolder::ExportAll => self.export_all(),
                    AfterFolder::Remember => {}
                }
            }
            TaskResult::ExportFolder(None, _) | TaskResult::ExportFile(None) => {}
            TaskResult::ExportFile(Some(path)) => {
                if let Some(dir) = path.parent() {
                    self.settings.export_dir = Some(dir.to_owned());
                }
                // The save dialog asked before replacing a file: the user named this one.
                let origin = self.state.current_entry().map(|e| e.origin.clone());
                self.export_current_to(Target::exact(path, origin));
            }
        }
    }

    /// Asks where to export the photo on screen (a save dialog).
    pub(super) fn export_as(&mut self) {
        let Some(entry) = self.state.current_entry() else {
            return self.state.post("open a photo first, then export it", true);
        };
        if tasks::file_dialog_missing().is_some() {
            return self.export_current();
        }
        let name = Self::export_target(Path::new(""), entry).path;
        let start = self.settings.export_dir.clone();
        if let Err(e) = self
            .tasks
            .save_file(&self.ctx, start, name.to_string_lossy().into_owned())
        {
            self.state.post(e.to_string(), true);
        }
    }

    /// Uses `dir` (typed in the Export panel) for exports, made when missing.
    pub(super) fn set_export_folder(&mut self, dir: PathBuf) {
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                self.state.post_about(
                    None,
                    Topic::Export,
                    format!("exports go to {}", dir.display()),
                    false,
                );
                self.settings.export_dir = Some(dir);
            }
            Err(e) => self.state.post(
                format!("cannot use that folder ({e}): {}", dir.display()),
                true,
            ),
        }
    }

    /// Copies the cutout on screen; the worker composites it at full resolution.
    pub(super) fn copy_current(&mut self) {
        let ready = self
            .state
            .current
            .as_ref()
            // The clipboard has no colour profile: it gets sRGB.
            .and_then(|c| Some((c.display.clone()?, c.mask.clone()?)));
        match (ready, self.state.current_entry().map(|e| e.id)) {
            (Some((photo, mask)), Some(entry)) => {
                let edits = self.edits_of(entry);
                let id = self.link.new_job(entry, Purpose::Copy);
                self.send(Request::Copy {
                    id,
                    photo,
                    mask,
                    settings: self.settings.composite,
                    edits,
                });
            }
            _ => self.state.post("there is no cutout to copy yet", true),
        }
    }
}
